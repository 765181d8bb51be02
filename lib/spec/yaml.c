/* Loading pilot.yaml: libyaml's document API gives a node tree with positions; this
 * walks it field by field, interpolates each scalar value, checks it, and collects a
 * diagnostic for every mistake instead of stopping at the first one. Params are read
 * before anything else because every other value may refer to them. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <yaml.h>

#include "spec-internal.h"

#define MAX_TOP_KEYS 100
#define MAX_MAP_ENTRIES 1000
#define MAX_LIST_ITEMS 1000
#define MAX_COMMAND_ARGS 10000

enum top_key {
	K_NAME, K_IMAGE, K_RUNTIME, K_COMMAND, K_WORKDIR, K_ENV, K_SECRETS, K_PARAMS, K_RESOURCES,
	K_TIMEOUT, K_RETRY, K_REQUIRES, K_ARTIFACTS, K_IGNORE, K_PRIORITY, K_CONCURRENCY, K_SKIP_DUPLICATE,
	K_START_TIMEOUT, K_JOBS, K_NEEDS, K_MAX_FAILURES, K_COUNT
};
static const char *const top_keys[K_COUNT] = {
	"name", "image", "runtime", "command", "workdir", "env", "secrets", "params", "resources",
	"timeout", "retry", "requires", "artifacts", "ignore", "priority", "concurrency", "skip_duplicate",
	"start_timeout", "jobs", "needs", "max_failures",
};
static const char *const resource_keys[] = { "cpus", "memory", "gpus", "shm" };
static const char *const retry_keys[] = { "max_attempts", "on", "backoff", "max_backoff" };
static const char *const retry_on_names[] = { "exit_code", "timeout" };
static const char *const concurrency_keys[] = { "group", "max" };

struct param {
	const char *name;
	yaml_node_t *knode, *vnode; /* vnode NULL: declared without a default */
	const char *override;
	char *value;
	bool failed;
};

struct mark {
	char *path;
	unsigned line, col;
};

struct loader {
	const char *file;
	yaml_document_t *doc;
	yaml_node_t *root;
	const struct pilot_spec_vars *vars;
	struct diag_list diags;
	struct pilot_spec *spec;
	struct param *params;
	size_t nparams;
	size_t params_visible; /* while reading param defaults: the ones declared above */
	struct mark *marks;
	size_t nmarks;
	size_t expanded; /* bytes of values produced so far */
	/* Reading a job of a pipeline: "jobs.NAME", put before every path. quiet: reading
	 * the top-level fields again as a job's defaults (their mistakes are reported once). */
	const char *prefix;
	bool quiet;
	bool any; /* a pipeline may be loaded */
	struct pilot_spec_pipeline *pipeline;
};

struct pair {
	const char *key;
	yaml_node_t *k, *v;
};

static void err(struct loader *L, const yaml_node_t *n, const char *path, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static void err(struct loader *L, const yaml_node_t *n, const char *path, const char *fmt, ...)
{
	va_list ap;
	_cleanup_buf_ struct pilot_buf b = PILOT_BUF_INIT;
	_cleanup_free_ char *full = NULL;
	if (L->quiet)
		return;
	if (L->prefix)
		path = full = path && *path ? pilot_xasprintf("%s.%s", L->prefix, path) : pilot_xstrdup(L->prefix);
	va_start(ap, fmt);
	pilot_buf_vprintf(&b, fmt, ap);
	va_end(ap);
	diag_add(&L->diags, L->file, n ? (unsigned)n->start_mark.line + 1 : 0, n ? (unsigned)n->start_mark.column + 1 : 0,
		 path, "%s", pilot_buf_str(&b));
}

static void remember(struct loader *L, const yaml_node_t *n, const char *path)
{
	L->marks = pilot_xrealloc(L->marks, (L->nmarks + 1) * sizeof(*L->marks));
	L->marks[L->nmarks].path = L->prefix ? pilot_xasprintf("%s.%s", L->prefix, path) : pilot_xstrdup(path);
	L->marks[L->nmarks].line = (unsigned)n->start_mark.line + 1;
	L->marks[L->nmarks].col = (unsigned)n->start_mark.column + 1;
	L->nmarks++;
}

static const struct mark *find_mark(const struct loader *L, const char *path)
{
	for (size_t i = 0; i < L->nmarks; i++)
		if (!strcmp(L->marks[i].path, path))
			return &L->marks[i];
	return NULL;
}

static const char *kind(const yaml_node_t *n)
{
	switch (n->type) {
	case YAML_MAPPING_NODE:
		return "a mapping";
	case YAML_SEQUENCE_NODE:
		return "a list";
	default:
		return "a single value";
	}
}

/* "~", "null" or nothing, written plainly: YAML's null. */
static bool is_null(const yaml_node_t *n)
{
	if (!n)
		return true;
	if (n->type != YAML_SCALAR_NODE || n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
		return false;
	const char *s = (const char *)n->data.scalar.value;
	return !n->data.scalar.length || !strcmp(s, "~") || !strcmp(s, "null") || !strcmp(s, "Null") ||
	       !strcmp(s, "NULL");
}

/* The raw text of a scalar, or NULL (reported) when it is not one or holds a NUL. */
static const char *raw_scalar(struct loader *L, const yaml_node_t *n, const char *path, const char *want)
{
	if (n->type != YAML_SCALAR_NODE) {
		err(L, n, path, "expected %s, not %s", want, kind(n));
		return NULL;
	}
	const char *s = (const char *)n->data.scalar.value;
	if (strlen(s) != n->data.scalar.length) {
		err(L, n, path, "must not contain NUL characters");
		return NULL;
	}
	return s;
}

static const char *lookup(const char *name, void *ud, bool *quiet)
{
	struct loader *L = ud;
	for (size_t i = 0; i < L->params_visible; i++) {
		struct param *p = &L->params[i];
		if (!strcmp(p->name, name)) {
			*quiet = p->failed;
			return p->value;
		}
	}
	if (L->vars && L->vars->getenv)
		return L->vars->getenv(name, L->vars->ud);
	return getenv(name);
}

/* A scalar value, interpolated: a new string, or NULL when reported. */
static char *scalar(struct loader *L, const yaml_node_t *n, const char *path, const char *want)
{
	const char *raw = raw_scalar(L, n, path, want);
	if (!raw)
		return NULL;
	if (L->expanded > SPEC_MAX_EXPANDED_BYTES)
		return NULL; /* already reported */
	remember(L, n, path);
	char *out, *e;
	if (spec_interpolate(raw, lookup, L, &out, &e) < 0) {
		err(L, n, path, "%s", e);
		free(e);
		return NULL;
	}
	L->expanded += strlen(out);
	if (L->expanded > SPEC_MAX_EXPANDED_BYTES) {
		/* Said even while a job reads the top-level fields again: it is the repeats
		 * that add up. */
		bool quiet = L->quiet;
		L->quiet = false;
		err(L, n, path, "the spec is larger than %d MiB after interpolation", SPEC_MAX_EXPANDED_BYTES >> 20);
		L->quiet = quiet;
		free(out);
		return NULL;
	}
	/* The environment can hold any bytes; the normal form is JSON, which cannot. */
	if (!utf8_valid(out)) {
		err(L, n, path, "is not valid UTF-8 after interpolation");
		free(out);
		return NULL;
	}
	return out;
}

/* The entries of a mapping with scalar keys, duplicates and bad keys reported and
 * left out. A null node is an empty mapping. Caller frees *out. */
static size_t get_pairs(struct loader *L, const yaml_node_t *n, const char *path, size_t max, struct pair **out)
{
	*out = NULL;
	if (is_null(n))
		return 0;
	if (n->type != YAML_MAPPING_NODE) {
		err(L, n, path, "expected a mapping, not %s", kind(n));
		return 0;
	}
	size_t total = (size_t)(n->data.mapping.pairs.top - n->data.mapping.pairs.start);
	if (total > max) {
		err(L, n, path, "too many entries (at most %zu)", max);
		return 0;
	}
	struct pair *pairs = pilot_xcalloc(total ? total : 1, sizeof(*pairs));
	size_t np = 0;
	for (yaml_node_pair_t *pr = n->data.mapping.pairs.start; pr < n->data.mapping.pairs.top; pr++) {
		yaml_node_t *k = yaml_document_get_node(L->doc, pr->key);
		yaml_node_t *v = yaml_document_get_node(L->doc, pr->value);
		if (k->type != YAML_SCALAR_NODE) {
			err(L, k, path, "expected a key, not %s", kind(k));
			continue;
		}
		const char *key = (const char *)k->data.scalar.value;
		if (strlen(key) != k->data.scalar.length) {
			err(L, k, path, "a key must not contain NUL characters");
			continue;
		}
		bool dup = false;
		for (size_t i = 0; i < np && !dup; i++)
			dup = !strcmp(pairs[i].key, key);
		if (dup) {
			err(L, k, path, "duplicate key '%s'", key);
			continue;
		}
		pairs[np++] = (struct pair){ key, k, v };
	}
	*out = pairs;
	return np;
}

static void unknown_key(struct loader *L, const struct pair *p, const char *path, const char *const *known,
			size_t nknown)
{
	const char *s = pilot_suggest(p->key, known, nknown);
	if (s)
		err(L, p->k, path, "unknown key '%s' (did you mean '%s'?)", p->key, s);
	else
		err(L, p->k, path, "unknown key '%s'", p->key);
}

/* The items of a list of values; a single value is a list of one, null an empty list.
 * Returns the count of nodes in *items (pointers into the document), or 0. */
static size_t get_items(struct loader *L, yaml_node_t *n, const char *path, size_t max, yaml_node_t ***items)
{
	*items = NULL;
	if (is_null(n))
		return 0;
	if (n->type == YAML_SCALAR_NODE) {
		*items = pilot_xmalloc(sizeof(**items));
		(*items)[0] = n;
		return 1;
	}
	if (n->type != YAML_SEQUENCE_NODE) {
		err(L, n, path, "expected a list, not %s", kind(n));
		return 0;
	}
	size_t total = (size_t)(n->data.sequence.items.top - n->data.sequence.items.start);
	if (total > max) {
		err(L, n, path, "too many items (at most %zu)", max);
		return 0;
	}
	*items = pilot_xcalloc(total ? total : 1, sizeof(**items));
	for (size_t i = 0; i < total; i++)
		(*items)[i] = yaml_document_get_node(L->doc, n->data.sequence.items.start[i]);
	return total;
}

/* ---- field readers ------------------------------------------------------------ */

static void read_params(struct loader *L, yaml_node_t *n)
{
	_cleanup_free_ struct pair *pairs = NULL;
	size_t np = get_pairs(L, n, "params", MAX_MAP_ENTRIES, &pairs);
	L->params = pilot_xcalloc(np ? np : 1, sizeof(*L->params));
	for (size_t i = 0; i < np; i++) {
		_cleanup_free_ char *path = pilot_xasprintf("params.%s", pairs[i].key);
		if (!pilot_spec_env_name_valid(pairs[i].key)) {
			err(L, pairs[i].k, "params", "invalid param name '%s' (expected letters, digits and '_', "
			    "not starting with a digit)", pairs[i].key);
			continue;
		}
		yaml_node_t *v = pairs[i].v;
		if (!is_null(v) && !raw_scalar(L, v, path, "a single value"))
			continue;
		L->params[L->nparams++] = (struct param){ .name = pairs[i].key, .knode = pairs[i].k,
							  .vnode = is_null(v) ? NULL : v };
	}

	const char *names[MAX_MAP_ENTRIES];
	for (size_t i = 0; i < L->nparams; i++)
		names[i] = L->params[i].name;
	for (size_t i = 0; L->vars && i < L->vars->nparams; i++) {
		const char *arg = L->vars->params[i];
		const char *eq = strchr(arg, '=');
		if (!eq || eq == arg) {
			diag_add(&L->diags, L->file, 0, 0, NULL, "invalid --param '%s' (expected NAME=VALUE)", arg);
			continue;
		}
		_cleanup_free_ char *name = pilot_xstrndup(arg, (size_t)(eq - arg));
		struct param *p = NULL;
		for (size_t j = 0; j < L->nparams && !p; j++)
			if (!strcmp(L->params[j].name, name))
				p = &L->params[j];
		if (p && !utf8_valid(eq + 1)) {
			diag_add(&L->diags, L->file, 0, 0, NULL, "--param %s: the value is not valid UTF-8", name);
			continue;
		}
		if (p) {
			p->override = eq + 1;
			continue;
		}
		const char *s = pilot_suggest(name, names, L->nparams);
		if (s)
			diag_add(&L->diags, L->file, 0, 0, NULL, "unknown param '%s' given with --param (did you mean '%s'?)",
				 name, s);
		else if (L->nparams)
			diag_add(&L->diags, L->file, 0, 0, NULL, "unknown param '%s' given with --param", name);
		else
			diag_add(&L->diags, L->file, 0, 0, NULL,
				 "unknown param '%s' given with --param (the spec declares no params)", name);
	}

	for (size_t i = 0; i < L->nparams; i++) {
		struct param *p = &L->params[i];
		_cleanup_free_ char *path = pilot_xasprintf("params.%s", p->name);
		L->params_visible = i; /* a default may use the params above it */
		if (p->override) {
			p->value = pilot_xstrdup(p->override);
		} else if (p->vnode) {
			p->value = scalar(L, p->vnode, path, "a single value");
			p->failed = !p->value;
		} else {
			err(L, p->knode, path, "has no default; pass --param %s=VALUE", p->name);
			p->failed = true;
		}
		if (p->value)
			kv_add(&L->spec->params, &L->spec->nparams, p->name, p->value);
	}
	L->params_visible = L->nparams;
}

static void read_string(struct loader *L, yaml_node_t *n, const char *path, const char *(*check)(const char *),
			char **out)
{
	if (is_null(n))
		return;
	char *s = scalar(L, n, path, "a string");
	if (!s)
		return;
	const char *why = check ? check(s) : NULL;
	if (why) {
		err(L, n, path, "'%s' %s", s, why);
		free(s);
		return;
	}
	free(*out);
	*out = s;
}

static void read_runtime(struct loader *L, yaml_node_t *n)
{
	if (is_null(n))
		return;
	_cleanup_free_ char *s = scalar(L, n, "runtime", "a string");
	if (!s)
		return;
	bool ok;
	L->spec->runtime = runtime_parse(s, &ok);
	if (!ok) {
		static const char *const names[] = { "docker", "podman", "host" };
		const char *sug = pilot_suggest(s, names, ARRAY_SIZE(names));
		if (sug)
			err(L, n, "runtime", "unknown runtime '%s' (did you mean '%s'?)", s, sug);
		else
			err(L, n, "runtime", "unknown runtime '%s' (expected docker, podman or host)", s);
	}
}

static bool blank(const char *s)
{
	return !s[strspn(s, " \t\r\n")];
}

static void read_command(struct loader *L, yaml_node_t *n)
{
	struct pilot_spec *s = L->spec;
	if (is_null(n))
		return;
	if (n->type == YAML_SCALAR_NODE) {
		_cleanup_free_ char *text = scalar(L, n, "command", "a string");
		if (!text)
			return;
		if (blank(text)) {
			err(L, n, "command", "must not be empty");
			return;
		}
		strv_free(s->command, s->ncommand); /* a job's replaces the top-level one */
		s->command = NULL;
		s->ncommand = 0;
		strv_add(&s->command, &s->ncommand, "/bin/sh");
		strv_add(&s->command, &s->ncommand, "-c");
		strv_add(&s->command, &s->ncommand, text);
		s->shell = true;
		return;
	}
	if (n->type != YAML_SEQUENCE_NODE) {
		err(L, n, "command", "expected a string or a list, not %s", kind(n));
		return;
	}
	_cleanup_free_ yaml_node_t **items = NULL;
	size_t ni = get_items(L, n, "command", MAX_COMMAND_ARGS, &items);
	if (!ni) {
		if (n->data.sequence.items.top == n->data.sequence.items.start)
			err(L, n, "command", "must not be empty");
		return;
	}
	bool bad = false;
	char **argv = pilot_xcalloc(ni + 1, sizeof(*argv));
	for (size_t i = 0; i < ni; i++) {
		_cleanup_free_ char *path = pilot_xasprintf("command[%zu]", i);
		argv[i] = scalar(L, items[i], path, "a string");
		if (!argv[i])
			bad = true;
		else if (i == 0 && !argv[0][0]) {
			err(L, items[i], path, "the program must not be empty");
			bad = true;
		}
	}
	if (bad) {
		for (size_t i = 0; i < ni; i++)
			free(argv[i]);
		free(argv);
		return;
	}
	strv_free(s->command, s->ncommand);
	s->command = argv;
	s->ncommand = ni;
	s->shell = false;
}

static void read_env(struct loader *L, yaml_node_t *n)
{
	_cleanup_free_ struct pair *pairs = NULL;
	size_t np = get_pairs(L, n, "env", MAX_MAP_ENTRIES, &pairs);
	char buf[512];
	for (size_t i = 0; i < np; i++) {
		_cleanup_free_ char *path = pilot_xasprintf("env.%s", pairs[i].key);
		const char *why = check_env_name(pairs[i].key, buf, sizeof(buf));
		if (why) {
			err(L, pairs[i].k, "env", "%s", why);
			continue;
		}
		if (is_null(pairs[i].v)) {
			err(L, pairs[i].v, path, "expected a value (write \"\" for an empty one)");
			continue;
		}
		_cleanup_free_ char *v = scalar(L, pairs[i].v, path, "a single value");
		if (v)
			kv_set(&L->spec->env, &L->spec->nenv, pairs[i].key, v);
	}
}

static void read_requires(struct loader *L, yaml_node_t *n)
{
	_cleanup_free_ struct pair *pairs = NULL;
	size_t np = get_pairs(L, n, "requires", MAX_MAP_ENTRIES, &pairs);
	for (size_t i = 0; i < np; i++) {
		_cleanup_free_ char *path = pilot_xasprintf("requires.%s", pairs[i].key);
		const char *why = check_label(pairs[i].key);
		if (why) {
			err(L, pairs[i].k, "requires", "'%s': %s", pairs[i].key, why);
			continue;
		}
		if (is_null(pairs[i].v)) {
			err(L, pairs[i].v, path, "expected a value");
			continue;
		}
		_cleanup_free_ char *v = scalar(L, pairs[i].v, path, "a single value");
		if (v)
			kv_set(&L->spec->requires, &L->spec->nrequires, pairs[i].key, v);
	}
}

/* A list of strings (or one string), each passing check. env_names: check as
 * environment variable names instead. */
static void read_list(struct loader *L, yaml_node_t *n, const char *name, const char *(*check)(const char *),
		      bool env_names, char ***out, size_t *nout)
{
	_cleanup_free_ yaml_node_t **items = NULL;
	size_t ni = get_items(L, n, name, MAX_LIST_ITEMS, &items);
	char buf[512];
	strv_free(*out, *nout); /* a job's list replaces the top-level one */
	*out = NULL;
	*nout = 0;
	for (size_t i = 0; i < ni; i++) {
		_cleanup_free_ char *path = pilot_xasprintf("%s[%zu]", name, i);
		_cleanup_free_ char *v = scalar(L, items[i], path, "a string");
		if (!v)
			continue;
		const char *why = env_names ? check_env_name(v, buf, sizeof(buf)) : check(v);
		if (why) {
			err(L, items[i], path, env_names ? "%s%s" : "'%s' %s", env_names ? "" : v, why);
			continue;
		}
		strv_add(out, nout, v);
	}
}

static void read_bool(struct loader *L, yaml_node_t *n, const char *path, bool *out)
{
	_cleanup_free_ char *s = scalar(L, n, path, "true or false");
	if (!s)
		return;
	if (!strcmp(s, "true") || !strcmp(s, "yes"))
		*out = true;
	else if (!strcmp(s, "false") || !strcmp(s, "no"))
		*out = false;
	else
		err(L, n, path, "expected true or false, not '%s'", s);
}

static bool read_int(struct loader *L, yaml_node_t *n, const char *path, int64_t min, int64_t max, int64_t *out)
{
	_cleanup_free_ char *s = scalar(L, n, path, "a number");
	if (!s)
		return false;
	if (pilot_parse_int64(s, min, max, out) < 0) {
		err(L, n, path, "%s", pilot_error_last());
		return false;
	}
	return true;
}

/* A duration in ms; positive unless allow_zero. */
static bool read_duration(struct loader *L, yaml_node_t *n, const char *path, bool allow_zero, int64_t *out)
{
	_cleanup_free_ char *s = scalar(L, n, path, "a duration");
	int64_t ms;
	if (!s)
		return false;
	if (pilot_parse_duration(s, &ms) < 0) {
		err(L, n, path, "%s", pilot_error_last());
		return false;
	}
	if (ms > SPEC_MAX_DURATION_MS) {
		err(L, n, path, "duration '%s' is too long (at most 3650d)", s);
		return false;
	}
	if (!ms && !allow_zero) {
		err(L, n, path, "must be longer than 0%s", strcmp(path, "timeout") ? "" : " (leave timeout out for no limit)");
		return false;
	}
	*out = ms;
	return true;
}

static bool read_size(struct loader *L, yaml_node_t *n, const char *path, uint64_t *out)
{
	_cleanup_free_ char *s = scalar(L, n, path, "a size");
	uint64_t v;
	if (!s)
		return false;
	if (pilot_parse_size(s, &v) < 0) {
		err(L, n, path, "%s", pilot_error_last());
		return false;
	}
	if (v > (uint64_t)INT64_MAX) {
		err(L, n, path, "size '%s' is too large", s);
		return false;
	}
	if (!v) {
		err(L, n, path, "must be larger than 0");
		return false;
	}
	*out = v;
	return true;
}

static void read_resources(struct loader *L, yaml_node_t *n)
{
	struct pilot_spec_resources *r = &L->spec->resources;
	_cleanup_free_ struct pair *pairs = NULL;
	size_t np = get_pairs(L, n, "resources", MAX_TOP_KEYS, &pairs);
	char buf[256];
	for (size_t i = 0; i < np; i++) {
		const struct pair *p = &pairs[i];
		_cleanup_free_ char *path = pilot_xasprintf("resources.%s", p->key);
		bool known = false;
		for (size_t k = 0; k < ARRAY_SIZE(resource_keys); k++)
			known |= !strcmp(p->key, resource_keys[k]);
		if (!known) {
			unknown_key(L, p, "resources", resource_keys, ARRAY_SIZE(resource_keys));
			continue;
		}
		if (is_null(p->v))
			continue; /* the default: no limit */
		if (!strcmp(p->key, "cpus")) {
			_cleanup_free_ char *s = scalar(L, p->v, path, "a number");
			const char *why = s ? parse_cpus(s, &r->cpus_milli, buf, sizeof(buf)) : NULL;
			if (why)
				err(L, p->v, path, "%s", why);
		} else if (!strcmp(p->key, "memory")) {
			read_size(L, p->v, path, &r->memory);
		} else if (!strcmp(p->key, "shm")) {
			read_size(L, p->v, path, &r->shm);
		} else {
			_cleanup_free_ char *s = scalar(L, p->v, path, "a number");
			int64_t g;
			if (!s)
				continue;
			if (!strcmp(s, "all"))
				r->gpus = PILOT_SPEC_GPUS_ALL;
			else if (pilot_parse_int64(s, 0, SPEC_MAX_GPUS, &g) == 0)
				r->gpus = (int)g;
			else
				err(L, p->v, path, "invalid GPU count '%s' (expected a number from 0 to %d, or all)", s,
				    SPEC_MAX_GPUS);
		}
	}
}

static void read_retry(struct loader *L, yaml_node_t *n)
{
	struct pilot_spec_retry *r = &L->spec->retry;
	_cleanup_free_ struct pair *pairs = NULL;
	size_t np = get_pairs(L, n, "retry", MAX_TOP_KEYS, &pairs);
	for (size_t i = 0; i < np; i++) {
		const struct pair *p = &pairs[i];
		_cleanup_free_ char *path = pilot_xasprintf("retry.%s", p->key);
		int64_t v;
		if (!strcmp(p->key, "max_attempts")) {
			if (!is_null(p->v) && read_int(L, p->v, path, 1, PILOT_SPEC_MAX_ATTEMPTS, &v))
				r->max_attempts = (int)v;
		} else if (!strcmp(p->key, "backoff")) {
			if (!is_null(p->v))
				read_duration(L, p->v, path, true, &r->backoff_ms);
		} else if (!strcmp(p->key, "max_backoff")) {
			if (!is_null(p->v))
				read_duration(L, p->v, path, false, &r->max_backoff_ms);
		} else if (!strcmp(p->key, "on")) {
			_cleanup_free_ yaml_node_t **items = NULL;
			size_t ni = get_items(L, p->v, path, MAX_LIST_ITEMS, &items);
			unsigned on = 0;
			bool bad = is_null(p->v) ? false : (p->v->type != YAML_SCALAR_NODE && p->v->type != YAML_SEQUENCE_NODE);
			for (size_t j = 0; j < ni; j++) {
				_cleanup_free_ char *ipath = pilot_xasprintf("retry.on[%zu]", j);
				_cleanup_free_ char *s = scalar(L, items[j], ipath, "a string");
				if (!s) {
					bad = true;
					continue;
				}
				if (!strcmp(s, "exit_code")) {
					on |= PILOT_SPEC_RETRY_EXIT_CODE;
				} else if (!strcmp(s, "timeout")) {
					on |= PILOT_SPEC_RETRY_TIMEOUT;
				} else {
					const char *sug = pilot_suggest(s, retry_on_names, ARRAY_SIZE(retry_on_names));
					err(L, items[j], ipath, "unknown failure '%s' (%s%s%s)", s,
					    sug ? "did you mean '" : "expected exit_code or timeout", sug ? sug : "",
					    sug ? "'?" : "");
					bad = true;
				}
			}
			if (!bad)
				r->on = on;
		} else {
			unknown_key(L, p, "retry", retry_keys, ARRAY_SIZE(retry_keys));
		}
	}
}

/* "concurrency: NAME" (one at a time) or "concurrency: {group: NAME, max: N}". */
static void read_concurrency(struct loader *L, yaml_node_t *n)
{
	struct pilot_spec *s = L->spec;
	int64_t v;
	if (is_null(n))
		return;
	if (n->type == YAML_SCALAR_NODE) {
		read_string(L, n, "concurrency", check_name, &s->concurrency_group);
		s->concurrency_max = 1;
		return;
	}
	if (n->type != YAML_MAPPING_NODE) {
		err(L, n, "concurrency", "expected a group name or a mapping {group: NAME, max: N}, not %s", kind(n));
		return;
	}
	_cleanup_free_ struct pair *pairs = NULL;
	size_t np = get_pairs(L, n, "concurrency", MAX_TOP_KEYS, &pairs);
	bool has_group = false;
	s->concurrency_max = 1;
	for (size_t i = 0; i < np; i++) {
		const struct pair *p = &pairs[i];
		if (!strcmp(p->key, "group")) {
			has_group = true;
			if (is_null(p->v))
				err(L, p->v, "concurrency.group", "must not be empty");
			else
				read_string(L, p->v, "concurrency.group", check_name, &s->concurrency_group);
		} else if (!strcmp(p->key, "max")) {
			if (!is_null(p->v) && read_int(L, p->v, "concurrency.max", 1, PILOT_SPEC_MAX_CONCURRENCY, &v))
				s->concurrency_max = (int)v;
		} else {
			unknown_key(L, p, "concurrency", concurrency_keys, ARRAY_SIZE(concurrency_keys));
		}
	}
	if (!has_group)
		err(L, n, "concurrency", "the group is missing (e.g. 'concurrency: {group: gpu, max: 2}')");
}

static void read_top(struct loader *L, enum top_key k, yaml_node_t *n)
{
	struct pilot_spec *s = L->spec;
	int64_t v;
	switch (k) {
	case K_NAME:
		if (is_null(n))
			err(L, n, "name", "must not be empty (every spec needs a name, e.g. 'name: train')");
		else
			read_string(L, n, "name", check_name, &s->name);
		break;
	case K_IMAGE:
		read_string(L, n, "image", check_image, &s->image);
		break;
	case K_RUNTIME:
		read_runtime(L, n);
		break;
	case K_COMMAND:
		read_command(L, n);
		break;
	case K_WORKDIR:
		read_string(L, n, "workdir", check_workdir, &s->workdir);
		break;
	case K_ENV:
		read_env(L, n);
		break;
	case K_SECRETS:
		read_list(L, n, "secrets", NULL, true, &s->secrets, &s->nsecrets);
		break;
	case K_PARAMS:
		break; /* read first, in read_params */
	case K_RESOURCES:
		read_resources(L, n);
		break;
	case K_TIMEOUT:
		if (!is_null(n))
			read_duration(L, n, "timeout", false, &s->timeout_ms);
		break;
	case K_RETRY:
		read_retry(L, n);
		break;
	case K_REQUIRES:
		read_requires(L, n);
		break;
	case K_ARTIFACTS:
		read_list(L, n, "artifacts", check_artifact, false, &s->artifacts, &s->nartifacts);
		break;
	case K_IGNORE:
		read_list(L, n, "ignore", check_ignore, false, &s->ignore, &s->nignore);
		break;
	case K_PRIORITY:
		if (!is_null(n) && read_int(L, n, "priority", 0, 100, &v))
			s->priority = (int)v;
		break;
	case K_CONCURRENCY:
		read_concurrency(L, n);
		break;
	case K_SKIP_DUPLICATE:
		if (!is_null(n))
			read_bool(L, n, "skip_duplicate", &s->skip_duplicate);
		break;
	case K_START_TIMEOUT:
		if (!is_null(n))
			read_duration(L, n, "start_timeout", false, &s->start_timeout_ms);
		break;
	case K_JOBS:
	case K_NEEDS:
	case K_MAX_FAILURES:
	case K_COUNT:
		break; /* read by read_doc and read_jobs */
	}
}

/* The mark of path: in the job being read first, then at the top level. */
static const struct mark *job_mark(const struct loader *L, const char *path)
{
	const struct mark *m = NULL;
	if (L->prefix) {
		_cleanup_free_ char *full = pilot_xasprintf("%s.%s", L->prefix, path);
		m = find_mark(L, full);
	}
	return m ? m : find_mark(L, path);
}

static void cross_report(void *ud, const char *path, const char *msg)
{
	struct loader *L = ud;
	const struct mark *m = job_mark(L, path);
	if (!m && !strcmp(path, "image"))
		m = job_mark(L, "runtime");
	_cleanup_free_ char *full = L->prefix ? pilot_xasprintf("%s.%s", L->prefix, path) : NULL;
	if (m)
		diag_add(&L->diags, L->file, m->line, m->col, full ? full : path, "%s", msg);
	else
		err(L, L->root, path, "%s", msg);
}

/* ---- pipelines ------------------------------------------------------------------ */

struct job_src {
	const char *name;
	yaml_node_t *k, *v;
	struct pair *pairs;
	size_t np;
	yaml_node_t **need_nodes;
	size_t nneeds;
	int *need_idx;   /* index in the job list, -1 when unknown */
	char *path;      /* "jobs.NAME" */
	struct pilot_spec *spec;
	int mark;        /* cycle search: 0 unseen, 1 on the path, 2 done */
};

/* Fields a job cannot set itself, and why. */
static const char *job_key_refused(enum top_key k)
{
	switch (k) {
	case K_NAME:
		return "a job's name is its key under jobs:";
	case K_PARAMS:
		return "params are declared at the top level, for every job";
	case K_IGNORE:
		return "the jobs of a pipeline share one bundle: set ignore at the top level";
	case K_JOBS:
		return "jobs do not nest";
	case K_MAX_FAILURES:
		return "max_failures is the pipeline's: set it at the top level";
	default:
		return NULL;
	}
}

/* One job: the top-level fields again (quietly) as its defaults, then its own. */
static void read_job(struct loader *L, struct job_src *j, const struct pair *top, size_t ntop)
{
	size_t before = L->diags.n;
	L->spec = j->spec = spec_new();
	L->quiet = true;
	for (size_t i = 0; i < ntop; i++)
		for (size_t k = 0; k < K_COUNT; k++)
			if (!strcmp(top[i].key, top_keys[k]) && k != K_NAME && k != K_PARAMS && k != K_JOBS &&
			    k != K_NEEDS && k != K_MAX_FAILURES)
				read_top(L, (enum top_key)k, top[i].v); /* ignore too: the jobs share it */
	L->quiet = false;
	j->spec->name = pilot_xstrdup(j->name);
	for (size_t i = 0; i < L->nparams; i++)
		if (L->params[i].value)
			kv_add(&j->spec->params, &j->spec->nparams, L->params[i].name, L->params[i].value);
	L->prefix = j->path;
	for (size_t i = 0; i < j->np; i++) {
		const struct pair *p = &j->pairs[i];
		size_t k;
		for (k = 0; k < K_COUNT && strcmp(p->key, top_keys[k]); k++)
			;
		if (k == K_COUNT) {
			unknown_key(L, p, NULL, top_keys, K_COUNT);
		} else if (job_key_refused((enum top_key)k)) {
			err(L, p->k, p->key, "%s", job_key_refused((enum top_key)k));
		} else if (k == K_NEEDS) {
			free(j->need_nodes);
			j->nneeds = get_items(L, p->v, "needs", PILOT_SPEC_MAX_JOBS, &j->need_nodes);
		} else {
			read_top(L, (enum top_key)k, p->v);
		}
	}
	if (!j->spec->workdir)
		j->spec->workdir = pilot_xstrdup(PILOT_SPEC_DEFAULT_WORKDIR);
	if (L->diags.n == before)
		check_cross(j->spec, cross_report, L);
	L->prefix = NULL;
}

/* The names in each job's needs, as indexes; mistakes reported. */
static void resolve_needs(struct loader *L, struct job_src *jobs, size_t n)
{
	const char **names = pilot_xcalloc(n, sizeof(*names));
	for (size_t i = 0; i < n; i++)
		names[i] = jobs[i].name;
	for (size_t i = 0; i < n; i++) {
		struct job_src *j = &jobs[i];
		j->need_idx = pilot_xcalloc(j->nneeds ? j->nneeds : 1, sizeof(*j->need_idx));
		L->prefix = j->path;
		for (size_t a = 0; a < j->nneeds; a++) {
			_cleanup_free_ char *path = pilot_xasprintf("needs[%zu]", a);
			const char *name = raw_scalar(L, j->need_nodes[a], path, "a job's name");
			int found = -1;
			j->need_idx[a] = -1;
			if (!name)
				continue;
			for (size_t b = 0; b < n && found < 0; b++)
				if (!strcmp(jobs[b].name, name))
					found = (int)b;
			bool twice = false;
			for (size_t b = 0; b < a && !twice; b++)
				twice = found >= 0 && j->need_idx[b] == found;
			const char *sug = found < 0 ? pilot_suggest(name, names, n) : NULL;
			if (found == (int)i)
				err(L, j->need_nodes[a], path, "a job cannot need itself");
			else if (twice)
				err(L, j->need_nodes[a], path, "'%s' is listed twice", name);
			else if (found < 0 && sug)
				err(L, j->need_nodes[a], path, "unknown job '%s' (did you mean '%s'?)", name, sug);
			else if (found < 0)
				err(L, j->need_nodes[a], path, "unknown job '%s' (the jobs are under jobs:)", name);
			else
				j->need_idx[a] = found;
		}
		L->prefix = NULL;
	}
	free(names);
}

/* Depth first from job i; stack holds the path. A need leading back onto the path is
 * a cycle, reported at that need with the whole loop. */
static void find_cycles(struct loader *L, struct job_src *jobs, size_t i, size_t *stack, size_t depth)
{
	struct job_src *j = &jobs[i];
	j->mark = 1;
	stack[depth] = i;
	for (size_t a = 0; a < j->nneeds; a++) {
		int b = j->need_idx[a];
		if (b < 0 || jobs[b].mark == 2)
			continue;
		if (jobs[b].mark == 0) {
			find_cycles(L, jobs, (size_t)b, stack, depth + 1);
			continue;
		}
		_cleanup_buf_ struct pilot_buf loop = PILOT_BUF_INIT;
		size_t from = 0;
		while (stack[from] != (size_t)b)
			from++;
		for (size_t s = from; s <= depth; s++)
			pilot_buf_printf(&loop, "%s needs ", jobs[stack[s]].name);
		pilot_buf_printf(&loop, "%s", jobs[b].name);
		_cleanup_free_ char *path = pilot_xasprintf("needs[%zu]", a);
		L->prefix = j->path;
		err(L, j->need_nodes[a], path, "the needs make a cycle: %s", pilot_buf_str(&loop));
		L->prefix = NULL;
	}
	j->mark = 2;
}

/* "N" or "N%" of njobs, rounded up. */
static void read_max_failures(struct loader *L, yaml_node_t *n, size_t njobs, int *out)
{
	_cleanup_free_ char *s = scalar(L, n, "max_failures", "a number");
	int64_t v;
	if (!s)
		return;
	size_t len = strlen(s);
	if (len && s[len - 1] == '%') {
		s[len - 1] = '\0';
		if (pilot_parse_int64(s, 1, 100, &v) < 0) {
			err(L, n, "max_failures", "expected N, or N%% from 1%% to 100%%, not '%s%%'", s);
			return;
		}
		*out = (int)(((int64_t)njobs * v + 99) / 100);
		return;
	}
	if (pilot_parse_int64(s, 1, PILOT_SPEC_MAX_JOBS, &v) < 0) {
		err(L, n, "max_failures", "expected N from 1 to %d, or N%%, not '%s'", PILOT_SPEC_MAX_JOBS, s);
		return;
	}
	*out = (int)v;
}

static void read_jobs(struct loader *L, yaml_node_t *n, const struct pair *top, size_t ntop, yaml_node_t *max_failures)
{
	_cleanup_free_ struct pair *pairs = NULL;
	size_t nj = get_pairs(L, n, "jobs", PILOT_SPEC_MAX_JOBS, &pairs);
	if (!nj) {
		if (is_null(n) || n->type == YAML_MAPPING_NODE)
			err(L, n, "jobs", "expected at least one job (e.g. 'jobs: {train: {command: ...}}')");
		return;
	}
	struct job_src *jobs = pilot_xcalloc(nj, sizeof(*jobs));
	struct pilot_spec *base = L->spec;
	for (size_t i = 0; i < nj; i++) {
		struct job_src *j = &jobs[i];
		j->name = pairs[i].key;
		j->k = pairs[i].k;
		j->v = pairs[i].v;
		j->path = pilot_xasprintf("jobs.%s", j->name);
		const char *why = check_name(j->name);
		if (why)
			err(L, j->k, "jobs", "job name '%s' %s", j->name, why);
		j->np = get_pairs(L, j->v, j->path, MAX_TOP_KEYS, &j->pairs);
		read_job(L, j, top, ntop);
	}
	L->spec = base;
	resolve_needs(L, jobs, nj);
	size_t *stack = pilot_xcalloc(nj, sizeof(*stack));
	for (size_t i = 0; i < nj; i++)
		if (!jobs[i].mark)
			find_cycles(L, jobs, i, stack, 0);
	free(stack);

	struct pilot_spec_pipeline *p = pilot_xcalloc(1, sizeof(*p));
	p->name = pilot_xstrdup(base->name ? base->name : "");
	if (max_failures && !is_null(max_failures))
		read_max_failures(L, max_failures, nj, &p->max_failures);
	/* Each job after its needs: the first in file order whose needs are placed. */
	p->jobs = pilot_xcalloc(nj, sizeof(*p->jobs));
	bool *placed = pilot_xcalloc(nj, sizeof(*placed));
	for (bool progress = true; progress && p->njobs < nj;) {
		progress = false;
		for (size_t i = 0; i < nj && !progress; i++) {
			bool ready = !placed[i];
			for (size_t a = 0; a < jobs[i].nneeds && ready; a++)
				ready = jobs[i].need_idx[a] < 0 || placed[jobs[i].need_idx[a]];
			if (!ready)
				continue;
			struct pilot_spec_job *out = &p->jobs[p->njobs++];
			out->spec = jobs[i].spec;
			jobs[i].spec = NULL;
			for (size_t a = 0; a < jobs[i].nneeds; a++)
				if (jobs[i].need_idx[a] >= 0)
					strv_add(&out->needs, &out->nneeds, jobs[jobs[i].need_idx[a]].name);
			placed[i] = progress = true;
		}
	}
	free(placed);
	for (size_t i = 0; i < nj; i++) {
		pilot_spec_free(jobs[i].spec); /* the ones in a cycle */
		free(jobs[i].pairs);
		free(jobs[i].need_nodes);
		free(jobs[i].need_idx);
		free(jobs[i].path);
	}
	free(jobs);
	L->pipeline = p;
}

static void read_doc(struct loader *L)
{
	yaml_node_t *root = L->root;
	if (!root || is_null(root)) {
		diag_add(&L->diags, L->file, 1, 1, NULL, "empty spec (it needs at least a name, e.g. 'name: train')");
		return;
	}
	if (root->type != YAML_MAPPING_NODE) {
		err(L, root, NULL, "expected a mapping of settings (e.g. 'name: train'), not %s", kind(root));
		return;
	}
	_cleanup_free_ struct pair *pairs = NULL;
	size_t np = get_pairs(L, root, NULL, MAX_TOP_KEYS, &pairs);
	int found[K_COUNT];
	for (size_t k = 0; k < K_COUNT; k++)
		found[k] = -1;
	for (size_t i = 0; i < np; i++) {
		size_t k;
		for (k = 0; k < K_COUNT && strcmp(pairs[i].key, top_keys[k]); k++)
			;
		if (k == K_COUNT)
			unknown_key(L, &pairs[i], NULL, top_keys, K_COUNT);
		else
			found[k] = (int)i;
	}
	read_params(L, found[K_PARAMS] >= 0 ? pairs[found[K_PARAMS]].v : NULL);
	for (size_t i = 0; i < np; i++)
		for (size_t k = 0; k < K_COUNT; k++)
			if (found[k] == (int)i)
				read_top(L, (enum top_key)k, pairs[i].v);
	if (found[K_NAME] < 0)
		err(L, root, "name", "missing (every spec needs a name, e.g. 'name: train')");
	if (found[K_NEEDS] >= 0)
		err(L, pairs[found[K_NEEDS]].k, "needs", "only a job of a pipeline has needs (under jobs:)");
	if (found[K_JOBS] < 0 && found[K_MAX_FAILURES] >= 0)
		err(L, pairs[found[K_MAX_FAILURES]].k, "max_failures",
		    "only a pipeline (jobs:) has max_failures; an array takes --max-failures");
	if (found[K_JOBS] >= 0) {
		if (!L->any) {
			err(L, pairs[found[K_JOBS]].k, "jobs",
			    "this spec is a pipeline (jobs:), which this command does not take");
			return;
		}
		read_jobs(L, pairs[found[K_JOBS]].v, pairs, np,
			  found[K_MAX_FAILURES] >= 0 ? pairs[found[K_MAX_FAILURES]].v : NULL);
		return;
	}
	if (!L->spec->workdir)
		L->spec->workdir = pilot_xstrdup(PILOT_SPEC_DEFAULT_WORKDIR);
	if (!L->diags.n)
		check_cross(L->spec, cross_report, L);
}

/* Diagnostics in file order; the ones with no place (bad --param) first. */
static int diag_cmp(const void *a, const void *b)
{
	const struct pilot_spec_diag *x = a, *y = b;
	if (x->line != y->line)
		return x->line < y->line ? -1 : 1;
	if (x->column != y->column)
		return x->column < y->column ? -1 : 1;
	return 0;
}

static void sort_diags(struct diag_list *l)
{
	/* Insertion sort: stable, and the list is short and nearly in order already. */
	for (size_t i = 1; i < l->n; i++) {
		struct pilot_spec_diag d = l->items[i];
		size_t j = i;
		for (; j > 0 && diag_cmp(&l->items[j - 1], &d) > 0; j--)
			l->items[j] = l->items[j - 1];
		l->items[j] = d;
	}
}

static void yaml_problem(struct loader *L, const yaml_parser_t *p)
{
	const yaml_mark_t *m = p->problem_mark.line || p->problem_mark.column ? &p->problem_mark : &p->context_mark;
	if (p->error == YAML_MEMORY_ERROR)
		abort(); /* as pilot_xmalloc does */
	if (p->context)
		diag_add(&L->diags, L->file, (unsigned)m->line + 1, (unsigned)m->column + 1, NULL,
			 "invalid YAML: %s %s", p->problem ? p->problem : "syntax error", p->context);
	else
		diag_add(&L->diags, L->file, (unsigned)m->line + 1, (unsigned)m->column + 1, NULL, "invalid YAML: %s",
			 p->problem ? p->problem : "syntax error");
}

/* libyaml's scanner takes time quadratic in the depth of flow collections ([[[[...),
 * and no spec needs more than a few levels. Counting brackets, quoted or not, is
 * crude, but a real spec never comes near the limit. */
#define MAX_FLOW_DEPTH 1000

static bool too_deep(struct loader *L, const char *text, size_t len)
{
	size_t depth = 0, line = 1, col = 0;
	for (size_t i = 0; i < len; i++) {
		char c = text[i];
		if (((unsigned char)c & 0xc0) != 0x80)
			col++; /* columns count characters, as libyaml's do */
		if (c == '\n') {
			line++;
			col = 0;
		} else if (c == '[' || c == '{') {
			if (++depth > MAX_FLOW_DEPTH) {
				diag_add(&L->diags, L->file, (unsigned)line, (unsigned)col, NULL,
					 "nested too deeply (more than %d levels of [ and {)", MAX_FLOW_DEPTH);
				return true;
			}
		} else if ((c == ']' || c == '}') && depth) {
			depth--;
		}
	}
	return false;
}

static int load(const char *text, size_t len, const char *filename, const struct pilot_spec_vars *vars,
		struct pilot_spec **out, struct pilot_spec_pipeline **pipeline)
{
	struct loader L = { .file = filename ? filename : "pilot.yaml", .vars = vars, .any = pipeline != NULL };
	yaml_parser_t parser;
	yaml_document_t doc, doc2;
	int r = 0;

	*out = NULL;
	if (pipeline)
		*pipeline = NULL;
	diags_forget_last();
	if (len > SPEC_MAX_BYTES)
		return pilot_error_set(PILOT_ELIMIT, "spec '%s' is too large (at most 1 MiB)", L.file);
	if (too_deep(&L, text, len))
		return diag_list_publish(&L.diags);
	yaml_parser_initialize(&parser);
	yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
	if (!yaml_parser_load(&parser, &doc)) {
		yaml_problem(&L, &parser);
		yaml_parser_delete(&parser);
		return diag_list_publish(&L.diags);
	}
	L.doc = &doc;
	L.root = yaml_document_get_root_node(&doc);
	if (L.root) {
		/* A second document would be silently ignored; say so instead. */
		if (!yaml_parser_load(&parser, &doc2)) {
			yaml_problem(&L, &parser);
		} else {
			yaml_node_t *r2 = yaml_document_get_root_node(&doc2);
			if (r2)
				diag_add(&L.diags, L.file, (unsigned)r2->start_mark.line + 1,
					 (unsigned)r2->start_mark.column + 1, NULL,
					 "expected one YAML document, found a second one");
			yaml_document_delete(&doc2);
		}
	}
	L.spec = spec_new();
	read_doc(&L);

	for (size_t i = 0; i < L.nparams; i++)
		free(L.params[i].value);
	free(L.params);
	for (size_t i = 0; i < L.nmarks; i++)
		free(L.marks[i].path);
	free(L.marks);
	yaml_document_delete(&doc);
	yaml_parser_delete(&parser);

	if (L.diags.n || L.diags.truncated) {
		sort_diags(&L.diags);
		pilot_spec_free(L.spec);
		pilot_spec_pipeline_free(L.pipeline);
		return diag_list_publish(&L.diags);
	}
	if (L.pipeline) {
		pilot_spec_free(L.spec);
		*pipeline = L.pipeline;
		return r;
	}
	*out = L.spec;
	return r;
}

int pilot_spec_load_string(const char *text, size_t len, const char *filename,
			   const struct pilot_spec_vars *vars, struct pilot_spec **out)
{
	return load(text, len, filename, vars, out, NULL);
}

int pilot_spec_load_any_string(const char *text, size_t len, const char *filename,
			       const struct pilot_spec_vars *vars, struct pilot_spec **spec,
			       struct pilot_spec_pipeline **pipeline)
{
	return load(text, len, filename, vars, spec, pipeline);
}

int pilot_spec_load_any_file(const char *path, const struct pilot_spec_vars *vars, struct pilot_spec **spec,
			     struct pilot_spec_pipeline **pipeline)
{
	_cleanup_buf_ struct pilot_buf text = PILOT_BUF_INIT;
	*spec = NULL;
	if (pipeline)
		*pipeline = NULL;
	diags_forget_last();
	int r = pilot_read_file(path, SPEC_MAX_BYTES, &text);
	if (r == PILOT_ELIMIT)
		return pilot_error_set(PILOT_ELIMIT, "spec '%s' is too large (at most 1 MiB)", path);
	if (r < 0)
		return r; /* "cannot open 'PATH': why" says it all */
	return load(pilot_buf_str(&text), text.len, path, vars, spec, pipeline);
}

int pilot_spec_load_file(const char *path, const struct pilot_spec_vars *vars, struct pilot_spec **out)
{
	return pilot_spec_load_any_file(path, vars, out, NULL);
}
