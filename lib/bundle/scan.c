/* The scan pass of packing: walk the project directory once, decide what goes in with the
 * ignore rules (see bundle.h for the order), stat everything, and check the symlinks
 * against the resulting tree, so that every rule is enforced and every total known
 * before a byte of the bundle is written. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bundle-internal.h"

#define IGNORE_FILE_MAX (4u << 20)
#define NOTICE_NAMES 5

struct walker {
	const struct pilot_pack_opts *o;
	struct scan *s;
	struct pilot_ignore *extra, *files, *builtin;
	bool pilotignore_mode;
	struct pilot_pack_progress prog;
	int64_t last_ms;
	/* .env files left out, for the one notice */
	struct pilot_buf envs;
	size_t nenvs;
};

void bundle_progress(const struct pilot_pack_opts *o, struct pilot_pack_progress *p, int64_t start_ms,
		     int64_t *last_ms, bool force)
{
	if (!o->progress)
		return;
	int64_t now = pilot_mono_ms();
	if (!force && now - *last_ms < 100)
		return;
	*last_ms = now;
	p->elapsed_ms = now - start_ms;
	o->progress(p, o->userdata);
}

static struct bentry *add(struct scan *s)
{
	if (s->n == s->cap) {
		s->cap = s->cap ? s->cap * 2 : 1024;
		s->v = pilot_xrealloc(s->v, s->cap * sizeof(*s->v));
	}
	struct bentry *e = &s->v[s->n++];
	memset(e, 0, sizeof(*e));
	return e;
}

void bundle_scan_free(struct scan *s)
{
	if (!s)
		return;
	for (size_t i = 0; i < s->n; i++) {
		free(s->v[i].path);
		free(s->v[i].target);
	}
	free(s->v);
	if (s->root_fd >= 0)
		close(s->root_fd);
	s->v = NULL;
	s->n = s->cap = 0;
	s->root_fd = -1;
}

/* Read dir/name into ig with base rel; a missing file is fine. */
static int load_ignore_file(struct walker *w, int dfd, const char *rel, const char *name, bool *found)
{
	*found = false;
	_cleanup_close_ int fd = openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
	_cleanup_free_ char *shown = *rel ? pilot_xasprintf("%s/%s", rel, name) : pilot_xstrdup(name);
	if (fd < 0) {
		if (errno == ENOENT)
			return 0;
		if (errno == ELOOP) {
			/* git (since 2.32) does not follow a symlinked .gitignore either. */
			pilot_log(PILOT_LOG_WARN, "not reading '%s': it is a symlink", shown);
			return 0;
		}
		return pilot_error_errno(PILOT_EIO, errno, "cannot read '%s'", shown);
	}
	struct stat st;
	if (fstat(fd, &st) < 0)
		return pilot_error_errno(PILOT_EIO, errno, "cannot read '%s'", shown);
	if (!S_ISREG(st.st_mode))
		return 0;
	_cleanup_buf_ struct pilot_buf text = PILOT_BUF_INIT;
	char chunk[16384];
	for (;;) {
		ssize_t n = read(fd, chunk, sizeof(chunk));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return pilot_error_errno(PILOT_EIO, errno, "cannot read '%s'", shown);
		if (n == 0)
			break;
		if (text.len + (size_t)n > IGNORE_FILE_MAX)
			return pilot_error_set(PILOT_ELIMIT, "'%s' is larger than 4 MiB", shown);
		pilot_buf_append(&text, chunk, (size_t)n);
	}
	pilot_ignore_add_text(w->files, rel, pilot_buf_str(&text), text.len);
	*found = true;
	return 0;
}

static int cmp_name(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static const char *kind_name(mode_t m)
{
	return S_ISSOCK(m) ? "a socket" : S_ISFIFO(m) ? "a fifo" : S_ISCHR(m) ? "a character device"
	       : S_ISBLK(m) ? "a block device" : "not a regular file";
}

static int walk(struct walker *w, int dfd, const char *rel, unsigned depth)
{
	size_t mark = pilot_ignore_count(w->files);
	bool found;
	int r;
	if (w->pilotignore_mode) {
		if ((r = load_ignore_file(w, dfd, rel, ".pilotignore", &found)) < 0)
			return r;
	} else {
		if ((r = load_ignore_file(w, dfd, rel, ".gitignore", &found)) < 0 ||
		    (r = load_ignore_file(w, dfd, rel, ".pilotignore", &found)) < 0)
			return r;
	}

	int fd = dup(dfd);
	DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
	if (!d) {
		if (fd >= 0)
			close(fd);
		return pilot_error_errno(PILOT_EIO, errno, "cannot list '%s'", *rel ? rel : ".");
	}
	char **names = NULL;
	size_t n = 0, cap = 0;
	struct dirent *de;
	errno = 0;
	while ((de = readdir(d))) {
		const char *nm = de->d_name;
		if (!strcmp(nm, ".") || !strcmp(nm, "..") || !strcmp(nm, ".git") || !strcmp(nm, ".pilot"))
			continue;
		if (n == cap) {
			cap = cap ? cap * 2 : 32;
			names = pilot_xrealloc(names, cap * sizeof(*names));
		}
		names[n++] = pilot_xstrdup(nm);
	}
	int lerr = errno;
	closedir(d);
	if (lerr) {
		r = pilot_error_errno(PILOT_EIO, lerr, "cannot list '%s'", *rel ? rel : ".");
		goto out;
	}
	if (n)
		qsort(names, n, sizeof(*names), cmp_name);

	r = 0;
	for (size_t i = 0; i < n && r >= 0; i++) {
		const char *nm = names[i];
		_cleanup_free_ char *path = *rel ? pilot_xasprintf("%s/%s", rel, nm) : pilot_xstrdup(nm);
		struct stat st;
		if (fstatat(dfd, nm, &st, AT_SYMLINK_NOFOLLOW) < 0) {
			if (errno == ENOENT)
				continue; /* gone since readdir */
			r = pilot_error_errno(PILOT_EIO, errno, "cannot stat '%s'", path);
			break;
		}
		bool is_dir = S_ISDIR(st.st_mode);
		enum pilot_ignore_result m = pilot_ignore_match(w->extra, path, is_dir);
		if (m == PILOT_IGNORE_NONE)
			m = pilot_ignore_match(w->files, path, is_dir);
		if (m == PILOT_IGNORE_EXCLUDE)
			continue;
		if (m == PILOT_IGNORE_NONE && pilot_ignore_match(w->builtin, path, is_dir) == PILOT_IGNORE_EXCLUDE) {
			if (w->nenvs++ < NOTICE_NAMES)
				pilot_buf_printf(&w->envs, "%s'%s%s'", w->nenvs > 1 ? ", " : "", path, is_dir ? "/" : "");
			continue;
		}
		if (!S_ISDIR(st.st_mode) && !S_ISREG(st.st_mode) && !S_ISLNK(st.st_mode)) {
			pilot_log(PILOT_LOG_NOTICE, "leaving out '%s': %s", path, kind_name(st.st_mode));
			continue;
		}
		if (strlen(path) + (is_dir ? 1 : 0) > PILOT_BUNDLE_MAX_PATH) {
			r = pilot_error_set(PILOT_ELIMIT, "path of '%.64s...' is longer than %d bytes (max_path)", path,
					    PILOT_BUNDLE_MAX_PATH);
			break;
		}
		if (depth + 1 > PILOT_BUNDLE_MAX_DEPTH) {
			r = pilot_error_set(PILOT_ELIMIT, "'%.64s...' is more than %d directories deep (max_depth)", path,
					    PILOT_BUNDLE_MAX_DEPTH);
			break;
		}
		if (w->s->n >= PILOT_BUNDLE_MAX_ENTRIES) {
			r = pilot_error_set(PILOT_ELIMIT, "more than %d entries to pack (max_entries)",
					    PILOT_BUNDLE_MAX_ENTRIES);
			break;
		}
		struct bentry *e = add(w->s);
		e->path = TAKE_PTR(path);
		if (S_ISREG(st.st_mode)) {
			e->type = PILOT_BUNDLE_FILE;
			e->size = (uint64_t)st.st_size;
			e->exec = st.st_mode & 0111;
			w->prog.files++;
			w->prog.bytes += e->size;
		} else if (S_ISLNK(st.st_mode)) {
			e->type = PILOT_BUNDLE_SYMLINK;
			size_t sz = st.st_size > 0 ? (size_t)st.st_size + 1 : 256;
			for (;;) {
				char *buf = pilot_xmalloc(sz);
				ssize_t l = readlinkat(dfd, nm, buf, sz);
				if (l < 0) {
					free(buf);
					r = pilot_error_errno(PILOT_EIO, errno, "cannot read symlink '%s'", e->path);
					break;
				}
				if ((size_t)l < sz) {
					buf[l] = '\0';
					e->target = buf;
					break;
				}
				free(buf);
				sz *= 2;
			}
			if (r < 0)
				break;
			if (strlen(e->target) > PILOT_BUNDLE_MAX_PATH) {
				r = pilot_error_set(PILOT_ELIMIT, "target of symlink '%s' is longer than %d bytes (max_path)",
						    e->path, PILOT_BUNDLE_MAX_PATH);
				break;
			}
			w->prog.files++;
		} else {
			e->type = PILOT_BUNDLE_DIR;
			const char *sub = e->path;
			int cfd = openat(dfd, nm, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
			if (cfd < 0) {
				r = pilot_error_errno(PILOT_EIO, errno, "cannot open directory '%s'", sub);
				break;
			}
			r = walk(w, cfd, sub, depth + 1);
			close(cfd);
		}
		bundle_progress(w->o, &w->prog, w->s->start_ms, &w->last_ms, false);
	}
out:
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
	pilot_ignore_truncate(w->files, mark);
	return r;
}

static int cmp_entry(const void *a, const void *b)
{
	return strcmp(((const struct bentry *)a)->path, ((const struct bentry *)b)->path);
}

static bool lookup_entries(void *ud, const char *path, enum pilot_bundle_type *type, const char **target)
{
	struct scan *s = ud;
	size_t lo = 0, hi = s->n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(s->v[mid].path, path);
		if (!c) {
			if (s->v[mid].skipped)
				return false;
			*type = s->v[mid].type;
			*target = s->v[mid].target;
			return true;
		}
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return false;
}

/* Every symlink must resolve inside the bundle's own tree. Leaving one out can change
 * where another leads (it no longer passes through it), so with skip_outside_links this
 * repeats until nothing more is left out. */
static int check_links(const struct pilot_pack_opts *o, struct scan *s)
{
	uint64_t budget = UINT64_C(200000000);
	for (;;) {
		size_t bad = 0, first = 0;
		bool changed = false;
		for (size_t i = 0; i < s->n; i++) {
			struct bentry *e = &s->v[i];
			if (e->type != PILOT_BUNDLE_SYMLINK || e->skipped)
				continue;
			int r = bundle_link_escapes(e->path, e->target, lookup_entries, s, &budget);
			if (r < 0 && !budget)
				return pilot_error_set(PILOT_ELIMIT, "too many symlinks to check");
			if (r == 0)
				continue;
			if (o->skip_outside_links) {
				pilot_log(PILOT_LOG_NOTICE, "leaving out symlink '%s' -> '%s': %s", e->path, e->target,
					  r > 0 ? "it points outside the project" : "too many levels of symlinks");
				e->skipped = true;
				changed = true;
			} else if (!bad++) {
				first = i;
			}
		}
		if (bad) {
			const struct bentry *e = &s->v[first];
			_cleanup_free_ char *more = bad > 1 ? pilot_xasprintf(" (and %zu more)", bad - 1) : pilot_xstrdup("");
			return pilot_error_set(PILOT_EINVALID,
					       "symlink '%s' -> '%s' points outside the project%s: remove it, ignore it, "
					       "or pack with --skip-outside-links", e->path, e->target, more);
		}
		if (!changed)
			return 0;
	}
}

int bundle_scan(const struct pilot_pack_opts *o, struct scan *s)
{
	memset(s, 0, sizeof(*s));
	s->root_fd = -1;
	s->start_ms = pilot_mono_ms();
	const char *dir = o->dir && *o->dir ? o->dir : ".";
	s->root_fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (s->root_fd < 0)
		return pilot_error_errno(errno == ENOENT ? PILOT_ENOTFOUND : PILOT_EIO, errno,
					 "cannot open directory '%s'", dir);
	struct walker w = {
		.o = o,
		.s = s,
		.extra = pilot_ignore_new(),
		.files = pilot_ignore_new(),
		.builtin = pilot_ignore_new(),
		.prog = { .phase = PILOT_PACK_SCANNING },
		.last_ms = s->start_ms,
	};
	for (size_t i = 0; i < o->n_extra_ignore; i++)
		pilot_ignore_add(w.extra, "", o->extra_ignore[i]);
	pilot_ignore_add(w.builtin, "", ".env");
	pilot_ignore_add(w.builtin, "", ".env.*");
	struct stat st;
	w.pilotignore_mode = fstatat(s->root_fd, ".pilotignore", &st, AT_SYMLINK_NOFOLLOW) == 0;

	int r = walk(&w, s->root_fd, "", 0);
	if (r >= 0 && w.nenvs) {
		_cleanup_free_ char *more = w.nenvs > NOTICE_NAMES ? pilot_xasprintf(" and %zu more", w.nenvs - NOTICE_NAMES)
								    : pilot_xstrdup("");
		pilot_log(PILOT_LOG_NOTICE, "leaving out %s%s: such files usually hold secrets (a line '!.env' or "
			  "'!.env.*' in .pilotignore packs them)", pilot_buf_str(&w.envs), more);
	}
	pilot_buf_free(&w.envs);
	pilot_ignore_free(w.extra);
	pilot_ignore_free(w.files);
	pilot_ignore_free(w.builtin);
	if (r < 0)
		return r;
	if (s->n)
		qsort(s->v, s->n, sizeof(*s->v), cmp_entry);
	return check_links(o, s);
}
