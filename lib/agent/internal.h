/* lib/agent's insides: one claimed attempt (struct exec), shared by exec.c (the attempt
 * from start to finish), ship.c (log, metrics, heartbeats, artifacts) and workspace.c
 * (the bundle and the job's environment).
 *
 * Three threads: the caller's runs the job, a shipper sends log/metric batches, a
 * heartbeat keeps the lease. Calls on the main api are serialised by one lock (the
 * heartbeat may have an api of its own); waiting and backoff happen outside it.
 *
 * Failures of a call are of three kinds: superseded (409 for the lease, or the attempt
 * is gone) stops everything and drops the results; passing ones (server away, dropped
 * connection, 5xx) are retried with backoff for as long as the lease holds; the rest
 * (refused input) are not retried. */
#ifndef PILOT_AGENT_INTERNAL_H
#define PILOT_AGENT_INTERNAL_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "pilot/agent.h"
#include "pilot/spec.h"

/* Output waiting to be shipped beyond this blocks the job's output (backpressure) rather
 * than growing without bound while the server is away. */
#define MAX_PENDING_LOG (64u * 1024 * 1024)
#define MAX_BATCH (1024u * 1024)
#define MAX_METRIC_BATCH 500
/* A line written in pieces (print's arguments one write each) is given this long to
 * complete before a batch goes out without it. */
#define LINGER_MS 20
#define BACKOFF_MIN_MS 50
#define BACKOFF_MAX_MS 2000
#define PID_FILE "job.pid"

struct exec {
	const struct pilot_exec_opts *o;
	const struct pilot_claim *claim;
	struct pilot_job_control *ctl;
	pthread_mutex_t api_lock;
	int64_t heartbeat_ms, give_up_ms;
	const char *dir;      /* the attempt's directory */

	pthread_mutex_t lock; /* everything below */
	pthread_cond_t cond;  /* shipper and backpressure */
	pthread_cond_t hb_cond;
	struct pilot_buf log; /* unacknowledged output; log.data[0] is at offset log_base */
	int64_t log_base;
	char **metrics;       /* unacknowledged metrics; metrics[0] has index metric_base */
	size_t nmetrics;
	int64_t metric_base;
	int64_t last_ship;    /* monotonic ms the latest batch left */
	int64_t pending_since; /* monotonic ms the oldest unshipped output came */
	bool job_done;        /* no more output will come */
	bool finished;        /* the end was reported (or given up): the heartbeat stops */
	bool stop;            /* superseded or lease lost: write nothing more */
	enum pilot_exec_outcome fatal;
	bool cancel_requested;
	bool requeue;         /* ... to put the run back in the queue (agent drained at once) */
	int64_t cancel_grace_ms; /* the grace the run's cancel asked for (PILOT_CANCEL_GRACE_AGENT) */
	bool reporting;       /* a finish went out: its answer decides, not a heartbeat's */
	int64_t last_renew;   /* monotonic ms */
	int64_t hb_call_start; /* when the heartbeat in flight went out; 0 = none */
	bool log_broken;      /* the server refused our offsets in a way we cannot repair */
};

/* ---- exec.c: shared helpers ---- */

/* Wait on c until the monotonic time `until` (ms), or a signal of c. */
void exec_wait_until(pthread_cond_t *c, pthread_mutex_t *m, int64_t until);
/* A wait of ms: somewhere between half of it and all of it. */
int64_t exec_jitter(int64_t ms);
/* The next retry's wait: doubled, up to BACKOFF_MAX_MS. */
int64_t exec_next_backoff(int64_t b);
/* The agent is stopping: give up retrying. */
bool exec_hurry(const struct exec *e);
/* A refusal that means another attempt owns the run (or this one is gone); a refusal
 * that carries an expected offset (>= 0) is about the bytes instead. */
bool exec_superseded(int r, int64_t expected);
/* Worth trying again: the server or the link is away or failed for a passing reason. */
bool exec_transient(int r);
/* Stop everything for why (the first reason stays): exec_fatal with e->lock held,
 * exec_fatal_locked taking it. */
void exec_fatal(struct exec *e, enum pilot_exec_outcome why);
void exec_fatal_locked(struct exec *e, enum pilot_exec_outcome why);
bool exec_stopped(struct exec *e);
/* After a failed call r of a retried step (what: "fetching the bundle") that began at
 * start (monotonic ms): false when it is not worth another try (not a passing failure,
 * the attempt stopped, the agent in a hurry, give_up_ms spent), the error left as it
 * is; else say so, wait a jittered *backoff, double it, and return true. */
bool exec_retry_wait(struct exec *e, int r, int64_t start, int64_t *backoff, const char *what);

/* ---- ship.c ---- */

/* Thread mains: the shipper of log and metric batches, the heartbeat. */
void *exec_shipper(void *arg);
void *exec_heartbeat(void *arg);
/* End the heartbeat thread t (the attempt is finished) and join it. */
void exec_stop_heartbeat(struct exec *e, pthread_t t);
/* The job's output and metric lines, queued for the shipper (the runtime's callbacks). */
void exec_on_output(int stream, const char *data, size_t len, void *ud);
void exec_on_metric(const char *json, void *ud);
/* Upload the files the spec's artifacts name, from the workspace ws. */
void exec_upload_artifacts(struct exec *e, const char *ws, const struct pilot_spec *spec,
			   struct pilot_exec_result *res);

/* ---- workspace.c ---- */

/* Extract the run's bundle into ws. Returns 0, or a negative code with *invalid telling
 * whether the bundle itself is at fault (bundle_invalid) or fetching it failed. */
int exec_prepare_workspace(struct exec *e, const char *ws, bool *invalid);

/* A growing NULL-terminated list of owned strings (the job's argv and environment). */
struct strv {
	char **v;
	size_t n;
};
void exec_strv_add(struct strv *s, char *owned);
void exec_strv_free(struct strv *s);
/* KEY=VALUE for every member of a JSON object of overrides. */
int exec_add_json_env(struct strv *env, const char *json);

#endif
