/* server: `pilot server`, the REST API of design §6 over libmicrohttpd, mapping every
 * route onto the same api calls as the local transport on the server's own store, and
 * the server data directory's tokens (the token format itself is in pilot/model.h).
 *
 * Long-polling requests (claims, log follows, event waits, Server-Sent Events) are
 * suspended in libmicrohttpd and resumed by a notifier thread when something they wait
 * for happens, so an idle agent costs a socket and a few hundred bytes, not a thread.
 * The REST API itself is documented in pilot-api(7). */
#ifndef PILOT_SERVER_H
#define PILOT_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "pilot/api.h"
#include "pilot/model.h"
#include "pilot/store.h"
#include "pilot/util.h"

/* ---- the server ------------------------------------------------------------------ */

#define PILOT_SERVER_DEFAULT_LISTEN "127.0.0.1:8421"

/* One access log line (no newline), text or JSON as asked. */
typedef void (*pilot_server_log_fn)(const char *line, void *userdata);

/* Zero fields take the default named beside them. Strings are borrowed for the life
 * of the server. */
struct pilot_server_options {
	const char *listen;            /* "ADDR:PORT", "[ADDR]:PORT" or ":PORT" (all
	                                * addresses); port 0 = any free port.
	                                * PILOT_SERVER_DEFAULT_LISTEN */
	const char *data_dir;          /* $XDG_DATA_HOME/pilot/server */
	const char *tls_cert;          /* PEM certificate chain and key: HTTPS when both */
	const char *tls_key;
	int threads;                   /* worker threads: 4 */
	int max_connections;           /* 10000 */
	int max_conns_per_ip;          /* 1024; negative = no limit */
	int64_t connection_timeout_ms; /* an idle (not suspended) connection: 60 s */
	int64_t request_timeout_ms;    /* absolute deadline to receive a request: 60 s */
	int64_t upload_timeout_ms;     /* the same for bundles and artifacts: 1 h */
	int64_t max_wait_ms;           /* the longest ?wait= granted: 120 s */
	int64_t lease_ttl_ms;          /* PILOT_LEASE_TTL, else 60 s */
	int64_t reap_interval_ms;      /* PILOT_REAP_INTERVAL, else 5 s */
	int64_t keepalive_ms;          /* Server-Sent Events comment interval: 15 s */
	uint64_t max_json_body;        /* 1 MiB */
	uint64_t max_log_chunk;        /* 8 MiB */
	uint64_t max_bundle_size;      /* 2 GiB */
	uint64_t max_artifact_size;    /* 8 GiB */
	bool log_json;                 /* access log as JSON lines */
	bool require_registration;     /* only agents enrolled with a registration token */
	/* The pools of machines to launch through provisioners (pilot-server(1), pools:),
	 * as a JSON array; NULL = none. Checked by pilot_server_start. */
	const char *pools_json;
	pilot_server_log_fn access_log; /* NULL = none */
	void *access_log_data;
};

/* The keys of a server config file (a flat YAML mapping), each the long name of the
 * `pilot server` flag with '-' as '_': listen, data, tls_cert, ... */
extern const char *const pilot_server_config_keys[];
/* Read a server config file into kvs (key -> value, validated against the keys above
 * with did-you-mean). */
int pilot_server_config_read(const char *path, struct pilot_kvs *kvs);
/* Apply key/value settings to o; strings in o point into kvs (keep it alive). Errors
 * name the key and, when given, the origin ("FILE" or "flag"). */
int pilot_server_options_apply(struct pilot_server_options *o, const struct pilot_kvs *kvs, const char *origin);

/* $XDG_DATA_HOME/pilot/server (caller frees). */
char *pilot_server_default_data_dir(void);

struct pilot_server;

/* Open the store (quick_check; reaping delayed by one lease TTL), bind, start the
 * worker threads and the notifier. */
int pilot_server_start(const struct pilot_server_options *o, struct pilot_server **out);
/* "http://127.0.0.1:8421": the address actually bound (port 0 resolved). */
const char *pilot_server_url(const struct pilot_server *srv);
/* Stop accepting connections, answer suspended long-polls with their empty answer
 * (204, an empty chunk, the end of an event stream), let in-flight requests finish
 * (up to grace_ms), close the store and free. Accepts NULL. */
void pilot_server_stop(struct pilot_server *srv, int64_t grace_ms);

/* Create DIR (mode 0700) and its store, and the first admin token, named "admin".
 * PILOT_ECONFLICT when DIR already has tokens. secret gets the token, shown once. */
int pilot_server_init(const char *data_dir, char secret[PILOT_TOKEN_SIZE], struct pilot_token_record *out);
/* PRAGMA integrity_check of DIR's store plus a scan for stray temp blobs: 0 when
 * clean, else PILOT_EIO describing the problems. */
int pilot_server_check(const char *data_dir);

/* Create a token in the store: name NULL = "<first scope>-<4 random hex>"; agent and
 * replace as for pilot_store_token_create. */
int pilot_server_token_create(struct pilot_store *st, const char *name, unsigned scopes, int64_t expires_ms,
			      const char *agent, bool replace, char secret[PILOT_TOKEN_SIZE],
			      struct pilot_token_record *out);

#endif
