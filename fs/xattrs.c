/*
 * xattrs: extended attributes, through the node's O_PATH descriptor
 * (/proc/self/fd/N).  Symbolic links have none here: the kernel's
 * user.* namespace refuses them on links anyway.
 */
#include <errno.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/xattr.h>

#include "common/util.h"
#include "fs/fs_i.h"

/* ---- extended attributes ------------------------------------------------------ */

static void op_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name, const char *value,
			size_t size, int flags)
{
	struct rnode *n = N(req, ino);
	char path[64];
	int err;

	if (!gate_enter(req, n))
		return;
	fd_path(n->fd, path);
	if (n->type == S_IFLNK)
		err = EPERM;
	else
		err = setxattr(path, name, value, size, flags) == -1 ? errno : 0;
	gate_leave(req, n);
	fuse_reply_err(req, err);
}

static void reply_xattr(fuse_req_t req, size_t size, ssize_t r, const char *buf)
{
	if (r < 0)
		fuse_reply_err(req, (int)-r);
	else if (size == 0)
		fuse_reply_xattr(req, (size_t)r);
	else
		fuse_reply_buf(req, buf, (size_t)r);
}

static void op_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size)
{
	struct rnode *n = N(req, ino);
	char path[64], *buf = NULL;
	ssize_t r;

	if (!gate_enter(req, n))
		return;
	fd_path(n->fd, path);
	if (size && !(buf = malloc(size)))
		r = -ENOMEM;
	else if (n->type == S_IFLNK)
		r = -ENODATA;
	else
	{
		r = getxattr(path, name, buf, size);
		r = r == -1 ? -errno : r;
	}
	gate_leave(req, n);
	reply_xattr(req, size, r, buf);
	free(buf);
}

static void op_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size)
{
	struct rnode *n = N(req, ino);
	char path[64], *buf = NULL;
	ssize_t r;

	if (!gate_enter(req, n))
		return;
	fd_path(n->fd, path);
	if (size && !(buf = malloc(size)))
		r = -ENOMEM;
	else if (n->type == S_IFLNK)
		r = 0;
	else {
		r = listxattr(path, buf, size);
		r = r == -1 ? -errno : r;
	}
	gate_leave(req, n);
	reply_xattr(req, size, r, buf);
	free(buf);
}

static void op_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name)
{
	struct rnode *n = N(req, ino);
	char path[64];
	int err;

	if (!gate_enter(req, n))
		return;
	fd_path(n->fd, path);
	if (n->type == S_IFLNK)
		err = EPERM;
	else
		err = removexattr(path, name) == -1 ? errno : 0;
	gate_leave(req, n);
	fuse_reply_err(req, err);
}

void xattrs_ops(struct fuse_lowlevel_ops *ops)
{
	ops->setxattr = op_setxattr;
	ops->getxattr = op_getxattr;
	ops->listxattr = op_listxattr;
	ops->removexattr = op_removexattr;
}
