/* api: the one interface every user-facing operation goes through (design §3), the
 * model it speaks (runs, attempts, events, agents, artifacts, metrics), and the JSON
 * form of that model. Two transports implement struct pilot_api_ops: "local" (the
 * SQLite store in-process, lib/api/local.c) and "http" (the REST API of design §6).
 * Semantics live in the store; a transport only carries calls. One conformance suite
 * (tests/conformance) runs unchanged against both.
 *
 * Conventions for every call:
 *  - returns 0 (or a documented non-negative value) or a negative PILOT_E* code with a
 *    message (pilot_error_last());
 *  - a RUN argument accepts a full id or a unique prefix; an unknown one gives
 *    PILOT_ENOTFOUND, an ambiguous one PILOT_EAMBIGUOUS with the candidates in the message;
 *  - out structs are filled only on success and are owned by the caller: release them with
 *    the matching *_clear() (which accepts zeroed or already-cleared structs);
 *  - times are milliseconds since the epoch (0 = unset), durations milliseconds;
 *  - an agent's writes carry the attempt id and its lease token; a write for an attempt
 *    that is no longer the run's live one gives PILOT_ECONFLICT with a message
 *    "attempt 'ID' superseded..." and changes nothing.
 */
#ifndef PILOT_API_H
#define PILOT_API_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "pilot/util.h"

struct pilot_config;
struct pilot_store;

/* ---- states and reasons (design §4) ---------------------------------------- */

enum pilot_run_state {
	PILOT_RUN_QUEUED = 0,
	PILOT_RUN_WAITING,    /* retry backoff not elapsed, or dependencies unmet */
	PILOT_RUN_RUNNING,
	PILOT_RUN_CANCELING,  /* cancel asked while running; the agent has not finished yet */
	PILOT_RUN_SUCCEEDED,
	PILOT_RUN_FAILED,
	PILOT_RUN_CANCELED,
};
#define PILOT_RUN_NSTATES 7
/* Bit for a state in a state set (struct pilot_run_filter.states). */
#define PILOT_RUN_STATE_BIT(s) (1u << (s))
#define PILOT_RUN_TERMINAL_BITS \
	(PILOT_RUN_STATE_BIT(PILOT_RUN_SUCCEEDED) | PILOT_RUN_STATE_BIT(PILOT_RUN_FAILED) | \
	 PILOT_RUN_STATE_BIT(PILOT_RUN_CANCELED))

/* Why a run (or attempt) ended. A succeeded run has reason exit_code (exit 0). */
enum pilot_reason {
	PILOT_REASON_NONE = 0,   /* not terminal yet */
	PILOT_REASON_EXIT_CODE,
	PILOT_REASON_TIMEOUT,
	PILOT_REASON_LOST,       /* the agent vanished (lease expired) */
	PILOT_REASON_BUNDLE_INVALID,
	PILOT_REASON_RUNTIME_ERROR,
	PILOT_REASON_DEPENDENCY_FAILED,
	PILOT_REASON_CANCELED,
};
#define PILOT_NREASONS 8

/* An attempt is running while its lease is live; then exactly one of the others.
 * lost = its lease expired (the agent vanished); any later write from it is refused. */
enum pilot_attempt_state {
	PILOT_ATTEMPT_RUNNING = 0,
	PILOT_ATTEMPT_SUCCEEDED,
	PILOT_ATTEMPT_FAILED,
	PILOT_ATTEMPT_CANCELED,
	PILOT_ATTEMPT_LOST,
};
#define PILOT_ATTEMPT_NSTATES 5

/* Derived from last-seen and current attempts: lost = not seen for one lease TTL;
 * gone = said goodbye (pilot_api_agent_leave). */
enum pilot_agent_state {
	PILOT_AGENT_IDLE = 0,
	PILOT_AGENT_BUSY,
	PILOT_AGENT_LOST,
	PILOT_AGENT_GONE,
};
#define PILOT_AGENT_NSTATES 4

/* Names as used in JSON, the CLI and the store: "queued", "exit_code", ... The *_from_name
 * functions return 0 and set *out, or PILOT_EINVALID naming the word. */
const char *pilot_run_state_name(enum pilot_run_state s);
int pilot_run_state_from_name(const char *name, enum pilot_run_state *out);
bool pilot_run_state_terminal(enum pilot_run_state s);
const char *pilot_reason_name(enum pilot_reason r);   /* "" for NONE */
int pilot_reason_from_name(const char *name, enum pilot_reason *out);  /* "" -> NONE */
const char *pilot_attempt_state_name(enum pilot_attempt_state s);
int pilot_attempt_state_from_name(const char *name, enum pilot_attempt_state *out);
const char *pilot_agent_state_name(enum pilot_agent_state s);
int pilot_agent_state_from_name(const char *name, enum pilot_agent_state *out);
/* "queued,running" -> a PILOT_RUN_STATE_BIT set; also accepts "terminal" and "active"
 * (queued|waiting|running|canceling). */
int pilot_run_states_parse(const char *list, unsigned *out);

/* ---- key/value lists (labels, requires, secrets) ------------------------------ */

/* struct pilot_kv is in pilot/util.h; in a secrets list the value is NULL when withheld. */
struct pilot_kvs {
	struct pilot_kv *items;
	size_t n;
};
/* Copies both; replaces the value of an existing key; keeps keys sorted. */
void pilot_kvs_set(struct pilot_kvs *kvs, const char *key, const char *value);
/* "key=value" (first '='); PILOT_EINVALID without '=' or with an empty key. */
int pilot_kvs_set_pair(struct pilot_kvs *kvs, const char *pair);
const char *pilot_kvs_get(const struct pilot_kvs *kvs, const char *key);
bool pilot_kvs_has(const struct pilot_kvs *kvs, const char *key);
/* Every key=value of requires present in labels (an empty requires is satisfied). */
bool pilot_kvs_satisfies(const struct pilot_kvs *labels, const struct pilot_kvs *requires);
void pilot_kvs_copy(struct pilot_kvs *dst, const struct pilot_kvs *src);
void pilot_kvs_clear(struct pilot_kvs *kvs);

/* ---- the model ---------------------------------------------------------------- */

enum {
	PILOT_RETRY_ON_EXIT_CODE = 1 << 0,
	PILOT_RETRY_ON_TIMEOUT = 1 << 1,
};

/* max_attempts counts the attempts the user's budget allows (1 = no retry); lost
 * attempts are retried apart from it (up to 3 losses). backoff_ms is the base b:
 * the wait before attempt n+1 is uniform in [0, min(max_backoff_ms, b * 2^(n-1))].
 * In a submit request zeros take the defaults (1 attempt, 5 s, 5 min) and a
 * backoff_ms of PILOT_RETRY_AT_ONCE asks for no wait; a run holds the values in
 * force, where a backoff_ms of 0 is no wait. */
#define PILOT_RETRY_AT_ONCE (-1)
struct pilot_retry_policy {
	int max_attempts;
	unsigned on;            /* PILOT_RETRY_ON_* */
	int64_t backoff_ms;
	int64_t max_backoff_ms;
};
/* "exit_code,timeout" -> mask; PILOT_EINVALID naming an unknown cause. */
int pilot_retry_on_parse(const char *list, unsigned *out);

struct pilot_attempt {
	char id[PILOT_ID_SIZE];       /* 'a' + ... */
	char run_id[PILOT_ID_SIZE];
	int number;                   /* 1, 2, ... within the run */
	char *agent;
	enum pilot_attempt_state state;
	enum pilot_reason reason;     /* NONE while running */
	bool has_exit_code;
	int exit_code;
	char *message;                /* human detail: "image not found", "lease expired" */
	int64_t started_ms;
	int64_t finished_ms;
	int64_t heartbeat_ms;         /* last renewal */
	int64_t lease_expires_ms;
	int64_t log_bytes;
};

struct pilot_run {
	char id[PILOT_ID_SIZE];       /* 'r' + ..., sortable by creation */
	char *name;
	char *spec_json;              /* the spec's normal form; opaque to the store */
	char bundle_sha256[65];       /* "" when the run has no bundle */
	char *params_json;            /* JSON object of overrides, or NULL */
	char *env_json;               /* JSON object of overrides, or NULL */
	struct pilot_kvs requires;    /* agent labels needed */
	/* Secret names; the values are filled only in a claim (for the agent that runs it)
	 * and are never returned by get/list/events nor written by pilot_run_to_json. */
	struct pilot_kvs secrets;
	int priority;                 /* higher first; default 0 */
	enum pilot_run_state state;
	enum pilot_reason reason;     /* set in terminal states */
	char *message;                /* human detail of the reason, or NULL */
	bool has_exit_code;
	int exit_code;                /* of the last attempt that reported one */
	int64_t created_ms;
	int64_t started_ms;           /* first attempt's start */
	int64_t finished_ms;
	int64_t not_before_ms;        /* waiting: when it may be queued again */
	int64_t updated_ms;
	int attempt_count;            /* attempts made so far (= number of the latest) */
	int lost_count;               /* attempts lost (not counted against retry) */
	struct pilot_retry_policy retry;
	int64_t timeout_ms;           /* per attempt; 0 = none */
	char *idempotency_key;
	char *submitter;
	char *retry_of;               /* run id this one re-runs (pilot retry), or NULL */
	bool cancel_requested;
	/* With cancel_requested: the grace period (SIGTERM -> SIGKILL) the cancel asked for,
	 * 0 = kill at once, PILOT_CANCEL_GRACE_AGENT = the agent's own. */
	int64_t cancel_grace_ms;
	bool held;                    /* submitted with hold (see struct pilot_submit_request) */
	char *agent;                  /* agent of the latest attempt, or NULL */
	/* Filled by get_run only (oldest first). */
	struct pilot_attempt *attempts;
	size_t nattempts;
};

/* Event types written by the store (more may come; readers ignore unknown ones):
 *   submitted         the run was created (queued, or waiting for not_before)
 *   claimed           queued -> running, attempt N by an agent
 *   cancel_requested  running -> canceling (data.grace_ms when the cancel asked for one)
 *   cancel_hurried    (no state change) a second cancel shortened the grace: data.grace_ms
 *   canceled          queued/waiting -> canceled
 *   finished          the agent reported the attempt's end (-> terminal)
 *   retry_scheduled   a failed attempt will be retried (-> waiting, data.not_before_ms)
 *   requeued          waiting -> queued (backoff elapsed)
 *   lost              the lease expired (-> queued, or failed/canceled)
 *   timeout           the timeout backstop ended an attempt
 *   retried           (no state change) `pilot retry` made a new run: data.run_id
 *   state             any other transition (administrative)
 * Transition events carry data {"from": STATE, "to": STATE, "reason": REASON, ...}. */
struct pilot_event {
	int64_t seq;                  /* global, strictly increasing in commit order */
	char run_id[PILOT_ID_SIZE];
	int attempt;                  /* attempt number, 0 = none */
	int64_t time_ms;
	char *type;
	char *actor;                  /* who: a user, an agent name, or "pilot" (the reaper) */
	char *message;
	char *data_json;              /* JSON object or NULL */
	enum pilot_run_state state;   /* the run's state right after the event */
};

struct pilot_agent_info {
	char *name;
	struct pilot_kvs labels;
	char *version;
	int capacity;                 /* attempts it runs at once */
	enum pilot_agent_state state; /* derived (ignored on register) */
	char **runs;                  /* runs it holds live attempts of */
	size_t nruns;
	int64_t first_seen_ms;
	int64_t last_seen_ms;
};

struct pilot_artifact {
	char *path;                   /* relative, '/'-separated */
	uint64_t size;
	char sha256[65];              /* the blob holding the bytes */
	int attempt;
	int64_t created_ms;
};

/* One metrics record: a JSON object the job emitted ({"loss": 0.3, "step": 10}). index
 * numbers records within an attempt from 0, making uploads idempotent like log offsets. */
struct pilot_metric {
	int attempt;
	int64_t index;
	int64_t time_ms;              /* 0 on put = now */
	char *json;
};

struct pilot_status {
	char *version;                /* of the answering pilot (the server, or this binary) */
	int64_t now_ms;
	int64_t counts[PILOT_RUN_NSTATES];
	int64_t oldest_queued_ms;     /* created time of the oldest queued run, 0 = none */
	int agents_idle, agents_busy, agents_lost;
};

/* ---- requests and replies --------------------------------------------------- */

/* String fields are borrowed (the api copies what it keeps); kvs are owned by the
 * request and freed by pilot_submit_request_clear(). */
struct pilot_submit_request {
	const char *name;             /* required: [a-z0-9][a-z0-9._-]* */
	const char *spec_json;        /* required: a JSON document */
	const char *bundle_sha256;    /* NULL or "" = no bundle; else must have been put */
	const char *params_json;      /* NULL or a JSON object */
	const char *env_json;         /* NULL or a JSON object */
	struct pilot_kvs requires;
	struct pilot_kvs secrets;     /* name -> value */
	int priority;
	struct pilot_retry_policy retry;
	int64_t timeout_ms;
	int64_t not_before_ms;        /* 0 = now; later = the run waits */
	const char *idempotency_key;  /* NULL = none */
	const char *submitter;        /* NULL = the transport's caller */
	/* Held for its submitter (`pilot run`): only a claim naming the run takes it, and a
	 * lost attempt fails it (lost) instead of requeuing it, since no one else may. */
	bool hold;
};
void pilot_submit_request_clear(struct pilot_submit_request *req);

struct pilot_run_filter {
	unsigned states;              /* PILOT_RUN_STATE_BIT set; 0 = any */
	const char *name;             /* exact name, NULL = any */
	int64_t since_ms;             /* created at or after; 0 = any */
	const char *after;            /* keyset cursor: only runs older than this id */
	size_t limit;                 /* 0 = 50; at most 1000 */
};

struct pilot_run_list {
	struct pilot_run *items;      /* newest first; no attempts, no spec_json */
	size_t n;
	char next_after[PILOT_ID_SIZE]; /* pass as filter.after for the next page; "" = no more */
};

struct pilot_event_filter {
	const char *run;              /* NULL = every run */
	int64_t after_seq;            /* only events with seq > after_seq */
	size_t limit;                 /* 0 = 100; at most 1000 */
};

struct pilot_event_list {
	struct pilot_event *items;    /* ascending seq */
	size_t n;
	int64_t last_seq;             /* the cursor to pass next (after_seq when none) */
};

struct pilot_log_request {
	const char *run;
	int attempt;                  /* 0 = the latest attempt */
	int64_t offset;
	size_t max_bytes;             /* 0 = 1 MiB */
	int64_t wait_ms;              /* > 0: block until bytes past offset exist, the log is
	                               * complete, a newer attempt starts, or this elapses */
};

struct pilot_log_chunk {
	struct pilot_buf data;
	int attempt;                  /* the attempt read (0 when the run has none yet) */
	int64_t offset;               /* where data starts */
	int64_t next_offset;          /* offset + data.len */
	bool complete;                /* the attempt ended and next_offset is its log's end */
	int latest_attempt;           /* lets a follower move on to a newer attempt */
	enum pilot_run_state run_state;
};
void pilot_log_chunk_clear(struct pilot_log_chunk *c);

struct pilot_claim_request {
	const char *agent;            /* required */
	struct pilot_kvs labels;      /* owned; freed by pilot_claim_request_clear() */
	const char *version;          /* agent's pilot version, or NULL */
	int capacity;                 /* total slots (0 = 1) */
	int free_slots;               /* 0 = 1 */
	int64_t wait_ms;              /* long-poll for up to this long when nothing is queued */
	/* Claim this run only (held or not; its requires must still be satisfied); NULL =
	 * the best queued run that is not held. */
	const char *run;
};
void pilot_claim_request_clear(struct pilot_claim_request *req);

struct pilot_claim {
	struct pilot_run run;         /* with spec_json and secret values */
	char attempt_id[PILOT_ID_SIZE];
	int attempt;                  /* number */
	char lease_token[65];
	int64_t lease_ttl_ms;
	int64_t lease_expires_ms;
};
void pilot_claim_clear(struct pilot_claim *c);

/* A cancel that leaves the grace period to the agent that runs the job (its
 * grace_ms: pilot agent's PILOT_CANCEL_GRACE, 10 s by default). */
#define PILOT_CANCEL_GRACE_AGENT (-1)
/* The longest grace a cancel may ask for (a day). */
#define PILOT_CANCEL_GRACE_MAX_MS (24LL * 3600 * 1000)

struct pilot_heartbeat_reply {
	bool cancel_requested;        /* stop the job: SIGTERM, grace, SIGKILL, finish canceled */
	/* With cancel_requested: SIGTERM -> SIGKILL in ms; 0 = SIGKILL at once,
	 * PILOT_CANCEL_GRACE_AGENT = the agent's own. It may shrink from one heartbeat to
	 * the next (a second, hastier cancel); an agent never moves its SIGKILL later. */
	int64_t cancel_grace_ms;
	int64_t lease_expires_ms;
	int64_t lease_ttl_ms;
};

/* How an attempt ended, as the agent reports it:
 *   succeeded: exit 0 (reason exit_code);
 *   failed: reason exit_code (non-zero code), timeout, runtime_error or bundle_invalid;
 *   canceled: after cancel_requested (reason canceled). */
struct pilot_finish {
	enum pilot_attempt_state state;
	enum pilot_reason reason;
	bool has_exit_code;
	int exit_code;
	const char *message;          /* NULL or a human detail */
};

struct pilot_artifact_list {
	struct pilot_artifact *items; /* by attempt, then path */
	size_t n;
};
struct pilot_metric_list {
	struct pilot_metric *items;   /* by attempt, then index */
	size_t n;
};
struct pilot_agent_list {
	struct pilot_agent_info *items; /* by name */
	size_t n;
};

/* Destructors of the model (all accept NULL; they zero what they free). */
void pilot_run_clear(struct pilot_run *r);
void pilot_attempt_clear(struct pilot_attempt *a);
void pilot_event_clear(struct pilot_event *e);
void pilot_agent_info_clear(struct pilot_agent_info *a);
void pilot_artifact_clear(struct pilot_artifact *a);
void pilot_metric_clear(struct pilot_metric *m);
void pilot_status_clear(struct pilot_status *s);
void pilot_run_list_clear(struct pilot_run_list *l);
void pilot_event_list_clear(struct pilot_event_list *l);
void pilot_agent_list_clear(struct pilot_agent_list *l);
void pilot_artifact_list_clear(struct pilot_artifact_list *l);
void pilot_metric_list_clear(struct pilot_metric_list *l);
void pilot_run_copy(struct pilot_run *dst, const struct pilot_run *src);
void pilot_attempt_copy(struct pilot_attempt *dst, const struct pilot_attempt *src);

/* ---- the interface ------------------------------------------------------------ */

struct pilot_api;

struct pilot_api_ops {
	const char *name;   /* "local", "http" */

	/* -- users -- */
	/* Queue a run (waiting when not_before is in the future). With an idempotency key:
	 * the same key and payload again returns the original run (return value 1 instead
	 * of 0); the same key with a different payload is PILOT_ECONFLICT. A bundle that
	 * was not put is PILOT_ENOTFOUND. */
	int (*submit)(struct pilot_api *api, const struct pilot_submit_request *req, struct pilot_run *out);
	/* The run with its attempts (oldest first). */
	int (*get_run)(struct pilot_api *api, const char *run, struct pilot_run *out);
	int (*list_runs)(struct pilot_api *api, const struct pilot_run_filter *f, struct pilot_run_list *out);
	/* queued/waiting -> canceled now; running -> canceling (the agent sees it in its
	 * next heartbeat, with grace_ms: the SIGTERM -> SIGKILL period, 0 = SIGKILL at once,
	 * negative = PILOT_CANCEL_GRACE_AGENT). A run already canceling is hurried when
	 * grace_ms is shorter than the grace asked before (or none was): the new grace is
	 * recorded (event "cancel_hurried") and 0 returned. Otherwise a canceling or
	 * terminal run is left alone: returns 1 (with the run) instead of 0. actor NULL =
	 * the transport's caller. */
	int (*cancel)(struct pilot_api *api, const char *run, const char *actor, int64_t grace_ms,
		      struct pilot_run *out);
	/* A new run from a terminal run's spec, bundle, params, env and secrets (its
	 * retry_of names the old one). A run not yet terminal is PILOT_ECONFLICT. */
	int (*retry)(struct pilot_api *api, const char *run, const char *actor, struct pilot_run *out);
	int (*read_logs)(struct pilot_api *api, const struct pilot_log_request *req, struct pilot_log_chunk *out);
	/* With wait_ms > 0, blocks until at least one event matches or wait_ms elapses
	 * (returning an empty list then). */
	int (*list_events)(struct pilot_api *api, const struct pilot_event_filter *f, int64_t wait_ms,
			   struct pilot_event_list *out);
	/* attempt 0 = every attempt. */
	int (*list_artifacts)(struct pilot_api *api, const char *run, int attempt, struct pilot_artifact_list *out);
	/* An fd open for reading at the start of the bytes (the caller closes it); attempt 0
	 * = the latest attempt that has the path. meta (optional) gets the record. */
	int (*get_artifact)(struct pilot_api *api, const char *run, const char *path, int attempt, int *fd,
			    struct pilot_artifact *meta);
	int (*get_metrics)(struct pilot_api *api, const char *run, int attempt, struct pilot_metric_list *out);
	int (*list_agents)(struct pilot_api *api, struct pilot_agent_list *out);
	int (*status)(struct pilot_api *api, struct pilot_status *out);

	/* -- bundles (content-addressed) -- */
	/* 1 when present, 0 when not. */
	int (*bundle_has)(struct pilot_api *api, const char *sha256);
	/* Reads fd to EOF; PILOT_EINVALID when the bytes do not hash to sha256. Putting a
	 * bundle that is already there is fine. */
	int (*bundle_put)(struct pilot_api *api, const char *sha256, int fd);
	/* An fd for reading (the caller closes it). */
	int (*bundle_get)(struct pilot_api *api, const char *sha256, int *fd);

	/* -- agents -- */
	/* Create or update the agent (labels, version, capacity) and mark it seen. */
	int (*register_agent)(struct pilot_api *api, const struct pilot_agent_info *info);
	/* The agent stops (state gone). Its live attempts keep their leases. */
	int (*agent_leave)(struct pilot_api *api, const char *agent);
	/* Returns 1 with *out filled when a run was claimed, 0 when nothing was claimable
	 * within wait_ms. Marks the agent seen. The best run is the highest priority, then
	 * oldest, queued run whose requires the labels satisfy. */
	int (*claim)(struct pilot_api *api, const struct pilot_claim_request *req, struct pilot_claim *out);
	/* Renews the lease. reply may be NULL. */
	int (*heartbeat)(struct pilot_api *api, const char *attempt_id, const char *token,
			 struct pilot_heartbeat_reply *reply);
	/* Appends len bytes at offset. Bytes already stored at that offset are
	 * acknowledged if identical (only the new tail is added); an offset past the end,
	 * or different bytes, is PILOT_ECONFLICT with *expected_offset (optional) set to
	 * the stored length. After finish only replays of stored bytes are accepted. */
	int (*append_log)(struct pilot_api *api, const char *attempt_id, const char *token, int64_t offset,
			  const void *data, size_t len, int64_t *expected_offset);
	/* Reads fd to EOF into a blob and records path for the attempt (same path again
	 * replaces it). path: relative, no "..", no leading '/'. */
	int (*put_artifact)(struct pilot_api *api, const char *attempt_id, const char *token, const char *path,
			    int fd);
	/* Records n metrics, numbered first_index, first_index+1, ...; the same rules as
	 * append_log (indexes already stored are acknowledged, a gap is PILOT_ECONFLICT
	 * with *expected_index set). items[i].json must be JSON objects. */
	int (*put_metrics)(struct pilot_api *api, const char *attempt_id, const char *token, int64_t first_index,
			   const struct pilot_metric *items, size_t n, int64_t *expected_index);
	/* Ends the attempt and moves the run on (retry, done, canceled). Idempotent: the
	 * same outcome again for a finished attempt returns 0; a different one is
	 * PILOT_ECONFLICT. run (optional) gets the run afterwards. */
	int (*finish)(struct pilot_api *api, const char *attempt_id, const char *token,
		      const struct pilot_finish *outcome, struct pilot_run *run);

	/* -- maintenance -- */
	/* Expired leases -> attempts lost, runs requeued or failed (lost); attempts past
	 * timeout + grace -> failed (timeout); due waiting runs -> queued. Returns the
	 * number of runs changed. The local transport also runs it inside calls. */
	int (*reap)(struct pilot_api *api);

	void (*close)(struct pilot_api *api);
};

/* Every transport embeds this first. */
struct pilot_api {
	const struct pilot_api_ops *ops;
};

/* Thin wrappers over api->ops (same contracts as above). */
int pilot_api_submit(struct pilot_api *api, const struct pilot_submit_request *req, struct pilot_run *out);
int pilot_api_get_run(struct pilot_api *api, const char *run, struct pilot_run *out);
int pilot_api_list_runs(struct pilot_api *api, const struct pilot_run_filter *f, struct pilot_run_list *out);
int pilot_api_cancel(struct pilot_api *api, const char *run, const char *actor, int64_t grace_ms,
		     struct pilot_run *out);
int pilot_api_retry(struct pilot_api *api, const char *run, const char *actor, struct pilot_run *out);
int pilot_api_read_logs(struct pilot_api *api, const struct pilot_log_request *req, struct pilot_log_chunk *out);
int pilot_api_list_events(struct pilot_api *api, const struct pilot_event_filter *f, int64_t wait_ms,
			  struct pilot_event_list *out);
int pilot_api_list_artifacts(struct pilot_api *api, const char *run, int attempt, struct pilot_artifact_list *out);
int pilot_api_get_artifact(struct pilot_api *api, const char *run, const char *path, int attempt, int *fd,
			   struct pilot_artifact *meta);
int pilot_api_get_metrics(struct pilot_api *api, const char *run, int attempt, struct pilot_metric_list *out);
int pilot_api_list_agents(struct pilot_api *api, struct pilot_agent_list *out);
int pilot_api_status(struct pilot_api *api, struct pilot_status *out);
int pilot_api_bundle_has(struct pilot_api *api, const char *sha256);
int pilot_api_bundle_put(struct pilot_api *api, const char *sha256, int fd);
int pilot_api_bundle_get(struct pilot_api *api, const char *sha256, int *fd);
int pilot_api_register_agent(struct pilot_api *api, const struct pilot_agent_info *info);
int pilot_api_agent_leave(struct pilot_api *api, const char *agent);
int pilot_api_claim(struct pilot_api *api, const struct pilot_claim_request *req, struct pilot_claim *out);
int pilot_api_heartbeat(struct pilot_api *api, const char *attempt_id, const char *token,
			struct pilot_heartbeat_reply *reply);
int pilot_api_append_log(struct pilot_api *api, const char *attempt_id, const char *token, int64_t offset,
			 const void *data, size_t len, int64_t *expected_offset);
int pilot_api_put_artifact(struct pilot_api *api, const char *attempt_id, const char *token, const char *path,
			   int fd);
int pilot_api_put_metrics(struct pilot_api *api, const char *attempt_id, const char *token, int64_t first_index,
			  const struct pilot_metric *items, size_t n, int64_t *expected_index);
int pilot_api_finish(struct pilot_api *api, const char *attempt_id, const char *token,
		     const struct pilot_finish *outcome, struct pilot_run *run);
int pilot_api_reap(struct pilot_api *api);
/* Accepts NULL. */
void pilot_api_close(struct pilot_api *api);
PILOT_DEFINE_CLEANUP(struct pilot_api, pilot_api_close)
#define _cleanup_api_ _cleanup_(pilot_api_closep)

/* Conveniences over the calls above (transport-independent). */
int pilot_api_put_artifact_file(struct pilot_api *api, const char *attempt_id, const char *token,
				const char *path, const char *file);
int pilot_api_bundle_put_file(struct pilot_api *api, const char *sha256, const char *file);

/* ---- opening a transport ------------------------------------------------------- */

/* Knobs of the local transport (the server passes its config; tests shorten them).
 * A zero field takes the environment variable named beside it (a duration such as
 * "2s"), else the default. */
struct pilot_local_options {
	int64_t lease_ttl_ms;      /* PILOT_LEASE_TTL, 60s */
	int64_t timeout_grace_ms;  /* PILOT_TIMEOUT_GRACE, 60s: backstop past a run's timeout */
	int64_t reap_delay_ms;     /* PILOT_REAP_DELAY, 0: no reaping until this long after
	                            * open (a restarted server passes one TTL) */
	int64_t backoff_base_ms;   /* PILOT_BACKOFF_BASE, 5s: default retry backoff base */
	int64_t backoff_cap_ms;    /* PILOT_BACKOFF_CAP, 5min: default cap */
	int max_lost;              /* PILOT_MAX_LOST, 3: losses retried before failing (lost) */
	bool no_auto_reap;         /* do not reap inside calls (the server reaps on a timer) */
	const char *actor;         /* default actor/submitter; NULL = $USER@hostname */
	/* PRAGMA quick_check at open: 0 = only for small files (it reads the whole file),
	 * 1 = always (the server at start), -1 = never. */
	int quick_check;
};

/* Open the local store in data_dir (NULL = $PILOT_DATA_DIR, else $XDG_DATA_HOME/pilot),
 * creating it (mode 0700) when missing. opts may be NULL. */
int pilot_api_open_local(const char *data_dir, const struct pilot_local_options *opts, struct pilot_api **out);
/* The store behind a local api (NULL for other transports); for what is not part of the
 * api, such as tokens. The api keeps ownership. */
struct pilot_store *pilot_api_local_store(struct pilot_api *api);

/* Options of the http transport (lib/api/http.c, implemented with the server). */
struct pilot_http_options {
	const char *url;
	const char *token;
	const char *cacert;
};
int pilot_api_open_http(const struct pilot_http_options *opts, struct pilot_api **out);

/* The transport the configuration asks for: a server (flag > env > profile) -> http,
 * else local on data_dir. */
int pilot_api_open_from_config(const struct pilot_config *cfg, struct pilot_api **out);

/* ---- JSON (jansson) --------------------------------------------------------------
 * The wire and --output json form of the model: ids and names as strings, states and
 * reasons by name, times as integer milliseconds ("created_ms") plus nothing else
 * implicit. *_to_json return a new reference. *_from_json accept what *_to_json writes,
 * ignore unknown keys, and return PILOT_EINVALID naming the bad field. Secret values are
 * never written except by pilot_claim_to_json. */
json_t *pilot_run_to_json(const struct pilot_run *r);
int pilot_run_from_json(const json_t *j, struct pilot_run *out);
json_t *pilot_attempt_to_json(const struct pilot_attempt *a);
int pilot_attempt_from_json(const json_t *j, struct pilot_attempt *out);
json_t *pilot_event_to_json(const struct pilot_event *e);
int pilot_event_from_json(const json_t *j, struct pilot_event *out);
json_t *pilot_agent_info_to_json(const struct pilot_agent_info *a);
int pilot_agent_info_from_json(const json_t *j, struct pilot_agent_info *out);
json_t *pilot_artifact_to_json(const struct pilot_artifact *a);
int pilot_artifact_from_json(const json_t *j, struct pilot_artifact *out);
json_t *pilot_metric_to_json(const struct pilot_metric *m);
int pilot_metric_from_json(const json_t *j, struct pilot_metric *out);
json_t *pilot_status_to_json(const struct pilot_status *s);
int pilot_status_from_json(const json_t *j, struct pilot_status *out);
/* Includes the secret values and the lease token: only for the claiming agent. */
json_t *pilot_claim_to_json(const struct pilot_claim *c);
int pilot_claim_from_json(const json_t *j, struct pilot_claim *out);
/* Includes the secret values (the body of POST /v1/runs). from_json: the string fields
 * point into j (keep j alive while req is used); the kvs are copies. */
json_t *pilot_submit_request_to_json(const struct pilot_submit_request *req);
int pilot_submit_request_from_json(const json_t *j, struct pilot_submit_request *out);
json_t *pilot_claim_request_to_json(const struct pilot_claim_request *req);
int pilot_claim_request_from_json(const json_t *j, struct pilot_claim_request *out);
json_t *pilot_finish_to_json(const struct pilot_finish *f);
/* message points into j. */
int pilot_finish_from_json(const json_t *j, struct pilot_finish *out);
json_t *pilot_heartbeat_reply_to_json(const struct pilot_heartbeat_reply *h);
int pilot_heartbeat_reply_from_json(const json_t *j, struct pilot_heartbeat_reply *out);
/* Lists: {"runs": [...], "next_after": "..."} / {"events": [...], "last_seq": N} /
 * {"agents": [...]} / {"artifacts": [...]} / {"metrics": [...]}. */
json_t *pilot_run_list_to_json(const struct pilot_run_list *l);
int pilot_run_list_from_json(const json_t *j, struct pilot_run_list *out);
json_t *pilot_event_list_to_json(const struct pilot_event_list *l);
int pilot_event_list_from_json(const json_t *j, struct pilot_event_list *out);
json_t *pilot_agent_list_to_json(const struct pilot_agent_list *l);
int pilot_agent_list_from_json(const json_t *j, struct pilot_agent_list *out);
json_t *pilot_artifact_list_to_json(const struct pilot_artifact_list *l);
int pilot_artifact_list_from_json(const json_t *j, struct pilot_artifact_list *out);
json_t *pilot_metric_list_to_json(const struct pilot_metric_list *l);
int pilot_metric_list_from_json(const json_t *j, struct pilot_metric_list *out);
/* The REST error body {"error": {"code": pilot_err_name(code), "message": msg}} and back
 * (from_json sets the thread's error and returns the code). */
json_t *pilot_error_to_json(int code, const char *message);
int pilot_error_from_json(const json_t *j);
/* pilot_err_name() in reverse; PILOT_EFAIL for an unknown name. */
int pilot_err_from_name(const char *name);

#endif
