/* pilot unpack FILE DIR: extract a bundle with the same checks an agent applies to a
 * bundle it did not make. DIR appears complete or not at all: on any refused entry or
 * reached limit the command fails and DIR is left as it was. */
#include <string.h>
#include <unistd.h>

#include "pilot.h"
#include "pilot/bundle.h"
#include "pilot/config.h"

struct opts {
	uint64_t max_size;
};

static const struct pilot_opt options[] = {
	{ OPT_SIZE, 0, "max-size", "SIZE", "largest bundle accepted, uncompressed (default: max_bundle_size, 2GiB)",
	  offsetof(struct opts, max_size), NULL },
	OPT_END_ROW,
};

static int run(struct pilot_ctx *ctx, void *optsp, int argc, char **argv)
{
	struct opts *o = optsp;
	(void)argc;
	struct pilot_extract_limits lim;
	pilot_extract_limits_default(&lim);
	if (o->max_size) {
		lim.max_bytes = o->max_size;
	} else {
		const char *src = NULL;
		const char *v = pilot_config_get(ctx->config, "max_bundle_size", &src);
		if (v && pilot_parse_size(v, &lim.max_bytes) < 0) {
			pilot_error_prefix(PILOT_EINVALID, "invalid max_bundle_size (from %s)", src ? src : "config");
			return cmd_fail(ctx, EXIT_FAIL);
		}
	}
	if (!strcmp(argv[0], "-") && ctx->stdin_tty) {
		cmd_errorf(ctx, "refusing to read a bundle from a terminal; redirect stdin or give FILE");
		return EXIT_FAIL;
	}
	struct pilot_bundle_info info;
	int r = !strcmp(argv[0], "-") ? pilot_bundle_extract_fd(STDIN_FILENO, argv[1], &lim, &info)
				      : pilot_bundle_extract(argv[0], argv[1], &lim, &info);
	if (r < 0)
		return cmd_fail(ctx, EXIT_FAIL);
	if (ctx->verbose) {
		char h[32];
		pilot_format_size(info.data_bytes, h, sizeof(h));
		cmd_notef(ctx, "unpacked %llu files (%s) into '%s', bundle sha256 %s",
			  (unsigned long long)(info.files + info.symlinks), h, argv[1], info.sha256);
	}
	return EXIT_OK;
}

const struct pilot_cmd cmd_unpack = {
	.name = "unpack",
	.summary = "extract a bundle safely into a new directory",
	.args = "FILE DIR",
	.description =
		"Extracts the bundle FILE ('-' for stdin) into DIR, which must not exist or be\n"
		"empty. Refuses, naming the entry, anything that could write outside DIR: absolute\n"
		"paths, '..', symlinks leading outside, hardlinks to outside, devices, fifos, and\n"
		"entries below a symlink; stops at the size, count, path and compression-ratio\n"
		"limits. On failure DIR is left as it was.",
	.opts = options,
	.opts_size = sizeof(struct opts),
	.min_args = 2,
	.max_args = 2,
	.flags = CMD_NEEDS_CONFIG,
	.run = run,
	.complete_args = "file",
	.complete_args_rest = "dir",
};
