/* agent: executing claimed attempts. pilot_exec_attempt() takes one claim from start to
 * finish — bundle, workspace, runtime, log and metric shipping with byte offsets,
 * heartbeats, cancel, artifacts, the final report — and is shared by `pilot run` (which
 * claims the run it just submitted) and `pilot agent` (which claims whatever matches).
 * struct pilot_agent is the loop of `pilot agent`: long-poll claims, a slot (thread) per
 * running attempt, draining on stop, orphan clean-up at start.
 *
 * Every write carries the attempt's lease token. A write refused as superseded (another
 * attempt owns the run now), or a lease that could not be renewed for give_up_ms, stops
 * the job at once and drops its results: a superseded attempt never reports. */
#ifndef PILOT_AGENT_H
#define PILOT_AGENT_H

#include <stdbool.h>
#include <stdint.h>

#include "pilot/api.h"
#include "pilot/runtime.h"

/* Defaults (design §4). Without an explicit interval the heartbeat is also at most a
 * quarter of the lease TTL the claim carries, and the give-up time three heartbeats, so
 * a server with a shortened TTL needs no agent-side setting. */
#define PILOT_AGENT_HEARTBEAT_MS 15000
#define PILOT_AGENT_GIVE_UP_MS 45000
/* Log shipping: a batch goes out once SHIP_BYTES are pending, or when output is pending
 * and the previous batch left at least SHIP_INTERVAL ago (so a lone line goes at once and
 * a steady stream in batches every SHIP_INTERVAL). */
#define PILOT_AGENT_SHIP_INTERVAL_MS 200
#define PILOT_AGENT_SHIP_BYTES (64 * 1024)
/* Downloaded bundles kept under the agent's work directory, oldest removed first. */
#define PILOT_AGENT_CACHE_MAX (UINT64_C(5) << 30)
/* pilot(1)'s status when pilot itself could not run the job. */
#define PILOT_EXEC_STATUS_FAILED 125

/* ---- one attempt ------------------------------------------------------------ */

struct pilot_exec_opts {
	struct pilot_api *api;        /* calls are serialised inside: the api needs no locking */
	/* Heartbeats go through this one when set, so that a long bundle download or artifact
	 * upload on api cannot hold a renewal back. NULL = api. */
	struct pilot_api *hb_api;
	struct pilot_runtime *rt;
	const char *work_dir;         /* per-attempt workspaces are made under it */
	const char *bundle_cache;     /* keep downloaded bundles here by sha256; NULL = read
	                               * the api's bundle directly (the local transport) */
	uint64_t bundle_cache_max;    /* bytes; 0 = PILOT_AGENT_CACHE_MAX */
	enum pilot_pull_policy pull;
	const char *network;          /* NULL = the engine's default */
	int64_t heartbeat_ms;         /* 0 = PILOT_AGENT_HEARTBEAT_MS, at most TTL/4 */
	int64_t give_up_ms;           /* 0 = 3 heartbeats (PILOT_AGENT_GIVE_UP_MS) */
	int64_t grace_ms;             /* SIGTERM -> SIGKILL on cancel/timeout; 0 = 10 s */
	bool keep_workspace;          /* leave the workspace for inspection */
	/* The job's output after redaction, as it happens (pilot run prints it). */
	void (*on_output)(int stream, const char *data, size_t len, void *ud);
	/* The job started (container id or "pid N"). */
	void (*on_started)(const char *id, void *ud);
	/* True once the caller wants it over at once (a second Ctrl-C, a second SIGTERM):
	 * pending log bytes and the end are then sent once, without retries. May be NULL. */
	bool (*hurry)(void *ud);
	void *ud;
	/* Cancel from outside (Ctrl-C, an agent draining); NULL = none. The executor also
	 * cancels through it when the server asks or the lease is gone. */
	struct pilot_job_control *ctl;
	/* The message reported with a cancel that came through ctl rather than from the run
	 * ("the agent shut down"); NULL = none. */
	const char *cancel_message;
};

enum pilot_exec_outcome {
	PILOT_EXEC_REPORTED = 0,  /* the attempt's end was reported (finish accepted) */
	PILOT_EXEC_SUPERSEDED,    /* a write was refused: another attempt owns the run */
	PILOT_EXEC_LEASE_LOST,    /* the lease could not be renewed for give_up_ms */
	PILOT_EXEC_UNREPORTED,    /* the end could not be reported (the api kept failing) */
};
/* "reported", "superseded", "lease lost", "unreported" */
const char *pilot_exec_outcome_name(enum pilot_exec_outcome o);

struct pilot_exec_result {
	enum pilot_exec_outcome outcome;
	struct pilot_finish finish;   /* what was (or would have been) reported */
	char message[512];            /* finish.message points here */
	struct pilot_job_result job;
	int exit_status;              /* as pilot(1): the job's code, 124, 125, 128+N, 130 */
	int64_t log_bytes;            /* acknowledged by the api */
	int64_t metrics;
	unsigned artifacts;
	bool canceled_by_request;     /* the run's cancel came through a heartbeat */
};

/* Run the claimed attempt to its end and report it. Returns 0 when the result says what
 * happened (any outcome), negative only for bad arguments. */
int pilot_exec_attempt(const struct pilot_exec_opts *opts, const struct pilot_claim *claim,
		       struct pilot_exec_result *res);

/* Report a claimed attempt failed (runtime_error) with message, without running it: for
 * a run this agent cannot run (a host job on an agent without --allow-host). Retries
 * like the end of pilot_exec_attempt; res->outcome says whether it was recorded. */
int pilot_exec_refuse(const struct pilot_exec_opts *opts, const struct pilot_claim *claim, const char *message,
		      struct pilot_exec_result *res);

/* Clear a work directory left by an earlier process (after a crash): kill the host jobs
 * it started that still run (recorded per attempt, checked against their start time so a
 * reused pid is left alone) and remove every attempt directory. *killed (may be NULL)
 * gets the number of processes killed. A missing directory is fine. */
int pilot_exec_cleanup_work_dir(const char *work_dir, unsigned *killed);

/* ---- the agent loop ------------------------------------------------------------ */

struct pilot_agent;

struct pilot_agent_opts {
	const char *name;             /* required; also the pilot.owner label of its containers */
	const struct pilot_kvs *labels; /* sent with every claim (copied); NULL = none */
	const char *version;          /* sent with claims; NULL = pilot's */
	int concurrency;              /* attempts at once; 0 = 1 */
	/* A new api handle. The agent uses one for claiming and two per running attempt (one
	 * for heartbeats), each from one thread at a time, and closes them itself. */
	int (*open_api)(void *ud, struct pilot_api **out);
	void *open_ud;
	/* Or one handle for everything (not closed by the agent): for the local transport,
	 * whose store should be opened once per process and whose long-poll is a poll
	 * anyway. Claims then wait at most a second at a time, so a stop waits for the
	 * claim in flight instead of abandoning it. */
	struct pilot_api *api;
	bool bundle_cache;            /* keep bundles under work_dir/bundles (remote apis) */
	/* The runtime for container jobs, or the host runtime when the agent runs host jobs
	 * only (then host_rt must be the same one). Its owner should be the agent's name. */
	struct pilot_runtime *rt;
	/* Set when jobs may run on the host (--allow-host): specs without an image or pinned
	 * to the host run here. NULL = such runs are refused (failed, runtime_error). */
	struct pilot_runtime *host_rt;
	const char *work_dir;         /* required: work_dir/work/NAME holds the attempts */
	enum pilot_pull_policy pull;
	const char *network;
	int max_jobs;                 /* claim at most this many runs, then end; 0 = no limit */
	int64_t idle_timeout_ms;      /* end after this long with nothing running or claimed; 0 = never */
	int64_t drain_timeout_ms;     /* on stop, jobs may run this long before they are
	                               * canceled (with grace); 0 = no limit */
	int64_t claim_wait_ms;        /* long-poll of one claim; 0 = 30 s */
	int64_t heartbeat_ms, give_up_ms, grace_ms; /* as in pilot_exec_opts */
	/* Called on a slot's thread when an attempt ended (may be NULL). */
	void (*on_done)(const struct pilot_claim *claim, const struct pilot_exec_result *res, void *ud);
	void *ud;
};

struct pilot_agent_stats {
	unsigned claimed;             /* attempts claimed */
	unsigned reported;            /* ... whose end was handed over */
	unsigned not_reported;        /* ... superseded, lease lost or unreported */
	unsigned refused;             /* ... refused (reported failed, runtime_error) */
	unsigned orphans_removed;     /* containers and host jobs of an earlier process */
	int64_t first_claim_ms;       /* monotonic time the first claim request went out */
	bool idle_timeout;            /* it ended because nothing came */
	bool stopped;                 /* pilot_agent_stop() ended it */
	bool shutdown;                /* the server told it to shut down (pilot agents shutdown) */
};

/* Check the options, take the work directory (one agent per name and directory: a
 * second one gets PILOT_ECONFLICT) and clear what a crashed predecessor left: its
 * attempt directories, host jobs and containers (by the owner label). */
int pilot_agent_new(const struct pilot_agent_opts *opts, struct pilot_agent **out);
/* Claim and run until max_jobs runs were handed over, the idle timeout, a stop, the
 * server telling it to shut down (once its running jobs end), or a
 * claim error that retrying cannot fix (authentication, a refused name or label: the
 * return value then, after the running jobs ended). Returns 0 otherwise; stats may be
 * NULL. Call it once. */
int pilot_agent_run(struct pilot_agent *a, struct pilot_agent_stats *stats);
/* From any thread (not a signal handler): stop claiming and let the running jobs finish
 * (up to drain_timeout_ms, then cancel them with grace); now = kill them at once, send
 * what is pending once and end. A claim in flight is abandoned: if it had taken a run,
 * that run's lease expires and it is requeued. */
void pilot_agent_stop(struct pilot_agent *a, bool now);
/* Tells the api the agent is gone and releases the work directory. Accepts NULL. */
void pilot_agent_free(struct pilot_agent *a);

#endif
