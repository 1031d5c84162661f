/*
 * inode: the table of nodes the kernel knows, keyed by the backing file's
 * (st_dev, st_ino), each holding an O_PATH descriptor on its current backend.
 *
 * A node's backend can change under it (a relocated file or, after a
 * whole-tree cutover, every node): relocation swaps node->fd and re-keys the
 * node while it holds the node (see gate in fsops.c), so a kernel nodeid and
 * every open handle stay valid across the switch.
 *
 * Lock order: itab lock, then node->mu.  Never call into the kernel (reply to
 * a request) with either held.
 */
#ifndef RELOCFS_INODE_H
#define RELOCFS_INODE_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>

#include <fuse_lowlevel.h>

struct migration;
struct rhandle;

struct rnode {
	struct rnode *hnext;		/* hash chain; itab lock */
	dev_t dev;			/* key; itab lock */
	ino_t ino;			/* key; itab lock */
	uint64_t nlookup;		/* kernel references; itab lock */
	unsigned refs;			/* daemon references (handles, walks); itab lock */
	int fd;				/* O_PATH on the current backend; changed only while held */
	mode_t type;			/* S_IFMT bits, fixed */

	pthread_mutex_t mu;		/* protects the fields below */
	pthread_cond_t cond;		/* inflight reached 0 */
	unsigned inflight;		/* requests being served on this node */
	bool held;			/* cutover: park new requests */
	struct migration *mig;		/* set while the file migrates */
	struct rhandle *handles;	/* open handles, for backend swaps */
};

/* An open file or directory (fi->fh). */
struct rhandle {
	struct rhandle *next;		/* on node->handles; node->mu */
	struct rnode *node;
	int fd;				/* on the current backend; swapped while held */
	int fd_buffered;		/* same file without O_DIRECT, opened on demand; -1 */
	int next_fd;			/* prepared for a switch (fs_prepare_reopen); -1 */
	int flags;			/* open flags as the kernel gave them */
	void *dir;			/* DIR * for directories */
	off_t dir_off;			/* next offset in dir */
	void *dir_entry;		/* struct dirent * read but not yet returned */
};

/* Set up the table with the root directory's O_PATH descriptor. */
int itab_init(int root_fd);
void itab_fini(void);

struct rnode *itab_root(void);
struct rnode *itab_node(fuse_ino_t ino);
fuse_ino_t itab_nodeid(const struct rnode *n);

/* Find the node for st or add one that takes over fd; the node's nlookup goes
 * up by one.  If the node existed, fd is closed.  NULL on ENOMEM (fd closed). */
struct rnode *itab_lookup(int fd, const struct stat *st);

/* Drop n kernel references; frees the node when nothing refers to it. */
void itab_forget(struct rnode *node, uint64_t n);

/* Daemon references keep a node alive without a kernel reference. */
void itab_ref(struct rnode *node);
void itab_unref(struct rnode *node);

/* Point node at a new backend file: fd is taken over, the old fd closed, the
 * key changes to st.  The caller holds the node (no request in flight). */
void itab_rekey(struct rnode *node, int fd, const struct stat *st);

/* Call fn on every node, with a daemon reference held and no lock. */
void itab_foreach(void (*fn)(struct rnode *node, void *arg), void *arg);

/* "/proc/self/fd/N" for a descriptor */
void fd_path(int fd, char buf[64]);

#endif
