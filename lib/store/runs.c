/* A run's state: loading runs and attempts, resolving id prefixes, the one function
 * that changes a run's state (store_transition) with its events and counters, and
 * what an attempt's end does to its run (the retry policy). */
#include <string.h>

#include "internal.h"

void store_load_run(sqlite3_stmt *s, struct pilot_run *r, bool secret_values)
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
	r->needs_left = (int)col_int(s, 33);
	r->concurrency_group = col_dup(s, 34);
	r->concurrency_max = (int)col_int(s, 35);
	r->slot_wait = col_int(s, 36) != 0;
	if (sqlite3_column_type(s, 37) != SQLITE_NULL) {
		col_copy_id(s, 37, r->array_id);
		r->array_index = col_int(s, 38);
	}
	r->start_timeout_ms = col_int(s, 39);
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
	a->instance_pool = col_dup(s, 13);
	a->instance_id = col_dup(s, 14);
}

/* sql (a static string; ?1 = a run id) stepped to the run's row: the statement, to
 * read and reset; NULL with PILOT_ENOTFOUND (no such run) or another error set. */
static sqlite3_stmt *run_by_id(struct pilot_store *st, const char *sql, const char *id)
{
	sqlite3_stmt *s = db_stmt(st, sql);
	if (!s)
		return NULL;
	bind_text(s, 1, id);
	int rc = sqlite3_step(s);
	if (rc == SQLITE_ROW)
		return s;
	if (rc == SQLITE_DONE) {
		sqlite3_reset(s);
		pilot_error_set(PILOT_ENOTFOUND, "run '%s' not found", id);
	} else {
		db_error(st, "cannot read run");
	}
	return NULL;
}

/* The (run id, states[, name]) rows sql (a static string; ?1 = id) returns, appended to
 * *out. */
static int read_needs(struct pilot_store *st, const char *sql, const char *id, struct pilot_run_need **out, size_t *n)
{
	sqlite3_stmt *s = db_stmt(st, sql);
	if (!s)
		return pilot_error_code();
	bind_text(s, 1, id);
	int rc;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		*out = pilot_xrealloc(*out, (*n + 1) * sizeof(**out));
		struct pilot_run_need *need = &(*out)[(*n)++];
		memset(need, 0, sizeof(*need));
		col_copy_id(s, 0, need->run);
		need->states = (unsigned)col_int(s, 1);
		if (sqlite3_column_count(s) > 2 && col_text(s, 2))
			snprintf(need->name, sizeof(need->name), "%s", col_text(s, 2));
	}
	sqlite3_reset(s);
	return rc == SQLITE_DONE ? 0 : db_error(st, "cannot read the runs a run waits for");
}

int store_get_run_locked(struct pilot_store *st, const char *id, bool with_attempts, bool secret_values,
			 struct pilot_run *out)
{
	static const char sql[] = "SELECT " RUN_COLS " FROM runs WHERE id = ?1";
	sqlite3_stmt *s = run_by_id(st, sql, id);
	if (!s)
		return pilot_error_code();
	struct pilot_run r;
	store_load_run(s, &r, secret_values);
	sqlite3_reset(s);
	if (with_attempts) {
		int rc;
		/* With the instance of a pool its agent ran on, if any. */
		static const char asql[] = "SELECT " ATT_COLS ", (SELECT i.pool FROM instances i WHERE i.agent = "
					   "attempts.agent), (SELECT i.provider_id FROM instances i WHERE i.agent = "
					   "attempts.agent) FROM attempts WHERE run_id = ?1 ORDER BY number";
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
	/* What it waits for, by name too: a claim carries them to the agent. */
	static const char nsql[] = "SELECT n.need_id, n.states, r.name FROM run_needs n LEFT JOIN runs r "
				   "ON r.id = n.need_id WHERE n.run_id = ?1 ORDER BY n.need_id";
	int nr = read_needs(st, nsql, id, &r.needs, &r.nneeds);
	if (nr < 0) {
		pilot_run_clear(&r);
		return nr;
	}
	*out = r;
	return 0;
}

int store_commit_run(struct pilot_store *st, const char *id, struct pilot_run *out, int result)
{
	struct pilot_run got;
	int r = store_get_run_locked(st, id, true, false, &got);
	if (r < 0) {
		db_rollback(st);
		return r;
	}
	if ((r = db_commit(st)) < 0) {
		pilot_run_clear(&got);
		return r;
	}
	if (out)
		*out = got;
	else
		pilot_run_clear(&got);
	return result;
}

int store_resolve_id(struct pilot_store *st, const char *sql, char kind, const char *what, const char *text,
		     char id[PILOT_ID_SIZE])
{
	if (!text || !pilot_id_valid(text, true) || text[0] != kind)
		return pilot_error_set(PILOT_ENOTFOUND, "%s '%s' not found", what, text ? text : "");
	sqlite3_stmt *s = db_stmt(st, sql);
	if (!s)
		return pilot_error_code();
	_cleanup_free_ char *hi = pilot_xasprintf("%s~", text);
	bind_text(s, 1, text);
	bind_text(s, 2, hi);
	char found[6][PILOT_ID_SIZE];
	int n = 0, rc;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW && n < 6)
		col_copy_id(s, 0, found[n++]);
	sqlite3_reset(s);
	if (rc != SQLITE_DONE && rc != SQLITE_ROW)
		return db_error(st, "cannot look up an id");
	if (n == 0)
		return pilot_error_set(PILOT_ENOTFOUND, "%s '%s' not found", what, text);
	if (n == 1 || !strcmp(found[0], text)) {
		memcpy(id, found[0], PILOT_ID_SIZE);
		return 0;
	}
	_cleanup_buf_ struct pilot_buf b = PILOT_BUF_INIT;
	for (int i = 0; i < n && i < 5; i++)
		pilot_buf_printf(&b, "%s%s", i ? ", " : "", found[i]);
	return pilot_error_set(PILOT_EAMBIGUOUS, "%s prefix '%s' is ambiguous: %s%s", what, text, pilot_buf_str(&b),
			       n > 5 ? ", ..." : "");
}

int resolve_run(struct pilot_store *st, const char *run, char id[PILOT_ID_SIZE])
{
	static const char sql[] = "SELECT id FROM runs WHERE id >= ?1 AND id < ?2 ORDER BY id LIMIT 6";
	return store_resolve_id(st, sql, 'r', "run", run, id);
}

int store_add_event(struct pilot_store *st, const char *run_id, int attempt, const char *type, const char *actor,
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

int store_count_add(struct pilot_store *st, enum pilot_run_state state, int delta)
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

int store_queued_set_add(struct pilot_store *st, const char *run_id, int delta)
{
	if (delta > 0)
		__atomic_add_fetch(&st->queue_gen, 1, __ATOMIC_RELAXED);
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

static int settle_waiters(struct pilot_store *st, const char *need_id, enum pilot_run_state end);

/* The one place a run's state changes. The caller holds a write transaction and knows
 * the current state (from); the row is updated only if it still has it. data (stolen)
 * adds fields to the event. */
int store_transition(struct pilot_store *st, const char *run_id, enum pilot_run_state from,
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
		"not_before_ms = CASE WHEN ?2 = 'waiting' THEN not_before_ms ELSE NULL END, "
		"start_deadline_ms = CASE WHEN ?2 = 'queued' THEN ?5 + start_timeout_ms ELSE NULL END "
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
	if ((r = store_count_add(st, from, -1)) < 0 || (r = store_count_add(st, to, 1)) < 0 ||
	    (from == PILOT_RUN_QUEUED && (r = store_queued_set_add(st, run_id, -1)) < 0) ||
	    (to == PILOT_RUN_QUEUED && (r = store_queued_set_add(st, run_id, 1)) < 0)) {
		json_decref(data);
		return r;
	}
	if (!data)
		data = json_object();
	json_object_set_new(data, "from", json_string(pilot_run_state_name(from)));
	json_object_set_new(data, "to", json_string(pilot_run_state_name(to)));
	if (reason)
		json_object_set_new(data, "reason", json_string(pilot_reason_name(reason)));
	/* An end: the rest of its array may stop (first, so that no slot passes to a run
	 * about to be skipped), its slots go to runs waiting for them, and the runs waiting
	 * for it are settled. */
	if ((r = store_add_event(st, run_id, attempt, type, actor, message, data, to)) < 0 || !terminal ||
	    (to == PILOT_RUN_FAILED && (r = store_array_run_failed(st, run_id)) < 0) ||
	    (r = store_free_slots(st, run_id)) < 0)
		return r;
	return settle_waiters(st, run_id, to);
}

/* One need of a waiting run is met: one fewer left; with none left and its not_before
 * passed, the run is queued. */
static int need_met(struct pilot_store *st, const char *run_id, const char *need_id)
{
	static const char dec[] = "UPDATE runs SET needs_left = needs_left - 1 WHERE id = ?1 AND needs_left > 0";
	static const char left[] = "SELECT needs_left, not_before_ms FROM runs WHERE id = ?1";
	sqlite3_stmt *s = db_stmt(st, dec);
	if (!s)
		return pilot_error_code();
	bind_text(s, 1, run_id);
	int r = db_done(st, s, "cannot update run");
	if (r < 0)
		return r;
	if (!(s = run_by_id(st, left, run_id)))
		return pilot_error_code();
	int64_t n = col_int(s, 0), not_before = col_int(s, 1);
	sqlite3_reset(s);
	if (n > 0 || not_before > store_now())
		return 0;
	_cleanup_free_ char *msg = pilot_xasprintf("the runs it waits for ended as it asks (the last: %s)", need_id);
	return store_queue_waiting(st, run_id, "needs_met", "pilot", msg, json_pack("{s:s}", "run_id", need_id));
}

int store_need_failed(struct pilot_store *st, const char *id, bool in_pipeline, const char *need_id,
		      enum pilot_run_state end, unsigned states, const char *actor)
{
	_cleanup_free_ char *want = pilot_run_need_states_format(states);
	_cleanup_free_ char *msg = pilot_xasprintf("run %s, which it waits for, ended %s (it needs %s)", need_id,
						   pilot_run_state_name(end), want);
	return store_transition(st, id, PILOT_RUN_WAITING, in_pipeline ? PILOT_RUN_SKIPPED : PILOT_RUN_FAILED,
				PILOT_REASON_DEPENDENCY_FAILED, in_pipeline ? "skipped" : "dependency_failed", actor, 0, msg,
				json_pack("{s:s,s:s}", "run_id", need_id, "state", pilot_run_state_name(end)));
}

/* need_id ended in state end: each run waiting for it meets a need, or, when end is not
 * one of the states it accepts, ends at once (store_need_failed), which settles the
 * runs waiting for that one in turn. */
static int settle_waiters(struct pilot_store *st, const char *need_id, enum pilot_run_state end)
{
	static const char sql[] = "SELECT run_id, states FROM run_needs WHERE need_id = ?1";
	/* Collected first: settling a waiter runs this query again. */
	struct pilot_run_need *waiters = NULL;
	size_t n = 0;
	int r = read_needs(st, sql, need_id, &waiters, &n);
	for (size_t i = 0; i < n && r == 0; i++) {
		struct run_row row;
		if ((r = store_run_row(st, waiters[i].run, &row)) < 0)
			break;
		/* Canceled or failed already (a need that ended before, or by hand). */
		if (row.state != PILOT_RUN_WAITING)
			continue;
		if (waiters[i].states & PILOT_RUN_STATE_BIT(end)) {
			r = need_met(st, waiters[i].run, need_id);
			continue;
		}
		r = store_need_failed(st, waiters[i].run, row.in_pipeline, need_id, end, waiters[i].states, "pilot");
	}
	free(waiters);
	return r;
}

int store_run_row(struct pilot_store *st, const char *id, struct run_row *out)
{
	static const char sql[] =
		"SELECT state, attempt_count, failed_count, lost_count, retry_max, retry_on, backoff_ms, "
		"max_backoff_ms, cancel_requested, held, cancel_grace_ms, substr(array_id, 1, 1) = 'p' "
		"FROM runs WHERE id = ?1";
	sqlite3_stmt *s = run_by_id(st, sql, id);
	if (!s)
		return pilot_error_code();
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
	out->in_pipeline = col_int(s, 11) != 0;
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
	if ((r = resolve_run(st, run_id, id)) < 0 || (r = store_run_row(st, id, &row)) < 0 ||
	    (r = store_transition(st, id, row.state, to, reason, "state", actor ? actor : st->actor, 0, message, NULL)) < 0) {
		db_rollback(st);
		return r;
	}
	return db_commit(st);
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
		return store_transition(st, run_id, row->state, PILOT_RUN_FAILED, reason, type, actor, attempt, detail, NULL);
	char dur[32];
	pilot_format_duration(delay, dur, sizeof(dur));
	_cleanup_free_ char *msg = pilot_xasprintf("%s; attempt %d of %d in %s", detail ? detail : "failed",
						   failures + 1, row->retry_max, dur);
	return store_transition(st, run_id, row->state, PILOT_RUN_WAITING, PILOT_REASON_NONE, "retry_scheduled", actor,
			  attempt, msg, json_pack("{s:I,s:s}", "not_before_ms", (json_int_t)not_before, "failure",
						  pilot_reason_name(reason)));
}

int store_attempt_requeued(struct pilot_store *st, const char *run_id, int attempt, const char *detail,
			   const char *actor)
{
	struct run_row row;
	int r = store_run_row(st, run_id, &row);
	if (r < 0)
		return r;
	if (attempt != row.attempt_count || row.state != PILOT_RUN_RUNNING)
		return store_attempt_ended(st, run_id, attempt, PILOT_ATTEMPT_CANCELED, PILOT_REASON_CANCELED, detail,
					   "finished", actor);
	_cleanup_free_ char *msg = pilot_xasprintf("%s; requeued: its agent was told to stop at once", detail);
	return store_transition(st, run_id, row.state, PILOT_RUN_QUEUED, PILOT_REASON_NONE, "requeued", actor, attempt, msg,
				NULL);
}

/* Applies an attempt's end to its run (called by finish and the reaper). */
int store_attempt_ended(struct pilot_store *st, const char *run_id, int attempt, enum pilot_attempt_state how,
			enum pilot_reason reason, const char *detail, const char *type, const char *actor)
{
	struct run_row row;
	int r = store_run_row(st, run_id, &row);
	if (r < 0 || (r = store_blocklist_note(st, run_id, attempt, how)) < 0)
		return r;
	/* Only the run's latest attempt drives it (an older one was lost already). */
	if (attempt != row.attempt_count)
		return 0;
	if (row.state == PILOT_RUN_CANCELING) {
		if (how == PILOT_ATTEMPT_SUCCEEDED)
			return store_transition(st, run_id, row.state, PILOT_RUN_SUCCEEDED, PILOT_REASON_EXIT_CODE, type, actor,
					  attempt, detail, NULL);
		/* The attempt's own account (which signals ended the job) when it gave one. */
		_cleanup_free_ char *msg = how == PILOT_ATTEMPT_LOST ? pilot_xstrdup("canceled (the agent was lost while canceling)")
					   : how == PILOT_ATTEMPT_CANCELED && detail ? pilot_xstrdup(detail)
					   : pilot_xasprintf("canceled; %s", detail ? detail : "the attempt ended");
		return store_transition(st, run_id, row.state, PILOT_RUN_CANCELED, PILOT_REASON_CANCELED, type, actor, attempt,
				  msg, NULL);
	}
	if (row.state != PILOT_RUN_RUNNING)
		return 0;
	switch (how) {
	case PILOT_ATTEMPT_SUCCEEDED:
		return store_transition(st, run_id, row.state, PILOT_RUN_SUCCEEDED, PILOT_REASON_EXIT_CODE, type, actor, attempt,
				  detail, NULL);
	case PILOT_ATTEMPT_CANCELED:
		return store_transition(st, run_id, row.state, PILOT_RUN_CANCELED, PILOT_REASON_CANCELED, type, actor, attempt,
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
			return store_transition(st, run_id, row.state, PILOT_RUN_FAILED, PILOT_REASON_LOST, type, actor, attempt,
					  msg, NULL);
		}
		if (lost > st->opt.max_lost) {
			_cleanup_free_ char *msg = pilot_xasprintf("%s; lost %d times, giving up", detail, lost);
			return store_transition(st, run_id, row.state, PILOT_RUN_FAILED, PILOT_REASON_LOST, type, actor, attempt,
					  msg, NULL);
		}
		_cleanup_free_ char *msg = pilot_xasprintf("%s; requeued (loss %d of %d allowed)", detail, lost,
							   st->opt.max_lost);
		return store_transition(st, run_id, row.state, PILOT_RUN_QUEUED, PILOT_REASON_NONE, type, actor, attempt, msg,
				  NULL);
	}
	default:
		return store_after_failure(st, run_id, &row, attempt, reason, detail, type, actor);
	}
}
