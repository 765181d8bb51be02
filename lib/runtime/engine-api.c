/* A small Docker Engine API client over libcurl (unix socket or tcp), never the docker
 * CLI: one request with its errors, a transfer a cancel can interrupt, and attach, a raw
 * HTTP upgrade on a connection curl opened for us. */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "runtime-internal.h"

#define RESPONSE_MAX (16 * 1024 * 1024)
#define HEADER_MAX (64 * 1024)

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;

static void curl_init(void)
{
	curl_global_init(CURL_GLOBAL_DEFAULT);
}

void engine_curl_ready(void)
{
	pthread_once(&curl_once, curl_init);
}

const char *engine_name(const struct pilot_runtime *rt)
{
	return rt->kind == RUNTIME_PODMAN ? "podman" : "docker";
}

/* A library's message, lowercased to match pilot's ("connection refused"), unless it
 * starts with an acronym. */
static void errno_text_of(const char *msg, char *out, size_t n)
{
	snprintf(out, n, "%s", msg);
	if (out[0] >= 'A' && out[0] <= 'Z' && !(out[1] >= 'A' && out[1] <= 'Z'))
		out[0] = (char)(out[0] - 'A' + 'a');
}

static void errno_text(int e, char *out, size_t n)
{
	errno_text_of(strerror(e), out, n);
}

CURL *engine_easy_new(struct pilot_runtime *rt, const char *method, const char *path, const char *body,
		      long timeout_ms, struct curl_slist **headers)
{
	engine_curl_ready();
	CURL *h = curl_easy_init();
	if (!h)
		abort();
	_cleanup_free_ char *url = pilot_xasprintf("%s%s%s", rt->base_url, rt->api_prefix, path);
	curl_easy_setopt(h, CURLOPT_URL, url);
	if (rt->socket_path)
		curl_easy_setopt(h, CURLOPT_UNIX_SOCKET_PATH, rt->socket_path);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, rt->connect_timeout_ms);
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, timeout_ms);
	curl_easy_setopt(h, CURLOPT_PROXY, "");
	curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
	*headers = curl_slist_append(NULL, "Expect:");
	if (strcmp(method, "POST") == 0) {
		curl_easy_setopt(h, CURLOPT_POST, 1L);
		curl_easy_setopt(h, CURLOPT_POSTFIELDS, body ? body : "");
		curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)(body ? strlen(body) : 0));
		if (body)
			*headers = curl_slist_append(*headers, "Content-Type: application/json");
	} else if (strcmp(method, "GET") != 0) {
		curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
	}
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, *headers);
	return h;
}

int engine_transport_error(struct pilot_runtime *rt, CURL *h, CURLcode c)
{
	long oserr = 0;
	curl_easy_getinfo(h, CURLINFO_OS_ERRNO, &oserr);
	char why[256];
	if ((c == CURLE_COULDNT_CONNECT || c == CURLE_COULDNT_RESOLVE_HOST) && oserr)
		errno_text((int)oserr, why, sizeof(why));
	else
		errno_text_of(curl_easy_strerror(c), why, sizeof(why));
	if (c == CURLE_COULDNT_CONNECT || c == CURLE_COULDNT_RESOLVE_HOST || c == CURLE_OPERATION_TIMEDOUT)
		return pilot_error_set(PILOT_EUNAVAILABLE, "cannot reach %s at %s: %s", engine_name(rt), rt->endpoint,
				       why);
	return pilot_error_set(PILOT_EUNAVAILABLE, "%s at %s: %s", engine_name(rt), rt->endpoint, why);
}

/* Performs h; through the control's wake-up pipe when ctl is given, so that a cancel
 * interrupts a long transfer (a pull). */
CURLcode engine_perform(CURL *h, struct pilot_job_control *ctl, bool *canceled)
{
	*canceled = false;
	if (!ctl)
		return curl_easy_perform(h);
	CURLM *m = curl_multi_init();
	if (!m)
		abort();
	curl_multi_add_handle(m, h);
	CURLcode result = CURLE_OK;
	int running = 1;
	while (running) {
		if (curl_multi_perform(m, &running) != CURLM_OK) {
			result = CURLE_FAILED_INIT;
			break;
		}
		if (!running)
			break;
		struct curl_waitfd wfd = { .fd = runtime_control_fd(ctl), .events = CURL_WAIT_POLLIN };
		curl_multi_poll(m, &wfd, 1, 1000, NULL);
		if (runtime_control_state(ctl)) {
			*canceled = true;
			break;
		}
	}
	CURLMsg *msg;
	int left;
	while ((msg = curl_multi_info_read(m, &left)))
		if (msg->msg == CURLMSG_DONE)
			result = msg->data.result;
	curl_multi_remove_handle(m, h);
	curl_multi_cleanup(m);
	return result;
}

size_t engine_write_buf(char *p, size_t size, size_t n, void *ud)
{
	return pilot_buf_append(ud, p, size * n) < 0 ? 0 : size * n;
}

/* One API request. Transport failures are errors; any HTTP status is returned in
 * *status for the caller to judge, with the body in out (may be NULL). */
int engine_call(struct pilot_runtime *rt, const char *method, const char *path, const char *body, long timeout_ms,
		long *status, struct pilot_buf *out)
{
	struct pilot_buf sink;
	pilot_buf_init(&sink, RESPONSE_MAX);
	struct pilot_buf *dst = out ? out : &sink;
	if (out) {
		pilot_buf_reset(out);
		out->max = RESPONSE_MAX;
	}
	struct curl_slist *headers;
	CURL *h = engine_easy_new(rt, method, path, body, timeout_ms, &headers);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, engine_write_buf);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, dst);
	CURLcode c = curl_easy_perform(h);
	int r = 0;
	if (c == CURLE_WRITE_ERROR)
		r = pilot_error_set(PILOT_ELIMIT, "%s: response to %s %s exceeds %d bytes", engine_name(rt), method,
				    path, RESPONSE_MAX);
	else if (c != CURLE_OK)
		r = engine_transport_error(rt, h, c);
	else
		curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, status);
	curl_easy_cleanup(h);
	curl_slist_free_all(headers);
	pilot_buf_free(&sink);
	return r;
}

/* An error from an HTTP status and the engine's message: "what: engine message". */
int engine_status_error(struct pilot_runtime *rt, long status, const struct pilot_buf *body, const char *what)
{
	_cleanup_free_ char *msg = body ? runtime_engine_message(body->data ? body->data : "", body->len) : NULL;
	int code = status == 404 ? PILOT_ENOTFOUND
		 : status == 409 ? PILOT_ECONFLICT
		 : status == 400 ? PILOT_EINVALID
		 : status == 401 ? PILOT_EAUTH
		 : status == 403 ? PILOT_EFORBIDDEN
				 : PILOT_EFAIL;
	if (msg)
		return pilot_error_set(code, "%s: %s", what, msg);
	return pilot_error_set(code, "%s: %s answered HTTP %ld", what, engine_name(rt), status);
}

json_t *engine_parse_json(const struct pilot_buf *b)
{
	return json_loadb(b->data ? b->data : "", b->len, 0, NULL);
}

static int wait_socket(curl_socket_t fd, short events, int64_t deadline)
{
	for (;;) {
		int64_t left = deadline - pilot_mono_ms();
		if (left <= 0)
			return 0;
		struct pollfd p = { .fd = fd, .events = events };
		int n = poll(&p, 1, (int)left);
		if (n >= 0 || errno != EINTR)
			return n;
	}
}

int engine_attach_open(struct pilot_runtime *rt, const char *id, struct engine_attach *a)
{
	memset(a, 0, sizeof(*a));
	pilot_buf_init(&a->early, 0);
	engine_curl_ready();
	a->h = curl_easy_init();
	if (!a->h)
		abort();
	_cleanup_free_ char *url = pilot_xasprintf("%s/", rt->base_url);
	curl_easy_setopt(a->h, CURLOPT_URL, url);
	if (rt->socket_path)
		curl_easy_setopt(a->h, CURLOPT_UNIX_SOCKET_PATH, rt->socket_path);
	curl_easy_setopt(a->h, CURLOPT_CONNECT_ONLY, 1L);
	curl_easy_setopt(a->h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(a->h, CURLOPT_PROXY, "");
	curl_easy_setopt(a->h, CURLOPT_CONNECTTIMEOUT_MS, rt->connect_timeout_ms);
	CURLcode c = curl_easy_perform(a->h);
	if (c != CURLE_OK)
		return engine_transport_error(rt, a->h, c);
	if (curl_easy_getinfo(a->h, CURLINFO_ACTIVESOCKET, &a->fd) != CURLE_OK || a->fd == CURL_SOCKET_BAD)
		return pilot_error_set(PILOT_EFAIL, "%s: no socket for the attach connection", engine_name(rt));

	_cleanup_free_ char *req = pilot_xasprintf(
		"POST %s/containers/%s/attach?stream=1&stdout=1&stderr=1 HTTP/1.1\r\n"
		"Host: localhost\r\nContent-Type: text/plain\r\nContent-Length: 0\r\n"
		"Connection: Upgrade\r\nUpgrade: tcp\r\n\r\n",
		rt->api_prefix, id);
	int64_t deadline = pilot_mono_ms() + ENGINE_API_TIMEOUT_MS;
	size_t off = 0, len = strlen(req);
	while (off < len) {
		size_t sent = 0;
		c = curl_easy_send(a->h, req + off, len - off, &sent);
		if (c == CURLE_AGAIN) {
			if (wait_socket(a->fd, POLLOUT, deadline) <= 0)
				return pilot_error_set(PILOT_EUNAVAILABLE, "%s: timed out sending the attach request",
						       engine_name(rt));
			continue;
		}
		if (c != CURLE_OK)
			return engine_transport_error(rt, a->h, c);
		off += sent;
	}

	/* The response head; whatever follows it is already the stream. */
	_cleanup_buf_ struct pilot_buf head = PILOT_BUF_INIT;
	char *end = NULL;
	while (!end) {
		char buf[4096];
		size_t got = 0;
		c = curl_easy_recv(a->h, buf, sizeof(buf), &got);
		if (c == CURLE_AGAIN) {
			if (wait_socket(a->fd, POLLIN, deadline) <= 0)
				return pilot_error_set(PILOT_EUNAVAILABLE, "%s: no answer to the attach request",
						       engine_name(rt));
			continue;
		}
		if (c != CURLE_OK)
			return engine_transport_error(rt, a->h, c);
		if (got == 0)
			break;
		pilot_buf_append(&head, buf, got);
		end = strstr(head.data, "\r\n\r\n");
		if (!end && head.len > HEADER_MAX)
			return pilot_error_set(PILOT_EINVALID, "%s: attach response headers too long", engine_name(rt));
	}
	int status = 0;
	if (head.len < 12 || sscanf(head.data, "HTTP/1.%*d %d", &status) != 1)
		return pilot_error_set(PILOT_EINVALID, "%s: malformed answer to the attach request", engine_name(rt));
	if (!end || (status != 101 && status != 200)) {
		const char *body = end ? end + 4 : "";
		struct pilot_buf b = { (char *)body, strlen(body), 0, 0 };
		return engine_status_error(rt, status, &b, "cannot attach to the container");
	}
	size_t hlen = (size_t)(end + 4 - head.data);
	pilot_buf_append(&a->early, head.data + hlen, head.len - hlen);
	return 0;
}

void engine_attach_close(struct engine_attach *a)
{
	if (a->h)
		curl_easy_cleanup(a->h);
	pilot_buf_free(&a->early);
	memset(a, 0, sizeof(*a));
}

static void demux_out(int stream, const char *data, size_t len, void *ud)
{
	runtime_output_feed(ud, stream, data, len);
}

/* Reads what the socket has now; sets a->eof at the end of the stream. */
int engine_attach_read(struct pilot_runtime *rt, struct engine_attach *a, struct runtime_demux *dm,
		       struct runtime_output *out)
{
	if (a->early.len) {
		int r = runtime_demux_feed(dm, a->early.data, a->early.len, demux_out, out);
		pilot_buf_reset(&a->early);
		if (r < 0)
			return r;
	}
	char buf[65536];
	for (int rounds = 0; rounds < 64 && !a->eof; rounds++) {
		size_t got = 0;
		CURLcode c = curl_easy_recv(a->h, buf, sizeof(buf), &got);
		if (c == CURLE_AGAIN)
			return 0;
		if (c != CURLE_OK) {
			a->eof = true;
			return pilot_error_set(PILOT_EIO, "%s: output stream broken: %s", engine_name(rt),
					       curl_easy_strerror(c));
		}
		if (got == 0) {
			a->eof = true;
			break;
		}
		int r = runtime_demux_feed(dm, buf, got, demux_out, out);
		if (r < 0)
			return r;
	}
	return 0;
}
