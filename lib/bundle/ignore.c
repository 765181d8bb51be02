/* gitignore semantics: the glob matcher (git's wildmatch rules, so that what pilot packs
 * agrees with `git ls-files --others --exclude-standard`) and ordered pattern lists where
 * the last matching pattern decides. */
#include <string.h>

#include "pilot/bundle.h"

/* Results of matching a pattern tail against a text tail. The two "abort" results prune
 * the search without changing its outcome: ABORT_ALL means no later start position of any
 * enclosing '*' can match either (the text ran out, or the pattern is malformed);
 * ABORT_TO_STARSTAR means only an enclosing '**' may still try further. */
enum { G_MATCH, G_NOMATCH, G_ABORT_ALL, G_ABORT_TO_STARSTAR };

static bool special(unsigned char c)
{
	return c == '*' || c == '?' || c == '[' || c == '\\';
}

static bool in_class(const unsigned char *name, size_t len, unsigned char c, bool *known)
{
	bool upper = c >= 'A' && c <= 'Z', lower = c >= 'a' && c <= 'z', digit = c >= '0' && c <= '9';
	bool alpha = upper || lower, alnum = alpha || digit, graph = c > 0x20 && c < 0x7f;
	static const struct {
		const char *name;
		int id;
	} classes[] = {
		{ "alnum", 0 }, { "alpha", 1 }, { "blank", 2 }, { "cntrl", 3 }, { "digit", 4 }, { "graph", 5 },
		{ "lower", 6 }, { "print", 7 }, { "punct", 8 }, { "space", 9 }, { "upper", 10 }, { "xdigit", 11 },
	};
	*known = true;
	for (size_t i = 0; i < ARRAY_SIZE(classes); i++) {
		if (strlen(classes[i].name) != len || memcmp(classes[i].name, name, len))
			continue;
		switch (classes[i].id) {
		case 0: return alnum;
		case 1: return alpha;
		case 2: return c == ' ' || c == '\t';
		case 3: return c < 0x20 || c == 0x7f;
		case 4: return digit;
		case 5: return graph;
		case 6: return lower;
		case 7: return graph || c == ' ';
		case 8: return graph && !alnum;
		case 9: return c == ' ' || c == '\t' || c == '\n' || c == '\r';
		case 10: return upper;
		default: return digit || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
		}
	}
	*known = false;
	return false;
}

/* Match the bracket expression at *pp (pointing at '[') against c; leaves *pp on the
 * closing ']'. Returns G_MATCH, G_NOMATCH or G_ABORT_ALL (unterminated or bad class). */
static int bracket(const unsigned char **pp, unsigned char c, bool pathname)
{
	const unsigned char *q = *pp + 1;
	bool negated = false, matched = false;
	if (*q == '!' || *q == '^') {
		negated = true;
		q++;
	}
	/* prev is the previous single character, the start of a possible range; 0 after a
	 * range or a class, so that "a-c-e" is a range and a literal "-e". */
	unsigned char prev = 0, cur = *q;
	/* The first character is taken as a member even when it is ']'. */
	do {
		if (!cur)
			return G_ABORT_ALL;
		if (cur == '\\') {
			cur = *++q;
			if (!cur)
				return G_ABORT_ALL;
			matched |= c == cur;
		} else if (cur == '-' && prev && q[1] && q[1] != ']') {
			cur = *++q;
			if (cur == '\\') {
				cur = *++q;
				if (!cur)
					return G_ABORT_ALL;
			}
			matched |= c >= prev && c <= cur;
			cur = 0;
		} else if (cur == '[' && q[1] == ':') {
			const unsigned char *start = q + 2, *e = start;
			while (*e && *e != ']')
				e++;
			if (!*e)
				return G_ABORT_ALL;
			if (e - start < 1 || e[-1] != ':') {
				/* No ":]": the '[' is an ordinary member and scanning goes on after it. */
				matched |= c == '[';
				prev = cur;
				cur = *++q;
				continue;
			}
			bool known;
			matched |= in_class(start, (size_t)(e - start - 1), c, &known);
			if (!known)
				return G_ABORT_ALL;
			q = e;
			cur = 0;
		} else {
			matched |= c == cur;
		}
		prev = cur;
		cur = *++q;
	} while (cur != ']');
	*pp = q;
	if (matched == negated || (pathname && c == '/'))
		return G_NOMATCH;
	return G_MATCH;
}

static int glob_at(const unsigned char *pat0, const unsigned char *p, const unsigned char *t, bool pathname)
{
	for (; *p; p++, t++) {
		unsigned char pc = *p, tc = *t;
		if (!tc && pc != '*')
			return G_ABORT_ALL;
		switch (pc) {
		case '\\':
			/* A trailing backslash matches nothing. */
			if (!p[1] || tc != p[1])
				return G_NOMATCH;
			p++;
			break;
		case '?':
			if (pathname && tc == '/')
				return G_NOMATCH;
			break;
		case '[': {
			int r = bracket(&p, tc, pathname);
			if (r != G_MATCH)
				return r;
			break;
		}
		case '*': {
			bool any = !pathname; /* may this star swallow '/'? */
			const unsigned char *first = p;
			if (p[1] == '*') {
				while (p[1] == '*')
					p++;
				const unsigned char *after = p + 1;
				bool seg_start = first == pat0 || first[-1] == '/';
				bool seg_end = !*after || *after == '/' || (after[0] == '\\' && after[1] == '/');
				if (pathname && seg_start && seg_end) {
					/* "**" + "/" may stand for no directory at all. */
					if (*after == '/' && glob_at(pat0, after + 1, t, pathname) == G_MATCH)
						return G_MATCH;
					any = true;
				}
			}
			const unsigned char *rest = p + 1;
			if (!*rest) {
				if (!any && strchr((const char *)t, '/'))
					return G_ABORT_TO_STARSTAR;
				return G_MATCH;
			}
			if (!any && *rest == '/') {
				/* "*" + "/" takes exactly the rest of this directory name. */
				const char *slash = strchr((const char *)t, '/');
				if (!slash)
					return G_ABORT_ALL;
				t = (const unsigned char *)slash;
				p = rest;
				break; /* the loop's increment steps over both slashes */
			}
			for (; *t; t++) {
				if (!special(*rest)) {
					/* Skip to where the literal after the star can start. */
					while (*t && (any || *t != '/') && *t != *rest)
						t++;
					if (*t != *rest)
						return G_NOMATCH;
				}
				int r = glob_at(pat0, rest, t, pathname);
				if (r != G_NOMATCH) {
					if (!any || r != G_ABORT_TO_STARSTAR)
						return r;
				} else if (!any && *t == '/') {
					return G_ABORT_TO_STARSTAR;
				}
			}
			return G_ABORT_ALL;
		}
		default:
			if (tc != pc)
				return G_NOMATCH;
		}
	}
	return *t ? G_NOMATCH : G_MATCH;
}

bool pilot_glob_match(const char *pattern, const char *text, bool pathname)
{
	const unsigned char *p = (const unsigned char *)pattern;
	return glob_at(p, p, (const unsigned char *)text, pathname) == G_MATCH;
}

/* ---- pattern lists -------------------------------------------------------- */

enum {
	PAT_NEGATIVE = 1 << 0,
	PAT_DIRONLY = 1 << 1,  /* had a trailing '/' */
	PAT_BASENAME = 1 << 2, /* no '/' (besides a trailing one): matches the last component */
};

struct pattern {
	char *pat;   /* without '!', trailing '/' and (for path patterns) the leading '/' */
	char *base;  /* "" or "a/b" */
	size_t baselen;
	size_t prefix; /* length of the literal start of a path pattern */
	unsigned flags;
};

struct pilot_ignore {
	struct pattern *v;
	size_t n, cap;
};

struct pilot_ignore *pilot_ignore_new(void)
{
	return pilot_xcalloc(1, sizeof(struct pilot_ignore));
}

void pilot_ignore_truncate(struct pilot_ignore *ig, size_t n)
{
	while (ig->n > n) {
		ig->n--;
		free(ig->v[ig->n].pat);
		free(ig->v[ig->n].base);
	}
}

void pilot_ignore_free(struct pilot_ignore *ig)
{
	if (!ig)
		return;
	pilot_ignore_truncate(ig, 0);
	free(ig->v);
	free(ig);
}

size_t pilot_ignore_count(const struct pilot_ignore *ig)
{
	return ig->n;
}

/* Trailing spaces go unless escaped with a backslash (git's trim_trailing_spaces). */
static size_t trimmed_len(const char *s, size_t len)
{
	size_t keep = 0;
	for (size_t i = 0; i < len; i++) {
		if (s[i] == ' ')
			continue;
		if (s[i] == '\\' && i + 1 < len)
			i++;
		keep = i + 1;
	}
	/* A lone trailing backslash keeps the spaces before it. */
	return keep;
}

static void add_one(struct pilot_ignore *ig, const char *base, const char *line, size_t len)
{
	if (!len || line[0] == '#')
		return;
	len = trimmed_len(line, len);
	if (!len)
		return;
	unsigned flags = 0;
	if (line[0] == '!') {
		flags |= PAT_NEGATIVE;
		line++;
		len--;
	}
	if (len && line[len - 1] == '/') {
		flags |= PAT_DIRONLY;
		len--;
	}
	if (!memchr(line, '/', len))
		flags |= PAT_BASENAME;
	else if (line[0] == '/') {
		line++;
		len--;
	}
	if (ig->n == ig->cap) {
		ig->cap = ig->cap ? ig->cap * 2 : 16;
		ig->v = pilot_xrealloc(ig->v, ig->cap * sizeof(*ig->v));
	}
	while (*base == '/')
		base++;
	size_t bl = strlen(base);
	while (bl && base[bl - 1] == '/')
		bl--;
	struct pattern *p = &ig->v[ig->n++];
	p->pat = pilot_xstrndup(line, len);
	p->base = pilot_xstrndup(base, bl);
	p->baselen = bl;
	p->flags = flags;
	p->prefix = 0;
	while (p->pat[p->prefix] && !special((unsigned char)p->pat[p->prefix]))
		p->prefix++;
}

void pilot_ignore_add(struct pilot_ignore *ig, const char *base, const char *line)
{
	add_one(ig, base, line, strlen(line));
}

void pilot_ignore_add_text(struct pilot_ignore *ig, const char *base, const char *text, size_t len)
{
	if (len >= 3 && !memcmp(text, "\xef\xbb\xbf", 3)) {
		text += 3;
		len -= 3;
	}
	while (len) {
		const char *nl = memchr(text, '\n', len);
		size_t l = nl ? (size_t)(nl - text) : len;
		size_t ll = l && text[l - 1] == '\r' ? l - 1 : l;
		/* A NUL inside a line ends the pattern, as it does for git. */
		const char *nul = memchr(text, '\0', ll);
		add_one(ig, base, text, nul ? (size_t)(nul - text) : ll);
		if (!nl)
			break;
		len -= l + 1;
		text = nl + 1;
	}
}

enum pilot_ignore_result pilot_ignore_match(const struct pilot_ignore *ig, const char *path, bool is_dir)
{
	const char *slash = strrchr(path, '/');
	const char *basename = slash ? slash + 1 : path;
	for (size_t i = ig->n; i-- > 0;) {
		const struct pattern *p = &ig->v[i];
		if ((p->flags & PAT_DIRONLY) && !is_dir)
			continue;
		const char *rel = path;
		if (p->baselen) {
			if (strncmp(path, p->base, p->baselen) || path[p->baselen] != '/')
				continue;
			rel = path + p->baselen + 1;
		}
		bool m;
		if (p->flags & PAT_BASENAME) {
			m = pilot_glob_match(p->pat, basename, false);
		} else {
			/* As git does: the literal start is compared as such and the glob starts
			 * after it, so in "dir/a**" the "**" counts as starting a component. */
			m = !strncmp(rel, p->pat, p->prefix) &&
			    pilot_glob_match(p->pat + p->prefix, rel + p->prefix, true);
		}
		if (m)
			return (p->flags & PAT_NEGATIVE) ? PILOT_IGNORE_INCLUDE : PILOT_IGNORE_EXCLUDE;
	}
	return PILOT_IGNORE_NONE;
}
