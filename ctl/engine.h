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

#include <stddef.h>

struct ctl_request;
struct engine;
struct fs;

/* Before mounting: read SOURCE/.relocfs, finish what a crash interrupted
 * (an abort, the cleanup after a cutover), and decide which directory the
 * mount serves.  source_fd is an O_PATH descriptor on SOURCE_DIR (still the
 * caller's); on success *root_fd is a new O_PATH descriptor on the directory
 * to serve.  -errno and one line in err on failure. */
int engine_new(struct engine **out, int source_fd, const char *source_path,
	       const char *mountpoint, int *root_fd, char *err, size_t errlen);
void engine_free(struct engine *e);

/* relocfs -o max_jobs=N: at most n jobs copy at once (0: no limit), over
 * what the record says; before engine_start. */
void engine_set_max_jobs(struct engine *e, unsigned n);

/* After the FUSE layer exists and before mounting: register the engine's
 * policy with it, and route the files of a migration found in the record
 * through their delta stores. */
int engine_attach(struct engine *e, struct fs *fs, char *err, size_t errlen);

/* After daemonizing: start the copiers of the resumed jobs, and the thread
 * that paces the jobs and starts the queued ones. */
int engine_start(struct engine *e);

/* Stop the copier threads and the governor (on unmount); the state stays
 * on disk.  Waits for the commands in progress. */
void engine_stop(struct engine *e);

/* Run one control command.  *out is a malloc'd reply text; returns the exit
 * status for relocctl (CTL_OK, CTL_EFAIL, CTL_EUSAGE). */
int engine_command(void *e, const struct ctl_request *req, char **out);

#endif
