/*
 * engine_i: the job engine's private parts, shared by its files:
 *   engine.c     the entry points: life cycle, policy, command dispatch
 *   record.c     the mount's record and the paths it names
 *   job.c        a job's files, its tree walk, its delta stores and copier
 *   namespace.c  files relocated on their own, and the names a job pins
 *                (the FUSE layer's policy)
 *   migrate.c    starting a job
 *   cutover.c    the cutover as steps; switch.c the switch and its commit
 *   handoff.c    the cutover that hands the VM to another host (qmp-migrate)
 *   abort.c      abort
 *   status.c     status and verify
 *   recover.c    picking the mount's state up after a restart
 * Not included outside ctl/.
 *
 * Locking: e->cmd_lock serialises the commands that change state (migrate,
 * cutover, abort, verify) and start-up; e->lock protects the fields marked
 * so, which status and the FUSE layer's policy callbacks read from other
 * threads.  Order: cmd_lock, then lock.  Neither is held while calling into
 * the FUSE layer's gate (fs_hold, fs_release), which may replay requests
 * that call back into the policy.
 */
#ifndef RELOCFS_ENGINE_I_H
#define RELOCFS_ENGINE_I_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>

#include "ctl/engine.h"
#include "ctl/mount_state.h"
#include "ctl/proto.h"

#define STATE_DIR ".relocfs"
#define DEFAULT_CUTOVER_TIMEOUT_S 60.0
#define HOLD_DRAIN_US (10u * 1000000)	/* requests in flight must finish within this */

struct copier;
struct delta;
struct fs;
struct fs_dir;
struct rnode;

/* An entry of a tree job's tree: what the switch points nodes at. */
struct entry {
	dev_t dev;
	ino_t ino;
	char *relpath;		/* "" for the root */
};

/* One file of a job. */
struct job_file {
	char *relpath;
	struct delta *d;	/* its delta store and live view */
	struct rnode *node;	/* the node that serves it (a daemon reference);
				 * NULL before the mount exists */
};

struct job {
	uint64_t id;
	bool tree;
	char *dest;		/* canonical */
	char *delta_dir;	/* this job's directory of delta files */
	uint64_t rate;
	int dest_fd;		/* O_RDONLY directory; -1 when it was lost (restart) */
	int delta_fd;		/* O_RDONLY directory */
	bool dest_lost;		/* a restart could not open the destination */
	bool keep_dest;		/* an abort leaves the destination as it is (a
				 * hand-off that may have reached it) */
	size_t n;
	struct job_file *files;
	struct delta **deltas;	/* files[i].d, as the copier takes them */
	struct copier *copier;	/* read by status under e->lock */
	size_t nentries;	/* tree jobs: every entry, for the switch */
	struct entry *entries;
};

/* A file relocated on its own: its name is routed to another backend. */
struct override {
	char *relpath;
	char *backend;
	dev_t pdev;		/* the directory that holds the name */
	ino_t pino;
	const char *name;	/* in relpath */
	size_t nanc;		/* directories from the root down to the parent */
	dev_t *adev;
	ino_t *aino;
};

/* A file handed off to another host: served read-only here. */
struct sealed_file {
	char *relpath;
	char *to;		/* the migration URI the VM went to */
	char *vm;		/* its name, "" if none */
	struct rnode *node;	/* sealed, with a daemon reference; NULL before
				 * the mount exists */
};

/* A file of the last finished job, for status. */
struct done_file {
	char *path;
	char *backend;
	uint64_t size;
	char state[16];
};

/*
 * After a cutover's hold, until the destination files and the renamed
 * record are durable, no flush may be acknowledged: a host crash would bring
 * back the old record (source plus delta) and lose a write the guest saw
 * flushed on the destination.  The FUSE layer calls the flush barrier
 * (switch.c) before it acknowledges any flush.
 */
struct commit {
	pthread_mutex_t lock;
	pthread_cond_t done;
	bool pending;		/* protected by lock; read unlocked as a hint */
	pthread_t owner;	/* the cutover thread */
	struct job *job;	/* whose destinations must be synced */
	int result;		/* of the syncs: 0 or -errno */
};

/*
 * The engine's part of the shared region: what a worker after this one must
 * know of a cutover this one had under way.  Written by the cutover thread
 * in this order: job, then each VM it paused (spec, then npaused), then
 * switched when it passes its point of no return (before the first node is
 * switched), then all cleared when the cutover ends.  A worker that finds a
 * cutover here finishes it (switched) or cancels it, and resumes the VMs.
 */
#define ENGINE_REGION_MAGIC 0x31474e4544434c52ull	/* "RLCDENG1" */
#define HOOK_SPEC_MAX 512

struct engine_region {
	uint64_t magic;
	uint64_t cutover_job;		/* id of the job being cut over, 0: none */
	uint64_t switched;		/* it passed its point of no return */
	uint64_t npaused;		/* VMs paused by its hooks, in order */
	char paused[CTL_HOOKS_MAX][HOOK_SPEC_MAX];
};

struct engine {
	struct fs *fs;			/* the FUSE layer; NULL before engine_attach */
	struct engine_region *region;	/* shared with the workers after this one */
	bool warm;			/* this worker took over from another */
	struct engine_proc proc;	/* the process's part (status, restart) */
	struct job *finish_switch;	/* warm: a switched job whose nodes may still
					 * be on the source (engine_attach) */
	struct job *bg_abort;		/* warm: an abort to finish in the background */
	pthread_mutex_t cmd_lock;	/* serialises migrate, cutover, abort, verify */
	bool handing_over;		/* under cmd_lock: restart accepted, refuse the rest */
	pthread_mutex_t lock;		/* protects the fields marked "lock" */
	int state_fd;			/* SOURCE/.relocfs, O_RDONLY; -1 until needed */
	int source_fd;			/* O_PATH on SOURCE */
	char *source;			/* SOURCE_DIR, canonical */
	char *mountpoint;
	char *root;			/* the directory served now; lock */
	int root_fd;			/* O_PATH on it */
	struct mount_state ms;		/* the record as saved; lock */
	struct job *job;		/* lock */
	struct override *ovr;		/* lock */
	size_t novr;			/* lock; read atomically as a hint */
	struct done_file *done;		/* files of the last finished job; lock */
	size_t ndone;
	uint64_t last_hold_us;
	char last_hooks[512];		/* "spec=ms, ..." of the last cutover; lock */
	/* set when a cutover switched but could not make that durable: the
	 * record on disk (with the cutover's next record beside it) must stay
	 * as it is, so that a restart rolls back to the source */
	bool record_frozen;
	struct commit commit;
	struct sealed_file *sealed;	/* files handed off to another host; lock */
	size_t nsealed;			/* lock; read atomically as a hint */
	char handoff_phase[64];		/* what a hand-off is doing now, for status; lock */
	char handoff_note[512];		/* how the last hand-off went, for status; lock */
	bool handoff_unknown;		/* a recorded hand-off whose end QEMU could not
					 * tell: settled by cutover or abort --force; lock */
	unsigned cleanups;		/* cleanup threads running; lock */
	pthread_cond_t cleanups_done;	/* cleanups reached 0 */
};

/* ---- record.c ---- */

/* Save e->ms as the mount's record (refused with -EIO once frozen).
 * Caller holds e->lock. */
int save_record(struct engine *e);
/* SOURCE/.relocfs, made if need be: its descriptor or -errno. */
int state_dir(struct engine *e);
/* Add dir to the record's clean-up list (caller holds e->lock). */
int ms_add_cleanup(struct mount_state *ms, const char *dir);
/* Remove what the record's clean-up list names, and save the record.
 * Caller holds e->lock. */
void run_cleanup(struct engine *e);
/* Paths under SOURCE_DIR are hidden by an over-mount: reach them through the
 * descriptor opened before mounting.  0 / descriptor, or -errno. */
int open_path(struct engine *e, const char *path, int flags);
int open_dir(struct engine *e, const char *path, int flags);
int mkdir_path(struct engine *e, const char *path, mode_t mode);
int rm_rf_path(struct engine *e, const char *path);
/* Remove the record's "state.next" (a cutover that did not switch). */
void drop_next_state(struct engine *e);

/* ---- job.c ---- */

void job_free(struct engine *e, struct job *j, bool unlink_delta);
/* 0, 1 for a hard link seen before, -ENOMEM */
int job_add_entry(struct job *j, const struct stat *st, const char *rel);
const char *job_entry_path(struct job *j, dev_t dev, ino_t ino);
/* Open a file of the served tree (or where its override leads). */
int open_source_file(struct engine *e, const char *rel, int flags);
/* A walk of the served tree that mirrors its directories, links and special
 * files into the destination (create) and collects its regular files. */
struct walk {
	struct job *job;
	bool create;		/* make the destination tree (false: a restart) */
	char **files;		/* regular files found, relpaths */
	size_t nfiles;
	uint64_t bytes;		/* their allocated size */
	uint64_t delta_room;	/* what their delta stores take up front */
	char err[512];
};
int walk_tree(struct walk *w, int sdir, int ddir, const char *rel);
void walk_free(struct walk *w);
/* The node of a file, with a daemon reference. */
struct rnode *node_for(struct engine *e, const char *rel);
/* Create (or reopen after a restart) the destination file, delta store and
 * live view of one file. */
int job_add_file(struct engine *e, struct job *j, const char *rel, bool create, char *err,
		 size_t errlen);
/* The job as the record has it (NULL: none).  Caller holds e->lock. */
int job_to_ms(struct mount_state *ms, struct job *j);
/* Remove what the job created in the destination. */
void remove_dest(struct job *j);
/* Put what the job created in the destination on the clean-up list. */
void add_dest_cleanup(struct engine *e, struct job *j);
void job_copier_stop(struct engine *e, struct job *j);
int job_copier_start(struct engine *e, struct job *j);
/* The destination path must still lead to the directory the copy went to;
 * if not, every file fails. */
bool job_dest_ok(struct job *j);
/* The job's nodes as an array for the gate (malloc'd), or NULL. */
struct rnode **job_nodes(struct job *j);

/* ---- namespace.c ---- */

void override_free(struct override *o);
/* Resolve relpath's directories from the served root (caller holds e->lock). */
int override_resolve(struct override *o, int root_fd);
/* The overrides as the record has them (caller holds e->lock). */
int overrides_to_ms(struct engine *e, struct mount_state *ms);
/* The FUSE layer's policy callbacks (fs_policy; arg is the engine). */
int ns_name_check(void *arg, const struct fs_dir *dir, const char *name, bool creates);
int ns_redirect(void *arg, const struct fs_dir *dir, const char *name);
void ns_redirect_removed(void *arg, const struct fs_dir *dir, const char *name);

/* ---- the commands ---- */

int cmd_migrate(struct engine *e, const struct ctl_request *req, char **out);
int cmd_cutover(struct engine *e, const struct ctl_request *req, char **out);
int cmd_abort(struct engine *e, char **out);
int cmd_verify(struct engine *e, char **out);
char *status_json(struct engine *e);
char *status_text(struct engine *e);
/* Remember the job's files as the last finished job (caller holds e->lock). */
void set_done_list(struct engine *e, struct job *j, const char *state, const char *backend);

/* ---- recover.c ---- */

/* The record, and the directory it says the mount serves (*root_fd). */
int load_record(struct engine *e, int *root_fd, char *err, size_t errlen);
/* The files relocated on their own that the record names. */
void load_overrides(struct engine *e, int root_fd);
/* The recorded job: resumed (e->job), or rolled back if it must be; warm,
 * a switched cutover is finished instead (the record, and *root_fd, may
 * change). */
int recover_job(struct engine *e, int *root_fd, char *err, size_t errlen);

/* ---- abort.c ---- */

/* Bring every change back into the source and serve it as before.  Before
 * the mount exists (a restart) nothing is held. */
int abort_job(struct engine *e, struct job *j, char *err, size_t errlen);

/* ---- switch.c ---- */

/* A node of a tree job and its counterpart in the destination, opened
 * before the hold so that the hold only swaps descriptors. */
struct preopen {
	struct rnode *node;
	int fd;
	struct stat st;
};

struct preopen_ctx {
	struct engine *e;
	struct job *job;
	struct preopen *p;	/* sorted by node (preopen_cmp) once filled */
	size_t n, cap;
};

/* fs_foreach_node callback: open the node's counterpart (tree jobs). */
void preopen_node(struct rnode *n, void *arg);
void preopen_free(struct preopen_ctx *c);
int preopen_cmp(const void *a, const void *b);

/* With the files held: an O_PATH descriptor of each destination file (from
 * pre, or opened now), checked to be the copy the job wrote, and a new
 * descriptor for each open handle (fs_prepare_reopen).  On failure nothing
 * is left prepared and err says why. */
int switch_prepare(struct job *j, struct preopen_ctx *pre, struct preopen *sw, char *err,
		   size_t errlen);

/* fs_foreach_node callback: switch a tree job's node looked up since. */
struct switch_ctx {
	struct engine *e;
	struct job *job;
	int errors;
};
void switch_tree_node(struct rnode *n, void *arg);

/* The record as it will be after the switch (shallow: it borrows strings). */
struct next_state {
	struct mount_state ms;
	struct ms_override *ovr;
	struct ms_sealed *sealed;
	char **cleanup;
};
int next_state_build(struct engine *e, struct next_state *ns, struct job *j);
/* Make e->ms what next_state_build described (owning copies).  e->lock held. */
int adopt_next_state(struct engine *e, struct job *j);

/* Copy owner, mode, times and extended attributes of src to dst (O_PATH or
 * real descriptors; symlinks get owner and times only). */
int copy_meta(int src, int dst, const struct timespec *mtime);
/* Metadata of a tree job's directories, symlinks and special files. */
void sync_dirs(int dirfd, struct job *j);

/* The barrier: from the switch until commit_make_durable() ends it, flushes
 * wait (commit_barrier); commit_make_durable() syncs the destinations, then
 * renames the next record over the record and syncs its directory. */
void commit_begin(struct engine *e, struct job *j);
int commit_make_durable(struct engine *e);
int commit_barrier(void *arg);

/* ---- cutover.c: the steps, for handoff.c ---- */

struct vmhook;
struct ctl_request;

/* One cutover in progress: what each step leaves for the next. */
struct cutover {
	struct engine *e;
	struct job *j;
	const struct ctl_request *req;
	struct vmhook *hooks[CTL_HOOKS_MAX];
	uint64_t hook_t0[CTL_HOOKS_MAX];
	int nhooks, paused, hook_ms;
	struct preopen_ctx pre;
	struct next_state ns;
	struct rnode **nodes;
	struct preopen *sw;		/* the migrating files, prepared for the switch */
	char err[512], hooktxt[512];
	uint64_t t_hold, t_drained, t_merged, t_release, hold_us;
	size_t parked;
	bool merged_unsynced;		/* the hold merged blocks without durable records */
	bool switched;
	bool handoff;			/* the files were handed off: seal, merge nothing */
	bool remove_source;
	int old_root_fd;		/* tree jobs: where the files were */
};

int step_wait(struct cutover *c, char **out);
/* the hold; on failure released with nothing switched */
int step_hold(struct cutover *c, char **out);
/* the point of no return (cannot fail) */
void step_switch(struct cutover *c);
/* durable: the destinations, then the renamed record; clean-up */
int step_commit(struct cutover *c, int ret, char **out);
void cutover_free(struct cutover *c);
/* fsync every destination file; on failure *out says so, and every delta
 * block is merged again (a failed sync may have lost earlier merges) */
int sync_dests(struct job *j, char **out);

/* ---- handoff.c ---- */

/* cutover with a hook that hands the VM to another host (c->hooks[0]) */
int cmd_handoff(struct cutover *c, char **out);
/* a hand-off recorded but not settled: settle it with c's hook, or with
 * --force (the VM runs at the destination) */
int handoff_settle(struct cutover *c, char **out);
/* abort of a job whose hand-off was recorded: only with --force */
int handoff_abort_check(struct engine *e, bool force, char **out);
/* Load the record's sealed files (before serving, e->lock not needed). */
int handoff_load(struct engine *e, char *err, size_t errlen);
/* Seal the files of the record, and a job's whose hand-off was recorded
 * (engine_attach). */
void handoff_attach(struct engine *e);
/* engine_start: finish or cancel the hand-off a dead daemon left, in a
 * thread of its own.  true if one was started (the copier is its to start). */
bool handoff_resolve_start(struct engine *e);
/* The FUSE layer's name check for sealed files (caller holds e->lock):
 * 0, or -EROFS. */
int handoff_name_check(struct engine *e, const struct fs_dir *dir, const char *name,
		       const struct stat *st, bool creates);
/* A sealed file's name (an override) was unlinked: forget it (e->lock held). */
void handoff_forget(struct engine *e, const char *relpath);
/* status --json: the hand-off and the sealed files (e->lock held) */
void handoff_status(struct engine *e, struct json_t *root, struct json_t *files);
void handoff_free(struct engine *e);

#endif
