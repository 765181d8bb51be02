/* The JSON form of the model (jansson): what the http transport and the server put on
 * the wire and what --output json prints. The spec, params and env stay JSON text in
 * string fields, byte for byte, because the store treats them as opaque; event data and
 * metrics records are embedded as JSON values. */
#include <string.h>

#include "pilot/model.h"

/* ---- encoding helpers ---- */

/* jansson refuses strings that are not UTF-8; such bytes become '?'. */
static json_t *jstr(const char *s)
{
	if (!s)
		return json_null();
	json_t *j = json_string(s);
	if (j)
		return j;
	_cleanup_free_ char *c = pilot_xstrdup(s);
	for (unsigned char *p = (unsigned char *)c; *p; p++)
		if (*p >= 0x80)
			*p = '?';
	return json_string(c);
}

static json_t *jtime(int64_t ms)
{
	return ms ? json_integer(ms) : json_null();
}

static json_t *jkvs(const struct pilot_kvs *kvs, bool values)
{
	if (!values) {
		json_t *a = json_array();
		for (size_t i = 0; i < kvs->n; i++)
			json_array_append_new(a, jstr(kvs->items[i].key));
		return a;
	}
	json_t *o = json_object();
	for (size_t i = 0; i < kvs->n; i++)
		json_object_set_new(o, kvs->items[i].key, jstr(kvs->items[i].value ? kvs->items[i].value : ""));
	return o;
}

/* Embedded JSON text (event data, metrics); text that does not parse stays a string. */
static json_t *jraw(const char *text)
{
	if (!text)
		return json_null();
	json_t *j = json_loads(text, JSON_DECODE_ANY, NULL);
	return j ? j : jstr(text);
}

static json_t *jretry_on(unsigned on)
{
	json_t *a = json_array();
	if (on & PILOT_RETRY_ON_EXIT_CODE)
		json_array_append_new(a, json_string("exit_code"));
	if (on & PILOT_RETRY_ON_TIMEOUT)
		json_array_append_new(a, json_string("timeout"));
	return a;
}

/* ---- decoding helpers ---- */

struct dec {
	const json_t *o;
	const char *what;
	int err;
};

static int dec_fail(struct dec *d, const char *key, const char *expected)
{
	if (!d->err)
		d->err = pilot_error_set(PILOT_EINVALID, "invalid %s: '%s' must be %s", d->what, key, expected);
	return d->err;
}

static bool dec_start(struct dec *d, const json_t *o, const char *what)
{
	d->o = o;
	d->what = what;
	d->err = 0;
	if (!json_is_object(o)) {
		d->err = pilot_error_set(PILOT_EINVALID, "invalid %s: expected a JSON object", what);
		return false;
	}
	return true;
}

static const char *d_str(struct dec *d, const char *key)
{
	json_t *v = json_object_get(d->o, key);
	if (!v || json_is_null(v))
		return NULL;
	if (!json_is_string(v)) {
		dec_fail(d, key, "a string");
		return NULL;
	}
	return json_string_value(v);
}

static char *d_dup(struct dec *d, const char *key)
{
	const char *s = d_str(d, key);
	return s ? pilot_xstrdup(s) : NULL;
}

static int64_t d_int(struct dec *d, const char *key)
{
	json_t *v = json_object_get(d->o, key);
	if (!v || json_is_null(v))
		return 0;
	if (!json_is_integer(v)) {
		dec_fail(d, key, "an integer");
		return 0;
	}
	return json_integer_value(v);
}

/* An integer that may be absent (or null): def then. */
static int64_t d_int_or(struct dec *d, const char *key, int64_t def)
{
	json_t *v = json_object_get(d->o, key);
	return !v || json_is_null(v) ? def : d_int(d, key);
}

static int d_int32(struct dec *d, const char *key)
{
	int64_t v = d_int(d, key);
	if (v < INT32_MIN || v > INT32_MAX) {
		dec_fail(d, key, "a 32-bit integer");
		return 0;
	}
	return (int)v;
}

static bool d_bool(struct dec *d, const char *key)
{
	json_t *v = json_object_get(d->o, key);
	if (!v || json_is_null(v))
		return false;
	if (!json_is_boolean(v)) {
		dec_fail(d, key, "true or false");
		return false;
	}
	return json_is_true(v);
}

static void d_id(struct dec *d, const char *key, char out[PILOT_ID_SIZE])
{
	const char *s = d_str(d, key);
	out[0] = '\0';
	if (!s)
		return;
	if (strlen(s) >= PILOT_ID_SIZE) {
		dec_fail(d, key, "an id");
		return;
	}
	memcpy(out, s, strlen(s) + 1);
}

static void d_sha(struct dec *d, const char *key, char out[65])
{
	const char *s = d_str(d, key);
	out[0] = '\0';
	if (!s || !*s)
		return;
	if (!pilot_sha256_valid(s)) {
		dec_fail(d, key, "a sha256 in hex");
		return;
	}
	memcpy(out, s, 65);
}

/* An object of strings, or (names_ok) an array of names. */
static void d_kvs(struct dec *d, const char *key, struct pilot_kvs *out, bool names_ok)
{
	json_t *v = json_object_get(d->o, key);
	out->items = NULL;
	out->n = 0;
	if (!v || json_is_null(v))
		return;
	if (json_is_object(v)) {
		const char *k;
		json_t *x;
		json_object_foreach(v, k, x) {
			if (!json_is_string(x)) {
				dec_fail(d, key, "an object of strings");
				return;
			}
			pilot_kvs_set(out, k, json_string_value(x));
		}
		return;
	}
	if (names_ok && json_is_array(v)) {
		size_t i;
		json_t *x;
		json_array_foreach(v, i, x) {
			if (!json_is_string(x)) {
				dec_fail(d, key, "an array of names");
				return;
			}
			pilot_kvs_set(out, json_string_value(x), NULL);
		}
		return;
	}
	dec_fail(d, key, names_ok ? "an object or an array of names" : "an object of strings");
}

/* Embedded JSON (any value) back to text; NULL when absent or null. */
static char *d_raw(struct dec *d, const char *key)
{
	json_t *v = json_object_get(d->o, key);
	if (!v || json_is_null(v))
		return NULL;
	char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
	char *r = pilot_xstrdup(s ? s : "null");
	free(s);
	return r;
}

static void d_run_state(struct dec *d, const char *key, enum pilot_run_state *out)
{
	const char *s = d_str(d, key);
	*out = PILOT_RUN_QUEUED;
	if (s && !d->err && pilot_run_state_from_name(s, out) < 0)
		d->err = pilot_error_prefix(PILOT_EINVALID, "invalid %s", d->what);
	else if (!s && !d->err)
		dec_fail(d, key, "a run state");
}

static void d_reason(struct dec *d, const char *key, enum pilot_reason *out)
{
	const char *s = d_str(d, key);
	*out = PILOT_REASON_NONE;
	if (s && !d->err && pilot_reason_from_name(s, out) < 0)
		d->err = pilot_error_prefix(PILOT_EINVALID, "invalid %s", d->what);
}

static void d_attempt_state(struct dec *d, const char *key, enum pilot_attempt_state *out)
{
	const char *s = d_str(d, key);
	*out = PILOT_ATTEMPT_RUNNING;
	if (s && !d->err && pilot_attempt_state_from_name(s, out) < 0)
		d->err = pilot_error_prefix(PILOT_EINVALID, "invalid %s", d->what);
	else if (!s && !d->err)
		dec_fail(d, key, "an attempt state");
}

static void d_exit_code(struct dec *d, const char *key, bool *has, int *code)
{
	json_t *v = json_object_get(d->o, key);
	*has = v && !json_is_null(v);
	*code = *has ? d_int32(d, key) : 0;
}

static unsigned d_retry_on(struct dec *d, const json_t *arr)
{
	unsigned on = 0;
	size_t i;
	json_t *x;
	if (!arr || json_is_null(arr))
		return 0;
	if (!json_is_array(arr)) {
		dec_fail(d, "retry.on", "an array");
		return 0;
	}
	json_array_foreach(arr, i, x) {
		const char *s = json_string_value(x);
		if (s && !strcmp(s, "exit_code"))
			on |= PILOT_RETRY_ON_EXIT_CODE;
		else if (s && !strcmp(s, "timeout"))
			on |= PILOT_RETRY_ON_TIMEOUT;
		else
			dec_fail(d, "retry.on", "a list of exit_code, timeout");
	}
	return on;
}

static json_t *retry_to_json(const struct pilot_retry_policy *p)
{
	return json_pack("{s:i,s:o,s:I,s:I}", "max_attempts", p->max_attempts, "on", jretry_on(p->on), "backoff_ms",
			 (json_int_t)p->backoff_ms, "max_backoff_ms", (json_int_t)p->max_backoff_ms);
}

static void retry_from_json(struct dec *d, struct pilot_retry_policy *p)
{
	json_t *r = json_object_get(d->o, "retry");
	memset(p, 0, sizeof(*p));
	if (!r || json_is_null(r))
		return;
	struct dec sub;
	if (!dec_start(&sub, r, "retry policy")) {
		d->err = sub.err;
		return;
	}
	p->max_attempts = d_int32(&sub, "max_attempts");
	p->on = d_retry_on(&sub, json_object_get(r, "on"));
	p->backoff_ms = d_int(&sub, "backoff_ms");
	p->max_backoff_ms = d_int(&sub, "max_backoff_ms");
	if (sub.err && !d->err)
		d->err = sub.err;
}

/* ---- attempts ---- */

json_t *pilot_attempt_to_json(const struct pilot_attempt *a)
{
	json_t *o = json_object();
	json_object_set_new(o, "id", jstr(a->id));
	json_object_set_new(o, "run_id", jstr(a->run_id));
	json_object_set_new(o, "number", json_integer(a->number));
	json_object_set_new(o, "agent", jstr(a->agent));
	json_object_set_new(o, "state", json_string(pilot_attempt_state_name(a->state)));
	json_object_set_new(o, "reason", a->reason ? json_string(pilot_reason_name(a->reason)) : json_null());
	json_object_set_new(o, "exit_code", a->has_exit_code ? json_integer(a->exit_code) : json_null());
	json_object_set_new(o, "message", jstr(a->message));
	json_object_set_new(o, "started_ms", jtime(a->started_ms));
	json_object_set_new(o, "finished_ms", jtime(a->finished_ms));
	json_object_set_new(o, "heartbeat_ms", jtime(a->heartbeat_ms));
	json_object_set_new(o, "lease_expires_ms", jtime(a->lease_expires_ms));
	json_object_set_new(o, "log_bytes", json_integer(a->log_bytes));
	json_object_set_new(o, "instance", a->instance_pool ? json_pack("{s:s,s:o}", "pool", a->instance_pool, "id",
								    jstr(a->instance_id))
							    : json_null());
	return o;
}

int pilot_attempt_from_json(const json_t *j, struct pilot_attempt *out)
{
	struct dec d;
	struct pilot_attempt a = { 0 };
	if (!dec_start(&d, j, "attempt"))
		return d.err;
	d_id(&d, "id", a.id);
	d_id(&d, "run_id", a.run_id);
	a.number = d_int32(&d, "number");
	a.agent = d_dup(&d, "agent");
	d_attempt_state(&d, "state", &a.state);
	d_reason(&d, "reason", &a.reason);
	d_exit_code(&d, "exit_code", &a.has_exit_code, &a.exit_code);
	a.message = d_dup(&d, "message");
	a.started_ms = d_int(&d, "started_ms");
	a.finished_ms = d_int(&d, "finished_ms");
	a.heartbeat_ms = d_int(&d, "heartbeat_ms");
	a.lease_expires_ms = d_int(&d, "lease_expires_ms");
	a.log_bytes = d_int(&d, "log_bytes");
	json_t *inst = json_object_get(j, "instance");
	if (json_is_object(inst)) {
		const char *pool = json_string_value(json_object_get(inst, "pool"));
		const char *iid = json_string_value(json_object_get(inst, "id"));
		a.instance_pool = pool ? pilot_xstrdup(pool) : NULL;
		a.instance_id = iid ? pilot_xstrdup(iid) : NULL;
	}
	if (d.err) {
		pilot_attempt_clear(&a);
		return d.err;
	}
	*out = a;
	return 0;
}

/* ---- runs ---- */

/* [{"run": ID, "states": ["succeeded", ...]}, ...] */
static json_t *needs_to_json(const struct pilot_run_need *needs, size_t n)
{
	json_t *a = json_array();
	for (size_t i = 0; i < n; i++) {
		json_t *states = json_array();
		for (int s = 0; s < PILOT_RUN_NSTATES; s++)
			if (needs[i].states & PILOT_RUN_STATE_BIT(s))
				json_array_append_new(states, json_string(pilot_run_state_name((enum pilot_run_state)s)));
		json_t *o = json_pack("{s:o,s:o}", "run", jstr(needs[i].run), "states", states);
		if (needs[i].name[0])
			json_object_set_new(o, "name", json_string(needs[i].name));
		json_array_append_new(a, o);
	}
	return a;
}

/* The list at key (absent or null: none); none given means succeeded (the store
 * refuses states that are not ends). */
static void d_needs(struct dec *d, const char *key, struct pilot_run_need **out, size_t *n)
{
	json_t *a = json_object_get(d->o, key);
	*out = NULL;
	*n = 0;
	if (!a || json_is_null(a) || d->err)
		return;
	if (!json_is_array(a) || json_array_size(a) > 1000) {
		dec_fail(d, key, "a list of at most 1000 {\"run\", \"states\"} objects");
		return;
	}
	size_t count = json_array_size(a);
	struct pilot_run_need *needs = pilot_xcalloc(count ? count : 1, sizeof(*needs));
	for (size_t i = 0; i < count; i++) {
		json_t *e = json_array_get(a, i);
		const char *run = json_string_value(json_object_get(e, "run"));
		json_t *states = json_object_get(e, "states"), *name = json_object_get(e, "name");
		if (!json_is_object(e) || !run || !*run || strlen(run) >= PILOT_ID_SIZE ||
		    (states && !json_is_null(states) && !json_is_array(states)) ||
		    (name && !json_is_null(name) &&
		     (!json_is_string(name) || strlen(json_string_value(name)) >= PILOT_RUN_NAME_SIZE))) {
			free(needs);
			dec_fail(d, key, "a list of {\"run\": ID, \"states\": [STATE, ...], \"name\": NAME} objects");
			return;
		}
		memcpy(needs[i].run, run, strlen(run) + 1);
		if (json_is_string(name))
			memcpy(needs[i].name, json_string_value(name), strlen(json_string_value(name)) + 1);
		size_t k;
		json_t *v;
		json_array_foreach(states, k, v) {
			enum pilot_run_state st;
			if (!json_is_string(v) || pilot_run_state_from_name(json_string_value(v), &st) < 0) {
				pilot_error_clear();
				free(needs);
				dec_fail(d, key, "a list whose states are run states (succeeded, failed, canceled, skipped)");
				return;
			}
			needs[i].states |= PILOT_RUN_STATE_BIT(st);
		}
		if (!needs[i].states)
			needs[i].states = PILOT_RUN_STATE_BIT(PILOT_RUN_SUCCEEDED);
	}
	*out = needs;
	*n = count;
}

static json_t *concurrency_to_json(const char *group, int max)
{
	return group ? json_pack("{s:s,s:i}", "group", group, "max", max) : json_null();
}

/* "concurrency": null or {"group": NAME, "max": N}; the name is borrowed from the
 * document. */
static void d_concurrency(struct dec *d, const char **group, int *max)
{
	const json_t *c = d->err ? NULL : json_object_get(d->o, "concurrency");
	*group = NULL;
	*max = 0;
	if (!c || json_is_null(c))
		return;
	const json_t *g = json_object_get(c, "group"), *m = json_object_get(c, "max");
	if (!json_is_object(c) || !json_is_string(g) || !json_is_integer(m) || json_integer_value(m) < 1 ||
	    json_integer_value(m) > INT32_MAX) {
		dec_fail(d, "concurrency", "null or an object {\"group\": NAME, \"max\": N >= 1}");
		return;
	}
	*group = json_string_value(g);
	*max = (int)json_integer_value(m);
}

json_t *pilot_run_to_json(const struct pilot_run *r)
{
	json_t *o = json_object();
	json_object_set_new(o, "id", jstr(r->id));
	json_object_set_new(o, "name", jstr(r->name));
	json_object_set_new(o, "state", json_string(pilot_run_state_name(r->state)));
	json_object_set_new(o, "reason", r->reason ? json_string(pilot_reason_name(r->reason)) : json_null());
	json_object_set_new(o, "message", jstr(r->message));
	json_object_set_new(o, "exit_code", r->has_exit_code ? json_integer(r->exit_code) : json_null());
	json_object_set_new(o, "priority", json_integer(r->priority));
	json_object_set_new(o, "bundle_sha256", r->bundle_sha256[0] ? jstr(r->bundle_sha256) : json_null());
	json_object_set_new(o, "spec_json", jstr(r->spec_json));
	json_object_set_new(o, "params_json", jstr(r->params_json));
	json_object_set_new(o, "env_json", jstr(r->env_json));
	json_object_set_new(o, "requires", jkvs(&r->requires, true));
	json_object_set_new(o, "secrets", jkvs(&r->secrets, false));
	json_object_set_new(o, "created_ms", jtime(r->created_ms));
	json_object_set_new(o, "started_ms", jtime(r->started_ms));
	json_object_set_new(o, "finished_ms", jtime(r->finished_ms));
	json_object_set_new(o, "not_before_ms", jtime(r->not_before_ms));
	json_object_set_new(o, "updated_ms", jtime(r->updated_ms));
	json_object_set_new(o, "attempt_count", json_integer(r->attempt_count));
	json_object_set_new(o, "lost_count", json_integer(r->lost_count));
	json_object_set_new(o, "retry", retry_to_json(&r->retry));
	json_object_set_new(o, "timeout_ms", json_integer(r->timeout_ms));
	json_object_set_new(o, "start_timeout_ms", jtime(r->start_timeout_ms));
	json_object_set_new(o, "idempotency_key", jstr(r->idempotency_key));
	json_object_set_new(o, "submitter", jstr(r->submitter));
	json_object_set_new(o, "retry_of", jstr(r->retry_of));
	json_object_set_new(o, "cancel_requested", json_boolean(r->cancel_requested));
	/* null: no cancel, or one that leaves the grace to the agent */
	json_object_set_new(o, "cancel_grace_ms", r->cancel_requested && r->cancel_grace_ms >= 0
							  ? json_integer((json_int_t)r->cancel_grace_ms)
							  : json_null());
	json_object_set_new(o, "held", json_boolean(r->held));
	json_object_set_new(o, "agent", jstr(r->agent));
	if (r->nattempts) {
		json_t *a = json_array();
		for (size_t i = 0; i < r->nattempts; i++)
			json_array_append_new(a, pilot_attempt_to_json(&r->attempts[i]));
		json_object_set_new(o, "attempts", a);
	}
	if (r->nneeds)
		json_object_set_new(o, "needs", needs_to_json(r->needs, r->nneeds));
	json_object_set_new(o, "needs_left", json_integer(r->needs_left));
	json_object_set_new(o, "concurrency", concurrency_to_json(r->concurrency_group, r->concurrency_max));
	json_object_set_new(o, "slot_wait", json_boolean(r->slot_wait));
	json_object_set_new(o, "array", r->array_id[0] ? json_pack("{s:s,s:I}", "id", r->array_id, "index",
								   (json_int_t)r->array_index)
						     : json_null());
	return o;
}

int pilot_run_from_json(const json_t *j, struct pilot_run *out)
{
	struct dec d;
	struct pilot_run r = { 0 };
	if (!dec_start(&d, j, "run"))
		return d.err;
	d_id(&d, "id", r.id);
	r.name = d_dup(&d, "name");
	d_run_state(&d, "state", &r.state);
	d_reason(&d, "reason", &r.reason);
	r.message = d_dup(&d, "message");
	d_exit_code(&d, "exit_code", &r.has_exit_code, &r.exit_code);
	r.priority = d_int32(&d, "priority");
	d_sha(&d, "bundle_sha256", r.bundle_sha256);
	r.spec_json = d_dup(&d, "spec_json");
	r.params_json = d_dup(&d, "params_json");
	r.env_json = d_dup(&d, "env_json");
	d_kvs(&d, "requires", &r.requires, false);
	d_kvs(&d, "secrets", &r.secrets, true);
	r.created_ms = d_int(&d, "created_ms");
	r.started_ms = d_int(&d, "started_ms");
	r.finished_ms = d_int(&d, "finished_ms");
	r.not_before_ms = d_int(&d, "not_before_ms");
	r.updated_ms = d_int(&d, "updated_ms");
	r.attempt_count = d_int32(&d, "attempt_count");
	r.lost_count = d_int32(&d, "lost_count");
	retry_from_json(&d, &r.retry);
	r.timeout_ms = d_int(&d, "timeout_ms");
	r.start_timeout_ms = d_int(&d, "start_timeout_ms");
	r.idempotency_key = d_dup(&d, "idempotency_key");
	r.submitter = d_dup(&d, "submitter");
	r.retry_of = d_dup(&d, "retry_of");
	r.cancel_requested = d_bool(&d, "cancel_requested");
	r.cancel_grace_ms = d_int_or(&d, "cancel_grace_ms", PILOT_CANCEL_GRACE_AGENT);
	if (r.cancel_grace_ms < 0)
		r.cancel_grace_ms = PILOT_CANCEL_GRACE_AGENT;
	r.held = d_bool(&d, "held");
	r.agent = d_dup(&d, "agent");
	d_needs(&d, "needs", &r.needs, &r.nneeds);
	r.needs_left = d_int32(&d, "needs_left");
	const char *group = NULL;
	d_concurrency(&d, &group, &r.concurrency_max);
	r.concurrency_group = group ? pilot_xstrdup(group) : NULL;
	r.slot_wait = d_bool(&d, "slot_wait");
	const json_t *arr = json_object_get(j, "array");
	if (arr && !json_is_null(arr) && !d.err) {
		struct dec da;
		if (dec_start(&da, arr, "run array")) {
			d_id(&da, "id", r.array_id);
			r.array_index = d_int(&da, "index");
		}
		d.err = da.err;
	}
	json_t *atts = json_object_get(j, "attempts");
	if (atts && !json_is_null(atts) && !d.err) {
		if (!json_is_array(atts)) {
			dec_fail(&d, "attempts", "an array");
		} else {
			size_t n = json_array_size(atts);
			r.attempts = pilot_xcalloc(n ? n : 1, sizeof(*r.attempts));
			for (size_t i = 0; i < n && !d.err; i++) {
				int e = pilot_attempt_from_json(json_array_get(atts, i), &r.attempts[i]);
				if (e < 0)
					d.err = e;
				else
					r.nattempts++;
			}
		}
	}
	if (d.err) {
		pilot_run_clear(&r);
		return d.err;
	}
	*out = r;
	return 0;
}

/* ---- events, agents, artifacts, metrics, status ---- */

json_t *pilot_event_to_json(const struct pilot_event *e)
{
	json_t *o = json_object();
	json_object_set_new(o, "seq", json_integer(e->seq));
	json_object_set_new(o, "run_id", jstr(e->run_id));
	json_object_set_new(o, "attempt", json_integer(e->attempt));
	json_object_set_new(o, "time_ms", json_integer(e->time_ms));
	json_object_set_new(o, "type", jstr(e->type));
	json_object_set_new(o, "actor", jstr(e->actor));
	json_object_set_new(o, "message", jstr(e->message));
	json_object_set_new(o, "data", jraw(e->data_json));
	json_object_set_new(o, "state", json_string(pilot_run_state_name(e->state)));
	return o;
}

int pilot_event_from_json(const json_t *j, struct pilot_event *out)
{
	struct dec d;
	struct pilot_event e = { 0 };
	if (!dec_start(&d, j, "event"))
		return d.err;
	e.seq = d_int(&d, "seq");
	d_id(&d, "run_id", e.run_id);
	e.attempt = d_int32(&d, "attempt");
	e.time_ms = d_int(&d, "time_ms");
	e.type = d_dup(&d, "type");
	e.actor = d_dup(&d, "actor");
	e.message = d_dup(&d, "message");
	e.data_json = d_raw(&d, "data");
	d_run_state(&d, "state", &e.state);
	if (d.err) {
		pilot_event_clear(&e);
		return d.err;
	}
	*out = e;
	return 0;
}

json_t *pilot_agent_info_to_json(const struct pilot_agent_info *a)
{
	json_t *o = json_object();
	json_object_set_new(o, "name", jstr(a->name));
	json_object_set_new(o, "labels", jkvs(&a->labels, true));
	json_object_set_new(o, "version", jstr(a->version));
	json_object_set_new(o, "capacity", json_integer(a->capacity));
	json_object_set_new(o, "state", json_string(pilot_agent_state_name(a->state)));
	json_t *runs = json_array();
	for (size_t i = 0; i < a->nruns; i++)
		json_array_append_new(runs, jstr(a->runs[i]));
	json_object_set_new(o, "runs", runs);
	json_object_set_new(o, "first_seen_ms", jtime(a->first_seen_ms));
	json_object_set_new(o, "last_seen_ms", jtime(a->last_seen_ms));
	json_object_set_new(o, "control", a->control ? json_string(pilot_agent_control_name(a->control)) : json_null());
	json_object_set_new(o, "control_ms", jtime(a->control_ms));
	json_object_set_new(o, "control_by", jstr(a->control_by));
	json_object_set_new(o, "sleep_schedule", jstr(a->sleep_schedule));
	json_object_set_new(o, "sleep_tz", jstr(a->sleep_tz));
	json_object_set_new(o, "sleep_next_ms", jtime(a->sleep_next_ms));
	return o;
}

int pilot_agent_info_from_json(const json_t *j, struct pilot_agent_info *out)
{
	struct dec d;
	struct pilot_agent_info a = { 0 };
	if (!dec_start(&d, j, "agent"))
		return d.err;
	a.name = d_dup(&d, "name");
	d_kvs(&d, "labels", &a.labels, false);
	a.version = d_dup(&d, "version");
	a.capacity = d_int32(&d, "capacity");
	const char *st = d_str(&d, "state");
	if (st && !d.err && pilot_agent_state_from_name(st, &a.state) < 0)
		d.err = pilot_error_prefix(PILOT_EINVALID, "invalid agent");
	json_t *runs = json_object_get(j, "runs");
	if (runs && json_is_array(runs)) {
		size_t i;
		json_t *x;
		a.runs = pilot_xcalloc(json_array_size(runs) + 1, sizeof(char *));
		json_array_foreach(runs, i, x) {
			if (!json_is_string(x)) {
				dec_fail(&d, "runs", "an array of run ids");
				break;
			}
			a.runs[a.nruns++] = pilot_xstrdup(json_string_value(x));
		}
	} else if (runs && !json_is_null(runs)) {
		dec_fail(&d, "runs", "an array of run ids");
	}
	a.first_seen_ms = d_int(&d, "first_seen_ms");
	a.last_seen_ms = d_int(&d, "last_seen_ms");
	const char *ctl = d_str(&d, "control");
	if (ctl && !d.err && pilot_agent_control_from_name(ctl, &a.control) < 0)
		d.err = pilot_error_prefix(PILOT_EINVALID, "invalid agent");
	a.control_ms = d_int(&d, "control_ms");
	a.control_by = d_dup(&d, "control_by");
	a.sleep_schedule = d_dup(&d, "sleep_schedule");
	a.sleep_tz = d_dup(&d, "sleep_tz");
	a.sleep_next_ms = d_int(&d, "sleep_next_ms");
	if (d.err) {
		pilot_agent_info_clear(&a);
		return d.err;
	}
	*out = a;
	return 0;
}

json_t *pilot_block_to_json(const struct pilot_block *b)
{
	return json_pack("{s:o,s:o,s:i,s:o,s:o}", "agent", jstr(b->agent), "name", jstr(b->name), "failures",
			 b->failures, "last_failure_ms", jtime(b->last_failure_ms), "blocked_ms", jtime(b->blocked_ms));
}

int pilot_block_from_json(const json_t *j, struct pilot_block *out)
{
	struct dec d;
	struct pilot_block b = { 0 };
	if (!dec_start(&d, j, "blocklist entry"))
		return d.err;
	b.agent = d_dup(&d, "agent");
	b.name = d_dup(&d, "name");
	b.failures = d_int32(&d, "failures");
	b.last_failure_ms = d_int(&d, "last_failure_ms");
	b.blocked_ms = d_int(&d, "blocked_ms");
	if (d.err) {
		pilot_block_clear(&b);
		return d.err;
	}
	*out = b;
	return 0;
}

json_t *pilot_artifact_to_json(const struct pilot_artifact *a)
{
	return json_pack("{s:o,s:I,s:o,s:i,s:o}", "path", jstr(a->path), "size", (json_int_t)a->size, "sha256",
			 jstr(a->sha256), "attempt", a->attempt, "created_ms", jtime(a->created_ms));
}

int pilot_artifact_from_json(const json_t *j, struct pilot_artifact *out)
{
	struct dec d;
	struct pilot_artifact a = { 0 };
	if (!dec_start(&d, j, "artifact"))
		return d.err;
	a.path = d_dup(&d, "path");
	int64_t size = d_int(&d, "size");
	if (size < 0)
		dec_fail(&d, "size", "a size");
	a.size = (uint64_t)size;
	d_sha(&d, "sha256", a.sha256);
	a.attempt = d_int32(&d, "attempt");
	a.created_ms = d_int(&d, "created_ms");
	if (!a.path && !d.err)
		dec_fail(&d, "path", "a path");
	if (d.err) {
		pilot_artifact_clear(&a);
		return d.err;
	}
	*out = a;
	return 0;
}

json_t *pilot_metric_to_json(const struct pilot_metric *m)
{
	return json_pack("{s:i,s:I,s:o,s:o}", "attempt", m->attempt, "index", (json_int_t)m->index, "time_ms",
			 jtime(m->time_ms), "values", jraw(m->json));
}

int pilot_metric_from_json(const json_t *j, struct pilot_metric *out)
{
	struct dec d;
	struct pilot_metric m = { 0 };
	if (!dec_start(&d, j, "metrics record"))
		return d.err;
	m.attempt = d_int32(&d, "attempt");
	m.index = d_int(&d, "index");
	m.time_ms = d_int(&d, "time_ms");
	if (!json_is_object(json_object_get(j, "values")))
		dec_fail(&d, "values", "a JSON object");
	else
		m.json = d_raw(&d, "values");
	if (d.err) {
		pilot_metric_clear(&m);
		return d.err;
	}
	*out = m;
	return 0;
}

json_t *pilot_status_to_json(const struct pilot_status *s)
{
	json_t *runs = json_object();
	int64_t total = 0;
	for (int i = 0; i < PILOT_RUN_NSTATES; i++) {
		json_object_set_new(runs, pilot_run_state_name(i), json_integer(s->counts[i]));
		total += s->counts[i];
	}
	json_object_set_new(runs, "total", json_integer(total));
	json_t *pools = json_array();
	for (size_t i = 0; i < s->npools; i++) {
		const struct pilot_pool_status *p = &s->pools[i];
		json_array_append_new(pools, json_pack("{s:o,s:i,s:i,s:i,s:i,s:I,s:f,s:i,s:o,s:o}", "name", jstr(p->name),
						       "max", p->max, "launching", p->launching, "running", p->running,
						       "terminating", p->terminating, "launched_total",
						       (json_int_t)p->launched_total, "cost", p->cost, "failures",
						       p->failures, "last_error", jstr(p->last_error), "retry_at_ms",
						       jtime(p->retry_at_ms)));
	}
	return json_pack("{s:o,s:I,s:o,s:o,s:{s:i,s:i,s:i,s:i},s:o}", "version", jstr(s->version), "now_ms",
			 (json_int_t)s->now_ms, "runs", runs, "oldest_queued_ms", jtime(s->oldest_queued_ms), "agents",
			 "idle", s->agents_idle, "busy", s->agents_busy, "lost", s->agents_lost, "paused", s->agents_paused,
			 "pools", pools);
}

int pilot_status_from_json(const json_t *j, struct pilot_status *out)
{
	struct dec d;
	struct pilot_status s = { 0 };
	if (!dec_start(&d, j, "status"))
		return d.err;
	s.version = d_dup(&d, "version");
	s.now_ms = d_int(&d, "now_ms");
	s.oldest_queued_ms = d_int(&d, "oldest_queued_ms");
	struct dec sub;
	if (dec_start(&sub, json_object_get(j, "runs"), "status runs")) {
		for (int i = 0; i < PILOT_RUN_NSTATES; i++)
			s.counts[i] = d_int(&sub, pilot_run_state_name(i));
	}
	if (sub.err && !d.err)
		d.err = sub.err;
	if (dec_start(&sub, json_object_get(j, "agents"), "status agents")) {
		s.agents_idle = d_int32(&sub, "idle");
		s.agents_busy = d_int32(&sub, "busy");
		s.agents_lost = d_int32(&sub, "lost");
		s.agents_paused = d_int32(&sub, "paused");
	}
	if (sub.err && !d.err)
		d.err = sub.err;
	json_t *pools = json_object_get(j, "pools");
	if (json_is_array(pools) && !d.err) {
		s.pools = pilot_xcalloc(json_array_size(pools) + 1, sizeof(*s.pools));
		size_t i;
		json_t *x;
		json_array_foreach(pools, i, x) {
			if (!dec_start(&sub, x, "status pool"))
				break;
			struct pilot_pool_status *p = &s.pools[s.npools++];
			p->name = d_dup(&sub, "name");
			p->max = d_int32(&sub, "max");
			p->launching = d_int32(&sub, "launching");
			p->running = d_int32(&sub, "running");
			p->terminating = d_int32(&sub, "terminating");
			p->launched_total = d_int(&sub, "launched_total");
			json_t *cost = json_object_get(x, "cost");
			p->cost = json_is_number(cost) ? json_number_value(cost) : 0;
			p->failures = d_int32(&sub, "failures");
			p->last_error = d_dup(&sub, "last_error");
			p->retry_at_ms = d_int(&sub, "retry_at_ms");
			if (sub.err)
				break;
		}
		if (sub.err)
			d.err = sub.err;
	}
	if (d.err) {
		pilot_status_clear(&s);
		return d.err;
	}
	*out = s;
	return 0;
}

/* ---- claims and agent calls ---- */

json_t *pilot_claim_to_json(const struct pilot_claim *c)
{
	json_t *o = json_object();
	json_object_set_new(o, "run", pilot_run_to_json(&c->run));
	json_object_set_new(o, "secret_values", jkvs(&c->run.secrets, true));
	json_object_set_new(o, "attempt_id", jstr(c->attempt_id));
	json_object_set_new(o, "attempt", json_integer(c->attempt));
	json_object_set_new(o, "lease_token", jstr(c->lease_token));
	json_object_set_new(o, "lease_ttl_ms", json_integer(c->lease_ttl_ms));
	json_object_set_new(o, "lease_expires_ms", json_integer(c->lease_expires_ms));
	return o;
}

int pilot_claim_from_json(const json_t *j, struct pilot_claim *out)
{
	struct dec d;
	struct pilot_claim c = { 0 };
	if (!dec_start(&d, j, "claim"))
		return d.err;
	int r = pilot_run_from_json(json_object_get(j, "run"), &c.run);
	if (r < 0)
		return pilot_error_prefix(r, "invalid claim");
	struct pilot_kvs values;
	d_kvs(&d, "secret_values", &values, false);
	for (size_t i = 0; i < values.n; i++)
		pilot_kvs_set(&c.run.secrets, values.items[i].key, values.items[i].value);
	pilot_kvs_clear(&values);
	d_id(&d, "attempt_id", c.attempt_id);
	c.attempt = d_int32(&d, "attempt");
	const char *tok = d_str(&d, "lease_token");
	if (!tok || strlen(tok) >= sizeof(c.lease_token))
		dec_fail(&d, "lease_token", "a lease token");
	else
		memcpy(c.lease_token, tok, strlen(tok) + 1);
	c.lease_ttl_ms = d_int(&d, "lease_ttl_ms");
	c.lease_expires_ms = d_int(&d, "lease_expires_ms");
	if (!c.attempt_id[0] && !d.err)
		dec_fail(&d, "attempt_id", "an attempt id");
	if (d.err) {
		pilot_claim_clear(&c);
		return d.err;
	}
	*out = c;
	return 0;
}

json_t *pilot_submit_request_to_json(const struct pilot_submit_request *req)
{
	json_t *o = json_object();
	json_object_set_new(o, "name", jstr(req->name));
	json_object_set_new(o, "spec_json", jstr(req->spec_json));
	json_object_set_new(o, "bundle_sha256",
			    req->bundle_sha256 && *req->bundle_sha256 ? jstr(req->bundle_sha256) : json_null());
	json_object_set_new(o, "params_json", jstr(req->params_json));
	json_object_set_new(o, "env_json", jstr(req->env_json));
	json_object_set_new(o, "requires", jkvs(&req->requires, true));
	json_object_set_new(o, "secrets", jkvs(&req->secrets, true));
	json_object_set_new(o, "priority", json_integer(req->priority));
	json_object_set_new(o, "retry", retry_to_json(&req->retry));
	json_object_set_new(o, "timeout_ms", json_integer(req->timeout_ms));
	if (req->start_timeout_ms)
		json_object_set_new(o, "start_timeout_ms", json_integer(req->start_timeout_ms));
	json_object_set_new(o, "not_before_ms", jtime(req->not_before_ms));
	json_object_set_new(o, "idempotency_key", jstr(req->idempotency_key));
	json_object_set_new(o, "hold", json_boolean(req->hold));
	json_object_set_new(o, "submitter", jstr(req->submitter));
	if (req->nafter)
		json_object_set_new(o, "after", needs_to_json(req->after, req->nafter));
	if (req->concurrency_group)
		json_object_set_new(o, "concurrency", concurrency_to_json(req->concurrency_group, req->concurrency_max));
	if (req->skip_duplicate)
		json_object_set_new(o, "skip_duplicate", json_true());
	return o;
}

int pilot_submit_request_from_json(const json_t *j, struct pilot_submit_request *out)
{
	struct dec d;
	struct pilot_submit_request q = { 0 };
	if (!dec_start(&d, j, "submit request"))
		return d.err;
	q.name = d_str(&d, "name");
	q.spec_json = d_str(&d, "spec_json");
	q.bundle_sha256 = d_str(&d, "bundle_sha256");
	q.params_json = d_str(&d, "params_json");
	q.env_json = d_str(&d, "env_json");
	d_kvs(&d, "requires", &q.requires, false);
	if (!d.err)
		d_kvs(&d, "secrets", &q.secrets, false);
	q.priority = d_int32(&d, "priority");
	retry_from_json(&d, &q.retry);
	q.timeout_ms = d_int(&d, "timeout_ms");
	q.start_timeout_ms = d_int(&d, "start_timeout_ms");
	q.not_before_ms = d_int(&d, "not_before_ms");
	q.idempotency_key = d_str(&d, "idempotency_key");
	q.hold = d_bool(&d, "hold");
	q.submitter = d_str(&d, "submitter");
	d_needs(&d, "after", &q.after, &q.nafter);
	d_concurrency(&d, &q.concurrency_group, &q.concurrency_max);
	q.skip_duplicate = d_bool(&d, "skip_duplicate");
	if (!d.err && (!q.name || !q.spec_json))
		dec_fail(&d, q.name ? "spec_json" : "name", "present");
	if (d.err) {
		pilot_submit_request_clear(&q);
		return d.err;
	}
	*out = q;
	return 0;
}

json_t *pilot_array_request_to_json(const struct pilot_array_request *req)
{
	json_t *o = json_object();
	json_object_set_new(o, "run", pilot_submit_request_to_json(&req->base));
	json_object_set_new(o, "throttle", json_integer(req->throttle));
	json_object_set_new(o, "max_failures", json_integer(req->max_failures));
	json_t *els = json_array();
	for (size_t i = 0; i < req->nelements; i++) {
		const struct pilot_array_element *e = &req->elements[i];
		json_t *x = json_pack("{s:I}", "index", (json_int_t)e->index);
		if (e->spec_json)
			json_object_set_new(x, "spec_json", json_string(e->spec_json));
		if (e->params_json)
			json_object_set_new(x, "params_json", json_string(e->params_json));
		json_array_append_new(els, x);
	}
	json_object_set_new(o, "elements", els);
	return o;
}

int pilot_array_request_from_json(const json_t *j, struct pilot_array_request *out)
{
	struct dec d;
	struct pilot_array_request q = { 0 };
	if (!dec_start(&d, j, "array request"))
		return d.err;
	const json_t *base = json_object_get(j, "run"), *els = json_object_get(j, "elements");
	int r = pilot_submit_request_from_json(base, &q.base);
	if (r < 0)
		return pilot_error_prefix(r, "invalid array request: 'run'");
	q.throttle = d_int32(&d, "throttle");
	q.max_failures = d_int32(&d, "max_failures");
	if (!d.err && !json_is_array(els))
		dec_fail(&d, "elements", "an array");
	size_t n = d.err ? 0 : json_array_size(els);
	if (n > PILOT_ARRAY_MAX_ELEMENTS)
		dec_fail(&d, "elements", "at most 10000 elements");
	q.elements = pilot_xcalloc(n ? n : 1, sizeof(*q.elements));
	for (size_t i = 0; i < n && !d.err; i++) {
		struct dec de;
		if (dec_start(&de, json_array_get(els, i), "array element")) {
			q.elements[i].index = d_int(&de, "index");
			q.elements[i].spec_json = d_str(&de, "spec_json");
			q.elements[i].params_json = d_str(&de, "params_json");
		}
		d.err = de.err;
		q.nelements++;
	}
	if (d.err) {
		pilot_array_request_clear(&q);
		return d.err;
	}
	*out = q;
	return 0;
}

json_t *pilot_pipeline_request_to_json(const struct pilot_pipeline_request *req)
{
	json_t *jobs = json_array();
	for (size_t i = 0; i < req->njobs; i++) {
		const struct pilot_pipeline_job *job = &req->jobs[i];
		json_t *needs = json_array();
		for (size_t k = 0; k < job->nneeds; k++)
			json_array_append_new(needs, jstr(job->needs[k]));
		json_array_append_new(jobs, json_pack("{s:o,s:o}", "run", pilot_submit_request_to_json(&job->run), "needs",
						      needs));
	}
	return json_pack("{s:o,s:o,s:o,s:i,s:o}", "name", jstr(req->name), "idempotency_key", jstr(req->idempotency_key),
			 "submitter", jstr(req->submitter), "max_failures", req->max_failures, "jobs", jobs);
}

int pilot_pipeline_request_from_json(const json_t *j, struct pilot_pipeline_request *out)
{
	struct dec d;
	struct pilot_pipeline_request q = { 0 };
	if (!dec_start(&d, j, "pipeline request"))
		return d.err;
	q.name = d_str(&d, "name");
	q.idempotency_key = d_str(&d, "idempotency_key");
	q.submitter = d_str(&d, "submitter");
	q.max_failures = d_int32(&d, "max_failures");
	const json_t *jobs = json_object_get(j, "jobs");
	if (!d.err && !json_is_array(jobs))
		dec_fail(&d, "jobs", "an array");
	size_t n = d.err ? 0 : json_array_size(jobs);
	if (n > PILOT_PIPELINE_MAX_JOBS)
		dec_fail(&d, "jobs", "at most 1000 jobs");
	q.jobs = pilot_xcalloc(n ? n : 1, sizeof(*q.jobs));
	for (size_t i = 0; i < n && !d.err; i++) {
		const json_t *x = json_array_get(jobs, i), *needs = json_object_get(x, "needs");
		struct pilot_pipeline_job *job = &q.jobs[i];
		int r = pilot_submit_request_from_json(json_object_get(x, "run"), &job->run);
		if (r < 0) {
			d.err = pilot_error_prefix(r, "invalid pipeline request: job %zu", i);
			break;
		}
		q.njobs++;
		if (needs && !json_is_null(needs) && (!json_is_array(needs) || json_array_size(needs) > n)) {
			dec_fail(&d, "needs", "an array of job names");
			break;
		}
		size_t k;
		const json_t *v;
		job->needs = pilot_xcalloc(json_array_size(needs) + 1, sizeof(*job->needs));
		json_array_foreach(needs, k, v) {
			if (!json_is_string(v)) {
				dec_fail(&d, "needs", "an array of job names");
				break;
			}
			job->needs[job->nneeds++] = json_string_value(v);
		}
	}
	if (d.err) {
		pilot_pipeline_request_clear(&q);
		return d.err;
	}
	*out = q;
	return 0;
}

json_t *pilot_array_to_json(const struct pilot_array *a)
{
	json_t *runs = json_array();
	for (size_t i = 0; i < a->nruns; i++)
		json_array_append_new(runs, json_string(a->runs[i]));
	return json_pack("{s:s,s:o,s:o,s:I,s:i,s:i,s:o,s:i}", "id", a->id, "name", jstr(a->name), "submitter",
			 jstr(a->submitter), "created_ms", (json_int_t)a->created_ms, "throttle", a->throttle,
			 "max_failures", a->max_failures, "runs", runs, "changed", a->changed);
}

int pilot_array_from_json(const json_t *j, struct pilot_array *out)
{
	struct dec d;
	struct pilot_array a = { 0 };
	if (!dec_start(&d, j, "array"))
		return d.err;
	d_id(&d, "id", a.id);
	a.name = d_dup(&d, "name");
	a.submitter = d_dup(&d, "submitter");
	a.created_ms = d_int(&d, "created_ms");
	a.throttle = d_int32(&d, "throttle");
	a.changed = d_int32(&d, "changed");
	a.max_failures = d_int32(&d, "max_failures");
	const json_t *runs = json_object_get(j, "runs");
	if (!d.err && !json_is_array(runs))
		dec_fail(&d, "runs", "an array of run ids");
	size_t n = d.err ? 0 : json_array_size(runs);
	a.runs = pilot_xcalloc(n ? n : 1, sizeof(*a.runs));
	for (size_t i = 0; i < n && !d.err; i++) {
		const char *id = json_string_value(json_array_get(runs, i));
		if (!id || strlen(id) >= PILOT_ID_SIZE)
			dec_fail(&d, "runs", "an array of run ids");
		else
			memcpy(a.runs[a.nruns++], id, strlen(id) + 1);
	}
	if (d.err || !a.id[0]) {
		if (!d.err)
			dec_fail(&d, "id", "an array id");
		pilot_array_clear(&a);
		return d.err;
	}
	*out = a;
	return 0;
}

json_t *pilot_claim_request_to_json(const struct pilot_claim_request *req)
{
	return json_pack("{s:o,s:o,s:o,s:i,s:i,s:I,s:o}", "agent", jstr(req->agent), "labels",
			 jkvs(&req->labels, true), "version", jstr(req->version), "capacity", req->capacity,
			 "free_slots", req->free_slots, "wait_ms", (json_int_t)req->wait_ms, "run", jstr(req->run));
}

int pilot_claim_request_from_json(const json_t *j, struct pilot_claim_request *out)
{
	struct dec d;
	struct pilot_claim_request q = { 0 };
	if (!dec_start(&d, j, "claim request"))
		return d.err;
	q.agent = d_str(&d, "agent");
	d_kvs(&d, "labels", &q.labels, false);
	q.version = d_str(&d, "version");
	q.capacity = d_int32(&d, "capacity");
	q.free_slots = d_int32(&d, "free_slots");
	q.wait_ms = d_int(&d, "wait_ms");
	q.run = d_str(&d, "run");
	if (!d.err && !q.agent)
		dec_fail(&d, "agent", "present");
	if (d.err) {
		pilot_claim_request_clear(&q);
		return d.err;
	}
	*out = q;
	return 0;
}

json_t *pilot_finish_to_json(const struct pilot_finish *f)
{
	return json_pack("{s:s,s:o,s:o,s:o}", "state", pilot_attempt_state_name(f->state), "reason",
			 f->reason ? json_string(pilot_reason_name(f->reason)) : json_null(), "exit_code",
			 f->has_exit_code ? json_integer(f->exit_code) : json_null(), "message", jstr(f->message));
}

int pilot_finish_from_json(const json_t *j, struct pilot_finish *out)
{
	struct dec d;
	struct pilot_finish f = { 0 };
	if (!dec_start(&d, j, "finish"))
		return d.err;
	d_attempt_state(&d, "state", &f.state);
	d_reason(&d, "reason", &f.reason);
	d_exit_code(&d, "exit_code", &f.has_exit_code, &f.exit_code);
	f.message = d_str(&d, "message");
	if (d.err)
		return d.err;
	*out = f;
	return 0;
}

json_t *pilot_heartbeat_reply_to_json(const struct pilot_heartbeat_reply *h)
{
	json_t *o = json_pack("{s:b,s:I,s:I}", "cancel_requested", h->cancel_requested, "lease_expires_ms",
			      (json_int_t)h->lease_expires_ms, "lease_ttl_ms", (json_int_t)h->lease_ttl_ms);
	if (o && h->cancel_requested && h->cancel_grace_ms >= 0)
		json_object_set_new(o, "cancel_grace_ms", json_integer((json_int_t)h->cancel_grace_ms));
	if (o && h->cancel_requested && h->requeue)
		json_object_set_new(o, "requeue", json_true());
	return o;
}

int pilot_heartbeat_reply_from_json(const json_t *j, struct pilot_heartbeat_reply *out)
{
	struct dec d;
	struct pilot_heartbeat_reply h = { 0 };
	if (!dec_start(&d, j, "heartbeat reply"))
		return d.err;
	h.cancel_requested = d_bool(&d, "cancel_requested");
	/* Absent (a server from before grace periods, or none asked): the agent's own. */
	h.cancel_grace_ms = d_int_or(&d, "cancel_grace_ms", PILOT_CANCEL_GRACE_AGENT);
	if (h.cancel_grace_ms < 0)
		h.cancel_grace_ms = PILOT_CANCEL_GRACE_AGENT;
	h.lease_expires_ms = d_int(&d, "lease_expires_ms");
	h.lease_ttl_ms = d_int(&d, "lease_ttl_ms");
	h.requeue = h.cancel_requested && d_bool(&d, "requeue");
	if (d.err)
		return d.err;
	*out = h;
	return 0;
}

/* ---- lists ---- */

#define LIST_CODEC(type, key, item_to, item_from, item_clear, extra_to, extra_from)                   \
	json_t *type##_list_to_json(const struct type##_list *l)                                        \
	{                                                                                               \
		json_t *a = json_array();                                                               \
		for (size_t i = 0; i < l->n; i++)                                                       \
			json_array_append_new(a, item_to(&l->items[i]));                                \
		json_t *o = json_object();                                                              \
		json_object_set_new(o, key, a);                                                         \
		extra_to;                                                                               \
		return o;                                                                               \
	}                                                                                               \
	int type##_list_from_json(const json_t *j, struct type##_list *out)                             \
	{                                                                                               \
		struct type##_list l = { 0 };                                                           \
		json_t *a = json_object_get(j, key);                                                    \
		if (!json_is_array(a))                                                                  \
			return pilot_error_set(PILOT_EINVALID, "invalid list: '%s' must be an array", key); \
		size_t n = json_array_size(a);                                                          \
		l.items = pilot_xcalloc(n ? n : 1, sizeof(*l.items));                                   \
		for (size_t i = 0; i < n; i++) {                                                        \
			int e = item_from(json_array_get(a, i), &l.items[i]);                           \
			if (e < 0) {                                                                    \
				for (size_t k = 0; k < l.n; k++)                                        \
					item_clear(&l.items[k]);                                        \
				free(l.items);                                                          \
				return e;                                                               \
			}                                                                               \
			l.n++;                                                                          \
		}                                                                                       \
		extra_from;                                                                             \
		*out = l;                                                                               \
		return 0;                                                                               \
	}

LIST_CODEC(pilot_run, "runs", pilot_run_to_json, pilot_run_from_json, pilot_run_clear,
	   json_object_set_new(o, "next_after", l->next_after[0] ? json_string(l->next_after) : json_null()),
	   {
		   const char *na = json_string_value(json_object_get(j, "next_after"));
		   if (na && strlen(na) < PILOT_ID_SIZE)
			   memcpy(l.next_after, na, strlen(na) + 1);
	   })
LIST_CODEC(pilot_event, "events", pilot_event_to_json, pilot_event_from_json, pilot_event_clear,
	   json_object_set_new(o, "last_seq", json_integer(l->last_seq)),
	   { l.last_seq = json_integer_value(json_object_get(j, "last_seq")); })
LIST_CODEC(pilot_agent, "agents", pilot_agent_info_to_json, pilot_agent_info_from_json, pilot_agent_info_clear, ,)
LIST_CODEC(pilot_block, "blocklist", pilot_block_to_json, pilot_block_from_json, pilot_block_clear, ,)
LIST_CODEC(pilot_artifact, "artifacts", pilot_artifact_to_json, pilot_artifact_from_json, pilot_artifact_clear, ,)
LIST_CODEC(pilot_metric, "metrics", pilot_metric_to_json, pilot_metric_from_json, pilot_metric_clear, ,)

/* ---- errors ---- */

static const int err_codes[] = {
	PILOT_EFAIL, PILOT_ENOTFOUND, PILOT_ECONFLICT, PILOT_EINVALID, PILOT_EUNAVAILABLE, PILOT_EAUTH,
	PILOT_EFORBIDDEN, PILOT_EIO, PILOT_ENOMEM, PILOT_ELIMIT, PILOT_EAMBIGUOUS, PILOT_ECANCELED,
};

int pilot_err_from_name(const char *name)
{
	for (size_t i = 0; name && i < ARRAY_SIZE(err_codes); i++)
		if (!strcmp(pilot_err_name(err_codes[i]), name))
			return err_codes[i];
	return PILOT_EFAIL;
}

json_t *pilot_error_to_json(int code, const char *message)
{
	return json_pack("{s:{s:s,s:o}}", "error", "code", pilot_err_name(code), "message", jstr(message ? message : ""));
}

int pilot_error_from_json(const json_t *j)
{
	json_t *e = json_object_get(j, "error");
	const char *code = json_string_value(json_object_get(e, "code"));
	const char *msg = json_string_value(json_object_get(e, "message"));
	int c = pilot_err_from_name(code);
	return pilot_error_set(c, "%s", msg && *msg ? msg : "the server reported an error");
}
