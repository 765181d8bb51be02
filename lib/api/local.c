/* The local transport: the store in-process. It adds what the store leaves out —
 * long-poll waits (claim, logs, events), done by polling the database because the
 * writers may be other processes — and opportunistic reaping, so a machine with no
 * server still sees lost agents and due retries handled. */
#include <string.h>
#include <time.h>

#include "pilot/api.h"
#include "pilot/spec.h"
#include "pilot/store.h"

struct local_api {
	struct pilot_api base;
	struct pilot_store *st;
	bool auto_reap;
	int64_t last_reap_check;
};

static struct local_api *L(struct pilot_api *api)
{
	return (struct local_api *)api;
}

/* At most a cheap probe per 250 ms, and a write only when the probe finds work. */
static void maybe_reap(struct local_api *l)
{
	if (!l->auto_reap)
		return;
	/* Atomics: one api may serve several threads (the store serializes the rest). */
	int64_t now = pilot_mono_ms();
	int64_t last = __atomic_load_n(&l->last_reap_check, __ATOMIC_RELAXED);
	if (last && now - last < 250)
		return;
	if (!__atomic_compare_exchange_n(&l->last_reap_check, &last, now, false, __ATOMIC_RELAXED, __ATOMIC_RELAXED))
		return;
	if (pilot_store_reap_due(l->st)) {
		/* A failed reap must not fail the caller's read: report it and go on. */
		if (pilot_store_reap(l->st) < 0)
			pilot_log(PILOT_LOG_DEBUG, "reaping failed: %s", pilot_error_last());
		pilot_error_clear();
	}
}

static void sleep_ms(int64_t ms)
{
	struct timespec ts = { (time_t)(ms / 1000), (long)(ms % 1000) * 1000000L };
	nanosleep(&ts, NULL);
}

/* The polling interval grows from 5 ms to 100 ms while nothing happens. */
static int64_t next_interval(int64_t cur)
{
	return cur < 5 ? 5 : cur * 2 > 100 ? 100 : cur * 2;
}

static int l_submit(struct pilot_api *api, const struct pilot_submit_request *req, struct pilot_run *out)
{
	/* Nothing is queued that no agent could start: the spec is decoded as an agent
	 * will decode it, and a mistake is refused now, naming the field. (The server
	 * submits through this transport too, so REST clients get the same check.) */
	if (req->spec_json) {
		struct pilot_spec *spec = NULL;
		if (pilot_spec_from_json(req->spec_json, &spec) < 0)
			return pilot_error_code();
		pilot_spec_free(spec);
	}
	return pilot_store_submit(L(api)->st, req, out);
}

static int l_submit_array(struct pilot_api *api, const struct pilot_array_request *req, struct pilot_array *out)
{
	const char *last = NULL;
	for (size_t i = 0; i <= req->nelements; i++) {
		const char *spec = i < req->nelements ? req->elements[i].spec_json : req->base.spec_json;
		struct pilot_spec *parsed = NULL;
		/* Elements mostly share the base's spec: each distinct one is checked once. */
		if (!spec || (last && !strcmp(spec, last)))
			continue;
		if (pilot_spec_from_json(spec, &parsed) < 0)
			return i < req->nelements ? pilot_error_prefix(pilot_error_code(), "array element %lld",
								       (long long)req->elements[i].index)
						  : pilot_error_code();
		pilot_spec_free(parsed);
		last = spec;
	}
	return pilot_store_submit_array(L(api)->st, req, out);
}

static int l_submit_pipeline(struct pilot_api *api, const struct pilot_pipeline_request *req, struct pilot_array *out)
{
	for (size_t i = 0; i < req->njobs; i++) {
		struct pilot_spec *parsed = NULL;
		if (req->jobs[i].run.spec_json && pilot_spec_from_json(req->jobs[i].run.spec_json, &parsed) < 0)
			return pilot_error_prefix(pilot_error_code(), "job '%s'",
						  req->jobs[i].run.name ? req->jobs[i].run.name : "");
		pilot_spec_free(parsed);
	}
	return pilot_store_submit_pipeline(L(api)->st, req, out);
}

static int l_get_array(struct pilot_api *api, const char *array, struct pilot_array *out)
{
	return pilot_store_get_array(L(api)->st, array, out);
}

static int l_cancel_array(struct pilot_api *api, const char *array, const char *actor, int64_t grace_ms,
			  struct pilot_array *out)
{
	return pilot_store_cancel_array(L(api)->st, array, actor, grace_ms, out);
}

static int l_retry_array(struct pilot_api *api, const char *array, const char *actor, struct pilot_array *out)
{
	return pilot_store_retry_array(L(api)->st, array, actor, out);
}

static int l_get_run(struct pilot_api *api, const char *run, struct pilot_run *out)
{
	maybe_reap(L(api));
	return pilot_store_get_run(L(api)->st, run, out);
}

static int l_list_runs(struct pilot_api *api, const struct pilot_run_filter *f, struct pilot_run_list *out)
{
	maybe_reap(L(api));
	return pilot_store_list_runs(L(api)->st, f, out);
}

static int l_cancel(struct pilot_api *api, const char *run, const char *actor, int64_t grace_ms,
		    struct pilot_run *out)
{
	maybe_reap(L(api));
	return pilot_store_cancel(L(api)->st, run, actor, grace_ms, out);
}

static int l_retry(struct pilot_api *api, const char *run, const char *actor, struct pilot_run *out)
{
	maybe_reap(L(api));
	return pilot_store_retry(L(api)->st, run, actor, out);
}

static int l_read_logs(struct pilot_api *api, const struct pilot_log_request *req, struct pilot_log_chunk *out)
{
	struct local_api *l = L(api);
	struct pilot_log_request q = *req;
	int64_t deadline = pilot_mono_ms() + (req->wait_ms > 0 ? req->wait_ms : 0);
	int64_t interval = 0;
	for (;;) {
		maybe_reap(l);
		struct pilot_log_chunk c = { 0 };
		int r = pilot_store_read_logs(l->st, &q, &c);
		if (r < 0)
			return r;
		/* Pin the attempt once there is one, so the offset keeps meaning. */
		if (q.attempt == 0 && c.attempt > 0)
			q.attempt = c.attempt;
		bool done = c.data.len > 0 || c.complete || c.latest_attempt > c.attempt ||
			    (pilot_run_state_terminal(c.run_state) && c.attempt == 0);
		if (done || req->wait_ms <= 0 || pilot_mono_ms() >= deadline) {
			*out = c;
			return 0;
		}
		pilot_log_chunk_clear(&c);
		interval = next_interval(interval);
		int64_t left = deadline - pilot_mono_ms();
		sleep_ms(interval < left ? interval : left > 0 ? left : 0);
	}
}

static int l_list_events(struct pilot_api *api, const struct pilot_event_filter *f, int64_t wait_ms,
			 struct pilot_event_list *out)
{
	struct local_api *l = L(api);
	int64_t deadline = pilot_mono_ms() + (wait_ms > 0 ? wait_ms : 0);
	int64_t interval = 0, seen = -1;
	for (;;) {
		maybe_reap(l);
		int64_t last = 0;
		int r = pilot_store_last_event_seq(l->st, &last);
		if (r < 0)
			return r;
		/* Query only when something new was written since the last look. */
		if (last != seen) {
			seen = last;
			struct pilot_event_list ev = { 0 };
			r = pilot_store_list_events(l->st, f, &ev);
			if (r < 0)
				return r;
			if (ev.n > 0 || wait_ms <= 0 || pilot_mono_ms() >= deadline) {
				*out = ev;
				return 0;
			}
			pilot_event_list_clear(&ev);
		}
		if (pilot_mono_ms() >= deadline) {
			struct pilot_event_list empty = { .last_seq = f ? f->after_seq : 0 };
			*out = empty;
			return 0;
		}
		interval = next_interval(interval);
		int64_t left = deadline - pilot_mono_ms();
		sleep_ms(interval < left ? interval : left > 0 ? left : 0);
	}
}

static int l_list_artifacts(struct pilot_api *api, const char *run, int attempt, struct pilot_artifact_list *out)
{
	return pilot_store_list_artifacts(L(api)->st, run, attempt, out);
}

static int l_get_artifact(struct pilot_api *api, const char *run, const char *path, int attempt, int *fd,
			  struct pilot_artifact *meta)
{
	return pilot_store_get_artifact(L(api)->st, run, path, attempt, fd, meta);
}

static int l_get_metrics(struct pilot_api *api, const char *run, int attempt, struct pilot_metric_list *out)
{
	return pilot_store_get_metrics(L(api)->st, run, attempt, out);
}

static int l_list_agents(struct pilot_api *api, struct pilot_agent_list *out)
{
	maybe_reap(L(api));
	return pilot_store_list_agents(L(api)->st, true, out);
}

static int l_get_agent(struct pilot_api *api, const char *name, struct pilot_agent_info *out)
{
	maybe_reap(L(api));
	return pilot_store_get_agent(L(api)->st, name, out);
}

static int l_control_agent(struct pilot_api *api, const char *name, const char *action, bool now,
			   const char *actor, struct pilot_agent_info *out)
{
	return pilot_store_agent_control(L(api)->st, name, action, now, actor, out);
}

static int l_schedule_agent(struct pilot_api *api, const char *name, const char *windows, const char *tz,
			    struct pilot_agent_info *out)
{
	return pilot_store_agent_schedule(L(api)->st, name, windows, tz, out);
}

static int l_list_blocklist(struct pilot_api *api, struct pilot_block_list *out)
{
	return pilot_store_list_blocklist(L(api)->st, out);
}

static int l_clear_blocklist(struct pilot_api *api, const char *agent, const char *name, int *cleared)
{
	return pilot_store_clear_blocklist(L(api)->st, agent, name, cleared);
}

static int l_status(struct pilot_api *api, struct pilot_status *out)
{
	maybe_reap(L(api));
	return pilot_store_status(L(api)->st, out);
}

static int l_bundle_has(struct pilot_api *api, const char *sha256)
{
	return pilot_store_bundle_has(L(api)->st, sha256);
}

static int l_bundle_put(struct pilot_api *api, const char *sha256, int fd)
{
	return pilot_store_bundle_put(L(api)->st, sha256, fd);
}

static int l_bundle_get(struct pilot_api *api, const char *sha256, int *fd)
{
	return pilot_store_bundle_get(L(api)->st, sha256, fd);
}

static int l_register_agent(struct pilot_api *api, const struct pilot_agent_info *info)
{
	return pilot_store_register_agent(L(api)->st, info);
}

static int l_agent_leave(struct pilot_api *api, const char *agent)
{
	return pilot_store_agent_leave(L(api)->st, agent);
}

static int l_claim(struct pilot_api *api, const struct pilot_claim_request *req, struct pilot_claim *out)
{
	struct local_api *l = L(api);
	int64_t deadline = pilot_mono_ms() + (req->wait_ms > 0 ? req->wait_ms : 0);
	int64_t interval = 0, tried_at = -1;
	bool told = false;
	for (;;) {
		maybe_reap(l);
		int64_t seq = 0;
		int r = pilot_store_last_event_seq(l->st, &seq);
		if (r < 0)
			return r;
		bool last_try = pilot_mono_ms() >= deadline;
		/* A claim is a write: try again only when something happened (every new,
		 * requeued or released run writes an event), and once more at the end,
		 * which also marks the agent seen. */
		/* A drained or sleeping agent asks each time: being resumed writes no event. */
		if (seq != tried_at || last_try || told) {
			tried_at = seq;
			r = pilot_store_claim(l->st, req, out);
			if (r != 0 || last_try || out->command == PILOT_CONTROL_SHUTDOWN)
				return r;
			told = out->command != PILOT_CONTROL_NONE;
		}
		interval = next_interval(interval);
		int64_t left = deadline - pilot_mono_ms();
		sleep_ms(interval < left ? interval : left > 0 ? left : 0);
	}
}

static int l_heartbeat(struct pilot_api *api, const char *attempt_id, const char *token,
		       struct pilot_heartbeat_reply *reply)
{
	return pilot_store_heartbeat(L(api)->st, attempt_id, token, reply);
}

static int l_append_log(struct pilot_api *api, const char *attempt_id, const char *token, int64_t offset,
			const void *data, size_t len, int64_t *expected_offset)
{
	return pilot_store_append_log(L(api)->st, attempt_id, token, offset, data, len, expected_offset);
}

static int l_put_artifact(struct pilot_api *api, const char *attempt_id, const char *token, const char *path, int fd)
{
	return pilot_store_put_artifact(L(api)->st, attempt_id, token, path, fd);
}

static int l_put_metrics(struct pilot_api *api, const char *attempt_id, const char *token, int64_t first_index,
			 const struct pilot_metric *items, size_t n, int64_t *expected_index)
{
	return pilot_store_put_metrics(L(api)->st, attempt_id, token, first_index, items, n, expected_index);
}

static int l_finish(struct pilot_api *api, const char *attempt_id, const char *token,
		    const struct pilot_finish *outcome, struct pilot_run *run)
{
	return pilot_store_finish(L(api)->st, attempt_id, token, outcome, run);
}

static int l_reap(struct pilot_api *api)
{
	return pilot_store_reap(L(api)->st);
}

static void l_close(struct pilot_api *api)
{
	struct local_api *l = L(api);
	pilot_store_close(l->st);
	free(l);
}

static const struct pilot_api_ops local_ops = {
	.name = "local",
	.submit = l_submit,
	.submit_array = l_submit_array,
	.submit_pipeline = l_submit_pipeline,
	.get_array = l_get_array,
	.cancel_array = l_cancel_array,
	.retry_array = l_retry_array,
	.get_run = l_get_run,
	.list_runs = l_list_runs,
	.cancel = l_cancel,
	.retry = l_retry,
	.read_logs = l_read_logs,
	.list_events = l_list_events,
	.list_artifacts = l_list_artifacts,
	.get_artifact = l_get_artifact,
	.get_metrics = l_get_metrics,
	.list_agents = l_list_agents,
	.get_agent = l_get_agent,
	.control_agent = l_control_agent,
	.schedule_agent = l_schedule_agent,
	.list_blocklist = l_list_blocklist,
	.clear_blocklist = l_clear_blocklist,
	.status = l_status,
	.bundle_has = l_bundle_has,
	.bundle_put = l_bundle_put,
	.bundle_get = l_bundle_get,
	.register_agent = l_register_agent,
	.agent_leave = l_agent_leave,
	.claim = l_claim,
	.heartbeat = l_heartbeat,
	.append_log = l_append_log,
	.put_artifact = l_put_artifact,
	.put_metrics = l_put_metrics,
	.finish = l_finish,
	.reap = l_reap,
	.close = l_close,
};

int pilot_api_open_local(const char *data_dir, const struct pilot_local_options *opts, struct pilot_api **out)
{
	_cleanup_free_ char *dir = NULL;
	if (data_dir && *data_dir)
		dir = pilot_xstrdup(data_dir);
	else if (getenv("PILOT_DATA_DIR") && *getenv("PILOT_DATA_DIR"))
		dir = pilot_xstrdup(getenv("PILOT_DATA_DIR"));
	else
		dir = pilot_data_home();
	struct local_api *l = pilot_xcalloc(1, sizeof(*l));
	l->base.ops = &local_ops;
	l->auto_reap = !(opts && opts->no_auto_reap);
	int r = pilot_store_open(dir, opts, &l->st);
	if (r < 0) {
		free(l);
		return r;
	}
	*out = &l->base;
	return 0;
}

struct pilot_store *pilot_api_local_store(struct pilot_api *api)
{
	return api && api->ops == &local_ops ? L(api)->st : NULL;
}
