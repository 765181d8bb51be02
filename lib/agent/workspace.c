/* An attempt's workspace: the bundle fetched (cached by sha256, the cache pruned) and
 * extracted, the artifacts of the runs it waited for under needs/NAME/, and the job's
 * environment built from JSON overrides. */
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

/* Copy fd to path (via a temp file), checking that the bytes hash to sha256; what
 * ("bundle", "artifact") names the bytes in errors. */
static int download(int fd, const char *path, const char *sha256, const char *what)
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
			r = pilot_error_errno(PILOT_EUNAVAILABLE, errno, "cannot read %s %.12s", what, sha256);
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
		r = pilot_error_set(PILOT_EUNAVAILABLE, "%s %.12s arrived with sha256 %.12s", what, sha256, hex);
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
			r = download(in, cached, sha, "bundle");
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

/* A relative path of '/'-separated names, none empty, "." or "..": safe to put under a
 * directory. */
static bool plain_relative(const char *p)
{
	if (!*p || *p == '/')
		return false;
	for (const char *s = p; *s;) {
		size_t n = strcspn(s, "/");
		if (!n || (n == 1 && s[0] == '.') || (n == 2 && s[0] == '.' && s[1] == '.'))
			return false;
		s += n;
		if (*s)
			s++;
		if (!*s && s[-1] == '/')
			return false;
	}
	return true;
}

/* The artifacts of need (the latest attempt's copy of each path) into dir. */
static int fetch_need(struct exec *e, const struct pilot_run_need *need, const char *dir)
{
	struct pilot_artifact_list l = { 0 };
	int64_t backoff = BACKOFF_MIN_MS * 4, start = pilot_mono_ms();
	int r;
	for (;;) {
		pthread_mutex_lock(&e->api_lock);
		r = pilot_api_list_artifacts(e->o->api, need->run, 0, &l);
		pthread_mutex_unlock(&e->api_lock);
		if (r >= 0 || !exec_retry_wait(e, r, start, &backoff, "listing the artifacts of a need"))
			break;
	}
	if (r < 0)
		return pilot_error_prefix(r, "cannot list the artifacts of run %s", need->run);
	/* By attempt, then path: a path's last record is its latest attempt's. */
	for (size_t i = 0; i < l.n && r >= 0; i++) {
		const struct pilot_artifact *a = &l.items[i];
		bool later = false;
		for (size_t k = i + 1; k < l.n && !later; k++)
			later = !strcmp(l.items[k].path, a->path);
		if (later)
			continue;
		if (!plain_relative(a->path)) {
			r = pilot_error_set(PILOT_EINVALID, "run %s has an artifact with an unsafe path '%s'", need->run,
					    a->path);
			break;
		}
		_cleanup_free_ char *dest = pilot_path_join(dir, a->path);
		_cleanup_free_ char *parent = pilot_xstrdup(dest);
		*strrchr(parent, '/') = '\0';
		if ((r = pilot_mkdir_p(parent, 0755)) < 0)
			break;
		for (start = pilot_mono_ms(), backoff = BACKOFF_MIN_MS * 4;;) {
			int fd = -1;
			pthread_mutex_lock(&e->api_lock);
			r = pilot_api_get_artifact(e->o->api, need->run, a->path, a->attempt, &fd, NULL);
			pthread_mutex_unlock(&e->api_lock);
			if (r >= 0) {
				r = download(fd, dest, a->sha256, "artifact");
				close(fd);
			}
			if (r >= 0 || !exec_retry_wait(e, r, start, &backoff, "fetching an artifact of a need"))
				break;
		}
		if (r < 0)
			pilot_error_prefix(r, "cannot fetch artifact '%s' of run %s", a->path, need->run);
	}
	pilot_artifact_list_clear(&l);
	return r < 0 ? r : 0;
}

/* The artifacts of each run this one waited for, under ws/needs/NAME/ (NAME the need's
 * run name: a pipeline's job; by its id when two needs share a name). */
static int fetch_needs(struct exec *e, const char *ws)
{
	const struct pilot_run *run = &e->claim->run;
	for (size_t i = 0; i < run->nneeds; i++) {
		const struct pilot_run_need *need = &run->needs[i];
		const char *name = need->name;
		for (size_t k = 0; k < run->nneeds && *name; k++)
			if (k != i && !strcmp(run->needs[k].name, name))
				name = "";
		if (!*name || !plain_relative(name) || strchr(name, '/'))
			name = need->run;
		_cleanup_free_ char *dir = pilot_xasprintf("%s/needs/%s", ws, name);
		int r = pilot_mkdir_p(dir, 0755);
		if (r < 0 || (r = fetch_need(e, need, dir)) < 0)
			return r;
	}
	return 0;
}

static int extract_bundle(struct exec *e, const char *ws, bool *invalid);

/* Extract the run's bundle into ws, then fetch the artifacts of its needs. Returns 0, or
 * a negative code with *invalid telling whether the bundle itself is at fault
 * (bundle_invalid) or fetching failed. */
int exec_prepare_workspace(struct exec *e, const char *ws, bool *invalid)
{
	*invalid = false;
	int r = extract_bundle(e, ws, invalid);
	if (r < 0 || !e->claim->run.nneeds)
		return r;
	if ((r = fetch_needs(e, ws)) < 0 && exec_superseded(r, -1) && r != PILOT_ENOTFOUND)
		exec_fatal_locked(e, PILOT_EXEC_SUPERSEDED);
	return r;
}

static int extract_bundle(struct exec *e, const char *ws, bool *invalid)
{
	const char *sha = e->claim->run.bundle_sha256;
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
