/* pilot init: write a commented pilot.yaml that shows every field (most commented out)
 * and a .pilotignore into a project directory. The file written is checked with the
 * spec loader first, so it always validates. */
#include <ctype.h>
#include <errno.h>
#include <string.h>
#include <sys/stat.h>

#include "pilot.h"
#include "pilot/spec.h"

struct opts {
	const char *name;
	const char *image;
	bool force;
};

static const struct pilot_opt options[] = {
	{ OPT_STRING, 0, "name", "NAME", "the job's name (default: the directory's name)",
	  offsetof(struct opts, name), NULL },
	{ OPT_STRING, 0, "image", "IMAGE", "the container image (default: busybox)", offsetof(struct opts, image),
	  NULL },
	{ OPT_FLAG, 'f', "force", NULL, "overwrite an existing pilot.yaml", offsetof(struct opts, force), NULL },
	OPT_END_ROW,
};

#define DEFAULT_IMAGE "busybox"

#define TEMPLATE_HEAD \
	"# pilot.yaml: how to run this directory as a job. Reference: man 5 pilot.yaml\n" \
	"# Check it with 'pilot validate', run it here with 'pilot run'.\n" \
	"\n" \
	"# The job's name: lowercase letters, digits, '.', '_' and '-'.\n" \
	"name: %s\n" \
	"\n" \
	"# The container image. Without one, only the host runtime can run the job.\n" \
	"image: %s\n" \
	"\n"

static const char template_rest[] =
	"# What to run, in workdir. A string runs with /bin/sh -c; a list runs the program\n"
	"# directly: [python, train.py, --lr, \"${lr}\"]. ${NAME} and ${NAME:-default} come\n"
	"# from params, then from your environment; $$ is a literal $. A $ without braces,\n"
	"# as in $PILOT_RUN_ID below, is left for the shell.\n"
	"command: echo \"hello from run $PILOT_RUN_ID, lr=${lr}\"\n"
	"\n"
	"# Params and their defaults: use them as ${lr}, override them with --param lr=0.1\n"
	"# (pilot run, pilot submit, pilot validate). A --param the spec does not declare is\n"
	"# an error.\n"
	"params:\n"
	"  lr: 0.01\n"
	"\n"
	"# Pin a runtime: docker, podman or host (default: the config's, or the first\n"
	"# engine that answers).\n"
	"#runtime: docker\n"
	"\n"
	"# Where the project is unpacked inside the container.\n"
	"#workdir: /workspace\n"
	"\n"
	"# Environment variables for the job.\n"
	"#env:\n"
	"#  EPOCHS: \"5\"\n"
	"\n"
	"# Names of variables taken from your environment when you submit. Their values are\n"
	"# never written into the bundle or the spec, and are redacted from logs.\n"
	"#secrets: [HF_TOKEN]\n"
	"\n"
	"# Limits. Sizes such as 512MiB, 4G or 1.5GB; gpus is a count or \"all\".\n"
	"#resources:\n"
	"#  cpus: 2\n"
	"#  memory: 4GiB\n"
	"#  gpus: 1\n"
	"#  shm: 1GiB\n"
	"\n"
	"# Wall-clock limit for each attempt: 90s, 30m, 2h, 1d.\n"
	"#timeout: 2h\n"
	"\n"
	"# Run a failed attempt again (an attempt lost with its agent is always retried).\n"
	"#retry:\n"
	"#  max_attempts: 3\n"
	"#  on: [exit_code, timeout]\n"
	"#  backoff: 10s\n"
	"#  max_backoff: 5m\n"
	"\n"
	"# Labels an agent must have to run the job.\n"
	"#requires:\n"
	"#  gpu: a100\n"
	"\n"
	"# Files to keep after the run: globs relative to workdir.\n"
	"#artifacts: [outputs/**, \"*.pt\"]\n"
	"\n"
	"# More paths to leave out of the bundle, on top of .pilotignore.\n"
	"#ignore: [data/raw/]\n"
	"\n"
	"# 0 to 100; higher runs first.\n"
	"#priority: 50\n";

static const char pilotignore[] =
	"# Paths left out of the bundle that pilot uploads, in .gitignore syntax. While this\n"
	"# file exists, .gitignore is not read: copy what you need from it here.\n"
	".git/\n"
	"__pycache__/\n"
	"*.pyc\n"
	".venv/\n"
	"node_modules/\n";

/* The directory's name turned into a valid job name: lowercase, anything else a '-',
 * no leading punctuation. */
static char *name_from_dir(const char *dir)
{
	_cleanup_free_ char *real = realpath(dir, NULL);
	/* A directory that does not exist yet: its name as given, trailing slashes aside. */
	_cleanup_free_ char *given = pilot_xstrdup(dir);
	size_t len = strlen(given);
	while (len > 1 && given[len - 1] == '/')
		given[--len] = '\0';
	const char *path = real ? real : given;
	const char *slash = strrchr(path, '/');
	const char *base = slash ? slash + 1 : path;
	char *name = pilot_xmalloc(strlen(base) + 1);
	size_t n = 0;
	for (const char *p = base; *p && n < 128; p++) {
		char c = (char)tolower((unsigned char)*p);
		if (!(islower((unsigned char)c) || isdigit((unsigned char)c) || c == '.' || c == '_' || c == '-'))
			c = '-';
		if (!n && !(islower((unsigned char)c) || isdigit((unsigned char)c)))
			continue;
		if (c == '-' && n && name[n - 1] == '-')
			continue;
		name[n++] = c;
	}
	while (n && name[n - 1] == '-')
		n--;
	name[n] = '\0';
	if (!n) {
		free(name);
		return pilot_xstrdup("job");
	}
	return name;
}

/* Image references hold no YAML syntax in practice; quote the odd one that does. */
static char *yaml_scalar(const char *s)
{
	bool plain = *s && !strchr("-?:,[]{}#&*!|>'\"%@`", s[0]);
	for (const char *p = s; *p && plain; p++)
		plain = isalnum((unsigned char)*p) || strchr("._/:@-+", *p);
	if (plain && !strstr(s, ": "))
		return pilot_xstrdup(s);
	struct pilot_buf b = PILOT_BUF_INIT;
	pilot_buf_putc(&b, '"');
	for (const char *p = s; *p; p++) {
		if (*p == '"' || *p == '\\')
			pilot_buf_putc(&b, '\\');
		pilot_buf_putc(&b, *p);
	}
	pilot_buf_putc(&b, '"');
	return pilot_buf_steal(&b);
}

static int run(struct pilot_ctx *ctx, void *optsp, int argc, char **argv)
{
	struct opts *o = optsp;
	const char *dir = argc ? argv[0] : ".";
	struct stat st;

	if (o->name && !pilot_spec_name_valid(o->name))
		return cmd_usage_error(ctx, "invalid --name '%s': use lowercase letters, digits, '.', '_' and '-', "
				       "starting with a letter or digit", o->name);
	if (stat(dir, &st) == 0 && !S_ISDIR(st.st_mode)) {
		cmd_errorf(ctx, "'%s' is not a directory", dir);
		return EXIT_FAIL;
	}
	_cleanup_free_ char *path = strcmp(dir, ".") ? pilot_path_join(dir, "pilot.yaml") : pilot_xstrdup("pilot.yaml");
	_cleanup_free_ char *ignore_path = strcmp(dir, ".") ? pilot_path_join(dir, ".pilotignore")
							     : pilot_xstrdup(".pilotignore");
	if (lstat(path, &st) == 0 && !o->force) {
		cmd_errorf(ctx, "'%s' already exists; use --force to overwrite it", path);
		return EXIT_FAIL;
	}

	_cleanup_free_ char *name = o->name ? pilot_xstrdup(o->name) : name_from_dir(dir);
	_cleanup_free_ char *image = yaml_scalar(o->image ? o->image : DEFAULT_IMAGE);
	_cleanup_buf_ struct pilot_buf text = PILOT_BUF_INIT;
	pilot_buf_printf(&text, TEMPLATE_HEAD, name, image);
	pilot_buf_puts(&text, template_rest);

	/* What we write must load: a bad --image is reported here, not at run time. */
	struct pilot_spec *spec = NULL;
	if (pilot_spec_load_string(text.data, text.len, path, NULL, &spec) < 0) {
		size_t n;
		const struct pilot_spec_diag *d = pilot_spec_last_diags(&n);
		if (n && !strcmp(d[0].path, "image"))
			return cmd_usage_error(ctx, "invalid --image '%s': %s", o->image, d[0].message);
		return cmd_fail(ctx, EXIT_FAIL);
	}
	pilot_spec_free(spec);

	if (pilot_mkdir_p(dir, 0777) < 0)
		return cmd_fail(ctx, EXIT_FAIL);
	if (pilot_write_file_atomic(path, text.data, text.len, 0644) < 0)
		return cmd_fail(ctx, EXIT_FAIL);
	cmd_notef(ctx, "wrote '%s'", path);
	if (lstat(ignore_path, &st) < 0 && errno == ENOENT) {
		if (pilot_write_file_atomic(ignore_path, pilotignore, strlen(pilotignore), 0644) < 0)
			return cmd_fail(ctx, EXIT_FAIL);
		cmd_notef(ctx, "wrote '%s'", ignore_path);
	}
	cmd_notef(ctx, "check it with 'pilot validate%s%s', run it with 'pilot run%s%s'", argc ? " " : "",
		  argc ? dir : "", argc ? " " : "", argc ? dir : "");
	return EXIT_OK;
}

const struct pilot_cmd cmd_init = {
	.name = "init",
	.summary = "write a commented pilot.yaml into a project directory",
	.args = "[DIR]",
	.description =
		"Writes DIR/pilot.yaml (DIR defaults to the current directory, and is created if\n"
		"needed) showing every field, most of them commented out, and a .pilotignore unless\n"
		"one exists. The name defaults to the directory's name made valid. An existing\n"
		"pilot.yaml is only replaced with --force.",
	.opts = options,
	.opts_size = sizeof(struct opts),
	.min_args = 0,
	.max_args = 1,
	.run = run,
	.complete_args = "dir",
};
