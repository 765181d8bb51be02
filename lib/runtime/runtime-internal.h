/* Shared between the files of lib/runtime (and its unit test): the runtime object, the
 * job control internals, the output pipeline every runtime feeds, and the pure pieces of
 * the engine client (frame demultiplexing, request bodies, endpoint and image parsing). */
#ifndef PILOT_RUNTIME_INTERNAL_H
#define PILOT_RUNTIME_INTERNAL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <curl/curl.h>
#include <jansson.h>

#include "pilot/runtime.h"
#include "pilot/util.h"

/* The API versions this client speaks: it uses the engine's, capped at the maximum. */
#define RUNTIME_API_MIN_MINOR 40
#define RUNTIME_API_MAX_MINOR 43

enum runtime_kind { RUNTIME_DOCKER, RUNTIME_PODMAN, RUNTIME_HOST };

struct pilot_runtime {
	enum runtime_kind kind;
	char *endpoint;      /* as given/derived: "unix:///var/run/docker.sock" */
	char *socket_path;   /* unix socket, or NULL for tcp */
	char *base_url;      /* "http://localhost" or "http://host:port" */
	char *owner;
	long connect_timeout_ms;
	char api_prefix[16]; /* "/v1.41" */
	char version[64];    /* engine version */
	char describe[512];
};

struct pilot_job_control {
	atomic_int requests;
	atomic_bool force;
	atomic_llong grace_ms; /* the shortest grace a cancel asked for; -1 = the job's own */
	int fds[2];          /* a write to fds[1] wakes the run loop */
};

/* The run loop's view of a control: 0 nothing asked, 1 graceful stop, 2 kill now. */
int runtime_control_state(struct pilot_job_control *ctl);
/* The grace a cancel asked for (pilot_job_control_cancel_grace), else def. */
int64_t runtime_control_grace(struct pilot_job_control *ctl, int64_t def);
/* The fd to poll (-1 for a NULL control); drained by runtime_control_state. */
int runtime_control_fd(const struct pilot_job_control *ctl);

/* What a runtime does with the job's bytes: per-stream redaction, METRIC lines on stdout,
 * the metrics file, then the caller's on_output. */
struct runtime_output {
	const struct pilot_job *job;
	struct pilot_redactor *red[2];
	struct pilot_metric_scanner *scanner;
	uint64_t metrics_offset;
	int64_t metrics_next_ms;
};
void runtime_output_init(struct runtime_output *o, const struct pilot_job *job);
void runtime_output_feed(struct runtime_output *o, int stream, const char *data, size_t len);
/* Read the metrics file if a second has passed since the last read. */
void runtime_output_tick(struct runtime_output *o);
/* Flush held-back bytes, the last line and the metrics file's last lines. */
void runtime_output_finish(struct runtime_output *o);
void runtime_output_free(struct runtime_output *o);

/* Checks common to every runtime, with messages naming the field. */
int runtime_job_validate(const struct pilot_job *job, bool container);

/* ---- the stream multiplexing of non-TTY attach/logs: frames of an 8-byte header
 * {stream, 0, 0, 0, size32be} and size bytes of payload, split anywhere by the transport. */
struct runtime_demux {
	unsigned char hdr[8];
	size_t hlen;
	uint32_t left;
	int stream;
};
typedef void (*runtime_demux_fn)(int stream, const char *data, size_t len, void *ud);
/* Feeds bytes; calls fn for each piece of payload (stream 1 stdout, 2 stderr; the engine's
 * own error stream 3 is passed as 2). PILOT_EINVALID on a header that is not one. */
int runtime_demux_feed(struct runtime_demux *d, const char *data, size_t len, runtime_demux_fn fn, void *ud);
/* True when the stream ended between frames. */
bool runtime_demux_clean(const struct runtime_demux *d);

/* ---- pure helpers of the engine client ---- */
/* unix:///p, /p, tcp://h:p, http://h:p → socket path (or NULL) and base URL. */
int runtime_endpoint_parse(const char *endpoint, char **socket_path, char **base_url);
/* "reg:5000/a/b:tag" → name "reg:5000/a/b", tag "tag"; a digest goes in tag; no tag → "latest". */
int runtime_image_split(const char *ref, char **name, char **tag);
/* The body of POST /containers/create for a job (JSON text, caller frees). */
char *runtime_create_body(const struct pilot_job *job, bool podman, const char *owner);
/* "1.41" → 41 for "1.x" versions, else -1. */
int runtime_api_minor(const char *version);
/* A message from an engine's error body ({"message": "..."}), or NULL. Caller frees. */
char *runtime_engine_message(const char *body, size_t len);

/* Pull progress: feed the JSON lines of POST /images/create. */
struct runtime_pull_state {
	const char *image;
	void (*on_pull)(const struct pilot_pull_progress *p, void *ud);
	void *ud;
	struct pilot_buf line;
	struct pull_layer *layers;
	size_t nlayers;
	char *error;          /* the engine's reason, once it reports one */
};
void runtime_pull_init(struct runtime_pull_state *st, const char *image,
		       void (*on_pull)(const struct pilot_pull_progress *p, void *ud), void *ud);
void runtime_pull_feed(struct runtime_pull_state *st, const char *data, size_t len);
void runtime_pull_finish(struct runtime_pull_state *st);
void runtime_pull_free(struct runtime_pull_state *st);

/* ---- the Engine API client (engine-api.c) ---- */

/* The time an ordinary Engine API request may take. */
#define ENGINE_API_TIMEOUT_MS 120000

/* curl_global_init, once. */
void engine_curl_ready(void);
/* "docker" or "podman", for messages. */
const char *engine_name(const struct pilot_runtime *rt);
/* An easy handle for METHOD path (a POST carries body as JSON); *headers to free after. */
CURL *engine_easy_new(struct pilot_runtime *rt, const char *method, const char *path, const char *body,
		      long timeout_ms, struct curl_slist **headers);
/* A failed transfer as PILOT_EUNAVAILABLE naming the engine and why. */
int engine_transport_error(struct pilot_runtime *rt, CURL *h, CURLcode c);
/* Performs h; through the control's wake-up pipe when ctl is given, so that a cancel
 * interrupts a long transfer (a pull). */
CURLcode engine_perform(CURL *h, struct pilot_job_control *ctl, bool *canceled);
/* A CURLOPT_WRITEFUNCTION into the struct pilot_buf of its userdata. */
size_t engine_write_buf(char *p, size_t size, size_t n, void *ud);
/* One API request. Transport failures are errors; any HTTP status is returned in
 * *status for the caller to judge, with the body in out (may be NULL). */
int engine_call(struct pilot_runtime *rt, const char *method, const char *path, const char *body, long timeout_ms,
		long *status, struct pilot_buf *out);
/* An error from an HTTP status and the engine's message: "what: engine message". */
int engine_status_error(struct pilot_runtime *rt, long status, const struct pilot_buf *body, const char *what);
json_t *engine_parse_json(const struct pilot_buf *b);

/* An attached container's stream: a raw HTTP upgrade on a connection curl opened. */
struct engine_attach {
	CURL *h;
	curl_socket_t fd;
	struct pilot_buf early; /* stream bytes that came with the response headers */
	bool eof;
};
int engine_attach_open(struct pilot_runtime *rt, const char *id, struct engine_attach *a);
void engine_attach_close(struct engine_attach *a);
/* Reads what the socket has now; sets a->eof at the end of the stream. */
int engine_attach_read(struct pilot_runtime *rt, struct engine_attach *a, struct runtime_demux *dm,
		       struct runtime_output *out);

/* ---- the runtimes ---- */
int runtime_engine_open(struct pilot_runtime *rt, const char *name);
int runtime_engine_run(struct pilot_runtime *rt, const struct pilot_job *job, struct pilot_job_control *ctl,
		       struct pilot_job_result *res);
int runtime_engine_ensure_image(struct pilot_runtime *rt, const char *image, enum pilot_pull_policy policy,
				void (*on_pull)(const struct pilot_pull_progress *p, void *ud), void *ud,
				struct pilot_job_control *ctl);
int runtime_engine_cleanup(struct pilot_runtime *rt, const char *owner, unsigned *removed);
int runtime_host_run(struct pilot_runtime *rt, const struct pilot_job *job, struct pilot_job_control *ctl,
		     struct pilot_job_result *res);
/* The host job's environment ("K=V", NULL-terminated; free with each string). */
char **runtime_host_env(const struct pilot_job *job);

#endif
