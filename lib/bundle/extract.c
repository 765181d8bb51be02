/* Extraction of a bundle we did not make (an agent unpacking a submitted project): read
 * with libarchive's tar reader and gzip filter only, check every entry before anything is
 * written for it, write only with *at() calls relative to directories opened with
 * O_NOFOLLOW and create with O_EXCL, so that nothing can ever be written through a
 * symlink; limits on size, count, path length, depth and compression ratio; everything
 * lands in a fresh directory beside the destination that is renamed into place at the
 * end, or removed on any failure. See bundle.h for the rules. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <archive.h>
#include <archive_entry.h>
#include <openssl/evp.h>

#include "bundle-internal.h"

#define INBUF (64u << 10)
#define TRAILING_MAX (16u << 20)
#define LINK_BUDGET UINT64_C(50000000)

void pilot_extract_limits_default(struct pilot_extract_limits *lim)
{
	lim->max_bytes = PILOT_BUNDLE_DEFAULT_MAX_SIZE;
	lim->max_entries = PILOT_BUNDLE_MAX_ENTRIES;
	lim->max_path = PILOT_BUNDLE_MAX_PATH;
	lim->max_depth = PILOT_BUNDLE_MAX_DEPTH;
	lim->max_ratio = 1000;
	lim->ratio_after = 1u << 20;
}

/* ---- what has been extracted: a hash map from normalised path to node ----- */

struct node {
	char *path;  /* NULL: free slot */
	char *target;
	enum pilot_bundle_type type;
};

struct pathmap {
	struct node *slots;
	size_t cap, n;
};

static uint64_t hash_str(const char *s)
{
	uint64_t h = UINT64_C(1469598103934665603);
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * UINT64_C(1099511628211);
	return h;
}

static struct node *map_slot(const struct pathmap *m, const char *path)
{
	size_t i = (size_t)hash_str(path) & (m->cap - 1);
	while (m->slots[i].path && strcmp(m->slots[i].path, path))
		i = (i + 1) & (m->cap - 1);
	return &m->slots[i];
}

static struct node *map_find(const struct pathmap *m, const char *path)
{
	if (!m->cap)
		return NULL;
	struct node *s = map_slot(m, path);
	return s->path ? s : NULL;
}

static struct node *map_put(struct pathmap *m, const char *path, enum pilot_bundle_type type, const char *target)
{
	if ((m->n + 1) * 2 > m->cap) {
		struct pathmap bigger = { .cap = m->cap ? m->cap * 2 : 1024 };
		bigger.slots = pilot_xcalloc(bigger.cap, sizeof(*bigger.slots));
		for (size_t i = 0; i < m->cap; i++)
			if (m->slots[i].path)
				*map_slot(&bigger, m->slots[i].path) = m->slots[i];
		free(m->slots);
		m->slots = bigger.slots;
		m->cap = bigger.cap;
	}
	struct node *s = map_slot(m, path);
	if (!s->path) {
		s->path = pilot_xstrdup(path);
		m->n++;
	}
	free(s->target);
	s->target = target ? pilot_xstrdup(target) : NULL;
	s->type = type;
	return s;
}

static void map_free(struct pathmap *m)
{
	for (size_t i = 0; i < m->cap; i++) {
		free(m->slots[i].path);
		free(m->slots[i].target);
	}
	free(m->slots);
}

static bool lookup_map(void *ud, const char *path, enum pilot_bundle_type *type, const char **target)
{
	const struct node *n = map_find(ud, path);
	if (!n)
		return false;
	*type = n->type;
	*target = n->target;
	return true;
}

/* ---- the extractor ------------------------------------------------------------ */

struct extractor {
	const struct pilot_extract_limits *lim;
	struct archive *a;
	int in_fd;
	unsigned char *inbuf;
	uint64_t compressed;
	EVP_MD_CTX *md;
	int root;
	struct pathmap map;
	char *cache_path; /* the last parent directory opened, kept open */
	int cache_fd;
	uint64_t budget;
	struct pilot_bundle_info *info;
};

/* An entry name for a message: control characters escaped, long names cut. */
static char *shown(const char *s)
{
	struct pilot_buf b = PILOT_BUF_INIT;
	pilot_buf_puts(&b, "");
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if (b.len > 200) {
			pilot_buf_puts(&b, "...");
			break;
		}
		if (*p < 0x20 || *p == 0x7f || *p == '\\')
			pilot_buf_printf(&b, "\\x%02x", *p);
		else
			pilot_buf_putc(&b, (char)*p);
	}
	return pilot_buf_steal(&b);
}

static int refuse(const char *name, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int refuse(const char *name, const char *fmt, ...)
{
	_cleanup_free_ char *n = shown(name);
	_cleanup_buf_ struct pilot_buf why = PILOT_BUF_INIT;
	va_list ap;
	va_start(ap, fmt);
	pilot_buf_vprintf(&why, fmt, ap);
	va_end(ap);
	return pilot_error_set(PILOT_EINVALID, "refusing entry '%s': %s", n, pilot_buf_str(&why));
}

static la_ssize_t read_cb(struct archive *a, void *ud, const void **buf)
{
	struct extractor *x = ud;
	for (;;) {
		ssize_t n = read(x->in_fd, x->inbuf, INBUF);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			archive_set_error(a, errno, "cannot read: %s", strerror(errno));
			return -1;
		}
		EVP_DigestUpdate(x->md, x->inbuf, (size_t)n);
		x->compressed += (uint64_t)n;
		*buf = x->inbuf;
		return n;
	}
}

/* raw (the path of entry, or its hardlink target) with "." and empty components dropped;
 * absolute paths and ".." refused. */
static int normalize(const struct extractor *x, const char *entry, const char *raw, const char *what,
		     struct pilot_buf *out)
{
	pilot_buf_reset(out);
	pilot_buf_puts(out, "");
	if (strlen(raw) > x->lim->max_path) {
		_cleanup_free_ char *n = shown(entry);
		return pilot_error_set(PILOT_ELIMIT, "limit max_path (%zu bytes) reached: %s of '%.64s...' is %zu bytes",
				       x->lim->max_path, what, n, strlen(raw));
	}
	_cleanup_free_ char *esc = shown(raw);
	_cleanup_free_ char *shown_raw = entry == raw ? pilot_xstrdup("the path") : pilot_xasprintf("%s '%s'", what, esc);
	if (raw[0] == '/')
		return refuse(entry, "%s is an absolute path", shown_raw);
	unsigned depth = 0;
	for (const char *c = raw; *c;) {
		const char *e = strchr(c, '/');
		size_t len = e ? (size_t)(e - c) : strlen(c);
		if (len == 2 && c[0] == '.' && c[1] == '.')
			return refuse(entry, "%s has a '..' component", shown_raw);
		if (len && !(len == 1 && c[0] == '.')) {
			if (++depth > x->lim->max_depth) {
				_cleanup_free_ char *n = shown(entry);
				return pilot_error_set(PILOT_ELIMIT,
						       "limit max_depth (%u) reached: %s of '%.64s...' is deeper",
						       x->lim->max_depth, what, n);
			}
			if (out->len)
				pilot_buf_putc(out, '/');
			pilot_buf_append(out, c, len);
		}
		c += len + (e ? 1 : 0);
	}
	return 0;
}

static int check_size(struct extractor *x, const char *name, uint64_t upcoming)
{
	la_int64_t pos = archive_filter_bytes(x->a, 0);
	uint64_t u = pos > 0 ? (uint64_t)pos : 0;
	const struct pilot_extract_limits *l = x->lim;
	if (u > l->max_bytes || upcoming > l->max_bytes - u) {
		_cleanup_free_ char *n = shown(name);
		char h[32];
		pilot_format_size(l->max_bytes, h, sizeof(h));
		return pilot_error_set(PILOT_ELIMIT, "limit max_bytes (%s uncompressed) reached at entry '%s'", h, n);
	}
	/* The compressed bytes the gzip filter has consumed, not the (larger) ones read
	 * ahead: the bomb is caught megabytes sooner. */
	la_int64_t raw = archive_filter_bytes(x->a, -1);
	uint64_t c = raw > 0 ? (uint64_t)raw : x->compressed;
	if (l->max_ratio && u > l->ratio_after && c && c <= UINT64_MAX / l->max_ratio && u > l->max_ratio * c) {
		_cleanup_free_ char *n = shown(name);
		return pilot_error_set(PILOT_ELIMIT,
				       "limit max_ratio (%llu:1) reached at entry '%s': %llu bytes inflated from %llu",
				       (unsigned long long)l->max_ratio, n, (unsigned long long)u, (unsigned long long)c);
	}
	return 0;
}

/* A new descriptor for the directory holding path's last component (*name), walking
 * from the root one component at a time with O_NOFOLLOW. Missing directories are created
 * when create is set; a component that is a symlink or a file is refused. */
static int open_parent(struct extractor *x, const char *path, bool create, const char **name, int *out)
{
	const char *slash = strrchr(path, '/');
	*name = slash ? slash + 1 : path;
	size_t plen = slash ? (size_t)(slash - path) : 0;
	if (!slash) {
		*out = dup(x->root);
		return *out < 0 ? pilot_error_errno(PILOT_EIO, errno, "cannot open the target directory") : 0;
	}
	if (x->cache_path && strlen(x->cache_path) == plen && !memcmp(x->cache_path, path, plen)) {
		*out = dup(x->cache_fd);
		return *out < 0 ? pilot_error_errno(PILOT_EIO, errno, "cannot open directory") : 0;
	}
	_cleanup_free_ char *prefix = pilot_xstrndup(path, plen);
	_cleanup_close_ int fd = -1;
	int cur = x->root;
	for (char *c = prefix;;) {
		char *e = strchr(c, '/');
		if (e)
			*e = '\0';
		const struct node *n = map_find(&x->map, prefix);
		if (n && n->type == PILOT_BUNDLE_SYMLINK)
			return refuse(path, "'%s' is a symlink: nothing is extracted through one", prefix);
		if (n && n->type == PILOT_BUNDLE_FILE)
			return refuse(path, "'%s' is not a directory", prefix);
		if (!n) {
			if (!create)
				return refuse(path, "'%s' is not in the bundle", prefix);
			if (mkdirat(cur, c, 0755) < 0)
				return pilot_error_errno(PILOT_EIO, errno, "cannot create directory '%s'", prefix);
			map_put(&x->map, prefix, PILOT_BUNDLE_DIR, NULL);
			x->info->dirs++;
		}
		int nfd = openat(cur, c, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (nfd < 0)
			return pilot_error_errno(PILOT_EIO, errno, "cannot open directory '%s'", prefix);
		if (fd >= 0)
			close(fd);
		fd = cur = nfd;
		if (!e)
			break;
		*e = '/';
		c = e + 1;
	}
	if (x->cache_fd >= 0)
		close(x->cache_fd);
	free(x->cache_path);
	x->cache_path = pilot_xstrdup(prefix);
	x->cache_fd = TAKE_FD(fd);
	*out = dup(x->cache_fd);
	return *out < 0 ? pilot_error_errno(PILOT_EIO, errno, "cannot open directory") : 0;
}

static int write_data(struct extractor *x, const char *path, int fd, uint64_t size)
{
	uint64_t end = 0;
	for (;;) {
		const void *buf;
		size_t len;
		la_int64_t off;
		int r = archive_read_data_block(x->a, &buf, &len, &off);
		if (r == ARCHIVE_EOF)
			break;
		if (r != ARCHIVE_OK && r != ARCHIVE_WARN) {
			_cleanup_free_ char *n = shown(path);
			return pilot_error_set(PILOT_EINVALID, "cannot read '%s' from the bundle: %s", n,
					       archive_error_string(x->a) ? archive_error_string(x->a) : "unknown error");
		}
		if (off < 0 || (uint64_t)off > size || len > size - (uint64_t)off)
			return refuse(path, "data beyond the size of the entry");
		const char *c = buf;
		uint64_t o = (uint64_t)off;
		for (size_t left = len; left;) {
			ssize_t w = pwrite(fd, c, left, (off_t)o);
			if (w < 0 && errno == EINTR)
				continue;
			if (w < 0) {
				_cleanup_free_ char *n = shown(path);
				return pilot_error_errno(PILOT_EIO, errno, "cannot write '%s'", n);
			}
			c += w;
			o += (uint64_t)w;
			left -= (size_t)w;
		}
		if (o > end)
			end = o;
		int q = check_size(x, path, 0);
		if (q < 0)
			return q;
	}
	/* Sparse entries may end in a hole. */
	if (end != size && ftruncate(fd, (off_t)size) < 0) {
		_cleanup_free_ char *n = shown(path);
		return pilot_error_errno(PILOT_EIO, errno, "cannot write '%s'", n);
	}
	return 0;
}

static const char *type_words(mode_t t)
{
	switch (t) {
	case AE_IFCHR: return "character devices are not allowed";
	case AE_IFBLK: return "block devices are not allowed";
	case AE_IFIFO: return "fifos are not allowed";
	case AE_IFSOCK: return "sockets are not allowed";
	default: return "entries of this type are not allowed";
	}
}

/* A path already extracted may come again with the same type: it replaces the first
 * (a directory stays). Another type is refused. */
static int check_again(const struct node *n, const char *raw, enum pilot_bundle_type type)
{
	if (!n || n->type == type)
		return 0;
	return refuse(raw, "the path appears twice, as a %s and as a %s", pilot_bundle_type_name(n->type),
		      pilot_bundle_type_name(type));
}

static int one_entry(struct extractor *x, struct archive_entry *ae, struct pilot_buf *path, struct pilot_buf *tgt)
{
	const char *raw = archive_entry_pathname(ae);
	if (!raw)
		raw = archive_entry_pathname_utf8(ae);
	if (!raw)
		return pilot_error_set(PILOT_EINVALID, "refusing an entry without a usable name");
	int r = normalize(x, raw, raw, "the path", path);
	if (r < 0)
		return r;
	mode_t type = archive_entry_filetype(ae);
	const char *hardlink = archive_entry_hardlink(ae);
	if (!hardlink)
		hardlink = archive_entry_hardlink_utf8(ae);
	la_int64_t ssize = archive_entry_size(ae);
	uint64_t size = ssize > 0 ? (uint64_t)ssize : 0;
	if ((r = check_size(x, raw, size)) < 0)
		return r;
	if (!path->len) {
		/* "./": the root itself. */
		if (type == AE_IFDIR && !hardlink)
			return 0;
		return refuse(raw, "the path is empty");
	}
	const char *p = path->data, *name;
	/* Only looked at before anything is added to the map (which may move nodes). */
	const struct node *oldn = map_find(&x->map, p);
	bool old = oldn != NULL;
	_cleanup_close_ int pfd = -1;

	if (hardlink) {
		if (size > 0)
			return refuse(raw, "a hardlink carrying data");
		if ((r = normalize(x, raw, hardlink, "the hardlink target", tgt)) < 0)
			return r;
		const struct node *t = map_find(&x->map, tgt->data);
		if (!t || t->type != PILOT_BUNDLE_FILE)
			return refuse(raw, "hardlink target '%s' is not a regular file extracted before it", tgt->data);
		if (!strcmp(tgt->data, p))
			return refuse(raw, "a hardlink to itself");
		if ((r = check_again(oldn, raw, PILOT_BUNDLE_FILE)) < 0)
			return r;
		_cleanup_close_ int tfd = -1;
		const char *tname;
		if ((r = open_parent(x, tgt->data, false, &tname, &tfd)) < 0 ||
		    (r = open_parent(x, p, true, &name, &pfd)) < 0)
			return r;
		if (old && unlinkat(pfd, name, 0) < 0)
			return pilot_error_errno(PILOT_EIO, errno, "cannot replace '%s'", p);
		/* Flags 0: the target itself is not followed (and it is a regular file). */
		if (linkat(tfd, tname, pfd, name, 0) < 0)
			return pilot_error_errno(PILOT_EIO, errno, "cannot create hardlink '%s'", p);
		map_put(&x->map, p, PILOT_BUNDLE_FILE, NULL);
		x->info->files++;
		return 0;
	}

	switch (type) {
	case AE_IFDIR:
		if ((r = check_again(oldn, raw, PILOT_BUNDLE_DIR)) < 0)
			return r;
		if (old)
			return 0;
		if ((r = open_parent(x, p, true, &name, &pfd)) < 0)
			return r;
		if (mkdirat(pfd, name, 0755) < 0)
			return pilot_error_errno(PILOT_EIO, errno, "cannot create directory '%s'", p);
		map_put(&x->map, p, PILOT_BUNDLE_DIR, NULL);
		x->info->dirs++;
		return 0;
	case AE_IFREG: {
		if ((r = check_again(oldn, raw, PILOT_BUNDLE_FILE)) < 0)
			return r;
		if ((r = open_parent(x, p, true, &name, &pfd)) < 0)
			return r;
		if (old && unlinkat(pfd, name, 0) < 0)
			return pilot_error_errno(PILOT_EIO, errno, "cannot replace '%s'", p);
		mode_t mode = (archive_entry_perm(ae) & 0111) ? 0755 : 0644;
		_cleanup_close_ int fd = openat(pfd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
		if (fd < 0)
			return pilot_error_errno(PILOT_EIO, errno, "cannot create '%s'", p);
		map_put(&x->map, p, PILOT_BUNDLE_FILE, NULL);
		x->info->files++;
		x->info->data_bytes += size;
		if ((r = write_data(x, p, fd, size)) < 0)
			return r;
		if (close(TAKE_FD(fd)) < 0)
			return pilot_error_errno(PILOT_EIO, errno, "cannot write '%s'", p);
		return 0;
	}
	case AE_IFLNK: {
		const char *target = archive_entry_symlink(ae);
		if (!target)
			target = archive_entry_symlink_utf8(ae);
		if (!target || !*target)
			return refuse(raw, "a symlink without a target");
		if (strlen(target) > x->lim->max_path)
			return pilot_error_set(PILOT_ELIMIT, "limit max_path (%zu bytes) reached: the target of '%s'",
					       x->lim->max_path, p);
		if ((r = check_again(oldn, raw, PILOT_BUNDLE_SYMLINK)) < 0)
			return r;
		r = bundle_link_escapes(p, target, lookup_map, &x->map, &x->budget);
		if (r) {
			_cleanup_free_ char *t = shown(target);
			return r > 0 ? refuse(raw, "symlink target '%s' points outside", t)
				     : refuse(raw, "symlink target '%s' has too many levels of symlinks", t);
		}
		if ((r = open_parent(x, p, true, &name, &pfd)) < 0)
			return r;
		if (old && unlinkat(pfd, name, 0) < 0)
			return pilot_error_errno(PILOT_EIO, errno, "cannot replace '%s'", p);
		if (symlinkat(target, pfd, name) < 0)
			return pilot_error_errno(PILOT_EIO, errno, "cannot create symlink '%s'", p);
		map_put(&x->map, p, PILOT_BUNDLE_SYMLINK, target);
		x->info->symlinks++;
		return 0;
	}
	default:
		return refuse(raw, "%s", type_words(type));
	}
}

/* Later entries can change where an earlier symlink leads (a/b -> "." makes "b/.." mean
 * the parent of a), so every symlink is checked once more against the finished tree. */
static int check_all_links(struct extractor *x)
{
	for (size_t i = 0; i < x->map.cap; i++) {
		const struct node *n = &x->map.slots[i];
		if (!n->path || n->type != PILOT_BUNDLE_SYMLINK)
			continue;
		int r = bundle_link_escapes(n->path, n->target, lookup_map, &x->map, &x->budget);
		if (r) {
			_cleanup_free_ char *t = shown(n->target);
			return r > 0 ? refuse(n->path, "symlink target '%s' points outside", t)
				     : refuse(n->path, "symlink target '%s' has too many levels of symlinks", t);
		}
	}
	return 0;
}

static int drain(struct extractor *x)
{
	uint64_t extra = 0;
	for (;;) {
		ssize_t n = read(x->in_fd, x->inbuf, INBUF);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return pilot_error_errno(PILOT_EIO, errno, "cannot read the bundle");
		if (n == 0)
			return 0;
		EVP_DigestUpdate(x->md, x->inbuf, (size_t)n);
		x->compressed += (uint64_t)n;
		extra += (uint64_t)n;
		if (extra > TRAILING_MAX)
			return pilot_error_set(PILOT_EINVALID, "more than 16 MiB of data after the end of the bundle");
	}
}

static int run(struct extractor *x)
{
	x->a = archive_read_new();
	if (!x->a)
		return pilot_error_set(PILOT_ENOMEM, "cannot start libarchive");
	/* Never *_all(): only the formats we mean to accept. A libarchive without built-in
	 * zlib would fall back to running an external gzip (ARCHIVE_WARN): refuse that. */
	if (archive_read_support_filter_gzip(x->a) != ARCHIVE_OK || archive_read_support_format_tar(x->a) != ARCHIVE_OK)
		return pilot_error_set(PILOT_EFAIL, "libarchive lacks built-in gzip or tar support");
	if (archive_read_open(x->a, x, NULL, read_cb, NULL) != ARCHIVE_OK)
		return pilot_error_set(PILOT_EINVALID, "not a bundle: %s",
				       archive_error_string(x->a) ? archive_error_string(x->a) : "unknown format");
	_cleanup_buf_ struct pilot_buf path = PILOT_BUF_INIT;
	_cleanup_buf_ struct pilot_buf tgt = PILOT_BUF_INIT;
	uint64_t entries = 0;
	for (;;) {
		struct archive_entry *ae;
		int r = archive_read_next_header(x->a, &ae);
		if (r == ARCHIVE_EOF)
			break;
		/* ARCHIVE_RETRY (a damaged header skipped) is as much an error as FATAL. */
		if (r != ARCHIVE_OK && r != ARCHIVE_WARN)
			return pilot_error_set(PILOT_EINVALID, "cannot read the bundle: %s",
					       archive_error_string(x->a) ? archive_error_string(x->a) : "unknown error");
		if (++entries > x->lim->max_entries)
			return pilot_error_set(PILOT_ELIMIT, "limit max_entries (%llu) reached",
					       (unsigned long long)x->lim->max_entries);
		if ((r = one_entry(x, ae, &path, &tgt)) < 0)
			return r;
	}
	la_int64_t u = archive_filter_bytes(x->a, 0);
	x->info->uncompressed_size = u > 0 ? (uint64_t)u : 0;
	int r = check_all_links(x);
	if (r < 0)
		return r;
	return drain(x);
}

static int dest_state(const char *dest, bool *exists, mode_t *mode)
{
	struct stat st;
	*exists = false;
	if (lstat(dest, &st) < 0) {
		if (errno == ENOENT)
			return 0;
		return pilot_error_errno(PILOT_EIO, errno, "cannot use '%s'", dest);
	}
	if (!S_ISDIR(st.st_mode))
		return pilot_error_set(PILOT_ECONFLICT, "'%s' exists and is not a directory", dest);
	_cleanup_close_ int fd = open(dest, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
	if (!d)
		return pilot_error_errno(PILOT_EIO, errno, "cannot read directory '%s'", dest);
	TAKE_FD(fd);
	struct dirent *de;
	bool empty = true;
	while ((de = readdir(d)))
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
			empty = false;
	closedir(d);
	if (!empty)
		return pilot_error_set(PILOT_ECONFLICT, "'%s' exists and is not empty", dest);
	*exists = true;
	*mode = st.st_mode & 0777;
	return 0;
}

int pilot_bundle_extract_fd(int fd, const char *dest, const struct pilot_extract_limits *lim,
			    struct pilot_bundle_info *info)
{
	struct pilot_extract_limits dl;
	struct pilot_bundle_info local;
	if (!lim) {
		pilot_extract_limits_default(&dl);
		lim = &dl;
	}
	if (!info)
		info = &local;
	memset(info, 0, sizeof(*info));

	/* dest without trailing slashes, split into its parent and name. */
	_cleanup_free_ char *d = pilot_xstrdup(dest);
	size_t dl_len = strlen(d);
	while (dl_len > 1 && d[dl_len - 1] == '/')
		d[--dl_len] = '\0';
	if (!*d)
		return pilot_error_set(PILOT_EINVALID, "no target directory given");
	bool exists;
	mode_t mode = 0;
	int r = dest_state(d, &exists, &mode);
	if (r < 0)
		return r;
	char *slash = strrchr(d, '/');
	_cleanup_free_ char *parent = slash ? (slash == d ? pilot_xstrdup("/") : pilot_xstrndup(d, (size_t)(slash - d)))
					    : pilot_xstrdup(".");
	_cleanup_free_ char *tmp = NULL;
	for (int tries = 0;; tries++) {
		char rnd[13];
		pilot_random_hex(rnd, 6);
		free(tmp);
		tmp = pilot_xasprintf("%s/.pilot-unpack-%s", parent, rnd);
		if (mkdir(tmp, 0755) == 0)
			break;
		if (errno != EEXIST || tries > 10)
			return pilot_error_errno(PILOT_EIO, errno, "cannot create a directory beside '%s'", d);
	}

	struct extractor x = {
		.lim = lim, .in_fd = fd, .cache_fd = -1, .budget = LINK_BUDGET, .info = info,
	};
	x.inbuf = pilot_xmalloc(INBUF);
	x.md = EVP_MD_CTX_new();
	x.root = open(tmp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (x.root < 0)
		r = pilot_error_errno(PILOT_EIO, errno, "cannot open '%s'", tmp);
	else if (!x.md || EVP_DigestInit_ex(x.md, EVP_sha256(), NULL) != 1)
		r = pilot_error_set(PILOT_EFAIL, "cannot start sha256");
	else if (exists && fchmod(x.root, mode) < 0)
		r = pilot_error_errno(PILOT_EIO, errno, "cannot set the mode of '%s'", tmp);
	else
		r = run(&x);
	if (r >= 0 && rename(tmp, d) < 0)
		r = pilot_error_errno(PILOT_EIO, errno, "cannot move the extracted tree to '%s'", d);
	if (r >= 0) {
		unsigned char md[EVP_MAX_MD_SIZE];
		unsigned mdlen = 0;
		EVP_DigestFinal_ex(x.md, md, &mdlen);
		for (unsigned k = 0; k < mdlen && k < 32; k++)
			snprintf(info->sha256 + 2 * k, 3, "%02x", md[k]);
		info->compressed_size = x.compressed;
	}

	if (x.a)
		archive_read_free(x.a);
	if (x.cache_fd >= 0)
		close(x.cache_fd);
	if (x.root >= 0)
		close(x.root);
	free(x.cache_path);
	free(x.inbuf);
	EVP_MD_CTX_free(x.md);
	map_free(&x.map);
	if (r < 0) {
		/* Keep the reason, not a complaint from the clean-up. */
		int code = pilot_error_code();
		_cleanup_free_ char *msg = pilot_xstrdup(pilot_error_last());
		pilot_rm_rf(tmp);
		pilot_error_set(code ? code : r, "%s", msg);
		memset(info, 0, sizeof(*info));
	}
	return r;
}

int pilot_bundle_extract(const char *bundle, const char *dest, const struct pilot_extract_limits *lim,
			 struct pilot_bundle_info *info)
{
	_cleanup_close_ int fd = open(bundle, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return pilot_error_errno(errno == ENOENT ? PILOT_ENOTFOUND : PILOT_EIO, errno, "cannot open '%s'",
					 bundle);
	return pilot_bundle_extract_fd(fd, dest, lim, info);
}
