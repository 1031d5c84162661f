/*
 * engine: the job engine: live relocation of the served tree, or of some
 * files in it, as named jobs, several at once.  migrate starts (or queues) a
 * job: its delta stores and its copier; cutover switches a job's files to
 * its destination inside one short hold, abort returns them to the source;
 * the copiers share one bandwidth budget (limit); the mount's state record
 * (mount_state.h) makes each step of each job survive a restart of the
 * daemon.
 *
 * The layer's contract
 * --------------------
 * The engine is the top of the daemon's layers but for start-up: it drives
 * the FUSE layer (fs/fs.h: holds, routes, switches), the delta stores
 * (delta/delta.h), the copier and the hypervisor hooks, and registers with
 * the FUSE layer what that layer needs of it (pinned names, files relocated
 * on their own, the cutover's flush barrier).  No write acknowledged by a
 * flush is lost at any step, whatever fails, and a restart with the same
 * arguments carries on from the record.
 *
 * Called by the daemon's start-up (new, attach, start, stop, free) and by the
 * control server (engine_command, each from its own thread; the commands
 * that change state are serialised inside).
 */
#ifndef RELOCFS_ENGINE_H
#define RELOCFS_ENGINE_H

#include <stdbool.h>
#include <stddef.h>

struct ctl_request;
struct engine;
struct fs;
struct json_t;

/* Bytes of shared region the engine keeps what a worker after this one must
 * know in (a cutover under way: how far it got, the VMs it paused). */
size_t engine_region_size(void);

/* Before serving: read SOURCE/.relocfs, finish what a crash interrupted
 * (an abort, the cleanup after a cutover), and decide which directory the
 * mount serves.  source_fd is an O_PATH descriptor on SOURCE_DIR (still the
 * caller's); on success *root_fd is a new O_PATH descriptor on the directory
 * to serve.  region is the engine's part of the shared region (zeroed when
 * new).  warm: a worker takes over from another, the mount and the guest's
 * view live on, so nothing the guest saw may go back: a cutover that had
 * switched is finished instead of rolled back, the VMs a dead cutover had
 * paused are resumed, an abort under way goes on in the background.  -errno
 * and one line in err on failure. */
int engine_new(struct engine **out, int source_fd, const char *source_path,
	       const char *mountpoint, int *root_fd, void *region, bool warm, char *err,
	       size_t errlen);
void engine_free(struct engine *e);

/* relocfs -o max_jobs=N: at most n jobs copy at once (0: no limit), over
 * what the record says; recorded, so that a worker taking over keeps it.
 * Before engine_start.  0, or -errno with one line in err: the limit
 * applies, but the record could not be written. */
int engine_set_max_jobs(struct engine *e, unsigned n, char *err, size_t errlen);
/* What the engine asks of the process that runs it. */
struct engine_proc {
	void *arg;
	/* status --json: add the process's own fields (called without the
	 * engine's locks) */
	void (*status)(void *arg, struct json_t *root);
	/* relocctl restart: hand the mount over to a new worker (running
	 * exec_path; NULL: this binary) once the command's reply is sent.
	 * 0, or -errno with one line in err (nothing happens then). */
	int (*restart)(void *arg, const char *exec_path, char *err, size_t errlen);
};

/* Register it (before the control server starts). */
void engine_set_proc(struct engine *e, const struct engine_proc *proc);

/* After the FUSE layer exists and before mounting: register the engine's
 * policy with it, switch what a dead worker's switched cutover had not yet
 * (warm), and route the files of every running job found in the record
 * through their delta stores. */
int engine_attach(struct engine *e, struct fs *fs, char *err, size_t errlen);

/* After daemonizing: resume the VMs a dead worker's cutover had paused
 * (warm), start the copiers of the resumed jobs, the thread that paces the
 * jobs and starts the queued ones, and (warm) the thread that finishes the
 * aborts the record asks for, one job after another. */
int engine_start(struct engine *e);

/* Stop every thread of the engine (on unmount, or before a hand-over to the
 * next worker): the copiers, the governor, the aborts in the background, a
 * cutover's clean-up, the delta stores' checkpointers; the state stays on
 * disk, and commands after it are refused.  Waits for the commands in
 * progress and the abort under way.  When it returns this process writes
 * nothing of the engine's, and the next worker may open it while this one
 * exits. */
void engine_stop(struct engine *e);

/* Run one control command.  *out is a malloc'd reply text; returns the exit
 * status for relocctl (CTL_OK, CTL_EFAIL, CTL_EUSAGE). */
int engine_command(void *e, const struct ctl_request *req, char **out);

#endif
