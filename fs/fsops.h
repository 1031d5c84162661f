/*
 * fsops: the FUSE low-level operations, the worker loop that serves them,
 * and the gate that holds requests to a node during a cutover.
 *
 * Holding: fs_hold() marks nodes held and waits until no request is in flight
 * on them.  A request that arrives for a held node is parked: its raw bytes
 * are copied and its fuse_req_t is dropped without a reply; no worker thread
 * waits.  fs_release() clears the marks and feeds the parked requests back
 * through libfuse, so they are served (on whatever backend is current then)
 * in the order they arrived.
 */
#ifndef RELOCFS_FSOPS_H
#define RELOCFS_FSOPS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <fuse_lowlevel.h>

#include "fs/inode.h"

struct fs_config {
	const char *source;	/* the source directory as given */
	int root_fd;		/* O_PATH on the directory served at start */
	unsigned threads;	/* worker threads */
	double timeout;		/* attribute and entry timeout, seconds */
	bool writeback;		/* kernel writeback cache */
};

extern const struct fuse_lowlevel_ops fs_ops;
extern struct fs_config fs_cfg;

/* Run the worker threads until the session ends.  Returns 0 or -errno. */
int fs_loop(struct fuse_session *se, unsigned threads);

/* Hold every node (all == true) or the nodes given, and wait for the
 * requests in flight on them to finish.  Returns 0 when nothing is in
 * flight, or -ETIMEDOUT (with the hold released) if requests are still
 * running after timeout_us (a backend that hangs). */
int fs_hold(bool all, struct rnode **nodes, size_t n, uint64_t timeout_us);

/* Clear the holds set by fs_hold and replay the parked requests.  Returns the
 * number of requests that had been parked. */
size_t fs_release(bool all, struct rnode **nodes, size_t n);

/* Longest time a request was parked in the last hold, in microseconds. */
uint64_t fs_last_hold_max_us(void);

/* After mounting: route the session's replies through fsops (for open flags
 * libfuse 3.14 cannot set).  0 or -errno. */
int fs_attach_io(struct fuse_session *se);

/* Reopen every open handle of node on its current backend (after a switch). */
int fs_reopen_handles(struct rnode *node);

/*
 * The same in two steps, for a switch that must not fail half-way: while the
 * node is held (no handle opens or closes), fs_prepare_reopen() opens every
 * handle's file again from path_fd, an O_PATH descriptor of the new backend
 * (on failure nothing is left prepared); fs_commit_reopen() swaps the new
 * descriptors in and cannot fail; fs_cancel_reopen() closes what was prepared.
 */
int fs_prepare_reopen(struct rnode *node, int path_fd);
void fs_commit_reopen(struct rnode *node);
void fs_cancel_reopen(struct rnode *node);

#endif
