/* model: what pilot is about, independent of where it is kept or how it travels
 * (design §4): runs, attempts, events, agents, artifacts, metrics and API token records;
 * their states and reasons with names; the run state machine; the requests and replies
 * of the api; and the JSON form of all of it (the wire and --output json). Depends on
 * util only: the store keeps this model, the api carries it, the server serves it. */
#ifndef PILOT_MODEL_H
#define PILOT_MODEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "pilot/util.h"

/* ---- states and reasons (design §4) ---------------------------------------- */

enum pilot_run_state {
	PILOT_RUN_QUEUED = 0,
	PILOT_RUN_WAITING,    /* retry backoff not elapsed, or dependencies unmet */
	PILOT_RUN_RUNNING,
	PILOT_RUN_CANCELING,  /* cancel asked while running; the agent has not finished yet */
	PILOT_RUN_SUCCEEDED,
	PILOT_RUN_FAILED,
	PILOT_RUN_CANCELED,
	PILOT_RUN_SKIPPED,    /* ended without running (a duplicate of a run going) */
};
#define PILOT_RUN_NSTATES 8
/* Bit for a state in a state set (struct pilot_run_filter.states). */
#define PILOT_RUN_STATE_BIT(s) (1u << (s))
#define PILOT_RUN_TERMINAL_BITS \
	(PILOT_RUN_STATE_BIT(PILOT_RUN_SUCCEEDED) | PILOT_RUN_STATE_BIT(PILOT_RUN_FAILED) | \
	 PILOT_RUN_STATE_BIT(PILOT_RUN_CANCELED) | PILOT_RUN_STATE_BIT(PILOT_RUN_SKIPPED))

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
	PILOT_REASON_DUPLICATE,  /* skipped: a run of the same name and params was going */
	PILOT_REASON_TOO_MANY_FAILURES, /* skipped: its array reached its max_failures */
	PILOT_REASON_NO_AGENT,   /* failed: every agent that could run it is blocklisted for it */
};
#define PILOT_NREASONS 11

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

/* Derived from last-seen, current attempts and the control asked for: lost = not seen
 * for one lease TTL; offline = said goodbye (pilot_api_agent_leave); draining = told to
 * drain, sleep or shut down and still running jobs; drained / asleep = told so and
 * running none; starting = a machine a pool launched for it, its agent not heard from
 * yet (listed by the api, not the store's own list). */
enum pilot_agent_state {
	PILOT_AGENT_IDLE = 0,
	PILOT_AGENT_BUSY,
	PILOT_AGENT_LOST,
	PILOT_AGENT_OFFLINE,
	PILOT_AGENT_DRAINING,
	PILOT_AGENT_DRAINED,
	PILOT_AGENT_ASLEEP,
	PILOT_AGENT_STARTING,
};
#define PILOT_AGENT_NSTATES 8

/* What an agent was told to do (pilot agents drain|sleep|shutdown; resume and wake
 * clear it): it claims no runs meanwhile. A shutdown is answered on its next claim and
 * ends with its goodbye; drain and sleep last until cleared, across restarts. */
enum pilot_agent_control {
	PILOT_CONTROL_NONE = 0,
	PILOT_CONTROL_DRAIN,
	PILOT_CONTROL_SLEEP,
	PILOT_CONTROL_SHUTDOWN,
};
#define PILOT_CONTROL_N 4

/* Names as used in JSON, the CLI and the store: "queued", "exit_code", ... The *_from_name
 * functions return 0 and set *out, or PILOT_EINVALID naming the word. */
const char *pilot_run_state_name(enum pilot_run_state s);
int pilot_run_state_from_name(const char *name, enum pilot_run_state *out);
bool pilot_run_state_terminal(enum pilot_run_state s);
/* The run state machine: whether a run may move from one state to another. The store
 * changes a run's state only where this table allows it. */
bool pilot_run_transition_allowed(enum pilot_run_state from, enum pilot_run_state to);
const char *pilot_reason_name(enum pilot_reason r);   /* "" for NONE */
int pilot_reason_from_name(const char *name, enum pilot_reason *out);  /* "" -> NONE */
const char *pilot_attempt_state_name(enum pilot_attempt_state s);
int pilot_attempt_state_from_name(const char *name, enum pilot_attempt_state *out);
const char *pilot_agent_state_name(enum pilot_agent_state s);
int pilot_agent_state_from_name(const char *name, enum pilot_agent_state *out);
const char *pilot_agent_control_name(enum pilot_agent_control c); /* "" for NONE */
int pilot_agent_control_from_name(const char *name, enum pilot_agent_control *out);
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
	/* The machine its agent was, when a server's pool launched it: the pool and the
	 * provisioner's instance id (NULL otherwise). */
	char *instance_pool;
	char *instance_id;
};

/* A run another waits for (--after), and the end states of it that let the other go on:
 * any other end fails the waiting run at once (dependency_failed). */
#define PILOT_RUN_NAME_SIZE 129
struct pilot_run_need {
	char run[PILOT_ID_SIZE];      /* a full id (in a request, a unique prefix) */
	unsigned states;              /* PILOT_RUN_STATE_BIT set of terminal states */
	/* In a run read back (get_run, a claim): that run's name, so an agent can put its
	 * artifacts under needs/NAME/; "" in a request. */
	char name[PILOT_RUN_NAME_SIZE];
};
/* "RUN", "RUN:succeeded,failed" or "RUN:any" (the default: succeeded). PILOT_EINVALID
 * naming what is wrong. */
int pilot_run_need_parse(const char *text, struct pilot_run_need *out);
/* "succeeded", "succeeded,failed", "any" (caller frees). */
char *pilot_run_need_states_format(unsigned states);

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
	int64_t start_timeout_ms;     /* see struct pilot_submit_request; 0 = none */
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
	/* The runs it waits for (get_run only), and how many of them have not ended yet
	 * (a waiting run is queued when this is 0). */
	struct pilot_run_need *needs;
	size_t nneeds;
	int needs_left;
	/* Its concurrency group (NULL = none) and the most runs of it that may be past
	 * waiting at once; slot_wait: waiting, with nothing else left to wait for, until
	 * a run of the group ends. */
	char *concurrency_group;
	int concurrency_max;
	bool slot_wait;
	/* The array it belongs to ("" = none) and its index there. */
	char array_id[PILOT_ID_SIZE];
	int64_t array_index;
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
 *   needs_met         waiting -> queued: every run it waits for ended as it asked
 *   dependency_failed waiting -> failed: a run it waits for ended otherwise (data.run_id)
 *   slot_wait         (no state change) it would be queued, but its concurrency group is
 *                     full: it waits for a run of the group to end (data.group)
 *   slot_free         waiting -> queued: a slot of its concurrency group came free
 *   blocklisted       (no state change) the attempt's failure blocklisted its agent for
 *                     runs of this name (data.agent, data.name)
 *   no_agent          queued -> failed: every live agent that could run it is
 *                     blocklisted for its name (data.agents), or none could within
 *                     its start_timeout (data.start_timeout_ms)
 *   skipped           -> skipped: submitted with skip_duplicate while a run of the same
 *                     name and params was going (data.run_id), or its array reached its
 *                     max_failures (data.failed)
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
	enum pilot_agent_control control; /* asked for (ignored on register) */
	int64_t control_ms;           /* when, 0 = never */
	char *control_by;             /* who asked, or NULL */
	/* Its sleep schedule: weekly windows (lib/sched) in a zone, in which the server
	 * tells it to sleep and after which it wakes it; NULL = none. */
	char *sleep_schedule;
	char *sleep_tz;
	int64_t sleep_next_ms;        /* the schedule's next change, 0 = none */
};

/* An agent's failures of runs of one name in a row; once there were blocklist_after of
 * them the agent is blocklisted for the name: it gets no more such runs until the
 * entry is cleared (pilot agents blocklist --clear). A success wipes an entry that is
 * not blocking yet. */
struct pilot_block {
	char *agent;
	char *name;                   /* the runs' name (a job's) */
	int failures;
	int64_t last_failure_ms;
	int64_t blocked_ms;           /* when it began to block; 0 = counting */
};
void pilot_block_clear(struct pilot_block *b);

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

/* A server's pool of provisioned machines (pilot-server(1), pools:), as status shows it. */
struct pilot_pool_status {
	char *name;
	int max;
	int launching;                /* launched, its agent not registered yet */
	int running;                  /* its agent registered */
	int terminating;
	int64_t launched_total;       /* instances launched since the store was made */
	double cost;                  /* estimated cost so far of every instance (cost_per_hour) */
	int failures;                 /* launches failed in a row */
	char *last_error;             /* the latest launch failure, NULL once one worked */
	int64_t retry_at_ms;          /* the next launch is not tried before (after failures) */
};

struct pilot_status {
	char *version;                /* of the answering pilot (the server, or this binary) */
	int64_t now_ms;
	int64_t counts[PILOT_RUN_NSTATES];
	int64_t oldest_queued_ms;     /* created time of the oldest queued run, 0 = none */
	int agents_idle, agents_busy, agents_lost;
	int agents_paused;            /* drained or asleep (running nothing) */
	struct pilot_pool_status *pools; /* a server's pools (none locally) */
	size_t npools;
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
	/* Queued this long with no live agent that could take it (none with the labels
	 * it requires, or only blocklisted ones): the run fails (no_agent). 0 = never. */
	int64_t start_timeout_ms;
	int64_t not_before_ms;        /* 0 = now; later = the run waits */
	const char *idempotency_key;  /* NULL = none */
	const char *submitter;        /* NULL = the transport's caller */
	/* Held for its submitter (`pilot run`): only a claim naming the run takes it, and a
	 * lost attempt fails it (lost) instead of requeuing it, since no one else may. */
	bool hold;
	/* Runs to wait for (owned by the request): the run is waiting until each has ended
	 * in one of its states, and fails (dependency_failed) as soon as one ends otherwise. */
	struct pilot_run_need *after;
	size_t nafter;
	/* A concurrency group (NULL = none): at most concurrency_max (1..10000) runs of
	 * the group are queued or past it at once (until they end, retries included); the
	 * others wait, highest priority then oldest first. */
	const char *concurrency_group;
	int concurrency_max;
	/* When a run of the same name and params is queued, waiting or running, the new
	 * run ends skipped (reason duplicate) at once instead of running. */
	bool skip_duplicate;
};
void pilot_submit_request_clear(struct pilot_submit_request *req);

/* An array (a sweep): one run per element, made in one transaction, grouped under
 * the array's id ('x' + ...). */
#define PILOT_ARRAY_MAX_ELEMENTS 10000
struct pilot_array_element {
	int64_t index;                /* 0..2^31; distinct within the array */
	const char *spec_json;        /* NULL = the base's (it differs when ${index} is used) */
	const char *params_json;      /* NULL = the base's */
};
struct pilot_array_request {
	/* What every run is made of; base.name names the array, base.idempotency_key
	 * makes the whole array at most once. */
	struct pilot_submit_request base;
	struct pilot_array_element *elements; /* owned; 1..PILOT_ARRAY_MAX_ELEMENTS */
	size_t nelements;
	/* At most this many runs of the array queued or running at once; 0 = no limit. */
	int throttle;
	/* Once this many elements have failed (their latest run), the elements not
	 * running (queued, waiting) end skipped (reason too_many_failures); 0 = never. */
	int max_failures;
};
void pilot_array_request_clear(struct pilot_array_request *req);
/* "0-99", "1,3,5", "0-15:4" (a step), with an optional "%K" (at most K at once): the
 * indexes in order (*out, caller frees) and the throttle (0 when none). PILOT_EINVALID naming the
 * fault. */
int pilot_array_spec_parse(const char *text, int64_t **out, size_t *n, int *throttle);

/* A pipeline: one run per job, made in one transaction and grouped under the
 * pipeline's id ('p' + ...), read, canceled and retried as an array is (struct
 * pilot_array; the job's position is its index). A job's run waits until the runs of
 * the jobs it needs have succeeded; when one ends otherwise it ends skipped (reason
 * dependency_failed), and so do the runs waiting for it in turn. */
#define PILOT_PIPELINE_MAX_JOBS 1000
struct pilot_pipeline_job {
	/* The job's run: its name is the job's (distinct within the pipeline); its
	 * idempotency_key and submitter are the pipeline's. after: runs outside. */
	struct pilot_submit_request run;
	const char **needs;           /* owned array of borrowed names of jobs before it */
	size_t nneeds;
};
struct pilot_pipeline_request {
	const char *name;             /* the pipeline's */
	const char *idempotency_key;  /* makes the whole pipeline at most once */
	const char *submitter;
	int max_failures;             /* as an array's; 0 = never */
	struct pilot_pipeline_job *jobs; /* owned, 1..PILOT_PIPELINE_MAX_JOBS */
	size_t njobs;
};
void pilot_pipeline_request_clear(struct pilot_pipeline_request *req);

/* An array, or a pipeline (id 'p'). */
struct pilot_array {
	char id[PILOT_ID_SIZE];
	char *name;
	char *submitter;
	int64_t created_ms;
	int throttle;
	int max_failures;
	/* Its runs in element order (a retried element: each of its runs, oldest first). */
	char (*runs)[PILOT_ID_SIZE];
	size_t nruns;
	/* After a cancel or retry of the array: how many runs it canceled or made. */
	int changed;
};
void pilot_array_clear(struct pilot_array *a);

struct pilot_run_filter {
	unsigned states;              /* PILOT_RUN_STATE_BIT set; 0 = any */
	const char *name;             /* exact name, NULL = any */
	const char *array;            /* runs of this array id, NULL = any */
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
	/* When nothing was claimed: what the agent was told to do instead (drained, asleep:
	 * keep asking; shutdown: stop after the jobs it runs). */
	enum pilot_agent_control command;
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
	/* With cancel_requested: the stop is not the run's end; its agent was drained (or
	 * put to sleep, or shut down) with --now and the run goes back to the queue. */
	bool requeue;
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
struct pilot_block_list {
	struct pilot_block *items;    /* blocking first, then by agent and name */
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
void pilot_block_list_clear(struct pilot_block_list *l);
void pilot_artifact_list_clear(struct pilot_artifact_list *l);
void pilot_metric_list_clear(struct pilot_metric_list *l);
void pilot_run_copy(struct pilot_run *dst, const struct pilot_run *src);
void pilot_attempt_copy(struct pilot_attempt *dst, const struct pilot_attempt *src);

/* ---- API tokens ------------------------------------------------------------------
 * A token is "pilot_" + 40 hex digits of randomness + 8 hex digits of checksum (the
 * first 4 bytes of the sha256 of the rest), so a typo is caught before any lookup and
 * a leaked token is easy to grep for. The store keeps only its sha256. */
#define PILOT_TOKEN_PREFIX "pilot_"
#define PILOT_TOKEN_LEN (6 + 40 + 8)   /* prefix, 160 random bits in hex, checksum */
#define PILOT_TOKEN_SIZE (PILOT_TOKEN_LEN + 1)

enum {
	PILOT_SCOPE_READ = 1 << 0,     /* read runs, logs, events, artifacts, agents, status */
	PILOT_SCOPE_SUBMIT = 1 << 1,   /* upload bundles, submit and retry runs */
	PILOT_SCOPE_CANCEL = 1 << 2,   /* cancel runs */
	PILOT_SCOPE_AGENT = 1 << 3,    /* claim, heartbeat and report its own attempts */
	PILOT_SCOPE_ADMIN = 1 << 4,    /* everything, tokens included */
	PILOT_SCOPE_REGISTER = 1 << 5, /* enroll agents: trade for an agent token bound to a name */
};
#define PILOT_SCOPE_ALL 0x3f

void pilot_token_generate(char out[PILOT_TOKEN_SIZE]);
/* 0 when the token has the right shape and checksum, else PILOT_EAUTH saying what is
 * wrong without echoing it. */
int pilot_token_check(const char *token);
/* sha256 of the whole token string, the form the store keeps. */
void pilot_token_hash(const char *token, char out[65]);
/* "read,submit" or "read submit" -> mask; PILOT_EINVALID naming an unknown scope
 * (with did-you-mean). An empty list is invalid. */
int pilot_token_scopes_parse(const char *list, unsigned *out);
/* "read submit" (space-separated, fixed order; caller frees). */
char *pilot_token_scopes_format(unsigned scopes);
/* admin implies every scope. */
bool pilot_token_scopes_allow(unsigned have, unsigned need);
/* The wire form of a scope mask: ["read", "submit"]. from_json also takes a string
 * ("read,submit"); anything else, or an unknown scope, is PILOT_EINVALID. */
json_t *pilot_token_scopes_to_json(unsigned scopes);
int pilot_token_scopes_from_json(const json_t *v, unsigned *out);

struct pilot_token_record {
	char id[PILOT_ID_SIZE];       /* 't' + ... */
	char *name;
	char sha256[65];
	char *scopes;                 /* space-separated: "read submit cancel agent admin register" */
	int64_t created_ms;
	int64_t expires_ms;           /* 0 = never */
	int64_t revoked_ms;           /* 0 = live */
	int64_t last_used_ms;
	char *agent;                  /* the one agent name it may act as; NULL = any */
};
struct pilot_token_list {
	struct pilot_token_record *items; /* oldest first */
	size_t n;
};
void pilot_token_record_clear(struct pilot_token_record *t);
void pilot_token_list_clear(struct pilot_token_list *l);

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
/* The body of POST /v1/arrays: {"run": SUBMIT REQUEST, "throttle": N, "elements":
 * [{"index", "spec_json"?, "params_json"?}]}; strings point into j as above. */
json_t *pilot_array_request_to_json(const struct pilot_array_request *req);
int pilot_array_request_from_json(const json_t *j, struct pilot_array_request *out);
/* The body of POST /v1/pipelines: {"name", "idempotency_key", "submitter",
 * "max_failures", "jobs": [{"run": SUBMIT REQUEST, "needs": [NAME...]}]}. */
json_t *pilot_pipeline_request_to_json(const struct pilot_pipeline_request *req);
int pilot_pipeline_request_from_json(const json_t *j, struct pilot_pipeline_request *out);
json_t *pilot_array_to_json(const struct pilot_array *a);
int pilot_array_from_json(const json_t *j, struct pilot_array *out);
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
/* {"blocklist": [{"agent", "name", "failures", "last_failure_ms", "blocked_ms" (null
 * while counting)}]} */
json_t *pilot_block_to_json(const struct pilot_block *b);
int pilot_block_from_json(const json_t *j, struct pilot_block *out);
json_t *pilot_block_list_to_json(const struct pilot_block_list *l);
int pilot_block_list_from_json(const json_t *j, struct pilot_block_list *out);
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
/* {"id", "name", "scopes": [..], "created_ms", "expires_ms", "revoked_ms",
 * "last_used_ms"}; the hash is never written. */
json_t *pilot_token_record_to_json(const struct pilot_token_record *t);
int pilot_token_record_from_json(const json_t *j, struct pilot_token_record *out);

#endif
