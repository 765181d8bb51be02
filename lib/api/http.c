/* The http transport's plumbing: one call to `pilot server` (pilot-api(7)) over
 * libcurl, and opening and closing the transport; http-ops.c has the operations.
 * Connections are reused (a pool of easy handles sharing one connection cache, so one
 * api object may be used from several threads), every response buffer has a maximum
 * size, and calls that are safe to repeat — reads, fenced agent writes, and submits,
 * which always carry an idempotency key — are retried with jittered backoff on
 * connection errors and 502/503/504. Errors come back as the same PILOT_E* codes the
 * local transport returns, from the error body. */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "http-internal.h"
#include "pilot/version.h"

static void call_init(struct http_call *c, const char *method)
{
	memset(c, 0, sizeof(*c));
	c->method = method;
	c->body_fd = -1;
	c->out_fd = -1;
	c->fd_size = -1;
	pilot_buf_init(&c->path, 0);
	pilot_buf_init(&c->resp, JSON_MAX);
}

void http_call_clear(struct http_call *c)
{
	pilot_buf_free(&c->path);
	pilot_buf_free(&c->resp);
	pilot_kvs_clear(&c->headers);
}

/* Append "?name=value" or "&name=value". */
void http_query(struct http_call *c, const char *name, const char *value)
{
	pilot_buf_putc(&c->path, strchr(pilot_buf_str(&c->path), '?') ? '&' : '?');
	pilot_buf_puts(&c->path, name);
	pilot_buf_putc(&c->path, '=');
	pilot_url_escape(&c->path, value, false);
}

void http_query_int(struct http_call *c, const char *name, int64_t v)
{
	char b[32];
	snprintf(b, sizeof(b), "%lld", (long long)v);
	http_query(c, name, b);
}

static size_t on_header(char *p, size_t size, size_t n, void *ud)
{
	struct http_call *c = ud;
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
	struct http_call *c = ud;
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
	struct http_call *c = ud;
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
	struct http_call *c = ud;
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
	struct http_call *c;
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

static bool rewind_body(struct http_call *c)
{
	c->body_pos = 0;
	if (c->body_fd < 0)
		return true;
	return c->fd_seekable && lseek(c->body_fd, c->fd_start, SEEK_SET) >= 0;
}

static void reset_response(struct http_call *c)
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

static struct curl_slist *build_headers(struct http_api *h, struct http_call *c)
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

static void set_options(struct http_api *h, CURL *e, struct http_call *c, const char *url, struct curl_slist *hdrs,
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
int http_perform(struct http_api *h, struct http_call *c)
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
int http_status_error(struct http_api *h, struct http_call *c, json_t **err_json)
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
int http_call_json(struct http_api *h, struct http_call *c, json_t **out)
{
	int r = http_perform(h, c);
	if (r < 0)
		return r;
	if ((r = http_status_error(h, c, NULL)) < 0)
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

/* http_call_json, then free the call's buffers (its status stays). */
int http_call_json_once(struct http_api *h, struct http_call *c, json_t **out)
{
	int r = http_call_json(h, c, out);
	http_call_clear(c);
	return r;
}

void http_body_json(struct http_call *c, json_t *j, char **owned)
{
	*owned = json_dumps(j, JSON_COMPACT);
	if (!*owned)
		*owned = pilot_xstrdup("{}");
	c->body = *owned;
	c->body_len = strlen(*owned);
	c->content_type = "application/json";
}

void http_body_fd(struct http_call *c, int fd)
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
void http_call_route(struct http_call *c, enum pilot_route_id id, const char *p0, const char *p1)
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
int http_call_model(struct http_api *h, struct http_call *c, const void *req, void *out)
{
	const struct pilot_route *rt = c->route;
	_cleanup_free_ char *body = NULL;
	if (req) {
		json_t *j = rt->request->to_json(req);
		http_body_json(c, j, &body);
		json_decref(j);
	}
	json_t *res = NULL;
	int r = http_call_json_once(h, c, out ? &res : NULL);
	if (r < 0 || !out)
		return r;
	r = rt->response->from_json(res, out);
	json_decref(res);
	return r;
}

const char *http_header(struct http_call *c, const char *name)
{
	return pilot_kvs_get(&c->headers, name);
}

int64_t http_header_int(struct http_call *c, const char *name)
{
	const char *v = http_header(c, name);
	int64_t n = 0;
	if (v && pilot_parse_int64(v, INT64_MIN, INT64_MAX, &n) < 0) {
		pilot_error_clear();
		n = 0;
	}
	return n;
}

/* GET into an unlinked temp file; *fd is positioned at the start. */
int http_download(struct http_api *h, struct http_call *c, int *fd)
{
	c->out_fd = pilot_open_temp();
	if (c->out_fd < 0)
		return c->out_fd;
	c->transfer = true;
	c->idempotent = true;
	int r = http_perform(h, c);
	if (r == 0)
		r = http_status_error(h, c, NULL);
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

void http_close(struct pilot_api *api)
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
		http_close(&h->base);
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
