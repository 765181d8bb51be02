/* pilot login: ask for (or read) an API token, check it against the server with
 * GET /v1/whoami, and store the server and token in the config profile (mode 0600). */
#include <errno.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include "pilot.h"
#include "pilot/api.h"
#include "pilot/config.h"
#include "pilot/server.h"

struct opts {
	const char *server;
	bool token_stdin;
};

static const struct pilot_opt options[] = {
	{ OPT_STRING, 's', "server", "URL", "the server (default: the configured one)", offsetof(struct opts, server),
	  NULL },
	{ OPT_FLAG, 0, "token-stdin", NULL, "read the token from stdin instead of asking",
	  offsetof(struct opts, token_stdin), NULL },
	OPT_END_ROW,
};

/* One line from fd, without its newline; at most max-1 bytes. */
static int read_line(int fd, char *buf, size_t max)
{
	size_t n = 0;
	for (;;) {
		char c;
		ssize_t got = read(fd, &c, 1);
		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0)
			return pilot_error_errno(PILOT_EIO, errno, "cannot read the token");
		if (got == 0 || c == '\n')
			break;
		if (n + 1 >= max)
			return pilot_error_set(PILOT_EINVALID, "the token is too long");
		buf[n++] = c;
	}
	while (n && (buf[n - 1] == '\r' || buf[n - 1] == ' ' || buf[n - 1] == '\t'))
		n--;
	buf[n] = '\0';
	size_t lead = strspn(buf, " \t");
	memmove(buf, buf + lead, n - lead + 1);
	return 0;
}

static int ask(const char *server, char *buf, size_t max)
{
	struct termios old, quiet;
	fprintf(stderr, "Token for %s: ", server);
	fflush(stderr);
	bool echo_off = tcgetattr(STDIN_FILENO, &old) == 0;
	if (echo_off) {
		quiet = old;
		quiet.c_lflag &= ~(tcflag_t)ECHO;
		quiet.c_lflag |= ECHONL;
		tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet);
	}
	int r = read_line(STDIN_FILENO, buf, max);
	if (echo_off)
		tcsetattr(STDIN_FILENO, TCSAFLUSH, &old);
	return r;
}

static int run(struct pilot_ctx *ctx, void *optsp, int argc, char **argv)
{
	struct opts *o = optsp;
	struct pilot_config *cfg = ctx->config;
	(void)argc;
	(void)argv;
	const char *server = o->server ? o->server : pilot_config_get(cfg, "server", NULL);
	if (!server || !*server)
		return cmd_usage_error(ctx, "which server? pass --server URL");
	_cleanup_free_ char *url = pilot_xstrdup(server);
	size_t ul = strlen(url);
	while (ul > 0 && url[ul - 1] == '/')
		url[--ul] = '\0';
	char token[256];
	int r;
	if (o->token_stdin)
		r = read_line(STDIN_FILENO, token, sizeof(token));
	else if (ctx->stdin_tty)
		r = ask(url, token, sizeof(token));
	else
		return cmd_usage_error(ctx, "no terminal to ask for the token on: pass --token-stdin");
	if (r < 0 || pilot_token_check(token) < 0) {
		explicit_bzero(token, sizeof(token));
		return cmd_fail(ctx, EXIT_FAIL);
	}
	struct pilot_http_options ho = { .url = url, .token = token, .cacert = pilot_config_get(cfg, "cacert", NULL) };
	struct pilot_api *api = NULL;
	struct pilot_whoami who = { 0 };
	if (pilot_api_open_http(&ho, &api) < 0 || pilot_http_whoami(api, &who) < 0) {
		pilot_api_close(api);
		explicit_bzero(token, sizeof(token));
		return cmd_fail(ctx, EXIT_FAIL);
	}
	pilot_api_close(api);
	if (pilot_config_set(cfg, cfg->profile, "server", url) < 0 || pilot_config_set(cfg, cfg->profile, "token", token) < 0 ||
	    pilot_config_save(cfg) < 0) {
		explicit_bzero(token, sizeof(token));
		pilot_whoami_clear(&who);
		return cmd_fail(ctx, EXIT_FAIL);
	}
	explicit_bzero(token, sizeof(token));
	_cleanup_free_ char *scopes = pilot_token_scopes_format(who.scopes);
	cmd_notef(ctx, "logged in to %s as '%s' (scopes: %s); saved in profile '%s' of %s", url, who.name ? who.name : "?",
		  scopes, cfg->profile, cfg->path);
	if (getenv("PILOT_TOKEN") && *getenv("PILOT_TOKEN"))
		cmd_warnf(ctx, "PILOT_TOKEN is set and takes precedence over the saved token");
	pilot_whoami_clear(&who);
	return EXIT_OK;
}

const struct pilot_cmd cmd_login = {
	.name = "login",
	.summary = "save a server and its API token in the config profile",
	.description =
		"Asks for the token without echo (or reads it from stdin with --token-stdin), checks\n"
		"it with the server, and stores the server URL and the token in the current profile\n"
		"of the config file, which is written with mode 0600.",
	.opts = options,
	.opts_size = sizeof(struct opts),
	.min_args = 0,
	.max_args = 0,
	.flags = CMD_NEEDS_CONFIG,
	.run = run,
};
