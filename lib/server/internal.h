/* Private to lib/server: the server state shared by the daemon glue (server.c), the
 * route handlers (routes.c), the waiters and notifier (notify.c) and the metrics
 * (metrics.c). */
#ifndef PILOT_SERVER_INTERNAL_H
#define PILOT_SERVER_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>

#include <jansson.h>
#include <microhttpd.h>
#include <openssl/evp.h>

#include "pilot/api.h"
#include "pilot/server.h"
#include "pilot/store.h"

struct server;
struct req;

/* ---- routes ---- */

/* The routes themselves (method, pattern, scopes, body, codecs) are the api's table,
 * pilot_routes; the server adds one handler per route. A handler returns 1 when it
 * queued a response or suspended the connection, 0 to drop the connection. */
typedef int (*server_handler)(struct req *rq);
extern const server_handler server_handlers[PILOT_NROUTES];

/* ---- waiting (suspended connections) ---- */

enum wait_kind { WAIT_CLAIM, WAIT_LOG, WAIT_EVENTS, WAIT_SSE };
enum wake_reason { WAKE_NONE, WAKE_DATA, WAKE_TIMEOUT, WAKE_SHUTDOWN, WAKE_CLAIMED, WAKE_ERROR };

struct waiter {
	struct waiter *prev, *next;
	enum wait_kind kind;
	bool listed;              /* in one of the server's lists (and suspended) */
	bool busy;                /* the notifier is claiming for it: nobody else wakes it */
	int64_t deadline;         /* monotonic ms; 0 = none */
	enum wake_reason woke;
	/* WAIT_CLAIM: the request, and the result the notifier got for it. */
	struct pilot_claim_request creq;
	json_t *creq_json;        /* owns the strings creq points to */
	struct pilot_claim claim;
	int err_code;
	char *err_msg;
};

/* What a change touched: which waiters should look again. */
enum {
	NOTIFY_QUEUE = 1 << 0,    /* a run may have become claimable */
	NOTIFY_EVENT = 1 << 1,    /* events were written */
	NOTIFY_LOG = 1 << 2,      /* log bytes were appended */
};

/* ---- metrics ---- */

#define N_STATUS_SLOTS 20
#define N_LATENCY_BUCKETS 15
extern const double server_latency_buckets[N_LATENCY_BUCKETS];

struct route_stats {
	atomic_ullong by_status[N_STATUS_SLOTS];
};

struct metrics {
	struct route_stats *routes;        /* PILOT_NROUTES + 1 (unmatched) */
	atomic_ullong claims_total;
	atomic_ullong log_bytes_total;
	atomic_ullong latency_buckets[N_LATENCY_BUCKETS];
	atomic_ullong latency_count;
	atomic_ullong latency_sum_us;
	atomic_ullong bytes_sent_total;
	atomic_llong in_flight;
};
/* The slot of an HTTP status in route_stats. */
int metrics_status_slot(unsigned status);
void metrics_observe_claim(struct metrics *m, int64_t latency_ms);
/* The whole /metrics page (Prometheus text format 0.0.4). */
int metrics_render(struct server *srv, struct pilot_buf *out);

/* ---- the dashboard's files (generated from dashboard/ by tools/embed-assets.py) ---- */

struct pilot_asset {
	const char *name, *type;
	const unsigned char *data;
	size_t size;
};
extern const struct pilot_asset pilot_dashboard_files[];
extern const size_t pilot_dashboard_nfiles;

/* ---- the server ---- */

struct binding {
	char *agent;
	char token_id[PILOT_ID_SIZE];
};

struct server {
	struct pilot_server_options opt;
	char *data_dir;
	int lock_fd;                  /* flock on DIR/server.lock while we serve */
	char *upload_dir;
	char *url;
	char *tls_cert_pem, *tls_key_pem;
	struct pilot_api *api;
	struct pilot_store *st;
	uint64_t seen_queue_gen;      /* the store's queue generation notify_run saw (atomic) */
	struct MHD_Daemon *mhd;
	int64_t started_ms;

	/* Waiters and the notifier. */
	pthread_mutex_t lock;
	pthread_cond_t cond;          /* CLOCK_MONOTONIC */
	pthread_cond_t idle_cond;     /* signalled when in_flight drops */
	struct waiter claims;         /* FIFO list head (sentinel) of claim waiters */
	struct waiter others;         /* list head of log/event/SSE waiters */
	size_t nwaiting;
	uint64_t queue_gen;           /* bumped when a run may have become claimable */
	uint64_t change_gen;          /* bumped on every change */
	bool claim_pass_pending;
	int64_t next_due_ms;          /* wall ms of the earliest waiting run's not_before (0 = none) */
	bool due_dirty;
	bool stopping;
	bool stop_notifier;
	pthread_t notifier;
	bool notifier_started;
	unsigned active;              /* requests being handled (not idle keep-alives) */

	/* Agent names bound to the agent token that first used them. */
	pthread_mutex_t bind_lock;
	struct binding *bindings;
	size_t nbindings;

	struct metrics m;
	struct fleet *fleet;          /* pools of provisioned machines, or NULL */
};

/* One request: the connection's context from the first call of the access handler to
 * the completion notification. */
struct req {
	struct server *srv;
	struct MHD_Connection *conn;
	const struct pilot_route *route;
	int route_index;              /* -1 = unmatched */
	char *params[2];              /* path parameters, decoded */
	const char *method;
	char *path;
	int64_t start_mono;
	int64_t deadline_mono;        /* for receiving the body; 0 = none */

	/* Auth. */
	bool authed;
	unsigned scopes;
	char token_id[PILOT_ID_SIZE];
	char *token_name;
	char *token_agent;            /* the agent name the token is bound to, or NULL */
	int64_t token_expires_ms;

	/* Body. */
	struct pilot_buf body;
	int body_fd;
	EVP_MD_CTX *md;
	uint64_t body_size;
	uint64_t body_max;
	int body_err;                 /* a negative code once the body was refused */

	/* Response bookkeeping for the access log and metrics. */
	bool responded;
	unsigned status;
	uint64_t bytes;

	/* Long-polls: the handler runs again when the connection is resumed. */
	bool dispatched;              /* the handler ran once (arguments parsed) */
	struct waiter w;
	int64_t wait_deadline;        /* monotonic ms; 0 = answer at once */
	int log_attempt;              /* the attempt a log follow pinned */
	json_t *parsed;               /* the body, parsed on the first run */
	/* Server-Sent Events. */
	char sse_run[PILOT_ID_SIZE];  /* "" = every run */
	int64_t sse_after;
	struct pilot_buf sse_out;     /* formatted and not yet sent */
	bool sse_end;                 /* the run is terminal: end after flushing */
	int64_t sse_keepalive_at;
};

/* server.c: responses. Each returns an MHD_Result to hand back to MHD. */
enum MHD_Result respond_json(struct req *rq, unsigned status, json_t *j);  /* steals j */
/* With extra headers: name, value, ..., NULL (a NULL value skips its header). */
enum MHD_Result respond_json_headers(struct req *rq, unsigned status, json_t *j, const char *const *headers);
enum MHD_Result respond_error(struct req *rq, int code, const char *msg);
/* Respond with the thread's last error. */
enum MHD_Result respond_last_error(struct req *rq);
/* Like respond_error with an explicit status and extra fields in the error object
 * (extra may be NULL; stolen). */
enum MHD_Result respond_error_status(struct req *rq, unsigned status, int code, const char *msg, json_t *extra);
enum MHD_Result respond_text(struct req *rq, unsigned status, const char *type, const char *text);
enum MHD_Result respond_empty(struct req *rq, unsigned status);
/* Queue a prepared response (adds the common headers); takes ownership. */
enum MHD_Result respond(struct req *rq, unsigned status, struct MHD_Response *resp, uint64_t bytes);
/* HTTP status for an error code. */
unsigned http_status_for(int code);
const char *query(struct req *rq, const char *name);
const char *header(struct req *rq, const char *name);
/* The handler return convention: routes return 1 when a response was queued (or the
 * connection suspended), 0 to abort the connection. */
#define ROUTE_RESULT(r) ((r) == MHD_YES ? 1 : 0)

/* notify.c */
/* ---- the fleet (fleet.c) ---- */

/* Check and keep the pools (the options' pools_json; none is fine). */
int fleet_new(struct server *srv, const char *pools_json);
int fleet_start(struct server *srv);
void fleet_stop(struct server *srv);
void fleet_free(struct server *srv);
/* Runs may have been queued: look now rather than at the next tick. */
void fleet_poke(struct server *srv);
/* Fill st->pools. */
void fleet_status(struct server *srv, struct pilot_status *st);

int notify_start(struct server *srv);
void notify_stop(struct server *srv);
/* Something changed: wake the waiters that care. */
void server_notify(struct server *srv, unsigned what);
/* Answer the parked claims of agent now, saying told (a shutdown). */
void server_tell_agent(struct server *srv, const char *agent, enum pilot_agent_control told);
/* A run waits until due_ms (wall clock): wake claimers then. */
void server_notify_due(struct server *srv, int64_t due_ms);
/* Suspend rq's connection as a waiter of kind until deadline (monotonic ms), unless
 * the generation moved past gen (then return false: look again). Call from the access
 * handler or the content reader only. */
bool server_wait(struct server *srv, struct req *rq, enum wait_kind kind, int64_t deadline, uint64_t gen);
uint64_t server_change_gen(struct server *srv);
uint64_t server_queue_gen(struct server *srv);
/* Resume every waiter (shutdown). */
void server_wake_all(struct server *srv, enum wake_reason why);
/* Remove a waiter that is still listed (the connection is going away). */
void server_unwait(struct server *srv, struct waiter *w);
/* Count a claim in the metrics. */
void server_claimed(struct server *srv, const struct pilot_claim *c);

/* Agent name bindings (server.c): may the request's token act as this agent? A token
 * bound to a name acts only as it; with require_registration only such tokens act as
 * agents; an unbound agent token owns the names it used first. */
int server_bind_agent(struct server *srv, struct req *rq, const char *agent);
/* An agent enrolled anew: its name now belongs to token_id. */
void server_rebind_agent(struct server *srv, const char *agent, const char *token_id);

#endif
