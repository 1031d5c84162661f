/*
 * delta: the delta store of one migrating file, the file's live view, and
 * the merge engine that moves the store's blocks into a target file.
 *
 * The layer's contract
 * --------------------
 * The live view of a migrating file is "delta over base": blocks the guest
 * wrote since the migration began (bitmap D) are read from the delta file,
 * all others from the frozen source (the base) up to the base limit, and
 * zeros past it.  The source is never written while the file migrates, so
 * until the switch the source plus the delta is the whole truth, whatever
 * happens to the destination.  Every write the caller saw acknowledged by
 * delta_fsync() survives a crash of the host, and every write whose call
 * returned survives the death of the process (the essay at the top of
 * store.c says why).
 *
 * The store merges delta blocks into a target (target/target.h: the
 * destination, a file or an RBD image; or the source, a file, when
 * aborting); bitmap M marks the D blocks the target already
 * holds.  A write to a block clears its M bit, so the target always lacks
 * exactly D \ M ("dirty").  The caller (the copier) decides when to merge;
 * the store decides what may be merged: only blocks whose records are
 * durable (their WAL record synced), so that the target never holds a
 * write a replay could forget.
 *
 * Locking (inside; callers hold no lock of the store): every call may be
 * made from any thread at any time, but for the rules named at a function.
 * Live-view calls of one file run concurrently; a merge runs beside them.
 * Internally: d->io shared by each request and exclusive for a resize of
 * the bitmaps or a size change, one lock per 1 MiB region for writers and
 * the merger, the WAL's append lock (one append at a time, so that records
 * complete in log order), d->mu for the scalar fields, the WAL's sync lock;
 * order io, region (ascending), WAL append, mu, the journal's queue lock,
 * WAL sync (the checkpointer's wake-up lock is taken under the WAL append
 * lock and nothing else).  A checkpoint takes the append lock briefly (to
 * note the head), never io or a region.
 *
 * Blocking: every call may block on I/O to the source, the delta, the
 * WAL, the journal or the target; delta_write() may sleep up to 2 ms when
 * the guest writes faster than the merge drains (throttling, reported by
 * status), and waits for a checkpoint when the WAL ring is full (wal_waits).
 * Each store runs one background thread, its checkpointer.
 *
 * Errors: -errno.  A failure of the store itself (a failed sync, a failed
 * merge read or write) also moves the file to DELTA_FAILED with a message
 * (delta_status); failed is final but for an abort.
 */
#ifndef RELOCFS_DELTA_H
#define RELOCFS_DELTA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>

struct target;

#define DELTA_BLOCK		4096u
/* Space each file's journal takes up front in the delta store. */
#define DELTA_JOURNAL_PREALLOC	(2u << 20)
/* The largest write-ahead log ring of a store (an eighth of the image, at
 * least 1 MiB; see delta/wal.h). */
#define DELTA_WAL_MAX		(64u << 20)
/* Bytes of D \ M at or below which a file counts as ready for cutover. */
#define DELTA_READY_BYTES	(8u << 20)
/* Above this, guest writes that add to D \ M are slowed down. */
#define DELTA_THROTTLE_BYTES	(64u << 20)

enum delta_phase {
	DELTA_COPYING = 1,	/* base -> destination */
	DELTA_MERGING,		/* delta -> destination; "ready" when little is left */
	DELTA_CUTOVER,		/* held, switching */
	DELTA_DONE,		/* switched to the destination */
	DELTA_ABORTING,		/* delta -> source */
	DELTA_ABORTED,		/* back on the source */
	DELTA_FAILED,		/* stopped with an error; the source plus delta is intact */
};

struct delta;

/* ---- life cycle ---------------------------------------------------------- */

/* Create the store of a file (its source open as src_fd) migrating to the
 * target dst, as files "<id>.delta", "<id>.wal" and "<id>.journal" in dirfd;
 * name is for messages.  Takes over src_fd and the caller's reference to
 * dst on success (not dirfd).  Durable on return.  Writes the WAL ring
 * (delta_space_needed) with zeros: may take a fraction of a second per
 * file. */
int delta_create(struct delta **out, const char *name, unsigned id, int src_fd,
		 struct target *dst, int dirfd);

/* Reopen a store after a restart by replaying its journal and its WAL (every
 * write whose call returned, after the process died; every flushed write,
 * after the host did).  dst may be NULL (the destination was lost: only an
 * abort can follow).  Cold (warm false: the host may have crashed): makes
 * what was replayed durable (syncs, a journal commit).  Warm (the process
 * that had it open died or handed over, the host stayed up): syncs nothing
 * and goes on appending to the WAL after the replayed records; the next
 * delta_fsync makes them durable with its own. */
int delta_open(struct delta **out, const char *name, unsigned id, int src_fd,
	       struct target *dst, int dirfd, bool warm);

/* Stop the store's background checkpointer, waiting for a checkpoint in
 * progress: after it this process writes none of the store's files.  For a
 * process about to give the store to another (a hand-over) or to free it; no
 * write may follow (one would wait for room no checkpoint makes).  Blocks. */
void delta_quiesce(struct delta *d);

/* Close the descriptors and free; removes the store's files if unlink_files.
 * No other call may be running on d.  Syncs nothing: what was written can be
 * reopened with delta_open. */
void delta_free(struct delta *d, bool unlink_files);

/* Space a store takes up front in the delta directory for an image of
 * image_bytes (the journal's preallocation and the WAL ring), besides the
 * delta file (at most the image's size). */
uint64_t delta_space_needed(uint64_t image_bytes);

/* ---- the live view (the FUSE layer) -------------------------------------- */

ssize_t delta_read(struct delta *d, char *buf, size_t len, off_t off);
/* buf NULL writes zeros (punched in the delta) */
ssize_t delta_write(struct delta *d, const char *buf, size_t len, off_t off);
int delta_truncate(struct delta *d, off_t size);
int delta_fallocate(struct delta *d, int mode, off_t off, off_t len);
/* Make every write acknowledged so far durable: one fdatasync of the WAL,
 * shared with concurrent callers (group commit).  -EIO (or -ENOSPC) fails
 * the migration: after a failed sync the store cannot vouch for its data. */
int delta_fsync(struct delta *d, bool datasync);
/* SEEK_DATA / SEEK_HOLE on the live view; -ENXIO at or past the end */
off_t delta_lseek(struct delta *d, off_t off, int whence);
/* Overlay the live size, blocks and mtime on st (a stat of the source). */
void delta_getattr(struct delta *d, struct stat *st);

/* ---- phases, progress, merging (the copier and the job engine) ------------ */

/* With no write in flight and before any goes to the delta: take the
 * source's current size as the base, durably. */
int delta_rebase(struct delta *d);

/* Set the phase (durably where a restart must know it).  -EIO from
 * DELTA_FAILED to anything but aborting or aborted. */
int delta_set_phase(struct delta *d, enum delta_phase phase);

/* The base copy reached byte 'bytes': durable progress (the destination was
 * synced up to there by the caller), or progress for status only. */
int delta_note_copied(struct delta *d, uint64_t bytes);
void delta_note_progress(struct delta *d, uint64_t bytes);

/* Merge up to max_bytes of D \ M (blocks with durable records) into the
 * target.  Returns bytes merged (0 when nothing is mergeable) or -errno (the
 * file failed). */
ssize_t delta_merge_some(struct delta *d, size_t max_bytes);

/* Make every write so far durable and mergeable, and commit the queued
 * journal records.  0 or -errno. */
int delta_commit(struct delta *d);

enum delta_finish {
	/* commit the pending records, merge, fdatasync the target (abort) */
	DELTA_FINISH_SYNC,
	/* merge every block, its record durable or not, and sync nothing: for
	 * a cutover, whose record and syncs come after the hold (a restart
	 * that finds the cutover unfinished rolls it back) */
	DELTA_FINISH_SWITCH,
};

/* With no request in flight on the file (the caller holds it): merge all of
 * D \ M and make the target equal to the live view (size, truncations). */
int delta_finish_target(struct delta *d, enum delta_finish how);

/* Merge into the source from now on (abort); forget what the destination
 * had merged. */
void delta_target_source(struct delta *d);

/* Undo delta_target_source: merge into the destination again (all of D),
 * in the given phase (an abort that could not be recorded). */
void delta_target_dest(struct delta *d, enum delta_phase phase);

/* Compare the live view with what the destination will hold (its data with
 * the unmerged delta over it).  0 if equal, 1 with *diff_off set if not,
 * -errno on error.  Takes each 1 MiB region in turn, so writers wait at
 * most one region's comparison. */
int delta_verify(struct delta *d, uint64_t *diff_off);

/* Move to DELTA_FAILED with "what: strerror(err)" unless failed already. */
void delta_fail(struct delta *d, int err, const char *what);

struct delta_status {
	enum delta_phase phase;
	uint64_t size, base_size, copied, delta_bytes, dirty_bytes, throttle_events;
	bool throttled;
	/* the WAL: ring size, bytes in use, writes that waited for a checkpoint
	 * (the ring was full), fdatasyncs of it, checkpoints done */
	uint64_t wal_bytes, wal_used, wal_waits, wal_syncs, checkpoints;
	char error[256];
};
void delta_status(struct delta *d, struct delta_status *st);

/* "copying", "merging", "ready" (merging with little left), ... */
const char *delta_phase_name(enum delta_phase p, uint64_t dirty_bytes);

/* ---- what the layers above need of the files ------------------------------ */

const char *delta_name(const struct delta *d);
/* The source file (read-write, no O_DIRECT) and the destination target,
 * owned by the store: the copier reads the one and writes the other, the
 * cutover syncs the destination and copies metadata.  The destination is
 * NULL if lost; delta_dest_fd is its descriptor, or -1 (lost, or not a
 * file). */
int delta_source_fd(const struct delta *d);
struct target *delta_dest(const struct delta *d);
int delta_dest_fd(const struct delta *d);
/* The live view's last write time, if the guest wrote since the start. */
bool delta_mtime(struct delta *d, struct timespec *ts);
/* Set the live view's mtime (the kernel's, with its writeback cache); the
 * next write moves it on. */
void delta_set_mtime(struct delta *d, const struct timespec *ts);

#endif
