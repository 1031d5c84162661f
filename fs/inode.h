/*
 * inode: the table of nodes the kernel knows, keyed by the backing file's
 * (st_dev, st_ino), each holding an O_PATH descriptor on its current backend.
 * Private to the FUSE layer.
 *
 * A node's backend can change under it (a relocated file or, after a
 * whole-tree cutover, every node): the job engine swaps node->fd and re-keys
 * the node while it holds the node (gate.c), so a kernel nodeid and every
 * open handle stay valid across the switch.
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

#define ITAB_BUCKETS 4096

struct delta;
struct rhandle;

struct rnode {
	struct rnode *hnext;		/* hash chain; table lock */
	dev_t dev;			/* key; table lock */
	ino_t ino;			/* key; table lock */
	uint64_t nlookup;		/* kernel references; table lock */
	unsigned refs;			/* daemon references (handles, walks); table lock */
	int fd;				/* O_PATH on the current backend; changed only while held */
	mode_t type;			/* S_IFMT bits, fixed */

	pthread_mutex_t mu;		/* protects the fields below */
	unsigned inflight;		/* requests being served on this node; atomic */
	bool held;			/* cutover: park new requests; atomic */
	struct delta *delta;		/* the live view while the file migrates; atomic */
	struct rhandle *handles;	/* open handles, for backend swaps */
};

struct itab {
	pthread_mutex_t lock;
	struct rnode *bucket[ITAB_BUCKETS];	/* protected by lock */
	struct rnode root;
};

/* Set up the table with the root directory's O_PATH descriptor (taken over). */
int itab_init(struct itab *t, int root_fd);
void itab_fini(struct itab *t);

struct rnode *itab_root(struct itab *t);
struct rnode *itab_node(struct itab *t, fuse_ino_t ino);
fuse_ino_t itab_nodeid(struct itab *t, const struct rnode *n);

/* Find the node for st or add one that takes over fd; the node's nlookup goes
 * up by one.  If the node existed, fd is closed.  NULL on ENOMEM (fd closed). */
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

#endif
