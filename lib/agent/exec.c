/* One claimed attempt from start to finish: fetch and extract the bundle, build the job,
 * run it, ship its log and metrics as they come (byte offsets, retried with backoff),
 * renew the lease, honour cancel, upload artifacts, report the end. Three threads: the
 * caller's runs the job, a shipper sends log/metric batches, a heartbeat keeps the lease.
 * Calls on the main api are serialised by one lock (the heartbeat may have an api of its
 * own); waiting and backoff happen outside it.
 *
 * Failures of a call are of three kinds: superseded (409 for the lease, or the attempt
 * is gone) stops everything and drops the results; passing ones (server away, dropped
 * connection, 5xx) are retried with backoff for as long as the lease holds; the rest
 * (refused input) are not retried. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/evp.h>

#include "pilot/agent.h"
#include "pilot/bundle.h"
#include "pilot/spec.h"

/* Output waiting to be shipped beyond this blocks the job's output (backpressure) rather
 * than growing without bound while the server is away. */
#define MAX_PENDING_LOG (64u * 1024 * 1024)
#define MAX_BATCH (1024u * 1024)
#define MAX_METRIC_BATCH 500
/* A line written in pieces (print's arguments one write each) is given this long to
 * complete before a batch goes out without it. */
#define LINGER_MS 20
#define BACKOFF_MIN_MS 50
#define BACKOFF_MAX_MS 2000
#define PID_FILE "job.pid"

struct exec {
	const struct pilot_exec_opts *o;
	const struct pilot_claim *claim;
	struct pilot_job_control *ctl;
	pthread_mutex_t api_lock;
	int64_t heartbeat_ms, give_up_ms;
	const char *dir;      /* the attempt's directory */

	pthread_mutex_t lock; /* everything below */
	pthread_cond_t cond;  /* shipper and backpressure */
	pthread_cond_t hb_cond;
	struct pilot_buf log; /* unacknowledged output; log.data[0] is at offset log_base */
	int64_t log_base;
	char **metrics;       /* unacknowledged metrics; metrics[0] has index metric_base */
	size_t nmetrics;
	int64_t metric_base;
	int64_t last_ship;    /* monotonic ms the latest batch left */
	int64_t pending_since; /* monotonic ms the oldest unshipped output came */
	bool job_done;        /* no more output will come */
	bool finished;        /* the end was reported (or given up): the heartbeat stops */
	bool stop;            /* superseded or lease lost: write nothing more */
	enum pilot_exec_outcome fatal;
	bool cancel_requested;
	int64_t cancel_grace_ms; /* the grace the run's cancel asked for (PILOT_CANCEL_GRACE_AGENT) */
	bool reporting;       /* a finish went out: its answer decides, not a heartbeat's */
	int64_t last_renew;   /* monotonic ms */
	int64_t hb_call_start; /* when the heartbeat in flight went out; 0 = none */
	bool log_broken;      /* the server refused our offsets in a way we cannot repair */
};

const char *pilot_exec_outcome_name(enum pilot_exec_outcome o)
{
	switch (o) {
	case PILOT_EXEC_REPORTED: return "reported";
	case PILOT_EXEC_SUPERSEDED: return "superseded";
	case PILOT_EXEC_LEASE_LOST: return "lease lost";
	case PILOT_EXEC_UNREPORTED: return "unreported";
	}
	return "?";
}

static void deadline_at(struct timespec *ts, int64_t mono_ms)
{
	ts->tv_sec = (time_t)(mono_ms / 1000);
	ts->tv_nsec = (long)(mono_ms % 1000) * 1000000L;
}

/* Wait on c until the monotonic time `until` (ms), or a signal of c. */
static void wait_until(pthread_cond_t *c, pthread_mutex_t *m, int64_t until)
{
	struct timespec ts;
	deadline_at(&ts, until);
	pthread_cond_timedwait(c, m, &ts);
}

static int64_t jitter(int64_t ms)
{
	uint32_t r;
	pilot_random_bytes(&r, sizeof(r));
	return ms / 2 + (int64_t)(r % (uint32_t)(ms / 2 + 1));
}

static int64_t next_backoff(int64_t b)
{
	return b * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : b * 2;
}

static bool hurry(const struct exec *e)
{
	return e->o->hurry && e->o->hurry(e->o->ud);
}

/* A refusal that means another attempt owns the run (or this one is gone): api.h says
 * such messages name the attempt "superseded"; a refusal that carries an expected
 * offset is about the bytes instead. */
static bool is_superseded(int r, int64_t expected)
{
	if (r == PILOT_ENOTFOUND)
		return true;
	if (r != PILOT_ECONFLICT)
		return false;
	return expected < 0 || strstr(pilot_error_last(), "superseded") != NULL;
}

/* Worth trying again: the server or the link is away or failed for a passing reason. */
static bool is_transient(int r)
{
	return r == PILOT_EUNAVAILABLE || r == PILOT_EIO || r == PILOT_EFAIL || r == PILOT_ENOMEM;
}

/* Called with e->lock held. */
static void go_fatal(struct exec *e, enum pilot_exec_outcome why)
{
	if (e->stop)
		return;
	e->stop = true;
	e->fatal = why;
	if (e->ctl)
		pilot_job_control_cancel(e->ctl, true);
	pthread_cond_broadcast(&e->cond);
	pthread_cond_broadcast(&e->hb_cond);
}

static void fatal_locked(struct exec *e, enum pilot_exec_outcome why)
{
	pthread_mutex_lock(&e->lock);
	go_fatal(e, why);
	pthread_mutex_unlock(&e->lock);
}

static bool stopped(struct exec *e)
{
	pthread_mutex_lock(&e->lock);
	bool s = e->stop;
	pthread_mutex_unlock(&e->lock);
	return s;
}

/* Called with e->lock held: no renewal for give_up_ms, with a renewal tried and failed
 * (or stuck: a heartbeat in flight for longer than an interval), means the server may
 * have given the run to someone else; stop before writing anything more. Only a tried
 * renewal counts: after a pause (SIGSTOP, a suspended machine) the agent asks first,
 * and a superseded attempt learns so from the server. */
static bool check_lease(struct exec *e, bool failed)
{
	int64_t now = pilot_mono_ms();
	bool hung = e->hb_call_start && now - e->hb_call_start >= e->heartbeat_ms;
	if (!e->stop && (failed || hung) && now - e->last_renew >= e->give_up_ms) {
		char d[32];
		pilot_format_duration(e->give_up_ms, d, sizeof(d));
		pilot_log(PILOT_LOG_ERROR, "attempt %s: the lease could not be renewed for %s, stopping the job",
			  e->claim->attempt_id, d);
		go_fatal(e, PILOT_EXEC_LEASE_LOST);
	}
	return e->stop;
}

/* ---- shipping ---------------------------------------------------------------- */

/* Called and returns with e->lock held (released during the call). */
static int ship_log(struct exec *e)
{
	int64_t offset = e->log_base;
	size_t len = e->log.len < MAX_BATCH ? e->log.len : MAX_BATCH;
	char *copy = pilot_xmalloc(len);
	memcpy(copy, e->log.data, len);
	pthread_mutex_unlock(&e->lock);

	int64_t expected = -1;
	pthread_mutex_lock(&e->api_lock);
	int r = pilot_api_append_log(e->o->api, e->claim->attempt_id, e->claim->lease_token, offset, copy, len,
				     &expected);
	pthread_mutex_unlock(&e->api_lock);
	free(copy);

	pthread_mutex_lock(&e->lock);
	if (r >= 0) {
		pilot_buf_consume(&e->log, len);
		e->log_base += (int64_t)len;
	} else if (is_superseded(r, expected)) {
		pilot_log(PILOT_LOG_WARN, "attempt %s: %s", e->claim->attempt_id, pilot_error_last());
		go_fatal(e, PILOT_EXEC_SUPERSEDED);
	} else if (r == PILOT_ECONFLICT && expected > offset && expected <= offset + (int64_t)len) {
		/* The server has part of this batch already: go on from where it is. */
		pilot_buf_consume(&e->log, (size_t)(expected - offset));
		e->log_base = expected;
	} else if (!is_transient(r)) {
		pilot_log(PILOT_LOG_ERROR, "attempt %s: the log cannot be shipped: %s", e->claim->attempt_id,
			  pilot_error_last());
		e->log_broken = true;
		pilot_buf_reset(&e->log);
	} else {
		return r;
	}
	pthread_cond_broadcast(&e->cond);
	return 0;
}

/* Same locking as ship_log. */
static int ship_metrics(struct exec *e)
{
	size_t n = e->nmetrics < MAX_METRIC_BATCH ? e->nmetrics : MAX_METRIC_BATCH;
	struct pilot_metric *items = pilot_xcalloc(n, sizeof(*items));
	int64_t first = e->metric_base;
	for (size_t i = 0; i < n; i++) {
		items[i].attempt = e->claim->attempt;
		items[i].index = first + (int64_t)i;
		items[i].json = pilot_xstrdup(e->metrics[i]);
	}
	pthread_mutex_unlock(&e->lock);

	int64_t expected = -1;
	pthread_mutex_lock(&e->api_lock);
	int r = pilot_api_put_metrics(e->o->api, e->claim->attempt_id, e->claim->lease_token, first, items, n,
				      &expected);
	pthread_mutex_unlock(&e->api_lock);
	for (size_t i = 0; i < n; i++)
		free(items[i].json);
	free(items);

	pthread_mutex_lock(&e->lock);
	size_t done = 0;
	if (r >= 0) {
		done = n;
	} else if (is_superseded(r, expected)) {
		pilot_log(PILOT_LOG_WARN, "attempt %s: %s", e->claim->attempt_id, pilot_error_last());
		go_fatal(e, PILOT_EXEC_SUPERSEDED);
	} else if (r == PILOT_ECONFLICT && expected > first && expected <= first + (int64_t)n) {
		done = (size_t)(expected - first);
	} else if (!is_transient(r)) {
		/* Cannot be repaired: drop them rather than loop. */
		pilot_log(PILOT_LOG_WARN, "attempt %s: %zu metrics dropped: %s", e->claim->attempt_id, n,
			  pilot_error_last());
		done = n;
	} else {
		return r;
	}
	for (size_t i = 0; i < done; i++)
		free(e->metrics[i]);
	memmove(e->metrics, e->metrics + done, (e->nmetrics - done) * sizeof(*e->metrics));
	e->nmetrics -= done;
	e->metric_base += (int64_t)done;
	return 0;
}

static void *shipper(void *arg)
{
	struct exec *e = arg;
	int64_t backoff = BACKOFF_MIN_MS;
	pthread_mutex_lock(&e->lock);
	for (;;) {
		if (check_lease(e, false))
			break;
		bool pending = e->log.len || e->nmetrics;
		int64_t now = pilot_mono_ms();
		if (!pending) {
			if (e->job_done)
				break;
			/* Woken by output; the timeout only keeps the lease check going. */
			wait_until(&e->cond, &e->lock, now + 1000);
			continue;
		}
		int64_t due = e->last_ship + PILOT_AGENT_SHIP_INTERVAL_MS;
		bool partial = e->log.len && e->log.data[e->log.len - 1] != '\n';
		if (partial && due < e->pending_since + LINGER_MS)
			due = e->pending_since + LINGER_MS;
		if (!e->job_done && e->log.len < PILOT_AGENT_SHIP_BYTES && now < due) {
			wait_until(&e->cond, &e->lock, due);
			continue;
		}
		e->last_ship = now;
		int r = 0;
		if (e->log.len)
			r = ship_log(e);
		if (r >= 0 && e->nmetrics && !e->stop)
			r = ship_metrics(e);
		if (r >= 0) {
			backoff = BACKOFF_MIN_MS;
			continue;
		}
		/* The server is away or failed for a passing reason: keep everything and try
		 * again, backing off, until the lease says otherwise. */
		pilot_log(PILOT_LOG_INFO, "attempt %s: shipping failed, retrying: %s", e->claim->attempt_id,
			  pilot_error_last());
		if (hurry(e) && e->job_done)
			break;
		wait_until(&e->cond, &e->lock, pilot_mono_ms() + jitter(backoff));
		backoff = next_backoff(backoff);
	}
	pthread_mutex_unlock(&e->lock);
	return NULL;
}

/* The run's cancel, as a heartbeat brings it: the first one stops the job with the
 * grace it asked for (or the agent's own), a later one with a shorter grace hurries
 * the stop. Called with e->lock held. */
static void heed_cancel(struct exec *e, int64_t grace_ms)
{
	if (grace_ms < 0)
		grace_ms = PILOT_CANCEL_GRACE_AGENT;
	if (e->cancel_requested &&
	    (grace_ms < 0 || (e->cancel_grace_ms >= 0 && grace_ms >= e->cancel_grace_ms)))
		return;
	char d[32] = "the agent's own";
	if (grace_ms >= 0)
		pilot_format_duration(grace_ms, d, sizeof(d));
	pilot_log(PILOT_LOG_NOTICE, "run %s: cancel %s (grace %s)", e->claim->run.id,
		  e->cancel_requested ? "hurried" : "requested", d);
	e->cancel_requested = true;
	e->cancel_grace_ms = grace_ms;
	if (e->ctl)
		pilot_job_control_cancel_grace(e->ctl, grace_ms);
}

static void *heartbeat(void *arg)
{
	struct exec *e = arg;
	struct pilot_api *api = e->o->hb_api ? e->o->hb_api : e->o->api;
	int64_t retry = e->heartbeat_ms / 4 < 1000 ? e->heartbeat_ms / 4 : 1000;
	if (retry < 50)
		retry = 50;
	pthread_mutex_lock(&e->lock);
	int64_t next = pilot_mono_ms() + e->heartbeat_ms;
	pilot_log(PILOT_LOG_DEBUG, "attempt %s: heartbeat every %lld ms, giving up after %lld ms", e->claim->attempt_id,
		  (long long)e->heartbeat_ms, (long long)e->give_up_ms);
	while (!e->finished && !e->stop) {
		int64_t now = pilot_mono_ms();
		if (now < next) {
			wait_until(&e->hb_cond, &e->lock, next);
			continue;
		}
		e->hb_call_start = now;
		pthread_mutex_unlock(&e->lock);
		struct pilot_heartbeat_reply reply = { 0 };
		if (!e->o->hb_api)
			pthread_mutex_lock(&e->api_lock);
		int r = pilot_api_heartbeat(api, e->claim->attempt_id, e->claim->lease_token, &reply);
		if (!e->o->hb_api)
			pthread_mutex_unlock(&e->api_lock);
		pthread_mutex_lock(&e->lock);
		e->hb_call_start = 0;
		if (e->finished || e->stop)
			break;
		if (r >= 0) {
			/* The server renewed from when it got the call, which is after now. */
			e->last_renew = now;
			next = pilot_mono_ms() + e->heartbeat_ms;
			if (reply.cancel_requested)
				heed_cancel(e, reply.cancel_grace_ms);
		} else if (is_superseded(r, -1) && e->reporting) {
			/* Maybe our own finish got through and only its answer was lost: the
			 * replay of the finish tells. */
			break;
		} else if (is_superseded(r, -1)) {
			pilot_log(PILOT_LOG_WARN, "attempt %s: %s", e->claim->attempt_id, pilot_error_last());
			go_fatal(e, PILOT_EXEC_SUPERSEDED);
		} else if (!check_lease(e, true)) {
			pilot_log(PILOT_LOG_INFO, "attempt %s: heartbeat failed, retrying: %s", e->claim->attempt_id,
				  pilot_error_last());
			next = pilot_mono_ms() + retry;
		}
	}
	pthread_mutex_unlock(&e->lock);
	return NULL;
}

/* ---- the job's callbacks (on the caller's thread, inside pilot_runtime_run) ------- */

static void on_output(int stream, const char *data, size_t len, void *ud)
{
	struct exec *e = ud;
	if (e->o->on_output)
		e->o->on_output(stream, data, len, e->o->ud);
	pthread_mutex_lock(&e->lock);
	while (!e->stop && !e->log_broken && e->log.len > MAX_PENDING_LOG)
		pthread_cond_wait(&e->cond, &e->lock);
	if (!e->stop && !e->log_broken) {
		bool was_empty = e->log.len == 0;
		if (was_empty)
			e->pending_since = pilot_mono_ms();
		pilot_buf_append(&e->log, data, len);
		if (was_empty || e->log.len >= PILOT_AGENT_SHIP_BYTES)
			pthread_cond_broadcast(&e->cond);
	}
	pthread_mutex_unlock(&e->lock);
}

static void on_metric(const char *json, void *ud)
{
	struct exec *e = ud;
	pthread_mutex_lock(&e->lock);
	if (!e->stop) {
		e->metrics = pilot_xrealloc(e->metrics, (e->nmetrics + 1) * sizeof(*e->metrics));
		e->metrics[e->nmetrics++] = pilot_xstrdup(json);
		pthread_cond_broadcast(&e->cond);
	}
	pthread_mutex_unlock(&e->lock);
}

/* Field 22 of /proc/PID/stat: the start time, which tells a reused pid apart. */
static int proc_start_time(pid_t pid, unsigned long long *out)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	struct pilot_buf b = PILOT_BUF_INIT;
	int r = pilot_read_file(path, 4096, &b);
	if (r < 0) {
		pilot_buf_free(&b);
		return r;
	}
	/* The command name (field 2) may hold spaces and parentheses: skip to its end. */
	const char *p = strrchr(pilot_buf_str(&b), ')');
	r = PILOT_EINVALID;
	if (p) {
		int field = 2;
		for (p++; *p && field < 22; p++)
			if (*p == ' ')
				field++;
		char *end;
		errno = 0;
		unsigned long long v = strtoull(p, &end, 10);
		if (field == 22 && end != p && !errno) {
			*out = v;
			r = 0;
		}
	}
	pilot_buf_free(&b);
	return r;
}

static void on_started(const char *id, void *ud)
{
	struct exec *e = ud;
	/* A host job outlives a crashed agent in its own session: note it, so that the
	 * agent's next start can stop it (containers are found by their labels). */
	int pid = 0;
	unsigned long long start;
	if (sscanf(id, "pid %d", &pid) == 1 && pid > 0 && proc_start_time(pid, &start) == 0) {
		_cleanup_free_ char *path = pilot_path_join(e->dir, PID_FILE);
		char text[64];
		int n = snprintf(text, sizeof(text), "%d %llu\n", pid, start);
		if (pilot_write_file_atomic(path, text, (size_t)n, 0600) < 0)
			pilot_log(PILOT_LOG_DEBUG, "%s", pilot_error_last());
	}
	if (e->o->on_started)
		e->o->on_started(id, e->o->ud);
}

/* ---- the bundle ----------------------------------------------------------------- */

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

struct cached {
	char *path;
	time_t mtime;
	off_t size;
};

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
static int prepare_workspace(struct exec *e, const char *ws, bool *invalid)
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
		if (is_superseded(r, -1) && r != PILOT_ENOTFOUND) {
			fatal_locked(e, PILOT_EXEC_SUPERSEDED);
			return r;
		}
		if (r == PILOT_ENOTFOUND) {
			*invalid = true;
			return pilot_error_prefix(r, "bundle %.12s", sha);
		}
		if (!is_transient(r) || stopped(e) || hurry(e) || pilot_mono_ms() - start >= e->give_up_ms)
			return pilot_error_prefix(r, "cannot fetch bundle %.12s", sha);
		pilot_log(PILOT_LOG_INFO, "run %s: fetching the bundle failed, retrying: %s", e->claim->run.id,
			  pilot_error_last());
		struct timespec ts = { 0, 0 };
		int64_t ms = jitter(backoff);
		ts.tv_sec = (time_t)(ms / 1000);
		ts.tv_nsec = (long)(ms % 1000) * 1000000L;
		nanosleep(&ts, NULL);
		backoff = next_backoff(backoff);
	}
}

/* ---- the job -------------------------------------------------------------------- */

struct strv {
	char **v;
	size_t n;
};

static void strv_add(struct strv *s, char *owned)
{
	s->v = pilot_xrealloc(s->v, (s->n + 2) * sizeof(*s->v));
	s->v[s->n++] = owned;
	s->v[s->n] = NULL;
}

static void strv_free(struct strv *s)
{
	for (size_t i = 0; i < s->n; i++)
		free(s->v[i]);
	free(s->v);
}

/* KEY=VALUE for every member of a JSON object of overrides. */
static int add_json_env(struct strv *env, const char *json)
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
			strv_add(env, pilot_xasprintf("%s=%s", k, json_string_value(v)));
		} else {
			char *text = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
			strv_add(env, pilot_xasprintf("%s=%s", k, text ? text : ""));
			free(text);
		}
	}
	json_decref(obj);
	return 0;
}

static void finish_with(struct pilot_exec_result *res, enum pilot_attempt_state st, enum pilot_reason why,
			const char *message)
{
	res->finish.state = st;
	res->finish.reason = why;
	if (message) {
		snprintf(res->message, sizeof(res->message), "%s", message);
		res->finish.message = res->message;
	}
}

/* How a job that pilot stopped (cancel, timeout) ended, for the run's events: which
 * signals it was sent and what ended it. "" when it was never sent one. */
static void stop_note(const struct pilot_job_result *j, char *out, size_t size)
{
	/* The host runtime reports the signal; a container's init reports 128+N. */
	int sig = j->signal > 0 ? j->signal : j->exit_code > 128 && j->exit_code < 160 ? j->exit_code - 128 : 0;
	if (j->sent_kill && !j->sent_term)
		snprintf(out, size, "killed with SIGKILL at once, no grace");
	else if (j->sent_kill && sig == SIGKILL)
		snprintf(out, size, "SIGTERM, then SIGKILL when the grace ran out");
	else if (j->sent_term && sig == SIGTERM)
		snprintf(out, size, "ended by SIGTERM");
	else if (j->sent_term && sig > 0)
		snprintf(out, size, "sent SIGTERM, ended by signal %d", sig);
	else if (j->sent_term && j->exit_code >= 0)
		snprintf(out, size, "sent SIGTERM, exited %d", j->exit_code);
	else
		out[0] = 0;
}

/* Upload one artifact, retrying passing failures while the lease holds. */
static int upload_artifact(struct exec *e, const char *path, const char *full)
{
	int64_t backoff = BACKOFF_MIN_MS, start = pilot_mono_ms();
	for (;;) {
		pthread_mutex_lock(&e->api_lock);
		int q = pilot_api_put_artifact_file(e->o->api, e->claim->attempt_id, e->claim->lease_token, path, full);
		pthread_mutex_unlock(&e->api_lock);
		if (q >= 0)
			return 0;
		if (is_superseded(q, -1)) {
			pilot_log(PILOT_LOG_WARN, "attempt %s: %s", e->claim->attempt_id, pilot_error_last());
			fatal_locked(e, PILOT_EXEC_SUPERSEDED);
			return q;
		}
		if (!is_transient(q) || stopped(e) || hurry(e) || pilot_mono_ms() - start >= e->give_up_ms)
			return q;
		pilot_log(PILOT_LOG_INFO, "run %s: uploading '%s' failed, retrying: %s", e->claim->run.id, path,
			  pilot_error_last());
		struct timespec ts = { 0, 0 };
		int64_t ms = jitter(backoff);
		ts.tv_sec = (time_t)(ms / 1000);
		ts.tv_nsec = (long)(ms % 1000) * 1000000L;
		nanosleep(&ts, NULL);
		backoff = next_backoff(backoff);
	}
}

static void upload_artifacts(struct exec *e, const char *ws, const struct pilot_spec *spec,
			     struct pilot_exec_result *res)
{
	struct pilot_artifact_files files = { 0 };
	if (pilot_artifacts_collect(ws, (const char *const *)spec->artifacts, spec->nartifacts, &files) < 0) {
		pilot_log(PILOT_LOG_WARN, "run %s: artifacts not collected: %s", e->claim->run.id, pilot_error_last());
		return;
	}
	for (size_t i = 0; i < files.n && !stopped(e); i++) {
		_cleanup_free_ char *full = pilot_path_join(ws, files.items[i].path);
		if (upload_artifact(e, files.items[i].path, full) < 0) {
			if (!stopped(e))
				pilot_log(PILOT_LOG_WARN, "run %s: artifact '%s' not uploaded: %s", e->claim->run.id,
					  files.items[i].path, pilot_error_last());
		} else {
			res->artifacts++;
		}
	}
	pilot_artifact_files_free(&files);
}

static int run_job(struct exec *e, const char *ws, struct pilot_exec_result *res)
{
	const struct pilot_run *run = &e->claim->run;
	struct pilot_spec *spec = NULL;
	struct strv env = { 0 }, secrets = { 0 };
	int r = pilot_spec_from_json(run->spec_json, &spec);
	if (r < 0) {
		finish_with(res, PILOT_ATTEMPT_FAILED, PILOT_REASON_RUNTIME_ERROR, pilot_error_last());
		return r;
	}
	bool isolated = pilot_runtime_isolated(e->o->rt);
	const char *workdir = isolated ? spec->workdir : ws;
	_cleanup_free_ char *dotpilot = pilot_path_join(ws, ".pilot");
	_cleanup_free_ char *metrics_host = pilot_path_join(dotpilot, "metrics.jsonl");
	_cleanup_free_ char *metrics_job = pilot_xasprintf("%s/.pilot/metrics.jsonl", workdir);
	pilot_mkdir_p(dotpilot, 0755);
	/* Created ahead so a job running as another user than the workspace's owner can
	 * still append to it. */
	int mfd = open(metrics_host, O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0666);
	if (mfd >= 0) {
		fchmod(mfd, 0666);
		close(mfd);
	}

	for (size_t i = 0; i < spec->nenv; i++)
		strv_add(&env, pilot_xasprintf("%s=%s", spec->env[i].key, spec->env[i].value));
	r = add_json_env(&env, run->env_json);
	for (size_t i = 0; i < run->secrets.n; i++) {
		const char *v = run->secrets.items[i].value ? run->secrets.items[i].value : "";
		strv_add(&env, pilot_xasprintf("%s=%s", run->secrets.items[i].key, v));
		if (*v)
			strv_add(&secrets, pilot_xstrdup(v));
	}
	strv_add(&env, pilot_xasprintf("PILOT_RUN_ID=%s", run->id));
	strv_add(&env, pilot_xasprintf("PILOT_ATTEMPT=%d", e->claim->attempt));
	strv_add(&env, pilot_xasprintf("PILOT_METRICS=%s", metrics_job));
	if (r < 0) {
		finish_with(res, PILOT_ATTEMPT_FAILED, PILOT_REASON_RUNTIME_ERROR, pilot_error_last());
		goto out;
	}

	struct pilot_job job = {
		.run_id = run->id,
		.attempt = e->claim->attempt,
		.image = spec->image,
		.argv = (const char *const *)spec->command,
		.argc = spec->ncommand,
		.workspace = ws,
		.workdir = spec->workdir,
		.env = (const char *const *)env.v,
		.nenv = env.n,
		.secrets = (const char *const *)secrets.v,
		.nsecrets = secrets.n,
		.res = {
			.cpus = (double)spec->resources.cpus_milli / 1000.0,
			.memory = spec->resources.memory,
			.gpus = spec->resources.gpus,
			.shm = spec->resources.shm,
		},
		.network = e->o->network,
		.timeout_ms = run->timeout_ms,
		.grace_ms = e->o->grace_ms,
		.pull = e->o->pull,
		.metrics_path = metrics_host,
		.on_output = on_output,
		.on_metric = on_metric,
		.on_started = on_started,
		.ud = e,
	};
	/* The spec's string command is {"/bin/sh", "-c", TEXT}: the runtime's shell form
	 * takes the text alone. */
	if (spec->shell && spec->ncommand == 3) {
		job.argv = (const char *const *)spec->command + 2;
		job.argc = 1;
		job.shell = true;
	}
	/* A job running as root with every capability dropped cannot write a workspace
	 * owned by another user: run it as the workspace's owner then. */
	char user[32];
	if (isolated && geteuid() != 0 && strcmp(pilot_runtime_kind(e->o->rt), "docker") == 0) {
		snprintf(user, sizeof(user), "%u:%u", (unsigned)geteuid(), (unsigned)getegid());
		job.user = user;
	}
	r = pilot_runtime_run(e->o->rt, &job, e->ctl, &res->job);
	if (r < 0) {
		finish_with(res, PILOT_ATTEMPT_FAILED, PILOT_REASON_RUNTIME_ERROR, pilot_error_last());
		goto out;
	}
	if (res->job.canceled) {
		pthread_mutex_lock(&e->lock);
		bool by_run = e->cancel_requested;
		pthread_mutex_unlock(&e->lock);
		char how[64], msg[sizeof(res->message)];
		stop_note(&res->job, how, sizeof(how));
		const char *who = by_run ? NULL : e->o->cancel_message;
		snprintf(msg, sizeof(msg), "%s%s%s", who ? who : "", who && *how ? ": " : "", how);
		finish_with(res, PILOT_ATTEMPT_CANCELED, PILOT_REASON_CANCELED, *msg ? msg : NULL);
	} else if (res->job.timed_out) {
		char msg[128], d[32], how[64];
		pilot_format_duration(run->timeout_ms, d, sizeof(d));
		stop_note(&res->job, how, sizeof(how));
		snprintf(msg, sizeof(msg), "timed out after %s%s%s", d, *how ? ": " : "", how);
		finish_with(res, PILOT_ATTEMPT_FAILED, PILOT_REASON_TIMEOUT, msg);
	} else {
		int code = res->job.exit_code >= 0 ? res->job.exit_code : 128 + res->job.signal;
		res->finish.has_exit_code = true;
		res->finish.exit_code = code;
		finish_with(res, code == 0 ? PILOT_ATTEMPT_SUCCEEDED : PILOT_ATTEMPT_FAILED, PILOT_REASON_EXIT_CODE,
			    res->job.oom_killed ? "killed by the memory limit" : NULL);
	}
	res->exit_status = pilot_job_exit_status(&res->job);

	/* Also after a cancel: what the job left is uploaded before the end is reported. */
	if (spec->nartifacts && !stopped(e))
		upload_artifacts(e, ws, spec, res);
	r = 0;
out:
	strv_free(&env);
	strv_free(&secrets);
	pilot_spec_free(spec);
	return r;
}

/* Report the end, retrying passing failures while the lease holds. */
static void report(struct exec *e, struct pilot_exec_result *res)
{
	int64_t start = pilot_mono_ms(), backoff = BACKOFF_MIN_MS;
	/* A cancel that did not come from the run (Ctrl-C on pilot run, an agent giving up
	 * its jobs) is asked for first, so that the run's events say who canceled it. An
	 * agent's token may not be allowed to: the finish below ends the run anyway. */
	if (res->finish.state == PILOT_ATTEMPT_CANCELED && !e->cancel_requested && !stopped(e)) {
		struct pilot_run after = { 0 };
		pthread_mutex_lock(&e->api_lock);
		int r = pilot_api_cancel(e->o->api, e->claim->run.id, e->claim->run.agent, PILOT_CANCEL_GRACE_AGENT,
					 &after);
		pthread_mutex_unlock(&e->api_lock);
		if (r < 0)
			pilot_log(PILOT_LOG_DEBUG, "run %s: cannot cancel: %s", e->claim->run.id, pilot_error_last());
		pilot_run_clear(&after);
	}
	for (;;) {
		if (stopped(e)) {
			res->outcome = e->fatal;
			return;
		}
		pthread_mutex_lock(&e->lock);
		e->reporting = true;
		pthread_mutex_unlock(&e->lock);
		pthread_mutex_lock(&e->api_lock);
		int r = pilot_api_finish(e->o->api, e->claim->attempt_id, e->claim->lease_token, &res->finish, NULL);
		pthread_mutex_unlock(&e->api_lock);
		if (r >= 0) {
			res->outcome = PILOT_EXEC_REPORTED;
			return;
		}
		if (is_superseded(r, -1)) {
			pilot_log(PILOT_LOG_WARN, "attempt %s: %s", e->claim->attempt_id, pilot_error_last());
			fatal_locked(e, PILOT_EXEC_SUPERSEDED);
			res->outcome = PILOT_EXEC_SUPERSEDED;
			return;
		}
		if (!is_transient(r) || hurry(e) || pilot_mono_ms() - start >= e->give_up_ms) {
			pilot_log(PILOT_LOG_ERROR, "attempt %s: cannot report its end: %s", e->claim->attempt_id,
				  pilot_error_last());
			res->outcome = PILOT_EXEC_UNREPORTED;
			return;
		}
		pilot_log(PILOT_LOG_INFO, "attempt %s: reporting the end failed, retrying: %s", e->claim->attempt_id,
			  pilot_error_last());
		pthread_mutex_lock(&e->lock);
		wait_until(&e->hb_cond, &e->lock, pilot_mono_ms() + jitter(backoff));
		pthread_mutex_unlock(&e->lock);
		backoff = next_backoff(backoff);
	}
}

static void exec_init(struct exec *e, const struct pilot_exec_opts *o, const struct pilot_claim *claim,
		      struct pilot_job_control *ctl, const char *dir)
{
	memset(e, 0, sizeof(*e));
	e->o = o;
	e->claim = claim;
	e->ctl = ctl;
	e->dir = dir;
	e->cancel_grace_ms = PILOT_CANCEL_GRACE_AGENT;
	int64_t ttl = claim->lease_ttl_ms > 0 ? claim->lease_ttl_ms : 60000;
	e->heartbeat_ms = o->heartbeat_ms > 0 ? o->heartbeat_ms : PILOT_AGENT_HEARTBEAT_MS;
	if (o->heartbeat_ms <= 0 && e->heartbeat_ms > ttl / 4)
		e->heartbeat_ms = ttl / 4 > 100 ? ttl / 4 : 100;
	e->give_up_ms = o->give_up_ms > 0 ? o->give_up_ms : 3 * e->heartbeat_ms;
	pthread_mutex_init(&e->api_lock, NULL);
	pthread_mutex_init(&e->lock, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&e->cond, &ca);
	pthread_cond_init(&e->hb_cond, &ca);
	pthread_condattr_destroy(&ca);
	e->last_renew = pilot_mono_ms();
}

static void exec_destroy(struct exec *e)
{
	for (size_t i = 0; i < e->nmetrics; i++)
		free(e->metrics[i]);
	free(e->metrics);
	pilot_buf_free(&e->log);
	pthread_cond_destroy(&e->cond);
	pthread_cond_destroy(&e->hb_cond);
	pthread_mutex_destroy(&e->lock);
	pthread_mutex_destroy(&e->api_lock);
}

static void stop_heartbeat(struct exec *e, pthread_t t)
{
	pthread_mutex_lock(&e->lock);
	e->finished = true;
	pthread_cond_broadcast(&e->hb_cond);
	pthread_mutex_unlock(&e->lock);
	pthread_join(t, NULL);
}

int pilot_exec_attempt(const struct pilot_exec_opts *o, const struct pilot_claim *claim,
		       struct pilot_exec_result *res)
{
	if (!o || !o->api || !o->rt || !o->work_dir || !claim || !res)
		return pilot_error_set(PILOT_EINVALID, "pilot_exec_attempt: missing arguments");
	memset(res, 0, sizeof(*res));
	res->exit_status = PILOT_EXEC_STATUS_FAILED;

	struct pilot_job_control *own_ctl = NULL;
	if (!o->ctl && pilot_job_control_new(&own_ctl) < 0)
		return PILOT_ENOMEM;
	_cleanup_free_ char *dir = pilot_xasprintf("%s/%s", o->work_dir, claim->attempt_id);
	_cleanup_free_ char *ws = pilot_path_join(dir, "workspace");
	struct exec e;
	exec_init(&e, o, claim, o->ctl ? o->ctl : own_ctl, dir);

	pthread_t ship_thread, hb_thread;
	pthread_create(&hb_thread, NULL, heartbeat, &e);
	pthread_create(&ship_thread, NULL, shipper, &e);

	bool invalid = false;
	int r = pilot_mkdir_p(dir, 0700);
	if (r >= 0)
		r = prepare_workspace(&e, ws, &invalid);
	if (r < 0)
		finish_with(res, PILOT_ATTEMPT_FAILED, invalid ? PILOT_REASON_BUNDLE_INVALID : PILOT_REASON_RUNTIME_ERROR,
			    pilot_error_last());
	else
		run_job(&e, ws, res);

	pthread_mutex_lock(&e.lock);
	e.job_done = true;
	pthread_cond_broadcast(&e.cond);
	pthread_mutex_unlock(&e.lock);
	pthread_join(ship_thread, NULL);
	pthread_mutex_lock(&e.lock);
	res->log_bytes = e.log_base;
	res->metrics = e.metric_base;
	res->canceled_by_request = e.cancel_requested;
	pthread_mutex_unlock(&e.lock);

	report(&e, res);
	stop_heartbeat(&e, hb_thread);

	if (res->outcome != PILOT_EXEC_REPORTED && res->exit_status == 0)
		res->exit_status = PILOT_EXEC_STATUS_FAILED;
	if (!o->keep_workspace && pilot_rm_rf(dir) < 0)
		pilot_log(PILOT_LOG_WARN, "%s", pilot_error_last());

	exec_destroy(&e);
	pilot_job_control_free(own_ctl);
	return 0;
}

int pilot_exec_refuse(const struct pilot_exec_opts *o, const struct pilot_claim *claim, const char *message,
		      struct pilot_exec_result *res)
{
	if (!o || !o->api || !claim || !res)
		return pilot_error_set(PILOT_EINVALID, "pilot_exec_refuse: missing arguments");
	memset(res, 0, sizeof(*res));
	res->exit_status = PILOT_EXEC_STATUS_FAILED;
	struct exec e;
	exec_init(&e, o, claim, o->ctl, NULL);
	pthread_t hb_thread;
	pthread_create(&hb_thread, NULL, heartbeat, &e);
	finish_with(res, PILOT_ATTEMPT_FAILED, PILOT_REASON_RUNTIME_ERROR, message);
	report(&e, res);
	stop_heartbeat(&e, hb_thread);
	exec_destroy(&e);
	return 0;
}

int pilot_exec_cleanup_work_dir(const char *work_dir, unsigned *killed)
{
	if (killed)
		*killed = 0;
	DIR *d = opendir(work_dir);
	if (!d) {
		if (errno == ENOENT)
			return 0;
		return pilot_error_errno(PILOT_EIO, errno, "cannot read '%s'", work_dir);
	}
	struct dirent *de;
	int r = 0;
	char first[256] = "";
	while ((de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		_cleanup_free_ char *sub = pilot_path_join(work_dir, de->d_name);
		_cleanup_free_ char *pidf = pilot_path_join(sub, PID_FILE);
		struct pilot_buf b = PILOT_BUF_INIT;
		int pid = 0;
		unsigned long long want = 0, have = 0;
		if (pilot_read_file(pidf, 256, &b) == 0 && sscanf(pilot_buf_str(&b), "%d %llu", &pid, &want) == 2 &&
		    pid > 1 && proc_start_time(pid, &have) == 0 && have == want) {
			/* The job leads its own session and process group. */
			if (kill(-pid, SIGKILL) == 0 || kill(pid, SIGKILL) == 0) {
				pilot_log(PILOT_LOG_NOTICE, "killed host job %d left by an earlier agent", pid);
				if (killed)
					(*killed)++;
			}
		}
		pilot_buf_free(&b);
		if (pilot_rm_rf(sub) < 0 && !r) {
			r = pilot_error_code();
			snprintf(first, sizeof(first), "%s", pilot_error_last());
		}
	}
	closedir(d);
	return r < 0 ? pilot_error_set(r, "cannot clear '%s': %s", work_dir, first) : 0;
}
