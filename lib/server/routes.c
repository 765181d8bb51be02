/* The routes of the REST API (design §6, documented in pilot-api(7)): each maps one
 * request onto one api call on the server's store and the answer back onto HTTP. A
 * handler returns 1 when it queued a response or suspended the connection, 0 to drop
 * the connection. Long-polling handlers run again when their connection is resumed and
 * pick up where they left off (rq->dispatched, rq->w.woke). */
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"
#include "pilot/version.h"

#define R(x) ROUTE_RESULT(x)
#define LEASE_HEADER "Pilot-Lease"
#define DEF_LOG_MAX (1024 * 1024)

static int bad_request(struct req *rq, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static const char *actor(struct req *rq)
{
	return rq->token_name ? rq->token_name : "anonymous";
}

/* Who does it: the token's name, or for an admin token the "actor" of an optional
 * JSON body (a tool acting for its users). NULL with a response queued. */
static const char *actor_of_body(struct req *rq)
{
	if (!rq->body.len || !(rq->scopes & PILOT_SCOPE_ADMIN))
		return actor(rq);
	json_error_t e;
	rq->parsed = json_loadb(rq->body.data, rq->body.len, 0, &e);
	if (!json_is_object(rq->parsed)) {
		bad_request(rq, "invalid JSON body: expected an object such as {\"actor\": \"NAME\"}");
		return NULL;
	}
	const char *a = json_string_value(json_object_get(rq->parsed, "actor"));
	return a && *a ? a : actor(rq);
}

static int bad_request(struct req *rq, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	pilot_error_setv(PILOT_EINVALID, fmt, ap);
	va_end(ap);
	return R(respond_last_error(rq));
}

/* An integer query argument; def when absent. -1 with a response queued when bad. */
static int query_int(struct req *rq, const char *name, int64_t min, int64_t max, int64_t def, int64_t *out)
{
	const char *v = query(rq, name);
	*out = def;
	if (!v || !*v)
		return 0;
	if (pilot_parse_int64(v, min, max, out) < 0) {
		pilot_error_prefix(PILOT_EINVALID, "query argument '%s'", name);
		respond_last_error(rq);
		return -1;
	}
	return 0;
}

/* An integer query argument clamped to [min, max] rather than refused past max, as
 * the api clamps limits. */
static int query_clamped(struct req *rq, const char *name, int64_t min, int64_t max, int64_t def, int64_t *out)
{
	if (query_int(rq, name, min, INT64_MAX, def, out) < 0)
		return -1;
	if (*out > max)
		*out = max;
	return 0;
}

/* ?wait=30s (bare numbers are seconds), capped by max_wait. */
static int query_wait(struct req *rq, int64_t *ms)
{
	const char *v = query(rq, "wait");
	*ms = 0;
	if (!v || !*v)
		return 0;
	if (pilot_parse_duration(v, ms) < 0) {
		pilot_error_prefix(PILOT_EINVALID, "query argument 'wait'");
		respond_last_error(rq);
		return -1;
	}
	if (*ms < 0)
		*ms = 0;
	if (*ms > rq->srv->opt.max_wait_ms)
		*ms = rq->srv->opt.max_wait_ms;
	return 0;
}

/* The body as JSON (parsed once, kept in rq->parsed). NULL with a response queued. */
static json_t *body_json(struct req *rq)
{
	if (rq->parsed)
		return rq->parsed;
	json_error_t e;
	if (!rq->body.len) {
		respond_error(rq, PILOT_EINVALID, "missing JSON body");
		return NULL;
	}
	rq->parsed = json_loadb(rq->body.data, rq->body.len, JSON_REJECT_DUPLICATES, &e);
	if (!rq->parsed) {
		pilot_error_set(PILOT_EINVALID, "invalid JSON body: line %d, column %d: %s", e.line, e.column, e.text);
		respond_last_error(rq);
		return NULL;
	}
	return rq->parsed;
}

/* The body decoded with the route's request codec into out. -1 with a response
 * queued. */
static int body_model(struct req *rq, void *out)
{
	json_t *j = body_json(rq);
	if (!j)
		return -1;
	if (rq->route->request->from_json(j, out) < 0) {
		respond_last_error(rq);
		return -1;
	}
	return 0;
}

/* Answer with value encoded by the route's answer codec, which then clears it. */
static int respond_model(struct req *rq, unsigned status, void *value)
{
	const struct pilot_codec *c = rq->route->response;
	json_t *j = c->to_json(value);
	c->clear(value);
	return R(respond_json(rq, status, j));
}

static const char *lease_of(struct req *rq)
{
	const char *l = header(rq, LEASE_HEADER);
	if (!l || !*l) {
		respond_error(rq, PILOT_EINVALID, "missing lease: send the claim's lease token in the 'Pilot-Lease' header");
		return NULL;
	}
	return l;
}

static int attempt_arg(struct req *rq, int *attempt)
{
	int64_t a;
	if (query_int(rq, "attempt", 0, 1000000, 0, &a) < 0)
		return -1;
	*attempt = (int)a;
	return 0;
}

static void add_header_int(struct MHD_Response *resp, const char *name, int64_t v)
{
	char b[32];
	snprintf(b, sizeof(b), "%lld", (long long)v);
	MHD_add_response_header(resp, name, b);
}

/* A file to send: the fd is handed to MHD. */
static struct MHD_Response *fd_response(int fd, uint64_t *size)
{
	struct stat sb;
	if (fstat(fd, &sb) < 0) {
		close(fd);
		return NULL;
	}
	*size = (uint64_t)sb.st_size;
	struct MHD_Response *resp = MHD_create_response_from_fd64((uint64_t)sb.st_size, fd);
	if (!resp)
		close(fd);
	return resp;
}

/* ---- plain pages ---- */

/* The dashboard's files, served with a policy that lets the page run only its own
 * script and talk only to this server. */
static int respond_dashboard_file(struct req *rq, const char *name)
{
	for (size_t i = 0; i < pilot_dashboard_nfiles; i++) {
		const struct pilot_asset *a = &pilot_dashboard_files[i];
		if (strcmp(a->name, name))
			continue;
		struct MHD_Response *resp =
			MHD_create_response_from_buffer(a->size, (void *)a->data, MHD_RESPMEM_PERSISTENT);
		if (!resp)
			return -1;
		MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, a->type);
		MHD_add_response_header(resp, "Content-Security-Policy",
					"default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
					"connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'");
		MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
		MHD_add_response_header(resp, "X-Frame-Options", "DENY");
		MHD_add_response_header(resp, "Referrer-Policy", "no-referrer");
		MHD_add_response_header(resp, "Cache-Control", "no-cache");
		return R(respond(rq, MHD_HTTP_OK, resp, a->size));
	}
	return R(respond_error(rq, PILOT_ENOTFOUND, "no such file of the dashboard"));
}

static int h_index(struct req *rq)
{
	return respond_dashboard_file(rq, "index.html");
}

static int h_dashboard_file(struct req *rq)
{
	return respond_dashboard_file(rq, rq->params[0]);
}

static int h_healthz(struct req *rq)
{
	if (rq->srv->stopping)
		return R(respond_text(rq, MHD_HTTP_SERVICE_UNAVAILABLE, "text/plain", "stopping\n"));
	return R(respond_text(rq, MHD_HTTP_OK, "text/plain", "ok\n"));
}

static int h_metrics(struct req *rq)
{
	struct pilot_buf b = PILOT_BUF_INIT;
	if (metrics_render(rq->srv, &b) < 0) {
		pilot_buf_free(&b);
		return R(respond_last_error(rq));
	}
	size_t n = b.len;
	char *data = pilot_buf_steal(&b);
	struct MHD_Response *resp = MHD_create_response_from_buffer(n, data, MHD_RESPMEM_MUST_FREE);
	if (resp)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8");
	else
		free(data);
	return R(respond(rq, MHD_HTTP_OK, resp, n));
}

/* ---- bundles ---- */

static int check_sha(struct req *rq, const char *sha)
{
	if (!pilot_sha256_valid(sha)) {
		bad_request(rq, "invalid bundle name '%s': expected 64 lowercase hex digits (its sha256)", sha);
		return -1;
	}
	return 0;
}

static int h_bundle_head(struct req *rq)
{
	const char *sha = rq->params[0];
	if (check_sha(rq, sha) < 0)
		return 1;
	int r = pilot_api_bundle_has(rq->srv->api, sha);
	if (r < 0)
		return R(respond_last_error(rq));
	return R(respond_empty(rq, r ? MHD_HTTP_OK : MHD_HTTP_NOT_FOUND));
}

static int h_bundle_get(struct req *rq)
{
	const char *sha = rq->params[0];
	if (check_sha(rq, sha) < 0)
		return 1;
	int fd = -1;
	if (pilot_api_bundle_get(rq->srv->api, sha, &fd) < 0)
		return R(respond_last_error(rq));
	uint64_t size = 0;
	struct MHD_Response *resp = fd_response(fd, &size);
	if (resp)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/gzip");
	return R(respond(rq, MHD_HTTP_OK, resp, size));
}

static void digest_hex(struct req *rq, char out[65])
{
	unsigned char md[32];
	unsigned int n = 0;
	EVP_DigestFinal_ex(rq->md, md, &n);
	for (unsigned i = 0; i < 32; i++)
		snprintf(out + 2 * i, 3, "%02x", md[i]);
}

static int h_bundle_put(struct req *rq)
{
	const char *sha = rq->params[0];
	if (check_sha(rq, sha) < 0)
		return 1;
	char got[65];
	digest_hex(rq, got);
	if (strcmp(got, sha)) {
		_cleanup_free_ char *m = pilot_xasprintf("bundle '%s' does not match its name: the bytes received hash to '%s'",
							 sha, got);
		return R(respond_error_status(rq, MHD_HTTP_UNPROCESSABLE_CONTENT, PILOT_EINVALID, m, NULL));
	}
	int had = pilot_api_bundle_has(rq->srv->api, sha);
	if (had < 0)
		return R(respond_last_error(rq));
	if (lseek(rq->body_fd, 0, SEEK_SET) < 0 || pilot_api_bundle_put(rq->srv->api, sha, rq->body_fd) < 0)
		return R(respond_last_error(rq));
	json_t *j = json_pack("{s:s,s:I}", "sha256", sha, "size", (json_int_t)rq->body_size);
	return R(respond_json(rq, had ? MHD_HTTP_OK : MHD_HTTP_CREATED, j));
}

/* ---- runs ---- */

static void notify_run(struct server *srv, const struct pilot_run *run, unsigned what)
{
	/* Claimers are woken when the store queued a run since last time: this one, or
	 * runs that waited for it to end. */
	uint64_t gen = pilot_store_queue_generation(srv->st);
	if (__atomic_exchange_n(&srv->seen_queue_gen, gen, __ATOMIC_RELAXED) != gen)
		what |= NOTIFY_QUEUE;
	if (run->state == PILOT_RUN_WAITING)
		server_notify_due(srv, run->not_before_ms);
	server_notify(srv, what);
}

/* A submit's Idempotency-Key header, and its submitter: the token's name unless an
 * admin's token names one. */
static void submit_from(struct req *rq, struct pilot_submit_request *req)
{
	const char *key = header(rq, "Idempotency-Key");
	if (key && *key)
		req->idempotency_key = key;
	if (!(rq->scopes & PILOT_SCOPE_ADMIN) || !req->submitter || !*req->submitter)
		req->submitter = actor(rq);
}

/* A failed submit: a body that decoded but asks for something invalid (a spec no agent
 * could run, a bad name), or an idempotency key reused for another payload, is 422. */
static int submit_failed(struct req *rq, int r)
{
	if (r == PILOT_ECONFLICT || r == PILOT_EINVALID)
		return R(respond_error_status(rq, MHD_HTTP_UNPROCESSABLE_CONTENT, r, pilot_error_last(), NULL));
	return R(respond_last_error(rq));
}

/* What was submitted (j, stolen), at loc: 201, or 200 with Pilot-Replayed for a replay. */
static int submitted(struct req *rq, bool replay, const char *loc, json_t *j)
{
	const char *const headers[] = { MHD_HTTP_HEADER_LOCATION, loc, "Pilot-Replayed", replay ? "true" : NULL, NULL };
	return R(respond_json_headers(rq, replay ? MHD_HTTP_OK : MHD_HTTP_CREATED, j, headers));
}

static int h_submit(struct req *rq)
{
	struct pilot_submit_request req;
	if (body_model(rq, &req) < 0)
		return 1;
	submit_from(rq, &req);
	struct pilot_run run = { 0 };
	int r = pilot_api_submit(rq->srv->api, &req, &run);
	pilot_submit_request_clear(&req);
	if (r < 0)
		return submit_failed(rq, r);
	if (r == 0)
		notify_run(rq->srv, &run, NOTIFY_EVENT);
	_cleanup_free_ char *loc = pilot_xasprintf("/v1/runs/%s", run.id);
	json_t *j = pilot_run_to_json(&run);
	pilot_run_clear(&run);
	return submitted(rq, r == 1, loc, j);
}

static int h_submit_array(struct req *rq)
{
	struct pilot_array_request req;
	if (body_model(rq, &req) < 0)
		return 1;
	submit_from(rq, &req.base);
	/* What a waiter would need for the claimers and the due-timer to hear of it. */
	struct pilot_run probe = { .state = req.base.not_before_ms > pilot_now_ms() ? PILOT_RUN_WAITING : PILOT_RUN_QUEUED,
				   .not_before_ms = req.base.not_before_ms };
	struct pilot_array a = { 0 };
	int r = pilot_api_submit_array(rq->srv->api, &req, &a);
	pilot_array_request_clear(&req);
	if (r < 0)
		return submit_failed(rq, r);
	if (r == 0)
		notify_run(rq->srv, &probe, NOTIFY_EVENT);
	_cleanup_free_ char *loc = pilot_xasprintf("/v1/runs?array=%s", a.id);
	json_t *j = pilot_array_to_json(&a);
	pilot_array_clear(&a);
	return submitted(rq, r == 1, loc, j);
}

static int h_submit_pipeline(struct req *rq)
{
	struct pilot_pipeline_request req;
	if (body_model(rq, &req) < 0)
		return 1;
	/* The header's key and the caller as submitter, as a run's (submit_from). */
	struct pilot_submit_request who = { .idempotency_key = req.idempotency_key, .submitter = req.submitter };
	submit_from(rq, &who);
	req.idempotency_key = who.idempotency_key;
	req.submitter = who.submitter;
	struct pilot_run probe = { .state = PILOT_RUN_QUEUED };
	for (size_t i = 0; i < req.njobs; i++)
		if (req.jobs[i].run.not_before_ms > probe.not_before_ms) {
			probe.state = PILOT_RUN_WAITING;
			probe.not_before_ms = req.jobs[i].run.not_before_ms;
		}
	struct pilot_array a = { 0 };
	int r = pilot_api_submit_pipeline(rq->srv->api, &req, &a);
	pilot_pipeline_request_clear(&req);
	if (r < 0)
		return submit_failed(rq, r);
	if (r == 0)
		notify_run(rq->srv, &probe, NOTIFY_EVENT);
	_cleanup_free_ char *loc = pilot_xasprintf("/v1/runs?array=%s", a.id);
	json_t *j = pilot_array_to_json(&a);
	pilot_array_clear(&a);
	return submitted(rq, r == 1, loc, j);
}

static int h_list_runs(struct req *rq)
{
	struct pilot_run_filter f = { 0 };
	const char *state = query(rq, "state");
	if (state && *state && pilot_run_states_parse(state, &f.states) < 0)
		return R(respond_last_error(rq));
	const char *name = query(rq, "name"), *array = query(rq, "array");
	f.name = name && *name ? name : NULL;
	f.array = array && *array ? array : NULL;
	const char *after = query(rq, "after");
	f.after = after && *after ? after : NULL;
	int64_t limit;
	if (query_clamped(rq, "limit", 0, 1000, 0, &limit) < 0)
		return 1;
	f.limit = (size_t)limit;
	const char *since = query(rq, "since");
	if (since && *since) {
		int64_t v;
		/* Milliseconds since the epoch, or a duration meaning "that long ago". */
		if (pilot_parse_int64(since, 0, INT64_MAX, &v) == 0 && v > 1000000000)
			f.since_ms = v;
		else if (pilot_parse_duration(since, &v) == 0)
			f.since_ms = pilot_now_ms() - v;
		else
			return bad_request(rq, "query argument 'since': expected milliseconds since the epoch or a "
					       "duration such as '2h', got '%s'",
					   since);
	}
	pilot_error_clear();
	struct pilot_run_list l = { 0 };
	if (pilot_api_list_runs(rq->srv->api, &f, &l) < 0)
		return R(respond_last_error(rq));
	return respond_model(rq, MHD_HTTP_OK, &l);
}

static int h_get_run(struct req *rq)
{
	struct pilot_run run = { 0 };
	if (pilot_api_get_run(rq->srv->api, rq->params[0], &run) < 0)
		return R(respond_last_error(rq));
	return respond_model(rq, MHD_HTTP_OK, &run);
}

/* The grace of a cancel's optional body {"grace_ms": N}: absent or null leaves it to
 * the agent. -2 after answering a bad body. */
static int64_t body_grace(struct req *rq)
{
	if (!rq->body.len)
		return PILOT_CANCEL_GRACE_AGENT;
	json_t *b = body_json(rq);
	if (!b)
		return -2;
	if (!json_is_object(b)) {
		bad_request(rq, "invalid JSON body: expected an object such as {\"grace_ms\": 2000}");
		return -2;
	}
	json_t *g = json_object_get(b, "grace_ms");
	if (!g || json_is_null(g))
		return PILOT_CANCEL_GRACE_AGENT;
	if (!json_is_integer(g) || json_integer_value(g) < 0 || json_integer_value(g) > PILOT_CANCEL_GRACE_MAX_MS) {
		bad_request(rq, "body field 'grace_ms': expected milliseconds from 0 to %lld",
			    (long long)PILOT_CANCEL_GRACE_MAX_MS);
		return -2;
	}
	return json_integer_value(g);
}

/* The cancel's optional body: {"grace_ms": N} (and "actor" for an admin). */
static int h_cancel(struct req *rq)
{
	const char *who = actor_of_body(rq);
	if (!who)
		return 1;
	int64_t grace_ms = body_grace(rq);
	if (grace_ms == -2)
		return 1;
	struct pilot_run run = { 0 };
	int r = pilot_api_cancel(rq->srv->api, rq->params[0], who, grace_ms, &run);
	if (r < 0)
		return R(respond_last_error(rq));
	if (r == 0)
		notify_run(rq->srv, &run, NOTIFY_EVENT);
	const char *const headers[] = { "Pilot-Unchanged", r == 1 ? "true" : NULL, NULL };
	json_t *j = pilot_run_to_json(&run);
	pilot_run_clear(&run);
	return R(respond_json_headers(rq, MHD_HTTP_OK, j, headers));
}

static int h_get_array(struct req *rq)
{
	struct pilot_array a = { 0 };
	if (pilot_api_get_array(rq->srv->api, rq->params[0], &a) < 0)
		return R(respond_last_error(rq));
	return respond_model(rq, MHD_HTTP_OK, &a);
}

static int h_cancel_array(struct req *rq)
{
	const char *who = actor_of_body(rq);
	if (!who)
		return 1;
	int64_t grace_ms = body_grace(rq);
	if (grace_ms == -2)
		return 1;
	struct pilot_array a = { 0 };
	if (pilot_api_cancel_array(rq->srv->api, rq->params[0], who, grace_ms, &a) < 0)
		return R(respond_last_error(rq));
	/* Canceled runs end the waiters of others (the claimers learn of the canceling
	 * ones by their heartbeats). */
	struct pilot_run probe = { .state = PILOT_RUN_CANCELED };
	notify_run(rq->srv, &probe, NOTIFY_EVENT);
	return respond_model(rq, MHD_HTTP_OK, &a);
}

static int h_retry_array(struct req *rq)
{
	const char *who = actor_of_body(rq);
	if (!who)
		return 1;
	struct pilot_array a = { 0 };
	if (pilot_api_retry_array(rq->srv->api, rq->params[0], who, &a) < 0)
		return R(respond_last_error(rq));
	struct pilot_run probe = { .state = PILOT_RUN_QUEUED };
	notify_run(rq->srv, &probe, NOTIFY_EVENT);
	return respond_model(rq, a.changed ? MHD_HTTP_CREATED : MHD_HTTP_OK, &a);
}

static int h_retry(struct req *rq)
{
	const char *who = actor_of_body(rq);
	if (!who)
		return 1;
	struct pilot_run run = { 0 };
	if (pilot_api_retry(rq->srv->api, rq->params[0], who, &run) < 0)
		return R(respond_last_error(rq));
	notify_run(rq->srv, &run, NOTIFY_EVENT);
	return respond_model(rq, MHD_HTTP_CREATED, &run);
}

/* ---- logs ---- */

static int send_chunk(struct req *rq, struct pilot_log_chunk *c)
{
	size_t n = c->data.len;
	char *data = pilot_buf_steal(&c->data);
	struct MHD_Response *resp = MHD_create_response_from_buffer(n, data, MHD_RESPMEM_MUST_FREE);
	if (!resp) {
		free(data);
		pilot_log_chunk_clear(c);
		return 0;
	}
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/octet-stream");
	add_header_int(resp, "Pilot-Attempt", c->attempt);
	add_header_int(resp, "Pilot-Offset", c->offset);
	add_header_int(resp, "Pilot-Next-Offset", c->next_offset);
	add_header_int(resp, "Pilot-Latest-Attempt", c->latest_attempt);
	MHD_add_response_header(resp, "Pilot-Complete", c->complete ? "true" : "false");
	MHD_add_response_header(resp, "Pilot-Run-State", pilot_run_state_name(c->run_state));
	pilot_log_chunk_clear(c);
	return R(respond(rq, MHD_HTTP_OK, resp, n));
}

static int h_logs(struct req *rq)
{
	struct server *srv = rq->srv;
	int64_t offset, max;
	if (query_int(rq, "offset", 0, INT64_MAX, 0, &offset) < 0 ||
	    query_clamped(rq, "max", 1, (int64_t)srv->opt.max_log_chunk, DEF_LOG_MAX, &max) < 0)
		return 1;
	if (!rq->dispatched) {
		int64_t wait;
		if (attempt_arg(rq, &rq->log_attempt) < 0 || query_wait(rq, &wait) < 0)
			return 1;
		rq->wait_deadline = wait > 0 ? pilot_mono_ms() + wait : 0;
		rq->dispatched = true;
	}
	for (;;) {
		enum wake_reason woke = rq->w.woke;
		rq->w.woke = WAKE_NONE;
		uint64_t gen = server_change_gen(srv);
		struct pilot_log_request q = {
			.run = rq->params[0], .attempt = rq->log_attempt, .offset = offset, .max_bytes = (size_t)max,
		};
		struct pilot_log_chunk c = { 0 };
		if (pilot_api_read_logs(srv->api, &q, &c) < 0)
			return R(respond_last_error(rq));
		/* Pin the attempt once there is one, so the offset keeps meaning. */
		if (rq->log_attempt == 0 && c.attempt > 0)
			rq->log_attempt = c.attempt;
		bool done = c.data.len > 0 || c.complete || c.latest_attempt > c.attempt ||
			    (pilot_run_state_terminal(c.run_state) && c.attempt == 0);
		if (done || !rq->wait_deadline || woke == WAKE_TIMEOUT || woke == WAKE_SHUTDOWN ||
		    pilot_mono_ms() >= rq->wait_deadline)
			return send_chunk(rq, &c);
		pilot_log_chunk_clear(&c);
		if (server_wait(srv, rq, WAIT_LOG, rq->wait_deadline, gen))
			return 1;
	}
}

/* ---- events ---- */

static bool wants_json(struct req *rq)
{
	const char *f = query(rq, "format");
	if (f && *f)
		return !strcmp(f, "json");
	const char *acc = header(rq, MHD_HTTP_HEADER_ACCEPT);
	return acc && strstr(acc, "application/json") && !strstr(acc, "text/event-stream");
}

static int events_json(struct req *rq, int64_t after, int64_t limit)
{
	struct server *srv = rq->srv;
	for (;;) {
		enum wake_reason woke = rq->w.woke;
		rq->w.woke = WAKE_NONE;
		uint64_t gen = server_change_gen(srv);
		struct pilot_event_filter f = {
			.run = rq->sse_run[0] ? rq->sse_run : NULL, .after_seq = after, .limit = (size_t)limit,
		};
		struct pilot_event_list l = { 0 };
		if (pilot_api_list_events(srv->api, &f, 0, &l) < 0)
			return R(respond_last_error(rq));
		if (l.n > 0 || !rq->wait_deadline || woke == WAKE_TIMEOUT || woke == WAKE_SHUTDOWN ||
		    pilot_mono_ms() >= rq->wait_deadline) {
			json_t *j = pilot_event_list_to_json(&l);
			pilot_event_list_clear(&l);
			return R(respond_json(rq, MHD_HTTP_OK, j));
		}
		pilot_event_list_clear(&l);
		if (server_wait(srv, rq, WAIT_EVENTS, rq->wait_deadline, gen))
			return 1;
	}
}

static void sse_format(struct req *rq, const struct pilot_event_list *l)
{
	for (size_t i = 0; i < l->n; i++) {
		const struct pilot_event *e = &l->items[i];
		json_t *j = pilot_event_to_json(e);
		char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;
		json_decref(j);
		if (!s)
			continue;
		pilot_buf_printf(&rq->sse_out, "id: %lld\nevent: %s\ndata: %s\n\n", (long long)e->seq,
				 e->type ? e->type : "event", s);
		free(s);
		/* A run's own stream ends with the run; watchers then have all of it. */
		if (rq->sse_run[0] && pilot_run_state_terminal(e->state))
			rq->sse_end = true;
	}
	if (l->last_seq > rq->sse_after)
		rq->sse_after = l->last_seq;
}

static ssize_t sse_reader(void *cls, uint64_t pos, char *buf, size_t max)
{
	struct req *rq = cls;
	struct server *srv = rq->srv;
	(void)pos;
	for (;;) {
		if (rq->sse_out.len) {
			size_t n = rq->sse_out.len < max ? rq->sse_out.len : max;
			memcpy(buf, rq->sse_out.data, n);
			pilot_buf_consume(&rq->sse_out, n);
			rq->bytes += n;
			return (ssize_t)n;
		}
		enum wake_reason woke = rq->w.woke;
		rq->w.woke = WAKE_NONE;
		if (rq->sse_end || woke == WAKE_SHUTDOWN || srv->stopping)
			return MHD_CONTENT_READER_END_OF_STREAM;
		uint64_t gen = server_change_gen(srv);
		struct pilot_event_filter f = {
			.run = rq->sse_run[0] ? rq->sse_run : NULL, .after_seq = rq->sse_after, .limit = 200,
		};
		struct pilot_event_list l = { 0 };
		if (pilot_api_list_events(srv->api, &f, 0, &l) < 0) {
			pilot_log(PILOT_LOG_WARN, "event stream: %s", pilot_error_last());
			return MHD_CONTENT_READER_END_WITH_ERROR;
		}
		if (l.n) {
			sse_format(rq, &l);
			pilot_event_list_clear(&l);
			continue;
		}
		pilot_event_list_clear(&l);
		int64_t now = pilot_mono_ms();
		if (woke == WAKE_TIMEOUT || now >= rq->sse_keepalive_at) {
			/* A comment line keeps proxies from closing the stream and tells us when
			 * the client has gone. */
			pilot_buf_puts(&rq->sse_out, ": keepalive\n\n");
			rq->sse_keepalive_at = now + srv->opt.keepalive_ms;
			continue;
		}
		if (server_wait(srv, rq, WAIT_SSE, rq->sse_keepalive_at, gen))
			return 0;
	}
}

static int h_events(struct req *rq)
{
	struct server *srv = rq->srv;
	int64_t after, limit;
	if (!rq->dispatched) {
		if (rq->params[0]) {
			/* Resolve the prefix once: a stream follows one run. */
			struct pilot_run run = { 0 };
			if (pilot_api_get_run(srv->api, rq->params[0], &run) < 0)
				return R(respond_last_error(rq));
			memcpy(rq->sse_run, run.id, PILOT_ID_SIZE);
			pilot_run_clear(&run);
		} else {
			const char *r = query(rq, "run");
			if (r && *r) {
				struct pilot_run run = { 0 };
				if (pilot_api_get_run(srv->api, r, &run) < 0)
					return R(respond_last_error(rq));
				memcpy(rq->sse_run, run.id, PILOT_ID_SIZE);
				pilot_run_clear(&run);
			}
		}
	}
	if (query_clamped(rq, "limit", 0, 1000, 0, &limit) < 0)
		return 1;
	const char *last_id = header(rq, MHD_HTTP_HEADER_LAST_EVENT_ID);
	bool json = wants_json(rq);
	/* A new stream of every run starts now; one run's stream, or a JSON page, starts at
	 * the beginning unless told otherwise. */
	int64_t def = !json && !rq->sse_run[0] ? -1 : 0;
	if (last_id && *last_id) {
		if (pilot_parse_int64(last_id, 0, INT64_MAX, &after) < 0)
			return bad_request(rq, "invalid Last-Event-ID '%s'", last_id);
	} else if (query_int(rq, "after", 0, INT64_MAX, def, &after) < 0) {
		return 1;
	}
	if (json) {
		if (!rq->dispatched) {
			int64_t wait;
			if (query_wait(rq, &wait) < 0)
				return 1;
			rq->wait_deadline = wait > 0 ? pilot_mono_ms() + wait : 0;
			rq->dispatched = true;
		}
		return events_json(rq, after < 0 ? 0 : after, limit);
	}
	rq->dispatched = true;
	if (after < 0) {
		/* Start after whatever is there now. */
		after = 0;
		for (;;) {
			struct pilot_event_filter f = { .after_seq = after, .limit = 1000 };
			struct pilot_event_list l = { 0 };
			if (pilot_api_list_events(srv->api, &f, 0, &l) < 0)
				return R(respond_last_error(rq));
			size_t n = l.n;
			after = l.last_seq > after ? l.last_seq : after;
			pilot_event_list_clear(&l);
			if (n < 1000)
				break;
		}
	}
	rq->sse_after = after;
	rq->sse_keepalive_at = pilot_mono_ms() + srv->opt.keepalive_ms;
	pilot_buf_puts(&rq->sse_out, "retry: 2000\n\n");
	struct MHD_Response *resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16 * 1024, sse_reader, rq, NULL);
	if (!resp)
		return 0;
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "text/event-stream");
	MHD_add_response_header(resp, "X-Accel-Buffering", "no");
	return R(respond(rq, MHD_HTTP_OK, resp, 0));
}

/* ---- artifacts and metrics ---- */

static int h_list_artifacts(struct req *rq)
{
	int attempt;
	if (attempt_arg(rq, &attempt) < 0)
		return 1;
	struct pilot_artifact_list l = { 0 };
	if (pilot_api_list_artifacts(rq->srv->api, rq->params[0], attempt, &l) < 0)
		return R(respond_last_error(rq));
	return respond_model(rq, MHD_HTTP_OK, &l);
}

static int h_get_artifact(struct req *rq)
{
	int attempt;
	if (attempt_arg(rq, &attempt) < 0)
		return 1;
	int fd = -1;
	struct pilot_artifact meta = { 0 };
	if (pilot_api_get_artifact(rq->srv->api, rq->params[0], rq->params[1], attempt, &fd, &meta) < 0)
		return R(respond_last_error(rq));
	uint64_t size = 0;
	struct MHD_Response *resp = fd_response(fd, &size);
	if (resp) {
		MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/octet-stream");
		add_header_int(resp, "Pilot-Attempt", meta.attempt);
		add_header_int(resp, "Pilot-Created-Ms", meta.created_ms);
		MHD_add_response_header(resp, "Pilot-Sha256", meta.sha256);
	}
	pilot_artifact_clear(&meta);
	return R(respond(rq, MHD_HTTP_OK, resp, size));
}

static int h_get_metrics(struct req *rq)
{
	int attempt;
	if (attempt_arg(rq, &attempt) < 0)
		return 1;
	struct pilot_metric_list l = { 0 };
	if (pilot_api_get_metrics(rq->srv->api, rq->params[0], attempt, &l) < 0)
		return R(respond_last_error(rq));
	return respond_model(rq, MHD_HTTP_OK, &l);
}

/* ---- agents ---- */

/* 204: nothing claimed, with what the agent was told instead (drain, sleep, shutdown). */
static int respond_unclaimed(struct req *rq, enum pilot_agent_control told)
{
	struct MHD_Response *resp = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
	if (resp && told)
		MHD_add_response_header(resp, "Pilot-Agent-Control", pilot_agent_control_name(told));
	return R(respond(rq, MHD_HTTP_NO_CONTENT, resp, 0));
}

static int h_claim(struct req *rq)
{
	struct server *srv = rq->srv;
	struct waiter *w = &rq->w;
	if (!rq->dispatched) {
		json_t *j = body_json(rq);
		if (!j)
			return 1;
		if (pilot_claim_request_from_json(j, &w->creq) < 0)
			return R(respond_last_error(rq));
		w->creq_json = json_incref(j);
		if (server_bind_agent(srv, rq, w->creq.agent) < 0)
			return R(respond_last_error(rq));
		int64_t wait = w->creq.wait_ms;
		if (query(rq, "wait") && query_wait(rq, &wait) < 0)
			return 1;
		if (wait > srv->opt.max_wait_ms)
			wait = srv->opt.max_wait_ms;
		rq->wait_deadline = wait > 0 ? pilot_mono_ms() + wait : 0;
		rq->dispatched = true;
	}
	switch (w->woke) {
	case WAKE_CLAIMED:
		return respond_model(rq, MHD_HTTP_OK, &w->claim);
	case WAKE_ERROR:
		return R(respond_error(rq, w->err_code, w->err_msg));
	case WAKE_TIMEOUT:
	case WAKE_SHUTDOWN:
		return respond_unclaimed(rq, w->claim.command);
	default:
		break;
	}
	for (;;) {
		uint64_t gen = server_queue_gen(srv);
		struct pilot_claim_request q = w->creq;
		q.wait_ms = 0;
		struct pilot_claim c = { 0 };
		int r = pilot_api_claim(srv->api, &q, &c);
		if (r < 0)
			return R(respond_last_error(rq));
		if (r > 0) {
			server_claimed(srv, &c);
			server_notify(srv, NOTIFY_EVENT);
			return respond_model(rq, MHD_HTTP_OK, &c);
		}
		/* Drained or asleep: it waits like any claim (and learns why at the end);
		 * told to shut down: it hears so now. */
		w->claim.command = c.command;
		if (c.command == PILOT_CONTROL_SHUTDOWN || !rq->wait_deadline || pilot_mono_ms() >= rq->wait_deadline)
			return respond_unclaimed(rq, c.command);
		if (server_wait(srv, rq, WAIT_CLAIM, rq->wait_deadline, gen))
			return 1;
		if (w->woke == WAKE_SHUTDOWN)
			return respond_unclaimed(rq, w->claim.command);
	}
}

static int h_register_agent(struct req *rq)
{
	struct pilot_agent_info info = { 0 };
	if (body_model(rq, &info) < 0)
		return 1;
	int r = server_bind_agent(rq->srv, rq, info.name);
	if (r == 0)
		r = pilot_api_register_agent(rq->srv->api, &info);
	pilot_agent_info_clear(&info);
	if (r < 0)
		return R(respond_last_error(rq));
	return R(respond_empty(rq, MHD_HTTP_NO_CONTENT));
}

static int h_agent_leave(struct req *rq)
{
	if (server_bind_agent(rq->srv, rq, rq->params[0]) < 0 || pilot_api_agent_leave(rq->srv->api, rq->params[0]) < 0)
		return R(respond_last_error(rq));
	return R(respond_empty(rq, MHD_HTTP_NO_CONTENT));
}

static int h_list_agents(struct req *rq)
{
	struct pilot_agent_list l = { 0 };
	if (pilot_api_list_agents(rq->srv->api, &l) < 0)
		return R(respond_last_error(rq));
	return respond_model(rq, MHD_HTTP_OK, &l);
}

static int h_get_agent(struct req *rq)
{
	struct pilot_agent_info a = { 0 };
	if (pilot_api_get_agent(rq->srv->api, rq->params[0], &a) < 0)
		return R(respond_last_error(rq));
	return respond_model(rq, MHD_HTTP_OK, &a);
}

static int h_control_agent(struct req *rq)
{
	const char *who = actor_of_body(rq);
	if (!who)
		return 1;
	json_t *now = rq->parsed ? json_object_get(rq->parsed, "now") : NULL;
	if (now && !json_is_boolean(now))
		return bad_request(rq, "invalid JSON body: \"now\" must be true or false");
	struct pilot_agent_info a = { 0 };
	if (pilot_api_control_agent(rq->srv->api, rq->params[0], rq->params[1], json_is_true(now), who, &a) < 0)
		return R(respond_last_error(rq));
	/* Its parked claims hear of a shutdown now; after a resume they look again. */
	if (a.control == PILOT_CONTROL_SHUTDOWN)
		server_tell_agent(rq->srv, a.name, a.control);
	server_notify(rq->srv, NOTIFY_QUEUE);
	if (!a.name)
		return R(respond_empty(rq, MHD_HTTP_NO_CONTENT));
	return respond_model(rq, MHD_HTTP_OK, &a);
}

static int h_schedule_agent(struct req *rq)
{
	json_t *body = body_json(rq);
	if (!body)
		return 1;
	json_t *w = json_object_get(body, "windows"), *tz = json_object_get(body, "tz");
	if (!json_is_object(body) || (w && !json_is_string(w) && !json_is_null(w)) ||
	    (tz && !json_is_string(tz) && !json_is_null(tz)))
		return bad_request(rq, "invalid JSON body: expected {\"windows\": STRING or null, \"tz\": STRING or null}");
	struct pilot_agent_info a = { 0 };
	if (pilot_api_schedule_agent(rq->srv->api, rq->params[0], json_string_value(w), json_string_value(tz), &a) < 0)
		return R(respond_last_error(rq));
	/* An agent the schedule woke takes runs again: its parked claims look. */
	server_notify(rq->srv, NOTIFY_QUEUE);
	return respond_model(rq, MHD_HTTP_OK, &a);
}

/* An agent enrolls with a registration token: it is registered, and gets a token of
 * its own, bound to its name (the one it had before is revoked). */
static int h_enroll_agent(struct req *rq)
{
	struct pilot_agent_info info = { 0 };
	if (body_model(rq, &info) < 0)
		return 1;
	char secret[PILOT_TOKEN_SIZE];
	struct pilot_token_record rec = { 0 };
	_cleanup_free_ char *name = info.name ? pilot_xasprintf("agent-%s", info.name) : NULL;
	/* The registration is first: it checks the name. */
	int r = pilot_api_register_agent(rq->srv->api, &info);
	if (r == 0)
		r = pilot_server_token_create(rq->srv->st, name, PILOT_SCOPE_AGENT, 0, info.name, true, secret, &rec);
	if (r < 0) {
		pilot_agent_info_clear(&info);
		return R(respond_last_error(rq));
	}
	server_rebind_agent(rq->srv, info.name, rec.id);
	pilot_log(PILOT_LOG_INFO, "agent '%s' enrolled with token '%s' (its own token: '%s')", info.name, rq->token_name,
		  rec.name);
	pilot_agent_info_clear(&info);
	json_t *out = pilot_token_record_to_json(&rec);
	json_object_set_new(out, "token", json_string(secret));
	explicit_bzero(secret, sizeof(secret));
	pilot_token_record_clear(&rec);
	return R(respond_json(rq, MHD_HTTP_CREATED, out));
}

static int h_list_blocklist(struct req *rq)
{
	struct pilot_block_list l = { 0 };
	if (pilot_api_list_blocklist(rq->srv->api, &l) < 0)
		return R(respond_last_error(rq));
	return respond_model(rq, MHD_HTTP_OK, &l);
}

static int h_clear_blocklist(struct req *rq)
{
	int n = 0;
	if (pilot_api_clear_blocklist(rq->srv->api, query(rq, "agent"), query(rq, "name"), &n) < 0)
		return R(respond_last_error(rq));
	/* A cleared entry may free runs for the agents waiting. */
	if (n > 0)
		server_notify(rq->srv, NOTIFY_QUEUE);
	return R(respond_json(rq, MHD_HTTP_OK, json_pack("{s:i}", "cleared", n)));
}

static int h_status(struct req *rq)
{
	struct pilot_status st = { 0 };
	if (pilot_api_status(rq->srv->api, &st) < 0)
		return R(respond_last_error(rq));
	fleet_status(rq->srv, &st);
	return respond_model(rq, MHD_HTTP_OK, &st);
}

/* ---- attempts (agent writes, fenced by the lease token) ---- */

static int h_heartbeat(struct req *rq)
{
	const char *lease = lease_of(rq);
	if (!lease)
		return 1;
	struct pilot_heartbeat_reply h = { 0 };
	if (pilot_api_heartbeat(rq->srv->api, rq->params[0], lease, &h) < 0)
		return R(respond_last_error(rq));
	return respond_model(rq, MHD_HTTP_OK, &h);
}

static int h_finish(struct req *rq)
{
	const char *lease = lease_of(rq);
	if (!lease)
		return 1;
	struct pilot_finish f;
	if (body_model(rq, &f) < 0)
		return 1;
	struct pilot_run run = { 0 };
	if (pilot_api_finish(rq->srv->api, rq->params[0], lease, &f, &run) < 0)
		return R(respond_last_error(rq));
	notify_run(rq->srv, &run, NOTIFY_EVENT | NOTIFY_LOG);
	return respond_model(rq, MHD_HTTP_OK, &run);
}

static int h_append_log(struct req *rq)
{
	const char *lease = lease_of(rq);
	if (!lease)
		return 1;
	const char *off = query(rq, "offset");
	if (!off || !*off)
		return bad_request(rq, "missing query argument 'offset'");
	int64_t offset;
	if (query_int(rq, "offset", 0, INT64_MAX, 0, &offset) < 0)
		return 1;
	int64_t expected = -1;
	int r = pilot_api_append_log(rq->srv->api, rq->params[0], lease, offset, rq->body.data ? rq->body.data : "",
				     rq->body.len, &expected);
	if (r < 0) {
		json_t *extra = expected >= 0 ? json_pack("{s:I}", "expected_offset", (json_int_t)expected) : NULL;
		return R(respond_error_status(rq, http_status_for(r), r, pilot_error_last(), extra));
	}
	atomic_fetch_add(&rq->srv->m.log_bytes_total, rq->body.len);
	server_notify(rq->srv, NOTIFY_LOG);
	/* next_offset: where the stored log ends now (a replay adds nothing). */
	json_t *j = json_pack("{s:I,s:I}", "offset", (json_int_t)offset, "next_offset",
			      (json_int_t)(expected >= 0 ? expected : offset + (int64_t)rq->body.len));
	return R(respond_json(rq, MHD_HTTP_OK, j));
}

static int h_put_artifact(struct req *rq)
{
	const char *lease = lease_of(rq);
	if (!lease)
		return 1;
	if (lseek(rq->body_fd, 0, SEEK_SET) < 0 ||
	    pilot_api_put_artifact(rq->srv->api, rq->params[0], lease, rq->params[1], rq->body_fd) < 0)
		return R(respond_last_error(rq));
	char sha[65];
	digest_hex(rq, sha);
	json_t *j = json_pack("{s:s,s:I,s:s}", "path", rq->params[1], "size", (json_int_t)rq->body_size, "sha256", sha);
	return R(respond_json(rq, MHD_HTTP_CREATED, j));
}

static int h_put_metrics(struct req *rq)
{
	const char *lease = lease_of(rq);
	if (!lease)
		return 1;
	const char *fi = query(rq, "first_index");
	if (!fi || !*fi)
		return bad_request(rq, "missing query argument 'first_index'");
	int64_t first;
	if (query_int(rq, "first_index", 0, INT64_MAX, 0, &first) < 0)
		return 1;
	struct pilot_metric_list l = { 0 };
	if (body_model(rq, &l) < 0)
		return 1;
	int64_t expected = -1;
	int r = pilot_api_put_metrics(rq->srv->api, rq->params[0], lease, first, l.items, l.n, &expected);
	size_t n = l.n;
	pilot_metric_list_clear(&l);
	if (r < 0) {
		json_t *extra = expected >= 0 ? json_pack("{s:I}", "expected_index", (json_int_t)expected) : NULL;
		return R(respond_error_status(rq, http_status_for(r), r, pilot_error_last(), extra));
	}
	json_t *out = json_pack("{s:I,s:I}", "first_index", (json_int_t)first, "next_index",
				(json_int_t)(expected >= 0 ? expected : first + (int64_t)n));
	return R(respond_json(rq, MHD_HTTP_OK, out));
}

/* ---- identity, tokens, maintenance ---- */

static int h_whoami(struct req *rq)
{
	json_t *j = json_pack("{s:s,s:s?,s:o,s:s}", "token_id", rq->token_id, "name", rq->token_name, "scopes",
			      pilot_token_scopes_to_json(rq->scopes), "server_version", pilot_version());
	if (rq->token_expires_ms)
		json_object_set_new(j, "expires_ms", json_integer(rq->token_expires_ms));
	return R(respond_json(rq, MHD_HTTP_OK, j));
}

static int h_token_create(struct req *rq)
{
	json_t *j = body_json(rq);
	if (!j)
		return 1;
	if (!json_is_object(j))
		return bad_request(rq, "invalid token request: expected an object");
	const char *name = json_string_value(json_object_get(j, "name"));
	unsigned scopes = 0;
	if (pilot_token_scopes_from_json(json_object_get(j, "scopes"), &scopes) < 0)
		return bad_request(rq, "invalid token request: %s", pilot_error_last());
	json_t *ej = json_object_get(j, "expires_ms");
	int64_t expires = json_is_integer(ej) ? (int64_t)json_integer_value(ej) : 0;
	if (expires && expires <= pilot_now_ms())
		return bad_request(rq, "invalid token request: 'expires_ms' is in the past");
	char secret[PILOT_TOKEN_SIZE];
	struct pilot_token_record rec = { 0 };
	if (pilot_server_token_create(rq->srv->st, name, scopes, expires, NULL, false, secret, &rec) < 0)
		return R(respond_last_error(rq));
	json_t *out = pilot_token_record_to_json(&rec);
	json_object_set_new(out, "token", json_string(secret));
	explicit_bzero(secret, sizeof(secret));
	pilot_token_record_clear(&rec);
	return R(respond_json(rq, MHD_HTTP_CREATED, out));
}

static int h_token_list(struct req *rq)
{
	struct pilot_token_list l = { 0 };
	if (pilot_store_token_list(rq->srv->st, &l) < 0)
		return R(respond_last_error(rq));
	json_t *a = json_array();
	for (size_t i = 0; i < l.n; i++)
		json_array_append_new(a, pilot_token_record_to_json(&l.items[i]));
	pilot_token_list_clear(&l);
	return R(respond_json(rq, MHD_HTTP_OK, json_pack("{s:o}", "tokens", a)));
}

static int h_token_revoke(struct req *rq)
{
	if (pilot_store_token_revoke(rq->srv->st, rq->params[0]) < 0)
		return R(respond_last_error(rq));
	return R(respond_empty(rq, MHD_HTTP_NO_CONTENT));
}

static int h_reap(struct req *rq)
{
	int n = pilot_api_reap(rq->srv->api);
	if (n < 0)
		return R(respond_last_error(rq));
	if (n > 0)
		server_notify(rq->srv, NOTIFY_QUEUE | NOTIFY_EVENT | NOTIFY_LOG);
	return R(respond_json(rq, MHD_HTTP_OK, json_pack("{s:i}", "changed", n)));
}

const server_handler server_handlers[PILOT_NROUTES] = {
	[PILOT_ROUTE_INDEX] = h_index,
	[PILOT_ROUTE_DASHBOARD_FILE] = h_dashboard_file,
	[PILOT_ROUTE_HEALTHZ] = h_healthz,
	[PILOT_ROUTE_METRICS] = h_metrics,
	[PILOT_ROUTE_BUNDLE_HAS] = h_bundle_head,
	[PILOT_ROUTE_BUNDLE_GET] = h_bundle_get,
	[PILOT_ROUTE_BUNDLE_PUT] = h_bundle_put,
	[PILOT_ROUTE_SUBMIT] = h_submit,
	[PILOT_ROUTE_SUBMIT_ARRAY] = h_submit_array,
	[PILOT_ROUTE_GET_ARRAY] = h_get_array,
	[PILOT_ROUTE_CANCEL_ARRAY] = h_cancel_array,
	[PILOT_ROUTE_RETRY_ARRAY] = h_retry_array,
	[PILOT_ROUTE_SUBMIT_PIPELINE] = h_submit_pipeline,
	[PILOT_ROUTE_GET_PIPELINE] = h_get_array,
	[PILOT_ROUTE_CANCEL_PIPELINE] = h_cancel_array,
	[PILOT_ROUTE_RETRY_PIPELINE] = h_retry_array,
	[PILOT_ROUTE_LIST_RUNS] = h_list_runs,
	[PILOT_ROUTE_GET_RUN] = h_get_run,
	[PILOT_ROUTE_READ_LOGS] = h_logs,
	[PILOT_ROUTE_RUN_EVENTS] = h_events,
	[PILOT_ROUTE_CANCEL] = h_cancel,
	[PILOT_ROUTE_RETRY] = h_retry,
	[PILOT_ROUTE_LIST_ARTIFACTS] = h_list_artifacts,
	[PILOT_ROUTE_GET_ARTIFACT] = h_get_artifact,
	[PILOT_ROUTE_GET_METRICS] = h_get_metrics,
	[PILOT_ROUTE_EVENTS] = h_events,
	[PILOT_ROUTE_CLAIM] = h_claim,
	[PILOT_ROUTE_REGISTER_AGENT] = h_register_agent,
	[PILOT_ROUTE_LIST_AGENTS] = h_list_agents,
	[PILOT_ROUTE_AGENT_LEAVE] = h_agent_leave,
	[PILOT_ROUTE_GET_AGENT] = h_get_agent,
	[PILOT_ROUTE_CONTROL_AGENT] = h_control_agent,
	[PILOT_ROUTE_SCHEDULE_AGENT] = h_schedule_agent,
	[PILOT_ROUTE_ENROLL_AGENT] = h_enroll_agent,
	[PILOT_ROUTE_LIST_BLOCKLIST] = h_list_blocklist,
	[PILOT_ROUTE_CLEAR_BLOCKLIST] = h_clear_blocklist,
	[PILOT_ROUTE_HEARTBEAT] = h_heartbeat,
	[PILOT_ROUTE_FINISH] = h_finish,
	[PILOT_ROUTE_APPEND_LOG] = h_append_log,
	[PILOT_ROUTE_PUT_ARTIFACT] = h_put_artifact,
	[PILOT_ROUTE_PUT_METRICS] = h_put_metrics,
	[PILOT_ROUTE_STATUS] = h_status,
	[PILOT_ROUTE_WHOAMI] = h_whoami,
	[PILOT_ROUTE_TOKEN_CREATE] = h_token_create,
	[PILOT_ROUTE_TOKEN_LIST] = h_token_list,
	[PILOT_ROUTE_TOKEN_REVOKE] = h_token_revoke,
	[PILOT_ROUTE_REAP] = h_reap,
};
