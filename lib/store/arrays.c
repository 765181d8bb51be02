/* Arrays (submit --array/--matrix) and pipelines (jobs: in pilot.yaml): one run per
 * element or job in one transaction, grouped under the group's id (in the arrays
 * table; 'x' for an array, 'p' for a pipeline, whose runs wait for one another through
 * run_needs); the array's throttle is a limit of slots.c. */
#include <string.h>

#include "internal.h"

static int cmp_int64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
	return x < y ? -1 : x > y;
}

static const char *group_what(const char *id)
{
	return id[0] == 'p' ? "pipeline" : "array";
}

static int validate_array(struct pilot_store *st, const struct pilot_array_request *req)
{
	if (!req->nelements || req->nelements > PILOT_ARRAY_MAX_ELEMENTS)
		return pilot_error_set(PILOT_EINVALID, "invalid array: it needs 1 to %d elements, not %zu",
				       PILOT_ARRAY_MAX_ELEMENTS, req->nelements);
	if (req->max_failures < 0 || req->max_failures > PILOT_ARRAY_MAX_ELEMENTS)
		return pilot_error_set(PILOT_EINVALID, "invalid array: a max_failures of %d (expected 0 to %d)",
				       req->max_failures, PILOT_ARRAY_MAX_ELEMENTS);
	if (req->throttle < 0 || req->throttle > PILOT_ARRAY_MAX_ELEMENTS)
		return pilot_error_set(PILOT_EINVALID, "invalid array: a throttle of %d (expected 0 to %d)", req->throttle,
				       PILOT_ARRAY_MAX_ELEMENTS);
	_cleanup_free_ int64_t *idx = pilot_xcalloc(req->nelements, sizeof(*idx));
	for (size_t i = 0; i < req->nelements; i++) {
		const struct pilot_array_element *e = &req->elements[i];
		int r;
		if (e->index < 0 || e->index > INT32_MAX)
			return pilot_error_set(PILOT_EINVALID, "invalid array: index %lld out of range (0 to %d)",
					       (long long)e->index, INT32_MAX);
		if ((r = store_check_json("spec", e->spec_json, false)) < 0 ||
		    (r = store_check_json("params", e->params_json, true)) < 0)
			return pilot_error_prefix(r, "array element %lld", (long long)e->index);
		idx[i] = e->index;
	}
	qsort(idx, req->nelements, sizeof(*idx), cmp_int64);
	for (size_t i = 1; i < req->nelements; i++)
		if (idx[i] == idx[i - 1])
			return pilot_error_set(PILOT_EINVALID, "invalid array: index %lld is given twice", (long long)idx[i]);
	if (req->base.skip_duplicate)
		return pilot_error_set(PILOT_EINVALID, "invalid array: skip_duplicate does not apply to the runs of an "
				       "array (they share a name)");
	return store_validate_submit(st, &req->base);
}

static void array_hash(const struct pilot_array_request *req, char out[65])
{
	json_t *j = pilot_array_request_to_json(req);
	store_scrub_request(json_object_get(j, "run"), &req->base);
	store_hash_json(j, out);
}

static int load_array(struct pilot_store *st, const char *id, struct pilot_array *out)
{
	static const char row[] = "SELECT name, submitter, created_ms, throttle, max_failures FROM arrays WHERE id = ?1";
	static const char runs[] = "SELECT id FROM runs INDEXED BY runs_array WHERE array_id = ?1 "
				   "ORDER BY array_index, id";
	sqlite3_stmt *s = db_stmt(st, row);
	if (!s)
		return pilot_error_code();
	bind_text(s, 1, id);
	int rc = sqlite3_step(s);
	if (rc != SQLITE_ROW) {
		sqlite3_reset(s);
		return rc == SQLITE_DONE ? pilot_error_set(PILOT_ENOTFOUND, "%s '%s' not found", group_what(id), id)
					 : db_error(st, "cannot read array");
	}
	struct pilot_array a = { 0 };
	snprintf(a.id, sizeof(a.id), "%s", id);
	a.name = col_dup(s, 0);
	a.submitter = col_dup(s, 1);
	a.created_ms = col_int(s, 2);
	a.throttle = (int)col_int(s, 3);
	a.max_failures = (int)col_int(s, 4);
	sqlite3_reset(s);
	if (!(s = db_stmt(st, runs))) {
		pilot_array_clear(&a);
		return pilot_error_code();
	}
	bind_text(s, 1, id);
	size_t cap = 0;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		if (a.nruns == cap) {
			cap = cap ? cap * 2 : 64;
			a.runs = pilot_xrealloc(a.runs, cap * sizeof(*a.runs));
		}
		col_copy_id(s, 0, a.runs[a.nruns++]);
	}
	sqlite3_reset(s);
	if (rc != SQLITE_DONE) {
		pilot_array_clear(&a);
		return db_error(st, "cannot read the array's runs");
	}
	*out = a;
	return 0;
}

static int insert_array(struct pilot_store *st, const struct pilot_array_request *req, const char *submitter,
			char aid[PILOT_ID_SIZE])
{
	static const char sql[] =
		"INSERT INTO arrays(id, name, submitter, created_ms, throttle, max_failures) "
		"VALUES (?1, ?2, ?3, ?4, ?5, ?6)";
	struct store_needs needs;
	struct store_place place;
	pilot_id_new('x', aid);
	sqlite3_stmt *s = db_stmt(st, sql);
	if (!s)
		return pilot_error_code();
	bind_text(s, 1, aid);
	bind_text(s, 2, req->base.name);
	bind_text(s, 3, submitter);
	bind_int(s, 4, store_now());
	bind_int(s, 5, req->throttle);
	bind_int(s, 6, req->max_failures);
	int r = db_done(st, s, "cannot insert array");
	if (r < 0 || (r = store_place_of(&req->base, &place)) < 0)
		return r;
	place.array_id = aid;
	if (req->throttle > 0 && (r = store_limit_set(&place.limits[place.nlimits++], "array", aid, req->throttle)) < 0)
		return r;
	/* The runs to wait for are resolved once: each element waits for the same. */
	if ((r = store_resolve_needs(st, &req->base, &needs)) < 0) {
		free(needs.items);
		return r;
	}
	for (size_t i = 0; i < req->nelements && r == 0; i++) {
		const struct pilot_array_element *e = &req->elements[i];
		struct pilot_submit_request one = req->base;
		char rid[PILOT_ID_SIZE];
		if (e->spec_json)
			one.spec_json = e->spec_json;
		if (e->params_json)
			one.params_json = e->params_json;
		place.array_index = e->index;
		r = store_insert_run(st, &one, submitter, NULL, NULL, &needs, &place, rid);
	}
	free(needs.items);
	return r;
}

/* The shared end of a group's submit: at most once per idempotency key (hash: of the
 * payload), insert() the group, read it back (out). 1 for a replay. */
typedef int (*insert_group_fn)(struct pilot_store *st, const void *req, const char *submitter,
			       char id[PILOT_ID_SIZE]);

static int submit_group(struct pilot_store *st, const char *key, const char *hash, const char *submitter,
			insert_group_fn insert, const void *req, struct pilot_array *out)
{
	char id[PILOT_ID_SIZE];
	int replay = 0, r;
	struct pilot_array a = { 0 };
	if ((r = db_begin(st, true)) < 0)
		return r;
	if (key && (replay = r = store_idempotency_lookup(st, key, hash, id)) < 0)
		goto fail;
	if (!replay && ((r = insert(st, req, submitter, id)) < 0 ||
			(key && (r = store_idempotency_record(st, key, hash, id)) < 0)))
		goto fail;
	if ((r = load_array(st, id, &a)) < 0 || (r = db_commit(st)) < 0) {
		pilot_array_clear(&a);
		goto fail;
	}
	if (out)
		*out = a;
	else
		pilot_array_clear(&a);
	return replay;
fail:
	db_rollback(st);
	return r;
}

static int insert_array_req(struct pilot_store *st, const void *req, const char *submitter, char id[PILOT_ID_SIZE])
{
	return insert_array(st, req, submitter, id);
}

int pilot_store_submit_array(struct pilot_store *st, const struct pilot_array_request *req, struct pilot_array *out)
{
	STORE_LOCKED(st);
	int r = validate_array(st, req);
	if (r < 0)
		return r;
	const char *key = req->base.idempotency_key;
	char hash[65] = "";
	if (key)
		array_hash(req, hash);
	const char *submitter = req->base.submitter && *req->base.submitter ? req->base.submitter : st->actor;
	return submit_group(st, key, hash, submitter, insert_array_req, req, out);
}


/* ---- pipelines ---- */

static int job_index(const struct pilot_pipeline_request *req, size_t before, const char *name)
{
	for (size_t i = 0; i < before; i++)
		if (!strcmp(req->jobs[i].run.name, name))
			return (int)i;
	return -1;
}

static int validate_pipeline(struct pilot_store *st, const struct pilot_pipeline_request *req)
{
	int r;
	if (!req->name || !store_name_valid(req->name))
		return pilot_error_set(PILOT_EINVALID, "invalid pipeline name '%s' (expected [a-z0-9][a-z0-9._-]*)",
				       req->name ? req->name : "");
	if (!req->njobs || req->njobs > PILOT_PIPELINE_MAX_JOBS)
		return pilot_error_set(PILOT_EINVALID, "invalid pipeline: it needs 1 to %d jobs, not %zu",
				       PILOT_PIPELINE_MAX_JOBS, req->njobs);
	if (req->max_failures < 0 || (size_t)req->max_failures > req->njobs)
		return pilot_error_set(PILOT_EINVALID, "invalid pipeline: a max_failures of %d (expected 0 to %zu)",
				       req->max_failures, req->njobs);
	for (size_t i = 0; i < req->njobs; i++) {
		const struct pilot_pipeline_job *job = &req->jobs[i];
		const char *name = job->run.name ? job->run.name : "";
		if ((r = store_validate_submit(st, &job->run)) < 0)
			return pilot_error_prefix(r, "job '%s'", name);
		if (job_index(req, i, name) >= 0)
			return pilot_error_set(PILOT_EINVALID, "invalid pipeline: two jobs are named '%s'", name);
		if (job->run.skip_duplicate)
			return pilot_error_set(PILOT_EINVALID, "job '%s': skip_duplicate does not apply to the jobs of a "
					       "pipeline", name);
		for (size_t k = 0; k < job->nneeds; k++) {
			const char *need = job->needs[k] ? job->needs[k] : "";
			if (job_index(req, i, need) < 0)
				return pilot_error_set(PILOT_EINVALID, "job '%s' needs '%s', which is not a job before it (a "
						       "pipeline lists each job after the jobs it needs)", name, need);
			for (size_t m = 0; m < k; m++)
				if (!strcmp(job->needs[m], need))
					return pilot_error_set(PILOT_EINVALID, "job '%s' needs '%s' twice", name, need);
		}
	}
	return 0;
}

static void pipeline_hash(const struct pilot_pipeline_request *req, char out[65])
{
	json_t *j = pilot_pipeline_request_to_json(req);
	json_object_del(j, "idempotency_key");
	json_object_del(j, "submitter");
	json_t *jobs = json_object_get(j, "jobs");
	for (size_t i = 0; i < req->njobs; i++)
		store_scrub_request(json_object_get(json_array_get(jobs, i), "run"), &req->jobs[i].run);
	store_hash_json(j, out);
}

static int insert_pipeline(struct pilot_store *st, const struct pilot_pipeline_request *req, const char *submitter,
			   char pid[PILOT_ID_SIZE])
{
	static const char sql[] = "INSERT INTO arrays(id, name, submitter, created_ms, throttle, max_failures) "
				  "VALUES (?1, ?2, ?3, ?4, 0, ?5)";
	pilot_id_new('p', pid);
	sqlite3_stmt *s = db_stmt(st, sql);
	if (!s)
		return pilot_error_code();
	bind_text(s, 1, pid);
	bind_text(s, 2, req->name);
	bind_text(s, 3, submitter);
	bind_int(s, 4, store_now());
	bind_int(s, 5, req->max_failures);
	int r = db_done(st, s, "cannot insert pipeline");
	char(*ids)[PILOT_ID_SIZE] = pilot_xcalloc(req->njobs, sizeof(*ids));
	for (size_t i = 0; i < req->njobs && r == 0; i++) {
		const struct pilot_pipeline_job *job = &req->jobs[i];
		struct pilot_submit_request one = job->run;
		struct store_needs needs;
		struct store_place place;
		/* What it waits for: the runs outside it names, then the jobs it needs. */
		one.nafter = job->run.nafter + job->nneeds;
		one.after = pilot_xcalloc(one.nafter ? one.nafter : 1, sizeof(*one.after));
		if (job->run.nafter)
			memcpy(one.after, job->run.after, job->run.nafter * sizeof(*one.after));
		for (size_t k = 0; k < job->nneeds; k++) {
			struct pilot_run_need *n = &one.after[job->run.nafter + k];
			memcpy(n->run, ids[job_index(req, i, job->needs[k])], PILOT_ID_SIZE);
			n->states = PILOT_RUN_STATE_BIT(PILOT_RUN_SUCCEEDED);
		}
		one.idempotency_key = NULL;
		if ((r = store_place_of(&one, &place)) == 0 && (r = store_resolve_needs(st, &one, &needs)) == 0) {
			place.array_id = pid;
			place.array_index = (int64_t)i;
			r = store_insert_run(st, &one, submitter, NULL, NULL, &needs, &place, ids[i]);
		}
		if (r < 0)
			r = pilot_error_prefix(r, "job '%s'", job->run.name);
		free(needs.items);
		free(one.after);
	}
	free(ids);
	return r;
}

static int insert_pipeline_req(struct pilot_store *st, const void *req, const char *submitter,
			       char id[PILOT_ID_SIZE])
{
	return insert_pipeline(st, req, submitter, id);
}

int pilot_store_submit_pipeline(struct pilot_store *st, const struct pilot_pipeline_request *req,
				struct pilot_array *out)
{
	STORE_LOCKED(st);
	int r = validate_pipeline(st, req);
	if (r < 0)
		return r;
	const char *key = req->idempotency_key && *req->idempotency_key ? req->idempotency_key : NULL;
	char hash[65] = "";
	if (key)
		pipeline_hash(req, hash);
	const char *submitter = req->submitter && *req->submitter ? req->submitter : st->actor;
	return submit_group(st, key, hash, submitter, insert_pipeline_req, req, out);
}

/* An array ('x...') or a pipeline ('p...'). */
static int resolve_array(struct pilot_store *st, const char *text, char id[PILOT_ID_SIZE])
{
	static const char sql[] = "SELECT id FROM arrays WHERE id >= ?1 AND id < ?2 ORDER BY id LIMIT 6";
	char kind = text && text[0] == 'p' ? 'p' : 'x';
	return store_resolve_id(st, sql, kind, group_what(&kind), text, id);
}

int pilot_store_get_array(struct pilot_store *st, const char *array, struct pilot_array *out)
{
	STORE_LOCKED(st);
	char id[PILOT_ID_SIZE];
	int r = db_begin(st, false);
	if (r < 0)
		return r;
	if ((r = resolve_array(st, array, id)) == 0)
		r = load_array(st, id, out);
	db_rollback(st);
	return r;
}

/* The runs of array id in state (NULL: the latest run of each element that failed,
 * was canceled or skipped), collected before any is changed. */
static int array_runs(struct pilot_store *st, const char *id, const char *state, char (**out)[PILOT_ID_SIZE],
		      size_t *n)
{
	/* Last index first: a pipeline's job is canceled before the jobs it needs, so it
	 * ends canceled rather than skipped for their sake. */
	static const char in_state[] = "SELECT id FROM runs INDEXED BY runs_array WHERE array_id = ?1 AND state = ?2 "
				       "ORDER BY array_index DESC, id DESC";
	static const char to_retry[] =
		"SELECT id FROM runs r INDEXED BY runs_array WHERE array_id = ?1 "
		"AND state IN ('failed', 'canceled', 'skipped') "
		"AND id = (SELECT max(id) FROM runs x INDEXED BY runs_array WHERE x.array_id = ?1 "
		"AND x.array_index = r.array_index) ORDER BY array_index";
	sqlite3_stmt *s = db_stmt(st, state ? in_state : to_retry);
	if (!s)
		return pilot_error_code();
	bind_text(s, 1, id);
	if (state)
		bind_text(s, 2, state);
	int rc;
	size_t cap = 0;
	*out = NULL;
	*n = 0;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		if (*n == cap) {
			cap = cap ? cap * 2 : 64;
			*out = pilot_xrealloc(*out, cap * sizeof(**out));
		}
		col_copy_id(s, 0, (*out)[(*n)++]);
	}
	sqlite3_reset(s);
	return rc == SQLITE_DONE ? 0 : db_error(st, "cannot read the array's runs");
}

/* End a write transaction on array id: read it, commit, hand it over with changed. */
static int commit_array(struct pilot_store *st, const char *id, int changed, struct pilot_array *out)
{
	struct pilot_array a = { 0 };
	int r = load_array(st, id, &a);
	if (r < 0 || (r = db_commit(st)) < 0) {
		db_rollback(st);
		pilot_array_clear(&a);
		return r;
	}
	a.changed = changed;
	if (out)
		*out = a;
	else
		pilot_array_clear(&a);
	return 0;
}

int pilot_store_cancel_array(struct pilot_store *st, const char *array, const char *actor, int64_t grace_ms,
			     struct pilot_array *out)
{
	/* The waiting first: canceling a queued run first would hand its slot on. */
	static const char *const order[] = { "waiting", "queued", "running", "canceling" };
	STORE_LOCKED(st);
	char id[PILOT_ID_SIZE];
	_cleanup_free_ char *what = pilot_xasprintf("array '%s'", array);
	int r = store_cancel_grace(&grace_ms, what), changed = 0;
	if (r < 0 || (r = db_begin(st, true)) < 0)
		return r;
	if (!actor || !*actor)
		actor = st->actor;
	r = resolve_array(st, array, id);
	for (size_t k = 0; k < ARRAY_SIZE(order) && r == 0; k++) {
		char(*runs)[PILOT_ID_SIZE] = NULL;
		size_t n = 0;
		r = array_runs(st, id, order[k], &runs, &n);
		for (size_t i = 0; i < n && r == 0; i++) {
			int unchanged = 0;
			/* One waiting for another of the array may have failed already. */
			if ((r = store_cancel_locked(st, runs[i], actor, grace_ms, &unchanged)) == PILOT_ECONFLICT) {
				pilot_error_clear();
				r = 0;
				unchanged = 1;
			}
			changed += !unchanged;
		}
		free(runs);
	}
	if (r < 0) {
		db_rollback(st);
		return r;
	}
	return commit_array(st, id, changed, out);
}

/* What a new run of pipeline pid's job that run_id ran waits for: what run_id waited
 * for, a job of the pipeline by its latest run. */
static int pipeline_needs(struct pilot_store *st, const char *pid, const char *run_id, struct store_needs *out)
{
	static const char sql[] =
		"SELECT coalesce((SELECT max(x.id) FROM runs x INDEXED BY runs_array WHERE x.array_id = ?2 "
		"AND x.array_index = r.array_index AND r.array_id = ?2), n.need_id), n.states "
		"FROM run_needs n JOIN runs r ON r.id = n.need_id WHERE n.run_id = ?1 ORDER BY n.need_id";
	sqlite3_stmt *s = db_stmt(st, sql);
	if (!s)
		return pilot_error_code();
	bind_text(s, 1, run_id);
	bind_text(s, 2, pid);
	struct pilot_submit_request req = { 0 };
	size_t cap = 0;
	int rc;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		if (req.nafter == cap) {
			cap = cap ? cap * 2 : 8;
			req.after = pilot_xrealloc(req.after, cap * sizeof(*req.after));
		}
		col_copy_id(s, 0, req.after[req.nafter].run);
		req.after[req.nafter++].states = (unsigned)col_int(s, 1);
	}
	sqlite3_reset(s);
	int r = rc == SQLITE_DONE ? store_resolve_needs(st, &req, out) : db_error(st, "cannot read what the run waited for");
	free(req.after);
	return r;
}

int pilot_store_retry_array(struct pilot_store *st, const char *array, const char *actor, struct pilot_array *out)
{
	STORE_LOCKED(st);
	char id[PILOT_ID_SIZE];
	char(*runs)[PILOT_ID_SIZE] = NULL;
	size_t n = 0;
	int r = db_begin(st, true);
	if (r < 0)
		return r;
	if (!actor || !*actor)
		actor = st->actor;
	if ((r = resolve_array(st, array, id)) == 0)
		r = array_runs(st, id, NULL, &runs, &n);
	/* In index order: a pipeline's jobs come after the jobs they need, so a retried
	 * job waits for the new runs of the ones retried before it. */
	for (size_t i = 0; i < n && r == 0; i++) {
		char nid[PILOT_ID_SIZE];
		struct store_needs needs = { .doomed = -1 };
		if (id[0] == 'p' && (r = pipeline_needs(st, id, runs[i], &needs)) < 0) {
			free(needs.items);
			break;
		}
		r = store_retry_locked(st, runs[i], actor, id[0] == 'p' ? &needs : NULL, nid);
		free(needs.items);
	}
	free(runs);
	if (r < 0) {
		db_rollback(st);
		return r;
	}
	return commit_array(st, id, (int)n, out);
}

int store_array_run_failed(struct pilot_store *st, const char *run_id)
{
	static const char limit[] = "SELECT r.array_id, a.max_failures FROM runs r JOIN arrays a ON a.id = r.array_id "
				    "WHERE r.id = ?1 AND a.max_failures > 0";
	static const char failed[] =
		"SELECT count(*) FROM runs r INDEXED BY runs_array WHERE array_id = ?1 AND state = 'failed' "
		"AND id = (SELECT max(id) FROM runs x INDEXED BY runs_array WHERE x.array_id = ?1 "
		"AND x.array_index = r.array_index)";
	static const char *const order[] = { "waiting", "queued" };
	char aid[PILOT_ID_SIZE] = "";
	int64_t max = 0, n = 0;
	sqlite3_stmt *s = db_stmt(st, limit);
	if (!s)
		return pilot_error_code();
	bind_text(s, 1, run_id);
	int rc = sqlite3_step(s);
	if (rc == SQLITE_ROW) {
		col_copy_id(s, 0, aid);
		max = col_int(s, 1);
	}
	sqlite3_reset(s);
	if (rc != SQLITE_ROW)
		return rc == SQLITE_DONE ? 0 : db_error(st, "cannot read the run's array");
	if (!(s = db_stmt(st, failed)))
		return pilot_error_code();
	bind_text(s, 1, aid);
	if (sqlite3_step(s) == SQLITE_ROW)
		n = col_int(s, 0);
	sqlite3_reset(s);
	if (n < max)
		return 0;
	/* The waiting first: skipping a queued run first would hand its slot on. */
	_cleanup_free_ char *msg =
		pilot_xasprintf("skipped: %lld run%s of array %s failed (max_failures %lld)", (long long)n, n == 1 ? "" : "s",
				aid, (long long)max);
	int r = 0;
	for (size_t k = 0; k < ARRAY_SIZE(order) && r == 0; k++) {
		char(*runs)[PILOT_ID_SIZE] = NULL;
		size_t nr = 0;
		r = array_runs(st, aid, order[k], &runs, &nr);
		for (size_t i = 0; i < nr && r == 0; i++) {
			struct run_row row;
			/* One may have ended on the way (a run of the array it waited for). */
			if ((r = store_run_row(st, runs[i], &row)) < 0 ||
			    (row.state != PILOT_RUN_WAITING && row.state != PILOT_RUN_QUEUED))
				continue;
			r = store_transition(st, runs[i], row.state, PILOT_RUN_SKIPPED, PILOT_REASON_TOO_MANY_FAILURES, "skipped",
					     "pilot", 0, msg, json_pack("{s:I}", "failed", (json_int_t)n));
		}
		free(runs);
	}
	return r;
}
