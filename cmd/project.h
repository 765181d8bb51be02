/* cmd/project.c: from a project directory to what a run is made of, for pilot run and
 * pilot submit. */
#ifndef PILOT_CMD_PROJECT_H
#define PILOT_CMD_PROJECT_H

#include "pilot.h"
#include "pilot/api.h"
#include "pilot/spec.h"

/* KEY=VALUE flags as a compact JSON object; NULL when there are none, or on a bad pair
 * (then with the error set, naming the flag what). env_names checks the keys as
 * environment variable names. */
char *project_pairs_json(const struct opt_list *l, const char *what, bool env_names);
/* The values of the secrets the spec names, from pilot's environment (a missing one is
 * an error naming it). */
int project_secrets(const struct pilot_spec *spec, struct pilot_kvs *out);
/* The spec's retry policy as a run request carries it. */
void project_retry_policy(const struct pilot_spec *spec, struct pilot_retry_policy *out);
/* Pack the project (the spec's ignore list, config max_bundle_size) and put the bundle
 * unless the api has it; progress bars on a terminal. */
int project_put_bundle(struct pilot_ctx *ctx, struct pilot_api *api, const char *project, const struct pilot_spec *spec,
		       char sha256[65]);

#endif
