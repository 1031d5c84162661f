/*
 * once: requests served exactly once across a worker's death.
 *
 * When a worker dies, the kernel sends again (FUSE_NOTIFY_RESEND) every
 * request the dead worker had read and not answered, with FUSE_UNIQUE_RESEND
 * set in its id.  Most requests can simply be served again (a write at the
 * kernel's offset, a read, a getattr, a flush).  Those that change the node
 * or handle tables or the namespace must not be done twice: a second LOOKUP
 * reference would leak the node, a second RELEASE free a handle twice, a
 * second MKDIR fail with EEXIST.  So each worker thread keeps a record of
 * the request it serves in the shared region (table.h):
 *
 *   - DONE is written in the same transaction as the table change it
 *     describes (a lookup reference, a handle opened or freed), with what the
 *     reply carries (node id, file handle, errno);
 *   - INTENT is written before a namespace change (create, mkdir, unlink,
 *     rename, ...), with whether the name existed before;
 *   - the record goes back to idle once the reply is written.
 *
 * A new worker moves the records it finds to a carry ring.  A resent request
 * that matches a DONE record is answered from it; one that matches an INTENT
 * is done again knowing that the change may have happened already; one with
 * no record never reached its side effect.  FORGETs are never resent (the
 * kernel frees them when they are read), so each worker thread reads into a
 * receive buffer in the shared region, and the next worker applies what is
 * left of a FORGET found there (the record counts the entries applied).
 */
#ifndef RELOCFS_ONCE_H
#define RELOCFS_ONCE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "fs/table.h"

struct fs;

/* Bind the calling thread to record idx of the region (a worker thread, or
 * a thread replaying parked requests); -1 leaves it unbound. */
void once_bind(struct fs_region *r, int idx);

/* A request read or replayed by this thread: note its id and opcode, find
 * the dead worker's record of it if it is a resend, keep a FORGET. */
void once_begin(const void *req, size_t len);

/* The record of the request this thread serves (NULL: none, e.g. a thread
 * of the job engine).  Its fields change only inside transactions. */
struct req_rec *once_rec(void);

/* The dead worker's record of this request, if it is a resend that had one. */
const struct req_rec *once_carried(void);

/* Inside a transaction: mark this thread's request done, with what the
 * reply carries. */
void once_tx_done(struct fs_region *r, uint64_t node, uint64_t fh, int error);

/* Before a namespace change: record the intent (its own transaction, under
 * the table lock). */
void once_intent(struct fs *fs, bool existed);

/* After a namespace change that answers with an errno (unlink, rename):
 * mark the request done with it (its own transaction). */
void once_done(struct fs *fs, int error);

/* A FORGET entry for a node this worker does not know: count it applied
 * (done = entries applied so far, this one included). */
void once_forget_skipped(uint64_t done);
/* Every entry of the FORGET this thread serves is applied. */
void once_forgets_end(void);

/* The reply to request unique is written: its record is idle again (a
 * notification the thread sends is not a reply). */
void once_replied(uint64_t unique);

/* At a takeover, after tx_recover() and before any request is read: carry
 * the dead worker's records, apply the FORGETs it had read, reset the
 * records.  The node table must be built (itab_init adopt). */
void once_recover(struct fs *fs);


#endif
