/* pilot __complete WORD... : the candidates for the last WORD, one per line, computed
 * from the same command and option tables as parsing and --help. The shell scripts in
 * completions/ are thin wrappers around it. ":file" and ":dir" ask the shell to
 * complete paths itself. */
#include <string.h>

#include "pilot.h"

static const char *const global_long[] = {
	"--server", "--local", "--profile", "--config", "--verbose", "--quiet", "--no-color", "--version", "--help",
};

static bool global_takes_value(const char *w)
{
	return !strcmp(w, "--server") || !strcmp(w, "--profile") || !strcmp(w, "--config");
}

static void put_if(const char *cand, const char *cur)
{
	if (pilot_str_has_prefix(cand, cur))
		puts(cand);
}

/* kind: NULL, "file", "dir", "run", "command", or a space-separated word list. */
static void complete_kind(const char *kind, const char *cur)
{
	if (!kind)
		return;
	if (!strcmp(kind, "file") || !strcmp(kind, "dir")) {
		printf(":%s\n", kind);
	} else if (!strcmp(kind, "command")) {
		for (size_t i = 0; i < pilot_commands_count; i++)
			if (!(pilot_commands[i]->flags & CMD_HIDDEN))
				put_if(pilot_commands[i]->name, cur);
	} else if (!strcmp(kind, "run")) {
		pilot_complete_runs(cur);
	} else {
		_cleanup_free_ char *words = pilot_xstrdup(kind);
		char *save = NULL;
		for (char *w = strtok_r(words, " ", &save); w; w = strtok_r(NULL, " ", &save))
			put_if(w, cur);
	}
}

static const struct pilot_opt *find_opt(const struct pilot_cmd *cmd, const char *w)
{
	for (const struct pilot_opt *o = cmd->opts; o && o->type; o++) {
		if (w[0] == '-' && w[1] == '-' && !strcmp(w + 2, o->long_name))
			return o;
		if (w[0] == '-' && w[1] && !w[2] && w[1] == o->short_name)
			return o;
	}
	return NULL;
}

static bool opt_takes_value(const struct pilot_opt *o)
{
	return o && o->type != OPT_FLAG && o->type != OPT_COUNT;
}

int pilot_complete(int argc, char **argv)
{
	if (argc == 0)
		return EXIT_OK;
	const char *cur = argv[argc - 1];
	int i = 0;
	/* Global options before the command. */
	while (i < argc - 1 && argv[i][0] == '-') {
		if (global_takes_value(argv[i]))
			i++;
		i++;
	}
	if (i > 0 && i == argc - 1 && global_takes_value(argv[i - 1])) {
		if (!strcmp(argv[i - 1], "--config"))
			puts(":file");
		return EXIT_OK;
	}
	if (i >= argc - 1) {
		if (cur[0] == '-')
			for (size_t k = 0; k < ARRAY_SIZE(global_long); k++)
				put_if(global_long[k], cur);
		else
			complete_kind("command", cur);
		return EXIT_OK;
	}
	const struct pilot_cmd *cmd = pilot_command_find(argv[i]);
	if (!cmd)
		return EXIT_OK;
	int npos = 0;
	bool only_pos = false;
	for (int k = i + 1; k < argc - 1; k++) {
		const char *w = argv[k];
		if (!only_pos && !strcmp(w, "--")) {
			only_pos = true;
		} else if (!only_pos && w[0] == '-' && w[1]) {
			const struct pilot_opt *o = find_opt(cmd, w);
			if (opt_takes_value(o) && !strchr(w, '='))
				k++;
		} else {
			npos++;
		}
	}
	const char *prev = argc - 2 > i ? argv[argc - 2] : NULL;
	const struct pilot_opt *po = prev && prev[0] == '-' ? find_opt(cmd, prev) : NULL;
	if (opt_takes_value(po)) {
		complete_kind(po->complete, cur);
		return EXIT_OK;
	}
	if (cur[0] == '-' && !only_pos) {
		for (const struct pilot_opt *o = cmd->opts; o && o->type; o++) {
			char name[80];
			snprintf(name, sizeof(name), "--%s", o->long_name);
			put_if(name, cur);
		}
		put_if("--help", cur);
		return EXIT_OK;
	}
	if (cmd->max_args >= 0 && npos >= cmd->max_args)
		return EXIT_OK;
	const char *kind = cmd->complete_args;
	/* A word list names subcommands: it applies to the first positional only. */
	if (kind && npos > 0 && strcmp(kind, "file") && strcmp(kind, "dir") && strcmp(kind, "run") &&
	    strcmp(kind, "command"))
		kind = cmd->complete_args_rest;
	complete_kind(kind, cur);
	return EXIT_OK;
}
