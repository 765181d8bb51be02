/* pilot config get|set|unset|list|use: read and edit the user config file. Writes are
 * atomic and leave the file with mode 0600. */
#include <string.h>

#include "pilot.h"
#include "pilot/config.h"

struct opts {
	const char *profile;
	bool show_secrets;
};

static const struct pilot_opt options[] = {
	{ OPT_STRING, 0, "profile", "NAME", "the profile to read or change (default: the current one)",
	  offsetof(struct opts, profile), NULL },
	{ OPT_FLAG, 0, "show-secrets", NULL, "list: print tokens instead of '***'",
	  offsetof(struct opts, show_secrets), NULL },
	OPT_END_ROW,
};

static int check_key(const char *key)
{
	if (pilot_config_key_find(key))
		return 0;
	const char *names[32];
	for (size_t i = 0; i < pilot_config_nkeys && i < ARRAY_SIZE(names); i++)
		names[i] = pilot_config_keys[i].name;
	const char *s = pilot_suggest(key, names, pilot_config_nkeys);
	return pilot_error_set(PILOT_EINVALID, "unknown config key '%s'%s%s%s", key, s ? " (did you mean '" : "",
			       s ? s : "", s ? "'?)" : "");
}

static int run(struct pilot_ctx *ctx, void *optsp, int argc, char **argv)
{
	struct opts *o = optsp;
	struct pilot_config *cfg = ctx->config;
	const char *verb = argv[0];
	/* With --profile the command reads that profile's own value; otherwise the
	 * effective one, with every source considered. */
	const char *profile = o->profile ? o->profile : cfg->profile;

	if (!strcmp(verb, "get")) {
		if (argc != 2)
			return cmd_usage_error(ctx, "'get' takes one KEY");
		if (check_key(argv[1]) < 0)
			return cmd_fail(ctx, EXIT_FAIL);
		const char *v = o->profile ? pilot_config_profile_get(cfg, o->profile, argv[1])
					   : pilot_config_get(cfg, argv[1], NULL);
		if (!v)
			return EXIT_FAIL;
		puts(v);
		return EXIT_OK;
	}
	if (!strcmp(verb, "set") || !strcmp(verb, "unset")) {
		bool set = verb[0] == 's';
		if (argc != (set ? 3 : 2))
			return cmd_usage_error(ctx, set ? "'set' takes KEY VALUE" : "'unset' takes one KEY");
		if (check_key(argv[1]) < 0)
			return cmd_fail(ctx, EXIT_FAIL);
		if (pilot_config_set(cfg, profile, argv[1], set ? argv[2] : NULL) < 0 ||
		    pilot_config_save(cfg) < 0)
			return cmd_fail(ctx, EXIT_FAIL);
		return EXIT_OK;
	}
	if (!strcmp(verb, "use")) {
		if (argc != 2)
			return cmd_usage_error(ctx, "'use' takes one PROFILE");
		pilot_config_set_current(cfg, argv[1]);
		if (!pilot_config_profile_get(cfg, argv[1], "server") && strcmp(argv[1], "default"))
			cmd_notef(ctx, "profile '%s' has no settings yet; add them with 'pilot config set --profile %s KEY VALUE'",
				  argv[1], argv[1]);
		return pilot_config_save(cfg) < 0 ? cmd_fail(ctx, EXIT_FAIL) : EXIT_OK;
	}
	if (!strcmp(verb, "list")) {
		if (argc != 1)
			return cmd_usage_error(ctx, "'list' takes no arguments");
		for (size_t i = 0; i < pilot_config_nkeys; i++) {
			const struct pilot_config_key *k = &pilot_config_keys[i];
			const char *src = "profile";
			const char *v = o->profile ? pilot_config_profile_get(cfg, o->profile, k->name)
						   : pilot_config_get(cfg, k->name, &src);
			if (!v)
				continue;
			if (k->secret && !o->show_secrets)
				v = "***";
			if (ctx->stdout_tty)
				printf("%-16s %-24s (%s)\n", k->name, v, src);
			else
				printf("%s=%s\n", k->name, v);
		}
		return EXIT_OK;
	}
	return cmd_usage_error(ctx, "unknown action '%s' (expected get, set, unset, list or use)", verb);
}

const struct pilot_cmd cmd_config = {
	.name = "config",
	.summary = "read and change settings in the config file",
	.args = "get KEY | set KEY VALUE | unset KEY | list | use PROFILE",
	.description =
		"Settings are looked up as: command-line flag, then PILOT_<KEY> in the environment,\n"
		"then the profile (--profile, PILOT_PROFILE, current_profile, or \"default\"), then\n"
		"the built-in default. Keys: cacert, data_dir, max_bundle_size, network, pull,\n"
		"runtime, server, token. The file is $XDG_CONFIG_HOME/pilot/config.yaml.",
	.opts = options,
	.opts_size = sizeof(struct opts),
	.min_args = 1,
	.max_args = 3,
	.flags = CMD_NEEDS_CONFIG,
	.run = run,
	.complete_args = "get set unset list use",
	.complete_args_rest = "cacert data_dir max_bundle_size network pull runtime server token",
};
