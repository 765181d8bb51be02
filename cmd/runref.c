/* Run references and run summaries for the everyday commands: opening the api,
 * reporting a failed lookup (an ambiguous prefix lists the runs it matches), the one
 * mapping from a finished run to pilot(1)'s exit status (shared by submit --wait,
 * watch --exit-status and retry --wait, so that they all agree), the state and
 * duration cells of tables, and metric histories (show, metrics, watch). */
#include <string.h>

#include "runs.h"
#include "pilot/config.h"
#include "pilot/term.h"

static const char b32[] = "0123456789abcdefghjkmnpqrstvwxyz";

bool runref_prefix_cursor(const char *ref, char out[PILOT_ID_SIZE])
{
	size_t n = strlen(ref);
	if (n == 0 || n > PILOT_ID_LEN)
		return false;
	memcpy(out, ref, n + 1);
	if (n == 1) {
		out[0] = '\0';
		return true;
	}
	while (n > 1) {
		const char *p = strchr(b32, out[n - 1]);
		if (!p)
			return false;
		if (p[1]) {
			out[n - 1] = p[1];
			out[n] = '\0';
			return true;
		}
		n--;
	}
	return false;
}

static void list_candidates(struct pilot_api *api, const char *ref)
{
	char after[PILOT_ID_SIZE];
	if (!api || !runref_prefix_cursor(ref, after))
		return;
	struct pilot_run_filter f = { .after = after[0] ? after : NULL, .limit = 11 };
	struct pilot_run_list l = { 0 };
	if (pilot_api_list_runs(api, &f, &l) < 0) {
		pilot_error_clear();
		return;
	}
	int64_t now = pilot_now_ms();
	size_t shown = 0;
	for (size_t i = 0; i < l.n && pilot_str_has_prefix(l.items[i].id, ref); i++) {
		if (shown == 10) {
			fprintf(stderr, "  ...\n");
			break;
		}
		char state[64], age[16];
		run_state_cell(&l.items[i], state, sizeof(state));
		pilot_format_age(l.items[i].created_ms, now, age, sizeof(age));
		fprintf(stderr, "  %s  %-20s %-18s %s ago\n", l.items[i].id, l.items[i].name ? l.items[i].name : "",
			state, age);
		shown++;
	}
	if (shown)
		fprintf(stderr, "pilot: hint: give more characters of the id\n");
	pilot_run_list_clear(&l);
}

int runref_fail(struct pilot_ctx *ctx, struct pilot_api *api, const char *ref, int status)
{
	int code = pilot_error_code();
	if (code == PILOT_ENOTFOUND && ref) {
		/* After 'pilot login' the commands ask the server, while 'pilot run' keeps
		 * recording on this machine: say where we looked and where else to look. */
		const char *server = ctx->config ? pilot_config_get(ctx->config, "server", NULL) : NULL;
		cmd_fail(ctx, status);
		if (server && *server)
			fprintf(stderr, "pilot: hint: this asked the server '%s'; runs made with 'pilot run' are in "
					"this machine's local store: pilot --local %s %s\n", server, ctx->cmd->name, ref);
		return status;
	}
	if (code != PILOT_EAMBIGUOUS || !ref)
		return cmd_fail(ctx, status);
	cmd_errorf(ctx, "run prefix '%s' is ambiguous; it matches:", ref);
	list_candidates(api, ref);
	return status;
}

int runref_get(struct pilot_ctx *ctx, struct pilot_api *api, const char *ref, struct pilot_run *out, int status)
{
	if (pilot_api_get_run(api, ref, out) < 0)
		return runref_fail(ctx, api, ref, status);
	return 0;
}

int runs_open_api(struct pilot_ctx *ctx, struct pilot_api **api, int status)
{
	if (pilot_api_open_from_config(ctx->config, api) < 0)
		return cmd_fail(ctx, status);
	return 0;
}

int runs_open_run(struct pilot_ctx *ctx, const char *ref, struct pilot_api **api, struct pilot_run *out)
{
	int st = runs_open_api(ctx, api, EXIT_FAIL);
	if (!st)
		st = runref_get(ctx, *api, ref, out, EXIT_FAIL);
	return st;
}

int run_exit_status(const struct pilot_run *r)
{
	switch (r->state) {
	case PILOT_RUN_SUCCEEDED:
		return EXIT_OK;
	case PILOT_RUN_CANCELED:
		return EXIT_CANCELED;
	case PILOT_RUN_SKIPPED:
		return EXIT_PILOT;
	case PILOT_RUN_FAILED:
		break;
	default:
		return -1;
	}
	switch (r->reason) {
	case PILOT_REASON_EXIT_CODE:
		/* A job that exited 0 but is failed cannot happen; say pilot failed rather
		 * than report success. */
		return r->has_exit_code && r->exit_code > 0 && r->exit_code < 256 ? r->exit_code : EXIT_PILOT;
	case PILOT_REASON_TIMEOUT:
		return EXIT_JOB_TIMEOUT;
	case PILOT_REASON_CANCELED:
		return EXIT_CANCELED;
	default:
		return EXIT_PILOT;
	}
}

void run_state_cell(const struct pilot_run *r, char *out, size_t n)
{
	if (r->state == PILOT_RUN_FAILED && r->reason == PILOT_REASON_EXIT_CODE && r->has_exit_code)
		snprintf(out, n, "failed (exit %d)", r->exit_code);
	else if ((r->state == PILOT_RUN_FAILED || r->state == PILOT_RUN_SKIPPED) && r->reason)
		snprintf(out, n, "%s (%s)", pilot_run_state_name(r->state), pilot_reason_name(r->reason));
	else if (r->state == PILOT_RUN_WAITING && r->needs_left)
		snprintf(out, n, "waiting (for %d run%s)", r->needs_left, r->needs_left == 1 ? "" : "s");
	else if (r->state == PILOT_RUN_WAITING && r->slot_wait)
		snprintf(out, n, "waiting (for a slot)");
	else
		snprintf(out, n, "%s", pilot_run_state_name(r->state));
}

void run_duration_cell(const struct pilot_run *r, int64_t now, char *out, size_t n)
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

void run_outcome_line(const struct pilot_run *r, char *out, size_t n)
{
	const char *state = pilot_run_state_name(r->state);
	const char *reason = r->reason ? pilot_reason_name(r->reason) : "";
	const char *msg = r->message && *r->message ? r->message : "";
	if (r->state == PILOT_RUN_SUCCEEDED) {
		snprintf(out, n, "succeeded");
		return;
	}
	if (r->state == PILOT_RUN_FAILED && r->reason == PILOT_REASON_EXIT_CODE && r->has_exit_code) {
		snprintf(out, n, "failed: exit code %d", r->exit_code);
		return;
	}
	/* "failed: timeout (attempt 1 timed out after 2s)", "canceled (canceled by bob)":
	 * the reason when it adds to the state, the message when it adds to both. */
	bool show_reason = *reason && strcmp(reason, state);
	bool show_msg = *msg && strcmp(msg, reason) && strcmp(msg, state);
	snprintf(out, n, "%s%s%s%s%s%s", state, show_reason ? ": " : "", show_reason ? reason : "", show_msg ? " (" : "",
		 show_msg ? msg : "", show_msg ? ")" : "");
}

static void add_value(struct metric_series **s, size_t *ns, const char *name, double v)
{
	size_t i = 0;
	while (i < *ns && strcmp((*s)[i].name, name))
		i++;
	if (i == *ns) {
		*s = pilot_xrealloc(*s, (*ns + 1) * sizeof(**s));
		(*s)[i] = (struct metric_series){ .name = pilot_xstrdup(name) };
		(*ns)++;
	}
	(*s)[i].v = pilot_xrealloc((*s)[i].v, ((*s)[i].n + 1) * sizeof(double));
	(*s)[i].v[(*s)[i].n++] = v;
}

void metric_series_build(const struct pilot_metric_list *l, int attempt, struct metric_series **out, size_t *n)
{
	*out = NULL;
	*n = 0;
	for (size_t i = 0; i < l->n; i++) {
		if (attempt && l->items[i].attempt != attempt)
			continue;
		json_t *j = json_loads(l->items[i].json ? l->items[i].json : "", 0, NULL);
		const char *key;
		json_t *val;
		if (json_is_object(j))
			json_object_foreach(j, key, val)
				if (json_is_number(val))
					add_value(out, n, key, json_number_value(val));
		json_decref(j);
	}
}

void metric_series_free(struct metric_series *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(s[i].name);
		free(s[i].v);
	}
	free(s);
}

void metric_format(double v, char *out, size_t n)
{
	if (v > -1e15 && v < 1e15 && v == (double)(long long)v)
		snprintf(out, n, "%lld", (long long)v);
	else
		snprintf(out, n, "%.6g", v);
}

bool runs_is_group(const char *ref)
{
	return ref[0] == 'x' || ref[0] == 'p';
}
