/*
 * copier: one background thread per relocation job that streams each file's
 * base to the destination and then merges deltas into it, again and again,
 * until the job is cut over or aborted.
 *
 * Base copy: SEEK_DATA/SEEK_HOLE walk (holes are skipped, so they stay holes
 * in the destination), COPIER_CHUNK bytes at a time, each chunk checksummed
 * with XXH3 as it is read (the sums are kept for verify), all-zero blocks
 * skipped as holes; the destination is fdatasynced and the progress
 * checkpointed every COPIER_CHECKPOINT bytes.  Rate: the job's client of
 * the mount's budget (budget.h), paid COPIER_PIECE bytes at a time, and a
 * short back-off every chunk while the guest has requests in flight.
 *
 * Merges: the store says what may be merged (delta_merge_some); the copier
 * says when, in batches of COPIER_PIECE, paid to the budget, yielding to
 * the guest until a file has more than DELTA_READY_BYTES left to merge
 * (then the merge has priority and the store slows the guest's writes
 * instead).  The copier tells the budget when it has nothing to do, so that
 * the other jobs have its share meanwhile.
 *
 * The layer: the copier reaches the files only through the delta store's
 * API (delta.h) and learns how busy the guest is through the callback it is
 * given; it knows nothing of FUSE or of jobs.  Errors move the file to
 * DELTA_FAILED with a message; the thread carries on with the other files.
 * The copier never touches the source or the delta but to read them.
 *
 * Threads: copier_start/stop and copier_rate may be called from any thread;
 * the copier's own thread is the only one that touches its files' base copy.
 */
#ifndef RELOCFS_COPIER_H
#define RELOCFS_COPIER_H

#include <stddef.h>
#include <stdint.h>

#define COPIER_CHUNK		(4u << 20)
#define COPIER_PIECE		(1u << 20)	/* paid to the budget at a time */
#define COPIER_CHECKPOINT	(256u << 20)

struct budget_client;
struct delta;
struct copier;

/* How busy the guest is: the number of requests being served now.  Called
 * by the copier's thread; must not block. */
typedef long (*copier_busy_fn)(void *arg);

struct copier_progress {
	uint64_t rate;		/* as copier_rate */
	uint64_t copied;	/* base bytes read from data, since the start */
	uint64_t merged;	/* delta bytes merged, since the start */
	bool scanned;		/* data_left is known */
	uint64_t data_left;	/* base data still to copy, every file */
};
/* Start a thread over files[0..n) (the array must outlive the copier),
 * paying what it moves to bc (may be NULL: no limit; must outlive the
 * copier); busy (may be NULL) tells it when to yield to the guest.  0 or
 * -ENOMEM. */
int copier_start(struct copier **out, struct delta **files, size_t n, struct budget_client *bc,
		 copier_busy_fn busy, void *busy_arg);

/* Stop the thread and wait for it (it finishes the piece it is on); it is
 * no longer hungry for the budget.  last (may be NULL) gets its final
 * progress. */
void copier_stop(struct copier *c, struct copier_progress *last);

/* Bytes per second moved (base copied and blocks merged), over the last
 * two seconds. */
uint64_t copier_rate(struct copier *c);

void copier_progress(struct copier *c, struct copier_progress *p);

/* XXH3 sum of base chunk i of file k, or 0 if not known. */
uint64_t copier_chunk_sum(struct copier *c, size_t k, uint64_t i);

#endif
