/*
 * exec_hook: the "exec:PROGRAM" hook, and hook_run(), the child runner that
 * the libvirt hook shares.
 *
 * "PROGRAM pause" runs with RELOCFS_FILES (the files being cut over, absolute
 * paths through the mount, one per line) and RELOCFS_MOUNTPOINT added to the
 * daemon's environment; "PROGRAM resume" gets the same environment.  A
 * non-zero exit from pause fails the pause (the caller cancels the cutover);
 * the program is expected to leave the VM running when it fails.  A pause
 * that times out is killed, with its whole process group, and then "resume"
 * is run once, since nobody knows how far it got.  resume is retried within
 * its timeout while it exits non-zero, so it should be idempotent.
 *
 * The daemon is multithreaded: children are started with posix_spawn (no
 * allocation or locking between fork and exec), in their own process group.
 * Their end is watched through a pidfd, so that the cutover does not wait on
 * a polling interval.
 *
 * Not done: running the program as another user, passing it more than the
 * environment (no stdin), keeping more of its output than the start and the
 * last line (each line goes to the debug log).
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "fs/log.h"
#include "vmhooks/hook_impl.h"

extern char **environ;

/* --------------------------------------------------------------- runner */

struct out_state {
	const char *tag;
	struct hook_run_result *res;
	bool keep_out;
	size_t out_len;
	char line[256];
	size_t line_len;
	bool line_truncated;
};

static void out_end_line(struct out_state *os)
{
	size_t n = os->line_len;

	os->line[n] = '\0';
	while (n && (os->line[n - 1] == '\r' || os->line[n - 1] == ' '))
		os->line[--n] = '\0';
	if (n) {
		log_debug("%s: %s", os->tag, os->line);
		snprintf(os->res->last_line, sizeof(os->res->last_line), "%s", os->line);
	}
	os->line_len = 0;
	os->line_truncated = false;
}

static void out_feed(struct out_state *os, const char *p, size_t n)
{
	if (os->keep_out) {
		size_t room = sizeof(os->res->out) - 1 - os->out_len;
		size_t c = n < room ? n : room;

		memcpy(os->res->out + os->out_len, p, c);
		os->out_len += c;
		os->res->out[os->out_len] = '\0';
	}
	for (size_t i = 0; i < n; i++) {
		if (p[i] == '\n') {
			out_end_line(os);
		} else if (os->line_len < sizeof(os->line) - 1) {
			os->line[os->line_len++] = p[i];
		} else {
			os->line_truncated = true;
		}
	}
}

/* read what the pipe holds now; false once it reports EOF or an error */
static bool out_drain(struct out_state *os, int fd)
{
	char buf[1024];

	for (;;) {
		ssize_t r = read(fd, buf, sizeof(buf));

		if (r > 0) {
			out_feed(os, buf, (size_t)r);
			continue;
		}
		if (r < 0 && errno == EINTR)
			continue;
		return r < 0 && errno == EAGAIN;
	}
}

static int pidfd_open_compat(pid_t pid)
{
#ifdef SYS_pidfd_open
	return (int)syscall(SYS_pidfd_open, pid, 0);
#else
	errno = ENOSYS;
	return -1;
#endif
}

int hook_run(const char *tag, char *const argv[], char *const envp[], int timeout_ms,
	     bool keep_out, struct hook_run_result *res, char *err, size_t errlen)
{
	int64_t deadline = hook_now_ms() + timeout_ms;
	struct out_state os = { .tag = tag, .res = res, .keep_out = keep_out };
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t attr;
	sigset_t none, all;
	int pfd[2], pidfd, rc;
	bool out_open = true, reaped = false;
	pid_t pid;

	memset(res, 0, sizeof(*res));
	if (pipe2(pfd, O_CLOEXEC) < 0) {
		rc = -errno;
		hook_errf(err, errlen, "%s: pipe: %s", tag, strerror(errno));
		return rc;
	}
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_adddup2(&fa, pfd[1], 1);
	posix_spawn_file_actions_adddup2(&fa, pfd[1], 2);
	posix_spawnattr_init(&attr);
	sigemptyset(&none);
	sigfillset(&all);
	posix_spawnattr_setsigmask(&attr, &none);
	posix_spawnattr_setsigdefault(&attr, &all);
	posix_spawnattr_setpgroup(&attr, 0);
	posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK |
				 POSIX_SPAWN_SETSIGDEF);
	rc = posix_spawnp(&pid, argv[0], &fa, &attr, argv, envp ? envp : environ);
	posix_spawn_file_actions_destroy(&fa);
	posix_spawnattr_destroy(&attr);
	close(pfd[1]);
	if (rc != 0) {
		close(pfd[0]);
		hook_errf(err, errlen, "%s: cannot run '%s': %s", tag, argv[0], strerror(rc));
		return -rc;
	}
	fcntl(pfd[0], F_SETFL, O_NONBLOCK);
	pidfd = pidfd_open_compat(pid);

	while (!reaped) {
		struct pollfd p[2];
		int n = 0, left = hook_left_ms(deadline), wait_ms;

		if (left == 0) {
			/* the whole group: a shell script's children too */
			kill(-pid, SIGKILL);
			kill(pid, SIGKILL);
			while (waitpid(pid, &res->status, 0) < 0 && errno == EINTR)
				;
			res->timed_out = true;
			break;
		}
		if (out_open) {
			p[n].fd = pfd[0];
			p[n++].events = POLLIN;
		}
		if (pidfd >= 0) {
			p[n].fd = pidfd;
			p[n++].events = POLLIN;
		}
		/* without a pidfd (old kernel) look at the child every 5 ms */
		wait_ms = pidfd >= 0 ? left : (left < 5 ? left : 5);
		if (poll(p, n, wait_ms) < 0 && errno != EINTR) {
			rc = -errno;
			hook_errf(err, errlen, "%s: poll: %s", tag, strerror(errno));
			kill(-pid, SIGKILL);
			waitpid(pid, &res->status, 0);
			goto out_close;
		}
		if (out_open)
			out_open = out_drain(&os, pfd[0]);
		if (waitpid(pid, &res->status, WNOHANG) == pid)
			reaped = true;
	}
	/* the child is gone; take what it wrote, but do not wait for EOF (a
	 * daemon it started may hold the pipe open) */
	if (out_open)
		out_drain(&os, pfd[0]);
	if (os.line_len)
		out_end_line(&os);
	rc = res->timed_out ? -ETIMEDOUT : 0;
	if (res->timed_out)
		hook_errf(err, errlen, "%s: timed out after %d ms, killed", tag, timeout_ms);
out_close:
	if (pidfd >= 0)
		close(pidfd);
	close(pfd[0]);
	return rc;
}

/* ----------------------------------------------------------------- hook */

struct exec_hook {
	char *program;
	char **envp;		/* environment built at pause, reused by resume */
	bool paused;		/* pause succeeded, resume not yet */
};

int exec_hook_new(const char *program, struct exec_hook **out, char *err, size_t errlen)
{
	struct exec_hook *eh;

	*out = NULL;
	if (!*program) {
		hook_errf(err, errlen, "exec hook needs a program (exec:PROGRAM)");
		return -EINVAL;
	}
	eh = calloc(1, sizeof(*eh));
	if (!eh || !(eh->program = strdup(program))) {
		free(eh);
		hook_errf(err, errlen, "exec '%s': out of memory", program);
		return -ENOMEM;
	}
	*out = eh;
	return 0;
}

static void free_envp(char **envp)
{
	if (!envp)
		return;
	for (char **e = envp; *e; e++)
		free(*e);
	free(envp);
}

void exec_hook_free(struct exec_hook *eh)
{
	if (!eh)
		return;
	free_envp(eh->envp);
	free(eh->program);
	free(eh);
}

/* the daemon's environment, minus any RELOCFS_FILES / RELOCFS_MOUNTPOINT, plus ours */
static char **build_envp(const char *mountpoint, const char *const *files, int nfiles)
{
	size_t n = 0, k = 0, flen = sizeof("RELOCFS_FILES=");
	char **envp, *f;

	for (char **e = environ; *e; e++)
		n++;
	envp = calloc(n + 3, sizeof(*envp));
	if (!envp)
		return NULL;
	for (char **e = environ; *e; e++) {
		if (strncmp(*e, "RELOCFS_FILES=", 14) == 0 ||
		    strncmp(*e, "RELOCFS_MOUNTPOINT=", 19) == 0)
			continue;
		if (!(envp[k++] = strdup(*e)))
			goto out_free;
	}
	for (int i = 0; i < nfiles; i++)
		flen += strlen(files[i]) + 1;
	f = envp[k++] = malloc(flen);
	if (!f)
		goto out_free;
	f += sprintf(f, "RELOCFS_FILES=");
	for (int i = 0; i < nfiles; i++)
		f += sprintf(f, "%s%s", i ? "\n" : "", files[i]);
	if (asprintf(&envp[k++], "RELOCFS_MOUNTPOINT=%s", mountpoint ? mountpoint : "") < 0) {
		envp[k - 1] = NULL;
		goto out_free;
	}
	return envp;

out_free:
	free_envp(envp);
	return NULL;
}

/* one run of "PROGRAM action"; 0 only for exit status 0 */
static int exec_hook_run(struct exec_hook *eh, const char *action, int timeout_ms,
			 char *err, size_t errlen)
{
	char *argv[] = { eh->program, (char *)action, NULL };
	struct hook_run_result res;
	char tag[300];
	int rc;

	snprintf(tag, sizeof(tag), "exec '%s' %s", eh->program, action);
	rc = hook_run(tag, argv, eh->envp, timeout_ms, false, &res, err, errlen);
	if (rc < 0)
		return rc;
	if (WIFEXITED(res.status) && WEXITSTATUS(res.status) == 0)
		return 0;
	if (WIFEXITED(res.status) && WEXITSTATUS(res.status) == 127) {
		/* what a spawn that cannot exec reports where it is a plain fork
		 * (as under valgrind), and what shells exit with */
		hook_errf(err, errlen, "exec '%s': cannot run it: %s (exit status 127)", eh->program,
			  strerror(ENOENT));
		return -ENOENT;
	}
	if (WIFEXITED(res.status))
		hook_errf(err, errlen, "exec '%s': %s exited with status %d%s%s", eh->program,
			  action, WEXITSTATUS(res.status), res.last_line[0] ? ": " : "",
			  res.last_line);
	else
		hook_errf(err, errlen, "exec '%s': %s killed by signal %d%s%s", eh->program,
			  action, WTERMSIG(res.status), res.last_line[0] ? ": " : "",
			  res.last_line);
	return -EIO;
}

int exec_hook_pause(struct exec_hook *eh, const char *mountpoint, const char *const *files,
		    int nfiles, int timeout_ms, char *err, size_t errlen)
{
	char **envp;
	int rc;

	envp = build_envp(mountpoint, files, nfiles);
	if (!envp) {
		hook_errf(err, errlen, "exec '%s': out of memory", eh->program);
		return -ENOMEM;
	}
	free_envp(eh->envp);
	eh->envp = envp;
	eh->paused = false;

	rc = exec_hook_run(eh, "pause", timeout_ms, err, errlen);
	if (rc == -ETIMEDOUT) {
		char rerr[256];

		hook_errf(err, errlen, "exec '%s': pause timed out after %d ms, killed",
			  eh->program, timeout_ms);
		/* it may have paused before it hung: undo, as the contract asks */
		if (exec_hook_run(eh, "resume", timeout_ms, rerr, sizeof(rerr)) < 0)
			log_warnx("%s", rerr);
		return rc;
	}
	if (rc < 0)
		return rc;
	eh->paused = true;
	return 0;
}

int exec_hook_resume(struct exec_hook *eh, int timeout_ms, char *err, size_t errlen)
{
	int64_t deadline = hook_now_ms() + timeout_ms;
	int rc;

	if (!eh->paused)
		return 0;
	for (;;) {
		rc = exec_hook_run(eh, "resume", hook_left_ms(deadline), err, errlen);
		if (rc == 0) {
			eh->paused = false;
			return 0;
		}
		/* cannot start it, or out of time: give up */
		if (rc != -EIO || hook_left_ms(deadline) <= 100)
			return rc;
		log_warnx("%s, retrying", err);
		struct timespec ts = { 0, 100 * 1000 * 1000 };
		nanosleep(&ts, NULL);
	}
}
