/* What pilot run and pilot submit share on the way from a project directory to a run:
 * --param/--env pairs as JSON, the secrets the spec names taken from the environment,
 * and the bundle packed and handed to the api unless it has those bytes already. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "project.h"
#include "pilot/bundle.h"
#include "pilot/config.h"
#include "pilot/server.h"
#include "pilot/term.h"

/* KEY=VALUE pairs as a JSON object (NULL when there are none, or on a bad pair). */
char *project_pairs_json(const struct opt_list *l, const char *what, bool env_names)
{
	if (!l->n)
		return NULL;
	json_t *o = json_object();
	for (size_t i = 0; i < l->n; i++) {
		const char *eq = strchr(l->items[i], '=');
		if (!eq || eq == l->items[i]) {
			json_decref(o);
			pilot_error_set(PILOT_EINVALID, "%s '%s' is not KEY=VALUE", what, l->items[i]);
			return NULL;
		}
		_cleanup_free_ char *k = pilot_xstrndup(l->items[i], (size_t)(eq - l->items[i]));
		if (env_names && !pilot_spec_env_name_valid(k)) {
			json_decref(o);
			pilot_error_set(PILOT_EINVALID, "%s '%s': invalid variable name '%s'", what, l->items[i], k);
			return NULL;
		}
		json_object_set_new(o, k, json_string(eq + 1));
	}
	char *s = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS);
	json_decref(o);
	return s;
}

struct progress {
	struct pilot_ctx *ctx;
	int64_t started;
	int64_t last;
	bool drawn;
};

static void pack_progress(const struct pilot_pack_progress *p, void *ud)
{
	struct progress *pr = ud;
	if (p->elapsed_ms < 500 && !pr->drawn)
		return;
	_cleanup_buf_ struct pilot_buf line = PILOT_BUF_INIT;
	pilot_progress_line(p->phase == PILOT_PACK_SCANNING ? "scanning" : "packing", p->files, "files", p->bytes,
			    p->elapsed_ms, &line);
	fprintf(stderr, "\r\033[K%s%s", pilot_buf_str(&line), p->done ? "\n" : "");
	pr->drawn = !p->done;
}

static void upload_progress(uint64_t sent, uint64_t total, void *ud)
{
	struct progress *pr = ud;
	int64_t now = pilot_mono_ms();
	if (!pr->started)
		pr->started = now;
	/* Small uploads finish before a bar would help; then redraw at most 10 times a second. */
	if (now - pr->started < 300 || (now - pr->last < 100 && sent < total))
		return;
	pr->last = now;
	_cleanup_buf_ struct pilot_buf bar = PILOT_BUF_INIT;
	pilot_progress_bar(sent, total, now - pr->started, 30, &bar);
	fprintf(stderr, "\r\033[Kuploading  %s", pilot_buf_str(&bar));
	pr->drawn = true;
}

/* Pack the project and hand the bundle over unless the other side has it already. */
int project_put_bundle(struct pilot_ctx *ctx, struct pilot_api *api, const char *project, const struct pilot_spec *spec,
		       char sha256[65])
{
	struct progress pr = { .ctx = ctx };
	bool bars = ctx->stderr_tty && !ctx->quiet;
	struct pilot_pack_opts po = {
		.dir = project,
		.extra_ignore = (const char *const *)spec->ignore,
		.n_extra_ignore = spec->nignore,
		.progress = bars ? pack_progress : NULL,
		.userdata = &pr,
	};
	const char *max = pilot_config_get(ctx->config, "max_bundle_size", NULL);
	if (max && *max && pilot_parse_size(max, &po.max_size) < 0)
		return pilot_error_prefix(PILOT_EINVALID, "config max_bundle_size");
	_cleanup_close_ int fd = pilot_open_temp();
	if (fd < 0)
		return fd;
	struct pilot_bundle_info info;
	int r = pilot_bundle_pack(&po, fd, &info);
	if (r < 0)
		return pilot_error_prefix(r, "cannot pack '%s'", project);
	memcpy(sha256, info.sha256, 65);
	r = pilot_api_bundle_has(api, sha256);
	if (r < 0)
		return r;
	char size[32];
	pilot_format_size(info.compressed_size, size, sizeof(size));
	if (r > 0) {
		if (ctx->verbose)
			cmd_notef(ctx, "bundle %.12s (%s) is there already: nothing to upload", sha256, size);
		return 0;
	}
	if (lseek(fd, 0, SEEK_SET) < 0)
		return pilot_error_errno(PILOT_EIO, errno, "cannot rewind the bundle");
	pr.drawn = false;
	if (bars && pilot_api_is_http(api))
		pilot_http_set_progress(api, upload_progress, &pr);
	r = pilot_api_bundle_put(api, sha256, fd);
	if (pilot_api_is_http(api))
		pilot_http_set_progress(api, NULL, NULL);
	if (pr.drawn)
		fputs("\r\033[K", stderr);
	if (r < 0)
		return pilot_error_prefix(r, "cannot upload the bundle");
	if (ctx->verbose)
		cmd_notef(ctx, "uploaded bundle %.12s (%s)", sha256, size);
	return 0;
}

int project_secrets(const struct pilot_spec *spec, struct pilot_kvs *out)
{
	for (size_t i = 0; i < spec->nsecrets; i++) {
		const char *v = getenv(spec->secrets[i]);
		if (!v)
			return pilot_error_set(PILOT_EINVALID, "secret '%s' is not set in the environment (the spec lists it)",
					       spec->secrets[i]);
		pilot_kvs_set(out, spec->secrets[i], v);
	}
	return 0;
}

void project_retry_policy(const struct pilot_spec *spec, struct pilot_retry_policy *out)
{
	out->max_attempts = spec->retry.max_attempts;
	out->on = (spec->retry.on & PILOT_SPEC_RETRY_EXIT_CODE ? PILOT_RETRY_ON_EXIT_CODE : 0) |
		  (spec->retry.on & PILOT_SPEC_RETRY_TIMEOUT ? PILOT_RETRY_ON_TIMEOUT : 0);
	/* The spec's 0 is "retry at once"; a request's 0 would be the default. */
	out->backoff_ms = spec->retry.backoff_ms ? spec->retry.backoff_ms : PILOT_RETRY_AT_ONCE;
	out->max_backoff_ms = spec->retry.max_backoff_ms;
}
