/* The loop of `pilot agent`: a claimer thread long-polls for runs while slots (one thread
 * each) execute claimed attempts through pilot_exec_attempt; the caller's thread, in
 * pilot_agent_run, hands claims to free slots, collects the ends, and decides when to
 * stop (max jobs, idle timeout, a stop with its drain). One lock and one condition
 * variable guard the shared state.
 *
 * The claimer may be blocked in a long-poll when the agent stops: it is then abandoned
 * (it frees its share when the call returns). A run it took meanwhile is not run; its
 * lease expires and the server requeues it, as for any agent that vanished. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <time.h>
#include <unistd.h>

#include "pilot/agent.h"
#include "pilot/spec.h"
#include "pilot/version.h"

#define CLAIM_WAIT_MS 30000
#define SHARED_CLAIM_WAIT_MS 1000
#define CLAIM_BACKOFF_MIN_MS 200
#define CLAIM_BACKOFF_MAX_MS 30000

struct slot {
	struct pilot_agent *a;
	bool busy;            /* a thread runs an attempt */
	bool done;            /* ... and has ended: join it */
	bool cancel_sent;
	pthread_t thread;
	struct pilot_api *api, *hb_api; /* opened once, kept across attempts */
	struct pilot_job_control *ctl;  /* while busy (guarded by a->lock) */
	struct pilot_claim claim;
	struct pilot_exec_result res;
	bool reported, refused;
};

struct pilot_agent {
	struct pilot_agent_opts o;    /* strings below replace the caller's */
	char *name, *version, *work_dir, *work_root, *bundle_dir, *lock_path;
	struct pilot_kvs labels;
	char cancel_message[256];
	int lock_fd;

	pthread_mutex_t lock;         /* everything below */
	pthread_cond_t cond;
	int refs;                     /* pilot_agent_free + a running claimer */
	struct slot *slots;
	int nslots;
	/* the claimer */
	pthread_t claimer;
	bool claimer_started;
	struct pilot_api *claim_api;
	bool want_claim;              /* main -> claimer: send one claim */
	bool claim_inflight;
	bool have_pending;            /* claimer -> main: a claim to start */
	struct pilot_claim pending;
	int claim_fatal;              /* a claim error retrying cannot fix */
	char fatal_msg[512];
	int64_t backoff_until;
	enum pilot_agent_control told; /* what the latest claim answer said instead of a run */
	bool quit;                    /* the claimer must end (nobody may wait for it) */
	/* the loop */
	bool stopping;
	atomic_bool hurry;
	int64_t stop_at;
	bool drain_canceled;
	int64_t last_activity;
	unsigned claims_since_activity; /* claim calls that came back since then */
	unsigned claimed;
	struct pilot_agent_stats stats;
};

static void agent_unref_locked(struct pilot_agent *a);

static bool valid_name(const char *n)
{
	if (!n || !*n || strlen(n) > 127 || !strcmp(n, ".") || !strcmp(n, ".."))
		return false;
	for (const char *p = n; *p; p++)
		if ((unsigned char)*p <= ' ' || *p == '/' || *p == 0x7f)
			return false;
	return true;
}

static void wait_until(pthread_cond_t *c, pthread_mutex_t *m, int64_t until)
{
	struct timespec ts = { (time_t)(until / 1000), (long)(until % 1000) * 1000000L };
	pthread_cond_timedwait(c, m, &ts);
}

static int64_t jitter(int64_t ms)
{
	uint32_t r;
	pilot_random_bytes(&r, sizeof(r));
	return ms / 2 + (int64_t)(r % (uint32_t)(ms / 2 + 1));
}

static bool agent_hurry(void *ud)
{
	struct pilot_agent *a = ud;
	return atomic_load(&a->hurry);
}

/* ---- choosing where a claimed run goes ------------------------------------------ */

/* The runtime for the claimed run, or NULL with msg saying why this agent refuses it.
 * A spec that does not parse goes to the default runtime: the executor reports it. */
static struct pilot_runtime *choose_runtime(struct pilot_agent *a, const struct pilot_claim *c, char *msg,
					    size_t msglen)
{
	struct pilot_spec *spec = NULL;
	if (pilot_spec_from_json(c->run.spec_json, &spec) < 0) {
		pilot_error_clear();
		return a->o.rt;
	}
	struct pilot_runtime *rt = a->o.rt;
	bool containers = pilot_runtime_isolated(a->o.rt);
	if (spec->runtime == PILOT_SPEC_RUNTIME_HOST || !spec->image) {
		rt = a->o.host_rt;
		if (!rt)
			snprintf(msg, msglen, "%s; agent '%s' runs jobs on the host only when started with --allow-host",
				 spec->image ? "the spec asks for the host runtime" : "the spec has no image, so it can only run on the host",
				 a->name);
	} else if (!containers && spec->runtime != PILOT_SPEC_RUNTIME_ANY) {
		rt = NULL;
		snprintf(msg, msglen, "the spec asks for the %s runtime; agent '%s' has no container engine",
			 pilot_spec_runtime_name(spec->runtime), a->name);
	} else if (!containers) {
		pilot_log(PILOT_LOG_NOTICE, "run %s: running on the host (the agent has no container engine): image '%s' is not used",
			  c->run.id, spec->image);
	}
	/* docker and podman speak the same API: a spec pinned to either runs on the
	 * agent's engine. */
	pilot_spec_free(spec);
	return rt;
}

/* ---- a slot: one attempt on its own thread ---------------------------------------- */

static void describe_end(const struct pilot_claim *c, const struct pilot_exec_result *res)
{
	const char *run = c->run.id;
	if (res->outcome != PILOT_EXEC_REPORTED) {
		pilot_log(PILOT_LOG_WARN, "run %s attempt %d: %s, its result was dropped", run, c->attempt,
			  pilot_exec_outcome_name(res->outcome));
		return;
	}
	const struct pilot_finish *f = &res->finish;
	if (f->state == PILOT_ATTEMPT_SUCCEEDED)
		pilot_log(PILOT_LOG_NOTICE, "run %s attempt %d: succeeded", run, c->attempt);
	else if (f->has_exit_code)
		pilot_log(PILOT_LOG_NOTICE, "run %s attempt %d: %s (exit code %d)", run, c->attempt,
			  pilot_attempt_state_name(f->state), f->exit_code);
	else
		pilot_log(PILOT_LOG_NOTICE, "run %s attempt %d: %s (%s)%s%s", run, c->attempt,
			  pilot_attempt_state_name(f->state), pilot_reason_name(f->reason), f->message ? ": " : "",
			  f->message ? f->message : "");
}

static void *slot_main(void *arg)
{
	struct slot *s = arg;
	struct pilot_agent *a = s->a;
	const struct pilot_claim *c = &s->claim;
	struct pilot_exec_result *res = &s->res;
	memset(res, 0, sizeof(*res));
	res->outcome = PILOT_EXEC_UNREPORTED;

	int r = 0;
	if (a->o.api)
		s->api = a->o.api;
	else if (!s->api)
		r = a->o.open_api(a->o.open_ud, &s->api);
	if (r >= 0 && !a->o.api && !s->hb_api && a->o.open_api(a->o.open_ud, &s->hb_api) < 0) {
		/* Heartbeats can share the main handle (serialised). */
		pilot_log(PILOT_LOG_DEBUG, "no second api handle: %s", pilot_error_last());
		s->hb_api = NULL;
	}
	if (r < 0) {
		pilot_log(PILOT_LOG_ERROR, "run %s: cannot open the api: %s", c->run.id, pilot_error_last());
		goto out;
	}
	char msg[400] = "";
	struct pilot_runtime *rt = choose_runtime(a, c, msg, sizeof(msg));
	struct pilot_exec_opts eo = {
		.api = s->api,
		.hb_api = s->hb_api,
		.rt = rt ? rt : a->o.rt,
		.work_dir = a->work_root,
		.bundle_cache = a->o.bundle_cache ? a->bundle_dir : NULL,
		.pull = a->o.pull,
		.network = a->o.network,
		.heartbeat_ms = a->o.heartbeat_ms,
		.give_up_ms = a->o.give_up_ms,
		.grace_ms = a->o.grace_ms,
		.hurry = agent_hurry,
		.ud = a,
		.ctl = s->ctl,
		.cancel_message = a->cancel_message,
	};
	if (!rt) {
		pilot_log(PILOT_LOG_WARN, "run %s: refused: %s", c->run.id, msg);
		pilot_exec_refuse(&eo, c, msg, res);
		s->refused = true;
	} else {
		pilot_log(PILOT_LOG_NOTICE, "run %s attempt %d: started (%s)", c->run.id, c->attempt,
			  pilot_runtime_kind(rt));
		pilot_exec_attempt(&eo, c, res);
	}
	s->reported = res->outcome == PILOT_EXEC_REPORTED;
	describe_end(c, res);
	if (a->o.on_done)
		a->o.on_done(c, res, a->o.ud);
out:
	pthread_mutex_lock(&a->lock);
	s->done = true;
	pthread_cond_broadcast(&a->cond);
	pthread_mutex_unlock(&a->lock);
	return NULL;
}

/* With a->lock held. */
static int start_slot(struct pilot_agent *a, struct slot *s)
{
	s->claim = a->pending;
	memset(&a->pending, 0, sizeof(a->pending));
	a->have_pending = false;
	s->busy = true;
	s->done = false;
	s->cancel_sent = false;
	s->reported = s->refused = false;
	if (pilot_job_control_new(&s->ctl) < 0 || pthread_create(&s->thread, NULL, slot_main, s) != 0) {
		/* Nothing ran: the lease expires and the run is requeued. */
		pilot_log(PILOT_LOG_ERROR, "run %s: cannot start a job thread", s->claim.run.id);
		pilot_job_control_free(s->ctl);
		s->ctl = NULL;
		pilot_claim_clear(&s->claim);
		s->busy = false;
		a->stats.not_reported++;
		return PILOT_ENOMEM;
	}
	return 0;
}

/* With a->lock held; the lock is dropped while joining. */
static void collect_slot(struct pilot_agent *a, struct slot *s)
{
	pthread_mutex_unlock(&a->lock);
	pthread_join(s->thread, NULL);
	pthread_mutex_lock(&a->lock);
	pilot_job_control_free(s->ctl);
	s->ctl = NULL;
	if (s->refused)
		a->stats.refused++;
	if (s->reported)
		a->stats.reported++;
	else
		a->stats.not_reported++;
	pilot_claim_clear(&s->claim);
	s->busy = false;
	s->done = false;
	a->last_activity = pilot_mono_ms();
	a->claims_since_activity = 0;
}

/* ---- the claimer ----------------------------------------------------------------- */

static void note_told(struct pilot_agent *a, enum pilot_agent_control c)
{
	switch (c) {
	case PILOT_CONTROL_DRAIN:
		pilot_log(PILOT_LOG_NOTICE, "drained by the server: taking no runs until 'pilot agents resume %s'", a->name);
		break;
	case PILOT_CONTROL_SLEEP:
		pilot_log(PILOT_LOG_NOTICE, "put to sleep by the server: taking no runs until 'pilot agents wake %s'",
			  a->name);
		break;
	case PILOT_CONTROL_SHUTDOWN:
		pilot_log(PILOT_LOG_NOTICE, "the server asked this agent to shut down: stopping once its jobs end");
		a->stats.shutdown = true;
		break;
	default:
		pilot_log(PILOT_LOG_NOTICE, "resumed by the server: taking runs again");
		break;
	}
}

static bool claim_error_fatal(int r)
{
	return r == PILOT_EAUTH || r == PILOT_EFORBIDDEN || r == PILOT_EINVALID;
}

static void *claimer_main(void *arg)
{
	struct pilot_agent *a = arg;
	int64_t backoff = CLAIM_BACKOFF_MIN_MS;
	bool warned = false;
	pthread_mutex_lock(&a->lock);
	for (;;) {
		int64_t now = pilot_mono_ms();
		if (a->quit)
			break;
		if (!a->want_claim || now < a->backoff_until) {
			wait_until(&a->cond, &a->lock, a->want_claim ? a->backoff_until : now + 1000);
			continue;
		}
		a->want_claim = false;
		int free_slots = 0;
		for (int i = 0; i < a->nslots; i++)
			free_slots += !a->slots[i].busy;
		int64_t wait = a->o.claim_wait_ms > 0 ? a->o.claim_wait_ms : CLAIM_WAIT_MS;
		if (a->o.api && wait > SHARED_CLAIM_WAIT_MS)
			wait = SHARED_CLAIM_WAIT_MS;
		if (a->o.idle_timeout_ms > 0) {
			/* Come back by the idle deadline, so that ending idle never leaves a
			 * claim behind. */
			int64_t left = a->last_activity + a->o.idle_timeout_ms - now;
			wait = left < wait ? (left > 0 ? left : 0) : wait;
		}
		struct pilot_claim_request req = {
			.agent = a->name,
			.version = a->version,
			.capacity = a->nslots,
			.free_slots = free_slots > 0 ? free_slots : 1,
			.wait_ms = wait,
		};
		pilot_kvs_copy(&req.labels, &a->labels);
		a->claim_inflight = true;
		if (!a->stats.first_claim_ms)
			a->stats.first_claim_ms = now;
		pthread_mutex_unlock(&a->lock);

		struct pilot_claim c = { 0 };
		int r = pilot_api_claim(a->claim_api, &req, &c);
		pilot_claim_request_clear(&req);

		pthread_mutex_lock(&a->lock);
		a->claim_inflight = false;
		a->claims_since_activity++;
		if (r > 0 && a->quit) {
			pilot_log(PILOT_LOG_WARN, "run %s was claimed while the agent was stopping: it is left to be requeued when its lease expires",
				  c.run.id);
			pilot_claim_clear(&c);
			break;
		}
		if (r > 0) {
			if (a->told)
				note_told(a, PILOT_CONTROL_NONE);
			a->told = PILOT_CONTROL_NONE;
			a->pending = c;
			a->have_pending = true;
			a->claimed++;
			a->stats.claimed++;
			a->last_activity = pilot_mono_ms();
			a->claims_since_activity = 0;
			backoff = CLAIM_BACKOFF_MIN_MS;
			warned = false;
		} else if (r == 0) {
			backoff = CLAIM_BACKOFF_MIN_MS;
			if (warned)
				pilot_log(PILOT_LOG_NOTICE, "claiming works again");
			warned = false;
			if (c.command != a->told)
				note_told(a, c.command);
			a->told = c.command;
		} else if (claim_error_fatal(r)) {
			a->claim_fatal = r;
			snprintf(a->fatal_msg, sizeof(a->fatal_msg), "%s", pilot_error_last());
			pilot_log(PILOT_LOG_ERROR, "cannot claim runs: %s", a->fatal_msg);
		} else {
			pilot_log(warned ? PILOT_LOG_INFO : PILOT_LOG_WARN, "cannot claim runs, retrying: %s",
				  pilot_error_last());
			warned = true;
			a->backoff_until = pilot_mono_ms() + jitter(backoff);
			backoff = backoff * 2 > CLAIM_BACKOFF_MAX_MS ? CLAIM_BACKOFF_MAX_MS : backoff * 2;
		}
		pthread_cond_broadcast(&a->cond);
	}
	agent_unref_locked(a);
	return NULL;
}

/* ---- the agent --------------------------------------------------------------------- */

static void agent_destroy(struct pilot_agent *a)
{
	if (!a->o.api) {
		for (int i = 0; i < a->nslots; i++) {
			pilot_api_close(a->slots[i].api);
			pilot_api_close(a->slots[i].hb_api);
		}
		pilot_api_close(a->claim_api);
	}
	free(a->slots);
	pilot_claim_clear(&a->pending);
	pilot_kvs_clear(&a->labels);
	free(a->name);
	free(a->version);
	free(a->work_dir);
	free(a->work_root);
	free(a->bundle_dir);
	free(a->lock_path);
	pthread_cond_destroy(&a->cond);
	pthread_mutex_destroy(&a->lock);
	free(a);
}

/* With a->lock held; releases it (and maybe a). */
static void agent_unref_locked(struct pilot_agent *a)
{
	bool last = --a->refs == 0;
	pthread_mutex_unlock(&a->lock);
	if (last)
		agent_destroy(a);
}

static int take_work_dir(struct pilot_agent *a)
{
	int r = pilot_mkdir_p(a->work_root, 0700);
	if (r < 0)
		return r;
	a->lock_fd = open(a->lock_path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (a->lock_fd < 0)
		return pilot_error_errno(PILOT_EIO, errno, "cannot open '%s'", a->lock_path);
	if (flock(a->lock_fd, LOCK_EX | LOCK_NB) < 0) {
		if (errno == EWOULDBLOCK)
			return pilot_error_set(PILOT_ECONFLICT, "another agent named '%s' is running with work directory '%s'",
					       a->name, a->work_dir);
		return pilot_error_errno(PILOT_EIO, errno, "cannot lock '%s'", a->lock_path);
	}
	return 0;
}

int pilot_agent_new(const struct pilot_agent_opts *o, struct pilot_agent **out)
{
	if (!o || (!o->open_api && !o->api) || !o->rt || !o->work_dir)
		return pilot_error_set(PILOT_EINVALID, "pilot_agent_new: missing arguments");
	if (!valid_name(o->name))
		return pilot_error_set(PILOT_EINVALID, "invalid agent name '%s': expected 1 to 127 characters without spaces or '/'",
				       o->name ? o->name : "");
	struct pilot_agent *a = pilot_xcalloc(1, sizeof(*a));
	a->o = *o;
	a->name = pilot_xstrdup(o->name);
	a->version = pilot_xstrdup(o->version ? o->version : pilot_version());
	if (o->labels)
		pilot_kvs_copy(&a->labels, o->labels);
	a->work_dir = pilot_xstrdup(o->work_dir);
	_cleanup_free_ char *work = pilot_path_join(o->work_dir, "work");
	a->work_root = pilot_path_join(work, o->name);
	a->lock_path = pilot_xasprintf("%s.lock", a->work_root);
	a->bundle_dir = pilot_path_join(o->work_dir, "bundles");
	a->o.name = a->name;
	a->o.work_dir = a->work_dir;
	a->o.labels = NULL;
	a->o.version = a->version;
	a->nslots = o->concurrency > 0 ? o->concurrency : 1;
	if (o->max_jobs > 0 && a->nslots > o->max_jobs)
		a->nslots = o->max_jobs;
	a->slots = pilot_xcalloc((size_t)a->nslots, sizeof(*a->slots));
	for (int i = 0; i < a->nslots; i++)
		a->slots[i].a = a;
	snprintf(a->cancel_message, sizeof(a->cancel_message), "agent '%s' shut down before the job ended",
		 a->name);
	a->lock_fd = -1;
	a->refs = 1;
	atomic_init(&a->hurry, false);
	pthread_mutex_init(&a->lock, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&a->cond, &ca);
	pthread_condattr_destroy(&ca);

	int r = take_work_dir(a);
	unsigned killed = 0, removed = 0;
	if (r >= 0)
		r = pilot_exec_cleanup_work_dir(a->work_root, &killed);
	if (r >= 0 && pilot_runtime_isolated(o->rt)) {
		/* Our name is the owner label: these containers are a crashed self's. */
		if (pilot_runtime_cleanup_orphans(o->rt, a->name, &removed) < 0)
			pilot_log(PILOT_LOG_WARN, "cannot remove the containers of an earlier run of agent '%s': %s", a->name,
				  pilot_error_last());
		else if (removed)
			pilot_log(PILOT_LOG_NOTICE, "removed %u container%s left by an earlier run of agent '%s'", removed,
				  removed == 1 ? "" : "s", a->name);
	}
	a->stats.orphans_removed = killed + removed;
	if (r >= 0 && o->api)
		a->claim_api = o->api;
	else if (r >= 0)
		r = o->open_api(o->open_ud, &a->claim_api);
	if (r < 0) {
		if (a->lock_fd >= 0)
			close(a->lock_fd);
		agent_destroy(a);
		return r;
	}
	*out = a;
	return 0;
}

/* With a->lock held. */
static int running_jobs(const struct pilot_agent *a)
{
	int n = 0;
	for (int i = 0; i < a->nslots; i++)
		n += a->slots[i].busy;
	return n;
}

static struct slot *free_slot(struct pilot_agent *a)
{
	for (int i = 0; i < a->nslots; i++)
		if (!a->slots[i].busy)
			return &a->slots[i];
	return NULL;
}

static void cancel_jobs(struct pilot_agent *a, bool force)
{
	for (int i = 0; i < a->nslots; i++) {
		struct slot *s = &a->slots[i];
		if (s->busy && s->ctl && (force || !s->cancel_sent)) {
			pilot_job_control_cancel(s->ctl, force);
			s->cancel_sent = true;
		}
	}
}

int pilot_agent_run(struct pilot_agent *a, struct pilot_agent_stats *stats)
{
	int result = 0;
	pthread_mutex_lock(&a->lock);
	a->last_activity = pilot_mono_ms();
	if (pthread_create(&a->claimer, NULL, claimer_main, a) != 0) {
		pthread_mutex_unlock(&a->lock);
		return pilot_error_set(PILOT_ENOMEM, "cannot start the claimer thread");
	}
	a->claimer_started = true;
	a->refs++;
	bool hurried = false;
	for (;;) {
		for (int i = 0; i < a->nslots; i++)
			if (a->slots[i].busy && a->slots[i].done)
				collect_slot(a, &a->slots[i]);
		if (a->have_pending && atomic_load(&a->hurry)) {
			pilot_log(PILOT_LOG_WARN, "run %s is left to be requeued when its lease expires", a->pending.run.id);
			pilot_claim_clear(&a->pending);
			a->have_pending = false;
			a->stats.not_reported++;
		}
		if (a->have_pending) {
			struct slot *s = free_slot(a);
			if (s)
				start_slot(a, s);
		}
		int64_t now = pilot_mono_ms();
		int running = running_jobs(a);
		int64_t wake = now + 1000;
		if (a->told == PILOT_CONTROL_SHUTDOWN && !a->stopping) {
			a->stopping = true;
			a->stop_at = now;
		}
		if (atomic_load(&a->hurry) && !hurried) {
			cancel_jobs(a, true);
			hurried = true;
		}
		if (a->stopping) {
			if (!running && !a->have_pending)
				break;
			if (a->o.drain_timeout_ms > 0 && !a->drain_canceled) {
				int64_t at = a->stop_at + a->o.drain_timeout_ms;
				if (now >= at) {
					pilot_log(PILOT_LOG_NOTICE, "drain timeout: canceling %d running job%s", running,
						  running == 1 ? "" : "s");
					cancel_jobs(a, false);
					a->drain_canceled = true;
				} else if (at < wake) {
					wake = at;
				}
			}
		} else if (!running && !a->have_pending && !a->claim_inflight) {
			if (a->claim_fatal) {
				result = pilot_error_set(a->claim_fatal, "%s", a->fatal_msg);
				break;
			}
			if (a->o.max_jobs > 0 && a->claimed >= (unsigned)a->o.max_jobs)
				break;
			if (a->o.idle_timeout_ms > 0) {
				int64_t at = a->last_activity + a->o.idle_timeout_ms;
				/* At least one claim must have come back empty (or failed) since:
				 * an idle end never skips asking. */
				if (now >= at && a->claims_since_activity) {
					pilot_log(PILOT_LOG_NOTICE, "nothing to do for %lld ms: stopping",
						  (long long)a->o.idle_timeout_ms);
					a->stats.idle_timeout = true;
					break;
				}
				if (at < wake)
					wake = at;
			}
		}
		bool can_claim = !a->stopping && !a->claim_fatal && !a->have_pending && !a->claim_inflight &&
				 free_slot(a) && (a->o.max_jobs <= 0 || a->claimed < (unsigned)a->o.max_jobs);
		if (can_claim && !a->want_claim) {
			a->want_claim = true;
			pthread_cond_broadcast(&a->cond);
		}
		wait_until(&a->cond, &a->lock, wake);
	}
	a->quit = true;
	a->want_claim = false;
	pthread_cond_broadcast(&a->cond);
	/* A shared api outlives us only until the caller closes it: wait for the claim
	 * (at most a second) rather than leave it behind. */
	bool inflight = a->claim_inflight && !a->o.api;
	a->stats.stopped = a->stopping && !a->stats.shutdown;
	if (stats)
		*stats = a->stats;
	pthread_mutex_unlock(&a->lock);
	if (inflight)
		pthread_detach(a->claimer);
	else
		pthread_join(a->claimer, NULL);
	return result;
}

void pilot_agent_stop(struct pilot_agent *a, bool now)
{
	if (!a)
		return;
	pthread_mutex_lock(&a->lock);
	if (!a->stopping) {
		a->stopping = true;
		a->stop_at = pilot_mono_ms();
	}
	if (now)
		atomic_store(&a->hurry, true);
	pthread_cond_broadcast(&a->cond);
	pthread_mutex_unlock(&a->lock);
}

void pilot_agent_free(struct pilot_agent *a)
{
	if (!a)
		return;
	/* Say goodbye on a fresh handle: the claimer's may still be in a call. */
	struct pilot_api *api = a->o.api;
	if (api || a->o.open_api(a->o.open_ud, &api) >= 0) {
		if (pilot_api_agent_leave(api, a->name) < 0)
			pilot_log(PILOT_LOG_DEBUG, "agent '%s': leave: %s", a->name, pilot_error_last());
		if (api != a->o.api)
			pilot_api_close(api);
	}
	if (a->lock_fd >= 0) {
		close(a->lock_fd);
		a->lock_fd = -1;
	}
	pthread_mutex_lock(&a->lock);
	agent_unref_locked(a);
}
