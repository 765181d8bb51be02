/* store: the durable model behind the api (design §4) in SQLite: runs, attempts,
 * events, logs, artifacts (bytes in the blob store), metrics, agents and API tokens.
 *
 * DIR/pilot.db holds the tables (WAL, synchronous=FULL; every write is one BEGIN
 * IMMEDIATE transaction, so several processes can share it); DIR/blobs is the blob
 * store. The schema is versioned by numbered migrations (PRAGMA user_version): an older
 * pilot refuses a newer database. Every state change goes through one function, which
 * asks the model's table (pilot_run_transition_allowed) and writes an event.
 *
 * The calls mirror struct pilot_api_ops (same contracts, see api.h, which builds on
 * this module) but never block: the local transport adds the long-poll waits and
 * opportunistic reaping on top. A store handle may be used from several threads (calls
 * are serialized on it). */
#ifndef PILOT_STORE_H
#define PILOT_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pilot/model.h"
#include "pilot/util.h"

struct pilot_store;
struct pilot_blob_store;

/* Knobs of the store and of the local transport over it (the server passes its config;
 * tests shorten them). A zero field takes the environment variable named beside it (a
 * duration such as "2s"), else the default. */
struct pilot_local_options {
	int64_t lease_ttl_ms;      /* PILOT_LEASE_TTL, 60s */
	int64_t timeout_grace_ms;  /* PILOT_TIMEOUT_GRACE, 60s: backstop past a run's timeout */
	int64_t reap_delay_ms;     /* PILOT_REAP_DELAY, 0: no reaping until this long after
	                            * open (a restarted server passes one TTL) */
	int64_t backoff_base_ms;   /* PILOT_BACKOFF_BASE, 5s: default retry backoff base */
	int64_t backoff_cap_ms;    /* PILOT_BACKOFF_CAP, 5min: default cap */
	int max_lost;              /* PILOT_MAX_LOST, 3: losses retried before failing (lost) */
	/* PILOT_RETRY_ELSEWHERE, 2min: a run an agent failed (or lost) is not handed to that
	 * agent again while another live agent could take it, until it has been queued
	 * this long. */
	int64_t retry_elsewhere_ms;
	/* PILOT_BLOCKLIST_AFTER, 3: after this many failures in a row of runs of one name
	 * on one agent, the agent gets no more runs of that name until the entry is
	 * cleared (-1 or "0" in the environment: never). */
	int blocklist_after;
	bool no_auto_reap;         /* do not reap inside calls (the server reaps on a timer) */
	const char *actor;         /* default actor/submitter; NULL = $USER@hostname */
	/* PRAGMA quick_check at open: 0 = only for small files (it reads the whole file),
	 * 1 = always (the server at start), -1 = never. */
	int quick_check;
};

/* The schema version this build writes (PRAGMA user_version). */
#define PILOT_STORE_SCHEMA_VERSION 12

/* Open DIR/pilot.db (creating DIR with mode 0700 and the file with 0600), migrate it,
 * check it (quick_check; a damaged file is refused, naming it). opts may be NULL; its
 * zero fields take the PILOT_* environment variables, then the defaults (above). */
int pilot_store_open(const char *dir, const struct pilot_local_options *opts, struct pilot_store **out);
void pilot_store_close(struct pilot_store *st);
PILOT_DEFINE_CLEANUP(struct pilot_store, pilot_store_close)
const char *pilot_store_db_path(const struct pilot_store *st);
struct pilot_blob_store *pilot_store_blobs(struct pilot_store *st);
/* The effective knobs. */
const struct pilot_local_options *pilot_store_options(const struct pilot_store *st);
/* A counter this handle bumps whenever it puts a run in the queue (a submit, a need
 * met, a requeue), even in a write later rolled back: a server compares it to know
 * when its idle claimers have something to try. Kept in memory, for this handle. */
uint64_t pilot_store_queue_generation(struct pilot_store *st);
/* PRAGMA integrity_check: 0 when "ok", else PILOT_EIO with the first problems. */
int pilot_store_integrity_check(struct pilot_store *st);

/* The api operations (see struct pilot_api_ops). */
int pilot_store_submit(struct pilot_store *st, const struct pilot_submit_request *req, struct pilot_run *out);
/* One run per element in one transaction (the same idempotency rules: 1 for a replay). */
int pilot_store_submit_array(struct pilot_store *st, const struct pilot_array_request *req, struct pilot_array *out);
/* One run per job in one transaction (the same idempotency rules: 1 for a replay);
 * out is the pipeline, read as an array (id 'p'). */
int pilot_store_submit_pipeline(struct pilot_store *st, const struct pilot_pipeline_request *req,
				struct pilot_array *out);
/* An array or a pipeline by id or unique prefix; get, cancel and retry take either. A
 * retried job of a pipeline waits for the latest runs of the jobs it needs (succeeded
 * ones kept, retried ones again). */
int pilot_store_get_array(struct pilot_store *st, const char *array, struct pilot_array *out);
/* Cancel every run of the array not ended yet, in one transaction (out->changed: how
 * many). */
int pilot_store_cancel_array(struct pilot_store *st, const char *array, const char *actor, int64_t grace_ms,
			     struct pilot_array *out);
/* Re-run the elements whose latest run failed, was canceled or skipped, keeping the succeeded
 * ones (out->changed: how many new runs). */
int pilot_store_retry_array(struct pilot_store *st, const char *array, const char *actor, struct pilot_array *out);
int pilot_store_get_run(struct pilot_store *st, const char *run, struct pilot_run *out);
int pilot_store_list_runs(struct pilot_store *st, const struct pilot_run_filter *f, struct pilot_run_list *out);
int pilot_store_cancel(struct pilot_store *st, const char *run, const char *actor, int64_t grace_ms,
		       struct pilot_run *out);
int pilot_store_retry(struct pilot_store *st, const char *run, const char *actor, struct pilot_run *out);
/* Non-blocking: req->wait_ms is ignored. */
int pilot_store_read_logs(struct pilot_store *st, const struct pilot_log_request *req, struct pilot_log_chunk *out);
int pilot_store_list_events(struct pilot_store *st, const struct pilot_event_filter *f, struct pilot_event_list *out);
/* The highest event seq (0 when none): a cheap "did anything change" probe. */
int pilot_store_last_event_seq(struct pilot_store *st, int64_t *seq);
int pilot_store_list_artifacts(struct pilot_store *st, const char *run, int attempt, struct pilot_artifact_list *out);
int pilot_store_get_artifact(struct pilot_store *st, const char *run, const char *path, int attempt, int *fd,
			     struct pilot_artifact *meta);
int pilot_store_get_metrics(struct pilot_store *st, const char *run, int attempt, struct pilot_metric_list *out);
/* The labels of the machines the server's pools launch: a queued run one of them could
 * take is not failed by its start_timeout while no agent is there (one is on its way,
 * or will be once the pool has room). Copied; replaces what was set. */
void pilot_store_set_pool_labels(struct pilot_store *st, const struct pilot_kvs *labels, size_t n);
/* The agents that registered, by name; with starting, also the agents of the machines
 * pools are launching (state starting) that did not register yet. */
int pilot_store_list_agents(struct pilot_store *st, bool starting, struct pilot_agent_list *out);
/* One agent, starting ones included. */
int pilot_store_get_agent(struct pilot_store *st, const char *name, struct pilot_agent_info *out);
/* See pilot_api_ops.control_agent. */
int pilot_store_agent_control(struct pilot_store *st, const char *name, const char *action, bool now,
			      const char *actor, struct pilot_agent_info *out);
/* See pilot_api_ops.schedule_agent. */
int pilot_store_agent_schedule(struct pilot_store *st, const char *name, const char *windows, const char *tz,
			       struct pilot_agent_info *out);
int pilot_store_list_blocklist(struct pilot_store *st, struct pilot_block_list *out);
int pilot_store_clear_blocklist(struct pilot_store *st, const char *agent, const char *name, int *cleared);
int pilot_store_status(struct pilot_store *st, struct pilot_status *out);
int pilot_store_bundle_has(struct pilot_store *st, const char *sha256);
int pilot_store_bundle_put(struct pilot_store *st, const char *sha256, int fd);
int pilot_store_bundle_get(struct pilot_store *st, const char *sha256, int *fd);
int pilot_store_register_agent(struct pilot_store *st, const struct pilot_agent_info *info);
int pilot_store_agent_leave(struct pilot_store *st, const char *agent);
/* Non-blocking: req->wait_ms is ignored. 1 = claimed, 0 = nothing claimable. */
int pilot_store_claim(struct pilot_store *st, const struct pilot_claim_request *req, struct pilot_claim *out);
int pilot_store_heartbeat(struct pilot_store *st, const char *attempt_id, const char *token,
			  struct pilot_heartbeat_reply *reply);
int pilot_store_append_log(struct pilot_store *st, const char *attempt_id, const char *token, int64_t offset,
			   const void *data, size_t len, int64_t *expected_offset);
int pilot_store_put_artifact(struct pilot_store *st, const char *attempt_id, const char *token, const char *path,
			     int fd);
int pilot_store_put_metrics(struct pilot_store *st, const char *attempt_id, const char *token, int64_t first_index,
			    const struct pilot_metric *items, size_t n, int64_t *expected_index);
int pilot_store_finish(struct pilot_store *st, const char *attempt_id, const char *token,
		       const struct pilot_finish *outcome, struct pilot_run *run);
/* Reaps as of now (honouring reap_delay_ms). Returns the number of runs changed. */
int pilot_store_reap(struct pilot_store *st);
/* True when reap() would find work now: a cheap read-only probe. */
bool pilot_store_reap_due(struct pilot_store *st);

/* ---- the state machine ---------------------------------------------------------- */

/* Move a run's state directly through store_transition() (checks, event, counters) without
 * touching its attempts. For tests and administrative repair; PILOT_ECONFLICT when the
 * table refuses it. */
int pilot_store_transition(struct pilot_store *st, const char *run_id, enum pilot_run_state to,
			   enum pilot_reason reason, const char *actor, const char *message);

/* ---- API tokens (the server's; stored only as sha256 of the secret) ---------------- */

/* A name used by a live token is PILOT_ECONFLICT, unless replace: then that token is
 * revoked in the same transaction; a hash already stored is PILOT_ECONFLICT too. agent
 * (or NULL) binds the token to the one agent name it may act as. */
int pilot_store_token_create(struct pilot_store *st, const char *name, const char *sha256, const char *scopes,
			     int64_t expires_ms, const char *agent, bool replace, struct pilot_token_record *out);
int pilot_store_token_list(struct pilot_store *st, struct pilot_token_list *out);
/* By id or name; revoking a revoked token is fine. PILOT_ENOTFOUND when unknown. */
int pilot_store_token_revoke(struct pilot_store *st, const char *id_or_name);
/* The live token with this hash, marking it used: PILOT_EAUTH when unknown, revoked
 * or expired. */
int pilot_store_token_lookup(struct pilot_store *st, const char *sha256, struct pilot_token_record *out);

/* ---- instances: machines a server's pools launched (lib/server/fleet.c) ---- */

enum pilot_instance_state {
	PILOT_INSTANCE_LAUNCHING = 0, /* recorded before the provisioner is asked */
	PILOT_INSTANCE_RUNNING,       /* its agent registered */
	PILOT_INSTANCE_TERMINATING,   /* to be terminated (the provisioner did not confirm yet) */
	PILOT_INSTANCE_TERMINATED,
};

struct pilot_instance {
	char id[PILOT_ID_SIZE];       /* 'i...' */
	char *pool;
	char *agent;                  /* the name its agent runs as */
	char *provider_id;            /* the provisioner's instance_id; NULL until it answered */
	enum pilot_instance_state state;
	char *run_id;                 /* the run it was launched for, or NULL */
	char *token_id;               /* its agent token */
	int64_t launched_ms, registered_ms, ended_ms;
	double cost_per_hour;
	char *message;                /* why it ended, or the latest trouble */
};
void pilot_instance_clear(struct pilot_instance *i);
const char *pilot_instance_state_name(enum pilot_instance_state s);

/* Record a new instance (state launching); in->id is made when empty. */
int pilot_store_instance_add(struct pilot_store *st, struct pilot_instance *in);
/* Update state, provider_id (when not NULL), registered_ms/ended_ms (when > 0) and
 * message (when not NULL). */
int pilot_store_instance_update(struct pilot_store *st, const char *id, enum pilot_instance_state state,
				const char *provider_id, int64_t registered_ms, int64_t ended_ms, const char *message);
/* The instances not terminated (and, with ended_since > 0, those that ended since
 * then), oldest first. */
int pilot_store_instance_list(struct pilot_store *st, int64_t ended_since, struct pilot_instance **out, size_t *n);
/* Per pool: how many were ever launched and the cost of every instance so far. */
int pilot_store_instance_totals(struct pilot_store *st, const char *pool, int64_t now_ms, int64_t *launched,
				double *cost);

#endif
