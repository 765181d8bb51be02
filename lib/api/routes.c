/* The REST API's routes as one table (design §6, pilot-api(7)): method, path pattern,
 * scopes, body, and the JSON codecs of the request and the answer. The http client
 * builds its calls from it and the server routes requests by it, so a route is
 * declared once. */
#include <string.h>

#include "pilot/api.h"

/* ---- codecs: the model's JSON functions behind one signature ---- */

#define CODEC(type, clear_fn)                                                    \
	static json_t *type##_enc(const void *v)                                 \
	{                                                                        \
		return pilot_##type##_to_json(v);                                \
	}                                                                        \
	static int type##_dec(const json_t *j, void *out)                        \
	{                                                                        \
		return pilot_##type##_from_json(j, out);                         \
	}                                                                        \
	static void type##_clear(void *v)                                        \
	{                                                                        \
		clear_fn(v);                                                     \
	}                                                                        \
	static const struct pilot_codec type##_codec = { type##_enc, type##_dec, type##_clear };

/* For types that own nothing (their strings point into the JSON they came from). */
static void keep(void *v)
{
	(void)v;
}

CODEC(run, pilot_run_clear)
CODEC(run_list, pilot_run_list_clear)
CODEC(event_list, pilot_event_list_clear)
CODEC(artifact_list, pilot_artifact_list_clear)
CODEC(metric_list, pilot_metric_list_clear)
CODEC(agent_list, pilot_agent_list_clear)
CODEC(agent_info, pilot_agent_info_clear)
CODEC(block_list, pilot_block_list_clear)
CODEC(status, pilot_status_clear)
CODEC(submit_request, pilot_submit_request_clear)
CODEC(array_request, pilot_array_request_clear)
CODEC(array, pilot_array_clear)
CODEC(pipeline_request, pilot_pipeline_request_clear)
CODEC(claim_request, pilot_claim_request_clear)
CODEC(claim, pilot_claim_clear)
CODEC(finish, keep)
CODEC(heartbeat_reply, keep)
CODEC(token_record, pilot_token_record_clear)

/* ---- the table ---- */

#define READ PILOT_SCOPE_READ
#define SUBMIT PILOT_SCOPE_SUBMIT
#define CANCEL PILOT_SCOPE_CANCEL
#define AGENT PILOT_SCOPE_AGENT
#define ADMIN PILOT_SCOPE_ADMIN
#define REGISTER PILOT_SCOPE_REGISTER
#define NONE PILOT_BODY_NONE
#define JSON PILOT_BODY_JSON
#define RAW PILOT_BODY_RAW
#define FILE_ PILOT_BODY_FILE
/* Whether the client may send it again after a lost answer. */
#define AGAIN true
#define ONCE false

const struct pilot_route pilot_routes[PILOT_NROUTES] = {
	[PILOT_ROUTE_INDEX] = { "GET", "/", 0, NONE, PILOT_LIMIT_JSON, AGAIN, NULL, NULL },
	/* The dashboard's files: the page fetches everything else with its token. */
	[PILOT_ROUTE_DASHBOARD_FILE] = { "GET", "/ui/{file}", 0, NONE, PILOT_LIMIT_JSON, AGAIN, NULL, NULL },
	[PILOT_ROUTE_HEALTHZ] = { "GET", "/healthz", 0, NONE, PILOT_LIMIT_JSON, AGAIN, NULL, NULL },
	[PILOT_ROUTE_METRICS] = { "GET", "/metrics", 0, NONE, PILOT_LIMIT_JSON, AGAIN, NULL, NULL },
	[PILOT_ROUTE_BUNDLE_HAS] = { "HEAD", "/v1/bundles/{sha256}", SUBMIT | READ | AGENT, NONE, PILOT_LIMIT_JSON, AGAIN,
				     NULL, NULL },
	[PILOT_ROUTE_BUNDLE_GET] = { "GET", "/v1/bundles/{sha256}", SUBMIT | READ | AGENT, NONE, PILOT_LIMIT_JSON, AGAIN,
				     NULL, NULL },
	[PILOT_ROUTE_BUNDLE_PUT] = { "PUT", "/v1/bundles/{sha256}", SUBMIT, FILE_, PILOT_LIMIT_BUNDLE, AGAIN, NULL,
				     NULL },
	/* Idempotent by its Idempotency-Key. */
	[PILOT_ROUTE_SUBMIT] = { "POST", "/v1/runs", SUBMIT, JSON, PILOT_LIMIT_JSON, AGAIN, &submit_request_codec,
				 &run_codec },
	[PILOT_ROUTE_SUBMIT_ARRAY] = { "POST", "/v1/arrays", SUBMIT, JSON, PILOT_LIMIT_JSON, AGAIN, &array_request_codec,
				       &array_codec },
	[PILOT_ROUTE_GET_ARRAY] = { "GET", "/v1/arrays/{id}", READ, NONE, PILOT_LIMIT_JSON, AGAIN, NULL, &array_codec },
	[PILOT_ROUTE_CANCEL_ARRAY] = { "POST", "/v1/arrays/{id}/cancel", CANCEL, JSON, PILOT_LIMIT_JSON, AGAIN, NULL,
				       &array_codec },
	[PILOT_ROUTE_RETRY_ARRAY] = { "POST", "/v1/arrays/{id}/retry", SUBMIT, JSON, PILOT_LIMIT_JSON, ONCE, NULL,
				      &array_codec },
	[PILOT_ROUTE_SUBMIT_PIPELINE] = { "POST", "/v1/pipelines", SUBMIT, JSON, PILOT_LIMIT_JSON, AGAIN,
					  &pipeline_request_codec, &array_codec },
	[PILOT_ROUTE_GET_PIPELINE] = { "GET", "/v1/pipelines/{id}", READ, NONE, PILOT_LIMIT_JSON, AGAIN, NULL,
				       &array_codec },
	[PILOT_ROUTE_CANCEL_PIPELINE] = { "POST", "/v1/pipelines/{id}/cancel", CANCEL, JSON, PILOT_LIMIT_JSON, AGAIN,
					  NULL, &array_codec },
	[PILOT_ROUTE_RETRY_PIPELINE] = { "POST", "/v1/pipelines/{id}/retry", SUBMIT, JSON, PILOT_LIMIT_JSON, ONCE, NULL,
					 &array_codec },
	[PILOT_ROUTE_LIST_RUNS] = { "GET", "/v1/runs", READ, NONE, PILOT_LIMIT_JSON, AGAIN, NULL, &run_list_codec },
	[PILOT_ROUTE_GET_RUN] = { "GET", "/v1/runs/{id}", READ, NONE, PILOT_LIMIT_JSON, AGAIN, NULL, &run_codec },
	[PILOT_ROUTE_READ_LOGS] = { "GET", "/v1/runs/{id}/logs", READ, NONE, PILOT_LIMIT_JSON, AGAIN, NULL, NULL },
	[PILOT_ROUTE_RUN_EVENTS] = { "GET", "/v1/runs/{id}/events", READ, NONE, PILOT_LIMIT_JSON, AGAIN, NULL,
				     &event_list_codec },
	/* A second cancel with the same grace changes nothing. */
	[PILOT_ROUTE_CANCEL] = { "POST", "/v1/runs/{id}/cancel", CANCEL, JSON, PILOT_LIMIT_JSON, AGAIN, NULL,
				 &run_codec },
	/* A retry sent twice would start two runs. */
	[PILOT_ROUTE_RETRY] = { "POST", "/v1/runs/{id}/retry", SUBMIT, JSON, PILOT_LIMIT_JSON, ONCE, NULL, &run_codec },
	/* Agents read them too: a run's artifacts go to the runs that waited for it. */
	[PILOT_ROUTE_LIST_ARTIFACTS] = { "GET", "/v1/runs/{id}/artifacts", READ | AGENT, NONE, PILOT_LIMIT_JSON, AGAIN, NULL,
					 &artifact_list_codec },
	[PILOT_ROUTE_GET_ARTIFACT] = { "GET", "/v1/runs/{id}/artifacts/{path*}", READ | AGENT, NONE, PILOT_LIMIT_JSON, AGAIN,
				       NULL, NULL },
	[PILOT_ROUTE_GET_METRICS] = { "GET", "/v1/runs/{id}/metrics", READ, NONE, PILOT_LIMIT_JSON, AGAIN, NULL,
				      &metric_list_codec },
	[PILOT_ROUTE_EVENTS] = { "GET", "/v1/events", READ, NONE, PILOT_LIMIT_JSON, AGAIN, NULL, &event_list_codec },
	/* A claim answered but lost would strand an attempt until its lease ends: only
	 * calls that never reached the server are repeated. */
	[PILOT_ROUTE_CLAIM] = { "POST", "/v1/claims", AGENT, JSON, PILOT_LIMIT_JSON, ONCE, &claim_request_codec,
				&claim_codec },
	[PILOT_ROUTE_REGISTER_AGENT] = { "POST", "/v1/agents", AGENT, JSON, PILOT_LIMIT_JSON, AGAIN, &agent_info_codec,
					 NULL },
	[PILOT_ROUTE_LIST_AGENTS] = { "GET", "/v1/agents", READ, NONE, PILOT_LIMIT_JSON, AGAIN, NULL,
				      &agent_list_codec },
	[PILOT_ROUTE_LIST_BLOCKLIST] = { "GET", "/v1/blocklist", READ, NONE, PILOT_LIMIT_JSON, AGAIN, NULL,
					 &block_list_codec },
	[PILOT_ROUTE_CLEAR_BLOCKLIST] = { "DELETE", "/v1/blocklist", ADMIN, NONE, PILOT_LIMIT_JSON, AGAIN, NULL, NULL },
	[PILOT_ROUTE_AGENT_LEAVE] = { "DELETE", "/v1/agents/{name}", AGENT, NONE, PILOT_LIMIT_JSON, AGAIN, NULL, NULL },
	[PILOT_ROUTE_GET_AGENT] = { "GET", "/v1/agents/{name}", READ, NONE, PILOT_LIMIT_JSON, AGAIN, NULL,
				    &agent_info_codec },
	/* drain, resume, sleep, wake, shutdown, forget: asking again changes nothing. */
	[PILOT_ROUTE_CONTROL_AGENT] = { "POST", "/v1/agents/{name}/{action}", ADMIN, JSON, PILOT_LIMIT_JSON, AGAIN, NULL,
					&agent_info_codec },
	/* Each call makes a new agent token (revoking the agent's previous one). */
	[PILOT_ROUTE_ENROLL_AGENT] = { "POST", "/v1/agents/enroll", REGISTER, JSON, PILOT_LIMIT_JSON, ONCE, &agent_info_codec,
				       &token_record_codec },
	/* Setting the same schedule again changes nothing. */
	[PILOT_ROUTE_SCHEDULE_AGENT] = { "PUT", "/v1/agents/{name}/sleep-schedule", ADMIN, JSON, PILOT_LIMIT_JSON, AGAIN,
					 NULL, &agent_info_codec },
	[PILOT_ROUTE_HEARTBEAT] = { "POST", "/v1/attempts/{id}/heartbeat", AGENT, NONE, PILOT_LIMIT_JSON, AGAIN, NULL,
				    &heartbeat_reply_codec },
	/* Finishing twice with the same outcome is acknowledged. */
	[PILOT_ROUTE_FINISH] = { "POST", "/v1/attempts/{id}/finish", AGENT, JSON, PILOT_LIMIT_JSON, AGAIN, &finish_codec,
				 &run_codec },
	[PILOT_ROUTE_APPEND_LOG] = { "PUT", "/v1/attempts/{id}/logs", AGENT, RAW, PILOT_LIMIT_LOG, AGAIN, NULL, NULL },
	[PILOT_ROUTE_PUT_ARTIFACT] = { "PUT", "/v1/attempts/{id}/artifacts/{path*}", AGENT, FILE_, PILOT_LIMIT_ARTIFACT,
				       AGAIN, NULL, NULL },
	[PILOT_ROUTE_PUT_METRICS] = { "PUT", "/v1/attempts/{id}/metrics", AGENT, JSON, PILOT_LIMIT_JSON, AGAIN,
				      &metric_list_codec, NULL },
	[PILOT_ROUTE_STATUS] = { "GET", "/v1/status", READ, NONE, PILOT_LIMIT_JSON, AGAIN, NULL, &status_codec },
	[PILOT_ROUTE_WHOAMI] = { "GET", "/v1/whoami", PILOT_SCOPE_ALL, NONE, PILOT_LIMIT_JSON, AGAIN, NULL, NULL },
	/* Each call makes a new token. */
	[PILOT_ROUTE_TOKEN_CREATE] = { "POST", "/v1/tokens", ADMIN, JSON, PILOT_LIMIT_JSON, ONCE, NULL,
				       &token_record_codec },
	[PILOT_ROUTE_TOKEN_LIST] = { "GET", "/v1/tokens", ADMIN, NONE, PILOT_LIMIT_JSON, AGAIN, NULL, NULL },
	[PILOT_ROUTE_TOKEN_REVOKE] = { "DELETE", "/v1/tokens/{id}", ADMIN, NONE, PILOT_LIMIT_JSON, AGAIN, NULL, NULL },
	[PILOT_ROUTE_REAP] = { "POST", "/v1/reap", ADMIN, NONE, PILOT_LIMIT_JSON, AGAIN, NULL, NULL },
};

/* ---- paths ---- */

void pilot_url_escape(struct pilot_buf *b, const char *s, bool keep_slash)
{
	static const char hex[] = "0123456789ABCDEF";
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || *p == '-' ||
		    *p == '.' || *p == '_' || *p == '~' || (keep_slash && *p == '/')) {
			pilot_buf_putc(b, (char)*p);
		} else {
			pilot_buf_putc(b, '%');
			pilot_buf_putc(b, hex[*p >> 4]);
			pilot_buf_putc(b, hex[*p & 15]);
		}
	}
}

void pilot_route_path(enum pilot_route_id id, const char *const params[2], struct pilot_buf *b)
{
	const char *p = pilot_routes[id].pattern;
	int np = 0;
	while (*p) {
		if (*p != '{') {
			pilot_buf_putc(b, *p++);
			continue;
		}
		size_t n = strcspn(p, "}");
		bool rest = n >= 2 && p[n - 1] == '*';
		const char *v = np < 2 && params ? params[np] : NULL;
		np++;
		pilot_url_escape(b, v ? v : "", rest);
		p += n + (p[n] == '}');
	}
}

/* Match path against a pattern of literal segments, "{x}" (one segment) and "{x*}"
 * (the rest, at least one segment). Path parameters are copied into params. */
static bool match(const char *pattern, const char *path, char *params[2])
{
	const char *p = pattern, *u = path;
	int np = 0;
	while (*p && *u) {
		if (*p != '/' || *u != '/')
			return false;
		p++;
		u++;
		size_t pl = strcspn(p, "/"), ul = strcspn(u, "/");
		if (p[0] == '{') {
			bool rest = pl >= 2 && p[pl - 2] == '*';
			size_t take = rest ? strlen(u) : ul;
			if (!take || np >= 2)
				return false;
			params[np++] = pilot_xstrndup(u, take);
			p += pl;
			u += take;
			continue;
		}
		if (pl != ul || strncmp(p, u, pl))
			return false;
		p += pl;
		u += ul;
	}
	return !*p && !*u;
}

void pilot_route_params_free(char *params[2])
{
	for (int i = 0; i < 2; i++) {
		free(params[i]);
		params[i] = NULL;
	}
}

int pilot_route_match(const char *method, const char *path, char *params[2], bool *path_known)
{
	*path_known = false;
	for (int i = 0; i < PILOT_NROUTES; i++) {
		if (!match(pilot_routes[i].pattern, path, params)) {
			pilot_route_params_free(params);
			continue;
		}
		if (!strcmp(pilot_routes[i].method, method))
			return i;
		*path_known = true;
		pilot_route_params_free(params);
	}
	return -1;
}
