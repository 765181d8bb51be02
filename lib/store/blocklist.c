/* Failures across agents: an agent that failed runs of one name several times in a row
 * is blocklisted for that name (no more of them are handed to it until the entry is
 * cleared), and a run an agent failed goes to another agent when one could take it
 * (claims.c asks). Counted when an attempt ends (store_attempt_ended). */
#include <string.h>

#include "internal.h"

int store_blocklist_note(struct pilot_store *st, const char *run_id, int attempt, enum pilot_attempt_state how)
{
	static const char who[] = "SELECT a.agent, r.name, r.held FROM attempts a JOIN runs r ON r.id = a.run_id "
				  "WHERE a.run_id = ?1 AND a.number = ?2";
	static const char ok[] = "DELETE FROM blocklist WHERE agent = ?1 AND name = ?2 AND blocked_ms IS NULL";
	static const char count[] =
		"INSERT INTO blocklist(agent, name, failures, last_failure_ms) VALUES (?1, ?2, 1, ?3) "
		"ON CONFLICT (agent, name) DO UPDATE SET failures = failures + 1, last_failure_ms = ?3";
	static const char block[] = "UPDATE blocklist SET blocked_ms = ?3 WHERE agent = ?1 AND name = ?2 "
				    "AND blocked_ms IS NULL AND failures >= ?4";
	if (how != PILOT_ATTEMPT_SUCCEEDED && how != PILOT_ATTEMPT_FAILED)
		return 0;
	sqlite3_stmt *s = db_stmt(st, who);
	if (!s)
		return pilot_error_code();
	bind_text(s, 1, run_id);
	bind_int(s, 2, attempt);
	int rc = sqlite3_step(s);
	if (rc != SQLITE_ROW) {
		sqlite3_reset(s);
		return rc == SQLITE_DONE ? 0 : db_error(st, "cannot read the attempt's agent");
	}
	_cleanup_free_ char *agent = col_dup(s, 0), *name = col_dup(s, 1);
	bool held = col_int(s, 2) != 0;
	sqlite3_reset(s);
	/* pilot run's own attempts say nothing about an agent of the fleet. */
	if (held || !agent || !name)
		return 0;
	int64_t now = store_now();
	if (!(s = db_stmt(st, how == PILOT_ATTEMPT_SUCCEEDED ? ok : count)))
		return pilot_error_code();
	bind_text(s, 1, agent);
	bind_text(s, 2, name);
	if (how == PILOT_ATTEMPT_FAILED)
		bind_int(s, 3, now);
	int r = db_done(st, s, "cannot count the agent's failures");
	if (r < 0 || how == PILOT_ATTEMPT_SUCCEEDED || st->opt.blocklist_after <= 0)
		return r;
	if (!(s = db_stmt(st, block)))
		return pilot_error_code();
	bind_text(s, 1, agent);
	bind_text(s, 2, name);
	bind_int(s, 3, now);
	bind_int(s, 4, st->opt.blocklist_after);
	if ((r = db_done(st, s, "cannot blocklist the agent")) < 0 || sqlite3_changes(st->db) != 1)
		return r;
	_cleanup_free_ char *msg = pilot_xasprintf("agent %s is blocklisted for runs named %s after %d failures in a row "
						   "(pilot agents blocklist)",
						   agent, name, st->opt.blocklist_after);
	return store_add_event(st, run_id, attempt, "blocklisted", "pilot", msg,
			       json_pack("{s:s,s:s,s:i}", "agent", agent, "name", name, "failures", st->opt.blocklist_after),
			       PILOT_RUN_RUNNING);
}

static int agents_for(struct pilot_store *st, const char *except, const char *name, const char *want_text,
		      int *matching, struct pilot_buf *blocked, int *nblocked);

int store_best_for_agent(struct pilot_store *st, const char *agent, const char *requires_text, int64_t *prio,
			 char id[PILOT_ID_SIZE])
{
	/* Not blocklisted for its name, and not failed (or lost) on this agent unless it
	 * has been queued since ?3 (then no other agent took it in time). */
	static const char sql[] =
		"SELECT priority, id FROM runs WHERE state = 'queued' AND requires_json = ?1 AND held = 0 "
		"AND (updated_ms <= ?3 OR NOT EXISTS (SELECT 1 FROM attempts a WHERE a.run_id = runs.id "
		"AND a.agent = ?2 AND a.state IN ('failed', 'lost'))) "
		"AND NOT EXISTS (SELECT 1 FROM blocklist b WHERE b.agent = ?2 AND b.name = runs.name "
		"AND b.blocked_ms IS NOT NULL) ORDER BY priority DESC, id LIMIT 1";
	int64_t now = store_now();
	for (int pass = 0; pass < 2; pass++) {
		sqlite3_stmt *s = db_stmt(st, sql);
		if (!s)
			return pilot_error_code();
		bind_text(s, 1, requires_text);
		bind_text(s, 2, agent);
		/* First pass: what it did not fail (or waited long enough); second: what it
		 * failed too, taken only when no other live agent could. */
		bind_int(s, 3, pass ? now : now - st->opt.retry_elsewhere_ms);
		int rc = sqlite3_step(s);
		if (rc == SQLITE_ROW) {
			*prio = col_int(s, 0);
			col_copy_id(s, 1, id);
		}
		sqlite3_reset(s);
		if (rc != SQLITE_ROW && rc != SQLITE_DONE)
			return db_error(st, "cannot look for queued runs");
		if (rc == SQLITE_ROW && pass == 0)
			return 1;
		if (rc == SQLITE_ROW) {
			_cleanup_buf_ struct pilot_buf none = PILOT_BUF_INIT;
			int others = 0, nblocked = 0;
			int r = agents_for(st, agent, NULL, requires_text, &others, &none, &nblocked);
			return r < 0 ? r : others ? 0 : 1;
		}
		if (pass == 0 && st->opt.retry_elsewhere_ms <= 0)
			return 0;
	}
	return 0;
}

/* Of the live agents taking runs (not drained, asleep or shutting down; but except,
 * when given) whose labels satisfy want_text, how many
 * there are and which of them are blocklisted for name (NULL: none counts as blocked;
 * their names, comma-separated, in blocked). */
static int agents_for(struct pilot_store *st, const char *except, const char *name, const char *want_text,
		      int *matching, struct pilot_buf *blocked, int *nblocked)
{
	static const char sql[] =
		"SELECT a.name, a.labels_json, EXISTS (SELECT 1 FROM blocklist b WHERE b.agent = a.name AND b.name = ?2 "
		"AND b.blocked_ms IS NOT NULL) FROM agents a WHERE a.left_ms IS NULL AND a.last_seen_ms > ?1 "
		"AND a.control IS NULL AND (?3 IS NULL OR a.name != ?3)";
	sqlite3_stmt *s = db_stmt(st, sql);
	if (!s)
		return pilot_error_code();
	bind_int(s, 1, store_now() - st->opt.lease_ttl_ms);
	bind_text(s, 2, name);
	bind_text(s, 3, except);
	struct pilot_kvs want;
	kvs_from_text(want_text, &want, true);
	int rc;
	*matching = *nblocked = 0;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		struct pilot_kvs have;
		kvs_from_text(col_text(s, 1), &have, true);
		if (pilot_kvs_satisfies(&have, &want)) {
			(*matching)++;
			if (col_int(s, 2)) {
				pilot_buf_printf(blocked, "%s%s", *nblocked ? ", " : "", col_text(s, 0));
				(*nblocked)++;
			}
		}
		pilot_kvs_clear(&have);
	}
	sqlite3_reset(s);
	pilot_kvs_clear(&want);
	return rc == SQLITE_DONE ? 0 : db_error(st, "cannot read the agents");
}

int store_fail_unplaceable(struct pilot_store *st, int *changed)
{
	static const char names[] = "SELECT DISTINCT name FROM blocklist WHERE blocked_ms IS NOT NULL LIMIT 100";
	static const char queued[] = "SELECT id, requires_json FROM runs INDEXED BY runs_name_id WHERE name = ?1 "
				     "AND state = 'queued' AND held = 0 ORDER BY id LIMIT 100";
	sqlite3_stmt *s = db_stmt(st, names);
	if (!s)
		return pilot_error_code();
	char **blocked_names = NULL;
	size_t nnames = 0;
	int rc;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		blocked_names = pilot_xrealloc(blocked_names, (nnames + 1) * sizeof(*blocked_names));
		blocked_names[nnames++] = col_dup(s, 0);
	}
	sqlite3_reset(s);
	int r = rc == SQLITE_DONE ? 0 : db_error(st, "cannot read the blocklist");
	for (size_t i = 0; i < nnames && r == 0; i++) {
		struct {
			char id[PILOT_ID_SIZE];
			char *requires;
		} runs[100];
		int n = 0;
		if (!(s = db_stmt(st, queued))) {
			r = pilot_error_code();
			break;
		}
		bind_text(s, 1, blocked_names[i]);
		while ((rc = sqlite3_step(s)) == SQLITE_ROW && n < 100) {
			col_copy_id(s, 0, runs[n].id);
			runs[n++].requires = col_dup(s, 1);
		}
		sqlite3_reset(s);
		if (rc != SQLITE_DONE && rc != SQLITE_ROW)
			r = db_error(st, "cannot read queued runs");
		for (int k = 0; k < n; k++) {
			_cleanup_buf_ struct pilot_buf who = PILOT_BUF_INIT;
			int matching = 0, nblocked = 0;
			if (r == 0)
				r = agents_for(st, NULL, blocked_names[i], runs[k].requires ? runs[k].requires : "", &matching, &who,
					       &nblocked);
			if (r == 0 && matching > 0 && nblocked == matching) {
				_cleanup_free_ char *msg = pilot_xasprintf(
					"no agent may run it: every agent that could (%s) is blocklisted for runs named %s "
					"after failing them; 'pilot agents blocklist --clear AGENT %s' lets one try again",
					pilot_buf_str(&who), blocked_names[i], blocked_names[i]);
				r = store_transition(st, runs[k].id, PILOT_RUN_QUEUED, PILOT_RUN_FAILED, PILOT_REASON_NO_AGENT,
						     "no_agent", "pilot", 0, msg, json_pack("{s:s}", "agents", pilot_buf_str(&who)));
				if (r == 0)
					(*changed)++;
			}
			free(runs[k].requires);
		}
	}
	for (size_t i = 0; i < nnames; i++)
		free(blocked_names[i]);
	free(blocked_names);
	return r;
}

void pilot_store_set_pool_labels(struct pilot_store *st, const struct pilot_kvs *labels, size_t n)
{
	STORE_LOCKED(st);
	for (size_t i = 0; i < st->npool_labels; i++)
		pilot_kvs_clear(&st->pool_labels[i]);
	free(st->pool_labels);
	st->pool_labels = n ? pilot_xcalloc(n, sizeof(*st->pool_labels)) : NULL;
	for (size_t i = 0; i < n; i++)
		pilot_kvs_copy(&st->pool_labels[i], &labels[i]);
	st->npool_labels = n;
}

/* Whether one of the server's pools launches machines that could take a run. */
static bool a_pool_could(struct pilot_store *st, const char *requires_text)
{
	if (!st->npool_labels)
		return false;
	struct pilot_kvs want;
	kvs_from_text(requires_text, &want, true);
	bool could = false;
	for (size_t i = 0; i < st->npool_labels && !could; i++)
		could = pilot_kvs_satisfies(&st->pool_labels[i], &want);
	pilot_kvs_clear(&want);
	return could;
}

int store_fail_unstarted(struct pilot_store *st, int64_t now, int *changed)
{
	static const char due[] = "SELECT id, name, requires_json, start_timeout_ms FROM runs INDEXED BY runs_start_deadline "
				  "WHERE start_deadline_ms <= ?1 AND state = 'queued' ORDER BY start_deadline_ms LIMIT 100";
	static const char later[] = "UPDATE runs SET start_deadline_ms = ?2 + start_timeout_ms WHERE id = ?1";
	struct {
		char id[PILOT_ID_SIZE];
		char *name, *requires;
		int64_t timeout_ms;
	} runs[100];
	int n = 0, rc;
	sqlite3_stmt *s = db_stmt(st, due);
	if (!s)
		return pilot_error_code();
	bind_int(s, 1, now);
	while ((rc = sqlite3_step(s)) == SQLITE_ROW && n < 100) {
		col_copy_id(s, 0, runs[n].id);
		runs[n].name = col_dup(s, 1);
		runs[n].requires = col_dup(s, 2);
		runs[n++].timeout_ms = col_int(s, 3);
	}
	sqlite3_reset(s);
	int r = rc == SQLITE_DONE || rc == SQLITE_ROW ? 0 : db_error(st, "cannot read queued runs");
	for (int i = 0; i < n; i++) {
		_cleanup_buf_ struct pilot_buf who = PILOT_BUF_INIT;
		int matching = 0, nblocked = 0;
		if (r == 0)
			r = agents_for(st, NULL, runs[i].name ? runs[i].name : "", runs[i].requires ? runs[i].requires : "",
				       &matching, &who, &nblocked);
		if (r == 0 && (matching > nblocked || a_pool_could(st, runs[i].requires ? runs[i].requires : ""))) {
			/* One could take it, or a pool launches machines that could (new
			 * names, blocklisted for nothing): it waits its turn, the clock starts
			 * again. */
			if (!(s = db_stmt(st, later))) {
				r = pilot_error_code();
			} else {
				bind_text(s, 1, runs[i].id);
				bind_int(s, 2, now);
				r = db_done(st, s, "cannot update run");
			}
		} else if (r == 0) {
			char dur[32];
			pilot_format_duration(runs[i].timeout_ms, dur, sizeof(dur));
			_cleanup_free_ char *msg =
				nblocked ? pilot_xasprintf("no agent may run it: within its start_timeout (%s) only blocklisted "
							   "agents could (%s)", dur, pilot_buf_str(&who))
					 : pilot_xasprintf("no agent that could run it (with the labels it requires) was seen "
							   "within its start_timeout (%s)", dur);
			r = store_transition(st, runs[i].id, PILOT_RUN_QUEUED, PILOT_RUN_FAILED, PILOT_REASON_NO_AGENT,
					     "no_agent", "pilot", 0, msg, json_pack("{s:I}", "start_timeout_ms",
										     (json_int_t)runs[i].timeout_ms));
			if (r == 0)
				(*changed)++;
		}
		free(runs[i].name);
		free(runs[i].requires);
	}
	return r;
}

static int load_block(sqlite3_stmt *s, struct pilot_block *b)
{
	b->agent = col_dup(s, 0);
	b->name = col_dup(s, 1);
	b->failures = (int)col_int(s, 2);
	b->last_failure_ms = col_int(s, 3);
	b->blocked_ms = col_int(s, 4);
	return 0;
}

int pilot_store_list_blocklist(struct pilot_store *st, struct pilot_block_list *out)
{
	static const char sql[] = "SELECT agent, name, failures, last_failure_ms, blocked_ms FROM blocklist "
				  "ORDER BY blocked_ms IS NULL, agent, name";
	STORE_LOCKED(st);
	int r = db_begin(st, false);
	if (r < 0)
		return r;
	sqlite3_stmt *s = db_stmt(st, sql);
	if (!s) {
		db_rollback(st);
		return pilot_error_code();
	}
	struct pilot_block_list l = { 0 };
	int rc;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		l.items = pilot_xrealloc(l.items, (l.n + 1) * sizeof(*l.items));
		load_block(s, &l.items[l.n++]);
	}
	sqlite3_reset(s);
	db_rollback(st);
	if (rc != SQLITE_DONE) {
		pilot_block_list_clear(&l);
		return db_error(st, "cannot read the blocklist");
	}
	*out = l;
	return 0;
}

int pilot_store_clear_blocklist(struct pilot_store *st, const char *agent, const char *name, int *cleared)
{
	static const char sql[] = "DELETE FROM blocklist WHERE (?1 IS NULL OR agent = ?1) AND (?2 IS NULL OR name = ?2)";
	STORE_LOCKED(st);
	int r = db_begin(st, true);
	if (r < 0)
		return r;
	sqlite3_stmt *s = db_stmt(st, sql);
	if (!s) {
		db_rollback(st);
		return pilot_error_code();
	}
	bind_text(s, 1, agent && *agent ? agent : NULL);
	bind_text(s, 2, name && *name ? name : NULL);
	if ((r = db_done(st, s, "cannot clear the blocklist")) < 0) {
		db_rollback(st);
		return r;
	}
	int n = sqlite3_changes(st->db);
	if ((r = db_commit(st)) < 0)
		return r;
	if (cleared)
		*cleared = n;
	return 0;
}
