/* pilot logout: forget the API token saved in the config profile (the server URL
 * stays, so a later 'pilot login' only asks for a token). */
#include <string.h>

#include "pilot.h"
#include "pilot/config.h"

struct opts {
	bool forget_server;
};

static const struct pilot_opt options[] = {
	{ OPT_FLAG, 0, "forget-server", NULL, "also remove the server URL from the profile",
	  offsetof(struct opts, forget_server), NULL },
	OPT_END_ROW,
};

static int run(struct pilot_ctx *ctx, void *optsp, int argc, char **argv)
{
	struct opts *o = optsp;
	struct pilot_config *cfg = ctx->config;
	(void)argc;
	(void)argv;
	const char *had = pilot_config_profile_get(cfg, cfg->profile, "token");
	const char *server = pilot_config_profile_get(cfg, cfg->profile, "server");
	_cleanup_free_ char *url = server ? pilot_xstrdup(server) : NULL;
	if (!had && !(o->forget_server && server)) {
		cmd_notef(ctx, "profile '%s' holds no token", cfg->profile);
	} else {
		if ((had && pilot_config_set(cfg, cfg->profile, "token", NULL) < 0) ||
		    (o->forget_server && server && pilot_config_set(cfg, cfg->profile, "server", NULL) < 0) ||
		    pilot_config_save(cfg) < 0)
			return cmd_fail(ctx, EXIT_FAIL);
		cmd_notef(ctx, "logged out%s%s%s (profile '%s')", url ? " of '" : "", url ? url : "", url ? "'" : "",
			  cfg->profile);
	}
	if (getenv("PILOT_TOKEN") && *getenv("PILOT_TOKEN"))
		cmd_warnf(ctx, "PILOT_TOKEN is still set in the environment");
	return EXIT_OK;
}

const struct pilot_cmd cmd_logout = {
	.name = "logout",
	.summary = "remove the saved API token from the config profile",
	.opts = options,
	.opts_size = sizeof(struct opts),
	.min_args = 0,
	.max_args = 0,
	.flags = CMD_NEEDS_CONFIG,
	.run = run,
};
