/* The http transport: every op of struct pilot_api over the REST API of `pilot server`
 * (pilot-api(7)) with libcurl. Connections are reused (a pool of easy handles sharing
 * one connection cache, so one api object may be used from several threads), every
 * response buffer has a maximum size, and calls that are safe to repeat — reads,
 * fenced agent writes, and submits, which always carry an idempotency key — are
 * retried with jittered backoff on connection errors and 502/503/504. Errors come back
 * as the same PILOT_E* codes the local transport returns, from the error body. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>

#include "pilot/api.h"
#include "pilot/version.h"

#define POOL_MAX 8
#define DEF_RETRIES 3
#define BACKOFF_BASE_MS 250
#define BACKOFF_CAP_MS 5000
#define CONNECT_TIMEOUT_MS 10000
#define CALL_TIMEOUT_MS 60000
#define JSON_MAX (64 * 1024 * 1024)
#define LEASE_HEADER "Pilot-Lease"

struct http_api {
	struct pilot_api base;
	char *url;          /* no trailing '/' */
	char *auth;         /* "Authorization: Bearer ..." or NULL */
	char *cacert;
	char *user_agent;
	CURLSH *share;
	pthread_mutex_t share_locks[CURL_LOCK_DATA_LAST];
	pthread_mutex_t pool_lock;
	CURL *pool[POOL_MAX];
	int npool;
	pilot_http_progress_fn progress;
	void *progress_data;
	int retries;
	int64_t connect_timeout_ms;
	int64_t timeout_ms;
};

static const struct pilot_api_ops http_ops;

static struct http_api *H(struct pilot_api *api)
{
	return (struct http_api *)api;
}

/* ---- one call ---- */

struct call {
	const struct pilot_route *route; /* NULL for a call off the table */
	const char *method;
	struct pilot_buf path;       /* "/v1/runs?state=queued" */
	const char *content_type;
	/* The request body: a buffer, or an fd read from fd_start. */
	const char *body;
	size_t body_len, body_pos;
	int body_fd;
	off_t fd_start;
	int64_t fd_size;             /* -1 = unknown (chunked) */
	bool fd_seekable;
	const char *idem_key;
	const char *lease;
	bool idempotent;             /* safe to send twice */
	bool transfer;               /* bulk bytes: no total timeout, a low-speed limit instead */
	bool progress;
	int64_t extra_timeout_ms;    /* a long-poll's wait */
	/* The response. */
	long status;
	struct pilot_buf resp;
	int out_fd;                  /* >= 0: a 2xx body goes here */
	bool too_big;
	bool write_failed;
	struct pilot_kvs headers;    /* lowercase names */
	char errbuf[CURL_ERROR_SIZE];
};

static void call_init(struct call *c, const char *method)
{
	memset(c, 0, sizeof(*c));
	c->method = method;
	c->body_fd = -1;
	c->out_fd = -1;
	c->fd_size = -1;
	pilot_buf_init(&c->path, 0);
	pilot_buf_init(&c->resp, JSON_MAX);
}

static void call_clear(struct call *c)
{
	pilot_buf_free(&c->path);
	pilot_buf_free(&c->resp);
	pilot_kvs_clear(&c->headers);
}

/* Append "?name=value" or "&name=value". */
static void add_query(struct call *c, const char *name, const char *value)
{
	pilot_buf_putc(&c->path, strchr(pilot_buf_str(&c->path), '?') ? '&' : '?');
	pilot_buf_puts(&c->path, name);
	pilot_buf_putc(&c->path, '=');
	pilot_url_escape(&c->path, value, false);
}

static void add_query_int(struct call *c, const char *name, int64_t v)
{
	char b[32];
	snprintf(b, sizeof(b), "%lld", (long long)v);
	add_query(c, name, b);
}

static size_t on_header(char *p, size_t size, size_t n, void *ud)
{
	struct call *c = ud;
	size_t len = size * n;
	if (len >= 5 && !strncmp(p, "HTTP/", 5)) {
		/* A new response (after 100 Continue, say): forget the previous headers. */
		const char *sp = memchr(p, ' ', len);
		c->status = sp ? strtol(sp + 1, NULL, 10) : 0;
		pilot_kvs_clear(&c->headers);
		return len;
	}
	const char *colon = memchr(p, ':', len);
	if (!colon || colon == p)
		return len;
	size_t nl = (size_t)(colon - p);
	if (nl > 64)
		return len;
	char name[65];
	for (size_t i = 0; i < nl; i++)
		name[i] = (char)((p[i] >= 'A' && p[i] <= 'Z') ? p[i] + 32 : p[i]);
	name[nl] = '\0';
	if (strncmp(name, "pilot-", 6) && strcmp(name, "location"))
		return len;
	const char *v = colon + 1, *end = p + len;
	while (v < end && (*v == ' ' || *v == '\t'))
		v++;
	while (end > v && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' '))
		end--;
	if (end - v > 4096)
		return len;
	_cleanup_free_ char *val = pilot_xstrndup(v, (size_t)(end - v));
	pilot_kvs_set(&c->headers, name, val);
	return len;
}

static size_t on_write(char *p, size_t size, size_t n, void *ud)
{
	struct call *c = ud;
	size_t len = size * n;
	if (c->out_fd >= 0 && c->status >= 200 && c->status < 300) {
		if (pilot_write_all(c->out_fd, p, len) < 0) {
			c->write_failed = true;
			return 0;
		}
		return len;
	}
	if (pilot_buf_append(&c->resp, p, len) < 0) {
		c->too_big = true;
		return 0;
	}
	return len;
}

static size_t on_read(char *buf, size_t size, size_t n, void *ud)
{
	struct call *c = ud;
	size_t want = size * n;
	if (c->body_fd >= 0) {
		for (;;) {
			ssize_t got = read(c->body_fd, buf, want);
			if (got >= 0)
				return (size_t)got;
			if (errno != EINTR)
				return CURL_READFUNC_ABORT;
		}
	}
	size_t left = c->body_len - c->body_pos;
	if (want > left)
		want = left;
	memcpy(buf, c->body + c->body_pos, want);
	c->body_pos += want;
	return want;
}

static int on_seek(void *ud, curl_off_t offset, int origin)
{
	struct call *c = ud;
	if (origin != SEEK_SET)
		return CURL_SEEKFUNC_CANTSEEK;
	if (c->body_fd >= 0) {
		if (!c->fd_seekable || lseek(c->body_fd, c->fd_start + (off_t)offset, SEEK_SET) < 0)
			return CURL_SEEKFUNC_CANTSEEK;
		return CURL_SEEKFUNC_OK;
	}
	if ((size_t)offset > c->body_len)
		return CURL_SEEKFUNC_FAIL;
	c->body_pos = (size_t)offset;
	return CURL_SEEKFUNC_OK;
}

struct progress_ctx {
	struct http_api *h;
	struct call *c;
};

static int on_progress(void *ud, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal, curl_off_t ulnow)
{
	struct progress_ctx *p = ud;
	(void)dltotal;
	(void)dlnow;
	if (p->c->progress && p->h->progress && ulnow > 0)
		p->h->progress((uint64_t)ulnow, (uint64_t)(ultotal > 0 ? ultotal : 0), p->h->progress_data);
	return 0;
}

/* ---- handles ---- */

static void share_lock(CURL *e, curl_lock_data data, curl_lock_access access, void *ud)
{
	struct http_api *h = ud;
	(void)e;
	(void)access;
	pthread_mutex_lock(&h->share_locks[data]);
}

static void share_unlock(CURL *e, curl_lock_data data, void *ud)
{
	struct http_api *h = ud;
	(void)e;
	pthread_mutex_unlock(&h->share_locks[data]);
}

static CURL *take_handle(struct http_api *h)
{
	pthread_mutex_lock(&h->pool_lock);
	CURL *e = h->npool ? h->pool[--h->npool] : NULL;
	pthread_mutex_unlock(&h->pool_lock);
	return e ? e : curl_easy_init();
}

static void give_handle(struct http_api *h, CURL *e)
{
	if (!e)
		return;
	pthread_mutex_lock(&h->pool_lock);
	if (h->npool < POOL_MAX) {
		h->pool[h->npool++] = e;
		e = NULL;
	}
	pthread_mutex_unlock(&h->pool_lock);
	if (e)
		curl_easy_cleanup(e);
}

static void sleep_ms(int64_t ms)
{
	struct timespec ts = { (time_t)(ms / 1000), (long)(ms % 1000) * 1000000L };
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* Full jitter: uniform in [0, min(cap, base * 2^n)]. */
static void backoff(int n)
{
	int64_t ceil = BACKOFF_BASE_MS << (n < 10 ? n : 10);
	if (ceil > BACKOFF_CAP_MS)
		ceil = BACKOFF_CAP_MS;
	uint32_t r;
	pilot_random_bytes(&r, sizeof(r));
	sleep_ms((int64_t)(r % (uint32_t)(ceil + 1)));
}

static bool rewind_body(struct call *c)
{
	c->body_pos = 0;
	if (c->body_fd < 0)
		return true;
	return c->fd_seekable && lseek(c->body_fd, c->fd_start, SEEK_SET) >= 0;
}

static void reset_response(struct call *c)
{
	c->status = 0;
	c->too_big = false;
	c->write_failed = false;
	pilot_buf_reset(&c->resp);
	pilot_kvs_clear(&c->headers);
	c->errbuf[0] = '\0';
	if (c->out_fd >= 0) {
		if (ftruncate(c->out_fd, 0) == 0)
			lseek(c->out_fd, 0, SEEK_SET);
	}
}

static struct curl_slist *build_headers(struct http_api *h, struct call *c)
{
	struct curl_slist *l = NULL;
	if (h->auth)
		l = curl_slist_append(l, h->auth);
	l = curl_slist_append(l, "Accept: application/json");
	if (c->content_type) {
		char b[128];
		snprintf(b, sizeof(b), "Content-Type: %s", c->content_type);
		l = curl_slist_append(l, b);
	}
	if (c->idem_key) {
		_cleanup_free_ char *b = pilot_xasprintf("Idempotency-Key: %s", c->idem_key);
		l = curl_slist_append(l, b);
	}
	if (c->lease) {
		_cleanup_free_ char *b = pilot_xasprintf("%s: %s", LEASE_HEADER, c->lease);
		l = curl_slist_append(l, b);
	}
	/* Small bodies go at once; 100-continue only pays off for bulk uploads, where a
	 * refusal (auth, size) arrives before the bytes. */
	if (!c->transfer)
		l = curl_slist_append(l, "Expect:");
	return l;
}

static void set_options(struct http_api *h, CURL *e, struct call *c, const char *url, struct curl_slist *hdrs,
			struct progress_ctx *pc)
{
	curl_easy_setopt(e, CURLOPT_URL, url);
	curl_easy_setopt(e, CURLOPT_SHARE, h->share);
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_USERAGENT, h->user_agent);
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, hdrs);
	curl_easy_setopt(e, CURLOPT_ERRORBUFFER, c->errbuf);
	curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(e, CURLOPT_HEADERDATA, c);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_write);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, c);
	curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)h->connect_timeout_ms);
	curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
	curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
	/* Paths are the server's to judge: an artifact path with ".." must reach it
	 * as written and be refused there, not be folded away here. */
	curl_easy_setopt(e, CURLOPT_PATH_AS_IS, 1L);
	if (h->cacert)
		curl_easy_setopt(e, CURLOPT_CAINFO, h->cacert);
	if (c->transfer) {
		curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, 0L);
		curl_easy_setopt(e, CURLOPT_LOW_SPEED_LIMIT, 1L);
		curl_easy_setopt(e, CURLOPT_LOW_SPEED_TIME, (long)((h->timeout_ms + 999) / 1000));
	} else {
		curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)(h->timeout_ms + c->extra_timeout_ms));
	}
	if (!strcmp(c->method, "HEAD")) {
		curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
	} else if (!strcmp(c->method, "GET")) {
		curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
	} else {
		bool has_body = c->body || c->body_fd >= 0;
		if (!strcmp(c->method, "PUT")) {
			curl_easy_setopt(e, CURLOPT_UPLOAD, 1L);
		} else {
			curl_easy_setopt(e, CURLOPT_POST, 1L);
			if (strcmp(c->method, "POST"))
				curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, c->method);
		}
		int64_t size = c->body_fd >= 0 ? c->fd_size : (int64_t)c->body_len;
		if (!has_body)
			size = 0;
		if (!strcmp(c->method, "PUT"))
			curl_easy_setopt(e, CURLOPT_INFILESIZE_LARGE, (curl_off_t)size);
		else
			curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)size);
		curl_easy_setopt(e, CURLOPT_READFUNCTION, on_read);
		curl_easy_setopt(e, CURLOPT_READDATA, c);
		curl_easy_setopt(e, CURLOPT_SEEKFUNCTION, on_seek);
		curl_easy_setopt(e, CURLOPT_SEEKDATA, c);
	}
	if (c->progress && h->progress) {
		curl_easy_setopt(e, CURLOPT_XFERINFOFUNCTION, on_progress);
		curl_easy_setopt(e, CURLOPT_XFERINFODATA, pc);
		curl_easy_setopt(e, CURLOPT_NOPROGRESS, 0L);
	}
}

/* Send the call, retrying what may be retried. 0 with c->status set (any status), or
 * a negative code when no answer came. */
static int perform(struct http_api *h, struct call *c)
{
	CURL *e = take_handle(h);
	if (!e)
		return pilot_error_set(PILOT_ENOMEM, "cannot create an HTTP handle");
	_cleanup_free_ char *url = pilot_xasprintf("%s%s", h->url, pilot_buf_str(&c->path));
	struct curl_slist *hdrs = build_headers(h, c);
	struct progress_ctx pc = { h, c };
	int r = 0;
	for (int attempt = 0;; attempt++) {
		reset_response(c);
		bool can_repeat = rewind_body(c);
		curl_easy_reset(e);
		set_options(h, e, c, url, hdrs, &pc);
		CURLcode rc = curl_easy_perform(e);
		bool more = attempt < h->retries && can_repeat;
		if (rc != CURLE_OK) {
			if (c->too_big) {
				r = pilot_error_set(PILOT_ELIMIT, "answer from server '%s' too large (over %zu bytes)", h->url,
						    c->resp.max);
				break;
			}
			if (c->write_failed) {
				r = pilot_error_errno(PILOT_EIO, errno, "cannot store the download from '%s'", h->url);
				break;
			}
			/* Nothing was sent when the connection could not be made: safe to repeat
			 * even a call that is not idempotent. */
			bool unsent = rc == CURLE_COULDNT_CONNECT || rc == CURLE_COULDNT_RESOLVE_HOST ||
				      rc == CURLE_COULDNT_RESOLVE_PROXY;
			if (more && (c->idempotent || unsent)) {
				backoff(attempt);
				continue;
			}
			r = pilot_error_set(PILOT_EUNAVAILABLE, "cannot reach server '%s': %s", h->url,
					    c->errbuf[0] ? c->errbuf : curl_easy_strerror(rc));
			break;
		}
		if ((c->status == 502 || c->status == 503 || c->status == 504) && more && c->idempotent) {
			backoff(attempt);
			continue;
		}
		break;
	}
	curl_slist_free_all(hdrs);
	give_handle(h, e);
	return r;
}

static int from_status(long status)
{
	switch (status) {
	case 400:
	case 405:
	case 422:
		return PILOT_EINVALID;
	case 401:
		return PILOT_EAUTH;
	case 403:
		return PILOT_EFORBIDDEN;
	case 404:
		return PILOT_ENOTFOUND;
	case 409:
		return PILOT_ECONFLICT;
	case 413:
		return PILOT_ELIMIT;
	case 502:
	case 503:
	case 504:
		return PILOT_EUNAVAILABLE;
	default:
		return PILOT_EFAIL;
	}
}

/* A non-2xx answer as an error (the server's own code and message when it sent its
 * error body). *err_json (optional) gets the parsed body. */
static int status_error(struct http_api *h, struct call *c, json_t **err_json)
{
	if (c->status >= 200 && c->status < 300)
		return 0;
	json_t *j = c->resp.len ? json_loadb(c->resp.data, c->resp.len, 0, NULL) : NULL;
	int code;
	if (j && json_is_object(json_object_get(j, "error"))) {
		code = pilot_error_from_json(j);
	} else {
		code = from_status(c->status);
		pilot_error_set(code, "server '%s' answered %ld to %s %s", h->url, c->status, c->method,
				pilot_buf_str(&c->path));
	}
	if (code == PILOT_EAUTH) {
		_cleanup_free_ char *m = pilot_xstrdup(pilot_error_last());
		pilot_error_set(code, "%s (server '%s'): run 'pilot login'", m, h->url);
	}
	if (err_json)
		*err_json = j;
	else
		json_decref(j);
	return code;
}

/* Perform, check the status, parse a JSON body into *out (NULL allowed: the body is
 * not wanted). */
static int call_json(struct http_api *h, struct call *c, json_t **out)
{
	int r = perform(h, c);
	if (r < 0)
		return r;
	if ((r = status_error(h, c, NULL)) < 0)
		return r;
	if (!out)
		return 0;
	json_error_t e;
	*out = json_loadb(c->resp.data ? c->resp.data : "", c->resp.len, 0, &e);
	if (!*out)
		return pilot_error_set(PILOT_EFAIL, "invalid answer from server '%s' to %s %s: %s", h->url, c->method,
				       pilot_buf_str(&c->path), e.text);
	return 0;
}

/* call_json, then free the call's buffers (its status stays). */
static int call_json_once(struct http_api *h, struct call *c, json_t **out)
{
	int r = call_json(h, c, out);
	call_clear(c);
	return r;
}

static void set_body_json(struct call *c, json_t *j, char **owned)
{
	*owned = json_dumps(j, JSON_COMPACT);
	if (!*owned)
		*owned = pilot_xstrdup("{}");
	c->body = *owned;
	c->body_len = strlen(*owned);
	c->content_type = "application/json";
}

static void set_body_fd(struct call *c, int fd)
{
	c->body_fd = fd;
	struct stat sb;
	off_t pos = lseek(fd, 0, SEEK_CUR);
	c->fd_seekable = pos >= 0;
	c->fd_start = pos >= 0 ? pos : 0;
	if (fstat(fd, &sb) == 0 && S_ISREG(sb.st_mode) && pos >= 0)
		c->fd_size = (int64_t)sb.st_size - (int64_t)pos;
	c->content_type = "application/octet-stream";
	c->transfer = true;
}

/* A call of the route id, its path built from the table with params p0 and p1. */
static void call_route(struct call *c, enum pilot_route_id id, const char *p0, const char *p1)
{
	const struct pilot_route *rt = &pilot_routes[id];
	call_init(c, rt->method);
	c->route = rt;
	c->idempotent = rt->idempotent;
	const char *const params[2] = { p0, p1 };
	pilot_route_path(id, params, &c->path);
}

/* Perform a call whose body (req, unless NULL) and answer (into out, unless NULL)
 * are model values, with the route's codecs. The call's buffers are freed; its status
 * stays. */
static int call_model(struct http_api *h, struct call *c, const void *req, void *out)
{
	const struct pilot_route *rt = c->route;
	_cleanup_free_ char *body = NULL;
	if (req) {
		json_t *j = rt->request->to_json(req);
		set_body_json(c, j, &body);
		json_decref(j);
	}
	json_t *res = NULL;
	int r = call_json_once(h, c, out ? &res : NULL);
	if (r < 0 || !out)
		return r;
	r = rt->response->from_json(res, out);
	json_decref(res);
	return r;
}

static const char *hdr(struct call *c, const char *name)
{
	return pilot_kvs_get(&c->headers, name);
}

static int64_t hdr_int(struct call *c, const char *name)
{
	const char *v = hdr(c, name);
	int64_t n = 0;
	if (v && pilot_parse_int64(v, INT64_MIN, INT64_MAX, &n) < 0) {
		pilot_error_clear();
		n = 0;
	}
	return n;
}

/* GET into an unlinked temp file; *fd is positioned at the start. */
static int download(struct http_api *h, struct call *c, int *fd)
{
	c->out_fd = pilot_open_temp();
	if (c->out_fd < 0)
		return c->out_fd;
	c->transfer = true;
	c->idempotent = true;
	int r = perform(h, c);
	if (r == 0)
		r = status_error(h, c, NULL);
	if (r == 0 && lseek(c->out_fd, 0, SEEK_SET) < 0)
		r = pilot_error_errno(PILOT_EIO, errno, "cannot rewind the download");
	if (r < 0) {
		close(c->out_fd);
		c->out_fd = -1;
		return r;
	}
	*fd = c->out_fd;
	c->out_fd = -1;
	return 0;
}

/* ---- the ops ---- */

static int h_submit(struct pilot_api *api, const struct pilot_submit_request *req, struct pilot_run *out)
{
	char gen[40];
	const char *key = req->idempotency_key;
	if (!key || !*key) {
		/* Every submit carries a key, so a retry after a lost answer cannot queue the
		 * run twice. */
		memcpy(gen, "pilot-", 6);
		pilot_random_hex(gen + 6, 16);
		key = gen;
	}
	struct pilot_submit_request keyed = *req;
	keyed.idempotency_key = key;
	struct call c;
	call_route(&c, PILOT_ROUTE_SUBMIT, NULL, NULL);
	c.idem_key = key;
	struct pilot_run tmp = { 0 };
	int r = call_model(H(api), &c, &keyed, out ? out : &tmp);
	pilot_run_clear(&tmp);
	if (r < 0)
		return r;
	/* 200: the key's run, sent before; 201: a new one. */
	return c.status == 200 ? 1 : 0;
}

static int h_get_run(struct pilot_api *api, const char *run, struct pilot_run *out)
{
	struct call c;
	call_route(&c, PILOT_ROUTE_GET_RUN, run, NULL);
	return call_model(H(api), &c, NULL, out);
}

static int h_list_runs(struct pilot_api *api, const struct pilot_run_filter *f, struct pilot_run_list *out)
{
	struct call c;
	call_route(&c, PILOT_ROUTE_LIST_RUNS, NULL, NULL);
	if (f && f->states) {
		struct pilot_buf s = PILOT_BUF_INIT;
		for (int i = 0; i < PILOT_RUN_NSTATES; i++)
			if (f->states & PILOT_RUN_STATE_BIT(i)) {
				if (s.len)
					pilot_buf_putc(&s, ',');
				pilot_buf_puts(&s, pilot_run_state_name((enum pilot_run_state)i));
			}
		add_query(&c, "state", pilot_buf_str(&s));
		pilot_buf_free(&s);
	}
	if (f && f->name)
		add_query(&c, "name", f->name);
	if (f && f->since_ms)
		add_query_int(&c, "since", f->since_ms);
	if (f && f->after && *f->after)
		add_query(&c, "after", f->after);
	if (f && f->limit)
		add_query_int(&c, "limit", (int64_t)f->limit);
	return call_model(H(api), &c, NULL, out);
}

/* cancel and retry: an optional body of {"actor"} (honoured for an admin's token) and,
 * when grace_ms >= 0, {"grace_ms"}. */
static int run_action(struct pilot_api *api, enum pilot_route_id id, const char *run, const char *actor,
		      int64_t grace_ms, struct pilot_run *out, bool *unchanged)
{
	struct http_api *h = H(api);
	struct call c;
	call_route(&c, id, run, NULL);
	_cleanup_free_ char *body = NULL;
	if ((actor && *actor) || grace_ms >= 0) {
		json_t *j = json_object();
		if (actor && *actor)
			json_object_set_new(j, "actor", json_string(actor));
		if (grace_ms >= 0)
			json_object_set_new(j, "grace_ms", json_integer((json_int_t)grace_ms));
		set_body_json(&c, j, &body);
		json_decref(j);
	}
	json_t *res = NULL;
	int r = call_json(h, &c, &res);
	if (unchanged)
		*unchanged = hdr(&c, "pilot-unchanged") != NULL;
	call_clear(&c);
	if (r < 0)
		return r;
	r = pilot_run_from_json(res, out);
	json_decref(res);
	return r;
}

static int h_cancel(struct pilot_api *api, const char *run, const char *actor, int64_t grace_ms,
		    struct pilot_run *out)
{
	/* The server records the token's name as the actor unless the token is an
	 * admin's, which may name someone else. */
	bool unchanged = false;
	struct pilot_run tmp = { 0 };
	int r = run_action(api, PILOT_ROUTE_CANCEL, run, actor, grace_ms, out ? out : &tmp, &unchanged);
	pilot_run_clear(&tmp);
	if (r < 0)
		return r;
	return unchanged ? 1 : 0;
}

static int h_retry(struct pilot_api *api, const char *run, const char *actor, struct pilot_run *out)
{
	struct pilot_run tmp = { 0 };
	int r = run_action(api, PILOT_ROUTE_RETRY, run, actor, -1, out ? out : &tmp, NULL);
	pilot_run_clear(&tmp);
	return r;
}

static void add_wait(struct call *c, int64_t wait_ms)
{
	if (wait_ms <= 0)
		return;
	char w[32];
	snprintf(w, sizeof(w), "%lldms", (long long)wait_ms);
	add_query(c, "wait", w);
	c->extra_timeout_ms = wait_ms;
}

static int h_read_logs(struct pilot_api *api, const struct pilot_log_request *req, struct pilot_log_chunk *out)
{
	struct http_api *h = H(api);
	struct call c;
	call_route(&c, PILOT_ROUTE_READ_LOGS, req->run, NULL);
	if (req->attempt)
		add_query_int(&c, "attempt", req->attempt);
	if (req->offset)
		add_query_int(&c, "offset", req->offset);
	size_t max = req->max_bytes ? req->max_bytes : 1024 * 1024;
	add_query_int(&c, "max", (int64_t)max);
	add_wait(&c, req->wait_ms);
	c.resp.max = max + 64 * 1024;
	int r = perform(h, &c);
	if (r == 0)
		r = status_error(h, &c, NULL);
	if (r < 0) {
		call_clear(&c);
		return r;
	}
	struct pilot_log_chunk ch = { 0 };
	ch.data = c.resp;
	ch.data.max = 0;
	pilot_buf_init(&c.resp, 0);
	ch.attempt = (int)hdr_int(&c, "pilot-attempt");
	ch.offset = hdr_int(&c, "pilot-offset");
	ch.next_offset = hdr_int(&c, "pilot-next-offset");
	ch.latest_attempt = (int)hdr_int(&c, "pilot-latest-attempt");
	const char *comp = hdr(&c, "pilot-complete");
	ch.complete = comp && !strcmp(comp, "true");
	const char *st = hdr(&c, "pilot-run-state");
	if (!st || pilot_run_state_from_name(st, &ch.run_state) < 0) {
		pilot_log_chunk_clear(&ch);
		call_clear(&c);
		return pilot_error_set(PILOT_EFAIL, "invalid answer from server '%s': no run state with the log", h->url);
	}
	call_clear(&c);
	*out = ch;
	return 0;
}

static int h_list_events(struct pilot_api *api, const struct pilot_event_filter *f, int64_t wait_ms,
			 struct pilot_event_list *out)
{
	struct call c;
	if (f && f->run)
		call_route(&c, PILOT_ROUTE_RUN_EVENTS, f->run, NULL);
	else
		call_route(&c, PILOT_ROUTE_EVENTS, NULL, NULL);
	add_query(&c, "format", "json");
	add_query_int(&c, "after", f ? f->after_seq : 0);
	if (f && f->limit)
		add_query_int(&c, "limit", (int64_t)f->limit);
	add_wait(&c, wait_ms);
	return call_model(H(api), &c, NULL, out);
}

/* The routes of one run's attempt: ?attempt=N (0 = every attempt, or the latest). */
static void call_run_attempt(struct call *c, enum pilot_route_id id, const char *run, const char *path, int attempt)
{
	call_route(c, id, run, path);
	if (attempt)
		add_query_int(c, "attempt", attempt);
}

static int h_list_artifacts(struct pilot_api *api, const char *run, int attempt, struct pilot_artifact_list *out)
{
	struct call c;
	call_run_attempt(&c, PILOT_ROUTE_LIST_ARTIFACTS, run, NULL, attempt);
	return call_model(H(api), &c, NULL, out);
}

static int h_get_artifact(struct pilot_api *api, const char *run, const char *path, int attempt, int *fd,
			  struct pilot_artifact *meta)
{
	struct call c;
	call_run_attempt(&c, PILOT_ROUTE_GET_ARTIFACT, run, path, attempt);
	int got = -1;
	int r = download(H(api), &c, &got);
	if (r < 0) {
		call_clear(&c);
		return r;
	}
	if (meta) {
		struct stat sb;
		memset(meta, 0, sizeof(*meta));
		meta->path = pilot_xstrdup(path);
		meta->size = fstat(got, &sb) == 0 ? (uint64_t)sb.st_size : 0;
		meta->attempt = (int)hdr_int(&c, "pilot-attempt");
		meta->created_ms = hdr_int(&c, "pilot-created-ms");
		const char *sha = hdr(&c, "pilot-sha256");
		if (sha && strlen(sha) == 64)
			memcpy(meta->sha256, sha, 65);
	}
	call_clear(&c);
	*fd = got;
	return 0;
}

static int h_get_metrics(struct pilot_api *api, const char *run, int attempt, struct pilot_metric_list *out)
{
	struct call c;
	call_run_attempt(&c, PILOT_ROUTE_GET_METRICS, run, NULL, attempt);
	return call_model(H(api), &c, NULL, out);
}

static int h_list_agents(struct pilot_api *api, struct pilot_agent_list *out)
{
	struct call c;
	call_route(&c, PILOT_ROUTE_LIST_AGENTS, NULL, NULL);
	return call_model(H(api), &c, NULL, out);
}

static int h_status(struct pilot_api *api, struct pilot_status *out)
{
	struct call c;
	call_route(&c, PILOT_ROUTE_STATUS, NULL, NULL);
	return call_model(H(api), &c, NULL, out);
}

static int check_sha(const char *sha256)
{
	if (!sha256 || !pilot_sha256_valid(sha256))
		return pilot_error_set(PILOT_EINVALID, "invalid sha256 '%s': expected 64 lowercase hex digits",
				       sha256 ? sha256 : "");
	return 0;
}

static int h_bundle_has(struct pilot_api *api, const char *sha256)
{
	struct http_api *h = H(api);
	int r = check_sha(sha256);
	if (r < 0)
		return r;
	struct call c;
	call_route(&c, PILOT_ROUTE_BUNDLE_HAS, sha256, NULL);
	r = perform(h, &c);
	if (r == 0) {
		if (c.status == 404)
			r = 0;
		else if ((r = status_error(h, &c, NULL)) == 0)
			r = 1;
	}
	call_clear(&c);
	return r;
}

static int h_bundle_put(struct pilot_api *api, const char *sha256, int fd)
{
	int r = check_sha(sha256);
	if (r < 0)
		return r;
	struct call c;
	call_route(&c, PILOT_ROUTE_BUNDLE_PUT, sha256, NULL);
	set_body_fd(&c, fd);
	c.progress = true;
	return call_model(H(api), &c, NULL, NULL);
}

static int h_bundle_get(struct pilot_api *api, const char *sha256, int *fd)
{
	int r = check_sha(sha256);
	if (r < 0)
		return r;
	struct call c;
	call_route(&c, PILOT_ROUTE_BUNDLE_GET, sha256, NULL);
	r = download(H(api), &c, fd);
	call_clear(&c);
	return r;
}

static int h_register_agent(struct pilot_api *api, const struct pilot_agent_info *info)
{
	struct call c;
	call_route(&c, PILOT_ROUTE_REGISTER_AGENT, NULL, NULL);
	return call_model(H(api), &c, info, NULL);
}

static int h_agent_leave(struct pilot_api *api, const char *agent)
{
	struct call c;
	call_route(&c, PILOT_ROUTE_AGENT_LEAVE, agent, NULL);
	return call_model(H(api), &c, NULL, NULL);
}

static int h_claim(struct pilot_api *api, const struct pilot_claim_request *req, struct pilot_claim *out)
{
	struct http_api *h = H(api);
	struct call c;
	call_route(&c, PILOT_ROUTE_CLAIM, NULL, NULL);
	add_wait(&c, req->wait_ms);
	json_t *j = pilot_claim_request_to_json(req);
	_cleanup_free_ char *body = NULL;
	set_body_json(&c, j, &body);
	json_decref(j);
	int r = perform(h, &c);
	if (r == 0 && c.status == 204) {
		call_clear(&c);
		return 0;
	}
	json_t *res = NULL;
	if (r == 0 && (r = status_error(h, &c, NULL)) == 0) {
		json_error_t e;
		res = json_loadb(c.resp.data ? c.resp.data : "", c.resp.len, 0, &e);
		if (!res)
			r = pilot_error_set(PILOT_EFAIL, "invalid claim from server '%s': %s", h->url, e.text);
	}
	call_clear(&c);
	if (r < 0)
		return r;
	r = pilot_claim_from_json(res, out);
	json_decref(res);
	return r < 0 ? r : 1;
}

/* The routes of an attempt's agent: fenced by the lease token. */
static void call_attempt(struct call *c, enum pilot_route_id id, const char *attempt_id, const char *path,
			 const char *token)
{
	call_route(c, id, attempt_id, path);
	c->lease = token ? token : "";
}

static int h_heartbeat(struct pilot_api *api, const char *attempt_id, const char *token,
		       struct pilot_heartbeat_reply *reply)
{
	struct call c;
	call_attempt(&c, PILOT_ROUTE_HEARTBEAT, attempt_id, NULL, token);
	struct pilot_heartbeat_reply hr;
	int r = call_model(H(api), &c, NULL, &hr);
	if (r == 0 && reply)
		*reply = hr;
	return r;
}

/* An agent write answers where the stored data now ends (next_key), and a 409 may
 * carry where the client should resume (err_key): both land in *expected. The call
 * is cleared. */
static int fenced_write(struct http_api *h, struct call *c, const char *next_key, const char *err_key,
			int64_t *expected)
{
	int r = perform(h, c);
	if (r < 0) {
		call_clear(c);
		return r;
	}
	json_t *ej = NULL;
	r = status_error(h, c, &ej);
	if (r < 0 && expected) {
		json_t *v = json_object_get(json_object_get(ej, "error"), err_key);
		if (json_is_integer(v))
			*expected = (int64_t)json_integer_value(v);
	}
	json_decref(ej);
	if (r == 0 && expected) {
		json_t *ok = json_loadb(c->resp.data ? c->resp.data : "", c->resp.len, 0, NULL);
		json_t *v = json_object_get(ok, next_key);
		if (json_is_integer(v))
			*expected = (int64_t)json_integer_value(v);
		json_decref(ok);
	}
	call_clear(c);
	return r;
}

static int h_append_log(struct pilot_api *api, const char *attempt_id, const char *token, int64_t offset,
			const void *data, size_t len, int64_t *expected_offset)
{
	struct call c;
	call_attempt(&c, PILOT_ROUTE_APPEND_LOG, attempt_id, NULL, token);
	add_query_int(&c, "offset", offset);
	c.body = data ? data : "";
	c.body_len = len;
	c.content_type = "application/octet-stream";
	return fenced_write(H(api), &c, "next_offset", "expected_offset", expected_offset);
}

static int h_put_artifact(struct pilot_api *api, const char *attempt_id, const char *token, const char *path,
			  int fd)
{
	struct call c;
	call_attempt(&c, PILOT_ROUTE_PUT_ARTIFACT, attempt_id, path, token);
	set_body_fd(&c, fd);
	c.progress = true;
	return call_model(H(api), &c, NULL, NULL);
}

static int h_put_metrics(struct pilot_api *api, const char *attempt_id, const char *token, int64_t first_index,
			 const struct pilot_metric *items, size_t n, int64_t *expected_index)
{
	struct call c;
	call_attempt(&c, PILOT_ROUTE_PUT_METRICS, attempt_id, NULL, token);
	add_query_int(&c, "first_index", first_index);
	struct pilot_metric_list l = { (struct pilot_metric *)items, n };
	json_t *j = c.route->request->to_json(&l);
	_cleanup_free_ char *body = NULL;
	set_body_json(&c, j, &body);
	json_decref(j);
	return fenced_write(H(api), &c, "next_index", "expected_index", expected_index);
}

static int h_finish(struct pilot_api *api, const char *attempt_id, const char *token,
		    const struct pilot_finish *outcome, struct pilot_run *run)
{
	struct call c;
	call_attempt(&c, PILOT_ROUTE_FINISH, attempt_id, NULL, token);
	return call_model(H(api), &c, outcome, run);
}

static int h_reap(struct pilot_api *api)
{
	struct call c;
	call_route(&c, PILOT_ROUTE_REAP, NULL, NULL);
	json_t *res = NULL;
	int r = call_json_once(H(api), &c, &res);
	if (r < 0)
		return r;
	json_t *n = json_object_get(res, "changed");
	r = json_is_integer(n) ? (int)json_integer_value(n) : 0;
	json_decref(res);
	return r;
}

static void h_close(struct pilot_api *api)
{
	struct http_api *h = H(api);
	for (int i = 0; i < h->npool; i++)
		curl_easy_cleanup(h->pool[i]);
	if (h->share)
		curl_share_cleanup(h->share);
	for (int i = 0; i < CURL_LOCK_DATA_LAST; i++)
		pthread_mutex_destroy(&h->share_locks[i]);
	pthread_mutex_destroy(&h->pool_lock);
	free(h->url);
	if (h->auth)
		explicit_bzero(h->auth, strlen(h->auth));
	free(h->auth);
	free(h->cacert);
	free(h->user_agent);
	free(h);
}

static const struct pilot_api_ops http_ops = {
	.name = "http",
	.submit = h_submit,
	.get_run = h_get_run,
	.list_runs = h_list_runs,
	.cancel = h_cancel,
	.retry = h_retry,
	.read_logs = h_read_logs,
	.list_events = h_list_events,
	.list_artifacts = h_list_artifacts,
	.get_artifact = h_get_artifact,
	.get_metrics = h_get_metrics,
	.list_agents = h_list_agents,
	.status = h_status,
	.bundle_has = h_bundle_has,
	.bundle_put = h_bundle_put,
	.bundle_get = h_bundle_get,
	.register_agent = h_register_agent,
	.agent_leave = h_agent_leave,
	.claim = h_claim,
	.heartbeat = h_heartbeat,
	.append_log = h_append_log,
	.put_artifact = h_put_artifact,
	.put_metrics = h_put_metrics,
	.finish = h_finish,
	.reap = h_reap,
	.close = h_close,
};

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_rc;

static void init_curl(void)
{
	curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

static int64_t env_ms(const char *name, int64_t def)
{
	const char *v = getenv(name);
	int64_t ms;
	if (v && *v && pilot_parse_duration(v, &ms) == 0 && ms > 0)
		return ms;
	pilot_error_clear();
	return def;
}

int pilot_api_open_http(const struct pilot_http_options *opts, struct pilot_api **out)
{
	const char *url = opts ? opts->url : NULL;
	if (!url || (!pilot_str_has_prefix(url, "http://") && !pilot_str_has_prefix(url, "https://")))
		return pilot_error_set(PILOT_EINVALID, "invalid server URL '%s': expected http://HOST:PORT or https://...",
				       url ? url : "");
	if (opts->token && *opts->token && pilot_token_check(opts->token) < 0)
		return pilot_error_prefix(PILOT_EAUTH, "the token configured for '%s' is unusable (run 'pilot login')",
					  url);
	pthread_once(&curl_once, init_curl);
	if (curl_init_rc != CURLE_OK)
		return pilot_error_set(PILOT_EFAIL, "cannot initialise libcurl: %s", curl_easy_strerror(curl_init_rc));
	struct http_api *h = pilot_xcalloc(1, sizeof(*h));
	h->base.ops = &http_ops;
	h->url = pilot_xstrdup(url);
	size_t n = strlen(h->url);
	while (n > 0 && h->url[n - 1] == '/')
		h->url[--n] = '\0';
	if (opts->token && *opts->token)
		h->auth = pilot_xasprintf("Authorization: Bearer %s", opts->token);
	h->cacert = opts->cacert && *opts->cacert ? pilot_xstrdup(opts->cacert) : NULL;
	h->user_agent = pilot_xasprintf("pilot/%s", pilot_version());
	for (int i = 0; i < CURL_LOCK_DATA_LAST; i++)
		pthread_mutex_init(&h->share_locks[i], NULL);
	pthread_mutex_init(&h->pool_lock, NULL);
	const char *rv = getenv("PILOT_HTTP_RETRIES");
	int64_t retries = DEF_RETRIES;
	if (rv && *rv && pilot_parse_int64(rv, 0, 20, &retries) < 0) {
		pilot_error_clear();
		retries = DEF_RETRIES;
	}
	h->retries = (int)retries;
	h->connect_timeout_ms = env_ms("PILOT_HTTP_CONNECT_TIMEOUT", CONNECT_TIMEOUT_MS);
	h->timeout_ms = env_ms("PILOT_HTTP_TIMEOUT", CALL_TIMEOUT_MS);
	h->share = curl_share_init();
	if (!h->share) {
		h_close(&h->base);
		return pilot_error_set(PILOT_ENOMEM, "cannot create the HTTP connection cache");
	}
	curl_share_setopt(h->share, CURLSHOPT_LOCKFUNC, share_lock);
	curl_share_setopt(h->share, CURLSHOPT_UNLOCKFUNC, share_unlock);
	curl_share_setopt(h->share, CURLSHOPT_USERDATA, h);
	curl_share_setopt(h->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_CONNECT);
	curl_share_setopt(h->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS);
	curl_share_setopt(h->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION);
	*out = &h->base;
	return 0;
}

/* ---- extras (pilot/server.h) ---- */

bool pilot_api_is_http(struct pilot_api *api)
{
	return api && api->ops == &http_ops;
}

const char *pilot_http_url(struct pilot_api *api)
{
	return pilot_api_is_http(api) ? H(api)->url : NULL;
}

void pilot_http_set_progress(struct pilot_api *api, pilot_http_progress_fn fn, void *userdata)
{
	if (!pilot_api_is_http(api))
		return;
	H(api)->progress = fn;
	H(api)->progress_data = userdata;
}

static int need_http(struct pilot_api *api)
{
	if (!pilot_api_is_http(api))
		return pilot_error_set(PILOT_EINVALID, "no server configured: set one with 'pilot login --server URL'");
	return 0;
}

void pilot_whoami_clear(struct pilot_whoami *w)
{
	if (!w)
		return;
	free(w->token_id);
	free(w->name);
	free(w->server_version);
	memset(w, 0, sizeof(*w));
}

int pilot_http_whoami(struct pilot_api *api, struct pilot_whoami *out)
{
	int r = need_http(api);
	if (r < 0)
		return r;
	struct call c;
	call_route(&c, PILOT_ROUTE_WHOAMI, NULL, NULL);
	json_t *res = NULL;
	r = call_json_once(H(api), &c, &res);
	if (r < 0)
		return r;
	const char *id = json_string_value(json_object_get(res, "token_id"));
	const char *name = json_string_value(json_object_get(res, "name"));
	const char *ver = json_string_value(json_object_get(res, "server_version"));
	json_t *exp = json_object_get(res, "expires_ms");
	memset(out, 0, sizeof(*out));
	out->token_id = id ? pilot_xstrdup(id) : NULL;
	out->name = name ? pilot_xstrdup(name) : NULL;
	out->server_version = ver ? pilot_xstrdup(ver) : NULL;
	/* Scopes this client does not know (a newer server) are left out. */
	if (pilot_token_scopes_from_json(json_object_get(res, "scopes"), &out->scopes) < 0) {
		pilot_error_clear();
		out->scopes = 0;
	}
	out->expires_ms = json_is_integer(exp) ? (int64_t)json_integer_value(exp) : 0;
	json_decref(res);
	return 0;
}

int pilot_http_token_create(struct pilot_api *api, const char *name, unsigned scopes, int64_t expires_ms,
			    char **secret, struct pilot_token_record *out)
{
	int r = need_http(api);
	if (r < 0)
		return r;
	_cleanup_free_ char *sc = pilot_token_scopes_format(scopes);
	json_t *j = json_pack("{s:s?,s:s}", "name", name, "scopes", sc);
	if (expires_ms)
		json_object_set_new(j, "expires_ms", json_integer(expires_ms));
	struct call c;
	call_route(&c, PILOT_ROUTE_TOKEN_CREATE, NULL, NULL);
	_cleanup_free_ char *body = NULL;
	set_body_json(&c, j, &body);
	json_decref(j);
	json_t *res = NULL;
	r = call_json_once(H(api), &c, &res);
	if (r < 0)
		return r;
	const char *tok = json_string_value(json_object_get(res, "token"));
	if (!tok) {
		json_decref(res);
		return pilot_error_set(PILOT_EFAIL, "invalid answer from server: no token");
	}
	struct pilot_token_record rec;
	if ((r = pilot_token_record_from_json(res, &rec)) < 0) {
		json_decref(res);
		return r;
	}
	*secret = pilot_xstrdup(tok);
	if (out)
		*out = rec;
	else
		pilot_token_record_clear(&rec);
	json_decref(res);
	return 0;
}

int pilot_http_token_list(struct pilot_api *api, struct pilot_token_list *out)
{
	int r = need_http(api);
	if (r < 0)
		return r;
	struct call c;
	call_route(&c, PILOT_ROUTE_TOKEN_LIST, NULL, NULL);
	json_t *res = NULL;
	r = call_json_once(H(api), &c, &res);
	if (r < 0)
		return r;
	json_t *a = json_object_get(res, "tokens");
	struct pilot_token_list l = { 0 };
	size_t n = json_array_size(a);
	l.items = pilot_xcalloc(n ? n : 1, sizeof(*l.items));
	for (size_t i = 0; i < n; i++) {
		if ((r = pilot_token_record_from_json(json_array_get(a, i), &l.items[l.n])) < 0) {
			pilot_token_list_clear(&l);
			json_decref(res);
			return r;
		}
		l.n++;
	}
	json_decref(res);
	*out = l;
	return 0;
}

int pilot_http_token_revoke(struct pilot_api *api, const char *id_or_name)
{
	int r = need_http(api);
	if (r < 0)
		return r;
	struct call c;
	call_route(&c, PILOT_ROUTE_TOKEN_REVOKE, id_or_name, NULL);
	return call_model(H(api), &c, NULL, NULL);
}
