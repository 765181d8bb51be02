/* pilot cancel: stop runs. A queued or waiting run is canceled at once; a running one
 * turns canceling and its agent stops the job (SIGTERM, a grace period, SIGKILL) and
 * reports it canceled. The grace is the agent's own unless --grace asks for one (--now:
 * none); a second, hastier cancel of a canceling run shortens it. --all cancels every
 * run matching --state/--name, after a confirmation. */
#include <stdio.h>
#include <string.h>

#include "runs.h"

struct opts {
	bool all;
	const char *state;
	const char *name;
	bool yes;
	bool wait;
	const char *grace;
	bool now;
};

static const struct pilot_opt options[] = {
	{ OPT_FLAG, 0, "all", NULL, "cancel every run matching --state and --name", offsetof(struct opts, all), NULL },
	{ OPT_STRING, 's', "state", "STATES", "with --all: only runs in these states (default: active)",
	  offsetof(struct opts, state), "queued waiting running canceling active" },
	{ OPT_STRING, 'n', "name", "NAME", "with --all: only runs of this name", offsetof(struct opts, name), NULL },
	{ OPT_FLAG, 'y', "yes", NULL, "do not ask for confirmation", offsetof(struct opts, yes), NULL },
	{ OPT_FLAG, 'w', "wait", NULL, "wait until the runs have stopped", offsetof(struct opts, wait), NULL },
	{ OPT_STRING, 0, "grace", "DUR", "SIGTERM, then SIGKILL after DUR (default: the agent's grace, 10s)",
	  offsetof(struct opts, grace), NULL },
	{ OPT_FLAG, 0, "now", NULL, "kill at once (SIGKILL, no grace period)", offsetof(struct opts, now), NULL },
	OPT_END_ROW,
};

/* Every run id matching the filter, newest first, through every page. */
static int select_runs(struct pilot_api *api, unsigned states, const char *name, char ***ids, size_t *n)
{
	char after[PILOT_ID_SIZE] = "";
	for (;;) {
		struct pilot_run_filter f = { .states = states, .name = name, .after = after[0] ? after : NULL,
					      .limit = 1000 };
		struct pilot_run_list l = { 0 };
		int r = pilot_api_list_runs(api, &f, &l);
		if (r < 0)
			return r;
		*ids = pilot_xrealloc(*ids, (*n + l.n) * sizeof(**ids));
		for (size_t i = 0; i < l.n; i++)
			(*ids)[(*n)++] = pilot_xstrdup(l.items[i].id);
		memcpy(after, l.next_after, PILOT_ID_SIZE);
		pilot_run_list_clear(&l);
		if (!after[0])
			return 0;
	}
}

static bool confirm(size_t n, const char *what)
{
	fprintf(stderr, "cancel %zu run%s%s? [y/N] ", n, n == 1 ? "" : "s", what);
	fflush(stderr);
	char line[64];
	if (!fgets(line, sizeof(line), stdin))
		return false;
	return line[0] == 'y' || line[0] == 'Y';
}

/* Cancel one run and say what became of it. 0, or 1 when it failed. */
static int cancel_one(struct pilot_ctx *ctx, struct pilot_api *api, const char *ref, int64_t grace_ms,
		      char id[PILOT_ID_SIZE])
{
	struct pilot_run r = { 0 };
	int res = pilot_api_cancel(api, ref, NULL, grace_ms, &r);
	if (res < 0)
		return runref_fail(ctx, api, ref, EXIT_FAIL);
	memcpy(id, r.id, PILOT_ID_SIZE);
	if (res == 1 && r.state == PILOT_RUN_CANCELING)
		printf("%s  already canceling\n", r.id);
	else if (res == 1) {
		char state[64];
		run_state_cell(&r, state, sizeof(state));
		printf("%s  already finished: %s\n", r.id, state);
	} else if (r.state == PILOT_RUN_CANCELING && grace_ms == 0) {
		printf("%s  canceling (the agent is killing it)\n", r.id);
	} else if (r.state == PILOT_RUN_CANCELING && grace_ms > 0) {
		char d[32];
		pilot_format_duration(grace_ms, d, sizeof(d));
		printf("%s  canceling (the agent is stopping it, grace %s)\n", r.id, d);
	} else if (r.state == PILOT_RUN_CANCELING)
		printf("%s  canceling (the agent is stopping it)\n", r.id);
	else
		printf("%s  canceled\n", r.id);
	fflush(stdout);
	pilot_run_clear(&r);
	return 0;
}

/* Cancel every run of an array or a pipeline not ended yet. 0, or 1 when it failed. */
static int cancel_array(struct pilot_ctx *ctx, struct pilot_api *api, const char *ref, int64_t grace_ms)
{
	struct pilot_array a = { 0 };
	if (pilot_api_cancel_array(api, ref, NULL, grace_ms, &a) < 0) {
		cmd_fail(ctx, EXIT_FAIL);
		return 1;
	}
	if (a.changed)
		printf("%s  %d of its %zu runs canceled or stopping\n", a.id, a.changed, a.nruns);
	else
		printf("%s  already finished: none of its %zu runs was going\n", a.id, a.nruns);
	fflush(stdout);
	pilot_array_clear(&a);
	return 0;
}

static int run(struct pilot_ctx *ctx, void *optsp, int argc, char **argv)
{
	struct opts *o = optsp;
	unsigned states = 0;
	int64_t grace_ms = PILOT_CANCEL_GRACE_AGENT;

	if (o->grace && o->now)
		return cmd_usage_error(ctx, "--grace and --now together: --now is no grace at all");
	if (o->grace) {
		if (o->grace[0] == '-')
			return cmd_usage_error(ctx, "--grace: a grace period cannot be negative: '%s'", o->grace);
		if (pilot_parse_duration(o->grace, &grace_ms) < 0)
			return cmd_usage_error(ctx, "--grace: %s", pilot_error_last());
		if (grace_ms > PILOT_CANCEL_GRACE_MAX_MS)
			return cmd_usage_error(ctx, "--grace: '%s' is longer than a day", o->grace);
	}
	if (o->now)
		grace_ms = 0;
	if (o->all && argc)
		return cmd_usage_error(ctx, "give run ids or --all, not both");
	if (!o->all && !argc)
		return cmd_usage_error(ctx, "missing argument (a run id, or --all)");
	if (!o->all && (o->state || o->name))
		return cmd_usage_error(ctx, "--state and --name select runs for --all");
	if (o->all) {
		if (pilot_run_states_parse(o->state ? o->state : "active", &states) < 0)
			return cmd_usage_error(ctx, "%s", pilot_error_last());
		if (states & PILOT_RUN_TERMINAL_BITS)
			return cmd_usage_error(ctx, "--state: finished runs cannot be canceled");
	}

	_cleanup_api_ struct pilot_api *api = NULL;
	int st = runs_open_api(ctx, &api, EXIT_FAIL);
	if (st)
		return st;
	char **ids = NULL;
	size_t n = 0;
	if (o->all) {
		if (select_runs(api, states, o->name, &ids, &n) < 0)
			return cmd_fail(ctx, EXIT_FAIL);
		if (!n) {
			cmd_notef(ctx, "no run to cancel");
			free(ids);
			return EXIT_OK;
		}
		char what[256];
		snprintf(what, sizeof(what), " (%s%s%s)", o->state ? o->state : "active", o->name ? ", name " : "",
			 o->name ? o->name : "");
		if (!o->yes) {
			bool ok = false;
			if (ctx->stdin_tty && ctx->stderr_tty)
				ok = confirm(n, what);
			else
				cmd_errorf(ctx, "not canceling %zu run%s%s without a confirmation: add --yes", n,
					   n == 1 ? "" : "s", what);
			if (!ok) {
				for (size_t i = 0; i < n; i++)
					free(ids[i]);
				free(ids);
				return EXIT_FAIL;
			}
		}
	} else {
		ids = pilot_xcalloc((size_t)argc, sizeof(*ids));
		for (int i = 0; i < argc; i++)
			ids[n++] = pilot_xstrdup(argv[i]);
	}
	int status = EXIT_OK;
	char (*done)[PILOT_ID_SIZE] = pilot_xcalloc(n ? n : 1, PILOT_ID_SIZE);
	for (size_t i = 0; i < n; i++)
		if (runs_is_group(ids[i]) ? cancel_array(ctx, api, ids[i], grace_ms)
				     : cancel_one(ctx, api, ids[i], grace_ms, done[i]))
			status = EXIT_FAIL;
	for (size_t i = 0; i < n && o->wait; i++) {
		if (!done[i][0])
			continue;
		struct pilot_run end = { 0 };
		if (wait_run(ctx, api, done[i], 0, NULL, NULL, &end) < 0) {
			status = cmd_fail(ctx, EXIT_FAIL);
			continue;
		}
		char line[512];
		run_outcome_line(&end, line, sizeof(line));
		cmd_notef(ctx, "run %s %s", end.id, line);
		pilot_run_clear(&end);
	}
	for (size_t i = 0; i < n; i++)
		free(ids[i]);
	free(ids);
	free(done);
	return status;
}

const struct pilot_cmd cmd_cancel = {
	.name = "cancel",
	.summary = "cancel runs",
	.args = "[RUN...]",
	.description =
		"A queued or waiting run is canceled at once. A running run turns 'canceling':\n"
		"its agent sends the job SIGTERM, waits a grace period (its own, 10s by default,\n"
		"or --grace DUR), sends SIGKILL, uploads what the job left and reports the run\n"
		"canceled; --now sends SIGKILL at once. Canceling a canceling run again with a\n"
		"shorter grace (or --now) shortens it; anything else leaves it alone. A run that\n"
		"has already finished is left alone (and said so). --all cancels every run matching\n"
		"--state (default: every active run) and --name, after asking on a terminal;\n"
		"without a terminal it needs --yes. RUN is a run id or a unique prefix of one; an\n"
		"array id (x...) or a pipeline id (p...) cancels every run of it not ended yet, at\n"
		"once (--wait does not wait for those).",
	.opts = options,
	.opts_size = sizeof(struct opts),
	.min_args = 0,
	.max_args = -1,
	.flags = CMD_NEEDS_CONFIG,
	.run = run,
	.complete_args = "run",
};
