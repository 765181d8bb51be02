/* The api conformance suite: every rule of design §3/§4 checked through the public
 * api.h only, so the same checks run against every transport. A driver describes its
 * target (how to open an api — also in forked children — and the short knobs it was
 * set up with) and calls conformance_main(), which prints TAP. */
#ifndef PILOT_CONFORMANCE_H
#define PILOT_CONFORMANCE_H

#include <stdint.h>

#include "pilot/api.h"

struct conformance_target {
	const char *name;
	/* Open a fresh api handle; called in the parent and in forked children. NULL on
	 * failure (with pilot_error_last() set). */
	struct pilot_api *(*open)(void *ud);
	void *ud;
	/* The knobs the target runs with: the suite waits on them. Keep them short. */
	int64_t lease_ttl_ms;
	int64_t timeout_grace_ms;
	int max_lost;
	int blocklist_after;     /* high: other tests fail runs of one name several times */
	int64_t retry_elsewhere_ms;
	/* Scale of the concurrency checks (0 = the full 8 x 1000 submits, 20 x 500 claims). */
	int scale_percent;
};

/* argv[1..]: optional test names to run (default: all). Returns the exit status. */
int conformance_main(const struct conformance_target *t, int argc, char **argv);

#endif
