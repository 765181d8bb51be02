/* The host runtime: the job as a process of this machine, in a session and process group
 * of its own so that a stop reaches everything it started, with a clean environment,
 * pipes for its output and rlimits for what can be limited per process. No isolation:
 * an agent uses it only when told to. */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "runtime-internal.h"

#define DEFAULT_PATH "/usr/local/bin:/usr/bin:/bin"
/* After the job's main process ended and its group was killed, how long output that a
 * process outside the group still holds open is waited for. */
#define DRAIN_AFTER_EXIT_MS 2000
#define GIVE_UP_AFTER_KILL_MS 10000

/* What the job inherits from pilot's environment: where things are and who it runs as,
 * nothing else (no tokens, no PILOT_*). */
static const char *const inherited[] = { "PATH", "HOME", "USER", "LOGNAME", "LANG", "LC_ALL", "TZ", "TMPDIR" };

static void env_put(char ***env, size_t *n, const char *kv)
{
	size_t klen = (size_t)(strchr(kv, '=') - kv);
	for (size_t i = 0; i < *n; i++) {
		if (strncmp((*env)[i], kv, klen + 1) == 0) {
			free((*env)[i]);
			(*env)[i] = pilot_xstrdup(kv);
			return;
		}
	}
	*env = pilot_xrealloc(*env, (*n + 2) * sizeof(char *));
	(*env)[(*n)++] = pilot_xstrdup(kv);
	(*env)[*n] = NULL;
}

char **runtime_host_env(const struct pilot_job *job)
{
	char **env = pilot_xcalloc(1, sizeof(char *));
	size_t n = 0;
	for (size_t i = 0; i < ARRAY_SIZE(inherited); i++) {
		const char *v = getenv(inherited[i]);
		if (strcmp(inherited[i], "PATH") == 0 && (!v || !*v))
			v = DEFAULT_PATH;
		if (!v)
			continue;
		_cleanup_free_ char *kv = pilot_xasprintf("%s=%s", inherited[i], v);
		env_put(&env, &n, kv);
	}
	for (size_t i = 0; i < job->nenv; i++)
		env_put(&env, &n, job->env[i]);
	return env;
}

static void env_free(char **env)
{
	if (!env)
		return;
	for (char **p = env; *p; p++)
		free(*p);
	free(env);
}

/* The program to execute: a name is looked up in the job's PATH (not pilot's). */
static char *resolve(const char *cmd, char **env)
{
	if (strchr(cmd, '/'))
		return pilot_xstrdup(cmd);
	const char *path = DEFAULT_PATH;
	for (char **p = env; *p; p++)
		if (pilot_str_has_prefix(*p, "PATH="))
			path = *p + 5;
	while (*path) {
		size_t n = strcspn(path, ":");
		if (n > 0 && path[0] == '/') {
			_cleanup_free_ char *dir = pilot_xstrndup(path, n);
			char *full = pilot_path_join(dir, cmd);
			struct stat st;
			if (stat(full, &st) == 0 && S_ISREG(st.st_mode) && access(full, X_OK) == 0)
				return full;
			free(full);
		}
		path += n;
		if (*path == ':')
			path++;
	}
	return NULL;
}

static void notice_unenforced(const struct pilot_job *job)
{
	char what[256] = "";
	size_t n = 0;
	const struct { bool on; const char *name; } items[] = {
		{ job->res.cpus > 0, "cpus" },
		{ job->res.gpus != 0, "gpus" },
		{ job->res.shm > 0, "shm" },
		{ job->res.pids > 0, "pids" },
		{ job->network && strcmp(job->network, "host") != 0, "network" },
	};
	for (size_t i = 0; i < ARRAY_SIZE(items); i++)
		if (items[i].on)
			n += (size_t)snprintf(what + n, sizeof(what) - n, "%s%s", n ? ", " : "", items[i].name);
	if (n)
		pilot_log(PILOT_LOG_NOTICE, "the host runtime does not enforce: %s", what);
}

static int pidfd_open_(pid_t pid)
{
#ifdef SYS_pidfd_open
	return (int)syscall(SYS_pidfd_open, pid, 0);
#else
	(void)pid;
	errno = ENOSYS;
	return -1;
#endif
}

/* In the child, between fork and exec: async-signal-safe calls only. */
static void child(int devnull, int out, int err, int errpipe, const char *dir, const struct pilot_job *job,
		  const char *path, char *const *argv, char *const *env)
{
	int report[2] = { 0, 0 }; /* {1 when exec itself failed, errno} */
	if (setsid() < 0)
		goto fail;
	if (dup2(devnull, 0) < 0 || dup2(out, 1) < 0 || dup2(err, 2) < 0)
		goto fail;
	if (chdir(dir) < 0)
		goto fail;
	if (job->res.memory) {
		struct rlimit rl = { (rlim_t)job->res.memory, (rlim_t)job->res.memory };
		if (setrlimit(RLIMIT_DATA, &rl) < 0)
			goto fail;
	}
	/* pilot's handlers are gone with exec, but what it ignores or blocks would stay. */
	for (int s = 1; s < NSIG; s++)
		signal(s, SIG_DFL);
	sigset_t all;
	sigemptyset(&all);
	sigprocmask(SIG_SETMASK, &all, NULL);
#ifdef SYS_close_range
	/* Whatever else pilot has open (sockets, the store) stays out of the job. */
	syscall(SYS_close_range, 3U, ~0U, 4U /* CLOSE_RANGE_CLOEXEC */);
#endif
	execve(path, argv, env);
	report[0] = 1;
fail:
	report[1] = errno;
	ssize_t w = write(errpipe, report, sizeof(report));
	(void)w;
	_exit(127);
}

/* The command could not be executed: the job's failure, with a shell's exit status (127
 * not found, 126 not executable) and the reason on its stderr, as `sh -c` would give. */
static void __attribute__((format(printf, 4, 5)))
not_run(const struct pilot_job *job, struct pilot_job_result *res, int code, const char *fmt, ...)
{
	res->exit_code = code;
	if (!job->on_output)
		return;
	struct pilot_buf b = PILOT_BUF_INIT;
	va_list ap;
	va_start(ap, fmt);
	pilot_buf_puts(&b, "pilot: ");
	pilot_buf_vprintf(&b, fmt, ap);
	va_end(ap);
	pilot_buf_putc(&b, '\n');
	job->on_output(2, b.data, b.len, job->ud);
	pilot_buf_free(&b);
}

static void set_nonblock(int fd)
{
	int fl = fcntl(fd, F_GETFL);
	if (fl >= 0)
		fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

/* Reads what a pipe has now; closes it (fd = -1) at its end. */
static void pipe_read(int *fd, int stream, struct runtime_output *out)
{
	char buf[65536];
	for (int rounds = 0; rounds < 64 && *fd >= 0; rounds++) {
		ssize_t n = read(*fd, buf, sizeof(buf));
		if (n > 0) {
			runtime_output_feed(out, stream, buf, (size_t)n);
			continue;
		}
		if (n < 0 && (errno == EINTR))
			continue;
		if (n < 0 && errno == EAGAIN)
			return;
		close(*fd);
		*fd = -1;
	}
}

static void group_kill(pid_t pgid, int sig)
{
	if (kill(-pgid, sig) < 0 && errno != ESRCH)
		pilot_log(PILOT_LOG_WARN, "cannot signal the job's processes: %s", strerror(errno));
}

int runtime_host_run(struct pilot_runtime *rt, const struct pilot_job *job, struct pilot_job_control *ctl,
		     struct pilot_job_result *res)
{
	(void)rt;
	int r = runtime_job_validate(job, false);
	if (r < 0)
		return r;
	if (job->user)
		return pilot_error_set(PILOT_EINVALID, "the host runtime cannot run a job as user '%s'", job->user);
	struct stat st;
	if (stat(job->workspace, &st) < 0)
		return pilot_error_errno(PILOT_ENOTFOUND, errno, "cannot use workspace '%s'", job->workspace);
	if (!S_ISDIR(st.st_mode))
		return pilot_error_set(PILOT_EINVALID, "cannot use workspace '%s': not a directory", job->workspace);
	notice_unenforced(job);
	if (runtime_control_state(ctl)) {
		res->canceled = true;
		return 0;
	}

	char **env = runtime_host_env(job);
	const char *shell_argv[] = { "sh", "-c", job->shell ? job->argv[0] : NULL, NULL };
	char **argv;
	char *path;
	if (job->shell) {
		argv = (char **)shell_argv;
		path = pilot_xstrdup("/bin/sh");
	} else {
		argv = pilot_xcalloc(job->argc + 1, sizeof(char *));
		for (size_t i = 0; i < job->argc; i++)
			argv[i] = (char *)job->argv[i];
		path = resolve(job->argv[0], env);
		if (!path) {
			free(argv);
			env_free(env);
			not_run(job, res, 127, "cannot run '%s': command not found in PATH", job->argv[0]);
			return 0;
		}
	}

	int out[2] = { -1, -1 }, err[2] = { -1, -1 }, ep[2] = { -1, -1 };
	int devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
	pid_t pid = -1;
	if (devnull < 0 || pipe2(out, O_CLOEXEC) < 0 || pipe2(err, O_CLOEXEC) < 0 || pipe2(ep, O_CLOEXEC) < 0) {
		r = pilot_error_errno(PILOT_EIO, errno, "cannot set up the job's pipes");
	} else {
		pid = fork();
		if (pid == 0)
			child(devnull, out[1], err[1], ep[1], job->workspace, job, path, argv, env);
		if (pid < 0)
			r = pilot_error_errno(PILOT_EIO, errno, "cannot start '%s'", job->shell ? "/bin/sh" : job->argv[0]);
	}
	if (devnull >= 0)
		close(devnull);
	/* The child's ends: the parent must not hold them, or the pipes never end. */
	if (out[1] >= 0)
		close(out[1]);
	if (err[1] >= 0)
		close(err[1]);
	if (ep[1] >= 0)
		close(ep[1]);
	if (!job->shell)
		free(argv);
	env_free(env);
	bool ran = false;
	if (r == 0) {
		int report[2] = { 0, 0 };
		ssize_t n;
		while ((n = read(ep[0], report, sizeof(report))) < 0 && errno == EINTR)
			;
		if (n == (ssize_t)sizeof(report)) {
			waitpid(pid, NULL, 0);
			int e = report[1];
			char why[128];
			snprintf(why, sizeof(why), "%s", strerror(e));
			why[0] = (char)tolower((unsigned char)why[0]);
			if (report[0] && (e == ENOENT || e == ENOTDIR))
				not_run(job, res, 127, "cannot run '%s': %s", path, why);
			else if (report[0] && (e == EACCES || e == ENOEXEC || e == EPERM || e == EISDIR))
				not_run(job, res, 126, "cannot run '%s': %s", path, why);
			else
				r = pilot_error_errno(PILOT_EIO, e, "cannot start '%s'", path);
		} else {
			ran = true;
		}
	}
	free(path);
	if (ep[0] >= 0)
		close(ep[0]);
	if (!ran) {
		if (out[0] >= 0)
			close(out[0]);
		if (err[0] >= 0)
			close(err[0]);
		return r;
	}

	res->started = true;
	snprintf(res->id, sizeof(res->id), "pid %d", (int)pid);
	if (job->on_started)
		job->on_started(res->id, job->ud);
	set_nonblock(out[0]);
	set_nonblock(err[0]);
	int pidfd = pidfd_open_(pid);

	struct runtime_output o;
	runtime_output_init(&o, job);
	int64_t start = pilot_mono_ms();
	int64_t deadline = job->timeout_ms ? start + job->timeout_ms : 0;
	int64_t grace = job->grace_ms ? job->grace_ms : PILOT_JOB_DEFAULT_GRACE_MS;
	int64_t kill_at = 0, give_up_at = 0, exited_at = 0;
	int64_t asked = -1; /* the cancel's own grace, as last applied to kill_at */
	bool stopping = false, killed = false, exited = false;
	int status = 0;
	for (;;) {
		pipe_read(&out[0], 1, &o);
		pipe_read(&err[0], 2, &o);
		int64_t now = pilot_mono_ms();
		if (!exited) {
			siginfo_t si = { 0 };
			/* WNOWAIT: the zombie keeps the group id from being reused until the
			 * rest of the group is killed below. */
			if (waitid(P_PID, (id_t)pid, &si, WEXITED | WNOHANG | WNOWAIT) == 0 && si.si_pid == pid) {
				exited = true;
				exited_at = now;
				res->duration_ms = now - start;
				/* As when a container's init ends: what the job left running
				 * goes with it. */
				group_kill(pid, SIGKILL);
				waitpid(pid, &status, 0);
			}
		}
		if (exited && out[0] < 0 && err[0] < 0)
			break;
		if (exited && now - exited_at > DRAIN_AFTER_EXIT_MS) {
			pilot_log(PILOT_LOG_NOTICE, "a process outside the job's session holds its output open: not waiting for it");
			break;
		}
		if (!exited) {
			int cs = runtime_control_state(ctl);
			if (cs && !stopping) {
				res->canceled = true;
				stopping = true;
				if (cs == 2) {
					group_kill(pid, SIGKILL);
					killed = res->sent_kill = true;
					give_up_at = now + GIVE_UP_AFTER_KILL_MS;
				} else {
					group_kill(pid, SIGTERM);
					res->sent_term = true;
					asked = runtime_control_grace(ctl, -1);
					kill_at = now + (asked >= 0 ? asked : grace);
				}
			} else if (cs == 2 && !killed) {
				group_kill(pid, SIGKILL);
				killed = res->sent_kill = true;
				give_up_at = now + GIVE_UP_AFTER_KILL_MS;
			}
			if (deadline && now >= deadline && !stopping) {
				res->timed_out = true;
				stopping = true;
				group_kill(pid, SIGTERM);
				res->sent_term = true;
				kill_at = now + grace;
			}
			if (kill_at && !killed && runtime_control_grace(ctl, -1) != asked) {
				/* A hastier cancel while the job is being stopped. */
				asked = runtime_control_grace(ctl, -1);
				if (now + asked < kill_at)
					kill_at = now + asked;
			}
			if (kill_at && now >= kill_at && !killed) {
				group_kill(pid, SIGKILL);
				killed = res->sent_kill = true;
				give_up_at = now + GIVE_UP_AFTER_KILL_MS;
			}
			if (killed && now >= give_up_at) {
				/* A process in uninterruptible sleep: report what we know. */
				pilot_log(PILOT_LOG_WARN, "pid %d did not end after SIGKILL", (int)pid);
				break;
			}
		}
		runtime_output_tick(&o);

		int64_t next = now + (pidfd >= 0 ? 1000 : 50);
		if (deadline && !stopping && deadline < next)
			next = deadline;
		if (kill_at && !killed && kill_at < next)
			next = kill_at;
		if (exited && exited_at + DRAIN_AFTER_EXIT_MS + 1 < next)
			next = exited_at + DRAIN_AFTER_EXIT_MS + 1;
		struct pollfd fds[4];
		nfds_t nfds = 0;
		if (out[0] >= 0)
			fds[nfds++] = (struct pollfd){ .fd = out[0], .events = POLLIN };
		if (err[0] >= 0)
			fds[nfds++] = (struct pollfd){ .fd = err[0], .events = POLLIN };
		if (ctl && !exited)
			fds[nfds++] = (struct pollfd){ .fd = runtime_control_fd(ctl), .events = POLLIN };
		if (pidfd >= 0 && !exited)
			fds[nfds++] = (struct pollfd){ .fd = pidfd, .events = POLLIN };
		int64_t wait_ms = next - now;
		if (poll(fds, nfds, (int)(wait_ms > 0 ? wait_ms : 0)) < 0 && errno != EINTR) {
			r = pilot_error_errno(PILOT_EIO, errno, "cannot wait for the job");
			break;
		}
	}
	if (pidfd >= 0)
		close(pidfd);
	if (out[0] >= 0)
		close(out[0]);
	if (err[0] >= 0)
		close(err[0]);
	runtime_output_finish(&o);
	runtime_output_free(&o);
	if (!exited) {
		if (!res->duration_ms)
			res->duration_ms = pilot_mono_ms() - start;
		if (r == 0)
			r = pilot_error_set(PILOT_EFAIL, "lost track of the job's process %d", (int)pid);
		return r;
	}
	if (WIFEXITED(status)) {
		res->exit_code = WEXITSTATUS(status);
	} else if (WIFSIGNALED(status)) {
		res->signal = WTERMSIG(status);
		res->exit_code = -1;
	}
	return r;
}
