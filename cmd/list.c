/* pilot list (alias ps): the runs, newest first, as a table, as JSON or as bare ids,
 * filtered by state, name and age, one page at a time (keyset cursor --after). */
#include <string.h>

#include <jansson.h>

#include "pilot.h"
#include "pilot/api.h"
#include "pilot/term.h"

struct opts {
	const char *state;
	const char *name;
	int64_t since;
	int64_t limit;
	const char *after;
	const char *output;
	bool quiet;
};

static const struct pilot_opt options[] = {
	{ OPT_STRING, 's', "state", "STATES",
	  "only runs in these states (comma-separated; also 'active' and 'terminal')", offsetof(struct opts, state),
	  "queued waiting running canceling succeeded failed canceled active terminal" },
	{ OPT_STRING, 'n', "name", "NAME", "only runs of this name", offsetof(struct opts, name), NULL },
	{ OPT_DURATION, 0, "since", "DUR", "only runs created within DUR (e.g. 2h)", offsetof(struct opts, since), NULL },
	{ OPT_INT, 'l', "limit", "N", "at most N runs (default 50, at most 1000)", offsetof(struct opts, limit), NULL },
	{ OPT_STRING, 0, "after", "ID", "the next page: runs older than ID", offsetof(struct opts, after), "run" },
	{ OPT_STRING, 'o', "output", "FORMAT", "table (default) or json", offsetof(struct opts, output), "table json" },
	{ OPT_FLAG, 'q', "quiet", NULL, "print only the run ids", offsetof(struct opts, quiet), NULL },
	OPT_END_ROW,
};

/* "failed (exit 3)", "failed (timeout)", "running": the state with what ended it. */
static void state_cell(const struct pilot_run *r, char *out, size_t n)
{
	if (r->state == PILOT_RUN_FAILED && r->reason == PILOT_REASON_EXIT_CODE && r->has_exit_code)
		snprintf(out, n, "failed (exit %d)", r->exit_code);
	else if (r->state == PILOT_RUN_FAILED && r->reason)
		snprintf(out, n, "failed (%s)", pilot_reason_name(r->reason));
	else
		snprintf(out, n, "%s", pilot_run_state_name(r->state));
}

static void duration_cell(const struct pilot_run *r, int64_t now, char *out, size_t n)
{
	if (!r->started_ms) {
		snprintf(out, n, "-");
		return;
	}
	int64_t end = r->finished_ms ? r->finished_ms : pilot_run_state_terminal(r->state) ? r->updated_ms : now;
	int64_t d = end - r->started_ms;
	/* Whole seconds read better in a table than milliseconds. */
	if (d >= 1000)
		d -= d % 1000;
	pilot_format_duration(d > 0 ? d : 0, out, n);
}

static int run(struct pilot_ctx *ctx, void *optsp, int argc, char **argv)
{
	struct opts *o = optsp;
	const struct pilot_cmd *self = pilot_command_find("list");
	bool json = false;
	(void)argc;
	(void)argv;

	if (o->output && !(json = !strcmp(o->output, "json")) && strcmp(o->output, "table"))
		return cmd_usage_error(ctx, self, "unknown output format '%s' (expected table or json)", o->output);
	if (o->limit < 0 || o->limit > 1000)
		return cmd_usage_error(ctx, self, "--limit must be between 1 and 1000");
	struct pilot_run_filter f = {
		.name = o->name,
		.after = o->after,
		.limit = o->limit ? (size_t)o->limit : 50,
		.since_ms = o->since > 0 ? pilot_now_ms() - o->since : 0,
	};
	if (o->state && pilot_run_states_parse(o->state, &f.states) < 0)
		return cmd_usage_error(ctx, self, "%s", pilot_error_last());

	_cleanup_api_ struct pilot_api *api = NULL;
	if (pilot_api_open_from_config(ctx->config, &api) < 0)
		return cmd_fail(ctx, EXIT_FAIL);
	struct pilot_run_list l = { 0 };
	if (pilot_api_list_runs(api, &f, &l) < 0)
		return cmd_fail(ctx, EXIT_FAIL);

	if (o->quiet) {
		for (size_t i = 0; i < l.n; i++)
			puts(l.items[i].id);
	} else if (json) {
		json_t *j = pilot_run_list_to_json(&l);
		char *text = json_dumps(j, JSON_INDENT(2));
		json_decref(j);
		if (text)
			puts(text);
		free(text);
	} else {
		static const char *const headers[] = { "ID", "NAME", "STATE", "ATTEMPT", "AGENT", "AGE", "DURATION" };
		struct pilot_table *t = pilot_table_new(ARRAY_SIZE(headers), headers);
		int64_t now = pilot_now_ms();
		for (size_t i = 0; i < l.n; i++) {
			const struct pilot_run *r = &l.items[i];
			char state[64], attempt[16], age[16], dur[32];
			state_cell(r, state, sizeof(state));
			if (r->attempt_count)
				snprintf(attempt, sizeof(attempt), "%d", r->attempt_count);
			else
				snprintf(attempt, sizeof(attempt), "-");
			pilot_format_age(r->created_ms, now, age, sizeof(age));
			duration_cell(r, now, dur, sizeof(dur));
			const char *cells[] = { r->id, r->name, state, attempt, r->agent ? r->agent : "-", age, dur };
			pilot_table_add(t, cells);
		}
		_cleanup_buf_ struct pilot_buf out = PILOT_BUF_INIT;
		if (l.n)
			pilot_table_render(t, pilot_term_width(1), &out);
		pilot_table_free(t);
		fputs(pilot_buf_str(&out), stdout);
		if (!l.n && ctx->stdout_tty)
			cmd_notef(ctx, "no runs%s", o->state || o->name || o->since ? " match" : " yet");
		if (l.next_after[0] && ctx->stderr_tty)
			cmd_notef(ctx, "more: pilot list --after %s", l.next_after);
	}
	pilot_run_list_clear(&l);
	return EXIT_OK;
}

const struct pilot_cmd cmd_list = {
	.name = "list",
	.alias = "ps",
	.summary = "list runs, newest first",
	.description =
		"Columns: ID, NAME, STATE (with the reason a run failed), ATTEMPT (the latest\n"
		"attempt's number), AGENT (where it ran last), AGE (since it was submitted) and\n"
		"DURATION (of its run time so far). With a server configured the runs are the\n"
		"server's; otherwise those of the local store.",
	.opts = options,
	.opts_size = sizeof(struct opts),
	.min_args = 0,
	.max_args = 0,
	.flags = CMD_NEEDS_CONFIG,
	.run = run,
};
