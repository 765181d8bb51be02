/* Runs the api conformance suite, unchanged, against the http transport: a real
 * `pilot server` ($PILOT) started here on 127.0.0.1 (port 0) on a fresh data directory
 * with short knobs, reached through pilot_api_open_http with an admin token. The
 * server's access log goes to DIR/server.log (printed on failure); the server must stop
 * cleanly on SIGTERM at the end.
 * Usage: conformance-http [TEST...]; PILOT_CONFORMANCE_SCALE=N as for the local driver. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "conformance.h"
#include "pilot/server.h"

struct http_target {
	char url[128];
	char token[PILOT_TOKEN_SIZE];
};

static struct pilot_api *open_http(void *ud)
{
	struct http_target *ht = ud;
	struct pilot_http_options o = { .url = ht->url, .token = ht->token };
	struct pilot_api *api = NULL;
	if (pilot_api_open_http(&o, &api) < 0)
		return NULL;
	return api;
}

/* The first line the server prints on stdout: its URL. */
static int read_url(int fd, char *out, size_t n, int timeout_ms)
{
	size_t len = 0;
	int64_t end = pilot_mono_ms() + timeout_ms;
	while (len + 1 < n) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		int left = (int)(end - pilot_mono_ms());
		if (left <= 0 || poll(&p, 1, left) <= 0)
			return -1;
		ssize_t got = read(fd, out + len, 1);
		if (got <= 0)
			return -1;
		if (out[len] == '\n')
			break;
		len++;
	}
	out[len] = '\0';
	return 0;
}

static void dump_log(const char *path)
{
	FILE *f = fopen(path, "r");
	if (!f)
		return;
	char line[1024];
	/* Diagnostics, not the access log (which can be long). */
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, "pilot:", 6) || strstr(line, "Sanitizer") || strstr(line, "runtime error"))
			printf("# server: %s", line);
	fclose(f);
}

int main(int argc, char **argv)
{
	const char *pilot = getenv("PILOT");
	if (!pilot || !*pilot) {
		printf("1..0 # SKIP PILOT (the pilot binary) is not set\n");
		return 0;
	}
	char dir[64];
	snprintf(dir, sizeof(dir), "/tmp/pilot-conformance-http.XXXXXX");
	if (!mkdtemp(dir)) {
		perror("mkdtemp");
		return 1;
	}
	_cleanup_free_ char *data = pilot_path_join(dir, "data");
	_cleanup_free_ char *log = pilot_path_join(dir, "server.log");
	struct http_target ht = { 0 };
	if (pilot_server_init(data, ht.token, NULL) < 0) {
		printf("Bail out! cannot initialise the server data: %s\n", pilot_error_last());
		return 1;
	}

	int out[2];
	if (pipe2(out, O_CLOEXEC) < 0) {
		perror("pipe");
		return 1;
	}
	pid_t pid = fork();
	if (pid == 0) {
		int lfd = open(log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
		dup2(out[1], 1);
		if (lfd >= 0)
			dup2(lfd, 2);
		/* The knobs the suite is told about below: expired leases are reaped within
		 * 100 ms, overdue attempts 300 ms after their timeout. */
		setenv("PILOT_TIMEOUT_GRACE", "300ms", 1);
		setenv("PILOT_MAX_LOST", "3", 1);
		setenv("PILOT_BLOCKLIST_AFTER", "8", 1);
		setenv("PILOT_RETRY_ELSEWHERE", "1s", 1);
		execl(pilot, pilot, "server", "--data", data, "--listen", "127.0.0.1:0", "--lease-ttl", "1s",
		      "--reap-interval", "100ms", "--max-conns-per-ip", "-1", (char *)NULL);
		_exit(127);
	}
	close(out[1]);
	if (pid < 0 || read_url(out[0], ht.url, sizeof(ht.url), 30000) < 0) {
		printf("Bail out! the server did not start (see below)\n");
		dump_log(log);
		if (pid > 0)
			kill(pid, SIGKILL);
		return 1;
	}
	printf("# server %s (pid %d, data %s)\n", ht.url, (int)pid, data);

	const char *scale = getenv("PILOT_CONFORMANCE_SCALE");
	struct conformance_target t = {
		.name = "http",
		.open = open_http,
		.ud = &ht,
		.lease_ttl_ms = 1000,
		.timeout_grace_ms = 300,
		.max_lost = 3,
		.blocklist_after = 8,
		.retry_elsewhere_ms = 1000,
		.scale_percent = scale ? (int)strtol(scale, NULL, 10) : 0,
	};
	int st = conformance_main(&t, argc, argv);

	kill(pid, SIGTERM);
	int ws = 0;
	while (waitpid(pid, &ws, 0) < 0 && errno == EINTR)
		;
	if (!WIFEXITED(ws) || WEXITSTATUS(ws) != 0) {
		printf("# the server did not stop cleanly on SIGTERM (wait status 0x%x)\n", ws);
		st = 1;
	}
	if (st)
		dump_log(log);
	if (!getenv("PILOT_CONFORMANCE_KEEP"))
		pilot_rm_rf(dir);
	else
		printf("# data kept in %s\n", dir);
	return st;
}
