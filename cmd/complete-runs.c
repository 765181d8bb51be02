/* Run-id completion for pilot __complete: the run ids starting with the word, newest
 * first, from the configured server or the local store. Completion must stay quiet and
 * quick: any failure offers nothing, a missing local store is not created, and a server
 * gets one short try (no retries, a 1 s connect and 2 s total timeout) rather than the
 * patient defaults of the other commands. */
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "runs.h"
#include "pilot/config.h"

#define COMPLETE_MAX 100

static void no_log(enum pilot_log_level level, const char *msg, void *userdata)
{
	(void)level;
	(void)msg;
	(void)userdata;
}

void pilot_complete_runs(const char *prefix)
{
	if (!prefix)
		prefix = "";
	/* Only something that can start a run id; anything else matches nothing. */
	if (*prefix && !pilot_id_valid(prefix, true))
		return;
	pilot_log_set_handler(no_log, NULL, PILOT_LOG_ERROR);
	setenv("PILOT_HTTP_RETRIES", "0", 1);
	setenv("PILOT_HTTP_CONNECT_TIMEOUT", "1s", 1);
	setenv("PILOT_HTTP_TIMEOUT", "2s", 1);
	struct pilot_config *cfg = NULL;
	if (pilot_config_load(NULL, &cfg) < 0)
		return;
	const char *server = pilot_config_get(cfg, "server", NULL);
	if (!server || !*server) {
		const char *dd = pilot_config_get(cfg, "data_dir", NULL);
		const char *env = getenv("PILOT_DATA_DIR");
		_cleanup_free_ char *dir = dd && *dd ? pilot_xstrdup(dd) : env && *env ? pilot_xstrdup(env) : pilot_data_home();
		_cleanup_free_ char *db = pilot_path_join(dir, "pilot.db");
		struct stat st;
		if (stat(db, &st) < 0) {
			pilot_config_free(cfg);
			return;
		}
	}
	_cleanup_api_ struct pilot_api *api = NULL;
	int r = pilot_api_open_from_config(cfg, &api);
	pilot_config_free(cfg);
	if (r < 0)
		return;
	/* The newest runs whose id starts with the prefix: a keyset page starting just
	 * above the prefix's range, read while the ids still match. */
	char after[PILOT_ID_SIZE] = "";
	if (*prefix && !runref_prefix_cursor(prefix, after))
		return;
	struct pilot_run_filter f = { .after = after[0] ? after : NULL, .limit = COMPLETE_MAX };
	struct pilot_run_list l = { 0 };
	if (pilot_api_list_runs(api, &f, &l) < 0)
		return;
	for (size_t i = 0; i < l.n && pilot_str_has_prefix(l.items[i].id, prefix); i++)
		puts(l.items[i].id);
	pilot_run_list_clear(&l);
}
