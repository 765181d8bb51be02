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

/* Resolve a run id or unique prefix to the full id. */
int resolve_run(struct pilot_store *st, const char *run, char id[PILOT_ID_SIZE]);

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

int store_get_run_locked(struct pilot_store *st, const char *id, bool with_attempts, bool secret_values,
			 struct pilot_run *out);

/* Time as the store sees it (tests may not move the clock: the knobs shorten waits). */
static inline int64_t store_now(void)
{
	return pilot_now_ms();
}

#endif
