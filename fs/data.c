/*
 * data: the file-data operations: open, create, read, write, fsync,
 * fallocate, lseek, copy_file_range, release.  Each enters the gate, takes
 * the route of its node (route.c) and calls through it.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <linux/fuse.h>

#include "common/crashpoint.h"
#include "fs/fs_i.h"
#include "fs/once.h"

static void set_open_flags(struct fuse_file_info *fi)
{
	fi->noflush = 0;
	if (fi->flags & O_DIRECT) {
		/* QEMU cache=none: let the kernel send concurrent direct writes
		 * (without FOPEN_DIRECT_IO and FOPEN_PARALLEL_DIRECT_WRITES it
		 * serialises them on the inode lock) */
		fi->direct_io = 1;
		reply_open_flags(FOPEN_PARALLEL_DIRECT_WRITES);
	} else {
		/* all writes go through us: cached pages stay valid across opens */
		fi->keep_cache = 1;
	}
}

/* A resent CREATE or OPEN whose dead worker opened the handle already:
 * answer with it.  1 if answered so. */
static int carried_handle(struct fs *fs, struct fuse_file_info *fi)
{
	const struct req_rec *c = once_carried();

	if (!c || c->state != REC_DONE || !c->fh || !handle_get(fs, c->fh))
		return 0;
	fi->fh = c->fh;
	set_open_flags(fi);
	return 1;
}

/* An OPEN or CREATE with O_TRUNC that must clear setuid and setgid: the
 * open_flags of fuse_open_in or fuse_create_in, at off in the arguments. */
static bool kill_on_open(uint32_t opcode, size_t len, size_t off)
{
	const char *raw = req_args(opcode, len);
	uint32_t open_flags;

	if (!raw)
		return false;
	memcpy(&open_flags, raw + off, sizeof(open_flags));
	return open_flags & FUSE_OPEN_KILL_SUIDGID;
}

/*
 * A CREATE opens its file by name, without O_TRUNC, after name_check found
 * the name in no job; a job may have started on the file since, or a
 * cutover moved it.  Entered in n (a job's hold waits for it), refuse if n
 * is held, in a job, in an image or handed off, or if the file opened is no
 * longer n's; otherwise n is served by its backing file, and fd, opened on
 * it, is truncated as the caller would have with O_TRUNC.
 */
static int create_settle(fuse_req_t req, struct rnode *n, int fd, bool trunc)
{
	struct stat a, b;
	bool creds;
	int err = 0;

	if (!gate_try_enter(req, n))
		return -EBUSY;
	if (__atomic_load_n(&n->delta, __ATOMIC_ACQUIRE) ||
	    __atomic_load_n(&n->target, __ATOMIC_ACQUIRE))
		err = -EBUSY;
	else if (__atomic_load_n(&n->sealed, __ATOMIC_ACQUIRE))
		err = -EROFS;
	else if (fstat(fd, &a) == -1 || fstatat(n->fd, "", &b, AT_EMPTY_PATH) == -1)
		err = -errno;
	else if (a.st_dev != b.st_dev || a.st_ino != b.st_ino)
		err = -EBUSY;	/* the name is served from another backend now */
	else if (trunc && S_ISREG(a.st_mode)) {
		creds = creds_enter(req);
		if (ftruncate(fd, 0) == -1)
			err = -errno;
		creds_leave(creds);
		node_written(FS(req), n);
	}
	gate_leave(req, n);
	return err;
}

static void op_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
		      struct fuse_file_info *fi)
{
	struct fs *fs = FS(req);
	struct rnode *p = N(req, parent);
	const struct req_rec *c = once_carried();
	struct fuse_entry_param e;
	struct rhandle *h;
	bool creds;
	int fd, err;
	int flags = (fi->flags | O_CREAT) & ~(O_NOFOLLOW | O_APPEND | O_TRUNC);
	bool trunc = fi->flags & O_TRUNC;

	if (!gate_enter(req, p))
		return;
	if (carried_handle(fs, fi)) {
		err = do_lookup(fs, p, name, &e);	/* the carried node, no new reference */
		goto out;
	}
	err = name_check(fs, p, name, true);
	if (err)
		goto out;
	if (c && c->state == REC_DONE) {
		/* created and looked up before a worker died, not opened */
		flags &= ~O_EXCL;
	} else {
		struct stat st;
		bool existed = c && c->state == REC_INTENT
				       ? c->existed != 0
				       : fstatat(p->fd, name, &st, AT_SYMLINK_NOFOLLOW) == 0;

		once_intent(fs, existed);
		if (c && c->state == REC_INTENT && !existed)
			flags &= ~O_EXCL;	/* a worker may have created it */
	}
	/* O_RDWR for O_WRONLY: see backing_open_at; for O_RDONLY|O_TRUNC, to
	 * truncate (open(2) asks write permission for O_TRUNC too) */
	if ((flags & O_ACCMODE) == O_WRONLY || (trunc && (flags & O_ACCMODE) == O_RDONLY))
		flags = (flags & ~O_ACCMODE) | O_RDWR;
	delaypoint("create-open");	/* tests: a job may start meanwhile */
	creds = creds_enter(req);
	fd = openat(p->fd, name, flags | O_CLOEXEC, mode);
	if (fd == -1 && errno == EINVAL && (flags & O_DIRECT))
		fd = openat(p->fd, name, (flags & ~O_DIRECT) | O_CLOEXEC, mode);
	err = fd == -1 ? -errno : 0;
	creds_leave(creds);
	if (err)
		goto out;
	err = do_lookup(fs, p, name, &e);
	if (err) {
		close(fd);
		goto out;
	}
	err = create_settle(req, N(req, e.ino), fd, trunc);
	if (err) {
		close(fd);
		itab_forget(&fs->itab, N(req, e.ino), 1);
		goto out;
	}
	if (kill_on_open(FUSE_CREATE, sizeof(struct fuse_create_in),
			 offsetof(struct fuse_create_in, open_flags)) && trunc)
		(void)node_kill_suidgid(fs, req, N(req, e.ino));	/* it exists: truncated */
	h = handle_new(fs, N(req, e.ino), fd, fi->flags, false);
	if (!h) {
		close(fd);
		itab_forget(&fs->itab, N(req, e.ino), 1);
		err = -ENFILE;
		goto out;
	}
	fi->fh = handle_fh(h);
	set_open_flags(fi);
out:
	gate_leave(req, p);
	if (err)
		fuse_reply_err(req, -err);
	else
		fuse_reply_create(req, &e, fi);
	reply_open_flags(0);
}

static void op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct fs *fs = FS(req);
	struct rnode *n = N(req, ino);
	struct rhandle *h;
	struct route r;
	int fd = -1, err, flags;

	if (!gate_enter(req, n))
		return;
	if (carried_handle(fs, fi)) {
		err = 0;	/* opened before a worker died */
		goto out;
	}
	r = route(fs, n, NULL);
	flags = r.ops->open_flags(&r, fi->flags);
	err = flags < 0 ? flags : backing_open_at(n->fd, flags, &fd);
	if (!err && (fi->flags & O_TRUNC) && !(flags & O_TRUNC))
		err = r.ops->truncate(&r, 0);	/* the route truncates itself */
	if (!err && (fi->flags & O_TRUNC))
		node_written(fs, n);
	if (!err && (fi->flags & O_TRUNC) && kill_on_open(FUSE_OPEN, sizeof(struct fuse_open_in),
						      offsetof(struct fuse_open_in, open_flags)))
		err = node_kill_suidgid(fs, req, n);
	if (err)
		goto out;
	h = handle_new(fs, n, fd, fi->flags, false);
	if (!h) {
		err = -ENFILE;
		goto out;
	}
	fd = -1;	/* the handle's */
	fi->fh = handle_fh(h);
	set_open_flags(fi);
out:
	if (fd != -1)
		close(fd);
	gate_leave(req, n);
	if (err)
		fuse_reply_err(req, -err);
	else
		fuse_reply_open(req, fi);
	reply_open_flags(0);
}

static void op_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct rnode *n = N(req, ino);
	struct rhandle *h;

	if (!gate_enter(req, n))
		return;
	node_times_settle(FS(req), n);
	gate_leave(req, n);
	/* a resend of a release a dead worker did finds the handle gone */
	h = H(fi);
	if (h)
		handle_free(FS(req), h);
	fuse_reply_err(req, 0);
}

static void op_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct rnode *n = N(req, ino);

	/* close() is not a durability point; POSIX locks are the kernel's.
	 * The kernel wrote the file's pages and inode back before it: the
	 * backing file takes the kernel's mtime again. */
	if (FS(req)->wb_cache) {
		if (!gate_enter(req, n))
			return;
		node_times_settle(FS(req), n);
		gate_leave(req, n);
	}
	fuse_reply_err(req, 0);
}

/*
 * With the kernel's writeback cache the kernel, not relocfs, keeps a regular
 * file's size: a buffered write past the end makes the file longer in the
 * page cache, and the backing file only once that page is written back.
 * Before a direct read the kernel writes back the pages of the read's range,
 * not the page beyond it that made the file longer, so the backing file can
 * end inside the size the caller sees, and a direct read of a hole there
 * would stop early (end of file where zeros are due).  So a direct read that
 * comes back short is completed up to the kernel's size: what the backing
 * file lacks within the range is a hole (any page of it that was dirty has
 * been written back, and would have made the backing file longer).
 *
 * The kernel's size is read without a request (kernel_size); where it
 * cannot be (the caller's descriptor is not to be found: a pid namespace
 * relocfs does not see, an io_uring fixed file whose descriptor was closed),
 * the read is answered short, as before.
 */

#ifndef FILEID_INO64_GEN
#define FILEID_INO64_GEN	0x81	/* FUSE's export handles: node id, generation */
#endif

/* Whether path (a /proc/PID/fd link) leads to node ino of the mount mnt_id:
 * the file's export handle names its node id (the kernel builds it without
 * a request). */
static bool is_node(const char *path, uint64_t mnt_id, fuse_ino_t ino)
{
	union {
		struct file_handle fh;
		char bytes[sizeof(struct file_handle) + 32];
	} h = { .fh.handle_bytes = 32 };
	uint32_t raw[2];
	int mid;

	if (name_to_handle_at(AT_FDCWD, path, &h.fh, &mid, AT_SYMLINK_FOLLOW) == -1 ||
	    (uint64_t)mid != mnt_id || h.fh.handle_type != FILEID_INO64_GEN ||
	    h.fh.handle_bytes < sizeof(raw))
		return false;
	memcpy(raw, h.fh.f_handle, sizeof(raw));
	return ((uint64_t)raw[0] << 32 | raw[1]) == ino;
}

/*
 * The size the kernel has for node ino, read without a request: through one
 * of the calling thread's own descriptors of the file (/proc/TID/fd/N leads
 * to the open file itself, no lookup), with statx taking the cached
 * attributes.  -1 if it cannot be read so (no such descriptor, /proc of
 * another pid namespace or of a process relocfs may not look into).
 */
static off_t kernel_size(struct fs *fs, fuse_req_t req, fuse_ino_t ino)
{
	static uint64_t mnt_id;
	char dir[64], path[64 + sizeof(((struct dirent *)0)->d_name)];
	struct dirent *e;
	off_t size = -1;
	DIR *d;

	if (!mnt_id) {
		unsigned maj, min;

		if (mount_info(fs->cfg.mountpoint, &mnt_id, &maj, &min))
			return -1;
	}
	snprintf(dir, sizeof(dir), "/proc/%d/fd", (int)fuse_req_ctx(req)->pid);
	d = opendir(dir);
	if (!d)
		return -1;
	while (size < 0 && (e = readdir(d))) {
		struct statx stx;

		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		if (is_node(path, mnt_id, ino) &&
		    statx(AT_FDCWD, path, AT_STATX_DONT_SYNC, STATX_SIZE, &stx) == 0 &&
		    (stx.stx_mask & STATX_SIZE))
			size = (off_t)stx.stx_size;
	}
	closedir(d);
	return size;
}

/* A direct read of size at off that gave res bytes, completed with zeros up
 * to the kernel's size of n (see above); the bytes to answer with. */
static ssize_t to_kernel_size(struct fs *fs, fuse_req_t req, fuse_ino_t ino, char *buf,
			      ssize_t res, size_t size, off_t off)
{
	off_t end = kernel_size(fs, req, ino);
	size_t due;

	if (end <= off)
		return res;
	due = (uint64_t)(end - off) < size ? (size_t)(end - off) : size;
	if (due <= (size_t)res)
		return res;
	memset(buf + res, 0, due - (size_t)res);
	return (ssize_t)due;
}

/* Larger direct requests are served by a thread that waits for them,
 * through a buffer on a huge page where the device needs it (bounce.c):
 * io_uring tries a direct request without blocking first, and one the
 * block layer must split goes to a kernel worker thread. */
#define AIO_MAX		(256u << 10)

/*
 * The descriptor a request on route r may use without the thread waiting
 * (fs_i.h, io_async), or -1: the passthrough route; on an O_DIRECT backing
 * descriptor reads and writes of at most AIO_MAX bytes in a range O_DIRECT
 * takes as it is; on a buffered one reads (io_uring waits for the page
 * cache without a thread), but not writes (on ext4 io_uring hands them to
 * a kernel worker thread).
 */
static int aio_fd(const struct route *r, bool write, const void *buf, size_t len, off_t off)
{
	int fd = r->h ? r->ops->direct_fd(r) : -1;

	if (fd < 0)
		return -1;
	if (!r->h->fd_direct)
		return write ? -1 : fd;
	if (len > AIO_MAX || (((uintptr_t)buf | len | (size_t)off) & 511))
		return -1;
	return fd;
}

bool data_inline(struct fs *fs, const struct fuse_in_header *in)
{
	size_t alen = in->len - sizeof(*in);
	const void *arg = in + 1;
	struct rhandle *h;
	struct rnode *n;
	struct route r;
	uint64_t fh, size = 0;

	switch (in->opcode) {
	case FUSE_READ: {
		const struct fuse_read_in *a = arg;

		if (alen < sizeof(*a))
			return false;
		fh = a->fh, size = a->size;
		break;
	}
	case FUSE_WRITE: {
		const struct fuse_write_in *a = arg;

		if (alen < sizeof(*a) || (a->write_flags & FUSE_WRITE_KILL_SUIDGID))
			return false;
		fh = a->fh, size = a->size;
		break;
	}
	case FUSE_FSYNC: {
		const struct fuse_fsync_in *a = arg;

		if (alen < sizeof(*a))
			return false;
		fh = a->fh;
		break;
	}
	default:
		return false;
	}
	n = itab_node(&fs->itab, in->nodeid);
	h = n ? handle_get(fs, fh) : NULL;
	if (!h)
		return false;
	r = route(fs, n, h);
	if (r.ops->direct_fd(&r) < 0)
		return false;
	if (in->opcode == FUSE_WRITE && (h->flags & (O_SYNC | O_DSYNC)))
		return false;	/* the flush barrier may wait for a commit */
	/* the rest of the passthrough's requests wait for the disk at most:
	 * a buffered read is queued whatever its size, and a small buffered
	 * write or unaligned direct request is quicker served than handed
	 * on; a large one (the writeback cache's writes come in runs of up
	 * to 1 MiB, and the kernel may make their writer wait for its dirty
	 * limits; a read on an O_DIRECT backing descriptor waits for the
	 * disk) goes to a helper, so that the thread's other entries go on
	 * meanwhile */
	if (in->opcode == FUSE_READ && !h->fd_direct)
		return true;
	return size <= AIO_MAX;
}

/* Before a request is served synchronously on route r: a ring thread's
 * I/O completes first unless the route waits for nothing but a disk. */
static void sync_ahead(const struct route *r)
{
	if (!r->h || r->ops->direct_fd(r) < 0)
		io_drain();
}

/* The end of a READ that gave res: a short direct read completed (see
 * above), the gate left, the reply. */
static void read_reply(fuse_req_t req, struct rnode *n, fuse_ino_t ino, int flags, char *buf,
		       size_t size, off_t off, ssize_t res)
{
	if (res >= 0 && (size_t)res < size && FS(req)->wb_cache && (flags & O_DIRECT))
		res = to_kernel_size(FS(req), req, ino, buf, res, size, off);
	gate_leave(req, n);
	if (res < 0)
		fuse_reply_err(req, (int)-res);
	else
		fuse_reply_buf(req, buf, (size_t)res);
}

/*
 * A queued read or write that gave res: if it was refused (EINVAL: an
 * alignment the backing file wants larger) or came back short (the end of
 * the file, or a transfer io_uring cut), the rest by the route's own call,
 * which knows the ways around and says where the end is.  The bytes done,
 * or -errno if none.
 */
static ssize_t aio_rest(struct aio *a, int res)
{
	size_t done = res < 0 ? 0 : (size_t)res;
	struct route r;
	ssize_t more;

	if (done == a->len)
		return res;
	r = route(FS(a->req), a->n, a->h);
	sync_ahead(&r);
	if (a->op == AIO_READ)
		more = r.ops->read(&r, a->buf + done, a->len - done, a->off + (off_t)done);
	else
		more = r.ops->write(&r, a->buf + done, a->len - done, a->off + (off_t)done);
	if (more < 0)
		return done ? (ssize_t)done : more;
	return (ssize_t)(done + (size_t)more);
}

static void read_done(struct aio *a, int res)
{
	read_reply(a->req, a->n, a->ino, a->flags, a->buf, a->len, a->off, aio_rest(a, res));
}

static void op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		    struct fuse_file_info *fi)
{
	struct rnode *n = N(req, ino);
	struct route r;
	char *buf;
	ssize_t res;
	int fd;

	if (!gate_enter(req, n))
		return;
	if (size > MAX_IO)
		size = MAX_IO;
	buf = read_buf();
	r = route(FS(req), n, H(fi));
	if (buf && (fd = aio_fd(&r, false, buf, size, off)) >= 0) {
		struct aio a = { .done = read_done, .req = req, .n = n, .h = r.h, .ino = ino,
				 .op = AIO_READ, .fd = fd, .flags = fi->flags, .buf = buf,
				 .len = size, .off = off };

		if (io_async(&a))
			return;
	}
	sync_ahead(&r);
	res = !r.h ? -EBADF : buf ? r.ops->read(&r, buf, size, off) : -ENOMEM;
	read_reply(req, n, ino, fi->flags, buf, size, off, res);
}

static void write_done(struct aio *a, int res)
{
	ssize_t put = aio_rest(a, res);

	node_written(FS(a->req), a->n);
	gate_leave(a->req, a->n);
	if (put < 0)
		fuse_reply_err(a->req, (int)-put);
	else
		fuse_reply_write(a->req, (size_t)put);
}

static void op_write_buf(fuse_req_t req, fuse_ino_t ino, struct fuse_bufvec *in, off_t off,
			 struct fuse_file_info *fi)
{
	const struct fuse_write_in *raw;
	struct rnode *n = N(req, ino);
	struct rhandle *h = H(fi);
	size_t len = fuse_buf_size(in);
	bool in_entry = false, kill;
	const char *data;
	struct route r;
	ssize_t res;
	int fd;

	if (!gate_enter(req, n))
		return;
	if (!h) {
		res = -EBADF;
		goto out;
	}
	if (in->count == 1 && !(in->buf[0].flags & FUSE_BUF_IS_FD)) {
		data = in->buf[0].mem;
		in_entry = true;	/* the request's own buffer */
	} else {
		/* not how relocfs receives requests (no splice), but handled */
		struct fuse_bufvec dst = FUSE_BUFVEC_INIT(len);
		char *buf = io_buf();

		if (!buf || len > MAX_IO) {
			res = buf ? -EINVAL : -ENOMEM;
			goto out;
		}
		dst.buf[0].mem = buf;
		res = fuse_buf_copy(&dst, in, 0);
		if (res < 0)
			goto out;
		len = (size_t)res;
		data = buf;
	}
	raw = req_args(FUSE_WRITE, sizeof(*raw));
	kill = raw && (raw->write_flags & FUSE_WRITE_KILL_SUIDGID);
	r = route(FS(req), n, h);
	if (in_entry && !kill && !(h->flags & (O_SYNC | O_DSYNC)) &&
	    (fd = aio_fd(&r, true, data, len, off)) >= 0) {
		struct aio a = { .done = write_done, .req = req, .n = n, .h = h, .ino = ino,
				 .op = AIO_WRITE, .fd = fd, .flags = fi->flags,
				 .buf = (char *)data, .len = len, .off = off };

		if (io_async(&a))
			return;
	}
	if (kill || (h->flags & (O_SYNC | O_DSYNC)))
		io_drain();	/* the flush barrier may wait for a commit */
	else
		sync_ahead(&r);
	if (kill) {
		res = node_kill_suidgid(FS(req), req, n);
		if (res < 0)
			goto out;
	}
	res = r.ops->write(&r, data, len, off);
	node_written(FS(req), n);
	if (res >= 0 && (h->flags & (O_SYNC | O_DSYNC)) && flush_barrier(FS(req)))
		res = -EIO;
out:
	gate_leave(req, n);
	if (res < 0)
		fuse_reply_err(req, (int)-res);
	else
		fuse_reply_write(req, (size_t)res);
}

static void fsync_done(struct aio *a, int res)
{
	gate_leave(a->req, a->n);
	io_drain();	/* the barrier may wait for a commit */
	if (flush_barrier(FS(a->req)) && !res)
		res = -EIO;
	fuse_reply_err(a->req, -res);
}

static void op_fsync(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
	struct rnode *n = N(req, ino);
	struct route r;
	int err, fd;

	if (!gate_enter(req, n))
		return;
	node_times_settle(FS(req), n);	/* synced with the data */
	r = route(FS(req), n, H(fi));
	if (r.h && (fd = r.ops->direct_fd(&r)) >= 0) {
		struct aio a = { .done = fsync_done, .req = req, .n = n, .h = r.h, .ino = ino,
				 .op = AIO_FSYNC, .fd = fd, .flags = fi->flags,
				 .datasync = datasync != 0 };

		if (io_async(&a))
			return;
	}
	io_drain();	/* the flush barrier may wait for a commit */
	err = r.h ? r.ops->fsync(&r, datasync) : -EBADF;
	gate_leave(req, n);
	if (flush_barrier(FS(req)) && !err)
		err = -EIO;
	fuse_reply_err(req, -err);
}

static void op_fallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t off, off_t len,
			 struct fuse_file_info *fi)
{
	struct rnode *n = N(req, ino);
	struct route r;
	int err;

	if (!gate_enter(req, n))
		return;
	r = route(FS(req), n, H(fi));
	err = r.h ? r.ops->fallocate(&r, mode, off, len) : -EBADF;
	node_written(FS(req), n);
	gate_leave(req, n);
	fuse_reply_err(req, -err);
}

/* Whether the kernel may hold written pages of n that relocfs has not been
 * sent: a handle open for writing without O_DIRECT (with the writeback
 * cache; its close writes them back before the handle is released). */
static bool cached_writes(struct rnode *n)
{
	bool any = false;

	pthread_mutex_lock(&n->mu);
	for (struct rhandle *h = n->handles; h && !any; h = h->next)
		any = (h->flags & O_ACCMODE) != O_RDONLY && !(h->flags & O_DIRECT);
	pthread_mutex_unlock(&n->mu);
	return any;
}

/*
 * SEEK_DATA and SEEK_HOLE are answered from the backing file, which lacks
 * what the writeback cache still holds, and the kernel does not write it
 * back before it asks (as it does before a direct read): a page written a
 * moment ago would be reported a hole, and a copy that skips holes would
 * lose it.  While the kernel may hold such pages, the whole file up to the
 * kernel's size is reported as data: a filesystem may report a hole as
 * data, never data as a hole.
 */
static off_t seek_cached(struct fs *fs, fuse_req_t req, fuse_ino_t ino, struct rnode *n, off_t off,
			 int whence)
{
	off_t end;

	if (!fs->wb_cache || (whence != SEEK_DATA && whence != SEEK_HOLE) || !cached_writes(n))
		return -EAGAIN;
	end = kernel_size(fs, req, ino);
	if (end < 0)
		return -EAGAIN;
	if (off >= end)
		return -ENXIO;
	return whence == SEEK_DATA ? off : end;
}

static void op_lseek(fuse_req_t req, fuse_ino_t ino, off_t off, int whence,
		     struct fuse_file_info *fi)
{
	struct rnode *n = N(req, ino);
	struct route r;
	off_t pos;

	if (!gate_enter(req, n))
		return;
	r = route(FS(req), n, H(fi));
	pos = r.h ? seek_cached(FS(req), req, ino, n, off, whence) : -EBADF;
	if (pos == -EAGAIN)
		pos = r.ops->lseek(&r, off, whence);
	gate_leave(req, n);
	if (pos < 0)
		fuse_reply_err(req, (int)-pos);
	else
		fuse_reply_lseek(req, pos);
}

static void op_copy_file_range(fuse_req_t req, fuse_ino_t ino_in, off_t off_in,
			       struct fuse_file_info *fi_in, fuse_ino_t ino_out, off_t off_out,
			       struct fuse_file_info *fi_out, size_t len, int flags)
{
	struct rnode *ni = N(req, ino_in), *no = N(req, ino_out);
	struct route ri, ro;
	int fdi, fdo;
	ssize_t res;

	if (!gate_enter(req, ni))
		return;
	if (!gate_enter(req, no)) {
		gate_leave(req, ni);
		return;
	}
	ri = route(FS(req), ni, H(fi_in));
	ro = route(FS(req), no, H(fi_out));
	if (!ri.h || !ro.h) {
		res = -EBADF;
		goto out;
	}
	fdi = ri.ops->direct_fd(&ri);
	fdo = ro.ops->direct_fd(&ro);
	if (fdi >= 0 && fdo >= 0) {
		res = copy_file_range(fdi, &off_in, fdo, &off_out, len, (unsigned)flags);
		if (res == -1 && errno == EINVAL && (ri.h->fd_direct || ro.h->fd_direct))
			/* O_DIRECT refuses an unaligned range */
			res = copy_file_range(buffered_fd(FS(req), ri.h), &off_in,
					      buffered_fd(FS(req), ro.h), &off_out, len,
					      (unsigned)flags);
		res = res == -1 ? -errno : res;
	} else {
		/* one side migrates: copy one buffer through the routes */
		char *buf = io_buf();
		size_t chunk = len < MAX_IO ? len : MAX_IO;

		res = buf ? ri.ops->read(&ri, buf, chunk, off_in) : -ENOMEM;
		if (res > 0)
			res = ro.ops->write(&ro, buf, (size_t)res, off_out);
	}
	node_written(FS(req), no);
out:
	gate_leave(req, no);
	gate_leave(req, ni);
	if (res < 0)
		fuse_reply_err(req, (int)-res);
	else
		fuse_reply_write(req, (size_t)res);
}

void data_ops_fill(struct fuse_lowlevel_ops *ops)
{
	ops->create = op_create;
	ops->open = op_open;
	ops->release = op_release;
	ops->flush = op_flush;
	ops->read = op_read;
	ops->write_buf = op_write_buf;
	ops->fsync = op_fsync;
	ops->fallocate = op_fallocate;
	ops->lseek = op_lseek;
	ops->copy_file_range = op_copy_file_range;
}
