/* The normal form of a spec as JSON, both ways. It is what a run stores and what an
 * agent gets back, so reading it is as strict as loading YAML: the same field checks,
 * and a spec that comes back equals the one that went out. */
#include <math.h>
#include <string.h>

#include <jansson.h>

#include "spec-internal.h"

/* ---- writing ------------------------------------------------------------------ */

struct writer {
	bool bad; /* a string jansson refused (not UTF-8) */
};

static json_t *str(struct writer *w, const char *s)
{
	json_t *j = json_string(s);
	if (!j) {
		w->bad = true;
		return json_null();
	}
	return j;
}

static json_t *strv(struct writer *w, char *const *v, size_t n)
{
	json_t *a = json_array();
	for (size_t i = 0; i < n; i++)
		json_array_append_new(a, str(w, v[i]));
	return a;
}

static json_t *kvs(struct writer *w, const struct pilot_kv *kv, size_t n)
{
	json_t *o = json_object();
	for (size_t i = 0; i < n; i++)
		if (json_object_set_new(o, kv[i].key, str(w, kv[i].value)) < 0)
			w->bad = true;
	return o;
}

/* Seconds, as an integer when whole so the common case reads naturally. */
static json_t *seconds(int64_t ms)
{
	if (ms % 1000 == 0)
		return json_integer(ms / 1000);
	return json_real((double)ms / 1000.0);
}

static json_t *opt_size(uint64_t v)
{
	return v ? json_integer((json_int_t)v) : json_null();
}

json_t *pilot_spec_to_json_value(const struct pilot_spec *s)
{
	struct writer w = { false };
	json_t *o = json_object();
	const char *rt = pilot_spec_runtime_name(s->runtime);

	json_object_set_new(o, "name", str(&w, s->name ? s->name : ""));
	json_object_set_new(o, "image", s->image ? str(&w, s->image) : json_null());
	json_object_set_new(o, "runtime", rt ? json_string(rt) : json_null());
	json_object_set_new(o, "command", strv(&w, s->command, s->ncommand));
	json_object_set_new(o, "shell", json_boolean(s->shell));
	json_object_set_new(o, "workdir", str(&w, s->workdir ? s->workdir : PILOT_SPEC_DEFAULT_WORKDIR));
	json_object_set_new(o, "env", kvs(&w, s->env, s->nenv));
	json_object_set_new(o, "secrets", strv(&w, s->secrets, s->nsecrets));
	json_object_set_new(o, "params", kvs(&w, s->params, s->nparams));

	json_t *res = json_object();
	if (s->resources.cpus_milli % 1000 == 0)
		json_object_set_new(res, "cpus", s->resources.cpus_milli ? json_integer(s->resources.cpus_milli / 1000)
									  : json_null());
	else
		json_object_set_new(res, "cpus", json_real((double)s->resources.cpus_milli / 1000.0));
	json_object_set_new(res, "memory", opt_size(s->resources.memory));
	json_object_set_new(res, "gpus", s->resources.gpus == PILOT_SPEC_GPUS_ALL ? json_string("all")
										   : json_integer(s->resources.gpus));
	json_object_set_new(res, "shm", opt_size(s->resources.shm));
	json_object_set_new(o, "resources", res);

	json_object_set_new(o, "timeout", s->timeout_ms ? seconds(s->timeout_ms) : json_null());

	json_t *retry = json_object();
	json_object_set_new(retry, "max_attempts", json_integer(s->retry.max_attempts));
	json_t *on = json_array();
	if (s->retry.on & PILOT_SPEC_RETRY_EXIT_CODE)
		json_array_append_new(on, json_string("exit_code"));
	if (s->retry.on & PILOT_SPEC_RETRY_TIMEOUT)
		json_array_append_new(on, json_string("timeout"));
	json_object_set_new(retry, "on", on);
	json_object_set_new(retry, "backoff", seconds(s->retry.backoff_ms));
	json_object_set_new(retry, "max_backoff", seconds(s->retry.max_backoff_ms));
	json_object_set_new(o, "retry", retry);

	json_object_set_new(o, "requires", kvs(&w, s->requires, s->nrequires));
	json_object_set_new(o, "artifacts", strv(&w, s->artifacts, s->nartifacts));
	json_object_set_new(o, "ignore", strv(&w, s->ignore, s->nignore));
	json_object_set_new(o, "priority", json_integer(s->priority));
	json_object_set_new(o, "concurrency", s->concurrency_group ? json_pack("{s:o,s:i}", "group", str(&w, s->concurrency_group),
									      "max", s->concurrency_max)
								   : json_null());
	json_object_set_new(o, "skip_duplicate", json_boolean(s->skip_duplicate));
	json_object_set_new(o, "start_timeout", s->start_timeout_ms ? seconds(s->start_timeout_ms) : json_null());
	if (w.bad) {
		json_decref(o);
		pilot_error_set(PILOT_EINVALID, "spec '%s' holds text that is not valid UTF-8", s->name ? s->name : "");
		return NULL;
	}
	return o;
}

char *pilot_spec_to_json(const struct pilot_spec *s)
{
	json_t *o = pilot_spec_to_json_value(s);
	if (!o)
		return NULL;
	/* 15 significant digits print 0.1 as 0.1 and still give back the same
	 * milliseconds: every duration and CPU count has at most 15 of them. */
	char *text = json_dumps(o, JSON_COMPACT | JSON_REAL_PRECISION(15));
	json_decref(o);
	if (!text)
		abort(); /* only on allocation failure, as pilot_xmalloc does */
	return text;
}

/* ---- reading ------------------------------------------------------------------ */

struct reader {
	struct pilot_spec *s;
	bool failed;
};

static int bad(struct reader *r, const char *path, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int bad(struct reader *r, const char *path, const char *fmt, ...)
{
	if (r->failed)
		return -1; /* keep the first message */
	r->failed = true;
	_cleanup_buf_ struct pilot_buf b = PILOT_BUF_INIT;
	va_list ap;
	va_start(ap, fmt);
	pilot_buf_vprintf(&b, fmt, ap);
	va_end(ap);
	pilot_error_set(PILOT_EINVALID, "invalid spec JSON: %s%s%s", path, *path ? ": " : "", pilot_buf_str(&b));
	return -1;
}

static const char *jkind(const json_t *j)
{
	switch (json_typeof(j)) {
	case JSON_OBJECT:
		return "an object";
	case JSON_ARRAY:
		return "an array";
	case JSON_STRING:
		return "a string";
	case JSON_INTEGER:
	case JSON_REAL:
		return "a number";
	case JSON_TRUE:
	case JSON_FALSE:
		return "a boolean";
	case JSON_NULL:
		return "null";
	}
	return "something else";
}

/* Objects: every key known, or an error naming the first unknown one. */
static int known_keys(struct reader *r, const json_t *o, const char *path, const char *const *keys, size_t n)
{
	const char *k;
	json_t *v;
	json_object_foreach((json_t *)o, k, v) {
		size_t i;
		for (i = 0; i < n && strcmp(k, keys[i]); i++)
			;
		if (i == n)
			return bad(r, path, "unknown key '%s'", k);
	}
	return 0;
}

static int get_str(struct reader *r, const json_t *j, const char *path, bool nullable,
		   const char *(*check)(const char *), char **out)
{
	if (!j || (nullable && json_is_null(j)))
		return 0;
	if (!json_is_string(j))
		return bad(r, path, "expected a string, not %s", jkind(j));
	const char *v = json_string_value(j);
	const char *why = check ? check(v) : NULL;
	if (why)
		return bad(r, path, "'%s' %s", v, why);
	free(*out);
	*out = pilot_xstrdup(v);
	return 0;
}

static int get_strv(struct reader *r, const json_t *j, const char *name, const char *(*check)(const char *),
		    bool env_names, char ***out, size_t *n)
{
	char buf[512];
	if (!j)
		return 0;
	if (!json_is_array(j))
		return bad(r, name, "expected an array, not %s", jkind(j));
	for (size_t i = 0; i < json_array_size(j); i++) {
		const json_t *e = json_array_get(j, i);
		_cleanup_free_ char *path = pilot_xasprintf("%s[%zu]", name, i);
		if (!json_is_string(e))
			return bad(r, path, "expected a string, not %s", jkind(e));
		const char *v = json_string_value(e);
		const char *why = env_names ? check_env_name(v, buf, sizeof(buf)) : check ? check(v) : NULL;
		if (why)
			return bad(r, path, env_names ? "%s%s" : "'%s' %s", env_names ? "" : v, why);
		strv_add(out, n, v);
	}
	return 0;
}

enum key_check { KEYS_ENV, KEYS_PARAM, KEYS_LABEL };

static int get_kvs(struct reader *r, const json_t *j, const char *name, enum key_check kc, struct pilot_kv **out,
		   size_t *n)
{
	char buf[512];
	const char *k;
	json_t *v;
	if (!j)
		return 0;
	if (!json_is_object(j))
		return bad(r, name, "expected an object, not %s", jkind(j));
	json_object_foreach((json_t *)j, k, v) {
		const char *why = NULL;
		if (kc == KEYS_ENV)
			why = check_env_name(k, buf, sizeof(buf));
		else if (kc == KEYS_PARAM)
			why = pilot_spec_env_name_valid(k) ? NULL : "invalid param name";
		else
			why = check_label(k);
		if (why)
			return bad(r, name, "'%s': %s", k, why);
		if (!json_is_string(v))
			return bad(r, name, "'%s': expected a string, not %s", k, jkind(v));
		kv_add(out, n, k, json_string_value(v));
	}
	return 0;
}

/* A number of seconds as milliseconds; nullable fields leave *ms alone on null. */
static int get_seconds(struct reader *r, const json_t *j, const char *path, bool nullable, bool allow_zero,
		       int64_t *ms)
{
	if (!j || (nullable && json_is_null(j)))
		return 0;
	if (!json_is_number(j))
		return bad(r, path, "expected a number of seconds, not %s", jkind(j));
	double v = json_number_value(j);
	if (!isfinite(v) || v < 0 || v * 1000.0 > (double)SPEC_MAX_DURATION_MS)
		return bad(r, path, "duration out of range");
	int64_t x = (int64_t)(v * 1000.0 + 0.5);
	if (!x && !allow_zero)
		return bad(r, path, "must be longer than 0");
	*ms = x;
	return 0;
}

static int get_int(struct reader *r, const json_t *j, const char *path, int64_t min, int64_t max, int64_t *out)
{
	if (!j)
		return 0;
	if (!json_is_integer(j))
		return bad(r, path, "expected an integer, not %s", jkind(j));
	json_int_t v = json_integer_value(j);
	if (v < min || v > max)
		return bad(r, path, "%lld is out of range (%lld..%lld)", (long long)v, (long long)min, (long long)max);
	*out = v;
	return 0;
}

static int get_size(struct reader *r, const json_t *j, const char *path, uint64_t *out)
{
	int64_t v = 0;
	if (!j || json_is_null(j))
		return 0;
	if (get_int(r, j, path, 1, INT64_MAX, &v) < 0)
		return -1;
	*out = (uint64_t)v;
	return 0;
}

static int read_command(struct reader *r, const json_t *cmd, const json_t *shell)
{
	struct pilot_spec *s = r->s;
	if (shell && !json_is_boolean(shell))
		return bad(r, "shell", "expected a boolean, not %s", jkind(shell));
	if (get_strv(r, cmd, "command", NULL, false, &s->command, &s->ncommand) < 0)
		return -1;
	s->shell = shell && json_is_true(shell);
	/* shell means the command came from a string: it must have the one form the
	 * loader makes, or the flag would lie. */
	if (s->shell && (s->ncommand != 3 || strcmp(s->command[0], "/bin/sh") || strcmp(s->command[1], "-c") ||
			 !s->command[2][strspn(s->command[2], " \t\r\n")]))
		return bad(r, "command", "with shell true, expected [\"/bin/sh\", \"-c\", SCRIPT]");
	if (!s->shell && s->ncommand && !s->command[0][0])
		return bad(r, "command[0]", "the program must not be empty");
	return 0;
}

static int read_resources(struct reader *r, const json_t *j)
{
	static const char *const keys[] = { "cpus", "memory", "gpus", "shm" };
	struct pilot_spec_resources *res = &r->s->resources;
	if (!j)
		return 0;
	if (!json_is_object(j))
		return bad(r, "resources", "expected an object, not %s", jkind(j));
	if (known_keys(r, j, "resources", keys, ARRAY_SIZE(keys)) < 0)
		return -1;
	const json_t *cpus = json_object_get(j, "cpus"), *gpus = json_object_get(j, "gpus");
	if (cpus && !json_is_null(cpus)) {
		if (!json_is_number(cpus))
			return bad(r, "resources.cpus", "expected a number, not %s", jkind(cpus));
		double v = json_number_value(cpus);
		if (!isfinite(v) || v <= 0 || v > 1000000)
			return bad(r, "resources.cpus", "out of range");
		res->cpus_milli = (int64_t)(v * 1000.0 + 0.5);
		if (!res->cpus_milli)
			return bad(r, "resources.cpus", "must be at least 0.001");
	}
	if (get_size(r, json_object_get(j, "memory"), "resources.memory", &res->memory) < 0 ||
	    get_size(r, json_object_get(j, "shm"), "resources.shm", &res->shm) < 0)
		return -1;
	if (json_is_string(gpus)) {
		if (strcmp(json_string_value(gpus), "all"))
			return bad(r, "resources.gpus", "expected a number or \"all\"");
		res->gpus = PILOT_SPEC_GPUS_ALL;
	} else if (gpus) {
		int64_t g = 0;
		if (get_int(r, gpus, "resources.gpus", 0, SPEC_MAX_GPUS, &g) < 0)
			return -1;
		res->gpus = (int)g;
	}
	return 0;
}

static int read_retry(struct reader *r, const json_t *j)
{
	static const char *const keys[] = { "max_attempts", "on", "backoff", "max_backoff" };
	struct pilot_spec_retry *rt = &r->s->retry;
	int64_t v;
	if (!j)
		return 0;
	if (!json_is_object(j))
		return bad(r, "retry", "expected an object, not %s", jkind(j));
	if (known_keys(r, j, "retry", keys, ARRAY_SIZE(keys)) < 0)
		return -1;
	const json_t *ma = json_object_get(j, "max_attempts"), *on = json_object_get(j, "on");
	if (ma) {
		if (get_int(r, ma, "retry.max_attempts", 1, PILOT_SPEC_MAX_ATTEMPTS, &v) < 0)
			return -1;
		rt->max_attempts = (int)v;
	}
	if (on) {
		if (!json_is_array(on))
			return bad(r, "retry.on", "expected an array, not %s", jkind(on));
		rt->on = 0;
		for (size_t i = 0; i < json_array_size(on); i++) {
			const char *n = json_string_value(json_array_get(on, i));
			if (n && !strcmp(n, "exit_code"))
				rt->on |= PILOT_SPEC_RETRY_EXIT_CODE;
			else if (n && !strcmp(n, "timeout"))
				rt->on |= PILOT_SPEC_RETRY_TIMEOUT;
			else
				return bad(r, "retry.on", "expected \"exit_code\" or \"timeout\"");
		}
	}
	if (get_seconds(r, json_object_get(j, "backoff"), "retry.backoff", false, true, &rt->backoff_ms) < 0 ||
	    get_seconds(r, json_object_get(j, "max_backoff"), "retry.max_backoff", false, false, &rt->max_backoff_ms) < 0)
		return -1;
	return 0;
}

static int read_concurrency(struct reader *r, const json_t *j)
{
	static const char *const keys[] = { "group", "max" };
	int64_t v;
	if (!j || json_is_null(j))
		return 0;
	if (!json_is_object(j))
		return bad(r, "concurrency", "expected an object, not %s", jkind(j));
	if (known_keys(r, j, "concurrency", keys, ARRAY_SIZE(keys)) < 0)
		return -1;
	const json_t *g = json_object_get(j, "group");
	if (!g)
		return bad(r, "concurrency.group", "missing");
	if (get_str(r, g, "concurrency.group", false, check_name, &r->s->concurrency_group) < 0 ||
	    get_int(r, json_object_get(j, "max"), "concurrency.max", 1, PILOT_SPEC_MAX_CONCURRENCY, &v) < 0)
		return -1;
	r->s->concurrency_max = json_object_get(j, "max") ? (int)v : 1;
	return 0;
}

static void cross_report(void *ud, const char *path, const char *msg)
{
	bad(ud, path, "%s", msg);
}

int pilot_spec_from_json_value(const json_t *j, struct pilot_spec **out)
{
	static const char *const keys[] = {
		"name", "image", "runtime", "command", "shell", "workdir", "env", "secrets", "params",
		"resources", "timeout", "retry", "requires", "artifacts", "ignore", "priority", "concurrency",
		"skip_duplicate", "start_timeout",
	};
	struct reader r = { .s = spec_new() };
	struct pilot_spec *s = r.s;
	int64_t v;
	*out = NULL;
	if (!json_is_object(j)) {
		bad(&r, "", "expected an object, not %s", j ? jkind(j) : "nothing");
		goto fail;
	}
	if (known_keys(&r, j, "", keys, ARRAY_SIZE(keys)) < 0)
		goto fail;
	const json_t *name = json_object_get(j, "name"), *rt = json_object_get(j, "runtime");
	if (!name) {
		bad(&r, "name", "missing");
		goto fail;
	}
	if (get_str(&r, name, "name", false, check_name, &s->name) < 0 ||
	    get_str(&r, json_object_get(j, "image"), "image", true, check_image, &s->image) < 0)
		goto fail;
	if (rt && !json_is_null(rt)) {
		bool ok = false;
		if (json_is_string(rt))
			s->runtime = runtime_parse(json_string_value(rt), &ok);
		if (!ok) {
			bad(&r, "runtime", "expected \"docker\", \"podman\", \"host\" or null");
			goto fail;
		}
	}
	if (read_command(&r, json_object_get(j, "command"), json_object_get(j, "shell")) < 0 ||
	    get_str(&r, json_object_get(j, "workdir"), "workdir", false, check_workdir, &s->workdir) < 0 ||
	    get_kvs(&r, json_object_get(j, "env"), "env", KEYS_ENV, &s->env, &s->nenv) < 0 ||
	    get_strv(&r, json_object_get(j, "secrets"), "secrets", NULL, true, &s->secrets, &s->nsecrets) < 0 ||
	    get_kvs(&r, json_object_get(j, "params"), "params", KEYS_PARAM, &s->params, &s->nparams) < 0 ||
	    read_resources(&r, json_object_get(j, "resources")) < 0 ||
	    get_seconds(&r, json_object_get(j, "timeout"), "timeout", true, false, &s->timeout_ms) < 0 ||
	    get_seconds(&r, json_object_get(j, "start_timeout"), "start_timeout", true, false, &s->start_timeout_ms) < 0 ||
	    read_retry(&r, json_object_get(j, "retry")) < 0 ||
	    get_kvs(&r, json_object_get(j, "requires"), "requires", KEYS_LABEL, &s->requires, &s->nrequires) < 0 ||
	    get_strv(&r, json_object_get(j, "artifacts"), "artifacts", check_artifact, false, &s->artifacts,
		     &s->nartifacts) < 0 ||
	    get_strv(&r, json_object_get(j, "ignore"), "ignore", check_ignore, false, &s->ignore, &s->nignore) < 0 ||
	    read_concurrency(&r, json_object_get(j, "concurrency")) < 0)
		goto fail;
	const json_t *skip = json_object_get(j, "skip_duplicate");
	if (skip && !json_is_boolean(skip)) {
		bad(&r, "skip_duplicate", "expected true or false, not %s", jkind(skip));
		goto fail;
	}
	s->skip_duplicate = json_is_true(skip);
	const json_t *prio = json_object_get(j, "priority");
	if (prio) {
		if (get_int(&r, prio, "priority", 0, 100, &v) < 0)
			goto fail;
		s->priority = (int)v;
	}
	if (!s->workdir)
		s->workdir = pilot_xstrdup(PILOT_SPEC_DEFAULT_WORKDIR);
	check_cross(s, cross_report, &r);
	if (r.failed)
		goto fail;
	*out = s;
	return 0;
fail:
	pilot_spec_free(s);
	return PILOT_EINVALID;
}

int pilot_spec_from_json(const char *text, struct pilot_spec **out)
{
	json_error_t e;
	*out = NULL;
	json_t *j = json_loads(text ? text : "", JSON_REJECT_DUPLICATES, &e);
	if (!j)
		return pilot_error_set(PILOT_EINVALID, "invalid spec JSON: line %d, column %d: %s", e.line, e.column,
				       e.text);
	int r = pilot_spec_from_json_value(j, out);
	json_decref(j);
	return r;
}
