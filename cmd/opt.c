/* Declarative option parsing: one table of rows per command drives argument parsing,
 * the synopsis, --help and (through __complete) shell completion. */
#include <stdarg.h>
#include <string.h>

#include "pilot.h"

#define SLOT(opts, o) ((char *)(opts) + (o)->offset)

static const struct pilot_opt *find_long(const struct pilot_opt *opts, const char *name, size_t len)
{
	for (const struct pilot_opt *o = opts; o && o->type; o++)
		if (strlen(o->long_name) == len && !strncmp(o->long_name, name, len))
			return o;
	return NULL;
}

static const struct pilot_opt *find_short(const struct pilot_opt *opts, char c)
{
	for (const struct pilot_opt *o = opts; o && o->type; o++)
		if (o->short_name == c)
			return o;
	return NULL;
}

static bool takes_value(const struct pilot_opt *o)
{
	return o->type != OPT_FLAG && o->type != OPT_COUNT;
}

static int store(const struct pilot_cmd *cmd, const struct pilot_opt *o, void *opts, const char *val)
{
	char *slot = SLOT(opts, o);
	int r = 0;
	switch (o->type) {
	case OPT_FLAG:
		*(bool *)slot = true;
		break;
	case OPT_COUNT:
		(*(int *)slot)++;
		break;
	case OPT_STRING:
		*(const char **)slot = val;
		break;
	case OPT_LIST: {
		struct opt_list *l = (struct opt_list *)slot;
		l->items = pilot_xrealloc(l->items, (l->n + 1) * sizeof(*l->items));
		l->items[l->n++] = val;
		break;
	}
	case OPT_INT:
		r = pilot_parse_int64(val, INT64_MIN, INT64_MAX, (int64_t *)slot);
		break;
	case OPT_DURATION:
		r = pilot_parse_duration(val, (int64_t *)slot);
		break;
	case OPT_SIZE:
		r = pilot_parse_size(val, (uint64_t *)slot);
		break;
	case OPT_END:
		break;
	}
	if (r < 0) {
		fprintf(stderr, "pilot %s: option '--%s': %s\n", cmd->name, o->long_name, pilot_error_last());
		opt_usage_line(cmd, stderr);
		return EXIT_USAGE;
	}
	return 0;
}

static int bad(const struct pilot_cmd *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int bad(const struct pilot_cmd *cmd, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fprintf(stderr, "pilot %s: ", cmd->name);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	opt_usage_line(cmd, stderr);
	return EXIT_USAGE;
}

int opt_parse(const struct pilot_cmd *cmd, void *opts, int *argcp, char ***argvp)
{
	int argc = *argcp;
	char **argv = *argvp;
	int npos = 0;
	bool only_pos = false;
	for (int i = 0; i < argc; i++) {
		char *a = argv[i];
		if (only_pos || a[0] != '-' || !a[1]) {
			argv[npos++] = a;
			continue;
		}
		if (!strcmp(a, "--")) {
			only_pos = true;
			continue;
		}
		if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
			opt_help(cmd, stdout);
			return -1;
		}
		if (a[1] == '-') {
			const char *name = a + 2, *eq = strchr(name, '=');
			size_t len = eq ? (size_t)(eq - name) : strlen(name);
			const struct pilot_opt *o = find_long(cmd->opts, name, len);
			if (!o)
				return bad(cmd, "unknown option '%s'", a);
			const char *val = NULL;
			if (takes_value(o)) {
				if (eq)
					val = eq + 1;
				else if (i + 1 < argc)
					val = argv[++i];
				else
					return bad(cmd, "option '--%s' needs a value", o->long_name);
			} else if (eq) {
				return bad(cmd, "option '--%s' takes no value", o->long_name);
			}
			int r = store(cmd, o, opts, val);
			if (r)
				return r;
			continue;
		}
		/* One or more short options: -vq, -oFILE, -o FILE. */
		for (char *s = a + 1; *s; s++) {
			const struct pilot_opt *o = find_short(cmd->opts, *s);
			if (!o) {
				char opt[3] = { '-', *s, 0 };
				return bad(cmd, "unknown option '%s'", opt);
			}
			const char *val = NULL;
			if (takes_value(o)) {
				if (s[1])
					val = s + 1;
				else if (i + 1 < argc)
					val = argv[++i];
				else
					return bad(cmd, "option '--%s' needs a value", o->long_name);
			}
			int r = store(cmd, o, opts, val);
			if (r)
				return r;
			if (val)
				break;
		}
	}
	if (npos < cmd->min_args)
		return bad(cmd, "%s", npos ? "too few arguments" : "missing argument");
	if (cmd->max_args >= 0 && npos > cmd->max_args)
		return bad(cmd, "unexpected argument '%s'", argv[cmd->max_args]);
	*argcp = npos;
	argv[npos] = NULL;
	return 0;
}

void opt_free(const struct pilot_cmd *cmd, void *opts)
{
	for (const struct pilot_opt *o = cmd->opts; o && o->type; o++)
		if (o->type == OPT_LIST)
			free((void *)((struct opt_list *)SLOT(opts, o))->items);
}

void opt_synopsis(const struct pilot_cmd *cmd, FILE *out)
{
	fprintf(out, "pilot %s", cmd->name);
	for (const struct pilot_opt *o = cmd->opts; o && o->type; o++) {
		if (takes_value(o))
			fprintf(out, " [--%s %s]%s", o->long_name, o->arg ? o->arg : "VALUE",
				o->type == OPT_LIST ? "..." : "");
		else
			fprintf(out, " [--%s]", o->long_name);
	}
	if (cmd->args && *cmd->args)
		fprintf(out, " %s", cmd->args);
	fputc('\n', out);
}

void opt_usage_line(const struct pilot_cmd *cmd, FILE *out)
{
	fputs("usage: ", out);
	opt_synopsis(cmd, out);
}

void opt_help(const struct pilot_cmd *cmd, FILE *out)
{
	opt_usage_line(cmd, out);
	fprintf(out, "\n%s\n", cmd->summary);
	if (cmd->description)
		fprintf(out, "\n%s\n", cmd->description);
	fputs("\noptions:\n", out);
	for (const struct pilot_opt *o = cmd->opts; o && o->type; o++) {
		char left[64];
		if (o->short_name)
			snprintf(left, sizeof(left), "-%c, --%s%s%s", o->short_name, o->long_name,
				 takes_value(o) ? " " : "", takes_value(o) ? (o->arg ? o->arg : "VALUE") : "");
		else
			snprintf(left, sizeof(left), "    --%s%s%s", o->long_name, takes_value(o) ? " " : "",
				 takes_value(o) ? (o->arg ? o->arg : "VALUE") : "");
		fprintf(out, "  %-26s %s\n", left, o->help);
	}
	fprintf(out, "  %-26s %s\n", "-h, --help", "show this help");
	fprintf(out, "\nSee 'man pilot-%s' for more.\n", cmd->name);
}
