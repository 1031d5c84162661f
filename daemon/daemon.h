/*
 * daemon: the relocfs process tree.
 *
 *   relocfs (supervisor)  owns the FUSE connection and the shared region;
 *      |                  starts workers, restarts one that dies, hands the
 *      |                  connection to a new one (or a new binary) on
 *      |                  request; small, so that it is unlikely to die
 *      +-- worker         serves every request, runs the job engine, the
 *                         copier and the control socket
 *
 * A worker is a clone of the supervisor that shares its descriptor table
 * (CLONE_FILES) but not its memory: every descriptor a worker opens (the
 * /dev/fuse connection, the backing files of nodes and handles, the control
 * socket) stays open when the worker dies, and keeps its number for the
 * next worker.  What else must outlive a worker is in one shared region
 * (common/shm.h): the daemon's header below, the job engine's area and the
 * FUSE layer's tables.  Everything else a new worker rebuilds from disk.
 *
 * If the supervisor dies, its worker serves on; when that worker ends, the
 * mount ends with it (the only holder of the connection is gone).
 */
#ifndef RELOCFS_DAEMON_H
#define RELOCFS_DAEMON_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>

#include <fuse_lowlevel.h>

#include "common/shm.h"

#define DAEMON_MAGIC	0x31444d5244434c52ull	/* "RLCDRMD1" */
#define DAEMON_LAYOUT	2
/* The layout of everything the shared region holds, as --version names
 * it: a binary can take a mount over only from one of the same layout. */
#define RELOCFS_LAYOUT_STR "2"
/* How the handles' backing descriptors are opened, as --version names it:
 * 1 as the kernel opened the file; 2 O_DIRECT also where the kernel caches
 * the file itself (fs/handle.c), which a worker of 1 would take for a
 * buffered descriptor and send it unaligned writes.  A binary takes a mount
 * over only from one of the same or a lower number; none printed is 1. */
#define RELOCFS_BACKING 2
#define RELOCFS_BACKING_STR "2"

/* How a worker ends (its exit status). */
enum {
	WORKER_DONE = 0,	/* the mount ended: the supervisor ends too */
	WORKER_HANDOVER = 75,	/* asked to hand over: start the next worker */
	WORKER_NOSTART = 76,	/* could not start; it said why */
};

#define DAEMON_KEEP_MAX	16	/* the supervisor's own descriptors */

/* The daemon's part of the shared region. */
struct daemon_region {
	uint64_t magic, layout;
	uint64_t supervisor_pid, worker_pid;
	uint64_t workers;		/* started since the mount, this one included */
	uint64_t deaths;		/* workers that died (not hand-overs) */
	uint64_t ended_us;		/* CLOCK_MONOTONIC when the last worker ended */
	uint64_t gap_us;		/* how long the connection was unserved then */
	uint64_t handover;		/* the worker was asked to hand over */
	char exec_path[PATH_MAX];	/* ... to this binary ("" the same) */
	uint64_t nkeep;			/* the supervisor's descriptors */
	int64_t keep[DAEMON_KEEP_MAX];
	int64_t ctl_fd, source_fd;
	uint64_t engine_off, fs_off;	/* where the engine's and the FUSE layer's areas are */
	uint64_t mounted;		/* the first worker mounted */
	uint64_t base;			/* where the supervisor mapped the region: a
					 * re-executed one maps it there again (the
					 * kernel keeps pointers into it, fs/uring.c) */
	uint32_t go;			/* a futex: may the standby worker of a
					 * hand-over take the mount? (HANDOVER_*) */
	uint32_t standby_up;		/* a futex: the standby waits on go */
};

/*
 * A graceful hand-over (relocctl restart without --exec) starts the next
 * worker while the old one still serves: the old worker sets go to
 * HANDOVER_WAIT and standby_up to 0 and sends SIGUSR1; the supervisor
 * starts a standby worker, which starts its thread, sets standby_up and
 * waits on go.  The old worker, once standby_up is set (or after
 * HANDOVER_STANDBY_MS without it), stops, sets HANDOVER_GO and wakes the
 * standby (then sends SIGUSR2 and exits).  If the old
 * worker dies first, the supervisor sets HANDOVER_ORPHANED once it has
 * reaped it: the standby takes over as after any death.  The field sits in
 * what was padding (zero) in regions of earlier binaries of this layout.
 */
enum { HANDOVER_WAIT = 0, HANDOVER_GO = 1, HANDOVER_ORPHANED = 2 };
#define HANDOVER_STANDBY_MS	1000

/* What a process of the daemon knows (the supervisor's copy is what every
 * worker starts with). */
struct daemon {
	struct {
		char *paths[3];
		int npaths;
		int foreground;
		int debug;
		int help;
		int version;
		unsigned threads;
		double timeout;
		int writeback;
		unsigned poll_us;	/* -o poll=: io_uring busy polling */
		int max_jobs;		/* -1: not given (the record's, or no limit) */
		char *transport;	/* -o transport= as given */
		int transport_bare;	/* -o transport without a value */
		int takeover_fd;	/* a re-executed supervisor: the region's descriptor */
	} o;
	int argc;
	char **argv;			/* as given, for a re-exec */
	struct fuse_args args;		/* for libfuse's sessions */
	char source[PATH_MAX], mnt[PATH_MAX];
	int source_fd;			/* O_PATH on SOURCE_DIR, opened before the mount hides it */
	int ready_fd;			/* to the process that waits for the mount, or -1 */
	int transport;			/* enum fs_transport */
	struct shm shm;
	struct daemon_region *dr;
};

static inline void *daemon_area(struct daemon *d, uint64_t off)
{
	return (char *)d->shm.base + off;
}

/* ---- supervisor.c ---- */

/* Create the shared region (a new mount) or map it again (a re-executed
 * supervisor), then run workers until the mount ends.  Returns the exit
 * status of relocfs. */
int supervise(struct daemon *d);

/* ---- worker.c ---- */

struct worker_start {
	struct daemon *d;
	bool takeover;		/* not the first worker of the mount */
	bool standby;		/* started ahead of a hand-over: waits on go */
};

/* The worker's life (arg: a struct worker_start): start (first) or take
 * over (later), serve, end.  Never returns: exits with a WORKER_* status. */
int worker_main(void *arg);

#endif
