/* pilot version: pilot's version; with -v, the versions of every linked library. */
#include "pilot.h"
#include "pilot/version.h"

struct opts {
	int verbose;
};

static const struct pilot_opt options[] = {
	{ OPT_COUNT, 'v', "verbose", NULL, "also print the versions of the linked libraries",
	  offsetof(struct opts, verbose), NULL },
	OPT_END_ROW,
};

static int run(struct pilot_ctx *ctx, void *opts, int argc, char **argv)
{
	struct opts *o = opts;
	(void)argc;
	(void)argv;
	printf("pilot %s\n", pilot_version());
	if (o->verbose || ctx->verbose) {
		_cleanup_buf_ struct pilot_buf b = PILOT_BUF_INIT;
		pilot_library_versions(&b);
		fputs(pilot_buf_str(&b), stdout);
	}
	return EXIT_OK;
}

const struct pilot_cmd cmd_version = {
	.name = "version",
	.summary = "print pilot's version",
	.opts = options,
	.opts_size = sizeof(struct opts),
	.min_args = 0,
	.max_args = 0,
	.run = run,
};
