/* Helpers shared by the everyday commands that work on runs (submit, list, show, logs,
 * watch, cancel, retry, status, artifacts, metrics): resolving a run reference with a
 * helpful answer to an ambiguous prefix, the exit status a finished run maps to
 * (pilot(1)), --output json|yaml, following a run's log across attempts and waiting
 * for a run to end. cmd/runref.c, cmd/output.c and cmd/follow.c implement them. */
#ifndef PILOT_CMD_RUNS_H
#define PILOT_CMD_RUNS_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include <jansson.h>

#include "pilot.h"
#include "pilot/api.h"

/* ---- cmd/runref.c --------------------------------------------------------------- */

/* Report the last error about the run reference ref and return status. An ambiguous
 * prefix also lists the runs it matches (id, name, state, age), newest first. */
int runref_fail(struct pilot_ctx *ctx, struct pilot_api *api, const char *ref, int status);
/* pilot_api_get_run, reporting a failure with runref_fail: 0, or status. */
int runref_get(struct pilot_ctx *ctx, struct pilot_api *api, const char *ref, struct pilot_run *out, int status);
/* The smallest id prefix above every id starting with ref (ref "r0kz" -> "r0m"), so
 * a newest-first list page "older than" it (filter.after) starts with ref's newest
 * match; "" (no cursor) for a bare letter. false when there is none. */
bool runref_prefix_cursor(const char *ref, char out[PILOT_ID_SIZE]);
/* Whether ref names a group of runs: an array (x...) or a pipeline (p...). */
bool runs_is_group(const char *ref);
/* Open the transport the configuration asks for, reporting a failure: 0 or status. */
int runs_open_api(struct pilot_ctx *ctx, struct pilot_api **api, int status);
/* runs_open_api, then runref_get of ref into out: 0, or EXIT_FAIL after saying why
 * (*api may be open then; the caller closes it). */
int runs_open_run(struct pilot_ctx *ctx, const char *ref, struct pilot_api **api, struct pilot_run *out);

/* The exit status a terminal run stands for (pilot(1)): 0 succeeded, the job's code
 * (128+N when a signal N killed it), 124 timeout, 130 canceled, 125 when pilot could
 * not run it (runtime_error, bundle_invalid, lost, dependency_failed). -1 while the
 * run is not terminal. */
int run_exit_status(const struct pilot_run *r);
/* "failed (exit 3)", "failed (timeout)", "waiting (for 2 runs)", "running": the state
 * with what ended it, or what it waits for. */
void run_state_cell(const struct pilot_run *r, char *out, size_t n);
/* Whole seconds of run time so far ("-" before the first start). */
void run_duration_cell(const struct pilot_run *r, int64_t now, char *out, size_t n);
/* One line saying how a terminal run ended: "succeeded", "failed: exit code 3",
 * "failed: timeout (after 10s)", "canceled: canceled by bob". */
void run_outcome_line(const struct pilot_run *r, char *out, size_t n);

/* One metric's history: the numeric values of one field of the metric records, in
 * record order. */
struct metric_series {
	char *name;
	double *v;
	size_t n;
};
/* The series of every numeric field of the records of attempt (0 = all), in the order
 * the fields first appear. Free with metric_series_free. */
void metric_series_build(const struct pilot_metric_list *l, int attempt, struct metric_series **out, size_t *n);
void metric_series_free(struct metric_series *s, size_t n);
/* "42", "0.25", "1.5e+20". */
void metric_format(double v, char *out, size_t n);

/* ---- cmd/output.c --------------------------------------------------------------- */

enum output_format {
	OUTPUT_TEXT = 0, /* the command's own table or text */
	OUTPUT_JSON,
	OUTPUT_YAML,
};

/* Parse --output ARG: "json", "yaml", or text_name ("table" or "text"); NULL = text.
 * A bad value is a usage error (returns 2 after saying so); 0 otherwise. */
int output_parse(struct pilot_ctx *ctx, const char *arg, const char *text_name, enum output_format *out);
/* Print v on stdout as JSON (indented by 2) or as a YAML document, and release it. */
void output_value(json_t *v, enum output_format f);
/* YAML block form of v into b, every line indented by indent spaces. */
void output_yaml(struct pilot_buf *b, const json_t *v, int indent);

/* ---- cmd/follow.c --------------------------------------------------------------- */

struct follow_opts {
	int attempt;         /* 0 = start with the latest attempt */
	int64_t offset;      /* where to start in that attempt's log */
	bool follow;         /* keep reading until the run ends, moving on to newer attempts */
	bool quiet_moves;    /* no notice when moving on to a newer attempt */
	int out_fd;          /* where the bytes go (stdout) */
};

/* Copy a run's log bytes to opts->out_fd exactly as stored. Without follow: the bytes
 * stored now, then return. With follow: until the run is terminal and its last
 * attempt's log is complete; a newer attempt is announced with one line on stderr;
 * lost connections are retried (for up to FOLLOW_GIVE_UP_MS) and reading resumes at
 * the byte offset, so nothing is skipped or repeated. Returns 0, 1 when the reader
 * went away (EPIPE: stop quietly), or a negative code with the error set. *last_attempt
 * (optional) gets the attempt read last. */
#define FOLLOW_GIVE_UP_MS (5 * 60 * 1000)
int follow_logs(struct pilot_ctx *ctx, struct pilot_api *api, const char *run_id, const struct follow_opts *opts,
		int *last_attempt);

/* Block until the run is terminal (waiting on its events, so a server long-poll does the
 * waiting) and fill *out with it. Connection errors are retried like follow_logs.
 * on_event (optional) sees every event of the run from after_seq on. */
int wait_run(struct pilot_ctx *ctx, struct pilot_api *api, const char *run_id, int64_t after_seq,
	     void (*on_event)(const struct pilot_event *e, void *ud), void *ud, struct pilot_run *out);

/* submit/retry --wait and --follow: print the log when logs (a reader that went away
 * is fine), wait for the end, say how it ended on stderr and return the run's exit
 * status (run_exit_status), or 125 after reporting a failure to follow it. */
int follow_to_end(struct pilot_ctx *ctx, struct pilot_api *api, const char *run_id, bool logs);

/* The last n lines of an attempt's log of about size bytes (attempt.log_bytes), read
 * backwards in growing windows: *start gets the offset where they begin, *end the
 * offset after the last byte, and lines (optional) their bytes. */
int log_tail(struct pilot_api *api, const char *run_id, int attempt, int64_t size, size_t n, struct pilot_buf *lines,
	     int64_t *start, int64_t *end);

/* Saying why a run has not started, for a client waiting on it (submit -f/--wait,
 * logs -f): after QUEUED_NOTE_MS (PILOT_QUEUED_NOTE in the environment, a duration)
 * one notice on stderr — no agent connected, none whose labels match the run's
 * requires (naming them), all of those busy, or the runs it waits for (--after) that
 * have not ended — and another only when the reason changes. */
#define QUEUED_NOTE_MS 5000
struct queued_note {
	int64_t at;       /* monotonic ms from when to say it */
	char said[512];   /* the last notice */
};
void queued_note_init(struct queued_note *qn);
/* A long-poll's wait, cut so that the caller is back when the notice is due. */
int64_t queued_note_wait(const struct queued_note *qn, int64_t wait_ms);
/* Called while the run (by id) has not started: the notice, when it is due and new. */
void queued_note(struct pilot_ctx *ctx, struct pilot_api *api, const char *run_id, struct queued_note *qn);

/* Whether an api error is worth retrying (the server is down or restarting). */
bool api_error_transient(int code);
/* Sleep for the n-th retry (250 ms doubling to 5 s). */
void retry_sleep(int n);
/* Retry bookkeeping for a follower: says once that the connection was lost (a warning
 * with the error), once that it is back, and gives up after FOLLOW_GIVE_UP_MS. */
struct retry_state {
	int failures;
	int64_t since;
};
/* After a failed call with code: true = sleep done, call again; false = give up (the
 * error is as the call left it). */
bool should_retry(struct pilot_ctx *ctx, struct retry_state *rs, int code);
/* After a call that worked. */
void retry_ok(struct pilot_ctx *ctx, struct retry_state *rs);

#endif
