/* Unit tests for lib/spec: every field, every kind of mistake with its exact
 * file:line:col, several mistakes reported together, interpolation, the JSON normal
 * form and its exact round trip, and finding pilot.yaml on disk. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "pilot/spec.h"
#include "pilot/util.h"

/* A private environment, so the tests do not depend on the caller's. */
static const char *const fake_env[] = {
	"HOME=/home/u", "MEM=2G", "EMPTY=", "TAG=3.12", "BADUTF=\xff\xfe", NULL,
};

static const char *fake_getenv(const char *name, void *ud)
{
	(void)ud;
	size_t n = strlen(name);
	for (const char *const *e = fake_env; *e; e++)
		if (!strncmp(*e, name, n) && (*e)[n] == '=')
			return *e + n + 1;
	return NULL;
}

static const struct pilot_spec_vars env_only = { .getenv = fake_getenv };

static struct pilot_spec *load_ok_vars(const char *text, const struct pilot_spec_vars *vars)
{
	struct pilot_spec *s = NULL;
	int r = pilot_spec_load_string(text, strlen(text), "pilot.yaml", vars, &s);
	if (r < 0)
		print_error("unexpected error:\n%s\n", pilot_error_last());
	assert_int_equal(r, 0);
	assert_non_null(s);
	return s;
}

static struct pilot_spec *load_ok(const char *text)
{
	return load_ok_vars(text, &env_only);
}

/* The load fails, and pilot_error_last() is exactly want. */
static void load_err_vars(const char *text, const struct pilot_spec_vars *vars, const char *want)
{
	struct pilot_spec *s = (struct pilot_spec *)1;
	int r = pilot_spec_load_string(text, strlen(text), "pilot.yaml", vars, &s);
	assert_int_equal(r, PILOT_EINVALID);
	assert_null(s);
	if (strcmp(pilot_error_last(), want))
		print_error("spec:\n%s\nwanted:\n%s\ngot:\n%s\n", text, want, pilot_error_last());
	assert_string_equal(pilot_error_last(), want);
}

static void load_err(const char *text, const char *want)
{
	load_err_vars(text, &env_only, want);
}

/* ---- fields ------------------------------------------------------------------ */

static void test_minimal_defaults(void **state)
{
	(void)state;
	struct pilot_spec *s = load_ok("name: train\n");
	assert_string_equal(s->name, "train");
	assert_null(s->image);
	assert_int_equal(s->runtime, PILOT_SPEC_RUNTIME_ANY);
	assert_null(s->command);
	assert_int_equal(s->ncommand, 0);
	assert_false(s->shell);
	assert_string_equal(s->workdir, "/workspace");
	assert_int_equal(s->nenv + s->nsecrets + s->nparams + s->nrequires + s->nartifacts + s->nignore, 0);
	assert_int_equal(s->resources.cpus_milli, 0);
	assert_int_equal(s->resources.memory, 0);
	assert_int_equal(s->resources.gpus, 0);
	assert_int_equal(s->resources.shm, 0);
	assert_int_equal(s->timeout_ms, 0);
	assert_int_equal(s->retry.max_attempts, 1);
	assert_int_equal(s->retry.on, PILOT_SPEC_RETRY_EXIT_CODE | PILOT_SPEC_RETRY_TIMEOUT);
	assert_int_equal(s->retry.backoff_ms, 5000);
	assert_int_equal(s->retry.max_backoff_ms, 300000);
	assert_int_equal(s->priority, 50);
	pilot_spec_free(s);
	pilot_spec_free(NULL);
}

static const char full_spec[] =
	"name: train.v2_x-1\n"
	"image: python:3.12-slim\n"
	"runtime: podman\n"
	"command: python train.py --lr ${lr}\n"
	"workdir: /work/dir\n"
	"env:\n"
	"  EPOCHS: 5\n"
	"  VERBOSE: true\n"
	"  RATE: 1.50\n"
	"  NAME: \"x y\"\n"
	"  BLANK: \"\"\n"
	"secrets: [HF_TOKEN, WANDB_KEY]\n"
	"params: {lr: 0.01, data: /data}\n"
	"resources: {cpus: 2.5, memory: 4GiB, gpus: 1, shm: 512MiB}\n"
	"timeout: 1h30m\n"
	"retry: {max_attempts: 3, on: [timeout], backoff: 1500ms, max_backoff: 10m}\n"
	"requires: {gpu: a100, zone: 3, kubernetes.io/arch: amd64}\n"
	"artifacts: [outputs/**, \"*.pt\"]\n"
	"ignore: [data/raw/, \"*.tmp\"]\n"
	"priority: 80\n"
	"concurrency: {group: gpu-train, max: 2}\n"
	"skip_duplicate: true\n"
	"start_timeout: 10m\n";

static void test_all_fields(void **state)
{
	(void)state;
	struct pilot_spec *s = load_ok(full_spec);
	assert_string_equal(s->name, "train.v2_x-1");
	assert_string_equal(s->image, "python:3.12-slim");
	assert_int_equal(s->runtime, PILOT_SPEC_RUNTIME_PODMAN);
	assert_int_equal(s->ncommand, 3);
	assert_true(s->shell);
	assert_string_equal(s->command[0], "/bin/sh");
	assert_string_equal(s->command[1], "-c");
	assert_string_equal(s->command[2], "python train.py --lr 0.01");
	assert_null(s->command[3]);
	assert_string_equal(s->workdir, "/work/dir");
	assert_int_equal(s->nenv, 5);
	assert_string_equal(s->env[0].key, "EPOCHS");
	assert_string_equal(s->env[0].value, "5");
	assert_string_equal(pilot_kv_get(s->env, s->nenv, "VERBOSE"), "true");
	assert_string_equal(pilot_kv_get(s->env, s->nenv, "RATE"), "1.50"); /* the text, not a float */
	assert_string_equal(pilot_kv_get(s->env, s->nenv, "NAME"), "x y");
	assert_string_equal(pilot_kv_get(s->env, s->nenv, "BLANK"), "");
	assert_null(pilot_kv_get(s->env, s->nenv, "NOPE"));
	assert_int_equal(s->nsecrets, 2);
	assert_string_equal(s->secrets[1], "WANDB_KEY");
	assert_int_equal(s->nparams, 2);
	assert_string_equal(s->params[0].key, "lr");
	assert_string_equal(s->params[0].value, "0.01");
	assert_int_equal(s->resources.cpus_milli, 2500);
	assert_int_equal(s->resources.memory, 4ULL << 30);
	assert_int_equal(s->resources.gpus, 1);
	assert_int_equal(s->resources.shm, 512ULL << 20);
	assert_int_equal(s->timeout_ms, 5400000);
	assert_int_equal(s->retry.max_attempts, 3);
	assert_int_equal(s->retry.on, PILOT_SPEC_RETRY_TIMEOUT);
	assert_int_equal(s->retry.backoff_ms, 1500);
	assert_int_equal(s->retry.max_backoff_ms, 600000);
	assert_int_equal(s->nrequires, 3);
	assert_string_equal(pilot_kv_get(s->requires, s->nrequires, "zone"), "3");
	assert_string_equal(pilot_kv_get(s->requires, s->nrequires, "kubernetes.io/arch"), "amd64");
	assert_int_equal(s->nartifacts, 2);
	assert_string_equal(s->artifacts[1], "*.pt");
	assert_int_equal(s->nignore, 2);
	assert_string_equal(s->ignore[0], "data/raw/");
	assert_int_equal(s->priority, 80);
	assert_string_equal(s->concurrency_group, "gpu-train");
	assert_int_equal(s->concurrency_max, 2);
	assert_true(s->skip_duplicate);
	assert_int_equal(s->start_timeout_ms, 600000);
	pilot_spec_free(s);
}

static void test_block_style_and_nulls(void **state)
{
	(void)state;
	struct pilot_spec *s = load_ok(
		"name: x\n"
		"image: ~\n"
		"command:\n"
		"  - echo\n"
		"  - \"\"\n"
		"  - 'a b'\n"
		"env:\n"
		"secrets: null\n"
		"resources:\n"
		"  cpus:\n"
		"  gpus: all\n"
		"retry:\n"
		"  on: exit_code\n"
		"  backoff: 0\n"
		"artifacts: out.txt\n"
		"timeout:\n"
		"priority: 0\n");
	assert_null(s->image);
	assert_false(s->shell);
	assert_int_equal(s->ncommand, 3);
	assert_string_equal(s->command[0], "echo");
	assert_string_equal(s->command[1], "");
	assert_string_equal(s->command[2], "a b");
	assert_null(s->command[3]);
	assert_int_equal(s->nenv, 0);
	assert_int_equal(s->nsecrets, 0);
	assert_int_equal(s->resources.cpus_milli, 0);
	assert_int_equal(s->resources.gpus, PILOT_SPEC_GPUS_ALL);
	assert_int_equal(s->retry.on, PILOT_SPEC_RETRY_EXIT_CODE);
	assert_int_equal(s->retry.backoff_ms, 0);
	assert_int_equal(s->nartifacts, 1); /* a single value is a list of one */
	assert_string_equal(s->artifacts[0], "out.txt");
	assert_int_equal(s->timeout_ms, 0);
	assert_int_equal(s->priority, 0);
	pilot_spec_free(s);
}

static void test_shell_command_block(void **state)
{
	(void)state;
	struct pilot_spec *s = load_ok(
		"name: x\n"
		"command: |\n"
		"  set -e\n"
		"  echo $HOME $1 \"$$\" ${HOME}\n"
		"retry: {on: []}\n");
	assert_true(s->shell);
	/* $HOME and $1 are the shell's; $$ is a literal $; ${HOME} is ours. */
	assert_string_equal(s->command[2], "set -e\necho $HOME $1 \"$\" /home/u\n");
	assert_int_equal(s->retry.on, 0);
	pilot_spec_free(s);
}

static void test_sizes_and_durations(void **state)
{
	(void)state;
	struct pilot_spec *s = load_ok("name: x\nresources: {memory: 1.5GB, shm: 100k, cpus: 0.001}\n"
				       "timeout: 1.5h\nretry: {backoff: 90s, max_backoff: 1d}\n");
	assert_int_equal(s->resources.memory, 1500000000ULL);
	assert_int_equal(s->resources.shm, 102400);
	assert_int_equal(s->resources.cpus_milli, 1);
	assert_int_equal(s->timeout_ms, 5400000);
	assert_int_equal(s->retry.backoff_ms, 90000);
	assert_int_equal(s->retry.max_backoff_ms, 86400000);
	pilot_spec_free(s);
	s = load_ok("name: x\nresources: {memory: 1024, cpus: 16}\ntimeout: 30\n");
	assert_int_equal(s->resources.memory, 1024);
	assert_int_equal(s->resources.cpus_milli, 16000);
	assert_int_equal(s->timeout_ms, 30000);
	pilot_spec_free(s);
}

/* ---- mistakes ---------------------------------------------------------------- */

static void test_unknown_keys(void **state)
{
	(void)state;
	load_err("name: x\nimag: busybox\n", "pilot.yaml:2:1: unknown key 'imag' (did you mean 'image'?)");
	load_err("name: x\nzzzzzz: 1\n", "pilot.yaml:2:1: unknown key 'zzzzzz'");
	load_err("name: x\nresources:\n  memroy: 1G\n",
		 "pilot.yaml:3:3: resources: unknown key 'memroy' (did you mean 'memory'?)");
	load_err("name: x\nretry: {max_attempt: 2}\n",
		 "pilot.yaml:2:9: retry: unknown key 'max_attempt' (did you mean 'max_attempts'?)");
	load_err("name: x\nname: y\n", "pilot.yaml:2:1: duplicate key 'name'");
	load_err("name: x\nenv: {A: 1, A: 2}\n", "pilot.yaml:2:13: env: duplicate key 'A'");
	load_err("name: x\n[a]: 1\n", "pilot.yaml:2:1: expected a key, not a list");
}

static void test_type_errors(void **state)
{
	(void)state;
	load_err("name: [x]\n", "pilot.yaml:1:7: name: expected a string, not a list");
	load_err("name: x\nimage: {a: b}\n", "pilot.yaml:2:8: image: expected a string, not a mapping");
	load_err("name: x\nenv: [A]\n", "pilot.yaml:2:6: env: expected a mapping, not a list");
	load_err("name: x\nenv: {A: [1]}\n", "pilot.yaml:2:10: env.A: expected a single value, not a list");
	load_err("name: x\nenv: {A: }\n", "pilot.yaml:2:10: env.A: expected a value (write \"\" for an empty one)");
	load_err("name: x\nsecrets: {A: 1}\n", "pilot.yaml:2:10: secrets: expected a list, not a mapping");
	load_err("name: x\nsecrets: [[A]]\n", "pilot.yaml:2:11: secrets[0]: expected a string, not a list");
	load_err("name: x\ncommand: {a: 1}\n", "pilot.yaml:2:10: command: expected a string or a list, not a mapping");
	load_err("name: x\ncommand: []\n", "pilot.yaml:2:10: command: must not be empty");
	load_err("name: x\ncommand: \"  \"\n", "pilot.yaml:2:10: command: must not be empty");
	load_err("name: x\ncommand: ['', a]\n", "pilot.yaml:2:11: command[0]: the program must not be empty");
	load_err("name: x\nresources: 4G\n", "pilot.yaml:2:12: resources: expected a mapping, not a single value");
	load_err("name: x\nparams: {a: {b: c}}\n", "pilot.yaml:2:13: params.a: expected a single value, not a mapping");
	load_err("name: x\nrequires: {gpu: }\n", "pilot.yaml:2:17: requires.gpu: expected a value");
	load_err("name: x\nrequires: {\"-x\": a}\n",
		 "pilot.yaml:2:12: requires: '-x': invalid label (expected at most 63 letters, digits, '.', '_', '/' "
		 "or '-', starting with a letter or digit)");
	load_err("name: \"a\\0b\"\n", "pilot.yaml:1:7: name: must not contain NUL characters");
}

static void test_value_errors(void **state)
{
	(void)state;
	load_err("name: Train\n", "pilot.yaml:1:7: name: 'Train' must start with a lowercase letter or digit and hold "
		 "only a-z, 0-9, '.', '_' and '-'");
	load_err("name: -x\n", "pilot.yaml:1:7: name: '-x' must start with a lowercase letter or digit and hold "
		 "only a-z, 0-9, '.', '_' and '-'");
	load_err("name: ''\n", "pilot.yaml:1:7: name: '' must not be empty");
	load_err("name: x\nconcurrency: {group: gpu, max: 0}\n",
		 "pilot.yaml:2:32: concurrency.max: number '0' out of range (1..10000)");
	load_err("name: x\nconcurrency: {max: 2}\n",
		 "pilot.yaml:2:14: concurrency: the group is missing (e.g. 'concurrency: {group: gpu, max: 2}')");
	load_err("name: x\nconcurrency: {group: GPU}\n",
		 "pilot.yaml:2:22: concurrency.group: 'GPU' must start with a lowercase letter or digit and hold only "
		 "a-z, 0-9, '.', '_' and '-'");
	load_err("name: x\nconcurrency: {group: g, limit: 2}\n",
		 "pilot.yaml:2:25: concurrency: unknown key 'limit'");
	load_err("name: x\nstart_timeout: 0s\n", "pilot.yaml:2:16: start_timeout: must be longer than 0");
	load_err("name: x\nskip_duplicate: maybe\n",
		 "pilot.yaml:2:17: skip_duplicate: expected true or false, not 'maybe'");
	load_err("name: x\nconcurrency: [a]\n",
		 "pilot.yaml:2:14: concurrency: expected a group name or a mapping {group: NAME, max: N}, not a list");
	load_err("name:\n", "pilot.yaml:1:6: name: must not be empty (every spec needs a name, e.g. 'name: train')");
	load_err("image: x\n", "pilot.yaml:1:1: name: missing (every spec needs a name, e.g. 'name: train')");
	load_err("name: x\nimage: 'a b'\n",
		 "pilot.yaml:2:8: image: 'a b' is not a valid image reference (expected e.g. python:3.12-slim)");
	load_err("name: x\nruntime: dokcer\n", "pilot.yaml:2:10: runtime: unknown runtime 'dokcer' (did you mean 'docker'?)");
	load_err("name: x\nruntime: k8s\n",
		 "pilot.yaml:2:10: runtime: unknown runtime 'k8s' (expected docker, podman or host)");
	load_err("name: x\nworkdir: rel\n", "pilot.yaml:2:10: workdir: 'rel' must be an absolute path");
	load_err("name: x\nworkdir: /\n", "pilot.yaml:2:10: workdir: '/' must be an absolute path other than '/', "
		 "without '..', ':' or ','");
	load_err("name: x\nworkdir: /a/../b\n", "pilot.yaml:2:10: workdir: '/a/../b' must be an absolute path other "
		 "than '/', without '..', ':' or ','");
	load_err("name: x\nenv: {1A: x}\n", "pilot.yaml:2:7: env: invalid variable name '1A' (expected letters, digits "
		 "and '_', not starting with a digit)");
	load_err("name: x\nenv: {PILOT_RUN_ID: x}\n",
		 "pilot.yaml:2:7: env: 'PILOT_RUN_ID' is reserved: names starting with PILOT_ are set by pilot");
	load_err("name: x\nsecrets: [A-B]\n", "pilot.yaml:2:11: secrets[0]: invalid variable name 'A-B' (expected "
		 "letters, digits and '_', not starting with a digit)");
	load_err("name: x\nsecrets: [A, A]\n", "pilot.yaml:2:14: secrets[1]: 'A' is listed twice");
	load_err("name: x\nenv: {A: 1}\nsecrets: [A]\n", "pilot.yaml:3:11: secrets[0]: 'A' is also set in env");
	load_err("name: x\nparams: {a-b: 1}\n", "pilot.yaml:2:10: params: invalid param name 'a-b' (expected letters, "
		 "digits and '_', not starting with a digit)");
	load_err("name: x\nresources: {cpus: 0}\n", "pilot.yaml:2:19: resources.cpus: must be greater than 0");
	load_err("name: x\nresources: {cpus: 0.0001}\n",
		 "pilot.yaml:2:19: resources.cpus: '0.0001' has more than three decimal places");
	load_err("name: x\nresources: {cpus: two}\n",
		 "pilot.yaml:2:19: resources.cpus: invalid number of CPUs 'two' (expected e.g. 2 or 0.5)");
	load_err("name: x\nresources: {cpus: -1}\n",
		 "pilot.yaml:2:19: resources.cpus: invalid number of CPUs '-1' (expected e.g. 2 or 0.5)");
	load_err("name: x\nresources:\n  memory: 4 gigs\n",
		 "pilot.yaml:3:11: resources.memory: invalid size '4 gigs' (expected e.g. 512MiB, 4G)");
	load_err("name: x\nresources: {memory: 0}\n", "pilot.yaml:2:21: resources.memory: must be larger than 0");
	load_err("name: x\nresources: {shm: 9000P}\n", "pilot.yaml:2:18: resources.shm: size '9000P' is too large");
	load_err("name: x\nresources: {gpus: -1}\n",
		 "pilot.yaml:2:19: resources.gpus: invalid GPU count '-1' (expected a number from 0 to 1024, or all)");
	load_err("name: x\ntimeout: 2 hours\n",
		 "pilot.yaml:2:10: timeout: invalid duration '2 hours' (expected e.g. 500ms, 90s, 2h, 1d)");
	load_err("name: x\ntimeout: 0s\n", "pilot.yaml:2:10: timeout: must be longer than 0 (leave timeout out for no limit)");
	load_err("name: x\ntimeout: 4000d\n", "pilot.yaml:2:10: timeout: duration '4000d' is too long (at most 3650d)");
	load_err("name: x\nretry: {max_attempts: 101}\n",
		 "pilot.yaml:2:23: retry.max_attempts: number '101' out of range (1..100)");
	load_err("name: x\nretry: {max_attempts: two}\n", "pilot.yaml:2:23: retry.max_attempts: invalid number 'two'");
	load_err("name: x\nretry: {on: [lost]}\n",
		 "pilot.yaml:2:14: retry.on[0]: unknown failure 'lost' (expected exit_code or timeout)");
	load_err("name: x\nretry: {on: [exitcode]}\n",
		 "pilot.yaml:2:14: retry.on[0]: unknown failure 'exitcode' (did you mean 'exit_code'?)");
	load_err("name: x\nretry: {max_backoff: 0}\n", "pilot.yaml:2:22: retry.max_backoff: must be longer than 0");
	load_err("name: x\nretry: {backoff: 10m, max_backoff: 1m}\n",
		 "pilot.yaml:2:18: retry.backoff: 10m0s is longer than max_backoff (1m0s)");
	load_err("name: x\npriority: 101\n", "pilot.yaml:2:11: priority: number '101' out of range (0..100)");
	load_err("name: x\npriority: high\n", "pilot.yaml:2:11: priority: invalid number 'high'");
	load_err("name: x\nartifacts: [/etc]\n",
		 "pilot.yaml:2:13: artifacts[0]: '/etc' must be a pattern relative to workdir, without '..'");
	load_err("name: x\nartifacts: [a/../../b]\n",
		 "pilot.yaml:2:13: artifacts[0]: 'a/../../b' must be a pattern relative to workdir, without '..'");
	load_err("name: x\nignore: ['']\n", "pilot.yaml:2:10: ignore[0]: '' must not be empty");
	load_err("name: x\nruntime: docker\n", "pilot.yaml:2:10: image: required with runtime 'docker'");
}

static void test_document_errors(void **state)
{
	(void)state;
	load_err("", "pilot.yaml:1:1: empty spec (it needs at least a name, e.g. 'name: train')");
	load_err("# only a comment\n", "pilot.yaml:1:1: empty spec (it needs at least a name, e.g. 'name: train')");
	load_err("- name: x\n", "pilot.yaml:1:1: expected a mapping of settings (e.g. 'name: train'), not a list");
	load_err("name: x\n  image: y\n",
		 "pilot.yaml:2:8: invalid YAML: mapping values are not allowed in this context");
	load_err("name: [x\n", "pilot.yaml:2:1: invalid YAML: did not find expected ',' or ']' while parsing a flow sequence");
	load_err("name: x\n---\nname: y\n", "pilot.yaml:3:1: expected one YAML document, found a second one");
	load_err("name: *nope\n", "pilot.yaml:1:7: invalid YAML: found undefined alias");
	struct pilot_buf b = PILOT_BUF_INIT;
	pilot_buf_puts(&b, "name: x\nenv:\n  ");
	for (int i = 0; i < 2000; i++)
		pilot_buf_putc(&b, '[');
	load_err(b.data, "pilot.yaml:3:1003: nested too deeply (more than 1000 levels of [ and {)");
	pilot_buf_free(&b);
}

static void test_many_errors_reported_together(void **state)
{
	(void)state;
	const char *text =
		"name: x\n"
		"imag: busybox\n"
		"resources:\n"
		"  memory: 4 gigs\n"
		"priority: 500\n";
	load_err(text,
		 "pilot.yaml:2:1: unknown key 'imag' (did you mean 'image'?)\n"
		 "pilot.yaml:4:11: resources.memory: invalid size '4 gigs' (expected e.g. 512MiB, 4G)\n"
		 "pilot.yaml:5:11: priority: number '500' out of range (0..100)");
	size_t n;
	const struct pilot_spec_diag *d = pilot_spec_last_diags(&n);
	assert_int_equal(n, 3);
	assert_string_equal(d[0].file, "pilot.yaml");
	assert_int_equal(d[0].line, 2);
	assert_int_equal(d[0].column, 1);
	assert_string_equal(d[0].path, "");
	assert_string_equal(d[0].message, "unknown key 'imag' (did you mean 'image'?)");
	assert_int_equal(d[1].line, 4);
	assert_int_equal(d[1].column, 11);
	assert_string_equal(d[1].path, "resources.memory");
	assert_string_equal(d[2].path, "priority");

	/* Reported in file order, whatever order they were found in. */
	load_err("priority: x\nparams: {a: \"${NOPE}\"}\nname: X\n",
		 "pilot.yaml:1:11: priority: invalid number 'x'\n"
		 "pilot.yaml:2:13: params.a: variable 'NOPE' is not set (write ${NOPE:-default} to give a default)\n"
		 "pilot.yaml:3:7: name: 'X' must start with a lowercase letter or digit and hold only a-z, 0-9, '.', "
		 "'_' and '-'");

	/* A good load clears them. */
	struct pilot_spec *s = load_ok("name: x\n");
	assert_null(pilot_spec_last_diags(&n));
	assert_int_equal(n, 0);
	pilot_spec_free(s);
}

static void test_too_many_errors(void **state)
{
	(void)state;
	struct pilot_buf b = PILOT_BUF_INIT;
	pilot_buf_puts(&b, "name: x\nsecrets:\n");
	for (int i = 0; i < 150; i++)
		pilot_buf_puts(&b, "  - 1\n");
	struct pilot_spec *s;
	assert_int_equal(pilot_spec_load_string(b.data, b.len, "p.yaml", &env_only, &s), PILOT_EINVALID);
	size_t n;
	pilot_spec_last_diags(&n);
	const struct pilot_spec_diag *d = pilot_spec_last_diags(&n);
	assert_int_equal(n, 101);
	assert_int_equal(d[99].line, 102);
	assert_int_equal(d[100].line, 0);
	assert_string_equal(d[100].message, "too many errors, stopped after 100");
	_cleanup_free_ char *last = pilot_spec_diag_string(&d[100]);
	assert_string_equal(last, "p.yaml: too many errors, stopped after 100");
	/* The message holds whole lines, then says how many it left out. */
	assert_true(strlen(pilot_error_last()) < 2000);
	assert_non_null(strstr(pilot_error_last(), " more not shown)"));
	pilot_buf_free(&b);

	/* Lists past their limit are refused in one piece. */
	pilot_buf_puts(&b, "name: x\nignore:\n");
	for (int i = 0; i < 1001; i++)
		pilot_buf_puts(&b, "  - a\n");
	assert_int_equal(pilot_spec_load_string(b.data, b.len, "p.yaml", &env_only, &s), PILOT_EINVALID);
	assert_string_equal(pilot_error_last(), "p.yaml:3:3: ignore: too many items (at most 1000)");
	pilot_buf_free(&b);
}

/* ---- interpolation ----------------------------------------------------------- */

static void test_interpolation(void **state)
{
	(void)state;
	struct pilot_spec *s = load_ok(
		"name: x\n"
		"image: python:${TAG}-slim\n"
		"command: [run, \"${lr}\", \"${UNSET:-dflt}\", \"${EMPTY:-e}\", \"${HOME:-no}\", \"$$HOME\", \"a$$$$b\",\n"
		"          \"${UNSET:-${HOME}/x}\", \"${UNSET:-${ALSO:-deep}}\", \"${HOME:-${NOPE}}\", \"$x $ ${EMPTY}.\"]\n"
		"params: {lr: 0.01}\n"
		"resources: {memory: \"${MEM}\", shm: \"${shm:-64M}\"}\n");
	assert_string_equal(s->image, "python:3.12-slim");
	assert_string_equal(s->command[1], "0.01");
	assert_string_equal(s->command[2], "dflt");
	assert_string_equal(s->command[3], "e");
	assert_string_equal(s->command[4], "/home/u");
	assert_string_equal(s->command[5], "$HOME");
	assert_string_equal(s->command[6], "a$$b");
	assert_string_equal(s->command[7], "/home/u/x");
	assert_string_equal(s->command[8], "deep");
	assert_string_equal(s->command[9], "/home/u"); /* a default not taken is not looked up */
	assert_string_equal(s->command[10], "$x $ .");
	/* Sized fields are checked after interpolation. */
	assert_int_equal(s->resources.memory, 2ULL << 30);
	assert_int_equal(s->resources.shm, 64ULL << 20);
	pilot_spec_free(s);
	/* Keys are not interpolated, so this is an invalid name (checked above: the
	 * env key test). Here: the error for an unset variable names it. */
	load_err("name: x\nimage: \"${NOPE}\"\n",
		 "pilot.yaml:2:8: image: variable 'NOPE' is not set (write ${NOPE:-default} to give a default)");
	load_err("name: x\nenv: {\"${HOME}\": 1}\n", "pilot.yaml:2:7: env: invalid variable name '${HOME}' (expected "
		 "letters, digits and '_', not starting with a digit)");
	load_err("name: x\nimage: \"a${HOME\"\n", "pilot.yaml:2:8: image: unterminated '${HOME' (expected ${NAME} or "
		 "${NAME:-default}; write $$ for a literal $)");
	load_err("name: x\nimage: \"${UNSET:-x\"\n", "pilot.yaml:2:8: image: unterminated '${UNSET:-x' (expected "
		 "${NAME} or ${NAME:-default}; write $$ for a literal $)");
	load_err("name: x\nimage: \"${1x}\"\n", "pilot.yaml:2:8: image: invalid interpolation '${1x}' (expected ${NAME} "
		 "or ${NAME:-default}; write $$ for a literal $)");
	load_err("name: x\nimage: \"${A-b}\"\n", "pilot.yaml:2:8: image: invalid interpolation '${A-b}' (expected "
		 "${NAME} or ${NAME:-default}; write $$ for a literal $)");
	load_err("name: x\nimage: \"${UNSET:-${NOPE}}\"\n",
		 "pilot.yaml:2:8: image: variable 'NOPE' is not set (write ${NOPE:-default} to give a default)");
	load_err("name: x\nresources: {memory: \"${EMPTY:-lots}\"}\n",
		 "pilot.yaml:2:21: resources.memory: invalid size 'lots' (expected e.g. 512MiB, 4G)");
	load_err("name: x\nenv: {A: \"${BADUTF}\"}\n", "pilot.yaml:2:10: env.A: is not valid UTF-8 after interpolation");
	char deep[256] = "name: x\nimage: \"";
	for (int i = 0; i < 20; i++)
		strncat(deep, "${A:-", sizeof(deep) - strlen(deep) - 1);
	strncat(deep, "x", sizeof(deep) - strlen(deep) - 1);
	for (int i = 0; i < 20; i++)
		strncat(deep, "}", sizeof(deep) - strlen(deep) - 1);
	strncat(deep, "\"\n", sizeof(deep) - strlen(deep) - 1);
	load_err(deep, "pilot.yaml:2:8: image: interpolation nested too deeply");
}

static void test_params(void **state)
{
	(void)state;
	const char *text =
		"name: x\n"
		"command: [train, \"${lr}\", \"${epochs}\", \"${out}\", \"${home}\"]\n"
		"params:\n"
		"  lr: 0.01\n"
		"  epochs: 3\n"
		"  out: ${home}/out\n" /* params declared below are not visible yet: env */
		"  home: ${HOME}\n"
		"  run: ${lr}-${epochs}\n"; /* params declared above are */
	const char *over[] = { "lr=0.5", "epochs=1=2", "lr=0.1" };
	struct pilot_spec_vars vars = { .params = over, .nparams = 3, .getenv = fake_getenv };
	load_err_vars(text, &vars,
		      "pilot.yaml:6:8: params.out: variable 'home' is not set (write ${home:-default} to give a default)");

	const char *text2 =
		"name: x\n"
		"command: [train, \"${lr}\", \"${epochs}\", \"${home}\", \"${run}\"]\n"
		"params:\n"
		"  lr: 0.01\n"
		"  epochs: 3\n"
		"  home: ${HOME}\n"
		"  run: ${lr}-${epochs}\n"
		"  literal: $${x}\n";
	struct pilot_spec *s = load_ok_vars(text2, &vars);
	assert_string_equal(s->command[1], "0.1");    /* the last --param wins */
	assert_string_equal(s->command[2], "1=2");    /* split at the first '=' */
	assert_string_equal(s->command[3], "/home/u");
	assert_string_equal(s->command[4], "0.1-1=2");
	assert_int_equal(s->nparams, 5);
	assert_string_equal(s->params[0].value, "0.1"); /* effective values, in file order */
	assert_string_equal(s->params[3].key, "run");
	assert_string_equal(pilot_kv_get(s->params, s->nparams, "literal"), "${x}");
	pilot_spec_free(s);

	/* An override is taken as it is, not interpolated. */
	const char *lit[] = { "lr=${HOME}" };
	struct pilot_spec_vars v2 = { .params = lit, .nparams = 1, .getenv = fake_getenv };
	s = load_ok_vars("name: x\nparams: {lr: 1}\ncommand: \"echo ${lr}\"\n", &v2);
	assert_string_equal(s->command[2], "echo ${HOME}");
	pilot_spec_free(s);

	const char *bad[] = { "lrr=1", "nope", "=3", "zzz=1" };
	struct pilot_spec_vars v3 = { .params = bad, .nparams = 4, .getenv = fake_getenv };
	load_err_vars("name: x\nparams: {lr: 1, need: }\n", &v3,
		      "pilot.yaml: unknown param 'lrr' given with --param (did you mean 'lr'?)\n"
		      "pilot.yaml: invalid --param 'nope' (expected NAME=VALUE)\n"
		      "pilot.yaml: invalid --param '=3' (expected NAME=VALUE)\n"
		      "pilot.yaml: unknown param 'zzz' given with --param\n"
		      "pilot.yaml:2:17: params.need: has no default; pass --param need=VALUE");
	const char *one[] = { "lr=1" };
	struct pilot_spec_vars v4 = { .params = one, .nparams = 1, .getenv = fake_getenv };
	load_err_vars("name: x\n", &v4, "pilot.yaml: unknown param 'lr' given with --param (the spec declares no params)");

	/* A required param given on the command line; a failed param does not cascade. */
	const char *need[] = { "need=yes" };
	struct pilot_spec_vars v5 = { .params = need, .nparams = 1, .getenv = fake_getenv };
	s = load_ok_vars("name: x\nparams: {need: }\ncommand: \"echo ${need}\"\n", &v5);
	assert_string_equal(s->command[2], "echo yes");
	pilot_spec_free(s);
	load_err("name: x\nparams: {need: }\ncommand: \"echo ${need}\"\n",
		 "pilot.yaml:2:10: params.need: has no default; pass --param need=VALUE");
}

static void test_expansion_limits(void **state)
{
	(void)state;
	struct pilot_buf b = PILOT_BUF_INIT;
	struct pilot_spec *s;
	pilot_buf_puts(&b, "name: x\nparams:\n  p0: ");
	for (int i = 0; i < 1024; i++)
		pilot_buf_putc(&b, 'a');
	pilot_buf_puts(&b, "\n  p1: ${p0}${p0}${p0}${p0}${p0}${p0}${p0}${p0}\n"
		       "  p2: ${p1}${p1}${p1}${p1}${p1}${p1}${p1}${p1}\n"
		       "  p3: ${p2}${p2}${p2}${p2}${p2}${p2}${p2}${p2}\n");
	size_t base = b.len;
	/* Each param grows eight times: p4 would be 4 MiB. */
	pilot_buf_puts(&b, "  p4: ${p3}${p3}${p3}${p3}${p3}${p3}${p3}${p3}\n");
	assert_int_equal(pilot_spec_load_string(b.data, b.len, "pilot.yaml", &env_only, &s), PILOT_EINVALID);
	assert_string_equal(pilot_error_last(), "pilot.yaml:7:7: params.p4: longer than 1 MiB after interpolation");

	/* 40 values of 512 KiB each pass one by one, but not all together. */
	pilot_buf_truncate(&b, base);
	pilot_buf_puts(&b, "command:\n");
	for (int i = 0; i < 40; i++)
		pilot_buf_puts(&b, "  - ${p3}\n");
	assert_int_equal(pilot_spec_load_string(b.data, b.len, "pilot.yaml", &env_only, &s), PILOT_EINVALID);
	assert_string_equal(pilot_error_last(),
			    "pilot.yaml:38:5: command[30]: the spec is larger than 16 MiB after interpolation");
	pilot_buf_free(&b);
}

static void test_process_environment(void **state)
{
	(void)state;
	setenv("PILOT_TEST_SPEC_VAR", "from-env", 1);
	struct pilot_spec *s = load_ok_vars("name: x\nimage: \"${PILOT_TEST_SPEC_VAR}\"\n", NULL);
	assert_string_equal(s->image, "from-env");
	pilot_spec_free(s);
	unsetenv("PILOT_TEST_SPEC_VAR");
}

/* ---- normal form ------------------------------------------------------------- */

static void assert_kv_equal(const struct pilot_kv *a, size_t na, const struct pilot_kv *b, size_t nb)
{
	assert_int_equal(na, nb);
	for (size_t i = 0; i < na; i++) {
		assert_string_equal(a[i].key, b[i].key);
		assert_string_equal(a[i].value, b[i].value);
	}
}

static void assert_strv_equal(char **a, size_t na, char **b, size_t nb)
{
	assert_int_equal(na, nb);
	for (size_t i = 0; i < na; i++)
		assert_string_equal(a[i], b[i]);
	if (na) {
		assert_null(a[na]);
		assert_null(b[nb]);
	}
}

static void assert_spec_equal(const struct pilot_spec *a, const struct pilot_spec *b)
{
	assert_string_equal(a->name, b->name);
	if (a->image || b->image)
		assert_string_equal(a->image, b->image);
	assert_int_equal(a->runtime, b->runtime);
	assert_strv_equal(a->command, a->ncommand, b->command, b->ncommand);
	assert_int_equal(a->shell, b->shell);
	assert_string_equal(a->workdir, b->workdir);
	assert_kv_equal(a->env, a->nenv, b->env, b->nenv);
	assert_strv_equal(a->secrets, a->nsecrets, b->secrets, b->nsecrets);
	assert_kv_equal(a->params, a->nparams, b->params, b->nparams);
	assert_memory_equal(&a->resources, &b->resources, sizeof(a->resources));
	assert_int_equal(a->timeout_ms, b->timeout_ms);
	assert_int_equal(a->retry.max_attempts, b->retry.max_attempts);
	assert_int_equal(a->retry.on, b->retry.on);
	assert_int_equal(a->retry.backoff_ms, b->retry.backoff_ms);
	assert_int_equal(a->retry.max_backoff_ms, b->retry.max_backoff_ms);
	assert_kv_equal(a->requires, a->nrequires, b->requires, b->nrequires);
	assert_strv_equal(a->artifacts, a->nartifacts, b->artifacts, b->nartifacts);
	assert_strv_equal(a->ignore, a->nignore, b->ignore, b->nignore);
	assert_int_equal(a->priority, b->priority);
	if (a->concurrency_group || b->concurrency_group)
		assert_string_equal(a->concurrency_group, b->concurrency_group);
	assert_int_equal(a->concurrency_max, b->concurrency_max);
	assert_int_equal(a->skip_duplicate, b->skip_duplicate);
	assert_int_equal(a->start_timeout_ms, b->start_timeout_ms);
}

static void round_trip(const char *yaml)
{
	struct pilot_spec *a = load_ok(yaml), *b = NULL;
	char *j1 = pilot_spec_to_json(a);
	assert_non_null(j1);
	if (pilot_spec_from_json(j1, &b) < 0)
		print_error("%s\n%s\n", j1, pilot_error_last());
	assert_non_null(b);
	assert_spec_equal(a, b);
	char *j2 = pilot_spec_to_json(b);
	assert_string_equal(j1, j2);
	free(j1);
	free(j2);
	pilot_spec_free(a);
	pilot_spec_free(b);
}

static void test_json_normal_form(void **state)
{
	(void)state;
	struct pilot_spec *s = load_ok(full_spec);
	char *j = pilot_spec_to_json(s);
	assert_string_equal(j,
		"{\"name\":\"train.v2_x-1\",\"image\":\"python:3.12-slim\",\"runtime\":\"podman\","
		"\"command\":[\"/bin/sh\",\"-c\",\"python train.py --lr 0.01\"],\"shell\":true,"
		"\"workdir\":\"/work/dir\","
		"\"env\":{\"EPOCHS\":\"5\",\"VERBOSE\":\"true\",\"RATE\":\"1.50\",\"NAME\":\"x y\",\"BLANK\":\"\"},"
		"\"secrets\":[\"HF_TOKEN\",\"WANDB_KEY\"],\"params\":{\"lr\":\"0.01\",\"data\":\"/data\"},"
		"\"resources\":{\"cpus\":2.5,\"memory\":4294967296,\"gpus\":1,\"shm\":536870912},"
		"\"timeout\":5400,"
		"\"retry\":{\"max_attempts\":3,\"on\":[\"timeout\"],\"backoff\":1.5,\"max_backoff\":600},"
		"\"requires\":{\"gpu\":\"a100\",\"zone\":\"3\",\"kubernetes.io/arch\":\"amd64\"},"
		"\"artifacts\":[\"outputs/**\",\"*.pt\"],\"ignore\":[\"data/raw/\",\"*.tmp\"],\"priority\":80,"
		"\"concurrency\":{\"group\":\"gpu-train\",\"max\":2},\"skip_duplicate\":true,\"start_timeout\":600}");
	free(j);
	pilot_spec_free(s);

	s = load_ok("name: x\n");
	j = pilot_spec_to_json(s);
	assert_string_equal(j,
		"{\"name\":\"x\",\"image\":null,\"runtime\":null,\"command\":[],\"shell\":false,"
		"\"workdir\":\"/workspace\",\"env\":{},\"secrets\":[],\"params\":{},"
		"\"resources\":{\"cpus\":null,\"memory\":null,\"gpus\":0,\"shm\":null},\"timeout\":null,"
		"\"retry\":{\"max_attempts\":1,\"on\":[\"exit_code\",\"timeout\"],\"backoff\":5,\"max_backoff\":300},"
		"\"requires\":{},\"artifacts\":[],\"ignore\":[],\"priority\":50,\"concurrency\":null,"
		"\"skip_duplicate\":false,\"start_timeout\":null}");
	free(j);
	pilot_spec_free(s);

	s = load_ok("name: x\nresources: {gpus: all, cpus: 0.1}\ntimeout: 100ms\nretry: {backoff: 0, on: []}\n");
	j = pilot_spec_to_json(s);
	assert_non_null(strstr(j, "\"resources\":{\"cpus\":0.1,\"memory\":null,\"gpus\":\"all\",\"shm\":null}"));
	assert_non_null(strstr(j, "\"timeout\":0.1,"));
	assert_non_null(strstr(j, "\"on\":[],\"backoff\":0,"));
	free(j);
	pilot_spec_free(s);
}

static void test_json_round_trip(void **state)
{
	(void)state;
	round_trip(full_spec);
	round_trip("name: x\n");
	round_trip("name: x\nconcurrency: deploy\n");
	round_trip("name: x\ncommand: [a, '', \"b c\", \"ünïcödé ✓\"]\nresources: {gpus: all, cpus: 0.333}\n"
		   "timeout: 1d2h3m4s5ms\nretry: {backoff: 1ms, max_backoff: 2ms, on: [], max_attempts: 100}\n"
		   "runtime: host\nenv: {A: \"line1\\nline2\\t\\\"q\\\"\"}\npriority: 0\n");
	round_trip("name: x\nimage: busybox\nruntime: docker\nresources: {memory: 9223372036854775807, shm: 1}\n"
		   "timeout: 3650d\nretry: {max_backoff: 3650d, backoff: 1234567891ms}\n");
	for (int ms = 1; ms < 3000; ms += 7) {
		char text[128];
		snprintf(text, sizeof(text), "name: x\ntimeout: %dms\nresources: {cpus: %d.%03d}\n", ms, ms / 1000,
			 ms % 1000);
		round_trip(text);
	}
}

static void test_json_value_api(void **state)
{
	(void)state;
	struct pilot_spec *a = load_ok(full_spec), *b;
	json_t *v = pilot_spec_to_json_value(a);
	assert_non_null(v);
	assert_int_equal(pilot_spec_from_json_value(v, &b), 0);
	assert_spec_equal(a, b);
	json_decref(v);
	pilot_spec_free(a);
	pilot_spec_free(b);
}

static void json_err(const char *json, const char *want)
{
	struct pilot_spec *s = (struct pilot_spec *)1;
	assert_int_equal(pilot_spec_from_json(json, &s), PILOT_EINVALID);
	assert_null(s);
	if (strcmp(pilot_error_last(), want))
		print_error("json: %s\nwanted: %s\ngot:    %s\n", json, want, pilot_error_last());
	assert_string_equal(pilot_error_last(), want);
}

static void test_json_minimal_and_errors(void **state)
{
	(void)state;
	struct pilot_spec *s;
	assert_int_equal(pilot_spec_from_json("{\"name\":\"x\"}", &s), 0);
	assert_string_equal(s->workdir, "/workspace");
	assert_int_equal(s->priority, 50);
	assert_int_equal(s->retry.max_attempts, 1);
	pilot_spec_free(s);

	json_err("", "invalid spec JSON: line 1, column 0: '[' or '{' expected near end of file");
	json_err("[]", "invalid spec JSON: expected an object, not an array");
	json_err("{}", "invalid spec JSON: name: missing");
	json_err("{\"name\":\"x\",\"name\":\"y\"}",
		 "invalid spec JSON: line 1, column 18: duplicate object key near '\"name\"'");
	json_err("{\"name\":\"x\",\"imag\":\"y\"}", "invalid spec JSON: unknown key 'imag'");
	json_err("{\"name\":\"X\"}", "invalid spec JSON: name: 'X' must start with a lowercase letter or digit and "
		 "hold only a-z, 0-9, '.', '_' and '-'");
	json_err("{\"name\":1}", "invalid spec JSON: name: expected a string, not a number");
	json_err("{\"name\":\"x\",\"runtime\":\"k8s\"}",
		 "invalid spec JSON: runtime: expected \"docker\", \"podman\", \"host\" or null");
	json_err("{\"name\":\"x\",\"command\":[\"a\"],\"shell\":true}",
		 "invalid spec JSON: command: with shell true, expected [\"/bin/sh\", \"-c\", SCRIPT]");
	json_err("{\"name\":\"x\",\"command\":[\"a\", 1]}", "invalid spec JSON: command[1]: expected a string, not a number");
	json_err("{\"name\":\"x\",\"shell\":1}", "invalid spec JSON: shell: expected a boolean, not a number");
	json_err("{\"name\":\"x\",\"env\":{\"1A\":\"b\"}}", "invalid spec JSON: env: '1A': invalid variable name '1A' "
		 "(expected letters, digits and '_', not starting with a digit)");
	json_err("{\"name\":\"x\",\"env\":{\"A\":1}}", "invalid spec JSON: env: 'A': expected a string, not a number");
	json_err("{\"name\":\"x\",\"secrets\":[\"PILOT_X\"]}",
		 "invalid spec JSON: secrets[0]: 'PILOT_X' is reserved: names starting with PILOT_ are set by pilot");
	json_err("{\"name\":\"x\",\"resources\":{\"memory\":0}}",
		 "invalid spec JSON: resources.memory: 0 is out of range (1..9223372036854775807)");
	json_err("{\"name\":\"x\",\"resources\":{\"cpu\":1}}", "invalid spec JSON: resources: unknown key 'cpu'");
	json_err("{\"name\":\"x\",\"resources\":{\"cpus\":0.0001}}", "invalid spec JSON: resources.cpus: must be at least 0.001");
	json_err("{\"name\":\"x\",\"resources\":{\"gpus\":\"some\"}}",
		 "invalid spec JSON: resources.gpus: expected a number or \"all\"");
	json_err("{\"name\":\"x\",\"timeout\":-1}", "invalid spec JSON: timeout: duration out of range");
	json_err("{\"name\":\"x\",\"timeout\":0}", "invalid spec JSON: timeout: must be longer than 0");
	json_err("{\"name\":\"x\",\"timeout\":\"1h\"}", "invalid spec JSON: timeout: expected a number of seconds, not a string");
	json_err("{\"name\":\"x\",\"retry\":{\"on\":[\"lost\"]}}",
		 "invalid spec JSON: retry.on: expected \"exit_code\" or \"timeout\"");
	json_err("{\"name\":\"x\",\"retry\":{\"max_attempts\":0}}",
		 "invalid spec JSON: retry.max_attempts: 0 is out of range (1..100)");
	json_err("{\"name\":\"x\",\"retry\":{\"backoff\":10,\"max_backoff\":1}}",
		 "invalid spec JSON: retry.backoff: 10.0s is longer than max_backoff (1.0s)");
	json_err("{\"name\":\"x\",\"artifacts\":[\"/a\"]}",
		 "invalid spec JSON: artifacts[0]: '/a' must be a pattern relative to workdir, without '..'");
	json_err("{\"name\":\"x\",\"concurrency\":{\"max\":2}}", "invalid spec JSON: concurrency.group: missing");
	json_err("{\"name\":\"x\",\"concurrency\":{\"group\":\"g\",\"max\":0}}",
		 "invalid spec JSON: concurrency.max: 0 is out of range (1..10000)");
	json_err("{\"name\":\"x\",\"concurrency\":\"g\"}",
		 "invalid spec JSON: concurrency: expected an object, not a string");
	json_err("{\"name\":\"x\",\"priority\":1.5}", "invalid spec JSON: priority: expected an integer, not a number");
	json_err("{\"name\":\"x\",\"runtime\":\"podman\"}", "invalid spec JSON: image: required with runtime 'podman'");
	json_err("{\"name\":\"x\",\"requires\":{\"a b\":\"c\"}}",
		 "invalid spec JSON: requires: 'a b': invalid label (expected at most 63 letters, digits, '.', '_', '/' "
		 "or '-', starting with a letter or digit)");
}

/* ---- files -------------------------------------------------------------------- */

static void test_find_and_load_file(void **state)
{
	(void)state;
	char dir[64] = "/tmp/pilot-test-spec.XXXXXX";
	assert_non_null(mkdtemp(dir));
	_cleanup_free_ char *sub = pilot_path_join(dir, "proj");
	_cleanup_free_ char *yaml = pilot_path_join(sub, "pilot.yaml");
	_cleanup_free_ char *other = pilot_path_join(sub, "other.yaml");
	assert_int_equal(pilot_mkdir_p(sub, 0755), 0);
	char *sp, *pd;

	assert_int_equal(pilot_spec_find(sub, &sp, &pd), PILOT_ENOTFOUND);
	assert_null(sp);
	assert_non_null(strstr(pilot_error_last(), "no pilot.yaml in"));

	assert_int_equal(pilot_write_file_atomic(yaml, "name: p\n", 8, 0644), 0);
	assert_int_equal(pilot_write_file_atomic(other, "name: o\n", 8, 0644), 0);
	assert_int_equal(pilot_spec_find(sub, &sp, &pd), 0);
	assert_string_equal(sp, yaml);
	assert_string_equal(pd, sub);
	struct pilot_spec *s;
	assert_int_equal(pilot_spec_load_file(sp, NULL, &s), 0);
	assert_string_equal(s->name, "p");
	pilot_spec_free(s);
	free(sp);
	free(pd);

	assert_int_equal(pilot_spec_find(other, &sp, &pd), 0);
	assert_string_equal(sp, other);
	assert_string_equal(pd, sub);
	free(sp);
	free(pd);

	_cleanup_free_ char *cwd = getcwd(NULL, 0);
	assert_int_equal(chdir(sub), 0);
	assert_int_equal(pilot_spec_find(".", &sp, &pd), 0);
	assert_string_equal(sp, "pilot.yaml");
	assert_string_equal(pd, sub);
	free(sp);
	free(pd);
	assert_int_equal(pilot_spec_find(NULL, &sp, &pd), 0);
	assert_string_equal(sp, "pilot.yaml");
	free(sp);
	free(pd);
	assert_int_equal(pilot_spec_find("other.yaml", &sp, &pd), 0);
	assert_string_equal(pd, sub);
	free(sp);
	free(pd);
	assert_int_equal(chdir(cwd), 0);

	_cleanup_free_ char *missing = pilot_path_join(dir, "nope");
	assert_int_equal(pilot_spec_find(missing, &sp, &pd), PILOT_ENOTFOUND);
	assert_int_equal(pilot_spec_load_file(missing, NULL, &s), PILOT_ENOTFOUND);
	assert_null(s);
	size_t n;
	assert_null(pilot_spec_last_diags(&n));

	/* Positions name the file as given. */
	assert_int_equal(pilot_write_file_atomic(other, "name: o\nbad: 1\n", 15, 0644), 0);
	assert_int_equal(pilot_spec_load_file(other, NULL, &s), PILOT_EINVALID);
	_cleanup_free_ char *want = pilot_xasprintf("%s:2:1: unknown key 'bad'", other);
	assert_string_equal(pilot_error_last(), want);
	pilot_rm_rf(dir);
}

/* ---- pipelines ------------------------------------------------------------------ */

static struct pilot_spec_pipeline *pipeline_ok(const char *text)
{
	struct pilot_spec *s = (struct pilot_spec *)1;
	struct pilot_spec_pipeline *p = NULL;
	int r = pilot_spec_load_any_string(text, strlen(text), "pilot.yaml", &env_only, &s, &p);
	if (r < 0)
		print_error("unexpected error:\n%s\n", pilot_error_last());
	assert_int_equal(r, 0);
	assert_null(s);
	assert_non_null(p);
	return p;
}

static void pipeline_err(const char *text, const char *want)
{
	struct pilot_spec *s = (struct pilot_spec *)1;
	struct pilot_spec_pipeline *p = (struct pilot_spec_pipeline *)1;
	int r = pilot_spec_load_any_string(text, strlen(text), "pilot.yaml", &env_only, &s, &p);
	assert_int_equal(r, PILOT_EINVALID);
	assert_null(s);
	assert_null(p);
	if (strcmp(pilot_error_last(), want))
		print_error("spec:\n%s\nwanted:\n%s\ngot:\n%s\n", text, want, pilot_error_last());
	assert_string_equal(pilot_error_last(), want);
}

/* Each job starts from the top-level fields: maps merged by key, resources and retry
 * field by field, the rest replaced; params are shared; the jobs come in an order
 * where needs go first, the file's order otherwise. */
static void test_pipeline_jobs(void **state)
{
	(void)state;
	struct pilot_spec_pipeline *p = pipeline_ok(
		"name: ml\n"
		"image: python:3.12\n"
		"command: echo top\n"
		"env: {A: '1', B: '2'}\n"
		"resources: {cpus: 2, memory: 1G}\n"
		"artifacts: [out/*]\n"
		"ignore: [data/raw]\n"
		"params: {lr: '0.1'}\n"
		"max_failures: 50%\n"
		"jobs:\n"
		"  report:\n"
		"    needs: [evaluate]\n"
		"  evaluate:\n"
		"    needs: [train, prepare]\n"
		"    command: [python, eval.py, '${lr}']\n"
		"  train:\n"
		"    needs: prepare\n"
		"    env: {B: '3', C: '4'}\n"
		"    resources: {gpus: 1}\n"
		"    artifacts: [model.pt]\n"
		"  prepare:\n"
		"    image: busybox\n"
		"  lint: ~\n");
	assert_string_equal(p->name, "ml");
	assert_int_equal(p->njobs, 5);
	assert_int_equal(p->max_failures, 3); /* 50% of 5, rounded up */
	static const char *const order[] = { "prepare", "train", "evaluate", "report", "lint" };
	for (size_t i = 0; i < 5; i++)
		assert_string_equal(p->jobs[i].spec->name, order[i]);
	const struct pilot_spec *prep = p->jobs[0].spec, *train = p->jobs[1].spec, *eval = p->jobs[2].spec;
	assert_string_equal(prep->image, "busybox");
	for (size_t i = 0; i < 5; i++) /* one bundle: every job has the top-level ignore */
		assert_true(p->jobs[i].spec->nignore == 1 && !strcmp(p->jobs[i].spec->ignore[0], "data/raw"));
	assert_string_equal(prep->command[2], "echo top");
	assert_int_equal(p->jobs[0].nneeds, 0);
	assert_string_equal(train->image, "python:3.12");
	assert_int_equal(train->nenv, 3);
	assert_string_equal(pilot_kv_get(train->env, train->nenv, "A"), "1");
	assert_string_equal(pilot_kv_get(train->env, train->nenv, "B"), "3");
	assert_string_equal(pilot_kv_get(train->env, train->nenv, "C"), "4");
	assert_int_equal(train->resources.cpus_milli, 2000);
	assert_int_equal(train->resources.gpus, 1);
	assert_int_equal(train->resources.memory, 1024 * 1024 * 1024);
	assert_int_equal(train->nartifacts, 1);
	assert_string_equal(train->artifacts[0], "model.pt");
	assert_int_equal(p->jobs[1].nneeds, 1);
	assert_string_equal(p->jobs[1].needs[0], "prepare");
	assert_false(eval->shell);
	assert_string_equal(eval->command[2], "0.1");
	assert_string_equal(pilot_kv_get(eval->params, eval->nparams, "lr"), "0.1");
	assert_int_equal(p->jobs[2].nneeds, 2);
	assert_string_equal(p->jobs[2].needs[0], "train");
	assert_string_equal(p->jobs[2].needs[1], "prepare");
	assert_int_equal(pilot_spec_pipeline_find(p, "report"), 3);
	assert_int_equal(pilot_spec_pipeline_find(p, "nope"), -1);
	pilot_spec_pipeline_free(p);

	/* A spec without jobs loads as a spec. */
	struct pilot_spec *s = NULL;
	struct pilot_spec_pipeline *none = (struct pilot_spec_pipeline *)1;
	assert_int_equal(pilot_spec_load_any_string("name: a\n", 8, "pilot.yaml", &env_only, &s, &none), 0);
	assert_non_null(s);
	assert_null(none);
	pilot_spec_free(s);
}

static void test_pipeline_errors(void **state)
{
	(void)state;
	pipeline_err("name: ml\n"
		     "jobs:\n"
		     "  a:\n"
		     "    needs: [c, a, zz, b, b]\n"
		     "  b:\n"
		     "    needs: [a]\n"
		     "  c:\n"
		     "    needs: b\n",
		     "pilot.yaml:4:16: jobs.a.needs[1]: a job cannot need itself\n"
		     "pilot.yaml:4:19: jobs.a.needs[2]: unknown job 'zz' (the jobs are under jobs:)\n"
		     "pilot.yaml:4:26: jobs.a.needs[4]: 'b' is listed twice\n"
		     "pilot.yaml:6:13: jobs.b.needs[0]: the needs make a cycle: a needs c needs b needs a");
	pipeline_err("name: ml\n"
		     "needs: [x]\n"
		     "jobs:\n"
		     "  a:\n"
		     "    name: b\n"
		     "    params: {x: 1}\n"
		     "    ignore: [data]\n"
		     "    max_failures: 1\n"
		     "    jobs: {}\n"
		     "    needs: [trian]\n"
		     "    resources: {memroy: 1G}\n"
		     "  train:\n"
		     "    runtime: docker\n"
		     "  Bad: {}\n",
		     "pilot.yaml:2:1: needs: only a job of a pipeline has needs (under jobs:)\n"
		     "pilot.yaml:5:5: jobs.a.name: a job's name is its key under jobs:\n"
		     "pilot.yaml:6:5: jobs.a.params: params are declared at the top level, for every job\n"
		     "pilot.yaml:7:5: jobs.a.ignore: the jobs of a pipeline share one bundle: set ignore at the top level\n"
		     "pilot.yaml:8:5: jobs.a.max_failures: max_failures is the pipeline's: set it at the top level\n"
		     "pilot.yaml:9:5: jobs.a.jobs: jobs do not nest\n"
		     "pilot.yaml:10:13: jobs.a.needs[0]: unknown job 'trian' (did you mean 'train'?)\n"
		     "pilot.yaml:11:17: jobs.a.resources: unknown key 'memroy' (did you mean 'memory'?)\n"
		     "pilot.yaml:13:14: jobs.train.image: required with runtime 'docker'\n"
		     "pilot.yaml:14:3: jobs: job name 'Bad' must start with a lowercase letter or digit and hold only "
		     "a-z, 0-9, '.', '_' and '-'");
	pipeline_err("name: ml\njobs: {}\n",
		     "pilot.yaml:2:7: jobs: expected at least one job (e.g. 'jobs: {train: {command: ...}}')");
	pipeline_err("name: ml\nmax_failures: 101%\njobs: {a: {}}\n",
		     "pilot.yaml:2:15: max_failures: expected N, or N% from 1% to 100%, not '101%'");
	pipeline_err("name: ml\nmax_failures: 2\n",
		     "pilot.yaml:2:1: max_failures: only a pipeline (jobs:) has max_failures; an array takes "
		     "--max-failures");
	/* The top-level fields count once per job towards the size limit. */
	struct pilot_buf big = PILOT_BUF_INIT;
	pilot_buf_puts(&big, "name: big\ncommand: echo ");
	for (int i = 0; i < 20000; i++)
		pilot_buf_putc(&big, 'x');
	pilot_buf_puts(&big, "\njobs:\n");
	for (int i = 0; i < 1000; i++)
		pilot_buf_printf(&big, "  j%d: {}\n", i);
	pipeline_err(pilot_buf_str(&big), "pilot.yaml:2:10: command: the spec is larger than 16 MiB after interpolation");
	pilot_buf_free(&big);
	/* The plain loader refuses a pipeline. */
	load_err("name: ml\njobs: {a: {}}\n",
		 "pilot.yaml:2:1: jobs: this spec is a pipeline (jobs:), which this command does not take");
}

static void test_syntax_helpers(void **state)
{
	(void)state;
	assert_true(pilot_spec_name_valid("a"));
	assert_true(pilot_spec_name_valid("0.a_b-c"));
	assert_false(pilot_spec_name_valid(""));
	assert_false(pilot_spec_name_valid("_a"));
	assert_false(pilot_spec_name_valid("aB"));
	assert_false(pilot_spec_name_valid(NULL));
	char longname[200];
	memset(longname, 'a', sizeof(longname));
	longname[128] = '\0';
	assert_true(pilot_spec_name_valid(longname));
	longname[128] = 'a';
	longname[129] = '\0';
	assert_false(pilot_spec_name_valid(longname));
	assert_true(pilot_spec_env_name_valid("_A1"));
	assert_false(pilot_spec_env_name_valid("1A"));
	assert_false(pilot_spec_env_name_valid("A.B"));
	assert_string_equal(pilot_spec_runtime_name(PILOT_SPEC_RUNTIME_HOST), "host");
	assert_null(pilot_spec_runtime_name(PILOT_SPEC_RUNTIME_ANY));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_minimal_defaults),
		cmocka_unit_test(test_all_fields),
		cmocka_unit_test(test_block_style_and_nulls),
		cmocka_unit_test(test_shell_command_block),
		cmocka_unit_test(test_sizes_and_durations),
		cmocka_unit_test(test_unknown_keys),
		cmocka_unit_test(test_type_errors),
		cmocka_unit_test(test_value_errors),
		cmocka_unit_test(test_document_errors),
		cmocka_unit_test(test_many_errors_reported_together),
		cmocka_unit_test(test_too_many_errors),
		cmocka_unit_test(test_interpolation),
		cmocka_unit_test(test_params),
		cmocka_unit_test(test_expansion_limits),
		cmocka_unit_test(test_process_environment),
		cmocka_unit_test(test_json_normal_form),
		cmocka_unit_test(test_json_round_trip),
		cmocka_unit_test(test_json_value_api),
		cmocka_unit_test(test_json_minimal_and_errors),
		cmocka_unit_test(test_find_and_load_file),
		cmocka_unit_test(test_syntax_helpers),
		cmocka_unit_test(test_pipeline_jobs),
		cmocka_unit_test(test_pipeline_errors),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
