/* pilot agents: the agents the server (or the local store) knows, with their labels,
 * state (idle, busy, lost, gone), the runs they hold and when they were last seen;
 * pilot agents blocklist: the agents blocked from runs of a name, and clearing them. */
#include <string.h>

#include <jansson.h>

#include "pilot.h"
#include "pilot/api.h"
#include "pilot/term.h"

struct opts {
	const char *output;
	bool all;
	bool clear;
};

static const struct pilot_opt options[] = {
	{ OPT_STRING, 'o', "output", "FORMAT", "table (default) or json", offsetof(struct opts, output), "table json" },
	{ OPT_FLAG, 'a', "all", NULL, "also list the agents that stopped (gone)", offsetof(struct opts, all), NULL },
	{ OPT_FLAG, 0, "clear", NULL, "blocklist: clear the entries of AGENT (and NAME), or every entry",
	  offsetof(struct opts, clear), NULL },
	OPT_END_ROW,
};

static void join_labels(const struct pilot_kvs *l, struct pilot_buf *out)
{
	for (size_t i = 0; i < l->n; i++)
		pilot_buf_printf(out, "%s%s=%s", i ? "," : "", l->items[i].key, l->items[i].value);
	if (!l->n)
		pilot_buf_puts(out, "-");
}

static void join_runs(const struct pilot_agent_info *a, struct pilot_buf *out)
{
	for (size_t i = 0; i < a->nruns; i++)
		pilot_buf_printf(out, "%s%s", i ? "," : "", a->runs[i]);
	if (!a->nruns)
		pilot_buf_puts(out, "-");
}

static void print_json(json_t *j)
{
	char *text = json_dumps(j, JSON_INDENT(2));
	json_decref(j);
	if (text)
		puts(text);
	free(text);
}

/* pilot agents blocklist [--clear] [AGENT [NAME]] */
static int blocklist(struct pilot_ctx *ctx, struct pilot_api *api, const struct opts *o, bool json, int argc,
		     char **argv)
{
	if (o->clear) {
		int n = 0;
		if (pilot_api_clear_blocklist(api, argc > 0 ? argv[0] : NULL, argc > 1 ? argv[1] : NULL, &n) < 0)
			return cmd_fail(ctx, EXIT_FAIL);
		if (json)
			print_json(json_pack("{s:i}", "cleared", n));
		else
			printf("%d blocklist entr%s cleared\n", n, n == 1 ? "y" : "ies");
		return EXIT_OK;
	}
	if (argc)
		return cmd_usage_error(ctx, "an AGENT to list the blocklist for is not taken: it lists every entry "
					    "(--clear AGENT clears one agent's)");
	struct pilot_block_list l = { 0 };
	if (pilot_api_list_blocklist(api, &l) < 0)
		return cmd_fail(ctx, EXIT_FAIL);
	if (json) {
		print_json(pilot_block_list_to_json(&l));
	} else {
		static const char *const headers[] = { "AGENT", "NAME", "STATE", "FAILURES", "LAST FAILURE" };
		struct pilot_table *t = pilot_table_new(ARRAY_SIZE(headers), headers);
		int64_t now = pilot_now_ms();
		for (size_t i = 0; i < l.n; i++) {
			const struct pilot_block *b = &l.items[i];
			char state[48], failures[16], age[16], last[32];
			pilot_format_age(b->blocked_ms, now, age, sizeof(age));
			snprintf(state, sizeof(state), b->blocked_ms ? "blocked for %s" : "counting", age);
			snprintf(failures, sizeof(failures), "%d", b->failures);
			pilot_format_age(b->last_failure_ms, now, age, sizeof(age));
			snprintf(last, sizeof(last), "%s ago", age);
			const char *cells[] = { b->agent, b->name, state, failures, last };
			pilot_table_add(t, cells);
		}
		_cleanup_buf_ struct pilot_buf out = PILOT_BUF_INIT;
		if (l.n)
			pilot_table_render(t, pilot_term_width(1), &out);
		pilot_table_free(t);
		fputs(pilot_buf_str(&out), stdout);
		if (!l.n && ctx->stdout_tty)
			cmd_notef(ctx, "the blocklist is empty");
	}
	pilot_block_list_clear(&l);
	return EXIT_OK;
}

static int run(struct pilot_ctx *ctx, void *optsp, int argc, char **argv)
{
	struct opts *o = optsp;
	bool json = false;
	if (o->output && !(json = !strcmp(o->output, "json")) && strcmp(o->output, "table"))
		return cmd_usage_error(ctx, "unknown output format '%s' (expected table or json)", o->output);
	bool block = argc > 0 && !strcmp(argv[0], "blocklist");
	if (argc > 0 && !block && strcmp(argv[0], "list"))
		return cmd_usage_error(ctx, "unknown subcommand '%s' (expected list or blocklist)", argv[0]);
	if (!block && (argc > 1 || o->clear))
		return cmd_usage_error(ctx, "%s", o->clear ? "--clear is for 'pilot agents blocklist'"
							 : "'pilot agents list' takes no arguments");

	_cleanup_api_ struct pilot_api *api = NULL;
	if (pilot_api_open_from_config(ctx->config, &api) < 0)
		return cmd_fail(ctx, EXIT_FAIL);
	if (block)
		return blocklist(ctx, api, o, json, argc - 1, argv + 1);
	struct pilot_agent_list l = { 0 };
	if (pilot_api_list_agents(api, &l) < 0)
		return cmd_fail(ctx, EXIT_FAIL);
	/* Keep what is shown: gone agents only with --all. */
	size_t n = 0;
	for (size_t i = 0; i < l.n; i++) {
		if (!o->all && l.items[i].state == PILOT_AGENT_GONE) {
			pilot_agent_info_clear(&l.items[i]);
			continue;
		}
		l.items[n++] = l.items[i];
	}
	l.n = n;

	if (json) {
		print_json(pilot_agent_list_to_json(&l));
	} else {
		static const char *const headers[] = { "NAME", "STATE", "RUNS", "LABELS", "SLOTS", "VERSION", "LAST SEEN" };
		struct pilot_table *t = pilot_table_new(ARRAY_SIZE(headers), headers);
		int64_t now = pilot_now_ms();
		for (size_t i = 0; i < l.n; i++) {
			const struct pilot_agent_info *a = &l.items[i];
			_cleanup_buf_ struct pilot_buf labels = PILOT_BUF_INIT, runs = PILOT_BUF_INIT;
			join_labels(&a->labels, &labels);
			join_runs(a, &runs);
			char slots[24], seen[16];
			snprintf(slots, sizeof(slots), "%zu/%d", a->nruns, a->capacity);
			pilot_format_age(a->last_seen_ms, now, seen, sizeof(seen));
			char seen_ago[32];
			snprintf(seen_ago, sizeof(seen_ago), a->last_seen_ms ? "%s ago" : "%s", seen);
			const char *cells[] = { a->name, pilot_agent_state_name(a->state), pilot_buf_str(&runs),
						pilot_buf_str(&labels), slots, a->version ? a->version : "-", seen_ago };
			pilot_table_add(t, cells);
		}
		_cleanup_buf_ struct pilot_buf out = PILOT_BUF_INIT;
		if (l.n)
			pilot_table_render(t, pilot_term_width(1), &out);
		pilot_table_free(t);
		fputs(pilot_buf_str(&out), stdout);
		if (!l.n && ctx->stdout_tty)
			cmd_notef(ctx, "no agents%s", o->all ? " yet" : " (--all lists the ones that stopped)");
	}
	pilot_agent_list_clear(&l);
	return EXIT_OK;
}

const struct pilot_cmd cmd_agents = {
	.name = "agents",
	.summary = "list the agents and what they run, and the blocklist",
	.args = "[list | blocklist [AGENT [NAME]]]",
	.description =
		"Columns: NAME, STATE (idle, busy, lost: not seen for a lease TTL, gone: stopped),\n"
		"RUNS (the runs it holds live attempts of), LABELS, SLOTS (runs held / capacity),\n"
		"VERSION and LAST SEEN. With a server configured the agents are the server's;\n"
		"otherwise those of the local store.\n"
		"'pilot agents blocklist' lists, per agent and run name, the failures in a row\n"
		"counted and whether the agent is blocked from runs of that name (after 3, the\n"
		"server's PILOT_BLOCKLIST_AFTER); --clear AGENT [NAME] clears entries (without\n"
		"AGENT, all of them), so the agent takes such runs again.",
	.opts = options,
	.opts_size = sizeof(struct opts),
	.min_args = 0,
	.max_args = 3,
	.complete_args = "list blocklist",
	.flags = CMD_NEEDS_CONFIG,
	.run = run,
};
