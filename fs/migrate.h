/*
 * migrate: one file while it migrates: its delta store, its I/O path, and
 * the merge engine that both the copier and cutover/abort drive.
 *
 * The live view of a migrating file is "delta over base": blocks the guest
 * wrote since the migration began (bitmap D) are read from the delta file,
 * all others from the frozen source (the base), up to base_limit, and zeros
 * past it.  The source is never written while the file migrates, so until
 * the switch the source plus the delta is the whole truth, whatever happens
 * to the destination.
 *
 * The copier first copies the base to the destination, then merges delta
 * blocks into it; bitmap M marks the D blocks whose delta data the target
 * already holds.  A guest write to a block clears its M bit, so the target
 * always lacks exactly D \ M.  A cutover holds the file, merges what is left
 * of D \ M (kept small by waiting for it and, if the guest writes faster than
 * the merge, by slowing the guest's writes), and switches.  An abort runs the
 * same engine with the source as the target.
 *
 * Locking: m->io is taken shared by every request and exclusively to resize
 * the bitmaps; m->region[] serialises writers and the merger per 1 MiB
 * region; m->mu protects the scalar fields.  Order: io, region (ascending),
 * mu.  fsops calls with the node gated; the copier and relocate with none.
 */
#ifndef RELOCFS_MIGRATE_H
#define RELOCFS_MIGRATE_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>

#include "copier/bitmap.h"
#include "copier/journal.h"

#define MIG_BLOCK	4096u
#define MIG_REGION_SHIFT 8		/* 256 blocks = 1 MiB */
#define MIG_REGIONS	64

enum mig_phase {
	MIG_COPYING = 1,	/* base -> destination */
	MIG_MERGING,		/* delta -> destination; "ready" when little is left */
	MIG_CUTOVER,		/* held, switching */
	MIG_DONE,		/* switched to the destination */
	MIG_ABORTING,		/* delta -> source */
	MIG_ABORTED,		/* back on the source */
	MIG_FAILED,		/* stopped with an error; the source plus delta is intact */
};

struct rnode;

struct migration {
	char *relpath;			/* path relative to the served root */
	unsigned id;			/* index in its job; names its delta files */
	struct rnode *node;		/* the node that serves the file (referenced) */
	int src_fd, dst_fd, delta_fd;	/* read-write, no O_DIRECT */
	int dirfd;			/* the job's delta directory */
	struct journal j;

	pthread_rwlock_t io;
	pthread_mutex_t region[MIG_REGIONS];
	struct bitmap D;		/* block lives in the delta; io (resize), atomic bits */
	struct bitmap M;		/* D block already in the target; region locks */
	struct bitmap DD;		/* D block whose journal record is durable; atomic bits,
					 * changed under io only (see apply_durable) */
	int target_fd;			/* where merges go: dst_fd, or src_fd when aborting */

	pthread_mutex_t mu;		/* protects the fields below */
	enum mig_phase phase;
	uint64_t size;			/* live size */
	uint64_t base_size;		/* size of the base when the migration began */
	uint64_t base_limit;		/* base bytes still visible (truncates lower it) */
	uint64_t journal_size;		/* size last queued in the journal */
	uint64_t copied;		/* base bytes copied to the destination */
	uint64_t dirty;			/* blocks in D \ M */
	bool throttled;			/* guest writes are being slowed */
	bool base_synced;		/* the source fdatasynced since the migration began
					 * (or the daemon started); atomic */
	struct jr *dd_q;		/* records made durable, not yet in DD */
	size_t dd_n, dd_cap;
	uint64_t throttle_events;
	struct timespec mtime;		/* last write, for getattr */
	bool mtime_set;
	bool started;			/* the base is frozen (mig_rebase ran) */
	char error[256];		/* set with phase MIG_FAILED */
};

/* Create a new migration of file rel (its source open as src_fd) to the
 * destination dst_fd, with delta files "<id>.delta" and "<id>.journal" in
 * dirfd.  Takes over the descriptors on success. */
int mig_create(struct migration **out, const char *rel, unsigned id, int src_fd,
	       int dst_fd, int dirfd);

/* Reopen a migration after a restart from its journal. */
int mig_open(struct migration **out, const char *rel, unsigned id, int src_fd,
	     int dst_fd, int dirfd);

/* Close descriptors and free; removes the delta files if unlink_delta. */
void mig_free(struct migration *m, bool unlink_delta);

/* ---- I/O on the live view (called by fsops) ---- */
ssize_t mig_read(struct migration *m, char *buf, size_t len, off_t off);
ssize_t mig_write(struct migration *m, const char *buf, size_t len, off_t off);
int mig_truncate(struct migration *m, off_t size);
int mig_fallocate(struct migration *m, int mode, off_t off, off_t len);
int mig_fsync(struct migration *m, bool datasync);
off_t mig_lseek(struct migration *m, off_t off, int whence);
void mig_getattr(struct migration *m, struct stat *st);

/* ---- the copier and relocate ---- */

/* With the file held and before any write goes to the delta: take the
 * source's current size as the base, durably. */
int mig_rebase(struct migration *m);

/* Set the phase and make it durable (journal commit). */
int mig_set_phase(struct migration *m, enum mig_phase phase);

/* Record that the base is copied and synced up to 'bytes' (durable). */
int mig_note_copied(struct migration *m, uint64_t bytes);

/* Merge up to max_bytes of D \ M into the target.  Returns bytes merged
 * (0 when nothing is left) or -errno. */
ssize_t mig_merge_some(struct migration *m, size_t max_bytes);

/* Make the queued delta records durable (as a flush does).  0 or -errno. */
int mig_commit(struct migration *m);

enum mig_finish {
	/* commit the pending delta records, merge, fdatasync the target (abort) */
	MIG_FINISH_SYNC,
	/* merge every block, its record durable or not, and sync nothing: for
	 * a cutover, whose record and syncs come after the hold (a restart
	 * that finds the cutover unfinished rolls it back) */
	MIG_FINISH_SWITCH,
};

/* With the file held: merge all of D \ M and make the target equal to the
 * live view (truncations, size) as how says.  0 or -errno. */
int mig_finish_target(struct migration *m, enum mig_finish how);

/* Switch the merge target to the source (abort) and forget what the
 * destination had merged. */
void mig_target_source(struct migration *m);

/* Undo mig_target_source: merge into the destination again (all of D), in
 * the given phase (an abort that could not be recorded). */
void mig_target_dest(struct migration *m, enum mig_phase phase);

/* Compare the live view with what the destination holds (dest overlaid with
 * the unmerged delta).  Returns 0 if equal, 1 with *diff_off set if not,
 * -errno on error. */
int mig_verify(struct migration *m, uint64_t *diff_off);

/* Snapshot for status. */
struct mig_status {
	enum mig_phase phase;
	uint64_t size, base_size, copied, delta_bytes, dirty_bytes, throttle_events;
	bool throttled;
	char error[256];
};
void mig_status(struct migration *m, struct mig_status *st);

/* Fail the migration with a message (first error wins). */
void mig_fail(struct migration *m, int err, const char *what);

const char *mig_phase_name(enum mig_phase p, uint64_t dirty_bytes);

/* Space each file's journal takes up front in the delta store. */
#define MIG_JOURNAL_PREALLOC (2u << 20)

/* Bytes of D \ M at or below which a file counts as ready for cutover. */
#define MIG_READY_BYTES (8u << 20)
/* Above this, guest writes that add to D \ M are slowed down. */
#define MIG_THROTTLE_BYTES (64u << 20)

#endif
