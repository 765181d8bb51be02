/* pilot help [COMMAND]: the command list, or one command's help from its option table. */
#include "pilot.h"


static int run(struct pilot_ctx *ctx, void *opts, int argc, char **argv)
{
	(void)ctx;
	(void)opts;
	if (argc == 0) {
		pilot_list_commands(stdout);
		return EXIT_OK;
	}
	return pilot_help_command(argv[0]);
}

const struct pilot_cmd cmd_help = {
	.name = "help",
	.summary = "show the command list or a command's help",
	.args = "[COMMAND]",
	.min_args = 0,
	.max_args = 1,
	.run = run,
	.complete_args = "command",
};
