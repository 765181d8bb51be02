/* Artifact collection after a run: the spec's glob patterns over the workspace, walked
 * with lstat so that a job cannot make pilot read outside its workspace through a
 * symbolic link. The glob matcher is this module's own (self-contained on purpose: the
 * bundle's ignore rules answer a different question). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pilot/runtime.h"
#include "pilot/util.h"

#define WALK_MAX_DEPTH 256

/* [...] at p (p[0] == '['): sets *end past the class and returns whether c is in it;
 * *end NULL when the class is not closed (then '[' is an ordinary character). */
static bool class_match(const char *p, char c, const char **end)
{
	const char *q = p + 1;
	bool negate = false, hit = false;
	if (*q == '!' || *q == '^') {
		negate = true;
		q++;
	}
	bool first = true;
	while (*q && (*q != ']' || first)) {
		first = false;
		char lo = *q, hi = *q;
		if (lo == '\\' && q[1])
			lo = hi = *++q;
		if (q[1] == '-' && q[2] && q[2] != ']') {
			hi = q[2];
			if (hi == '\\' && q[3])
				hi = q[3], q++;
			q += 2;
		}
		if (c >= lo && c <= hi)
			hit = true;
		q++;
	}
	if (*q != ']') {
		*end = NULL;
		return false;
	}
	*end = q + 1;
	return c != '/' && hit != negate;
}

static bool glob(const char *pat, const char *p, const char *s)
{
	while (*p) {
		if (p[0] == '*' && p[1] == '*' && (p == pat || p[-1] == '/') && (p[2] == '/' || p[2] == '\0')) {
			if (p[2] == '\0')
				return true;
			p += 3;
			for (;;) {
				if (glob(pat, p, s))
					return true;
				const char *slash = strchr(s, '/');
				if (!slash)
					return false;
				s = slash + 1;
			}
		}
		if (*p == '*') {
			while (*p == '*')
				p++;
			for (;;) {
				if (glob(pat, p, s))
					return true;
				if (*s == '\0' || *s == '/')
					return false;
				s++;
			}
		}
		if (*p == '?') {
			if (*s == '\0' || *s == '/')
				return false;
			p++;
			s++;
			continue;
		}
		if (*p == '[') {
			const char *end;
			bool in = class_match(p, *s, &end);
			if (end) {
				if (!*s || !in)
					return false;
				p = end;
				s++;
				continue;
			}
		}
		if (*p == '\\' && p[1])
			p++;
		if (*p != *s)
			return false;
		p++;
		s++;
	}
	return *s == '\0';
}

bool pilot_artifact_match(const char *pattern, const char *path)
{
	size_t plen = strlen(pattern);
	bool dir_only = plen > 1 && pattern[plen - 1] == '/';
	_cleanup_free_ char *pat = pilot_xstrndup(pattern, dir_only ? plen - 1 : plen);
	bool anchored = strchr(pat, '/') != NULL;
	const char *body = pat;
	while (*body == '/')
		body++;
	if (!*body)
		return false;

	_cleanup_free_ char *cand = pilot_xstrdup(path);
	size_t n = strlen(path), start = 0;
	/* The path itself, or any directory above it: a matching directory takes
	 * everything inside. */
	for (size_t e = 0; e <= n; e++) {
		if (path[e] != '/' && path[e] != '\0')
			continue;
		bool full = path[e] == '\0';
		if (!(dir_only && full) && e > start) {
			char saved = cand[e];
			cand[e] = '\0';
			bool hit = glob(body, body, anchored ? cand : cand + start);
			cand[e] = saved;
			if (hit)
				return true;
		}
		start = e + 1;
	}
	return false;
}

static bool selected(const char *const *patterns, size_t n, const char *path)
{
	bool sel = false;
	for (size_t i = 0; i < n; i++) {
		const char *p = patterns[i];
		bool neg = p[0] == '!';
		if (pilot_artifact_match(p + neg, path))
			sel = !neg;
	}
	return sel;
}

struct walk {
	const char *const *patterns;
	size_t npatterns;
	struct pilot_artifact_files *out;
	size_t cap;
};

static int walk_dir(struct walk *w, int dirfd, const char *rel, int depth)
{
	DIR *d = fdopendir(dirfd);
	if (!d) {
		int e = errno;
		close(dirfd);
		return pilot_error_errno(PILOT_EIO, e, "cannot read directory '%s'", *rel ? rel : ".");
	}
	int r = 0;
	struct dirent *de;
	while ((errno = 0, de = readdir(d))) {
		const char *name = de->d_name;
		if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
			continue;
		if (!*rel && strcmp(name, ".pilot") == 0)
			continue;
		_cleanup_free_ char *path = *rel ? pilot_xasprintf("%s/%s", rel, name) : pilot_xstrdup(name);
		struct stat st;
		if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
			if (errno == ENOENT)
				continue; /* removed while we walk */
			r = pilot_error_errno(PILOT_EIO, errno, "cannot stat '%s'", path);
			break;
		}
		if (S_ISLNK(st.st_mode)) {
			if (selected(w->patterns, w->npatterns, path))
				pilot_log(PILOT_LOG_NOTICE, "artifact '%s' is a symbolic link: skipped", path);
		} else if (S_ISDIR(st.st_mode)) {
			if (depth >= WALK_MAX_DEPTH) {
				pilot_log(PILOT_LOG_NOTICE, "artifacts: '%s' is nested too deep: skipped", path);
				continue;
			}
			int fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
			if (fd < 0) {
				r = pilot_error_errno(PILOT_EIO, errno, "cannot open directory '%s'", path);
				break;
			}
			r = walk_dir(w, fd, path, depth + 1);
			if (r < 0)
				break;
		} else if (S_ISREG(st.st_mode)) {
			if (!selected(w->patterns, w->npatterns, path))
				continue;
			struct pilot_artifact_files *l = w->out;
			if (l->n == w->cap) {
				w->cap = w->cap ? w->cap * 2 : 16;
				l->items = pilot_xrealloc(l->items, w->cap * sizeof(*l->items));
			}
			l->items[l->n].path = TAKE_PTR(path);
			l->items[l->n].size = (uint64_t)st.st_size;
			l->total_size += (uint64_t)st.st_size;
			l->n++;
		} else if (selected(w->patterns, w->npatterns, path)) {
			pilot_log(PILOT_LOG_INFO, "artifact '%s' is not a regular file: skipped", path);
		}
	}
	if (r == 0 && errno)
		r = pilot_error_errno(PILOT_EIO, errno, "cannot read directory '%s'", *rel ? rel : ".");
	closedir(d);
	return r;
}

static int by_path(const void *a, const void *b)
{
	return strcmp(((const struct pilot_artifact_file *)a)->path, ((const struct pilot_artifact_file *)b)->path);
}

int pilot_artifacts_collect(const char *workspace, const char *const *patterns, size_t n,
			    struct pilot_artifact_files *out)
{
	memset(out, 0, sizeof(*out));
	if (n == 0)
		return 0;
	int fd = open(workspace, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return pilot_error_errno(PILOT_EIO, errno, "cannot open workspace '%s'", workspace);
	struct walk w = { patterns, n, out, 0 };
	int r = walk_dir(&w, fd, "", 0);
	if (r < 0) {
		pilot_artifact_files_free(out);
		return pilot_error_prefix(r, "cannot collect artifacts");
	}
	if (out->n)
		qsort(out->items, out->n, sizeof(*out->items), by_path);
	return 0;
}

void pilot_artifact_files_free(struct pilot_artifact_files *l)
{
	if (!l)
		return;
	for (size_t i = 0; i < l->n; i++)
		free(l->items[i].path);
	free(l->items);
	memset(l, 0, sizeof(*l));
}
