/* pilot list (alias ps): the runs, newest first, as a table, as JSON or YAML, or as bare
 * ids, filtered by state, name and age. Pages are read with the keyset cursor (runs
 * older than an id), so the first page of a store with millions of runs costs the same
 * as that of an empty one; --all and a --limit above one page walk the pages, printing
 * JSON, YAML and ids as they come. */
#include <string.h>

#include <jansson.h>

#include "runs.h"
#include "pilot/term.h"

#define PAGE 1000

struct opts {
	const char *state;
	const char *name;
	const char *array;
	const char *pipeline;
	int64_t since;
	int64_t limit;
	bool all;
	const char *after;
	const char *output;
	bool quiet;
};

static const struct pilot_opt options[] = {
	{ OPT_STRING, 's', "state", "STATES",
	  "only runs in these states (comma-separated; also 'active' and 'terminal')", offsetof(struct opts, state),
	  "queued waiting running canceling succeeded failed canceled active terminal" },
	{ OPT_STRING, 'n', "name", "NAME", "only runs of this name", offsetof(struct opts, name), NULL },
	{ OPT_STRING, 0, "array", "ID", "only the runs of this array (pilot submit --array)", offsetof(struct opts, array),
	  NULL },
	{ OPT_STRING, 0, "pipeline", "ID", "only the runs of this pipeline (a pilot.yaml with jobs:)",
	  offsetof(struct opts, pipeline), NULL },
	{ OPT_DURATION, 0, "since", "DUR", "only runs created within DUR (e.g. 2h)", offsetof(struct opts, since), NULL },
	{ OPT_INT, 'l', "limit", "N", "at most N runs (default 50)", offsetof(struct opts, limit), NULL },
	{ OPT_FLAG, 'a', "all", NULL, "every matching run (all pages)", offsetof(struct opts, all), NULL },
	{ OPT_STRING, 0, "after", "ID", "the next page: runs older than ID", offsetof(struct opts, after), "run" },
	{ OPT_STRING, 'o', "output", "FORMAT", "table (default), json or yaml", offsetof(struct opts, output),
	  "table json yaml" },
	{ OPT_FLAG, 'q', "quiet", NULL, "print only the run ids", offsetof(struct opts, quiet), NULL },
	OPT_END_ROW,
};

struct printer {
	enum output_format fmt;
	bool quiet;
	size_t n;
	struct pilot_table *table;
	int64_t now;
};

static void print_run(struct printer *p, const struct pilot_run *r)
{
	if (p->quiet) {
		puts(r->id);
	} else if (p->fmt == OUTPUT_JSON) {
		json_t *j = pilot_run_to_json(r);
		char *text = json_dumps(j, JSON_INDENT(2));
		json_decref(j);
		/* Indented as jansson indents the whole document: by 4 inside "runs". */
		fputs(p->n ? ",\n" : "\n", stdout);
		for (const char *s = text ? text : "{}"; *s;) {
			const char *e = strchr(s, '\n');
			size_t len = e ? (size_t)(e - s) : strlen(s);
			printf("    %.*s%s", (int)len, s, e ? "\n" : "");
			s += len + (e ? 1 : 0);
		}
		free(text);
	} else if (p->fmt == OUTPUT_YAML) {
		json_t *a = json_array();
		json_array_append_new(a, pilot_run_to_json(r));
		_cleanup_buf_ struct pilot_buf b = PILOT_BUF_INIT;
		output_yaml(&b, a, 2);
		json_decref(a);
		/* "runs:" waits for its first item (or " []"). */
		if (!p->n)
			putchar('\n');
		fputs(pilot_buf_str(&b), stdout);
	} else {
		char state[64], attempt[16], age[16], dur[32];
		run_state_cell(r, state, sizeof(state));
		if (r->attempt_count)
			snprintf(attempt, sizeof(attempt), "%d", r->attempt_count);
		else
			snprintf(attempt, sizeof(attempt), "-");
		pilot_format_age(r->created_ms, p->now, age, sizeof(age));
		run_duration_cell(r, p->now, dur, sizeof(dur));
		const char *cells[] = { r->id, r->name, state, attempt, r->agent ? r->agent : "-", age, dur };
		pilot_table_add(p->table, cells);
	}
	p->n++;
}

static void print_start(struct printer *p)
{
	if (p->quiet)
		return;
	if (p->fmt == OUTPUT_JSON) {
		fputs("{\n  \"runs\": [", stdout);
	} else if (p->fmt == OUTPUT_YAML) {
		fputs("runs:", stdout);
	} else {
		static const char *const headers[] = { "ID", "NAME", "STATE", "ATTEMPT", "AGENT", "AGE", "DURATION" };
		p->table = pilot_table_new(ARRAY_SIZE(headers), headers);
	}
}

static void print_end(struct printer *p, const char *next_after)
{
	if (p->quiet)
		return;
	if (p->fmt == OUTPUT_JSON) {
		fputs(p->n ? "\n  ],\n" : "],\n", stdout);
		if (next_after[0])
			printf("  \"next_after\": \"%s\"\n}\n", next_after);
		else
			fputs("  \"next_after\": null\n}\n", stdout);
	} else if (p->fmt == OUTPUT_YAML) {
		if (!p->n)
			fputs(" []\n", stdout);
		printf("next_after: %s\n", next_after[0] ? next_after : "null");
	} else {
		_cleanup_buf_ struct pilot_buf out = PILOT_BUF_INIT;
		if (p->n)
			pilot_table_render(p->table, pilot_term_width(1), &out);
		fputs(pilot_buf_str(&out), stdout);
	}
}

static int run(struct pilot_ctx *ctx, void *optsp, int argc, char **argv)
{
	struct opts *o = optsp;
	struct printer p = { .quiet = o->quiet, .now = pilot_now_ms() };
	(void)argc;
	(void)argv;

	int st = output_parse(ctx, o->output, "table", &p.fmt);
	if (st)
		return st;
	if (o->limit < 0)
		return cmd_usage_error(ctx, "--limit must be 1 or more");
	if (o->all && o->limit)
		return cmd_usage_error(ctx, "--all and --limit do not go together");
	if (o->after && *o->after && !pilot_id_valid(o->after, true))
		return cmd_usage_error(ctx, "--after '%s' is not a run id", o->after);
	if (o->array && (o->array[0] != 'x' || !pilot_id_valid(o->array, false)))
		return cmd_usage_error(ctx, "--array '%s' is not an array id (x...)", o->array);
	if (o->pipeline && (o->pipeline[0] != 'p' || !pilot_id_valid(o->pipeline, false)))
		return cmd_usage_error(ctx, "--pipeline '%s' is not a pipeline id (p...)", o->pipeline);
	if (o->array && o->pipeline)
		return cmd_usage_error(ctx, "--array and --pipeline cannot be given together");
	struct pilot_run_filter f = {
		.name = o->name,
		.array = o->array ? o->array : o->pipeline,
		.since_ms = o->since > 0 ? pilot_now_ms() - o->since : 0,
	};
	if (o->state && pilot_run_states_parse(o->state, &f.states) < 0)
		return cmd_usage_error(ctx, "%s", pilot_error_last());
	size_t want = o->all ? SIZE_MAX : o->limit ? (size_t)o->limit : 50;

	_cleanup_api_ struct pilot_api *api = NULL;
	if ((st = runs_open_api(ctx, &api, EXIT_FAIL)))
		return st;
	char after[PILOT_ID_SIZE] = "";
	if (o->after)
		snprintf(after, sizeof(after), "%s", o->after);
	bool started = false;
	int status = EXIT_OK;
	for (;;) {
		struct pilot_run_list l = { 0 };
		f.after = after[0] ? after : NULL;
		f.limit = want - p.n < PAGE ? want - p.n : PAGE;
		if (pilot_api_list_runs(api, &f, &l) < 0) {
			/* Part of it may be out already; end the document, then fail. */
			if (started && p.fmt != OUTPUT_TEXT) {
				after[0] = '\0';
				print_end(&p, after);
			}
			status = cmd_fail(ctx, EXIT_FAIL);
			break;
		}
		if (!started) {
			print_start(&p);
			started = true;
		}
		for (size_t i = 0; i < l.n; i++)
			print_run(&p, &l.items[i]);
		memcpy(after, l.next_after, PILOT_ID_SIZE);
		pilot_run_list_clear(&l);
		/* A reader that went away (pilot list --all -q | head) wants no more pages. */
		if (ferror(stdout) || fflush(stdout) != 0)
			break;
		if (!after[0] || p.n >= want) {
			print_end(&p, after);
			break;
		}
	}
	if (status == EXIT_OK && !o->quiet && p.fmt == OUTPUT_TEXT) {
		if (!p.n && ctx->stdout_tty)
			cmd_notef(ctx, "no runs%s", o->state || o->name || o->array || o->pipeline || o->since || o->after ? " match" : " yet");
		if (after[0] && ctx->stderr_tty)
			cmd_notef(ctx, "more: pilot list --after %s (or --all)", after);
	}
	pilot_table_free(p.table);
	return status;
}

const struct pilot_cmd cmd_list = {
	.name = "list",
	.alias = "ps",
	.summary = "list runs, newest first",
	.description =
		"Columns: ID, NAME, STATE (with the reason a run failed), ATTEMPT (the latest\n"
		"attempt's number), AGENT (where it ran last), AGE (since it was submitted) and\n"
		"DURATION (of its run time so far). On a terminal the table is cut to its width.\n"
		"With a server configured the runs are the server's; otherwise those of the local\n"
		"store. --output json and yaml give every field, and the cursor for the next page.",
	.opts = options,
	.opts_size = sizeof(struct opts),
	.min_args = 0,
	.max_args = 0,
	.flags = CMD_NEEDS_CONFIG,
	.run = run,
};
