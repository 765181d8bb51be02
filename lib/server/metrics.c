/* GET /metrics: the server's counters and the store's gauges in the Prometheus text
 * exposition format (version 0.0.4), checked by `promtool check metrics` in the e2e
 * tests. Counters are atomics bumped by the request threads; gauges are read from the
 * store at scrape time. */
#include <string.h>

#include "internal.h"
#include "pilot/version.h"

static const unsigned status_slots[N_STATUS_SLOTS] = {
	200, 201, 204, 206, 301, 304, 400, 401, 403, 404, 405, 409, 413, 416, 422, 429, 500, 502, 503, 0,
};

/* Seconds. */
const double server_latency_buckets[N_LATENCY_BUCKETS] = {
	0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10, 30, 60, 300,
};

int metrics_status_slot(unsigned status)
{
	for (int i = 0; i < N_STATUS_SLOTS - 1; i++)
		if (status_slots[i] == status)
			return i;
	return N_STATUS_SLOTS - 1;
}

void metrics_observe_claim(struct metrics *m, int64_t latency_ms)
{
	double s = (double)latency_ms / 1000.0;
	for (int i = 0; i < N_LATENCY_BUCKETS; i++)
		if (s <= server_latency_buckets[i])
			atomic_fetch_add(&m->latency_buckets[i], 1);
	atomic_fetch_add(&m->latency_count, 1);
	atomic_fetch_add(&m->latency_sum_us, (unsigned long long)latency_ms * 1000ULL);
}

static void head(struct pilot_buf *b, const char *name, const char *type, const char *help)
{
	pilot_buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

int metrics_render(struct server *srv, struct pilot_buf *b)
{
	struct metrics *m = &srv->m;
	struct pilot_status st = { 0 };
	int r = pilot_api_status(srv->api, &st);
	if (r < 0)
		return r;

	head(b, "pilot_build_info", "gauge", "Version of the answering pilot server.");
	pilot_buf_printf(b, "pilot_build_info{version=\"%s\"} 1\n", pilot_version());
	head(b, "pilot_server_start_time_seconds", "gauge", "When the server started, seconds since the epoch.");
	pilot_buf_printf(b, "pilot_server_start_time_seconds %.3f\n", (double)srv->started_ms / 1000.0);

	head(b, "pilot_runs", "gauge", "Runs by state.");
	for (int s = 0; s < PILOT_RUN_NSTATES; s++)
		pilot_buf_printf(b, "pilot_runs{state=\"%s\"} %lld\n", pilot_run_state_name((enum pilot_run_state)s),
				 (long long)st.counts[s]);
	head(b, "pilot_oldest_queued_age_seconds", "gauge", "Age of the oldest queued run (0 when none is queued).");
	double age = st.oldest_queued_ms ? (double)(st.now_ms - st.oldest_queued_ms) / 1000.0 : 0.0;
	pilot_buf_printf(b, "pilot_oldest_queued_age_seconds %.3f\n", age < 0 ? 0.0 : age);
	head(b, "pilot_agents", "gauge", "Agents by state.");
	pilot_buf_printf(b, "pilot_agents{state=\"idle\"} %d\npilot_agents{state=\"busy\"} %d\n"
			 "pilot_agents{state=\"lost\"} %d\npilot_agents{state=\"paused\"} %d\n",
			 st.agents_idle, st.agents_busy, st.agents_lost, st.agents_paused);
	pilot_status_clear(&st);

	head(b, "pilot_claims_total", "counter", "Attempts handed to agents.");
	pilot_buf_printf(b, "pilot_claims_total %llu\n", (unsigned long long)atomic_load(&m->claims_total));
	head(b, "pilot_claim_latency_seconds", "histogram",
	     "Time from a run's submission (or the end of its not_before wait) to the claim of its first attempt.");
	for (int i = 0; i < N_LATENCY_BUCKETS; i++)
		pilot_buf_printf(b, "pilot_claim_latency_seconds_bucket{le=\"%g\"} %llu\n", server_latency_buckets[i],
				 (unsigned long long)atomic_load(&m->latency_buckets[i]));
	unsigned long long count = atomic_load(&m->latency_count);
	pilot_buf_printf(b, "pilot_claim_latency_seconds_bucket{le=\"+Inf\"} %llu\n", count);
	pilot_buf_printf(b, "pilot_claim_latency_seconds_sum %.6f\n",
			 (double)atomic_load(&m->latency_sum_us) / 1000000.0);
	pilot_buf_printf(b, "pilot_claim_latency_seconds_count %llu\n", count);

	head(b, "pilot_log_bytes_appended_total", "counter", "Log bytes accepted from agents (replays included).");
	pilot_buf_printf(b, "pilot_log_bytes_appended_total %llu\n", (unsigned long long)atomic_load(&m->log_bytes_total));

	head(b, "pilot_http_requests_total", "counter", "HTTP requests answered, by route pattern and status.");
	for (size_t i = 0; i <= PILOT_NROUTES; i++) {
		const char *method = i < PILOT_NROUTES ? pilot_routes[i].method : "any";
		const char *route = i < PILOT_NROUTES ? pilot_routes[i].pattern : "unmatched";
		for (int s = 0; s < N_STATUS_SLOTS; s++) {
			unsigned long long n = atomic_load(&m->routes[i].by_status[s]);
			if (!n)
				continue;
			if (status_slots[s])
				pilot_buf_printf(b, "pilot_http_requests_total{method=\"%s\",route=\"%s\",code=\"%u\"} %llu\n",
						 method, route, status_slots[s], n);
			else
				pilot_buf_printf(b,
						 "pilot_http_requests_total{method=\"%s\",route=\"%s\",code=\"other\"} %llu\n",
						 method, route, n);
		}
	}
	head(b, "pilot_http_response_bytes_total", "counter", "Bytes of response bodies queued.");
	pilot_buf_printf(b, "pilot_http_response_bytes_total %llu\n",
			 (unsigned long long)atomic_load(&m->bytes_sent_total));
	head(b, "pilot_http_requests_in_flight", "gauge", "Requests being handled, long-polls included.");
	pilot_buf_printf(b, "pilot_http_requests_in_flight %lld\n", (long long)atomic_load(&m->in_flight));
	pthread_mutex_lock(&srv->lock);
	size_t waiting = srv->nwaiting;
	pthread_mutex_unlock(&srv->lock);
	head(b, "pilot_http_suspended_connections", "gauge",
	     "Long-polling requests (claims, log follows, event waits and streams) parked without a thread.");
	pilot_buf_printf(b, "pilot_http_suspended_connections %zu\n", waiting);
	return 0;
}
