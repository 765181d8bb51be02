/* The api's entry points: thin wrappers over the transport's ops, conveniences that
 * work for every transport, and choosing the transport from the configuration. */
#include <errno.h>
#include <fcntl.h>

#include "pilot/api.h"
#include "pilot/config.h"

int pilot_api_submit(struct pilot_api *api, const struct pilot_submit_request *req, struct pilot_run *out)
{
	return api->ops->submit(api, req, out);
}

int pilot_api_submit_array(struct pilot_api *api, const struct pilot_array_request *req, struct pilot_array *out)
{
	return api->ops->submit_array(api, req, out);
}

int pilot_api_submit_pipeline(struct pilot_api *api, const struct pilot_pipeline_request *req, struct pilot_array *out)
{
	return api->ops->submit_pipeline(api, req, out);
}

int pilot_api_get_array(struct pilot_api *api, const char *array, struct pilot_array *out)
{
	return api->ops->get_array(api, array, out);
}

int pilot_api_cancel_array(struct pilot_api *api, const char *array, const char *actor, int64_t grace_ms,
			   struct pilot_array *out)
{
	return api->ops->cancel_array(api, array, actor, grace_ms, out);
}

int pilot_api_retry_array(struct pilot_api *api, const char *array, const char *actor, struct pilot_array *out)
{
	return api->ops->retry_array(api, array, actor, out);
}

int pilot_api_get_run(struct pilot_api *api, const char *run, struct pilot_run *out)
{
	return api->ops->get_run(api, run, out);
}

int pilot_api_list_runs(struct pilot_api *api, const struct pilot_run_filter *f, struct pilot_run_list *out)
{
	return api->ops->list_runs(api, f, out);
}

int pilot_api_cancel(struct pilot_api *api, const char *run, const char *actor, int64_t grace_ms,
		     struct pilot_run *out)
{
	return api->ops->cancel(api, run, actor, grace_ms < 0 ? PILOT_CANCEL_GRACE_AGENT : grace_ms, out);
}

int pilot_api_retry(struct pilot_api *api, const char *run, const char *actor, struct pilot_run *out)
{
	return api->ops->retry(api, run, actor, out);
}

int pilot_api_read_logs(struct pilot_api *api, const struct pilot_log_request *req, struct pilot_log_chunk *out)
{
	return api->ops->read_logs(api, req, out);
}

int pilot_api_list_events(struct pilot_api *api, const struct pilot_event_filter *f, int64_t wait_ms,
			  struct pilot_event_list *out)
{
	return api->ops->list_events(api, f, wait_ms, out);
}

int pilot_api_list_artifacts(struct pilot_api *api, const char *run, int attempt, struct pilot_artifact_list *out)
{
	return api->ops->list_artifacts(api, run, attempt, out);
}

int pilot_api_get_artifact(struct pilot_api *api, const char *run, const char *path, int attempt, int *fd,
			   struct pilot_artifact *meta)
{
	return api->ops->get_artifact(api, run, path, attempt, fd, meta);
}

int pilot_api_get_metrics(struct pilot_api *api, const char *run, int attempt, struct pilot_metric_list *out)
{
	return api->ops->get_metrics(api, run, attempt, out);
}

int pilot_api_list_blocklist(struct pilot_api *api, struct pilot_block_list *out)
{
	return api->ops->list_blocklist(api, out);
}

int pilot_api_clear_blocklist(struct pilot_api *api, const char *agent, const char *name, int *cleared)
{
	return api->ops->clear_blocklist(api, agent, name, cleared);
}

int pilot_api_list_agents(struct pilot_api *api, struct pilot_agent_list *out)
{
	return api->ops->list_agents(api, out);
}

int pilot_api_get_agent(struct pilot_api *api, const char *name, struct pilot_agent_info *out)
{
	return api->ops->get_agent(api, name, out);
}

int pilot_api_control_agent(struct pilot_api *api, const char *name, const char *action, bool now, const char *actor,
			    struct pilot_agent_info *out)
{
	return api->ops->control_agent(api, name, action, now, actor, out);
}

int pilot_api_schedule_agent(struct pilot_api *api, const char *name, const char *windows, const char *tz,
			     struct pilot_agent_info *out)
{
	return api->ops->schedule_agent(api, name, windows, tz, out);
}

int pilot_api_status(struct pilot_api *api, struct pilot_status *out)
{
	return api->ops->status(api, out);
}

int pilot_api_bundle_has(struct pilot_api *api, const char *sha256)
{
	return api->ops->bundle_has(api, sha256);
}

int pilot_api_bundle_put(struct pilot_api *api, const char *sha256, int fd)
{
	return api->ops->bundle_put(api, sha256, fd);
}

int pilot_api_bundle_get(struct pilot_api *api, const char *sha256, int *fd)
{
	return api->ops->bundle_get(api, sha256, fd);
}

int pilot_api_register_agent(struct pilot_api *api, const struct pilot_agent_info *info)
{
	return api->ops->register_agent(api, info);
}

int pilot_api_agent_leave(struct pilot_api *api, const char *agent)
{
	return api->ops->agent_leave(api, agent);
}

int pilot_api_claim(struct pilot_api *api, const struct pilot_claim_request *req, struct pilot_claim *out)
{
	return api->ops->claim(api, req, out);
}

int pilot_api_heartbeat(struct pilot_api *api, const char *attempt_id, const char *token,
			struct pilot_heartbeat_reply *reply)
{
	return api->ops->heartbeat(api, attempt_id, token, reply);
}

int pilot_api_append_log(struct pilot_api *api, const char *attempt_id, const char *token, int64_t offset,
			 const void *data, size_t len, int64_t *expected_offset)
{
	return api->ops->append_log(api, attempt_id, token, offset, data, len, expected_offset);
}

int pilot_api_put_artifact(struct pilot_api *api, const char *attempt_id, const char *token, const char *path,
			   int fd)
{
	return api->ops->put_artifact(api, attempt_id, token, path, fd);
}

int pilot_api_put_metrics(struct pilot_api *api, const char *attempt_id, const char *token, int64_t first_index,
			  const struct pilot_metric *items, size_t n, int64_t *expected_index)
{
	return api->ops->put_metrics(api, attempt_id, token, first_index, items, n, expected_index);
}

int pilot_api_finish(struct pilot_api *api, const char *attempt_id, const char *token,
		     const struct pilot_finish *outcome, struct pilot_run *run)
{
	return api->ops->finish(api, attempt_id, token, outcome, run);
}

int pilot_api_reap(struct pilot_api *api)
{
	return api->ops->reap(api);
}

void pilot_api_close(struct pilot_api *api)
{
	if (api)
		api->ops->close(api);
}

static int open_input(const char *file, int *fd)
{
	*fd = open(file, O_RDONLY | O_CLOEXEC);
	if (*fd < 0)
		return pilot_error_errno(errno == ENOENT ? PILOT_ENOTFOUND : PILOT_EIO, errno, "cannot open '%s'", file);
	return 0;
}

int pilot_api_put_artifact_file(struct pilot_api *api, const char *attempt_id, const char *token,
				const char *path, const char *file)
{
	_cleanup_close_ int fd = -1;
	int r = open_input(file, &fd);
	return r < 0 ? r : pilot_api_put_artifact(api, attempt_id, token, path, fd);
}

int pilot_api_bundle_put_file(struct pilot_api *api, const char *sha256, const char *file)
{
	_cleanup_close_ int fd = -1;
	int r = open_input(file, &fd);
	return r < 0 ? r : pilot_api_bundle_put(api, sha256, fd);
}

int pilot_api_open_from_config(const struct pilot_config *cfg, struct pilot_api **out)
{
	const char *server = cfg ? pilot_config_get(cfg, "server", NULL) : NULL;
	if (server && *server) {
		struct pilot_http_options ho = {
			.url = server,
			.token = pilot_config_get(cfg, "token", NULL),
			.cacert = pilot_config_get(cfg, "cacert", NULL),
		};
		return pilot_api_open_http(&ho, out);
	}
	const char *dir = cfg ? pilot_config_get(cfg, "data_dir", NULL) : NULL;
	return pilot_api_open_local(dir, NULL, out);
}
