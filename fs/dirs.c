/*
 * dirs: the directory operations: opendir, readdir, releasedir, fsyncdir.
 * A directory handle reads the backing directory with a DIR stream of the
 * worker's own, opened on first use from the handle's descriptor (so that a
 * worker after this one can open it again) and positioned at the offset the
 * kernel asks for; the hidden state directory is left out.  READDIRPLUS is
 * not offered (session.c says why).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fs/fs_i.h"
#include "fs/once.h"

static void op_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct fs *fs = FS(req);
	struct rnode *n = N(req, ino);
	const struct req_rec *c = once_carried();
	struct rhandle *h;
	int fd, err = 0;

	if (!gate_enter(req, n))
		return;
	fi->cache_readdir = 0;
	if (c && c->state == REC_DONE && c->fh && handle_get(fs, c->fh)) {
		fi->fh = c->fh;	/* opened before a worker died */
		goto out;
	}
	fd = openat(n->fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd == -1) {
		err = -errno;
		goto out;
	}
	h = handle_new(fs, n, fd, O_RDONLY | O_DIRECTORY, true);
	if (!h) {
		close(fd);
		err = -ENFILE;
		goto out;
	}
	fi->fh = handle_fh(h);
out:
	gate_leave(req, n);
	if (err)
		fuse_reply_err(req, -err);
	else
		fuse_reply_open(req, fi);
}

/* The handle's DIR stream, at the kernel's offset. */
static int dir_at(struct rhandle *h, off_t off)
{
	if (!h->dir) {
		/* the stream takes the slot's descriptor over: closedir at the
		 * release closes it */
		h->dir = fdopendir(h->fd);
		if (!h->dir)
			return -errno;
		h->dir_entry = NULL;
		seekdir(h->dir, off);
		h->dir_off = off;
	} else if (off != h->dir_off) {
		seekdir(h->dir, off);
		h->dir_entry = NULL;
		h->dir_off = off;
	}
	return 0;
}

static void op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		       struct fuse_file_info *fi)
{
	struct fs *fs = FS(req);
	struct rnode *n = N(req, ino);
	struct rhandle *h = H(fi);
	char *buf = NULL, *p = NULL;
	size_t rem = 0;
	int err = 0;

	if (!gate_enter(req, n))
		return;
	err = h ? dir_at(h, off) : -EBADF;
	if (!err && !(buf = malloc(size)))
		err = -ENOMEM;
	if (err)
		goto out;
	p = buf;
	rem = size;
	for (;;) {
		struct dirent *de = h->dir_entry;
		struct stat st;
		size_t used;

		if (!de) {
			errno = 0;
			de = readdir(h->dir);
			if (!de) {
				if (errno)
					err = -errno;
				break;
			}
			h->dir_entry = de;
		}
		if (!hidden_name(fs, n, de->d_name)) {
			st = (struct stat){ .st_ino = de->d_ino, .st_mode = (mode_t)de->d_type << 12 };
			used = fuse_add_direntry(req, p, rem, de->d_name, &st, de->d_off);
			if (used > rem)
				break;
			p += used;
			rem -= used;
		}
		h->dir_off = de->d_off;
		h->dir_entry = NULL;
	}
	handle_seen_dir_off(fs, h);
out:
	gate_leave(req, n);
	if (err && (!buf || p == buf))
		fuse_reply_err(req, -err);
	else
		fuse_reply_buf(req, buf, size - rem);
	free(buf);
}

static void op_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct rnode *n = N(req, ino);
	struct rhandle *h;

	if (!gate_enter(req, n))
		return;
	gate_leave(req, n);
	/* a resend of a release a dead worker did finds the handle gone */
	h = H(fi);
	if (h)
		handle_free(FS(req), h);
	fuse_reply_err(req, 0);
}

static void op_fsyncdir(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
	struct rnode *n = N(req, ino);
	struct rhandle *h = H(fi);
	int err;

	if (!gate_enter(req, n))
		return;
	if (!h)
		err = -EBADF;
	else
		err = (datasync ? fdatasync(h->fd) : fsync(h->fd)) == -1 ? -errno : 0;
	gate_leave(req, n);
	if (flush_barrier(FS(req)) && !err)
		err = -EIO;
	fuse_reply_err(req, -err);
}

void dirs_ops(struct fuse_lowlevel_ops *ops)
{
	ops->opendir = op_opendir;
	ops->readdir = op_readdir;
	ops->releasedir = op_releasedir;
	ops->fsyncdir = op_fsyncdir;
}
