/*
 * fs: the FUSE layer.  It mirrors a backing directory through libfuse's
 * low-level API, sends a migrating file's data through its live view (the
 * delta store), and holds requests to chosen files while they are switched
 * to another backend.
 *
 * The layer's contract
 * --------------------
 * - Every request passes the gate (gate.c): while a node is held, requests
 *   for it are parked without blocking a worker thread and replayed, in
 *   order, on release.
 * - A file's data goes where route() says (route.c): the backing file, the
 *   live view of a migrating file (delta/delta.h), or a target that holds a
 *   relocated file's data outside any directory (an RBD image,
 *   target/target.h); no handler decides it for itself.
 * - Node ids and file handles given to the kernel stay valid while a node's
 *   backend is switched under it (inode.c, handle.c), and when the worker
 *   process serving them dies or hands over to another: the node and handle
 *   tables, and a record of each request in progress, live in a region
 *   shared by the daemon's processes (table.h), and a new worker takes the
 *   connection over (takeover.c) so that every request is served exactly
 *   once (once.h).
 * - The layer asks the layer above (the job engine) nothing by name: the
 *   policy it needs (pinned names, files relocated on their own, the flush
 *   barrier of a cutover) is registered with fs_set_policy().
 *
 * Threads: fs_loop() runs the worker threads; every other call here may come
 * from any thread (the job engine's command threads, the copier).  None of
 * them may be called from inside a policy callback.
 */
#ifndef RELOCFS_FS_H
#define RELOCFS_FS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>

#include <fuse_lowlevel.h>

struct delta;
struct fs;
struct target;
struct rnode;		/* a node the kernel or the daemon holds (inode.h) */

/* How requests reach the layer (fs_transport_check, fs_transport_name). */
enum fs_transport {
	FS_TRANSPORT_AUTO = 0,	/* io_uring where the kernel offers it, else /dev/fuse */
	FS_TRANSPORT_URING,	/* FUSE over io_uring (Linux 6.14+, enable_uring on) */
	FS_TRANSPORT_DEV,	/* read(2) and write(2) on /dev/fuse */
};

/* -o poll: how long a ring thread looks for work before it sleeps, at most */
#define FS_POLL_US_MAX	1000

struct fs_config {
	const char *source;	/* the source directory as given, for messages */
	int root_fd;		/* O_PATH on the directory served at start */
	unsigned threads;	/* worker threads */
	double timeout;		/* attribute and entry timeout, seconds */
	int writeback;		/* kernel writeback cache: 1 on, 0 off, -1 not
				 * given: on (see fs_writeback) */
	enum fs_transport transport;	/* as asked for */
	unsigned poll_us;	/* io_uring: busy polling, at most FS_POLL_US_MAX */
	const char *mountpoint;	/* for requests the layer sends itself (uring.c) */
	const char *hidden;	/* a name at the root that the mount does not show */
};

/* A directory a name lives in, as the policy callbacks see it. */
struct fs_dir {
	dev_t dev;
	ino_t ino;
	int fd;			/* O_PATH */
};

/*
 * What the FUSE layer asks of the layer above.  Every callback may be NULL
 * (no policy).  They are called from worker threads with no lock of this
 * layer held, and may block briefly.
 */
struct fs_policy {
	void *arg;
	/* May name (in dir) be created (creates) or removed/renamed?  0,
	 * -EBUSY (pinned by a migration) or -EXDEV (a file relocated on its
	 * own: it lives on another backend than its directory). */
	int (*name_check)(void *arg, const struct fs_dir *dir, const char *name, bool creates);
	/* An O_PATH descriptor on where a file relocated on its own lives now,
	 * or -ENOENT if name in dir is not such a file. */
	int (*redirect)(void *arg, const struct fs_dir *dir, const char *name);
	/* Such a file's name was unlinked. */
	void (*redirect_removed)(void *arg, const struct fs_dir *dir, const char *name);
	/* Before a flush (fsync, fdatasync, an O_SYNC write) is acknowledged:
	 * 0, or -EIO if the flush must fail.  May wait a few milliseconds (a
	 * cutover making its switch durable). */
	int (*flush_barrier)(void *arg);
};

/* ---- start-up and the request loop (daemon/) ------------------------------ */

/* Bytes of shared region the layer needs (zeroed when new). */
size_t fs_region_size(void);

/* Set up the layer in region: new (its tables start with the root,
 * cfg->root_fd, which is the layer's from then on), or adopt a region a
 * worker before this one used (cfg->root_fd is closed; the tables, the
 * handles and the dead worker's request records are taken over).  0, or
 * -EINVAL for a region that is not the layer's, or -errno. */
int fs_new(struct fs **out, const struct fs_config *cfg, void *region, bool adopt);
void fs_free(struct fs *fs);

/* Register the layer above's policy (before fs_loop). */
void fs_set_policy(struct fs *fs, const struct fs_policy *policy);

/* A libfuse session serving this layer, with args as libfuse takes them;
 * NULL if libfuse refused them (it said why on stderr). */
struct fuse_session *fs_session_new(struct fs *fs, struct fuse_args *args);

/* The first worker: mount, and keep the connection in the region.  0 or
 * -errno (libfuse said why). */
int fs_mount(struct fs *fs, const char *mountpoint);

/* A later worker: serve the connection kept in the region (replaying its
 * INIT to libfuse) and, with resend, have the kernel send again every
 * request the last worker had read and not answered; this must come before
 * fs_loop.  -ENOTSUP if the kernel cannot resend (said once in the log; the
 * connection is served all the same). */
int fs_takeover(struct fs *fs, bool resend);

/* The descriptors the layer's tables name, and the connection's: what a
 * sweep of a dead worker's leaked descriptors must leave open.  Returns how
 * many were stored in keep[0..max). */
size_t fs_keep_fds(struct fs *fs, int *keep, size_t max);
/* The same from a region alone (the supervisor, before it re-executes). */
size_t fs_region_fds(void *region, int *keep, size_t max);

/* Run the worker threads until the session ends.  0 or -errno. */
int fs_loop(struct fs *fs);

/* End the loop for a hand-over: every request read is answered (parked
 * ones replayed), no new one is read, fs_loop returns; the connection stays.
 * Any thread, any time after fs_loop started. */
void fs_stop(struct fs *fs);
/* true once fs_stop was called (the loop ended for a hand-over) */
bool fs_stopped(struct fs *fs);

/* Can transport serve a mount on this kernel (uring: the module parameter
 * enable_uring is on and io_uring rings can be made)?  0, or -ENOTSUP with
 * the reason in why.  Does not block; any thread. */
int fs_transport_check(enum fs_transport t, char *why, size_t len);

/* Which transport serves the mount: "uring", "dev", or "" before the
 * connection's INIT was answered. */
const char *fs_transport_name(struct fs *fs);
/* Whether the kernel's writeback cache is on for the connection, as its INIT
 * negotiated it (false before). */
bool fs_writeback(struct fs *fs);

/* Nodes and open handles in the tables, for status. */
void fs_counts(struct fs *fs, uint64_t *nodes, uint64_t *handles);

/* Requests being served now, on all nodes (for the copier's pacing). */
long fs_busy(void *fs);

/* ---- nodes, for the job engine ------------------------------------------- */

struct rnode *fs_root(struct fs *fs);

/* The node of the file that the O_PATH descriptor fd names (st: its stat),
 * with a daemon reference that keeps it alive without a kernel one; fd is
 * taken over.  NULL on ENOMEM. */
struct rnode *fs_node_get(struct fs *fs, int fd, const struct stat *st);
void fs_node_ref(struct fs *fs, struct rnode *n);
void fs_node_put(struct fs *fs, struct rnode *n);

/* The backing file's (st_dev, st_ino), and an O_PATH descriptor on it (valid
 * until the node is switched; the caller must not close it). */
void fs_node_key(const struct rnode *n, dev_t *dev, ino_t *ino);
int fs_node_fd(const struct rnode *n);

/* Send the node's file data through the live view d from now on (NULL:
 * through the backing file again).  The caller holds the node (fs_hold)
 * when it changes a route that requests may be using. */
void fs_node_route(struct rnode *n, struct delta *d);

/* Serve the node's file data from target t from now on (NULL: from the
 * backing file again), which then holds only the file's name, owner and
 * mode; size and times come from t.  Takes a reference to t and drops the
 * one to the target before.  The caller holds the node (fs_hold), or no
 * request can reach it yet (before the mount serves). */
void fs_node_target(struct rnode *n, struct target *t);

/* Serve the node's file read-only from now on (false: read-write again):
 * opens for writing, writes, truncates and fallocate fail with EROFS, on
 * handles already open too (a file handed off to another host).  The seal
 * lives as long as this worker's node; the caller keeps a reference.
 * Sealing drops the kernel's cached attributes of the node (a notification,
 * which waits for no request). */
void fs_node_seal(struct fs *fs, struct rnode *n, bool sealed);
/* The mtime the kernel has for n with its writeback cache, where relocfs
 * knows it (a worker that took n over learns it at the kernel's next
 * SETATTR); false without the cache.  Takes n's lock briefly. */
bool fs_node_mtime(struct fs *fs, struct rnode *n, struct timespec *ts);

/* Call fn on every node, each with a daemon reference held, no lock held. */
void fs_foreach_node(struct fs *fs, void (*fn)(struct rnode *n, void *arg), void *arg);

/* ---- the gate ------------------------------------------------------------ */

/* Hold every node (all) or the nodes given, and wait for the requests in
 * flight on them to finish.  0 when nothing is in flight, or -ETIMEDOUT
 * (with the hold released) if requests still run after timeout_us (a
 * backend that hangs).  Polls every 50 us. */
int fs_hold(struct fs *fs, bool all, struct rnode **nodes, size_t n, uint64_t timeout_us);

/* Clear the holds set by fs_hold and replay the parked requests, in the
 * order they came, on a thread of their own (the caller may still have work
 * that a replayed flush waits for).  Returns how many had been parked. */
size_t fs_release(struct fs *fs, bool all, struct rnode **nodes, size_t n);

/* Longest time a request was parked in the last hold, in microseconds. */
uint64_t fs_last_hold_max_us(struct fs *fs);

/* ---- switching a node to another backend (while it is held) ---------------- */

/* Point the node at another backend file: fd (O_PATH) is taken over, the
 * old one closed, the node's key becomes st.  The kernel's cached
 * attributes of the node are dropped (its pages are kept); does not wait
 * for requests, so it may be called while they are held. */
void fs_node_rekey(struct fs *fs, struct rnode *n, int fd, const struct stat *st);

/* Reopen every open handle of the node on its current backend, best effort
 * (after a switch); the last error, or 0. */
int fs_reopen_handles(struct fs *fs, struct rnode *n);

/*
 * The same in two steps, for a switch that must not fail half-way:
 * fs_prepare_reopen() opens every handle's file again from path_fd, an
 * O_PATH descriptor of the new backend (on failure nothing is left
 * prepared); fs_commit_reopen() swaps the new descriptors in and cannot
 * fail; fs_cancel_reopen() closes what was prepared.
 */
int fs_prepare_reopen(struct fs *fs, struct rnode *n, int path_fd);
void fs_commit_reopen(struct fs *fs, struct rnode *n);
void fs_cancel_reopen(struct rnode *n);

#endif
