/* The fleet: pools of machines the server launches through provisioners when queued
 * runs need agents that nobody runs (pilot-server(1), PROVISIONERS).
 *
 * A provisioner is a program called once per action with the action as its last
 * argument and a JSON object on stdin; it answers JSON on stdout and exits 0:
 *   launch     {action, pool, instance, agent_name, agent_token, server_url, labels,
 *               run_id, resources} -> {"instance_id": "..."}
 *   terminate  {action, pool, instance_id} -> anything
 *   list       {action, pool} -> {"instances": [{"instance_id", "agent_name"}]}
 *
 * One thread does everything, a tick a second (sooner when runs are queued): it
 * follows each instance from launching (recorded in the store before the provisioner
 * is asked, so a crash never forgets one) to running (its agent registered) to
 * terminated (its agent exited or was lost, never registered within launch_timeout,
 * stayed idle for idle_timeout, or outlived max_lifetime), launches one instance per
 * queued run that no idle agent or launching instance covers (at most max per pool,
 * at least min), backs off after failed launches, and terminates what list reports
 * that it does not know (orphans). */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "internal.h"

extern char **environ;

#define CALL_OUTPUT_MAX (256 * 1024)
#define DEFAULT_LAUNCH_TIMEOUT_MS (10 * 60 * 1000)
#define DEFAULT_TICK_MS 1000
#define DEFAULT_LIST_MS 60000
#define DEFAULT_BACKOFF_MS 5000
#define MAX_BACKOFF_MS (5 * 60 * 1000)
#define CALL_TIMEOUT_MS (5 * 60 * 1000)

struct pool {
	char *name;
	struct pilot_kvs labels;
	char **argv;                  /* the provisioner, NULL-terminated */
	size_t argc;
	char *server_url;             /* what agents dial; NULL = the server's URL */
	int min, max;
	int64_t idle_timeout_ms, max_lifetime_ms, launch_timeout_ms;
	double cost_per_hour;
	/* the thread's */
	int64_t next_list_ms;
	int active;                   /* launching + running this tick */
	int n[3];                     /* launching, running, terminating this tick */
	/* under fleet->lock (status reads them) */
	int launching, running, terminating;
	int failures;
	char *last_error;
	int64_t retry_at_ms;
};

struct idle_mark {
	char id[PILOT_ID_SIZE];
	int64_t since;
};

struct fleet {
	struct server *srv;
	struct pool *pools;
	size_t npools;
	int64_t tick_ms, list_ms, backoff_ms;
	pthread_t thread;
	bool started;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool stop, poked;
	struct idle_mark *idle;       /* the thread's: instances whose agent is idle, since */
	size_t nidle;
};

/* ---- configuration ---------------------------------------------------------- */

static void pool_free(struct pool *p)
{
	free(p->name);
	pilot_kvs_clear(&p->labels);
	for (size_t i = 0; i < p->argc; i++)
		free(p->argv[i]);
	free(p->argv);
	free(p->server_url);
	free(p->last_error);
}

static int pool_err(size_t i, const char *key, const char *what)
{
	return pilot_error_set(PILOT_EINVALID, "pools[%zu].%s: %s", i, key, what);
}

/* A number given as a YAML scalar (a string) or a JSON number. */
static int num(json_t *v, size_t i, const char *key, int64_t lo, int64_t hi, int64_t def, int *out)
{
	int64_t n = def;
	if (json_is_integer(v))
		n = json_integer_value(v);
	else if (json_is_string(v) && pilot_parse_int64(json_string_value(v), lo, hi, &n) < 0)
		return pool_err(i, key, "expected a whole number");
	else if (v && !json_is_string(v) && !json_is_null(v))
		return pool_err(i, key, "expected a whole number");
	if (n < lo || n > hi)
		return pool_err(i, key, "out of range");
	*out = (int)n;
	return 0;
}

static int dur(json_t *v, size_t i, const char *key, int64_t def, int64_t *out)
{
	*out = def;
	if (!v || json_is_null(v))
		return 0;
	if (!json_is_string(v) || pilot_parse_duration(json_string_value(v), out) < 0 || *out <= 0) {
		pilot_error_clear();
		return pool_err(i, key, "expected a duration such as 30s, 5m or 12h");
	}
	return 0;
}

static int parse_pool(json_t *j, size_t i, struct pool *p)
{
	static const char *const keys[] = { "name",	    "labels",	    "provisioner",    "min",
					    "max",	    "idle_timeout", "max_lifetime",   "launch_timeout",
					    "cost_per_hour", "server_url" };
	if (!json_is_object(j))
		return pilot_error_set(PILOT_EINVALID, "pools[%zu]: expected a mapping (name, labels, provisioner, max, ...)", i);
	const char *k;
	json_t *v;
	json_object_foreach(j, k, v) {
		bool known = false;
		for (size_t n = 0; n < ARRAY_SIZE(keys); n++)
			known |= !strcmp(k, keys[n]);
		if (!known) {
			const char *s = pilot_suggest(k, keys, ARRAY_SIZE(keys));
			return pilot_error_set(PILOT_EINVALID, "pools[%zu]: unknown key '%s'%s%s%s", i, k,
					       s ? " (did you mean '" : "", s ? s : "", s ? "'?)" : "");
		}
	}
	const char *name = json_string_value(json_object_get(j, "name"));
	if (!name || !*name || strlen(name) > 32 || strspn(name, "abcdefghijklmnopqrstuvwxyz0123456789-") != strlen(name))
		return pool_err(i, "name", "expected 1 to 32 of a-z, 0-9 and '-'");
	p->name = pilot_xstrdup(name);
	json_t *labels = json_object_get(j, "labels");
	if (labels && !json_is_object(labels))
		return pool_err(i, "labels", "expected a mapping of labels its agents have");
	json_object_foreach(labels, k, v) {
		if (!json_is_string(v))
			return pool_err(i, "labels", "expected plain values");
		pilot_kvs_set(&p->labels, k, json_string_value(v));
	}
	json_t *prov = json_object_get(j, "provisioner");
	if (json_is_string(prov)) {
		p->argv = pilot_xcalloc(2, sizeof(char *));
		p->argv[p->argc++] = pilot_xstrdup(json_string_value(prov));
	} else if (json_is_array(prov) && json_array_size(prov) > 0) {
		p->argv = pilot_xcalloc(json_array_size(prov) + 1, sizeof(char *));
		size_t n;
		json_array_foreach(prov, n, v) {
			if (!json_is_string(v))
				return pool_err(i, "provisioner", "expected a command: a list of strings");
			p->argv[p->argc++] = pilot_xstrdup(json_string_value(v));
		}
	}
	if (!p->argc || !*p->argv[0])
		return pool_err(i, "provisioner", "expected a command: a list of strings (the program, then its arguments)");
	int r;
	if ((r = num(json_object_get(j, "max"), i, "max", 1, 10000, 1, &p->max)) < 0 ||
	    (r = num(json_object_get(j, "min"), i, "min", 0, 10000, 0, &p->min)) < 0 ||
	    (r = dur(json_object_get(j, "idle_timeout"), i, "idle_timeout", 5 * 60 * 1000, &p->idle_timeout_ms)) < 0 ||
	    (r = dur(json_object_get(j, "max_lifetime"), i, "max_lifetime", 0, &p->max_lifetime_ms)) < 0 ||
	    (r = dur(json_object_get(j, "launch_timeout"), i, "launch_timeout", DEFAULT_LAUNCH_TIMEOUT_MS,
		     &p->launch_timeout_ms)) < 0)
		return r;
	if (p->min > p->max)
		return pool_err(i, "min", "more than max");
	json_t *cost = json_object_get(j, "cost_per_hour");
	if (json_is_number(cost))
		p->cost_per_hour = json_number_value(cost);
	else if (json_is_string(cost)) {
		char *end = NULL;
		p->cost_per_hour = strtod(json_string_value(cost), &end);
		if (!end || *end || end == json_string_value(cost) || p->cost_per_hour < 0)
			return pool_err(i, "cost_per_hour", "expected a number (the cost of one machine for an hour)");
	} else if (cost && !json_is_null(cost))
		return pool_err(i, "cost_per_hour", "expected a number");
	const char *url = json_string_value(json_object_get(j, "server_url"));
	if (url && *url)
		p->server_url = pilot_xstrdup(url);
	return 0;
}

static int64_t env_ms(const char *name, int64_t def)
{
	const char *v = getenv(name);
	int64_t ms;
	if (!v || !*v || pilot_parse_duration(v, &ms) < 0 || ms <= 0) {
		pilot_error_clear();
		return def;
	}
	return ms;
}

int fleet_new(struct server *srv, const char *pools_json)
{
	if (!pools_json || !*pools_json || !strcmp(pools_json, "null"))
		return 0;
	json_error_t e;
	json_t *j = json_loads(pools_json, JSON_DECODE_ANY, &e);
	if (!json_is_array(j)) {
		json_decref(j);
		return pilot_error_set(PILOT_EINVALID, "pools: expected a list of pools");
	}
	struct fleet *f = pilot_xcalloc(1, sizeof(*f));
	f->srv = srv;
	f->npools = json_array_size(j);
	f->pools = pilot_xcalloc(f->npools + 1, sizeof(*f->pools));
	pthread_mutex_init(&f->lock, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&f->cond, &ca);
	pthread_condattr_destroy(&ca);
	f->tick_ms = env_ms("PILOT_PROVISION_INTERVAL", DEFAULT_TICK_MS);
	f->list_ms = env_ms("PILOT_PROVISION_LIST_INTERVAL", DEFAULT_LIST_MS);
	f->backoff_ms = env_ms("PILOT_PROVISION_BACKOFF", DEFAULT_BACKOFF_MS);
	srv->fleet = f;
	int r = 0;
	for (size_t i = 0; i < f->npools && r == 0; i++) {
		r = parse_pool(json_array_get(j, i), i, &f->pools[i]);
		for (size_t k = 0; k < i && r == 0; k++)
			if (!strcmp(f->pools[k].name, f->pools[i].name))
				r = pool_err(i, "name", "used by another pool");
	}
	json_decref(j);
	return r;
}

void fleet_free(struct server *srv)
{
	struct fleet *f = srv->fleet;
	if (!f)
		return;
	for (size_t i = 0; i < f->npools; i++)
		pool_free(&f->pools[i]);
	free(f->pools);
	free(f->idle);
	pthread_mutex_destroy(&f->lock);
	pthread_cond_destroy(&f->cond);
	free(f);
	srv->fleet = NULL;
}

/* ---- calling a provisioner -------------------------------------------------- */

static void drain_fd(int fd, struct pilot_buf *b, bool *open)
{
	char tmp[4096];
	ssize_t n = read(fd, tmp, sizeof(tmp));
	if (n > 0 && b->len < CALL_OUTPUT_MAX)
		pilot_buf_append(b, tmp, (size_t)n);
	else if (n == 0 || (n < 0 && errno != EINTR && errno != EAGAIN))
		*open = false;
}

/* Run the pool's provisioner with ACTION and the JSON request on stdin; the parsed
 * answer in *out (NULL when stdout is empty). Errors quote its stderr. */
static int call(struct pool *p, const char *action, json_t *req, json_t **out)
{
	*out = NULL;
	int in[2] = { -1, -1 }, o[2] = { -1, -1 }, e[2] = { -1, -1 };
	if (pipe2(in, O_CLOEXEC) < 0 || pipe2(o, O_CLOEXEC) < 0 || pipe2(e, O_CLOEXEC) < 0) {
		int err = errno;
		for (int k = 0; k < 2; k++) {
			if (in[k] >= 0)
				close(in[k]);
			if (o[k] >= 0)
				close(o[k]);
			if (e[k] >= 0)
				close(e[k]);
		}
		return pilot_error_errno(PILOT_EIO, err, "cannot run the provisioner of pool '%s'", p->name);
	}
	char **argv = pilot_xcalloc(p->argc + 2, sizeof(char *));
	for (size_t i = 0; i < p->argc; i++)
		argv[i] = p->argv[i];
	argv[p->argc] = (char *)action;
	posix_spawn_file_actions_t fa;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, in[0], 0);
	posix_spawn_file_actions_adddup2(&fa, o[1], 1);
	posix_spawn_file_actions_adddup2(&fa, e[1], 2);
	/* Nothing of the server's (its listening socket above all) goes to the machines a
	 * provisioner may start. */
	posix_spawn_file_actions_addclosefrom_np(&fa, 3);
	posix_spawnattr_t sa;
	posix_spawnattr_init(&sa);
	sigset_t none;
	sigemptyset(&none);
	posix_spawnattr_setsigmask(&sa, &none);
	posix_spawnattr_setflags(&sa, POSIX_SPAWN_SETSIGMASK);
	pid_t pid;
	int rc = posix_spawnp(&pid, argv[0], &fa, &sa, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	posix_spawnattr_destroy(&sa);
	free(argv);
	close(in[0]);
	close(o[1]);
	close(e[1]);
	if (rc != 0) {
		close(in[1]);
		close(o[0]);
		close(e[0]);
		return pilot_error_errno(PILOT_EIO, rc, "cannot run the provisioner of pool '%s' ('%s')", p->name, p->argv[0]);
	}
	char *text = json_dumps(req, JSON_COMPACT);
	if (text) {
		size_t len = strlen(text), off = 0;
		signal(SIGPIPE, SIG_IGN);
		while (off < len) {
			ssize_t n = write(in[1], text + off, len - off);
			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0)
				break;
			off += (size_t)n;
		}
		explicit_bzero(text, len);
		free(text);
	}
	close(in[1]);
	_cleanup_buf_ struct pilot_buf sout = PILOT_BUF_INIT, serr = PILOT_BUF_INIT;
	bool oo = true, eo = true, timed_out = false;
	int64_t end = pilot_mono_ms() + CALL_TIMEOUT_MS;
	while (oo || eo) {
		struct pollfd pf[2] = { { oo ? o[0] : -1, POLLIN, 0 }, { eo ? e[0] : -1, POLLIN, 0 } };
		int64_t left = end - pilot_mono_ms();
		if (left <= 0) {
			timed_out = true;
			kill(pid, SIGKILL);
			break;
		}
		int n = poll(pf, 2, (int)(left > 1000 ? 1000 : left));
		if (n < 0 && errno != EINTR)
			break;
		if (oo && (pf[0].revents & (POLLIN | POLLHUP | POLLERR)))
			drain_fd(o[0], &sout, &oo);
		if (eo && (pf[1].revents & (POLLIN | POLLHUP | POLLERR)))
			drain_fd(e[0], &serr, &eo);
	}
	close(o[0]);
	close(e[0]);
	int status = 0;
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	/* The last line of stderr says what went wrong, usually. */
	while (serr.len && (serr.data[serr.len - 1] == '\n' || serr.data[serr.len - 1] == ' '))
		serr.data[--serr.len] = '\0';
	const char *said = pilot_buf_str(&serr);
	const char *nl = strrchr(said, '\n');
	said = nl ? nl + 1 : said;
	if (timed_out)
		return pilot_error_set(PILOT_EFAIL, "the provisioner of pool '%s' did not answer %s within %ds", p->name,
				       action, CALL_TIMEOUT_MS / 1000);
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		char how[32];
		if (WIFEXITED(status))
			snprintf(how, sizeof(how), "exit code %d", WEXITSTATUS(status));
		else
			snprintf(how, sizeof(how), "signal %d", WIFSIGNALED(status) ? WTERMSIG(status) : 0);
		return pilot_error_set(PILOT_EFAIL, "the provisioner of pool '%s' failed to %s (%s)%s%s", p->name, action,
				       how, *said ? ": " : "", said);
	}
	if (!sout.len)
		return 0;
	json_error_t je;
	*out = json_loadb(sout.data, sout.len, 0, &je);
	if (!*out)
		return pilot_error_set(PILOT_EFAIL, "the provisioner of pool '%s' answered %s with invalid JSON: %s", p->name,
				       action, je.text);
	return 0;
}

/* ---- one tick ------------------------------------------------------------------ */

static struct pool *pool_named(struct fleet *f, const char *name)
{
	for (size_t i = 0; i < f->npools; i++)
		if (!strcmp(f->pools[i].name, name))
			return &f->pools[i];
	return NULL;
}

static const struct pilot_agent_info *agent_named(const struct pilot_agent_list *l, const char *name)
{
	for (size_t i = 0; i < l->n; i++)
		if (!strcmp(l->items[i].name, name))
			return &l->items[i];
	return NULL;
}

/* Ask the provisioner to destroy it; terminated once it says so (or when it was
 * never launched). The agent's token goes with it. */
static void terminate(struct fleet *f, struct pool *p, struct pilot_instance *in, const char *why)
{
	struct pilot_store *st = f->srv->st;
	int64_t now = pilot_now_ms();
	if (in->provider_id && p) {
		json_t *req = json_pack("{s:s,s:s,s:s}", "action", "terminate", "pool", p->name, "instance_id", in->provider_id);
		json_t *res = NULL;
		int r = call(p, "terminate", req, &res);
		json_decref(req);
		json_decref(res);
		if (r < 0) {
			_cleanup_free_ char *msg = pilot_xstrdup(pilot_error_last());
			pilot_log(PILOT_LOG_WARN, "instance %s (%s): %s; trying again", in->id, in->provider_id, msg);
			if (in->state != PILOT_INSTANCE_TERMINATING)
				pilot_store_instance_update(st, in->id, PILOT_INSTANCE_TERMINATING, NULL, 0, 0, why);
			in->state = PILOT_INSTANCE_TERMINATING;
			return;
		}
	}
	pilot_log(PILOT_LOG_NOTICE, "instance %s of pool %s (%s) terminated: %s", in->id, in->pool,
		  in->provider_id ? in->provider_id : "never launched", why);
	if (pilot_store_instance_update(st, in->id, PILOT_INSTANCE_TERMINATED, NULL, 0, now, why) < 0)
		pilot_log(PILOT_LOG_WARN, "instance %s: %s", in->id, pilot_error_last());
	if (in->token_id && pilot_store_token_revoke(st, in->token_id) < 0)
		pilot_error_clear();
	in->state = PILOT_INSTANCE_TERMINATED;
}

static void launch_failed(struct fleet *f, struct pool *p, const char *msg)
{
	pthread_mutex_lock(&f->lock);
	p->failures++;
	int64_t d = f->backoff_ms;
	for (int k = 1; k < p->failures && d < MAX_BACKOFF_MS; k++)
		d *= 2;
	if (d > MAX_BACKOFF_MS)
		d = MAX_BACKOFF_MS;
	p->retry_at_ms = pilot_now_ms() + d;
	free(p->last_error);
	p->last_error = pilot_xstrdup(msg);
	int n = p->failures;
	pthread_mutex_unlock(&f->lock);
	char ds[32];
	pilot_format_duration(d, ds, sizeof(ds));
	pilot_log(PILOT_LOG_WARN, "pool %s: %s (%d in a row; next try in %s)", p->name, msg, n, ds);
}

static bool in_backoff(struct fleet *f, struct pool *p)
{
	pthread_mutex_lock(&f->lock);
	bool b = p->failures && pilot_now_ms() < p->retry_at_ms;
	pthread_mutex_unlock(&f->lock);
	return b;
}

/* Launch one instance of p, for run (may be NULL: to keep min). */
static bool launch(struct fleet *f, struct pool *p, const struct pilot_run *run)
{
	struct pilot_store *st = f->srv->st;
	struct pilot_instance in = { 0 };
	pilot_id_new('i', in.id);
	in.pool = pilot_xstrdup(p->name);
	in.agent = pilot_xasprintf("%s-%s", p->name, in.id);
	in.run_id = run ? pilot_xstrdup(run->id) : NULL;
	in.cost_per_hour = p->cost_per_hour;
	in.state = PILOT_INSTANCE_LAUNCHING;
	char secret[PILOT_TOKEN_SIZE];
	struct pilot_token_record tok = { 0 };
	_cleanup_free_ char *tname = pilot_xasprintf("instance-%s", in.id);
	int64_t life = p->max_lifetime_ms > 0 ? p->max_lifetime_ms + p->launch_timeout_ms : 0;
	int r = pilot_server_token_create(st, tname, PILOT_SCOPE_AGENT, life ? pilot_now_ms() + life : 0, in.agent, false,
					  secret, &tok);
	if (r == 0) {
		in.token_id = pilot_xstrdup(tok.id);
		pilot_token_record_clear(&tok);
		r = pilot_store_instance_add(st, &in);
	}
	if (r < 0) {
		pilot_log(PILOT_LOG_ERROR, "pool %s: cannot record an instance: %s", p->name, pilot_error_last());
		if (in.token_id)
			pilot_store_token_revoke(st, in.token_id);
		explicit_bzero(secret, sizeof(secret));
		pilot_instance_clear(&in);
		return false;
	}
	json_t *labels = json_object();
	for (size_t i = 0; i < p->labels.n; i++)
		json_object_set_new(labels, p->labels.items[i].key, json_string(p->labels.items[i].value ? p->labels.items[i].value : ""));
	json_t *resources = json_null();
	if (run && run->spec_json) {
		json_t *spec = json_loads(run->spec_json, 0, NULL);
		json_t *res = json_object_get(spec, "resources");
		if (res)
			resources = json_incref(res);
		json_decref(spec);
	}
	json_t *req = json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:o,s:o,s:o}", "action", "launch", "pool", p->name, "instance",
				in.id, "agent_name", in.agent, "agent_token", secret, "server_url",
				p->server_url ? p->server_url : f->srv->url, "labels", labels, "run_id",
				run ? json_string(run->id) : json_null(), "resources", resources);
	explicit_bzero(secret, sizeof(secret));
	json_t *res = NULL;
	r = call(p, "launch", req, &res);
	json_decref(req);
	const char *pid = r == 0 ? json_string_value(json_object_get(res, "instance_id")) : NULL;
	bool ok = false;
	if (r == 0 && (!pid || !*pid))
		r = pilot_error_set(PILOT_EFAIL, "the provisioner of pool '%s' answered launch without an instance_id",
				    p->name);
	if (r < 0) {
		_cleanup_free_ char *msg = pilot_xstrdup(pilot_error_last());
		terminate(f, p, &in, msg);
		launch_failed(f, p, msg);
	} else {
		pilot_store_instance_update(st, in.id, PILOT_INSTANCE_LAUNCHING, pid, 0, 0, NULL);
		pilot_log(PILOT_LOG_NOTICE, "pool %s: launched instance %s (%s) as agent %s%s%s", p->name, in.id, pid, in.agent,
			  run ? " for run " : "", run ? run->id : "");
		pthread_mutex_lock(&f->lock);
		p->failures = 0;
		free(p->last_error);
		p->last_error = NULL;
		pthread_mutex_unlock(&f->lock);
		ok = true;
	}
	json_decref(res);
	pilot_instance_clear(&in);
	return ok;
}

static struct idle_mark *idle_of(struct fleet *f, const char *id, bool add)
{
	for (size_t i = 0; i < f->nidle; i++)
		if (!strcmp(f->idle[i].id, id))
			return &f->idle[i];
	if (!add)
		return NULL;
	f->idle = pilot_xrealloc(f->idle, (f->nidle + 1) * sizeof(*f->idle));
	struct idle_mark *m = &f->idle[f->nidle++];
	memcpy(m->id, id, PILOT_ID_SIZE);
	m->since = pilot_now_ms();
	return m;
}

static void idle_forget(struct fleet *f, const char *id)
{
	for (size_t i = 0; i < f->nidle; i++)
		if (!strcmp(f->idle[i].id, id)) {
			f->idle[i] = f->idle[--f->nidle];
			return;
		}
}

static void tell(struct fleet *f, const struct pilot_instance *in, bool now, const char *why)
{
	if (pilot_store_agent_control(f->srv->st, in->agent, "shutdown", now, "pilot", NULL) < 0) {
		pilot_log(PILOT_LOG_WARN, "instance %s: cannot shut its agent down: %s", in->id, pilot_error_last());
		return;
	}
	pilot_log(PILOT_LOG_NOTICE, "instance %s of pool %s: %s: its agent %s is told to shut down", in->id, in->pool, why,
		  in->agent);
	server_tell_agent(f->srv, in->agent, PILOT_CONTROL_SHUTDOWN);
}

/* Follow one live instance through its agent. */
static void follow(struct fleet *f, struct pilot_instance *in, const struct pilot_agent_list *agents, int64_t now)
{
	struct pool *p = pool_named(f, in->pool);
	if (!p) {
		terminate(f, NULL, in, "its pool is no longer configured");
		return;
	}
	if (in->state == PILOT_INSTANCE_TERMINATING) {
		terminate(f, p, in, in->message ? in->message : "terminating");
		return;
	}
	const struct pilot_agent_info *a = agent_named(agents, in->agent);
	if (in->state == PILOT_INSTANCE_LAUNCHING) {
		if (a) {
			pilot_store_instance_update(f->srv->st, in->id, PILOT_INSTANCE_RUNNING, NULL, now, 0, NULL);
			in->state = PILOT_INSTANCE_RUNNING;
		} else if (now - in->launched_ms > p->launch_timeout_ms) {
			char d[32];
			pilot_format_duration(p->launch_timeout_ms, d, sizeof(d));
			_cleanup_free_ char *msg = pilot_xasprintf("its agent did not register within launch_timeout (%s)", d);
			terminate(f, p, in, msg);
			_cleanup_free_ char *fail = pilot_xasprintf("instance %s: %s", in->id, msg);
			launch_failed(f, p, fail);
			return;
		} else {
			return;
		}
	}
	if (!a || a->state == PILOT_AGENT_OFFLINE) {
		idle_forget(f, in->id);
		terminate(f, p, in, "its agent exited");
		return;
	}
	if (a->state == PILOT_AGENT_LOST) {
		idle_forget(f, in->id);
		terminate(f, p, in, "its agent was lost");
		return;
	}
	if (p->max_lifetime_ms > 0 && now - in->launched_ms > p->max_lifetime_ms) {
		if (now - in->launched_ms > p->max_lifetime_ms + p->launch_timeout_ms)
			terminate(f, p, in, "it outlived max_lifetime and its agent did not stop");
		else if (a->control != PILOT_CONTROL_SHUTDOWN)
			tell(f, in, true, "it reached max_lifetime");
		return;
	}
	if (a->state == PILOT_AGENT_IDLE) {
		struct idle_mark *m = idle_of(f, in->id, true);
		/* The pool keeps min instances, idle or not (active: as of the last tick). */
		if (now - m->since > p->idle_timeout_ms && a->control != PILOT_CONTROL_SHUTDOWN && p->active > p->min) {
			tell(f, in, false, "idle for idle_timeout");
			p->active--;
		}
	} else {
		idle_forget(f, in->id);
	}
}

/* Terminate what the provisioner runs that we do not know; adopt an instance whose
 * launch answer was lost (known by its agent name). */
static void reap_orphans(struct fleet *f, struct pool *p, struct pilot_instance *live, size_t nlive)
{
	json_t *req = json_pack("{s:s,s:s}", "action", "list", "pool", p->name);
	json_t *res = NULL;
	int r = call(p, "list", req, &res);
	json_decref(req);
	if (r < 0) {
		pilot_log(PILOT_LOG_WARN, "pool %s: %s", p->name, pilot_error_last());
		json_decref(res);
		return;
	}
	json_t *items = json_object_get(res, "instances");
	size_t i;
	json_t *x;
	json_array_foreach(items, i, x) {
		const char *pid = json_string_value(json_object_get(x, "instance_id"));
		const char *agent = json_string_value(json_object_get(x, "agent_name"));
		if (!pid || !*pid)
			continue;
		struct pilot_instance *known = NULL;
		for (size_t k = 0; k < nlive && !known; k++) {
			struct pilot_instance *in = &live[k];
			if (in->state == PILOT_INSTANCE_TERMINATED || strcmp(in->pool, p->name))
				continue;
			if ((in->provider_id && !strcmp(in->provider_id, pid)) ||
			    (!in->provider_id && agent && !strcmp(in->agent, agent)))
				known = in;
		}
		if (known && !known->provider_id) {
			pilot_store_instance_update(f->srv->st, known->id, known->state, pid, 0, 0, NULL);
			known->provider_id = pilot_xstrdup(pid);
			continue;
		}
		if (known)
			continue;
		json_t *treq = json_pack("{s:s,s:s,s:s}", "action", "terminate", "pool", p->name, "instance_id", pid);
		json_t *tres = NULL;
		if (call(p, "terminate", treq, &tres) < 0)
			pilot_log(PILOT_LOG_WARN, "pool %s: orphan %s: %s", p->name, pid, pilot_error_last());
		else
			pilot_log(PILOT_LOG_NOTICE, "pool %s: terminated orphan instance %s%s%s", p->name, pid,
				  agent ? " of agent " : "", agent ? agent : "");
		json_decref(treq);
		json_decref(tres);
	}
	json_decref(res);
}

static void tick(struct fleet *f)
{
	struct pilot_store *st = f->srv->st;
	int64_t now = pilot_now_ms();
	struct pilot_instance *live = NULL;
	size_t nlive = 0;
	struct pilot_agent_list agents = { 0 };
	if (pilot_store_instance_list(st, 0, &live, &nlive) < 0 || pilot_store_list_agents(st, false, &agents) < 0) {
		pilot_log(PILOT_LOG_WARN, "the fleet cannot read the store: %s", pilot_error_last());
		goto out;
	}
	for (size_t i = 0; i < nlive; i++)
		follow(f, &live[i], &agents, now);
	for (size_t i = 0; i < f->npools; i++) {
		struct pool *p = &f->pools[i];
		if (now >= p->next_list_ms) {
			reap_orphans(f, p, live, nlive);
			p->next_list_ms = now + f->list_ms;
		}
	}

	/* The count of each pool's live instances, and which launching ones are still free
	 * to take a queued run. */
	bool *spare = pilot_xcalloc(nlive + 1, sizeof(bool));
	for (size_t i = 0; i < f->npools; i++) {
		f->pools[i].active = 0;
		memset(f->pools[i].n, 0, sizeof(f->pools[i].n));
	}
	for (size_t i = 0; i < nlive; i++) {
		struct pool *p = pool_named(f, live[i].pool);
		if (!p || live[i].state == PILOT_INSTANCE_TERMINATED)
			continue;
		p->n[live[i].state]++;
		if (live[i].state != PILOT_INSTANCE_TERMINATING)
			p->active++;
		spare[i] = live[i].state == PILOT_INSTANCE_LAUNCHING;
	}
	bool *free_agent = pilot_xcalloc(agents.n + 1, sizeof(bool));
	for (size_t i = 0; i < agents.n; i++)
		free_agent[i] = agents.items[i].state == PILOT_AGENT_IDLE && agents.items[i].control == PILOT_CONTROL_NONE;

	struct pilot_run_filter rf = { .states = PILOT_RUN_STATE_BIT(PILOT_RUN_QUEUED), .limit = 1000 };
	struct pilot_run_list q = { 0 };
	if (pilot_store_list_runs(st, &rf, &q) < 0) {
		pilot_log(PILOT_LOG_WARN, "the fleet cannot list queued runs: %s", pilot_error_last());
		q.n = 0;
	}
	for (size_t r = 0; r < q.n; r++) {
		const struct pilot_run *run = &q.items[r];
		if (run->held)
			continue;
		/* An idle agent that could take it, else an instance on its way. */
		bool covered = false;
		for (size_t i = 0; i < agents.n && !covered; i++)
			if (free_agent[i] && pilot_kvs_satisfies(&agents.items[i].labels, &run->requires)) {
				free_agent[i] = false;
				covered = true;
			}
		for (size_t i = 0; i < nlive && !covered; i++) {
			struct pool *p = spare[i] ? pool_named(f, live[i].pool) : NULL;
			if (p && pilot_kvs_satisfies(&p->labels, &run->requires)) {
				spare[i] = false;
				covered = true;
			}
		}
		for (size_t i = 0; i < f->npools && !covered; i++) {
			struct pool *p = &f->pools[i];
			if (!pilot_kvs_satisfies(&p->labels, &run->requires))
				continue;
			covered = true; /* by this pool, now or once it may launch again */
			if (p->active >= p->max || in_backoff(f, p))
				break;
			struct pilot_run full = { 0 };
			bool got = pilot_store_get_run(st, run->id, &full) == 0;
			if (!got)
				pilot_error_clear();
			if (launch(f, p, got ? &full : run)) {
				p->active++;
				p->n[PILOT_INSTANCE_LAUNCHING]++;
			}
			pilot_run_clear(&full);
		}
	}
	pilot_run_list_clear(&q);
	for (size_t i = 0; i < f->npools; i++) {
		struct pool *p = &f->pools[i];
		while (p->active < p->min && !in_backoff(f, p) && launch(f, p, NULL)) {
			p->active++;
			p->n[PILOT_INSTANCE_LAUNCHING]++;
		}
	}
	pthread_mutex_lock(&f->lock);
	for (size_t i = 0; i < f->npools; i++) {
		f->pools[i].launching = f->pools[i].n[PILOT_INSTANCE_LAUNCHING];
		f->pools[i].running = f->pools[i].n[PILOT_INSTANCE_RUNNING];
		f->pools[i].terminating = f->pools[i].n[PILOT_INSTANCE_TERMINATING];
	}
	pthread_mutex_unlock(&f->lock);
	free(spare);
	free(free_agent);
out:
	for (size_t i = 0; i < nlive; i++)
		pilot_instance_clear(&live[i]);
	free(live);
	pilot_agent_list_clear(&agents);
}

static void *fleet_main(void *arg)
{
	struct fleet *f = arg;
	pthread_mutex_lock(&f->lock);
	while (!f->stop) {
		f->poked = false;
		pthread_mutex_unlock(&f->lock);
		tick(f);
		pilot_error_clear();
		pthread_mutex_lock(&f->lock);
		if (f->stop || f->poked)
			continue;
		struct timespec ts;
		clock_gettime(CLOCK_MONOTONIC, &ts);
		int64_t until = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000 + f->tick_ms;
		ts.tv_sec = (time_t)(until / 1000);
		ts.tv_nsec = (long)(until % 1000) * 1000000L;
		pthread_cond_timedwait(&f->cond, &f->lock, &ts);
	}
	pthread_mutex_unlock(&f->lock);
	return NULL;
}

int fleet_start(struct server *srv)
{
	struct fleet *f = srv->fleet;
	if (!f || !f->npools)
		return 0;
	struct pilot_kvs *labels = pilot_xcalloc(f->npools, sizeof(*labels));
	for (size_t i = 0; i < f->npools; i++)
		labels[i] = f->pools[i].labels;
	pilot_store_set_pool_labels(srv->st, labels, f->npools);
	free(labels);
	if (pthread_create(&f->thread, NULL, fleet_main, f) != 0)
		return pilot_error_set(PILOT_ENOMEM, "cannot start the fleet thread");
	f->started = true;
	for (size_t i = 0; i < f->npools; i++)
		pilot_log(PILOT_LOG_NOTICE, "pool %s: up to %d machine%s with labels of their own, launched by '%s'",
			  f->pools[i].name, f->pools[i].max, f->pools[i].max == 1 ? "" : "s", f->pools[i].argv[0]);
	return 0;
}

void fleet_stop(struct server *srv)
{
	struct fleet *f = srv->fleet;
	if (!f || !f->started)
		return;
	pthread_mutex_lock(&f->lock);
	f->stop = true;
	pthread_cond_signal(&f->cond);
	pthread_mutex_unlock(&f->lock);
	pthread_join(f->thread, NULL);
	f->started = false;
}

void fleet_poke(struct server *srv)
{
	struct fleet *f = srv->fleet;
	if (!f || !f->started)
		return;
	pthread_mutex_lock(&f->lock);
	f->poked = true;
	pthread_cond_signal(&f->cond);
	pthread_mutex_unlock(&f->lock);
}

void fleet_status(struct server *srv, struct pilot_status *st)
{
	struct fleet *f = srv->fleet;
	if (!f || !f->npools)
		return;
	int64_t now = pilot_now_ms();
	st->pools = pilot_xcalloc(f->npools, sizeof(*st->pools));
	for (size_t i = 0; i < f->npools; i++) {
		struct pool *p = &f->pools[i];
		struct pilot_pool_status *o = &st->pools[st->npools++];
		o->name = pilot_xstrdup(p->name);
		o->max = p->max;
		if (pilot_store_instance_totals(srv->st, p->name, now, &o->launched_total, &o->cost) < 0)
			pilot_error_clear();
		pthread_mutex_lock(&f->lock);
		o->launching = p->launching;
		o->running = p->running;
		o->terminating = p->terminating;
		o->failures = p->failures;
		o->last_error = p->last_error ? pilot_xstrdup(p->last_error) : NULL;
		o->retry_at_ms = p->failures ? p->retry_at_ms : 0;
		pthread_mutex_unlock(&f->lock);
	}
}
