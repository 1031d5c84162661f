/*
 * worker: one worker process of the daemon (see daemon.h): it starts the
 * mount (the first worker) or takes a running one over (every later one),
 * serves it until the mount ends or it is asked to hand over, and ends.
 *
 * A first worker: the job engine reads the mount's record and decides which
 * directory to serve, the FUSE layer's tables start in the shared region,
 * the worker mounts and tells the waiting process the mount serves.
 * A later worker, in this order (each step needs the one before):
 *   1. adopt the FUSE layer's tables from the region (fs_new);
 *   2. list every descriptor that no table and no part of the supervisor
 *      names: what the last worker left in the shared descriptor table
 *      (the job engine's files, sockets, the copier's, its io_uring
 *      rings...); they are closed once this worker serves (close_swept),
 *      since closing a ring costs up to a millisecond;
 *   3. the job engine recovers from the record, as after a restart of the
 *      daemon, but "warm": the guest saw nothing, so nothing it saw may go
 *      back (a cutover that switched is finished, not rolled back);
 *   4. take the connection over, and have the kernel resend what the dead
 *      worker had read and not answered (fs_takeover), before the first read.
 *
 * Threads: a worker is a clone of the single-threaded supervisor without
 * glibc's fork handling, so its first thread carries the supervisor's
 * thread id in glibc's thread descriptor; all the work runs on a thread the
 * worker creates, and the first thread only waits for it.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/crashpoint.h"
#include "common/futex.h"
#include "common/log.h"
#include "ctl/engine.h"
#include "ctl/mount_state.h"
#include "ctl/server.h"
#include "daemon/daemon.h"
#include "daemon/service.h"
#include "fs/fs.h"

extern char **environ;

struct worker {
	struct daemon *d;
	struct daemon_region *dr;
	bool takeover;		/* not the first worker of the mount */
	bool standby;		/* started ahead of a hand-over (daemon.h) */
	struct engine *eng;
	struct fs *fs;
	struct fuse_session *se;
	uint64_t t0;		/* when this worker started (a standby: was let go) */
	uint64_t t_tables, t_engine, t_conn;	/* when each part of a takeover was done */
	int *drop;		/* descriptors the last worker left (sweep_fds) */
	size_t ndrop;
	pthread_t closer;	/* close_swept's thread */
	bool closer_started;
};

static void say(struct worker *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* An error before the mount serves: one line on stderr (the caller of
 * relocfs sees it, or the log once daemonized). */
static void say(struct worker *w, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (w->takeover)
		log_warnx("%s", msg);
	else
		fprintf(stderr, "relocfs: %s\n", msg);
}

static int cmp_int(const void *a, const void *b)
{
	return *(const int *)a - *(const int *)b;
}

/* List every descriptor nobody names (step 2 above), for close_swept. */
static void sweep_fds(struct worker *w)
{
	size_t max = 2 * 65536 + 64, n = 0;
	int *keep = malloc(max * sizeof(*keep));
	int *drop = NULL;
	size_t ndrop = 0, cap = 0;
	struct dirent *de;
	DIR *dir;

	if (!keep)
		return;
	keep[n++] = 0;
	keep[n++] = 1;
	keep[n++] = 2;
	for (uint64_t i = 0; i < w->dr->nkeep && i < DAEMON_KEEP_MAX; i++)
		keep[n++] = (int)w->dr->keep[i];
	n += fs_keep_fds(w->fs, keep + n, max - n);
	qsort(keep, n, sizeof(*keep), cmp_int);
	dir = opendir("/proc/self/fd");
	while (dir && (de = readdir(dir))) {
		int fd = atoi(de->d_name);

		if (de->d_name[0] == '.' || fd == dirfd(dir) ||
		    bsearch(&fd, keep, n, sizeof(*keep), cmp_int))
			continue;
		if (ndrop == cap) {
			int *nd = realloc(drop, (cap ? cap * 2 : 64) * sizeof(*nd));

			if (!nd)
				break;
			drop = nd;
			cap = cap ? cap * 2 : 64;
		}
		drop[ndrop++] = fd;
	}
	if (dir)
		closedir(dir);
	free(keep);
	w->drop = drop;
	w->ndrop = ndrop;
}

/*
 * Close what sweep_fds listed, on a thread of its own once this worker
 * serves.  Safe beside the worker's own opens: a listed descriptor stays
 * in use until it is closed here, so no open of this worker gets its
 * number before, and each is closed once.
 */
static void *close_swept(void *arg)
{
	struct worker *w = arg;

	for (size_t i = 0; i < w->ndrop; i++)
		close(w->drop[i]);
	if (w->ndrop)
		log_info("closed %zu descriptor(s) the last worker left open", w->ndrop);
	free(w->drop);
	w->drop = NULL;
	return NULL;
}

static void close_swept_later(struct worker *w)
{
	if (!w->ndrop)
		return;
	if (pthread_create(&w->closer, NULL, close_swept, w))
		close_swept(w);
	else
		w->closer_started = true;
}

/* Before the next worker may start: it lists what it finds open, and a
 * number this worker closed after that could be one of its own. */
static void close_swept_wait(struct worker *w)
{
	if (w->closer_started)
		pthread_join(w->closer, NULL);
	w->closer_started = false;
}

/* ---- what the job engine asks of the process ------------------------------- */

static void proc_status(void *arg, json_t *root)
{
	struct worker *w = arg;
	uint64_t nodes, handles;

	fs_counts(w->fs, &nodes, &handles);
	json_object_set_new(root, "supervisor_pid", json_integer((json_int_t)w->dr->supervisor_pid));
	json_object_set_new(root, "worker_pid", json_integer(getpid()));
	json_object_set_new(root, "worker_restarts", json_integer((json_int_t)w->dr->workers - 1));
	json_object_set_new(root, "worker_deaths", json_integer((json_int_t)w->dr->deaths));
	json_object_set_new(root, "last_unserved_ms", json_real((double)w->dr->gap_us / 1000.0));
	json_object_set_new(root, "nodes", json_integer((json_int_t)nodes));
	json_object_set_new(root, "open_handles", json_integer((json_int_t)handles));
	json_object_set_new(root, "transport", json_string(fs_transport_name(w->fs)));
	json_object_set_new(root, "poll_us", json_integer((json_int_t)w->d->o.poll_us));
	json_object_set_new(root, "writeback", json_boolean(fs_writeback(w->fs)));
}

/* Does path run, as a relocfs of the same state layout?  0, or -errno with
 * err. */
static int check_binary(const char *path, char *err, size_t errlen)
{
	char *argv[] = { (char *)path, "--version", NULL };
	char out[512] = "", *rec;
	posix_spawn_file_actions_t fa;
	int pfd[2], status = 0;
	ssize_t len = 0, r;
	pid_t pid;

	if (path[0] != '/') {
		snprintf(err, errlen, "'%s' is not an absolute path", path);
		return -EINVAL;
	}
	if (access(path, X_OK) == -1) {
		snprintf(err, errlen, "cannot run '%s': %s", path, strerror(errno));
		return -errno;
	}
	if (pipe2(pfd, O_CLOEXEC) == -1)
		return -errno;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, pfd[1], 1);
	if (posix_spawn(&pid, path, &fa, NULL, argv, environ)) {
		posix_spawn_file_actions_destroy(&fa);
		close(pfd[0]);
		close(pfd[1]);
		snprintf(err, errlen, "cannot run '%s'", path);
		return -ENOEXEC;
	}
	posix_spawn_file_actions_destroy(&fa);
	close(pfd[1]);
	while (len < (ssize_t)sizeof(out) - 1 &&
	       (r = read(pfd[0], out + len, sizeof(out) - 1 - (size_t)len)) > 0)
		len += r;
	close(pfd[0]);
	waitpid(pid, &status, 0);
	out[len] = '\0';
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0 || !strstr(out, "relocfs ")) {
		snprintf(err, errlen, "'%s --version' did not answer as relocfs", path);
		return -ENOEXEC;
	}
	if (!strstr(out, "state layout " RELOCFS_LAYOUT_STR ")")) {
		snprintf(err, errlen, "'%s' keeps its state in another layout than this relocfs "
			 "(state layout %s): it cannot take the mount over", path,
			 RELOCFS_LAYOUT_STR);
		return -EPROTO;
	}
	/* before "state record" was printed, every binary read version 1 */
	rec = strstr(out, "state record ");
	if ((rec ? atoi(rec + strlen("state record ")) : 1) < MS_VERSION) {
		snprintf(err, errlen, "'%s' cannot read this mount's record (version %d): it "
			 "cannot take the mount over", path, MS_VERSION);
		return -EPROTO;
	}
	rec = strstr(out, ", backing ");
	if ((rec ? atoi(rec + strlen(", backing ")) : 1) < RELOCFS_BACKING) {
		snprintf(err, errlen, "'%s' would take this mount's O_DIRECT backing descriptors "
			 "of cached files for buffered ones (backing %d): it cannot take the "
			 "mount over", path, RELOCFS_BACKING);
		return -EPROTO;
	}
	return 0;
}

/*
 * The next worker's process and thread start while this one still serves,
 * so that their start is not part of the time the connection waits
 * (daemon.h).  Without a standby in time, the next worker starts when this
 * one has stopped.
 */
static void start_standby(struct worker *w)
{
	uint64_t end = now_us() + HANDOVER_STANDBY_MS * 1000ull;

	__atomic_store_n(&w->dr->go, HANDOVER_WAIT, __ATOMIC_RELEASE);
	__atomic_store_n(&w->dr->standby_up, 0, __ATOMIC_RELEASE);
	kill((pid_t)w->dr->supervisor_pid, SIGUSR1);
	while (!__atomic_load_n(&w->dr->standby_up, __ATOMIC_ACQUIRE) && now_us() < end)
		futex_wait(&w->dr->standby_up, 0, 50);
	if (!__atomic_load_n(&w->dr->standby_up, __ATOMIC_ACQUIRE))
		log_warnx("no standby worker after %d ms: the next starts when this one has "
			  "stopped", HANDOVER_STANDBY_MS);
}

static int proc_restart(void *arg, const char *exec_path, char *err, size_t errlen)
{
	struct worker *w = arg;
	int r;

	if (exec_path) {
		r = check_binary(exec_path, err, errlen);
		if (r)
			return r;
		snprintf(w->dr->exec_path, sizeof(w->dr->exec_path), "%s", exec_path);
	} else {
		w->dr->exec_path[0] = '\0';
	}
	__atomic_store_n(&w->dr->handover, 1, __ATOMIC_RELEASE);
	if (!exec_path) {
		start_standby(w);
		crashpoint("handover-standby");	/* the standby waits */
	}
	log_info("handing the mount over to a new worker%s%s", exec_path ? " running " : "",
		 exec_path ? exec_path : "");
	/* from here the connection is not read: the next worker's wait starts */
	__atomic_store_n(&w->dr->ended_us, now_us(), __ATOMIC_RELEASE);
	fs_stop(w->fs);	/* the loop ends; the command's reply still goes out */
	return 0;
}

/* ---- start ---------------------------------------------------------------------- */

/* The first worker: the engine decides what to serve, the mount starts. */
static int start_first(struct worker *w)
{
	struct daemon *d = w->d;
	struct fs_config cfg;
	char err[512];
	int root_fd;

	if (engine_new(&w->eng, d->source_fd, d->source, d->mnt, &root_fd,
		       daemon_area(d, w->dr->engine_off), false, err, sizeof(err))) {
		say(w, "%s", err);
		return -1;
	}
	/* recorded: a later worker finds it in the record (or what limit
	 * --parallel made of it since), not in the options */
	if (d->o.max_jobs >= 0 && engine_set_max_jobs(w->eng, (unsigned)d->o.max_jobs, err,
						      sizeof(err)))
		log_warnx("%s", err);
	cfg = (struct fs_config){
		.source = d->source,
		.root_fd = root_fd,
		.threads = d->o.threads,
		.timeout = d->o.timeout,
		.writeback = d->o.writeback,
		.transport = (enum fs_transport)d->transport,
		.poll_us = d->o.poll_us,
		.mountpoint = d->mnt,
		.hidden = ".relocfs",
	};
	if (fs_new(&w->fs, &cfg, daemon_area(d, w->dr->fs_off), false)) {
		say(w, "cannot set up the node table of '%s'", d->source);
		close(root_fd);
		return -1;
	}
	if (engine_attach(w->eng, w->fs, err, sizeof(err))) {
		say(w, "%s", err);
		return -1;
	}
	w->se = fs_session_new(w->fs, &d->args);
	if (!w->se)
		return -1;	/* libfuse said which option it did not know */
	if (fs_mount(w->fs, d->mnt)) {
		say(w, "cannot mount on '%s'", d->mnt);
		return -1;
	}
	__atomic_store_n(&w->dr->mounted, 1, __ATOMIC_RELEASE);
	return 0;
}

/* A later worker: adopt, sweep, recover warm, take the connection over. */
static int start_takeover(struct worker *w)
{
	struct daemon *d = w->d;
	struct fs_config cfg = {
		.source = d->source,
		.root_fd = -1,
		.threads = d->o.threads,
		.timeout = d->o.timeout,
		.writeback = d->o.writeback,
		.transport = (enum fs_transport)d->transport,
		.poll_us = d->o.poll_us,
		.mountpoint = d->mnt,
		.hidden = ".relocfs",
	};
	char err[512];
	int root_fd, r;

	r = fs_new(&w->fs, &cfg, daemon_area(d, w->dr->fs_off), true);
	if (r) {
		say(w, "cannot take over the node table: %s", strerror(-r));
		return -1;
	}
	sweep_fds(w);
	if (!d->o.foreground)
		log_init("relocfs", true, LOG_LVL_INFO);	/* the old socket was swept */
	w->t_tables = now_us();
	if (engine_new(&w->eng, d->source_fd, d->source, d->mnt, &root_fd,
		       daemon_area(d, w->dr->engine_off), true, err, sizeof(err))) {
		say(w, "%s", err);
		return -1;
	}
	close(root_fd);	/* the node table's root serves */
	if (engine_attach(w->eng, w->fs, err, sizeof(err))) {
		say(w, "%s", err);
		return -1;
	}
	w->t_engine = now_us();
	w->se = fs_session_new(w->fs, &d->args);
	if (!w->se)
		return -1;
	r = fs_takeover(w->fs, true);
	w->t_conn = now_us();
	if (r && r != -ENOTSUP) {
		say(w, "cannot take the connection over: %s", strerror(-r));
		return -1;
	}
	return 0;
}

/* Tell the process waiting for the mount that it serves. */
static void report_ready(struct worker *w)
{
	int fd = w->d->ready_fd;
	int null;

	if (fd == -1)
		return;
	(void)!write(fd, "OK", 2);
	close(fd);
	w->d->ready_fd = -1;
	/* the waiting process has ended: stdio goes nowhere from now on (the
	 * descriptor table is the supervisor's too) */
	null = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (null != -1) {
		dup2(null, 0);
		dup2(null, 1);
		dup2(null, 2);
		close(null);
	}
}

/* The mount ends (unmounted, or a signal asked for the end). */
static void end_mount(struct worker *w)
{
	svc_stopping();
	ctl_server_stop();	/* no new command; engine_stop waits for a running one */
	engine_stop(w->eng);
	if (w->takeover) {
		/* this session did not mount: unmount by the path */
		if (umount2(w->d->mnt, MNT_DETACH) == -1 && errno != EINVAL && errno != ENOENT)
			log_warn("cannot unmount '%s'", w->d->mnt);
	} else {
		fuse_session_unmount(w->se);
	}
}

/*
 * A standby worker: its process and thread are up (the costly part of a
 * start) while the old worker still serves; the rest waits for the old
 * worker to stop, or for the supervisor to see it die.
 */
static void wait_go(struct worker *w)
{
	__atomic_store_n(&w->dr->standby_up, 1, __ATOMIC_RELEASE);
	futex_wake(&w->dr->standby_up);
	while (__atomic_load_n(&w->dr->go, __ATOMIC_ACQUIRE) == HANDOVER_WAIT) {
		futex_wait(&w->dr->go, HANDOVER_WAIT, 100);
		if ((uint64_t)getppid() != w->dr->supervisor_pid)
			_exit(WORKER_NOSTART);	/* the supervisor died meanwhile */
	}
	/* HANDOVER_GO, or HANDOVER_ORPHANED: the supervisor said why */
	w->t0 = now_us();
}

static void *worker_thread(void *arg)
{
	struct worker *w = arg;
	struct engine_proc proc = {
		.arg = w,
		.status = proc_status,
		.restart = proc_restart,
	};
	sigset_t none;
	int r;

	sigemptyset(&none);
	pthread_sigmask(SIG_SETMASK, &none, NULL);
	if (w->standby)
		wait_go(w);
	r = w->takeover ? start_takeover(w) : start_first(w);

	if (r)
		_exit(WORKER_NOSTART);
	engine_set_proc(w->eng, &proc);
	if (fuse_set_signal_handlers(w->se)) {
		say(w, "cannot set up signal handlers");
		_exit(WORKER_NOSTART);
	}
	__atomic_store_n(&w->dr->worker_pid, (uint64_t)getpid(), __ATOMIC_RELEASE);
	if (w->takeover) {
		uint64_t t = now_us(), gap = w->dr->ended_us ? t - w->dr->ended_us : 0;

		w->dr->gap_us = gap;
		log_info("worker %d serves '%s' (worker %llu of the mount): the connection waited "
			 "%.1f ms: %.1f until this worker ran, %.1f for the tables, %.1f for the "
			 "engine, %.1f for the connection, %.1f to start serving", getpid(), w->d->mnt,
			 (unsigned long long)w->dr->workers, gap / 1000.0,
			 w->dr->ended_us && w->t0 > w->dr->ended_us ?
				 (w->t0 - w->dr->ended_us) / 1000.0 : 0.0,
			 (w->t_tables - w->t0) / 1000.0, (w->t_engine - w->t_tables) / 1000.0,
			 (w->t_conn - w->t_engine) / 1000.0, (t - w->t_conn) / 1000.0);
		close_swept_later(w);
	} else {
		report_ready(w);
		/* the connection goes to the service manager's store, which
		 * keeps the mount if the supervisor itself dies (service.h) */
		svc_ready(w->d->mnt, fuse_session_fd(w->se));
		/* each worker opens its own connection to syslog: the
		 * supervisor keeps none that a sweep could close under it */
		if (!w->d->o.foreground)
			log_init("relocfs", true, LOG_LVL_INFO);
		log_info("serving '%s' at '%s'", w->d->source, w->d->mnt);
	}
	/* the recovered job's copier first: a command may come as soon as the
	 * control socket listens */
	if (engine_start(w->eng) || ctl_server_start(engine_command, w->eng))
		log_warnx("relocation control did not start; serving files only");
	fs_loop(w->fs);
	if (fs_stopped(w->fs)) {
		/* a hand-over: answer the commands in progress (the restart's
		 * own reply among them), keep the socket for the next worker */
		uint64_t t_loop = now_us(), t_stop;

		ctl_server_quiesce();
		engine_stop(w->eng);
		close_swept_wait(w);
		t_stop = now_us();
		/* logged before the signal: the next worker closes the
		 * descriptors this one leaves, syslog's among them, and the
		 * descriptor table is shared */
		log_info("handing over: the loop ended %.1f ms after the last read, commands "
			 "and the engine %.1f ms later", (t_loop - w->dr->ended_us) / 1000.0,
			 (t_stop - t_loop) / 1000.0);
		/* nothing of this process touches the mount's state any more:
		 * the standby worker may take the mount before this one's exit
		 * (a plain restart; --exec waits for the exit) */
		crashpoint("handover-stopped");	/* stopped, the standby not let go */
		__atomic_store_n(&w->dr->go, HANDOVER_GO, __ATOMIC_RELEASE);
		futex_wake(&w->dr->go);
		kill((pid_t)w->dr->supervisor_pid, SIGUSR2);
		_exit(WORKER_HANDOVER);
	}
	end_mount(w);
	_exit(WORKER_DONE);
	return NULL;
}

int worker_main(void *arg)
{
	struct worker w = { .d = ((struct worker_start *)arg)->d,
			    .takeover = ((struct worker_start *)arg)->takeover,
			    .standby = ((struct worker_start *)arg)->standby,
			    .t0 = now_us() };
	pthread_t t;
	sigset_t all;

	w.dr = w.d->dr;
	/* this thread takes no signal: the worker's thread does (libfuse's
	 * handlers end the loop, and must interrupt the loop's wait) */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, NULL);
	signal(SIGCHLD, SIG_DFL);
	/* the supervisor's death ends its worker, and with it the mount: a
	 * worker alone could not be replaced */
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if ((uint64_t)getppid() != w.dr->supervisor_pid)
		_exit(WORKER_NOSTART);	/* it died before we asked */
	crashpoint_scope((pid_t)w.dr->supervisor_pid);
	if (pthread_create(&t, NULL, worker_thread, &w)) {
		say(&w, "cannot start the worker's thread");
		_exit(WORKER_NOSTART);
	}
	pthread_join(t, NULL);
	_exit(WORKER_DONE);
}
