/* The http transport's insides, shared by http.c (one call over libcurl: the handle
 * pool, retries, timeouts, status to error code, downloads) and http-ops.c (each api
 * operation as a call on its route, and the client extras). */
#ifndef PILOT_API_HTTP_INTERNAL_H
#define PILOT_API_HTTP_INTERNAL_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include <curl/curl.h>
#include <jansson.h>

#include "pilot/api.h"

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

static inline struct http_api *H(struct pilot_api *api)
{
	return (struct http_api *)api;
}

extern const struct pilot_api_ops http_ops;
/* The close op: frees the handles and the api. */
void http_close(struct pilot_api *api);

/* One request and its response. */
struct http_call {
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

/* Free the call's buffers (its status stays). */
void http_call_clear(struct http_call *c);
/* Append "?name=value" or "&name=value". */
void http_query(struct http_call *c, const char *name, const char *value);
void http_query_int(struct http_call *c, const char *name, int64_t v);
/* Send the call, retrying what may be retried. 0 with c->status set (any status), or
 * a negative code when no answer came. */
int http_perform(struct http_api *h, struct http_call *c);
/* A non-2xx answer as an error (the server's own code and message when it sent its
 * error body). *err_json (optional) gets the parsed body. */
int http_status_error(struct http_api *h, struct http_call *c, json_t **err_json);
/* Perform, check the status, parse a JSON body into *out (NULL allowed: the body is
 * not wanted). */
int http_call_json(struct http_api *h, struct http_call *c, json_t **out);
/* http_call_json, then free the call's buffers (its status stays). */
int http_call_json_once(struct http_api *h, struct http_call *c, json_t **out);
/* The body: j as compact JSON, the text kept in *owned (the caller frees it). */
void http_body_json(struct http_call *c, json_t *j, char **owned);
/* The body: fd's bytes from its current position, streamed. */
void http_body_fd(struct http_call *c, int fd);
/* A call of the route id, its path built from the table with params p0 and p1. */
void http_call_route(struct http_call *c, enum pilot_route_id id, const char *p0, const char *p1);
/* Perform a call whose body (req, unless NULL) and answer (into out, unless NULL)
 * are model values, with the route's codecs. The call's buffers are freed; its status
 * stays. */
int http_call_model(struct http_api *h, struct http_call *c, const void *req, void *out);
/* A response header by its lowercase name (NULL when absent); as an integer, 0. */
const char *http_header(struct http_call *c, const char *name);
int64_t http_header_int(struct http_call *c, const char *name);
/* GET into an unlinked temp file; *fd is positioned at the start. */
int http_download(struct http_api *h, struct http_call *c, int *fd);

#endif
