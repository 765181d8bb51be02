/* The command framework shared by the files in cmd/: the command table entry, the declarative
 * option rows that drive parsing, --help, man-page checks and completion, and the
 * context the dispatcher hands to each command. */
#ifndef PILOT_CMD_H
#define PILOT_CMD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "pilot/util.h"

struct pilot_config;
struct pilot_api;

enum opt_type {
	OPT_END = 0,
	OPT_FLAG,     /* bool; --no-NAME is not generated */
	OPT_COUNT,    /* int, incremented per use (-v -v) */
	OPT_STRING,   /* const char *, last one wins */
	OPT_LIST,     /* struct opt_list, repeatable */
	OPT_INT,      /* int64_t, checked */
	OPT_DURATION, /* int64_t milliseconds */
	OPT_SIZE,     /* uint64_t bytes */
};

/* Values of a repeatable option, in order of appearance. */
struct opt_list {
	const char **items;
	size_t n;
};

struct pilot_opt {
	enum opt_type type;
	char short_name;      /* 0 when none */
	const char *long_name;
	const char *arg;      /* metavariable shown in help: "DUR", "K=V" */
	const char *help;
	size_t offset;        /* where the value lives in the command's option struct */
	/* Completion of the option's value: NULL (free text), "file", "dir", "run",
	 * or a space-separated word list such as "table json yaml". */
	const char *complete;
};

#define OPT_END_ROW { OPT_END, 0, NULL, NULL, NULL, 0, NULL }

/* The command needs: its flags tell the dispatcher what to set up. */
enum {
	CMD_NEEDS_CONFIG = 1 << 0, /* ctx->config is loaded (flag > env > profile > default) */
	CMD_HIDDEN = 1 << 1,       /* not listed in pilot --help */
	CMD_RAW_ARGS = 1 << 2,     /* options are not parsed; argv goes through as is */
};

struct pilot_cmd;

struct pilot_ctx {
	const struct pilot_cmd *cmd; /* the command being run */
	int verbose;
	bool quiet;
	bool color_stdout;   /* a tty, no NO_COLOR, no --no-color */
	bool color_stderr;
	bool stdout_tty;
	bool stderr_tty;
	bool stdin_tty;
	/* Global flags as given (NULL when absent). */
	const char *server_flag;
	const char *profile_flag;
	const char *config_flag;
	struct pilot_config *config; /* with CMD_NEEDS_CONFIG */
};

struct pilot_cmd {
	const char *name;
	const char *alias;      /* e.g. "ps" for list; NULL */
	const char *summary;    /* one line, lowercase, no period */
	const char *args;       /* positional part of the synopsis: "[DIR|SPEC]" */
	const char *description; /* paragraph(s) for --help, may be NULL */
	const struct pilot_opt *opts; /* terminated by OPT_END_ROW; NULL when none */
	size_t opts_size;       /* sizeof the option struct run() receives */
	int min_args, max_args; /* positional counts; max -1 = any */
	unsigned flags;
	/* Returns the process exit status. argv holds the positional arguments only. */
	int (*run)(struct pilot_ctx *ctx, void *opts, int argc, char **argv);
	/* Positional completion: NULL, "file", "dir", "run", "command", or a word list.
	 * A word list (subcommands) applies to the first positional; complete_args_rest
	 * to the ones after it. */
	const char *complete_args;
	const char *complete_args_rest;
};

/* The table of built-in commands, sorted by name (cmd/commands.c). */
extern const struct pilot_cmd *const pilot_commands[];
extern const size_t pilot_commands_count;
const struct pilot_cmd *pilot_command_find(const char *name);

/* cmd/pilot.c */
void pilot_list_commands(FILE *out);
int pilot_help_command(const char *name);

/* cmd/complete.c: pilot __complete WORD... */
int pilot_complete(int argc, char **argv);
/* Recent run ids starting with prefix, one per line on stdout (cmd/complete-runs.c). */
void pilot_complete_runs(const char *prefix);

/* cmd/opt.c */
/* Parses argv (after the command name) into opts; leaves the positionals in argc/argv.
 * On error prints "pilot CMD: <what>" and the usage line to stderr and returns 2. */
int opt_parse(const struct pilot_cmd *cmd, void *opts, int *argc, char ***argv);
/* "pilot NAME [--flag] [--opt ARG]... ARGS" on one line. */
void opt_synopsis(const struct pilot_cmd *cmd, FILE *out);
void opt_usage_line(const struct pilot_cmd *cmd, FILE *out);
void opt_help(const struct pilot_cmd *cmd, FILE *out);
void opt_free(const struct pilot_cmd *cmd, void *opts);

/* cmd/pilot.c: reporting helpers for commands. */
/* "pilot: error: <pilot_error_last()>" on stderr, returns status. */
int cmd_fail(struct pilot_ctx *ctx, int status);
void cmd_errorf(struct pilot_ctx *ctx, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void cmd_warnf(struct pilot_ctx *ctx, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void cmd_notef(struct pilot_ctx *ctx, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Usage error of the command being run: prints "pilot CMD: msg" and the usage line;
 * returns 2. */
int cmd_usage_error(struct pilot_ctx *ctx, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Exit statuses (design.md §8). */
enum {
	EXIT_OK = 0,
	EXIT_FAIL = 1,
	EXIT_USAGE = 2,
	EXIT_JOB_TIMEOUT = 124,
	EXIT_PILOT = 125,
	EXIT_CANCELED = 130,
};

#define PILOT_CMD_DECLARE(n) extern const struct pilot_cmd cmd_##n;

#endif
