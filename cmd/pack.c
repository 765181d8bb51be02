/* pilot pack [DIR]: pack a project directory into the deterministic bundle that submit
 * uploads, print its sha256 and size, and with -o write it; with --list show what would
 * go in. Without -o nothing is written: the hash alone tells whether a project changed. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "pilot.h"
#include "pilot/bundle.h"
#include "pilot/config.h"
#include "pilot/spec.h"
#include "pilot/term.h"

struct opts {
	const char *out;
	bool list;
	const char *output;
	uint64_t max_size;
	bool skip_outside_links;
	struct opt_list ignore;
};

static const struct pilot_opt options[] = {
	{ OPT_STRING, 'o', "out", "FILE", "write the bundle to FILE ('-' for stdout)", offsetof(struct opts, out),
	  "file" },
	{ OPT_FLAG, 0, "list", NULL, "list what would go in the bundle, with sizes, and write nothing",
	  offsetof(struct opts, list), NULL },
	{ OPT_STRING, 0, "output", "FORMAT", "text (default) or json", offsetof(struct opts, output), "text json" },
	{ OPT_SIZE, 0, "max-size", "SIZE", "largest bundle, uncompressed (default: max_bundle_size, 2GiB)",
	  offsetof(struct opts, max_size), NULL },
	{ OPT_FLAG, 0, "skip-outside-links", NULL, "leave out symlinks that point outside DIR instead of failing",
	  offsetof(struct opts, skip_outside_links), NULL },
	{ OPT_LIST, 0, "ignore", "PATTERN", "also leave out what PATTERN matches (gitignore syntax, from DIR)",
	  offsetof(struct opts, ignore), NULL },
	OPT_END_ROW,
};

struct patterns {
	char **v;
	size_t n;
};

static void patterns_add(struct patterns *p, char *s)
{
	p->v = pilot_xrealloc(p->v, (p->n + 1) * sizeof(*p->v));
	p->v[p->n++] = s;
}

static void patterns_free(struct patterns *p)
{
	for (size_t i = 0; i < p->n; i++)
		free(p->v[i]);
	free(p->v);
}

/* The `ignore:` list of DIR's pilot.yaml, one gitignore pattern per item, goes before the
 * --ignore patterns (the last pattern that matches decides, so the command line wins).
 * A directory without a pilot.yaml has none; a spec that does not load is an error, as
 * submit and run would refuse it too. */
static int spec_ignore_patterns(const char *dir, struct patterns *out)
{
	_cleanup_free_ char *path = pilot_path_join(dir, "pilot.yaml");
	if (access(path, F_OK) != 0)
		return 0;
	struct pilot_spec *spec = NULL;
	int r = pilot_spec_load_file(path, NULL, &spec);
	if (r < 0)
		return pilot_error_prefix(r, "cannot read the ignore list of '%s'", path);
	for (size_t i = 0; i < spec->nignore; i++)
		patterns_add(out, pilot_xstrdup(spec->ignore[i]));
	pilot_spec_free(spec);
	return 0;
}

/* A gitignore pattern matching exactly the path rel (anchored at the root). */
static char *literal_pattern(const char *rel)
{
	struct pilot_buf b = PILOT_BUF_INIT;
	pilot_buf_putc(&b, '/');
	for (const char *c = rel; *c; c++) {
		if (strchr("*?[\\", *c) || (*c == ' ' && !c[1]))
			pilot_buf_putc(&b, '\\');
		pilot_buf_putc(&b, *c);
	}
	return pilot_buf_steal(&b);
}

/* The bundle must not swallow itself: when FILE (or its temporary) lies inside DIR, it
 * is left out. */
static void exclude_output(const char *dir, const char *file, struct patterns *p)
{
	char rdir[PATH_MAX], rparent[PATH_MAX];
	_cleanup_free_ char *copy = pilot_xstrdup(file);
	char *slash = strrchr(copy, '/');
	const char *base = slash ? slash + 1 : copy;
	const char *parent = slash ? (slash == copy ? "/" : copy) : ".";
	if (slash && slash != copy)
		*slash = '\0';
	if (!realpath(dir, rdir) || !realpath(parent, rparent))
		return;
	size_t l = strlen(rdir);
	const char *rel;
	if (!strcmp(rparent, rdir))
		rel = "";
	else if (!strncmp(rparent, rdir, l) && (rparent[l] == '/' || l == 1))
		rel = rparent + l + (l == 1 ? 0 : 1);
	else
		return;
	_cleanup_free_ char *path = *rel ? pilot_xasprintf("%s/%s", rel, base) : pilot_xstrdup(base);
	patterns_add(p, literal_pattern(path));
	/* The temporary the bundle is written to before the rename. */
	struct pilot_buf t = PILOT_BUF_INIT;
	char *lit = literal_pattern(path);
	pilot_buf_puts(&t, lit);
	free(lit);
	pilot_buf_puts(&t, ".pilot-tmp-*");
	patterns_add(p, pilot_buf_steal(&t));
}

struct progress {
	struct pilot_ctx *ctx;
	bool shown;
};

static void draw_progress(const struct pilot_pack_progress *p, void *ud)
{
	struct progress *pr = ud;
	if (!pr->ctx->stderr_tty || pr->ctx->quiet)
		return;
	if (p->done) {
		if (pr->shown)
			fputs("\r\033[K", stderr);
		return;
	}
	/* Quick packs stay silent. */
	if (p->elapsed_ms < 500)
		return;
	_cleanup_buf_ struct pilot_buf line = PILOT_BUF_INIT;
	char label[32] = "scanning";
	if (p->phase == PILOT_PACK_WRITING)
		snprintf(label, sizeof(label), "packing %3u%%",
			 p->bytes_total ? (unsigned)(p->bytes * 100 / p->bytes_total) : 100);
	pilot_progress_line(label, p->files, "files", p->bytes, p->elapsed_ms, &line);
	fprintf(stderr, "\r%s\033[K", pilot_buf_str(&line));
	fflush(stderr);
	pr->shown = true;
}

static json_t *jstr(const char *s)
{
	json_t *j = json_string(s);
	if (j)
		return j;
	/* Not UTF-8: keep the ASCII, mark the rest. */
	_cleanup_free_ char *c = pilot_xstrdup(s);
	for (char *p = c; *p; p++)
		if ((unsigned char)*p >= 0x80)
			*p = '?';
	return json_string(c);
}

struct lister {
	bool json;
	json_t *entries;
};

static int list_one(const struct pilot_bundle_entry *e, void *ud)
{
	struct lister *l = ud;
	if (l->json) {
		char mode[8];
		snprintf(mode, sizeof(mode), "%04o", e->mode);
		json_t *o = json_pack("{s:o, s:s, s:I, s:s}", "path", jstr(e->path), "type",
				      pilot_bundle_type_name(e->type), "size", (json_int_t)e->size, "mode", mode);
		if (e->target)
			json_object_set_new(o, "target", jstr(e->target));
		json_array_append_new(l->entries, o);
		return 0;
	}
	if (e->type == PILOT_BUNDLE_DIR)
		printf("%04o  %12s  %s/\n", e->mode, "-", e->path);
	else if (e->type == PILOT_BUNDLE_SYMLINK)
		printf("%04o  %12s  %s -> %s\n", e->mode, "-", e->path, e->target);
	else
		printf("%04o  %12llu  %s\n", e->mode, (unsigned long long)e->size, e->path);
	return ferror(stdout) && errno == EPIPE ? 1 : 0;
}

static json_t *info_json(const struct pilot_bundle_info *in)
{
	return json_pack("{s:I, s:I, s:I, s:I, s:I}", "uncompressed_size", (json_int_t)in->uncompressed_size, "files",
			 (json_int_t)in->files, "dirs", (json_int_t)in->dirs, "symlinks", (json_int_t)in->symlinks,
			 "data_bytes", (json_int_t)in->data_bytes);
}

static int max_size_of(struct pilot_ctx *ctx, const struct opts *o, uint64_t *max)
{
	if (o->max_size) {
		*max = o->max_size;
		return 0;
	}
	const char *src = NULL;
	const char *v = pilot_config_get(ctx->config, "max_bundle_size", &src);
	*max = PILOT_BUNDLE_DEFAULT_MAX_SIZE;
	if (v && pilot_parse_size(v, max) < 0)
		return pilot_error_prefix(PILOT_EINVALID, "invalid max_bundle_size (from %s)", src ? src : "config");
	if (!*max)
		return pilot_error_set(PILOT_EINVALID, "invalid max_bundle_size (from %s): must be more than 0",
				       src ? src : "config");
	return 0;
}

static int do_list(struct pilot_ctx *ctx, const struct pilot_pack_opts *po, bool json)
{
	struct lister l = { .json = json, .entries = json ? json_array() : NULL };
	struct pilot_bundle_info info;
	int r = pilot_bundle_list(po, list_one, &l, &info);
	if (r < 0) {
		json_decref(l.entries);
		return cmd_fail(ctx, EXIT_FAIL);
	}
	if (json) {
		json_t *j = info_json(&info);
		json_object_set_new(j, "entries", l.entries);
		json_dumpf(j, stdout, JSON_INDENT(2));
		putchar('\n');
		json_decref(j);
	} else {
		char h[32];
		pilot_format_size(info.uncompressed_size, h, sizeof(h));
		cmd_notef(ctx, "%llu files, %llu directories, %llu symlinks: %s uncompressed",
			  (unsigned long long)info.files, (unsigned long long)info.dirs, (unsigned long long)info.symlinks,
			  h);
	}
	if (info.uncompressed_size > po->max_size) {
		char h[32];
		pilot_format_size(po->max_size, h, sizeof(h));
		cmd_warnf(ctx, "this is more than max_bundle_size (%s): 'pilot pack' would refuse it", h);
	}
	return EXIT_OK;
}

static int run(struct pilot_ctx *ctx, void *optsp, int argc, char **argv)
{
	struct opts *o = optsp;
	const char *dir = argc ? argv[0] : ".";
	bool json = false;
	if (o->output && !strcmp(o->output, "json"))
		json = true;
	else if (o->output && strcmp(o->output, "text"))
		return cmd_usage_error(ctx, "unknown output format '%s' (expected text or json)", o->output);
	if (o->list && o->out)
		return cmd_usage_error(ctx, "--list writes nothing; leave out -o");
	bool to_stdout = o->out && !strcmp(o->out, "-");
	if (to_stdout && json)
		return cmd_usage_error(ctx, "-o - sends the bundle to stdout; --output json cannot go there too");
	if (to_stdout && ctx->stdout_tty) {
		cmd_errorf(ctx, "refusing to write a bundle to a terminal; redirect stdout or give -o FILE");
		return EXIT_FAIL;
	}

	struct pilot_pack_opts po = { .dir = dir, .skip_outside_links = o->skip_outside_links };
	if (max_size_of(ctx, o, &po.max_size) < 0)
		return cmd_fail(ctx, EXIT_FAIL);
	struct patterns pats = { 0 };
	if (spec_ignore_patterns(dir, &pats) < 0) {
		patterns_free(&pats);
		return cmd_fail(ctx, EXIT_FAIL);
	}
	for (size_t i = 0; i < o->ignore.n; i++)
		patterns_add(&pats, pilot_xstrdup(o->ignore.items[i]));
	if (o->out && !to_stdout)
		exclude_output(dir, o->out, &pats);
	po.extra_ignore = (const char *const *)pats.v;
	po.n_extra_ignore = pats.n;

	int status = EXIT_OK;
	if (o->list) {
		status = do_list(ctx, &po, json);
		patterns_free(&pats);
		return status;
	}

	struct progress pr = { .ctx = ctx };
	po.progress = draw_progress;
	po.userdata = &pr;
	_cleanup_free_ char *tmp = NULL;
	int fd = -1;
	if (to_stdout) {
		fd = STDOUT_FILENO;
	} else if (o->out) {
		char rnd[13];
		pilot_random_hex(rnd, 6);
		tmp = pilot_xasprintf("%s.pilot-tmp-%s", o->out, rnd);
		fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
		if (fd < 0) {
			cmd_errorf(ctx, "cannot write '%s': %s", o->out, strerror(errno));
			patterns_free(&pats);
			return EXIT_FAIL;
		}
	}
	struct pilot_bundle_info info;
	int r = pilot_bundle_pack(&po, fd, &info);
	patterns_free(&pats);
	if (tmp) {
		if (r >= 0 && (fsync(fd) < 0 || close(fd) < 0))
			r = pilot_error_errno(PILOT_EIO, errno, "cannot write '%s'", o->out);
		else if (r < 0)
			close(fd);
		if (r >= 0 && rename(tmp, o->out) < 0)
			r = pilot_error_errno(PILOT_EIO, errno, "cannot write '%s'", o->out);
		if (r < 0)
			unlink(tmp);
	}
	if (r < 0)
		return cmd_fail(ctx, EXIT_FAIL);

	char csz[32], usz[32];
	pilot_format_size(info.compressed_size, csz, sizeof(csz));
	pilot_format_size(info.uncompressed_size, usz, sizeof(usz));
	if (json) {
		json_t *j = info_json(&info);
		json_object_set_new(j, "sha256", json_string(info.sha256));
		json_object_set_new(j, "size", json_integer((json_int_t)info.compressed_size));
		json_object_set_new(j, "path", o->out ? jstr(o->out) : json_null());
		json_dumpf(j, stdout, JSON_INDENT(2) | JSON_SORT_KEYS);
		putchar('\n');
		json_decref(j);
	} else if (to_stdout) {
		cmd_notef(ctx, "sha256 %s, %s (%s uncompressed, %llu files)", info.sha256, csz, usz,
			  (unsigned long long)(info.files + info.symlinks));
	} else if (ctx->stdout_tty) {
		printf("%s  %s  (%s uncompressed, %llu files)\n", info.sha256, csz, usz,
		       (unsigned long long)(info.files + info.symlinks));
		if (!o->out)
			cmd_notef(ctx, "nothing written; -o FILE writes the bundle");
	} else {
		printf("%s\n", info.sha256);
	}
	return status;
}

const struct pilot_cmd cmd_pack = {
	.name = "pack",
	.summary = "pack a project directory into a bundle and print its sha256",
	.args = "[DIR]",
	.description =
		"Packs DIR (default: the current directory) the way 'pilot submit' does: files not\n"
		"ignored by .pilotignore (else .gitignore files), --ignore and the built-in rules\n"
		"(.git, .pilot, .env), as a deterministic tar.gz: the same tree always gives the\n"
		"same bytes and sha256. Prints the sha256 (and, on a terminal, the sizes); writes\n"
		"the bundle only with -o.",
	.opts = options,
	.opts_size = sizeof(struct opts),
	.min_args = 0,
	.max_args = 1,
	.flags = CMD_NEEDS_CONFIG,
	.run = run,
	.complete_args = "dir",
};
