/*
 * table: the FUSE layer's state that must outlive a worker process, laid out
 * in the shared region the daemon gives the layer (common/shm.h), and the
 * small transactions that change it.
 *
 * What is here, and why each must survive the worker:
 *   - the node table: the kernel's node ids are slot indices, and each slot
 *     holds the backing file's O_PATH descriptor (in the descriptor table the
 *     daemon's processes share) and the kernel's lookup count;
 *   - the handle table: file handles are (generation, slot), and each slot
 *     holds the open descriptors and the open flags;
 *   - one request record per worker thread: what a request in progress has
 *     done that a resend must not do again (see once.c);
 *   - each worker thread's receive buffer: a FORGET read by a worker that
 *     died is found there (the kernel never sends a FORGET again);
 *   - the raw INIT request, which a new worker replays to set up libfuse;
 *   - the buffers of the io_uring entries and what each holds: the kernel
 *     keeps raw pointers to them, and a request an entry held when its
 *     worker died is served by the next worker from there (uring.c).
 *
 * Crash safety: a worker may die between any two instructions.  Every change
 * to the tables is a transaction: each 64-bit word is logged (its offset and
 * old value) in the undo log before it is stored, and the log is cleared
 * when the transaction commits.  A new worker that finds the log non-empty
 * rolls the half-done transaction back, word by word, newest first.  So the
 * tables are always as of some commit, and a request record that says
 * "done" was written in the same transaction as the change it describes.
 * One transaction at a time: fs->tab_lock (a lock of the worker's own)
 * serialises them, and only one worker runs at a time.  Descriptors are
 * closed after the transaction that drops them commits; a worker that dies
 * in between leaks them into the shared descriptor table, and the next
 * worker's sweep (takeover.c) closes every descriptor no slot names.
 */
#ifndef RELOCFS_TABLE_H
#define RELOCFS_TABLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define FS_REGION_MAGIC	0x3153465246434c52ull	/* "RLCFRFS1" */
#define FS_REGION_LAYOUT 2
#define FS_NODES_MAX	(1u << 20)
#define FS_HANDLES_MAX	(1u << 16)
#define FS_THREADS_MAX	256		/* worker threads (relocfs -o threads) */
#define FS_REPLAY_RECS	16		/* threads replaying parked requests */
#define FS_RING_MAX	256		/* io_uring entries (uring.c), one thread each */
#define FS_RING_REC0	(FS_THREADS_MAX + FS_REPLAY_RECS)	/* ring thread i: record RING_REC0 + i */
#define FS_RECS_MAX	(FS_RING_REC0 + FS_RING_MAX)
#define FS_CARRY_MAX	64		/* records of a dead worker, for resends */
#define FS_UNDO_MAX	16
#define FS_INIT_MAX	1024
/* The last word of fs_region.init records what the connection's INIT
 * negotiated beyond what the request says (the request takes about 100
 * bytes): FS_INIT_NEGOTIATED, or'd with FS_INIT_WB if the kernel's writeback
 * cache is on.  A region set up by an older relocfs has 0 there. */
#define FS_INIT_NEG_OFF		(FS_INIT_MAX - 8)
#define FS_INIT_NEGOTIATED	0x4e45474f00000000ull	/* "NEGO" */
#define FS_INIT_WB		1ull
/* a worker thread's receive buffer: a request of up to 1 MiB placed so that
 * a WRITE's payload starts on a page (loop.c) */
#define FS_RX_BYTES	((2u << 20) + 8192u)
/* an io_uring entry's buffers (uring.c): a page for the kernel's header and
 * the entry's own bookkeeping, a page where the request is made contiguous
 * again, and the payload of up to 1 MiB, page-aligned */
#define FS_RING_PAYLOAD	(1u << 20)
#define FS_RING_BYTES	(8192u + FS_RING_PAYLOAD)

#define NO_FD		UINT64_MAX

enum { SLOT_FREE = 0, SLOT_USED = 1 };

/* All fields are 64-bit words: the undo log saves and restores words. */
struct node_slot {
	uint64_t state;
	uint64_t nlookup;	/* the kernel's references */
	uint64_t dev, ino;	/* the backing file's key */
	uint64_t fd;		/* O_PATH on it, or NO_FD */
	uint64_t type;		/* S_IFMT bits */
};

struct handle_slot {
	uint64_t state;
	uint64_t gen;		/* changes at each free: a stale fh is refused */
	uint64_t node;		/* node slot */
	uint64_t fd;
	uint64_t fd_buffered;	/* the file without O_DIRECT, or NO_FD */
	uint64_t flags;		/* open flags as the kernel gave them */
	uint64_t dir;		/* a directory handle */
	uint64_t dir_off;	/* where the next readdir starts (a hint, no transaction) */
};

enum rec_state { REC_IDLE = 0, REC_INTENT, REC_DONE };

/* What one request in progress has done (once.c). */
struct req_rec {
	uint64_t unique;	/* the kernel's id, without FUSE_UNIQUE_RESEND */
	uint64_t opcode;
	uint64_t state;		/* enum rec_state */
	uint64_t existed;	/* INTENT: the name existed before the side effect */
	uint64_t error;		/* DONE: the reply's errno */
	uint64_t node;		/* DONE: the node id answered */
	uint64_t fh;		/* DONE: the file handle answered */
	uint64_t forgets_done;	/* FORGET, BATCH_FORGET: entries applied */
	uint64_t forgets;	/* a FORGET or BATCH_FORGET (in the thread's receive
				 * buffer) is being applied */
};

enum ring_state {
	RING_FREE = 0,	/* no command of a live worker uses the buffers */
	RING_WAIT,	/* a command is in the kernel: the entry waits for a request,
			 * unless the header's commit id says one was handed over */
	RING_HELD,	/* a request is being served; the rebuilt request and its
			 * payload (or its saved copy) are intact */
	RING_REPLIED,	/* the whole reply is in the buffers (or the shadow): commit it */
};

/* One io_uring entry: what a worker after this one needs to finish what
 * the entry holds (uring.c).  Written by the entry's thread only. */
struct ring_slot {
	uint64_t state;		/* enum ring_state */
	uint64_t qid;		/* the queue (CPU) it is registered on */
	uint64_t unique;	/* HELD, REPLIED: the request's id (its commit id) */
	uint64_t len;		/* HELD: the rebuilt request's length */
	uint64_t psz;		/* HELD: bytes of payload in the request */
	uint64_t shadow_len;	/* REPLIED: reply bytes in the shadow, or RING_NO_SHADOW */
};
#define RING_NO_SHADOW	UINT64_MAX

struct undo {
	uint64_t n;		/* words logged; 0: no transaction open */
	struct {
		uint64_t off;	/* of the word, from the start of the region */
		uint64_t old;
	} e[FS_UNDO_MAX];
};

struct fs_region {
	uint64_t magic, layout, size;
	uint64_t fuse_fd;		/* the connection's /dev/fuse descriptor */
	uint64_t nodes_hw, handles_hw;	/* slots at and above are unused */
	uint64_t rx_hw;			/* receive buffers at and above were never used */
	uint64_t init_len;
	uint8_t init[FS_INIT_MAX];	/* the raw FUSE_INIT request */
	struct undo undo;
	uint64_t carry_next;
	struct req_rec carry[FS_CARRY_MAX];
	struct req_rec recs[FS_RECS_MAX];
	struct handle_slot handles[FS_HANDLES_MAX];
	struct node_slot nodes[FS_NODES_MAX];
	uint64_t transport;		/* enum fs_transport that serves (0: not decided) */
	uint64_t ring_base;		/* the region's address when ring entries
					 * were registered (they hold raw pointers) */
	struct ring_slot ring[FS_RING_MAX];
	uint8_t rx[FS_THREADS_MAX][FS_RX_BYTES] __attribute__((aligned(4096)));
	uint8_t ringbuf[FS_RING_MAX][FS_RING_BYTES] __attribute__((aligned(4096)));
};

/* Begin a transaction (caller holds fs->tab_lock). */
void tx_begin(struct fs_region *r);
/* Store v in the word at w (inside the region), logged. */
void tx_set(struct fs_region *r, uint64_t *w, uint64_t v);
/* Commit: the changes since tx_begin stand. */
void tx_commit(struct fs_region *r);
/* Roll back a transaction a dead worker left open.  Returns the number of
 * words restored. */
unsigned tx_recover(struct fs_region *r);

#endif
