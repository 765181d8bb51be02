/* The pure half of the engine client: engine addresses, image references, the container
 * create request built from a job, error bodies and the pull progress stream. Nothing
 * here talks to an engine, so all of it is unit-tested directly. */
#include <string.h>

#include <jansson.h>

#include "runtime-internal.h"

int runtime_endpoint_parse(const char *endpoint, char **socket_path, char **base_url)
{
	*socket_path = *base_url = NULL;
	const char *path = NULL;
	if (pilot_str_has_prefix(endpoint, "unix://"))
		path = endpoint + 7;
	else if (endpoint[0] == '/')
		path = endpoint;
	if (path) {
		if (path[0] != '/')
			return pilot_error_set(PILOT_EINVALID, "invalid engine address '%s': expected unix:///absolute/path",
					       endpoint);
		*socket_path = pilot_xstrdup(path);
		*base_url = pilot_xstrdup("http://localhost");
		return 0;
	}
	const char *hostport = NULL;
	if (pilot_str_has_prefix(endpoint, "tcp://"))
		hostport = endpoint + 6;
	else if (pilot_str_has_prefix(endpoint, "http://"))
		hostport = endpoint + 7;
	if (!hostport)
		return pilot_error_set(PILOT_EINVALID,
				       "unsupported engine address '%s': expected unix:///path or tcp://host:port", endpoint);
	size_t n = strcspn(hostport, "/");
	if (n == 0)
		return pilot_error_set(PILOT_EINVALID, "invalid engine address '%s': no host", endpoint);
	_cleanup_free_ char *hp = pilot_xstrndup(hostport, n);
	/* A port after the last ':' outside of [v6] brackets; docker's default is 2375. */
	const char *colon = strrchr(hp, ':');
	const char *bracket = strrchr(hp, ']');
	if (colon && (!bracket || colon > bracket))
		*base_url = pilot_xasprintf("http://%s", hp);
	else
		*base_url = pilot_xasprintf("http://%s:2375", hp);
	return 0;
}

int runtime_image_split(const char *ref, char **name, char **tag)
{
	*name = *tag = NULL;
	if (!ref || !*ref)
		return pilot_error_set(PILOT_EINVALID, "invalid image reference: empty");
	for (const char *p = ref; *p; p++) {
		char c = *p;
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || strchr("._-/:@", c)))
			return pilot_error_set(PILOT_EINVALID, "invalid image reference '%s': unexpected character '%c'",
					       ref, c);
	}
	const char *at = strchr(ref, '@');
	if (at) {
		if (at == ref || !at[1])
			return pilot_error_set(PILOT_EINVALID, "invalid image reference '%s'", ref);
		/* name:tag@digest pulls by digest; the tag is only decoration. */
		const char *end = at;
		const char *slash = memrchr(ref, '/', (size_t)(at - ref));
		const char *colon = memrchr(slash ? slash : ref, ':', (size_t)(at - (slash ? slash : ref)));
		if (colon)
			end = colon;
		*name = pilot_xstrndup(ref, (size_t)(end - ref));
		*tag = pilot_xstrdup(at + 1);
		return 0;
	}
	const char *slash = strrchr(ref, '/');
	const char *colon = strrchr(slash ? slash : ref, ':');
	if (colon) {
		if (colon == ref || !colon[1])
			return pilot_error_set(PILOT_EINVALID, "invalid image reference '%s'", ref);
		*name = pilot_xstrndup(ref, (size_t)(colon - ref));
		*tag = pilot_xstrdup(colon + 1);
	} else {
		*name = pilot_xstrdup(ref);
		*tag = pilot_xstrdup("latest");
	}
	return 0;
}

int runtime_api_minor(const char *version)
{
	if (!version || !pilot_str_has_prefix(version, "1."))
		return -1;
	int64_t v;
	if (pilot_parse_int64(version + 2, 0, 999, &v) < 0) {
		pilot_error_clear();
		return -1;
	}
	return (int)v;
}

char *runtime_engine_message(const char *body, size_t len)
{
	json_t *v = json_loadb(body, len, 0, NULL);
	if (!v)
		return NULL;
	const char *m = json_string_value(json_object_get(v, "message"));
	char *out = m && *m ? pilot_xstrdup(m) : NULL;
	json_decref(v);
	if (out) {
		size_t n = strlen(out);
		while (n && (out[n - 1] == '\n' || out[n - 1] == ' '))
			out[--n] = '\0';
	}
	return out;
}

static json_t *string_array(const char *const *v, size_t n)
{
	json_t *a = json_array();
	for (size_t i = 0; i < n; i++)
		json_array_append_new(a, json_string(v[i]));
	return a;
}

char *runtime_create_body(const struct pilot_job *job, bool podman, const char *owner)
{
	const char *workdir = job->workdir ? job->workdir : PILOT_JOB_DEFAULT_WORKDIR;
	json_t *body = json_object();
	json_object_set_new(body, "Image", json_string(job->image));
	/* The command replaces the image's entrypoint too (as `--entrypoint argv0 img args`):
	 * the spec's command is what runs, whatever the image was built to do. */
	if (job->argc) {
		if (job->shell) {
			const char *ep[] = { "/bin/sh" };
			const char *cmd[] = { "-c", job->argv[0] };
			json_object_set_new(body, "Entrypoint", string_array(ep, 1));
			json_object_set_new(body, "Cmd", string_array(cmd, 2));
		} else {
			json_object_set_new(body, "Entrypoint", string_array(job->argv, 1));
			json_object_set_new(body, "Cmd", string_array(job->argv + 1, job->argc - 1));
		}
	}
	json_object_set_new(body, "Env", string_array(job->env, job->nenv));
	json_object_set_new(body, "WorkingDir", json_string(workdir));
	if (job->user)
		json_object_set_new(body, "User", json_string(job->user));
	json_object_set_new(body, "Tty", json_false());
	json_object_set_new(body, "OpenStdin", json_false());
	json_object_set_new(body, "AttachStdin", json_false());
	json_object_set_new(body, "AttachStdout", json_true());
	json_object_set_new(body, "AttachStderr", json_true());

	json_t *labels = json_object();
	json_object_set_new(labels, "pilot.managed", json_string("1"));
	if (job->run_id)
		json_object_set_new(labels, "pilot.run", json_string(job->run_id));
	json_object_set_new(labels, "pilot.attempt", json_sprintf("%d", job->attempt));
	if (owner)
		json_object_set_new(labels, "pilot.owner", json_string(owner));
	json_object_set_new(body, "Labels", labels);

	json_t *hc = json_object();
	json_t *mount = json_object();
	json_object_set_new(mount, "Type", json_string("bind"));
	json_object_set_new(mount, "Source", json_string(job->workspace));
	json_object_set_new(mount, "Target", json_string(workdir));
	json_object_set_new(mount, "ReadOnly", json_false());
	json_t *mounts = json_array();
	json_array_append_new(mounts, mount);
	json_object_set_new(hc, "Mounts", mounts);

	const struct pilot_resources *res = &job->res;
	if (res->cpus > 0)
		json_object_set_new(hc, "NanoCpus", json_integer((json_int_t)(res->cpus * 1e9 + 0.5)));
	if (res->memory) {
		json_object_set_new(hc, "Memory", json_integer((json_int_t)res->memory));
		/* Memory + swap = memory: the limit means what it says. */
		json_object_set_new(hc, "MemorySwap", json_integer((json_int_t)res->memory));
	}
	int64_t pids = res->pids == 0 ? PILOT_JOB_DEFAULT_PIDS : res->pids;
	json_object_set_new(hc, "PidsLimit", json_integer(pids));
	if (res->shm)
		json_object_set_new(hc, "ShmSize", json_integer((json_int_t)res->shm));
	if (res->gpus) {
		json_t *dr = json_object();
		json_object_set_new(dr, "Driver", json_string(""));
		json_object_set_new(dr, "Count", json_integer(res->gpus < 0 ? -1 : res->gpus));
		json_t *caps = json_array(), *inner = json_array();
		json_array_append_new(inner, json_string("gpu"));
		json_array_append_new(caps, inner);
		json_object_set_new(dr, "Capabilities", caps);
		json_t *drs = json_array();
		json_array_append_new(drs, dr);
		json_object_set_new(hc, "DeviceRequests", drs);
	}
	if (job->privileged) {
		json_object_set_new(hc, "Privileged", json_true());
	} else {
		const char *drop[] = { "ALL" };
		const char *sec[] = { "no-new-privileges" };
		json_object_set_new(hc, "CapDrop", string_array(drop, 1));
		json_object_set_new(hc, "SecurityOpt", string_array(sec, 1));
	}
	if (job->network)
		json_object_set_new(hc, "NetworkMode", json_string(job->network));
	if (podman) {
		/* The limits podman would copy from its own process fail under runc here;
		 * explicit ones work everywhere. nproc is per user, so it can only be a
		 * generous backstop behind PidsLimit. */
		int64_t nproc = pids > PILOT_JOB_DEFAULT_PIDS ? pids : PILOT_JOB_DEFAULT_PIDS;
		json_t *ul = json_array();
		json_array_append_new(ul, json_pack("{s:s,s:I,s:I}", "Name", "nofile", "Soft", (json_int_t)1024,
						    "Hard", (json_int_t)20000));
		json_array_append_new(ul, json_pack("{s:s,s:I,s:I}", "Name", "nproc", "Soft", (json_int_t)nproc,
						    "Hard", (json_int_t)nproc));
		json_object_set_new(hc, "Ulimits", ul);
	} else {
		/* docker-init as PID 1: SIGTERM reaches the job even when it installs no
		 * handler (PID 1 ignores default-action signals), and zombies are reaped. */
		json_object_set_new(hc, "Init", json_true());
	}
	json_object_set_new(body, "HostConfig", hc);

	char *s = json_dumps(body, JSON_COMPACT);
	json_decref(body);
	if (!s)
		abort();
	return s;
}

/* ---- pull progress ---- */

struct pull_layer {
	char *id;
	uint64_t current, total;
	bool done;
};

void runtime_pull_init(struct runtime_pull_state *st, const char *image,
		       void (*on_pull)(const struct pilot_pull_progress *p, void *ud), void *ud)
{
	memset(st, 0, sizeof(*st));
	st->image = image;
	st->on_pull = on_pull;
	st->ud = ud;
	pilot_buf_init(&st->line, 1024 * 1024);
}

static struct pull_layer *layer_get(struct runtime_pull_state *st, const char *id)
{
	for (size_t i = 0; i < st->nlayers; i++)
		if (strcmp(st->layers[i].id, id) == 0)
			return &st->layers[i];
	st->layers = pilot_xrealloc(st->layers, (st->nlayers + 1) * sizeof(*st->layers));
	struct pull_layer *l = &st->layers[st->nlayers++];
	memset(l, 0, sizeof(*l));
	l->id = pilot_xstrdup(id);
	return l;
}

static void pull_line(struct runtime_pull_state *st, const char *s, size_t n)
{
	json_t *v = json_loadb(s, n, 0, NULL);
	if (!json_is_object(v)) {
		json_decref(v);
		return;
	}
	const char *err = json_string_value(json_object_get(json_object_get(v, "errorDetail"), "message"));
	if (!err)
		err = json_string_value(json_object_get(v, "error"));
	if (err) {
		if (!st->error)
			st->error = pilot_xstrdup(err);
		json_decref(v);
		return;
	}
	const char *status = json_string_value(json_object_get(v, "status"));
	const char *id = json_string_value(json_object_get(v, "id"));
	if (!status) {
		json_decref(v);
		return;
	}
	struct pilot_pull_progress p = { .image = st->image, .status = status };
	/* "Pulling from library/x" carries the tag as id: not a layer. */
	if (id && !pilot_str_has_prefix(status, "Pulling from") && strlen(id) < 128) {
		struct pull_layer *l = layer_get(st, id);
		json_t *pd = json_object_get(v, "progressDetail");
		json_int_t cur = json_integer_value(json_object_get(pd, "current"));
		json_int_t tot = json_integer_value(json_object_get(pd, "total"));
		if (strcmp(status, "Downloading") == 0 && cur >= 0) {
			l->current = (uint64_t)cur;
			if (tot > 0)
				l->total = (uint64_t)tot;
		}
		if (strcmp(status, "Download complete") == 0 && l->total)
			l->current = l->total;
		if (strcmp(status, "Pull complete") == 0 || strcmp(status, "Already exists") == 0)
			l->done = true;
		p.layer = l->id;
		p.current = l->current;
		p.total = l->total;
	}
	for (size_t i = 0; i < st->nlayers; i++) {
		struct pull_layer *l = &st->layers[i];
		p.layers_total++;
		p.layers_done += l->done;
		p.bytes_total += l->total;
		p.bytes_done += l->done && l->total ? l->total : l->current;
	}
	if (st->on_pull)
		st->on_pull(&p, st->ud);
	json_decref(v);
}

void runtime_pull_feed(struct runtime_pull_state *st, const char *data, size_t len)
{
	while (len) {
		const char *nl = memchr(data, '\n', len);
		size_t take = nl ? (size_t)(nl - data) : len;
		if (pilot_buf_append(&st->line, data, take) < 0)
			pilot_buf_reset(&st->line); /* a line that long is not progress */
		if (!nl)
			return;
		if (st->line.len)
			pull_line(st, st->line.data, st->line.len);
		pilot_buf_reset(&st->line);
		data += take + 1;
		len -= take + 1;
	}
}

void runtime_pull_finish(struct runtime_pull_state *st)
{
	if (st->line.len)
		pull_line(st, st->line.data, st->line.len);
	pilot_buf_reset(&st->line);
}

void runtime_pull_free(struct runtime_pull_state *st)
{
	for (size_t i = 0; i < st->nlayers; i++)
		free(st->layers[i].id);
	free(st->layers);
	free(st->error);
	pilot_buf_free(&st->line);
	memset(st, 0, sizeof(*st));
}
