/* Waiting without threads: long-polling requests are suspended in libmicrohttpd and
 * listed here; changes made through the server wake the ones that care. Claims are
 * handed out by the notifier thread itself, oldest waiter first, so a submit wakes
 * exactly the agent that gets the run instead of every idle agent. The same thread
 * runs the reaper on its interval, promotes waiting runs when their backoff ends, and
 * expires long-poll deadlines; nothing polls the database for the wake-up itself. */
#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "internal.h"

#define REQ_OF(w) ((struct req *)((char *)(w) - offsetof(struct req, w)))

static void list_add_tail(struct waiter *head, struct waiter *w)
{
	w->prev = head->prev;
	w->next = head;
	head->prev->next = w;
	head->prev = w;
}

static void list_del(struct waiter *w)
{
	w->prev->next = w->next;
	w->next->prev = w->prev;
	w->next = w->prev = NULL;
}

/* Lock held. */
static void wake(struct server *srv, struct waiter *w, enum wake_reason why)
{
	if (!w->listed || w->busy)
		return;
	list_del(w);
	w->listed = false;
	w->woke = why;
	srv->nwaiting--;
	MHD_resume_connection(REQ_OF(w)->conn);
}

/* The client of a parked request closed its end (an agent killed while it waited).
 * libmicrohttpd does not watch suspended sockets, so look: a claim must not go to a
 * dead connection, and its memory is better freed now than at its deadline. */
static bool peer_gone(struct waiter *w)
{
	const union MHD_ConnectionInfo *ci = MHD_get_connection_info(REQ_OF(w)->conn, MHD_CONNECTION_INFO_CONNECTION_FD);
	if (!ci)
		return false;
	char c;
	ssize_t n = recv(ci->connect_fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
	return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR);
}

/* Lock held. */
static void wake_others(struct server *srv, unsigned what)
{
	struct waiter *w = srv->others.next;
	while (w != &srv->others) {
		struct waiter *next = w->next;
		if ((w->kind == WAIT_LOG && (what & (NOTIFY_LOG | NOTIFY_EVENT))) ||
		    (w->kind != WAIT_LOG && (what & NOTIFY_EVENT)))
			wake(srv, w, WAKE_DATA);
		w = next;
	}
}

/* Lock held. */
static void notify_locked(struct server *srv, unsigned what)
{
	srv->change_gen++;
	if (what & NOTIFY_QUEUE) {
		srv->queue_gen++;
		srv->claim_pass_pending = true;
		pthread_cond_signal(&srv->cond);
		fleet_poke(srv);
	}
	wake_others(srv, what);
}

void server_notify(struct server *srv, unsigned what)
{
	pthread_mutex_lock(&srv->lock);
	notify_locked(srv, what);
	pthread_mutex_unlock(&srv->lock);
}

void server_notify_due(struct server *srv, int64_t due_ms)
{
	if (due_ms <= 0)
		return;
	pthread_mutex_lock(&srv->lock);
	if (!srv->next_due_ms || due_ms < srv->next_due_ms) {
		srv->next_due_ms = due_ms;
		pthread_cond_signal(&srv->cond);
	}
	pthread_mutex_unlock(&srv->lock);
}

uint64_t server_change_gen(struct server *srv)
{
	pthread_mutex_lock(&srv->lock);
	uint64_t g = srv->change_gen;
	pthread_mutex_unlock(&srv->lock);
	return g;
}

uint64_t server_queue_gen(struct server *srv)
{
	pthread_mutex_lock(&srv->lock);
	uint64_t g = srv->queue_gen;
	pthread_mutex_unlock(&srv->lock);
	return g;
}

bool server_wait(struct server *srv, struct req *rq, enum wait_kind kind, int64_t deadline, uint64_t gen)
{
	struct waiter *w = &rq->w;
	pthread_mutex_lock(&srv->lock);
	if (srv->stopping) {
		w->woke = WAKE_SHUTDOWN;
		pthread_mutex_unlock(&srv->lock);
		return false;
	}
	/* Something changed between the caller's look and now: look again rather than
	 * sleep through it. */
	if ((kind == WAIT_CLAIM ? srv->queue_gen : srv->change_gen) != gen) {
		w->woke = WAKE_NONE;
		pthread_mutex_unlock(&srv->lock);
		return false;
	}
	w->kind = kind;
	w->deadline = deadline;
	w->woke = WAKE_NONE;
	w->busy = false;
	list_add_tail(kind == WAIT_CLAIM ? &srv->claims : &srv->others, w);
	w->listed = true;
	srv->nwaiting++;
	MHD_suspend_connection(rq->conn);
	pthread_cond_signal(&srv->cond);
	pthread_mutex_unlock(&srv->lock);
	return true;
}

void server_unwait(struct server *srv, struct waiter *w)
{
	pthread_mutex_lock(&srv->lock);
	if (w->listed) {
		list_del(w);
		w->listed = false;
		srv->nwaiting--;
	}
	pthread_mutex_unlock(&srv->lock);
}

void server_wake_all(struct server *srv, enum wake_reason why)
{
	pthread_mutex_lock(&srv->lock);
	struct waiter *heads[] = { &srv->claims, &srv->others };
	for (size_t i = 0; i < 2; i++) {
		struct waiter *w = heads[i]->next;
		while (w != heads[i]) {
			struct waiter *next = w->next;
			wake(srv, w, why);
			w = next;
		}
	}
	pthread_mutex_unlock(&srv->lock);
}

void server_tell_agent(struct server *srv, const char *agent, enum pilot_agent_control told)
{
	pthread_mutex_lock(&srv->lock);
	struct waiter *w = srv->claims.next;
	while (w != &srv->claims) {
		struct waiter *next = w->next;
		if (!w->busy && w->creq.agent && !strcmp(w->creq.agent, agent)) {
			w->claim.command = told;
			wake(srv, w, WAKE_TIMEOUT);
		}
		w = next;
	}
	pthread_mutex_unlock(&srv->lock);
}

void server_claimed(struct server *srv, const struct pilot_claim *c)
{
	atomic_fetch_add(&srv->m.claims_total, 1);
	/* Submit-to-claim of first attempts: retries and requeues would measure the
	 * backoff and the lease instead. */
	if (c->attempt != 1)
		return;
	int64_t since = c->run.created_ms;
	if (c->run.not_before_ms > since)
		since = c->run.not_before_ms;
	int64_t at = c->run.started_ms ? c->run.started_ms : pilot_now_ms();
	metrics_observe_claim(&srv->m, at > since ? at - since : 0);
}

/* Every label of a also in b with the same value: an agent with labels a can claim
 * no more than one with labels b. */
static bool labels_subset(const struct pilot_kvs *a, const struct pilot_kvs *b)
{
	for (size_t i = 0; i < a->n; i++) {
		const char *v = pilot_kvs_get(b, a->items[i].key);
		const char *mine = a->items[i].value ? a->items[i].value : "";
		if (!v || strcmp(v, mine))
			return false;
	}
	return true;
}

/* Lock held on entry and exit; dropped around each claim. Oldest waiter first; once a
 * waiter finds nothing, every waiter whose labels are a subset of its labels would
 * find nothing too and is skipped, so a pass costs one claim per distinct label set
 * when nothing matches (plus one per claim naming a run). */
#define MAX_FAILED 64
static void claim_pass(struct server *srv)
{
	const struct pilot_kvs *failed[MAX_FAILED];
	size_t nfailed = 0;
	bool claimed_any = false;
	struct waiter *w = srv->claims.next;
	while (w != &srv->claims && !srv->stopping) {
		/* A claim naming a run may take a held run no other claim may: it is never
		 * skipped, and its failing says nothing about the others. */
		bool named = w->creq.run && *w->creq.run;
		bool skip = false;
		for (size_t i = 0; i < nfailed && !skip && !named; i++)
			skip = labels_subset(&w->creq.labels, failed[i]);
		if (skip) {
			w = w->next;
			continue;
		}
		if (peer_gone(w)) {
			struct waiter *next = w->next;
			wake(srv, w, WAKE_TIMEOUT);
			w = next;
			continue;
		}
		w->busy = true;
		pthread_mutex_unlock(&srv->lock);
		struct pilot_claim c = { 0 };
		struct pilot_claim_request q = w->creq;
		q.wait_ms = 0;
		int r = pilot_api_claim(srv->api, &q, &c);
		char *msg = r < 0 ? pilot_xstrdup(pilot_error_last()) : NULL;
		if (r > 0)
			server_claimed(srv, &c);
		pthread_mutex_lock(&srv->lock);
		w->busy = false;
		struct waiter *next = w->next;
		if (r == 0)
			w->claim.command = c.command; /* before a wake hands w to its request */
		if (r > 0) {
			w->claim = c;
			claimed_any = true;
			wake(srv, w, WAKE_CLAIMED);
		} else if (r < 0) {
			w->err_code = r;
			w->err_msg = msg;
			msg = NULL;
			wake(srv, w, WAKE_ERROR);
		} else if (c.command) {
			/* Told to stop taking runs: that says nothing about the others' claims.
			 * One told to shut down hears so at once. */
			if (c.command == PILOT_CONTROL_SHUTDOWN)
				wake(srv, w, WAKE_TIMEOUT);
		} else if (!named && nfailed < MAX_FAILED) {
			failed[nfailed++] = &w->creq.labels;
		}
		free(msg);
		w = next;
	}
	if (claimed_any)
		wake_others(srv, NOTIFY_EVENT);
	/* Whoever the pass could not serve because the server is stopping is answered now. */
	if (srv->stopping) {
		w = srv->claims.next;
		while (w != &srv->claims) {
			struct waiter *next = w->next;
			wake(srv, w, WAKE_SHUTDOWN);
			w = next;
		}
	}
}

/* The earliest not_before of the waiting runs (wall ms), 0 when none. */
static int64_t earliest_due(struct server *srv)
{
	int64_t best = 0;
	char after[PILOT_ID_SIZE] = "";
	for (int page = 0; page < 20; page++) {
		struct pilot_run_filter f = {
			.states = PILOT_RUN_STATE_BIT(PILOT_RUN_WAITING),
			.after = after[0] ? after : NULL,
			.limit = 1000,
		};
		struct pilot_run_list l = { 0 };
		if (pilot_api_list_runs(srv->api, &f, &l) < 0) {
			pilot_log(PILOT_LOG_WARN, "cannot list waiting runs: %s", pilot_error_last());
			/* Look again soon rather than never. */
			return pilot_now_ms() + 1000;
		}
		for (size_t i = 0; i < l.n; i++)
			if (l.items[i].not_before_ms > 0 && (!best || l.items[i].not_before_ms < best))
				best = l.items[i].not_before_ms;
		memcpy(after, l.next_after, sizeof(after));
		pilot_run_list_clear(&l);
		if (!after[0])
			break;
	}
	return best;
}

/* Lock held: let go of the parked requests whose clients went away. */
static void sweep_gone(struct server *srv)
{
	struct waiter *heads[] = { &srv->claims, &srv->others };
	for (size_t i = 0; i < 2; i++) {
		struct waiter *w = heads[i]->next;
		while (w != heads[i]) {
			struct waiter *next = w->next;
			if (peer_gone(w))
				wake(srv, w, WAKE_TIMEOUT);
			w = next;
		}
	}
}

static struct timespec mono_abs(int64_t mono_ms)
{
	/* pilot_mono_ms() is CLOCK_MONOTONIC in ms, the clock of srv->cond. */
	struct timespec ts = { (time_t)(mono_ms / 1000), (long)(mono_ms % 1000) * 1000000L };
	return ts;
}

static void *notifier_main(void *arg)
{
	struct server *srv = arg;
	int64_t next_reap = pilot_mono_ms() + srv->opt.reap_interval_ms;
	pthread_mutex_lock(&srv->lock);
	srv->due_dirty = true;
	while (!srv->stop_notifier) {
		if (srv->claim_pass_pending) {
			srv->claim_pass_pending = false;
			claim_pass(srv);
			continue;
		}
		int64_t now = pilot_mono_ms();
		int64_t until = next_reap;
		struct waiter *heads[] = { &srv->claims, &srv->others };
		for (size_t i = 0; i < 2; i++) {
			struct waiter *w = heads[i]->next;
			while (w != heads[i]) {
				struct waiter *next = w->next;
				if (w->deadline && w->deadline <= now)
					wake(srv, w, WAKE_TIMEOUT);
				else if (w->deadline && w->deadline < until)
					until = w->deadline;
				w = next;
			}
		}
		int64_t wall = pilot_now_ms();
		bool due = srv->next_due_ms && wall >= srv->next_due_ms;
		if (srv->due_dirty || due || now >= next_reap) {
			bool reap = due || now >= next_reap;
			srv->due_dirty = false;
			if (due)
				srv->next_due_ms = 0;
			pthread_mutex_unlock(&srv->lock);
			int n = 0;
			if (reap) {
				n = pilot_api_reap(srv->api);
				if (n < 0) {
					pilot_log(PILOT_LOG_WARN, "reaping failed: %s", pilot_error_last());
					n = 0;
				}
			}
			int64_t nd = earliest_due(srv);
			pthread_mutex_lock(&srv->lock);
			if (reap)
				sweep_gone(srv);
			/* A due time already past that the reaper did not clear (an error): try
			 * again in a second, not in a loop. */
			if (nd && nd <= pilot_now_ms())
				nd = pilot_now_ms() + 1000;
			if (nd && (!srv->next_due_ms || nd < srv->next_due_ms))
				srv->next_due_ms = nd;
			if (reap)
				next_reap = pilot_mono_ms() + srv->opt.reap_interval_ms;
			if (n > 0)
				notify_locked(srv, NOTIFY_QUEUE | NOTIFY_EVENT);
			continue;
		}
		if (srv->next_due_ms) {
			int64_t d = now + (srv->next_due_ms - wall);
			if (d < until)
				until = d;
		}
		if (until <= now)
			until = now + 1;
		struct timespec ts = mono_abs(until);
		pthread_cond_timedwait(&srv->cond, &srv->lock, &ts);
	}
	pthread_mutex_unlock(&srv->lock);
	return NULL;
}

int notify_start(struct server *srv)
{
	int e = pthread_create(&srv->notifier, NULL, notifier_main, srv);
	if (e)
		return pilot_error_errno(PILOT_EFAIL, e, "cannot start the notifier thread");
	srv->notifier_started = true;
	return 0;
}

void notify_stop(struct server *srv)
{
	if (!srv->notifier_started)
		return;
	pthread_mutex_lock(&srv->lock);
	srv->stop_notifier = true;
	pthread_cond_signal(&srv->cond);
	pthread_mutex_unlock(&srv->lock);
	pthread_join(srv->notifier, NULL);
	srv->notifier_started = false;
}
