/* Shared inside lib/spec: the field checks used by both the YAML loader and the JSON
 * reader (so both accept exactly the same specs), interpolation, and the list of
 * diagnostics a load collects. */
#ifndef PILOT_SPEC_INTERNAL_H
#define PILOT_SPEC_INTERNAL_H

#include "pilot/spec.h"
#include "pilot/util.h"

/* Limits that keep a hostile spec from costing much: the largest spec file and the
 * number of mistakes reported before giving up. */
#define SPEC_MAX_BYTES (1024 * 1024)
#define SPEC_MAX_DIAGS PILOT_SPEC_MAX_DIAGS
/* After interpolation (and YAML aliases, which repeat a value without repeating its
 * text): the longest value, and all values together. */
#define SPEC_MAX_VALUE_BYTES (1024 * 1024)
#define SPEC_MAX_EXPANDED_BYTES (16 * 1024 * 1024)
#define SPEC_NAME_MAX 128
#define SPEC_LABEL_MAX 63
#define SPEC_MAX_GPUS 1024
/* Durations are capped well below the point where seconds with millisecond fractions
 * stop round-tripping through a double (10^15 ms). */
#define SPEC_MAX_DURATION_MS (3650LL * 86400 * 1000)

struct diag_list {
	struct pilot_spec_diag *items;
	size_t n;
	bool truncated;
};

void diag_add(struct diag_list *l, const char *file, unsigned line, unsigned col, const char *path,
	      const char *fmt, ...) __attribute__((format(printf, 6, 7)));
void diag_list_clear(struct diag_list *l);
/* Hand the list over as this thread's "last diagnostics", and set pilot_error_last() to
 * all of them, one per line. Returns PILOT_EINVALID. */
int diag_list_publish(struct diag_list *l);
void diags_forget_last(void);

/* Field checks: each returns NULL when the value is fine, or a message (static storage
 * or written into buf) saying what is wrong with it. */
bool utf8_valid(const char *s);
const char *check_name(const char *s);
const char *check_env_name(const char *s, char *buf, size_t len);
const char *check_label(const char *s);
const char *check_image(const char *s);
const char *check_workdir(const char *s);
const char *check_artifact(const char *s);
const char *check_ignore(const char *s);
/* cpus: a decimal > 0 with at most three places. */
const char *parse_cpus(const char *s, int64_t *milli, char *buf, size_t len);
/* A spec that passed the per-field checks, checked across fields (image needed for a
 * container runtime, env vs secrets, backoff <= max_backoff). Calls report() for each
 * problem with the key path; returns the number of problems. */
typedef void (*cross_report_fn)(void *ud, const char *path, const char *msg);
int check_cross(const struct pilot_spec *s, cross_report_fn report, void *ud);

/* Interpolation of ${NAME}, ${NAME:-default} and $$ in one string. lookup returns the
 * value, or NULL when unset; *quiet set by lookup means "unset, but already reported"
 * (a param that failed to load) and yields "" without a new error. On failure returns
 * -1 and *err gets a message (caller frees). */
typedef const char *(*interp_lookup_fn)(const char *name, void *ud, bool *quiet);
int spec_interpolate(const char *in, interp_lookup_fn lookup, void *ud, char **out, char **err);

/* Building a spec. */
struct pilot_spec *spec_new(void);
void spec_set_defaults(struct pilot_spec *s);
void kv_add(struct pilot_kv **kv, size_t *n, const char *key, const char *value);
/* kv_set replaces the value of a key already there. */
void kv_set(struct pilot_kv **kv, size_t *n, const char *key, const char *value);
void strv_add(char ***v, size_t *n, const char *s);
void strv_free(char **v, size_t n);
enum pilot_spec_runtime runtime_parse(const char *s, bool *ok);

#endif
