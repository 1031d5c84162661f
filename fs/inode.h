/*
 * inode: the table of nodes the kernel knows, keyed by the backing file's
 * (st_dev, st_ino).  Private to the FUSE layer.
 *
 * Each node is a slot of the shared node table (table.h): its index is the
 * kernel's node id (minus one; slot 0 is the root), and the slot holds the
 * O_PATH descriptor on the node's current backend and the kernel's lookup
 * count, so that both outlive the worker.  struct rnode is the worker's own
 * view of a used slot: a copy of the key and the descriptor, and what only
 * this worker needs (locks, requests in flight, the hold, the route, the
 * handles, the daemon's references).  A new worker builds it from the slots.
 *
 * A node's backend can change under it (a relocated file or, after a
 * whole-tree cutover, every node): the job engine swaps the descriptor and
 * re-keys the node while it holds the node (gate.c), so a kernel node id and
 * every open handle stay valid across the switch.
 *
 * Lock order: the table's lock, then node->mu.  Never call into the kernel
 * (reply to a request) with either held.
 */
#ifndef RELOCFS_INODE_H
#define RELOCFS_INODE_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>

#include <fuse_lowlevel.h>

#include "fs/table.h"

#define ITAB_BUCKETS 4096

struct delta;
struct target;
struct rhandle;

struct rnode {
	uint32_t slot;			/* in the shared node table; fixed */
	struct rnode *hnext;		/* hash chain; table lock */
	dev_t dev;			/* key (copy of the slot's); table lock */
	ino_t ino;
	int fd;				/* O_PATH on the current backend; changed only while held */
	mode_t type;			/* S_IFMT bits, fixed */
	unsigned refs;			/* daemon references (handles, walks); table lock */

	pthread_mutex_t mu;		/* protects the fields below */
	unsigned inflight;		/* requests being served on this node; atomic */
	bool held;			/* cutover: park new requests; atomic */
	struct delta *delta;		/* the live view while the file migrates; atomic */
	struct target *target;		/* where the data lives if not in the backing file
					 * (an RBD image); a reference; atomic */
	bool sealed;			/* handed off: served read-only; atomic */
	struct rhandle *handles;	/* open handles, for backend swaps */
	struct timespec kmtime;		/* writeback cache: the kernel's mtime (names.c) */
	bool kmtime_known;		/* false in a worker that took the node over */
	bool kmtime_stale;		/* written since the backing file was given it; atomic */
	bool kmtime_fresh;		/* the kernel had no reference: its next entry
					 * reply makes the kernel's inode; atomic */
};

struct itab {
	pthread_mutex_t lock;		/* the hash, the daemon references, and every
					 * transaction on the shared tables */
	struct fs_region *r;
	struct rnode **by_slot;		/* FS_NODES_MAX entries, NULL for free slots */
	struct rnode *bucket[ITAB_BUCKETS];
	uint64_t free_hint;		/* no free slot below it (above 0) */
};

/* Set up the table in the region: fresh, with root_fd (taken over) as the
 * root; or adopt (a new worker): the slots a dead or retired worker left,
 * after tx_recover(), and root_fd is closed. */
int itab_init(struct itab *t, struct fs_region *r, int root_fd, bool adopt);
void itab_fini(struct itab *t);

struct rnode *itab_root(struct itab *t);
/* The node of a kernel node id; NULL for an id that names no node. */
struct rnode *itab_node(struct itab *t, fuse_ino_t ino);
fuse_ino_t itab_nodeid(struct itab *t, const struct rnode *n);

/* Find the node for st or add one that takes over fd; the node's lookup
 * count goes up by one, and the request record (if any) says so in the same
 * transaction.  If the node existed, fd is closed.  NULL on ENOMEM or a full
 * table (fd closed). */
struct rnode *itab_lookup(struct itab *t, int fd, const struct stat *st);

/* Drop n kernel references; frees the node when nothing refers to it. */
void itab_forget(struct itab *t, struct rnode *node, uint64_t n);

/* Daemon references keep a node alive without a kernel reference. */
void itab_ref(struct itab *t, struct rnode *node);
void itab_unref(struct itab *t, struct rnode *node);

/* Point node at a new backend file: fd is taken over, the old fd closed, the
 * key changes to st.  The caller holds the node (no request in flight). */
void itab_rekey(struct itab *t, struct rnode *node, int fd, const struct stat *st);

/* Call fn on every node, with a daemon reference held and no lock. */
void itab_foreach(struct itab *t, void (*fn)(struct rnode *node, void *arg), void *arg);

/* Descriptors the table names (for the takeover's sweep); returns how many
 * were stored in keep[0..max). */
size_t itab_fds(struct itab *t, int *keep, size_t max);

/* Nodes in use (root included), for status. */
uint64_t itab_count(struct itab *t);

#endif
