/* runtime: executing one attempt of a job — in a container through the Docker Engine API
 * (dockerd, or podman's Docker-compatible service) or as a process on this host — and the
 * pieces every caller needs around it: cancel and timeout control, the exit-status mapping
 * of pilot(1), a streaming secret redactor, the METRIC line parser and artifact collection.
 * `pilot run` and the agent both drive a job through pilot_runtime_run(). */
#ifndef PILOT_RUNTIME_H
#define PILOT_RUNTIME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- opening a runtime -----------------------------------------------------
 * Kinds: "docker", "podman", "host", or NULL/"auto" (docker if its engine answers, else
 * podman, else host when opts->auto_host allows it).
 *
 * Engine address, first found: opts->endpoint; for docker $DOCKER_HOST, else
 * unix:///var/run/docker.sock; for podman $CONTAINER_HOST, else
 * $XDG_RUNTIME_DIR/podman/podman.sock when it exists, else unix:///run/podman/podman.sock.
 * Accepted forms: unix:///path, /path, tcp://host:port (plain HTTP). Opening pings the
 * engine and negotiates the API version (at least 1.40, at most 1.43); the engine actually
 * answering decides the flavour, so a podman socket named as docker gets podman's quirks
 * (explicit ulimits, no init process) and pilot_runtime_kind() says "podman".
 *
 * A runtime holds no per-job state: several threads may run jobs on one at once. */
struct pilot_runtime;

struct pilot_runtime_opts {
	const char *endpoint;       /* engine address; NULL = environment / default */
	const char *owner;          /* value of the pilot.owner label on containers; NULL = none */
	bool auto_host;             /* NULL/"auto" may fall back to the host runtime */
	int64_t connect_timeout_ms; /* per engine request connect; 0 = 5 s */
};

int pilot_runtime_open(const char *kind, const struct pilot_runtime_opts *opts, struct pilot_runtime **out);
void pilot_runtime_close(struct pilot_runtime *rt);
/* "docker", "podman" or "host". */
const char *pilot_runtime_kind(const struct pilot_runtime *rt);
/* True for the container runtimes: the job cannot see the host beyond its workspace. */
bool pilot_runtime_isolated(const struct pilot_runtime *rt);
/* One line for humans: "docker 20.10.24 (API 1.41) at unix:///var/run/docker.sock". */
const char *pilot_runtime_describe(const struct pilot_runtime *rt);

/* ---- images ------------------------------------------------------------------ */
enum pilot_pull_policy {
	PILOT_PULL_MISSING = 0, /* pull only when the image is not present (default) */
	PILOT_PULL_ALWAYS,
	PILOT_PULL_NEVER,
};
/* "always", "missing", "never". */
int pilot_pull_policy_parse(const char *s, enum pilot_pull_policy *out);
const char *pilot_pull_policy_name(enum pilot_pull_policy p);

/* One step of a pull, as the engine reports it. */
struct pilot_pull_progress {
	const char *image;
	const char *layer;          /* NULL for messages about the whole image */
	const char *status;         /* the engine's words: "Downloading", "Pull complete" */
	uint64_t current, total;    /* this layer, bytes; 0 when unknown */
	uint64_t bytes_done, bytes_total; /* over the layers seen so far */
	unsigned layers_done, layers_total;
};

struct pilot_job_control;

/* Make sure image is present under the pull policy; progress goes to on_pull (may be NULL).
 * A pull can be interrupted through ctl (PILOT_ECANCELED). Containers only: the host
 * runtime accepts any image and does nothing. */
int pilot_runtime_ensure_image(struct pilot_runtime *rt, const char *image, enum pilot_pull_policy policy,
			       void (*on_pull)(const struct pilot_pull_progress *p, void *ud), void *ud,
			       struct pilot_job_control *ctl);

/* ---- jobs ------------------------------------------------------------------------ */
#define PILOT_JOB_DEFAULT_PIDS 4096
#define PILOT_JOB_DEFAULT_GRACE_MS 10000
#define PILOT_JOB_DEFAULT_WORKDIR "/workspace"

struct pilot_resources {
	double cpus;      /* 0 = no limit */
	uint64_t memory;  /* bytes, 0 = no limit (containers: also the swap limit) */
	int gpus;         /* 0 = none, N, -1 = all */
	uint64_t shm;     /* bytes of /dev/shm, 0 = engine default */
	int64_t pids;     /* 0 = PILOT_JOB_DEFAULT_PIDS, -1 = unlimited */
};

/* Where the runtimes differ:
 * - containers: the workspace is bind-mounted read-write at workdir, which is also the
 *   working directory; a given command replaces the image's entrypoint and command (none
 *   given = the image's own); capabilities are all dropped and no-new-privileges is set
 *   unless privileged; docker runs an init process (signals reach the job, zombies are
 *   reaped), podman does not (its init binary is often absent). Note that with every
 *   capability dropped the container's root cannot write a workspace it does not own:
 *   the caller makes it writable for the container's user (or sets user).
 * - host: the working directory is the workspace and workdir is ignored; the environment
 *   is built from scratch: PATH (the caller's, else /usr/local/bin:/usr/bin:/bin), HOME,
 *   USER, LOGNAME, LANG, LC_ALL, TZ and TMPDIR from the caller, then job->env on top, so
 *   nothing else of pilot's own environment (tokens) leaks into the job. memory becomes
 *   RLIMIT_DATA per process (RLIMIT_AS would count address-space reservations and break
 *   JVMs, Go and CUDA programs); cpus, gpus, shm, pids, network and user are not enforced
 *   (pids: RLIMIT_NPROC counts every process of the user, not the job's) and a notice
 *   says so when they were asked for. Stops signal the job's whole process group, and
 *   what is left of the group when the main process ends is killed, as in a container;
 *   a process that leaves the job's session (setsid) escapes both. */
struct pilot_job {
	const char *run_id;           /* label pilot.run; may be NULL */
	int attempt;                  /* label pilot.attempt */
	const char *image;            /* required by the container runtimes */
	const char *const *argv;      /* the command; argc 0 = the image's default */
	size_t argc;
	bool shell;                   /* argv[0] is a script for /bin/sh -c (argc must be 1) */
	const char *workspace;        /* absolute host directory; required */
	const char *workdir;          /* in the container; NULL = PILOT_JOB_DEFAULT_WORKDIR */
	const char *const *env;       /* "KEY=VALUE" */
	size_t nenv;
	const char *const *secrets;   /* values replaced by *** in the output */
	size_t nsecrets;
	struct pilot_resources res;
	const char *network;          /* NULL = the engine's default; "none", "host", a name */
	const char *user;             /* "uid[:gid]" or a name; NULL = the image's user */
	bool privileged;              /* escape hatch: Privileged, no CapDrop/no-new-privileges */
	int64_t timeout_ms;           /* wall clock from the start; 0 = none */
	int64_t grace_ms;             /* SIGTERM → SIGKILL; 0 = PILOT_JOB_DEFAULT_GRACE_MS */
	enum pilot_pull_policy pull;
	const char *metrics_path;     /* host path of the job's $PILOT_METRICS file, read while it
				       * runs and at the end; NULL = none (the caller creates
				       * it and sets PILOT_METRICS in env) */

	/* Callbacks (each may be NULL), all called on the thread in pilot_runtime_run with
	 * ud. on_output gets stream 1 (stdout) or 2 (stderr) after redaction, byte for byte
	 * as the job wrote it otherwise; on_metric gets one compact JSON object per metric
	 * (METRIC lines on stdout, lines of metrics_path); on_started gets the container id or
	 * "pid N" once the command runs. */
	void (*on_output)(int stream, const char *data, size_t len, void *ud);
	void (*on_metric)(const char *json, void *ud);
	void (*on_pull)(const struct pilot_pull_progress *p, void *ud);
	void (*on_started)(const char *id, void *ud);
	void *ud;
};

struct pilot_job_result {
	int exit_code;        /* the job's exit code; -1 when it has none (host: killed by a
			       * signal); containers report a signal N as 128+N */
	int signal;           /* host: the signal that ended it, else 0 */
	bool started;         /* the command ran */
	bool timed_out;       /* stopped by timeout_ms */
	bool canceled;        /* stopped (or never started) because of a cancel */
	bool oom_killed;      /* the engine says the memory limit killed it */
	bool sent_term;       /* pilot sent it SIGTERM to stop it (cancel, timeout) */
	bool sent_kill;       /* and SIGKILL: after the grace, or at once */
	int64_t duration_ms;  /* from start to exit */
	char id[80];          /* container id, or "pid N"; "" when none */
};

/* Run the job to its end: image, create, start, stream the output, wait, remove (the
 * container is removed on every path). Blocks; timeout and cancel are enforced inside:
 * SIGTERM, then SIGKILL after the grace. Returns 0 when the job ran (whatever its exit:
 * see res) or was canceled before it started (res->canceled), and a negative code when
 * pilot could not run it (engine unreachable, image missing, bad job) — `pilot run` exits
 * 125 then. A command that cannot be executed (not found, not executable) is the job's
 * failure, not pilot's: exit code 127 or 126 as a shell gives, the reason on stderr.
 * ctl may be NULL. No output is lost: the stream is drained before the exit is
 * reported. */
int pilot_runtime_run(struct pilot_runtime *rt, const struct pilot_job *job, struct pilot_job_control *ctl,
		      struct pilot_job_result *res);

/* pilot(1)'s exit status for a finished job: 130 canceled, 124 timed out, 128+N killed by
 * signal N (host), else the exit code (containers already say 128+N). */
int pilot_job_exit_status(const struct pilot_job_result *res);

/* Remove the containers labelled pilot.managed=1 — only those with pilot.owner=owner
 * when owner is given (an agent cleaning up after a crash of itself), else every one of
 * them (running ones too: use it only when no other pilot shares the engine). *removed
 * (may be NULL) gets the count. The host runtime has nothing to clean up. */
int pilot_runtime_cleanup_orphans(struct pilot_runtime *rt, const char *owner, unsigned *removed);

/* ---- cancel ------------------------------------------------------------------------
 * One control per running job. cancel is async-signal-safe (an atomic flag and a write()
 * to a pipe the run loop polls): call it from a signal handler or another thread. The
 * first cancel stops the job gracefully (SIGTERM, grace, SIGKILL); a second one, or
 * force, kills it at once. */
int pilot_job_control_new(struct pilot_job_control **out);
void pilot_job_control_free(struct pilot_job_control *ctl);
void pilot_job_control_cancel(struct pilot_job_control *ctl, bool force);
/* A graceful cancel with its own grace period instead of the job's grace_ms (a cancel
 * that asked for one: pilot cancel --grace): 0 kills at once, a negative grace_ms is
 * the job's own. Unlike pilot_job_control_cancel it never counts as a second request:
 * called again while the job is being stopped, a shorter grace brings the SIGKILL
 * forward to at most grace_ms from then; a longer one changes nothing. Also
 * async-signal-safe. */
void pilot_job_control_cancel_grace(struct pilot_job_control *ctl, int64_t grace_ms);
bool pilot_job_control_canceled(const struct pilot_job_control *ctl);

/* ---- secret redaction ------------------------------------------------------------------
 * Replaces every occurrence of any secret with "***" in a stream, also when an occurrence
 * is split across writes: the redactor holds back the shortest tail that could still
 * start a secret, and nothing else, so clean output is passed on at once. Overlapping
 * candidates: the earliest occurrence wins, the longest secret at the same position.
 * One redactor per stream. */
struct pilot_redactor;
typedef void (*pilot_emit_fn)(const char *data, size_t len, void *ud);
/* Empty secrets are ignored; the values are copied. */
struct pilot_redactor *pilot_redactor_new(const char *const *secrets, size_t n);
void pilot_redactor_free(struct pilot_redactor *r);
void pilot_redactor_feed(struct pilot_redactor *r, const char *data, size_t len, pilot_emit_fn emit, void *ud);
/* Emit what is held back (at the end of the stream). */
void pilot_redactor_flush(struct pilot_redactor *r, pilot_emit_fn emit, void *ud);
/* A redacted copy of a string (for messages that quote job output). */
char *pilot_redact_string(const char *const *secrets, size_t n, const char *s);

/* ---- metrics -------------------------------------------------------------------------
 * A job reports metrics by printing lines "METRIC {json object}" or "METRIC k=v k2=v2"
 * (values that read as numbers become numbers, true/false booleans, the rest strings;
 * "k=\"a b\"" quotes), or by appending JSON objects, one a line, to $PILOT_METRICS. */
/* 1 and *json (compact JSON object, caller frees) for a metric line, 0 for any other
 * line, PILOT_EINVALID for a malformed METRIC line. A trailing "\r" is ignored. */
int pilot_metric_parse_line(const char *line, size_t len, char **json);

/* Splits a stream into lines and reports the metric lines; lines longer than 64 KiB
 * are skipped. */
struct pilot_metric_scanner;
struct pilot_metric_scanner *pilot_metric_scanner_new(void (*on_metric)(const char *json, void *ud), void *ud);
void pilot_metric_scanner_feed(struct pilot_metric_scanner *s, const char *data, size_t len);
/* Report a last line without a newline. */
void pilot_metric_scanner_finish(struct pilot_metric_scanner *s);
void pilot_metric_scanner_free(struct pilot_metric_scanner *s);

/* Read the complete lines of a metrics file from *offset on and advance *offset past the
 * last complete one (a partial last line waits for the next call; final = true takes it
 * too). Lines that are not JSON objects are skipped with a notice. A missing file is
 * no metrics. Returns the number of metrics reported. */
int pilot_metric_read_file(const char *path, uint64_t *offset, bool final,
			   void (*on_metric)(const char *json, void *ud), void *ud);

/* ---- artifacts -----------------------------------------------------------------------
 * Patterns are gitignore-like globs over paths relative to the workspace: '*' and '?' stay
 * within one path component, '[a-z]' and '[!x]' are classes, a component "**" spans any
 * number of directories (the spec's `outputs/` + `**`); a pattern without a slash (other
 * than a trailing one) matches a name at any depth ("*.pt"), one with a slash is anchored
 * at the workspace (a leading slash is allowed); a pattern matching a directory takes
 * everything under it ("outputs", "outputs/"); "!pattern" excludes again, the last
 * matching pattern wins. */
bool pilot_artifact_match(const char *pattern, const char *path);

struct pilot_artifact_file {
	char *path;        /* relative to the workspace, '/'-separated */
	uint64_t size;
};
struct pilot_artifact_files {
	struct pilot_artifact_file *items; /* sorted by path */
	size_t n;
	uint64_t total_size;
};
/* Walk the workspace with lstat and collect the regular files the patterns select.
 * Symbolic links are never followed (skipped with a notice), nor are other special files
 * taken; the workspace's own ".pilot" directory is left out. */
int pilot_artifacts_collect(const char *workspace, const char *const *patterns, size_t n,
			    struct pilot_artifact_files *out);
void pilot_artifact_files_free(struct pilot_artifact_files *l);

#endif
