/*
 * dirs: the directory operations: opendir, readdir, readdirplus,
 * releasedir, fsyncdir.  A directory handle reads the backing directory
 * with its own DIR stream; the hidden state directory is left out.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fs/fs_i.h"

/* ---- directories ------------------------------------------------------------ */

static void op_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct rnode *n = N(req, ino);
	struct rhandle *h;
	DIR *d;
	int fd, err = 0;

	if (!gate_enter(req, n))
		return;
	fd = openat(n->fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd == -1) {
		err = -errno;
		goto out;
	}
	d = fdopendir(fd);
	if (!d) {
		err = -errno;
		close(fd);
		goto out;
	}
	h = handle_new(FS(req), n, fd, O_RDONLY | O_DIRECTORY);
	if (!h) {
		closedir(d);
		err = -ENOMEM;
		goto out;
	}
	h->dir = d;
	fi->fh = (uintptr_t)h;
	fi->cache_readdir = 0;
out:
	gate_leave(req, n);
	if (err)
		fuse_reply_err(req, -err);
	else
		fuse_reply_open(req, fi);
}
static void do_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		       struct fuse_file_info *fi, bool plus)
{
	struct rnode *n = N(req, ino);
	struct rhandle *h = H(fi);
	char *buf, *p = NULL;
	size_t rem = 0;
	int err = 0;

	if (!gate_enter(req, n))
		return;
	buf = malloc(size);
	if (!buf) {
		err = -ENOMEM;
		goto out;
	}
	p = buf;
	rem = size;
	if (off != h->dir_off) {
		seekdir(h->dir, off);
		h->dir_entry = NULL;
		h->dir_off = off;
	}
	for (;;) {
		struct dirent *de = h->dir_entry;
		struct fuse_entry_param e;
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
		if (hidden_name(FS(req), n, de->d_name)) {
			h->dir_off = de->d_off;
			h->dir_entry = NULL;
			continue;
		}
		if (plus) {
			bool dot = !strcmp(de->d_name, ".") || !strcmp(de->d_name, "..");

			memset(&e, 0, sizeof(e));
			if (dot) {
				e.attr.st_ino = de->d_ino;
				e.attr.st_mode = (mode_t)de->d_type << 12;
			} else {
				err = do_lookup(FS(req), n, de->d_name, &e);
				if (err == -ENOENT) {	/* vanished since readdir */
					err = 0;
					h->dir_off = de->d_off;
					h->dir_entry = NULL;
					continue;
				}
				if (err)
					break;
			}
			used = fuse_add_direntry_plus(req, p, rem, de->d_name, &e, de->d_off);
			if (used > rem) {
				if (!dot)
					itab_forget(&FS(req)->itab, N(req, e.ino), 1);
				break;
			}
		} else {
			struct stat st = { .st_ino = de->d_ino, .st_mode = (mode_t)de->d_type << 12 };

			used = fuse_add_direntry(req, p, rem, de->d_name, &st, de->d_off);
			if (used > rem)
				break;
		}
		p += used;
		rem -= used;
		h->dir_off = de->d_off;
		h->dir_entry = NULL;
	}
out:
	gate_leave(req, n);
	if (err && (!buf || p == buf))
		fuse_reply_err(req, -err);
	else
		fuse_reply_buf(req, buf, size - rem);
	free(buf);
}
static void op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		       struct fuse_file_info *fi)
{
	do_readdir(req, ino, size, off, fi, false);
}
static void op_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
			   struct fuse_file_info *fi)
{
	do_readdir(req, ino, size, off, fi, true);
}
static void op_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct rnode *n = N(req, ino);

	if (!gate_enter(req, n))
		return;
	gate_leave(req, n);
	handle_free(FS(req), H(fi));
	fuse_reply_err(req, 0);
}
static void op_fsyncdir(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
	struct rnode *n = N(req, ino);
	int fd, err;

	if (!gate_enter(req, n))
		return;
	fd = dirfd((DIR *)H(fi)->dir);
	err = (datasync ? fdatasync(fd) : fsync(fd)) == -1 ? -errno : 0;
	gate_leave(req, n);
	if (flush_barrier(FS(req)) && !err)
		err = -EIO;
	fuse_reply_err(req, -err);
}

void dirs_ops(struct fuse_lowlevel_ops *ops)
{
	ops->opendir = op_opendir;
	ops->readdir = op_readdir;
	ops->readdirplus = op_readdirplus;
	ops->releasedir = op_releasedir;
	ops->fsyncdir = op_fsyncdir;
}
