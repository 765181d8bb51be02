/* config: the user's config file ($XDG_CONFIG_HOME/pilot/config.yaml) with profiles,
 * the PILOT_* environment variables, and the one precedence rule:
 * flag > environment > profile > built-in default. */
#ifndef PILOT_CONFIG_H
#define PILOT_CONFIG_H

#include <stdbool.h>
#include <stddef.h>

/* Global flags that override everything (NULL when not given). */
struct pilot_config_overrides {
	const char *server;
	const char *profile;
	const char *path;   /* --config FILE */
};

struct pilot_config_entry {
	char *key;
	char *value;
};

struct pilot_config_profile {
	char *name;
	struct pilot_config_entry *entries;
	size_t n;
};

struct pilot_config {
	char *path;          /* the file in use (it may not exist) */
	bool exists;
	char *current_profile; /* as written in the file (NULL when absent) */
	struct pilot_config_profile *profiles;
	size_t nprofiles;
	/* Effective profile name: --profile > PILOT_PROFILE > current_profile > "default". */
	char *profile;
	char *server_flag;   /* copies of the overrides */
};

/* The keys a profile may hold, each with its PILOT_<KEY> environment variable and its
 * default (NULL when none). */
struct pilot_config_key {
	const char *name;
	const char *env;
	const char *def;
	const char *help;
	bool secret;  /* not printed by 'config list' unless asked */
};
extern const struct pilot_config_key pilot_config_keys[];
extern const size_t pilot_config_nkeys;
const struct pilot_config_key *pilot_config_key_find(const char *name);

/* The default file path: $XDG_CONFIG_HOME/pilot/config.yaml. Caller frees. */
char *pilot_config_default_path(void);

/* Load the file (a missing file is an empty config). Refuses a file holding a token
 * that group or others can read, naming the file, its mode and `chmod 600`. */
int pilot_config_load(const struct pilot_config_overrides *ov, struct pilot_config **out);
void pilot_config_free(struct pilot_config *cfg);

/* The effective value of key: --server flag (for "server") > PILOT_<KEY> > the effective
 * profile > default. NULL when unset everywhere. *source (optional) gets "flag", "env",
 * "profile" or "default". */
const char *pilot_config_get(const struct pilot_config *cfg, const char *key, const char **source);
/* The value stored in one profile of the file only (NULL when absent). */
const char *pilot_config_profile_get(const struct pilot_config *cfg, const char *profile, const char *key);

/* Change the in-memory file contents; value NULL unsets. Then save. */
int pilot_config_set(struct pilot_config *cfg, const char *profile, const char *key, const char *value);
int pilot_config_set_current(struct pilot_config *cfg, const char *profile);
/* Write atomically with mode 0600, creating the directory (0700) if needed. */
int pilot_config_save(const struct pilot_config *cfg);

#endif
