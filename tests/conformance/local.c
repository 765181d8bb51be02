/* Runs the api conformance suite against the local transport, on a fresh data
 * directory, with short lease/grace knobs so the reaper paths run in seconds.
 * Usage: conformance-local [TEST...]; PILOT_CONFORMANCE_SCALE=N runs the concurrency
 * checks at N percent. */
#include <stdio.h>
#include <stdlib.h>

#include "conformance.h"

struct local_target {
	char dir[64];
	struct pilot_local_options opts;
};

static struct pilot_api *open_local(void *ud)
{
	struct local_target *lt = ud;
	struct pilot_api *api = NULL;
	if (pilot_api_open_local(lt->dir, &lt->opts, &api) < 0)
		return NULL;
	return api;
}

int main(int argc, char **argv)
{
	struct local_target lt = {
		.opts = {
			.lease_ttl_ms = 1000,
			.timeout_grace_ms = 300,
			.max_lost = 3,
			.blocklist_after = 8,
			.retry_elsewhere_ms = 1000,
			.actor = "conformance",
		},
	};
	snprintf(lt.dir, sizeof(lt.dir), "/tmp/pilot-conformance.XXXXXX");
	if (!mkdtemp(lt.dir)) {
		perror("mkdtemp");
		return 1;
	}
	const char *scale = getenv("PILOT_CONFORMANCE_SCALE");
	struct conformance_target t = {
		.name = "local",
		.open = open_local,
		.ud = &lt,
		.lease_ttl_ms = lt.opts.lease_ttl_ms,
		.timeout_grace_ms = lt.opts.timeout_grace_ms,
		.max_lost = lt.opts.max_lost,
		.blocklist_after = lt.opts.blocklist_after,
		.retry_elsewhere_ms = lt.opts.retry_elsewhere_ms,
		.scale_percent = scale ? (int)strtol(scale, NULL, 10) : 0,
	};
	int st = conformance_main(&t, argc, argv);
	if (!getenv("PILOT_CONFORMANCE_KEEP"))
		pilot_rm_rf(lt.dir);
	else
		printf("# data kept in %s\n", lt.dir);
	return st;
}
