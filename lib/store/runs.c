/* Runs: the state machine (transition(), the only place a run's state changes),
 * submit with idempotency keys, lookups by id prefix, keyset listing, cancel, retry,
 * claims, the retry policy and the reaper. */
#include <string.h>

#include "internal.h"
#include "pilot/version.h"

#define RUN_COLS_TAIL                                                                                    \
	"bundle_sha256, params_json, env_json, requires_json, secrets_json, priority, state, reason, "   \
	"message, exit_code, created_ms, started_ms, finished_ms, not_before_ms, updated_ms, "            \
	"attempt_count, lost_count, retry_max, retry_on, backoff_ms, max_backoff_ms, timeout_ms, "        \
	"idempotency_key, submitter, retry_of, cancel_requested, agent, failed_count, held, "         \
	"cancel_grace_ms"
#define RUN_COLS "id, name, spec_json, " RUN_COLS_TAIL
/* Lists leave the spec out: it can be large and a table does not show it. */
#define RUN_COLS_LIST "id, name, NULL, " RUN_COLS_TAIL

#define ATT_COLS                                                                                        \
	"id, run_id, number, agent, state, reason, exit_code, message, started_ms, finished_ms, "       \
	"heartbeat_ms, lease_expires_ms, log_bytes"

static void load_run(sqlite3_stmt *s, struct pilot_run *r, bool secret_values)
{
	memset(r, 0, sizeof(*r));
	col_copy_id(s, 0, r->id);
	r->name = col_dup(s, 1);
	r->spec_json = col_dup(s, 2);
	snprintf(r->bundle_sha256, sizeof(r->bundle_sha256), "%s", col_text(s, 3));
	r->params_json = col_dup(s, 4);
	r->env_json = col_dup(s, 5);
	kvs_from_text(col_text(s, 6), &r->requires, true);
	kvs_from_text(col_text(s, 7), &r->secrets, secret_values);
	r->priority = (int)col_int(s, 8);
	pilot_run_state_from_name(col_text(s, 9), &r->state);
	pilot_reason_from_name(col_text(s, 10), &r->reason);
	r->message = col_dup(s, 11);
	r->has_exit_code = sqlite3_column_type(s, 12) != SQLITE_NULL;
	r->exit_code = (int)col_int(s, 12);
	r->created_ms = col_int(s, 13);
	r->started_ms = col_int(s, 14);
	r->finished_ms = col_int(s, 15);
	r->not_before_ms = col_int(s, 16);
	r->updated_ms = col_int(s, 17);
	r->attempt_count = (int)col_int(s, 18);
	r->lost_count = (int)col_int(s, 19);
	r->retry.max_attempts = (int)col_int(s, 20);
	r->retry.on = (unsigned)col_int(s, 21);
	r->retry.backoff_ms = col_int(s, 22);
	r->retry.max_backoff_ms = col_int(s, 23);
	r->timeout_ms = col_int(s, 24);
	r->idempotency_key = col_dup(s, 25);
	r->submitter = col_dup(s, 26);
	r->retry_of = col_dup(s, 27);
	r->cancel_requested = col_int(s, 28) != 0;
	r->agent = col_dup(s, 29);
	r->held = col_int(s, 31) != 0;
	r->cancel_grace_ms = sqlite3_column_type(s, 32) == SQLITE_NULL ? PILOT_CANCEL_GRACE_AGENT : col_int(s, 32);
}

static void load_attempt(sqlite3_stmt *s, struct pilot_attempt *a)
{
	memset(a, 0, sizeof(*a));
	col_copy_id(s, 0, a->id);
	col_copy_id(s, 1, a->run_id);
	a->number = (int)col_int(s, 2);
	a->agent = col_dup(s, 3);
	pilot_attempt_state_from_name(col_text(s, 4), &a->state);
	pilot_reason_from_name(col_text(s, 5), &a->reason);
	a->has_exit_code = sqlite3_column_type(s, 6) != SQLITE_NULL;
	a->exit_code = (int)col_int(s, 6);
	a->message = col_dup(s, 7);
	a->started_ms = col_int(s, 8);
	a->finished_ms = col_int(s, 9);
	a->heartbeat_ms = col_int(s, 10);
	a->lease_expires_ms = col_int(s, 11);
	a->log_bytes = col_int(s, 12);
}

int store_get_run_locked(struct pilot_store *st, const char *id, bool with_attempts, bool secret_values,
			 struct pilot_run *out)
{
	static const char sql[] = "SELECT " RUN_COLS " FROM runs WHERE id = ?1";
	sqlite3_stmt *s = db_stmt(st, sql);
	if (!s)
		return pilot_error_code();
	bind_text(s, 1, id);
	int rc = sqlite3_step(s);
	if (rc == SQLITE_DONE) {
		sqlite3_reset(s);
		return pilot_error_set(PILOT_ENOTFOUND, "run '%s' not found", id);
	}
	if (rc != SQLITE_ROW)
		return db_error(st, "cannot read run");
	struct pilot_run r;
	load_run(s, &r, secret_values);
	sqlite3_reset(s);
	if (with_attempts) {
		static const char asql[] = "SELECT " ATT_COLS " FROM attempts WHERE run_id = ?1 ORDER BY number";
		sqlite3_stmt *a = db_stmt(st, asql);
		if (!a) {
			pilot_run_clear(&r);
			return pilot_error_code();
		}
		bind_text(a, 1, id);
		while ((rc = sqlite3_step(a)) == SQLITE_ROW) {
			r.attempts = pilot_xrealloc(r.attempts, (r.nattempts + 1) * sizeof(*r.attempts));
			load_attempt(a, &r.attempts[r.nattempts++]);
		}
		sqlite3_reset(a);
		if (rc != SQLITE_DONE) {
			pilot_run_clear(&r);
			return db_error(st, "cannot read attempts");
		}
	}
	*out = r;
	return 0;
}

int resolve_run(struct pilot_store *st, const char *run, char id[PILOT_ID_SIZE])
{
	if (!run || !pilot_id_valid(run, true) || run[0] != 'r')
		return pilot_error_set(PILOT_ENOTFOUND, "run '%s' not found", run ? run : "");
	static const char sql[] = "SELECT id FROM runs WHERE id >= ?1 AND id < ?2 ORDER BY id LIMIT 6";
	sqlite3_stmt *s = db_stmt(st, sql);
	if (!s)
		return pilot_error_code();
	_cleanup_free_ char *hi = pilot_xasprintf("%s~", run);
	bind_text(s, 1, run);
	bind_text(s, 2, hi);
	char found[6][PILOT_ID_SIZE];
	int n = 0, rc;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW && n < 6)
		col_copy_id(s, 0, found[n++]);
	sqlite3_reset(s);
	if (rc != SQLITE_DONE && rc != SQLITE_ROW)
		return db_error(st, "cannot look up run");
	if (n == 0)
		return pilot_error_set(PILOT_ENOTFOUND, "run '%s' not found", run);
	if (n == 1 || !strcmp(found[0], run)) {
		memcpy(id, found[0], PILOT_ID_SIZE);
		return 0;
	}
	_cleanup_buf_ struct pilot_buf b = PILOT_BUF_INIT;
	for (int i = 0; i < n && i < 5; i++)
		pilot_buf_printf(&b, "%s%s", i ? ", " : "", found[i]);
	return pilot_error_set(PILOT_EAMBIGUOUS, "run prefix '%s' is ambiguous: %s%s", run, pilot_buf_str(&b),
			       n > 5 ? ", ..." : "");
}

static int add_event(struct pilot_store *st, const char *run_id, int attempt, const char *type, const char *actor,
		     const char *message, json_t *data, enum pilot_run_state state)
{
	static const char sql[] =
		"INSERT INTO events(run_id, attempt, time_ms, type, actor, message, data_json, state) "
		"VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)";
	sqlite3_stmt *s = db_stmt(st, sql);
	if (!s) {
		json_decref(data);
		return pilot_error_code();
	}
	char *dj = data ? json_dumps(data, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
	json_decref(data);
	bind_text(s, 1, run_id);
	bind_int(s, 2, attempt);
	bind_int(s, 3, store_now());
	bind_text(s, 4, type);
	bind_text(s, 5, actor);
	bind_text(s, 6, message);
	bind_text(s, 7, dj);
	bind_text(s, 8, pilot_run_state_name(state));
	free(dj);
	return db_done(st, s, "cannot record event");
}

static int count_add(struct pilot_store *st, enum pilot_run_state state, int delta)
{
	static const char sql[] =
		"INSERT INTO run_counts(state, n) VALUES (?1, ?2) ON CONFLICT(state) DO UPDATE SET n = n + ?2";
	sqlite3_stmt *s = db_stmt(st, sql);
	if (!s)
		return pilot_error_code();
	bind_text(s, 1, pilot_run_state_name(state));
	bind_int(s, 2, delta);
	return db_done(st, s, "cannot update run counts");
}

static int queued_set_add(struct pilot_store *st, const char *run_id, int delta)
{
	static const char add[] = "INSERT INTO queued_sets(requires_json, n) SELECT requires_json, ?2 FROM runs "
				  "WHERE id = ?1 AND held = 0 ON CONFLICT(requires_json) DO UPDATE SET n = n + ?2";
	static const char drop[] = "DELETE FROM queued_sets WHERE n <= 0";
	sqlite3_stmt *s = db_stmt(st, add);
	if (!s)
		return pilot_error_code();
	bind_text(s, 1, run_id);
	bind_int(s, 2, delta);
	int r = db_done(st, s, "cannot update queued runs");
	if (r < 0 || delta > 0)
		return r;
	if (!(s = db_stmt(st, drop)))
		return pilot_error_code();
	return db_done(st, s, "cannot update queued runs");
}

/* The one place a run's state changes. The caller holds a write transaction and knows
 * the current state (from); the row is updated only if it still has it. data (stolen)
 * adds fields to the event. */
static int transition(struct pilot_store *st, const char *run_id, enum pilot_run_state from,
		      enum pilot_run_state to, enum pilot_reason reason, const char *type, const char *actor,
		      int attempt, const char *message, json_t *data)
{
	bool terminal = pilot_run_state_terminal(to);
	if (!pilot_run_transition_allowed(from, to)) {
		json_decref(data);
		return pilot_error_set(PILOT_ECONFLICT, "run '%s' cannot go from %s to %s", run_id,
				       pilot_run_state_name(from), pilot_run_state_name(to));
	}
	if (terminal != (reason != PILOT_REASON_NONE)) {
		json_decref(data);
		return pilot_error_set(PILOT_EINVALID, "run '%s': state %s %s a reason", run_id,
				       pilot_run_state_name(to), terminal ? "needs" : "takes no");
	}
	static const char sql[] =
		"UPDATE runs SET state = ?2, reason = ?3, message = ?4, updated_ms = ?5, "
		"finished_ms = CASE WHEN ?6 THEN ?5 ELSE finished_ms END, "
		"not_before_ms = CASE WHEN ?2 = 'waiting' THEN not_before_ms ELSE NULL END "
		"WHERE id = ?1 AND state = ?7";
	sqlite3_stmt *s = db_stmt(st, sql);
	if (!s) {
		json_decref(data);
		return pilot_error_code();
	}
	bind_text(s, 1, run_id);
	bind_text(s, 2, pilot_run_state_name(to));
	bind_text(s, 3, reason ? pilot_reason_name(reason) : NULL);
	bind_text(s, 4, message);
	bind_int(s, 5, store_now());
	bind_int(s, 6, terminal);
	bind_text(s, 7, pilot_run_state_name(from));
	int r = db_done(st, s, "cannot update run");
	if (r < 0) {
		json_decref(data);
		return r;
	}
	if (sqlite3_changes(st->db) != 1) {
		json_decref(data);
		return pilot_error_set(PILOT_ECONFLICT, "run '%s' is no longer %s", run_id, pilot_run_state_name(from));
	}
	if ((r = count_add(st, from, -1)) < 0 || (r = count_add(st, to, 1)) < 0 ||
	    (from == PILOT_RUN_QUEUED && (r = queued_set_add(st, run_id, -1)) < 0) ||
	    (to == PILOT_RUN_QUEUED && (r = queued_set_add(st, run_id, 1)) < 0)) {
		json_decref(data);
		return r;
	}
	if (!data)
		data = json_object();
	json_object_set_new(data, "from", json_string(pilot_run_state_name(from)));
	json_object_set_new(data, "to", json_string(pilot_run_state_name(to)));
	if (reason)
		json_object_set_new(data, "reason", json_string(pilot_reason_name(reason)));
	return add_event(st, run_id, attempt, type, actor, message, data, to);
}

/* The state and a few counters of a run, inside a transaction. */
struct run_row {
	enum pilot_run_state state;
	int attempt_count, failed_count, lost_count, retry_max;
	unsigned retry_on;
	int64_t backoff_ms, max_backoff_ms;
	bool cancel_requested;
	int64_t cancel_grace_ms;      /* PILOT_CANCEL_GRACE_AGENT when none was asked */
	bool held;
};

static int run_row(struct pilot_store *st, const char *id, struct run_row *out)
{
	static const char sql[] =
		"SELECT state, attempt_count, failed_count, lost_count, retry_max, retry_on, backoff_ms, "
		"max_backoff_ms, cancel_requested, held, cancel_grace_ms FROM runs WHERE id = ?1";
	sqlite3_stmt *s = db_stmt(st, sql);
	if (!s)
		return pilot_error_code();
	bind_text(s, 1, id);
	int rc = sqlite3_step(s);
	if (rc == SQLITE_DONE) {
		sqlite3_reset(s);
		return pilot_error_set(PILOT_ENOTFOUND, "run '%s' not found", id);
	}
	if (rc != SQLITE_ROW)
		return db_error(st, "cannot read run");
	pilot_run_state_from_name(col_text(s, 0), &out->state);
	out->attempt_count = (int)col_int(s, 1);
	out->failed_count = (int)col_int(s, 2);
	out->lost_count = (int)col_int(s, 3);
	out->retry_max = (int)col_int(s, 4);
	out->retry_on = (unsigned)col_int(s, 5);
	out->backoff_ms = col_int(s, 6);
	out->max_backoff_ms = col_int(s, 7);
	out->cancel_requested = col_int(s, 8) != 0;
	out->held = col_int(s, 9) != 0;
	out->cancel_grace_ms = sqlite3_column_type(s, 10) == SQLITE_NULL ? PILOT_CANCEL_GRACE_AGENT : col_int(s, 10);
	sqlite3_reset(s);
	return 0;
}

int pilot_store_transition(struct pilot_store *st, const char *run_id, enum pilot_run_state to,
			   enum pilot_reason reason, const char *actor, const char *message)
{
	STORE_LOCKED(st);
	char id[PILOT_ID_SIZE];
	struct run_row row;
	int r = db_begin(st, true);
	if (r < 0)
		return r;
	if ((r = resolve_run(st, run_id, id)) < 0 || (r = run_row(st, id, &row)) < 0 ||
	    (r = transition(st, id, row.state, to, reason, "state", actor ? actor : st->actor, 0, message, NULL)) < 0) {
		db_rollback(st);
		return r;
	}
	return db_commit(st);
}

/* ---- submit ---- */

static bool valid_name(const char *n)
{
	if (!n || !*n || strlen(n) > 128)
		return false;
	if (!((n[0] >= 'a' && n[0] <= 'z') || (n[0] >= '0' && n[0] <= '9')))
		return false;
	for (const char *p = n; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '.' || *p == '_' || *p == '-'))
			return false;
	return true;
}

static int check_json(const char *what, const char *text, bool object)
{
	if (!text)
		return 0;
	json_error_t e;
	json_t *j = json_loads(text, JSON_DECODE_ANY, &e);
	if (!j)
		return pilot_error_set(PILOT_EINVALID, "invalid %s: %s", what, e.text);
	bool ok = !object || json_is_object(j);
	json_decref(j);
	if (!ok)
		return pilot_error_set(PILOT_EINVALID, "invalid %s: expected a JSON object", what);
	return 0;
}

static int validate_submit(struct pilot_store *st, const struct pilot_submit_request *req)
{
	int r;
	if (!valid_name(req->name))
		return pilot_error_set(PILOT_EINVALID, "invalid run name '%s': expected [a-z0-9][a-z0-9._-]*",
				       req->name ? req->name : "");
	if (!req->spec_json)
		return pilot_error_set(PILOT_EINVALID, "invalid submit: the spec is missing");
	if ((r = check_json("spec", req->spec_json, false)) < 0 ||
	    (r = check_json("params", req->params_json, true)) < 0 || (r = check_json("env", req->env_json, true)) < 0)
		return r;
	if (req->retry.max_attempts < 0 || req->retry.max_attempts > 1000 ||
	    (req->retry.backoff_ms < 0 && req->retry.backoff_ms != PILOT_RETRY_AT_ONCE) ||
	    req->retry.max_backoff_ms < 0 || req->timeout_ms < 0 || req->not_before_ms < 0)
		return pilot_error_set(PILOT_EINVALID, "invalid submit: negative or out-of-range retry/timeout values");
	if (req->idempotency_key && (!*req->idempotency_key || strlen(req->idempotency_key) > 255))
		return pilot_error_set(PILOT_EINVALID, "invalid idempotency key: expected 1 to 255 characters");
	for (size_t i = 0; i < req->requires.n; i++)
		if (!req->requires.items[i].key[0])
			return pilot_error_set(PILOT_EINVALID, "invalid requires: empty label name");
	for (size_t i = 0; i < req->secrets.n; i++)
		if (!req->secrets.items[i].key[0])
			return pilot_error_set(PILOT_EINVALID, "invalid secrets: empty secret name");
	if (req->bundle_sha256 && *req->bundle_sha256) {
		if (!pilot_sha256_valid(req->bundle_sha256))
			return pilot_error_set(PILOT_EINVALID, "invalid bundle hash '%s'", req->bundle_sha256);
		r = pilot_blob_has(st->blobs, req->bundle_sha256);
		if (r < 0)
			return r;
		if (r == 0)
			return pilot_error_set(PILOT_ENOTFOUND, "bundle '%s' not found: upload it before submitting",
					       req->bundle_sha256);
	}
	return 0;
}

/* What makes two submits "the same" for an idempotency key: everything the run is made
 * of, except the secret values (never hashed into the database), the submitter and
 * not_before (a relative delay gives a different time on a replay). */
static void payload_hash(const struct pilot_submit_request *req, char out[65])
{
	json_t *j = pilot_submit_request_to_json(req);
	json_object_del(j, "idempotency_key");
	json_object_del(j, "submitter");
	json_object_del(j, "not_before_ms");
	json_t *names = json_array();
	for (size_t i = 0; i < req->secrets.n; i++)
		json_array_append_new(names, json_string(req->secrets.items[i].key));
	json_object_set_new(j, "secrets", names);
	char *s = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
	pilot_sha256_hex(s, strlen(s), out);
	free(s);
	json_decref(j);
}

/* A new run id greater than every existing one. Ids start with the creation time in
 * milliseconds; two runs made in the same millisecond (or after the clock stepped
 * back) would otherwise sort by their random tails, so inside the write transaction
 * the newest id is bumped instead: ids then follow commit order, and a listing by id
 * never has a later run appear below an earlier one. */
static int next_run_id(struct pilot_store *st, char id[PILOT_ID_SIZE])
{
	static const char b32[] = "0123456789abcdefghjkmnpqrstvwxyz";
	static const char sql[] = "SELECT id FROM runs ORDER BY id DESC LIMIT 1";
	pilot_id_new('r', id);
	sqlite3_stmt *s = db_stmt(st, sql);
	if (!s)
		return pilot_error_code();
	char max[PILOT_ID_SIZE] = "";
	int rc = sqlite3_step(s);
	if (rc == SQLITE_ROW)
		col_copy_id(s, 0, max);
	sqlite3_reset(s);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return db_error(st, "cannot allocate a run id");
	if (strlen(max) != PILOT_ID_LEN || strcmp(id, max) > 0)
		return 0;
	memcpy(id, max, PILOT_ID_SIZE);
	unsigned char r;
	pilot_random_bytes(&r, 1);
	unsigned add = 1 + r % 32;
	for (int i = PILOT_ID_LEN - 1; i >= 1 && add; i--) {
		const char *p = strchr(b32, id[i]);
		unsigned v = (unsigned)(p ? p - b32 : 0) + add;
		id[i] = b32[v % 32];
		add = v / 32;
	}
	return 0;
}

static int insert_run(struct pilot_store *st, const struct pilot_submit_request *req, const char *submitter,
		      const char *retry_of, const char *secrets_text, char id[PILOT_ID_SIZE])
{
	static const char sql[] =
		"INSERT INTO runs(id, name, spec_json, bundle_sha256, params_json, env_json, requires_json, "
		"secrets_json, priority, state, created_ms, not_before_ms, updated_ms, retry_max, retry_on, "
		"backoff_ms, max_backoff_ms, timeout_ms, idempotency_key, submitter, retry_of, held) "
		"VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?11, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21)";
	int64_t now = store_now();
	enum pilot_run_state state = req->not_before_ms > now ? PILOT_RUN_WAITING : PILOT_RUN_QUEUED;
	_cleanup_free_ char *req_text = kvs_to_text(&req->requires);
	_cleanup_free_ char *sec_text = secrets_text ? pilot_xstrdup(secrets_text) : kvs_to_text(&req->secrets);
	int r = 0;
	for (int tries = 0; tries < 3; tries++) {
		if ((r = next_run_id(st, id)) < 0)
			return r;
		sqlite3_stmt *s = db_stmt(st, sql);
		if (!s)
			return pilot_error_code();
		bind_text(s, 1, id);
		bind_text(s, 2, req->name);
		bind_text(s, 3, req->spec_json);
		bind_text(s, 4, req->bundle_sha256 && *req->bundle_sha256 ? req->bundle_sha256 : NULL);
		bind_text(s, 5, req->params_json);
		bind_text(s, 6, req->env_json);
		bind_text(s, 7, req_text ? req_text : "");
		bind_text(s, 8, sec_text);
		bind_int(s, 9, req->priority);
		bind_text(s, 10, pilot_run_state_name(state));
		bind_int(s, 11, now);
		bind_int_or_null(s, 12, state == PILOT_RUN_WAITING ? req->not_before_ms : 0);
		bind_int(s, 13, req->retry.max_attempts > 0 ? req->retry.max_attempts : 1);
		bind_int(s, 14, req->retry.on);
		/* The values in force are stored, so that the run shows them: zeros take the
		 * store's defaults, and "at once" is a backoff of 0. */
		bind_int(s, 15, req->retry.backoff_ms == PILOT_RETRY_AT_ONCE ? 0
				: req->retry.backoff_ms > 0                ? req->retry.backoff_ms
									   : st->opt.backoff_base_ms);
		bind_int(s, 16, req->retry.max_backoff_ms > 0 ? req->retry.max_backoff_ms : st->opt.backoff_cap_ms);
		bind_int(s, 17, req->timeout_ms);
		bind_text(s, 18, req->idempotency_key);
		bind_text(s, 19, submitter);
		bind_text(s, 20, retry_of);
		/* A retry is a new run for anyone to take. */
		bind_int(s, 21, req->hold && !retry_of);
		int rc = sqlite3_step(s);
		sqlite3_reset(s);
		if (rc == SQLITE_DONE) {
			r = 0;
			break;
		}
		/* Two ids drawn in the same millisecond with the same 25 random bits. */
		if (rc == SQLITE_CONSTRAINT_PRIMARYKEY) {
			r = pilot_error_set(PILOT_EIO, "cannot allocate a run id");
			continue;
		}
		return db_error(st, "cannot insert run");
	}
	if (r < 0)
		return r;
	if ((r = count_add(st, state, 1)) < 0 ||
	    (state == PILOT_RUN_QUEUED && (r = queued_set_add(st, id, 1)) < 0))
		return r;
	json_t *data = json_pack("{s:s}", "name", req->name);
	if (retry_of)
		json_object_set_new(data, "retry_of", json_string(retry_of));
	_cleanup_free_ char *msg = retry_of ? pilot_xasprintf("submitted by %s (retry of %s)", submitter, retry_of)
					    : pilot_xasprintf("submitted by %s", submitter);
	return add_event(st, id, 0, "submitted", submitter, msg, data, state);
}

int pilot_store_submit(struct pilot_store *st, const struct pilot_submit_request *req, struct pilot_run *out)
{
	STORE_LOCKED(st);
	int r = validate_submit(st, req);
	if (r < 0)
		return r;
	char hash[65] = "";
	if (req->idempotency_key)
		payload_hash(req, hash);
	const char *submitter = req->submitter && *req->submitter ? req->submitter : st->actor;
	char id[PILOT_ID_SIZE];
	int replay = 0;
	if ((r = db_begin(st, true)) < 0)
		return r;
	if (req->idempotency_key) {
		static const char sql[] = "SELECT run_id, payload_sha256 FROM idempotency WHERE key = ?1";
		sqlite3_stmt *s = db_stmt(st, sql);
		if (!s) {
			r = pilot_error_code();
			goto fail;
		}
		bind_text(s, 1, req->idempotency_key);
		int rc = sqlite3_step(s);
		if (rc == SQLITE_ROW) {
			col_copy_id(s, 0, id);
			bool same = !strcmp(col_text(s, 1), hash);
			sqlite3_reset(s);
			if (!same) {
				r = pilot_error_set(PILOT_ECONFLICT,
						    "idempotency key '%s' was already used for run '%s' with a different request",
						    req->idempotency_key, id);
				goto fail;
			}
			replay = 1;
		} else if (rc != SQLITE_DONE) {
			r = db_error(st, "cannot look up idempotency key");
			goto fail;
		} else {
			sqlite3_reset(s);
		}
	}
	if (!replay) {
		if ((r = insert_run(st, req, submitter, NULL, NULL, id)) < 0)
			goto fail;
		if (req->idempotency_key) {
			static const char sql[] =
				"INSERT INTO idempotency(key, run_id, payload_sha256, created_ms) VALUES (?1, ?2, ?3, ?4)";
			sqlite3_stmt *s = db_stmt(st, sql);
			if (!s) {
				r = pilot_error_code();
				goto fail;
			}
			bind_text(s, 1, req->idempotency_key);
			bind_text(s, 2, id);
			bind_text(s, 3, hash);
			bind_int(s, 4, store_now());
			if ((r = db_done(st, s, "cannot record idempotency key")) < 0)
				goto fail;
		}
	}
	struct pilot_run run;
	if ((r = store_get_run_locked(st, id, true, false, &run)) < 0)
		goto fail;
	if ((r = db_commit(st)) < 0) {
		pilot_run_clear(&run);
		return r;
	}
	if (out)
		*out = run;
	else
		pilot_run_clear(&run);
	return replay;
fail:
	db_rollback(st);
	return r;
}

/* ---- reads ---- */

int pilot_store_get_run(struct pilot_store *st, const char *run, struct pilot_run *out)
{
	STORE_LOCKED(st);
	char id[PILOT_ID_SIZE];
	int r = db_begin(st, false);
	if (r < 0)
		return r;
	if ((r = resolve_run(st, run, id)) < 0 || (r = store_get_run_locked(st, id, true, false, out)) < 0) {
		db_rollback(st);
		return r;
	}
	sqlite3_exec(st->db, "COMMIT", NULL, NULL, NULL);
	return 0;
}

/* The smallest id a run created at or after ms can have: ids start with the creation
 * time (util/id.c's layout: prefix, 9 base32 digits of ms since 2025-01-01). */
static void id_floor(int64_t ms, char out[PILOT_ID_SIZE])
{
	static const char b32[] = "0123456789abcdefghjkmnpqrstvwxyz";
	int64_t t = ms - 1735689600000LL;
	uint64_t ts = t > 0 ? (uint64_t)t : 0;
	out[0] = 'r';
	for (int i = 9; i >= 1; i--) {
		out[i] = b32[ts & 31];
		ts >>= 5;
	}
	out[10] = '\0';
}

static int list_query(struct pilot_store *st, const char *sql, const struct pilot_run_filter *f, const char *state,
		      const char *states_csv, size_t limit, struct pilot_run_list *out)
{
	sqlite3_stmt *s = db_stmt(st, sql);
	if (!s)
		return pilot_error_code();
	char floor[PILOT_ID_SIZE] = "";
	if (f->since_ms > 0)
		id_floor(f->since_ms, floor);
	bind_text(s, 1, f->after && *f->after ? f->after : "~");
	bind_text(s, 2, floor);
	bind_int(s, 3, (int64_t)limit);
	bind_text(s, 4, f->name ? f->name : state);
	bind_text(s, 5, states_csv);
	bind_int(s, 6, f->since_ms);
	int rc;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		out->items = pilot_xrealloc(out->items, (out->n + 1) * sizeof(*out->items));
		load_run(s, &out->items[out->n++], false);
	}
	sqlite3_reset(s);
	if (rc != SQLITE_DONE)
		return db_error(st, "cannot list runs");
	return 0;
}

static int cmp_id_desc(const void *a, const void *b)
{
	return strcmp(((const struct pilot_run *)b)->id, ((const struct pilot_run *)a)->id);
}

int pilot_store_list_runs(struct pilot_store *st, const struct pilot_run_filter *f, struct pilot_run_list *out)
{
	static const char sql_all[] = "SELECT " RUN_COLS_LIST " FROM runs WHERE id < ?1 AND id >= ?2 "
				      "AND created_ms >= ?6 ORDER BY id DESC LIMIT ?3";
	static const char sql_state[] = "SELECT " RUN_COLS_LIST " FROM runs WHERE state = ?4 AND id < ?1 AND id >= ?2 "
					"AND created_ms >= ?6 ORDER BY id DESC LIMIT ?3";
	static const char sql_name[] = "SELECT " RUN_COLS_LIST " FROM runs WHERE name = ?4 AND id < ?1 AND id >= ?2 "
				       "AND created_ms >= ?6 AND (?5 IS NULL OR instr(?5, ',' || state || ',') > 0) "
				       "ORDER BY id DESC LIMIT ?3";
	struct pilot_run_filter zero = { 0 };
	if (!f)
		f = &zero;
	size_t limit = f->limit ? f->limit : 50;
	if (limit > 1000)
		limit = 1000;
	if (f->after && *f->after && !pilot_id_valid(f->after, true))
		return pilot_error_set(PILOT_EINVALID, "invalid cursor '%s'", f->after);
	unsigned states = f->states & ((1u << PILOT_RUN_NSTATES) - 1);
	if (states == (1u << PILOT_RUN_NSTATES) - 1)
		states = 0;
	STORE_LOCKED(st);
	struct pilot_run_list l = { 0 };
	int r = db_begin(st, false);
	if (r < 0)
		return r;
	/* One more than asked tells whether there is a next page. */
	if (f->name) {
		_cleanup_buf_ struct pilot_buf csv = PILOT_BUF_INIT;
		if (states) {
			pilot_buf_putc(&csv, ',');
			for (int i = 0; i < PILOT_RUN_NSTATES; i++)
				if (states & (1u << i))
					pilot_buf_printf(&csv, "%s,", pilot_run_state_name(i));
		}
		r = list_query(st, sql_name, f, NULL, states ? pilot_buf_str(&csv) : NULL, limit + 1, &l);
	} else if (!states) {
		r = list_query(st, sql_all, f, NULL, NULL, limit + 1, &l);
	} else {
		/* One index range per state, merged: each is an ordered scan of runs_state_id. */
		for (int i = 0; i < PILOT_RUN_NSTATES && r >= 0; i++)
			if (states & (1u << i))
				r = list_query(st, sql_state, f, pilot_run_state_name(i), NULL, limit + 1, &l);
		if (r >= 0 && l.n > 1)
			qsort(l.items, l.n, sizeof(*l.items), cmp_id_desc);
	}
	sqlite3_exec(st->db, "COMMIT", NULL, NULL, NULL);
	if (r < 0) {
		pilot_run_list_clear(&l);
		return r;
	}
	if (l.n > limit) {
		for (size_t i = limit; i < l.n; i++)
			pilot_run_clear(&l.items[i]);
		l.n = limit;
		memcpy(l.next_after, l.items[limit - 1].id, PILOT_ID_SIZE);
	}
	*out = l;
	return 0;
}

/* ---- cancel, retry ---- */

/* " (grace 2s)", " (now)" or "" for the agent's own, for the events' messages. */
static void grace_note(int64_t grace_ms, char *out, size_t size)
{
	char d[32];
	if (grace_ms < 0) {
		out[0] = 0;
		return;
	}
	if (grace_ms == 0) {
		snprintf(out, size, " (now: no grace)");
		return;
	}
	pilot_format_duration(grace_ms, d, sizeof(d));
	snprintf(out, size, " (grace %s)", d);
}

static int set_cancel(struct pilot_store *st, const char *id, int64_t grace_ms)
{
	static const char sql[] = "UPDATE runs SET cancel_requested = 1, cancel_grace_ms = ?2 WHERE id = ?1";
	sqlite3_stmt *s = db_stmt(st, sql);
	if (!s)
		return pilot_error_code();
	bind_text(s, 1, id);
	if (grace_ms < 0)
		sqlite3_bind_null(s, 2);
	else
		bind_int(s, 2, grace_ms);
	return db_done(st, s, "cannot cancel run");
}

int pilot_store_cancel(struct pilot_store *st, const char *run, const char *actor, int64_t grace_ms,
		       struct pilot_run *out)
{
	STORE_LOCKED(st);
	char id[PILOT_ID_SIZE];
	char note[48];
	struct run_row row;
	int result = 0;
	_cleanup_free_ char *msg = NULL;
	if (!actor || !*actor)
		actor = st->actor;
	if (grace_ms < 0)
		grace_ms = PILOT_CANCEL_GRACE_AGENT;
	if (grace_ms > PILOT_CANCEL_GRACE_MAX_MS)
		return pilot_error_set(PILOT_EINVALID, "cannot cancel run '%s': a grace period of %lld ms is longer than a day",
				       run, (long long)grace_ms);
	grace_note(grace_ms, note, sizeof(note));
	int r = db_begin(st, true);
	if (r < 0)
		return r;
	if ((r = resolve_run(st, run, id)) < 0 || (r = run_row(st, id, &row)) < 0)
		goto fail;
	switch (row.state) {
	case PILOT_RUN_QUEUED:
	case PILOT_RUN_WAITING:
		/* Nothing runs yet: a grace has nothing to apply to. */
		msg = pilot_xasprintf("canceled by %s", actor);
		r = transition(st, id, row.state, PILOT_RUN_CANCELED, PILOT_REASON_CANCELED, "canceled", actor, 0, msg,
			       NULL);
		break;
	case PILOT_RUN_RUNNING:
		msg = pilot_xasprintf("cancel requested by %s%s", actor, note);
		if ((r = set_cancel(st, id, grace_ms)) == 0)
			r = transition(st, id, row.state, PILOT_RUN_CANCELING, PILOT_REASON_NONE, "cancel_requested", actor,
				       row.attempt_count, msg,
				       grace_ms >= 0 ? json_pack("{s:I}", "grace_ms", (json_int_t)grace_ms) : NULL);
		break;
	case PILOT_RUN_CANCELING:
		/* A second cancel may only hurry the first one ("kill it now"): a grace
		 * shorter than the one asked before (any grace after a cancel that left it to
		 * the agent) is recorded and reaches the agent with its next heartbeat, which
		 * never moves the SIGKILL later. Anything else changes nothing. */
		if (grace_ms < 0 || (row.cancel_grace_ms >= 0 && grace_ms >= row.cancel_grace_ms)) {
			result = 1;
			break;
		}
		msg = pilot_xasprintf("cancel hurried by %s%s", actor, note);
		if ((r = set_cancel(st, id, grace_ms)) == 0)
			r = add_event(st, id, row.attempt_count, "cancel_hurried", actor, msg,
				      json_pack("{s:I}", "grace_ms", (json_int_t)grace_ms), PILOT_RUN_CANCELING);
		break;
	default:
		/* Finished: nothing to do, and the caller is told. */
		result = 1;
		break;
	}
	if (r < 0)
		goto fail;
	struct pilot_run got;
	if ((r = store_get_run_locked(st, id, true, false, &got)) < 0)
		goto fail;
	if ((r = db_commit(st)) < 0) {
		pilot_run_clear(&got);
		return r;
	}
	if (out)
		*out = got;
	else
		pilot_run_clear(&got);
	return result;
fail:
	db_rollback(st);
	return r;
}

int pilot_store_retry(struct pilot_store *st, const char *run, const char *actor, struct pilot_run *out)
{
	STORE_LOCKED(st);
	char id[PILOT_ID_SIZE], nid[PILOT_ID_SIZE];
	struct pilot_run old = { 0 };
	_cleanup_free_ char *secrets = NULL, *msg = NULL;
	if (!actor || !*actor)
		actor = st->actor;
	int r = db_begin(st, true);
	if (r < 0)
		return r;
	if ((r = resolve_run(st, run, id)) < 0 || (r = store_get_run_locked(st, id, false, true, &old)) < 0)
		goto fail;
	if (!pilot_run_state_terminal(old.state)) {
		r = pilot_error_set(PILOT_ECONFLICT, "run '%s' is %s: only a finished run can be retried", id,
				    pilot_run_state_name(old.state));
		goto fail;
	}
	struct pilot_submit_request req = {
		.name = old.name,
		.spec_json = old.spec_json,
		.bundle_sha256 = old.bundle_sha256,
		.params_json = old.params_json,
		.env_json = old.env_json,
		.requires = old.requires,
		.priority = old.priority,
		.retry = old.retry,
		.timeout_ms = old.timeout_ms,
	};
	/* The old run holds the values in force; its 0 is "at once", not "the default". */
	if (!req.retry.backoff_ms)
		req.retry.backoff_ms = PILOT_RETRY_AT_ONCE;
	secrets = kvs_to_text(&old.secrets);
	if ((r = insert_run(st, &req, actor, id, secrets, nid)) < 0)
		goto fail;
	msg = pilot_xasprintf("retried as %s by %s", nid, actor);
	if ((r = add_event(st, id, 0, "retried", actor, msg, json_pack("{s:s}", "run_id", nid), old.state)) < 0)
		goto fail;
	struct pilot_run got;
	if ((r = store_get_run_locked(st, nid, true, false, &got)) < 0)
		goto fail;
	pilot_run_clear(&old);
	if ((r = db_commit(st)) < 0) {
		pilot_run_clear(&got);
		return r;
	}
	if (out)
		*out = got;
	else
		pilot_run_clear(&got);
	return 0;
fail:
	pilot_run_clear(&old);
	db_rollback(st);
	return r;
}

/* ---- retry policy ---- */

/* base * 2^(n-1), capped, with full jitter: uniform in [0, that]. */
static int64_t backoff_delay(const struct run_row *row, int n)
{
	int64_t base = row->backoff_ms, cap = row->max_backoff_ms;
	int64_t d = base;
	for (int i = 1; i < n && d < cap; i++)
		d *= 2;
	if (d > cap)
		d = cap;
	if (d <= 0)
		return 0;
	uint64_t rnd;
	pilot_random_bytes(&rnd, sizeof(rnd));
	return (int64_t)(rnd % ((uint64_t)d + 1));
}

/* A running run's attempt failed for reason: retry it after a backoff if the policy
 * says so and the budget allows, else fail the run. */
int store_after_failure(struct pilot_store *st, const char *run_id, const struct run_row *row, int attempt,
			enum pilot_reason reason, const char *detail, const char *type, const char *actor);
int store_after_failure(struct pilot_store *st, const char *run_id, const struct run_row *row, int attempt,
			enum pilot_reason reason, const char *detail, const char *type, const char *actor)
{
	static const char sql[] = "UPDATE runs SET failed_count = failed_count + 1, not_before_ms = ?2 WHERE id = ?1";
	int failures = row->failed_count + 1;
	unsigned bit = reason == PILOT_REASON_EXIT_CODE ? PILOT_RETRY_ON_EXIT_CODE
		       : reason == PILOT_REASON_TIMEOUT ? PILOT_RETRY_ON_TIMEOUT
							: 0;
	bool again = (row->retry_on & bit) && failures < row->retry_max;
	int64_t delay = again ? backoff_delay(row, failures) : 0;
	int64_t not_before = again ? store_now() + delay : 0;
	sqlite3_stmt *s = db_stmt(st, sql);
	if (!s)
		return pilot_error_code();
	bind_text(s, 1, run_id);
	bind_int_or_null(s, 2, not_before);
	int r = db_done(st, s, "cannot update run");
	if (r < 0)
		return r;
	if (!again)
		return transition(st, run_id, row->state, PILOT_RUN_FAILED, reason, type, actor, attempt, detail, NULL);
	char dur[32];
	pilot_format_duration(delay, dur, sizeof(dur));
	_cleanup_free_ char *msg = pilot_xasprintf("%s; attempt %d of %d in %s", detail ? detail : "failed",
						   failures + 1, row->retry_max, dur);
	return transition(st, run_id, row->state, PILOT_RUN_WAITING, PILOT_REASON_NONE, "retry_scheduled", actor,
			  attempt, msg, json_pack("{s:I,s:s}", "not_before_ms", (json_int_t)not_before, "failure",
						  pilot_reason_name(reason)));
}

/* Applies an attempt's end to its run (called by finish and the reaper). */
int store_attempt_ended(struct pilot_store *st, const char *run_id, int attempt, enum pilot_attempt_state how,
			enum pilot_reason reason, const char *detail, const char *type, const char *actor);
int store_attempt_ended(struct pilot_store *st, const char *run_id, int attempt, enum pilot_attempt_state how,
			enum pilot_reason reason, const char *detail, const char *type, const char *actor)
{
	struct run_row row;
	int r = run_row(st, run_id, &row);
	if (r < 0)
		return r;
	/* Only the run's latest attempt drives it (an older one was lost already). */
	if (attempt != row.attempt_count)
		return 0;
	if (row.state == PILOT_RUN_CANCELING) {
		if (how == PILOT_ATTEMPT_SUCCEEDED)
			return transition(st, run_id, row.state, PILOT_RUN_SUCCEEDED, PILOT_REASON_EXIT_CODE, type, actor,
					  attempt, detail, NULL);
		/* The attempt's own account (which signals ended the job) when it gave one. */
		_cleanup_free_ char *msg = how == PILOT_ATTEMPT_LOST ? pilot_xstrdup("canceled (the agent was lost while canceling)")
					   : how == PILOT_ATTEMPT_CANCELED && detail ? pilot_xstrdup(detail)
					   : pilot_xasprintf("canceled; %s", detail ? detail : "the attempt ended");
		return transition(st, run_id, row.state, PILOT_RUN_CANCELED, PILOT_REASON_CANCELED, type, actor, attempt,
				  msg, NULL);
	}
	if (row.state != PILOT_RUN_RUNNING)
		return 0;
	switch (how) {
	case PILOT_ATTEMPT_SUCCEEDED:
		return transition(st, run_id, row.state, PILOT_RUN_SUCCEEDED, PILOT_REASON_EXIT_CODE, type, actor, attempt,
				  detail, NULL);
	case PILOT_ATTEMPT_CANCELED:
		return transition(st, run_id, row.state, PILOT_RUN_CANCELED, PILOT_REASON_CANCELED, type, actor, attempt,
				  detail, NULL);
	case PILOT_ATTEMPT_LOST: {
		static const char sql[] = "UPDATE runs SET lost_count = lost_count + 1 WHERE id = ?1";
		sqlite3_stmt *s = db_stmt(st, sql);
		if (!s)
			return pilot_error_code();
		bind_text(s, 1, run_id);
		if ((r = db_done(st, s, "cannot update run")) < 0)
			return r;
		int lost = row.lost_count + 1;
		if (row.held) {
			_cleanup_free_ char *msg = pilot_xasprintf("%s; the run was held by its submitter", detail);
			return transition(st, run_id, row.state, PILOT_RUN_FAILED, PILOT_REASON_LOST, type, actor, attempt,
					  msg, NULL);
		}
		if (lost > st->opt.max_lost) {
			_cleanup_free_ char *msg = pilot_xasprintf("%s; lost %d times, giving up", detail, lost);
			return transition(st, run_id, row.state, PILOT_RUN_FAILED, PILOT_REASON_LOST, type, actor, attempt,
					  msg, NULL);
		}
		_cleanup_free_ char *msg = pilot_xasprintf("%s; requeued (loss %d of %d allowed)", detail, lost,
							   st->opt.max_lost);
		return transition(st, run_id, row.state, PILOT_RUN_QUEUED, PILOT_REASON_NONE, type, actor, attempt, msg,
				  NULL);
	}
	default:
		return store_after_failure(st, run_id, &row, attempt, reason, detail, type, actor);
	}
}

/* ---- claims ---- */

static int promote_due(struct pilot_store *st, int64_t now, int *changed)
{
	static const char sql[] = "SELECT id FROM runs INDEXED BY runs_due WHERE state = 'waiting' AND not_before_ms <= ?1 "
				  "ORDER BY not_before_ms LIMIT 100";
	sqlite3_stmt *s = db_stmt(st, sql);
	if (!s)
		return pilot_error_code();
	bind_int(s, 1, now);
	char ids[100][PILOT_ID_SIZE];
	int n = 0, rc;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW && n < 100)
		col_copy_id(s, 0, ids[n++]);
	sqlite3_reset(s);
	if (rc != SQLITE_DONE && rc != SQLITE_ROW)
		return db_error(st, "cannot read waiting runs");
	for (int i = 0; i < n; i++) {
		int r = transition(st, ids[i], PILOT_RUN_WAITING, PILOT_RUN_QUEUED, PILOT_REASON_NONE, "requeued", "pilot",
				   0, "backoff elapsed", NULL);
		if (r < 0)
			return r;
		(*changed)++;
	}
	return 0;
}

int store_touch_agent(struct pilot_store *st, const char *name, const struct pilot_kvs *labels, const char *version,
		      int capacity, int free_slots, bool full);

/* The best queued run the labels satisfy: the highest priority, then the oldest. Each
 * distinct set of required labels is judged once, then its best run found by index. */
static int find_candidate(struct pilot_store *st, const struct pilot_kvs *labels, char id[PILOT_ID_SIZE])
{
	static const char sets[] = "SELECT requires_json FROM queued_sets WHERE n > 0";
	static const char best[] = "SELECT priority, id FROM runs WHERE state = 'queued' AND requires_json = ?1 "
				   "AND held = 0 ORDER BY priority DESC, id LIMIT 1";
	sqlite3_stmt *s = db_stmt(st, sets);
	if (!s)
		return pilot_error_code();
	char **ok = NULL;
	size_t nok = 0;
	int rc;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		const char *text = col_text(s, 0);
		struct pilot_kvs want;
		kvs_from_text(text, &want, true);
		if (pilot_kvs_satisfies(labels, &want)) {
			ok = pilot_xrealloc(ok, (nok + 1) * sizeof(*ok));
			ok[nok++] = pilot_xstrdup(text);
		}
		pilot_kvs_clear(&want);
	}
	sqlite3_reset(s);
	int r = rc == SQLITE_DONE ? 0 : db_error(st, "cannot look for queued runs");
	int64_t best_prio = 0;
	id[0] = '\0';
	for (size_t i = 0; i < nok && r == 0; i++) {
		if (!(s = db_stmt(st, best))) {
			r = pilot_error_code();
			break;
		}
		bind_text(s, 1, ok[i]);
		rc = sqlite3_step(s);
		if (rc == SQLITE_ROW) {
			int64_t prio = col_int(s, 0);
			const char *cand = col_text(s, 1);
			if (!id[0] || prio > best_prio || (prio == best_prio && strcmp(cand, id) < 0)) {
				best_prio = prio;
				snprintf(id, PILOT_ID_SIZE, "%s", cand);
			}
		} else if (rc != SQLITE_DONE) {
			r = db_error(st, "cannot look for queued runs");
		}
		sqlite3_reset(s);
	}
	for (size_t i = 0; i < nok; i++)
		free(ok[i]);
	free(ok);
	return r < 0 ? r : id[0] ? 1 : 0;
}

/* The claim of one named run: it must be queued and its requires satisfied. */
static int named_candidate(struct pilot_store *st, const struct pilot_claim_request *req, char id[PILOT_ID_SIZE])
{
	static const char sql[] = "SELECT state, requires_json FROM runs WHERE id = ?1";
	sqlite3_stmt *s = db_stmt(st, sql);
	if (!s)
		return pilot_error_code();
	bind_text(s, 1, req->run);
	int rc = sqlite3_step(s);
	if (rc == SQLITE_DONE) {
		sqlite3_reset(s);
		return pilot_error_set(PILOT_ENOTFOUND, "run '%s' not found", req->run);
	}
	if (rc != SQLITE_ROW)
		return db_error(st, "cannot read run");
	bool queued = !strcmp(col_text(s, 0), "queued");
	struct pilot_kvs want;
	kvs_from_text(col_text(s, 1), &want, true);
	bool ok = queued && pilot_kvs_satisfies(&req->labels, &want);
	pilot_kvs_clear(&want);
	sqlite3_reset(s);
	if (!ok)
		return 0;
	snprintf(id, PILOT_ID_SIZE, "%s", req->run);
	return 1;
}

/* Whether a claim that finds nothing may skip its write: no waiting run is due and
 * the agent's row is recent and unchanged. Idle agents polling stay read-only. */
static bool claim_can_skip_write(struct pilot_store *st, const struct pilot_claim_request *req, int64_t now)
{
	static const char due[] = "SELECT EXISTS(SELECT 1 FROM runs INDEXED BY runs_due WHERE state = 'waiting' AND not_before_ms <= ?1)";
	static const char agent[] = "SELECT labels_json, version, last_seen_ms, left_ms, capacity, free_slots "
				    "FROM agents WHERE name = ?1";
	sqlite3_stmt *s = db_stmt(st, due);
	if (!s)
		return false;
	bind_int(s, 1, now);
	bool any_due = sqlite3_step(s) != SQLITE_ROW || col_int(s, 0);
	sqlite3_reset(s);
	if (any_due || !(s = db_stmt(st, agent)))
		return false;
	bind_text(s, 1, req->agent);
	bool fresh = false;
	if (sqlite3_step(s) == SQLITE_ROW) {
		_cleanup_free_ char *labels = kvs_to_text(&req->labels);
		fresh = !strcmp(col_text(s, 0), labels ? labels : "") &&
			(!req->version || !strcmp(col_text(s, 1), req->version)) &&
			col_int(s, 2) > now - st->opt.lease_ttl_ms / 4 && sqlite3_column_type(s, 3) == SQLITE_NULL &&
			col_int(s, 4) == (req->capacity > 0 ? req->capacity : 1) &&
			col_int(s, 5) == (req->free_slots > 0 ? req->free_slots : 1);
	}
	sqlite3_reset(s);
	return fresh;
}

int pilot_store_claim(struct pilot_store *st, const struct pilot_claim_request *req, struct pilot_claim *out)
{
	if (!req->agent || !*req->agent)
		return pilot_error_set(PILOT_EINVALID, "invalid claim: the agent name is missing");
	STORE_LOCKED(st);
	int64_t now = store_now();
	int changed = 0;
	char id[PILOT_ID_SIZE] = "";
	_cleanup_free_ char *msg = NULL;
	/* Look first without the write lock: most polls find nothing. */
	int r = db_begin(st, false);
	if (r < 0)
		return r;
	r = req->run ? named_candidate(st, req, id) : find_candidate(st, &req->labels, id);
	bool skip = r == 0 && claim_can_skip_write(st, req, now);
	db_rollback(st);
	if (r < 0)
		return r;
	if (skip)
		return 0;

	if ((r = db_begin(st, true)) < 0)
		return r;
	if ((r = promote_due(st, now, &changed)) < 0 ||
	    (r = store_touch_agent(st, req->agent, &req->labels, req->version, req->capacity, req->free_slots, true)) < 0 ||
	    (r = req->run ? named_candidate(st, req, id) : find_candidate(st, &req->labels, id)) < 0)
		goto fail;
	if (r == 0) {
		r = db_commit(st);
		return r < 0 ? r : 0;
	}

	struct run_row row;
	if ((r = run_row(st, id, &row)) < 0)
		goto fail;
	struct pilot_run run;
	if ((r = store_get_run_locked(st, id, false, true, &run)) < 0)
		goto fail;
	int number = row.attempt_count + 1;
	char aid[PILOT_ID_SIZE], token[65], token_sha[65];
	pilot_id_new('a', aid);
	pilot_random_hex(token, 32);
	pilot_sha256_hex(token, 64, token_sha);
	int64_t expires = now + st->opt.lease_ttl_ms;
	static const char ins[] =
		"INSERT INTO attempts(id, run_id, number, agent, token_sha256, state, started_ms, heartbeat_ms, "
		"lease_expires_ms, deadline_ms) VALUES (?1, ?2, ?3, ?4, ?5, 'running', ?6, ?6, ?7, ?8)";
	sqlite3_stmt *s = db_stmt(st, ins);
	if (!s) {
		r = pilot_error_code();
		pilot_run_clear(&run);
		goto fail;
	}
	bind_text(s, 1, aid);
	bind_text(s, 2, id);
	bind_int(s, 3, number);
	bind_text(s, 4, req->agent);
	bind_text(s, 5, token_sha);
	bind_int(s, 6, now);
	bind_int(s, 7, expires);
	bind_int_or_null(s, 8, run.timeout_ms > 0 ? now + run.timeout_ms : 0);
	if ((r = db_done(st, s, "cannot create attempt")) < 0) {
		pilot_run_clear(&run);
		goto fail;
	}
	static const char upd[] = "UPDATE runs SET attempt_count = ?2, agent = ?3, started_ms = COALESCE(started_ms, ?4), "
				  "cancel_requested = 0, cancel_grace_ms = NULL WHERE id = ?1";
	s = db_stmt(st, upd);
	if (!s) {
		r = pilot_error_code();
		pilot_run_clear(&run);
		goto fail;
	}
	bind_text(s, 1, id);
	bind_int(s, 2, number);
	bind_text(s, 3, req->agent);
	bind_int(s, 4, now);
	msg = pilot_xasprintf("attempt %d claimed by %s", number, req->agent);
	if ((r = db_done(st, s, "cannot update run")) < 0 ||
	    (r = transition(st, id, PILOT_RUN_QUEUED, PILOT_RUN_RUNNING, PILOT_REASON_NONE, "claimed", req->agent, number,
			    msg, json_pack("{s:s,s:s}", "agent", req->agent, "attempt_id", aid))) < 0) {
		pilot_run_clear(&run);
		goto fail;
	}
	/* The run as the agent gets it: the state after the claim, secrets included. */
	pilot_run_clear(&run);
	if ((r = store_get_run_locked(st, id, false, true, &run)) < 0)
		goto fail;
	if ((r = db_commit(st)) < 0) {
		pilot_run_clear(&run);
		return r;
	}
	memset(out, 0, sizeof(*out));
	out->run = run;
	memcpy(out->attempt_id, aid, PILOT_ID_SIZE);
	out->attempt = number;
	memcpy(out->lease_token, token, sizeof(token));
	out->lease_ttl_ms = st->opt.lease_ttl_ms;
	out->lease_expires_ms = expires;
	explicit_bzero(token, sizeof(token));
	return 1;
fail:
	db_rollback(st);
	return r;
}

/* ---- the reaper ---- */

bool pilot_store_reap_due(struct pilot_store *st)
{
	static const char sql[] =
		"SELECT EXISTS(SELECT 1 FROM attempts WHERE state = 'running' AND lease_expires_ms < ?1) "
		"OR EXISTS(SELECT 1 FROM attempts WHERE state = 'running' AND deadline_ms < ?2) "
		"OR EXISTS(SELECT 1 FROM runs INDEXED BY runs_due WHERE state = 'waiting' AND not_before_ms <= ?3)";
	STORE_LOCKED(st);
	int64_t now = store_now();
	bool leases = now >= st->opened_ms + st->opt.reap_delay_ms;
	sqlite3_stmt *s = db_stmt(st, sql);
	if (!s)
		return false;
	bind_int(s, 1, leases ? now : INT64_MIN);
	bind_int(s, 2, now - st->opt.timeout_grace_ms);
	bind_int(s, 3, now);
	bool due = sqlite3_step(s) == SQLITE_ROW && col_int(s, 0);
	sqlite3_reset(s);
	return due;
}

struct expired {
	char id[PILOT_ID_SIZE];
	char run_id[PILOT_ID_SIZE];
	int number;
	char agent[128];
	int64_t seen;
};

static int collect(struct pilot_store *st, const char *sql, int64_t bound, struct expired *out, int max, int *n)
{
	sqlite3_stmt *s = db_stmt(st, sql);
	if (!s)
		return pilot_error_code();
	bind_int(s, 1, bound);
	int rc;
	*n = 0;
	while (*n < max && (rc = sqlite3_step(s)) == SQLITE_ROW) {
		struct expired *e = &out[(*n)++];
		col_copy_id(s, 0, e->id);
		col_copy_id(s, 1, e->run_id);
		e->number = (int)col_int(s, 2);
		snprintf(e->agent, sizeof(e->agent), "%s", col_text(s, 3));
		e->seen = col_int(s, 4);
	}
	sqlite3_reset(s);
	return 0;
}

static int end_attempt(struct pilot_store *st, const char *attempt_id, enum pilot_attempt_state how,
		       enum pilot_reason reason, const char *message)
{
	static const char sql[] = "UPDATE attempts SET state = ?2, reason = ?3, message = ?4, finished_ms = ?5 "
				  "WHERE id = ?1 AND state = 'running'";
	sqlite3_stmt *s = db_stmt(st, sql);
	if (!s)
		return pilot_error_code();
	bind_text(s, 1, attempt_id);
	bind_text(s, 2, pilot_attempt_state_name(how));
	bind_text(s, 3, pilot_reason_name(reason));
	bind_text(s, 4, message);
	bind_int(s, 5, store_now());
	return db_done(st, s, "cannot update attempt");
}

int pilot_store_reap(struct pilot_store *st)
{
	static const char sql_lost[] = "SELECT id, run_id, number, agent, heartbeat_ms FROM attempts "
				       "WHERE state = 'running' AND lease_expires_ms < ?1 ORDER BY lease_expires_ms LIMIT 100";
	static const char sql_late[] = "SELECT id, run_id, number, agent, heartbeat_ms FROM attempts "
				       "WHERE state = 'running' AND deadline_ms < ?1 ORDER BY deadline_ms LIMIT 100";
	STORE_LOCKED(st);
	int64_t now = store_now();
	int changed = 0;
	struct expired e[100];
	int n;
	int r = db_begin(st, true);
	if (r < 0)
		return r;
	if (now >= st->opened_ms + st->opt.reap_delay_ms) {
		if ((r = collect(st, sql_lost, now, e, 100, &n)) < 0)
			goto fail;
		for (int i = 0; i < n; i++) {
			char ago[32];
			pilot_format_duration(now - e[i].seen, ago, sizeof(ago));
			_cleanup_free_ char *msg = pilot_xasprintf("attempt %d lost: agent '%s' not heard from for %s",
								   e[i].number, e[i].agent, ago);
			if ((r = end_attempt(st, e[i].id, PILOT_ATTEMPT_LOST, PILOT_REASON_LOST, msg)) < 0 ||
			    (r = store_attempt_ended(st, e[i].run_id, e[i].number, PILOT_ATTEMPT_LOST, PILOT_REASON_LOST, msg,
						     "lost", "pilot")) < 0)
				goto fail;
			changed++;
		}
	}
	if ((r = collect(st, sql_late, now - st->opt.timeout_grace_ms, e, 100, &n)) < 0)
		goto fail;
	for (int i = 0; i < n; i++) {
		_cleanup_free_ char *msg = pilot_xasprintf(
			"attempt %d timed out: agent '%s' did not report within the timeout and its grace", e[i].number,
			e[i].agent);
		if ((r = end_attempt(st, e[i].id, PILOT_ATTEMPT_FAILED, PILOT_REASON_TIMEOUT, msg)) < 0 ||
		    (r = store_attempt_ended(st, e[i].run_id, e[i].number, PILOT_ATTEMPT_FAILED, PILOT_REASON_TIMEOUT, msg,
					     "timeout", "pilot")) < 0)
			goto fail;
		changed++;
	}
	if ((r = promote_due(st, now, &changed)) < 0)
		goto fail;
	if ((r = db_commit(st)) < 0)
		return r;
	return changed;
fail:
	db_rollback(st);
	return r;
}

/* ---- status ---- */

int pilot_store_status(struct pilot_store *st, struct pilot_status *out)
{
	static const char sql_counts[] = "SELECT state, n FROM run_counts";
	static const char sql_oldest[] = "SELECT created_ms FROM runs WHERE state = 'queued' ORDER BY id LIMIT 1";
	static const char sql_agents[] =
		"SELECT a.last_seen_ms, a.left_ms, EXISTS(SELECT 1 FROM attempts t WHERE t.state = 'running' "
		"AND t.agent = a.name) FROM agents a";
	STORE_LOCKED(st);
	struct pilot_status s = { 0 };
	int r = db_begin(st, false);
	if (r < 0)
		return r;
	s.now_ms = store_now();
	s.version = pilot_xstrdup(pilot_version());
	sqlite3_stmt *q = db_stmt(st, sql_counts);
	int rc = SQLITE_DONE;
	if (!q)
		goto fail;
	while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
		enum pilot_run_state state;
		if (pilot_run_state_from_name(col_text(q, 0), &state) == 0)
			s.counts[state] = col_int(q, 1);
	}
	sqlite3_reset(q);
	if (rc != SQLITE_DONE || !(q = db_stmt(st, sql_oldest)))
		goto fail;
	if ((rc = sqlite3_step(q)) == SQLITE_ROW)
		s.oldest_queued_ms = col_int(q, 0);
	sqlite3_reset(q);
	if ((rc != SQLITE_DONE && rc != SQLITE_ROW) || !(q = db_stmt(st, sql_agents)))
		goto fail;
	while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
		int64_t seen = col_int(q, 0), left = col_int(q, 1);
		bool busy = col_int(q, 2) != 0;
		if (left && left >= seen && !busy)
			continue; /* gone */
		if (seen < s.now_ms - st->opt.lease_ttl_ms)
			s.agents_lost++;
		else if (busy)
			s.agents_busy++;
		else
			s.agents_idle++;
	}
	sqlite3_reset(q);
	if (rc != SQLITE_DONE)
		goto fail;
	sqlite3_exec(st->db, "COMMIT", NULL, NULL, NULL);
	*out = s;
	return 0;
fail:
	/* A statement that failed to prepare has set its own message. */
	r = q ? db_error(st, "cannot read status") : pilot_error_code();
	db_rollback(st);
	pilot_status_clear(&s);
	return r;
}
