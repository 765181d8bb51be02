/* Handing runs to agents and taking them back: due runs promoted, claims matched to
 * labels, and the reaper of expired leases and timeouts. */
#include <string.h>

#include "internal.h"

/* ---- claims ---- */

static int promote_due(struct pilot_store *st, int64_t now, int *changed)
{
	static const char sql[] = "SELECT id FROM runs INDEXED BY runs_due WHERE state = 'waiting' "
				  "AND not_before_ms <= ?1 AND needs_left = 0 ORDER BY not_before_ms LIMIT 100";
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
		int r = store_queue_waiting(st, ids[i], "requeued", "pilot", "backoff elapsed", NULL);
		if (r < 0)
			return r;
		(*changed)++;
	}
	return 0;
}


/* The best queued run the labels satisfy: the highest priority, then the oldest. Each
 * distinct set of required labels is judged once, then its best run found by index
 * (one the agent is blocklisted for, or failed while another agent could take it,
 * left out: blocklist.c). */
static int find_candidate(struct pilot_store *st, const struct pilot_kvs *labels, const char *agent,
			  char id[PILOT_ID_SIZE])
{
	static const char sets[] = "SELECT requires_json FROM queued_sets WHERE n > 0";
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
		int64_t prio;
		char cand[PILOT_ID_SIZE];
		if ((r = store_best_for_agent(st, agent, ok[i], &prio, cand)) == 1 &&
		    (!id[0] || prio > best_prio || (prio == best_prio && strcmp(cand, id) < 0))) {
			best_prio = prio;
			memcpy(id, cand, PILOT_ID_SIZE);
		}
		if (r > 0)
			r = 0;
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

/* What a claim's read-only look learns of the agent: what it was told, and whether a
 * claim that finds nothing may skip its write (no waiting run is due and the agent's
 * row is recent and unchanged). Idle agents polling stay read-only. */
static void claim_look_agent(struct pilot_store *st, const struct pilot_claim_request *req, int64_t now,
			     enum pilot_agent_control *told, bool *can_skip)
{
	static const char due[] = "SELECT EXISTS(SELECT 1 FROM runs INDEXED BY runs_due WHERE state = 'waiting' "
				  "AND not_before_ms <= ?1 AND needs_left = 0)";
	static const char agent[] = "SELECT control, labels_json, version, last_seen_ms, left_ms, capacity, free_slots "
				    "FROM agents WHERE name = ?1";
	*told = PILOT_CONTROL_NONE;
	*can_skip = false;
	sqlite3_stmt *s = db_stmt(st, agent);
	if (!s) {
		pilot_error_clear();
		return;
	}
	bind_text(s, 1, req->agent);
	if (sqlite3_step(s) == SQLITE_ROW) {
		if (pilot_agent_control_from_name(col_text(s, 0), told) < 0) {
			pilot_error_clear();
			*told = PILOT_CONTROL_NONE;
		}
		_cleanup_free_ char *labels = kvs_to_text(&req->labels);
		*can_skip = !strcmp(col_text(s, 1), labels ? labels : "") &&
			    (!req->version || !strcmp(col_text(s, 2), req->version)) &&
			    col_int(s, 3) > now - st->opt.lease_ttl_ms / 4 && sqlite3_column_type(s, 4) == SQLITE_NULL &&
			    col_int(s, 5) == (req->capacity > 0 ? req->capacity : 1) &&
			    col_int(s, 6) == (req->free_slots > 0 ? req->free_slots : 1);
	}
	sqlite3_reset(s);
	if (!*can_skip || !(s = db_stmt(st, due))) {
		*can_skip = false;
		return;
	}
	bind_int(s, 1, now);
	*can_skip = sqlite3_step(s) == SQLITE_ROW && !col_int(s, 0);
	sqlite3_reset(s);
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
	out->command = PILOT_CONTROL_NONE;
	/* Look first without the write lock: most polls find nothing. An agent told to
	 * drain, sleep or shut down takes nothing; it learns why. */
	int r = db_begin(st, false);
	if (r < 0)
		return r;
	enum pilot_agent_control told;
	bool can_skip;
	claim_look_agent(st, req, now, &told, &can_skip);
	r = told ? 0 : req->run ? named_candidate(st, req, id) : find_candidate(st, &req->labels, req->agent, id);
	bool skip = r == 0 && can_skip;
	db_rollback(st);
	if (r < 0)
		return r;
	if (skip) {
		out->command = told;
		return 0;
	}

	if ((r = db_begin(st, true)) < 0)
		return r;
	if ((r = promote_due(st, now, &changed)) < 0 ||
	    (r = store_touch_agent(st, req->agent, &req->labels, req->version, req->capacity, req->free_slots, true)) < 0)
		goto fail;
	told = store_agent_control(st, req->agent);
	if (!told && (r = req->run ? named_candidate(st, req, id) : find_candidate(st, &req->labels, req->agent, id)) < 0)
		goto fail;
	if (told || r == 0) {
		r = db_commit(st);
		if (r < 0)
			return r;
		out->command = told;
		return 0;
	}

	struct run_row row;
	if ((r = store_run_row(st, id, &row)) < 0)
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
	    (r = store_transition(st, id, PILOT_RUN_QUEUED, PILOT_RUN_RUNNING, PILOT_REASON_NONE, "claimed", req->agent, number,
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
		"OR EXISTS(SELECT 1 FROM runs INDEXED BY runs_due WHERE state = 'waiting' AND not_before_ms <= ?3 "
		"AND needs_left = 0) "
		"OR EXISTS(SELECT 1 FROM blocklist b WHERE b.blocked_ms IS NOT NULL AND EXISTS(SELECT 1 FROM runs r "
		"INDEXED BY runs_name_id WHERE r.name = b.name AND r.state = 'queued' AND r.held = 0)) "
		"OR EXISTS(SELECT 1 FROM runs INDEXED BY runs_start_deadline WHERE start_deadline_ms <= ?3) "
		"OR EXISTS(SELECT 1 FROM agents INDEXED BY agents_sleep_next WHERE sleep_next_ms IS NOT NULL "
		"AND sleep_next_ms <= ?3)";
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
	if ((r = promote_due(st, now, &changed)) < 0 || (r = store_fail_unplaceable(st, &changed)) < 0 ||
	    (r = store_fail_unstarted(st, now, &changed)) < 0 || (r = store_apply_sleep_schedules(st, now, &changed)) < 0)
		goto fail;
	if ((r = db_commit(st)) < 0)
		return r;
	return changed;
fail:
	db_rollback(st);
	return r;
}
