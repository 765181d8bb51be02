/* pilot watch RUN|ARRAY...: keep an eye on runs until they end. On a terminal, a small screen
 * redrawn in place: each run's state, attempt, agent and elapsed time, its latest
 * metrics with sparklines and the last lines of its log; q (or Ctrl-C) quits and the
 * terminal is always given back as it was. Without a terminal, one line per event of
 * the runs, for logs and scripts. --exit-status exits like pilot submit --wait. */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "runs.h"
#include "pilot/term.h"

struct opts {
	bool exit_status;
	int64_t lines;
	int64_t interval;
};

static const struct pilot_opt options[] = {
	{ OPT_FLAG, 0, "exit-status", NULL, "exit with the runs' status, as submit --wait does",
	  offsetof(struct opts, exit_status), NULL },
	{ OPT_INT, 'n', "lines", "N", "log lines shown per run on a terminal (default 10)", offsetof(struct opts, lines),
	  NULL },
	{ OPT_DURATION, 0, "interval", "DUR", "how often the screen is refreshed (default 1s)",
	  offsetof(struct opts, interval), NULL },
	OPT_END_ROW,
};

struct watched {
	const char *ref;
	struct pilot_run run;
	bool have;           /* run was read at least once */
	bool loaded;         /* its log and metrics were read at least once */
	bool done;           /* terminal */
	int64_t last_seq;    /* events printed up to (no terminal) */
	struct pilot_buf log;
	struct metric_series *series;
	size_t nseries;
};

/* ---- the terminal ---------------------------------------------------------------- */

static volatile sig_atomic_t quit_signal;
static volatile sig_atomic_t resized;
static struct termios saved_tio;
static bool tio_saved;

static void on_quit(int sig)
{
	quit_signal = sig;
}

static void on_winch(int sig)
{
	(void)sig;
	resized = 1;
}

static void term_restore(void)
{
	if (tio_saved) {
		tcsetattr(STDIN_FILENO, TCSAFLUSH, &saved_tio);
		tio_saved = false;
	}
	/* Show the cursor again. */
	fputs("\033[?25h", stdout);
	fflush(stdout);
}

static void term_setup(void)
{
	struct sigaction sa = { .sa_handler = on_quit };
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	sigaction(SIGQUIT, &sa, NULL);
	sa.sa_handler = on_winch;
	sigaction(SIGWINCH, &sa, NULL);
	/* Keys without Enter and without echo; Ctrl-C still raises SIGINT (ISIG stays). */
	if (isatty(STDIN_FILENO) && tcgetattr(STDIN_FILENO, &saved_tio) == 0) {
		struct termios raw = saved_tio;
		raw.c_lflag &= ~(tcflag_t)(ICANON | ECHO);
		raw.c_cc[VMIN] = 0;
		raw.c_cc[VTIME] = 0;
		if (tcsetattr(STDIN_FILENO, TCSANOW, &raw) == 0)
			tio_saved = true;
	}
	atexit(term_restore);
	fputs("\033[?25l", stdout);
}

static void term_size(int *cols, int *rows)
{
	struct winsize ws;
	*cols = pilot_term_width(STDOUT_FILENO);
	*rows = 24;
	if (ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_row > 0)
		*rows = ws.ws_row;
	if (*cols <= 0)
		*cols = 80;
}

/* Wait up to ms for a key; true when the user asked to quit. */
static bool wait_key(int64_t ms)
{
	int64_t until = pilot_mono_ms() + ms;
	for (;;) {
		if (quit_signal)
			return true;
		int64_t left = until - pilot_mono_ms();
		if (left <= 0 || resized)
			return false;
		struct pollfd p = { .fd = STDIN_FILENO, .events = POLLIN };
		int r = poll(&p, 1, (int)left);
		if (r < 0 && errno != EINTR)
			return false;
		if (r > 0) {
			char c[16];
			ssize_t n = read(STDIN_FILENO, c, sizeof(c));
			if (n <= 0) {
				/* stdin closed: nothing more can come; keep refreshing by the clock. */
				struct timespec ts = { (time_t)(left / 1000), (long)(left % 1000) * 1000000L };
				nanosleep(&ts, NULL);
				return false;
			}
			for (ssize_t i = 0; i < n; i++)
				if (c[i] == 'q' || c[i] == 'Q' || c[i] == 3)
					return true;
		}
	}
}

/* ---- what is shown ---------------------------------------------------------------- */

/* Append s to line cut to at most width columns (UTF-8 code points). */
static void put_cut(struct pilot_buf *line, const char *s, size_t len, size_t width)
{
	size_t cols = pilot_utf8_width(pilot_buf_str(line));
	for (size_t i = 0; i < len && cols < width; cols++) {
		size_t k = 1;
		while (i + k < len && ((unsigned char)s[i + k] & 0xc0) == 0x80)
			k++;
		pilot_buf_append(line, s + i, k);
		i += k;
	}
}

/* A log line made safe to draw: the text after its last '\r' (progress bars), escape
 * sequences and other control characters dropped, tabs as spaces. */
static void clean_line(const char *s, size_t n, struct pilot_buf *out)
{
	const char *cr = NULL;
	for (size_t i = 0; i < n; i++)
		if (s[i] == '\r' && i + 1 < n)
			cr = s + i;
	if (cr) {
		n -= (size_t)(cr + 1 - s);
		s = cr + 1;
	}
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == 0x1b) {
			/* CSI: ESC [ parameters final byte; other escapes: ESC and one byte. */
			if (i + 1 < n && s[i + 1] == '[') {
				i += 2;
				while (i < n && !((unsigned char)s[i] >= 0x40 && (unsigned char)s[i] <= 0x7e))
					i++;
			} else {
				i++;
			}
			continue;
		}
		if (c == '\t')
			pilot_buf_putc(out, ' ');
		else if (c >= 0x20 && c != 0x7f)
			pilot_buf_putc(out, (char)c);
	}
}

static void refresh(struct pilot_api *api, struct watched *w, size_t nlines)
{
	struct pilot_run r = { 0 };
	if (pilot_api_get_run(api, w->run.id[0] ? w->run.id : w->ref, &r) < 0) {
		pilot_error_clear();
		return;
	}
	pilot_run_clear(&w->run);
	w->run = r;
	w->have = true;
	w->loaded = true;
	w->done = pilot_run_state_terminal(r.state);
	int att = r.attempt_count;
	if (att <= 0)
		return;
	int64_t size = 0, start, end;
	for (size_t i = 0; i < r.nattempts; i++)
		if (r.attempts[i].number == att)
			size = r.attempts[i].log_bytes;
	_cleanup_buf_ struct pilot_buf lines = PILOT_BUF_INIT;
	if (nlines && log_tail(api, r.id, att, size, nlines, &lines, &start, &end) == 0) {
		pilot_buf_reset(&w->log);
		pilot_buf_append(&w->log, lines.data ? lines.data : "", lines.len);
	}
	struct pilot_metric_list ml = { 0 };
	if (pilot_api_get_metrics(api, r.id, att, &ml) == 0) {
		metric_series_free(w->series, w->nseries);
		metric_series_build(&ml, att, &w->series, &w->nseries);
		pilot_metric_list_clear(&ml);
	}
	pilot_error_clear();
}

static void add_line(struct pilot_buf *frame, size_t *nl, struct pilot_buf *line)
{
	pilot_buf_append(frame, line->data ? line->data : "", line->len);
	pilot_buf_puts(frame, "\033[K\n");
	pilot_buf_reset(line);
	(*nl)++;
}

/* depth: of a pipeline's job, how far down the tree it is (-1: not a pipeline's). */
static void draw_run(struct watched *w, int depth, size_t width, size_t nlines, int64_t now, struct pilot_buf *frame,
		     size_t *nl)
{
	_cleanup_buf_ struct pilot_buf line = PILOT_BUF_INIT;
	char tmp[512];
	if (!w->have) {
		snprintf(tmp, sizeof(tmp), "%s  (cannot read it: retrying)", w->ref);
		put_cut(&line, tmp, strlen(tmp), width);
		add_line(frame, nl, &line);
		return;
	}
	const struct pilot_run *r = &w->run;
	char state[64], dur[32], when[64] = "";
	run_state_cell(r, state, sizeof(state));
	if (r->started_ms) {
		int64_t endt = r->finished_ms ? r->finished_ms : w->done ? r->updated_ms : now;
		int64_t d = endt - r->started_ms;
		pilot_format_duration(d >= 1000 ? d - d % 1000 : d > 0 ? d : 0, dur, sizeof(dur));
		snprintf(when, sizeof(when), "%s %s", w->done ? "ran" : "elapsed", dur);
	} else if (!w->done) {
		pilot_format_age(r->created_ms, now, dur, sizeof(dur));
		snprintf(when, sizeof(when), "queued for %s", dur);
	}
	char att[96] = "";
	if (r->attempt_count)
		snprintf(att, sizeof(att), "attempt %d%s%s", r->attempt_count, r->agent ? " on " : "",
			 r->agent ? r->agent : "");
	if (depth >= 0)
		/* A job: its name first, under the jobs it needs. */
		snprintf(tmp, sizeof(tmp), "%*s%s%s  %s  %s  %s  %s", depth > 1 ? 2 * (depth - 1) : 0, "",
			 depth ? "└ " : "", r->name ? r->name : "", r->id, state, att, when);
	else
		snprintf(tmp, sizeof(tmp), "%s  %s  %s  %s  %s", r->id, r->name ? r->name : "", state, att, when);
	put_cut(&line, tmp, strlen(tmp), width);
	add_line(frame, nl, &line);
	if (w->done && r->message && *r->message && r->state != PILOT_RUN_SUCCEEDED) {
		snprintf(tmp, sizeof(tmp), "  %s", r->message);
		put_cut(&line, tmp, strlen(tmp), width);
		add_line(frame, nl, &line);
	}
	if (w->nseries) {
		pilot_buf_puts(&line, " ");
		for (size_t i = 0; i < w->nseries; i++) {
			const struct metric_series *s = &w->series[i];
			char v[32];
			metric_format(s->v[s->n - 1], v, sizeof(v));
			_cleanup_buf_ struct pilot_buf part = PILOT_BUF_INIT;
			pilot_buf_printf(&part, " %s %s ", s->name, v);
			pilot_sparkline(s->v, s->n, 16, &part);
			pilot_buf_puts(&part, " ");
			put_cut(&line, part.data, part.len, width);
		}
		add_line(frame, nl, &line);
	}
	/* The last nlines lines of the log, each made safe and cut to the width. */
	const char *p = pilot_buf_str(&w->log), *endp = p + w->log.len;
	size_t shown = 0;
	while (p < endp && shown < nlines) {
		const char *e = memchr(p, '\n', (size_t)(endp - p));
		size_t n = e ? (size_t)(e - p) : (size_t)(endp - p);
		_cleanup_buf_ struct pilot_buf clean = PILOT_BUF_INIT;
		clean_line(p, n, &clean);
		pilot_buf_puts(&line, "  │ ");
		put_cut(&line, pilot_buf_str(&clean), clean.len, width);
		add_line(frame, nl, &line);
		shown++;
		p = e ? e + 1 : endp;
	}
}

/* Of a pipeline's job i (its runs come in job order, each after the jobs it needs),
 * given the depths of those before it: 0 when it needs none of the jobs watched, else
 * one more than the deepest it needs; -1 for a run of no pipeline. */
static int job_depth(const struct watched *w, size_t i, const int *depths)
{
	const struct pilot_run *r = &w[i].run;
	if (r->array_id[0] != 'p')
		return -1;
	int depth = 0;
	for (size_t k = 0; k < r->nneeds; k++)
		for (size_t m = 0; m < i; m++)
			if (!strcmp(w[m].run.array_id, r->array_id) && w[m].run.name &&
			    !strcmp(w[m].run.name, r->needs[k].name) && depths[m] + 1 > depth)
				depth = depths[m] + 1;
	return depth;
}

static size_t draw(struct watched *w, size_t n, size_t nlines, size_t prev, bool final)
{
	int cols, rows;
	term_size(&cols, &rows);
	/* One column spare: writing the last one makes some terminals wrap. */
	size_t width = cols > 1 ? (size_t)cols - 1 : 1;
	_cleanup_buf_ struct pilot_buf frame = PILOT_BUF_INIT;
	size_t nl = 0;
	int64_t now = pilot_now_ms();
	size_t ndone = 0;
	for (size_t i = 0; i < n; i++)
		ndone += w[i].done;
	_cleanup_buf_ struct pilot_buf line = PILOT_BUF_INIT;
	char head[160];
	if (final)
		snprintf(head, sizeof(head), "pilot watch: %s ended", n == 1 ? "the run has" : "every run has");
	else
		snprintf(head, sizeof(head), "pilot watch: %zu run%s, %zu ended   (q to quit)", n, n == 1 ? "" : "s", ndone);
	put_cut(&line, head, strlen(head), width);
	add_line(&frame, &nl, &line);
	int *depths = pilot_xcalloc(n ? n : 1, sizeof(*depths));
	for (size_t i = 0; i < n; i++) {
		depths[i] = job_depth(w, i, depths);
		draw_run(&w[i], depths[i], width, nlines, now, &frame, &nl);
	}
	free(depths);
	/* Keep the frame within the screen, or moving back up would miss its top. */
	size_t max_lines = rows > 2 ? (size_t)rows - 1 : 1;
	if (nl > max_lines) {
		const char *p = frame.data;
		for (size_t k = 0; k < max_lines; k++)
			p = strchr(p, '\n') + 1;
		pilot_buf_truncate(&frame, (size_t)(p - frame.data));
		nl = max_lines;
	}
	_cleanup_buf_ struct pilot_buf out = PILOT_BUF_INIT;
	pilot_buf_puts(&out, "\r");
	if (prev)
		pilot_buf_printf(&out, "\033[%zuA", prev);
	pilot_buf_append(&out, frame.data, frame.len);
	pilot_buf_puts(&out, "\033[J");
	if (pilot_write_all(STDOUT_FILENO, out.data, out.len) < 0)
		quit_signal = SIGPIPE;
	return nl;
}

static int watch_tty(struct pilot_ctx *ctx, struct pilot_api *api, struct watched *w, size_t n, const struct opts *o)
{
	size_t nlines = o->lines ? (size_t)o->lines : 10;
	if (n > 1 && !o->lines)
		nlines = n > 3 ? 3 : 5;
	int64_t interval = o->interval ? o->interval : 1000;
	fflush(stdout);
	term_setup();
	size_t prev = 0;
	bool quit = false, all_done = false;
	while (!quit) {
		all_done = true;
		for (size_t i = 0; i < n; i++) {
			if (!w[i].done || !w[i].loaded)
				refresh(api, &w[i], nlines);
			all_done = all_done && w[i].done;
		}
		resized = 0;
		prev = draw(w, n, nlines, prev, all_done);
		if (all_done || quit_signal)
			break;
		quit = wait_key(interval);
	}
	term_restore();
	(void)ctx;
	return all_done ? 0 : 1;
}

/* ---- without a terminal: one line per event ------------------------------------- */

/* false when the reader went away (pilot watch RUN | head): time to stop. */
static bool print_event(const struct pilot_event *e)
{
	char t[32];
	pilot_format_time(e->time_ms, t);
	printf("%s  %s  %-16s %-10s%s%s\n", t, e->run_id, e->type ? e->type : "", pilot_run_state_name(e->state),
	       e->message && *e->message ? "  " : "", e->message ? e->message : "");
	return fflush(stdout) == 0;
}

/* 0 when every run ended, 1 when the reader went away first, -1 on an error. */
static int watch_lines(struct pilot_ctx *ctx, struct pilot_api *api, struct watched *w, size_t n)
{
	struct retry_state rs = { 0 };
	int64_t cursor = INT64_MAX;
	/* Each run's history first, then the stream of new events from the earliest point
	 * any of them had reached (events already printed are skipped by their seq). */
	for (size_t i = 0; i < n; i++) {
		for (;;) {
			struct pilot_event_filter f = { .run = w[i].run.id, .after_seq = w[i].last_seq, .limit = 1000 };
			struct pilot_event_list ev = { 0 };
			if (pilot_api_list_events(api, &f, 0, &ev) < 0) {
				if (should_retry(ctx, &rs, pilot_error_code()))
					continue;
				return -1;
			}
			retry_ok(ctx, &rs);
			for (size_t k = 0; k < ev.n; k++) {
				if (!print_event(&ev.items[k])) {
					pilot_event_list_clear(&ev);
					return 1;
				}
				if (pilot_run_state_terminal(ev.items[k].state))
					w[i].done = true;
			}
			w[i].last_seq = ev.last_seq;
			bool more = ev.n == f.limit;
			pilot_event_list_clear(&ev);
			if (!more)
				break;
		}
		if (w[i].last_seq < cursor)
			cursor = w[i].last_seq;
	}
	for (;;) {
		bool all_done = true;
		for (size_t i = 0; i < n; i++)
			all_done = all_done && w[i].done;
		if (all_done)
			return 0;
		struct pilot_event_filter f = { .run = n == 1 ? w[0].run.id : NULL, .after_seq = cursor, .limit = 1000 };
		struct pilot_event_list ev = { 0 };
		if (pilot_api_list_events(api, &f, 30000, &ev) < 0) {
			if (should_retry(ctx, &rs, pilot_error_code()))
				continue;
			return -1;
		}
		retry_ok(ctx, &rs);
		for (size_t k = 0; k < ev.n; k++) {
			const struct pilot_event *e = &ev.items[k];
			for (size_t i = 0; i < n; i++) {
				if (strcmp(e->run_id, w[i].run.id) || e->seq <= w[i].last_seq)
					continue;
				if (!print_event(e)) {
					pilot_event_list_clear(&ev);
					return 1;
				}
				w[i].last_seq = e->seq;
				if (pilot_run_state_terminal(e->state))
					w[i].done = true;
			}
		}
		cursor = ev.last_seq > cursor ? ev.last_seq : cursor;
		pilot_event_list_clear(&ev);
	}
}

static int run(struct pilot_ctx *ctx, void *optsp, int argc, char **argv)
{
	struct opts *o = optsp;
	if (o->lines < 0 || o->lines > 1000)
		return cmd_usage_error(ctx, "--lines must be between 0 and 1000");
	if (o->interval < 0)
		return cmd_usage_error(ctx, "--interval must be positive");

	_cleanup_api_ struct pilot_api *api = NULL;
	int st = runs_open_api(ctx, &api, o->exit_status ? EXIT_PILOT : EXIT_FAIL);
	if (st)
		return st;
	/* An array's or a pipeline's id stands for its runs. */
	char **refs = NULL;
	size_t nrefs = 0;
	for (int i = 0; i < argc; i++) {
		struct pilot_array a = { 0 };
		if (!runs_is_group(argv[i])) {
			refs = pilot_xrealloc(refs, (nrefs + 1) * sizeof(*refs));
			refs[nrefs++] = pilot_xstrdup(argv[i]);
			continue;
		}
		if (pilot_api_get_array(api, argv[i], &a) < 0) {
			for (size_t k = 0; k < nrefs; k++)
				free(refs[k]);
			free(refs);
			return cmd_fail(ctx, o->exit_status ? EXIT_PILOT : EXIT_FAIL);
		}
		refs = pilot_xrealloc(refs, (nrefs + a.nruns + 1) * sizeof(*refs));
		for (size_t k = 0; k < a.nruns; k++)
			refs[nrefs++] = pilot_xstrdup(a.runs[k]);
		pilot_array_clear(&a);
	}
	struct watched *w = pilot_xcalloc(nrefs ? nrefs : 1, sizeof(*w));
	size_t n = 0;
	int status = EXIT_OK;
	for (size_t i = 0; i < nrefs; i++) {
		w[n].ref = refs[i];
		if (runref_get(ctx, api, refs[i], &w[n].run, EXIT_FAIL)) {
			status = o->exit_status ? EXIT_PILOT : EXIT_FAIL;
			goto out;
		}
		w[n].have = true;
		w[n].done = pilot_run_state_terminal(w[n].run.state);
		/* The same run twice is watched once; of an array element retried, the newest
		 * run (an array lists them oldest first). */
		size_t same = n;
		for (size_t k = 0; k < n && same == n; k++)
			if (!strcmp(w[k].run.id, w[n].run.id) ||
			    (w[n].run.array_id[0] && !strcmp(w[k].run.array_id, w[n].run.array_id) &&
			     w[k].run.array_index == w[n].run.array_index))
				same = k;
		if (same < n && strcmp(w[same].run.id, w[n].run.id)) {
			pilot_run_clear(&w[same].run);
			w[same].run = w[n].run;
			w[same].ref = w[n].ref;
			w[same].done = w[n].done;
			memset(&w[n].run, 0, sizeof(w[n].run));
		} else if (same < n) {
			pilot_run_clear(&w[n].run);
		} else {
			n++;
		}
	}
	bool finished;
	if (ctx->stdout_tty) {
		finished = watch_tty(ctx, api, w, n, o) == 0;
	} else {
		int wl = watch_lines(ctx, api, w, n);
		if (wl < 0) {
			status = cmd_fail(ctx, o->exit_status ? EXIT_PILOT : EXIT_FAIL);
			goto out;
		}
		/* 1: the reader went away before the end. */
		finished = wl == 0;
		/* The final state of each run, for the exit status. */
		for (size_t i = 0; i < n; i++) {
			struct pilot_run r = { 0 };
			if (pilot_api_get_run(api, w[i].run.id, &r) == 0) {
				pilot_run_clear(&w[i].run);
				w[i].run = r;
			}
		}
	}
	if (o->exit_status) {
		if (!finished) {
			status = EXIT_CANCELED;
		} else {
			/* The first run (in the order given) that did not succeed decides. */
			for (size_t i = 0; i < n && !status; i++)
				status = run_exit_status(&w[i].run) > 0 ? run_exit_status(&w[i].run) : 0;
		}
	}
out:
	for (size_t i = 0; i < nrefs; i++) {
		pilot_run_clear(&w[i].run);
		pilot_buf_free(&w[i].log);
		metric_series_free(w[i].series, w[i].nseries);
		free(refs[i]);
	}
	free(refs);
	free(w);
	return status;
}

const struct pilot_cmd cmd_watch = {
	.name = "watch",
	.summary = "watch runs live until they end",
	.args = "RUN...",
	.description =
		"On a terminal, shows each run's state, attempt, agent and elapsed time, its latest\n"
		"metrics with sparklines and the last lines of its log, redrawn in place every\n"
		"--interval; it ends when every run has ended, or when you press q or Ctrl-C.\n"
		"Without a terminal it prints one line per event of the runs (time, run, event,\n"
		"state, message) and ends when they have ended. --exit-status makes the exit status\n"
		"that of the first run (in the order given) that did not succeed, as pilot submit\n"
		"--wait gives it (the job's code, 124, 125, 128+N, 130), or 0 when all succeeded;\n"
		"quitting before the end then exits 130. An array id (x...) watches the runs of the\n"
		"array (of an element run again, the newest); a pipeline id (p...) those of its\n"
		"jobs.",
	.opts = options,
	.opts_size = sizeof(struct opts),
	.min_args = 1,
	.max_args = -1,
	.flags = CMD_NEEDS_CONFIG,
	.run = run,
	.complete_args = "run",
};
