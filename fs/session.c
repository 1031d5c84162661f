/*
 * session: the layer's object, its libfuse session and the INIT negotiation, and
 * what the job engine may do with its nodes (see fs.h).  The operations
 * themselves are in names.c, dirs.c, xattrs.c and data.c, the request loop
 * in loop.c.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "fs/fs_i.h"

static void op_init(void *userdata, struct fuse_conn_info *conn)
{
	struct fs *fs = userdata;

	if (conn->capable & FUSE_CAP_EXPORT_SUPPORT)
		conn->want |= FUSE_CAP_EXPORT_SUPPORT;
	if (fs->cfg.writeback && (conn->capable & FUSE_CAP_WRITEBACK_CACHE))
		conn->want |= FUSE_CAP_WRITEBACK_CACHE;
	else
		conn->want &= ~FUSE_CAP_WRITEBACK_CACHE;
	/* the kernel applies the caller's umask before it sends a mode */
	conn->want &= ~FUSE_CAP_DONT_MASK;
	conn->want |= FUSE_CAP_ASYNC_DIO | FUSE_CAP_PARALLEL_DIROPS;
	conn->want &= ~(FUSE_CAP_SPLICE_READ | FUSE_CAP_SPLICE_WRITE | FUSE_CAP_SPLICE_MOVE);
	conn->max_write = MAX_IO;
	conn->max_readahead = MAX_IO;
	/* the kernel's default of 12 background requests caps async direct
	 * I/O (QEMU aio=native/io_uring, fio libaio) well below a disk's
	 * queue; allow as many as there are workers to serve them */
	conn->max_background = fs->cfg.threads * 4 > 64 ? 64 : fs->cfg.threads * 4;
	conn->congestion_threshold = conn->max_background * 3 / 4;
}

struct fuse_session *fs_session_new(struct fs *fs, struct fuse_args *args)
{
	struct fuse_lowlevel_ops ops = { .init = op_init };

	names_ops(&ops);
	dirs_ops(&ops);
	xattrs_ops(&ops);
	data_ops_fill(&ops);
	fs->se = fuse_session_new(args, &ops, sizeof(ops), fs);
	return fs->se;
}

int fs_new(struct fs **out, const struct fs_config *cfg)
{
	struct fs *fs = calloc(1, sizeof(*fs));
	int err;

	if (!fs)
		return -ENOMEM;
	fs->cfg = *cfg;
	pthread_mutex_init(&fs->gate.lock, NULL);
	fs->gate.tail = &fs->gate.head;
	err = itab_init(&fs->itab, cfg->root_fd);
	if (err) {
		free(fs);
		return err;
	}
	*out = fs;
	return 0;
}

void fs_free(struct fs *fs)
{
	if (!fs)
		return;
	itab_fini(&fs->itab);
	free(fs);
}

void fs_set_policy(struct fs *fs, const struct fs_policy *policy)
{
	fs->policy = *policy;
}

struct rnode *fs_root(struct fs *fs)
{
	return itab_root(&fs->itab);
}

struct rnode *fs_node_get(struct fs *fs, int fd, const struct stat *st)
{
	struct rnode *n = itab_lookup(&fs->itab, fd, st);

	if (!n)
		return NULL;
	/* a daemon reference instead of the kernel one itab_lookup took */
	itab_ref(&fs->itab, n);
	itab_forget(&fs->itab, n, 1);
	return n;
}

void fs_node_ref(struct fs *fs, struct rnode *n)
{
	itab_ref(&fs->itab, n);
}

void fs_node_put(struct fs *fs, struct rnode *n)
{
	itab_unref(&fs->itab, n);
}

void fs_node_key(const struct rnode *n, dev_t *dev, ino_t *ino)
{
	*dev = n->dev;
	*ino = n->ino;
}

int fs_node_fd(const struct rnode *n)
{
	return n->fd;
}

void fs_foreach_node(struct fs *fs, void (*fn)(struct rnode *n, void *arg), void *arg)
{
	itab_foreach(&fs->itab, fn, arg);
}

void fs_node_rekey(struct fs *fs, struct rnode *n, int fd, const struct stat *st)
{
	itab_rekey(&fs->itab, n, fd, st);
}
