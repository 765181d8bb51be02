/* server: `pilot server`, the REST API of design §6 over libmicrohttpd, mapping every
 * route onto the same api calls as the local transport on the server's own store; the
 * server's API tokens (format, hashing, scopes); and the client-side extras of the http
 * transport (lib/api/http.c) that are not part of struct pilot_api: whoami, tokens,
 * upload progress.
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
#define PILOT_TOKEN_PREFIX "pilot_"
#define PILOT_TOKEN_LEN (6 + 40 + 8)   /* prefix, 160 random bits in hex, checksum */
#define PILOT_TOKEN_SIZE (PILOT_TOKEN_LEN + 1)
int pilot_server_init(const char *data_dir, char secret[PILOT_TOKEN_SIZE], struct pilot_token_record *out);
/* PRAGMA integrity_check of DIR's store plus a scan for stray temp blobs: 0 when
 * clean, else PILOT_EIO describing the problems. */
int pilot_server_check(const char *data_dir);

/* ---- tokens ------------------------------------------------------------------------
 * A token is "pilot_" + 40 hex digits of randomness + 8 hex digits of checksum (the
 * first 4 bytes of the sha256 of the rest), so a typo is caught before any lookup and
 * a leaked token is easy to grep for. The store keeps only its sha256. */

enum {
	PILOT_SCOPE_READ = 1 << 0,     /* read runs, logs, events, artifacts, agents, status */
	PILOT_SCOPE_SUBMIT = 1 << 1,   /* upload bundles, submit and retry runs */
	PILOT_SCOPE_CANCEL = 1 << 2,   /* cancel runs */
	PILOT_SCOPE_AGENT = 1 << 3,    /* claim, heartbeat and report its own attempts */
	PILOT_SCOPE_ADMIN = 1 << 4,    /* everything, tokens included */
};
#define PILOT_SCOPE_ALL 0x1f

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
/* Create a token in the store: name NULL = "<first scope>-<4 random hex>". */
int pilot_server_token_create(struct pilot_store *st, const char *name, unsigned scopes, int64_t expires_ms,
			      char secret[PILOT_TOKEN_SIZE], struct pilot_token_record *out);
/* {"id", "name", "scopes": [..], "created_ms", "expires_ms", "revoked_ms",
 * "last_used_ms"}; the hash is never written. */
json_t *pilot_token_record_to_json(const struct pilot_token_record *t);
int pilot_token_record_from_json(const json_t *j, struct pilot_token_record *out);

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
int pilot_http_token_revoke(struct pilot_api *api, const char *id_or_name);

#endif
