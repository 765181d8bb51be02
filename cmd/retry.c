/* pilot retry RUN: run a finished run again — a new run with the same spec, bundle,
 * params, env and secrets, remembering which run it retries. Prints the new id;
 * --wait and --follow behave as in pilot submit. */
#include "runs.h"

struct opts {
	bool wait;
	bool follow;
	bool failed;
};

static const struct pilot_opt options[] = {
	{ OPT_FLAG, 'w', "wait", NULL, "wait for the new run to end and exit with its status",
	  offsetof(struct opts, wait), NULL },
	{ OPT_FLAG, 'f', "follow", NULL, "print the new run's log as it runs, then exit with its status",
	  offsetof(struct opts, follow), NULL },
	{ OPT_FLAG, 0, "failed", NULL, "of an array: re-run the elements that failed, were canceled or skipped",
	  offsetof(struct opts, failed), NULL },
	OPT_END_ROW,
};

/* pilot retry X --failed: new runs for the array's failed, canceled and skipped elements
 * (of a pipeline P, its jobs). */
static int retry_array(struct pilot_ctx *ctx, struct opts *o, const char *ref)
{
	const char *what = ref[0] == 'p' ? "pipeline" : "array", *items = ref[0] == 'p' ? "job" : "element";
	if (!o->failed)
		return cmd_usage_error(ctx, "%s %s is retried with --failed: its %ss that failed, were canceled or "
					    "skipped run again, the succeeded ones are kept", ref[0] == 'p' ? "a" : "an",
				       what, items);
	if (o->wait || o->follow)
		return cmd_usage_error(ctx, "--wait and --follow do not take %s %s yet: follow it with 'pilot watch %s'",
				       ref[0] == 'p' ? "a" : "an", what, ref);
	_cleanup_api_ struct pilot_api *api = NULL;
	int st = runs_open_api(ctx, &api, EXIT_FAIL);
	if (st)
		return st;
	struct pilot_array a = { 0 };
	if (pilot_api_retry_array(api, ref, NULL, &a) < 0)
		return cmd_fail(ctx, EXIT_FAIL);
	printf("%s\n", a.id);
	if (a.changed)
		cmd_notef(ctx, "%s %s: %d %s%s run again; see it with 'pilot show %s'", what, a.id, a.changed, items,
			  a.changed == 1 ? "" : "s", a.id);
	else
		cmd_notef(ctx, "%s %s: nothing to retry (no %s's latest run failed, was canceled or skipped)", what, a.id,
			  items);
	pilot_array_clear(&a);
	return EXIT_OK;
}

static int run(struct pilot_ctx *ctx, void *optsp, int argc, char **argv)
{
	struct opts *o = optsp;
	bool waiting = o->wait || o->follow;
	int fail_status = waiting ? EXIT_PILOT : EXIT_FAIL;
	(void)argc;
	if (runs_is_group(argv[0]))
		return retry_array(ctx, o, argv[0]);
	if (o->failed)
		return cmd_usage_error(ctx, "--failed is for arrays (x...) and pipelines (p...): a run is retried whole");

	_cleanup_api_ struct pilot_api *api = NULL;
	int st = runs_open_api(ctx, &api, fail_status);
	if (st)
		return st;
	struct pilot_run r = { 0 };
	if (pilot_api_retry(api, argv[0], NULL, &r) < 0) {
		if (pilot_error_code() == PILOT_ECONFLICT) {
			/* Not finished yet: say what it is doing and what to do instead. */
			cmd_fail(ctx, EXIT_FAIL);
			cmd_notef(ctx, "hint: wait for it to end, or cancel it first: pilot cancel %s", argv[0]);
			return fail_status;
		}
		return runref_fail(ctx, api, argv[0], fail_status);
	}
	if (o->follow) {
		cmd_notef(ctx, "run %s (a retry of %s)", r.id, r.retry_of ? r.retry_of : argv[0]);
	} else {
		printf("%s\n", r.id);
		fflush(stdout);
		if (ctx->stdout_tty && ctx->stderr_tty && !waiting)
			cmd_notef(ctx, "submitted %s, a retry of %s; follow it with 'pilot logs -f %s'", r.id,
				  r.retry_of ? r.retry_of : argv[0], r.id);
	}
	int status = waiting ? follow_to_end(ctx, api, r.id, o->follow) : EXIT_OK;
	pilot_run_clear(&r);
	return status;
}

const struct pilot_cmd cmd_retry = {
	.name = "retry",
	.summary = "run a finished run again, as a new run",
	.args = "RUN",
	.description =
		"Queues a new run with the finished run's spec, bundle, params, env and secrets\n"
		"(nothing is packed or uploaded again) and prints its id. 'pilot show' of the new\n"
		"run names the run it retries. A run that has not finished cannot be retried.\n"
		"--wait and --follow work as in pilot submit, with the same exit status.\n"
		"An array id (x...) with --failed re-runs, in the array, each element whose latest\n"
		"run failed, was canceled or skipped; its succeeded elements are kept. A pipeline\n"
		"id (p...) with --failed does the same for its jobs, each new run waiting for the\n"
		"latest runs of the jobs it needs.",
	.opts = options,
	.opts_size = sizeof(struct opts),
	.min_args = 1,
	.max_args = 1,
	.flags = CMD_NEEDS_CONFIG,
	.run = run,
	.complete_args = "run",
};
