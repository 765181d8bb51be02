/* What users ask of runs: submit (checked whole, with idempotency keys), cancel and
 * retry. */
#include <string.h>

#include "internal.h"

/* ---- submit ---- */

bool store_name_valid(const char *n)
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

int store_check_json(const char *what, const char *text, bool object)
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

int store_validate_submit(struct pilot_store *st, const struct pilot_submit_request *req)
{
	int r;
	if (!store_name_valid(req->name))
		return pilot_error_set(PILOT_EINVALID, "invalid run name '%s': expected [a-z0-9][a-z0-9._-]*",
				       req->name ? req->name : "");
	if (!req->spec_json)
		return pilot_error_set(PILOT_EINVALID, "invalid submit: the spec is missing");
	if ((r = store_check_json("spec", req->spec_json, false)) < 0 ||
	    (r = store_check_json("params", req->params_json, true)) < 0 || (r = store_check_json("env", req->env_json, true)) < 0)
		return r;
	if (req->retry.max_attempts < 0 || req->retry.max_attempts > 1000 ||
	    (req->retry.backoff_ms < 0 && req->retry.backoff_ms != PILOT_RETRY_AT_ONCE) ||
	    req->retry.max_backoff_ms < 0 || req->timeout_ms < 0 || req->not_before_ms < 0 ||
	    req->start_timeout_ms < 0)
		return pilot_error_set(PILOT_EINVALID, "invalid submit: negative or out-of-range retry/timeout values");
	if (req->concurrency_group &&
	    (!store_name_valid(req->concurrency_group) || req->concurrency_max < 1 || req->concurrency_max > 10000))
		return pilot_error_set(PILOT_EINVALID,
				       "invalid concurrency group '%s' (max %d): expected a name [a-z0-9][a-z0-9._-]* and "
				       "a max from 1 to 10000",
				       req->concurrency_group, req->concurrency_max);
	if (req->nafter > 1000)
		return pilot_error_set(PILOT_EINVALID, "invalid submit: a run may wait for at most 1000 others");
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

/* The secret values are never hashed into the database; not_before is left out
 * because a relative delay gives a different time on a replay. */
void store_scrub_request(json_t *j, const struct pilot_submit_request *req)
{
	json_object_del(j, "idempotency_key");
	json_object_del(j, "submitter");
	json_object_del(j, "not_before_ms");
	json_t *names = json_array();
	for (size_t i = 0; i < req->secrets.n; i++)
		json_array_append_new(names, json_string(req->secrets.items[i].key));
	json_object_set_new(j, "secrets", names);
}

void store_hash_json(json_t *j, char out[65])
{
	char *s = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
	pilot_sha256_hex(s, strlen(s), out);
	free(s);
	json_decref(j);
}

static void payload_hash(const struct pilot_submit_request *req, char out[65])
{
	json_t *j = pilot_submit_request_to_json(req);
	store_scrub_request(j, req);
	store_hash_json(j, out);
}

int store_idempotency_lookup(struct pilot_store *st, const char *key, const char *hash, char id[PILOT_ID_SIZE])
{
	static const char sql[] = "SELECT run_id, payload_sha256 FROM idempotency WHERE key = ?1";
	sqlite3_stmt *s = db_stmt(st, sql);
	if (!s)
		return pilot_error_code();
	bind_text(s, 1, key);
	int rc = sqlite3_step(s);
	if (rc == SQLITE_DONE) {
		sqlite3_reset(s);
		return 0;
	}
	if (rc != SQLITE_ROW)
		return db_error(st, "cannot look up idempotency key");
	col_copy_id(s, 0, id);
	bool same = !strcmp(col_text(s, 1), hash);
	sqlite3_reset(s);
	if (!same)
		return pilot_error_set(PILOT_ECONFLICT,
				       "idempotency key '%s' was already used for %s '%s' with a different request", key,
				       id[0] == 'x' ? "array" : id[0] == 'p' ? "pipeline" : "run", id);
	return 1;
}

int store_idempotency_record(struct pilot_store *st, const char *key, const char *hash, const char *id)
{
	static const char sql[] = "INSERT INTO idempotency(key, run_id, payload_sha256, created_ms) VALUES (?1, ?2, ?3, ?4)";
	sqlite3_stmt *s = db_stmt(st, sql);
	if (!s)
		return pilot_error_code();
	bind_text(s, 1, key);
	bind_text(s, 2, id);
	bind_text(s, 3, hash);
	bind_int(s, 4, store_now());
	return db_done(st, s, "cannot record idempotency key");
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

int store_resolve_needs(struct pilot_store *st, const struct pilot_submit_request *req, struct store_needs *out)
{
	static const char sql[] = "SELECT state FROM runs WHERE id = ?1";
	*out = (struct store_needs){ .doomed = -1 };
	if (!req->nafter)
		return 0;
	out->items = pilot_xcalloc(req->nafter, sizeof(*out->items));
	for (size_t i = 0; i < req->nafter; i++) {
		struct pilot_run_need *need = &out->items[out->n];
		int r = resolve_run(st, req->after[i].run, need->run);
		if (r < 0)
			return pilot_error_prefix(r, "cannot wait for run '%s'", req->after[i].run);
		need->states = req->after[i].states ? req->after[i].states : PILOT_RUN_STATE_BIT(PILOT_RUN_SUCCEEDED);
		if (need->states & ~PILOT_RUN_TERMINAL_BITS)
			return pilot_error_set(PILOT_EINVALID,
					       "cannot wait for run '%s': the states a run may end in are succeeded, "
					       "failed, canceled and skipped",
					       req->after[i].run);
		for (size_t k = 0; k < out->n; k++)
			if (!strcmp(out->items[k].run, need->run))
				return pilot_error_set(PILOT_EINVALID, "run '%s' is named twice among those to wait for",
						       need->run);
		sqlite3_stmt *s = db_stmt(st, sql);
		if (!s)
			return pilot_error_code();
		bind_text(s, 1, need->run);
		if (sqlite3_step(s) != SQLITE_ROW) {
			sqlite3_reset(s);
			return db_error(st, "cannot read run");
		}
		enum pilot_run_state state;
		pilot_run_state_from_name(col_text(s, 0), &state);
		sqlite3_reset(s);
		if (!pilot_run_state_terminal(state)) {
			out->left++;
		} else if (!(need->states & PILOT_RUN_STATE_BIT(state)) && out->doomed < 0) {
			out->doomed = (int)out->n;
			out->doomed_end = state;
		}
		out->n++;
	}
	return 0;
}

/* Records what the new run id waits for; a need that already ended otherwise than
 * asked fails it at once. */
static int insert_needs(struct pilot_store *st, const char *id, const struct store_needs *needs, bool in_pipeline,
			const char *actor)
{
	static const char sql[] = "INSERT INTO run_needs(run_id, need_id, states) VALUES (?1, ?2, ?3)";
	int r = 0;
	for (size_t i = 0; i < needs->n && r == 0; i++) {
		sqlite3_stmt *s = db_stmt(st, sql);
		if (!s)
			return pilot_error_code();
		bind_text(s, 1, id);
		bind_text(s, 2, needs->items[i].run);
		bind_int(s, 3, needs->items[i].states);
		r = db_done(st, s, "cannot record what the run waits for");
	}
	if (r < 0 || needs->doomed < 0)
		return r;
	const struct pilot_run_need *d = &needs->items[needs->doomed];
	return store_need_failed(st, id, in_pipeline, d->run, needs->doomed_end, d->states, actor);
}

int store_place_of(const struct pilot_submit_request *req, struct store_place *out)
{
	*out = (struct store_place){ 0 };
	if (!req->concurrency_group)
		return 0;
	out->nlimits = 1;
	return store_limit_set(&out->limits[0], "group", req->concurrency_group, req->concurrency_max);
}

/* A run of req's name and params that is queued, waiting or running: its id in dup
 * (left "" when there is none). */
static int find_duplicate(struct pilot_store *st, const struct pilot_submit_request *req, char dup[PILOT_ID_SIZE])
{
	static const char sql[] = "SELECT id FROM runs INDEXED BY runs_name_id WHERE name = ?1 "
				  "AND state IN ('queued', 'waiting', 'running', 'canceling') "
				  "AND coalesce(params_json, '') = coalesce(?2, '') ORDER BY id DESC LIMIT 1";
	sqlite3_stmt *s = db_stmt(st, sql);
	if (!s)
		return pilot_error_code();
	bind_text(s, 1, req->name);
	bind_text(s, 2, req->params_json);
	int rc = sqlite3_step(s);
	if (rc == SQLITE_ROW)
		col_copy_id(s, 0, dup);
	sqlite3_reset(s);
	return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : db_error(st, "cannot look for a duplicate run");
}

int store_insert_run(struct pilot_store *st, const struct pilot_submit_request *req, const char *submitter,
		     const char *retry_of, const char *secrets_text, const struct store_needs *needs,
		     const struct store_place *place, char id[PILOT_ID_SIZE])
{
	static const char sql[] =
		"INSERT INTO runs(id, name, spec_json, bundle_sha256, params_json, env_json, requires_json, "
		"secrets_json, priority, state, created_ms, not_before_ms, updated_ms, retry_max, retry_on, "
		"backoff_ms, max_backoff_ms, timeout_ms, idempotency_key, submitter, retry_of, held, needs_left, "
		"concurrency_group, concurrency_max, slot_wait, array_id, array_index, start_timeout_ms, "
		"start_deadline_ms) "
		"VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?11, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, "
		"?22, ?23, ?24, ?25, ?26, ?27, ?28, ?29)";
	int64_t now = store_now();
	bool waits = needs && (needs->left > 0 || needs->doomed >= 0);
	enum pilot_run_state state = req->not_before_ms > now || waits ? PILOT_RUN_WAITING : PILOT_RUN_QUEUED;
	_cleanup_free_ char *req_text = kvs_to_text(&req->requires);
	_cleanup_free_ char *sec_text = secrets_text ? pilot_xstrdup(secrets_text) : kvs_to_text(&req->secrets);
	int r = 0;
	char dup[PILOT_ID_SIZE] = "";
	if (req->skip_duplicate && (r = find_duplicate(st, req, dup)) < 0)
		return r;
	bool slot_wait = false;
	if (state == PILOT_RUN_QUEUED && place->nlimits) {
		if ((r = store_limits_room(st, place->limits, place->nlimits)) < 0)
			return r;
		slot_wait = r == 0;
		if (slot_wait)
			state = PILOT_RUN_WAITING;
	}
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
		bind_int(s, 22, needs ? needs->left : 0);
		bind_text(s, 23, req->concurrency_group);
		bind_int_or_null(s, 24, req->concurrency_group ? req->concurrency_max : 0);
		bind_int(s, 25, slot_wait);
		bind_text(s, 26, place->array_id);
		if (place->array_id)
			bind_int(s, 27, place->array_index);
		bind_int_or_null(s, 28, req->start_timeout_ms);
		bind_int_or_null(s, 29, state == PILOT_RUN_QUEUED && req->start_timeout_ms ? now + req->start_timeout_ms : 0);
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
	if ((r = store_count_add(st, state, 1)) < 0 ||
	    (state == PILOT_RUN_QUEUED && (r = store_queued_set_add(st, id, 1)) < 0) ||
	    (r = store_add_slots(st, id, place->limits, place->nlimits, state == PILOT_RUN_QUEUED)) < 0)
		return r;
	_cleanup_free_ char *full = NULL;
	if (slot_wait) {
		struct store_limit l = { "", 0 };
		for (size_t i = 0; i < place->nlimits && !l.key[0]; i++) {
			int64_t one = store_limits_room(st, &place->limits[i], 1);
			if (one < 0)
				return (int)one;
			if (one == 0)
				l = place->limits[i];
		}
		full = store_limit_full_text(l.key, l.max);
	}
	json_t *data = json_pack("{s:s}", "name", req->name);
	if (retry_of)
		json_object_set_new(data, "retry_of", json_string(retry_of));
	_cleanup_free_ char *msg = retry_of ? pilot_xasprintf("submitted by %s (retry of %s)", submitter, retry_of)
				   : waits  ? pilot_xasprintf("submitted by %s, waiting for %zu run%s", submitter, needs->n,
							     needs->n == 1 ? "" : "s")
				   : slot_wait ? pilot_xasprintf("submitted by %s, waiting for a slot: %s", submitter, full)
					    : pilot_xasprintf("submitted by %s", submitter);
	if ((r = store_add_event(st, id, 0, "submitted", submitter, msg, data, state)) < 0)
		return r;
	if (dup[0]) {
		_cleanup_free_ char *why = pilot_xasprintf("skipped: run %s of the same name and params is going", dup);
		return store_transition(st, id, state, PILOT_RUN_SKIPPED, PILOT_REASON_DUPLICATE, "skipped", submitter, 0, why,
					json_pack("{s:s}", "run_id", dup));
	}
	return needs ? insert_needs(st, id, needs, place->array_id && place->array_id[0] == 'p', submitter) : 0;
}

int pilot_store_submit(struct pilot_store *st, const struct pilot_submit_request *req, struct pilot_run *out)
{
	STORE_LOCKED(st);
	int r = store_validate_submit(st, req);
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
	if (req->idempotency_key && (replay = r = store_idempotency_lookup(st, req->idempotency_key, hash, id)) < 0)
		goto fail;
	if (!replay) {
		struct store_needs needs;
		struct store_place place;
		r = store_resolve_needs(st, req, &needs);
		if (r == 0)
			r = store_place_of(req, &place);
		if (r == 0)
			r = store_insert_run(st, req, submitter, NULL, NULL, &needs, &place, id);
		free(needs.items);
		if (r < 0 || (req->idempotency_key && (r = store_idempotency_record(st, req->idempotency_key, hash, id)) < 0))
			goto fail;
	}
	return store_commit_run(st, id, out, replay);
fail:
	db_rollback(st);
	return r;
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

int store_cancel_locked(struct pilot_store *st, const char *id, const char *actor, int64_t grace_ms, int *result)
{
	char note[48];
	struct run_row row;
	_cleanup_free_ char *msg = NULL;
	int r = store_run_row(st, id, &row);
	if (r < 0)
		return r;
	grace_note(grace_ms, note, sizeof(note));
	*result = 0;
	switch (row.state) {
	case PILOT_RUN_QUEUED:
	case PILOT_RUN_WAITING:
		/* Nothing runs yet: a grace has nothing to apply to. */
		msg = pilot_xasprintf("canceled by %s", actor);
		return store_transition(st, id, row.state, PILOT_RUN_CANCELED, PILOT_REASON_CANCELED, "canceled", actor, 0,
					msg, NULL);
	case PILOT_RUN_RUNNING:
		msg = pilot_xasprintf("cancel requested by %s%s", actor, note);
		if ((r = set_cancel(st, id, grace_ms)) < 0)
			return r;
		return store_transition(st, id, row.state, PILOT_RUN_CANCELING, PILOT_REASON_NONE, "cancel_requested", actor,
					row.attempt_count, msg,
					grace_ms >= 0 ? json_pack("{s:I}", "grace_ms", (json_int_t)grace_ms) : NULL);
	case PILOT_RUN_CANCELING:
		/* A second cancel may only hurry the first one ("kill it now"): a grace
		 * shorter than the one asked before (any grace after a cancel that left it to
		 * the agent) is recorded and reaches the agent with its next heartbeat, which
		 * never moves the SIGKILL later. Anything else changes nothing. */
		if (grace_ms < 0 || (row.cancel_grace_ms >= 0 && grace_ms >= row.cancel_grace_ms)) {
			*result = 1;
			return 0;
		}
		msg = pilot_xasprintf("cancel hurried by %s%s", actor, note);
		if ((r = set_cancel(st, id, grace_ms)) < 0)
			return r;
		return store_add_event(st, id, row.attempt_count, "cancel_hurried", actor, msg,
				       json_pack("{s:I}", "grace_ms", (json_int_t)grace_ms), PILOT_RUN_CANCELING);
	default:
		/* Finished: nothing to do, and the caller is told. */
		*result = 1;
		return 0;
	}
}

int store_cancel_grace(int64_t *grace_ms, const char *what)
{
	if (*grace_ms < 0)
		*grace_ms = PILOT_CANCEL_GRACE_AGENT;
	if (*grace_ms > PILOT_CANCEL_GRACE_MAX_MS)
		return pilot_error_set(PILOT_EINVALID, "cannot cancel %s: a grace period of %lld ms is longer than a day", what,
				       (long long)*grace_ms);
	return 0;
}

int pilot_store_cancel(struct pilot_store *st, const char *run, const char *actor, int64_t grace_ms,
		       struct pilot_run *out)
{
	STORE_LOCKED(st);
	char id[PILOT_ID_SIZE];
	int result = 0;
	_cleanup_free_ char *what = pilot_xasprintf("run '%s'", run);
	int r = store_cancel_grace(&grace_ms, what);
	if (r < 0 || (r = db_begin(st, true)) < 0)
		return r;
	if ((r = resolve_run(st, run, id)) < 0 ||
	    (r = store_cancel_locked(st, id, actor && *actor ? actor : st->actor, grace_ms, &result)) < 0) {
		db_rollback(st);
		return r;
	}
	return store_commit_run(st, id, out, result);
}

int store_retry_locked(struct pilot_store *st, const char *id, const char *actor, const struct store_needs *needs,
		       char nid[PILOT_ID_SIZE])
{
	struct pilot_run old = { 0 };
	_cleanup_free_ char *secrets = NULL, *msg = NULL;
	int r = store_get_run_locked(st, id, false, true, &old);
	if (r < 0)
		return r;
	if (!pilot_run_state_terminal(old.state)) {
		r = pilot_error_set(PILOT_ECONFLICT, "run '%s' is %s: only a finished run can be retried", id,
				    pilot_run_state_name(old.state));
		pilot_run_clear(&old);
		return r;
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
		.start_timeout_ms = old.start_timeout_ms,
		.concurrency_group = old.concurrency_group,
		.concurrency_max = old.concurrency_max,
	};
	/* The old run holds the values in force; its 0 is "at once", not "the default". */
	if (!req.retry.backoff_ms)
		req.retry.backoff_ms = PILOT_RETRY_AT_ONCE;
	secrets = kvs_to_text(&old.secrets);
	/* The retry takes the old run's place: its limits and its array element. */
	struct store_place place = { .array_id = old.array_id[0] ? old.array_id : NULL, .array_index = old.array_index };
	if ((r = store_run_limits(st, id, place.limits, STORE_MAX_LIMITS, &place.nlimits)) == 0 &&
	    (r = store_insert_run(st, &req, actor, id, secrets, needs, &place, nid)) == 0) {
		msg = pilot_xasprintf("retried as %s by %s", nid, actor);
		r = store_add_event(st, id, 0, "retried", actor, msg, json_pack("{s:s}", "run_id", nid), old.state);
	}
	pilot_run_clear(&old);
	return r;
}

int pilot_store_retry(struct pilot_store *st, const char *run, const char *actor, struct pilot_run *out)
{
	STORE_LOCKED(st);
	char id[PILOT_ID_SIZE], nid[PILOT_ID_SIZE];
	int r = db_begin(st, true);
	if (r < 0)
		return r;
	if ((r = resolve_run(st, run, id)) < 0 ||
	    (r = store_retry_locked(st, id, actor && *actor ? actor : st->actor, NULL, nid)) < 0) {
		db_rollback(st);
		return r;
	}
	return store_commit_run(st, nid, out, 0);
}
