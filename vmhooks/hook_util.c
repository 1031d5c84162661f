/*
 * hook_util: what every hook back end shares: one-line error messages, the
 * clock, and hook_run(), the child runner of the exec and libvirt hooks.
 *
 * hook_run: the daemon is multithreaded, so children are started with
 * posix_spawn (no allocation or locking between fork and exec), in their own
 * process group, so that a timeout kills the child and whatever it started.
 * Their end is watched through a pidfd, so that the cutover does not wait on
 * a polling interval.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/log.h"
#include "vmhooks/hook_impl.h"

extern char **environ;

void hook_errf(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (!err || !errlen)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	/* one line: a peer's message could carry a newline */
	for (char *p = err; *p; p++)
		if (*p == '\n' || *p == '\r')
			*p = ' ';
}

int64_t hook_now_ms(void)
{
	return now_ms();
}

int hook_left_ms(int64_t deadline)
{
	int64_t left = deadline - hook_now_ms();

	if (left <= 0)
		return 0;
	return left > 0x7fffffff ? 0x7fffffff : (int)left;
}

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
