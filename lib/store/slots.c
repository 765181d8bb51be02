/* Concurrency limits. A run in a concurrency group takes a slot of the group when it
 * would be queued and gives it back when it ends: retries and lost attempts keep it.
 * A run that finds its group full stays waiting (slot_wait) and is queued when a run
 * of the group ends, highest priority then oldest first. The slots are rows of
 * run_slots keyed by "group:NAME", so that a run could be counted in more than one
 * limit; held = 1 while the run has its slot. */
#include <string.h>

#include "internal.h"

static int group_key(const char *group, char *out, size_t size)
{
	int n = snprintf(out, size, "group:%s", group);
	return n < 0 || (size_t)n >= size ? pilot_error_set(PILOT_EINVALID, "concurrency group name too long") : 0;
}

#define KEY_SIZE 160

int store_group_room(struct pilot_store *st, const char *group, int max)
{
	static const char sql[] = "SELECT count(*) FROM run_slots INDEXED BY run_slots_held WHERE key = ?1 AND held = 1";
	char key[KEY_SIZE];
	int r = group_key(group, key, sizeof(key));
	if (r < 0)
		return r;
	sqlite3_stmt *s = db_stmt(st, sql);
	if (!s)
		return pilot_error_code();
	bind_text(s, 1, key);
	if (sqlite3_step(s) != SQLITE_ROW) {
		sqlite3_reset(s);
		return db_error(st, "cannot read concurrency groups");
	}
	int64_t n = col_int(s, 0);
	sqlite3_reset(s);
	return n < max;
}

int store_add_slots(struct pilot_store *st, const char *run_id, const char *group, int max, bool held)
{
	static const char sql[] = "INSERT INTO run_slots(key, run_id, max, held) VALUES (?1, ?2, ?3, ?4)";
	char key[KEY_SIZE];
	if (!group)
		return 0;
	int r = group_key(group, key, sizeof(key));
	if (r < 0)
		return r;
	sqlite3_stmt *s = db_stmt(st, sql);
	if (!s)
		return pilot_error_code();
	bind_text(s, 1, key);
	bind_text(s, 2, run_id);
	bind_int(s, 3, max);
	bind_int(s, 4, held);
	return db_done(st, s, "cannot record the run's concurrency group");
}

/* Whether a run with these limits could take its slots now (1) or a limit is full (0);
 * *full_key (when not NULL, KEY_SIZE bytes) gets the first full one. */
static int slots_free(struct pilot_store *st, const char *run_id, char *full_key)
{
	static const char sql[] =
		"SELECT s.key, s.max, (SELECT count(*) FROM run_slots h INDEXED BY run_slots_held "
		"WHERE h.key = s.key AND h.held = 1) FROM run_slots s WHERE s.run_id = ?1 AND s.held = 0";
	sqlite3_stmt *s = db_stmt(st, sql);
	if (!s)
		return pilot_error_code();
	bind_text(s, 1, run_id);
	int rc, ok = 1;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW)
		if (col_int(s, 2) >= col_int(s, 1)) {
			if (full_key)
				snprintf(full_key, KEY_SIZE, "%s", col_text(s, 0));
			ok = 0;
			break;
		}
	sqlite3_reset(s);
	if (rc != SQLITE_DONE && rc != SQLITE_ROW)
		return db_error(st, "cannot read concurrency groups");
	return ok;
}

static int take_slots(struct pilot_store *st, const char *run_id)
{
	static const char sql[] = "UPDATE run_slots SET held = 1 WHERE run_id = ?1 AND held = 0";
	sqlite3_stmt *s = db_stmt(st, sql);
	if (!s)
		return pilot_error_code();
	bind_text(s, 1, run_id);
	return db_done(st, s, "cannot take a concurrency slot");
}

int store_try_slots(struct pilot_store *st, const char *run_id)
{
	int r = slots_free(st, run_id, NULL);
	if (r <= 0)
		return r;
	return take_slots(st, run_id) < 0 ? pilot_error_code() : 1;
}

int store_slot_wait(struct pilot_store *st, const char *run_id, const char *actor)
{
	static const char sql[] =
		"UPDATE runs SET slot_wait = 1, not_before_ms = NULL, updated_ms = ?2 WHERE id = ?1";
	static const char group[] = "SELECT concurrency_group, concurrency_max FROM runs WHERE id = ?1";
	sqlite3_stmt *s = db_stmt(st, sql);
	if (!s)
		return pilot_error_code();
	bind_text(s, 1, run_id);
	bind_int(s, 2, store_now());
	int r = db_done(st, s, "cannot update run");
	if (r < 0)
		return r;
	if (!(s = db_stmt(st, group)))
		return pilot_error_code();
	bind_text(s, 1, run_id);
	if (sqlite3_step(s) != SQLITE_ROW) {
		sqlite3_reset(s);
		return db_error(st, "cannot read run");
	}
	_cleanup_free_ char *name = col_dup(s, 0);
	int64_t max = col_int(s, 1);
	sqlite3_reset(s);
	_cleanup_free_ char *msg =
		pilot_xasprintf("waiting for a slot: concurrency group %s has %lld run%s going", name ? name : "?",
				(long long)max, max == 1 ? "" : "s");
	return store_add_event(st, run_id, 0, "slot_wait", actor, msg, json_pack("{s:s?}", "group", name),
			       PILOT_RUN_WAITING);
}

int store_queue_waiting(struct pilot_store *st, const char *run_id, const char *type, const char *actor,
			const char *message, json_t *data)
{
	int r = store_try_slots(st, run_id);
	if (r < 0) {
		json_decref(data);
		return r;
	}
	if (r == 0) {
		json_decref(data);
		return store_slot_wait(st, run_id, actor);
	}
	return store_transition(st, run_id, PILOT_RUN_WAITING, PILOT_RUN_QUEUED, PILOT_REASON_NONE, type, actor, 0, message,
				data);
}

/* The runs waiting for a slot under key, best first: at most n, after skipping skip. */
static int slot_waiters(struct pilot_store *st, const char *key, int skip, char (*ids)[PILOT_ID_SIZE], int n)
{
	static const char sql[] =
		"SELECT r.id FROM run_slots s JOIN runs r ON r.id = s.run_id WHERE s.key = ?1 AND s.held = 0 "
		"AND r.slot_wait = 1 AND r.state = 'waiting' ORDER BY r.priority DESC, r.id LIMIT ?2 OFFSET ?3";
	sqlite3_stmt *s = db_stmt(st, sql);
	if (!s)
		return pilot_error_code();
	bind_text(s, 1, key);
	bind_int(s, 2, n);
	bind_int(s, 3, skip);
	int rc = SQLITE_DONE, got = 0;
	while (got < n && (rc = sqlite3_step(s)) == SQLITE_ROW)
		col_copy_id(s, 0, ids[got++]);
	sqlite3_reset(s);
	if (rc != SQLITE_DONE && rc != SQLITE_ROW)
		return db_error(st, "cannot read runs waiting for a slot");
	return got;
}

static int slot_given(struct pilot_store *st, const char *run_id, const char *key)
{
	static const char clear[] = "UPDATE runs SET slot_wait = 0 WHERE id = ?1";
	sqlite3_stmt *s = db_stmt(st, clear);
	if (!s)
		return pilot_error_code();
	bind_text(s, 1, run_id);
	const char *group = strchr(key, ':') ? strchr(key, ':') + 1 : key;
	_cleanup_free_ char *msg = pilot_xasprintf("a slot of concurrency group %s came free", group);
	int r;
	if ((r = db_done(st, s, "cannot update run")) < 0 || (r = take_slots(st, run_id)) < 0)
		return r;
	return store_transition(st, run_id, PILOT_RUN_WAITING, PILOT_RUN_QUEUED, PILOT_REASON_NONE, "slot_free", "pilot",
				0, msg, json_pack("{s:s}", "group", group));
}

/* Fill the free slots of key with the runs waiting for them. A waiter also limited
 * elsewhere, and full there, is passed over. */
static int fill_slots(struct pilot_store *st, const char *key)
{
	enum { BATCH = 32 };
	char ids[BATCH][PILOT_ID_SIZE];
	int skipped = 0, n;
	do {
		if ((n = slot_waiters(st, key, skipped, ids, BATCH)) < 0)
			return n;
		for (int i = 0; i < n; i++) {
			char full[KEY_SIZE];
			int r = slots_free(st, ids[i], full);
			if (r < 0)
				return r;
			if (r == 0 && !strcmp(full, key))
				return 0;
			if (r == 0)
				skipped++;
			else if ((r = slot_given(st, ids[i], key)) < 0)
				return r;
		}
	} while (n == BATCH);
	return 0;
}

int store_free_slots(struct pilot_store *st, const char *run_id)
{
	static const char sql[] = "UPDATE run_slots SET held = 0 WHERE run_id = ?1 AND held = 1 RETURNING key";
	sqlite3_stmt *s = db_stmt(st, sql);
	if (!s)
		return pilot_error_code();
	bind_text(s, 1, run_id);
	char keys[4][KEY_SIZE];
	int n = 0, rc;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW)
		if (n < 4)
			snprintf(keys[n++], KEY_SIZE, "%s", col_text(s, 0));
	sqlite3_reset(s);
	if (rc != SQLITE_DONE)
		return db_error(st, "cannot give back a concurrency slot");
	for (int i = 0; i < n; i++) {
		int r = fill_slots(st, keys[i]);
		if (r < 0)
			return r;
	}
	return 0;
}
