/*
 * wal: the write-ahead log of one delta store, a ring of fixed size that a
 * guest flush makes durable with one fdatasync.
 *
 * The file "<id>.wal" is written with zeros when it is created (not merely
 * preallocated: an unwritten extent turns written on its first write, which
 * is a metadata change the filesystem must commit), so that appending
 * records only overwrites allocated, written space and its fdatasync costs
 * one data write and one device cache flush, no filesystem journal commit.
 *
 * A record is a WAL_HDR-byte header - magic, type, sequence number, four
 * values, payload length, and an XXH3 checksum of the header and the
 * payload - followed by the payload, padded to WAL_ALIGN.  Records follow
 * each other around the ring; one that does not fit before the end goes to
 * offset 0, after a WR_PAD record where a header fits, without one where it
 * does not (the reader applies the same rule).  The oldest record still
 * needed (the tail) is named by the owner's journal; space before it is
 * reused.  A reader starts at the tail and takes records while each has the
 * next sequence number and a good checksum: a torn record, a record of an
 * older lap (a lower sequence number) or zeros end the log.
 *
 * Appends are serialised (w->append_mu, held across the write into the page
 * cache), so records complete in sequence order: after the process dies, the
 * records a reader finds through the page cache are exactly those whose
 * append returned.  wal_sync is a group commit: concurrent callers share one
 * fdatasync that started after their records were written.
 *
 * Lock order: append_mu, then the owner's locks taken inside
 * wal_begin/wal_end, then sync_mu.
 */
#ifndef RELOCFS_WAL_H
#define RELOCFS_WAL_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

#define WAL_HDR		64
#define WAL_ALIGN	64
#define WAL_MAGIC	0x4c415752u	/* "RWAL" */
/* a larger change is logged as several records */
#define WAL_MAX_PAYLOAD	(256u << 10)
#define WAL_MIN_RING	(1u << 20)

enum wr_type {
	WR_DATA = 1,	/* bytes [off, off+len) of the delta are the payload */
	WR_ZERO,	/* [off, off+len) reads as zeros (punched in the delta) */
	WR_SIZE,	/* a size change (truncate) */
	WR_CLEAR_D,	/* blocks [off/BS, (off+len)/BS) were written to the source */
	WR_PAD,		/* the rest of the ring is unused: go on at offset 0 */
	WR_TYPE_MAX
};

/* Every record carries the live size and the base limit after it. */
struct wr {
	uint16_t type;
	uint64_t off, len;
	uint64_t size, limit;
};

struct wal {
	int fd;
	uint64_t ring;			/* bytes, the file's size */

	pthread_mutex_t append_mu;	/* serialises appends; protects the fields to sync_mu */
	pthread_cond_t space;		/* room was made (wal_release) or the log broke */
	uint64_t head_seq, head_pos;	/* where the next record goes */
	uint64_t tail_seq, tail_pos;	/* the oldest record still needed */
	uint64_t waits;			/* appends that waited for room */
	int broken;			/* -errno: no room will come (checkpoints fail) */
	void (*need_room)(void *arg);	/* ask the owner for a checkpoint; called
					 * with append_mu held, must not block */
	void *need_room_arg;

	pthread_mutex_t sync_mu;	/* protects the fields below */
	pthread_cond_t synced_cv;
	uint64_t written_seq;		/* records [.., written_seq) are in the file */
	uint64_t synced_seq;		/* records [.., synced_seq) are durable */
	uint64_t released_seq;		/* tail_seq, for wal_durable_seq */
	bool syncing;
	int sync_err;			/* sticky: a failed fdatasync fails every later sync */
	uint64_t syncs;			/* fdatasyncs done (for status and tests) */
};

/* pure: encode a header (with its checksum over hdr and payload) / check one */
void wr_encode(const struct wr *r, uint64_t seq, const struct iovec *iov, int iovcnt,
	       unsigned char out[WAL_HDR]);
/* 0 and *plen if the header is well formed with sequence number seq (the
 * checksum is checked by wr_check once the payload is read), else -EINVAL */
int wr_decode(const unsigned char in[WAL_HDR], uint64_t seq, uint64_t ring, struct wr *r,
	      uint32_t *plen);
bool wr_check(const unsigned char hdr[WAL_HDR], const void *payload, uint32_t plen);

/* Ring size for an image of image_bytes: image_bytes / 8 within
 * [WAL_MIN_RING, max_ring], in whole MiB. */
uint64_t wal_ring_for(uint64_t image_bytes, uint64_t max_ring);

/* Create "name" (O_EXCL) of ring bytes, all written with zeros, synced with
 * its directory. */
int wal_create(int dirfd, const char *name, uint64_t ring, struct wal *w);
/* Open an existing log; the ring is its size. */
int wal_open(int dirfd, const char *name, struct wal *w);
void wal_close(struct wal *w);

/*
 * Read the log from (seq, pos) through apply (payload NULL for records
 * without one; returns 0 or -errno to stop everything), up to the first
 * record that is not valid.  Leaves head and tail at the end of what was
 * read (tail at the start) and *count the records applied.
 */
int wal_replay(struct wal *w, uint64_t seq, uint64_t pos,
	       int (*apply)(void *arg, uint64_t seq, const struct wr *r, const char *payload),
	       void *arg, uint64_t *count);

/* The sequence number from which a log that was replayed up to its head
 * may go on with no older record ever read as the next one: higher than
 * any the ring can hold.  The owner must make (it, head_pos) its durable
 * tail before appending. */
uint64_t wal_next_generation(const struct wal *w);
/* Start appending at seq, at the head, with the log empty (after a replay). */
void wal_restart(struct wal *w, uint64_t seq);
/* Go on appending after the records replayed, with the next sequence number
 * (after the process died with the host up: the ring read through the page
 * cache holds exactly what was appended).  The replayed records count as
 * written, not synced: the next wal_sync syncs them. */
void wal_continue(struct wal *w);

/*
 * Appending: wal_begin(w, plen) waits for room for a record of plen payload
 * bytes and returns with append_mu held (0), or -errno (not held);
 * wal_write writes the record at the head (into the page cache); the caller
 * may then do what must happen in log order (still under append_mu), and
 * wal_end publishes the records to wal_sync and drops append_mu.
 * wal_write returns 0 and *seq, or -errno (nothing counts; the head is
 * unchanged; every later wal_sync fails: the log missed a change).
 */
int wal_begin(struct wal *w, uint32_t plen);
int wal_write(struct wal *w, const struct wr *r, const struct iovec *iov, int iovcnt,
	      uint64_t *seq);
void wal_end(struct wal *w);

/* The next sequence number (records [.., it) were appended).  Caller holds
 * append_mu or none: then the value may be stale. */
uint64_t wal_head(struct wal *w);

/* Make every record below upto durable (group commit).  0 or -errno. */
int wal_sync(struct wal *w, uint64_t upto);
/* Make every record appended so far durable. */
int wal_sync_all(struct wal *w);

/* Records below this are durable: synced, or made durable elsewhere (below
 * the tail the owner released). */
uint64_t wal_durable_seq(struct wal *w);

/* The owner made everything below (seq, pos) durable elsewhere: that space
 * is free.  Takes append_mu. */
void wal_release(struct wal *w, uint64_t seq, uint64_t pos);
/* No room will come: appends waiting or to come fail with err. */
void wal_break(struct wal *w, int err);

/* Bytes in use between tail and head.  Caller holds append_mu. */
uint64_t wal_used(const struct wal *w);

#endif
