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
#include <sys/mman.h>

#include "common/log.h"
#include "fs/fs_i.h"

/*
 * Whether the connection has the kernel's writeback cache.  A new mount
 * asks for it unless told not to, and records what it asked for in the
 * region; a worker that takes the connection over (its INIT replayed) must
 * serve as the kernel was answered then, whatever its own options say (an
 * upgrade may change the default): the record tells, and a connection an
 * older relocfs answered has the cache only if asked for by name (it was
 * off by default).
 */
static bool writeback(struct fs *fs, const struct fuse_conn_info *conn)
{
	uint8_t *rec = fs->itab.r->init + FS_INIT_NEG_OFF;
	uint64_t neg;
	bool wb;

	memcpy(&neg, rec, sizeof(neg));
	if (fs->adopted)
		return (neg & ~FS_INIT_WB) == FS_INIT_NEGOTIATED ? (neg & FS_INIT_WB) != 0
								  : fs->cfg.writeback > 0;
	wb = fs->cfg.writeback != 0 && (conn->capable & FUSE_CAP_WRITEBACK_CACHE);
	neg = FS_INIT_NEGOTIATED | (wb ? FS_INIT_WB : 0);
	memcpy(rec, &neg, sizeof(neg));
	return wb;
}

bool fs_writeback(struct fs *fs)
{
	return fs->wb_cache;
}

static void op_init(void *userdata, struct fuse_conn_info *conn)
{
	struct fs *fs = userdata;

	if (conn->capable & FUSE_CAP_EXPORT_SUPPORT)
		conn->want |= FUSE_CAP_EXPORT_SUPPORT;
	if (writeback(fs, conn))
		conn->want |= FUSE_CAP_WRITEBACK_CACHE;
	else
		conn->want &= ~FUSE_CAP_WRITEBACK_CACHE;
	fs->wb_cache = conn->want & FUSE_CAP_WRITEBACK_CACHE;
	/* the kernel applies the caller's umask before it sends a mode */
	conn->want &= ~FUSE_CAP_DONT_MASK;
	conn->want |= FUSE_CAP_ASYNC_DIO | FUSE_CAP_PARALLEL_DIROPS;
	/* each entry of a READDIRPLUS takes a lookup reference: a resend after
	 * a worker's death would have to undo them one by one (once.h); plain
	 * READDIR and LOOKUPs are exact */
	conn->want &= ~(FUSE_CAP_READDIRPLUS | FUSE_CAP_READDIRPLUS_AUTO);
	conn->want &= ~(FUSE_CAP_SPLICE_READ | FUSE_CAP_SPLICE_WRITE | FUSE_CAP_SPLICE_MOVE);
	/* relocfs is the only writer of what it serves, so the page cache
	 * is never stale, unless the kernel makes it so: with auto_inval_data
	 * a change of times drops pages whose writes are under way, and a
	 * read by another thread caches the old bytes (tests/mirror/readback) */
	conn->want &= ~FUSE_CAP_AUTO_INVAL_DATA;
	conn->max_write = MAX_IO;
	/* a ceiling only: the mount reads ahead as far as its bdi says, which
	 * fs_mount set before this reply (takeover.c, match_readahead) */
	conn->max_readahead = 64u << 20;
	/* the kernel's default of 12 background requests caps async direct
	 * I/O (QEMU aio=native/io_uring, fio libaio) well below a disk's
	 * queue; allow as many as there are workers to serve them */
	conn->max_background = fs->cfg.threads * 4 > 64 ? 64 : fs->cfg.threads * 4;
	conn->congestion_threshold = conn->max_background * 3 / 4;
	/* FUSE_NOTIFY_RESEND came with protocol 7.40 (Linux 6.9) */
	if (!fs->adopted && conn->proto_minor < 40)
		log_warnx("this kernel (FUSE protocol 7.%u) does not resend requests: if a worker "
			  "dies, the requests it had read are never answered (relocctl restart "
			  "is safe)", conn->proto_minor);
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

size_t fs_region_size(void)
{
	return sizeof(struct fs_region);
}

/*
 * A new worker maps the region's pages one fault at a time as it touches
 * them, and a fault costs far more than a page in one madvise (much more
 * still in a virtual machine).  Map what a takeover reads, in a few calls.
 */
static void populate_range(void *from, void *to)
{
	uintptr_t a = (uintptr_t)from & ~(uintptr_t)4095, b = (uintptr_t)to;

	if (b > a)
		(void)madvise((void *)a, b - a, MADV_POPULATE_WRITE);
}

static void populate_used(struct fs_region *r)
{
	populate_range(r, &r->handles[r->handles_hw < FS_HANDLES_MAX ? r->handles_hw : FS_HANDLES_MAX]);
	populate_range(r->nodes, &r->nodes[r->nodes_hw < FS_NODES_MAX ? r->nodes_hw : FS_NODES_MAX]);
	for (uint64_t i = 0; i < r->rx_hw && i < FS_THREADS_MAX; i++)
		populate_range(r->rx[i], r->rx[i] + IO_ALIGN);
}

int fs_new(struct fs **out, const struct fs_config *cfg, void *region, bool adopt)
{
	struct fs_region *r = region;
	struct fs *fs;
	int err;

	*out = NULL;
	if (cfg->threads + 1 > FS_RECS_MAX)
		return -EINVAL;
	if (adopt ? r->magic != FS_REGION_MAGIC || r->layout != FS_REGION_LAYOUT ||
			    r->size != sizeof(*r)
		  : r->magic != 0)
		return -EINVAL;
	fs = calloc(1, sizeof(*fs));
	if (!fs)
		return -ENOMEM;
	fs->cfg = *cfg;
	fs->adopted = adopt;
	pthread_mutex_init(&fs->gate.lock, NULL);
	pthread_mutex_init(&fs->rec_lock, NULL);
	pthread_mutex_init(&fs->bounce.mu, NULL);
	fs->gate.tail = &fs->gate.head;
	fs->handles = calloc(FS_HANDLES_MAX, sizeof(*fs->handles));
	if (!fs->handles) {
		err = -ENOMEM;
		goto fail;
	}
	if (adopt) {
		populate_used(r);
		tx_recover(r);	/* a transaction the last worker left open */
	}
	err = itab_init(&fs->itab, r, cfg->root_fd, adopt);
	if (!err && adopt)
		err = takeover_tables(fs);
	if (err)
		goto fail;
	if (!adopt) {
		r->layout = FS_REGION_LAYOUT;
		r->size = sizeof(*r);
		r->fuse_fd = NO_FD;
		__atomic_store_n(&r->magic, FS_REGION_MAGIC, __ATOMIC_RELEASE);
	}
	*out = fs;
	return 0;
fail:
	itab_fini(&fs->itab);
	free(fs->handles);
	free(fs);
	return err;
}

void fs_free(struct fs *fs)
{
	if (!fs)
		return;
	for (unsigned i = 0; i < FS_HANDLES_MAX; i++)
		free(fs->handles[i]);	/* the views only: the slots stay */
	free(fs->handles);
	itab_fini(&fs->itab);
	bounce_fini(fs);
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
	/* the kernel's cached attributes (inode number, device, blocks) are
	 * the old backend's: drop them, but not the pages, whose bytes are
	 * the same and whose locks a held read may own (offset -1: attributes
	 * only).  No inode in the kernel (-ENOENT) or no session yet: nothing
	 * cached. */
	if (fs->se)
		fuse_lowlevel_notify_inval_inode(fs->se, itab_nodeid(&fs->itab, n), -1, 0);
}

void fs_counts(struct fs *fs, uint64_t *nodes, uint64_t *handles)
{
	uint64_t h = 0;

	*nodes = itab_count(&fs->itab);
	pthread_mutex_lock(&fs->itab.lock);
	for (uint64_t i = 0; i < fs->itab.r->handles_hw && i < FS_HANDLES_MAX; i++)
		h += fs->handles[i] != NULL;
	pthread_mutex_unlock(&fs->itab.lock);
	*handles = h;
}
