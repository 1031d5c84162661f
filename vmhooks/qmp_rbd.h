/*
 * qmp_rbd: hands a paused QEMU's disks over to the RBD images their files
 * were relocated into, on an open QMP connection: what the "qmp-rbd:SOCKET"
 * hook does between the switch and "cont" (qmp_hook.c).  Private to
 * vmhooks/ (and its unit test).
 *
 * For each file QEMU has a protocol node (driver "file") named by the file's
 * path through the mount and, above it, a format node (raw or qcow2) whose
 * "file" child it is.  The hand-over adds an rbd node per image
 * (blockdev-add), points every format node's "file" child at its rbd node
 * in one transaction (blockdev-reopen), and deletes the old protocol nodes
 * that QEMU does not drop on its own (blockdev-del), so that QEMU no longer
 * holds the files on the mount open.
 *
 * The plan and the commands' arguments are pure functions of QEMU's replies
 * (no I/O), so that the unit tests drive them with replies of a real QEMU.
 */
#ifndef RELOCFS_QMP_RBD_H
#define RELOCFS_QMP_RBD_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#include "vmhooks/qmp.h"
#include "vmhooks/vmhook.h"

#define QMP_RBD_NODE_PREFIX "relocfs-rbd-"

/* One disk to hand over: what QEMU has now, and the node that replaces it. */
struct qmp_rbd_disk {
	const struct vmhook_image *img;
	char file_node[128];	/* the protocol node on the mount */
	char format_node[128];	/* its parent, reopened with a new "file" */
	char format_drv[16];	/* "raw" or "qcow2" */
	char backing[128];	/* the format node's backing node, if has_backing */
	bool has_backing;
	bool backing_null;	/* qcow2 without a backing node: "backing": null */
	/* what a reopen resets unless it is given again: the format node's
	 * options, and the protocol node's, repeated on the rbd node */
	bool direct, no_flush, read_only;
	char detect_zeroes[16];
	bool file_direct, file_no_flush, file_read_only;
	char file_detect_zeroes[16];
	char new_node[32];	/* QMP_RBD_NODE_PREFIX N, free in QEMU */
};

/*
 * Find each image's nodes in QEMU's replies to query-named-block-nodes
 * (nodes, with "flat": true) and x-debug-query-block-graph (graph), and
 * name the rbd nodes.  disks[i] is for imgs[i].  0, or -ENOENT (no node
 * for a file), -EOPNOTSUPP (a graph the hand-over does not handle) or
 * -EPROTO (a reply of another shape), with one line in err naming the file.
 */
int qmp_rbd_plan(json_t *nodes, json_t *graph, const struct vmhook_image *imgs, int n,
		 struct qmp_rbd_disk *disks, char *err, size_t errlen);

/* The arguments of blockdev-add for a disk's rbd node (new reference). */
json_t *qmp_rbd_add_args(const struct qmp_rbd_disk *d);

/* The arguments of one blockdev-reopen of every disk's format node with
 * its rbd node as "file" (new reference). */
json_t *qmp_rbd_reopen_args(const struct qmp_rbd_disk *disks, int n);

/*
 * The whole hand-over on q, the VM paused.  All or nothing: on failure every
 * disk stays on the mount, and the rbd nodes added are deleted again (but
 * when the connection broke: then they are left in QEMU, unused).  A
 * protocol node that cannot be deleted afterwards is logged, not a failure
 * (QEMU then keeps a descriptor on the mount that it no longer uses).
 * Blocks for at most timeout_ms (plus the undoing, after a failure: up to
 * two seconds per rbd node).  0, or -errno with one line in err; the qmp.h
 * errors (after one that is not -EIO or -ENOTSUP the connection is
 * unusable).
 */
int qmp_rbd_handover(struct qmp *q, const char *name, const struct vmhook_image *imgs, int n,
		     int timeout_ms, char *err, size_t errlen);

#endif
