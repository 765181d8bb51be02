/* Run-id completion for pilot __complete: the most recent run ids with the prefix,
 * from the configured server or the local store. Completion must stay quiet and
 * quick: any failure offers nothing, and a missing local store is not created. */
#include <string.h>
#include <sys/stat.h>

#include "pilot.h"
#include "pilot/api.h"
#include "pilot/config.h"

void pilot_complete_runs(const char *prefix)
{
	struct pilot_config *cfg = NULL;
	if (pilot_config_load(NULL, &cfg) < 0)
		return;
	const char *server = pilot_config_get(cfg, "server", NULL);
	if (!server || !*server) {
		const char *dd = pilot_config_get(cfg, "data_dir", NULL);
		_cleanup_free_ char *dir = dd && *dd ? pilot_xstrdup(dd) : pilot_data_home();
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
	/* Newest first; a prefix longer than a bare letter is most likely recent too. */
	struct pilot_run_filter f = { .limit = 200 };
	struct pilot_run_list l = { 0 };
	if (pilot_api_list_runs(api, &f, &l) < 0)
		return;
	for (size_t i = 0; i < l.n; i++)
		if (pilot_str_has_prefix(l.items[i].id, prefix ? prefix : ""))
			puts(l.items[i].id);
	pilot_run_list_clear(&l);
}
