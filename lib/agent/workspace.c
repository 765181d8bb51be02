/* An attempt's workspace: the bundle fetched (cached by sha256, the cache pruned) and
 * extracted, and the job's environment built from JSON overrides. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/evp.h>

#include "internal.h"
#include "pilot/bundle.h"

struct cached {
	char *path;
	time_t mtime;
	off_t size;
};

/* Copy fd to path (via a temp file), checking that the bytes hash to sha256. */
static int download(int fd, const char *path, const char *sha256)
{
	char rnd[17];
	pilot_random_hex(rnd, 8);
	_cleanup_free_ char *tmp = pilot_xasprintf("%s.tmp.%s", path, rnd);
	_cleanup_close_ int out = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (out < 0)
		return pilot_error_errno(PILOT_EIO, errno, "cannot write '%s'", tmp);
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	EVP_DigestInit_ex(md, EVP_sha256(), NULL);
	char buf[65536];
	int r = 0;
	for (;;) {
		ssize_t n = read(fd, buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			r = pilot_error_errno(PILOT_EUNAVAILABLE, errno, "cannot read bundle %.12s", sha256);
			break;
		}
		if (n == 0)
			break;
		EVP_DigestUpdate(md, buf, (size_t)n);
		if (pilot_write_all(out, buf, (size_t)n) < 0) {
			r = pilot_error_errno(PILOT_EIO, errno, "cannot write '%s'", tmp);
			break;
		}
	}
	unsigned char digest[32];
	unsigned int dlen = 0;
	EVP_DigestFinal_ex(md, digest, &dlen);
	EVP_MD_CTX_free(md);
	char hex[65];
	for (int i = 0; i < 32; i++)
		snprintf(hex + 2 * i, 3, "%02x", digest[i]);
	/* A short read (a dropped connection) shows up as a wrong hash: worth a retry. */
	if (!r && strcmp(hex, sha256))
		r = pilot_error_set(PILOT_EUNAVAILABLE, "bundle %.12s arrived with sha256 %.12s", sha256, hex);
	if (!r && fsync(out) < 0)
		r = pilot_error_errno(PILOT_EIO, errno, "cannot write '%s'", tmp);
	if (!r && rename(tmp, path) < 0)
		r = pilot_error_errno(PILOT_EIO, errno, "cannot write '%s'", path);
	if (r)
		unlink(tmp);
	return r;
}

static int by_mtime(const void *a, const void *b)
{
	const struct cached *x = a, *y = b;
	return x->mtime < y->mtime ? -1 : x->mtime > y->mtime;
}

/* Remove the least recently used bundles until the cache fits in max (keep excepted). */
static void prune_cache(const char *dir, uint64_t max, const char *keep)
{
	DIR *d = opendir(dir);
	if (!d)
		return;
	struct cached *items = NULL;
	size_t n = 0;
	uint64_t total = 0;
	struct dirent *de;
	while ((de = readdir(d))) {
		if (!pilot_str_has_suffix(de->d_name, ".tar.gz"))
			continue;
		struct stat st;
		if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISREG(st.st_mode))
			continue;
		items = pilot_xrealloc(items, (n + 1) * sizeof(*items));
		items[n].path = pilot_path_join(dir, de->d_name);
		items[n].mtime = st.st_mtime;
		items[n].size = st.st_size;
		total += (uint64_t)st.st_size;
		n++;
	}
	closedir(d);
	if (n)
		qsort(items, n, sizeof(*items), by_mtime);
	for (size_t i = 0; i < n; i++) {
		if (total > max && strcmp(items[i].path, keep) && unlink(items[i].path) == 0) {
			total -= (uint64_t)items[i].size;
			pilot_log(PILOT_LOG_DEBUG, "bundle cache: removed '%s'", items[i].path);
		}
		free(items[i].path);
	}
	free(items);
}

/* Open the bundle for reading: from the cache (fetching it first when missing) or
 * straight from the api. */
static int open_bundle(struct exec *e, const char *sha, const char *cached, int *fd)
{
	int r;
	pthread_mutex_lock(&e->api_lock);
	if (!cached) {
		r = pilot_api_bundle_get(e->o->api, sha, fd);
		pthread_mutex_unlock(&e->api_lock);
		return r;
	}
	r = 0;
	if (access(cached, R_OK) != 0) {
		int in = -1;
		r = pilot_api_bundle_get(e->o->api, sha, &in);
		if (r >= 0) {
			r = download(in, cached, sha);
			close(in);
		}
	}
	pthread_mutex_unlock(&e->api_lock);
	if (r < 0)
		return r;
	/* Mark it used, for the pruning above. */
	utimensat(AT_FDCWD, cached, NULL, 0);
	*fd = open(cached, O_RDONLY | O_CLOEXEC);
	if (*fd < 0)
		return pilot_error_errno(PILOT_EIO, errno, "cannot open '%s'", cached);
	return 0;
}

/* Extract the run's bundle into ws. Returns 0, or a negative code with *invalid telling
 * whether the bundle itself is at fault (bundle_invalid) or fetching it failed. */
int exec_prepare_workspace(struct exec *e, const char *ws, bool *invalid)
{
	const char *sha = e->claim->run.bundle_sha256;
	*invalid = false;
	if (!sha[0])
		return pilot_mkdir_p(ws, 0755);
	_cleanup_free_ char *cached = NULL;
	if (e->o->bundle_cache) {
		int r = pilot_mkdir_p(e->o->bundle_cache, 0700);
		if (r < 0)
			return r;
		cached = pilot_xasprintf("%s/%s.tar.gz", e->o->bundle_cache, sha);
	}
	int64_t backoff = BACKOFF_MIN_MS * 4, start = pilot_mono_ms();
	bool refetched = false;
	for (;;) {
		int fd = -1;
		int r = open_bundle(e, sha, cached, &fd);
		if (r >= 0) {
			struct pilot_bundle_info info;
			r = pilot_bundle_extract_fd(fd, ws, NULL, &info);
			close(fd);
			if (r >= 0 && strcmp(info.sha256, sha))
				r = pilot_error_set(PILOT_EINVALID, "the bytes hash to %.12s", info.sha256);
			if (r >= 0) {
				if (cached)
					prune_cache(e->o->bundle_cache,
						    e->o->bundle_cache_max ? e->o->bundle_cache_max : PILOT_AGENT_CACHE_MAX,
						    cached);
				return 0;
			}
			pilot_error_prefix(r, "bundle %.12s", sha);
			/* A damaged cached copy is not the bundle's fault: fetch it again, once. */
			if (cached && !refetched && (r == PILOT_EINVALID || r == PILOT_ELIMIT || r == PILOT_EIO)) {
				unlink(cached);
				refetched = true;
				continue;
			}
			*invalid = r == PILOT_EINVALID || r == PILOT_ELIMIT;
			return r;
		}
		if (exec_superseded(r, -1) && r != PILOT_ENOTFOUND) {
			exec_fatal_locked(e, PILOT_EXEC_SUPERSEDED);
			return r;
		}
		if (r == PILOT_ENOTFOUND) {
			*invalid = true;
			return pilot_error_prefix(r, "bundle %.12s", sha);
		}
		if (!exec_retry_wait(e, r, start, &backoff, "fetching the bundle"))
			return pilot_error_prefix(r, "cannot fetch bundle %.12s", sha);
	}
}

void exec_strv_add(struct strv *s, char *owned)
{
	s->v = pilot_xrealloc(s->v, (s->n + 2) * sizeof(*s->v));
	s->v[s->n++] = owned;
	s->v[s->n] = NULL;
}

void exec_strv_free(struct strv *s)
{
	for (size_t i = 0; i < s->n; i++)
		free(s->v[i]);
	free(s->v);
}

/* KEY=VALUE for every member of a JSON object of overrides. */
int exec_add_json_env(struct strv *env, const char *json)
{
	if (!json || !*json)
		return 0;
	json_error_t jerr;
	json_t *obj = json_loads(json, 0, &jerr);
	if (!json_is_object(obj)) {
		json_decref(obj);
		return pilot_error_set(PILOT_EINVALID, "the run's env overrides are not a JSON object");
	}
	const char *k;
	json_t *v;
	json_object_foreach(obj, k, v) {
		if (json_is_string(v)) {
			exec_strv_add(env, pilot_xasprintf("%s=%s", k, json_string_value(v)));
		} else {
			char *text = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
			exec_strv_add(env, pilot_xasprintf("%s=%s", k, text ? text : ""));
			free(text);
		}
	}
	json_decref(obj);
	return 0;
}
