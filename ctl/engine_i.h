/*
 * engine_i: the job engine's private parts, shared by its files:
 *   engine.c     the entry points: life cycle, policy, command dispatch
 *   record.c     the mount's record (and the next record of a cutover) and
 *                the paths it names
 *   job.c        a job's files, its tree walk, its delta stores and copier
 *   sched.c      several jobs at once: finding a job by name, the queue,
 *                the budget's shares, deadlines (the governor thread), limit
 *   namespace.c  files relocated on their own, and the names running jobs
 *                pin (the FUSE layer's policy)
 *   rbd_dest.c   what a job into RBD images does differently
 *   migrate.c    asking for a job, and starting one
 *   cutover.c    the cutover as steps; switch.c the switch and its commit
 *   handoff.c    the cutover that hands a job's VM to another host
 *                (qmp-migrate), and the files it leaves read-only here
 *   abort.c      abort
 *   status.c     status and verify
 *   recover.c    picking the mount's state up after a restart
 * Not included outside ctl/.
 *
 * Jobs.  A mount has any number of jobs (at most ENGINE_JOBS_MAX), each
 * with a name ("" for the unnamed one that a command without --job means),
 * its own destination, delta stores, copier and cutover.  Their files do
 * not overlap, and a whole-tree job runs alone.  A job is queued (recorded,
 * nothing of it exists yet) until a slot is free: at most e->ms.parallel
 * jobs copy their base at once; it is running from its start until it is
 * cut over or aborted.
 *
 * Locking: e->cmd_lock serialises the commands that change jobs (migrate,
 * cutover, abort, verify), the governor's starting of queued jobs, and
 * start-up; every hold of the FUSE layer's gate is taken under it, so that
 * there is one at a time.  A command that waits long (a cutover waiting
 * for its files to be ready, a verify) marks its job busy and lets go of
 * cmd_lock meanwhile; busy jobs are left alone by the others, and
 * engine_stop waits for them (e->busy).  e->lock protects the fields marked
 * so, which status, the governor and the FUSE layer's policy callbacks read
 * from other threads.  Order: cmd_lock, then commit.lock, then lock, then
 * the budget's and the delta stores' own locks.  lock is not held while
 * calling into the FUSE layer's gate (fs_hold, fs_release), which may replay
 * requests that call back into the policy.
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
#define JOB_PRIORITY_DEFAULT 100
#define ENGINE_JOBS_MAX 64		/* jobs queued, running or failed at once */
#define FINISHED_MAX 256		/* finished jobs status remembers */
#define GOVERNOR_TICK_US 200000

struct budget;
struct budget_client;
struct copier;
struct delta;
struct rbd_spec;
struct target;
struct fs;
struct fs_dir;
struct rnode;

/* An entry of a tree job's tree: what the switch points nodes at. */
struct entry {
	dev_t dev;
	ino_t ino;
	char *relpath;		/* "" for the root */
	bool reg;		/* a regular file */
	nlink_t nlink;		/* its link count when first seen */
	unsigned names;		/* the names it was seen under */
};

/* One file of a running job. */
struct job_file {
	char *relpath;
	struct delta *d;	/* its delta store and live view */
	struct rnode *node;	/* the node that serves it (a daemon reference);
				 * NULL before the mount exists */
	/* the directories from the root down to the file's (lock): renaming
	 * one would move the file, so they are pinned with it */
	size_t ndirs;
	dev_t *ddev;
	ino_t *dino;
};

enum job_state {
	JOB_NEW,	/* being set up by the command that made it: in no list,
			 * not recorded (a failed start frees it) */
	JOB_QUEUED,	/* recorded; waits for a slot; nothing of it exists yet */
	JOB_RUNNING,	/* its files go through their delta stores */
	JOB_FAILED,	/* could not start (error says why); listed until abort */
};

/* A job's hand-off to another host (handoff.c).  state, spec, vm and
 * remove_source are what the record says (job_to_ms writes them); the
 * rest is for status.  Protected by e->lock; changed by the thread that
 * holds cmd_lock (or the job busy). */
struct job_handoff {
	enum ms_handoff state;
	char *spec;		/* the hook, "SOCKET@URI"; NULL with none */
	char *vm;		/* the VM's name, "" if not known yet */
	bool remove_source;
	bool unknown;		/* recorded, but QEMU cannot tell how it ended:
				 * settled by cutover or abort --force */
	char phase[64];		/* what it is doing now */
};

/* What the governor (sched.c) measured and decided at its last tick.
 * Protected by e->lock. */
struct job_pace {
	uint64_t t_us;		/* that tick (CLOCK_MONOTONIC) */
	uint64_t dirty;		/* unmerged bytes, every file */
	uint64_t merged;	/* bytes merged by the job's copiers so far */
	uint64_t dirty_rate;	/* how fast the guest adds unmerged bytes, smoothed */
	uint64_t left;		/* base data to copy and blocks to merge */
	uint64_t rate;		/* moved per second, measured */
	uint64_t share;		/* what the budget grants (0: none or unlimited) */
	uint64_t deadline_rate;	/* the rate the deadline makes it ask for */
	uint64_t needed;	/* the rate that would finish at the deadline */
	bool late;		/* the deadline cannot be met */
	int64_t eta_s;		/* until ready; -1: unknown */
	bool copying;		/* a file still copies its base */
	uint64_t moved_before;	/* moved and merged by copiers stopped since */
	uint64_t merged_before;
};

struct job {
	uint64_t id;
	char *name;		/* "" for the unnamed job */
	bool tree;
	enum job_state state;	/* lock */
	bool busy;		/* a command works on it without cmd_lock; cmd_lock */
	bool cutting;		/* a cutover is past its wait (status: cutover); lock */
	char *dest;		/* canonical (a directory, or an RBD spec) */
	struct rbd_spec *rbd;	/* the images' pool and cluster; NULL: a directory */
	char *delta_dir;	/* this job's directory of delta files */
	uint64_t rate;		/* its own limit, bytes/s, 0: none; lock */
	unsigned priority;	/* its weight in the budget; lock */
	uint64_t since_ms;	/* asked for (unix ms) */
	uint64_t deadline_ms;	/* ready by (unix ms); 0: none */
	uint64_t planned;	/* data its files held when it was asked for */
	char **want;		/* a files job: the files asked for (relpaths) */
	size_t nwant;
	char error[256];	/* JOB_FAILED: why it could not start; lock */
	int dest_fd;		/* O_RDONLY directory; -1 when it was lost (restart) */
	int delta_fd;		/* O_RDONLY directory */
	bool dest_lost;		/* a restart could not open the destination */
	bool keep_dest;		/* an abort leaves the destination as it is (a
				 * hand-off that may have reached it) */
	struct job_handoff handoff;	/* lock */
	bool bg_abort;		/* warm: its roll-back goes on in the background
				 * (engine_start); cmd_lock */
	size_t n;
	struct job_file *files;
	struct delta **deltas;	/* files[i].d, as the copier takes them */
	struct copier *copier;	/* read by status and the governor under e->lock */
	struct budget_client *bc;	/* its part of the mount's budget */
	size_t nentries;	/* tree jobs: every entry, for the switch */
	struct entry *entries;
	struct job_pace pace;	/* lock */
};

/* A file relocated on its own: its name is routed to another backend. */
struct override {
	char *relpath;
	char *backend;		/* a directory, or an RBD spec (the name is a stub) */
	struct rnode *node;	/* RBD: the stub's node, served from the image; held */
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

/* A file of a finished job, for status. */
struct done_file {
	char *path;
	char *backend;
	uint64_t size;
	char state[16];
};

/* A job that finished (cut over, aborted), for status. */
struct finished_job {
	char *name;
	char state[16];		/* "done", "aborted" */
	char *dest;
	uint64_t bytes;
	size_t n;
	struct done_file *files;
};

/*
 * After a cutover's hold, until the destination files and the renamed
 * record are durable, no flush may be acknowledged: a host crash would bring
 * back the old record (source plus delta) and lose a write the guest saw
 * flushed on the destination.  The FUSE layer calls the flush barrier
 * (switch.c) before it acknowledges any flush.  Cutovers are serialised
 * (cmd_lock), so there is one commit at a time.
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
 * One cutover at a time whatever the number of jobs: a cutover holds
 * cmd_lock from its prepare to its commit.
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
	pthread_mutex_t cmd_lock;	/* see above */
	/* restart accepted: the state-changing commands are refused (set
	 * under cmd_lock; limit, which runs without it, reads it atomically) */
	bool handing_over;
	bool stopped;			/* under cmd_lock: engine_stop ran, no command runs */
	pthread_mutex_t lock;		/* protects the fields marked "lock" */
	int state_fd;			/* SOURCE/.relocfs, O_RDONLY; -1 until needed */
	int source_fd;			/* O_PATH on SOURCE */
	char *source;			/* SOURCE_DIR, canonical */
	char *mountpoint;
	char *root;			/* the directory served now; lock */
	int root_fd;			/* O_PATH on it */
	struct mount_state ms;		/* the record as saved; lock */
	struct job **jobs;		/* queued, running, failed, in the order
					 * they were asked for; lock */
	size_t njobs;			/* lock */
	struct override *ovr;		/* lock */
	size_t novr;			/* lock; read atomically as a hint */
	struct finished_job *fin;	/* lock */
	size_t nfin;
	uint64_t last_hold_us;
	char last_hooks[512];		/* "spec=ms, ..." of the last cutover; lock */
	char last_handover[640];	/* its hand-over to QEMU's rbd driver:
					 * "" (none asked), what was handed over
					 * or why it failed; lock */
	/* set when a cutover switched but could not make that durable: the
	 * record on disk (with the cutover's next record beside it) must stay
	 * as it is, so that a restart rolls back to the source */
	bool record_frozen;
	/* a cutover whose next record is on disk: every record saved until
	 * its commit writes the next record too; lock */
	struct job *cutover_job;
	struct commit commit;
	struct sealed_file *sealed;	/* files handed off to another host; lock */
	size_t nsealed;			/* lock; read atomically as a hint */
	char handoff_note[512];		/* how the last hand-off went, for status; lock */
	unsigned cleanups;		/* cleanup threads running; lock */
	pthread_cond_t cleanups_done;	/* cleanups reached 0 */
	struct budget *budget;		/* the mount's, for every job's copier */
	uint64_t last_id;		/* job ids grow; cmd_lock */
	unsigned busy;			/* busy jobs; cmd_lock */
	pthread_cond_t idle;		/* busy reached 0 (with cmd_lock) */
	bool stopping;			/* lock */
	pthread_cond_t wake;		/* the governor's (with lock) */
	pthread_t governor;
	bool governor_running;
	pthread_t bg_thread;		/* warm: the aborts of jobs marked bg_abort */
	bool bg_running;
};

/* ---- record.c ---- */

/* Save e->ms as the mount's record (refused with -EIO once frozen), and,
 * while a cutover's next record is on disk, that one too.  Caller holds
 * e->lock. */
int save_record(struct engine *e);
/* Write the next record of e->cutover_job (state.next).  e->lock held. */
int write_next_record(struct engine *e);
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

/* A new job (not in e->jobs), or NULL. */
struct job *job_alloc(const char *name, const char *dest, const char *delta_dir);
void job_free(struct engine *e, struct job *j, bool unlink_delta);
/* Its files (nodes, delta stores, unlinked or not) and the entries of its
 * tree: the job as before its files were added. */
void job_files_free(struct engine *e, struct job *j, bool unlink_delta);
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
/* Put the job in e->ms, queued (the files it asks for) or started (its
 * files).  e->lock held. */
int job_to_ms(struct mount_state *ms, struct job *j, bool queued);
/* Remove what the job created in the destination. */
void remove_dest(struct job *j);
/* Put what the job created in the destination on the clean-up list. */
void add_dest_cleanup(struct engine *e, struct job *j);
/* Stop / start the job's copier (start joins the budget first). */
void job_copier_stop(struct engine *e, struct job *j);
int job_copier_start(struct engine *e, struct job *j);
/* The destination path must still lead to the directory the copy went to;
 * if not, every file fails. */
bool job_dest_ok(struct job *j);
/* The job's nodes as an array for the gate (malloc'd), or NULL. */
struct rnode **job_nodes(struct job *j);
/* What a job's start holds (malloc'd; *cnt of them), or NULL: its nodes,
 * then, for a files job, the directories from the root down to each file's,
 * whose requests (unlink, rename, link, create) could move or remove a
 * file's name.  Free with job_start_nodes_free (it drops the directories'
 * references). */
struct rnode **job_start_nodes(struct engine *e, struct job *j, size_t *cnt);
void job_start_nodes_free(struct engine *e, struct job *j, struct rnode **nodes, size_t cnt);
/* The file's name still leads, through the directories job_file_resolve
 * found, to the file its node serves, and is its only name (0); -ESTALE,
 * or -EMLINK if the file has other names. */
int job_file_same(struct engine *e, struct job_file *f);
/* Does a file of the job still copy its base? */
bool job_copying(struct job *j);
/* "queued", "copying", "merging", "ready", "cutover", "aborting", "failed" */
const char *job_state_name(struct job *j);
/* The job's name for messages: "job 'NAME'" or "the migration". */
const char *job_label(const struct job *j, char *buf, size_t len);
/* e->jobs: add at the end, remove.  e->lock held. */
int jobs_add(struct engine *e, struct job *j);
void jobs_remove(struct engine *e, struct job *j);

/* ---- sched.c ---- */

/* The job a command means: --job NAME, or the only one.  CTL_OK, or the
 * reply's status with *out saying why. */
int job_resolve(struct engine *e, const char *name, struct job **jp, char **out);
/* The active job of that name, or NULL.  e->lock held. */
struct job *job_find(struct engine *e, const char *name);
/* Mark j busy and let go of cmd_lock (held) for a long wait; busy_end takes
 * it again.  Between the two, the others leave j alone. */
void job_busy_begin(struct engine *e, struct job *j);
void job_busy_end(struct engine *e, struct job *j);
/* May a job start copying now?  e->lock held. */
bool slot_free(struct engine *e);
/* The governor: start, wake (something changed), stop. */
int governor_start(struct engine *e);
void governor_wake(struct engine *e);
void governor_stop(struct engine *e);
/* Set the job's part of the budget from its limit, priority and deadline.
 * e->lock held. */
void job_pace_update(struct engine *e, struct job *j, uint64_t now);
int cmd_limit(struct engine *e, const struct ctl_request *req, char **out);

/* ---- rbd_dest.c ---- */

/* Set up j->rbd from j->dest (a restart).  -EINVAL with err if damaged. */
int rbd_dest_parse(struct job *j, char *err, size_t errlen);
/* Before a job into RBD starts: the cluster, the pool, free image names
 * and room for the files' data.  CTL_OK, or CTL_EFAIL with *out. */
int rbd_dest_check(struct job *j, char *const *files, size_t n, uint64_t bytes, char **out);
/* The image of rel: created (sized as the source src_fd), or opened after
 * a restart; NULL in *out if it cannot be opened then (the destination is
 * lost: j->dest_lost).  0 or -errno with err. */
int rbd_dest_open(struct job *j, const char *rel, int src_fd, bool create, struct target **out,
		  char *err, size_t errlen);
/* Remove the job's images (best effort; the log names those left).  Frees
 * the delta stores and their files first: the copier must be stopped, and
 * job_free come next. */
void rbd_dest_remove(struct job *j);
/* In the hold: what the image lacks of the file (mode, owner, times). */
int rbd_dest_meta(struct job_file *f);
/* Serve every file the record says lives in an image from it (a start);
 * a file whose image cannot be opened fails every request (EIO). */
void rbd_overrides_attach(struct engine *e);
bool override_is_rbd(const struct override *o);

/* ---- namespace.c ---- */

void override_free(struct override *o);
/* Resolve relpath's directories from the served root (caller holds e->lock). */
int override_resolve(struct override *o, int root_fd);
/* The same for a job's file: the directories that lead to it. */
int job_file_resolve(struct job_file *f, int root_fd);
/* The overrides as the record has them (caller holds e->lock). */
int overrides_to_ms(struct engine *e, struct mount_state *ms);
/* The FUSE layer's policy callbacks (fs_policy; arg is the engine). */
int ns_name_check(void *arg, const struct fs_dir *dir, const char *name, bool creates);
int ns_redirect(void *arg, const struct fs_dir *dir, const char *name);
void ns_redirect_removed(void *arg, const struct fs_dir *dir, const char *name);

/* ---- the commands ---- */

int cmd_migrate(struct engine *e, const struct ctl_request *req, char **out);
/* Start a new or queued job: its destination, delta stores, record, routes
 * and copier.  On failure nothing of it is left but the job itself (still
 * the caller's; a queued one stays queued in e->jobs and e->ms) and *out
 * says why. */
int job_start(struct engine *e, struct job *j, char **out);
/* A queued job that could not start: failed, out of the record. */
void job_start_failed(struct engine *e, struct job *j, const char *why);
int cmd_cutover(struct engine *e, const struct ctl_request *req, char **out);
int cmd_abort(struct engine *e, const struct ctl_request *req, char **out);
/* Abort a running job that is not busy, and forget it (cmd_lock held):
 * what cmd_abort does once it has found the job. */
int abort_running(struct engine *e, struct job *j, char **out);
int cmd_verify(struct engine *e, const struct ctl_request *req, char **out);
/* status (JSON, or the text made from it), of one job or all; NULL with
 * *out set if the job named is not known. */
char *status_json(struct engine *e, const char *job, char **err);
char *status_text(struct engine *e, const char *job, char **err);
/* Remember the job's files as a finished job (caller holds e->lock). */
void finish_job(struct engine *e, struct job *j, const char *state, const char *file_state,
		const char *backend);
/* Free what a finished job holds (not the struct: it is in e->fin). */
void finished_job_free(struct finished_job *f);

/* ---- recover.c ---- */

/* The record, and the directory it says the mount serves (*root_fd). */
int load_record(struct engine *e, int *root_fd, char *err, size_t errlen);
/* The files relocated on their own that the record names. */
void load_overrides(struct engine *e, int root_fd);
/* The recorded jobs: resumed or kept queued (e->jobs), or rolled back if
 * they must be; warm, a cutover that had switched is finished instead (the
 * record, and *root_fd, may change), and the roll-backs go on in the
 * background (jobs marked bg_abort). */
int recover_jobs(struct engine *e, int *root_fd, char *err, size_t errlen);

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

/* The record as it will be once j is switched (shallow: it borrows the
 * strings of e->ms and j); free with next_state_free. */
struct next_state {
	struct mount_state ms;
	struct ms_job *jobs;
	struct ms_override *ovr;
	struct ms_sealed *sealed;
	char **cleanup;
};
int next_state_build(struct engine *e, struct next_state *ns, struct job *j);
void next_state_free(struct next_state *ns);
/* What the mount serves once j is switched: overrides or the root.
 * e->lock held. */
void switch_serving(struct engine *e, struct job *j);
/* Make e->ms what next_state_build described (owning copies).  e->lock held. */
int adopt_next_state(struct engine *e, struct job *j);

/* Copy owner, mode, times and extended attributes of src to dst (O_PATH or
 * real descriptors; symlinks get owner and times only). */
int copy_meta(int src, int dst, const struct timespec *mtime);
/* Metadata of a tree job's directories, symlinks and special files. */
void sync_dirs(int dirfd, struct job *j);

/* The barrier: from the switch until commit_make_durable() ends it, flushes
 * wait (commit_barrier); commit_make_durable() syncs the destinations, then
 * renames the next record over the record, syncs its directory and makes
 * e->ms the next record. */
void commit_begin(struct engine *e, struct job *j);
int commit_make_durable(struct engine *e);
int commit_barrier(void *arg);

/* ---- cutover.c: the steps, for handoff.c ---- */

struct vmhook;

/* One cutover in progress: what each step leaves for the next. */
struct cutover {
	struct engine *e;
	struct job *j;
	const struct ctl_request *req;
	struct vmhook *hooks[CTL_HOOKS_MAX];
	uint64_t hook_t0[CTL_HOOKS_MAX];
	int nhooks, paused, hook_ms;
	struct preopen_ctx pre;
	struct rnode **nodes;
	struct preopen *sw;		/* the migrating files, prepared for the switch */
	char err[512], hooktxt[512], label[96];
	char handover[640];		/* what the hand-over to QEMU's rbd driver did,
					 * or why it failed */
	bool handover_failed;
	uint64_t t_hold, t_drained, t_merged, t_release, hold_us;
	uint64_t t_switchover, t_copier;	/* a hand-off: at QEMU's switch-over point,
					 * and once the copier stopped */
	size_t parked;
	bool merged_unsynced;		/* the hold merged blocks without durable records */
	bool switched;
	bool handoff;			/* the files were handed off: seal, merge nothing */
	bool remove_source;
	int old_root_fd;		/* tree jobs: where the files were */
};

/* 1: wait until the job is ready (the job busy, cmd_lock let go) */
int step_wait(struct cutover *c, char **out);
/* 4: the hold; on failure released with nothing switched */
int step_hold(struct cutover *c, char **out);
/* 5: the point of no return (cannot fail) */
void step_switch(struct cutover *c);
/* 7: durable: the destinations, then the renamed record; clean-up */
int step_commit(struct cutover *c, int ret, char **out);
void cutover_free(struct cutover *c);
/* fsync every destination file; on failure *out says so, and every delta
 * block is merged again (a failed sync may have lost earlier merges) */
int sync_dests(struct job *j, char **out);

/* ---- handoff.c ---- */

/* A cutover whose hook hands the VM to another host (c->hooks[0]). */
int cmd_handoff(struct cutover *c, char **out);
/* Is a hand-off under way (QEMU migrating, or a restart settling one)?
 * err says whose.  A worker must not hand the mount over meanwhile: the
 * next one would settle it while this one still drives QEMU. */
bool handoff_in_progress(struct engine *e, char *err, size_t errlen);
/* Is this cutover the settling of j's recorded hand-off (or --force)? */
bool handoff_pending(struct engine *e, struct job *j, const struct ctl_request *req);
/* Settle j's recorded hand-off with c's hook, or with --force (the VM
 * runs at the destination). */
int handoff_settle(struct cutover *c, char **out);
/* abort of a job whose hand-off was recorded: only with --force, which
 * leaves the destination as it is.  CTL_OK to go on with the abort. */
int handoff_abort_check(struct engine *e, struct job *j, bool force, char **out);
/* A recorded job's hand-off, as the job's (recover.c, before serving). */
int handoff_load_job(struct job *j, const struct ms_job *mj);
/* Put j's hand-off in its record entry (job_to_ms). */
int handoff_to_ms(struct ms_job *mj, const struct job *j);
void handoff_job_free(struct job *j);
/* The record's sealed files (engine_new, before serving). */
int handoff_load(struct engine *e, char *err, size_t errlen);
/* Seal the record's files, and those of every job whose hand-off was
 * recorded (engine_attach). */
void handoff_attach(struct engine *e);
/* engine_start (cmd_lock held): settle or cancel the hand-off a dead
 * daemon left to j, in a thread of its own.  true if one was started (the
 * copier is then its to start). */
bool handoff_resolve_start(struct engine *e, struct job *j);
/* next_state_build: the record's sealed files, and j's if it is being
 * handed off (ns->sealed, borrowed strings). */
int handoff_next_state(struct engine *e, struct next_state *ns, struct job *j);
/* adopt_next_state: the same into e->ms (owning copies).  e->lock held. */
int handoff_adopt(struct engine *e, struct job *j);
/* The FUSE layer's name check for sealed files (caller holds e->lock):
 * 0, or -EROFS. */
int handoff_name_check(struct engine *e, const struct fs_dir *dir, const char *name,
		       const struct stat *st, bool creates);
/* A sealed file's name (an override) was unlinked: forget it (e->lock held). */
void handoff_forget(struct engine *e, const char *relpath);
/* Is relpath handed off?  *to: where (e->lock held). */
bool handoff_sealed(struct engine *e, const char *relpath, const char **to);
/* status --json (e->lock held): the mount's part (this host, the last
 * note; the sealed files, all of them or only those files lists already),
 * and a job's hand-off */
void handoff_status(struct engine *e, struct json_t *root, struct json_t *files, bool all);
struct json_t *handoff_job_json(struct engine *e, struct job *j);
void handoff_free(struct engine *e);

#endif
