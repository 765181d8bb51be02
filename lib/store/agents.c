/* Agents (registration, last-seen, derived state), bundles (blobs named by the
 * client) and the server's API tokens. */
#include <string.h>

#include "internal.h"
#include "pilot/sched.h"

int store_touch_agent(struct pilot_store *st, const char *name, const struct pilot_kvs *labels, const char *version,
		      int capacity, int free_slots, bool full)
{
	static const char sql[] =
		"INSERT INTO agents(name, labels_json, version, capacity, free_slots, first_seen_ms, last_seen_ms) "
		"VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6) ON CONFLICT(name) DO UPDATE SET "
		"labels_json = CASE WHEN ?7 THEN excluded.labels_json ELSE labels_json END, "
		"version = CASE WHEN ?7 AND excluded.version IS NOT NULL THEN excluded.version ELSE version END, "
		"capacity = CASE WHEN ?7 THEN excluded.capacity ELSE capacity END, "
		"free_slots = excluded.free_slots, last_seen_ms = excluded.last_seen_ms, left_ms = NULL";
	sqlite3_stmt *s = db_stmt(st, sql);
	if (!s)
		return pilot_error_code();
	_cleanup_free_ char *lj = kvs_to_text(labels);
	bind_text(s, 1, name);
	bind_text(s, 2, lj);
	bind_text(s, 3, version);
	bind_int(s, 4, capacity > 0 ? capacity : 1);
	bind_int(s, 5, free_slots > 0 ? free_slots : 1);
	bind_int(s, 6, store_now());
	bind_int(s, 7, full);
	return db_done(st, s, "cannot record agent");
}

static bool valid_agent_name(const char *n)
{
	if (!n || !*n || strlen(n) > 127)
		return false;
	for (const char *p = n; *p; p++)
		if ((unsigned char)*p <= ' ' || *p == '/' || *p == 0x7f)
			return false;
	return true;
}

int pilot_store_register_agent(struct pilot_store *st, const struct pilot_agent_info *info)
{
	if (!valid_agent_name(info->name))
		return pilot_error_set(PILOT_EINVALID, "invalid agent name '%s'", info->name ? info->name : "");
	STORE_LOCKED(st);
	int r = db_begin(st, true);
	if (r < 0)
		return r;
	if ((r = store_touch_agent(st, info->name, &info->labels, info->version, info->capacity, info->capacity, true)) <
	    0) {
		db_rollback(st);
		return r;
	}
	return db_commit(st);
}

int pilot_store_agent_leave(struct pilot_store *st, const char *agent)
{
	/* A shutdown asked for is done once the agent says goodbye. */
	static const char sql[] = "UPDATE agents SET left_ms = ?2, last_seen_ms = ?2, "
				  "control = CASE WHEN control = 'shutdown' THEN NULL ELSE control END WHERE name = ?1";
	STORE_LOCKED(st);
	sqlite3_stmt *s = db_stmt(st, sql);
	if (!s)
		return pilot_error_code();
	bind_text(s, 1, agent);
	bind_int(s, 2, store_now());
	int r = db_done(st, s, "cannot update agent");
	if (r < 0)
		return r;
	if (sqlite3_changes(st->db) == 0)
		return pilot_error_set(PILOT_ENOTFOUND, "agent '%s' not found", agent ? agent : "");
	return 0;
}

#define AGENT_COLS \
	"name, labels_json, version, capacity, first_seen_ms, last_seen_ms, left_ms, control, control_ms, control_by, " \
	"sleep_schedule, sleep_tz, sleep_next_ms"

static int cmp_agent_name(const void *a, const void *b)
{
	return strcmp(((const struct pilot_agent_info *)a)->name, ((const struct pilot_agent_info *)b)->name);
}

/* The agents of machines being launched that did not register yet, as starting. */
static int read_starting(struct pilot_store *st, const char *name, struct pilot_agent_list *l)
{
	static const char all[] = "SELECT agent, launched_ms FROM instances WHERE state = 'launching' "
				  "AND agent NOT IN (SELECT name FROM agents)";
	static const char one[] = "SELECT agent, launched_ms FROM instances WHERE state = 'launching' AND agent = ?1 "
				  "AND agent NOT IN (SELECT name FROM agents)";
	sqlite3_stmt *s = db_stmt(st, name ? one : all);
	if (!s)
		return pilot_error_code();
	bind_text(s, 1, name);
	size_t before = l->n;
	int rc;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		l->items = pilot_xrealloc(l->items, (l->n + 1) * sizeof(*l->items));
		struct pilot_agent_info *a = &l->items[l->n++];
		memset(a, 0, sizeof(*a));
		a->name = col_dup(s, 0);
		a->capacity = 1;
		a->state = PILOT_AGENT_STARTING;
		a->first_seen_ms = col_int(s, 1);
	}
	sqlite3_reset(s);
	if (rc != SQLITE_DONE)
		return db_error(st, "cannot list instances");
	if (l->n > before)
		qsort(l->items, l->n, sizeof(*l->items), cmp_agent_name);
	return 0;
}

/* The agents (all, or the one named), their runs and derived states, inside a
 * transaction; with starting, the agents of machines being launched too. */
static int read_agents(struct pilot_store *st, const char *name, bool starting, struct pilot_agent_list *out)
{
	static const char all[] = "SELECT " AGENT_COLS " FROM agents ORDER BY name";
	static const char one[] = "SELECT " AGENT_COLS " FROM agents WHERE name = ?1";
	static const char sql_runs[] = "SELECT agent, run_id FROM attempts WHERE state = 'running' ORDER BY run_id";
	static const char one_runs[] = "SELECT agent, run_id FROM attempts WHERE state = 'running' AND agent = ?1 "
				       "ORDER BY run_id";
	struct pilot_agent_list l = { 0 };
	int64_t now = store_now();
	sqlite3_stmt *s = db_stmt(st, name ? one : all);
	int rc = SQLITE_ERROR;
	if (!s)
		return pilot_error_code();
	bind_text(s, 1, name);
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		l.items = pilot_xrealloc(l.items, (l.n + 1) * sizeof(*l.items));
		struct pilot_agent_info *a = &l.items[l.n++];
		memset(a, 0, sizeof(*a));
		a->name = col_dup(s, 0);
		kvs_from_text(col_text(s, 1), &a->labels, true);
		a->version = col_dup(s, 2);
		a->capacity = (int)col_int(s, 3);
		a->first_seen_ms = col_int(s, 4);
		a->last_seen_ms = col_int(s, 5);
		/* left: offline until its runs are counted below. */
		a->state = col_int(s, 6) ? PILOT_AGENT_OFFLINE : PILOT_AGENT_IDLE;
		if (pilot_agent_control_from_name(col_text(s, 7), &a->control) < 0) {
			pilot_error_clear();
			a->control = PILOT_CONTROL_NONE;
		}
		a->control_ms = col_int(s, 8);
		a->control_by = col_dup(s, 9);
		a->sleep_schedule = col_dup(s, 10);
		a->sleep_tz = col_dup(s, 11);
		a->sleep_next_ms = col_int(s, 12);
	}
	sqlite3_reset(s);
	if (rc != SQLITE_DONE || !(s = db_stmt(st, name ? one_runs : sql_runs)))
		goto fail;
	bind_text(s, 1, name);
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		const char *agent = col_text(s, 0);
		for (size_t i = 0; i < l.n; i++) {
			struct pilot_agent_info *a = &l.items[i];
			if (strcmp(a->name, agent))
				continue;
			a->runs = pilot_xrealloc(a->runs, (a->nruns + 1) * sizeof(*a->runs));
			a->runs[a->nruns++] = col_dup(s, 1);
			break;
		}
	}
	sqlite3_reset(s);
	if (rc != SQLITE_DONE)
		goto fail;
	for (size_t i = 0; i < l.n; i++) {
		struct pilot_agent_info *a = &l.items[i];
		/* An agent holding a live lease is busy even when offline: the reaper
		 * decides when the lease is lost. */
		if (a->state == PILOT_AGENT_OFFLINE && !a->nruns)
			continue;
		if (a->last_seen_ms < now - st->opt.lease_ttl_ms)
			a->state = PILOT_AGENT_LOST;
		else if (a->control && a->nruns)
			a->state = PILOT_AGENT_DRAINING;
		else if (a->control)
			a->state = a->control == PILOT_CONTROL_SLEEP	? PILOT_AGENT_ASLEEP
				   : a->control == PILOT_CONTROL_DRAIN ? PILOT_AGENT_DRAINED
								       : PILOT_AGENT_DRAINING;
		else
			a->state = a->nruns ? PILOT_AGENT_BUSY : PILOT_AGENT_IDLE;
	}
	if (starting && read_starting(st, name, &l) < 0) {
		pilot_agent_list_clear(&l);
		return pilot_error_code();
	}
	*out = l;
	return 0;
fail:
	pilot_agent_list_clear(&l);
	return s ? db_error(st, "cannot list agents") : pilot_error_code();
}

int pilot_store_list_agents(struct pilot_store *st, bool starting, struct pilot_agent_list *out)
{
	STORE_LOCKED(st);
	int r = db_begin(st, false);
	if (r < 0)
		return r;
	r = read_agents(st, NULL, starting, out);
	db_rollback(st);
	return r;
}

static int one_agent(struct pilot_store *st, const char *name, bool starting, struct pilot_agent_info *out)
{
	struct pilot_agent_list l = { 0 };
	int r = read_agents(st, name, starting, &l);
	if (r < 0)
		return r;
	if (!l.n) {
		pilot_agent_list_clear(&l);
		return pilot_error_set(PILOT_ENOTFOUND, "agent '%s' not found", name);
	}
	if (out) {
		*out = l.items[0];
		memset(&l.items[0], 0, sizeof(l.items[0]));
	}
	pilot_agent_list_clear(&l);
	return 0;
}

int pilot_store_get_agent(struct pilot_store *st, const char *name, struct pilot_agent_info *out)
{
	if (!valid_agent_name(name))
		return pilot_error_set(PILOT_EINVALID, "invalid agent name '%s'", name ? name : "");
	STORE_LOCKED(st);
	int r = db_begin(st, false);
	if (r < 0)
		return r;
	r = one_agent(st, name, true, out);
	db_rollback(st);
	return r;
}

/* ---- control ---- */

enum agent_action { ACT_DRAIN, ACT_RESUME, ACT_SLEEP, ACT_WAKE, ACT_SHUTDOWN, ACT_FORGET, NACTIONS };
static const char *const action_names[NACTIONS] = { "drain", "resume", "sleep", "wake", "shutdown", "forget" };

enum pilot_agent_control store_agent_control(struct pilot_store *st, const char *name)
{
	static const char sql[] = "SELECT control FROM agents WHERE name = ?1";
	enum pilot_agent_control c = PILOT_CONTROL_NONE;
	sqlite3_stmt *s = db_stmt(st, sql);
	if (!s) {
		pilot_error_clear();
		return c;
	}
	bind_text(s, 1, name);
	if (sqlite3_step(s) == SQLITE_ROW && pilot_agent_control_from_name(col_text(s, 0), &c) < 0) {
		pilot_error_clear();
		c = PILOT_CONTROL_NONE;
	}
	sqlite3_reset(s);
	return c;
}

/* Ask the agent's running attempts to stop so that their runs go back to the queue:
 * their next heartbeat says cancel (with requeue), and their finish requeues. */
static int requeue_attempts(struct pilot_store *st, const char *name, const char *action, const char *actor)
{
	static const char sel[] = "SELECT a.id, a.run_id, a.number FROM attempts a JOIN runs r ON r.id = a.run_id "
				  "WHERE a.agent = ?1 AND a.state = 'running' AND a.requeue = 0 AND r.state = 'running'";
	static const char upd[] = "UPDATE attempts SET requeue = 1 WHERE id = ?1";
	struct {
		char id[PILOT_ID_SIZE], run[PILOT_ID_SIZE];
		int number;
	} *att = NULL;
	size_t n = 0;
	sqlite3_stmt *s = db_stmt(st, sel);
	if (!s)
		return pilot_error_code();
	bind_text(s, 1, name);
	int rc;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		att = pilot_xrealloc(att, (n + 1) * sizeof(*att));
		col_copy_id(s, 0, att[n].id);
		col_copy_id(s, 1, att[n].run);
		att[n++].number = (int)col_int(s, 2);
	}
	sqlite3_reset(s);
	int r = rc == SQLITE_DONE ? 0 : db_error(st, "cannot read attempts");
	for (size_t i = 0; i < n && r == 0; i++) {
		if (!(s = db_stmt(st, upd))) {
			r = pilot_error_code();
			break;
		}
		bind_text(s, 1, att[i].id);
		if ((r = db_done(st, s, "cannot update attempt")) < 0)
			break;
		_cleanup_free_ char *msg = pilot_xasprintf("agent %s was told to %s at once: attempt %d is stopped and "
							   "the run goes back to the queue",
							   name, action, att[i].number);
		r = store_add_event(st, att[i].run, att[i].number, "requeue_requested", actor, msg,
				    json_pack("{s:s,s:s}", "agent", name, "action", action), PILOT_RUN_RUNNING);
	}
	free(att);
	return r;
}

static int forget_agent(struct pilot_store *st, const struct pilot_agent_info *a)
{
	static const char del[] = "DELETE FROM agents WHERE name = ?1";
	static const char del_block[] = "DELETE FROM blocklist WHERE agent = ?1";
	if (a->nruns)
		return pilot_error_set(PILOT_ECONFLICT, "agent '%s' runs %s%s: forget it once they end (pilot agents "
					   "drain --now %s stops them)", a->name, a->runs[0], a->nruns > 1 ? " and more" : "",
				       a->name);
	if (a->state != PILOT_AGENT_OFFLINE && a->state != PILOT_AGENT_LOST)
		return pilot_error_set(PILOT_ECONFLICT, "agent '%s' is connected (%s): stop it first, with 'pilot agents "
					   "shutdown %s' or where it runs", a->name, pilot_agent_state_name(a->state), a->name);
	const char *sql[] = { del_block, del };
	for (size_t i = 0; i < ARRAY_SIZE(sql); i++) {
		sqlite3_stmt *s = db_stmt(st, sql[i]);
		if (!s)
			return pilot_error_code();
		bind_text(s, 1, a->name);
		int r = db_done(st, s, "cannot forget agent");
		if (r < 0)
			return r;
	}
	return 0;
}

/* The end of a change to an agent, inside its transaction: before (as it was) is
 * cleared, out gets it as it is now, the transaction commits, and its waiting claims
 * look again (they may take runs now, or must stop). */
static int agent_changed(struct pilot_store *st, const char *name, struct pilot_agent_info *before,
			 struct pilot_agent_info *out)
{
	pilot_agent_info_clear(before);
	int r = one_agent(st, name, false, out);
	if (r < 0) {
		db_rollback(st);
		return r;
	}
	if ((r = db_commit(st)) < 0) {
		if (out)
			pilot_agent_info_clear(out);
		return r;
	}
	__atomic_add_fetch(&st->queue_gen, 1, __ATOMIC_RELAXED);
	return 0;
}

int pilot_store_agent_control(struct pilot_store *st, const char *name, const char *action, bool now,
			      const char *actor, struct pilot_agent_info *out)
{
	static const char set[] = "UPDATE agents SET control = ?2, control_ms = ?3, control_by = ?4 WHERE name = ?1";
	if (!valid_agent_name(name))
		return pilot_error_set(PILOT_EINVALID, "invalid agent name '%s'", name ? name : "");
	int act = -1;
	for (int i = 0; i < NACTIONS; i++)
		if (action && !strcmp(action, action_names[i]))
			act = i;
	if (act < 0) {
		const char *s = action ? pilot_suggest(action, action_names, NACTIONS) : NULL;
		return pilot_error_set(PILOT_EINVALID, "unknown agent action '%s'%s%s%s (expected drain, resume, sleep, "
					   "wake, shutdown or forget)", action ? action : "", s ? " (did you mean '" : "",
				       s ? s : "", s ? "'?)" : "");
	}
	if (now && act != ACT_DRAIN && act != ACT_SLEEP && act != ACT_SHUTDOWN)
		return pilot_error_set(PILOT_EINVALID, "'now' is for drain, sleep and shutdown, not %s", action);
	if (!actor)
		actor = st->actor;
	STORE_LOCKED(st);
	struct pilot_agent_info a = { 0 };
	int r = db_begin(st, true);
	if (r < 0)
		return r;
	if ((r = one_agent(st, name, false, &a)) < 0)
		goto fail;
	if (act == ACT_FORGET) {
		if ((r = forget_agent(st, &a)) < 0)
			goto fail;
		pilot_agent_info_clear(&a);
		if ((r = db_commit(st)) < 0)
			return r;
		if (out)
			memset(out, 0, sizeof(*out));
		return 0;
	}
	if (act == ACT_SHUTDOWN && a.state == PILOT_AGENT_OFFLINE) {
		r = pilot_error_set(PILOT_ECONFLICT, "agent '%s' is offline already", name);
		goto fail;
	}
	enum pilot_agent_control c = act == ACT_DRAIN ? PILOT_CONTROL_DRAIN
				     : act == ACT_SLEEP ? PILOT_CONTROL_SLEEP
				     : act == ACT_SHUTDOWN ? PILOT_CONTROL_SHUTDOWN
							 : PILOT_CONTROL_NONE;
	/* Asking again for what is in force keeps who asked first and when. */
	if (c != a.control) {
		sqlite3_stmt *s = db_stmt(st, set);
		if (!s) {
			r = pilot_error_code();
			goto fail;
		}
		bind_text(s, 1, name);
		bind_text(s, 2, c ? pilot_agent_control_name(c) : NULL);
		bind_int_or_null(s, 3, c ? store_now() : 0);
		bind_text(s, 4, c ? actor : NULL);
		if ((r = db_done(st, s, "cannot update agent")) < 0)
			goto fail;
	}
	if (now && (r = requeue_attempts(st, name, action, actor)) < 0)
		goto fail;
	return agent_changed(st, name, &a, out);
fail:
	db_rollback(st);
	pilot_agent_info_clear(&a);
	return r;
}

/* ---- sleep schedules ---- */

/* Puts an agent to sleep or wakes it as its schedule says at `now`, and notes the
 * schedule's next change. Only changes are acted on: an agent woken by hand inside a
 * window stays awake until the next one, and one put to sleep by hand is not woken by
 * the end of a window. */
static int apply_sleep(struct pilot_store *st, const char *name, const char *windows, const char *zone,
		       enum pilot_agent_control control, const char *control_by, int64_t now, bool *changed)
{
	static const char sleep[] = "UPDATE agents SET control = 'sleep', control_ms = ?2, control_by = 'schedule', "
				    "sleep_next_ms = ?3 WHERE name = ?1";
	static const char wake[] = "UPDATE agents SET control = NULL, control_ms = NULL, control_by = NULL, "
				   "sleep_next_ms = ?3 WHERE name = ?1";
	static const char next[] = "UPDATE agents SET sleep_next_ms = ?3 WHERE name = ?1";
	struct pilot_weekly w;
	_cleanup_tz_ struct pilot_tz *tz = NULL;
	if (pilot_weekly_parse(windows, &w) < 0 || pilot_tz_load(zone, &tz) < 0) {
		/* Stored by pilot_store_agent_schedule, which checked both: the system's
		 * zone files changed under it. Look again in an hour. */
		pilot_log(PILOT_LOG_WARN, "agent '%s': sleep schedule: %s", name, pilot_error_last());
		pilot_error_clear();
		sqlite3_stmt *s = db_stmt(st, next);
		if (!s)
			return pilot_error_code();
		bind_text(s, 1, name);
		bind_int(s, 3, now + 3600 * 1000);
		return db_done(st, s, "cannot update agent");
	}
	int64_t t = now / 1000;
	bool in = pilot_weekly_contains(&w, tz, t);
	int64_t change = pilot_weekly_next_change(&w, tz, t);
	const char *sql = next;
	if (in && control == PILOT_CONTROL_NONE)
		sql = sleep;
	else if (!in && control == PILOT_CONTROL_SLEEP && control_by && !strcmp(control_by, "schedule"))
		sql = wake;
	sqlite3_stmt *s = db_stmt(st, sql);
	if (!s)
		return pilot_error_code();
	bind_text(s, 1, name);
	bind_int(s, 2, now);
	bind_int_or_null(s, 3, change ? change * 1000 : 0);
	*changed = sql != next;
	return db_done(st, s, "cannot update agent");
}

int store_apply_sleep_schedules(struct pilot_store *st, int64_t now, int *changed)
{
	static const char sql[] = "SELECT name, sleep_schedule, sleep_tz, control, control_by FROM agents "
				  "INDEXED BY agents_sleep_next WHERE sleep_next_ms IS NOT NULL AND sleep_next_ms <= ?1 "
				  "LIMIT 100";
	struct due {
		char *name, *windows, *tz, *control_by;
		enum pilot_agent_control control;
	} due[100];
	size_t n = 0;
	sqlite3_stmt *s = db_stmt(st, sql);
	if (!s)
		return pilot_error_code();
	bind_int(s, 1, now);
	int rc;
	while (n < 100 && (rc = sqlite3_step(s)) == SQLITE_ROW) {
		struct due *d = &due[n++];
		d->name = col_dup(s, 0);
		d->windows = col_dup(s, 1);
		d->tz = col_dup(s, 2);
		if (pilot_agent_control_from_name(col_text(s, 3), &d->control) < 0) {
			pilot_error_clear();
			d->control = PILOT_CONTROL_NONE;
		}
		d->control_by = col_dup(s, 4);
	}
	sqlite3_reset(s);
	int r = 0;
	for (size_t i = 0; i < n; i++) {
		bool ch = false;
		if (r == 0 && (r = apply_sleep(st, due[i].name, due[i].windows ? due[i].windows : "",
					       due[i].tz ? due[i].tz : "UTC", due[i].control, due[i].control_by, now, &ch)) == 0 &&
		    ch)
			(*changed)++;
		free(due[i].name);
		free(due[i].windows);
		free(due[i].tz);
		free(due[i].control_by);
	}
	if (r == 0 && *changed)
		__atomic_add_fetch(&st->queue_gen, 1, __ATOMIC_RELAXED);
	return r;
}

int pilot_store_agent_schedule(struct pilot_store *st, const char *name, const char *windows, const char *zone,
			       struct pilot_agent_info *out)
{
	static const char set[] = "UPDATE agents SET sleep_schedule = ?2, sleep_tz = ?3, sleep_next_ms = NULL WHERE name = ?1";
	static const char unsleep[] = "UPDATE agents SET control = NULL, control_ms = NULL, control_by = NULL "
				      "WHERE name = ?1 AND control = 'sleep' AND control_by = 'schedule'";
	if (!valid_agent_name(name))
		return pilot_error_set(PILOT_EINVALID, "invalid agent name '%s'", name ? name : "");
	char canonical[512] = "";
	if (windows && *windows) {
		struct pilot_weekly w;
		_cleanup_tz_ struct pilot_tz *tz = NULL;
		if (pilot_weekly_parse(windows, &w) < 0 || pilot_tz_load(zone && *zone ? zone : "UTC", &tz) < 0)
			return pilot_error_code();
		pilot_weekly_format(&w, canonical, sizeof(canonical));
	} else if (zone && *zone) {
		return pilot_error_set(PILOT_EINVALID, "a time zone without a sleep schedule");
	}
	STORE_LOCKED(st);
	struct pilot_agent_info a = { 0 };
	int r = db_begin(st, true);
	if (r < 0)
		return r;
	if ((r = one_agent(st, name, false, &a)) < 0)
		goto fail;
	sqlite3_stmt *s = db_stmt(st, *canonical ? set : unsleep);
	if (!s) {
		r = pilot_error_code();
		goto fail;
	}
	bind_text(s, 1, name);
	if (*canonical) {
		bind_text(s, 2, canonical);
		bind_text(s, 3, zone && *zone ? zone : "UTC");
	}
	if ((r = db_done(st, s, "cannot update agent")) < 0)
		goto fail;
	if (!*canonical) {
		/* No schedule any more: one that put it to sleep lets it go. */
		static const char clear[] = "UPDATE agents SET sleep_schedule = NULL, sleep_tz = NULL, sleep_next_ms = NULL "
					    "WHERE name = ?1";
		if (!(s = db_stmt(st, clear))) {
			r = pilot_error_code();
			goto fail;
		}
		bind_text(s, 1, name);
		if ((r = db_done(st, s, "cannot update agent")) < 0)
			goto fail;
	} else {
		bool changed;
		if ((r = apply_sleep(st, name, canonical, zone && *zone ? zone : "UTC", a.control, a.control_by,
				     store_now(), &changed)) < 0)
			goto fail;
	}
	return agent_changed(st, name, &a, out);
fail:
	db_rollback(st);
	pilot_agent_info_clear(&a);
	return r;
}

/* ---- bundles ---- */

int pilot_store_bundle_has(struct pilot_store *st, const char *sha256)
{
	return pilot_blob_has(st->blobs, sha256);
}

int pilot_store_bundle_put(struct pilot_store *st, const char *sha256, int fd)
{
	int r = pilot_blob_put_fd(st->blobs, fd, sha256, NULL, NULL);
	return r < 0 ? pilot_error_prefix(r, "cannot store bundle") : 0;
}

int pilot_store_bundle_get(struct pilot_store *st, const char *sha256, int *fd)
{
	int r = pilot_blob_open_read(st->blobs, sha256, fd, NULL);
	if (r == PILOT_ENOTFOUND)
		return pilot_error_set(PILOT_ENOTFOUND, "bundle '%s' not found", sha256);
	return r;
}

/* ---- tokens ---- */

#define TOKEN_COLS "id, name, sha256, scopes, created_ms, expires_ms, revoked_ms, last_used_ms, agent"

static void load_token(sqlite3_stmt *s, struct pilot_token_record *t)
{
	memset(t, 0, sizeof(*t));
	col_copy_id(s, 0, t->id);
	t->name = col_dup(s, 1);
	snprintf(t->sha256, sizeof(t->sha256), "%s", col_text(s, 2));
	t->scopes = col_dup(s, 3);
	t->created_ms = col_int(s, 4);
	t->expires_ms = col_int(s, 5);
	t->revoked_ms = col_int(s, 6);
	t->last_used_ms = col_int(s, 7);
	t->agent = col_dup(s, 8);
}

static int token_by(struct pilot_store *st, const char *sql, const char *key, struct pilot_token_record *out)
{
	sqlite3_stmt *s = db_stmt(st, sql);
	if (!s)
		return pilot_error_code();
	bind_text(s, 1, key);
	int rc = sqlite3_step(s);
	if (rc == SQLITE_ROW) {
		load_token(s, out);
		sqlite3_reset(s);
		return 1;
	}
	sqlite3_reset(s);
	return rc == SQLITE_DONE ? 0 : db_error(st, "cannot read tokens");
}

int pilot_store_token_create(struct pilot_store *st, const char *name, const char *sha256, const char *scopes,
			     int64_t expires_ms, const char *agent, bool replace, struct pilot_token_record *out)
{
	static const char live[] = "SELECT " TOKEN_COLS " FROM tokens WHERE name = ?1 AND revoked_ms IS NULL";
	static const char revoke[] = "UPDATE tokens SET revoked_ms = ?2 WHERE name = ?1 AND revoked_ms IS NULL";
	static const char ins[] = "INSERT INTO tokens(id, name, sha256, scopes, created_ms, expires_ms, agent) "
				  "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)";
	static const char get[] = "SELECT " TOKEN_COLS " FROM tokens WHERE id = ?1";
	if (!name || !*name || strlen(name) > 128)
		return pilot_error_set(PILOT_EINVALID, "invalid token name '%s'", name ? name : "");
	if (!sha256 || !pilot_sha256_valid(sha256))
		return pilot_error_set(PILOT_EINVALID, "invalid token hash");
	STORE_LOCKED(st);
	struct pilot_token_record t;
	int r = db_begin(st, true);
	if (r < 0)
		return r;
	if (replace) {
		sqlite3_stmt *s = db_stmt(st, revoke);
		if (!s) {
			r = pilot_error_code();
			goto fail;
		}
		bind_text(s, 1, name);
		bind_int(s, 2, store_now());
		if ((r = db_done(st, s, "cannot revoke token")) < 0)
			goto fail;
	} else if ((r = token_by(st, live, name, &t)) != 0) {
		if (r > 0) {
			pilot_token_record_clear(&t);
			r = pilot_error_set(PILOT_ECONFLICT, "a token named '%s' exists already", name);
		}
		goto fail;
	}
	char id[PILOT_ID_SIZE];
	pilot_id_new('t', id);
	sqlite3_stmt *s = db_stmt(st, ins);
	if (!s) {
		r = pilot_error_code();
		goto fail;
	}
	bind_text(s, 1, id);
	bind_text(s, 2, name);
	bind_text(s, 3, sha256);
	bind_text(s, 4, scopes ? scopes : "");
	bind_int(s, 5, store_now());
	bind_int_or_null(s, 6, expires_ms);
	bind_text(s, 7, agent);
	int rc = sqlite3_step(s);
	sqlite3_reset(s);
	if (rc == SQLITE_CONSTRAINT_UNIQUE) {
		r = pilot_error_set(PILOT_ECONFLICT, "a token with this secret exists already");
		goto fail;
	}
	if (rc != SQLITE_DONE) {
		r = db_error(st, "cannot create token");
		goto fail;
	}
	if ((r = token_by(st, get, id, &t)) <= 0) {
		if (r == 0)
			r = pilot_error_set(PILOT_EIO, "token '%s' vanished", id);
		goto fail;
	}
	if ((r = db_commit(st)) < 0) {
		pilot_token_record_clear(&t);
		return r;
	}
	if (out)
		*out = t;
	else
		pilot_token_record_clear(&t);
	return 0;
fail:
	db_rollback(st);
	return r;
}

int pilot_store_token_list(struct pilot_store *st, struct pilot_token_list *out)
{
	static const char sql[] = "SELECT " TOKEN_COLS " FROM tokens ORDER BY id";
	STORE_LOCKED(st);
	sqlite3_stmt *s = db_stmt(st, sql);
	if (!s)
		return pilot_error_code();
	struct pilot_token_list l = { 0 };
	int rc;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		l.items = pilot_xrealloc(l.items, (l.n + 1) * sizeof(*l.items));
		load_token(s, &l.items[l.n++]);
	}
	sqlite3_reset(s);
	if (rc != SQLITE_DONE) {
		pilot_token_list_clear(&l);
		return db_error(st, "cannot list tokens");
	}
	*out = l;
	return 0;
}

int pilot_store_token_revoke(struct pilot_store *st, const char *id_or_name)
{
	static const char sql[] = "UPDATE tokens SET revoked_ms = COALESCE(revoked_ms, ?2) WHERE id = ?1 OR name = ?1";
	STORE_LOCKED(st);
	sqlite3_stmt *s = db_stmt(st, sql);
	if (!s)
		return pilot_error_code();
	bind_text(s, 1, id_or_name);
	bind_int(s, 2, store_now());
	int r = db_done(st, s, "cannot revoke token");
	if (r < 0)
		return r;
	if (sqlite3_changes(st->db) == 0)
		return pilot_error_set(PILOT_ENOTFOUND, "token '%s' not found", id_or_name ? id_or_name : "");
	return 0;
}

int pilot_store_token_lookup(struct pilot_store *st, const char *sha256, struct pilot_token_record *out)
{
	static const char sql[] = "SELECT " TOKEN_COLS " FROM tokens WHERE sha256 = ?1";
	static const char used[] = "UPDATE tokens SET last_used_ms = ?2 WHERE id = ?1";
	STORE_LOCKED(st);
	struct pilot_token_record t;
	int r = token_by(st, sql, sha256, &t);
	if (r < 0)
		return r;
	int64_t now = store_now();
	if (r == 0 || t.revoked_ms || (t.expires_ms && t.expires_ms <= now)) {
		if (r > 0)
			pilot_token_record_clear(&t);
		return pilot_error_set(PILOT_EAUTH, "invalid, expired or revoked token");
	}
	/* Recording every use would make each request a write: once a minute is enough
	 * to tell a live token from a forgotten one. */
	if (now - t.last_used_ms > 60000) {
		sqlite3_stmt *s = db_stmt(st, used);
		if (s) {
			bind_text(s, 1, t.id);
			bind_int(s, 2, now);
			if (db_done(st, s, "cannot update token") == 0)
				t.last_used_ms = now;
		}
	}
	if (out)
		*out = t;
	else
		pilot_token_record_clear(&t);
	return 0;
}
