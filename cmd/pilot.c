/* pilot: the dispatcher. Parses the global options, finds the command in the table
 * (or a pilot-NAME plugin on PATH), does the common set-up its flags ask for, and
 * hands it a context. Reports errors once, here or in the command, never in lib/. */
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <string.h>
#include <unistd.h>

#include "pilot.h"
#include "pilot/config.h"

static const char global_usage[] =
	"usage: pilot [--server URL | --local] [--profile NAME] [--config FILE] [-v|--verbose]...\n"
	"             [-q|--quiet] [--no-color] [--version] [-h|--help] COMMAND [ARGS]\n";

static void log_to_stderr(enum pilot_log_level level, const char *msg, void *userdata)
{
	struct pilot_ctx *ctx = userdata;
	static const char *names[] = { "error", "warning", "notice", "info", "debug" };
	if (level <= PILOT_LOG_WARN && ctx->color_stderr)
		fprintf(stderr, "pilot: \033[1;33m%s\033[0m: %s\n", names[level], msg);
	else if (level <= PILOT_LOG_NOTICE)
		fprintf(stderr, "pilot: %s%s%s\n", level == PILOT_LOG_NOTICE ? "" : names[level],
			level == PILOT_LOG_NOTICE ? "" : ": ", msg);
	else
		fprintf(stderr, "pilot: %s: %s\n", names[level], msg);
}

__attribute__((format(printf, 4, 0)))
static void vreport(struct pilot_ctx *ctx, const char *kind, const char *color, const char *fmt, va_list ap)
{
	if (ctx && ctx->color_stderr && kind)
		fprintf(stderr, "pilot: %s%s\033[0m: ", color, kind);
	else if (kind)
		fprintf(stderr, "pilot: %s: ", kind);
	else
		fputs("pilot: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
}

void cmd_errorf(struct pilot_ctx *ctx, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vreport(ctx, "error", "\033[1;31m", fmt, ap);
	va_end(ap);
}

void cmd_warnf(struct pilot_ctx *ctx, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vreport(ctx, "warning", "\033[1;33m", fmt, ap);
	va_end(ap);
}

void cmd_notef(struct pilot_ctx *ctx, const char *fmt, ...)
{
	if (ctx && ctx->quiet)
		return;
	va_list ap;
	va_start(ap, fmt);
	vreport(ctx, NULL, "", fmt, ap);
	va_end(ap);
}

int cmd_fail(struct pilot_ctx *ctx, int status)
{
	cmd_errorf(ctx, "%s", pilot_error_last()[0] ? pilot_error_last() : "failed");
	return status;
}

int cmd_usage_error(struct pilot_ctx *ctx, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fprintf(stderr, "pilot %s: ", ctx->cmd->name);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	opt_usage_line(ctx->cmd, stderr);
	return EXIT_USAGE;
}

const struct pilot_cmd *pilot_command_find(const char *name)
{
	for (size_t i = 0; i < pilot_commands_count; i++) {
		const struct pilot_cmd *c = pilot_commands[i];
		if (!strcmp(c->name, name) || (c->alias && !strcmp(c->alias, name)))
			return c;
	}
	return NULL;
}

void pilot_list_commands(FILE *out)
{
	fputs(global_usage, out);
	fputs("\nRun a project directory as a batch job, here or on a fleet of agents.\n\ncommands:\n", out);
	for (size_t i = 0; i < pilot_commands_count; i++) {
		const struct pilot_cmd *c = pilot_commands[i];
		if (c->flags & CMD_HIDDEN)
			continue;
		if (c->alias)
			fprintf(out, "  %-12s %s (alias: %s)\n", c->name, c->summary, c->alias);
		else
			fprintf(out, "  %-12s %s\n", c->name, c->summary);
	}
	fputs("\nSee 'pilot help COMMAND' or 'man pilot-COMMAND' for a command's options.\n", out);
}

/* An executable pilot-NAME on PATH? Returns its full path (caller frees) or NULL. */
static char *find_plugin(const char *name)
{
	const char *path = getenv("PATH");
	if (!path || strchr(name, '/'))
		return NULL;
	_cleanup_free_ char *copy = pilot_xstrdup(path);
	char *save = NULL;
	for (char *dir = strtok_r(copy, ":", &save); dir; dir = strtok_r(NULL, ":", &save)) {
		char *cand = pilot_xasprintf("%s/pilot-%s", *dir ? dir : ".", name);
		if (access(cand, X_OK) == 0)
			return cand;
		free(cand);
	}
	return NULL;
}

static int unknown_command(const char *name, char **argv)
{
	_cleanup_free_ char *plugin = find_plugin(name);
	if (plugin) {
		argv[0] = plugin;
		execv(plugin, argv);
		fprintf(stderr, "pilot: cannot run '%s': %s\n", plugin, strerror(errno));
		return EXIT_PILOT;
	}
	fprintf(stderr, "pilot: '%s' is not a pilot command. See 'pilot --help'.\n", name);
	const char *names[64];
	size_t n = 0;
	for (size_t i = 0; i < pilot_commands_count && n < ARRAY_SIZE(names); i++)
		if (!(pilot_commands[i]->flags & CMD_HIDDEN))
			names[n++] = pilot_commands[i]->name;
	/* Every command as close as the closest, git-style. */
	const char *best = pilot_suggest(name, names, n);
	if (best) {
		int d = pilot_edit_distance(name, best);
		size_t count = 0;
		for (size_t i = 0; i < n; i++)
			count += pilot_edit_distance(name, names[i]) == d;
		fprintf(stderr, "\nThe most similar command%s:\n", count > 1 ? "s are" : " is");
		for (size_t i = 0; i < n; i++)
			if (pilot_edit_distance(name, names[i]) == d)
				fprintf(stderr, "\t%s\n", names[i]);
	}
	return EXIT_USAGE;
}

static bool want_color(int fd, bool no_color_flag)
{
	const char *nc = getenv("NO_COLOR");
	const char *term = getenv("TERM");
	if (no_color_flag || (nc && *nc) || (term && !strcmp(term, "dumb")))
		return false;
	return isatty(fd);
}

int pilot_help_command(const char *name)
{
	const struct pilot_cmd *c = pilot_command_find(name);
	if (!c) {
		fprintf(stderr, "pilot: no help for '%s': not a pilot command. See 'pilot --help'.\n", name);
		return EXIT_FAIL;
	}
	opt_help(c, stdout);
	return EXIT_OK;
}

static int run_command(struct pilot_ctx *ctx, const struct pilot_cmd *cmd, int argc, char **argv)
{
	_cleanup_free_ void *opts = pilot_xcalloc(1, cmd->opts_size ? cmd->opts_size : 1);
	int status;
	ctx->cmd = cmd;
	if (!(cmd->flags & CMD_RAW_ARGS)) {
		int r = opt_parse(cmd, opts, &argc, &argv);
		if (r) {
			opt_free(cmd, opts);
			return r < 0 ? EXIT_OK : r;
		}
	}
	if (cmd->flags & CMD_NEEDS_CONFIG) {
		struct pilot_config_overrides ov = {
			.server = ctx->server_flag, .profile = ctx->profile_flag, .path = ctx->config_flag,
		};
		if (pilot_config_load(&ov, &ctx->config) < 0) {
			opt_free(cmd, opts);
			return cmd_fail(ctx, EXIT_FAIL);
		}
	}
	status = cmd->run(ctx, opts, argc, argv);
	opt_free(cmd, opts);
	pilot_config_free(ctx->config);
	ctx->config = NULL;
	return status;
}

int main(int argc, char **argv)
{
	struct pilot_ctx ctx = { 0 };
	bool no_color = false, local = false;
	int i;

	/* A closed pipe shows up as EPIPE on write and the command stops quietly; a
	 * signal would also hit sockets inside libcurl and the server. */
	signal(SIGPIPE, SIG_IGN);

	for (i = 1; i < argc; i++) {
		const char *a = argv[i];
		const char **slot = NULL;
		if (a[0] != '-')
			break;
		if (!strcmp(a, "--server"))
			slot = &ctx.server_flag;
		else if (!strcmp(a, "--profile"))
			slot = &ctx.profile_flag;
		else if (!strcmp(a, "--config"))
			slot = &ctx.config_flag;
		else if (!strncmp(a, "--server=", 9))
			ctx.server_flag = a + 9;
		else if (!strcmp(a, "--local"))
			local = true;
		else if (!strncmp(a, "--profile=", 10))
			ctx.profile_flag = a + 10;
		else if (!strncmp(a, "--config=", 9))
			ctx.config_flag = a + 9;
		else if (!strcmp(a, "-v") || !strcmp(a, "--verbose"))
			ctx.verbose++;
		else if (!strcmp(a, "-vv"))
			ctx.verbose += 2;
		else if (!strcmp(a, "-q") || !strcmp(a, "--quiet"))
			ctx.quiet = true;
		else if (!strcmp(a, "--no-color"))
			no_color = true;
		else if (!strcmp(a, "--version"))
			return run_command(&ctx, pilot_command_find("version"), argc - i - 1, argv + i + 1);
		else if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
			pilot_list_commands(stdout);
			return EXIT_OK;
		} else {
			fprintf(stderr, "pilot: unknown option '%s'\n%s", a, global_usage);
			return EXIT_USAGE;
		}
		if (slot) {
			if (++i >= argc) {
				fprintf(stderr, "pilot: option '%s' needs a value\n%s", a, global_usage);
				return EXIT_USAGE;
			}
			*slot = argv[i];
		}
	}

	if (local && ctx.server_flag) {
		fprintf(stderr, "pilot: --server and --local together: choose one\n%s", global_usage);
		return EXIT_USAGE;
	}
	/* The local store even when a server is configured: an empty server beats the
	 * profile's, as a flag does. */
	if (local)
		ctx.server_flag = "";
	ctx.stdout_tty = isatty(STDOUT_FILENO);
	ctx.stderr_tty = isatty(STDERR_FILENO);
	ctx.stdin_tty = isatty(STDIN_FILENO);
	ctx.color_stdout = want_color(STDOUT_FILENO, no_color);
	ctx.color_stderr = want_color(STDERR_FILENO, no_color);
	pilot_log_set_handler(log_to_stderr, &ctx,
			      ctx.quiet ? PILOT_LOG_WARN
			      : ctx.verbose >= 2 ? PILOT_LOG_DEBUG
			      : ctx.verbose == 1 ? PILOT_LOG_INFO : PILOT_LOG_NOTICE);

	if (i >= argc) {
		pilot_list_commands(stdout);
		return EXIT_OK;
	}
	if (!strcmp(argv[i], "__complete"))
		return pilot_complete(argc - i - 1, argv + i + 1);
	const struct pilot_cmd *cmd = pilot_command_find(argv[i]);
	if (!cmd)
		return unknown_command(argv[i], argv + i);
	int status = run_command(&ctx, cmd, argc - i - 1, argv + i + 1);
	/* A reader that went away (pilot list | head) is not an error worth a word. */
	if (fflush(stdout) != 0 && errno != EPIPE) {
		fprintf(stderr, "pilot: cannot write output: %s\n", strerror(errno));
		return status ? status : EXIT_FAIL;
	}
	return status;
}
