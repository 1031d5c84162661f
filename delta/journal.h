/*
 * journal: the append-only metadata log of one delta store.
 *
 * Each record is JR_BYTES bytes: magic, type, sequence number, two values and
 * an XXH3 checksum of the rest.  Records are added in memory (journal_add)
 * and made durable in batches (journal_take, then journal_write, which
 * appends and fdatasyncs).  Replay applies records in order and stops at the
 * first one that is torn, has a bad checksum or breaks the sequence; it then
 * cuts the file there, so a later append can never be followed by a stale
 * record from before the crash.
 *
 * Thread safety: journal_add and journal_take may be called from any thread
 * (j->lock); journal_write calls are serialised by j->write_lock, and the
 * order of takes is the order of writes when the caller holds write_lock
 * across take and write (journal_commit does).
 */
#ifndef RELOCFS_JOURNAL_H
#define RELOCFS_JOURNAL_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define JR_BYTES 48
#define JR_MAGIC 0x4c4e4a52u	/* "RJNL" */

enum jr_type {
	JR_SET_DE = 1,	/* blocks [a, a+b) now live in the delta (and changed) */
	JR_SET_E,	/* blocks [a, a+b) changed, written to the destination */
	JR_CLEAR_D,	/* blocks [a, a+b) merged into the destination */
	JR_SIZE,	/* file size a, base limit b */
	JR_PHASE,	/* phase a (enum delta_phase) */
	JR_COPIED,	/* base copied to the destination and synced up to byte a */
	JR_WAL,		/* the journal and the delta file hold every change logged in
			 * the WAL before sequence number a, whose record would be
			 * at ring offset b: the WAL is read from there */
	JR_TYPE_MAX
};

struct jr {
	uint16_t type;
	uint64_t a, b;
};

struct journal {
	int fd;
	pthread_mutex_t lock;		/* protects pending, npending, cap */
	struct jr *pending;
	size_t npending, cap;
	pthread_mutex_t write_lock;	/* protects seq, off; serialises writes */
	uint64_t seq;			/* sequence number of the next record */
	off_t off;			/* where the next record goes */
	bool broken;			/* records were lost: every commit fails */
	/* called by journal_commit, with write_lock held, with the records it
	 * has just made durable (owner's hook; NULL for none) */
	void (*on_durable)(void *arg, const struct jr *recs, size_t n);
	void *on_durable_arg;
};

/* pure: encode / decode one record; decode returns 0 or -EINVAL */
void jr_encode(const struct jr *r, uint64_t seq, unsigned char out[JR_BYTES]);
int jr_decode(const unsigned char in[JR_BYTES], uint64_t seq, struct jr *r);

/* Create an empty journal (O_EXCL) and fsync it and its directory. */
int journal_create(int dirfd, const char *name, struct journal *j);

/* Open a journal and replay it through apply (which returns 0 or -errno to
 * stop); leaves it ready for appending after the last good record. */
int journal_open(int dirfd, const char *name, struct journal *j,
		 int (*apply)(void *arg, const struct jr *r), void *arg);

void journal_close(struct journal *j);

/* Queue a record in memory.  0 or -ENOMEM. */
int journal_add(struct journal *j, uint16_t type, uint64_t a, uint64_t b);

/* Write records at the end of the journal and fdatasync.  0 or -errno; on
 * failure nothing is known to be durable and the caller must fail the flush. */
int journal_write(struct journal *j, const struct jr *recs, size_t n);

/*
 * The commit protocol: take the queued records, run sync_data (which makes
 * the data they describe durable: every record queued before the take was
 * queued after its data was written), then write the records.  Commits are
 * serialised.  Returns 0 or -errno.
 */
int journal_commit(struct journal *j, int (*sync_data)(void *arg), void *arg);

/* Records queued and not yet written (for status and tests). */
size_t journal_pending(struct journal *j);

#endif
