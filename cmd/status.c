/* pilot status: the state of the whole system at a glance — runs by state, how long the
 * oldest queued run has waited, the agents by state, and which pilot answers (the
 * server with its version, or the local store). */
#include <stdlib.h>
#include <string.h>

#include "runs.h"
#include "pilot/config.h"
#include "pilot/term.h"

struct opts {
	const char *output;
};

static const struct pilot_opt options[] = {
	{ OPT_STRING, 'o', "output", "FORMAT", "text (default), json or yaml", offsetof(struct opts, output),
	  "text json yaml" },
	OPT_END_ROW,
};

static void counts_line(const char *label, const struct pilot_status *s, const enum pilot_run_state *which, size_t n,
			const char *extra)
{
	printf("%-9s", label);
	for (size_t i = 0; i < n; i++)
		printf("%s %lld %s", i ? "," : "", (long long)s->counts[which[i]], pilot_run_state_name(which[i]));
	printf("%s\n", extra ? extra : "");
}

static int run(struct pilot_ctx *ctx, void *optsp, int argc, char **argv)
{
	struct opts *o = optsp;
	enum output_format fmt;
	(void)argc;
	(void)argv;
	int st = output_parse(ctx, o->output, "text", &fmt);
	if (st)
		return st;

	_cleanup_api_ struct pilot_api *api = NULL;
	if ((st = runs_open_api(ctx, &api, EXIT_FAIL)))
		return st;
	struct pilot_status s = { 0 };
	if (pilot_api_status(api, &s) < 0)
		return cmd_fail(ctx, EXIT_FAIL);

	const char *server = pilot_config_get(ctx->config, "server", NULL);
	bool remote = server && *server;
	_cleanup_free_ char *where = NULL;
	if (!remote) {
		const char *dd = pilot_config_get(ctx->config, "data_dir", NULL);
		const char *env = getenv("PILOT_DATA_DIR");
		where = dd && *dd ? pilot_xstrdup(dd) : env && *env ? pilot_xstrdup(env) : pilot_data_home();
	}
	if (fmt != OUTPUT_TEXT) {
		json_t *j = pilot_status_to_json(&s);
		json_object_set_new(j, "transport", json_string(remote ? "http" : "local"));
		json_object_set_new(j, "server", remote ? json_string(server) : json_null());
		json_object_set_new(j, "data_dir", remote ? json_null() : json_string(where));
		output_value(j, fmt);
		pilot_status_clear(&s);
		return EXIT_OK;
	}
	if (remote)
		printf("%-9s %s (pilot %s)\n", "server", server, s.version ? s.version : "?");
	else
		printf("%-9s local store in %s (no server; pilot %s)\n", "server", where, s.version ? s.version : "?");
	char extra[96] = "";
	if (s.oldest_queued_ms > 0) {
		char age[16];
		pilot_format_age(s.oldest_queued_ms, s.now_ms ? s.now_ms : pilot_now_ms(), age, sizeof(age));
		snprintf(extra, sizeof(extra), " (the oldest queued %s ago)", age);
	}
	static const enum pilot_run_state active[] = { PILOT_RUN_QUEUED, PILOT_RUN_WAITING, PILOT_RUN_RUNNING,
						       PILOT_RUN_CANCELING };
	static const enum pilot_run_state done[] = { PILOT_RUN_SUCCEEDED, PILOT_RUN_FAILED, PILOT_RUN_CANCELED,
						     PILOT_RUN_SKIPPED };
	counts_line("runs", &s, active, ARRAY_SIZE(active), extra);
	counts_line("finished", &s, done, ARRAY_SIZE(done), NULL);
	printf("%-9s %d idle, %d busy, %d lost", "agents", s.agents_idle, s.agents_busy, s.agents_lost);
	if (s.agents_paused)
		printf(", %d drained or asleep", s.agents_paused);
	putchar('\n');
	for (size_t i = 0; i < s.npools; i++) {
		const struct pilot_pool_status *p = &s.pools[i];
		printf("%-9s %s: %d running, %d launching", "pool", p->name, p->running, p->launching);
		if (p->terminating)
			printf(", %d terminating", p->terminating);
		printf(" (max %d); %lld launched, cost so far %.2f\n", p->max, (long long)p->launched_total, p->cost);
		if (p->failures) {
			char in[16] = "now";
			int64_t now = s.now_ms ? s.now_ms : pilot_now_ms();
			if (p->retry_at_ms > now)
				pilot_format_duration(p->retry_at_ms - now, in, sizeof(in));
			printf("%-9s   launches failing (%d in a row, next try in %s): %s\n", "", p->failures, in,
			       p->last_error ? p->last_error : "?");
		}
	}
	pilot_status_clear(&s);
	return EXIT_OK;
}

const struct pilot_cmd cmd_status = {
	.name = "status",
	.summary = "show runs by state, agents and the server at a glance",
	.description =
		"Prints which pilot answers (the configured server and its version, or the local\n"
		"store), the number of runs in each state with the age of the oldest queued run,\n"
		"the agents that are idle, busy or lost (not seen for one lease), and a server's\n"
		"pools of provisioned machines: instances, cost so far, launches failing.",
	.opts = options,
	.opts_size = sizeof(struct opts),
	.min_args = 0,
	.max_args = 0,
	.flags = CMD_NEEDS_CONFIG,
	.run = run,
};
