/*
 * supervisor: the small process that owns the mount (see daemon.h).
 *
 * It makes the shared region, starts the first worker (which mounts), and
 * then only waits: for a signal to end (forwarded to the worker, which
 * unmounts), or for its worker to end.  A worker asked to hand the mount
 * over (relocctl restart) says so with SIGUSR1 first: the next one is
 * started at once, as a standby that waits while the old one still serves
 * (daemon.h).  The old worker stops everything it runs, lets the standby go
 * and says so with SIGUSR2 just before it exits, without waiting for its
 * exit (the old process's teardown stays out of the time the connection
 * waits; it is reaped later).  For restart --exec there is no standby:
 * at the same signal the supervisor re-executes itself as the new binary,
 * keeping the region and every descriptor the region names across the
 * exec, and the new image reaps the old worker (if the signal is missed,
 * it does so after the old worker's exit).  A worker that dies any
 * other way is replaced at once; the new one has the kernel resend what the
 * dead one had read.  A worker that cannot start is retried, at most once a
 * second, for as long as the mount exists.
 *
 * The supervisor has one thread and must keep it so: workers are clones of
 * it without glibc's fork handling, safe only from a single thread.  It
 * holds no lock, allocates nothing after start-up, and logs only through
 * stderr (in the foreground) or a syslog connection it opens and closes
 * around each message, so that a worker's sweep of leaked descriptors never
 * meets one of its own.
 */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <syslog.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/futex.h"
#include "ctl/engine.h"
#include "ctl/server.h"
#include "daemon/daemon.h"
#include "fs/fs.h"

#define WORKER_STACK	(8u << 20)

static bool foreground;

static void slog(int prio, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void slog(int prio, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (foreground) {
		fprintf(stderr, "relocfs: %s\n", msg);
		return;
	}
	openlog("relocfs", LOG_PID, LOG_DAEMON);
	syslog(prio, "%s", msg);
	closelog();
}

static uint64_t align_page(uint64_t x)
{
	return (x + 4095) & ~(uint64_t)4095;
}

/* A new region: the daemon's header, the engine's area, the FUSE layer's. */
static int region_new(struct daemon *d)
{
	uint64_t engine_off = align_page(sizeof(struct daemon_region));
	uint64_t fs_off = align_page(engine_off + engine_region_size());
	struct daemon_region *dr;
	int r = shm_create(&d->shm, "relocfs", fs_off + fs_region_size());

	if (r)
		return r;
	dr = d->dr = d->shm.base;
	dr->layout = DAEMON_LAYOUT;
	dr->engine_off = engine_off;
	dr->fs_off = fs_off;
	dr->ctl_fd = ctl_server_fd();
	dr->source_fd = d->source_fd;
	dr->base = (uint64_t)(uintptr_t)d->shm.base;
	dr->keep[dr->nkeep++] = d->shm.fd;
	dr->keep[dr->nkeep++] = d->source_fd;
	if (dr->ctl_fd != -1)
		dr->keep[dr->nkeep++] = dr->ctl_fd;
	__atomic_store_n(&dr->magic, DAEMON_MAGIC, __ATOMIC_RELEASE);
	return 0;
}

/* Runs of a re-executed supervisor to find the region's address free. */
#define REMAP_TRIES	8
#define REMAP_ENV	"RELOCFS_REMAP_TRY"

/*
 * The region must be where the last supervisor had it: the entries of FUSE
 * over io_uring hold raw pointers into it, which the kernel uses in
 * whichever process commits next (fs/uring.c).  A new binary's libraries
 * can sit there (address space layout randomization; rarely, the region
 * being small against the range), and each exec places them anew: run this
 * binary again, a few times.  Returns if it gave up or cannot.
 */
static void exec_again_elsewhere(struct daemon *d)
{
	const char *s = getenv(REMAP_ENV);
	int tries = s ? atoi(s) : 0;
	char n[16];

	if (tries >= REMAP_TRIES)
		return;
	snprintf(n, sizeof(n), "%d", tries + 1);
	setenv(REMAP_ENV, n, 1);
	execv("/proc/self/exe", d->argv);
}

/* A re-executed supervisor: the region of the running mount. */
static int region_adopt(struct daemon *d)
{
	struct daemon_region head;
	void *want;
	int r;

	/* where the last supervisor had it: the kernel holds pointers into it */
	if (pread(d->o.takeover_fd, &head, sizeof(head), 0) != (ssize_t)sizeof(head))
		return -EPROTO;
	want = head.magic == DAEMON_MAGIC ? (void *)(uintptr_t)head.base : NULL;
	r = shm_map(&d->shm, d->o.takeover_fd, want);
	if (r)
		return r;
	if (want && d->shm.base != want) {
		shm_unmap(&d->shm);
		exec_again_elsewhere(d);
		slog(LOG_WARNING, "cannot map the shared state where it was: requests that "
		     "io_uring entries held cannot be finished");
		r = shm_map(&d->shm, d->o.takeover_fd, NULL);
		if (r)
			return r;
	}
	unsetenv(REMAP_ENV);
	d->dr = d->shm.base;
	if (d->dr->magic != DAEMON_MAGIC || d->dr->layout != DAEMON_LAYOUT) {
		shm_unmap(&d->shm);
		return -EPROTO;
	}
	d->dr->base = (uint64_t)(uintptr_t)d->shm.base;
	d->source_fd = (int)d->dr->source_fd;
	ctl_server_adopt((int)d->dr->ctl_fd, d->mnt);
	/* back to close-on-exec: children of the workers must not inherit them */
	for (uint64_t i = 0; i < d->dr->nkeep; i++)
		fcntl((int)d->dr->keep[i], F_SETFD, FD_CLOEXEC);
	return 0;
}

static struct worker_start wstart;

static pid_t start_worker(struct daemon *d, bool takeover, bool standby)
{
	static char *stack;
	pid_t pid;

	if (!stack) {
		stack = mmap(NULL, WORKER_STACK, PROT_READ | PROT_WRITE,
			     MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
		if (stack == MAP_FAILED) {
			stack = NULL;
			return -1;
		}
	}
	wstart.d = d;
	wstart.takeover = takeover;
	wstart.standby = standby;
	d->dr->workers++;
	pid = clone(worker_main, stack + WORKER_STACK, CLONE_FILES | SIGCHLD, &wstart);
	if (pid == -1)
		d->dr->workers--;
	return pid;
}

/* Every descriptor the region names survives the exec: no close-on-exec. */
static void keep_across_exec(struct daemon *d)
{
	int *keep;
	size_t n;

	for (uint64_t i = 0; i < d->dr->nkeep; i++)
		fcntl((int)d->dr->keep[i], F_SETFD, 0);
	keep = malloc((2 * 65536 + 64) * sizeof(*keep));
	if (!keep)
		return;
	n = fs_region_fds(daemon_area(d, d->dr->fs_off), keep, 2 * 65536 + 64);
	for (size_t i = 0; i < n; i++)
		fcntl(keep[i], F_SETFD, 0);
	free(keep);
}

/* relocctl restart --exec: become the new binary, keeping the mount. */
static void reexec(struct daemon *d)
{
	char arg[64], **argv;
	int k = 0;

	argv = calloc((size_t)d->argc + 3, sizeof(*argv));
	if (!argv)
		return;
	for (int i = 0; i < d->argc; i++) {
		/* the last re-execution's own option: one is added below */
		if (i + 1 < d->argc && !strcmp(d->argv[i], "-o") &&
		    !strncmp(d->argv[i + 1], "takeover=", 9)) {
			i++;
			continue;
		}
		argv[k++] = d->argv[i];
	}
	snprintf(arg, sizeof(arg), "takeover=%d", d->shm.fd);
	argv[k++] = "-o";
	argv[k++] = arg;
	keep_across_exec(d);
	slog(LOG_INFO, "running '%s' in place of this supervisor", d->dr->exec_path);
	execv(d->dr->exec_path, argv);
	slog(LOG_ERR, "cannot run '%s': %s; the mount stays with this binary",
	     d->dr->exec_path, strerror(errno));
	for (uint64_t i = 0; i < d->dr->nkeep; i++)
		fcntl((int)d->dr->keep[i], F_SETFD, FD_CLOEXEC);
	free(argv);
}

static const char *how_ended(int status, char *buf, size_t len)
{
	if (WIFSIGNALED(status))
		snprintf(buf, len, "killed by signal %d (%s)", WTERMSIG(status),
			 strsignal(WTERMSIG(status)));
	else
		snprintf(buf, len, "exited with status %d", WEXITSTATUS(status));
	return buf;
}

int supervise(struct daemon *d)
{
	bool takeover = d->o.takeover_fd >= 0, ending = false;
	sigset_t set;
	pid_t pid, old = 0;	/* old: a worker that handed over, not yet reaped */
	pid_t next = 0;		/* a standby worker, started for a hand-over */
	int r;

	foreground = d->o.foreground;
	r = takeover ? region_adopt(d) : region_new(d);
	if (r) {
		fprintf(stderr, "relocfs: cannot %s the shared state: %s\n",
			takeover ? "take over" : "make", strerror(-r));
		return 1;
	}
	d->dr->supervisor_pid = (uint64_t)getpid();
	d->dr->handover = 0;
	if (takeover && d->dr->worker_pid) {
		/* the last image re-executed this one as soon as its worker had
		 * stopped (restart --exec): that worker is ours to reap */
		siginfo_t si = { 0 };

		if (waitid(P_PID, (id_t)d->dr->worker_pid, &si, WEXITED | WNOHANG | WNOWAIT) == 0)
			old = (pid_t)d->dr->worker_pid;
		d->dr->worker_pid = 0;
	}
	sigemptyset(&set);
	sigaddset(&set, SIGCHLD);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	sigaddset(&set, SIGUSR1);
	sigaddset(&set, SIGUSR2);
	sigprocmask(SIG_BLOCK, &set, NULL);
	pid = start_worker(d, takeover, false);
	if (pid == -1) {
		slog(LOG_ERR, "cannot start a worker: %s", strerror(errno));
		return 1;
	}
	for (;;) {
		siginfo_t si;
		int status;
		char how[128];
		pid_t got;

		if (sigwaitinfo(&set, &si) == -1)
			continue;
		if (si.si_signo == SIGUSR1) {
			/* a hand-over begins: the next worker starts as a standby */
			if (si.si_pid != pid || !d->dr->handover || d->dr->exec_path[0] || ending ||
			    next)
				continue;
			if (old) {
				/* the last hand-over's worker, at its exit by now */
				if (waitpid(old, &status, 0) == old &&
				    !(WIFEXITED(status) && WEXITSTATUS(status) == WORKER_HANDOVER))
					slog(LOG_WARNING, "worker %d %s after handing over", old,
					     how_ended(status, how, sizeof(how)));
				old = 0;
			}
			next = start_worker(d, true, true);
			if (next == -1) {
				slog(LOG_WARNING, "cannot start a standby worker: %s; the next starts "
				     "when the last has stopped", strerror(errno));
				next = 0;
			}
			continue;
		}
		if (si.si_signo == SIGUSR2) {
			/* the worker stopped all it ran (and let the standby go) */
			if (si.si_pid != pid || !d->dr->handover || ending || old)
				continue;
			if (d->dr->exec_path[0]) {
				/* restart --exec: nothing of the old worker touches
				 * the mount's state or the descriptors any more, so
				 * the new binary starts now, not after its exit; the
				 * new image reaps it (worker_pid, above) */
				reexec(d);
				/* it could not run: a worker of this binary serves */
				old = pid;
				d->dr->worker_pid = 0;
				d->dr->handover = 0;
				pid = start_worker(d, true, false);
				if (pid == -1) {
					slog(LOG_ERR, "cannot start a worker: %s; the mount is not "
					     "served", strerror(errno));
					return 1;
				}
				continue;
			}
			old = pid;
			d->dr->handover = 0;
			if (next) {
				pid = next;
				next = 0;
				continue;
			}
			pid = start_worker(d, true, false);
			if (pid == -1) {
				slog(LOG_ERR, "cannot start a worker: %s; the mount is not served",
				     strerror(errno));
				return 1;
			}
			continue;
		}
		if (si.si_signo != SIGCHLD) {
			ending = true;
			kill(pid, SIGTERM);	/* the worker unmounts and ends */
			if (next)
				kill(next, SIGTERM);
			continue;
		}
		if (old && waitpid(old, &status, WNOHANG) == old) {
			if (!(WIFEXITED(status) && WEXITSTATUS(status) == WORKER_HANDOVER))
				slog(LOG_WARNING, "worker %d %s after handing over", old,
				     how_ended(status, how, sizeof(how)));
			old = 0;
		}
		if (next && waitpid(next, &status, WNOHANG) == next) {
			slog(LOG_WARNING, "standby worker %d %s before it served", next,
			     how_ended(status, how, sizeof(how)));
			next = 0;
		}
		got = waitpid(pid, &status, WNOHANG);
		if (got != pid)
			continue;
		if (!(WIFEXITED(status) && WEXITSTATUS(status) == WORKER_HANDOVER))
			d->dr->ended_us = now_us();	/* a hand-over set it when it stopped reading */
		d->dr->worker_pid = 0;
		if (next) {
			/* it ended before it let its standby go: the standby
			 * takes over as after a death (or ends, if ending) */
			if (!(WIFEXITED(status) && WEXITSTATUS(status) == WORKER_HANDOVER)) {
				d->dr->deaths++;
				slog(LOG_WARNING, "worker %d %s while handing over; the standby "
				     "worker %d takes over", pid, how_ended(status, how, sizeof(how)),
				     next);
			}
			d->dr->handover = 0;
			if (__atomic_load_n(&d->dr->go, __ATOMIC_ACQUIRE) == HANDOVER_WAIT)
				__atomic_store_n(&d->dr->go, HANDOVER_ORPHANED, __ATOMIC_RELEASE);
			futex_wake(&d->dr->go);
			pid = next;
			next = 0;
			continue;
		}
		if (WIFEXITED(status) && WEXITSTATUS(status) == WORKER_DONE)
			return 0;
		if (!d->dr->mounted) {
			/* the first worker, before the mount served: it said why */
			if (WIFSIGNALED(status))
				fprintf(stderr, "relocfs: the worker %s before the mount served\n",
					how_ended(status, how, sizeof(how)));
			return 1;
		}
		if (ending)
			return 0;
		if (WIFEXITED(status) && WEXITSTATUS(status) == WORKER_NOSTART) {
			slog(LOG_ERR, "worker %d could not take the mount over; trying again in 1 s",
			     pid);
			sleep(1);
		} else if (WIFEXITED(status) && WEXITSTATUS(status) == WORKER_HANDOVER) {
			if (d->dr->exec_path[0]) {
				if (old)	/* the new image would not know it */
					waitpid(old, NULL, 0);
				old = 0;
				reexec(d);
			}
		} else {
			d->dr->deaths++;
			slog(LOG_WARNING, "worker %d %s; starting another", pid,
			     how_ended(status, how, sizeof(how)));
		}
		d->dr->handover = 0;
		pid = start_worker(d, true, false);
		if (pid == -1) {
			slog(LOG_ERR, "cannot start a worker: %s; the mount is not served",
			     strerror(errno));
			return 1;
		}
	}
}
