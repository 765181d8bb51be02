/* The daemon glue of `pilot server`: libmicrohttpd set-up (internal thread pool over
 * epoll, suspend/resume), routing, bearer-token authentication, request bodies with
 * per-route limits and deadlines, the response helpers, the access log, and an orderly
 * stop. The routes themselves are in routes.c. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"
#include "pilot/version.h"

#define DEF_THREADS 4
#define DEF_MAX_CONNECTIONS 10000
#define DEF_PER_IP 1024
#define DEF_CONN_TIMEOUT_MS 60000
#define DEF_REQUEST_TIMEOUT_MS 60000
#define DEF_UPLOAD_TIMEOUT_MS (3600 * 1000)
#define DEF_MAX_WAIT_MS 120000
#define DEF_REAP_INTERVAL_MS 5000
#define DEF_KEEPALIVE_MS 15000
#define DEF_MAX_JSON (1024 * 1024)
#define DEF_MAX_LOG (8 * 1024 * 1024)
#define DEF_MAX_BUNDLE (2ULL * 1024 * 1024 * 1024)
#define DEF_MAX_ARTIFACT (8ULL * 1024 * 1024 * 1024)

/* ---- responses ---- */

unsigned http_status_for(int code)
{
	switch (code) {
	case PILOT_ENOTFOUND:
		return MHD_HTTP_NOT_FOUND;
	case PILOT_ECONFLICT:
	case PILOT_EAMBIGUOUS:
	case PILOT_ECANCELED:
		return MHD_HTTP_CONFLICT;
	case PILOT_EINVALID:
		return MHD_HTTP_BAD_REQUEST;
	case PILOT_EUNAVAILABLE:
		return MHD_HTTP_SERVICE_UNAVAILABLE;
	case PILOT_EAUTH:
		return MHD_HTTP_UNAUTHORIZED;
	case PILOT_EFORBIDDEN:
		return MHD_HTTP_FORBIDDEN;
	case PILOT_ELIMIT:
		return MHD_HTTP_CONTENT_TOO_LARGE;
	default:
		return MHD_HTTP_INTERNAL_SERVER_ERROR;
	}
}

enum MHD_Result respond(struct req *rq, unsigned status, struct MHD_Response *resp, uint64_t bytes)
{
	if (!resp)
		return MHD_NO;
	MHD_add_response_header(resp, "Cache-Control", "no-store");
	MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
	if (rq->srv->stopping)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION, "close");
	if (status == MHD_HTTP_UNAUTHORIZED)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer realm=\"pilot\"");
	enum MHD_Result r = MHD_queue_response(rq->conn, status, resp);
	MHD_destroy_response(resp);
	if (r == MHD_YES) {
		rq->responded = true;
		rq->status = status;
		rq->bytes = bytes;
	}
	return r;
}

static struct MHD_Response *buffer_response(char *data, size_t len, const char *type)
{
	struct MHD_Response *resp = MHD_create_response_from_buffer(len, data, MHD_RESPMEM_MUST_FREE);
	if (!resp) {
		free(data);
		return NULL;
	}
	if (type)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, type);
	return resp;
}

enum MHD_Result respond_json(struct req *rq, unsigned status, json_t *j)
{
	return respond_json_headers(rq, status, j, NULL);
}

enum MHD_Result respond_json_headers(struct req *rq, unsigned status, json_t *j, const char *const *headers)
{
	char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;
	json_decref(j);
	if (!s)
		return respond_text(rq, MHD_HTTP_INTERNAL_SERVER_ERROR, "text/plain", "cannot encode the answer\n");
	size_t n = strlen(s);
	/* A newline makes curl output readable; JSON parsers do not mind. */
	char *t = realloc(s, n + 2);
	if (!t) {
		free(s);
		return MHD_NO;
	}
	t[n] = '\n';
	t[n + 1] = '\0';
	struct MHD_Response *resp = buffer_response(t, n + 1, "application/json");
	for (size_t i = 0; resp && headers && headers[i]; i += 2)
		if (headers[i + 1])
			MHD_add_response_header(resp, headers[i], headers[i + 1]);
	return respond(rq, status, resp, n + 1);
}

enum MHD_Result respond_error_status(struct req *rq, unsigned status, int code, const char *msg, json_t *extra)
{
	json_t *j = pilot_error_to_json(code, msg && *msg ? msg : pilot_err_name(code));
	if (extra) {
		json_t *inner = json_object_get(j, "error");
		if (inner)
			json_object_update(inner, extra);
		json_decref(extra);
	}
	return respond_json(rq, status, j);
}

enum MHD_Result respond_error(struct req *rq, int code, const char *msg)
{
	return respond_error_status(rq, http_status_for(code), code, msg, NULL);
}

enum MHD_Result respond_last_error(struct req *rq)
{
	int code = pilot_error_code();
	if (code >= 0)
		code = PILOT_EFAIL;
	return respond_error(rq, code, pilot_error_last());
}

enum MHD_Result respond_text(struct req *rq, unsigned status, const char *type, const char *text)
{
	size_t n = strlen(text);
	return respond(rq, status, buffer_response(pilot_xstrdup(text), n, type), n);
}

enum MHD_Result respond_empty(struct req *rq, unsigned status)
{
	return respond(rq, status, MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT), 0);
}

const char *query(struct req *rq, const char *name)
{
	return MHD_lookup_connection_value(rq->conn, MHD_GET_ARGUMENT_KIND, name);
}

const char *header(struct req *rq, const char *name)
{
	return MHD_lookup_connection_value(rq->conn, MHD_HEADER_KIND, name);
}

/* ---- routing ---- */

/* ---- agent bindings ---- */

int server_bind_agent(struct server *srv, struct req *rq, const char *agent)
{
	if (!agent || !*agent || !rq->authed)
		return 0;
	if (rq->token_agent) {
		if (strcmp(rq->token_agent, agent))
			return pilot_error_set(PILOT_EFORBIDDEN, "token '%s' is agent '%s''s: it cannot act as agent '%s'",
					       rq->token_name, rq->token_agent, agent);
		/* The name is this token's: no other agent token may take it. */
		server_rebind_agent(srv, agent, rq->token_id);
		return 0;
	}
	if (srv->opt.require_registration)
		return pilot_error_set(PILOT_EFORBIDDEN,
				       "this server takes only enrolled agents: start agent '%s' with "
				       "--registration-token-file (a token of scope 'register'), see pilot-agent(1)",
				       agent);
	if (rq->scopes & PILOT_SCOPE_ADMIN)
		return 0;
	pthread_mutex_lock(&srv->bind_lock);
	for (size_t i = 0; i < srv->nbindings; i++) {
		if (strcmp(srv->bindings[i].agent, agent))
			continue;
		bool mine = !strcmp(srv->bindings[i].token_id, rq->token_id);
		pthread_mutex_unlock(&srv->bind_lock);
		if (!mine)
			return pilot_error_set(PILOT_EFORBIDDEN,
					       "agent '%s' belongs to another token: each agent token acts only as the "
					       "agents it started",
					       agent);
		return 0;
	}
	srv->bindings = pilot_xrealloc(srv->bindings, (srv->nbindings + 1) * sizeof(*srv->bindings));
	srv->bindings[srv->nbindings].agent = pilot_xstrdup(agent);
	memcpy(srv->bindings[srv->nbindings].token_id, rq->token_id, PILOT_ID_SIZE);
	srv->nbindings++;
	pthread_mutex_unlock(&srv->bind_lock);
	return 0;
}

void server_rebind_agent(struct server *srv, const char *agent, const char *token_id)
{
	pthread_mutex_lock(&srv->bind_lock);
	size_t i = 0;
	while (i < srv->nbindings && strcmp(srv->bindings[i].agent, agent))
		i++;
	if (i == srv->nbindings) {
		srv->bindings = pilot_xrealloc(srv->bindings, (srv->nbindings + 1) * sizeof(*srv->bindings));
		srv->bindings[srv->nbindings++].agent = pilot_xstrdup(agent);
	}
	memcpy(srv->bindings[i].token_id, token_id, PILOT_ID_SIZE);
	pthread_mutex_unlock(&srv->bind_lock);
}

/* ---- authentication ---- */

static unsigned scopes_of(const char *text)
{
	unsigned m = 0;
	if (text && *text && pilot_token_scopes_parse(text, &m) < 0) {
		pilot_error_clear();
		/* Unknown words (from a newer pilot) grant nothing; known ones still count. */
		m = 0;
		const char *names[] = { "read", "submit", "cancel", "agent", "admin", "register" };
		for (size_t i = 0; i < ARRAY_SIZE(names); i++) {
			const char *p = text;
			size_t n = strlen(names[i]);
			while ((p = strstr(p, names[i]))) {
				if ((p == text || p[-1] == ' ') && (p[n] == ' ' || !p[n]))
					m |= 1u << i;
				p += n;
			}
		}
	}
	return m;
}

static const char *scope_word(unsigned need)
{
	if (need & PILOT_SCOPE_READ)
		return "read";
	if (need & PILOT_SCOPE_SUBMIT)
		return "submit";
	if (need & PILOT_SCOPE_CANCEL)
		return "cancel";
	if (need & PILOT_SCOPE_AGENT)
		return "agent";
	if (need & PILOT_SCOPE_REGISTER)
		return "register";
	return "admin";
}

/* 0 when allowed; otherwise a response was queued and the result is returned in *mr. */
static int authenticate(struct req *rq, enum MHD_Result *mr)
{
	unsigned need = rq->route->scopes;
	if (!need)
		return 0;
	const char *h = header(rq, MHD_HTTP_HEADER_AUTHORIZATION);
	if (!h || strncasecmp(h, "Bearer ", 7) != 0) {
		*mr = respond_error(rq, PILOT_EAUTH, "missing token: send 'Authorization: Bearer TOKEN'");
		return -1;
	}
	const char *tok = h + 7;
	while (*tok == ' ')
		tok++;
	if (pilot_token_check(tok) < 0) {
		*mr = respond_last_error(rq);
		return -1;
	}
	char sha[65];
	pilot_token_hash(tok, sha);
	struct pilot_token_record rec;
	if (pilot_store_token_lookup(rq->srv->st, sha, &rec) < 0) {
		*mr = respond_last_error(rq);
		return -1;
	}
	rq->authed = true;
	rq->scopes = scopes_of(rec.scopes);
	memcpy(rq->token_id, rec.id, PILOT_ID_SIZE);
	rq->token_name = TAKE_PTR(rec.name);
	rq->token_agent = TAKE_PTR(rec.agent);
	rq->token_expires_ms = rec.expires_ms;
	pilot_token_record_clear(&rec);
	if (!pilot_token_scopes_allow(rq->scopes, need)) {
		_cleanup_free_ char *m = NULL;
		if (need == PILOT_SCOPE_ALL || need == PILOT_SCOPE_ADMIN)
			m = pilot_xasprintf("token '%s' lacks the 'admin' scope", rq->token_name);
		else
			m = pilot_xasprintf("token '%s' lacks the '%s' scope", rq->token_name, scope_word(need));
		*mr = respond_error(rq, PILOT_EFORBIDDEN, m);
		return -1;
	}
	return 0;
}

/* ---- request bodies ---- */

static uint64_t limit_of(struct server *srv, enum pilot_route_limit l)
{
	switch (l) {
	case PILOT_LIMIT_LOG:
		return srv->opt.max_log_chunk;
	case PILOT_LIMIT_BUNDLE:
		return srv->opt.max_bundle_size;
	case PILOT_LIMIT_ARTIFACT:
		return srv->opt.max_artifact_size;
	default:
		return srv->opt.max_json_body;
	}
}

static const char *limit_name(enum pilot_route_limit l)
{
	switch (l) {
	case PILOT_LIMIT_LOG:
		return "max_log_chunk";
	case PILOT_LIMIT_BUNDLE:
		return "max_bundle_size";
	case PILOT_LIMIT_ARTIFACT:
		return "max_artifact_size";
	default:
		return "max_json_body";
	}
}

static enum MHD_Result too_large(struct req *rq, uint64_t got)
{
	char lim[32], sz[32];
	pilot_format_size(rq->body_max, lim, sizeof(lim));
	pilot_format_size(got, sz, sizeof(sz));
	_cleanup_free_ char *m = pilot_xasprintf("request body too large: %s%s, the limit is %s (%s)",
						 got > rq->body_max ? "" : "over ", sz, lim, limit_name(rq->route->limit));
	return respond_error(rq, PILOT_ELIMIT, m);
}

static int open_upload(struct server *srv)
{
	int fd = open(srv->upload_dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
	if (fd >= 0)
		return fd;
	/* No O_TMPFILE here: a named file, unlinked at once, leaves nothing behind either. */
	_cleanup_free_ char *tmpl = pilot_path_join(srv->upload_dir, "up-XXXXXX");
	fd = mkostemp(tmpl, O_CLOEXEC);
	if (fd < 0)
		return pilot_error_errno(PILOT_EIO, errno, "cannot create upload file in '%s'", srv->upload_dir);
	unlink(tmpl);
	return fd;
}

/* Set up the body once the headers are in; 0, or -1 with a response queued. */
static int body_begin(struct req *rq, enum MHD_Result *mr)
{
	rq->body_max = limit_of(rq->srv, rq->route->limit);
	const char *cl = header(rq, MHD_HTTP_HEADER_CONTENT_LENGTH);
	int64_t n = 0;
	if (cl && pilot_parse_int64(cl, 0, INT64_MAX, &n) == 0 && (uint64_t)n > rq->body_max) {
		*mr = too_large(rq, (uint64_t)n);
		return -1;
	}
	pilot_error_clear();
	pilot_buf_init(&rq->body, rq->body_max);
	if (rq->route->body == PILOT_BODY_FILE) {
		rq->body_fd = open_upload(rq->srv);
		if (rq->body_fd < 0) {
			*mr = respond_last_error(rq);
			return -1;
		}
		rq->md = EVP_MD_CTX_new();
		if (!rq->md || EVP_DigestInit_ex(rq->md, EVP_sha256(), NULL) != 1) {
			*mr = respond_error(rq, PILOT_ENOMEM, "cannot hash the upload");
			return -1;
		}
	}
	return 0;
}

static int body_feed(struct req *rq, const char *data, size_t n)
{
	if (rq->body_size + n > rq->body_max)
		return PILOT_ELIMIT;
	rq->body_size += n;
	switch (rq->route->body) {
	case PILOT_BODY_NONE:
		return 0; /* read and dropped */
	case PILOT_BODY_FILE:
		EVP_DigestUpdate(rq->md, data, n);
		return pilot_write_all(rq->body_fd, data, n) < 0 ? PILOT_EIO : 0;
	default:
		return pilot_buf_append(&rq->body, data, n);
	}
}

/* ---- the request's life ---- */

static struct req *req_new(struct server *srv, struct MHD_Connection *conn, const char *url, const char *method)
{
	struct req *rq = pilot_xcalloc(1, sizeof(*rq));
	rq->srv = srv;
	rq->conn = conn;
	rq->method = method;
	rq->path = pilot_xstrdup(url);
	rq->route_index = -1;
	rq->body_fd = -1;
	rq->start_mono = pilot_mono_ms();
	pilot_buf_init(&rq->body, 1);
	pilot_buf_init(&rq->sse_out, 0);
	pthread_mutex_lock(&srv->lock);
	srv->active++;
	pthread_mutex_unlock(&srv->lock);
	atomic_fetch_add(&srv->m.in_flight, 1);
	return rq;
}

static void req_free(struct req *rq)
{
	pilot_route_params_free(rq->params);
	free(rq->path);
	free(rq->token_name);
	free(rq->token_agent);
	pilot_buf_free(&rq->body);
	pilot_buf_free(&rq->sse_out);
	if (rq->body_fd >= 0)
		close(rq->body_fd);
	EVP_MD_CTX_free(rq->md);
	pilot_claim_request_clear(&rq->w.creq);
	json_decref(rq->w.creq_json);
	pilot_claim_clear(&rq->w.claim);
	free(rq->w.err_msg);
	json_decref(rq->parsed);
	free(rq);
}

static enum MHD_Result begin(struct req *rq)
{
	struct server *srv = rq->srv;
	enum MHD_Result mr = MHD_YES;
	/* One trailing slash is forgiven. */
	size_t len = strlen(rq->path);
	if (len > 1 && rq->path[len - 1] == '/')
		rq->path[len - 1] = '\0';
	bool path_matched;
	rq->route_index = pilot_route_match(rq->method, rq->path, rq->params, &path_matched);
	if (rq->route_index < 0) {
		if (path_matched) {
			_cleanup_free_ char *m = pilot_xasprintf("method %s not allowed on '%s'", rq->method, rq->path);
			return respond_error_status(rq, MHD_HTTP_METHOD_NOT_ALLOWED, PILOT_EINVALID, m, NULL);
		}
		_cleanup_free_ char *m = pilot_xasprintf("no such route: %s '%s'", rq->method, rq->path);
		return respond_error(rq, PILOT_ENOTFOUND, m);
	}
	rq->route = &pilot_routes[rq->route_index];
	if (srv->stopping && strcmp(rq->route->pattern, "/healthz"))
		return respond_error(rq, PILOT_EUNAVAILABLE, "the server is shutting down");
	if (authenticate(rq, &mr) < 0)
		return mr;
	int64_t t = rq->route->limit == PILOT_LIMIT_BUNDLE || rq->route->limit == PILOT_LIMIT_ARTIFACT ? srv->opt.upload_timeout_ms
											     : srv->opt.request_timeout_ms;
	rq->deadline_mono = rq->start_mono + t;
	if (body_begin(rq, &mr) < 0)
		return mr;
	return MHD_YES;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
				  const char *version, const char *upload_data, size_t *upload_data_size, void **con_cls)
{
	struct server *srv = cls;
	struct req *rq = *con_cls;
	(void)version;
	if (!rq) {
		rq = req_new(srv, conn, url, method);
		*con_cls = rq;
		pilot_error_clear();
		return begin(rq);
	}
	if (rq->responded) {
		/* Answered early (auth, limits): drop what the client still sends. */
		*upload_data_size = 0;
		return MHD_YES;
	}
	if (*upload_data_size) {
		size_t n = *upload_data_size;
		*upload_data_size = 0;
		if (pilot_mono_ms() > rq->deadline_mono) {
			pilot_log(PILOT_LOG_INFO, "%s %s: request body not received within the deadline", method, url);
			return MHD_NO;
		}
		if (rq->body_err) {
			rq->body_size += n;
			return MHD_YES;
		}
		int r = body_feed(rq, upload_data, n);
		if (r < 0) {
			/* libmicrohttpd takes a response only once the request is in: drop the
			 * rest (the deadline still bounds it) and answer then. */
			rq->body_err = r;
			rq->body_size += r == PILOT_ELIMIT ? n : 0;
		}
		return MHD_YES;
	}
	pilot_error_clear();
	if (rq->body_err == PILOT_ELIMIT)
		return too_large(rq, rq->body_size);
	if (rq->body_err)
		return respond_error(rq, rq->body_err, "cannot store the request body");
	return server_handlers[rq->route_index](rq) ? MHD_YES : MHD_NO;
}

static void format_addr(struct MHD_Connection *conn, char *out, size_t n)
{
	const union MHD_ConnectionInfo *ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
	snprintf(out, n, "-");
	if (!ci || !ci->client_addr)
		return;
	const struct sockaddr *sa = ci->client_addr;
	if (sa->sa_family == AF_INET)
		inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, out, (socklen_t)n);
	else if (sa->sa_family == AF_INET6)
		inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, out, (socklen_t)n);
}

static void access_log(struct req *rq)
{
	struct server *srv = rq->srv;
	if (!srv->opt.access_log)
		return;
	char ts[32], addr[64];
	pilot_format_time(pilot_now_ms(), ts);
	format_addr(rq->conn, addr, sizeof(addr));
	int64_t ms = pilot_mono_ms() - rq->start_mono;
	if (srv->opt.log_json) {
		json_t *j = json_pack("{s:s,s:s,s:s,s:s,s:s,s:i,s:I,s:I,s:s?}", "ts", ts, "remote", addr, "method",
				      rq->method, "path", rq->path, "route", rq->route ? rq->route->pattern : "",
				      "status", (int)rq->status, "bytes", (json_int_t)rq->bytes, "ms", (json_int_t)ms,
				      "token", rq->token_name);
		char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;
		json_decref(j);
		if (s)
			srv->opt.access_log(s, srv->opt.access_log_data);
		free(s);
		return;
	}
	_cleanup_free_ char *line = pilot_xasprintf("%s %s %s %u %llu %lld %s %s", ts, rq->method, rq->path, rq->status,
						    (unsigned long long)rq->bytes, (long long)ms, addr,
						    rq->token_name ? rq->token_name : "-");
	srv->opt.access_log(line, srv->opt.access_log_data);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
			 enum MHD_RequestTerminationCode toe)
{
	struct server *srv = cls;
	struct req *rq = *con_cls;
	(void)conn;
	(void)toe;
	if (!rq)
		return;
	*con_cls = NULL;
	if (rq->w.listed)
		server_unwait(srv, &rq->w);
	if (rq->responded) {
		int slot = metrics_status_slot(rq->status);
		int ri = rq->route_index >= 0 ? rq->route_index : PILOT_NROUTES;
		atomic_fetch_add(&srv->m.routes[ri].by_status[slot], 1);
		atomic_fetch_add(&srv->m.bytes_sent_total, rq->bytes);
	}
	access_log(rq);
	atomic_fetch_sub(&srv->m.in_flight, 1);
	req_free(rq);
	pthread_mutex_lock(&srv->lock);
	srv->active--;
	pthread_cond_broadcast(&srv->idle_cond);
	pthread_mutex_unlock(&srv->lock);
}

__attribute__((format(printf, 2, 0)))
static void mhd_logger(void *cls, const char *fmt, va_list ap)
{
	(void)cls;
	if (!pilot_log_enabled(PILOT_LOG_DEBUG))
		return;
	char buf[512];
	vsnprintf(buf, sizeof(buf), fmt, ap);
	size_t n = strlen(buf);
	while (n && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
		buf[--n] = '\0';
	pilot_log(PILOT_LOG_DEBUG, "microhttpd: %s", buf);
}

/* ---- start and stop ---- */

static int parse_listen(const char *s, struct sockaddr_storage *ss, socklen_t *len, bool *v6)
{
	_cleanup_free_ char *host = NULL;
	const char *port;
	if (s[0] == '[') {
		const char *e = strchr(s, ']');
		if (!e || e[1] != ':')
			return pilot_error_set(PILOT_EINVALID, "invalid listen address '%s': expected [ADDR]:PORT", s);
		host = pilot_xstrndup(s + 1, (size_t)(e - s - 1));
		port = e + 2;
	} else {
		const char *c = strrchr(s, ':');
		if (!c)
			return pilot_error_set(PILOT_EINVALID, "invalid listen address '%s': expected ADDR:PORT", s);
		host = pilot_xstrndup(s, (size_t)(c - s));
		port = c + 1;
	}
	int64_t p;
	if (pilot_parse_int64(port, 0, 65535, &p) < 0)
		return pilot_error_prefix(PILOT_EINVALID, "invalid listen address '%s'", s);
	memset(ss, 0, sizeof(*ss));
	struct sockaddr_in *a4 = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)ss;
	if (!*host || !strcmp(host, "*")) {
		a4->sin_family = AF_INET;
		a4->sin_addr.s_addr = htonl(INADDR_ANY);
		a4->sin_port = htons((uint16_t)p);
		*len = sizeof(*a4);
		*v6 = false;
	} else if (inet_pton(AF_INET, !strcmp(host, "localhost") ? "127.0.0.1" : host, &a4->sin_addr) == 1) {
		a4->sin_family = AF_INET;
		a4->sin_port = htons((uint16_t)p);
		*len = sizeof(*a4);
		*v6 = false;
	} else if (inet_pton(AF_INET6, host, &a6->sin6_addr) == 1) {
		a6->sin6_family = AF_INET6;
		a6->sin6_port = htons((uint16_t)p);
		*len = sizeof(*a6);
		*v6 = true;
	} else {
		return pilot_error_set(PILOT_EINVALID, "invalid listen address '%s': '%s' is not an IP address", s, host);
	}
	return 0;
}

static void defaults(struct pilot_server_options *o)
{
	if (!o->listen || !*o->listen)
		o->listen = PILOT_SERVER_DEFAULT_LISTEN;
	if (o->threads <= 0)
		o->threads = DEF_THREADS;
	if (o->max_connections <= 0)
		o->max_connections = DEF_MAX_CONNECTIONS;
	if (o->max_conns_per_ip == 0)
		o->max_conns_per_ip = DEF_PER_IP;
	if (o->connection_timeout_ms <= 0)
		o->connection_timeout_ms = DEF_CONN_TIMEOUT_MS;
	if (o->request_timeout_ms <= 0)
		o->request_timeout_ms = DEF_REQUEST_TIMEOUT_MS;
	if (o->upload_timeout_ms <= 0)
		o->upload_timeout_ms = DEF_UPLOAD_TIMEOUT_MS;
	if (o->max_wait_ms <= 0)
		o->max_wait_ms = DEF_MAX_WAIT_MS;
	if (o->reap_interval_ms <= 0) {
		const char *v = getenv("PILOT_REAP_INTERVAL");
		int64_t ms;
		o->reap_interval_ms = v && *v && pilot_parse_duration(v, &ms) == 0 && ms > 0 ? ms : DEF_REAP_INTERVAL_MS;
	}
	if (o->keepalive_ms <= 0)
		o->keepalive_ms = DEF_KEEPALIVE_MS;
	if (!o->max_json_body)
		o->max_json_body = DEF_MAX_JSON;
	if (!o->max_log_chunk)
		o->max_log_chunk = DEF_MAX_LOG;
	if (!o->max_bundle_size)
		o->max_bundle_size = DEF_MAX_BUNDLE;
	if (!o->max_artifact_size)
		o->max_artifact_size = DEF_MAX_ARTIFACT;
}

static void server_free(struct server *srv)
{
	if (!srv)
		return;
	fleet_free(srv);
	pilot_api_close(srv->api);
	for (size_t i = 0; i < srv->nbindings; i++)
		free(srv->bindings[i].agent);
	free(srv->bindings);
	free(srv->m.routes);
	free(srv->data_dir);
	free(srv->upload_dir);
	free(srv->url);
	if (srv->tls_key_pem)
		explicit_bzero(srv->tls_key_pem, strlen(srv->tls_key_pem));
	free(srv->tls_key_pem);
	free(srv->tls_cert_pem);
	if (srv->lock_fd >= 0)
		close(srv->lock_fd);
	pthread_mutex_destroy(&srv->lock);
	pthread_mutex_destroy(&srv->bind_lock);
	pthread_cond_destroy(&srv->cond);
	pthread_cond_destroy(&srv->idle_cond);
	free(srv);
}

static int read_pem(const char *path, char **out)
{
	struct pilot_buf b = PILOT_BUF_INIT;
	int r = pilot_read_file(path, 1024 * 1024, &b);
	if (r < 0) {
		pilot_buf_free(&b);
		return pilot_error_prefix(r, "cannot read '%s'", path);
	}
	*out = pilot_buf_steal(&b);
	return 0;
}

/* One server per data directory: a second one would not see the first one's waiting
 * agents, so submits through it would not wake them. The lock lives as long as the
 * server (the kernel drops it if the process dies). */
static int lock_data_dir(struct server *srv)
{
	_cleanup_free_ char *lock = pilot_path_join(srv->data_dir, "server.lock");
	srv->lock_fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (srv->lock_fd < 0)
		return pilot_error_errno(PILOT_EIO, errno, "cannot open '%s'", lock);
	if (flock(srv->lock_fd, LOCK_EX | LOCK_NB) < 0)
		return errno == EWOULDBLOCK ?
			       pilot_error_set(PILOT_EUNAVAILABLE, "another pilot server is running on '%s'",
					       srv->data_dir) :
			       pilot_error_errno(PILOT_EIO, errno, "cannot lock '%s'", lock);
	return 0;
}

int pilot_server_start(const struct pilot_server_options *o, struct pilot_server **out)
{
	struct server *srv = pilot_xcalloc(1, sizeof(*srv));
	int r;
	srv->lock_fd = -1;
	srv->opt = *o;
	defaults(&srv->opt);
	pthread_mutex_init(&srv->lock, NULL);
	pthread_mutex_init(&srv->bind_lock, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&srv->cond, &ca);
	pthread_cond_init(&srv->idle_cond, &ca);
	pthread_condattr_destroy(&ca);
	srv->claims.next = srv->claims.prev = &srv->claims;
	srv->others.next = srv->others.prev = &srv->others;
	srv->m.routes = pilot_xcalloc(PILOT_NROUTES + 1, sizeof(*srv->m.routes));
	srv->started_ms = pilot_now_ms();

	struct sockaddr_storage ss;
	socklen_t sslen = 0;
	bool v6 = false;
	if ((r = parse_listen(srv->opt.listen, &ss, &sslen, &v6)) < 0)
		goto fail;
	if ((r = fleet_new(srv, srv->opt.pools_json)) < 0) {
		pilot_error_prefix(r, "server settings");
		goto fail;
	}
	if (!!srv->opt.tls_cert != !!srv->opt.tls_key) {
		r = pilot_error_set(PILOT_EINVALID, "HTTPS needs both a certificate (tls_cert) and a key (tls_key)");
		goto fail;
	}
	if (srv->opt.tls_cert) {
		if (MHD_is_feature_supported(MHD_FEATURE_TLS) != MHD_YES) {
			r = pilot_error_set(PILOT_EUNAVAILABLE, "this libmicrohttpd was built without TLS support");
			goto fail;
		}
		if ((r = read_pem(srv->opt.tls_cert, &srv->tls_cert_pem)) < 0 ||
		    (r = read_pem(srv->opt.tls_key, &srv->tls_key_pem)) < 0)
			goto fail;
	}

	srv->data_dir = srv->opt.data_dir ? pilot_xstrdup(srv->opt.data_dir) : pilot_server_default_data_dir();
	if ((r = pilot_mkdir_p(srv->data_dir, 0700)) < 0) {
		pilot_error_prefix(r, "cannot create data directory '%s'", srv->data_dir);
		goto fail;
	}
	if ((r = lock_data_dir(srv)) < 0)
		goto fail;
	srv->upload_dir = pilot_path_join(srv->data_dir, "uploads");
	if ((r = pilot_mkdir_p(srv->upload_dir, 0700)) < 0)
		goto fail;
	/* The lease TTL as the store will settle it (flag, PILOT_LEASE_TTL, default) is
	 * also the delay before the first reaping: agents get one TTL to reach a
	 * restarted server before their attempts count as lost. */
	int64_t ttl = srv->opt.lease_ttl_ms;
	const char *env_ttl = getenv("PILOT_LEASE_TTL");
	if (ttl <= 0 && (!env_ttl || !*env_ttl || pilot_parse_duration(env_ttl, &ttl) < 0 || ttl <= 0))
		ttl = 60000;
	pilot_error_clear();
	struct pilot_local_options lo = {
		.lease_ttl_ms = ttl,
		.reap_delay_ms = ttl,
		.no_auto_reap = true,
		.actor = "pilot",
		.quick_check = 1,
	};
	if ((r = pilot_api_open_local(srv->data_dir, &lo, &srv->api)) < 0)
		goto fail;
	srv->st = pilot_api_local_store(srv->api);
	srv->opt.lease_ttl_ms = pilot_store_options(srv->st)->lease_ttl_ms;

	unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG;
	if (v6)
		flags |= MHD_USE_IPv6;
	if (srv->tls_cert_pem)
		flags |= MHD_USE_TLS;
	struct MHD_OptionItem tls_opts[] = {
		{ MHD_OPTION_HTTPS_MEM_CERT, 0, srv->tls_cert_pem },
		{ MHD_OPTION_HTTPS_MEM_KEY, 0, srv->tls_key_pem },
		{ MHD_OPTION_END, 0, NULL },
	};
	srv->mhd = MHD_start_daemon(
		flags, 0, NULL, NULL, on_request, srv, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
		MHD_OPTION_THREAD_POOL_SIZE, (unsigned)srv->opt.threads, MHD_OPTION_CONNECTION_LIMIT,
		(unsigned)srv->opt.max_connections, MHD_OPTION_PER_IP_CONNECTION_LIMIT,
		(unsigned)(srv->opt.max_conns_per_ip < 0 ? 0 : srv->opt.max_conns_per_ip), MHD_OPTION_CONNECTION_TIMEOUT,
		(unsigned)((srv->opt.connection_timeout_ms + 999) / 1000), MHD_OPTION_NOTIFY_COMPLETED, on_completed, srv,
		MHD_OPTION_EXTERNAL_LOGGER, mhd_logger, srv, MHD_OPTION_LISTEN_BACKLOG_SIZE, 4096u,
		MHD_OPTION_ARRAY, srv->tls_cert_pem ? tls_opts : &tls_opts[2], MHD_OPTION_END);
	if (!srv->mhd) {
		r = pilot_error_set(PILOT_EUNAVAILABLE, "cannot listen on '%s': the address is in use or not available",
				    srv->opt.listen);
		goto fail;
	}
	const union MHD_DaemonInfo *di = MHD_get_daemon_info(srv->mhd, MHD_DAEMON_INFO_BIND_PORT);
	unsigned port = di ? di->port : 0;
	char host[INET6_ADDRSTRLEN] = "127.0.0.1";
	if (v6)
		inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&ss)->sin6_addr, host, sizeof(host));
	else if (((struct sockaddr_in *)&ss)->sin_addr.s_addr != htonl(INADDR_ANY))
		inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, host, sizeof(host));
	srv->url = pilot_xasprintf("%s://%s%s%s:%u", srv->tls_cert_pem ? "https" : "http", v6 ? "[" : "", host,
				   v6 ? "]" : "", port);
	if ((r = notify_start(srv)) < 0)
		goto fail;
	if ((r = fleet_start(srv)) < 0) {
		notify_stop(srv);
		goto fail;
	}
	*out = (struct pilot_server *)srv;
	return 0;
fail:
	if (srv->mhd)
		MHD_stop_daemon(srv->mhd);
	server_free(srv);
	return r;
}

const char *pilot_server_url(const struct pilot_server *s)
{
	return ((const struct server *)s)->url;
}

void pilot_server_stop(struct pilot_server *s, int64_t grace_ms)
{
	struct server *srv = (struct server *)s;
	if (!srv)
		return;
	pthread_mutex_lock(&srv->lock);
	srv->stopping = true;
	pthread_mutex_unlock(&srv->lock);
	int lfd = MHD_quiesce_daemon(srv->mhd);
	if (lfd >= 0)
		close(lfd);
	server_wake_all(srv, WAKE_SHUTDOWN);
	struct timespec until;
	clock_gettime(CLOCK_MONOTONIC, &until);
	until.tv_sec += grace_ms / 1000;
	until.tv_nsec += (grace_ms % 1000) * 1000000L;
	if (until.tv_nsec >= 1000000000L) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&srv->lock);
	while (srv->active > 0) {
		if (pthread_cond_timedwait(&srv->idle_cond, &srv->lock, &until) == ETIMEDOUT)
			break;
		/* A request that came in on a kept-alive connection may have waited after the
		 * first wake-up: wake again, under the same rule. */
		pthread_mutex_unlock(&srv->lock);
		server_wake_all(srv, WAKE_SHUTDOWN);
		pthread_mutex_lock(&srv->lock);
	}
	unsigned left = srv->active;
	pthread_mutex_unlock(&srv->lock);
	if (left)
		pilot_log(PILOT_LOG_WARN, "%u request%s still running after the grace period; closing", left,
			  left == 1 ? "" : "s");
	fleet_stop(srv);
	notify_stop(srv);
	server_wake_all(srv, WAKE_SHUTDOWN);
	MHD_stop_daemon(srv->mhd);
	server_free(srv);
}
