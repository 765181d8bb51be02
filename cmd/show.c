/* pilot show RUN: one run in full — what it runs (image, command, params), its state
 * and reason, every attempt, the last value of each metric, its artifacts and the most
 * recent events — or all of it as JSON or YAML. */
#include <string.h>

#include <jansson.h>

#include "runs.h"
#include "pilot/term.h"

struct opts {
	const char *output;
	int64_t events;
};

static const struct pilot_opt options[] = {
	{ OPT_STRING, 'o', "output", "FORMAT", "text (default), json or yaml", offsetof(struct opts, output),
	  "text json yaml" },
	{ OPT_INT, 0, "events", "N", "show the last N events (default: 10 as text, all as json)",
	  offsetof(struct opts, events), NULL },
	OPT_END_ROW,
};

static void when(int64_t ms, int64_t now, char *out, size_t n)
{
	if (!ms) {
		snprintf(out, n, "-");
		return;
	}
	char t[32], age[16];
	pilot_format_time(ms, t);
	pilot_format_age(ms, now, age, sizeof(age));
	snprintf(out, n, "%s (%s ago)", t, age);
}

static void span(int64_t from, int64_t to, char *out, size_t n)
{
	if (!from || !to || to < from) {
		snprintf(out, n, "-");
		return;
	}
	int64_t d = to - from;
	if (d >= 1000)
		d -= d % 1000;
	pilot_format_duration(d, out, n);
}

static void print_kvs(const char *label, const struct pilot_kvs *kvs, bool values)
{
	if (!kvs->n)
		return;
	printf("%-10s", label);
	for (size_t i = 0; i < kvs->n; i++)
		if (values)
			printf(" %s=%s", kvs->items[i].key, kvs->items[i].value ? kvs->items[i].value : "");
		else
			printf(" %s", kvs->items[i].key);
	putchar('\n');
}

static void print_state(const struct pilot_run *r)
{
	printf("%-10s %s", "state", pilot_run_state_name(r->state));
	if (r->reason)
		printf(" (%s)", pilot_reason_name(r->reason));
	if (r->reason == PILOT_REASON_EXIT_CODE && r->has_exit_code)
		printf(", exit code %d", r->exit_code);
	if (r->state == PILOT_RUN_WAITING && r->not_before_ms) {
		char t[32];
		pilot_format_time(r->not_before_ms, t);
		printf(", not before %s", t);
	}
	putchar('\n');
	if (r->message && *r->message)
		printf("%-10s %s\n", "", r->message);
}

/* An argv as a shell would read it back: words with anything special single-quoted. */
static void put_word(struct pilot_buf *b, const char *w)
{
	bool plain = *w != '\0';
	for (const char *p = w; *p && plain; p++)
		plain = strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-./=:,@%+", *p) != NULL;
	if (plain) {
		pilot_buf_puts(b, w);
		return;
	}
	pilot_buf_putc(b, '\'');
	for (const char *p = w; *p; p++)
		if (*p == '\'')
			pilot_buf_puts(b, "'\\''");
		else
			pilot_buf_putc(b, *p);
	pilot_buf_putc(b, '\'');
}

/* image and command from the spec's normal form (pilot_spec_to_json). */
static void print_spec(const struct pilot_run *r)
{
	json_t *spec = r->spec_json ? json_loads(r->spec_json, 0, NULL) : NULL;
	if (!json_is_object(spec)) {
		json_decref(spec);
		return;
	}
	const char *image = json_string_value(json_object_get(spec, "image"));
	printf("%-10s %s\n", "image", image ? image : "(none: runs on the host)");
	json_t *cmd = json_object_get(spec, "command");
	_cleanup_buf_ struct pilot_buf b = PILOT_BUF_INIT;
	if (json_is_true(json_object_get(spec, "shell")) && json_array_size(cmd) == 3) {
		pilot_buf_puts(&b, json_string_value(json_array_get(cmd, 2)) ? json_string_value(json_array_get(cmd, 2)) : "");
	} else {
		size_t i;
		json_t *w;
		json_array_foreach(cmd, i, w) {
			if (i)
				pilot_buf_putc(&b, ' ');
			put_word(&b, json_string_value(w) ? json_string_value(w) : "");
		}
	}
	/* A multi-line script shows its first line. */
	const char *text = pilot_buf_str(&b);
	const char *nl = strchr(text, '\n');
	if (b.len)
		printf("%-10s %.*s%s\n", "command", nl ? (int)(nl - text) : (int)b.len, text, nl ? " ..." : "");
	else
		printf("%-10s %s\n", "command", "(the image's default)");
	json_decref(spec);
}

/* "lr=0.1 epochs=3" from a JSON object of overrides. */
static void print_overrides(const char *label, const char *json)
{
	json_t *o = json ? json_loads(json, 0, NULL) : NULL;
	if (json_is_object(o) && json_object_size(o)) {
		printf("%-10s", label);
		const char *k;
		json_t *v;
		json_object_foreach(o, k, v)
			printf(" %s=%s", k, json_string_value(v) ? json_string_value(v) : "?");
		putchar('\n');
	}
	json_decref(o);
}

static void print_metrics(const struct pilot_run *r, const struct pilot_metric_list *ml)
{
	struct metric_series *s;
	size_t n;
	metric_series_build(ml, 0, &s, &n);
	if (n) {
		printf("%-10s", "metrics");
		for (size_t i = 0; i < n; i++) {
			char v[32];
			metric_format(s[i].v[s[i].n - 1], v, sizeof(v));
			printf("%s %s %s", i ? "," : "", s[i].name, v);
		}
		printf("  (last values of attempt %d; pilot metrics %s)\n", ml->n ? ml->items[0].attempt : 0, r->id);
	}
	metric_series_free(s, n);
}

#define SHOW_ARTIFACTS 10

static void print_artifacts(const struct pilot_run *r, const struct pilot_artifact_list *al)
{
	if (!al->n)
		return;
	static const char *const h[] = { "PATH", "SIZE", "ATTEMPT" };
	struct pilot_table *t = pilot_table_new(ARRAY_SIZE(h), h);
	size_t shown = 0, total = 0;
	for (size_t i = 0; i < al->n; i++) {
		/* The latest attempt's copy of each path (the list is by attempt, then path). */
		bool newer = false;
		for (size_t k = i + 1; k < al->n; k++)
			newer = newer || !strcmp(al->items[k].path, al->items[i].path);
		if (newer)
			continue;
		total++;
		if (shown == SHOW_ARTIFACTS)
			continue;
		char size[32], att[16];
		pilot_format_size(al->items[i].size, size, sizeof(size));
		snprintf(att, sizeof(att), "%d", al->items[i].attempt);
		const char *cells[] = { al->items[i].path, size, att };
		pilot_table_add(t, cells);
		shown++;
	}
	_cleanup_buf_ struct pilot_buf out = PILOT_BUF_INIT;
	pilot_table_render(t, 0, &out);
	pilot_table_free(t);
	printf("\nartifacts:\n");
	const char *p = pilot_buf_str(&out);
	while (*p) {
		const char *e = strchr(p, '\n');
		size_t n = e ? (size_t)(e - p + 1) : strlen(p);
		printf("  %.*s", (int)n, p);
		p += n;
	}
	if (total > shown)
		printf("  ... %zu more: pilot artifacts %s\n", total - shown, r->id);
}

static void print_text(const struct pilot_run *r, const struct pilot_event_list *ev, const struct pilot_metric_list *ml,
		       const struct pilot_artifact_list *al)
{
	int64_t now = pilot_now_ms();
	char buf[96], d[32];
	printf("%-10s %s\n", "run", r->id);
	printf("%-10s %s\n", "name", r->name ? r->name : "");
	print_spec(r);
	print_overrides("params", r->params_json);
	print_overrides("env", r->env_json);
	print_state(r);
	when(r->created_ms, now, buf, sizeof(buf));
	printf("%-10s %s%s%s\n", "created", buf, r->submitter ? " by " : "", r->submitter ? r->submitter : "");
	if (r->started_ms) {
		when(r->started_ms, now, buf, sizeof(buf));
		printf("%-10s %s\n", "started", buf);
	}
	if (r->finished_ms) {
		when(r->finished_ms, now, buf, sizeof(buf));
		span(r->started_ms, r->finished_ms, d, sizeof(d));
		printf("%-10s %s, ran %s\n", "finished", buf, d);
	}
	if (r->retry_of)
		printf("%-10s %s\n", "retry of", r->retry_of);
	for (size_t i = 0; i < r->nneeds; i++) {
		_cleanup_free_ char *states = pilot_run_need_states_format(r->needs[i].states);
		printf("%-10s %s (%s)%s%s\n", i ? "" : "after", r->needs[i].run, states, r->needs[i].name[0] ? "  " : "",
		       r->needs[i].name);
	}
	if (r->needs_left && r->state == PILOT_RUN_WAITING)
		printf("%-10s %d of them still to end\n", "", r->needs_left);
	if (r->array_id[0] == 'p')
		printf("%-10s %s, job %s\n", "pipeline", r->array_id, r->name ? r->name : "");
	else if (r->array_id[0])
		printf("%-10s %s, index %lld\n", "array", r->array_id, (long long)r->array_index);
	if (r->concurrency_group)
		printf("%-10s group %s, at most %d at once%s\n", "concurrency", r->concurrency_group, r->concurrency_max,
		       r->slot_wait && r->state == PILOT_RUN_WAITING ? " (waiting for a slot)" : "");
	if (r->bundle_sha256[0])
		printf("%-10s sha256:%s\n", "bundle", r->bundle_sha256);
	if (r->priority)
		printf("%-10s %d\n", "priority", r->priority);
	print_kvs("requires", &r->requires, true);
	print_kvs("secrets", &r->secrets, false);
	if (r->start_timeout_ms) {
		pilot_format_duration(r->start_timeout_ms, d, sizeof(d));
		printf("%-10s %s queued with no agent that could take it\n", "fails if", d);
	}
	if (r->timeout_ms) {
		pilot_format_duration(r->timeout_ms, d, sizeof(d));
		printf("%-10s %s\n", "timeout", d);
	}
	if (r->retry.max_attempts > 1) {
		printf("%-10s up to %d attempts on", "retry", r->retry.max_attempts);
		if (r->retry.on & PILOT_RETRY_ON_EXIT_CODE)
			printf(" exit_code");
		if (r->retry.on & PILOT_RETRY_ON_TIMEOUT)
			printf(" timeout");
		if (!r->retry.on)
			printf(" nothing");
		putchar('\n');
	}
	if (r->lost_count)
		printf("%-10s %d attempt%s lost\n", "lost", r->lost_count, r->lost_count == 1 ? "" : "s");
	if (r->cancel_requested && r->state == PILOT_RUN_CANCELING) {
		char g[32] = "the agent's own";
		if (r->cancel_grace_ms == 0)
			snprintf(g, sizeof(g), "none, kill at once");
		else if (r->cancel_grace_ms > 0)
			pilot_format_duration(r->cancel_grace_ms, g, sizeof(g));
		printf("%-10s requested (grace: %s); waiting for the agent\n", "cancel", g);
	}
	print_metrics(r, ml);

	if (r->nattempts) {
		static const char *const h[] = { "#", "ID", "AGENT", "STATE", "EXIT", "STARTED", "DURATION", "LOG" };
		struct pilot_table *t = pilot_table_new(ARRAY_SIZE(h), h);
		for (size_t i = 0; i < r->nattempts; i++) {
			const struct pilot_attempt *a = &r->attempts[i];
			char num[16], state[48], code[16], age[16], dur[32], log[32];
			snprintf(num, sizeof(num), "%d", a->number);
			if (a->reason && a->state != PILOT_ATTEMPT_SUCCEEDED && a->reason != PILOT_REASON_EXIT_CODE)
				snprintf(state, sizeof(state), "%s (%s)", pilot_attempt_state_name(a->state),
					 pilot_reason_name(a->reason));
			else
				snprintf(state, sizeof(state), "%s", pilot_attempt_state_name(a->state));
			if (a->has_exit_code)
				snprintf(code, sizeof(code), "%d", a->exit_code);
			else
				snprintf(code, sizeof(code), "-");
			pilot_format_age(a->started_ms, now, age, sizeof(age));
			if (age[0] != '-')
				snprintf(age + strlen(age), sizeof(age) - strlen(age), " ago");
			span(a->started_ms, a->finished_ms ? a->finished_ms : now, dur, sizeof(dur));
			pilot_format_size((uint64_t)a->log_bytes, log, sizeof(log));
			const char *cells[] = { num, a->id, a->agent ? a->agent : "-", state, code, age, dur, log };
			pilot_table_add(t, cells);
		}
		_cleanup_buf_ struct pilot_buf out = PILOT_BUF_INIT;
		pilot_table_render(t, 0, &out);
		pilot_table_free(t);
		printf("\nattempts:\n");
		/* Indent every line of the table. */
		const char *p = pilot_buf_str(&out);
		while (*p) {
			const char *e = strchr(p, '\n');
			size_t n = e ? (size_t)(e - p + 1) : strlen(p);
			printf("  %.*s", (int)n, p);
			p += n;
		}
		/* The machines a pool launched for them, and what they cost is in pilot status. */
		for (size_t i = 0; i < r->nattempts; i++) {
			const struct pilot_attempt *a = &r->attempts[i];
			if (a->instance_pool)
				printf("  attempt %d ran on instance %s of pool %s\n", a->number,
				       a->instance_id ? a->instance_id : "(never launched)", a->instance_pool);
		}
	}
	print_artifacts(r, al);
	if (ev && ev->n) {
		printf("\nevents:\n");
		for (size_t i = 0; i < ev->n; i++) {
			const struct pilot_event *e = &ev->items[i];
			char t[32];
			pilot_format_time(e->time_ms, t);
			printf("  %s  %-16s %s\n", t, e->type ? e->type : "", e->message ? e->message : "");
		}
	}
}

/* The last n events of the run (events are read oldest first, so page to the end). */
static int recent_events(struct pilot_api *api, const char *id, size_t n, struct pilot_event_list *out)
{
	struct pilot_event_list all = { 0 };
	struct pilot_event_filter f = { .run = id, .limit = 1000 };
	for (;;) {
		struct pilot_event_list page = { 0 };
		int r = pilot_api_list_events(api, &f, 0, &page);
		if (r < 0) {
			pilot_event_list_clear(&all);
			return r;
		}
		all.items = pilot_xrealloc(all.items, (all.n + page.n + 1) * sizeof(*all.items));
		memcpy(all.items + all.n, page.items, page.n * sizeof(*page.items));
		all.n += page.n;
		all.last_seq = page.last_seq;
		bool more = page.n == f.limit;
		free(page.items);
		if (!more)
			break;
		f.after_seq = page.last_seq;
	}
	if (all.n > n) {
		size_t drop = all.n - n;
		for (size_t i = 0; i < drop; i++)
			pilot_event_clear(&all.items[i]);
		memmove(all.items, all.items + drop, n * sizeof(*all.items));
		all.n = n;
	}
	*out = all;
	return 0;
}

static int cmp_by_index(const void *a, const void *b)
{
	const struct pilot_run *x = a, *y = b;
	if (x->array_index != y->array_index)
		return x->array_index < y->array_index ? -1 : 1;
	return strcmp(x->id, y->id);
}

/* The jobs of a pipeline: the latest run of each (all sorted by index), with the names of
 * the jobs it waits for (read from each run) and its depth (0 for a job needing
 * none). */
struct job_row {
	const struct pilot_run *run;
	char *needs; /* "prepare, train" */
	json_t *needs_json;
	int depth;
};

static int pipeline_jobs(struct pilot_api *api, const struct pilot_run_list *all, struct job_row **out, size_t *n)
{
	*out = pilot_xcalloc(all->n + 1, sizeof(**out));
	*n = 0;
	for (size_t i = 0; i < all->n; i++) {
		if (i + 1 < all->n && all->items[i + 1].array_index == all->items[i].array_index)
			continue; /* a newer run of the same job follows */
		struct job_row *row = &(*out)[(*n)++];
		struct pilot_run full = { 0 };
		row->run = &all->items[i];
		row->needs_json = json_array();
		if (pilot_api_get_run(api, all->items[i].id, &full) < 0)
			return -1;
		_cleanup_buf_ struct pilot_buf b = PILOT_BUF_INIT;
		for (size_t k = 0; k < full.nneeds; k++) {
			const struct pilot_run *need = NULL;
			for (size_t m = 0; m < all->n && !need; m++)
				if (!strcmp(all->items[m].id, full.needs[k].run))
					need = &all->items[m];
			const char *name = need ? need->name : full.needs[k].run; /* a run outside */
			pilot_buf_printf(&b, "%s%s", b.len ? ", " : "", name);
			json_array_append_new(row->needs_json, json_string(name));
			for (size_t m = 0; need && m + 1 < *n; m++)
				if ((*out)[m].run->array_index == need->array_index && (*out)[m].depth + 1 > row->depth)
					row->depth = (*out)[m].depth + 1;
		}
		row->needs = pilot_xstrdup(pilot_buf_str(&b));
		pilot_run_clear(&full);
	}
	return 0;
}

static void job_rows_free(struct job_row *rows, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(rows[i].needs);
		json_decref(rows[i].needs_json);
	}
	free(rows);
}

/* A pipeline's jobs as a tree: each under the jobs it needs, deeper as the chain goes. */
static void print_pipeline_jobs(const struct job_row *rows, size_t n, int64_t now)
{
	static const char *const headers[] = { "JOB", "RUN", "STATE", "ATTEMPT", "DURATION", "NEEDS" };
	struct pilot_table *t = pilot_table_new(ARRAY_SIZE(headers), headers);
	for (size_t i = 0; i < n; i++) {
		const struct pilot_run *r = rows[i].run;
		char state[64], attempt[16], dur[32];
		_cleanup_buf_ struct pilot_buf job = PILOT_BUF_INIT;
		for (int d = 1; d < rows[i].depth; d++)
			pilot_buf_puts(&job, "  ");
		pilot_buf_printf(&job, "%s%s", rows[i].depth ? "└ " : "", r->name ? r->name : "");
		run_state_cell(r, state, sizeof(state));
		snprintf(attempt, sizeof(attempt), r->attempt_count ? "%d" : "-", r->attempt_count);
		run_duration_cell(r, now, dur, sizeof(dur));
		const char *cells[] = { pilot_buf_str(&job), r->id, state, attempt, dur, *rows[i].needs ? rows[i].needs : "-" };
		pilot_table_add(t, cells);
	}
	_cleanup_buf_ struct pilot_buf out = PILOT_BUF_INIT;
	pilot_table_render(t, pilot_term_width(1), &out);
	fputs(pilot_buf_str(&out), stdout);
	pilot_table_free(t);
}

/* pilot show X...: the array, how many of its runs are in each state, and its runs by
 * index (a retried element: each of its runs). A pipeline (p...) shows its jobs: the
 * latest run of each, as a tree of what needs what. */
static int show_array(struct pilot_ctx *ctx, const char *ref, enum output_format fmt)
{
	enum { SHOWN = 200 };
	_cleanup_api_ struct pilot_api *api = NULL;
	struct pilot_array a = { 0 };
	struct pilot_run_list all = { 0 };
	int st = runs_open_api(ctx, &api, EXIT_FAIL);
	if (st)
		return st;
	if (pilot_api_get_array(api, ref, &a) < 0)
		return cmd_fail(ctx, EXIT_FAIL);
	struct pilot_run_filter f = { .array = a.id, .limit = 1000 };
	char after[PILOT_ID_SIZE] = "";
	do {
		struct pilot_run_list l = { 0 };
		f.after = after[0] ? after : NULL;
		if (pilot_api_list_runs(api, &f, &l) < 0) {
			pilot_run_list_clear(&all);
			pilot_array_clear(&a);
			return cmd_fail(ctx, EXIT_FAIL);
		}
		all.items = pilot_xrealloc(all.items, (all.n + l.n + 1) * sizeof(*all.items));
		memcpy(all.items + all.n, l.items, l.n * sizeof(*l.items));
		all.n += l.n;
		memcpy(after, l.next_after, PILOT_ID_SIZE);
		free(l.items);
	} while (after[0]);
	if (all.n)
		qsort(all.items, all.n, sizeof(*all.items), cmp_by_index);
	int counts[PILOT_RUN_NSTATES] = { 0 };
	for (size_t i = 0; i < all.n; i++)
		counts[all.items[i].state]++;
	bool pipeline = a.id[0] == 'p';
	struct job_row *jobs = NULL;
	size_t njobs = 0;
	if (pipeline && pipeline_jobs(api, &all, &jobs, &njobs) < 0) {
		job_rows_free(jobs, njobs);
		pilot_run_list_clear(&all);
		pilot_array_clear(&a);
		return cmd_fail(ctx, EXIT_FAIL);
	}
	if (fmt != OUTPUT_TEXT) {
		json_t *j = pilot_array_to_json(&a), *states = json_object();
		for (int i = 0; i < PILOT_RUN_NSTATES; i++)
			if (counts[i])
				json_object_set_new(states, pilot_run_state_name((enum pilot_run_state)i), json_integer(counts[i]));
		json_object_set_new(j, "states", states);
		json_object_del(j, "changed");
		if (pipeline) {
			json_t *ja = json_array();
			for (size_t i = 0; i < njobs; i++)
				json_array_append_new(ja, json_pack("{s:s,s:s,s:s,s:O}", "name", jobs[i].run->name,
								    "run", jobs[i].run->id, "state",
								    pilot_run_state_name(jobs[i].run->state), "needs",
								    jobs[i].needs_json));
			json_object_set_new(j, "jobs", ja);
			json_object_del(j, "throttle");
		}
		output_value(j, fmt);
	} else {
		int64_t now = pilot_now_ms();
		char buf[96];
		printf("%-10s %s\n", pipeline ? "pipeline" : "array", a.id);
		printf("%-10s %s\n", "name", a.name ? a.name : "");
		when(a.created_ms, now, buf, sizeof(buf));
		printf("%-10s %s%s%s\n", "created", buf, a.submitter ? " by " : "", a.submitter ? a.submitter : "");
		if (a.throttle)
			printf("%-10s at most %d at once\n", "throttle", a.throttle);
		if (a.max_failures)
			printf("%-10s the rest skipped once %d failed\n", "failures", a.max_failures);
		printf("%-10s %zu:", "runs", all.n);
		for (int i = 0, first = 1; i < PILOT_RUN_NSTATES; i++)
			if (counts[i]) {
				printf("%s %d %s", first ? "" : ",", counts[i], pilot_run_state_name((enum pilot_run_state)i));
				first = 0;
			}
		printf("\n\n");
		if (pipeline) {
			print_pipeline_jobs(jobs, njobs, now);
			goto done;
		}
		static const char *const headers[] = { "INDEX", "RUN", "STATE", "ATTEMPT", "AGENT", "DURATION" };
		struct pilot_table *t = pilot_table_new(ARRAY_SIZE(headers), headers);
		for (size_t i = 0; i < all.n && i < SHOWN; i++) {
			const struct pilot_run *r = &all.items[i];
			char index[24], state[64], attempt[16], dur[32];
			snprintf(index, sizeof(index), "%lld", (long long)r->array_index);
			run_state_cell(r, state, sizeof(state));
			snprintf(attempt, sizeof(attempt), r->attempt_count ? "%d" : "-", r->attempt_count);
			run_duration_cell(r, now, dur, sizeof(dur));
			const char *cells[] = { index, r->id, state, attempt, r->agent ? r->agent : "-", dur };
			pilot_table_add(t, cells);
		}
		_cleanup_buf_ struct pilot_buf out = PILOT_BUF_INIT;
		pilot_table_render(t, pilot_term_width(1), &out);
		fputs(pilot_buf_str(&out), stdout);
		pilot_table_free(t);
		if (all.n > SHOWN)
			printf("... %zu more: pilot list --array %s --all\n", all.n - SHOWN, a.id);
	}
done:
	job_rows_free(jobs, njobs);
	pilot_run_list_clear(&all);
	pilot_array_clear(&a);
	return EXIT_OK;
}

static int run(struct pilot_ctx *ctx, void *optsp, int argc, char **argv)
{
	struct opts *o = optsp;
	enum output_format fmt;
	(void)argc;

	int st = output_parse(ctx, o->output, "text", &fmt);
	if (st)
		return st;
	if (o->events < 0 || o->events > 1000000)
		return cmd_usage_error(ctx, "--events must be between 1 and 1000000");
	size_t nevents = o->events ? (size_t)o->events : fmt != OUTPUT_TEXT ? 1000000 : 10;
	if (runs_is_group(argv[0]))
		return show_array(ctx, argv[0], fmt);

	_cleanup_api_ struct pilot_api *api = NULL;
	struct pilot_run r = { 0 };
	if ((st = runs_open_run(ctx, argv[0], &api, &r)))
		return st;
	struct pilot_event_list ev = { 0 };
	struct pilot_metric_list ml = { 0 };
	struct pilot_artifact_list al = { 0 };
	if (recent_events(api, r.id, nevents, &ev) < 0 ||
	    (r.attempt_count && pilot_api_get_metrics(api, r.id, r.attempt_count, &ml) < 0) ||
	    (r.attempt_count && pilot_api_list_artifacts(api, r.id, 0, &al) < 0)) {
		st = cmd_fail(ctx, EXIT_FAIL);
		goto out;
	}
	if (fmt != OUTPUT_TEXT) {
		json_t *j = pilot_run_to_json(&r);
		/* The spec as a document rather than a string of JSON. */
		json_t *spec = r.spec_json ? json_loads(r.spec_json, 0, NULL) : NULL;
		if (spec)
			json_object_set_new(j, "spec", spec);
		json_t *last = json_object();
		struct metric_series *s;
		size_t n;
		metric_series_build(&ml, 0, &s, &n);
		for (size_t i = 0; i < n; i++) {
			double v = s[i].v[s[i].n - 1];
			bool whole = v > -1e15 && v < 1e15 && v == (double)(long long)v;
			json_object_set_new(last, s[i].name, whole ? json_integer((json_int_t)v) : json_real(v));
		}
		metric_series_free(s, n);
		json_object_set_new(j, "metrics", last);
		json_t *a = pilot_artifact_list_to_json(&al);
		json_object_set(j, "artifacts", json_object_get(a, "artifacts"));
		json_decref(a);
		json_t *e = pilot_event_list_to_json(&ev);
		json_object_set(j, "events", json_object_get(e, "events"));
		json_decref(e);
		output_value(j, fmt);
	} else {
		print_text(&r, &ev, &ml, &al);
	}
out:
	pilot_artifact_list_clear(&al);
	pilot_metric_list_clear(&ml);
	pilot_event_list_clear(&ev);
	pilot_run_clear(&r);
	return st;
}

const struct pilot_cmd cmd_show = {
	.name = "show",
	.summary = "show a run (its state, attempts and recent events), an array or a pipeline",
	.args = "RUN",
	.description =
		"RUN is a run id or a unique prefix of one. The text form shows what the run runs\n"
		"(image, command, params), its state with the reason it ended, every attempt, the\n"
		"last value of each metric, its artifacts and the last events. --output json or\n"
		"yaml prints the run with its spec, attempts, last metric values, artifacts and\n"
		"all its events (or the last --events N). Secret values are never shown, only\n"
		"their names. An array id (x..., from pilot submit --array) shows the array: how\n"
		"many of its runs are in each state, and its runs by index. A pipeline id (p...,\n"
		"from pilot submit of a spec with jobs:) shows its jobs as a tree, each under the\n"
		"jobs it needs, with the state of its latest run.",
	.opts = options,
	.opts_size = sizeof(struct opts),
	.min_args = 1,
	.max_args = 1,
	.flags = CMD_NEEDS_CONFIG,
	.run = run,
	.complete_args = "run",
};
