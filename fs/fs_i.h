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

#include <fuse_lowlevel.h>

#include "fs/fs.h"
#include "fs/inode.h"

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
};

struct fs {
	struct fs_config cfg;
	struct fs_policy policy;	/* set before the loop runs; read-only after */
	struct fuse_session *se;
	struct gate gate;
	struct itab itab;
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

static inline struct fs *FS(fuse_req_t req)
{
	return fuse_req_userdata(req);
}

static inline struct rnode *N(fuse_req_t req, fuse_ino_t ino)
{
	return itab_node(&FS(req)->itab, ino);
}

static inline struct rhandle *H(struct fuse_file_info *fi)
{
	return (struct rhandle *)(uintptr_t)fi->fh;
}

/* ---- gate.c ---- */

/* Enter node n for the request being served.  false if the request was
 * parked (the caller returns at once, without a reply). */
bool gate_enter(fuse_req_t req, struct rnode *n);
void gate_leave(fuse_req_t req, struct rnode *n);

/* ---- handle.c ---- */

/* Open the file that the O_PATH descriptor path_fd names, for I/O with the
 * kernel's open flags (O_CREAT, O_EXCL, O_APPEND dropped). */
int backing_open_at(int path_fd, int flags, int *fdp);
struct rhandle *handle_new(struct fs *fs, struct rnode *n, int fd, int flags);
void handle_free(struct fs *fs, struct rhandle *h);
/* The handle's file without O_DIRECT, for requests O_DIRECT refuses. */
int buffered_fd(struct rhandle *h);

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
	struct rnode *n;
	struct rhandle *h;
	struct delta *d;
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
	/* the open flags to open the backing file with for open(2)'s flags */
	int (*open_flags)(const struct route *r, int flags);
};

/* The one place that decides where node n's data goes. */
struct route route(struct rnode *n, struct rhandle *h);

/* Ask the layer above before acknowledging a flush: 0 or -EIO. */
int flush_barrier(struct fs *fs);

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

/* ---- names.c ---- */

/* stat of the node, with what its route knows better overlaid */
int node_stat(struct rnode *n, struct stat *st);
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

/* The fuse_lowlevel_ops of each family, filled into the session's table. */
void names_ops(struct fuse_lowlevel_ops *ops);
void dirs_ops(struct fuse_lowlevel_ops *ops);
void xattrs_ops(struct fuse_lowlevel_ops *ops);
void data_ops_fill(struct fuse_lowlevel_ops *ops);

#endif
