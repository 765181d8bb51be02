/* pilot dashboard: open the configured server's web dashboard logged in, with a new
 * short-lived token of scopes read and cancel (made with the saved admin token) that
 * travels in the link's fragment, which the page takes out of the address at once. */
#include <spawn.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "pilot.h"
#include "pilot/api.h"
#include "pilot/config.h"

extern char **environ;

struct opts {
	int64_t expires;
	bool no_open;
};

static const struct pilot_opt options[] = {
	{ OPT_DURATION, 'e', "expires", "DUR", "how long the dashboard's token works (default 12h)",
	  offsetof(struct opts, expires), NULL },
	{ OPT_FLAG, 0, "no-open", NULL, "print the link instead of opening a browser", offsetof(struct opts, no_open),
	  NULL },
	OPT_END_ROW,
};

/* xdg-open LINK, when there is a display to open it on; true when it started. */
static bool open_browser(const char *link)
{
	const char *display = getenv("DISPLAY"), *wayland = getenv("WAYLAND_DISPLAY");
	if ((!display || !*display) && (!wayland || !*wayland))
		return false;
	char *argv[] = { (char *)"xdg-open", (char *)link, NULL };
	pid_t pid;
	if (posix_spawnp(&pid, "xdg-open", NULL, NULL, argv, environ) != 0)
		return false;
	int st;
	return waitpid(pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st) == 0;
}

static int run(struct pilot_ctx *ctx, void *optsp, int argc, char **argv)
{
	struct opts *o = optsp;
	(void)argc;
	(void)argv;
	const char *server = pilot_config_get(ctx->config, "server", NULL);
	if (!server || !*server)
		return cmd_usage_error(ctx, "the dashboard is a server's: configure one (pilot login --server URL)");
	if (o->expires < 0)
		return cmd_usage_error(ctx, "--expires must not be negative");
	_cleanup_api_ struct pilot_api *api = NULL;
	if (pilot_api_open_from_config(ctx->config, &api) < 0)
		return cmd_fail(ctx, EXIT_FAIL);
	char rnd[9];
	pilot_random_hex(rnd, 4);
	_cleanup_free_ char *name = pilot_xasprintf("dashboard-%s", rnd);
	int64_t life = o->expires ? o->expires : 12 * 3600 * 1000LL;
	char *secret = NULL;
	struct pilot_token_record rec = { 0 };
	if (pilot_http_token_create(api, name, PILOT_SCOPE_READ | PILOT_SCOPE_CANCEL, pilot_now_ms() + life, &secret,
				    &rec) < 0)
		return cmd_fail(ctx, EXIT_FAIL);
	const char *url = pilot_http_url(api);
	size_t n = strlen(url);
	_cleanup_free_ char *link = pilot_xasprintf("%.*s/#token=%s", (int)(n && url[n - 1] == '/' ? n - 1 : n), url,
						    secret);
	explicit_bzero(secret, strlen(secret));
	free(secret);
	char expires[32];
	pilot_format_time(rec.expires_ms, expires);
	if (!o->no_open && open_browser(link))
		cmd_notef(ctx, "opened the dashboard (token '%s', read and cancel, until %s)", rec.name, expires);
	else {
		puts(link);
		cmd_notef(ctx, "the link carries token '%s' (read and cancel, until %s): revoke it with pilot token revoke %s",
			  rec.name, expires, rec.name);
	}
	explicit_bzero(link, strlen(link));
	pilot_token_record_clear(&rec);
	return EXIT_OK;
}

const struct pilot_cmd cmd_dashboard = {
	.name = "dashboard",
	.summary = "open the server's web dashboard, logged in",
	.description =
		"Makes a token of scopes read and cancel that expires (12h unless --expires;\n"
		"making it needs an admin token) and opens the server's dashboard with it in the\n"
		"link's fragment, which the page takes out of the address at once. Without a\n"
		"display, or with --no-open, prints the link instead: keep it private.",
	.opts = options,
	.opts_size = sizeof(struct opts),
	.min_args = 0,
	.max_args = 0,
	.flags = CMD_NEEDS_CONFIG,
	.run = run,
};
