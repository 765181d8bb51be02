/* pilot agents: the agents the server (or the local store) knows, with their labels,
 * state, the runs they hold and when they were last seen; show, drain, resume, sleep,
 * wake, shutdown and forget one; give them sleep schedules; pilot agents blocklist: the agents blocked from runs
 * of a name, and clearing them. */
#include <string.h>

#include <jansson.h>

#include "pilot.h"
#include "pilot/api.h"
#include "pilot/term.h"

struct opts {
	const char *output;
	bool all;
	bool clear;
	bool now;
	const char *sleep;
	const char *tz;
};

static const struct pilot_opt options[] = {
	{ OPT_STRING, 'o', "output", "FORMAT", "table (default) or json", offsetof(struct opts, output), "table json" },
	{ OPT_FLAG, 'a', "all", NULL, "also list the agents that stopped (offline)", offsetof(struct opts, all), NULL },
	{ OPT_FLAG, 0, "clear", NULL, "blocklist: clear the entries of AGENT (and NAME), or every entry; schedule: "
	  "remove the sleep schedule", offsetof(struct opts, clear), NULL },
	{ OPT_FLAG, 0, "now", NULL, "drain, sleep, shutdown: also stop the running jobs and requeue their runs",
	  offsetof(struct opts, now), NULL },
	{ OPT_STRING, 0, "sleep", "WINDOWS", "schedule: when the agent sleeps, e.g. 'mon-fri 19:00-07:00; sat,sun 00:00-24:00'",
	  offsetof(struct opts, sleep), NULL },
	{ OPT_STRING, 0, "tz", "ZONE", "schedule: the windows' time zone (IANA, e.g. Europe/Berlin; default UTC)",
	  offsetof(struct opts, tz), NULL },
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

static void print_agent(const struct pilot_agent_info *a)
{
	int64_t now = pilot_now_ms();
	_cleanup_buf_ struct pilot_buf labels = PILOT_BUF_INIT, runs = PILOT_BUF_INIT;
	join_labels(&a->labels, &labels);
	join_runs(a, &runs);
	char seen[16], first[16];
	pilot_format_age(a->last_seen_ms, now, seen, sizeof(seen));
	pilot_format_age(a->first_seen_ms, now, first, sizeof(first));
	printf("agent    %s\n", a->name);
	printf("state    %s\n", pilot_agent_state_name(a->state));
	if (a->control) {
		char when[16];
		pilot_format_age(a->control_ms, now, when, sizeof(when));
		printf("told     %s, %s ago by %s\n", pilot_agent_control_name(a->control), when,
		       a->control_by ? a->control_by : "?");
	}
	if (a->sleep_schedule) {
		printf("sleeps   %s (%s)", a->sleep_schedule, a->sleep_tz ? a->sleep_tz : "UTC");
		if (a->sleep_next_ms) {
			char next[32];
			pilot_format_time(a->sleep_next_ms, next);
			printf(", next change %s", next);
		}
		putchar('\n');
	}
	printf("runs     %s\n", pilot_buf_str(&runs));
	printf("slots    %zu/%d\n", a->nruns, a->capacity);
	printf("labels   %s\n", pilot_buf_str(&labels));
	printf("version  %s\n", a->version ? a->version : "-");
	printf("seen     %s ago (first %s ago)\n", seen, first);
}

/* What each action does, for its confirmation. */
static const char *done_note(const char *action, bool now)
{
	static const struct {
		const char *action, *lazy, *now;
	} notes[] = {
		{ "drain", "takes no more runs; its running jobs finish", "takes no more runs; its running jobs are stopped and their runs requeued" },
		{ "sleep", "is asleep: it takes no runs until woken; its running jobs finish", "is asleep: its running jobs are stopped and their runs requeued" },
		{ "shutdown", "stops once its running jobs end", "stops now: its running jobs are stopped and their runs requeued" },
		{ "resume", "takes runs again", NULL },
		{ "wake", "takes runs again", NULL },
	};
	for (size_t i = 0; i < ARRAY_SIZE(notes); i++)
		if (!strcmp(notes[i].action, action))
			return now && notes[i].now ? notes[i].now : notes[i].lazy;
	return "";
}

/* pilot agents ACTION NAME... */
static int control(struct pilot_ctx *ctx, struct pilot_api *api, const struct opts *o, bool json, const char *action,
		   int argc, char **argv)
{
	int status = EXIT_OK;
	json_t *all = json ? json_array() : NULL;
	for (int i = 0; i < argc; i++) {
		struct pilot_agent_info a = { 0 };
		if (pilot_api_control_agent(api, argv[i], action, o->now, NULL, &a) < 0) {
			status = cmd_fail(ctx, EXIT_FAIL);
			continue;
		}
		if (json && a.name)
			json_array_append_new(all, pilot_agent_info_to_json(&a));
		else if (!json && !strcmp(action, "forget"))
			printf("agent %s forgotten\n", argv[i]);
		else if (!json)
			printf("agent %s %s (%s)\n", a.name, done_note(action, o->now), pilot_agent_state_name(a.state));
		pilot_agent_info_clear(&a);
	}
	if (json)
		print_json(json_pack("{s:o}", "agents", all));
	return status;
}

/* pilot agents schedule AGENT... --sleep WINDOWS [--tz ZONE] | --clear */
static int schedule(struct pilot_ctx *ctx, struct pilot_api *api, const struct opts *o, bool json, int argc, char **argv)
{
	int status = EXIT_OK;
	json_t *all = json ? json_array() : NULL;
	for (int i = 0; i < argc; i++) {
		struct pilot_agent_info a = { 0 };
		if (pilot_api_schedule_agent(api, argv[i], o->clear ? NULL : o->sleep, o->clear ? NULL : o->tz, &a) < 0) {
			status = cmd_fail(ctx, EXIT_FAIL);
			continue;
		}
		if (json)
			json_array_append_new(all, pilot_agent_info_to_json(&a));
		else if (!a.sleep_schedule)
			printf("agent %s has no sleep schedule (%s)\n", a.name, pilot_agent_state_name(a.state));
		else
			printf("agent %s sleeps %s (%s) (%s)\n", a.name, a.sleep_schedule, a.sleep_tz ? a.sleep_tz : "UTC",
			       pilot_agent_state_name(a.state));
		pilot_agent_info_clear(&a);
	}
	if (json)
		print_json(json_pack("{s:o}", "agents", all));
	return status;
}

static bool is_action(const char *w)
{
	static const char *const actions[] = { "drain", "resume", "sleep", "wake", "shutdown", "forget" };
	for (size_t i = 0; i < ARRAY_SIZE(actions); i++)
		if (!strcmp(w, actions[i]))
			return true;
	return false;
}

static int run(struct pilot_ctx *ctx, void *optsp, int argc, char **argv)
{
	struct opts *o = optsp;
	bool json = false;
	if (o->output && !(json = !strcmp(o->output, "json")) && strcmp(o->output, "table"))
		return cmd_usage_error(ctx, "unknown output format '%s' (expected table or json)", o->output);
	const char *sub = argc > 0 ? argv[0] : "list";
	bool block = !strcmp(sub, "blocklist"), show = !strcmp(sub, "show"), act = is_action(sub),
	     sched = !strcmp(sub, "schedule");
	if (!block && !show && !act && !sched && strcmp(sub, "list")) {
		static const char *const subs[] = { "list", "show", "drain", "resume", "sleep", "wake", "shutdown", "forget",
						    "schedule", "blocklist" };
		const char *s = pilot_suggest(sub, subs, ARRAY_SIZE(subs));
		return cmd_usage_error(ctx, "unknown subcommand '%s'%s%s%s (expected list, show, drain, resume, sleep, "
					    "wake, shutdown, forget, schedule or blocklist)", sub, s ? " (did you mean '" : "",
				       s ? s : "", s ? "'?)" : "");
	}
	if (o->clear && !block && !sched)
		return cmd_usage_error(ctx, "--clear is for 'pilot agents blocklist' and 'pilot agents schedule'");
	if ((o->sleep || o->tz) && !sched)
		return cmd_usage_error(ctx, "--sleep and --tz are for 'pilot agents schedule'");
	if (sched && !o->clear == !o->sleep)
		return cmd_usage_error(ctx, "'pilot agents schedule' needs --sleep WINDOWS (and --tz ZONE) or --clear");
	if (sched && o->clear && o->tz)
		return cmd_usage_error(ctx, "--tz goes with --sleep, not --clear");
	if (o->now && strcmp(sub, "drain") && strcmp(sub, "sleep") && strcmp(sub, "shutdown"))
		return cmd_usage_error(ctx, "--now is for 'pilot agents drain', 'sleep' and 'shutdown'");
	if (!strcmp(sub, "list") && argc > 1)
		return cmd_usage_error(ctx, "'pilot agents list' takes no arguments");
	if ((show || act || sched) && argc < 2)
		return cmd_usage_error(ctx, "'pilot agents %s' needs the name of an agent", sub);
	if (show && argc > 2)
		return cmd_usage_error(ctx, "'pilot agents show' takes one agent");
	if (block && argc > 3)
		return cmd_usage_error(ctx, "'pilot agents blocklist' takes at most AGENT and NAME");

	_cleanup_api_ struct pilot_api *api = NULL;
	if (pilot_api_open_from_config(ctx->config, &api) < 0)
		return cmd_fail(ctx, EXIT_FAIL);
	if (block)
		return blocklist(ctx, api, o, json, argc - 1, argv + 1);
	if (act)
		return control(ctx, api, o, json, sub, argc - 1, argv + 1);
	if (sched)
		return schedule(ctx, api, o, json, argc - 1, argv + 1);
	if (show) {
		struct pilot_agent_info a = { 0 };
		if (pilot_api_get_agent(api, argv[1], &a) < 0)
			return cmd_fail(ctx, EXIT_FAIL);
		if (json)
			print_json(pilot_agent_info_to_json(&a));
		else
			print_agent(&a);
		pilot_agent_info_clear(&a);
		return EXIT_OK;
	}
	struct pilot_agent_list l = { 0 };
	if (pilot_api_list_agents(api, &l) < 0)
		return cmd_fail(ctx, EXIT_FAIL);
	/* Keep what is shown: offline agents only with --all. */
	size_t n = 0;
	for (size_t i = 0; i < l.n; i++) {
		if (!o->all && l.items[i].state == PILOT_AGENT_OFFLINE) {
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
	.summary = "list, inspect and control the agents; the blocklist",
	.args = "[list | show AGENT | drain|resume|sleep|wake|shutdown|forget AGENT... | schedule AGENT... | blocklist "
		"[AGENT [NAME]]]",
	.description =
		"Columns: NAME, STATE (idle, busy, draining, drained, asleep, lost: not seen for\n"
		"a lease TTL, offline: stopped, starting: its machine is being launched), RUNS\n"
		"(the runs it holds live attempts of), LABELS, SLOTS (runs held / capacity),\n"
		"VERSION and LAST SEEN. With a server configured the agents are the server's;\n"
		"otherwise those of the local store.\n"
		"'show AGENT' prints one agent. 'drain' stops an agent taking runs (its running\n"
		"jobs finish; with --now they are stopped and their runs requeued) until 'resume';\n"
		"'sleep' and 'wake' do the same, shown as asleep; 'shutdown' makes the agent exit\n"
		"once its jobs end (--now: at once, requeueing them); 'forget' removes an offline\n"
		"or lost agent that runs nothing. Each takes one or more agents.\n"
		"'schedule AGENT... --sleep WINDOWS [--tz ZONE]' gives agents a sleep schedule:\n"
		"weekly windows ('mon-fri 19:00-07:00; sat,sun 00:00-24:00') in a time zone\n"
		"(default UTC) at whose start the server puts the agent to sleep and at whose\n"
		"end it wakes it; --clear removes it.\n"
		"'pilot agents blocklist' lists, per agent and run name, the failures in a row\n"
		"counted and whether the agent is blocked from runs of that name (after 3, the\n"
		"server's PILOT_BLOCKLIST_AFTER); --clear AGENT [NAME] clears entries (without\n"
		"AGENT, all of them), so the agent takes such runs again.",
	.opts = options,
	.opts_size = sizeof(struct opts),
	.min_args = 0,
	.max_args = -1,
	.complete_args = "list show drain resume sleep wake shutdown forget schedule blocklist",
	.flags = CMD_NEEDS_CONFIG,
	.run = run,
};
