/*
 * route: where a file's data goes.  route() is the one place that decides:
 * while the job engine has given the node a live view (fs_node_route), the
 * data goes through the delta store (delta/delta.h); otherwise to the
 * backing file through the open handle.  Every file-data handler (data.c)
 * and the attribute overlay (names.c) call through the route they get and
 * never ask which it is, the way dm-clone's clone_map() alone decides where
 * a bio goes.
 *
 * A file relocated into an RBD image is served from it (target/target.h):
 * the backing file is then a stub that keeps the name, owner and mode,
 * and every byte, the size and the times come from the image.  Flushes are
 * rbd_flush, SEEK_DATA/SEEK_HOLE the image's object map, PUNCH_HOLE and
 * ZERO_RANGE zeroing writes that discard whole objects; O_DIRECT needs no
 * alignment there.
 *
 * The passthrough side also hides O_DIRECT's alignment rules: where the
 * handle's backing descriptor is O_DIRECT (the kernel's open asked for it, or
 * the kernel caches the file itself: handle.c), a request the backing file
 * refuses for alignment (EINVAL) is retried on a descriptor without it.
 *
 * A sealed node (fs_node_seal: a file handed off to another host, which
 * writes it now) is served read-only over whichever of the two routes holds
 * its data: opens for writing, writes, truncates and fallocate fail with
 * EROFS, on handles opened before the seal too, so that nothing on this
 * host writes the file again.
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "common/util.h"
#include "delta/delta.h"
#include "fs/fs_i.h"
#include "target/target.h"

/* ---- the backing file -------------------------------------------------- */

static bool unaligned(const void *buf, size_t len, off_t off)
{
	return ((uintptr_t)buf | len | (size_t)off) & 511;
}

static ssize_t pass_read(const struct route *r, char *buf, size_t len, off_t off)
{
	struct rhandle *h = r->h;
	int fd = h->fd, err;
	char *b = NULL;
	ssize_t n;

	if (h->fd_direct && unaligned(buf, len, off))
		fd = buffered_fd(r->fs, h);
	else if (h->fd_direct)
		b = bounce_get(r->fs, fd, len);
	n = pread(fd, b ? b : buf, len, off);
	if (n == -1 && errno == EINVAL && fd == h->fd && h->fd_direct)
		n = pread(buffered_fd(r->fs, h), b ? b : buf, len, off);
	err = n == -1 ? -errno : 0;
	if (b) {
		if (n > 0)
			memcpy(buf, b, (size_t)n);
		bounce_put(r->fs, b);
	}
	return err ? err : n;
}

static ssize_t pass_write(const struct route *r, const char *buf, size_t len, off_t off)
{
	struct rhandle *h = r->h;
	int fd = h->fd, err;
	char *b = NULL;
	ssize_t n;

	if (h->fd_direct && unaligned(buf, len, off))
		fd = buffered_fd(r->fs, h);
	else if (h->fd_direct && (b = bounce_get(r->fs, fd, len)))
		buf = memcpy(b, buf, len);
	n = pwrite(fd, buf, len, off);
	if (n == -1 && errno == EINVAL && fd == h->fd && h->fd_direct)
		n = pwrite(buffered_fd(r->fs, h), buf, len, off);
	err = n == -1 ? -errno : 0;
	if (b)
		bounce_put(r->fs, b);
	return err ? err : n;
}

static int pass_fsync(const struct route *r, bool datasync)
{
	int fd = r->h->fd;

	return (datasync ? fdatasync(fd) : fsync(fd)) == -1 ? -errno : 0;
}

static int pass_fallocate(const struct route *r, int mode, off_t off, off_t len)
{
	return fallocate(r->h->fd, mode, off, len) == -1 ? -errno : 0;
}

static off_t pass_lseek(const struct route *r, off_t off, int whence)
{
	off_t pos = lseek(r->h->fd, off, whence);

	/* the offset it returns is the answer: a second lseek could see
	 * another request's position */
	return pos == -1 ? -errno : pos;
}

static int pass_truncate(const struct route *r, off_t size)
{
	char path[64];

	if (r->h && !r->h->dir)
		return ftruncate(r->h->fd, size) == -1 ? -errno : 0;
	fd_path(r->n->fd, path);
	return truncate(path, size) == -1 ? -errno : 0;
}

static void pass_getattr(const struct route *r, struct stat *st)
{
	(void)r;
	(void)st;	/* the backing file's stat is the answer */
}

static int pass_direct_fd(const struct route *r)
{
	return r->h->fd;
}

static int pass_open_flags(const struct route *r, int flags)
{
	return flags;
}

static int pass_set_mtime(const struct route *r, const struct timespec *ts)
{
	struct timespec tv[2] = { { .tv_nsec = UTIME_OMIT }, *ts };

	return utimensat(r->n->fd, "", tv, AT_EMPTY_PATH) == -1 ? -errno : 0;
}

static const struct data_ops pass_ops = {
	.read = pass_read,
	.write = pass_write,
	.fsync = pass_fsync,
	.fallocate = pass_fallocate,
	.lseek = pass_lseek,
	.truncate = pass_truncate,
	.getattr = pass_getattr,
	.direct_fd = pass_direct_fd,
	.open_flags = pass_open_flags,
	.set_mtime = pass_set_mtime,
};

/* ---- the live view of a migrating file ------------------------------------ */

static ssize_t live_read(const struct route *r, char *buf, size_t len, off_t off)
{
	return delta_read(r->d, buf, len, off);
}

static ssize_t live_write(const struct route *r, const char *buf, size_t len, off_t off)
{
	ssize_t n = delta_write(r->d, buf, len, off);

	if (n >= 0 && (r->h->flags & (O_SYNC | O_DSYNC))) {
		int err = delta_fsync(r->d, (r->h->flags & O_SYNC) != O_SYNC);

		if (err)
			n = err;
	}
	return n;
}

static int live_fsync(const struct route *r, bool datasync)
{
	return delta_fsync(r->d, datasync);
}

static int live_fallocate(const struct route *r, int mode, off_t off, off_t len)
{
	return delta_fallocate(r->d, mode, off, len);
}

static off_t live_lseek(const struct route *r, off_t off, int whence)
{
	return delta_lseek(r->d, off, whence);
}

static int live_truncate(const struct route *r, off_t size)
{
	return delta_truncate(r->d, size);
}

static void live_getattr(const struct route *r, struct stat *st)
{
	delta_getattr(r->d, st);
}

static int live_direct_fd(const struct route *r)
{
	return -1;	/* the data is spread over the delta and the base */
}

static int live_open_flags(const struct route *r, int flags)
{
	/* the source is frozen: an O_TRUNC open truncates the live view */
	return flags & ~O_TRUNC;
}

static int live_set_mtime(const struct route *r, const struct timespec *ts)
{
	delta_set_mtime(r->d, ts);	/* what getattr overlays, and the switch copies */
	return 0;
}

static const struct data_ops live_ops = {
	.read = live_read,
	.write = live_write,
	.fsync = live_fsync,
	.fallocate = live_fallocate,
	.lseek = live_lseek,
	.truncate = live_truncate,
	.getattr = live_getattr,
	.direct_fd = live_direct_fd,
	.open_flags = live_open_flags,
	.set_mtime = live_set_mtime,
};

/* ---- a file whose data lives in a target (an RBD image) --------------------- */

static ssize_t tgt_read(const struct route *r, char *buf, size_t len, off_t off)
{
	uint64_t size;
	int err = target_size(r->t, &size);

	if (err)
		return err;
	if ((uint64_t)off >= size)
		return 0;
	if (len > size - (uint64_t)off)
		len = (size_t)(size - (uint64_t)off);
	err = target_pread(r->t, buf, len, (uint64_t)off);
	return err ? err : (ssize_t)len;
}

static ssize_t tgt_write(const struct route *r, const char *buf, size_t len, off_t off)
{
	int err = target_pwrite(r->t, buf, len, (uint64_t)off);

	if (!err && (r->h->flags & (O_SYNC | O_DSYNC)))
		err = target_sync(r->t);
	return err ? err : (ssize_t)len;
}

static int tgt_fsync(const struct route *r, bool datasync)
{
	return target_sync(r->t);
}

static int tgt_fallocate(const struct route *r, int mode, off_t off, off_t len)
{
	return target_fallocate(r->t, mode, (uint64_t)off, (uint64_t)len);
}

static off_t tgt_lseek(const struct route *r, off_t off, int whence)
{
	return (off_t)target_seek(r->t, (uint64_t)off, whence);
}

static int tgt_truncate(const struct route *r, off_t size)
{
	return target_resize(r->t, (uint64_t)size);
}

static void tgt_getattr(const struct route *r, struct stat *st)
{
	struct target_meta m;

	if (target_get_meta(r->t, &m))
		return;
	st->st_size = (off_t)m.size;
	st->st_blocks = (blkcnt_t)m.blocks;
	st->st_mtim = m.mtime;
	if (m.atime.tv_sec)
		st->st_atim = m.atime;
}

static int tgt_direct_fd(const struct route *r)
{
	return -1;
}

static int tgt_open_flags(const struct route *r, int flags)
{
	/* the stub is not the data: an O_TRUNC open truncates the target */
	return flags & ~O_TRUNC;
}

static int tgt_set_mtime(const struct route *r, const struct timespec *ts)
{
	return 0;	/* the image's metadata keeps the time of its last write */
}

static const struct data_ops target_ops = {
	.read = tgt_read,
	.write = tgt_write,
	.fsync = tgt_fsync,
	.fallocate = tgt_fallocate,
	.lseek = tgt_lseek,
	.truncate = tgt_truncate,
	.getattr = tgt_getattr,
	.direct_fd = tgt_direct_fd,
	.open_flags = tgt_open_flags,
	.set_mtime = tgt_set_mtime,
};

/* ---- a sealed file: read-only over the route that holds its data ---------- */

static ssize_t sealed_read(const struct route *r, char *buf, size_t len, off_t off)
{
	return r->inner->read(r, buf, len, off);
}

static ssize_t sealed_write(const struct route *r, const char *buf, size_t len, off_t off)
{
	return -EROFS;
}

static int sealed_fsync(const struct route *r, bool datasync)
{
	return r->inner->fsync(r, datasync);	/* nothing of this host's to flush */
}

static int sealed_fallocate(const struct route *r, int mode, off_t off, off_t len)
{
	return -EROFS;
}

static off_t sealed_lseek(const struct route *r, off_t off, int whence)
{
	return r->inner->lseek(r, off, whence);
}

static int sealed_truncate(const struct route *r, off_t size)
{
	return -EROFS;
}

static void sealed_getattr(const struct route *r, struct stat *st)
{
	r->inner->getattr(r, st);
}

static int sealed_direct_fd(const struct route *r)
{
	return -1;	/* a copy into it must come through sealed_write */
}

static int sealed_open_flags(const struct route *r, int flags)
{
	if ((flags & O_ACCMODE) != O_RDONLY || (flags & O_TRUNC))
		return -EROFS;
	return r->inner->open_flags(r, flags);
}

static int sealed_set_mtime(const struct route *r, const struct timespec *ts)
{
	return 0;	/* another host writes it now */
}

static const struct data_ops sealed_ops = {
	.read = sealed_read,
	.write = sealed_write,
	.fsync = sealed_fsync,
	.fallocate = sealed_fallocate,
	.lseek = sealed_lseek,
	.truncate = sealed_truncate,
	.getattr = sealed_getattr,
	.direct_fd = sealed_direct_fd,
	.open_flags = sealed_open_flags,
	.set_mtime = sealed_set_mtime,
};

/* ---- the decision ------------------------------------------------------------ */

struct route route(struct fs *fs, struct rnode *n, struct rhandle *h)
{
	struct delta *d = __atomic_load_n(&n->delta, __ATOMIC_ACQUIRE);
	struct target *t = __atomic_load_n(&n->target, __ATOMIC_ACQUIRE);
	const struct data_ops *ops = d ? &live_ops : t ? &target_ops : &pass_ops;

	if (__atomic_load_n(&n->sealed, __ATOMIC_ACQUIRE))
		return (struct route){ .ops = &sealed_ops, .inner = ops, .fs = fs, .n = n, .h = h,
				       .d = d, .t = t };
	return (struct route){ .ops = ops, .inner = ops, .fs = fs, .n = n, .h = h, .d = d, .t = t };
}

void fs_node_target(struct rnode *n, struct target *t)
{
	struct target *old;

	if (t)
		target_ref(t);
	old = __atomic_exchange_n(&n->target, t, __ATOMIC_ACQ_REL);
	target_put(old);
}

void fs_node_seal(struct fs *fs, struct rnode *n, bool sealed)
{
	__atomic_store_n(&n->sealed, sealed, __ATOMIC_RELEASE);
	/* with the writeback cache, the next write(2) on a handle opened
	 * before asks for them, and is refused there (names.c) */
	if (sealed && fs->se)
		fuse_lowlevel_notify_inval_inode(fs->se, itab_nodeid(&fs->itab, n), -1, 0);
}

void fs_node_route(struct rnode *n, struct delta *d)
{
	__atomic_store_n(&n->delta, d, __ATOMIC_RELEASE);
	/* the file's mtime is the new route's now (names.c, node_written) */
	__atomic_store_n(&n->kmtime_stale, true, __ATOMIC_RELEASE);
}

int flush_barrier(struct fs *fs)
{
	if (!fs->policy.flush_barrier)
		return 0;
	return fs->policy.flush_barrier(fs->policy.arg) ? -EIO : 0;
}
