/*
 * fs_i: the FUSE layer's private parts, shared by its files: the layer's
 * state (reached from a request through fuse_req_userdata()), the gate, the
 * open handles, the route of a file's data, and the request buffers of the
 * worker threads.  Not included outside fs/.
 */
#ifndef RELOCFS_FS_I_H
#define RELOCFS_FS_I_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include <sys/uio.h>

#include <fuse_lowlevel.h>
#include <linux/fuse.h>

#include "fs/fs.h"
#include "fs/inode.h"
#include "fs/table.h"

#define IO_ALIGN	4096
#define MAX_IO		(1u << 20)

/* A request parked by a hold: its raw bytes, replayed on release. */
struct parked {
	struct parked *next;
	uint64_t since_us;
	size_t len;
	char data[];
};

struct gate {
	atomic_bool hold_all;
	atomic_long inflight_all;	/* requests in flight, all nodes */
	pthread_mutex_t lock;		/* protects the fields below */
	struct parked *head, **tail;
	uint64_t last_max_us;
	atomic_int replays;		/* threads replaying parked requests */
};

#define BOUNCE_MAX	4
#define BOUNCE_DEVS	8

/* bounce.c's buffers, and the devices' limits it has read */
struct bounce {
	pthread_mutex_t mu;
	char *made[BOUNCE_MAX], *free[BOUNCE_MAX];
	unsigned nmade, nfree;
	struct {
		dev_t dev;
		unsigned segments;
	} devs[BOUNCE_DEVS];
	unsigned ndevs;
};

struct fs {
	struct fs_config cfg;
	struct fs_policy policy;	/* set before the loop runs; read-only after */
	struct fuse_session *se;
	struct gate gate;
	struct itab itab;		/* its lock also guards the handle table */
	struct rhandle **handles;	/* FS_HANDLES_MAX entries, by slot */
	uint64_t handle_hint;		/* no free handle slot below it; itab.lock */
	bool adopted;			/* a worker after another: tables taken over */
	atomic_bool stopping;		/* fs_stop: the workers end after their request */
	pthread_mutex_t rec_lock;	/* the records of replay threads */
	uint64_t recs_busy;		/* bit i: record threads + i in use; rec_lock */
	unsigned takeovers;		/* how this worker started: see fs_takeover */
	uint32_t init_flags;		/* the INIT request's flags: what the kernel offers */
	uint32_t init_flags2;		/* the INIT request's flags2: what the kernel offers */
	bool wb_cache;			/* the kernel's writeback cache is on (INIT) */
	atomic_int transport;		/* enum fs_transport serving; 0 until INIT */
	unsigned dev_threads;		/* /dev/fuse threads (fs_loop) */
	struct uring *uring;		/* io_uring transport, while it serves */
	struct bounce bounce;
};

/* An open file or directory (fi->fh); the worker's view of a handle slot. */
struct rhandle {
	uint32_t slot;			/* in the shared handle table; fixed */
	uint64_t gen;			/* of the slot when opened; fixed */
	struct rhandle *next;		/* on node->handles; node->mu */
	struct rnode *node;
	int fd;				/* on the current backend; swapped while held */
	int fd_buffered;		/* same file without O_DIRECT, opened on demand; -1 */
	bool fd_direct;			/* fd is O_DIRECT (handle.c: backing_uncache) */
	int next_fd;			/* prepared for a switch (fs_prepare_reopen); -1 */
	int flags;			/* open flags as the kernel gave them */
	bool is_dir;
	void *dir;			/* DIR * for directories, opened on first use */
	off_t dir_off;			/* next offset in dir */
	void *dir_entry;		/* struct dirent * read but not yet returned */
};

static inline struct fs *FS(fuse_req_t req)
{
	return fuse_req_userdata(req);
}

static inline struct rnode *N(fuse_req_t req, fuse_ino_t ino)
{
	return itab_node(&FS(req)->itab, ino);
}

struct rhandle *handle_get(struct fs *fs, uint64_t fh);

/* The handle of an open file; NULL for a handle this worker does not know
 * (only a resent RELEASE of a freed one may carry such). */
#define H(fi) handle_get(FS(req), (fi)->fh)

/* ---- gate.c ---- */

/* Enter node n for the request being served.  false if the request was
 * parked, or n is NULL (a node id this worker does not know: answered
 * ESTALE); the caller returns at once, without a reply. */
bool gate_enter(fuse_req_t req, struct rnode *n);
/* Enter node n as well, for a request that is inside another node's gate
 * already and has done part of its work: never parks.  false (nothing
 * entered) if n is held; the caller answers without touching n. */
bool gate_try_enter(fuse_req_t req, struct rnode *n);
void gate_leave(fuse_req_t req, struct rnode *n);

/* ---- takeover.c ---- */

/* The mount on top at path (absolute, no symbolic links): its id and device
 * numbers, from /proc/self/mountinfo.  0, -ENOENT if nothing is mounted
 * there, or -errno. */
int mount_info(const char *path, uint64_t *id, unsigned *maj, unsigned *min);

/* ---- handle.c ---- */

/* Open the file that the O_PATH descriptor path_fd names, for I/O with the
 * kernel's open flags (O_CREAT, O_EXCL, O_APPEND dropped). */
int backing_open_at(int path_fd, int flags, int *fdp);
/* A new handle of n on fd (taken over), in the shared table; the request's
 * record says so in the same transaction.  NULL if the table is full.  A
 * file's fd may be made O_DIRECT here (backing_uncache). */
struct rhandle *handle_new(struct fs *fs, struct rnode *n, int fd, int flags, bool dir);
void handle_free(struct fs *fs, struct rhandle *h);
uint64_t handle_fh(const struct rhandle *h);
/* The handle's file without O_DIRECT, for requests O_DIRECT refuses (h->fd
 * itself where that is not O_DIRECT). */
int buffered_fd(struct fs *fs, struct rhandle *h);
/* Remember where the next readdir starts, for a worker after this one. */
void handle_seen_dir_off(struct fs *fs, struct rhandle *h);
/* A new worker: build the worker's view of every used handle slot. */
int handles_adopt(struct fs *fs);
/* Descriptors the handle table names (the takeover's sweep). */
size_t handles_fds(struct fs *fs, int *keep, size_t max);

/* ---- route.c: where a file's data goes ---- */

struct data_ops;

/*
 * The route of one request's file data: the backing file through the open
 * handle (h may be NULL for requests on a node without one, e.g. a truncate
 * by path), or the live view d of a migrating file.  Handlers call through
 * r.ops and never ask which it is.
 */
struct route {
	const struct data_ops *ops;
	const struct data_ops *inner;	/* a sealed file's route for reading */
	struct fs *fs;
	struct rnode *n;
	struct rhandle *h;
	struct delta *d;
	struct target *t;
};

struct data_ops {
	ssize_t (*read)(const struct route *r, char *buf, size_t len, off_t off);
	/* includes the sync an O_SYNC/O_DSYNC handle asks for */
	ssize_t (*write)(const struct route *r, const char *buf, size_t len, off_t off);
	int (*fsync)(const struct route *r, bool datasync);
	int (*fallocate)(const struct route *r, int mode, off_t off, off_t len);
	off_t (*lseek)(const struct route *r, off_t off, int whence);
	int (*truncate)(const struct route *r, off_t size);
	/* overlay what the route knows better than the backing file's stat */
	void (*getattr)(const struct route *r, struct stat *st);
	/* a descriptor the kernel can copy from or to directly, or -1 */
	int (*direct_fd)(const struct route *r);
	/* the open flags to open the backing file with for open(2)'s flags,
	 * or -errno if the route refuses such an open */
	int (*open_flags)(const struct route *r, int flags);
	/* give the file the mtime ts (the kernel's, with the writeback cache) */
	int (*set_mtime)(const struct route *r, const struct timespec *ts);
};

/* The one place that decides where node n's data goes. */
struct route route(struct fs *fs, struct rnode *n, struct rhandle *h);

/* Ask the layer above before acknowledging a flush: 0 or -EIO. */
int flush_barrier(struct fs *fs);

/* where a WRITE's payload starts in a raw request */
#define WRITE_PAYLOAD	(sizeof(struct fuse_in_header) + sizeof(struct fuse_write_in))

/* Worker thread i's receive buffer, placed so that a WRITE's payload starts
 * on a page: the request header is there. */
static inline struct fuse_in_header *rx_header(struct fs_region *r, unsigned i)
{
	return (struct fuse_in_header *)(r->rx[i] + IO_ALIGN - WRITE_PAYLOAD);
}

/* ---- request.c: per worker thread ---- */

/* The request being served (its raw bytes, for parking). */
extern __thread const struct fuse_buf *cur_buf;
/* The worker's receive buffer, and the page-aligned MAX_IO bytes in it where
 * a WRITE's payload lands (loop.c sets them). */
extern __thread const struct fuse_buf *rx_buf;
extern __thread char *rx_payload;
/* Where a READ puts its data (page-aligned, MAX_IO bytes), or NULL. */
char *read_buf(void);
/* A page-aligned MAX_IO buffer of the thread's own, or NULL (ENOMEM). */
char *io_buf(void);
/* Free the thread's buffers (a thread that ends). */
void io_buf_release(void);
/* Open flags libfuse 3.14 cannot set, added to the open reply that the
 * calling thread sends next. */
void reply_open_flags(uint32_t flags);
/* The arguments of the request being served as the kernel sent them (after
 * its fuse_in_header; libfuse 3.14 passes on no flag it does not know), if
 * it is an opcode request of at least len bytes of them; else NULL. */
const void *req_args(uint32_t opcode, size_t len);
/* The first worker keeps the connection's INIT request; a new worker
 * replays it to set libfuse up (the kernel sends INIT only once), with the
 * reply swallowed.  replay_init: 0, or -ENOENT if none was kept. */
void save_init(struct fs *fs, const void *req, size_t len);
int replay_init(struct fs *fs);

/* From now on t serves the connection (request.c): starts the io_uring
 * queues if t is FS_TRANSPORT_URING (adopt: a later worker's takeover). */
void transport_serves(struct fs *fs, enum fs_transport t, bool adopt);

/* ---- bounce.c ---- */

/* A buffer on a huge page for a direct request of len bytes on fd, if the
 * request has more pages than fd's block device takes in one request and a
 * buffer is free; else NULL (use the caller's).  Give it back with
 * bounce_put.  Any thread; never blocks but on a short lock. */
char *bounce_get(struct fs *fs, int fd, size_t len);
void bounce_put(struct fs *fs, char *buf);
/* All given back: free them (fs_free). */
void bounce_fini(struct fs *fs);

/* ---- uring.c: FUSE over io_uring ---- */

struct uring;

/* Serve the connection over io_uring from now on: one queue per possible
 * CPU, ring threads pinned to their CPU.  A later worker (adopt) first
 * finishes what the last worker's entries held, and makes each queue pull
 * the requests that waited meanwhile.  Called once the connection's INIT
 * is answered, or at a takeover; 0 or -errno (nothing started). */
int uring_start(struct fs *fs, bool adopt);
/* A hand-over: requests handed to entries from now on are left for the
 * next worker; replies still go out.  Any thread. */
void uring_quiesce(struct fs *fs);
/* End the ring threads (after uring_quiesce or the connection's end) and
 * free the transport.  Blocks until they have ended. */
void uring_stop(struct fs *fs);
/* If an entry holds request out->unique: put the reply (iov as libfuse
 * gives it) in the entry and have it committed; the bytes, or -ENOENT if no
 * entry holds the request (the reply goes to /dev/fuse). */
ssize_t uring_reply(struct fs *fs, const struct iovec *iov, int count);
/* Queues (possible CPUs) the kernel makes, for sizing. */
unsigned uring_queues(void);

/*
 * Backing I/O without waiting for it, on a ring thread (uring.c).  A ring
 * thread serves several entries; a READ, WRITE or FSYNC that goes straight
 * to a backing file (the passthrough route) is queued on the thread's own
 * io_uring, to the disk at once, and the thread serves its other entries
 * meanwhile.
 *
 * The request stays in the gate (gate_enter without gate_leave) and without
 * a reply until done() runs, on the same thread, with the result (bytes or
 * -errno as pread/pwrite/fsync would give it); done() leaves the gate and
 * replies.  While a thread has I/O queued it waits for nothing but a disk:
 * what could wait for more (a lock of the job engine, a flush barrier)
 * goes to the helpers (uring.c), or, if it reaches a ring thread after all
 * (a route that changed since data_inline looked), runs after io_drain()
 * has completed the thread's queued I/O: a hold that waits for a request
 * in the gate never waits for a thread that waits for the hold.  A
 * worker's death with I/O queued: the thread's exit waits for it (it is
 * linked to a tracked request), and the next worker serves the request
 * again from the entry.
 */
enum aio_op { AIO_READ, AIO_WRITE, AIO_FSYNC };

struct aio {
	void (*done)(struct aio *a, int res);
	fuse_req_t req;
	struct rnode *n;
	struct rhandle *h;
	fuse_ino_t ino;
	enum aio_op op;
	int fd;
	int flags;		/* the open flags of the request's file */
	bool datasync;
	char *buf;		/* in the entry's buffers */
	size_t len;
	off_t off;
};

/* Queue a (copied) for the request this thread serves: true, or false if
 * it cannot be (not a ring thread, a replayed request), and the caller
 * serves it synchronously, after io_drain(). */
bool io_async(const struct aio *a);
/* Complete the calling thread's queued I/O (replies included); nothing on
 * a thread that is not a ring thread.  Blocks on the disk only. */
void io_drain(void);
/* Whether request in (as the kernel sent it, contiguous) is one a ring
 * thread serves itself (data.c): a READ, WRITE or FSYNC of the passthrough
 * that waits for nothing but a disk, through io_async where it can, else
 * synchronously when that is quicker than a hand-over (a small buffered
 * write, an unaligned direct request).  The rest go to the helpers
 * (uring.c).  A guess as things stand: a request whose route changed
 * meanwhile is served synchronously, after io_drain. */
bool data_inline(struct fs *fs, const struct fuse_in_header *in);

/* ---- names.c ---- */

/* stat of the node, with what its route knows better overlaid */
int node_stat(struct fs *fs, struct rnode *n, struct stat *st);
/* FUSE_HANDLE_KILLPRIV_V2: the kernel asked (a write, truncate or open with
 * O_TRUNC of a setuid or setgid file by a caller without CAP_FSETID) that
 * setuid be cleared, and setgid as the kernel's own filesystems do; the
 * kernel's cached attributes of n are dropped. */
int node_kill_suidgid(struct fs *fs, fuse_req_t req, struct rnode *n);
/*
 * With the kernel's writeback cache the kernel keeps a regular file's mtime
 * (names.c): node_written after relocfs wrote to n's file (its backing
 * file's time moved; an atomic store), node_times_settle where the backing
 * file must agree with the kernel again (a SETATTR, flush, fsync or
 * release; takes n->mu, and n must be entered in the gate, so that its
 * descriptor stays).  Both do nothing without the cache.
 */
void node_written(struct fs *fs, struct rnode *n);
void node_times_settle(struct fs *fs, struct rnode *n);
/* Look name up in parent; fills e and takes one kernel reference. */
int do_lookup(struct fs *fs, struct rnode *parent, const char *name,
	      struct fuse_entry_param *e);
bool hidden_name(struct fs *fs, struct rnode *parent, const char *name);
/* the policy's name check (fs_policy.name_check) for name in parent */
int name_check(struct fs *fs, struct rnode *parent, const char *name, bool creates);
/* Run creations as the caller, so new files belong to the caller; true if
 * the credentials were switched (pass it to creds_leave). */
bool creds_enter(fuse_req_t req);
void creds_leave(bool switched);
void reply_entry_or_err(fuse_req_t req, int err, struct fuse_entry_param *e);

/* ---- session.c, takeover.c ---- */

/* Route the session's I/O on fuse_fd through this layer (replies pass
 * fs_writev, for open flags libfuse 3.14 cannot set).  0 or -errno. */
int fs_attach_io(struct fs *fs, int fuse_fd);
/* A new worker, after fs_new adopted the tables: carry the records, apply
 * the FORGETs left, free nodes only the last worker held. */
int takeover_tables(struct fs *fs);

/* The fuse_lowlevel_ops of each family, filled into the session's table. */
void names_ops(struct fuse_lowlevel_ops *ops);
void dirs_ops(struct fuse_lowlevel_ops *ops);
void xattrs_ops(struct fuse_lowlevel_ops *ops);
void data_ops_fill(struct fuse_lowlevel_ops *ops);

#endif
