/* The model's plumbing: state and reason names, the run state machine's table, key/value
 * lists, and the destructors and copies of the structs in model.h. */
#include <string.h>

#include "pilot/model.h"

static const char *const run_state_names[PILOT_RUN_NSTATES] = {
	"queued", "waiting", "running", "canceling", "succeeded", "failed", "canceled", "skipped",
};
static const char *const reason_names[PILOT_NREASONS] = {
	"", "exit_code", "timeout", "lost", "bundle_invalid", "runtime_error", "dependency_failed", "canceled",
	"duplicate", "too_many_failures", "no_agent",
};
static const char *const attempt_state_names[PILOT_ATTEMPT_NSTATES] = {
	"running", "succeeded", "failed", "canceled", "lost",
};
static const char *const agent_state_names[PILOT_AGENT_NSTATES] = {
	"idle", "busy", "lost", "offline", "draining", "drained", "asleep", "starting",
};
static const char *const control_names[PILOT_CONTROL_N] = {
	"", "drain", "sleep", "shutdown",
};

static int from_name(const char *what, const char *const *names, size_t n, const char *name, int *out)
{
	for (size_t i = 0; i < n; i++)
		if (name && !strcmp(names[i], name)) {
			*out = (int)i;
			return 0;
		}
	const char *s = name ? pilot_suggest(name, names, n) : NULL;
	return pilot_error_set(PILOT_EINVALID, "unknown %s '%s'%s%s%s", what, name ? name : "",
			       s ? " (did you mean '" : "", s ? s : "", s ? "'?)" : "");
}

const char *pilot_run_state_name(enum pilot_run_state s)
{
	return (unsigned)s < PILOT_RUN_NSTATES ? run_state_names[s] : "unknown";
}

int pilot_run_state_from_name(const char *name, enum pilot_run_state *out)
{
	int v = 0;
	int r = from_name("run state", run_state_names, PILOT_RUN_NSTATES, name, &v);
	if (r == 0)
		*out = (enum pilot_run_state)v;
	return r;
}

bool pilot_run_state_terminal(enum pilot_run_state s)
{
	return s == PILOT_RUN_SUCCEEDED || s == PILOT_RUN_FAILED || s == PILOT_RUN_CANCELED || s == PILOT_RUN_SKIPPED;
}

const char *pilot_reason_name(enum pilot_reason r)
{
	return (unsigned)r < PILOT_NREASONS ? reason_names[r] : "unknown";
}

int pilot_reason_from_name(const char *name, enum pilot_reason *out)
{
	int v = 0;
	if (!name || !*name) {
		*out = PILOT_REASON_NONE;
		return 0;
	}
	int r = from_name("reason", reason_names + 1, PILOT_NREASONS - 1, name, &v);
	if (r == 0)
		*out = (enum pilot_reason)(v + 1);
	return r;
}

const char *pilot_attempt_state_name(enum pilot_attempt_state s)
{
	return (unsigned)s < PILOT_ATTEMPT_NSTATES ? attempt_state_names[s] : "unknown";
}

int pilot_attempt_state_from_name(const char *name, enum pilot_attempt_state *out)
{
	int v = 0;
	int r = from_name("attempt state", attempt_state_names, PILOT_ATTEMPT_NSTATES, name, &v);
	if (r == 0)
		*out = (enum pilot_attempt_state)v;
	return r;
}

const char *pilot_agent_state_name(enum pilot_agent_state s)
{
	return (unsigned)s < PILOT_AGENT_NSTATES ? agent_state_names[s] : "unknown";
}

int pilot_agent_state_from_name(const char *name, enum pilot_agent_state *out)
{
	int v = 0;
	int r = from_name("agent state", agent_state_names, PILOT_AGENT_NSTATES, name, &v);
	if (r == 0)
		*out = (enum pilot_agent_state)v;
	return r;
}

const char *pilot_agent_control_name(enum pilot_agent_control c)
{
	return (unsigned)c < PILOT_CONTROL_N ? control_names[c] : "unknown";
}

int pilot_agent_control_from_name(const char *name, enum pilot_agent_control *out)
{
	int v = 0;
	int r = from_name("agent control", control_names, PILOT_CONTROL_N, name, &v);
	if (r == 0)
		*out = (enum pilot_agent_control)v;
	return r;
}

/* Calls fn on each comma-separated, non-empty word of list. */
static int each_word(const char *list, int (*fn)(const char *word, void *ud), void *ud)
{
	const char *p = list ? list : "";
	while (*p) {
		const char *e = strchr(p, ',');
		size_t n = e ? (size_t)(e - p) : strlen(p);
		_cleanup_free_ char *w = pilot_xstrndup(p, n);
		char *s = w;
		while (*s == ' ')
			s++;
		size_t l = strlen(s);
		while (l && s[l - 1] == ' ')
			s[--l] = '\0';
		if (*s) {
			int r = fn(s, ud);
			if (r < 0)
				return r;
		}
		p += n;
		if (*p == ',')
			p++;
	}
	return 0;
}

static int add_state_word(const char *w, void *ud)
{
	unsigned *set = ud;
	enum pilot_run_state s;
	if (!strcmp(w, "terminal") || !strcmp(w, "done")) {
		*set |= PILOT_RUN_TERMINAL_BITS;
		return 0;
	}
	if (!strcmp(w, "active")) {
		*set |= PILOT_RUN_STATE_BIT(PILOT_RUN_QUEUED) | PILOT_RUN_STATE_BIT(PILOT_RUN_WAITING) |
			PILOT_RUN_STATE_BIT(PILOT_RUN_RUNNING) | PILOT_RUN_STATE_BIT(PILOT_RUN_CANCELING);
		return 0;
	}
	int r = pilot_run_state_from_name(w, &s);
	if (r < 0)
		return r;
	*set |= PILOT_RUN_STATE_BIT(s);
	return 0;
}

int pilot_run_states_parse(const char *list, unsigned *out)
{
	unsigned set = 0;
	int r = each_word(list, add_state_word, &set);
	if (r < 0)
		return r;
	*out = set;
	return 0;
}

int pilot_run_need_parse(const char *text, struct pilot_run_need *out)
{
	const char *colon = strchr(text ? text : "", ':');
	size_t n = colon ? (size_t)(colon - text) : strlen(text ? text : "");
	if (!n || n >= PILOT_ID_SIZE)
		return pilot_error_set(PILOT_EINVALID, "invalid run to wait for '%s': expected RUN or RUN:STATE,...",
				       text ? text : "");
	struct pilot_run_need need = { 0 };
	memcpy(need.run, text, n);
	need.states = PILOT_RUN_STATE_BIT(PILOT_RUN_SUCCEEDED);
	if (colon && !strcmp(colon + 1, "any")) {
		need.states = PILOT_RUN_TERMINAL_BITS;
	} else if (colon) {
		int r = pilot_run_states_parse(colon + 1, &need.states);
		if (r < 0)
			return pilot_error_prefix(r, "invalid run to wait for '%s'", text);
		if (!need.states || (need.states & ~PILOT_RUN_TERMINAL_BITS))
			return pilot_error_set(PILOT_EINVALID,
					       "invalid run to wait for '%s': the states are how it may end "
					       "(succeeded, failed, canceled, skipped, or any)",
					       text);
	}
	*out = need;
	return 0;
}

static int cmp_index(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
	return x < y ? -1 : x > y;
}

int pilot_array_spec_parse(const char *text, int64_t **out, size_t *n, int *throttle)
{
	const char *t = text ? text : "";
	const char *pct = strchr(t, '%');
	_cleanup_free_ char *list = pct ? pilot_xstrndup(t, (size_t)(pct - t)) : pilot_xstrdup(t);
	int64_t v, *idx = NULL;
	size_t count = 0;
	*out = NULL;
	*n = 0;
	*throttle = 0;
	if (pct) {
		if (pilot_parse_int64(pct + 1, 1, PILOT_ARRAY_MAX_ELEMENTS, &v) < 0)
			return pilot_error_set(PILOT_EINVALID, "invalid array '%s': after %% comes how many may run at once "
					       "(1 to %d)", t, PILOT_ARRAY_MAX_ELEMENTS);
		*throttle = (int)v;
	}
	char *save = NULL;
	for (char *item = strtok_r(list, ",", &save); item; item = strtok_r(NULL, ",", &save)) {
		int64_t a, b, step = 1;
		char *colon = strchr(item, ':'), *dash = strchr(item, '-');
		if (colon)
			*colon = '\0';
		if (dash)
			*dash = '\0';
		if (pilot_parse_int64(item, 0, INT32_MAX, &a) < 0 || (dash && pilot_parse_int64(dash + 1, 0, INT32_MAX, &b) < 0) ||
		    (colon && (!dash || pilot_parse_int64(colon + 1, 1, INT32_MAX, &step) < 0))) {
			free(idx);
			return pilot_error_set(PILOT_EINVALID, "invalid array '%s': expected indexes as N, A-B or A-B:STEP "
					       "(from 0), separated by commas, then %%K to run at most K at once "
					       "(e.g. 0-99%%8)", t);
		}
		if (!dash)
			b = a;
		if (b < a) {
			free(idx);
			return pilot_error_set(PILOT_EINVALID, "invalid array '%s': the range %lld-%lld goes down", t,
					       (long long)a, (long long)b);
		}
		for (int64_t i = a; i <= b; i += step) {
			if (count >= PILOT_ARRAY_MAX_ELEMENTS) {
				free(idx);
				return pilot_error_set(PILOT_EINVALID, "invalid array '%s': more than %d elements", t,
						       PILOT_ARRAY_MAX_ELEMENTS);
			}
			idx = pilot_xrealloc(idx, (count + 1) * sizeof(*idx));
			idx[count++] = i;
		}
	}
	if (!count) {
		free(idx);
		return pilot_error_set(PILOT_EINVALID, "invalid array '%s': no indexes (e.g. 0-99%%8)", t);
	}
	_cleanup_free_ int64_t *sorted = pilot_xcalloc(count, sizeof(*sorted));
	memcpy(sorted, idx, count * sizeof(*sorted));
	qsort(sorted, count, sizeof(*sorted), cmp_index);
	for (size_t k = 1; k < count; k++)
		if (sorted[k] == sorted[k - 1]) {
			free(idx);
			return pilot_error_set(PILOT_EINVALID, "invalid array '%s': index %lld is given twice", t,
					       (long long)sorted[k]);
		}
	*out = idx;
	*n = count;
	return 0;
}

char *pilot_run_need_states_format(unsigned states)
{
	if ((states & PILOT_RUN_TERMINAL_BITS) == PILOT_RUN_TERMINAL_BITS)
		return pilot_xstrdup("any");
	struct pilot_buf b = PILOT_BUF_INIT;
	for (int s = 0; s < PILOT_RUN_NSTATES; s++)
		if (states & PILOT_RUN_STATE_BIT(s))
			pilot_buf_printf(&b, "%s%s", b.len ? "," : "", run_state_names[s]);
	return pilot_buf_steal(&b);
}

static int add_retry_word(const char *w, void *ud)
{
	unsigned *mask = ud;
	if (!strcmp(w, "exit_code"))
		*mask |= PILOT_RETRY_ON_EXIT_CODE;
	else if (!strcmp(w, "timeout"))
		*mask |= PILOT_RETRY_ON_TIMEOUT;
	else {
		const char *names[] = { "exit_code", "timeout" };
		const char *s = pilot_suggest(w, names, 2);
		return pilot_error_set(PILOT_EINVALID, "unknown retry cause '%s'%s%s%s", w,
				       s ? " (did you mean '" : "", s ? s : "", s ? "'?)" : "");
	}
	return 0;
}

int pilot_retry_on_parse(const char *list, unsigned *out)
{
	unsigned mask = 0;
	int r = each_word(list, add_retry_word, &mask);
	if (r < 0)
		return r;
	*out = mask;
	return 0;
}

/* ---- the run state machine ---- */

#define B(s) PILOT_RUN_STATE_BIT(PILOT_RUN_##s)
static const unsigned allowed[PILOT_RUN_NSTATES] = {
	/* dependency_failed and administrative failures may end a run that never ran */
	[PILOT_RUN_QUEUED] = B(RUNNING) | B(CANCELED) | B(FAILED) | B(SKIPPED),
	[PILOT_RUN_WAITING] = B(QUEUED) | B(CANCELED) | B(FAILED) | B(SKIPPED),
	/* waiting: retry backoff; queued: a lost attempt requeued */
	[PILOT_RUN_RUNNING] = B(SUCCEEDED) | B(FAILED) | B(CANCELED) | B(CANCELING) | B(WAITING) | B(QUEUED),
	/* a job that completed while the cancel was on its way still succeeded */
	[PILOT_RUN_CANCELING] = B(CANCELED) | B(SUCCEEDED),
	[PILOT_RUN_SUCCEEDED] = 0,
	[PILOT_RUN_FAILED] = 0,
	[PILOT_RUN_CANCELED] = 0,
	[PILOT_RUN_SKIPPED] = 0,
};
#undef B

bool pilot_run_transition_allowed(enum pilot_run_state from, enum pilot_run_state to)
{
	if ((unsigned)from >= PILOT_RUN_NSTATES || (unsigned)to >= PILOT_RUN_NSTATES)
		return false;
	return (allowed[from] & PILOT_RUN_STATE_BIT(to)) != 0;
}

/* ---- kvs ---- */

static size_t kvs_find(const struct pilot_kvs *kvs, const char *key, bool *found)
{
	size_t lo = 0, hi = kvs->n;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		int c = strcmp(kvs->items[mid].key, key);
		if (c == 0) {
			*found = true;
			return mid;
		}
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	*found = false;
	return lo;
}

void pilot_kvs_set(struct pilot_kvs *kvs, const char *key, const char *value)
{
	bool found;
	size_t i = kvs_find(kvs, key, &found);
	if (found) {
		free(kvs->items[i].value);
		kvs->items[i].value = value ? pilot_xstrdup(value) : NULL;
		return;
	}
	kvs->items = pilot_xrealloc(kvs->items, (kvs->n + 1) * sizeof(*kvs->items));
	memmove(&kvs->items[i + 1], &kvs->items[i], (kvs->n - i) * sizeof(*kvs->items));
	kvs->items[i].key = pilot_xstrdup(key);
	kvs->items[i].value = value ? pilot_xstrdup(value) : NULL;
	kvs->n++;
}

int pilot_kvs_set_pair(struct pilot_kvs *kvs, const char *pair)
{
	const char *eq = strchr(pair, '=');
	if (!eq || eq == pair)
		return pilot_error_set(PILOT_EINVALID, "invalid '%s': expected KEY=VALUE", pair);
	_cleanup_free_ char *k = pilot_xstrndup(pair, (size_t)(eq - pair));
	pilot_kvs_set(kvs, k, eq + 1);
	return 0;
}

const char *pilot_kvs_get(const struct pilot_kvs *kvs, const char *key)
{
	bool found;
	size_t i = kvs_find(kvs, key, &found);
	return found ? kvs->items[i].value : NULL;
}

bool pilot_kvs_has(const struct pilot_kvs *kvs, const char *key)
{
	bool found;
	kvs_find(kvs, key, &found);
	return found;
}

bool pilot_kvs_satisfies(const struct pilot_kvs *labels, const struct pilot_kvs *requires)
{
	for (size_t i = 0; i < requires->n; i++) {
		const char *have = pilot_kvs_get(labels, requires->items[i].key);
		const char *want = requires->items[i].value ? requires->items[i].value : "";
		if (!have || strcmp(have, want))
			return false;
	}
	return true;
}

void pilot_kvs_copy(struct pilot_kvs *dst, const struct pilot_kvs *src)
{
	dst->items = NULL;
	dst->n = 0;
	for (size_t i = 0; i < src->n; i++)
		pilot_kvs_set(dst, src->items[i].key, src->items[i].value);
}

void pilot_kvs_clear(struct pilot_kvs *kvs)
{
	if (!kvs)
		return;
	for (size_t i = 0; i < kvs->n; i++) {
		free(kvs->items[i].key);
		/* Values may be secrets: do not leave them in freed memory. */
		if (kvs->items[i].value) {
			explicit_bzero(kvs->items[i].value, strlen(kvs->items[i].value));
			free(kvs->items[i].value);
		}
	}
	free(kvs->items);
	kvs->items = NULL;
	kvs->n = 0;
}

/* ---- destructors and copies ---- */

static char *dup_or_null(const char *s)
{
	return s ? pilot_xstrdup(s) : NULL;
}

void pilot_attempt_clear(struct pilot_attempt *a)
{
	if (!a)
		return;
	free(a->agent);
	free(a->message);
	free(a->instance_pool);
	free(a->instance_id);
	memset(a, 0, sizeof(*a));
}

void pilot_attempt_copy(struct pilot_attempt *dst, const struct pilot_attempt *src)
{
	*dst = *src;
	dst->agent = dup_or_null(src->agent);
	dst->message = dup_or_null(src->message);
}

void pilot_run_clear(struct pilot_run *r)
{
	if (!r)
		return;
	free(r->name);
	free(r->spec_json);
	free(r->params_json);
	free(r->env_json);
	pilot_kvs_clear(&r->requires);
	pilot_kvs_clear(&r->secrets);
	free(r->message);
	free(r->idempotency_key);
	free(r->submitter);
	free(r->retry_of);
	free(r->agent);
	for (size_t i = 0; i < r->nattempts; i++)
		pilot_attempt_clear(&r->attempts[i]);
	free(r->attempts);
	free(r->needs);
	free(r->concurrency_group);
	memset(r, 0, sizeof(*r));
}

void pilot_run_copy(struct pilot_run *dst, const struct pilot_run *src)
{
	*dst = *src;
	dst->name = dup_or_null(src->name);
	dst->spec_json = dup_or_null(src->spec_json);
	dst->params_json = dup_or_null(src->params_json);
	dst->env_json = dup_or_null(src->env_json);
	pilot_kvs_copy(&dst->requires, &src->requires);
	pilot_kvs_copy(&dst->secrets, &src->secrets);
	dst->message = dup_or_null(src->message);
	dst->idempotency_key = dup_or_null(src->idempotency_key);
	dst->submitter = dup_or_null(src->submitter);
	dst->retry_of = dup_or_null(src->retry_of);
	dst->agent = dup_or_null(src->agent);
	dst->concurrency_group = dup_or_null(src->concurrency_group);
	dst->attempts = NULL;
	if (src->nattempts) {
		dst->attempts = pilot_xcalloc(src->nattempts, sizeof(*dst->attempts));
		for (size_t i = 0; i < src->nattempts; i++)
			pilot_attempt_copy(&dst->attempts[i], &src->attempts[i]);
	}
	dst->needs = NULL;
	if (src->nneeds) {
		dst->needs = pilot_xcalloc(src->nneeds, sizeof(*dst->needs));
		memcpy(dst->needs, src->needs, src->nneeds * sizeof(*dst->needs));
	}
}

void pilot_event_clear(struct pilot_event *e)
{
	if (!e)
		return;
	free(e->type);
	free(e->actor);
	free(e->message);
	free(e->data_json);
	memset(e, 0, sizeof(*e));
}

void pilot_block_clear(struct pilot_block *b)
{
	if (!b)
		return;
	free(b->agent);
	free(b->name);
	memset(b, 0, sizeof(*b));
}

void pilot_agent_info_clear(struct pilot_agent_info *a)
{
	if (!a)
		return;
	free(a->name);
	pilot_kvs_clear(&a->labels);
	free(a->version);
	for (size_t i = 0; i < a->nruns; i++)
		free(a->runs[i]);
	free(a->runs);
	free(a->control_by);
	free(a->sleep_schedule);
	free(a->sleep_tz);
	memset(a, 0, sizeof(*a));
}

void pilot_artifact_clear(struct pilot_artifact *a)
{
	if (!a)
		return;
	free(a->path);
	memset(a, 0, sizeof(*a));
}

void pilot_metric_clear(struct pilot_metric *m)
{
	if (!m)
		return;
	free(m->json);
	memset(m, 0, sizeof(*m));
}

void pilot_status_clear(struct pilot_status *s)
{
	if (!s)
		return;
	free(s->version);
	for (size_t i = 0; i < s->npools; i++) {
		free(s->pools[i].name);
		free(s->pools[i].last_error);
	}
	free(s->pools);
	memset(s, 0, sizeof(*s));
}

#define LIST_CLEAR(fn, type, item_clear)            \
	void fn(type *l)                            \
	{                                           \
		if (!l)                             \
			return;                     \
		for (size_t i = 0; i < l->n; i++)   \
			item_clear(&l->items[i]);   \
		free(l->items);                     \
		memset(l, 0, sizeof(*l));           \
	}

LIST_CLEAR(pilot_run_list_clear, struct pilot_run_list, pilot_run_clear)
LIST_CLEAR(pilot_event_list_clear, struct pilot_event_list, pilot_event_clear)
LIST_CLEAR(pilot_agent_list_clear, struct pilot_agent_list, pilot_agent_info_clear)
LIST_CLEAR(pilot_block_list_clear, struct pilot_block_list, pilot_block_clear)
LIST_CLEAR(pilot_artifact_list_clear, struct pilot_artifact_list, pilot_artifact_clear)
LIST_CLEAR(pilot_metric_list_clear, struct pilot_metric_list, pilot_metric_clear)

void pilot_submit_request_clear(struct pilot_submit_request *req)
{
	if (!req)
		return;
	pilot_kvs_clear(&req->requires);
	pilot_kvs_clear(&req->secrets);
	free(req->after);
	req->after = NULL;
	req->nafter = 0;
}

void pilot_array_request_clear(struct pilot_array_request *req)
{
	if (!req)
		return;
	pilot_submit_request_clear(&req->base);
	free(req->elements);
	req->elements = NULL;
	req->nelements = 0;
}

void pilot_pipeline_request_clear(struct pilot_pipeline_request *req)
{
	if (!req)
		return;
	for (size_t i = 0; i < req->njobs; i++) {
		pilot_submit_request_clear(&req->jobs[i].run);
		free(req->jobs[i].needs);
	}
	free(req->jobs);
	req->jobs = NULL;
	req->njobs = 0;
}

void pilot_array_clear(struct pilot_array *a)
{
	if (!a)
		return;
	free(a->name);
	free(a->submitter);
	free(a->runs);
	memset(a, 0, sizeof(*a));
}

void pilot_claim_request_clear(struct pilot_claim_request *req)
{
	if (!req)
		return;
	pilot_kvs_clear(&req->labels);
}

void pilot_claim_clear(struct pilot_claim *c)
{
	if (!c)
		return;
	pilot_run_clear(&c->run);
	explicit_bzero(c->lease_token, sizeof(c->lease_token));
	memset(c, 0, sizeof(*c));
}

void pilot_log_chunk_clear(struct pilot_log_chunk *c)
{
	if (!c)
		return;
	pilot_buf_free(&c->data);
	memset(c, 0, sizeof(*c));
}
