/* pilot whoami: who the configured server takes us for (the token's name, scopes and
 * expiry), or that pilot works locally with no server. */
#include <unistd.h>

#include "pilot.h"
#include "pilot/api.h"
#include "pilot/config.h"
#include "pilot/server.h"

static int run(struct pilot_ctx *ctx, void *optsp, int argc, char **argv)
{
	(void)optsp;
	(void)argc;
	(void)argv;
	const char *server = pilot_config_get(ctx->config, "server", NULL);
	if (!server || !*server) {
		_cleanup_free_ char *me = pilot_local_identity();
		printf("%s (local, no server configured)\n", me);
		return EXIT_OK;
	}
	struct pilot_api *api = NULL;
	struct pilot_whoami who = { 0 };
	if (pilot_api_open_from_config(ctx->config, &api) < 0 || pilot_http_whoami(api, &who) < 0) {
		pilot_api_close(api);
		return cmd_fail(ctx, EXIT_FAIL);
	}
	_cleanup_free_ char *scopes = pilot_token_scopes_format(who.scopes);
	char expires[32] = "never";
	if (who.expires_ms)
		pilot_format_time(who.expires_ms, expires);
	printf("%s\n", who.name ? who.name : "");
	if (ctx->stdout_tty || ctx->verbose) {
		printf("  server:  %s (pilot %s)\n", pilot_http_url(api), who.server_version ? who.server_version : "?");
		printf("  token:   %s\n  scopes:  %s\n  expires: %s\n", who.token_id ? who.token_id : "?", scopes, expires);
	}
	pilot_whoami_clear(&who);
	pilot_api_close(api);
	return EXIT_OK;
}

const struct pilot_cmd cmd_whoami = {
	.name = "whoami",
	.summary = "show the identity the server sees for the saved token",
	.description = "Prints the token's name; on a terminal (or with -v) also the server, the token's id,\n"
		       "its scopes and its expiry. Without a server: the local user.",
	.min_args = 0,
	.max_args = 0,
	.flags = CMD_NEEDS_CONFIG,
	.run = run,
};
