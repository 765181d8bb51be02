/* The table of built-in commands. The list itself is written once, in meson.build,
 * which generates PILOT_COMMAND_LIST; it is kept sorted there (a test checks). */
#include "pilot.h"
#include "commands-list.h"

#define X(n) PILOT_CMD_DECLARE(n)
PILOT_COMMAND_LIST
#undef X

#define X(n) &cmd_##n,
const struct pilot_cmd *const pilot_commands[] = { PILOT_COMMAND_LIST };
#undef X

const size_t pilot_commands_count = ARRAY_SIZE(pilot_commands);
