/* pilot server: run the control plane (the REST API of pilot-api(7)) on a data
 * directory until SIGTERM or SIGINT; `pilot server init` creates the directory and
 * prints the first admin token; `pilot server check` verifies a stopped server's data. */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

#include "pilot.h"
#include "pilot/server.h"

struct opts {
	const char *listen;
	const char *data;
	const char *config;
	const char *log_format;
	const char *threads;
	const char *lease_ttl;
	const char *reap_interval;
	const char *max_conns_per_ip;
	const char *tls_cert;
	const char *tls_key;
	struct opt_list set;
};

static const struct pilot_opt options[] = {
	{ OPT_STRING, 'l', "listen", "ADDR:PORT", "address to listen on (default 127.0.0.1:8421; port 0 = any)",
	  offsetof(struct opts, listen), NULL },
	{ OPT_STRING, 'd', "data", "DIR", "data directory (default $XDG_DATA_HOME/pilot/server)",
	  offsetof(struct opts, data), "dir" },
	{ OPT_STRING, 'c', "config", "FILE", "server settings file (YAML; flags override it)",
	  offsetof(struct opts, config), "file" },
	{ OPT_STRING, 0, "log-format", "FORMAT", "access log on stderr: text or json", offsetof(struct opts, log_format),
	  "text json" },
	{ OPT_STRING, 0, "threads", "N", "worker threads (default 4)", offsetof(struct opts, threads), NULL },
	{ OPT_STRING, 0, "lease-ttl", "DUR", "agent lease time-to-live (default 60s)", offsetof(struct opts, lease_ttl),
	  NULL },
	{ OPT_STRING, 0, "reap-interval", "DUR", "how often expired leases are reaped (default 5s)",
	  offsetof(struct opts, reap_interval), NULL },
	{ OPT_STRING, 0, "max-conns-per-ip", "N", "connections one address may hold (default 1024; -1 = no limit)",
	  offsetof(struct opts, max_conns_per_ip), NULL },
	{ OPT_STRING, 0, "tls-cert", "FILE", "serve HTTPS with this PEM certificate chain", offsetof(struct opts, tls_cert),
	  "file" },
	{ OPT_STRING, 0, "tls-key", "FILE", "and this PEM private key", offsetof(struct opts, tls_key), "file" },
	{ OPT_LIST, 0, "set", "KEY=VALUE", "any setting of the config file (see pilot-server(1))",
	  offsetof(struct opts, set), NULL },
	OPT_END_ROW,
};

static void print_access(const char *line, void *ud)
{
	(void)ud;
	fprintf(stderr, "%s\n", line);
}

static int do_init(struct pilot_ctx *ctx, struct opts *o)
{
	char secret[PILOT_TOKEN_SIZE];
	struct pilot_token_record rec = { 0 };
	_cleanup_free_ char *def = o->data ? NULL : pilot_server_default_data_dir();
	const char *dir = o->data ? o->data : def;
	if (pilot_server_init(dir, secret, &rec) < 0)
		return cmd_fail(ctx, EXIT_FAIL);
	if (ctx->stdout_tty) {
		printf("Initialised %s.\nThe admin token (shown once; store it now):\n\n    %s\n\n", dir, secret);
		printf("Use it with:  pilot login --server URL   (and paste the token)\n");
	} else {
		printf("%s\n", secret);
	}
	cmd_notef(ctx, "created data directory '%s' and admin token '%s' (%s)", dir, rec.name, rec.id);
	explicit_bzero(secret, sizeof(secret));
	pilot_token_record_clear(&rec);
	return EXIT_OK;
}

static int do_check(struct pilot_ctx *ctx, struct opts *o)
{
	if (pilot_server_check(o->data) < 0)
		return cmd_fail(ctx, EXIT_FAIL);
	puts("ok");
	return EXIT_OK;
}

static int serve(struct pilot_ctx *ctx, struct pilot_server_options *so)
{
	/* Signals are taken synchronously by this thread; the server's threads, created
	 * below, inherit the mask and never see them. */
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &set, NULL);

	struct pilot_server *srv = NULL;
	if (pilot_server_start(so, &srv) < 0)
		return cmd_fail(ctx, EXIT_FAIL);
	_cleanup_free_ char *def = so->data_dir ? NULL : pilot_server_default_data_dir();
	const char *url = pilot_server_url(srv);
	cmd_notef(ctx, "listening on %s (data in %s)", url, so->data_dir ? so->data_dir : def);
	/* The default serves this machine only: say how to serve agents elsewhere. */
	if (strstr(url, "://127.") || strstr(url, "://localhost") || strstr(url, "://[::1]"))
		cmd_notef(ctx, "only this machine can reach it; to serve agents and users elsewhere: "
			       "pilot server --listen 0.0.0.0:8421");
	/* The URL on stdout lets a script that asked for port 0 find the server. */
	printf("%s\n", url);
	fflush(stdout);
	int sig = 0;
	for (;;) {
		if (sigwait(&set, &sig) != 0)
			continue;
		if (sig == SIGHUP) {
			cmd_notef(ctx, "SIGHUP ignored: restart the server to change its settings");
			continue;
		}
		break;
	}
	cmd_notef(ctx, "%s: finishing in-flight requests", strsignal(sig));
	pilot_server_stop(srv, 10000);
	cmd_notef(ctx, "stopped");
	return EXIT_OK;
}

static int run(struct pilot_ctx *ctx, void *optsp, int argc, char **argv)
{
	struct opts *o = optsp;
	if (argc == 1 && !strcmp(argv[0], "init"))
		return do_init(ctx, o);
	if (argc == 1 && !strcmp(argv[0], "check"))
		return do_check(ctx, o);
	if (argc == 1)
		return cmd_usage_error(ctx, "unknown action '%s' (expected init or check)", argv[0]);

	struct pilot_server_options so = { 0 };
	struct pilot_kvs file = { 0 }, flags = { 0 };
	int status = EXIT_OK;
	if (o->config && pilot_server_config_read(o->config, &file) < 0) {
		status = cmd_fail(ctx, EXIT_FAIL);
		goto out;
	}
	const struct {
		const char *key;
		const char *value;
	} given[] = {
		{ "listen", o->listen },
		{ "data", o->data },
		{ "log_format", o->log_format },
		{ "threads", o->threads },
		{ "lease_ttl", o->lease_ttl },
		{ "reap_interval", o->reap_interval },
		{ "max_conns_per_ip", o->max_conns_per_ip },
		{ "tls_cert", o->tls_cert },
		{ "tls_key", o->tls_key },
	};
	for (size_t i = 0; i < o->set.n; i++)
		if (pilot_kvs_set_pair(&flags, o->set.items[i]) < 0) {
			status = cmd_usage_error(ctx, "--set %s: expected KEY=VALUE", o->set.items[i]);
			goto out;
		}
	for (size_t i = 0; i < ARRAY_SIZE(given); i++)
		if (given[i].value)
			pilot_kvs_set(&flags, given[i].key, given[i].value);
	if (pilot_server_options_apply(&so, &file, o->config) < 0 ||
	    pilot_server_options_apply(&so, &flags, "command line") < 0) {
		status = cmd_fail(ctx, EXIT_USAGE);
		goto out;
	}
	so.access_log = print_access;

	status = serve(ctx, &so);
out:
	pilot_kvs_clear(&file);
	pilot_kvs_clear(&flags);
	return status;
}

const struct pilot_cmd cmd_server = {
	.name = "server",
	.summary = "run the control plane: the REST API for clients and agents",
	.args = "[init|check]",
	.description =
		"Serves the REST API (pilot-api(7)) on a data directory until SIGTERM or SIGINT, then\n"
		"finishes in-flight requests and exits 0. 'pilot server init' creates the data\n"
		"directory and prints its first admin token; 'pilot server check' checks the data\n"
		"of a stopped server. Every request needs a token except /healthz and /metrics.",
	.opts = options,
	.opts_size = sizeof(struct opts),
	.min_args = 0,
	.max_args = 1,
	.run = run,
	.complete_args = "init check",
};
