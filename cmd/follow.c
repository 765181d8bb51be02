/* Following a run: its log bytes across attempts (pilot logs -f, pilot submit -f) and
 * its end (pilot submit --wait). The waiting is done by the api's long-polls (read_logs
 * and list_events with a wait), so a follower over http costs the server a suspended
 * request, not a stream of polls. A server that goes away (restart, network) is retried
 * with backoff, and reading resumes at the byte offset already written: the bytes
 * come out exactly once, in order. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "runs.h"

#define LONG_POLL_MS 30000

bool api_error_transient(int code)
{
	return code == PILOT_EUNAVAILABLE || code == PILOT_EIO;
}

void retry_sleep(int n)
{
	int64_t ms = 250LL << (n < 5 ? n : 5);
	if (ms > 5000)
		ms = 5000;
	struct timespec ts = { (time_t)(ms / 1000), (long)(ms % 1000) * 1000000L };
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

bool should_retry(struct pilot_ctx *ctx, struct retry_state *rs, int code)
{
	if (!api_error_transient(code))
		return false;
	int64_t now = pilot_mono_ms();
	if (!rs->failures) {
		rs->since = now;
		cmd_warnf(ctx, "%s; retrying", pilot_error_last());
	} else if (now - rs->since > FOLLOW_GIVE_UP_MS) {
		return false;
	}
	retry_sleep(rs->failures++);
	return true;
}

void retry_ok(struct pilot_ctx *ctx, struct retry_state *rs)
{
	if (rs->failures)
		cmd_notef(ctx, "reconnected");
	rs->failures = 0;
}

/* ---- why a run stays queued ---- */

void queued_note_init(struct queued_note *qn)
{
	const char *env = getenv("PILOT_QUEUED_NOTE");
	int64_t after = QUEUED_NOTE_MS;
	if (env && *env && (pilot_parse_duration(env, &after) < 0 || after < 0))
		after = QUEUED_NOTE_MS;
	qn->at = pilot_mono_ms() + after;
	qn->said[0] = '\0';
}

int64_t queued_note_wait(const struct queued_note *qn, int64_t wait_ms)
{
	int64_t left = qn->at - pilot_mono_ms();
	if (left < 0)
		return wait_ms;
	return left < wait_ms ? left + 1 : wait_ms;
}

/* "k=v,k=v" of a label list. */
static void kvs_text(const struct pilot_kvs *kv, struct pilot_buf *b)
{
	for (size_t i = 0; i < kv->n; i++)
		pilot_buf_printf(b, "%s%s=%s", i ? "," : "", kv->items[i].key, kv->items[i].value);
}

/* "run R is waiting for 2 runs to end: r1 (running), r2 (queued)": the runs it waits
 * for that have not ended. */
static void waiting_note(struct pilot_api *api, const struct pilot_run *run, struct pilot_buf *msg)
{
	pilot_buf_printf(msg, "run %s is waiting for %d run%s to end:", run->id, run->needs_left,
			 run->needs_left == 1 ? "" : "s");
	size_t shown = 0;
	for (size_t i = 0; i < run->nneeds && shown < 5; i++) {
		struct pilot_run need = { 0 };
		if (pilot_api_get_run(api, run->needs[i].run, &need) < 0) {
			pilot_error_clear();
			continue;
		}
		if (!pilot_run_state_terminal(need.state))
			pilot_buf_printf(msg, "%s %s (%s)", shown++ ? "," : "", need.id, pilot_run_state_name(need.state));
		pilot_run_clear(&need);
	}
	if (run->needs_left > (int)shown && shown)
		pilot_buf_puts(msg, ", ...");
}

void queued_note(struct pilot_ctx *ctx, struct pilot_api *api, const char *run_id, struct queued_note *qn)
{
	if (pilot_mono_ms() < qn->at)
		return;
	struct pilot_run run = { 0 };
	struct pilot_agent_list l = { 0 };
	_cleanup_buf_ struct pilot_buf others = PILOT_BUF_INIT, req = PILOT_BUF_INIT, msg = PILOT_BUF_INIT;
	bool got = pilot_api_get_run(api, run_id, &run) == 0;
	if (got && run.state == PILOT_RUN_WAITING && run.needs_left > 0) {
		waiting_note(api, &run, &msg);
		goto say;
	}
	if (got && run.state == PILOT_RUN_WAITING && run.slot_wait) {
		pilot_buf_printf(&msg, "run %s is waiting for a slot: concurrency group %s has %d run%s going", run.id,
				 run.concurrency_group ? run.concurrency_group : "?", run.concurrency_max,
				 run.concurrency_max == 1 ? "" : "s");
		goto say;
	}
	if (!got || run.state != PILOT_RUN_QUEUED || pilot_api_list_agents(api, &l) < 0) {
		pilot_error_clear();
		pilot_run_clear(&run);
		return;
	}
	size_t live = 0, match = 0, idle = 0, told = 0, shown = 0;
	for (size_t i = 0; i < l.n; i++) {
		const struct pilot_agent_info *a = &l.items[i];
		if (a->state == PILOT_AGENT_OFFLINE || a->state == PILOT_AGENT_LOST)
			continue;
		live++;
		if (pilot_kvs_satisfies(&a->labels, &run.requires)) {
			match++;
			idle += a->state == PILOT_AGENT_IDLE;
			told += a->control != PILOT_CONTROL_NONE;
		} else if (shown++ < 5) {
			pilot_buf_printf(&others, "%s%s (", shown > 1 ? ", " : "", a->name);
			kvs_text(&a->labels, &others);
			pilot_buf_putc(&others, ')');
		}
	}
	kvs_text(&run.requires, &req);
	pilot_buf_putc(&others, '\0');
	pilot_buf_putc(&req, '\0');
	if (!live)
		pilot_buf_printf(&msg, "run %s is queued: no agent is connected to take it (start one with 'pilot agent')",
				 run.id);
	else if (!match)
		pilot_buf_printf(&msg, "run %s is queued: no connected agent matches requires %s (%zu agent%s: %s%s)",
				 run.id, req.data, live, live == 1 ? "" : "s", others.data, shown > 5 ? ", ..." : "");
	else if (told == match)
		pilot_buf_printf(&msg, "run %s is queued: the %zu agent%s that could take it %s drained, asleep or "
				       "shutting down (pilot agents resume NAME)", run.id, match, match == 1 ? "" : "s",
				 match == 1 ? "is" : "are");
	else if (!idle)
		pilot_buf_printf(&msg, "run %s is queued: the %zu agent%s that can take it %s busy", run.id, match,
				 match == 1 ? "" : "s", match == 1 ? "is" : "are");
say:
	/* Said once, and again only when the reason changes. */
	if (msg.len && strncmp(msg.data, qn->said, sizeof(qn->said) - 1)) {
		cmd_notef(ctx, "%s", msg.data);
		snprintf(qn->said, sizeof(qn->said), "%s", msg.data);
	}
	pilot_agent_list_clear(&l);
	pilot_run_clear(&run);
}

/* Wait (a long-poll on the run's events, up to LONG_POLL_MS) until something happens to
 * the run. */
static int wait_event(struct pilot_api *api, const char *run_id, int64_t *cursor)
{
	struct pilot_event_filter f = { .run = run_id, .after_seq = *cursor, .limit = 1000 };
	struct pilot_event_list ev = { 0 };
	int r = pilot_api_list_events(api, &f, LONG_POLL_MS, &ev);
	if (r < 0)
		return r;
	*cursor = ev.last_seq;
	pilot_event_list_clear(&ev);
	return 0;
}

int follow_logs(struct pilot_ctx *ctx, struct pilot_api *api, const char *run_id, const struct follow_opts *opts,
		int *last_attempt)
{
	int attempt = opts->attempt;
	int64_t offset = opts->offset;
	int64_t ev_cursor = 0;
	struct retry_state rs = { 0 };
	struct queued_note qn;
	queued_note_init(&qn);
	int result = 0;
	for (;;) {
		struct pilot_log_request q = {
			.run = run_id,
			.attempt = attempt,
			.offset = offset,
			/* Before its first attempt, back in time to say why it waits. */
			.wait_ms = !opts->follow ? 0 : attempt ? LONG_POLL_MS : queued_note_wait(&qn, LONG_POLL_MS),
		};
		struct pilot_log_chunk c = { 0 };
		int r = pilot_api_read_logs(api, &q, &c);
		if (r < 0) {
			if (opts->follow && should_retry(ctx, &rs, r))
				continue;
			result = r;
			break;
		}
		retry_ok(ctx, &rs);
		/* Pin the attempt once there is one: the offset belongs to it. */
		if (attempt == 0 && c.attempt > 0)
			attempt = c.attempt;
		if (c.data.len) {
			if (pilot_write_all(opts->out_fd, c.data.data, c.data.len) < 0) {
				pilot_log_chunk_clear(&c);
				if (errno == EPIPE) {
					result = 1;
					break;
				}
				result = pilot_error_errno(PILOT_EIO, errno, "cannot write the log");
				break;
			}
			offset = c.next_offset;
			pilot_log_chunk_clear(&c);
			continue;
		}
		bool complete = c.complete, terminal = pilot_run_state_terminal(c.run_state);
		int latest = c.latest_attempt, read_attempt = c.attempt;
		pilot_log_chunk_clear(&c);
		if (!opts->follow)
			break;
		if (latest > attempt && attempt > 0) {
			/* The attempt's log cannot grow any more: a newer attempt owns the run. */
			attempt++;
			offset = 0;
			if (!opts->quiet_moves)
				cmd_notef(ctx, "attempt %d started; following it", attempt);
			continue;
		}
		if ((complete || read_attempt == 0) && terminal)
			break;
		if (read_attempt == 0)
			queued_note(ctx, api, run_id, &qn);
		if (complete) {
			/* Ended, but the run goes on (a retry backoff, a lost attempt requeued):
			 * wait for its next event rather than read the finished log again. */
			if ((r = wait_event(api, run_id, &ev_cursor)) < 0) {
				if (should_retry(ctx, &rs, r))
					continue;
				result = r;
				break;
			}
		}
	}
	if (last_attempt)
		*last_attempt = attempt;
	return result;
}

int wait_run(struct pilot_ctx *ctx, struct pilot_api *api, const char *run_id, int64_t after_seq,
	     void (*on_event)(const struct pilot_event *e, void *ud), void *ud, struct pilot_run *out)
{
	int64_t cursor = after_seq;
	struct retry_state rs = { 0 };
	struct queued_note qn;
	queued_note_init(&qn);
	for (;;) {
		struct pilot_run run = { 0 };
		int r = pilot_api_get_run(api, run_id, &run);
		if (r < 0) {
			if (should_retry(ctx, &rs, r))
				continue;
			return r;
		}
		bool terminal = pilot_run_state_terminal(run.state);
		/* Not started yet: say why (no agent for it, the runs it waits for, or its group). */
		bool why = run.state == PILOT_RUN_QUEUED ||
			   (run.state == PILOT_RUN_WAITING && (run.needs_left > 0 || run.slot_wait));
		if (why)
			queued_note(ctx, api, run.id, &qn);
		int64_t wait = terminal ? 0 : why ? queued_note_wait(&qn, LONG_POLL_MS) : LONG_POLL_MS;
		/* Events first, so that a caller printing them sees the last one too. */
		for (;;) {
			struct pilot_event_filter f = { .run = run.id, .after_seq = cursor, .limit = 1000 };
			struct pilot_event_list ev = { 0 };
			r = pilot_api_list_events(api, &f, wait, &ev);
			if (r < 0)
				break;
			for (size_t i = 0; i < ev.n && on_event; i++)
				on_event(&ev.items[i], ud);
			cursor = ev.last_seq;
			bool more = ev.n == f.limit;
			pilot_event_list_clear(&ev);
			if (!more)
				break;
		}
		if (r < 0) {
			pilot_run_clear(&run);
			if (should_retry(ctx, &rs, r))
				continue;
			return r;
		}
		retry_ok(ctx, &rs);
		if (terminal) {
			*out = run;
			return 0;
		}
		pilot_run_clear(&run);
	}
}

/* Bytes [from, end of the log) of one attempt into b (at most max bytes). */
static int read_range(struct pilot_api *api, const char *run_id, int attempt, int64_t from, size_t max,
		      struct pilot_buf *b, int64_t *end)
{
	int64_t offset = from;
	for (;;) {
		struct pilot_log_request q = { .run = run_id, .attempt = attempt, .offset = offset };
		struct pilot_log_chunk c = { 0 };
		int r = pilot_api_read_logs(api, &q, &c);
		if (r < 0)
			return r;
		size_t n = c.data.len;
		if (n && b->len < max)
			pilot_buf_append(b, c.data.data, n < max - b->len ? n : max - b->len);
		offset = c.next_offset;
		pilot_log_chunk_clear(&c);
		if (!n || b->len >= max)
			break;
	}
	*end = offset;
	return 0;
}

int log_tail(struct pilot_api *api, const char *run_id, int attempt, int64_t size, size_t n, struct pilot_buf *lines,
	     int64_t *start, int64_t *end)
{
	int64_t window = 64 * 1024;
	for (;;) {
		int64_t from = size > window ? size - window : 0;
		_cleanup_buf_ struct pilot_buf b = PILOT_BUF_INIT;
		int64_t stop;
		int r = read_range(api, run_id, attempt, from, (size_t)1 << 30, &b, &stop);
		if (r < 0)
			return r;
		/* The final newline ends the last line; count the ones before it. */
		size_t len = b.len, seen = 0, pos = len;
		if (len && b.data[len - 1] == '\n')
			len--;
		bool found = n == 0;
		if (n == 0)
			pos = b.len;
		for (size_t i = len; i-- > 0 && !found;) {
			if (b.data[i] == '\n' && ++seen == n) {
				pos = i + 1;
				found = true;
			}
		}
		if (!found && from == 0) {
			pos = 0;
			found = true;
		}
		if (found) {
			if (lines)
				pilot_buf_append(lines, b.data + pos, b.len - pos);
			*start = from + (int64_t)pos;
			*end = stop;
			return 0;
		}
		/* Not enough lines in the window: the log grew past size, or lines are long. */
		if (stop > size)
			size = stop;
		window *= 4;
	}
}

int follow_to_end(struct pilot_ctx *ctx, struct pilot_api *api, const char *run_id, bool logs)
{
	if (logs) {
		struct follow_opts fo = { .follow = true, .out_fd = STDOUT_FILENO };
		if (follow_logs(ctx, api, run_id, &fo, NULL) < 0)
			return cmd_fail(ctx, EXIT_PILOT);
	}
	struct pilot_run end = { 0 };
	if (wait_run(ctx, api, run_id, 0, NULL, NULL, &end) < 0)
		return cmd_fail(ctx, EXIT_PILOT);
	int status = run_exit_status(&end);
	char line[512];
	run_outcome_line(&end, line, sizeof(line));
	/* A failure is worth a line even in a script's log; success only on a terminal. */
	if (status || ctx->stderr_tty)
		cmd_notef(ctx, "run %s %s", end.id, line);
	pilot_run_clear(&end);
	return status;
}
