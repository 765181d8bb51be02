/* The local content-addressed blob directory. A writer holds an exclusive flock on its
 * temp file for as long as it writes, so the clean-up at open can tell an abandoned
 * temp file (lock free) from one another process is still filling. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "pilot/blob.h"

struct pilot_blob_store {
	char *dir;
	char *tmp;
};

static void remove_stale_temps(const char *tmpdir)
{
	DIR *d = opendir(tmpdir);
	if (!d)
		return;
	struct dirent *e;
	while ((e = readdir(d))) {
		if (e->d_name[0] == '.')
			continue;
		int fd = openat(dirfd(d), e->d_name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
		if (fd < 0)
			continue;
		/* Unlinking while holding the lock: a writer that took the lock first keeps
		 * it until it renamed its file away, so we never remove a live one. */
		if (flock(fd, LOCK_EX | LOCK_NB) == 0) {
			struct stat st;
			if (fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0)
				unlinkat(dirfd(d), e->d_name, 0);
		}
		close(fd);
	}
	closedir(d);
}

int pilot_blob_open(const char *dir, struct pilot_blob_store **out)
{
	struct pilot_blob_store *bs = pilot_xcalloc(1, sizeof(*bs));
	bs->dir = pilot_xstrdup(dir);
	bs->tmp = pilot_path_join(dir, "tmp");
	_cleanup_free_ char *sha = pilot_path_join(dir, "sha256");
	int r;
	if ((r = pilot_mkdir_p(sha, 0700)) < 0 || (r = pilot_mkdir_p(bs->tmp, 0700)) < 0) {
		pilot_blob_close(bs);
		return pilot_error_prefix(r, "cannot open blob store '%s'", dir);
	}
	remove_stale_temps(bs->tmp);
	*out = bs;
	return 0;
}

void pilot_blob_close(struct pilot_blob_store *bs)
{
	if (!bs)
		return;
	free(bs->dir);
	free(bs->tmp);
	free(bs);
}

static int check_hash(const char *sha256)
{
	if (!sha256 || !pilot_sha256_valid(sha256))
		return pilot_error_set(PILOT_EINVALID, "invalid sha256 '%s': expected 64 lowercase hex digits",
				       sha256 ? sha256 : "");
	return 0;
}

char *pilot_blob_path(struct pilot_blob_store *bs, const char *sha256)
{
	return pilot_xasprintf("%s/sha256/%.2s/%s", bs->dir, sha256, sha256 + 2);
}

int pilot_blob_has(struct pilot_blob_store *bs, const char *sha256)
{
	int r = check_hash(sha256);
	if (r < 0)
		return r;
	_cleanup_free_ char *p = pilot_blob_path(bs, sha256);
	struct stat st;
	if (stat(p, &st) == 0)
		return S_ISREG(st.st_mode) ? 1 : 0;
	if (errno == ENOENT)
		return 0;
	return pilot_error_errno(PILOT_EIO, errno, "cannot stat blob '%s'", p);
}

/* Writes the stream into a locked temp file while hashing it. */
struct writer {
	int fd;
	char *path;
	EVP_MD_CTX *md;
	uint64_t size;
};

static int writer_begin(struct pilot_blob_store *bs, struct writer *w)
{
	for (int tries = 0;; tries++) {
		char rnd[17];
		pilot_random_hex(rnd, 8);
		free(w->path);
		w->path = pilot_xasprintf("%s/%s", bs->tmp, rnd);
		w->fd = open(w->path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
		if (w->fd < 0) {
			/* The tmp dir may have been removed behind our back; recreate once. */
			if (errno == ENOENT && pilot_mkdir_p(bs->tmp, 0700) == 0)
				w->fd = open(w->path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
			if (w->fd < 0)
				return pilot_error_errno(PILOT_EIO, errno, "cannot create blob temp file '%s'",
							 w->path);
		}
		flock(w->fd, LOCK_EX);
		/* A cleaner in another process may have taken the lock between our open and
		 * flock and unlinked the file: then start over with a new one. */
		struct stat a, b;
		if (fstat(w->fd, &a) == 0 && stat(w->path, &b) == 0 && a.st_ino == b.st_ino && a.st_dev == b.st_dev)
			break;
		close(w->fd);
		w->fd = -1;
		if (tries > 8)
			return pilot_error_set(PILOT_EIO, "cannot create blob temp file in '%s'", bs->tmp);
	}
	w->md = EVP_MD_CTX_new();
	if (!w->md || EVP_DigestInit_ex(w->md, EVP_sha256(), NULL) != 1)
		abort();
	return 0;
}

static int writer_add(struct writer *w, const void *p, size_t n)
{
	if (pilot_write_all(w->fd, p, n) < 0)
		return pilot_error_errno(PILOT_EIO, errno, "cannot write blob temp file '%s'", w->path);
	EVP_DigestUpdate(w->md, p, n);
	w->size += n;
	return 0;
}

static void writer_abort(struct writer *w)
{
	if (w->fd >= 0) {
		unlink(w->path);
		close(w->fd);
		w->fd = -1;
	}
	free(w->path);
	w->path = NULL;
	EVP_MD_CTX_free(w->md);
	w->md = NULL;
}

static void hex_digest(EVP_MD_CTX *md, char out[65])
{
	static const char hex[] = "0123456789abcdef";
	unsigned char d[EVP_MAX_MD_SIZE];
	unsigned int n = 0;
	EVP_DigestFinal_ex(md, d, &n);
	for (unsigned i = 0; i < 32; i++) {
		out[2 * i] = hex[d[i] >> 4];
		out[2 * i + 1] = hex[d[i] & 15];
	}
	out[64] = '\0';
}

static int writer_commit(struct pilot_blob_store *bs, struct writer *w, const char *expect, char sha_out[65],
			 uint64_t *size_out)
{
	char sha[65];
	int r = 0;
	hex_digest(w->md, sha);
	_cleanup_free_ char *final = pilot_blob_path(bs, sha);
	_cleanup_free_ char *sub = pilot_xasprintf("%s/sha256/%.2s", bs->dir, sha);
	_cleanup_free_ char *top = pilot_path_join(bs->dir, "sha256");
	if (expect && strcmp(expect, sha)) {
		r = pilot_error_set(PILOT_EINVALID, "content does not match sha256 '%s': its sha256 is '%s'", expect,
				    sha);
		goto out;
	}
	if (fsync(w->fd) < 0) {
		r = pilot_error_errno(PILOT_EIO, errno, "cannot fsync blob temp file '%s'", w->path);
		goto out;
	}
	struct stat st;
	if (stat(final, &st) == 0 && S_ISREG(st.st_mode) && (uint64_t)st.st_size == w->size)
		goto out; /* already there: the temp file goes */
	if (mkdir(sub, 0700) < 0 && errno != EEXIST) {
		r = pilot_error_errno(PILOT_EIO, errno, "cannot create '%s'", sub);
		goto out;
	}
	if (rename(w->path, final) < 0) {
		r = pilot_error_errno(PILOT_EIO, errno, "cannot move blob into '%s'", final);
		goto out;
	}
	/* Renamed: nothing left to unlink; make the new name durable. */
	close(w->fd);
	w->fd = -1;
	if ((r = pilot_fsync_dir(sub)) < 0)
		goto out;
	r = pilot_fsync_dir(top);
out:
	if (r >= 0) {
		if (sha_out)
			memcpy(sha_out, sha, 65);
		if (size_out)
			*size_out = w->size;
	}
	writer_abort(w);
	return r < 0 ? r : 0;
}

int pilot_blob_put_fd(struct pilot_blob_store *bs, int fd, const char *expect_sha256, char sha256_out[65],
		      uint64_t *size_out)
{
	int r;
	if (expect_sha256 && (r = check_hash(expect_sha256)) < 0)
		return r;
	struct writer w = { .fd = -1 };
	if ((r = writer_begin(bs, &w)) < 0) {
		writer_abort(&w);
		return r;
	}
	_cleanup_free_ char *buf = pilot_xmalloc(65536);
	for (;;) {
		ssize_t n = read(fd, buf, 65536);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			r = pilot_error_errno(PILOT_EIO, errno, "cannot read blob content");
			writer_abort(&w);
			return r;
		}
		if (n == 0)
			break;
		if ((r = writer_add(&w, buf, (size_t)n)) < 0) {
			writer_abort(&w);
			return r;
		}
	}
	return writer_commit(bs, &w, expect_sha256, sha256_out, size_out);
}

int pilot_blob_put_buf(struct pilot_blob_store *bs, const void *data, size_t len, const char *expect_sha256,
		       char sha256_out[65])
{
	int r;
	if (expect_sha256 && (r = check_hash(expect_sha256)) < 0)
		return r;
	struct writer w = { .fd = -1 };
	if ((r = writer_begin(bs, &w)) < 0 || (r = writer_add(&w, data, len)) < 0) {
		writer_abort(&w);
		return r;
	}
	return writer_commit(bs, &w, expect_sha256, sha256_out, NULL);
}

int pilot_blob_open_read(struct pilot_blob_store *bs, const char *sha256, int *fd, uint64_t *size_out)
{
	int r = check_hash(sha256);
	if (r < 0)
		return r;
	_cleanup_free_ char *p = pilot_blob_path(bs, sha256);
	int f = open(p, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (f < 0) {
		if (errno == ENOENT)
			return pilot_error_set(PILOT_ENOTFOUND, "blob '%s' not found", sha256);
		return pilot_error_errno(PILOT_EIO, errno, "cannot open blob '%s'", p);
	}
	struct stat st;
	if (fstat(f, &st) < 0 || !S_ISREG(st.st_mode)) {
		close(f);
		return pilot_error_set(PILOT_EIO, "blob '%s' is not a regular file", p);
	}
	if (size_out)
		*size_out = (uint64_t)st.st_size;
	*fd = f;
	return 0;
}

int pilot_blob_remove(struct pilot_blob_store *bs, const char *sha256)
{
	int r = check_hash(sha256);
	if (r < 0)
		return r;
	_cleanup_free_ char *p = pilot_blob_path(bs, sha256);
	if (unlink(p) < 0 && errno != ENOENT)
		return pilot_error_errno(PILOT_EIO, errno, "cannot remove blob '%s'", p);
	return 0;
}
