/* pilot token create|list|revoke: manage the server's API tokens, through the server's
 * API (needs an admin token) or, with --data DIR, directly on a server's data directory
 * (for the first tokens, or when the server is down). With no server configured and no
 * --data, the default server data directory of this machine is used when there is one:
 * right after 'pilot server init' on the server's machine. */
#include <string.h>
#include <sys/stat.h>

#include "pilot.h"
#include "pilot/api.h"
#include "pilot/config.h"
#include "pilot/server.h"
#include "pilot/store.h"

struct opts {
	const char *scope;
	const char *name;
	int64_t expires;
	const char *data;
	const char *output;
};

static const struct pilot_opt options[] = {
	{ OPT_STRING, 's', "scope", "LIST", "create: scopes, comma-separated: read, submit, cancel, agent, admin, register",
	  offsetof(struct opts, scope), NULL },
	{ OPT_STRING, 'n', "name", "NAME", "create: a name for the token (default: scope and random digits)",
	  offsetof(struct opts, name), NULL },
	{ OPT_DURATION, 'e', "expires", "DUR", "create: expire after this long (default: never)",
	  offsetof(struct opts, expires), NULL },
	{ OPT_STRING, 'd', "data", "DIR", "work on this server data directory instead of through the server",
	  offsetof(struct opts, data), "dir" },
	{ OPT_STRING, 'o', "output", "FILE", "create: write the token to FILE (mode 0600) instead of stdout",
	  offsetof(struct opts, output), "file" },
	OPT_END_ROW,
};

/* Where the tokens are: a store opened on --data, or the configured server. */
struct target {
	struct pilot_store *st;
	struct pilot_api *api;
};

static int open_target(struct pilot_ctx *ctx, struct opts *o, struct target *t)
{
	struct pilot_local_options lo = { .no_auto_reap = true, .quick_check = -1 };
	if (o->data)
		return pilot_store_open(o->data, &lo, &t->st);
	const char *server = pilot_config_get(ctx->config, "server", NULL);
	if (server && *server)
		return pilot_api_open_from_config(ctx->config, &t->api);
	_cleanup_free_ char *def = pilot_server_default_data_dir();
	_cleanup_free_ char *db = pilot_path_join(def, "pilot.db");
	struct stat st;
	if (stat(db, &st) < 0)
		return pilot_error_set(PILOT_EINVALID, "no server configured: log in with 'pilot login --server URL', or "
						       "pass --data DIR to work on a server's data directory");
	cmd_notef(ctx, "no server configured: using this machine's server data directory '%s'", def);
	return pilot_store_open(def, &lo, &t->st);
}

static void close_target(struct target *t)
{
	pilot_store_close(t->st);
	pilot_api_close(t->api);
}

static void print_time(int64_t ms, char *out, size_t n)
{
	if (!ms) {
		snprintf(out, n, "-");
		return;
	}
	char full[32];
	pilot_format_time(ms, full);
	/* Minutes are enough in a table. */
	snprintf(out, n, "%.10s %.5s", full, full + 11);
}

static int do_create(struct pilot_ctx *ctx, struct opts *o, struct target *t)
{
	if (!o->scope)
		return cmd_usage_error(ctx, "'create' needs --scope (read, submit, cancel, agent, admin, register)");
	unsigned scopes;
	if (pilot_token_scopes_parse(o->scope, &scopes) < 0)
		return cmd_fail(ctx, EXIT_USAGE);
	if (o->expires < 0)
		return cmd_usage_error(ctx, "--expires must be positive");
	int64_t expires = o->expires ? pilot_now_ms() + o->expires : 0;
	struct pilot_token_record rec = { 0 };
	char local[PILOT_TOKEN_SIZE];
	_cleanup_free_ char *remote = NULL;
	const char *secret;
	if (t->st) {
		if (pilot_server_token_create(t->st, o->name, scopes, expires, NULL, false, local, &rec) < 0)
			return cmd_fail(ctx, EXIT_FAIL);
		secret = local;
	} else {
		if (pilot_http_token_create(t->api, o->name, scopes, expires, &remote, &rec) < 0)
			return cmd_fail(ctx, EXIT_FAIL);
		secret = remote;
	}
	int status = EXIT_OK;
	if (o->output) {
		/* 0600 whatever the umask: pilot agent --token-file refuses anything looser. */
		_cleanup_free_ char *line = pilot_xasprintf("%s\n", secret);
		if (pilot_write_file_atomic(o->output, line, strlen(line), 0600) < 0)
			status = cmd_fail(ctx, EXIT_FAIL);
		else
			cmd_notef(ctx, "created token '%s' (%s), scopes %s, written to '%s' (mode 0600)", rec.name, rec.id,
				  rec.scopes, o->output);
		explicit_bzero(line, strlen(line));
	} else {
		if (ctx->stdout_tty)
			printf("Token '%s' (%s), scopes: %s. It is shown only this once:\n\n    %s\n\n", rec.name, rec.id,
			       rec.scopes, secret);
		else
			printf("%s\n", secret);
		cmd_notef(ctx, "created token '%s' (%s)", rec.name, rec.id);
	}
	explicit_bzero(local, sizeof(local));
	if (remote)
		explicit_bzero(remote, strlen(remote));
	pilot_token_record_clear(&rec);
	return status;
}

static int do_list(struct pilot_ctx *ctx, struct target *t)
{
	struct pilot_token_list l = { 0 };
	int r = t->st ? pilot_store_token_list(t->st, &l) : pilot_http_token_list(t->api, &l);
	if (r < 0)
		return cmd_fail(ctx, EXIT_FAIL);
	int64_t now = pilot_now_ms();
	if (ctx->stdout_tty)
		printf("%-15s %-20s %-8s %-16s %-16s %-16s %-16s %s\n", "ID", "NAME", "STATE", "CREATED", "EXPIRES",
		       "LAST USED", "AGENT", "SCOPES");
	for (size_t i = 0; i < l.n; i++) {
		const struct pilot_token_record *k = &l.items[i];
		const char *state = k->revoked_ms ? "revoked" : k->expires_ms && k->expires_ms <= now ? "expired" : "live";
		char created[24], expires[24], used[24];
		print_time(k->created_ms, created, sizeof(created));
		print_time(k->expires_ms, expires, sizeof(expires));
		print_time(k->last_used_ms, used, sizeof(used));
		if (ctx->stdout_tty)
			printf("%-15s %-20s %-8s %-16s %-16s %-16s %-16s %s\n", k->id, k->name ? k->name : "", state, created,
			       expires, used, k->agent ? k->agent : "-", k->scopes ? k->scopes : "");
		else
			printf("%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", k->id, k->name ? k->name : "", state, created, expires,
			       used, k->agent ? k->agent : "-", k->scopes ? k->scopes : "");
	}
	pilot_token_list_clear(&l);
	return EXIT_OK;
}

static int do_revoke(struct pilot_ctx *ctx, struct target *t, const char *which)
{
	int r = t->st ? pilot_store_token_revoke(t->st, which) : pilot_http_token_revoke(t->api, which);
	if (r < 0)
		return cmd_fail(ctx, EXIT_FAIL);
	cmd_notef(ctx, "revoked token '%s'", which);
	return EXIT_OK;
}

static int run(struct pilot_ctx *ctx, void *optsp, int argc, char **argv)
{
	struct opts *o = optsp;
	const char *verb = argv[0];
	bool create = !strcmp(verb, "create"), list = !strcmp(verb, "list"), revoke = !strcmp(verb, "revoke");
	if (!create && !list && !revoke)
		return cmd_usage_error(ctx, "unknown action '%s' (expected create, list or revoke)", verb);
	if ((create || list) && argc != 1)
		return cmd_usage_error(ctx, "'%s' takes no arguments", verb);
	if (revoke && argc != 2)
		return cmd_usage_error(ctx, "'revoke' takes one ID or NAME");
	if (!create && (o->scope || o->name || o->expires || o->output))
		return cmd_usage_error(ctx, "--scope, --name, --expires and --output go with 'create'");
	struct target t = { 0 };
	if (open_target(ctx, o, &t) < 0) {
		close_target(&t);
		return cmd_fail(ctx, EXIT_FAIL);
	}
	int status = create ? do_create(ctx, o, &t) : list ? do_list(ctx, &t) : do_revoke(ctx, &t, argv[1]);
	close_target(&t);
	return status;
}

const struct pilot_cmd cmd_token = {
	.name = "token",
	.summary = "create, list and revoke the server's API tokens",
	.args = "create | list | revoke ID",
	.description =
		"Works through the configured server (which needs an admin token), or with --data DIR\n"
		"directly on a server's data directory; with neither, on this machine's default server\n"
		"data directory when there is one. A new token is printed once: alone on stdout when\n"
		"stdout is not a terminal, or written to --output FILE with mode 0600. The server\n"
		"stores only its sha256.",
	.opts = options,
	.opts_size = sizeof(struct opts),
	.min_args = 1,
	.max_args = 2,
	.flags = CMD_NEEDS_CONFIG,
	.run = run,
	.complete_args = "create list revoke",
};
