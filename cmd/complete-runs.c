/* Run-id completion for pilot __complete. Run ids come from the store, which does not
 * exist yet in this build: until then there is nothing to offer. */
#include "pilot.h"

void pilot_complete_runs(const char *prefix)
{
	(void)prefix;
}
