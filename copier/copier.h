/*
 * copier: one background thread per relocation job that streams each file's
 * base to the destination and then merges deltas into it, again and again,
 * until the job is cut over or aborted.
 *
 * Base copy: SEEK_DATA/SEEK_HOLE walk (holes are skipped, so they stay holes
 * in the destination), COPIER_CHUNK bytes at a time, each chunk checksummed
 * with XXH3 as it is read (the sums are kept for verify), all-zero chunks
 * skipped as holes; the destination is fdatasynced and the progress
 * checkpointed every COPIER_CHECKPOINT bytes.  Rate: a token bucket
 * (--rate), and a short back-off before a chunk while the guest has requests
 * in flight.
 *
 * Errors move the file to MIG_FAILED with a message; the thread carries on
 * with the other files.  The copier never touches the source or the delta
 * but to read them.
 */
#ifndef RELOCFS_COPIER_H
#define RELOCFS_COPIER_H

#include <stddef.h>
#include <stdint.h>

#define COPIER_CHUNK		(4u << 20)
#define COPIER_CHECKPOINT	(256u << 20)

struct migration;
struct copier;

/* Start a thread over files[0..n) (the array must outlive the copier). */
int copier_start(struct copier **out, struct migration **files, size_t n, uint64_t rate);

/* Stop the thread and wait for it (it finishes the chunk it is on). */
void copier_stop(struct copier *c);

/* Bytes per second, averaged over the last seconds. */
uint64_t copier_rate(struct copier *c);

/* XXH3 sum of base chunk i of file k, or 0 if not known. */
uint64_t copier_chunk_sum(struct copier *c, size_t k, uint64_t i);

/* How many requests the filesystem is serving now (fsops). */
long fs_inflight(void);

#endif
