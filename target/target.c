/*
 * target: the calls every kind shares (references, the search for data in
 * a buffer), and the file kind: a descriptor on a file in a directory.
 *
 * A file on a filesystem that lacks something is handled here, not by the
 * callers: a punch the filesystem refuses (ceph-fuse and others lack
 * ZERO_RANGE, some lack PUNCH_HOLE) writes zeros instead.  A filesystem
 * whose SEEK_HOLE finds no holes (ceph-fuse) costs the copier only the
 * reading of zeros: target_write_data never writes them.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <linux/falloc.h>

#include "common/util.h"
#include "target/target_i.h"

#define BLK 4096u

void target_ref(struct target *t)
{
	__atomic_add_fetch(&t->refs, 1, __ATOMIC_RELAXED);
}

void target_put(struct target *t)
{
	if (!t || __atomic_sub_fetch(&t->refs, 1, __ATOMIC_ACQ_REL))
		return;
	t->ops->close(t);
}

int target_pread(struct target *t, char *buf, size_t len, uint64_t off)
{
	return t->ops->pread(t, buf, len, off);
}

int target_pwrite(struct target *t, const char *buf, size_t len, uint64_t off)
{
	return t->ops->pwrite(t, buf, len, off);
}

static bool zero_block(const char *p, size_t len)
{
	const uint64_t *w = (const uint64_t *)p;

	for (size_t i = 0; i < len / 8; i++)
		if (w[i])
			return false;
	for (size_t i = len & ~(size_t)7; i < len; i++)
		if (p[i])
			return false;
	return true;
}

int target_write_data(struct target *t, const char *buf, size_t len, uint64_t off)
{
	size_t (*runs)[2] = NULL, n = 0, cap = 0, i = 0;
	int err;

	while (i < len) {
		size_t s;

		while (i < len && zero_block(buf + i, len - i < BLK ? len - i : BLK))
			i += BLK;
		if (i >= len)
			break;
		s = i;
		while (i < len && !zero_block(buf + i, len - i < BLK ? len - i : BLK))
			i += BLK;
		if (n == cap) {
			size_t (*nr)[2] = realloc(runs, (cap ? cap * 2 : 16) * sizeof(*runs));

			if (!nr) {
				free(runs);
				return -ENOMEM;
			}
			runs = nr;
			cap = cap ? cap * 2 : 16;
		}
		runs[n][0] = s;
		runs[n][1] = (i < len ? i : len) - s;
		n++;
	}
	err = n ? t->ops->write_runs(t, buf, (const size_t(*)[2])runs, n, off) : 0;
	free(runs);
	return err;
}

int target_punch(struct target *t, uint64_t off, uint64_t len)
{
	return len ? t->ops->punch(t, off, len) : 0;
}

int target_fallocate(struct target *t, int mode, uint64_t off, uint64_t len)
{
	return t->ops->fallocate(t, mode, off, len);
}

int target_resize(struct target *t, uint64_t size)
{
	return t->ops->resize(t, size);
}

int target_size(struct target *t, uint64_t *size)
{
	return t->ops->size(t, size);
}

int target_sync(struct target *t)
{
	return t->ops->sync(t);
}

int64_t target_seek(struct target *t, uint64_t off, int whence)
{
	return t->ops->seek(t, off, whence);
}

void target_drop_cache(struct target *t, uint64_t off, uint64_t len)
{
	t->ops->drop_cache(t, off, len);
}

int target_get_meta(struct target *t, struct target_meta *m)
{
	memset(m, 0, sizeof(*m));
	return t->ops->get_meta(t, m);
}

int target_set_meta(struct target *t, const struct target_meta *m, const char *path)
{
	return t->ops->set_meta(t, m, path);
}

int target_fd(const struct target *t)
{
	return t->fd;
}

const char *target_name(const struct target *t)
{
	return t->name;
}

/* ---- a file ------------------------------------------------------------------ */

static int file_pread(struct target *t, char *buf, size_t len, uint64_t off)
{
	return pread_full(t->fd, buf, len, (off_t)off);
}

static int file_pwrite(struct target *t, const char *buf, size_t len, uint64_t off)
{
	return pwrite_full(t->fd, buf, len, (off_t)off);
}

static int file_write_runs(struct target *t, const char *buf, const size_t (*runs)[2], size_t n,
			   uint64_t off)
{
	for (size_t i = 0; i < n; i++) {
		int err = pwrite_full(t->fd, buf + runs[i][0], runs[i][1], (off_t)(off + runs[i][0]));

		if (err)
			return err;
	}
	return 0;
}

static int write_zeros(int fd, uint64_t off, uint64_t len)
{
	static const char zeros[64 * 1024];

	while (len) {
		size_t n = len < sizeof(zeros) ? (size_t)len : sizeof(zeros);
		int err = pwrite_full(fd, zeros, n, (off_t)off);

		if (err)
			return err;
		off += n;
		len -= n;
	}
	return 0;
}

static int file_punch(struct target *t, uint64_t off, uint64_t len)
{
	struct stat st;

	if (fallocate(t->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)off, (off_t)len) == 0)
		return 0;
	/* no punch here: zeros, but not past the end (the size must stay) */
	if (fstat(t->fd, &st) == -1)
		return -errno;
	if (off >= (uint64_t)st.st_size)
		return 0;
	if (off + len > (uint64_t)st.st_size)
		len = (uint64_t)st.st_size - off;
	return write_zeros(t->fd, off, len);
}

static int file_fallocate(struct target *t, int mode, uint64_t off, uint64_t len)
{
	if (fallocate(t->fd, mode, (off_t)off, (off_t)len) == 0)
		return 0;
	if (errno != EOPNOTSUPP || !(mode & FALLOC_FL_ZERO_RANGE))
		return -errno;
	/* ZERO_RANGE where the filesystem lacks it (ceph-fuse): punch, then
	 * set the size the way ZERO_RANGE would */
	{
		struct stat st;
		int err = file_punch(t, off, len);

		if (!err && !(mode & FALLOC_FL_KEEP_SIZE) && fstat(t->fd, &st) == 0 &&
		    off + len > (uint64_t)st.st_size && ftruncate(t->fd, (off_t)(off + len)) == -1)
			err = -errno;
		return err;
	}
}

static int file_resize(struct target *t, uint64_t size)
{
	return ftruncate(t->fd, (off_t)size) == -1 ? -errno : 0;
}

static int file_size(struct target *t, uint64_t *size)
{
	struct stat st;

	if (fstat(t->fd, &st) == -1)
		return -errno;
	*size = (uint64_t)st.st_size;
	return 0;
}

static int file_sync(struct target *t)
{
	return fdatasync(t->fd) == -1 ? -errno : 0;
}

static int64_t file_seek(struct target *t, uint64_t off, int whence)
{
	off_t pos = lseek(t->fd, (off_t)off, whence);

	return pos == -1 ? -errno : pos;
}

static void file_drop_cache(struct target *t, uint64_t off, uint64_t len)
{
	posix_fadvise(t->fd, (off_t)off, (off_t)len, POSIX_FADV_DONTNEED);
}

static int file_get_meta(struct target *t, struct target_meta *m)
{
	struct stat st;

	if (fstat(t->fd, &st) == -1)
		return -errno;
	m->size = (uint64_t)st.st_size;
	m->blocks = (uint64_t)st.st_blocks;
	m->mode = st.st_mode;
	m->uid = st.st_uid;
	m->gid = st.st_gid;
	m->atime = st.st_atim;
	m->mtime = st.st_mtim;
	m->have_owner = true;
	return 0;
}

static int file_set_meta(struct target *t, const struct target_meta *m, const char *path)
{
	struct timespec tv[2] = { m->atime, m->mtime };
	int err = 0;

	if (m->have_owner) {
		if (fchown(t->fd, m->uid, m->gid) == -1)
			err = -errno;
		if (fchmod(t->fd, m->mode & 07777) == -1)
			err = -errno;
	}
	if (futimens(t->fd, tv) == -1)
		err = -errno;
	return err;
}

static void file_close(struct target *t)
{
	close(t->fd);
	free(t->name);
	free(t);
}

static const struct target_ops file_ops = {
	.pread = file_pread,
	.pwrite = file_pwrite,
	.write_runs = file_write_runs,
	.punch = file_punch,
	.fallocate = file_fallocate,
	.resize = file_resize,
	.size = file_size,
	.sync = file_sync,
	.seek = file_seek,
	.drop_cache = file_drop_cache,
	.get_meta = file_get_meta,
	.set_meta = file_set_meta,
	.close = file_close,
};

struct target *target_file_new(int fd, const char *name)
{
	struct target *t = calloc(1, sizeof(*t));

	if (!t)
		return NULL;
	t->name = strdup(name ? name : "");
	if (!t->name) {
		free(t);
		return NULL;
	}
	t->ops = &file_ops;
	t->refs = 1;
	t->fd = fd;
	return t;
}

/* ---- a target that could not be opened ----------------------------------------- */

struct failed_target {
	struct target t;
	int err;
};

static int failed_err(struct target *t)
{
	return ((struct failed_target *)t)->err;
}

static int failed_pread(struct target *t, char *buf, size_t len, uint64_t off)
{
	return failed_err(t);
}

static int failed_pwrite(struct target *t, const char *buf, size_t len, uint64_t off)
{
	return failed_err(t);
}

static int failed_write_runs(struct target *t, const char *buf, const size_t (*runs)[2], size_t n,
			     uint64_t off)
{
	return failed_err(t);
}

static int failed_range(struct target *t, uint64_t off, uint64_t len)
{
	return failed_err(t);
}

static int failed_fallocate(struct target *t, int mode, uint64_t off, uint64_t len)
{
	return failed_err(t);
}

static int failed_resize(struct target *t, uint64_t size)
{
	return failed_err(t);
}

static int failed_size(struct target *t, uint64_t *size)
{
	return failed_err(t);
}

static int failed_sync(struct target *t)
{
	return failed_err(t);
}

static int64_t failed_seek(struct target *t, uint64_t off, int whence)
{
	return failed_err(t);
}

static void failed_drop_cache(struct target *t, uint64_t off, uint64_t len)
{
}

static int failed_get_meta(struct target *t, struct target_meta *m)
{
	return failed_err(t);
}

static int failed_set_meta(struct target *t, const struct target_meta *m, const char *path)
{
	return failed_err(t);
}

static void failed_close(struct target *t)
{
	free(t->name);
	free(t);
}

static const struct target_ops failed_ops = {
	.pread = failed_pread,
	.pwrite = failed_pwrite,
	.write_runs = failed_write_runs,
	.punch = failed_range,
	.fallocate = failed_fallocate,
	.resize = failed_resize,
	.size = failed_size,
	.sync = failed_sync,
	.seek = failed_seek,
	.drop_cache = failed_drop_cache,
	.get_meta = failed_get_meta,
	.set_meta = failed_set_meta,
	.close = failed_close,
};

struct target *target_failed_new(const char *name, int err)
{
	struct failed_target *f = calloc(1, sizeof(*f));

	if (!f)
		return NULL;
	f->t.name = strdup(name ? name : "");
	if (!f->t.name) {
		free(f);
		return NULL;
	}
	f->t.ops = &failed_ops;
	f->t.refs = 1;
	f->t.fd = -1;
	f->err = err;
	return &f->t;
}
