/* Interpolation of spec values: ${NAME}, ${NAME:-default} (the default may itself hold
 * ${...}) and $$ for a literal $. A $ followed by anything else is kept as it is, so
 * shell code such as "echo $HOME" or "$1" passes through to the job untouched. */
#include <ctype.h>
#include <string.h>

#include "spec-internal.h"

#define INTERP_MAX_DEPTH 16

struct interp {
	interp_lookup_fn lookup;
	void *ud;
	char *err;
	int depth;
};

static int fail(struct interp *st, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail(struct interp *st, const char *fmt, ...)
{
	if (!st->err) {
		_cleanup_buf_ struct pilot_buf b = PILOT_BUF_INIT;
		va_list ap;
		va_start(ap, fmt);
		pilot_buf_vprintf(&b, fmt, ap);
		va_end(ap);
		st->err = pilot_buf_steal(&b);
	}
	return -1;
}

/* Params can refer to params, so a small file could otherwise expand without bound. */
static int too_long(struct interp *st)
{
	return fail(st, "longer than %d MiB after interpolation", SPEC_MAX_VALUE_BYTES >> 20);
}

/* A short quotable excerpt of the text at p, for messages. */
static void excerpt(const char *p, char *out, size_t len)
{
	size_t n = strcspn(p, "\n");
	if (n > 24)
		n = 24;
	if (n >= len)
		n = len - 1;
	memcpy(out, p, n);
	out[n] = '\0';
}

/* Expands from *pp to the end of the string, or in a default word to the '}' that closes
 * it (left at *pp). Appends to out only when emit: a default that is not taken is still
 * parsed, for its syntax, but looks nothing up. */
static int expand(struct interp *st, const char **pp, bool in_word, bool emit, struct pilot_buf *out)
{
	const char *p = *pp;
	while (*p && !(in_word && *p == '}')) {
		if (*p != '$' || (p[1] != '$' && p[1] != '{')) {
			if (emit && pilot_buf_putc(out, *p) < 0)
				return too_long(st);
			p++;
			continue;
		}
		if (p[1] == '$') {
			if (emit && pilot_buf_putc(out, '$') < 0)
				return too_long(st);
			p += 2;
			continue;
		}
		const char *start = p;
		char ex[32];
		p += 2;
		const char *name = p;
		while (isalnum((unsigned char)*p) || *p == '_')
			p++;
		size_t nlen = (size_t)(p - name);
		if (!nlen || isdigit((unsigned char)name[0]) || (*p != '}' && strncmp(p, ":-", 2))) {
			excerpt(start, ex, sizeof(ex));
			if (!*p)
				return fail(st, "unterminated '%s' (expected ${NAME} or ${NAME:-default}; "
					    "write $$ for a literal $)", ex);
			return fail(st, "invalid interpolation '%s' (expected ${NAME} or ${NAME:-default}; "
				    "write $$ for a literal $)", ex);
		}
		_cleanup_free_ char *var = pilot_xstrndup(name, nlen);
		bool quiet = false;
		const char *val = emit ? st->lookup(var, st->ud, &quiet) : NULL;
		if (*p == '}') {
			p++;
			if (!emit)
				continue;
			if (!val && !quiet)
				return fail(st, "variable '%s' is not set (write ${%s:-default} to give a default)",
					    var, var);
			if (val && pilot_buf_puts(out, val) < 0)
				return too_long(st);
			continue;
		}
		p += 2; /* ":-" */
		if (++st->depth > INTERP_MAX_DEPTH)
			return fail(st, "interpolation nested too deeply");
		bool take_default = emit && (!val || !*val);
		if (expand(st, &p, true, take_default, out) < 0)
			return -1;
		st->depth--;
		if (*p != '}') {
			excerpt(start, ex, sizeof(ex));
			return fail(st, "unterminated '%s' (expected ${NAME} or ${NAME:-default}; "
				    "write $$ for a literal $)", ex);
		}
		p++;
		if (emit && !take_default && pilot_buf_puts(out, val) < 0)
			return too_long(st);
	}
	*pp = p;
	return 0;
}

int spec_interpolate(const char *in, interp_lookup_fn lookup, void *ud, char **out, char **err)
{
	struct interp st = { .lookup = lookup, .ud = ud };
	_cleanup_buf_ struct pilot_buf b = PILOT_BUF_INIT;
	const char *p = in;
	pilot_buf_init(&b, SPEC_MAX_VALUE_BYTES);
	*out = NULL;
	*err = NULL;
	if (!strchr(in, '$')) {
		*out = pilot_xstrdup(in);
		return 0;
	}
	if (expand(&st, &p, false, true, &b) < 0) {
		*err = st.err;
		return -1;
	}
	*out = pilot_buf_steal(&b);
	return 0;
}
