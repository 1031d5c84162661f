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
#include "delta/wal.h"

#define BS		DELTA_BLOCK
#define REGION_SHIFT	8		/* 256 blocks = 1 MiB */
#define REGIONS		64

/* Knobs, for the tests: the largest WAL ring a store is given (see
 * wal_ring_for), or if wal_ring, exactly that; how often the checkpointer
 * looks for work (ms; 0: only when asked); lazy: no checkpoint until a
 * writer finds the ring full. */
struct delta_tunables {
	uint64_t wal_max, wal_ring;
	unsigned ckpt_ms;
	bool lazy;
};
extern struct delta_tunables delta_tun;

/* A range of blocks whose D bit becomes durable (may be merged) once WAL
 * record seq is (see apply_durable). */
struct ddq {
	uint64_t seq, a, n;
};

struct delta {
	char *name;			/* for messages */
	unsigned id;			/* names the store's files */
	int src_fd, dst_fd, delta_fd;	/* read-write, no O_DIRECT */
	int dirfd;			/* the directory of the store's files */
	struct journal j;
	struct wal w;			/* the write-ahead log (wal.h); its locks come after
					 * io and the regions, before mu */

	pthread_rwlock_t io;
	pthread_mutex_t region[REGIONS];
	struct bitmap D;		/* block lives in the delta; io (resize), atomic bits */
	struct bitmap M;		/* D block already in the target; region locks */
	struct bitmap DD;		/* D block whose record (WAL or journal) is durable;
					 * atomic bits, changed under io only (apply_durable) */
	int target_fd;			/* where merges go: dst_fd, or src_fd when aborting */

	pthread_mutex_t mu;		/* protects the fields below */
	enum delta_phase phase;
	uint64_t size;			/* live size */
	uint64_t base_size;		/* size of the base when the migration began */
	uint64_t base_limit;		/* base bytes still visible (truncates lower it) */
	uint64_t journal_size;		/* size and base limit last queued in the journal */
	uint64_t journal_limit;
	uint64_t copied;		/* base bytes copied to the destination */
	uint64_t dirty;			/* blocks in D \ M */
	bool throttled;			/* guest writes are being slowed */
	bool base_synced;		/* the source fdatasynced since the migration began
					 * (or the daemon started); atomic */
	struct ddq *dd_q;		/* D ranges waiting for their WAL record, in log order */
	size_t dd_n, dd_cap;
	uint64_t forced_us;		/* when the merger last forced a WAL sync; atomic */
	uint64_t checkpoints;		/* checkpoints done */
	uint64_t throttle_events;
	struct timespec mtime;		/* last write, for getattr */
	bool mtime_set;
	bool started;			/* the base is frozen (delta_rebase ran) */
	char error[256];		/* set with phase DELTA_FAILED; a leading '!' means
					 * the source was written in place (only abort is left) */

	/* the checkpointer (store.c) */
	pthread_t ckpt_thread;
	bool ckpt_started;
	pthread_mutex_t ckpt_mu;	/* protects ckpt_kick, ckpt_stop; taken under the
					 * WAL's append_mu, never the other way */
	pthread_cond_t ckpt_cv;
	bool ckpt_kick, ckpt_stop;
	pthread_mutex_t ckpt_run;	/* serialises checkpoints; protects the fields below */
	uint64_t ckpt_seq;		/* the WAL tail the journal names */
	uint64_t wal_seq0, wal_pos0;	/* the tail read from the journal (replay only) */
	bool warm_open;			/* delta_open after the process died, the host up */
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

/* Apply to DD the ranges whose WAL records are durable now.  Caller holds
 * io (shared or exclusive), so the bitmaps cannot move. */
void apply_durable(struct delta *d);

/* Forget the ranges waiting for durability in blocks [b, b+n) (their D bits
 * were cleared: truncated, or written to the source).  Caller holds io. */
void dd_forget(struct delta *d, uint64_t b, uint64_t n);

/* true if some D range waits for its WAL record to be synced */
bool dd_pending(struct delta *d);

/*
 * Log one change in the WAL, in the order of the changes to the delta file
 * (the caller holds the regions, or io exclusively).  r->size is the end of
 * a write (the size becomes the larger of it and the live size) or, for
 * WR_SIZE, the new size; r->limit the new base limit (WR_SIZE, WR_CLEAR_D).
 * Sets the live size and base limit as the record says; queues the journal
 * records jrs[0..njr) and, if dd_n, the range [dd_a, dd_a+dd_n) to become
 * mergeable once the record is durable.  Waits while the ring is full.
 * 0 or -errno (the change is not logged; the caller fails the request).
 */
int store_log(struct delta *d, const struct wr *r, const struct iovec *iov, int iovcnt,
	      const struct jr *jrs, int njr, uint64_t dd_a, uint64_t dd_n);

/* A checkpoint (see the essay in store.c); the checkpointer's, and tests'.
 * 0 or -errno. */
int store_checkpoint(struct delta *d);

/* Make the bitmaps cover nblocks.  Caller holds io exclusively (or owns d
 * alone). */
int bitmaps_fit(struct delta *d, uint64_t nblocks);

/* The journal's sync_data step: make the data the queued records describe
 * durable (the WAL, the delta, and the source where it must be). */
int sync_for_flush(void *arg);

/* A guest flush: the WAL durable up to record upto (and the source where it
 * must be).  0 or -errno. */
int store_flush(struct delta *d, uint64_t upto);

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
