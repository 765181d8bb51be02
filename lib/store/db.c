/* Opening the SQLite store: pragmas, the numbered schema migrations, the integrity
 * check, and the small statement/transaction helpers the rest of lib/store uses. */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"
#include "pilot/version.h"

/* Each migration takes the schema from version i to i+1. Never edit a published one:
 * add the next. */
static const char *const migrations[] = {
	/* 1: the initial schema. */
	"CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT);\n"
	"CREATE TABLE runs (\n"
	"  id TEXT PRIMARY KEY,\n"
	"  name TEXT NOT NULL,\n"
	"  spec_json TEXT NOT NULL,\n"
	"  bundle_sha256 TEXT,\n"
	"  params_json TEXT,\n"
	"  env_json TEXT,\n"
	"  requires_json TEXT NOT NULL DEFAULT '',\n"
	"  secrets_json TEXT,\n"
	"  priority INTEGER NOT NULL DEFAULT 0,\n"
	"  state TEXT NOT NULL,\n"
	"  reason TEXT,\n"
	"  message TEXT,\n"
	"  exit_code INTEGER,\n"
	"  created_ms INTEGER NOT NULL,\n"
	"  started_ms INTEGER,\n"
	"  finished_ms INTEGER,\n"
	"  not_before_ms INTEGER,\n"
	"  updated_ms INTEGER NOT NULL,\n"
	"  attempt_count INTEGER NOT NULL DEFAULT 0,\n"
	"  failed_count INTEGER NOT NULL DEFAULT 0,\n"
	"  lost_count INTEGER NOT NULL DEFAULT 0,\n"
	"  retry_max INTEGER NOT NULL DEFAULT 1,\n"
	"  retry_on INTEGER NOT NULL DEFAULT 0,\n"
	"  backoff_ms INTEGER NOT NULL DEFAULT 0,\n"
	"  max_backoff_ms INTEGER NOT NULL DEFAULT 0,\n"
	"  timeout_ms INTEGER NOT NULL DEFAULT 0,\n"
	"  idempotency_key TEXT,\n"
	"  submitter TEXT,\n"
	"  retry_of TEXT,\n"
	"  cancel_requested INTEGER NOT NULL DEFAULT 0,\n"
	"  agent TEXT\n"
	");\n"
	/* Newest-first listing per state and per name; the primary key serves the
	 * unfiltered list and prefix lookups. */
	"CREATE INDEX runs_state_id ON runs(state, id);\n"
	"CREATE INDEX runs_name_id ON runs(name, id);\n"
	/* The claim order within one set of required labels, over queued runs only. */
	"CREATE INDEX runs_claim ON runs(requires_json, priority DESC, id) WHERE state = 'queued';\n"
	/* How many queued runs need each distinct set of labels: a claim judges each set
	 * once instead of every queued run an agent cannot take. */
	"CREATE TABLE queued_sets (requires_json TEXT PRIMARY KEY, n INTEGER NOT NULL) WITHOUT ROWID;\n"
	"CREATE INDEX runs_due ON runs(not_before_ms) WHERE state = 'waiting';\n"
	"CREATE TABLE run_counts (state TEXT PRIMARY KEY, n INTEGER NOT NULL) WITHOUT ROWID;\n"
	"CREATE TABLE idempotency (\n"
	"  key TEXT PRIMARY KEY,\n"
	"  run_id TEXT NOT NULL,\n"
	"  payload_sha256 TEXT NOT NULL,\n"
	"  created_ms INTEGER NOT NULL\n"
	") WITHOUT ROWID;\n"
	"CREATE TABLE attempts (\n"
	"  id TEXT PRIMARY KEY,\n"
	"  run_id TEXT NOT NULL,\n"
	"  number INTEGER NOT NULL,\n"
	"  agent TEXT NOT NULL,\n"
	"  token_sha256 TEXT NOT NULL,\n"
	"  state TEXT NOT NULL,\n"
	"  reason TEXT,\n"
	"  exit_code INTEGER,\n"
	"  message TEXT,\n"
	"  started_ms INTEGER NOT NULL,\n"
	"  finished_ms INTEGER,\n"
	"  heartbeat_ms INTEGER,\n"
	"  lease_expires_ms INTEGER,\n"
	"  deadline_ms INTEGER,\n"
	"  log_bytes INTEGER NOT NULL DEFAULT 0,\n"
	"  metric_count INTEGER NOT NULL DEFAULT 0,\n"
	"  UNIQUE (run_id, number)\n"
	");\n"
	"CREATE INDEX attempts_lease ON attempts(lease_expires_ms) WHERE state = 'running';\n"
	"CREATE INDEX attempts_deadline ON attempts(deadline_ms) WHERE state = 'running' AND deadline_ms IS NOT NULL;\n"
	"CREATE INDEX attempts_agent ON attempts(agent) WHERE state = 'running';\n"
	"CREATE TABLE log_chunks (\n"
	"  attempt_id TEXT NOT NULL,\n"
	"  offset INTEGER NOT NULL,\n"
	"  len INTEGER NOT NULL,\n"
	"  data BLOB NOT NULL,\n"
	"  PRIMARY KEY (attempt_id, offset)\n"
	");\n"
	"CREATE TABLE events (\n"
	"  seq INTEGER PRIMARY KEY AUTOINCREMENT,\n"
	"  run_id TEXT NOT NULL,\n"
	"  attempt INTEGER NOT NULL DEFAULT 0,\n"
	"  time_ms INTEGER NOT NULL,\n"
	"  type TEXT NOT NULL,\n"
	"  actor TEXT,\n"
	"  message TEXT,\n"
	"  data_json TEXT,\n"
	"  state TEXT NOT NULL\n"
	");\n"
	"CREATE INDEX events_run ON events(run_id, seq);\n"
	"CREATE TABLE artifacts (\n"
	"  attempt_id TEXT NOT NULL,\n"
	"  run_id TEXT NOT NULL,\n"
	"  attempt INTEGER NOT NULL,\n"
	"  path TEXT NOT NULL,\n"
	"  size INTEGER NOT NULL,\n"
	"  sha256 TEXT NOT NULL,\n"
	"  created_ms INTEGER NOT NULL,\n"
	"  PRIMARY KEY (attempt_id, path)\n"
	");\n"
	"CREATE INDEX artifacts_run ON artifacts(run_id, attempt, path);\n"
	"CREATE TABLE metrics (\n"
	"  attempt_id TEXT NOT NULL,\n"
	"  run_id TEXT NOT NULL,\n"
	"  attempt INTEGER NOT NULL,\n"
	"  idx INTEGER NOT NULL,\n"
	"  time_ms INTEGER NOT NULL,\n"
	"  json TEXT NOT NULL,\n"
	"  PRIMARY KEY (attempt_id, idx)\n"
	");\n"
	"CREATE INDEX metrics_run ON metrics(run_id, attempt, idx);\n"
	"CREATE TABLE agents (\n"
	"  name TEXT PRIMARY KEY,\n"
	"  labels_json TEXT,\n"
	"  version TEXT,\n"
	"  capacity INTEGER NOT NULL DEFAULT 1,\n"
	"  free_slots INTEGER NOT NULL DEFAULT 1,\n"
	"  first_seen_ms INTEGER NOT NULL,\n"
	"  last_seen_ms INTEGER NOT NULL,\n"
	"  left_ms INTEGER\n"
	");\n"
	"CREATE TABLE tokens (\n"
	"  id TEXT PRIMARY KEY,\n"
	"  name TEXT NOT NULL,\n"
	"  sha256 TEXT NOT NULL UNIQUE,\n"
	"  scopes TEXT NOT NULL,\n"
	"  created_ms INTEGER NOT NULL,\n"
	"  expires_ms INTEGER,\n"
	"  revoked_ms INTEGER,\n"
	"  last_used_ms INTEGER\n"
	");\n"
	"CREATE INDEX tokens_name ON tokens(name);\n",
	/* 2: runs held for their submitter (pilot run). */
	"ALTER TABLE runs ADD COLUMN held INTEGER NOT NULL DEFAULT 0;\n",
	/* 3: the grace period a cancel asked for (pilot cancel --grace/--now), which the
	 * agent learns with its next heartbeat; NULL = the agent's own. */
	"ALTER TABLE runs ADD COLUMN cancel_grace_ms INTEGER;\n",
	/* 4: runs hold the retry backoff in force (a 0 meant the default, now it is no
	 * wait, as pilot.yaml's backoff: 0 says). */
	("UPDATE runs SET backoff_ms = 5000 WHERE backoff_ms = 0;\n"
	 "UPDATE runs SET max_backoff_ms = 300000 WHERE max_backoff_ms = 0;\n"),
	/* 5: runs that wait for others (submit --after): which runs, with the end states
	 * each accepts, and how many have not ended yet. */
	("CREATE TABLE run_needs (\n"
	 "  run_id TEXT NOT NULL,\n"
	 "  need_id TEXT NOT NULL,\n"
	 "  states INTEGER NOT NULL,\n"
	 "  PRIMARY KEY (run_id, need_id)\n"
	 ") WITHOUT ROWID;\n"
	 "CREATE INDEX run_needs_need ON run_needs(need_id);\n"
	 "ALTER TABLE runs ADD COLUMN needs_left INTEGER NOT NULL DEFAULT 0;\n"),
	/* 6: concurrency limits: the limits a run is counted in (key "group:NAME" or
	 * "array:ID") and whether it holds its slot; the group on the run for show, and
	 * slot_wait for a waiting run that waits only for a slot. */
	("CREATE TABLE run_slots (\n"
	 "  key TEXT NOT NULL,\n"
	 "  run_id TEXT NOT NULL,\n"
	 "  max INTEGER NOT NULL,\n"
	 "  held INTEGER NOT NULL DEFAULT 0,\n"
	 "  PRIMARY KEY (key, run_id)\n"
	 ") WITHOUT ROWID;\n"
	 "CREATE INDEX run_slots_run ON run_slots(run_id);\n"
	 "CREATE INDEX run_slots_held ON run_slots(key) WHERE held = 1;\n"
	 "ALTER TABLE runs ADD COLUMN concurrency_group TEXT;\n"
	 "ALTER TABLE runs ADD COLUMN concurrency_max INTEGER;\n"
	 "ALTER TABLE runs ADD COLUMN slot_wait INTEGER NOT NULL DEFAULT 0;\n"
	 /* arrays (submit --array/--matrix): one row each, and its runs' element. */
	 "CREATE TABLE arrays (\n"
	 "  id TEXT PRIMARY KEY,\n"
	 "  name TEXT NOT NULL,\n"
	 "  submitter TEXT,\n"
	 "  created_ms INTEGER NOT NULL,\n"
	 "  throttle INTEGER NOT NULL,\n"
	 "  max_failures INTEGER NOT NULL DEFAULT 0\n"
	 ");\n"
	 "ALTER TABLE runs ADD COLUMN array_id TEXT;\n"
	 "ALTER TABLE runs ADD COLUMN array_index INTEGER;\n"
	 "CREATE INDEX runs_array ON runs(array_id, array_index) WHERE array_id IS NOT NULL;\n"),
	/* 7: failures of runs of one name on one agent in a row, and whether the agent is
	 * blocklisted for that name (blocked_ms). */
	("CREATE TABLE blocklist (\n"
	 "  agent TEXT NOT NULL,\n"
	 "  name TEXT NOT NULL,\n"
	 "  failures INTEGER NOT NULL,\n"
	 "  last_failure_ms INTEGER NOT NULL,\n"
	 "  blocked_ms INTEGER,\n"
	 "  PRIMARY KEY (agent, name)\n"
	 ") WITHOUT ROWID;\n"),
	/* 8: start_timeout: a queued run with no agent that could take it by its
	 * start_deadline fails; the deadline moves on while one could. */
	("ALTER TABLE runs ADD COLUMN start_timeout_ms INTEGER;\n"
	 "ALTER TABLE runs ADD COLUMN start_deadline_ms INTEGER;\n"
	 "CREATE INDEX runs_start_deadline ON runs(start_deadline_ms) WHERE start_deadline_ms IS NOT NULL;\n"),
	/* 9: agent control (drain, sleep, shutdown: who asked and when), and attempts
	 * stopped to go back to the queue (drain --now). */
	("ALTER TABLE agents ADD COLUMN control TEXT;\n"
	 "ALTER TABLE agents ADD COLUMN control_ms INTEGER;\n"
	 "ALTER TABLE agents ADD COLUMN control_by TEXT;\n"
	 "ALTER TABLE attempts ADD COLUMN requeue INTEGER NOT NULL DEFAULT 0;\n"),
	/* 10: machines the server's pools launched, kept across restarts (no double
	 * launch, no orphan). */
	("CREATE TABLE instances (\n"
	 "  id TEXT PRIMARY KEY,\n"
	 "  pool TEXT NOT NULL,\n"
	 "  agent TEXT NOT NULL,\n"
	 "  provider_id TEXT,\n"
	 "  state TEXT NOT NULL,\n"
	 "  run_id TEXT,\n"
	 "  token_id TEXT,\n"
	 "  launched_ms INTEGER NOT NULL,\n"
	 "  registered_ms INTEGER,\n"
	 "  ended_ms INTEGER,\n"
	 "  cost_per_hour REAL NOT NULL DEFAULT 0,\n"
	 "  message TEXT\n"
	 ");\n"
	 "CREATE INDEX instances_live ON instances(launched_ms) WHERE state != 'terminated';\n"
	 "CREATE INDEX instances_pool ON instances(pool);\n"
	 "CREATE INDEX instances_agent ON instances(agent);\n"),
	/* 11: agents' sleep schedules (weekly windows in a zone) and when each next
	 * changes, when the reaper puts the agent to sleep or wakes it. */
	("ALTER TABLE agents ADD COLUMN sleep_schedule TEXT;\n"
	 "ALTER TABLE agents ADD COLUMN sleep_tz TEXT;\n"
	 "ALTER TABLE agents ADD COLUMN sleep_next_ms INTEGER;\n"
	 "CREATE INDEX agents_sleep_next ON agents(sleep_next_ms) WHERE sleep_next_ms IS NOT NULL;\n"),
	/* 12: tokens bound to one agent name (enrolled agents, pool instances). */
	("ALTER TABLE tokens ADD COLUMN agent TEXT;\n"),
};

_Static_assert(ARRAY_SIZE(migrations) == PILOT_STORE_SCHEMA_VERSION, "one migration per schema version");

/* ---- helpers ---- */

pthread_mutex_t *store_lock(struct pilot_store *st)
{
	pthread_mutex_lock(&st->lock);
	return &st->lock;
}

void store_unlockp(pthread_mutex_t **m)
{
	if (*m)
		pthread_mutex_unlock(*m);
}

int db_error(struct pilot_store *st, const char *what)
{
	int rc = sqlite3_extended_errcode(st->db);
	int prim = rc & 0xff;
	const char *msg = sqlite3_errmsg(st->db);
	if (prim == SQLITE_BUSY || prim == SQLITE_LOCKED)
		return pilot_error_set(PILOT_EUNAVAILABLE, "%s: database '%s' is busy: %s", what, st->db_path, msg);
	if (prim == SQLITE_CORRUPT || prim == SQLITE_NOTADB)
		return pilot_error_set(PILOT_EIO, "%s: database '%s' is damaged: %s", what, st->db_path, msg);
	if (prim == SQLITE_FULL)
		return pilot_error_set(PILOT_EIO, "%s: database '%s': disk full", what, st->db_path);
	return pilot_error_set(PILOT_EIO, "%s: database '%s': %s", what, st->db_path, msg);
}

sqlite3_stmt *db_stmt(struct pilot_store *st, const char *sql)
{
	size_t h = ((uintptr_t)sql >> 3) % STMT_CACHE;
	for (size_t i = 0; i < STMT_CACHE; i++) {
		size_t k = (h + i) % STMT_CACHE;
		if (st->cache[k].sql == sql) {
			sqlite3_reset(st->cache[k].stmt);
			sqlite3_clear_bindings(st->cache[k].stmt);
			return st->cache[k].stmt;
		}
		if (!st->cache[k].sql) {
			sqlite3_stmt *s = NULL;
			if (sqlite3_prepare_v3(st->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &s, NULL) != SQLITE_OK) {
				db_error(st, "cannot prepare a query");
				return NULL;
			}
			st->cache[k].sql = sql;
			st->cache[k].stmt = s;
			return s;
		}
	}
	abort(); /* more distinct statements than STMT_CACHE: raise it */
}

int db_done(struct pilot_store *st, sqlite3_stmt *s, const char *what)
{
	int rc = sqlite3_step(s);
	if (rc != SQLITE_DONE && rc != SQLITE_ROW) {
		int r = db_error(st, what);
		sqlite3_reset(s);
		return r;
	}
	sqlite3_reset(s);
	return 0;
}

int db_exec(struct pilot_store *st, const char *sql)
{
	char *err = NULL;
	if (sqlite3_exec(st->db, sql, NULL, NULL, &err) != SQLITE_OK) {
		int r = db_error(st, "cannot update the database");
		sqlite3_free(err);
		return r;
	}
	return 0;
}

int db_begin(struct pilot_store *st, bool write)
{
	/* busy_timeout already waits inside BEGIN IMMEDIATE; SQLite still returns BUSY at
	 * once in a few cases (a recovering WAL), so keep trying for a while. */
	int64_t deadline = pilot_mono_ms() + 60000;
	for (int i = 0;; i++) {
		int rc = sqlite3_exec(st->db, write ? "BEGIN IMMEDIATE" : "BEGIN", NULL, NULL, NULL);
		if (rc == SQLITE_OK)
			return 0;
		if ((rc & 0xff) != SQLITE_BUSY || pilot_mono_ms() > deadline)
			return db_error(st, "cannot start a transaction");
		struct timespec ts = { 0, (long)(1 + (i % 20)) * 1000000L };
		nanosleep(&ts, NULL);
	}
}

int db_commit(struct pilot_store *st)
{
	if (sqlite3_exec(st->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
		int r = db_error(st, "cannot commit");
		db_rollback(st);
		return r;
	}
	return 0;
}

void db_rollback(struct pilot_store *st)
{
	if (!sqlite3_get_autocommit(st->db))
		sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
}

void bind_text(sqlite3_stmt *s, int i, const char *v)
{
	if (v)
		sqlite3_bind_text(s, i, v, -1, SQLITE_TRANSIENT);
	else
		sqlite3_bind_null(s, i);
}

void bind_int(sqlite3_stmt *s, int i, int64_t v)
{
	sqlite3_bind_int64(s, i, v);
}

void bind_int_or_null(sqlite3_stmt *s, int i, int64_t v)
{
	if (v)
		sqlite3_bind_int64(s, i, v);
	else
		sqlite3_bind_null(s, i);
}

char *col_dup(sqlite3_stmt *s, int i)
{
	const unsigned char *t = sqlite3_column_text(s, i);
	return t ? pilot_xstrdup((const char *)t) : NULL;
}

const char *col_text(sqlite3_stmt *s, int i)
{
	const unsigned char *t = sqlite3_column_text(s, i);
	return t ? (const char *)t : "";
}

int64_t col_int(sqlite3_stmt *s, int i)
{
	return sqlite3_column_int64(s, i);
}

void col_copy_id(sqlite3_stmt *s, int i, char out[PILOT_ID_SIZE])
{
	snprintf(out, PILOT_ID_SIZE, "%s", col_text(s, i));
}

char *kvs_to_text(const struct pilot_kvs *kvs)
{
	if (!kvs || !kvs->n)
		return NULL;
	json_t *o = json_object();
	for (size_t i = 0; i < kvs->n; i++)
		json_object_set_new(o, kvs->items[i].key, json_string(kvs->items[i].value ? kvs->items[i].value : ""));
	char *s = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS);
	json_decref(o);
	char *r = pilot_xstrdup(s);
	free(s);
	return r;
}

void kvs_from_text(const char *text, struct pilot_kvs *out, bool values)
{
	out->items = NULL;
	out->n = 0;
	if (!text || !*text)
		return;
	json_t *o = json_loads(text, 0, NULL);
	const char *k;
	json_t *v;
	json_object_foreach(o, k, v) pilot_kvs_set(out, k, values ? json_string_value(v) : NULL);
	json_decref(o);
}

/* ---- options ---- */

static int64_t knob(int64_t given, const char *env, int64_t def)
{
	if (given > 0)
		return given;
	const char *v = getenv(env);
	int64_t ms;
	if (v && *v && pilot_parse_duration(v, &ms) == 0 && ms >= 0)
		return ms;
	return def;
}

static void effective_options(const struct pilot_local_options *in, struct pilot_local_options *o)
{
	struct pilot_local_options zero = { 0 };
	if (!in)
		in = &zero;
	*o = *in;
	o->lease_ttl_ms = knob(in->lease_ttl_ms, "PILOT_LEASE_TTL", 60000);
	o->timeout_grace_ms = knob(in->timeout_grace_ms, "PILOT_TIMEOUT_GRACE", 60000);
	o->reap_delay_ms = knob(in->reap_delay_ms, "PILOT_REAP_DELAY", 0);
	o->backoff_base_ms = knob(in->backoff_base_ms, "PILOT_BACKOFF_BASE", 5000);
	o->backoff_cap_ms = knob(in->backoff_cap_ms, "PILOT_BACKOFF_CAP", 300000);
	if (o->max_lost <= 0) {
		const char *v = getenv("PILOT_MAX_LOST");
		int64_t n;
		o->max_lost = v && pilot_parse_int64(v, 0, 1000, &n) == 0 ? (int)n : 3;
	}
	o->retry_elsewhere_ms = knob(in->retry_elsewhere_ms, "PILOT_RETRY_ELSEWHERE", 120000);
	if (o->blocklist_after == 0) {
		const char *v = getenv("PILOT_BLOCKLIST_AFTER");
		int64_t n;
		o->blocklist_after = v && pilot_parse_int64(v, 0, 1000, &n) == 0 ? (int)n : 3;
	}
	if (o->lease_ttl_ms <= 0)
		o->lease_ttl_ms = 60000;
	o->actor = NULL;
}

/* ---- open ---- */

static int get_user_version(struct pilot_store *st, int *v)
{
	sqlite3_stmt *s = NULL;
	if (sqlite3_prepare_v2(st->db, "PRAGMA user_version", -1, &s, NULL) != SQLITE_OK)
		return db_error(st, "cannot read the schema version");
	int rc = sqlite3_step(s);
	if (rc != SQLITE_ROW) {
		int r = db_error(st, "cannot read the schema version");
		sqlite3_finalize(s);
		return r;
	}
	*v = sqlite3_column_int(s, 0);
	sqlite3_finalize(s);
	return 0;
}

static int too_new(struct pilot_store *st, int v)
{
	return pilot_error_set(PILOT_EINVALID,
			       "cannot open database '%s': its schema version %d is newer than this pilot knows (%d): "
			       "upgrade pilot",
			       st->db_path, v, PILOT_STORE_SCHEMA_VERSION);
}

static int migrate(struct pilot_store *st)
{
	int v, r;
	if ((r = get_user_version(st, &v)) < 0)
		return r;
	if (v > PILOT_STORE_SCHEMA_VERSION)
		return too_new(st, v);
	if (v == PILOT_STORE_SCHEMA_VERSION)
		return 0;
	/* Another process may be migrating too: decide again under the write lock. */
	if ((r = db_begin(st, true)) < 0)
		return r;
	if ((r = get_user_version(st, &v)) < 0)
		goto fail;
	if (v > PILOT_STORE_SCHEMA_VERSION) {
		r = too_new(st, v);
		goto fail;
	}
	for (; v < PILOT_STORE_SCHEMA_VERSION; v++) {
		if ((r = db_exec(st, migrations[v])) < 0) {
			pilot_error_prefix(r, "cannot migrate database '%s' to schema version %d", st->db_path, v + 1);
			goto fail;
		}
		char sql[64];
		snprintf(sql, sizeof(sql), "PRAGMA user_version = %d", v + 1);
		if ((r = db_exec(st, sql)) < 0)
			goto fail;
	}
	char *sql = sqlite3_mprintf("INSERT OR REPLACE INTO meta(key, value) VALUES ('schema_written_by', %Q)",
				    pilot_version());
	r = db_exec(st, sql);
	sqlite3_free(sql);
	if (r < 0)
		goto fail;
	return db_commit(st);
fail:
	db_rollback(st);
	return r;
}

static int quick_check(struct pilot_store *st)
{
	sqlite3_stmt *s = NULL;
	if (sqlite3_prepare_v2(st->db, "PRAGMA quick_check(5)", -1, &s, NULL) != SQLITE_OK)
		return db_error(st, "cannot check the database");
	_cleanup_buf_ struct pilot_buf problems = PILOT_BUF_INIT;
	int rc;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		const char *t = (const char *)sqlite3_column_text(s, 0);
		if (t && strcmp(t, "ok"))
			pilot_buf_printf(&problems, "%s%s", problems.len ? "; " : "", t);
	}
	if (rc != SQLITE_DONE) {
		int r = db_error(st, "cannot check the database");
		sqlite3_finalize(s);
		return r;
	}
	sqlite3_finalize(s);
	if (problems.len)
		return pilot_error_set(PILOT_EIO,
				       "database '%s' is damaged: %s (move it aside to start afresh, or restore a backup)",
				       st->db_path, pilot_buf_str(&problems));
	return 0;
}

/* SQLite's own busy handler backs off to 100 ms sleeps: with a score of processes
 * queueing for the write lock most of them then sleep while it is free. Short random
 * sleeps keep the lock busy and the wait fair enough; give up after 10 s. */
static int busy_handler(void *ud, int count)
{
	(void)ud;
	if (count == 0) {
		int64_t *start = ud;
		*start = pilot_mono_ms();
	}
	int64_t *start = ud;
	if (pilot_mono_ms() - *start > 10000)
		return 0;
	unsigned char r;
	pilot_random_bytes(&r, 1);
	struct timespec ts = { 0, (long)(200 + (r % 8) * 250) * 1000L };
	nanosleep(&ts, NULL);
	return 1;
}

static int pragma_setup(struct pilot_store *st)
{
	sqlite3_busy_handler(st->db, busy_handler, &st->busy_start);
	sqlite3_extended_result_codes(st->db, 1);
	/* journal_mode=WAL reads the header: a non-database shows up here. Switching the
	 * mode of a new file answers BUSY at once (no busy handler) while another
	 * process does the same, so retry. */
	int64_t deadline = pilot_mono_ms() + 10000;
	for (int i = 0;; i++) {
		sqlite3_stmt *s = NULL;
		int rc = sqlite3_prepare_v2(st->db, "PRAGMA journal_mode=WAL", -1, &s, NULL);
		if (rc == SQLITE_OK)
			rc = sqlite3_step(s);
		sqlite3_finalize(s);
		if (rc == SQLITE_ROW)
			break;
		if ((rc & 0xff) != SQLITE_BUSY || pilot_mono_ms() > deadline)
			return db_error(st, "cannot open the database");
		struct timespec ts = { 0, (long)(1 + i % 10) * 1000000L };
		nanosleep(&ts, NULL);
	}
	return db_exec(st, "PRAGMA synchronous=FULL; PRAGMA foreign_keys=OFF; PRAGMA temp_store=MEMORY;");
}

int pilot_store_open(const char *dir, const struct pilot_local_options *opts, struct pilot_store **out)
{
	struct pilot_store *st = pilot_xcalloc(1, sizeof(*st));
	_cleanup_free_ char *bdir = pilot_path_join(dir, "blobs");
	int r;
	pthread_mutex_init(&st->lock, NULL);
	st->dir = pilot_xstrdup(dir);
	st->db_path = pilot_path_join(dir, "pilot.db");
	effective_options(opts, &st->opt);
	st->actor = opts && opts->actor ? pilot_xstrdup(opts->actor) : pilot_local_identity();
	st->opt.actor = st->actor;
	st->opened_ms = pilot_now_ms();

	if ((r = pilot_mkdir_p(dir, 0700)) < 0) {
		pilot_error_prefix(r, "cannot open store '%s'", dir);
		goto fail;
	}
	if ((r = pilot_blob_open(bdir, &st->blobs)) < 0)
		goto fail;
	/* Never open the database file outside SQLite: closing any descriptor of it drops
	 * every POSIX lock this process holds on it, including those of other store handles,
	 * and another process may then delete the WAL under them. SQLite creates the file;
	 * chmod (no descriptor) makes it 0600 whatever the umask, and SQLite gives the WAL
	 * and shared-memory files the database's mode. */
	if (sqlite3_open_v2(st->db_path, &st->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
			    NULL) != SQLITE_OK) {
		r = st->db ? db_error(st, "cannot open database") :
			     pilot_error_set(PILOT_ENOMEM, "cannot open database '%s'", st->db_path);
		goto fail;
	}
	struct stat dbst;
	if (stat(st->db_path, &dbst) == 0 && (dbst.st_mode & 077) && chmod(st->db_path, 0600) < 0) {
		r = pilot_error_errno(PILOT_EIO, errno, "cannot make database '%s' private", st->db_path);
		goto fail;
	}
	if ((r = pragma_setup(st)) < 0 || (r = migrate(st)) < 0)
		goto fail;
	bool check = st->opt.quick_check > 0;
	if (st->opt.quick_check == 0) {
		struct stat sb;
		/* quick_check reads every page: at every CLI call only while that is cheap. */
		check = stat(st->db_path, &sb) == 0 && sb.st_size <= 8 * 1024 * 1024;
	}
	if (check && (r = quick_check(st)) < 0)
		goto fail;
	*out = st;
	return 0;
fail:
	pilot_store_close(st);
	return r;
}

void pilot_store_close(struct pilot_store *st)
{
	if (!st)
		return;
	for (size_t i = 0; i < STMT_CACHE; i++)
		if (st->cache[i].stmt)
			sqlite3_finalize(st->cache[i].stmt);
	if (st->db)
		sqlite3_close_v2(st->db);
	pilot_blob_close(st->blobs);
	pthread_mutex_destroy(&st->lock);
	for (size_t i = 0; i < st->npool_labels; i++)
		pilot_kvs_clear(&st->pool_labels[i]);
	free(st->pool_labels);
	free(st->actor);
	free(st->dir);
	free(st->db_path);
	free(st);
}

const char *pilot_store_db_path(const struct pilot_store *st)
{
	return st->db_path;
}

struct pilot_blob_store *pilot_store_blobs(struct pilot_store *st)
{
	return st->blobs;
}

uint64_t pilot_store_queue_generation(struct pilot_store *st)
{
	return __atomic_load_n(&st->queue_gen, __ATOMIC_RELAXED);
}

const struct pilot_local_options *pilot_store_options(const struct pilot_store *st)
{
	return &st->opt;
}

int pilot_store_integrity_check(struct pilot_store *st)
{
	STORE_LOCKED(st);
	sqlite3_stmt *s = NULL;
	if (sqlite3_prepare_v2(st->db, "PRAGMA integrity_check(10)", -1, &s, NULL) != SQLITE_OK)
		return db_error(st, "cannot check the database");
	_cleanup_buf_ struct pilot_buf problems = PILOT_BUF_INIT;
	int rc;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		const char *t = (const char *)sqlite3_column_text(s, 0);
		if (t && strcmp(t, "ok"))
			pilot_buf_printf(&problems, "%s%s", problems.len ? "; " : "", t);
	}
	sqlite3_finalize(s);
	if (rc != SQLITE_DONE)
		return db_error(st, "cannot check the database");
	if (problems.len)
		return pilot_error_set(PILOT_EIO, "database '%s' is damaged: %s", st->db_path, pilot_buf_str(&problems));
	return 0;
}
