/* Private to lib/store: the store handle, SQLite helpers and the pieces the store's
 * source files share. */
#ifndef PILOT_STORE_INTERNAL_H
#define PILOT_STORE_INTERNAL_H

#include <pthread.h>

#include <jansson.h>
#include <sqlite3.h>

#include "pilot/blob.h"
#include "pilot/store.h"

#define STMT_CACHE 128

struct pilot_store {
	sqlite3 *db;
	char *dir;
	char *db_path;
	struct pilot_blob_store *blobs;
	struct pilot_local_options opt;
	char *actor;
	int64_t opened_ms;
	int64_t busy_start;    /* the busy handler's clock */
	pthread_mutex_t lock;
	uint64_t queue_gen;    /* pilot_store_queue_generation (atomic) */
	struct pilot_kvs *pool_labels; /* pilot_store_set_pool_labels */
	size_t npool_labels;
	/* Prepared statements keyed by the address of their (static) SQL text. */
	struct {
		const char *sql;
		sqlite3_stmt *stmt;
	} cache[STMT_CACHE];
};

/* Serialize a public call on the handle. */
pthread_mutex_t *store_lock(struct pilot_store *st);
void store_unlockp(pthread_mutex_t **m);
/* Held until the end of the enclosing block (clang wants the variable marked used). */
#define STORE_LOCKED(st) \
	_cleanup_(store_unlockp) __attribute__((unused)) pthread_mutex_t *_store_lock_ = store_lock(st)

/* A ready statement for sql (a string literal: it is cached by address), reset and
 * with its bindings cleared. NULL after setting the error. */
sqlite3_stmt *db_stmt(struct pilot_store *st, const char *sql);
/* Set the error from the connection's state: PILOT_EUNAVAILABLE when busy, PILOT_EIO
 * (naming the file as damaged) when corrupt, else PILOT_EIO. */
int db_error(struct pilot_store *st, const char *what);
/* sqlite3_step expecting DONE. */
int db_done(struct pilot_store *st, sqlite3_stmt *s, const char *what);
/* Run SQL without results (no caching). */
int db_exec(struct pilot_store *st, const char *sql);
/* BEGIN IMMEDIATE (retrying while another process writes) or BEGIN (deferred). */
int db_begin(struct pilot_store *st, bool write);
int db_commit(struct pilot_store *st);
void db_rollback(struct pilot_store *st);

void bind_text(sqlite3_stmt *s, int i, const char *v);  /* NULL -> NULL */
void bind_int(sqlite3_stmt *s, int i, int64_t v);
void bind_int_or_null(sqlite3_stmt *s, int i, int64_t v); /* 0 -> NULL */
char *col_dup(sqlite3_stmt *s, int i);                  /* NULL stays NULL */
const char *col_text(sqlite3_stmt *s, int i);           /* NULL -> "" */
int64_t col_int(sqlite3_stmt *s, int i);
void col_copy_id(sqlite3_stmt *s, int i, char out[PILOT_ID_SIZE]);

/* kvs <-> JSON object text (NULL for an empty list). With values false, the values are
 * left out (secret names only). */
char *kvs_to_text(const struct pilot_kvs *kvs);
void kvs_from_text(const char *text, struct pilot_kvs *out, bool values);


/* Attempt-write guard: loads the attempt and checks its token. On success *state is
 * its state and run_id/number are set. */
struct lease {
	char attempt_id[PILOT_ID_SIZE];
	char run_id[PILOT_ID_SIZE];
	int number;
	char *agent;
	enum pilot_attempt_state state;
	enum pilot_reason reason;
	bool has_exit_code;
	int exit_code;
	int64_t log_bytes;
	int64_t metric_count;
	bool requeue;                 /* stopped to go back to the queue (drain --now) */
};
void lease_clear(struct lease *l);
/* PILOT_ENOTFOUND for an unknown attempt; PILOT_ECONFLICT "attempt 'ID' superseded" when
 * the token does not match or (require_running) it is no longer running. */
int lease_check(struct pilot_store *st, const char *attempt_id, const char *token, bool require_running,
		struct lease *out);
/* Lease fencing, the one way an agent's write reaches the store: in one write
 * transaction, lease_check (as above), then write(st, lease, ud); committed only when
 * both succeed, else rolled back, so a superseded writer changes nothing. Takes the
 * store's lock. */
typedef int (*lease_write_fn)(struct pilot_store *st, const struct lease *l, void *ud);
int lease_write(struct pilot_store *st, const char *attempt_id, const char *token, bool require_running,
		lease_write_fn write, void *ud);


/* ---- runs (runs.c) ---- */

#define RUN_COLS_TAIL                                                                                    \
	"bundle_sha256, params_json, env_json, requires_json, secrets_json, priority, state, reason, "   \
	"message, exit_code, created_ms, started_ms, finished_ms, not_before_ms, updated_ms, "            \
	"attempt_count, lost_count, retry_max, retry_on, backoff_ms, max_backoff_ms, timeout_ms, "        \
	"idempotency_key, submitter, retry_of, cancel_requested, agent, failed_count, held, "         \
	"cancel_grace_ms, needs_left, concurrency_group, concurrency_max, slot_wait, array_id, array_index, "  \
	"start_timeout_ms"
#define RUN_COLS "id, name, spec_json, " RUN_COLS_TAIL
/* Lists leave the spec out: it can be large and a table does not show it. */
#define RUN_COLS_LIST "id, name, NULL, " RUN_COLS_TAIL

#define ATT_COLS                                                                                        \
	"id, run_id, number, agent, state, reason, exit_code, message, started_ms, finished_ms, "       \
	"heartbeat_ms, lease_expires_ms, log_bytes"

void store_load_run(sqlite3_stmt *s, struct pilot_run *r, bool secret_values);
int store_get_run_locked(struct pilot_store *st, const char *id, bool with_attempts, bool secret_values,
			 struct pilot_run *out);
/* End a write transaction that changed run id: read the run (with its attempts),
 * commit, and hand it to out (or drop it); returns result then. On a failure the
 * transaction is rolled back and the error returned. */
int store_commit_run(struct pilot_store *st, const char *id, struct pilot_run *out, int result);
/* Resolve a run id or unique prefix to the full id. */
int resolve_run(struct pilot_store *st, const char *run, char id[PILOT_ID_SIZE]);
/* The same for ids starting with kind, found by sql (?1 the prefix, ?2 its end). */
int store_resolve_id(struct pilot_store *st, const char *sql, char kind, const char *what, const char *text,
		     char id[PILOT_ID_SIZE]);

/* The state and a few counters of a run, inside a transaction. */
struct run_row {
	enum pilot_run_state state;
	int attempt_count, failed_count, lost_count, retry_max;
	unsigned retry_on;
	int64_t backoff_ms, max_backoff_ms;
	bool cancel_requested;
	int64_t cancel_grace_ms;      /* PILOT_CANCEL_GRACE_AGENT when none was asked */
	bool held;
	bool in_pipeline;             /* its array is a pipeline */
};
int store_run_row(struct pilot_store *st, const char *id, struct run_row *out);
/* What the agent was told to do (NONE for an unknown agent), inside a transaction. */
enum pilot_agent_control store_agent_control(struct pilot_store *st, const char *name);
/* Puts agents to sleep and wakes them as their sleep schedules say, inside the
 * reaper's transaction. */
int store_apply_sleep_schedules(struct pilot_store *st, int64_t now, int *changed);

/* The one place a run's state changes. The caller holds a write transaction and knows
 * the current state (from); the row is updated only if it still has it, and only
 * where the model's table allows the move. data (stolen) adds fields to the event. */
int store_transition(struct pilot_store *st, const char *run_id, enum pilot_run_state from, enum pilot_run_state to,
		     enum pilot_reason reason, const char *type, const char *actor, int attempt, const char *message,
		     json_t *data);
/* An event without a state change (data stolen; state: the run's, for the record). */
int store_add_event(struct pilot_store *st, const char *run_id, int attempt, const char *type, const char *actor,
		    const char *message, json_t *data, enum pilot_run_state state);
/* The per-state run counts and the queued set, kept beside the runs table. */
int store_count_add(struct pilot_store *st, enum pilot_run_state state, int delta);
int store_queued_set_add(struct pilot_store *st, const char *run_id, int delta);
/* A running run's attempt failed for reason: retry it after a backoff if the policy
 * says so and the budget allows, else fail the run. */
int store_after_failure(struct pilot_store *st, const char *run_id, const struct run_row *row, int attempt,
			enum pilot_reason reason, const char *detail, const char *type, const char *actor);
/* Applies an attempt's end to its run (called by finish and the reaper). */
/* An attempt stopped because its agent was told to drain (sleep, shut down) at once
 * ended canceled: its run goes back to the queue. */
int store_attempt_requeued(struct pilot_store *st, const char *run_id, int attempt, const char *detail,
			   const char *actor);
int store_attempt_ended(struct pilot_store *st, const char *run_id, int attempt, enum pilot_attempt_state how,
			enum pilot_reason reason, const char *detail, const char *type, const char *actor);

/* ---- concurrency limits (slots.c) ---- */

/* A limit a run is counted in: key "group:NAME" or "array:ID", at most max at once. */
#define STORE_KEY_SIZE 160
#define STORE_MAX_LIMITS 4
struct store_limit {
	char key[STORE_KEY_SIZE];
	int max;
};
int store_limit_set(struct store_limit *l, const char *kind, const char *name, int max);
/* "concurrency group NAME has N runs going", "array ID has N runs going" (caller frees). */
char *store_limit_full_text(const char *key, int64_t max);
/* 1 when each of the limits has room for one more run, else 0. */
int store_limits_room(struct pilot_store *st, const struct store_limit *l, size_t n);
/* Count a new run in the limits; held: it took its slots (it is queued). */
int store_add_slots(struct pilot_store *st, const char *run_id, const struct store_limit *l, size_t n, bool held);
/* The limits a run is counted in (at most max of them). */
int store_run_limits(struct pilot_store *st, const char *run_id, struct store_limit *out, size_t max, size_t *n);
/* A waiting run is due: queued (an event of type with message and data, stolen) if it
 * can take its slots, else left waiting for one. */
int store_queue_waiting(struct pilot_store *st, const char *run_id, const char *type, const char *actor,
			const char *message, json_t *data);
/* The run ended: its slots are given back and filled by the runs waiting for them. */
int store_free_slots(struct pilot_store *st, const char *run_id);

/* ---- submit (submit.c), used by arrays.c ---- */

/* A run's (or a group's) name: [a-z0-9][a-z0-9._-]*, at most 128 characters. */
bool store_name_valid(const char *n);
/* text (may be NULL) must be JSON (an object when object); what names it. */
int store_check_json(const char *what, const char *text, bool object);
/* Every check of a submit that needs no transaction (names, ranges, the bundle). */
int store_validate_submit(struct pilot_store *st, const struct pilot_submit_request *req);
/* What makes two requests "the same" for an idempotency key: j (the request's JSON)
 * without the key, the submitter, not_before and the secret values. */
void store_scrub_request(json_t *j, const struct pilot_submit_request *req);
/* The sha256 of j's compact, sorted text (j is released). */
void store_hash_json(json_t *j, char out[65]);
/* The id an idempotency key was used for: 1 (id set) with the same payload, 0 for a
 * new key, PILOT_ECONFLICT for another payload. */
int store_idempotency_lookup(struct pilot_store *st, const char *key, const char *hash, char id[PILOT_ID_SIZE]);
int store_idempotency_record(struct pilot_store *st, const char *key, const char *hash, const char *id);

/* The runs a submit waits for, resolved inside its transaction (free items). */
struct store_needs {
	struct pilot_run_need *items; /* full ids */
	size_t n;
	int left;                     /* not ended yet */
	int doomed;                   /* index of one that ended otherwise than asked; -1 */
	enum pilot_run_state doomed_end;
};
int store_resolve_needs(struct pilot_store *st, const struct pilot_submit_request *req, struct store_needs *out);

/* Where a new run goes besides its own fields: the limits it is counted in (its
 * concurrency group, its array's throttle) and its array. */
struct store_place {
	struct store_limit limits[STORE_MAX_LIMITS];
	size_t nlimits;
	const char *array_id; /* NULL = none */
	int64_t array_index;
};
/* The place of a run submitted on its own: its concurrency group. */
int store_place_of(const struct pilot_submit_request *req, struct store_place *out);
/* Insert a run (queued, or waiting for its time, needs or a slot) with its first
 * event; retry_of and secrets_text for a retry. id gets the new id. */
int store_insert_run(struct pilot_store *st, const struct pilot_submit_request *req, const char *submitter,
		     const char *retry_of, const char *secrets_text, const struct store_needs *needs,
		     const struct store_place *place, char id[PILOT_ID_SIZE]);

/* Cancel run id (full) inside a write transaction; *result 1 when there was nothing to
 * do (finished, or canceling with no shorter grace). grace_ms as store_cancel_grace
 * left it. */
int store_cancel_locked(struct pilot_store *st, const char *id, const char *actor, int64_t grace_ms, int *result);
/* A negative grace is the agent's own; one longer than a day is refused, naming what. */
int store_cancel_grace(int64_t *grace_ms, const char *what);
/* A new run re-running finished run id (full), in its place, waiting for needs (NULL:
 * nothing); nid gets its id. */
int store_retry_locked(struct pilot_store *st, const char *id, const char *actor, const struct store_needs *needs,
		       char nid[PILOT_ID_SIZE]);
/* A need of a run of a pipeline that ended otherwise than asked skips the run; of any
 * other run, fails it. */
int store_need_failed(struct pilot_store *st, const char *id, bool in_pipeline, const char *need_id,
		      enum pilot_run_state end, unsigned states, const char *actor);

/* ---- failures across agents (blocklist.c) ---- */

/* An attempt ended (how): count a failure of its run's name on its agent, blocklisting
 * the agent for that name after blocklist_after in a row (an event says so); a success
 * wipes the count. */
int store_blocklist_note(struct pilot_store *st, const char *run_id, int attempt, enum pilot_attempt_state how);
/* The best queued run of requires_text (highest priority, oldest) for agent: not one
 * the agent is blocklisted for, nor one it failed or lost unless it has waited
 * retry_elsewhere_ms or no other live agent could take it. 1 with *prio and id set, 0
 * when there is none. */
int store_best_for_agent(struct pilot_store *st, const char *agent, const char *requires_text, int64_t *prio,
			 char id[PILOT_ID_SIZE]);

/* The reaper's part: a queued run whose every live matching agent is blocklisted for
 * its name (and there is at least one) fails (no_agent), saying how to clear them. */
int store_fail_unplaceable(struct pilot_store *st, int *changed);
/* The reaper's part: a queued run past its start deadline fails (no_agent) when no
 * live agent could take it; when one could, its deadline moves on by its
 * start_timeout. */
int store_fail_unstarted(struct pilot_store *st, int64_t now, int *changed);

/* A run failed: when it belongs to an array with max_failures and that many of the
 * array's elements have failed, its elements not running (queued, waiting) end skipped. */
int store_array_run_failed(struct pilot_store *st, const char *run_id);

/* ---- agents (agents.c) ---- */

/* Create or refresh an agent row; with full, labels/version/capacity are replaced. */
int store_touch_agent(struct pilot_store *st, const char *name, const struct pilot_kvs *labels, const char *version,
		      int capacity, int free_slots, bool full);

/* Time as the store sees it (tests may not move the clock: the knobs shorten waits). */
static inline int64_t store_now(void)
{
	return pilot_now_ms();
}

#endif
