/* spec: pilot.yaml, the description of a job. Loading parses the YAML (libyaml), applies
 * ${VAR} interpolation from params and the environment, checks every field and reports
 * every mistake at once with file:line:col and the key path. A loaded spec has one
 * normal form as JSON (defaults filled in, durations in seconds, sizes in bytes) that is
 * stored with a run and turned back into the same struct on the agent. pilot.yaml(5)
 * is the user's reference. */
#ifndef PILOT_SPEC_H
#define PILOT_SPEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pilot/util.h"

struct json_t; /* jansson's, for the *_value variants */

/* Maps (env, params, requires) are arrays of struct pilot_kv (pilot/util.h), in the
 * order of the file. */

enum pilot_spec_runtime {
	PILOT_SPEC_RUNTIME_ANY = 0, /* not pinned: the config or the agent chooses */
	PILOT_SPEC_RUNTIME_DOCKER,
	PILOT_SPEC_RUNTIME_PODMAN,
	PILOT_SPEC_RUNTIME_HOST,
};

/* Bits of retry.on: which failures of an attempt the user wants retried. */
enum pilot_spec_retry_on {
	PILOT_SPEC_RETRY_EXIT_CODE = 1 << 0,
	PILOT_SPEC_RETRY_TIMEOUT = 1 << 1,
};

#define PILOT_SPEC_GPUS_ALL (-1)

#define PILOT_SPEC_DEFAULT_WORKDIR "/workspace"
#define PILOT_SPEC_DEFAULT_PRIORITY 50
#define PILOT_SPEC_DEFAULT_BACKOFF_MS 5000
#define PILOT_SPEC_DEFAULT_MAX_BACKOFF_MS 300000
#define PILOT_SPEC_MAX_ATTEMPTS 100
#define PILOT_SPEC_MAX_CONCURRENCY 10000

struct pilot_spec_resources {
	int64_t cpus_milli; /* thousandths of a CPU; 0 = no limit */
	uint64_t memory;    /* bytes; 0 = no limit */
	int gpus;           /* count; 0 = none; PILOT_SPEC_GPUS_ALL = every GPU */
	uint64_t shm;       /* bytes of /dev/shm; 0 = the engine's default */
};

struct pilot_spec_retry {
	int max_attempts;       /* 1..100; 1 (the default) means no retry */
	unsigned on;            /* PILOT_SPEC_RETRY_* bits; default both */
	int64_t backoff_ms;     /* base of the exponential backoff; default 5 s */
	int64_t max_backoff_ms; /* cap; default 5 min */
};

/* A loaded spec: every string is interpolated, every default filled in. Plain arrays
 * with counts, so the runtime and the store can use it directly. */
struct pilot_spec {
	char *name;     /* [a-z0-9][a-z0-9._-]*, at most 128 characters */
	char *image;    /* NULL when absent (only the host runtime can run it then) */
	enum pilot_spec_runtime runtime;
	/* The argv to execute, ready for execvp: NULL-terminated (command[ncommand] is
	 * NULL). A string command becomes {"/bin/sh", "-c", TEXT} with shell set. No
	 * command (ncommand 0, command NULL) runs the image's default command. */
	char **command;
	size_t ncommand;
	bool shell;
	char *workdir;  /* absolute; default /workspace */
	struct pilot_kv *env;
	size_t nenv;
	char **secrets; /* names only: the values are never in the spec or its JSON */
	size_t nsecrets;
	struct pilot_kv *params; /* effective values: defaults with --param overrides applied */
	size_t nparams;
	struct pilot_spec_resources resources;
	int64_t timeout_ms; /* per attempt, wall clock; 0 = none */
	struct pilot_spec_retry retry;
	struct pilot_kv *requires; /* agent labels that must match */
	size_t nrequires;
	char **artifacts; /* globs relative to workdir */
	size_t nartifacts;
	char **ignore;    /* extra ignore patterns for the bundle */
	size_t nignore;
	int priority;     /* 0..100, default 50; higher runs first */
	/* Concurrency group (NULL = none): at most concurrency_max runs of the group at
	 * once (queued or running), the others wait. "concurrency: NAME" is a max of 1. */
	char *concurrency_group;
	int concurrency_max;
	/* A submit while a run of the same name and params is queued, waiting or running
	 * ends skipped instead of running (pilot submit --unless-running). */
	bool skip_duplicate;
	/* Queued this long (ms) with no live agent that could take it: the run fails
	 * (no_agent) instead of waiting for one. 0 = wait for ever. */
	int64_t start_timeout_ms;
};

/* What ${VAR} can see. params: "NAME=VALUE" overrides of the spec's params (a name the
 * spec does not declare is an error). getenv: the environment lookup, NULL for
 * getenv(3). The whole struct may be NULL: no overrides, the process environment. */
struct pilot_spec_vars {
	const char *const *params;
	size_t nparams;
	const char *(*getenv)(const char *name, void *ud);
	void *ud;
};

/* One mistake in a spec. line and column are 1-based; both 0 when the mistake has no
 * place in the file (a bad --param). path is the key path ("resources.memory",
 * "secrets[1]"), "" at the top level. */
struct pilot_spec_diag {
	char *file;
	unsigned line;
	unsigned column;
	char *path;
	char *message;
};

/* Load and check a spec. On success *out gets the spec (free with pilot_spec_free).
 * On a mistake in the spec the result is PILOT_EINVALID, *out is NULL, every mistake
 * found is in pilot_spec_last_diags() and pilot_error_last() holds them all, one per
 * line: "pilot.yaml:4:11: resources.memory: invalid size '4 gigs' (expected e.g.
 * 512MiB, 4G)". filename is only used in messages. Errors point at the offending
 * value, or at the key for unknown and duplicate keys. */
int pilot_spec_load_string(const char *text, size_t len, const char *filename,
			   const struct pilot_spec_vars *vars, struct pilot_spec **out);
/* Same for a file (at most 1 MiB); an unreadable file is PILOT_ENOTFOUND or PILOT_EIO
 * with no diagnostics. */
int pilot_spec_load_file(const char *path, const struct pilot_spec_vars *vars, struct pilot_spec **out);

/* A pipeline: a spec with a jobs: map. Each job is a whole spec (its name is its key in
 * jobs:) that starts from the top-level fields (maps such as env and requires merged
 * key by key, resources and retry field by field, anything else replaced) and may
 * list the jobs it needs. The top-level params and ignore are shared (one bundle). */
#define PILOT_SPEC_MAX_JOBS 1000
struct pilot_spec_job {
	struct pilot_spec *spec;
	char **needs;   /* names of other jobs, each once */
	size_t nneeds;
};
struct pilot_spec_pipeline {
	char *name;                  /* the top-level name */
	/* In an order where each job comes after the jobs it needs (the file's order
	 * where that allows). */
	struct pilot_spec_job *jobs;
	size_t njobs;
	int max_failures;            /* max_failures: N or N% of the jobs, rounded up; 0 = none */
};
void pilot_spec_pipeline_free(struct pilot_spec_pipeline *p);
/* The index of the job named name in p, or -1. */
int pilot_spec_pipeline_find(const struct pilot_spec_pipeline *p, const char *name);

/* Load a spec that may be a pipeline: exactly one of *spec and *pipeline is set on
 * success. The plain loaders above refuse a spec with jobs:, naming it. Mistakes in
 * jobs (an unknown or repeated need, a job needing itself, a cycle) are reported with
 * file:line:col like any other, with the path "jobs.NAME.needs[I]". */
int pilot_spec_load_any_string(const char *text, size_t len, const char *filename,
			       const struct pilot_spec_vars *vars, struct pilot_spec **spec,
			       struct pilot_spec_pipeline **pipeline);
int pilot_spec_load_any_file(const char *path, const struct pilot_spec_vars *vars, struct pilot_spec **spec,
			     struct pilot_spec_pipeline **pipeline);

/* The mistakes found by the last failed load on this thread (valid until the next
 * load), in file order. *n gets their count; NULL when there are none. After
 * PILOT_SPEC_MAX_DIAGS mistakes a load stops collecting and adds a last one, with no
 * position, saying so. pilot_error_last() holds as many whole lines as fit in it
 * (about 2 KiB), then "(N more not shown)". */
#define PILOT_SPEC_MAX_DIAGS 100
const struct pilot_spec_diag *pilot_spec_last_diags(size_t *n);
/* "FILE:LINE:COL: PATH: MESSAGE" (parts left out when empty); caller frees. */
char *pilot_spec_diag_string(const struct pilot_spec_diag *d);

/* The normal form as compact JSON; caller frees. Fields, always all present, in this
 * order: name, image (null), runtime (null), command (array), shell, workdir, env,
 * secrets, params, resources {cpus (null), memory (null), gpus (number or "all"),
 * shm (null)}, timeout (null), retry {max_attempts, on, backoff, max_backoff},
 * requires, artifacts, ignore, priority, concurrency ({group, max} or null),
 * skip_duplicate, start_timeout (null). Durations in seconds (fractional when
 * needed), sizes in bytes. */
char *pilot_spec_to_json(const struct pilot_spec *spec);
/* The same as a new jansson value (caller json_decref's), to embed in larger documents. */
struct json_t *pilot_spec_to_json_value(const struct pilot_spec *spec);
/* Rebuild a spec from its normal form, checking it as strictly as the loader does (the
 * JSON may come over the network). Missing fields take their defaults; unknown fields
 * are errors. The JSON is not interpolated again. from_json(to_json(s)) equals s. */
int pilot_spec_from_json(const char *json, struct pilot_spec **out);
int pilot_spec_from_json_value(const struct json_t *json, struct pilot_spec **out);

void pilot_spec_free(struct pilot_spec *spec);

/* Locate a spec: arg is a directory holding pilot.yaml or a path to a YAML file.
 * *spec_path gets the file to open (relative when arg is; "pilot.yaml" for "."),
 * *project_dir the file's directory as an absolute path. Both freed by the caller.
 * PILOT_ENOTFOUND when there is nothing there. */
int pilot_spec_find(const char *arg, char **spec_path, char **project_dir);

/* Syntax checks shared with the rest of pilot. */
bool pilot_spec_name_valid(const char *name);     /* [a-z0-9][a-z0-9._-]{0,127} */
bool pilot_spec_env_name_valid(const char *name); /* [A-Za-z_][A-Za-z0-9_]* */
/* "docker", "podman", "host", or NULL for PILOT_SPEC_RUNTIME_ANY. */
const char *pilot_spec_runtime_name(enum pilot_spec_runtime rt);
/* The value of key in an ordered map, or NULL. */
const char *pilot_kv_get(const struct pilot_kv *kv, size_t n, const char *key);

#endif
