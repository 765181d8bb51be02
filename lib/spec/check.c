/* The parts of lib/spec shared by the YAML loader and the JSON reader: the field checks
 * (one set, so both readers accept exactly the same specs), the diagnostics list,
 * building and freeing a spec, and finding pilot.yaml on disk. */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "spec-internal.h"

/* ---- diagnostics ------------------------------------------------------------ */

static __thread struct diag_list last_diags;

static void diag_vpush(struct diag_list *l, const char *file, unsigned line, unsigned col, const char *path,
		       const char *fmt, va_list ap) __attribute__((format(printf, 6, 0)));
static void diag_vpush(struct diag_list *l, const char *file, unsigned line, unsigned col, const char *path,
		       const char *fmt, va_list ap)
{
	_cleanup_buf_ struct pilot_buf b = PILOT_BUF_INIT;
	pilot_buf_vprintf(&b, fmt, ap);
	l->items = pilot_xrealloc(l->items, (l->n + 1) * sizeof(*l->items));
	struct pilot_spec_diag *d = &l->items[l->n++];
	d->file = pilot_xstrdup(file ? file : "pilot.yaml");
	d->line = line;
	d->column = col;
	d->path = pilot_xstrdup(path ? path : "");
	d->message = pilot_buf_steal(&b);
}

static void diag_push(struct diag_list *l, const char *file, unsigned line, unsigned col, const char *path,
		      const char *fmt, ...) __attribute__((format(printf, 6, 7)));
static void diag_push(struct diag_list *l, const char *file, unsigned line, unsigned col, const char *path,
		      const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	diag_vpush(l, file, line, col, path, fmt, ap);
	va_end(ap);
}

void diag_add(struct diag_list *l, const char *file, unsigned line, unsigned col, const char *path,
	      const char *fmt, ...)
{
	if (l->n >= SPEC_MAX_DIAGS) {
		l->truncated = true;
		return;
	}
	va_list ap;
	va_start(ap, fmt);
	diag_vpush(l, file, line, col, path, fmt, ap);
	va_end(ap);
}

void diag_list_clear(struct diag_list *l)
{
	for (size_t i = 0; i < l->n; i++) {
		free(l->items[i].file);
		free(l->items[i].path);
		free(l->items[i].message);
	}
	free(l->items);
	l->items = NULL;
	l->n = 0;
	l->truncated = false;
}

void diags_forget_last(void)
{
	diag_list_clear(&last_diags);
}

char *pilot_spec_diag_string(const struct pilot_spec_diag *d)
{
	struct pilot_buf b = PILOT_BUF_INIT;
	pilot_buf_puts(&b, d->file);
	if (d->line)
		pilot_buf_printf(&b, ":%u:%u", d->line, d->column);
	pilot_buf_puts(&b, ": ");
	if (d->path[0])
		pilot_buf_printf(&b, "%s: ", d->path);
	pilot_buf_puts(&b, d->message);
	return pilot_buf_steal(&b);
}

/* pilot_error_last() has room for about 2 KiB: keep whole lines and say how many
 * did not fit; the full list stays available from pilot_spec_last_diags(). */
#define ERROR_TEXT_MAX 1800

int diag_list_publish(struct diag_list *l)
{
	_cleanup_buf_ struct pilot_buf b = PILOT_BUF_INIT;
	if (l->truncated) {
		const char *file = l->n ? l->items[0].file : "pilot.yaml";
		diag_push(l, file, 0, 0, NULL, "too many errors, stopped after %d", SPEC_MAX_DIAGS);
	}
	diag_list_clear(&last_diags);
	last_diags = *l;
	l->items = NULL;
	l->n = 0;
	l->truncated = false;
	for (size_t i = 0; i < last_diags.n; i++) {
		_cleanup_free_ char *line = pilot_spec_diag_string(&last_diags.items[i]);
		if (b.len + strlen(line) + 1 > ERROR_TEXT_MAX) {
			pilot_buf_printf(&b, "\n(%zu more not shown)", last_diags.n - i);
			break;
		}
		if (i)
			pilot_buf_putc(&b, '\n');
		pilot_buf_puts(&b, line);
	}
	return pilot_error_set(PILOT_EINVALID, "%s", pilot_buf_str(&b));
}

const struct pilot_spec_diag *pilot_spec_last_diags(size_t *n)
{
	if (n)
		*n = last_diags.n;
	return last_diags.n ? last_diags.items : NULL;
}

/* ---- field checks ---------------------------------------------------------- */

bool utf8_valid(const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	while (*p) {
		unsigned c = *p, n;
		uint32_t cp;
		if (c < 0x80) {
			p++;
			continue;
		} else if ((c & 0xe0) == 0xc0) {
			n = 1;
			cp = c & 0x1f;
		} else if ((c & 0xf0) == 0xe0) {
			n = 2;
			cp = c & 0x0f;
		} else if ((c & 0xf8) == 0xf0) {
			n = 3;
			cp = c & 0x07;
		} else {
			return false;
		}
		for (unsigned i = 1; i <= n; i++) {
			if ((p[i] & 0xc0) != 0x80)
				return false;
			cp = (cp << 6) | (p[i] & 0x3f);
		}
		/* No overlong forms, surrogates or code points past U+10FFFF. */
		if ((n == 1 && cp < 0x80) || (n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) ||
		    (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff)
			return false;
		p += n + 1;
	}
	return true;
}

bool pilot_spec_name_valid(const char *s)
{
	if (!s || !(islower((unsigned char)s[0]) || isdigit((unsigned char)s[0])))
		return false;
	size_t i;
	for (i = 1; s[i]; i++) {
		unsigned char c = (unsigned char)s[i];
		if (!(islower(c) || isdigit(c) || c == '.' || c == '_' || c == '-'))
			return false;
	}
	return i <= SPEC_NAME_MAX;
}

const char *check_name(const char *s)
{
	if (!*s)
		return "must not be empty";
	if (strlen(s) > SPEC_NAME_MAX)
		return "is too long (at most 128 characters)";
	if (!pilot_spec_name_valid(s))
		return "must start with a lowercase letter or digit and hold only a-z, 0-9, '.', '_' and '-'";
	return NULL;
}

bool pilot_spec_env_name_valid(const char *s)
{
	if (!s || !(isalpha((unsigned char)s[0]) || s[0] == '_'))
		return false;
	for (size_t i = 1; s[i]; i++)
		if (!(isalnum((unsigned char)s[i]) || s[i] == '_'))
			return false;
	return true;
}

const char *check_env_name(const char *s, char *buf, size_t len)
{
	if (!pilot_spec_env_name_valid(s) || strlen(s) > 256) {
		snprintf(buf, len, "invalid variable name '%s' (expected letters, digits and '_', "
			 "not starting with a digit)", s);
		return buf;
	}
	/* The job's own PILOT_* variables (run id, attempt, metrics file) must be
	 * trustworthy, so a spec cannot set or shadow them. */
	if (!strncmp(s, "PILOT_", 6)) {
		snprintf(buf, len, "'%s' is reserved: names starting with PILOT_ are set by pilot", s);
		return buf;
	}
	return NULL;
}

const char *check_label(const char *s)
{
	if (!*s || strlen(s) > SPEC_LABEL_MAX || !isalnum((unsigned char)s[0]))
		goto bad;
	for (const char *p = s; *p; p++)
		if (!(isalnum((unsigned char)*p) || strchr("._/-", *p)))
			goto bad;
	return NULL;
bad:
	return "invalid label (expected at most 63 letters, digits, '.', '_', '/' or '-', "
	       "starting with a letter or digit)";
}

static bool has_control_or_space(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s <= ' ' || *s == 0x7f)
			return true;
	return false;
}

static bool has_control(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < ' ' || *s == 0x7f)
			return true;
	return false;
}

/* A ".." path component anywhere. */
static bool has_dotdot(const char *s)
{
	for (const char *p = s; (p = strstr(p, "..")); p += 2)
		if ((p == s || p[-1] == '/') && (p[2] == '\0' || p[2] == '/'))
			return true;
	return false;
}

const char *check_image(const char *s)
{
	if (!*s)
		return "must not be empty";
	if (strlen(s) > 512)
		return "is too long (at most 512 characters)";
	if (has_control_or_space(s) || s[0] == '-')
		return "is not a valid image reference (expected e.g. python:3.12-slim)";
	return NULL;
}

const char *check_workdir(const char *s)
{
	if (s[0] != '/')
		return "must be an absolute path";
	if (!strcmp(s, "/") || has_dotdot(s) || has_control(s) || strchr(s, ':') || strchr(s, ','))
		return "must be an absolute path other than '/', without '..', ':' or ','";
	if (strlen(s) > 1024)
		return "is too long";
	return NULL;
}

const char *check_artifact(const char *s)
{
	if (!*s)
		return "must not be empty";
	if (s[0] == '/' || has_dotdot(s))
		return "must be a pattern relative to workdir, without '..'";
	if (has_control(s))
		return "must not contain control characters";
	return NULL;
}

const char *check_ignore(const char *s)
{
	if (!*s)
		return "must not be empty";
	if (has_control(s))
		return "must not contain control characters";
	return NULL;
}

const char *parse_cpus(const char *s, int64_t *milli, char *buf, size_t len)
{
	const char *p = s;
	int64_t whole = 0, frac = 0;
	int places = 0;
	if (!isdigit((unsigned char)*p))
		goto bad;
	while (isdigit((unsigned char)*p)) {
		if (whole > 1000000)
			goto bad;
		whole = whole * 10 + (*p++ - '0');
	}
	if (*p == '.') {
		p++;
		if (!isdigit((unsigned char)*p))
			goto bad;
		while (isdigit((unsigned char)*p)) {
			if (++places > 3) {
				snprintf(buf, len, "'%s' has more than three decimal places", s);
				return buf;
			}
			frac = frac * 10 + (*p++ - '0');
		}
	}
	if (*p)
		goto bad;
	while (places++ < 3)
		frac *= 10;
	if (whole > 1000000) {
		snprintf(buf, len, "'%s' is too many CPUs", s);
		return buf;
	}
	*milli = whole * 1000 + frac;
	if (*milli == 0) {
		snprintf(buf, len, "must be greater than 0");
		return buf;
	}
	return NULL;
bad:
	snprintf(buf, len, "invalid number of CPUs '%s' (expected e.g. 2 or 0.5)", s);
	return buf;
}

int check_cross(const struct pilot_spec *s, cross_report_fn report, void *ud)
{
	int n = 0;
	char path[64], msg[512];
	if (!s->image && (s->runtime == PILOT_SPEC_RUNTIME_DOCKER || s->runtime == PILOT_SPEC_RUNTIME_PODMAN)) {
		snprintf(msg, sizeof(msg), "required with runtime '%s'", pilot_spec_runtime_name(s->runtime));
		report(ud, "image", msg);
		n++;
	}
	for (size_t i = 0; i < s->nsecrets; i++) {
		snprintf(path, sizeof(path), "secrets[%zu]", i);
		if (pilot_kv_get(s->env, s->nenv, s->secrets[i])) {
			snprintf(msg, sizeof(msg), "'%s' is also set in env", s->secrets[i]);
			report(ud, path, msg);
			n++;
		}
		for (size_t j = 0; j < i; j++)
			if (!strcmp(s->secrets[j], s->secrets[i])) {
				snprintf(msg, sizeof(msg), "'%s' is listed twice", s->secrets[i]);
				report(ud, path, msg);
				n++;
				break;
			}
	}
	if (s->retry.backoff_ms > s->retry.max_backoff_ms) {
		char a[32], b[32];
		pilot_format_duration(s->retry.backoff_ms, a, sizeof(a));
		pilot_format_duration(s->retry.max_backoff_ms, b, sizeof(b));
		snprintf(msg, sizeof(msg), "%s is longer than max_backoff (%s)", a, b);
		report(ud, "retry.backoff", msg);
		n++;
	}
	return n;
}

/* ---- building and freeing ----------------------------------------------------- */

struct pilot_spec *spec_new(void)
{
	struct pilot_spec *s = pilot_xcalloc(1, sizeof(*s));
	spec_set_defaults(s);
	return s;
}

void spec_set_defaults(struct pilot_spec *s)
{
	s->retry.max_attempts = 1;
	s->retry.on = PILOT_SPEC_RETRY_EXIT_CODE | PILOT_SPEC_RETRY_TIMEOUT;
	s->retry.backoff_ms = PILOT_SPEC_DEFAULT_BACKOFF_MS;
	s->retry.max_backoff_ms = PILOT_SPEC_DEFAULT_MAX_BACKOFF_MS;
	s->priority = PILOT_SPEC_DEFAULT_PRIORITY;
}

void kv_add(struct pilot_kv **kv, size_t *n, const char *key, const char *value)
{
	*kv = pilot_xrealloc(*kv, (*n + 1) * sizeof(**kv));
	(*kv)[*n].key = pilot_xstrdup(key);
	(*kv)[*n].value = pilot_xstrdup(value);
	(*n)++;
}

void kv_set(struct pilot_kv **kv, size_t *n, const char *key, const char *value)
{
	for (size_t i = 0; i < *n; i++)
		if (!strcmp((*kv)[i].key, key)) {
			free((*kv)[i].value);
			(*kv)[i].value = pilot_xstrdup(value);
			return;
		}
	kv_add(kv, n, key, value);
}

void strv_add(char ***v, size_t *n, const char *s)
{
	/* One spare slot keeps the vector NULL-terminated (command is handed to execvp). */
	*v = pilot_xrealloc(*v, (*n + 2) * sizeof(**v));
	(*v)[(*n)++] = pilot_xstrdup(s);
	(*v)[*n] = NULL;
}

static void kv_free(struct pilot_kv *kv, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(kv[i].key);
		free(kv[i].value);
	}
	free(kv);
}

void strv_free(char **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

void pilot_spec_free(struct pilot_spec *s)
{
	if (!s)
		return;
	free(s->name);
	free(s->image);
	strv_free(s->command, s->ncommand);
	free(s->workdir);
	kv_free(s->env, s->nenv);
	strv_free(s->secrets, s->nsecrets);
	kv_free(s->params, s->nparams);
	kv_free(s->requires, s->nrequires);
	strv_free(s->artifacts, s->nartifacts);
	strv_free(s->ignore, s->nignore);
	free(s->concurrency_group);
	free(s);
}

const char *pilot_kv_get(const struct pilot_kv *kv, size_t n, const char *key)
{
	for (size_t i = 0; i < n; i++)
		if (!strcmp(kv[i].key, key))
			return kv[i].value;
	return NULL;
}

static const char *const runtime_names[] = {
	[PILOT_SPEC_RUNTIME_DOCKER] = "docker",
	[PILOT_SPEC_RUNTIME_PODMAN] = "podman",
	[PILOT_SPEC_RUNTIME_HOST] = "host",
};

const char *pilot_spec_runtime_name(enum pilot_spec_runtime rt)
{
	if ((size_t)rt >= ARRAY_SIZE(runtime_names))
		return NULL;
	return runtime_names[rt];
}

enum pilot_spec_runtime runtime_parse(const char *s, bool *ok)
{
	for (size_t i = 1; i < ARRAY_SIZE(runtime_names); i++)
		if (!strcmp(s, runtime_names[i])) {
			*ok = true;
			return (enum pilot_spec_runtime)i;
		}
	*ok = false;
	return PILOT_SPEC_RUNTIME_ANY;
}

/* ---- finding the file ------------------------------------------------------- */

int pilot_spec_find(const char *arg, char **spec_path, char **project_dir)
{
	struct stat st;
	_cleanup_free_ char *path = NULL;
	*spec_path = NULL;
	*project_dir = NULL;
	if (!arg || !*arg)
		arg = ".";
	if (stat(arg, &st) < 0) {
		if (errno == ENOENT)
			return pilot_error_set(PILOT_ENOTFOUND, "'%s' does not exist", arg);
		return pilot_error_errno(PILOT_EIO, errno, "cannot read '%s'", arg);
	}
	if (S_ISDIR(st.st_mode)) {
		path = strcmp(arg, ".") ? pilot_path_join(arg, "pilot.yaml") : pilot_xstrdup("pilot.yaml");
		if (stat(path, &st) < 0) {
			if (errno == ENOENT)
				return pilot_error_set(PILOT_ENOTFOUND, "no pilot.yaml in '%s' (create one with 'pilot init')",
						       arg);
			return pilot_error_errno(PILOT_EIO, errno, "cannot read '%s'", path);
		}
	} else {
		path = pilot_xstrdup(arg);
	}
	if (!S_ISREG(st.st_mode))
		return pilot_error_set(PILOT_EINVALID, "spec '%s' is not a regular file", path);
	/* The directory the path names, not where a symlinked pilot.yaml points: the
	 * project is the directory the user chose. */
	_cleanup_free_ char *dir = NULL;
	const char *slash = strrchr(path, '/');
	if (!slash)
		dir = pilot_xstrdup(".");
	else if (slash == path)
		dir = pilot_xstrdup("/");
	else
		dir = pilot_xstrndup(path, (size_t)(slash - path));
	char *real = realpath(dir, NULL);
	if (!real)
		return pilot_error_errno(PILOT_EIO, errno, "cannot resolve '%s'", dir);
	*project_dir = real;
	*spec_path = TAKE_PTR(path);
	return 0;
}

void pilot_spec_pipeline_free(struct pilot_spec_pipeline *p)
{
	if (!p)
		return;
	for (size_t i = 0; i < p->njobs; i++) {
		pilot_spec_free(p->jobs[i].spec);
		strv_free(p->jobs[i].needs, p->jobs[i].nneeds);
	}
	free(p->jobs);
	free(p->name);
	free(p);
}

int pilot_spec_pipeline_find(const struct pilot_spec_pipeline *p, const char *name)
{
	for (size_t i = 0; i < p->njobs; i++)
		if (!strcmp(p->jobs[i].spec->name, name))
			return (int)i;
	return -1;
}
