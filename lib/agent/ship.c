/* An attempt's link to the server while it runs: its log and metrics shipped as they
 * come (byte offsets, retried with backoff), the heartbeat that renews the lease and
 * hears a cancel, and the artifacts uploaded at the end. */
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "internal.h"

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
		exec_fatal(e, PILOT_EXEC_LEASE_LOST);
	}
	return e->stop;
}

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
	} else if (exec_superseded(r, expected)) {
		pilot_log(PILOT_LOG_WARN, "attempt %s: %s", e->claim->attempt_id, pilot_error_last());
		exec_fatal(e, PILOT_EXEC_SUPERSEDED);
	} else if (r == PILOT_ECONFLICT && expected > offset && expected <= offset + (int64_t)len) {
		/* The server has part of this batch already: go on from where it is. */
		pilot_buf_consume(&e->log, (size_t)(expected - offset));
		e->log_base = expected;
	} else if (!exec_transient(r)) {
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
	} else if (exec_superseded(r, expected)) {
		pilot_log(PILOT_LOG_WARN, "attempt %s: %s", e->claim->attempt_id, pilot_error_last());
		exec_fatal(e, PILOT_EXEC_SUPERSEDED);
	} else if (r == PILOT_ECONFLICT && expected > first && expected <= first + (int64_t)n) {
		done = (size_t)(expected - first);
	} else if (!exec_transient(r)) {
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

void *exec_shipper(void *arg)
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
			exec_wait_until(&e->cond, &e->lock, now + 1000);
			continue;
		}
		int64_t due = e->last_ship + PILOT_AGENT_SHIP_INTERVAL_MS;
		bool partial = e->log.len && e->log.data[e->log.len - 1] != '\n';
		if (partial && due < e->pending_since + LINGER_MS)
			due = e->pending_since + LINGER_MS;
		if (!e->job_done && e->log.len < PILOT_AGENT_SHIP_BYTES && now < due) {
			exec_wait_until(&e->cond, &e->lock, due);
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
		if (exec_hurry(e) && e->job_done)
			break;
		exec_wait_until(&e->cond, &e->lock, pilot_mono_ms() + exec_jitter(backoff));
		backoff = exec_next_backoff(backoff);
	}
	pthread_mutex_unlock(&e->lock);
	return NULL;
}

/* The run's cancel, as a heartbeat brings it: the first one stops the job with the
 * grace it asked for (or the agent's own), a later one with a shorter grace hurries
 * the stop. Called with e->lock held. */
static void heed_cancel(struct exec *e, int64_t grace_ms, bool requeue)
{
	if (grace_ms < 0)
		grace_ms = PILOT_CANCEL_GRACE_AGENT;
	if (e->cancel_requested &&
	    (grace_ms < 0 || (e->cancel_grace_ms >= 0 && grace_ms >= e->cancel_grace_ms)))
		return;
	char d[32] = "the agent's own";
	if (grace_ms >= 0)
		pilot_format_duration(grace_ms, d, sizeof(d));
	if (requeue && !e->cancel_requested)
		pilot_log(PILOT_LOG_NOTICE, "run %s: stopping it to be requeued: this agent was told to stop at once "
					    "(grace %s)", e->claim->run.id, d);
	else
		pilot_log(PILOT_LOG_NOTICE, "run %s: cancel %s (grace %s)", e->claim->run.id,
			  e->cancel_requested ? "hurried" : "requested", d);
	if (!e->cancel_requested)
		e->requeue = requeue;
	e->cancel_requested = true;
	e->cancel_grace_ms = grace_ms;
	if (e->ctl)
		pilot_job_control_cancel_grace(e->ctl, grace_ms);
}

void *exec_heartbeat(void *arg)
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
			exec_wait_until(&e->hb_cond, &e->lock, next);
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
				heed_cancel(e, reply.cancel_grace_ms, reply.requeue);
		} else if (exec_superseded(r, -1) && e->reporting) {
			/* Maybe our own finish got through and only its answer was lost: the
			 * replay of the finish tells. */
			break;
		} else if (exec_superseded(r, -1)) {
			pilot_log(PILOT_LOG_WARN, "attempt %s: %s", e->claim->attempt_id, pilot_error_last());
			exec_fatal(e, PILOT_EXEC_SUPERSEDED);
		} else if (!check_lease(e, true)) {
			pilot_log(PILOT_LOG_INFO, "attempt %s: heartbeat failed, retrying: %s", e->claim->attempt_id,
				  pilot_error_last());
			next = pilot_mono_ms() + retry;
		}
	}
	pthread_mutex_unlock(&e->lock);
	return NULL;
}

void exec_on_output(int stream, const char *data, size_t len, void *ud)
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

void exec_on_metric(const char *json, void *ud)
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
		if (exec_superseded(q, -1)) {
			pilot_log(PILOT_LOG_WARN, "attempt %s: %s", e->claim->attempt_id, pilot_error_last());
			exec_fatal_locked(e, PILOT_EXEC_SUPERSEDED);
			return q;
		}
		_cleanup_free_ char *what = pilot_xasprintf("uploading '%s'", path);
		if (!exec_retry_wait(e, q, start, &backoff, what))
			return q;
	}
}

void exec_upload_artifacts(struct exec *e, const char *ws, const struct pilot_spec *spec,
			     struct pilot_exec_result *res)
{
	struct pilot_artifact_files files = { 0 };
	if (pilot_artifacts_collect(ws, (const char *const *)spec->artifacts, spec->nartifacts, &files) < 0) {
		pilot_log(PILOT_LOG_WARN, "run %s: artifacts not collected: %s", e->claim->run.id, pilot_error_last());
		return;
	}
	for (size_t i = 0; i < files.n && !exec_stopped(e); i++) {
		_cleanup_free_ char *full = pilot_path_join(ws, files.items[i].path);
		if (upload_artifact(e, files.items[i].path, full) < 0) {
			if (!exec_stopped(e))
				pilot_log(PILOT_LOG_WARN, "run %s: artifact '%s' not uploaded: %s", e->claim->run.id,
					  files.items[i].path, pilot_error_last());
		} else {
			res->artifacts++;
		}
	}
	pilot_artifact_files_free(&files);
}

void exec_stop_heartbeat(struct exec *e, pthread_t t)
{
	pthread_mutex_lock(&e->lock);
	e->finished = true;
	pthread_cond_broadcast(&e->hb_cond);
	pthread_mutex_unlock(&e->lock);
	pthread_join(t, NULL);
}
