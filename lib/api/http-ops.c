/* The http transport's operations: each call of struct pilot_api as a call on its route
 * of pilot_routes (its path, method and codecs from the table), and the client extras
 * of api.h (whoami, tokens). */
#include <string.h>
#include <sys/stat.h>

#include "http-internal.h"

/* The request's idempotency key, or a new one in gen: every submit carries a key, so
 * a retry after a lost answer cannot queue the run (or the array) twice. */
static const char *submit_key(const char *given, char gen[40])
{
	if (given && *given)
		return given;
	memcpy(gen, "pilot-", 6);
	pilot_random_hex(gen + 6, 16);
	return gen;
}

static int h_submit(struct pilot_api *api, const struct pilot_submit_request *req, struct pilot_run *out)
{
	char gen[40];
	const char *key = submit_key(req->idempotency_key, gen);
	struct pilot_submit_request keyed = *req;
	keyed.idempotency_key = key;
	struct http_call c;
	http_call_route(&c, PILOT_ROUTE_SUBMIT, NULL, NULL);
	c.idem_key = key;
	struct pilot_run tmp = { 0 };
	int r = http_call_model(H(api), &c, &keyed, out ? out : &tmp);
	pilot_run_clear(&tmp);
	if (r < 0)
		return r;
	/* 200: the key's run, sent before; 201: a new one. */
	return c.status == 200 ? 1 : 0;
}

static int h_submit_array(struct pilot_api *api, const struct pilot_array_request *req, struct pilot_array *out)
{
	char gen[40];
	const char *key = submit_key(req->base.idempotency_key, gen);
	struct pilot_array_request keyed = *req;
	keyed.base.idempotency_key = key;
	struct http_call c;
	http_call_route(&c, PILOT_ROUTE_SUBMIT_ARRAY, NULL, NULL);
	c.idem_key = key;
	struct pilot_array tmp = { 0 };
	int r = http_call_model(H(api), &c, &keyed, out ? out : &tmp);
	pilot_array_clear(&tmp);
	if (r < 0)
		return r;
	/* 200: the key's array, sent before; 201: a new one. */
	return c.status == 200 ? 1 : 0;
}

static int h_submit_pipeline(struct pilot_api *api, const struct pilot_pipeline_request *req, struct pilot_array *out)
{
	char gen[40];
	struct pilot_pipeline_request keyed = *req;
	keyed.idempotency_key = submit_key(req->idempotency_key, gen);
	struct http_call c;
	http_call_route(&c, PILOT_ROUTE_SUBMIT_PIPELINE, NULL, NULL);
	c.idem_key = keyed.idempotency_key;
	struct pilot_array tmp = { 0 };
	int r = http_call_model(H(api), &c, &keyed, out ? out : &tmp);
	pilot_array_clear(&tmp);
	if (r < 0)
		return r;
	return c.status == 200 ? 1 : 0;
}

static int h_get_run(struct pilot_api *api, const char *run, struct pilot_run *out)
{
	struct http_call c;
	http_call_route(&c, PILOT_ROUTE_GET_RUN, run, NULL);
	return http_call_model(H(api), &c, NULL, out);
}

static int h_list_runs(struct pilot_api *api, const struct pilot_run_filter *f, struct pilot_run_list *out)
{
	struct http_call c;
	http_call_route(&c, PILOT_ROUTE_LIST_RUNS, NULL, NULL);
	if (f && f->states) {
		struct pilot_buf s = PILOT_BUF_INIT;
		for (int i = 0; i < PILOT_RUN_NSTATES; i++)
			if (f->states & PILOT_RUN_STATE_BIT(i)) {
				if (s.len)
					pilot_buf_putc(&s, ',');
				pilot_buf_puts(&s, pilot_run_state_name((enum pilot_run_state)i));
			}
		http_query(&c, "state", pilot_buf_str(&s));
		pilot_buf_free(&s);
	}
	if (f && f->name)
		http_query(&c, "name", f->name);
	if (f && f->array)
		http_query(&c, "array", f->array);
	if (f && f->since_ms)
		http_query_int(&c, "since", f->since_ms);
	if (f && f->after && *f->after)
		http_query(&c, "after", f->after);
	if (f && f->limit)
		http_query_int(&c, "limit", (int64_t)f->limit);
	return http_call_model(H(api), &c, NULL, out);
}

/* cancel and retry: an optional body of {"actor"} (honoured for an admin's token) and,
 * when grace_ms >= 0, {"grace_ms"}. */
/* A POST to a run's or an array's action route with {"actor", "grace_ms"} (each when
 * given): the answer's JSON in *res. */
static int action_call(struct pilot_api *api, enum pilot_route_id id, const char *target, const char *actor,
		       int64_t grace_ms, json_t **res, bool *unchanged)
{
	struct http_api *h = H(api);
	struct http_call c;
	http_call_route(&c, id, target, NULL);
	_cleanup_free_ char *body = NULL;
	if ((actor && *actor) || grace_ms >= 0) {
		json_t *j = json_object();
		if (actor && *actor)
			json_object_set_new(j, "actor", json_string(actor));
		if (grace_ms >= 0)
			json_object_set_new(j, "grace_ms", json_integer((json_int_t)grace_ms));
		http_body_json(&c, j, &body);
		json_decref(j);
	}
	int r = http_call_json(h, &c, res);
	if (unchanged)
		*unchanged = http_header(&c, "pilot-unchanged") != NULL;
	http_call_clear(&c);
	return r;
}

static int run_action(struct pilot_api *api, enum pilot_route_id id, const char *run, const char *actor,
		      int64_t grace_ms, struct pilot_run *out, bool *unchanged)
{
	json_t *res = NULL;
	int r = action_call(api, id, run, actor, grace_ms, &res, unchanged);
	if (r < 0)
		return r;
	r = pilot_run_from_json(res, out);
	json_decref(res);
	return r;
}

/* A pipeline's id (or prefix) goes to the pipeline routes, an array's to the array's. */
static bool is_pipeline(const char *id)
{
	return id && id[0] == 'p';
}

static int array_action(struct pilot_api *api, enum pilot_route_id id, const char *array, const char *actor,
			int64_t grace_ms, struct pilot_array *out)
{
	json_t *res = NULL;
	struct pilot_array tmp = { 0 };
	int r = action_call(api, id, array, actor, grace_ms, &res, NULL);
	if (r < 0)
		return r;
	r = pilot_array_from_json(res, out ? out : &tmp);
	pilot_array_clear(&tmp);
	json_decref(res);
	return r;
}

static int h_get_array(struct pilot_api *api, const char *array, struct pilot_array *out)
{
	struct http_call c;
	http_call_route(&c, is_pipeline(array) ? PILOT_ROUTE_GET_PIPELINE : PILOT_ROUTE_GET_ARRAY, array, NULL);
	return http_call_model(H(api), &c, NULL, out);
}

static int h_cancel_array(struct pilot_api *api, const char *array, const char *actor, int64_t grace_ms,
			  struct pilot_array *out)
{
	return array_action(api, is_pipeline(array) ? PILOT_ROUTE_CANCEL_PIPELINE : PILOT_ROUTE_CANCEL_ARRAY, array,
			    actor, grace_ms, out);
}

static int h_retry_array(struct pilot_api *api, const char *array, const char *actor, struct pilot_array *out)
{
	return array_action(api, is_pipeline(array) ? PILOT_ROUTE_RETRY_PIPELINE : PILOT_ROUTE_RETRY_ARRAY, array, actor,
			    -1, out);
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

static void add_wait(struct http_call *c, int64_t wait_ms)
{
	if (wait_ms <= 0)
		return;
	char w[32];
	snprintf(w, sizeof(w), "%lldms", (long long)wait_ms);
	http_query(c, "wait", w);
	c->extra_timeout_ms = wait_ms;
}

static int h_read_logs(struct pilot_api *api, const struct pilot_log_request *req, struct pilot_log_chunk *out)
{
	struct http_api *h = H(api);
	struct http_call c;
	http_call_route(&c, PILOT_ROUTE_READ_LOGS, req->run, NULL);
	if (req->attempt)
		http_query_int(&c, "attempt", req->attempt);
	if (req->offset)
		http_query_int(&c, "offset", req->offset);
	size_t max = req->max_bytes ? req->max_bytes : 1024 * 1024;
	http_query_int(&c, "max", (int64_t)max);
	add_wait(&c, req->wait_ms);
	c.resp.max = max + 64 * 1024;
	int r = http_perform(h, &c);
	if (r == 0)
		r = http_status_error(h, &c, NULL);
	if (r < 0) {
		http_call_clear(&c);
		return r;
	}
	struct pilot_log_chunk ch = { 0 };
	ch.data = c.resp;
	ch.data.max = 0;
	pilot_buf_init(&c.resp, 0);
	ch.attempt = (int)http_header_int(&c, "pilot-attempt");
	ch.offset = http_header_int(&c, "pilot-offset");
	ch.next_offset = http_header_int(&c, "pilot-next-offset");
	ch.latest_attempt = (int)http_header_int(&c, "pilot-latest-attempt");
	const char *comp = http_header(&c, "pilot-complete");
	ch.complete = comp && !strcmp(comp, "true");
	const char *st = http_header(&c, "pilot-run-state");
	if (!st || pilot_run_state_from_name(st, &ch.run_state) < 0) {
		pilot_log_chunk_clear(&ch);
		http_call_clear(&c);
		return pilot_error_set(PILOT_EFAIL, "invalid answer from server '%s': no run state with the log", h->url);
	}
	http_call_clear(&c);
	*out = ch;
	return 0;
}

static int h_list_events(struct pilot_api *api, const struct pilot_event_filter *f, int64_t wait_ms,
			 struct pilot_event_list *out)
{
	struct http_call c;
	if (f && f->run)
		http_call_route(&c, PILOT_ROUTE_RUN_EVENTS, f->run, NULL);
	else
		http_call_route(&c, PILOT_ROUTE_EVENTS, NULL, NULL);
	http_query(&c, "format", "json");
	http_query_int(&c, "after", f ? f->after_seq : 0);
	if (f && f->limit)
		http_query_int(&c, "limit", (int64_t)f->limit);
	add_wait(&c, wait_ms);
	return http_call_model(H(api), &c, NULL, out);
}

/* The routes of one run's attempt: ?attempt=N (0 = every attempt, or the latest). */
static void call_run_attempt(struct http_call *c, enum pilot_route_id id, const char *run, const char *path, int attempt)
{
	http_call_route(c, id, run, path);
	if (attempt)
		http_query_int(c, "attempt", attempt);
}

static int h_list_artifacts(struct pilot_api *api, const char *run, int attempt, struct pilot_artifact_list *out)
{
	struct http_call c;
	call_run_attempt(&c, PILOT_ROUTE_LIST_ARTIFACTS, run, NULL, attempt);
	return http_call_model(H(api), &c, NULL, out);
}

static int h_get_artifact(struct pilot_api *api, const char *run, const char *path, int attempt, int *fd,
			  struct pilot_artifact *meta)
{
	struct http_call c;
	call_run_attempt(&c, PILOT_ROUTE_GET_ARTIFACT, run, path, attempt);
	int got = -1;
	int r = http_download(H(api), &c, &got);
	if (r < 0) {
		http_call_clear(&c);
		return r;
	}
	if (meta) {
		struct stat sb;
		memset(meta, 0, sizeof(*meta));
		meta->path = pilot_xstrdup(path);
		meta->size = fstat(got, &sb) == 0 ? (uint64_t)sb.st_size : 0;
		meta->attempt = (int)http_header_int(&c, "pilot-attempt");
		meta->created_ms = http_header_int(&c, "pilot-created-ms");
		const char *sha = http_header(&c, "pilot-sha256");
		if (sha && strlen(sha) == 64)
			memcpy(meta->sha256, sha, 65);
	}
	http_call_clear(&c);
	*fd = got;
	return 0;
}

static int h_get_metrics(struct pilot_api *api, const char *run, int attempt, struct pilot_metric_list *out)
{
	struct http_call c;
	call_run_attempt(&c, PILOT_ROUTE_GET_METRICS, run, NULL, attempt);
	return http_call_model(H(api), &c, NULL, out);
}

static int h_list_agents(struct pilot_api *api, struct pilot_agent_list *out)
{
	struct http_call c;
	http_call_route(&c, PILOT_ROUTE_LIST_AGENTS, NULL, NULL);
	return http_call_model(H(api), &c, NULL, out);
}

static int h_get_agent(struct pilot_api *api, const char *name, struct pilot_agent_info *out)
{
	struct http_call c;
	http_call_route(&c, PILOT_ROUTE_GET_AGENT, name, NULL);
	return http_call_model(H(api), &c, NULL, out);
}

static int h_control_agent(struct pilot_api *api, const char *name, const char *action, bool now,
			   const char *actor, struct pilot_agent_info *out)
{
	struct http_api *h = H(api);
	struct http_call c;
	http_call_route(&c, PILOT_ROUTE_CONTROL_AGENT, name, action);
	json_t *j = json_object();
	if (actor && *actor)
		json_object_set_new(j, "actor", json_string(actor));
	if (now)
		json_object_set_new(j, "now", json_true());
	_cleanup_free_ char *body = NULL;
	http_body_json(&c, j, &body);
	json_decref(j);
	/* forget answers 204: there is no agent left to show. */
	bool forget = action && !strcmp(action, "forget");
	json_t *res = NULL;
	int r = http_call_json(h, &c, forget ? NULL : &res);
	http_call_clear(&c);
	if (r < 0)
		return r;
	struct pilot_agent_info tmp = { 0 };
	if (res)
		r = pilot_agent_info_from_json(res, out ? out : &tmp);
	else if (out)
		memset(out, 0, sizeof(*out));
	pilot_agent_info_clear(&tmp);
	json_decref(res);
	return r;
}

static int h_schedule_agent(struct pilot_api *api, const char *name, const char *windows, const char *tz,
			    struct pilot_agent_info *out)
{
	struct http_call c;
	http_call_route(&c, PILOT_ROUTE_SCHEDULE_AGENT, name, NULL);
	json_t *j = json_pack("{s:o,s:o}", "windows", windows && *windows ? json_string(windows) : json_null(), "tz",
			      tz && *tz ? json_string(tz) : json_null());
	_cleanup_free_ char *body = NULL;
	http_body_json(&c, j, &body);
	json_decref(j);
	return http_call_model(H(api), &c, NULL, out);
}

static int h_list_blocklist(struct pilot_api *api, struct pilot_block_list *out)
{
	struct http_call c;
	http_call_route(&c, PILOT_ROUTE_LIST_BLOCKLIST, NULL, NULL);
	return http_call_model(H(api), &c, NULL, out);
}

static int h_clear_blocklist(struct pilot_api *api, const char *agent, const char *name, int *cleared)
{
	struct http_call c;
	http_call_route(&c, PILOT_ROUTE_CLEAR_BLOCKLIST, NULL, NULL);
	if (agent && *agent)
		http_query(&c, "agent", agent);
	if (name && *name)
		http_query(&c, "name", name);
	json_t *res = NULL;
	int r = http_call_json_once(H(api), &c, &res);
	if (r < 0)
		return r;
	json_t *n = json_object_get(res, "cleared");
	if (cleared)
		*cleared = json_is_integer(n) ? (int)json_integer_value(n) : 0;
	json_decref(res);
	return 0;
}

static int h_status(struct pilot_api *api, struct pilot_status *out)
{
	struct http_call c;
	http_call_route(&c, PILOT_ROUTE_STATUS, NULL, NULL);
	return http_call_model(H(api), &c, NULL, out);
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
	struct http_call c;
	http_call_route(&c, PILOT_ROUTE_BUNDLE_HAS, sha256, NULL);
	r = http_perform(h, &c);
	if (r == 0) {
		if (c.status == 404)
			r = 0;
		else if ((r = http_status_error(h, &c, NULL)) == 0)
			r = 1;
	}
	http_call_clear(&c);
	return r;
}

static int h_bundle_put(struct pilot_api *api, const char *sha256, int fd)
{
	int r = check_sha(sha256);
	if (r < 0)
		return r;
	struct http_call c;
	http_call_route(&c, PILOT_ROUTE_BUNDLE_PUT, sha256, NULL);
	http_body_fd(&c, fd);
	c.progress = true;
	return http_call_model(H(api), &c, NULL, NULL);
}

static int h_bundle_get(struct pilot_api *api, const char *sha256, int *fd)
{
	int r = check_sha(sha256);
	if (r < 0)
		return r;
	struct http_call c;
	http_call_route(&c, PILOT_ROUTE_BUNDLE_GET, sha256, NULL);
	r = http_download(H(api), &c, fd);
	http_call_clear(&c);
	return r;
}

static int h_register_agent(struct pilot_api *api, const struct pilot_agent_info *info)
{
	struct http_call c;
	http_call_route(&c, PILOT_ROUTE_REGISTER_AGENT, NULL, NULL);
	return http_call_model(H(api), &c, info, NULL);
}

static int h_agent_leave(struct pilot_api *api, const char *agent)
{
	struct http_call c;
	http_call_route(&c, PILOT_ROUTE_AGENT_LEAVE, agent, NULL);
	return http_call_model(H(api), &c, NULL, NULL);
}

static int h_claim(struct pilot_api *api, const struct pilot_claim_request *req, struct pilot_claim *out)
{
	struct http_api *h = H(api);
	struct http_call c;
	http_call_route(&c, PILOT_ROUTE_CLAIM, NULL, NULL);
	add_wait(&c, req->wait_ms);
	json_t *j = pilot_claim_request_to_json(req);
	_cleanup_free_ char *body = NULL;
	http_body_json(&c, j, &body);
	json_decref(j);
	int r = http_perform(h, &c);
	if (r == 0 && c.status == 204) {
		/* Nothing claimed: what the agent was told instead, if anything. */
		const char *told = http_header(&c, "pilot-agent-control");
		out->command = PILOT_CONTROL_NONE;
		if (told && pilot_agent_control_from_name(told, &out->command) < 0) {
			pilot_log(PILOT_LOG_DEBUG, "ignoring %s", pilot_error_last());
			out->command = PILOT_CONTROL_NONE;
		}
		http_call_clear(&c);
		return 0;
	}
	json_t *res = NULL;
	if (r == 0 && (r = http_status_error(h, &c, NULL)) == 0) {
		json_error_t e;
		res = json_loadb(c.resp.data ? c.resp.data : "", c.resp.len, 0, &e);
		if (!res)
			r = pilot_error_set(PILOT_EFAIL, "invalid claim from server '%s': %s", h->url, e.text);
	}
	http_call_clear(&c);
	if (r < 0)
		return r;
	r = pilot_claim_from_json(res, out);
	json_decref(res);
	return r < 0 ? r : 1;
}

/* The routes of an attempt's agent: fenced by the lease token. */
static void call_attempt(struct http_call *c, enum pilot_route_id id, const char *attempt_id, const char *path,
			 const char *token)
{
	http_call_route(c, id, attempt_id, path);
	c->lease = token ? token : "";
}

static int h_heartbeat(struct pilot_api *api, const char *attempt_id, const char *token,
		       struct pilot_heartbeat_reply *reply)
{
	struct http_call c;
	call_attempt(&c, PILOT_ROUTE_HEARTBEAT, attempt_id, NULL, token);
	struct pilot_heartbeat_reply hr;
	int r = http_call_model(H(api), &c, NULL, &hr);
	if (r == 0 && reply)
		*reply = hr;
	return r;
}

/* An agent write answers where the stored data now ends (next_key), and a 409 may
 * carry where the client should resume (err_key): both land in *expected. The call
 * is cleared. */
static int fenced_write(struct http_api *h, struct http_call *c, const char *next_key, const char *err_key,
			int64_t *expected)
{
	int r = http_perform(h, c);
	if (r < 0) {
		http_call_clear(c);
		return r;
	}
	json_t *ej = NULL;
	r = http_status_error(h, c, &ej);
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
	http_call_clear(c);
	return r;
}

static int h_append_log(struct pilot_api *api, const char *attempt_id, const char *token, int64_t offset,
			const void *data, size_t len, int64_t *expected_offset)
{
	struct http_call c;
	call_attempt(&c, PILOT_ROUTE_APPEND_LOG, attempt_id, NULL, token);
	http_query_int(&c, "offset", offset);
	c.body = data ? data : "";
	c.body_len = len;
	c.content_type = "application/octet-stream";
	return fenced_write(H(api), &c, "next_offset", "expected_offset", expected_offset);
}

static int h_put_artifact(struct pilot_api *api, const char *attempt_id, const char *token, const char *path,
			  int fd)
{
	struct http_call c;
	call_attempt(&c, PILOT_ROUTE_PUT_ARTIFACT, attempt_id, path, token);
	http_body_fd(&c, fd);
	c.progress = true;
	return http_call_model(H(api), &c, NULL, NULL);
}

static int h_put_metrics(struct pilot_api *api, const char *attempt_id, const char *token, int64_t first_index,
			 const struct pilot_metric *items, size_t n, int64_t *expected_index)
{
	struct http_call c;
	call_attempt(&c, PILOT_ROUTE_PUT_METRICS, attempt_id, NULL, token);
	http_query_int(&c, "first_index", first_index);
	struct pilot_metric_list l = { (struct pilot_metric *)items, n };
	json_t *j = c.route->request->to_json(&l);
	_cleanup_free_ char *body = NULL;
	http_body_json(&c, j, &body);
	json_decref(j);
	return fenced_write(H(api), &c, "next_index", "expected_index", expected_index);
}

static int h_finish(struct pilot_api *api, const char *attempt_id, const char *token,
		    const struct pilot_finish *outcome, struct pilot_run *run)
{
	struct http_call c;
	call_attempt(&c, PILOT_ROUTE_FINISH, attempt_id, NULL, token);
	return http_call_model(H(api), &c, outcome, run);
}

static int h_reap(struct pilot_api *api)
{
	struct http_call c;
	http_call_route(&c, PILOT_ROUTE_REAP, NULL, NULL);
	json_t *res = NULL;
	int r = http_call_json_once(H(api), &c, &res);
	if (r < 0)
		return r;
	json_t *n = json_object_get(res, "changed");
	r = json_is_integer(n) ? (int)json_integer_value(n) : 0;
	json_decref(res);
	return r;
}

const struct pilot_api_ops http_ops = {
	.name = "http",
	.submit = h_submit,
	.submit_array = h_submit_array,
	.submit_pipeline = h_submit_pipeline,
	.get_array = h_get_array,
	.cancel_array = h_cancel_array,
	.retry_array = h_retry_array,
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
	.get_agent = h_get_agent,
	.control_agent = h_control_agent,
	.schedule_agent = h_schedule_agent,
	.list_blocklist = h_list_blocklist,
	.clear_blocklist = h_clear_blocklist,
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
	.close = http_close,
};

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
	struct http_call c;
	http_call_route(&c, PILOT_ROUTE_WHOAMI, NULL, NULL);
	json_t *res = NULL;
	r = http_call_json_once(H(api), &c, &res);
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

/* A call that answers a new token: the record, and the secret (caller frees). Takes j. */
static int new_token_call(struct pilot_api *api, enum pilot_route_id route, json_t *j, char **secret,
			  struct pilot_token_record *out)
{
	struct http_call c;
	http_call_route(&c, route, NULL, NULL);
	_cleanup_free_ char *body = NULL;
	http_body_json(&c, j, &body);
	json_decref(j);
	json_t *res = NULL;
	int r = http_call_json_once(H(api), &c, &res);
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
	return new_token_call(api, PILOT_ROUTE_TOKEN_CREATE, j, secret, out);
}

int pilot_http_agent_enroll(struct pilot_api *api, const struct pilot_agent_info *agent, char **secret,
			    struct pilot_token_record *out)
{
	int r = need_http(api);
	if (r < 0)
		return pilot_error_set(PILOT_EINVALID, "registration tokens are a server's: an agent on the local store "
						       "needs none");
	return new_token_call(api, PILOT_ROUTE_ENROLL_AGENT, pilot_agent_info_to_json(agent), secret, out);
}

int pilot_http_token_list(struct pilot_api *api, struct pilot_token_list *out)
{
	int r = need_http(api);
	if (r < 0)
		return r;
	struct http_call c;
	http_call_route(&c, PILOT_ROUTE_TOKEN_LIST, NULL, NULL);
	json_t *res = NULL;
	r = http_call_json_once(H(api), &c, &res);
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
	struct http_call c;
	http_call_route(&c, PILOT_ROUTE_TOKEN_REVOKE, id_or_name, NULL);
	return http_call_model(H(api), &c, NULL, NULL);
}
