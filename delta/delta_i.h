/*
 * delta_i: the store's private parts, shared by store.c (life cycle, replay,
 * phases), view.c (the live view) and merge.c (the merge engine).  Not
 * included outside delta/ (but by its unit test).
 */
#ifndef RELOCFS_DELTA_I_H
#define RELOCFS_DELTA_I_H

#include <pthread.h>
#include <time.h>

#include "delta/bitmap.h"
#include "delta/delta.h"
#include "delta/journal.h"

#define BS		DELTA_BLOCK
#define REGION_SHIFT	8		/* 256 blocks = 1 MiB */
#define REGIONS		64

struct delta {
	char *name;			/* for messages */
	unsigned id;			/* names the store's files */
	int src_fd, dst_fd, delta_fd;	/* read-write, no O_DIRECT */
	int dirfd;			/* the directory of the store's files */
	struct journal j;

	pthread_rwlock_t io;
	pthread_mutex_t region[REGIONS];
	struct bitmap D;		/* block lives in the delta; io (resize), atomic bits */
	struct bitmap M;		/* D block already in the target; region locks */
	struct bitmap DD;		/* D block whose journal record is durable; atomic bits,
					 * changed under io only (see apply_durable) */
	int target_fd;			/* where merges go: dst_fd, or src_fd when aborting */

	pthread_mutex_t mu;		/* protects the fields below */
	enum delta_phase phase;
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
	bool started;			/* the base is frozen (delta_rebase ran) */
	char error[256];		/* set with phase DELTA_FAILED; a leading '!' means
					 * the source was written in place (only abort is left) */
};

static inline uint64_t blk(uint64_t off)
{
	return off / BS;
}

static inline uint64_t blocks_for(uint64_t size)
{
	return (size + BS - 1) / BS;
}

static inline unsigned region_of(uint64_t b)
{
	return (unsigned)((b >> REGION_SHIFT) % REGIONS);
}

/* ---- store.c ---- */

/* Apply the records made durable since the last call to DD.  Caller holds
 * io (shared or exclusive), so the bitmaps cannot move. */
void apply_durable(struct delta *d);

/* Make the bitmaps cover nblocks.  Caller holds io exclusively (or owns d
 * alone). */
int bitmaps_fit(struct delta *d, uint64_t nblocks);

/* The journal's sync_data step: make the data the queued records describe
 * durable (the delta, and the source where it must be). */
int sync_for_flush(void *arg);

void snapshot_limits(struct delta *d, uint64_t *size, uint64_t *limit);

/* true once the source was written in place (the delta refused a write) */
bool source_fallback(struct delta *d);

/* ---- view.c ---- */

/* Lock the regions of blocks [b0, b1] in ascending index order; returns the
 * mask for regions_unlock. */
uint64_t regions_lock(struct delta *d, uint64_t b0, uint64_t b1);
void regions_unlock(struct delta *d, uint64_t mask);

/* The live view of [off, off+len), no EOF clipping.  Caller holds io. */
int read_live(struct delta *d, char *buf, size_t len, uint64_t off, uint64_t limit);

/* ---- merge.c ---- */

bool all_zero(const char *p, size_t len);

#endif
