/* Concurrency limits: a concurrency group ("group:NAME") and an array's throttle
 * ("array:ID"). A run takes a slot of each limit it is in when it would be queued and
 * gives them back when it ends: retries and lost attempts keep them. A run that finds
 * a limit full stays waiting (slot_wait) and is queued when a run of that limit ends,
 * highest priority then oldest first. Rows of run_slots, one per run and limit;
 * held = 1 while the run has its slot. */
#include <string.h>

#include "internal.h"

int store_limit_set(struct store_limit *l, const char *kind, const char *name, int max)
{
	int n = snprintf(l->key, sizeof(l->key), "%s:%s", kind, name);
	l->max = max;
	return n < 0 || (size_t)n >= sizeof(l->key) ? pilot_error_set(PILOT_EINVALID, "%s name too long", kind) : 0;
}

char *store_limit_full_text(const char *key, int64_t max)
{
	const char *colon = strchr(key, ':');
	const char *name = colon ? colon + 1 : key;
	bool group = !strncmp(key, "group:", 6);
	return pilot_xasprintf("%s %s has %lld run%s going", group ? "concurrency group" : "array", name,
			       (long long)max, max == 1 ? "" : "s");
}

static int key_held(struct pilot_store *st, const char *key, int64_t *n)
{
	static const char sql[] = "SELECT count(*) FROM run_slots INDEXED BY run_slots_held WHERE key = ?1 AND held = 1";
	sqlite3_stmt *s = db_stmt(st, sql);
	if (!s)
		return pilot_error_code();
	bind_text(s, 1, key);
	if (sqlite3_step(s) != SQLITE_ROW) {
		sqlite3_reset(s);
		return db_error(st, "cannot read concurrency limits");
	}
	*n = col_int(s, 0);
	sqlite3_reset(s);
	return 0;
}

int store_limits_room(struct pilot_store *st, const struct store_limit *l, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		int64_t held = 0;
		int r = key_held(st, l[i].key, &held);
		if (r < 0)
			return r;
		if (held >= l[i].max)
			return 0;
	}
	return 1;
}

int store_add_slots(struct pilot_store *st, const char *run_id, const struct store_limit *l, size_t n, bool held)
{
	static const char sql[] = "INSERT INTO run_slots(key, run_id, max, held) VALUES (?1, ?2, ?3, ?4)";
	for (size_t i = 0; i < n; i++) {
		sqlite3_stmt *s = db_stmt(st, sql);
		if (!s)
			return pilot_error_code();
		bind_text(s, 1, l[i].key);
		bind_text(s, 2, run_id);
		bind_int(s, 3, l[i].max);
		bind_int(s, 4, held);
		int r = db_done(st, s, "cannot record the run's concurrency limits");
		if (r < 0)
			return r;
	}
	return 0;
}

int store_run_limits(struct pilot_store *st, const char *run_id, struct store_limit *out, size_t max, size_t *n)
{
	static const char sql[] = "SELECT key, max FROM run_slots INDEXED BY run_slots_run WHERE run_id = ?1";
	sqlite3_stmt *s = db_stmt(st, sql);
	if (!s)
		return pilot_error_code();
	bind_text(s, 1, run_id);
	int rc;
	*n = 0;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW)
		if (*n < max) {
			snprintf(out[*n].key, sizeof(out[*n].key), "%s", col_text(s, 0));
			out[(*n)++].max = (int)col_int(s, 1);
		}
	sqlite3_reset(s);
	return rc == SQLITE_DONE ? 0 : db_error(st, "cannot read the run's concurrency limits");
}

/* Whether a run could take its slots now (1) or a limit is full (0); *full (when not
 * NULL) gets the first full one. */
static int slots_free(struct pilot_store *st, const char *run_id, struct store_limit *full)
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
			if (full) {
				snprintf(full->key, sizeof(full->key), "%s", col_text(s, 0));
				full->max = (int)col_int(s, 1);
			}
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

/* Take the run's slots if every limit it is in has room: 1 taken (or it has no
 * limits), 0 one is full. */
static int try_slots(struct pilot_store *st, const char *run_id)
{
	int r = slots_free(st, run_id, NULL);
	if (r <= 0)
		return r;
	return take_slots(st, run_id) < 0 ? pilot_error_code() : 1;
}

/* {"group": NAME} or {"array": ID}: the limit named by key, for an event. */
static json_t *limit_json(const char *key)
{
	const char *colon = strchr(key, ':');
	if (!colon)
		return json_object();
	_cleanup_free_ char *kind = pilot_xstrndup(key, (size_t)(colon - key));
	return json_pack("{s:s}", kind, colon + 1);
}

/* The run, waiting, would be queued but a limit of it is full: it waits for a slot. */
static int slot_wait(struct pilot_store *st, const char *run_id, const char *actor)
{
	static const char sql[] =
		"UPDATE runs SET slot_wait = 1, not_before_ms = NULL, updated_ms = ?2 WHERE id = ?1";
	struct store_limit full = { "", 0 };
	int r = slots_free(st, run_id, &full);
	if (r < 0)
		return r;
	sqlite3_stmt *s = db_stmt(st, sql);
	if (!s)
		return pilot_error_code();
	bind_text(s, 1, run_id);
	bind_int(s, 2, store_now());
	if ((r = db_done(st, s, "cannot update run")) < 0)
		return r;
	_cleanup_free_ char *why = store_limit_full_text(full.key, full.max);
	_cleanup_free_ char *msg = pilot_xasprintf("waiting for a slot: %s", why);
	return store_add_event(st, run_id, 0, "slot_wait", actor, msg, limit_json(full.key), PILOT_RUN_WAITING);
}

int store_queue_waiting(struct pilot_store *st, const char *run_id, const char *type, const char *actor,
			const char *message, json_t *data)
{
	int r = try_slots(st, run_id);
	if (r < 0) {
		json_decref(data);
		return r;
	}
	if (r == 0) {
		json_decref(data);
		return slot_wait(st, run_id, actor);
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
	const char *name = strchr(key, ':') ? strchr(key, ':') + 1 : key;
	_cleanup_free_ char *msg = pilot_xasprintf("a slot of %s %s came free",
						   !strncmp(key, "group:", 6) ? "concurrency group" : "array", name);
	int r;
	if ((r = db_done(st, s, "cannot update run")) < 0 || (r = take_slots(st, run_id)) < 0)
		return r;
	return store_transition(st, run_id, PILOT_RUN_WAITING, PILOT_RUN_QUEUED, PILOT_REASON_NONE, "slot_free", "pilot",
				0, msg, limit_json(key));
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
			struct store_limit full;
			int r = slots_free(st, ids[i], &full);
			if (r < 0)
				return r;
			if (r == 0 && !strcmp(full.key, key))
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
	char keys[STORE_MAX_LIMITS][STORE_KEY_SIZE];
	int n = 0, rc;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW)
		if (n < STORE_MAX_LIMITS)
			snprintf(keys[n++], STORE_KEY_SIZE, "%s", col_text(s, 0));
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
