/* Unit tests for lib/runtime: the pure parts (frame demultiplexing, the create request,
 * addresses and image references, pull progress, redaction, metrics, globs, artifact
 * collection, exit statuses) and a few host-runtime runs. The engines themselves are
 * exercised by the e2e tests t04NN-runtime-*. */
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "lib/runtime/runtime-internal.h"
#include "pilot/runtime.h"
#include "pilot/util.h"

/* ---- helpers ---- */

struct sink {
	struct pilot_buf b[3];
	size_t calls;
};

static void sink_init(struct sink *s)
{
	memset(s, 0, sizeof(*s));
	for (int i = 0; i < 3; i++)
		pilot_buf_init(&s->b[i], 0);
}

static void sink_free(struct sink *s)
{
	for (int i = 0; i < 3; i++)
		pilot_buf_free(&s->b[i]);
}

static void sink_stream(int stream, const char *data, size_t len, void *ud)
{
	struct sink *s = ud;
	assert_true(stream >= 0 && stream <= 2);
	pilot_buf_append(&s->b[stream], data, len);
	s->calls++;
}

static void sink_emit(const char *data, size_t len, void *ud)
{
	sink_stream(1, data, len, ud);
}

static json_t *load(const char *s)
{
	json_error_t e;
	json_t *v = json_loads(s, 0, &e);
	if (!v)
		fail_msg("bad JSON: %s: %s", e.text, s);
	return v;
}

static char *tmpdir_new(void)
{
	char tmpl[] = "/tmp/pilot-test-runtime.XXXXXX";
	assert_non_null(mkdtemp(tmpl));
	return pilot_xstrdup(tmpl);
}

static void write_file(const char *dir, const char *rel, const char *content)
{
	_cleanup_free_ char *p = pilot_path_join(dir, rel);
	_cleanup_free_ char *d = pilot_xstrdup(p);
	*strrchr(d, '/') = '\0';
	assert_int_equal(pilot_mkdir_p(d, 0755), 0);
	FILE *f = fopen(p, "w");
	assert_non_null(f);
	fputs(content, f);
	fclose(f);
}

/* ---- demux ---- */

static size_t frame(char *out, int stream, const char *payload)
{
	uint32_t n = (uint32_t)strlen(payload);
	unsigned char h[8] = { (unsigned char)stream, 0, 0, 0, (unsigned char)(n >> 24), (unsigned char)(n >> 16),
			       (unsigned char)(n >> 8), (unsigned char)n };
	memcpy(out, h, 8);
	memcpy(out + 8, payload, n);
	return 8 + n;
}

static void test_demux(void **state)
{
	(void)state;
	char wire[256];
	size_t n = 0;
	n += frame(wire + n, 1, "hello ");
	n += frame(wire + n, 2, "oops\n");
	n += frame(wire + n, 1, "");
	n += frame(wire + n, 1, "world\n");
	n += frame(wire + n, 3, "engine says no\n");

	/* Every way of cutting the wire in two, and byte by byte. */
	for (size_t cut = 0; cut <= n; cut++) {
		struct runtime_demux d = { 0 };
		struct sink s;
		sink_init(&s);
		assert_int_equal(runtime_demux_feed(&d, wire, cut, sink_stream, &s), 0);
		assert_int_equal(runtime_demux_feed(&d, wire + cut, n - cut, sink_stream, &s), 0);
		assert_true(runtime_demux_clean(&d));
		assert_string_equal(pilot_buf_str(&s.b[1]), "hello world\n");
		assert_string_equal(pilot_buf_str(&s.b[2]), "oops\nengine says no\n");
		sink_free(&s);
	}
	struct runtime_demux d = { 0 };
	struct sink s;
	sink_init(&s);
	for (size_t i = 0; i < n; i++)
		assert_int_equal(runtime_demux_feed(&d, wire + i, 1, sink_stream, &s), 0);
	assert_string_equal(pilot_buf_str(&s.b[1]), "hello world\n");
	sink_free(&s);

	/* A frame cut short is noticed. */
	struct runtime_demux d2 = { 0 };
	sink_init(&s);
	assert_int_equal(runtime_demux_feed(&d2, wire, 10, sink_stream, &s), 0);
	assert_false(runtime_demux_clean(&d2));
	sink_free(&s);

	/* Not a frame header: plain text where frames were expected. */
	struct runtime_demux d3 = { 0 };
	sink_init(&s);
	assert_int_equal(runtime_demux_feed(&d3, "hello world, no frames", 22, sink_stream, &s), PILOT_EINVALID);
	sink_free(&s);
}

/* ---- the create request ---- */

static void test_create_body_defaults(void **state)
{
	(void)state;
	const char *argv[] = { "python", "train.py", "--lr", "0.1" };
	const char *env[] = { "PILOT_RUN_ID=r1", "EPOCHS=5" };
	struct pilot_job job = {
		.run_id = "r1", .attempt = 2, .image = "python:3.12", .argv = argv, .argc = 4,
		.workspace = "/srv/ws", .env = env, .nenv = 2,
	};
	_cleanup_free_ char *s = runtime_create_body(&job, false, NULL);
	json_t *v = load(s);
	assert_string_equal(json_string_value(json_object_get(v, "Image")), "python:3.12");
	json_t *ep = json_object_get(v, "Entrypoint"), *cmd = json_object_get(v, "Cmd");
	assert_int_equal(json_array_size(ep), 1);
	assert_string_equal(json_string_value(json_array_get(ep, 0)), "python");
	assert_int_equal(json_array_size(cmd), 3);
	assert_string_equal(json_string_value(json_array_get(cmd, 2)), "0.1");
	assert_string_equal(json_string_value(json_array_get(json_object_get(v, "Env"), 1)), "EPOCHS=5");
	assert_string_equal(json_string_value(json_object_get(v, "WorkingDir")), "/workspace");
	assert_true(json_is_false(json_object_get(v, "Tty")));
	assert_true(json_is_false(json_object_get(v, "OpenStdin")));
	assert_null(json_object_get(v, "User"));
	json_t *labels = json_object_get(v, "Labels");
	assert_string_equal(json_string_value(json_object_get(labels, "pilot.managed")), "1");
	assert_string_equal(json_string_value(json_object_get(labels, "pilot.run")), "r1");
	assert_string_equal(json_string_value(json_object_get(labels, "pilot.attempt")), "2");
	assert_null(json_object_get(labels, "pilot.owner"));

	json_t *hc = json_object_get(v, "HostConfig");
	json_t *m = json_array_get(json_object_get(hc, "Mounts"), 0);
	assert_string_equal(json_string_value(json_object_get(m, "Type")), "bind");
	assert_string_equal(json_string_value(json_object_get(m, "Source")), "/srv/ws");
	assert_string_equal(json_string_value(json_object_get(m, "Target")), "/workspace");
	assert_string_equal(json_string_value(json_array_get(json_object_get(hc, "CapDrop"), 0)), "ALL");
	assert_string_equal(json_string_value(json_array_get(json_object_get(hc, "SecurityOpt"), 0)), "no-new-privileges");
	assert_int_equal(json_integer_value(json_object_get(hc, "PidsLimit")), 4096);
	assert_true(json_is_true(json_object_get(hc, "Init")));
	assert_null(json_object_get(hc, "Privileged"));
	assert_null(json_object_get(hc, "Memory"));
	assert_null(json_object_get(hc, "NanoCpus"));
	assert_null(json_object_get(hc, "ShmSize"));
	assert_null(json_object_get(hc, "DeviceRequests"));
	assert_null(json_object_get(hc, "NetworkMode"));
	assert_null(json_object_get(hc, "Ulimits"));
	json_decref(v);
}

static void test_create_body_options(void **state)
{
	(void)state;
	const char *script[] = { "echo $HOME && exit 3" };
	struct pilot_job job = {
		.image = "busybox", .argv = script, .argc = 1, .shell = true, .workspace = "/w", .workdir = "/job",
		.res = { .cpus = 1.5, .memory = 512 * 1024 * 1024, .gpus = 2, .shm = 64 * 1024 * 1024, .pids = 100 },
		.network = "none", .user = "1000:1000",
	};
	_cleanup_free_ char *s = runtime_create_body(&job, false, "agent-7");
	json_t *v = load(s);
	json_t *ep = json_object_get(v, "Entrypoint"), *cmd = json_object_get(v, "Cmd");
	assert_string_equal(json_string_value(json_array_get(ep, 0)), "/bin/sh");
	assert_string_equal(json_string_value(json_array_get(cmd, 0)), "-c");
	assert_string_equal(json_string_value(json_array_get(cmd, 1)), "echo $HOME && exit 3");
	assert_string_equal(json_string_value(json_object_get(v, "WorkingDir")), "/job");
	assert_string_equal(json_string_value(json_object_get(v, "User")), "1000:1000");
	assert_null(json_object_get(json_object_get(v, "Labels"), "pilot.run"));
	assert_string_equal(json_string_value(json_object_get(json_object_get(v, "Labels"), "pilot.owner")), "agent-7");
	json_t *hc = json_object_get(v, "HostConfig");
	assert_string_equal(json_string_value(json_object_get(json_array_get(json_object_get(hc, "Mounts"), 0), "Target")),
			    "/job");
	assert_int_equal(json_integer_value(json_object_get(hc, "NanoCpus")), 1500000000);
	assert_int_equal(json_integer_value(json_object_get(hc, "Memory")), 512 * 1024 * 1024);
	assert_int_equal(json_integer_value(json_object_get(hc, "MemorySwap")), 512 * 1024 * 1024);
	assert_int_equal(json_integer_value(json_object_get(hc, "ShmSize")), 64 * 1024 * 1024);
	assert_int_equal(json_integer_value(json_object_get(hc, "PidsLimit")), 100);
	assert_string_equal(json_string_value(json_object_get(hc, "NetworkMode")), "none");
	json_t *dr = json_array_get(json_object_get(hc, "DeviceRequests"), 0);
	assert_string_equal(json_string_value(json_object_get(dr, "Driver")), "");
	assert_int_equal(json_integer_value(json_object_get(dr, "Count")), 2);
	assert_string_equal(json_string_value(json_array_get(json_array_get(json_object_get(dr, "Capabilities"), 0), 0)),
			    "gpu");
	json_decref(v);

	/* All GPUs, unlimited pids, privileged, podman. */
	job.res.gpus = -1;
	job.res.pids = -1;
	job.privileged = true;
	_cleanup_free_ char *s2 = runtime_create_body(&job, true, NULL);
	v = load(s2);
	hc = json_object_get(v, "HostConfig");
	assert_int_equal(json_integer_value(json_object_get(json_array_get(json_object_get(hc, "DeviceRequests"), 0),
							    "Count")),
			 -1);
	assert_int_equal(json_integer_value(json_object_get(hc, "PidsLimit")), -1);
	assert_true(json_is_true(json_object_get(hc, "Privileged")));
	assert_null(json_object_get(hc, "CapDrop"));
	assert_null(json_object_get(hc, "SecurityOpt"));
	assert_null(json_object_get(hc, "Init"));
	json_t *ul = json_object_get(hc, "Ulimits");
	assert_int_equal(json_array_size(ul), 2);
	assert_string_equal(json_string_value(json_object_get(json_array_get(ul, 0), "Name")), "nofile");
	assert_int_equal(json_integer_value(json_object_get(json_array_get(ul, 0), "Soft")), 1024);
	assert_int_equal(json_integer_value(json_object_get(json_array_get(ul, 0), "Hard")), 20000);
	assert_string_equal(json_string_value(json_object_get(json_array_get(ul, 1), "Name")), "nproc");
	assert_int_equal(json_integer_value(json_object_get(json_array_get(ul, 1), "Soft")), 4096);
	json_decref(v);

	/* No command: the image's own entrypoint and command. */
	job.argc = 0;
	job.shell = false;
	_cleanup_free_ char *s3 = runtime_create_body(&job, false, NULL);
	v = load(s3);
	assert_null(json_object_get(v, "Entrypoint"));
	assert_null(json_object_get(v, "Cmd"));
	json_decref(v);
}

/* ---- addresses, images, versions, messages ---- */

static void test_endpoint_parse(void **state)
{
	(void)state;
	struct { const char *in, *sock, *url; } ok[] = {
		{ "unix:///var/run/docker.sock", "/var/run/docker.sock", "http://localhost" },
		{ "/run/podman/podman.sock", "/run/podman/podman.sock", "http://localhost" },
		{ "tcp://10.0.0.5:2376", NULL, "http://10.0.0.5:2376" },
		{ "tcp://dockerhost", NULL, "http://dockerhost:2375" },
		{ "tcp://[::1]", NULL, "http://[::1]:2375" },
		{ "http://h:1234/", NULL, "http://h:1234" },
	};
	for (size_t i = 0; i < ARRAY_SIZE(ok); i++) {
		char *sock, *url;
		assert_int_equal(runtime_endpoint_parse(ok[i].in, &sock, &url), 0);
		if (ok[i].sock)
			assert_string_equal(sock, ok[i].sock);
		else
			assert_null(sock);
		assert_string_equal(url, ok[i].url);
		free(sock);
		free(url);
	}
	const char *bad[] = { "ssh://me@host", "npipe:////./pipe/docker", "unix://relative.sock", "tcp://", "docker" };
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		char *sock, *url;
		assert_int_equal(runtime_endpoint_parse(bad[i], &sock, &url), PILOT_EINVALID);
		assert_null(sock);
		assert_null(url);
	}
}

static void test_image_split(void **state)
{
	(void)state;
	struct { const char *ref, *name, *tag; } cases[] = {
		{ "busybox", "busybox", "latest" },
		{ "python:3.12-slim", "python", "3.12-slim" },
		{ "reg.example.com:5000/team/img", "reg.example.com:5000/team/img", "latest" },
		{ "reg.example.com:5000/team/img:v2", "reg.example.com:5000/team/img", "v2" },
		{ "img@sha256:abcd", "img", "sha256:abcd" },
		{ "img:1@sha256:abcd", "img", "sha256:abcd" },
		{ "localhost:5000/x@sha256:ff", "localhost:5000/x", "sha256:ff" },
	};
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		char *name, *tag;
		assert_int_equal(runtime_image_split(cases[i].ref, &name, &tag), 0);
		assert_string_equal(name, cases[i].name);
		assert_string_equal(tag, cases[i].tag);
		free(name);
		free(tag);
	}
	const char *bad[] = { "", "img:", ":tag", "img name", "img?x", "@sha256:1", "img@" };
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		char *name, *tag;
		assert_int_equal(runtime_image_split(bad[i], &name, &tag), PILOT_EINVALID);
	}
}

static void test_versions_messages(void **state)
{
	(void)state;
	assert_int_equal(runtime_api_minor("1.41"), 41);
	assert_int_equal(runtime_api_minor("1.9"), 9);
	assert_int_equal(runtime_api_minor("2.0"), -1);
	assert_int_equal(runtime_api_minor("1.x"), -1);
	assert_int_equal(runtime_api_minor(NULL), -1);

	const char *b = "{\"message\":\"No such image: nope:latest\"}\n";
	_cleanup_free_ char *m = runtime_engine_message(b, strlen(b));
	assert_string_equal(m, "No such image: nope:latest");
	const char *p = "{\"cause\":\"x\",\"message\":\"container not found\",\"response\":404}";
	_cleanup_free_ char *m2 = runtime_engine_message(p, strlen(p));
	assert_string_equal(m2, "container not found");
	assert_null(runtime_engine_message("<html>502</html>", 16));
	assert_null(runtime_engine_message("{}", 2));
}

/* ---- pull progress ---- */

struct pulls {
	int n;
	struct pilot_pull_progress last;
	char last_status[64];
};

static void on_pull(const struct pilot_pull_progress *p, void *ud)
{
	struct pulls *pl = ud;
	pl->n++;
	pl->last = *p;
	snprintf(pl->last_status, sizeof(pl->last_status), "%s", p->status);
	pl->last.status = pl->last_status;
	pl->last.layer = NULL;
}

static void test_pull_progress(void **state)
{
	(void)state;
	const char *stream =
		"{\"status\":\"Pulling from library/python\",\"id\":\"3.12\"}\r\n"
		"{\"status\":\"Pulling fs layer\",\"progressDetail\":{},\"id\":\"aaa\"}\r\n"
		"{\"status\":\"Pulling fs layer\",\"progressDetail\":{},\"id\":\"bbb\"}\r\n"
		"{\"status\":\"Downloading\",\"progressDetail\":{\"current\":100,\"total\":1000},\"id\":\"aaa\"}\r\n"
		"{\"status\":\"Downloading\",\"progressDetail\":{\"current\":50,\"total\":500},\"id\":\"bbb\"}\r\n"
		"{\"status\":\"Pull complete\",\"progressDetail\":{},\"id\":\"aaa\"}\r\n";
	struct pulls pl = { 0 };
	struct runtime_pull_state st;
	runtime_pull_init(&st, "python:3.12", on_pull, &pl);
	/* In bits, as a socket would deliver it. */
	size_t n = strlen(stream);
	for (size_t i = 0; i < n; i += 7)
		runtime_pull_feed(&st, stream + i, n - i < 7 ? n - i : 7);
	runtime_pull_finish(&st);
	assert_int_equal(pl.n, 6);
	assert_string_equal(pl.last_status, "Pull complete");
	assert_int_equal(pl.last.layers_total, 2);
	assert_int_equal(pl.last.layers_done, 1);
	assert_int_equal(pl.last.bytes_total, 1500);
	assert_int_equal(pl.last.bytes_done, 1050);
	assert_null(st.error);
	runtime_pull_free(&st);

	const char *bad = "{\"status\":\"Pulling from x\"}\n"
			  "{\"errorDetail\":{\"message\":\"manifest unknown\"},\"error\":\"manifest unknown\"}\n";
	runtime_pull_init(&st, "x", NULL, NULL);
	runtime_pull_feed(&st, bad, strlen(bad));
	runtime_pull_finish(&st);
	assert_string_equal(st.error, "manifest unknown");
	runtime_pull_free(&st);
}

/* ---- redaction ---- */

static char *redact_in_pieces(const char *const *secrets, size_t n, const char *in, const size_t *cuts, size_t ncuts)
{
	struct pilot_redactor *r = pilot_redactor_new(secrets, n);
	struct sink s;
	sink_init(&s);
	size_t len = strlen(in), prev = 0;
	for (size_t i = 0; i <= ncuts; i++) {
		size_t at = i < ncuts ? cuts[i] : len;
		pilot_redactor_feed(r, in + prev, at - prev, sink_emit, &s);
		prev = at;
	}
	pilot_redactor_flush(r, sink_emit, &s);
	pilot_redactor_free(r);
	char *out = pilot_buf_steal(&s.b[1]);
	sink_free(&s);
	return out;
}

static void test_redact_split_everywhere(void **state)
{
	(void)state;
	const char *secrets[] = { "hunter2-secret", "tok", "tokentoken" };
	const char *in = "a hunter2-secret, b tokentoken c tokto hunter2-secre hunter2-secrethunter2-secret end tok";
	const char *want = "a ***, b *** c ***to hunter2-secre ****** end ***";
	size_t len = strlen(in);
	_cleanup_free_ char *whole = pilot_redact_string(secrets, 3, in);
	assert_string_equal(whole, want);
	/* One cut at every position, then two cuts at every pair of positions. */
	for (size_t i = 0; i <= len; i++) {
		size_t cuts[] = { i };
		_cleanup_free_ char *out = redact_in_pieces(secrets, 3, in, cuts, 1);
		assert_string_equal(out, want);
	}
	for (size_t i = 0; i <= len; i++) {
		for (size_t j = i; j <= len; j++) {
			size_t cuts[] = { i, j };
			_cleanup_free_ char *out = redact_in_pieces(secrets, 3, in, cuts, 2);
			assert_string_equal(out, want);
		}
	}
	/* Byte by byte. */
	size_t *all = pilot_xcalloc(len, sizeof(size_t));
	for (size_t i = 0; i < len; i++)
		all[i] = i;
	_cleanup_free_ char *out = redact_in_pieces(secrets, 3, in, all, len);
	assert_string_equal(out, want);
	free(all);
}

static void test_redact_behaviour(void **state)
{
	(void)state;
	/* Clean output passes at once: nothing is held back when no secret can start. */
	const char *secrets[] = { "s3cr3t" };
	struct pilot_redactor *r = pilot_redactor_new(secrets, 1);
	struct sink s;
	sink_init(&s);
	pilot_redactor_feed(r, "hello\n", 6, sink_emit, &s);
	assert_string_equal(pilot_buf_str(&s.b[1]), "hello\n");
	pilot_redactor_feed(r, "x s3c", 5, sink_emit, &s);
	assert_string_equal(pilot_buf_str(&s.b[1]), "hello\nx ");
	pilot_redactor_feed(r, "ond", 3, sink_emit, &s);
	assert_string_equal(pilot_buf_str(&s.b[1]), "hello\nx s3cond");
	pilot_redactor_feed(r, "s3cr3", 5, sink_emit, &s);
	pilot_redactor_flush(r, sink_emit, &s); /* a prefix at the very end is output */
	assert_string_equal(pilot_buf_str(&s.b[1]), "hello\nx s3conds3cr3");
	pilot_redactor_free(r);
	sink_free(&s);

	/* No secrets, empty secrets: a pass-through. */
	const char *empty[] = { "", NULL };
	_cleanup_free_ char *o1 = pilot_redact_string(empty, 2, "nothing to hide");
	assert_string_equal(o1, "nothing to hide");
	_cleanup_free_ char *o2 = pilot_redact_string(NULL, 0, "x");
	assert_string_equal(o2, "x");

	/* The longest secret wins at one position; overlapping occurrences. */
	const char *nested[] = { "ab", "abcd" };
	_cleanup_free_ char *o3 = pilot_redact_string(nested, 2, "abcd ab abc aab");
	assert_string_equal(o3, "*** *** ***c a***");
	const char *rep[] = { "aa" };
	_cleanup_free_ char *o4 = pilot_redact_string(rep, 1, "aaaaa");
	assert_string_equal(o4, "******a");
	/* Binary-safe: NUL bytes in the stream. */
	r = pilot_redactor_new(secrets, 1);
	sink_init(&s);
	pilot_redactor_feed(r, "a\0s3cr3t\0b", 10, sink_emit, &s);
	pilot_redactor_flush(r, sink_emit, &s);
	assert_int_equal(s.b[1].len, 7);
	assert_memory_equal(s.b[1].data, "a\0***\0b", 7);
	pilot_redactor_free(r);
	sink_free(&s);
}

/* ---- metrics ---- */

static void check_metric(const char *line, const char *want)
{
	char *json = NULL;
	int r = pilot_metric_parse_line(line, strlen(line), &json);
	if (!want) {
		assert_int_equal(r, 0);
		assert_null(json);
		return;
	}
	if (strcmp(want, "!") == 0) {
		assert_int_equal(r, PILOT_EINVALID);
		assert_null(json);
		return;
	}
	assert_int_equal(r, 1);
	assert_string_equal(json, want);
	free(json);
}

static void test_metric_lines(void **state)
{
	(void)state;
	check_metric("METRIC {\"loss\": 0.3, \"step\": 10}", "{\"loss\":0.3,\"step\":10}");
	check_metric("METRIC   {\"a\":{\"b\":[1,2]}}\r\n", "{\"a\":{\"b\":[1,2]}}");
	check_metric("METRIC loss=0.25 step=7 ok=true bad=false name=resnet", 
		     "{\"loss\":0.25,\"step\":7,\"ok\":true,\"bad\":false,\"name\":\"resnet\"}");
	check_metric("METRIC lr=1e-3 neg=-2 big=12345678901234567890 hex=0x10 nan=nan lead=007",
		     "{\"lr\":0.001,\"neg\":-2,\"big\":1.23456789012346e19,\"hex\":\"0x10\",\"nan\":\"nan\",\"lead\":\"007\"}");
	check_metric("METRIC msg=\"two words\" path=\"a\\\"b\" eval/acc=0.9",
		     "{\"msg\":\"two words\",\"path\":\"a\\\"b\",\"eval/acc\":0.9}");
	check_metric("METRIC k=1 k=2", "{\"k\":2}");
	check_metric("METRIC empty=", "{\"empty\":\"\"}");
	check_metric("loss=0.3", NULL);
	check_metric("METRICS loss=1", NULL);
	check_metric("  METRIC loss=1", NULL);
	check_metric("METRIC", NULL);
	check_metric("METRIC ", "!");
	check_metric("METRIC {\"loss\": ", "!");
	check_metric("METRIC [1,2]", "!");
	check_metric("METRIC =3", "!");
	check_metric("METRIC a b", "!");
	check_metric("METRIC s=\"open", "!");
	check_metric("METRIC {\"a\":1,\"a\":2}", "!");
}

struct metrics {
	struct pilot_buf all;
	int n;
};

static void on_metric(const char *json, void *ud)
{
	struct metrics *m = ud;
	pilot_buf_printf(&m->all, "%s\n", json);
	m->n++;
}

static void test_metric_scanner(void **state)
{
	(void)state;
	const char *out = "epoch 1\nMETRIC loss=1\nMETRIC {\"loss\":0.5}\nnot METRIC x=1\nMETRIC bad line here\n"
			  "METRIC acc=0.9";
	size_t n = strlen(out);
	for (size_t step = 1; step <= n; step++) {
		struct metrics m = { PILOT_BUF_INIT, 0 };
		struct pilot_metric_scanner *s = pilot_metric_scanner_new(on_metric, &m);
		for (size_t i = 0; i < n; i += step)
			pilot_metric_scanner_feed(s, out + i, n - i < step ? n - i : step);
		assert_int_equal(m.n, 2);
		pilot_metric_scanner_finish(s);
		assert_int_equal(m.n, 3);
		assert_string_equal(pilot_buf_str(&m.all), "{\"loss\":1}\n{\"loss\":0.5}\n{\"acc\":0.9}\n");
		pilot_metric_scanner_free(s);
		pilot_buf_free(&m.all);
	}
	/* A line past the limit is skipped whole, the next one is read. */
	struct metrics m = { PILOT_BUF_INIT, 0 };
	struct pilot_metric_scanner *s = pilot_metric_scanner_new(on_metric, &m);
	pilot_metric_scanner_feed(s, "METRIC x=\"", 10);
	char *big = pilot_xmalloc(100000);
	memset(big, 'a', 100000);
	pilot_metric_scanner_feed(s, big, 100000);
	free(big);
	pilot_metric_scanner_feed(s, "\"\nMETRIC y=2\n", 13);
	pilot_metric_scanner_finish(s);
	assert_string_equal(pilot_buf_str(&m.all), "{\"y\":2}\n");
	pilot_metric_scanner_free(s);
	pilot_buf_free(&m.all);
}

static void test_metric_file(void **state)
{
	(void)state;
	_cleanup_free_ char *dir = tmpdir_new();
	_cleanup_free_ char *path = pilot_path_join(dir, "metrics.jsonl");
	struct metrics m = { PILOT_BUF_INIT, 0 };
	uint64_t off = 0;
	/* Missing: nothing yet. */
	assert_int_equal(pilot_metric_read_file(path, &off, false, on_metric, &m), 0);
	write_file(dir, "metrics.jsonl", "{\"loss\": 1}\nnot json\n[1]\n\n{\"loss\": 0.5, \"step\": 2}\n{\"partial\"");
	assert_int_equal(pilot_metric_read_file(path, &off, false, on_metric, &m), 2);
	assert_string_equal(pilot_buf_str(&m.all), "{\"loss\":1}\n{\"loss\":0.5,\"step\":2}\n");
	/* Again from the offset: nothing new until the line completes. */
	assert_int_equal(pilot_metric_read_file(path, &off, false, on_metric, &m), 0);
	FILE *f = fopen(path, "a");
	fputs(": true}\n{\"last\": 1}", f);
	fclose(f);
	assert_int_equal(pilot_metric_read_file(path, &off, false, on_metric, &m), 1);
	assert_int_equal(pilot_metric_read_file(path, &off, true, on_metric, &m), 1);
	assert_string_equal(pilot_buf_str(&m.all),
			    "{\"loss\":1}\n{\"loss\":0.5,\"step\":2}\n{\"partial\":true}\n{\"last\":1}\n");
	/* A truncated file starts over. */
	write_file(dir, "metrics.jsonl", "{\"n\":1}\n");
	pilot_buf_reset(&m.all);
	assert_int_equal(pilot_metric_read_file(path, &off, false, on_metric, &m), 1);
	assert_string_equal(pilot_buf_str(&m.all), "{\"n\":1}\n");
	pilot_buf_free(&m.all);
	pilot_rm_rf(dir);
}

/* ---- artifacts ---- */

static void test_glob(void **state)
{
	(void)state;
	struct { const char *pat, *path; bool hit; } cases[] = {
		{ "*.pt", "model.pt", true },
		{ "*.pt", "a/b/model.pt", true },
		{ "*.pt", "model.pth", false },
		{ "*.pt", "ckpt.pt/inside", true }, /* a directory that matches takes its contents */
		{ "outputs/**", "outputs/a.txt", true },
		{ "outputs/**", "outputs/x/y/z", true },
		{ "outputs/**", "outputs", false },
		{ "outputs/**", "a/outputs/x", false },
		{ "outputs", "outputs/x/y", true },
		{ "outputs", "a/outputs/x", true },
		{ "outputs/", "outputs/x", true },
		{ "outputs/", "outputs", false }, /* a file named like the directory */
		{ "/outputs", "outputs/x", true },
		{ "/outputs", "a/outputs/x", false },
		{ "out*/*.txt", "outputs/a.txt", true },
		{ "out*/*.txt", "outputs/sub/a.txt", false },
		{ "**/ckpt/*.pt", "ckpt/a.pt", true },
		{ "**/ckpt/*.pt", "x/y/ckpt/a.pt", true },
		{ "**/ckpt/*.pt", "x/ckpt/y/a.pt", false },
		{ "a/**/b", "a/b", true },
		{ "a/**/b", "a/x/y/b", true },
		{ "a/**/b", "a/xb", false },
		{ "file?.log", "file1.log", true },
		{ "file?.log", "file10.log", false },
		{ "data[0-9].csv", "data7.csv", true },
		{ "data[!0-9].csv", "data7.csv", false },
		{ "data[!0-9].csv", "datax.csv", true },
		{ "[abc", "[abc", true },
		{ "\\*.txt", "*.txt", true },
		{ "\\*.txt", "a.txt", false },
		{ "*", "anything/at/all", true },
		{ "**", "deep/path", true },
		{ "a*b*c*d*e*f*g", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", false },
	};
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		if (pilot_artifact_match(cases[i].pat, cases[i].path) != cases[i].hit)
			fail_msg("pattern '%s' on '%s': expected %s", cases[i].pat, cases[i].path,
				 cases[i].hit ? "a match" : "no match");
	}
}

static char notices[4096];
static void log_capture(enum pilot_log_level level, const char *msg, void *ud)
{
	(void)level;
	(void)ud;
	size_t n = strlen(notices);
	snprintf(notices + n, sizeof(notices) - n, "%s\n", msg);
}

static void test_artifacts_collect(void **state)
{
	(void)state;
	_cleanup_free_ char *ws = tmpdir_new();
	write_file(ws, "outputs/a.txt", "aaaa");
	write_file(ws, "outputs/sub/b.bin", "bb");
	write_file(ws, "outputs/tmp/scratch", "x");
	write_file(ws, "model.pt", "model");
	write_file(ws, "deep/er/ckpt.pt", "c");
	write_file(ws, "notes.txt", "n");
	write_file(ws, ".pilot/metrics.jsonl", "{}\n");
	_cleanup_free_ char *l1 = pilot_path_join(ws, "outputs/passwd");
	_cleanup_free_ char *l2 = pilot_path_join(ws, "outputs/linkdir");
	_cleanup_free_ char *l3 = pilot_path_join(ws, "evil.pt");
	assert_int_equal(symlink("/etc/passwd", l1), 0);
	assert_int_equal(symlink("/etc", l2), 0);
	assert_int_equal(symlink("/etc/hostname", l3), 0);
	_cleanup_free_ char *fifo = pilot_path_join(ws, "outputs/fifo");
	assert_int_equal(mkfifo(fifo, 0600), 0);

	notices[0] = '\0';
	pilot_log_set_handler(log_capture, NULL, PILOT_LOG_NOTICE);
	const char *pats[] = { "outputs/**", "*.pt", "!outputs/tmp/" };
	struct pilot_artifact_files l;
	assert_int_equal(pilot_artifacts_collect(ws, pats, 3, &l), 0);
	pilot_log_set_handler(NULL, NULL, PILOT_LOG_WARN);
	assert_int_equal(l.n, 4);
	assert_string_equal(l.items[0].path, "deep/er/ckpt.pt");
	assert_string_equal(l.items[1].path, "model.pt");
	assert_string_equal(l.items[2].path, "outputs/a.txt");
	assert_int_equal(l.items[2].size, 4);
	assert_string_equal(l.items[3].path, "outputs/sub/b.bin");
	assert_int_equal(l.total_size, 1 + 5 + 4 + 2);
	assert_non_null(strstr(notices, "artifact 'outputs/passwd' is a symbolic link: skipped"));
	assert_non_null(strstr(notices, "artifact 'outputs/linkdir' is a symbolic link: skipped"));
	assert_non_null(strstr(notices, "artifact 'evil.pt' is a symbolic link: skipped"));
	pilot_artifact_files_free(&l);
	pilot_artifact_files_free(NULL);

	/* No patterns, nothing; a missing workspace is an error. */
	assert_int_equal(pilot_artifacts_collect(ws, NULL, 0, &l), 0);
	assert_int_equal(l.n, 0);
	const char *all[] = { "**" };
	assert_int_equal(pilot_artifacts_collect("/nonexistent/ws", all, 1, &l), PILOT_EIO);
	assert_non_null(strstr(pilot_error_last(), "cannot open workspace '/nonexistent/ws'"));
	pilot_rm_rf(ws);
}

/* ---- exit statuses, policies, control ---- */

static void test_exit_status(void **state)
{
	(void)state;
	struct pilot_job_result r = { .exit_code = 0 };
	assert_int_equal(pilot_job_exit_status(&r), 0);
	r.exit_code = 3;
	assert_int_equal(pilot_job_exit_status(&r), 3);
	r.exit_code = 137; /* a container killed by SIGKILL: as docker reports it */
	assert_int_equal(pilot_job_exit_status(&r), 137);
	r = (struct pilot_job_result){ .exit_code = -1, .signal = 15 };
	assert_int_equal(pilot_job_exit_status(&r), 143);
	r.timed_out = true;
	assert_int_equal(pilot_job_exit_status(&r), 124);
	r.canceled = true;
	assert_int_equal(pilot_job_exit_status(&r), 130);
	r = (struct pilot_job_result){ .exit_code = -1 };
	assert_int_equal(pilot_job_exit_status(&r), 125);

	enum pilot_pull_policy p;
	assert_int_equal(pilot_pull_policy_parse("never", &p), 0);
	assert_int_equal(p, PILOT_PULL_NEVER);
	assert_string_equal(pilot_pull_policy_name(p), "never");
	assert_int_equal(pilot_pull_policy_parse("always", &p), 0);
	assert_string_equal(pilot_pull_policy_name(p), "always");
	assert_int_equal(pilot_pull_policy_parse("sometimes", &p), PILOT_EINVALID);
	assert_non_null(strstr(pilot_error_last(), "'sometimes'"));
}

static void test_control(void **state)
{
	(void)state;
	struct pilot_job_control *ctl;
	assert_int_equal(pilot_job_control_new(&ctl), 0);
	assert_false(pilot_job_control_canceled(ctl));
	assert_int_equal(runtime_control_state(ctl), 0);
	pilot_job_control_cancel(ctl, false);
	assert_true(pilot_job_control_canceled(ctl));
	assert_int_equal(runtime_control_state(ctl), 1);
	pilot_job_control_cancel(ctl, false); /* a second cancel escalates */
	assert_int_equal(runtime_control_state(ctl), 2);
	/* Many cancels never block (the pipe may fill up). */
	for (int i = 0; i < 100000; i++)
		pilot_job_control_cancel(ctl, true);
	assert_int_equal(runtime_control_state(ctl), 2);
	pilot_job_control_free(ctl);
	pilot_job_control_free(NULL);

	assert_int_equal(pilot_job_control_new(&ctl), 0);
	pilot_job_control_cancel(ctl, true);
	assert_int_equal(runtime_control_state(ctl), 2);
	pilot_job_control_free(ctl);
	assert_false(pilot_job_control_canceled(NULL));

	/* A cancel's own grace: the first request starts a graceful stop, a later one only
	 * shortens the grace (never lengthens it) and is not a second request; 0 kills. */
	assert_int_equal(pilot_job_control_new(&ctl), 0);
	assert_int_equal(runtime_control_grace(ctl, -7), -7);
	pilot_job_control_cancel_grace(ctl, -1);
	assert_int_equal(runtime_control_state(ctl), 1);
	assert_int_equal(runtime_control_grace(ctl, -7), -7);
	pilot_job_control_cancel_grace(ctl, 5000);
	assert_int_equal(runtime_control_state(ctl), 1);
	assert_int_equal(runtime_control_grace(ctl, -7), 5000);
	pilot_job_control_cancel_grace(ctl, 9000);
	assert_int_equal(runtime_control_grace(ctl, -7), 5000);
	pilot_job_control_cancel_grace(ctl, 2000);
	assert_int_equal(runtime_control_grace(ctl, -7), 2000);
	assert_int_equal(runtime_control_state(ctl), 1);
	pilot_job_control_cancel_grace(ctl, 0);
	assert_int_equal(runtime_control_state(ctl), 2);
	pilot_job_control_free(ctl);
}

/* The host runtime applies a cancel's grace and says which signals it sent: a job that
 * ignores SIGTERM is killed when a 300 ms grace runs out (not the job's 20 s); a grace
 * that shrinks while the job is being stopped brings the SIGKILL forward; 0 kills at
 * once without SIGTERM; a job that exits on SIGTERM is not sent SIGKILL. */
struct grace_case {
	struct pilot_job_control *ctl;
	int64_t first;  /* the grace asked 300 ms in */
	bool hurry;     /* and then, 200 ms later, second */
	int64_t second;
};

static void *ask_grace(void *arg)
{
	struct grace_case *g = arg;
	usleep(300 * 1000);
	pilot_job_control_cancel_grace(g->ctl, g->first);
	if (g->hurry) {
		usleep(200 * 1000);
		pilot_job_control_cancel_grace(g->ctl, g->second);
	}
	return NULL;
}

static int64_t run_grace_case(const char *script, int64_t first, bool hurry, int64_t second,
			      struct pilot_job_result *res)
{
	struct pilot_runtime *rt;
	assert_int_equal(pilot_runtime_open("host", NULL, &rt), 0);
	_cleanup_free_ char *ws = tmpdir_new();
	const char *argv[] = { script };
	struct pilot_job job = { .run_id = "r1", .attempt = 1, .argv = argv, .argc = 1, .shell = true,
				 .workspace = ws, .grace_ms = 20000 };
	struct grace_case g = { .first = first, .hurry = hurry, .second = second };
	assert_int_equal(pilot_job_control_new(&g.ctl), 0);
	pthread_t t;
	pthread_create(&t, NULL, ask_grace, &g);
	int64_t t0 = pilot_mono_ms();
	assert_int_equal(pilot_runtime_run(rt, &job, g.ctl, res), 0);
	int64_t dt = pilot_mono_ms() - t0;
	pthread_join(t, NULL);
	pilot_job_control_free(g.ctl);
	pilot_runtime_close(rt);
	pilot_rm_rf(ws);
	assert_true(res->canceled);
	return dt;
}

static void test_cancel_grace(void **state)
{
	(void)state;
	static const char stubborn[] = "trap '' TERM; while :; do sleep 0.05; done";
	struct pilot_job_result res;
	/* The bounds only tell the cancel's grace from the job's 20 s. */
	int64_t dt = run_grace_case(stubborn, 300, false, 0, &res);
	assert_true(res.sent_term && res.sent_kill);
	assert_int_equal(res.signal, SIGKILL);
	assert_in_range(dt, 450, 10000);

	dt = run_grace_case(stubborn, -1, true, 100, &res);
	assert_true(res.sent_term && res.sent_kill);
	assert_in_range(dt, 450, 10000);

	dt = run_grace_case(stubborn, 0, false, 0, &res);
	assert_true(!res.sent_term && res.sent_kill);
	assert_int_equal(res.signal, SIGKILL);
	assert_in_range(dt, 250, 10000);

	dt = run_grace_case("trap 'exit 3' TERM; while :; do sleep 0.05; done", 5000, false, 0, &res);
	assert_true(res.sent_term && !res.sent_kill);
	assert_int_equal(res.exit_code, 3);
	assert_in_range(dt, 250, 4000);
}

/* ---- opening ---- */

static void test_open(void **state)
{
	(void)state;
	struct pilot_runtime *rt;
	assert_int_equal(pilot_runtime_open("dokcer", NULL, &rt), PILOT_EINVALID);
	assert_string_equal(pilot_error_last(), "unknown runtime 'dokcer' (did you mean 'docker'?)");
	assert_null(rt);

	struct pilot_runtime_opts o = { .endpoint = "unix:///nonexistent/docker.sock" };
	assert_int_equal(pilot_runtime_open("docker", &o, &rt), PILOT_EUNAVAILABLE);
	assert_string_equal(pilot_error_last(),
			    "cannot reach docker at unix:///nonexistent/docker.sock: no such file or directory");
	o.endpoint = "ssh://me@host";
	assert_int_equal(pilot_runtime_open("podman", &o, &rt), PILOT_EINVALID);
	assert_non_null(strstr(pilot_error_last(), "unsupported engine address 'ssh://me@host'"));
	o.endpoint = "tcp://127.0.0.1:2376";
	setenv("DOCKER_TLS_VERIFY", "1", 1);
	assert_int_equal(pilot_runtime_open("docker", &o, &rt), PILOT_EINVALID);
	assert_non_null(strstr(pilot_error_last(), "DOCKER_TLS_VERIFY is set"));
	unsetenv("DOCKER_TLS_VERIFY");
	o.endpoint = "unix:///nonexistent/podman.sock";
	assert_int_equal(pilot_runtime_open(NULL, &o, &rt), PILOT_EUNAVAILABLE);

	assert_int_equal(pilot_runtime_open("host", NULL, &rt), 0);
	assert_string_equal(pilot_runtime_kind(rt), "host");
	assert_false(pilot_runtime_isolated(rt));
	assert_non_null(strstr(pilot_runtime_describe(rt), "host"));
	unsigned removed = 7;
	assert_int_equal(pilot_runtime_cleanup_orphans(rt, NULL, &removed), 0);
	assert_int_equal(removed, 0);
	assert_int_equal(pilot_runtime_ensure_image(rt, "anything", PILOT_PULL_NEVER, NULL, NULL, NULL), 0);
	pilot_runtime_close(rt);
	pilot_runtime_close(NULL);

	/* auto with nothing answering and host allowed: the host. */
	setenv("DOCKER_HOST", "unix:///nonexistent/d.sock", 1);
	setenv("CONTAINER_HOST", "unix:///nonexistent/p.sock", 1);
	struct pilot_runtime_opts ah = { .auto_host = true };
	assert_int_equal(pilot_runtime_open(NULL, &ah, &rt), 0);
	assert_string_equal(pilot_runtime_kind(rt), "host");
	pilot_runtime_close(rt);
	assert_int_equal(pilot_runtime_open("auto", NULL, &rt), PILOT_EUNAVAILABLE);
	assert_non_null(strstr(pilot_error_last(), "no container engine found: cannot reach docker at "
						   "unix:///nonexistent/d.sock"));
	unsetenv("DOCKER_HOST");
	unsetenv("CONTAINER_HOST");
}

/* ---- the host runtime ---- */

static void test_host_env(void **state)
{
	(void)state;
	setenv("PILOT_TOKEN", "pt_secret", 1);
	setenv("HOME", "/home/someone", 1);
	setenv("PATH", "/opt/bin:/usr/bin", 1);
	const char *env[] = { "EPOCHS=5", "HOME=/override" };
	struct pilot_job job = { .env = env, .nenv = 2 };
	char **e = runtime_host_env(&job);
	bool path = false, home = false, epochs = false;
	for (char **p = e; *p; p++) {
		assert_false(pilot_str_has_prefix(*p, "PILOT_TOKEN="));
		path |= strcmp(*p, "PATH=/opt/bin:/usr/bin") == 0;
		home |= strcmp(*p, "HOME=/override") == 0;
		epochs |= strcmp(*p, "EPOCHS=5") == 0;
		assert_false(strcmp(*p, "HOME=/home/someone") == 0);
	}
	assert_true(path && home && epochs);
	for (char **p = e; *p; p++)
		free(*p);
	free(e);

	unsetenv("PATH");
	struct pilot_job none = { 0 };
	e = runtime_host_env(&none);
	path = false;
	for (char **p = e; *p; p++) {
		path |= strcmp(*p, "PATH=/usr/local/bin:/usr/bin:/bin") == 0;
		free(*p);
	}
	free(e);
	assert_true(path);
	setenv("PATH", "/usr/local/bin:/usr/bin:/bin", 1);
	unsetenv("PILOT_TOKEN");
}

static void on_output(int stream, const char *data, size_t len, void *ud)
{
	sink_stream(stream, data, len, ud);
}

static void test_host_run(void **state)
{
	(void)state;
	_cleanup_free_ char *ws = tmpdir_new();
	struct pilot_runtime *rt;
	assert_int_equal(pilot_runtime_open("host", NULL, &rt), 0);
	const char *script[] = { "echo out:$EPOCHS:$(pwd); echo err >&2; printf tok; printf 'en-123\\n'; exit 3" };
	const char *env[] = { "EPOCHS=5" };
	const char *secrets[] = { "token-123" };
	struct sink s;
	sink_init(&s);
	struct pilot_job job = {
		.argv = script, .argc = 1, .shell = true, .workspace = ws, .env = env, .nenv = 1,
		.secrets = secrets, .nsecrets = 1, .on_output = on_output, .ud = &s,
	};
	struct pilot_job_result res;
	assert_int_equal(pilot_runtime_run(rt, &job, NULL, &res), 0);
	assert_true(res.started);
	assert_int_equal(res.exit_code, 3);
	assert_int_equal(pilot_job_exit_status(&res), 3);
	_cleanup_free_ char *want = pilot_xasprintf("out:5:%s\n***\n", ws);
	assert_string_equal(pilot_buf_str(&s.b[1]), want);
	assert_string_equal(pilot_buf_str(&s.b[2]), "err\n");
	assert_true(pilot_str_has_prefix(res.id, "pid "));
	sink_free(&s);

	/* Killed by a signal: 128+N. */
	const char *kill9[] = { "kill -9 $$" };
	job.argv = kill9;
	job.on_output = NULL;
	assert_int_equal(pilot_runtime_run(rt, &job, NULL, &res), 0);
	assert_int_equal(res.signal, 9);
	assert_int_equal(pilot_job_exit_status(&res), 137);

	/* Exec form, looked up in the job's PATH; a missing command is a runtime error. */
	const char *tr[] = { "true" };
	job.argv = tr;
	job.shell = false;
	assert_int_equal(pilot_runtime_run(rt, &job, NULL, &res), 0);
	assert_int_equal(res.exit_code, 0);
	/* A command that cannot run is the job's failure, with a shell's statuses. */
	const char *nope[] = { "no-such-command-here" };
	job.argv = nope;
	sink_init(&s);
	job.on_output = on_output;
	assert_int_equal(pilot_runtime_run(rt, &job, NULL, &res), 0);
	assert_int_equal(pilot_job_exit_status(&res), 127);
	assert_false(res.started);
	assert_string_equal(pilot_buf_str(&s.b[2]), "pilot: cannot run 'no-such-command-here': command not found in PATH\n");
	const char *notexec[] = { "/etc/passwd" };
	job.argv = notexec;
	pilot_buf_reset(&s.b[2]);
	assert_int_equal(pilot_runtime_run(rt, &job, NULL, &res), 0);
	assert_int_equal(pilot_job_exit_status(&res), 126);
	assert_string_equal(pilot_buf_str(&s.b[2]), "pilot: cannot run '/etc/passwd': permission denied\n");
	const char *missing[] = { "./missing.sh" };
	job.argv = missing;
	pilot_buf_reset(&s.b[2]);
	assert_int_equal(pilot_runtime_run(rt, &job, NULL, &res), 0);
	assert_int_equal(pilot_job_exit_status(&res), 127);
	assert_string_equal(pilot_buf_str(&s.b[2]), "pilot: cannot run './missing.sh': no such file or directory\n");
	sink_free(&s);
	job.on_output = NULL;

	/* Canceled before it starts: nothing runs. */
	struct pilot_job_control *ctl;
	assert_int_equal(pilot_job_control_new(&ctl), 0);
	pilot_job_control_cancel(ctl, false);
	job.argv = tr;
	assert_int_equal(pilot_runtime_run(rt, &job, ctl, &res), 0);
	assert_true(res.canceled);
	assert_false(res.started);
	assert_int_equal(pilot_job_exit_status(&res), 130);
	pilot_job_control_free(ctl);

	/* Bad jobs. */
	struct pilot_job bad = { .argv = tr, .argc = 1, .workspace = "relative" };
	assert_int_equal(pilot_runtime_run(rt, &bad, NULL, &res), PILOT_EINVALID);
	bad.workspace = "/nonexistent/ws";
	assert_int_equal(pilot_runtime_run(rt, &bad, NULL, &res), PILOT_ENOTFOUND);
	bad.workspace = ws;
	const char *badenv[] = { "NOEQUALS" };
	bad.env = badenv;
	bad.nenv = 1;
	assert_int_equal(pilot_runtime_run(rt, &bad, NULL, &res), PILOT_EINVALID);
	assert_non_null(strstr(pilot_error_last(), "'NOEQUALS'"));
	bad.nenv = 0;
	bad.argc = 0;
	assert_int_equal(pilot_runtime_run(rt, &bad, NULL, &res), PILOT_EINVALID);
	pilot_runtime_close(rt);
	pilot_rm_rf(ws);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_demux),
		cmocka_unit_test(test_create_body_defaults),
		cmocka_unit_test(test_create_body_options),
		cmocka_unit_test(test_endpoint_parse),
		cmocka_unit_test(test_image_split),
		cmocka_unit_test(test_versions_messages),
		cmocka_unit_test(test_pull_progress),
		cmocka_unit_test(test_redact_split_everywhere),
		cmocka_unit_test(test_redact_behaviour),
		cmocka_unit_test(test_metric_lines),
		cmocka_unit_test(test_metric_scanner),
		cmocka_unit_test(test_metric_file),
		cmocka_unit_test(test_glob),
		cmocka_unit_test(test_artifacts_collect),
		cmocka_unit_test(test_exit_status),
		cmocka_unit_test(test_control),
		cmocka_unit_test(test_cancel_grace),
		cmocka_unit_test(test_open),
		cmocka_unit_test(test_host_env),
		cmocka_unit_test(test_host_run),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
