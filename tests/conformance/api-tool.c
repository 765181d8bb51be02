/* A test-only command line over the api's local transport, for the e2e scripts: it
 * plays the parts whose commands do not exist yet (submitter, agent) and checks the
 * store after a crash. The store is the one pilot uses: $PILOT_DATA_DIR, else
 * $XDG_DATA_HOME/pilot.
 *
 *   api-tool submit NAME [KEY]             print the run id
 *   api-tool submit-loop N FILE            submit N runs, appending each id to FILE
 *                                          only after its submit returned
 *   api-tool claim AGENT                   print "RUN ATTEMPT TOKEN"; exit 3 if none
 *   api-tool log ATTEMPT TOKEN OFFSET TEXT
 *   api-tool finish ATTEMPT TOKEN succeeded|failed|canceled [CODE]
 *   api-tool check FILE                    every id in FILE exists; integrity ok
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "pilot/api.h"
#include "pilot/store.h"

static int fail(const char *what)
{
	fprintf(stderr, "api-tool: %s: %s\n", what, pilot_error_last());
	return 1;
}

static int submit(struct pilot_api *api, const char *name, const char *key, char id[PILOT_ID_SIZE])
{
	struct pilot_submit_request q = {
		.name = name,
		.spec_json = "{\"name\":\"e2e\",\"command\":[\"true\"]}",
		.idempotency_key = key,
		.submitter = "e2e",
	};
	struct pilot_run r = { 0 };
	int rc = pilot_api_submit(api, &q, &r);
	if (rc >= 0)
		memcpy(id, r.id, PILOT_ID_SIZE);
	pilot_run_clear(&r);
	return rc;
}

/* The routes table as "METHOD PATTERN SCOPES" lines, in the form the docs test reads
 * pilot-api(7) into: parameters as "{}", scopes sorted and comma-separated, "-" for
 * none. */
static int routes(void)
{
	static const char *const names[] = { "admin", "agent", "cancel", "read", "register", "submit" };
	static const unsigned bits[] = { PILOT_SCOPE_ADMIN,	  PILOT_SCOPE_AGENT,	PILOT_SCOPE_CANCEL,
					 PILOT_SCOPE_READ,	  PILOT_SCOPE_REGISTER, PILOT_SCOPE_SUBMIT };
	for (int i = 0; i < PILOT_NROUTES; i++) {
		const struct pilot_route *rt = &pilot_routes[i];
		struct pilot_buf b = PILOT_BUF_INIT;
		for (const char *p = rt->pattern; *p; p++) {
			if (*p == '{') {
				pilot_buf_puts(&b, "{}");
				p += strcspn(p, "}");
			} else {
				pilot_buf_putc(&b, *p);
			}
		}
		pilot_buf_putc(&b, ' ');
		size_t before = b.len;
		for (size_t k = 0; k < ARRAY_SIZE(names); k++)
			if (rt->scopes & bits[k])
				pilot_buf_printf(&b, "%s%s", b.len > before ? "," : "", names[k]);
		printf("%s %s%s\n", rt->method, pilot_buf_str(&b), rt->scopes ? "" : "-");
		pilot_buf_free(&b);
	}
	return 0;
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: api-tool submit|submit-loop|claim|log|finish|check|routes ...\n");
		return 2;
	}
	const char *cmd = argv[1];
	if (!strcmp(cmd, "routes"))
		return routes();
	_cleanup_api_ struct pilot_api *api = NULL;
	if (pilot_api_open_local(NULL, NULL, &api) < 0)
		return fail("open");
	char id[PILOT_ID_SIZE];

	if (!strcmp(cmd, "submit") && argc >= 3) {
		if (submit(api, argv[2], argc > 3 ? argv[3] : NULL, id) < 0)
			return fail("submit");
		puts(id);
		return 0;
	}
	if (!strcmp(cmd, "submit-loop") && argc == 4) {
		long n = strtol(argv[2], NULL, 10);
		int fd = open(argv[3], O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
		if (fd < 0)
			return fail("open output");
		for (long i = 0; i < n; i++) {
			if (submit(api, "crash", NULL, id) < 0)
				return fail("submit");
			char line[PILOT_ID_LEN + 1];
			memcpy(line, id, PILOT_ID_LEN);
			line[PILOT_ID_LEN] = '\n';
			if (pilot_write_all(fd, line, sizeof(line)) < 0)
				return fail("write");
		}
		close(fd);
		return 0;
	}
	if (!strcmp(cmd, "claim") && argc == 3) {
		struct pilot_claim_request q = { .agent = argv[2] };
		struct pilot_claim c = { 0 };
		int r = pilot_api_claim(api, &q, &c);
		if (r < 0)
			return fail("claim");
		if (r == 0)
			return 3;
		printf("%s %s %s\n", c.run.id, c.attempt_id, c.lease_token);
		pilot_claim_clear(&c);
		return 0;
	}
	if (!strcmp(cmd, "log") && argc == 6) {
		int64_t off = strtoll(argv[4], NULL, 10);
		if (pilot_api_append_log(api, argv[2], argv[3], off, argv[5], strlen(argv[5]), NULL) < 0)
			return fail("log");
		return 0;
	}
	if (!strcmp(cmd, "finish") && argc >= 5) {
		struct pilot_finish f = { 0 };
		if (pilot_attempt_state_from_name(argv[4], &f.state) < 0)
			return fail("finish");
		if (argc > 5) {
			f.has_exit_code = true;
			f.exit_code = (int)strtol(argv[5], NULL, 10);
			f.reason = PILOT_REASON_EXIT_CODE;
		}
		if (pilot_api_finish(api, argv[2], argv[3], &f, NULL) < 0)
			return fail("finish");
		return 0;
	}
	if (!strcmp(cmd, "check") && argc == 3) {
		struct pilot_buf ids = PILOT_BUF_INIT;
		if (pilot_read_file(argv[2], 0, &ids) < 0)
			return fail("read ids");
		int missing = 0, n = 0;
		for (char *p = ids.data; p && *p;) {
			char *e = strchr(p, '\n');
			if (!e)
				break; /* a torn last line was never acknowledged */
			*e = '\0';
			struct pilot_run r = { 0 };
			n++;
			if (pilot_api_get_run(api, p, &r) < 0) {
				fprintf(stderr, "api-tool: acknowledged run '%s' is missing: %s\n", p, pilot_error_last());
				missing++;
			}
			pilot_run_clear(&r);
			p = e + 1;
		}
		pilot_buf_free(&ids);
		if (pilot_store_integrity_check(pilot_api_local_store(api)) < 0)
			return fail("integrity check");
		printf("%d acknowledged, %d missing, integrity ok\n", n, missing);
		return missing ? 1 : 0;
	}
	fprintf(stderr, "api-tool: bad arguments for '%s'\n", cmd);
	return 2;
}
