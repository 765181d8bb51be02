/* pilot logout: forget the API token and the server saved in the config profile, so
 * that pilot works on this machine's local store again (as before 'pilot login').
 * --keep-server keeps the URL, so a later 'pilot login' only asks for a token. */
#include <string.h>

#include "pilot.h"
#include "pilot/config.h"

struct opts {
	bool keep_server;
	bool forget_server;
};

static const struct pilot_opt options[] = {
	{ OPT_FLAG, 0, "keep-server", NULL, "keep the server URL in the profile (commands still ask it)",
	  offsetof(struct opts, keep_server), NULL },
	{ OPT_FLAG, 0, "forget-server", NULL, "remove the server URL too (the default; kept for scripts)",
	  offsetof(struct opts, forget_server), NULL },
	OPT_END_ROW,
};

static int run(struct pilot_ctx *ctx, void *optsp, int argc, char **argv)
{
	struct opts *o = optsp;
	struct pilot_config *cfg = ctx->config;
	(void)argc;
	(void)argv;
	if (o->keep_server && o->forget_server)
		return cmd_usage_error(ctx, "--keep-server and --forget-server together");
	const char *had = pilot_config_profile_get(cfg, cfg->profile, "token");
	const char *server = pilot_config_profile_get(cfg, cfg->profile, "server");
	_cleanup_free_ char *url = server ? pilot_xstrdup(server) : NULL;
	bool forget = url && !o->keep_server;
	if (!had && !forget) {
		cmd_notef(ctx, "profile '%s' holds no token", cfg->profile);
	} else {
		if ((had && pilot_config_set(cfg, cfg->profile, "token", NULL) < 0) ||
		    (forget && pilot_config_set(cfg, cfg->profile, "server", NULL) < 0) || pilot_config_save(cfg) < 0)
			return cmd_fail(ctx, EXIT_FAIL);
		if (forget)
			cmd_notef(ctx, "logged out of '%s' (profile '%s'): commands use this machine's local store again",
				  url, cfg->profile);
		else
			cmd_notef(ctx, "logged out%s%s%s (profile '%s')", url ? " of '" : "", url ? url : "", url ? "'" : "",
				  cfg->profile);
	}
	if (getenv("PILOT_TOKEN") && *getenv("PILOT_TOKEN"))
		cmd_warnf(ctx, "PILOT_TOKEN is still set in the environment");
	if (getenv("PILOT_SERVER") && *getenv("PILOT_SERVER"))
		cmd_warnf(ctx, "PILOT_SERVER is still set in the environment: commands still ask '%s'",
			  getenv("PILOT_SERVER"));
	return EXIT_OK;
}

const struct pilot_cmd cmd_logout = {
	.name = "logout",
	.summary = "forget the saved API token and server: back to the local store",
	.opts = options,
	.opts_size = sizeof(struct opts),
	.min_args = 0,
	.max_args = 0,
	.flags = CMD_NEEDS_CONFIG,
	.run = run,
};
