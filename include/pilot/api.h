/* api: the one interface every user-facing operation goes through (design §3), speaking
 * the model of pilot/model.h. Two transports implement struct pilot_api_ops: "local" (the
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

#include "pilot/model.h"
#include "pilot/store.h"
#include "pilot/util.h"

struct pilot_config;

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
	/* Queue an array: one run per element, all or none, with the same idempotency
	 * rules (1 for a replay). Each element's spec is checked as submit checks one. */
	int (*submit_array)(struct pilot_api *api, const struct pilot_array_request *req, struct pilot_array *out);
	/* Queue a pipeline: one run per job, all or none, with the same idempotency rules
	 * (1 for a replay); out is the pipeline read as an array. Each job's spec is
	 * checked as submit checks one. */
	int (*submit_pipeline)(struct pilot_api *api, const struct pilot_pipeline_request *req, struct pilot_array *out);
	/* An array or a pipeline by id or unique prefix, its runs in element order (get,
	 * cancel and retry take either). */
	int (*get_array)(struct pilot_api *api, const char *array, struct pilot_array *out);
	/* Cancel every run of the array not ended yet, as cancel does one (out->changed:
	 * how many were canceled or asked to stop). */
	int (*cancel_array)(struct pilot_api *api, const char *array, const char *actor, int64_t grace_ms,
			    struct pilot_array *out);
	/* A new run for each element whose latest run failed, was canceled or skipped; succeeded
	 * elements are kept (out->changed: how many new runs, 0 when none was needed). */
	int (*retry_array)(struct pilot_api *api, const char *array, const char *actor, struct pilot_array *out);
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
	int (*get_agent)(struct pilot_api *api, const char *name, struct pilot_agent_info *out);
	/* Tell an agent what to do: "drain" (take no more runs), "sleep" (the same, shown
	 * as asleep), "shutdown" (stop once its jobs end; said on its next claim), "resume"
	 * and "wake" (take runs again), "forget" (remove an offline or lost agent that runs
	 * nothing, and its blocklist entries). With now (drain, sleep, shutdown) its running
	 * jobs are stopped too and their runs requeued. out (optional) gets the agent
	 * afterwards (zeroed after forget). actor NULL = the transport's caller. */
	int (*control_agent)(struct pilot_api *api, const char *name, const char *action, bool now, const char *actor,
			     struct pilot_agent_info *out);
	/* Set an agent's sleep schedule: weekly windows ("mon-fri 19:00-07:00; sat,sun
	 * 00:00-24:00") in an IANA zone (NULL = UTC), in which it is told to sleep
	 * (control_by "schedule") and at whose end it is woken; windows NULL or "" removes
	 * the schedule (and wakes an agent it put to sleep). Only the schedule's changes
	 * act: one woken or put to sleep by hand stays so until the next. */
	int (*schedule_agent)(struct pilot_api *api, const char *name, const char *windows, const char *tz,
			      struct pilot_agent_info *out);
	/* The blocklist: agents blocked from runs of a name, and the failures counted. */
	int (*list_blocklist)(struct pilot_api *api, struct pilot_block_list *out);
	/* Clear the entries of agent (NULL = every agent) for name (NULL = every name);
	 * *cleared (may be NULL) gets how many. */
	int (*clear_blocklist)(struct pilot_api *api, const char *agent, const char *name, int *cleared);
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
int pilot_api_submit_array(struct pilot_api *api, const struct pilot_array_request *req, struct pilot_array *out);
int pilot_api_submit_pipeline(struct pilot_api *api, const struct pilot_pipeline_request *req, struct pilot_array *out);
int pilot_api_get_array(struct pilot_api *api, const char *array, struct pilot_array *out);
int pilot_api_cancel_array(struct pilot_api *api, const char *array, const char *actor, int64_t grace_ms,
			   struct pilot_array *out);
int pilot_api_retry_array(struct pilot_api *api, const char *array, const char *actor, struct pilot_array *out);
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
int pilot_api_get_agent(struct pilot_api *api, const char *name, struct pilot_agent_info *out);
int pilot_api_control_agent(struct pilot_api *api, const char *name, const char *action, bool now, const char *actor,
			    struct pilot_agent_info *out);
int pilot_api_schedule_agent(struct pilot_api *api, const char *name, const char *windows, const char *tz,
			     struct pilot_agent_info *out);
int pilot_api_list_blocklist(struct pilot_api *api, struct pilot_block_list *out);
int pilot_api_clear_blocklist(struct pilot_api *api, const char *agent, const char *name, int *cleared);
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

/* ---- client extras of the http transport (lib/api/http.c) ------------------------- */

/* Whether api is the http transport. The calls below fail with PILOT_EINVALID on
 * another transport. */
bool pilot_api_is_http(struct pilot_api *api);
/* The server URL of an http api (NULL for others). */
const char *pilot_http_url(struct pilot_api *api);

/* Called while a bundle or artifact goes up (sent bytes, total or 0 when unknown);
 * the command draws it. */
typedef void (*pilot_http_progress_fn)(uint64_t sent, uint64_t total, void *userdata);
void pilot_http_set_progress(struct pilot_api *api, pilot_http_progress_fn fn, void *userdata);

struct pilot_whoami {
	char *token_id;
	char *name;
	unsigned scopes;
	int64_t expires_ms;           /* 0 = never */
	char *server_version;
};
void pilot_whoami_clear(struct pilot_whoami *w);
int pilot_http_whoami(struct pilot_api *api, struct pilot_whoami *out);
/* *secret (caller frees) gets the new token. */
int pilot_http_token_create(struct pilot_api *api, const char *name, unsigned scopes, int64_t expires_ms,
			    char **secret, struct pilot_token_record *out);
int pilot_http_token_list(struct pilot_api *api, struct pilot_token_list *out);
/* Enroll an agent with the api's registration token (scope register): the server
 * registers it and answers a new agent token bound to its name (*secret, caller frees),
 * revoking the one it had before. */
int pilot_http_agent_enroll(struct pilot_api *api, const struct pilot_agent_info *agent, char **secret,
			    struct pilot_token_record *out);
int pilot_http_token_revoke(struct pilot_api *api, const char *id_or_name);

/* ---- the REST API's routes (lib/api/routes.c) --------------------------------------
 * One table, read by the http client to build its calls and by the server to route
 * requests, so that each route is declared once; pilot-api(7) documents it and the
 * docs test checks the two agree. */

enum pilot_route_id {
	PILOT_ROUTE_INDEX,
	PILOT_ROUTE_DASHBOARD_FILE,
	PILOT_ROUTE_HEALTHZ,
	PILOT_ROUTE_METRICS,
	PILOT_ROUTE_BUNDLE_HAS,
	PILOT_ROUTE_BUNDLE_GET,
	PILOT_ROUTE_BUNDLE_PUT,
	PILOT_ROUTE_SUBMIT,
	PILOT_ROUTE_SUBMIT_ARRAY,
	PILOT_ROUTE_GET_ARRAY,
	PILOT_ROUTE_CANCEL_ARRAY,
	PILOT_ROUTE_RETRY_ARRAY,
	PILOT_ROUTE_SUBMIT_PIPELINE,
	PILOT_ROUTE_GET_PIPELINE,
	PILOT_ROUTE_CANCEL_PIPELINE,
	PILOT_ROUTE_RETRY_PIPELINE,
	PILOT_ROUTE_LIST_RUNS,
	PILOT_ROUTE_GET_RUN,
	PILOT_ROUTE_READ_LOGS,
	PILOT_ROUTE_RUN_EVENTS,
	PILOT_ROUTE_CANCEL,
	PILOT_ROUTE_RETRY,
	PILOT_ROUTE_LIST_ARTIFACTS,
	PILOT_ROUTE_GET_ARTIFACT,
	PILOT_ROUTE_GET_METRICS,
	PILOT_ROUTE_EVENTS,
	PILOT_ROUTE_CLAIM,
	PILOT_ROUTE_REGISTER_AGENT,
	PILOT_ROUTE_LIST_AGENTS,
	PILOT_ROUTE_AGENT_LEAVE,
	PILOT_ROUTE_GET_AGENT,
	PILOT_ROUTE_CONTROL_AGENT,
	PILOT_ROUTE_SCHEDULE_AGENT,
	PILOT_ROUTE_ENROLL_AGENT,
	PILOT_ROUTE_LIST_BLOCKLIST,
	PILOT_ROUTE_CLEAR_BLOCKLIST,
	PILOT_ROUTE_HEARTBEAT,
	PILOT_ROUTE_FINISH,
	PILOT_ROUTE_APPEND_LOG,
	PILOT_ROUTE_PUT_ARTIFACT,
	PILOT_ROUTE_PUT_METRICS,
	PILOT_ROUTE_STATUS,
	PILOT_ROUTE_WHOAMI,
	PILOT_ROUTE_TOKEN_CREATE,
	PILOT_ROUTE_TOKEN_LIST,
	PILOT_ROUTE_TOKEN_REVOKE,
	PILOT_ROUTE_REAP,
	PILOT_NROUTES
};

enum pilot_route_body {
	PILOT_BODY_NONE,   /* a body is read (up to the JSON limit) and ignored */
	PILOT_BODY_JSON,   /* buffered up to the JSON limit */
	PILOT_BODY_RAW,    /* buffered up to the log chunk limit */
	PILOT_BODY_FILE,   /* streamed to an unlinked temp file, hashed on the way */
};
/* Which of the server's size limits applies to the body. */
enum pilot_route_limit { PILOT_LIMIT_JSON, PILOT_LIMIT_LOG, PILOT_LIMIT_BUNDLE, PILOT_LIMIT_ARTIFACT };

/* The JSON form of one model type behind one signature: to_json returns a new
 * reference; from_json fills out (PILOT_EINVALID naming the field); clear frees what
 * from_json or the api filled in. */
struct pilot_codec {
	json_t *(*to_json)(const void *v);
	int (*from_json)(const json_t *j, void *out);
	void (*clear)(void *v);
};

struct pilot_route {
	const char *method;
	const char *pattern;          /* "/v1/runs/{id}/artifacts/{path*}": {x} is one
	                               * segment, {x*} the rest of the path */
	unsigned scopes;              /* any of these grants it; 0 = no token needed */
	enum pilot_route_body body;
	enum pilot_route_limit limit;
	bool idempotent;              /* the client may send it again after a lost answer */
	const struct pilot_codec *request;  /* the JSON body's type; NULL = none or its own */
	const struct pilot_codec *response; /* the JSON answer's type; NULL = none or its own */
};
extern const struct pilot_route pilot_routes[PILOT_NROUTES];

/* Route id's path with its parameters in pattern order, escaped ({x*} keeps its
 * slashes), appended to b. */
void pilot_route_path(enum pilot_route_id id, const char *const params[2], struct pilot_buf *b);
/* The route a request is for, with its path parameters copied into params (free them
 * with pilot_route_params_free); -1 when none, *path_known telling a wrong method
 * (405) from an unknown path (404). */
int pilot_route_match(const char *method, const char *path, char *params[2], bool *path_known);
void pilot_route_params_free(char *params[2]);
/* Percent-encode s for a URL into b; '/' kept when keep_slash. */
void pilot_url_escape(struct pilot_buf *b, const char *s, bool keep_slash);

#endif
