/*
 * fsops: FUSE low-level operations for a mirror of a backing directory.
 *
 * Every node holds an O_PATH descriptor (inode.c); operations work relative
 * to it with the *at() calls, so renames of parents never break a node.
 * Data requests go to the handle's descriptor, or through migrate.c while
 * the file migrates.  Files and directories are created with the caller's
 * fsuid/fsgid so that they belong to the caller; permission checks are the
 * kernel's (default_permissions is always on).
 *
 * O_DIRECT: the worker loop receives requests into buffers placed so that a
 * WRITE's payload starts on a page boundary, and reads land in page-aligned
 * per-thread buffers, so O_DIRECT backing descriptors work without copies.
 * A request that the backing file refuses for alignment (EINVAL) is retried
 * on a second descriptor without O_DIRECT; the kernel keeps the two coherent.
 *
 * Not here: locks (the kernel keeps POSIX and OFD locks itself when getlk and
 * setlk are absent, which is what QEMU's image locking needs on one host),
 * ioctl, poll.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/fsuid.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/xattr.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include <linux/fuse.h>

#include "copier/copier.h"
#include "fs/crashpoint.h"
#include "fs/fsops.h"
#include "fs/log.h"
#include "fs/migrate.h"
#include "fs/reloc.h"

struct fs_config fs_cfg = { .threads = 16, .timeout = 1.0 };

#define IO_ALIGN	4096
#define MAX_IO		(1u << 20)
#define HUGE_PAGE	(2u << 20)	/* x86-64 PMD size; IO_ALIGN + MAX_IO fit in one */
/* where a WRITE's payload starts in a raw request */
#define WRITE_PAYLOAD	(sizeof(struct fuse_in_header) + sizeof(struct fuse_write_in))

/* ---- the gate ------------------------------------------------------------ */

struct parked {
	struct parked *next;
	uint64_t since_us;
	size_t len;
	char data[];		/* the raw request */
};

static struct {
	atomic_bool hold_all;
	atomic_long inflight_all;	/* requests in flight, all nodes */
	pthread_mutex_t lock;		/* protects the fields below */
	struct parked *head, **tail;
	uint64_t last_max_us;
} gate = { .lock = PTHREAD_MUTEX_INITIALIZER, .tail = &gate.head };

static struct fuse_session *fs_se;
static __thread const struct fuse_buf *cur_buf;	/* the request being served */
static __thread const struct fuse_buf *rx_buf;	/* the worker's receive buffer */
static __thread char *rx_payload;		/* in it: page-aligned, MAX_IO bytes */
static __thread char *io_buf;			/* page-aligned, MAX_IO bytes */

static uint64_t now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

static bool is_held(const struct rnode *n)
{
	return atomic_load(&gate.hold_all) || __atomic_load_n(&n->held, __ATOMIC_SEQ_CST);
}

/*
 * Park the request being served while n is held.  The hold is checked again
 * under gate.lock, which fs_release() holds while it clears the flags and
 * takes the list: a request is either on the list it takes or sees the hold
 * gone.  Returns false in that second case (the caller serves it now).
 */
static bool park(fuse_req_t req, const struct rnode *n)
{
	const struct fuse_in_header *in = cur_buf->mem;
	struct parked *p = malloc(sizeof(*p) + in->len);

	if (!p) {
		fuse_reply_err(req, ENOMEM);
		return true;
	}
	p->next = NULL;
	p->since_us = now_us();
	p->len = in->len;
	memcpy(p->data, cur_buf->mem, in->len);
	delaypoint("park");	/* tests: a release may come meanwhile */
	pthread_mutex_lock(&gate.lock);
	if (!is_held(n)) {
		pthread_mutex_unlock(&gate.lock);
		free(p);
		return false;
	}
	*gate.tail = p;
	gate.tail = &p->next;
	pthread_mutex_unlock(&gate.lock);
	fuse_reply_none(req);	/* frees req; the kernel still waits for the reply */
	return true;
}

/*
 * Enter node for one request.  Returns false if the request was parked (the
 * caller returns at once).  The inflight counts go up before the hold flags
 * are read, and fs_hold() sets the flags before it reads the counts, so a
 * request either sees the hold or is waited for (both sequentially
 * consistent).
 */
static bool gate_enter(fuse_req_t req, struct rnode *n)
{
	for (;;) {
		atomic_fetch_add(&gate.inflight_all, 1);
		__atomic_fetch_add(&n->inflight, 1, __ATOMIC_SEQ_CST);
		if (!is_held(n))
			return true;
		__atomic_fetch_sub(&n->inflight, 1, __ATOMIC_SEQ_CST);
		atomic_fetch_sub(&gate.inflight_all, 1);
		if (park(req, n))
			return false;
		/* released while we were about to park: enter again */
	}
}

static void gate_leave(struct rnode *n)
{
	__atomic_fetch_sub(&n->inflight, 1, __ATOMIC_SEQ_CST);
	atomic_fetch_sub(&gate.inflight_all, 1);
}

int fs_hold(bool all, struct rnode **nodes, size_t cnt, uint64_t timeout_us)
{
	uint64_t deadline = now_us() + timeout_us;

	if (all)
		atomic_store(&gate.hold_all, true);
	for (size_t i = 0; i < cnt; i++)
		__atomic_store_n(&nodes[i]->held, true, __ATOMIC_SEQ_CST);
	for (;;) {
		bool busy = all && atomic_load(&gate.inflight_all) > 0;

		for (size_t i = 0; !busy && i < cnt; i++)
			busy = __atomic_load_n(&nodes[i]->inflight, __ATOMIC_SEQ_CST) > 0;
		if (!busy)
			return 0;
		if (now_us() > deadline) {
			fs_release(all, nodes, cnt);
			return -ETIMEDOUT;
		}
		usleep(50);
	}
}

static void replay(struct parked *list)
{
	const struct fuse_buf *saved = cur_buf;
	struct parked *p;

	while ((p = list)) {
		struct fuse_buf fb = { .size = p->len, .mem = p->data };

		list = p->next;
		cur_buf = &fb;
		fuse_session_process_buf(fs_se, &fb);
		free(p);
	}
	cur_buf = saved;
}

static void *replay_thread(void *arg)
{
	replay(arg);
	free(io_buf);
	io_buf = NULL;
	return NULL;
}

size_t fs_release(bool all, struct rnode **nodes, size_t cnt)
{
	struct parked *list, *p;
	uint64_t now = now_us(), max_us = 0;
	size_t replayed = 0;
	pthread_t t;

	/* the flags go down and the list is taken under the lock that park()
	 * checks the flags under: no request is left behind on the list */
	pthread_mutex_lock(&gate.lock);
	for (size_t i = 0; i < cnt; i++)
		__atomic_store_n(&nodes[i]->held, false, __ATOMIC_SEQ_CST);
	if (all)
		atomic_store(&gate.hold_all, false);
	list = gate.head;
	gate.head = NULL;
	gate.tail = &gate.head;
	pthread_mutex_unlock(&gate.lock);

	for (p = list; p; p = p->next) {
		if (now - p->since_us > max_us)
			max_us = now - p->since_us;
		replayed++;
	}
	gate.last_max_us = max_us;
	/* served by a thread of their own, in the order they came: the caller
	 * (a cutover) still has work to do, and a replayed flush may wait for
	 * it (reloc_flush_barrier) */
	if (list && pthread_create(&t, NULL, replay_thread, list) == 0)
		pthread_detach(t);
	else
		replay(list);
	return replayed;
}

uint64_t fs_last_hold_max_us(void)
{
	return gate.last_max_us;
}

/* ---- helpers -------------------------------------------------------------- */

static struct rnode *N(fuse_ino_t ino)
{
	return itab_node(ino);
}

static struct rhandle *H(struct fuse_file_info *fi)
{
	return (struct rhandle *)(uintptr_t)fi->fh;
}

static int io_buf_get(void)
{
	if (!io_buf && posix_memalign((void **)&io_buf, IO_ALIGN, MAX_IO))
		return -ENOMEM;
	return 0;
}

/*
 * Where a READ puts its data: the payload area of the worker's receive
 * buffer, which a read request leaves unused (libfuse has copied its
 * arguments out by then) and which sits on a huge page (see worker()); a
 * replayed request is not in that buffer and uses io_buf.
 */
static char *read_buf(void)
{
	if (cur_buf == rx_buf)
		return rx_payload;
	return io_buf_get() ? NULL : io_buf;
}

/* Run creations as the caller, so new files belong to the caller. */
struct creds {
	bool switched;
};

static struct creds creds_enter(fuse_req_t req)
{
	const struct fuse_ctx *ctx = fuse_req_ctx(req);
	struct creds c = { false };

	if (geteuid() != 0)
		return c;
	setfsgid(ctx->gid);
	setfsuid(ctx->uid);
	c.switched = true;
	return c;
}

static void creds_leave(struct creds c)
{
	if (!c.switched)
		return;
	setfsuid(0);
	setfsgid(0);
}

static int node_stat(struct rnode *n, struct stat *st)
{
	struct migration *m;

	if (fstatat(n->fd, "", st, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) == -1)
		return -errno;
	m = __atomic_load_n(&n->mig, __ATOMIC_ACQUIRE);
	if (m)
		mig_getattr(m, st);
	return 0;
}

/* Look name up in parent; fills e and takes one kernel reference. */
static int do_lookup(struct rnode *parent, const char *name, struct fuse_entry_param *e)
{
	struct rnode *n;
	struct stat st;
	int fd, err;

	memset(e, 0, sizeof(*e));
	if (reloc_hidden_name(parent, name))
		return -ENOENT;
	fd = reloc_override_open(parent, name);
	if (fd == -ENOENT)
		fd = openat(parent->fd, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
	else if (fd < 0)
		return fd;
	if (fd == -1)
		return -errno;
	if (fstatat(fd, "", &st, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) == -1) {
		err = -errno;
		close(fd);
		return err;
	}
	n = itab_lookup(fd, &st);
	if (!n)
		return -ENOMEM;
	err = node_stat(n, &e->attr);
	if (err) {
		itab_forget(n, 1);
		return err;
	}
	e->ino = itab_nodeid(n);
	e->attr_timeout = fs_cfg.timeout;
	e->entry_timeout = fs_cfg.timeout;
	return 0;
}

static void reply_entry_or_err(fuse_req_t req, int err, struct fuse_entry_param *e)
{
	if (err)
		fuse_reply_err(req, -err);
	else
		fuse_reply_entry(req, e);
}

/* ---- init ---------------------------------------------------------------- */

static void op_init(void *userdata, struct fuse_conn_info *conn)
{
	if (conn->capable & FUSE_CAP_EXPORT_SUPPORT)
		conn->want |= FUSE_CAP_EXPORT_SUPPORT;
	if (fs_cfg.writeback && (conn->capable & FUSE_CAP_WRITEBACK_CACHE))
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
	conn->max_background = (unsigned)fs_cfg.threads * 4 > 64 ? 64 : (unsigned)fs_cfg.threads * 4;
	conn->congestion_threshold = conn->max_background * 3 / 4;
}

/* ---- names ----------------------------------------------------------------- */

static void op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct rnode *p = N(parent);
	struct fuse_entry_param e;
	int err;

	if (!gate_enter(req, p))
		return;
	err = do_lookup(p, name, &e);
	gate_leave(p);
	if (err == -ENOENT && fs_cfg.timeout > 0) {
		/* negative entry, cached like a positive one */
		memset(&e, 0, sizeof(e));
		e.entry_timeout = fs_cfg.timeout;
		fuse_reply_entry(req, &e);
		return;
	}
	reply_entry_or_err(req, err, &e);
}

static void op_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
	itab_forget(N(ino), nlookup);
	fuse_reply_none(req);
}

static void op_forget_multi(fuse_req_t req, size_t count, struct fuse_forget_data *f)
{
	for (size_t i = 0; i < count; i++)
		itab_forget(N(f[i].ino), f[i].nlookup);
	fuse_reply_none(req);
}

static void op_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct rnode *n = N(ino);
	struct stat st;
	int err;

	if (!gate_enter(req, n))
		return;
	err = node_stat(n, &st);
	gate_leave(n);
	if (err)
		fuse_reply_err(req, -err);
	else
		fuse_reply_attr(req, &st, fs_cfg.timeout);
}

static int set_times(struct rnode *n, struct fuse_file_info *fi, const struct stat *attr, int valid)
{
	struct timespec tv[2];
	char path[64];

	tv[0].tv_sec = 0;
	tv[1].tv_sec = 0;
	tv[0].tv_nsec = UTIME_OMIT;
	tv[1].tv_nsec = UTIME_OMIT;
	if (valid & FUSE_SET_ATTR_ATIME_NOW)
		tv[0].tv_nsec = UTIME_NOW;
	else if (valid & FUSE_SET_ATTR_ATIME)
		tv[0] = attr->st_atim;
	if (valid & FUSE_SET_ATTR_MTIME_NOW)
		tv[1].tv_nsec = UTIME_NOW;
	else if (valid & FUSE_SET_ATTR_MTIME)
		tv[1] = attr->st_mtim;
	(void)path;
	if (fi && !H(fi)->dir)
		return futimens(H(fi)->fd, tv) == -1 ? -errno : 0;
	/* works on symlinks too: the O_PATH descriptor names the link itself */
	return utimensat(n->fd, "", tv, AT_EMPTY_PATH) == -1 ? -errno : 0;
}

static void op_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int valid,
		       struct fuse_file_info *fi)
{
	struct rnode *n = N(ino);
	struct stat st;
	char path[64];
	int err = 0;

	if (!gate_enter(req, n))
		return;
	fd_path(n->fd, path);
	if (valid & FUSE_SET_ATTR_MODE) {
		if (n->type == S_IFLNK)
			err = -EOPNOTSUPP;
		else if (chmod(path, attr->st_mode) == -1)
			err = -errno;
		if (err)
			goto out;
	}
	if (valid & (FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID)) {
		uid_t uid = (valid & FUSE_SET_ATTR_UID) ? attr->st_uid : (uid_t)-1;
		gid_t gid = (valid & FUSE_SET_ATTR_GID) ? attr->st_gid : (gid_t)-1;

		if (fchownat(n->fd, "", uid, gid, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) == -1) {
			err = -errno;
			goto out;
		}
	}
	if (valid & FUSE_SET_ATTR_SIZE) {
		struct migration *m = __atomic_load_n(&n->mig, __ATOMIC_ACQUIRE);

		if (m)
			err = mig_truncate(m, attr->st_size);
		else if (fi && !H(fi)->dir)
			err = ftruncate(H(fi)->fd, attr->st_size) == -1 ? -errno : 0;
		else
			err = truncate(path, attr->st_size) == -1 ? -errno : 0;
		if (err)
			goto out;
	}
	if (valid & (FUSE_SET_ATTR_ATIME | FUSE_SET_ATTR_MTIME)) {
		err = set_times(n, fi, attr, valid);
		if (err)
			goto out;
	}
	err = node_stat(n, &st);
out:
	gate_leave(n);
	if (err)
		fuse_reply_err(req, -err);
	else
		fuse_reply_attr(req, &st, fs_cfg.timeout);
}

static void op_readlink(fuse_req_t req, fuse_ino_t ino)
{
	struct rnode *n = N(ino);
	char buf[PATH_MAX + 1];
	ssize_t len;

	if (!gate_enter(req, n))
		return;
	len = readlinkat(n->fd, "", buf, sizeof(buf));
	gate_leave(n);
	if (len == -1)
		fuse_reply_err(req, errno);
	else if (len == sizeof(buf))
		fuse_reply_err(req, ENAMETOOLONG);
	else {
		buf[len] = '\0';
		fuse_reply_readlink(req, buf);
	}
}

enum mk_kind { MK_NODE, MK_DIR, MK_SYMLINK };

static void make_entry(fuse_req_t req, fuse_ino_t parent, const char *name, enum mk_kind kind,
		       mode_t mode, dev_t rdev, const char *link)
{
	struct rnode *p = N(parent);
	struct fuse_entry_param e;
	struct creds c;
	int err;

	if (!gate_enter(req, p))
		return;
	err = reloc_namespace_check(p, name, true);
	if (err)
		goto out;
	c = creds_enter(req);
	switch (kind) {
	case MK_DIR:
		err = mkdirat(p->fd, name, mode);
		break;
	case MK_SYMLINK:
		err = symlinkat(link, p->fd, name);
		break;
	case MK_NODE:
		err = mknodat(p->fd, name, mode, rdev);
		break;
	}
	err = err == -1 ? -errno : 0;
	creds_leave(c);
	if (!err)
		err = do_lookup(p, name, &e);
out:
	gate_leave(p);
	reply_entry_or_err(req, err, &e);
}

static void op_mknod(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode, dev_t rdev)
{
	make_entry(req, parent, name, MK_NODE, mode, rdev, NULL);
}

static void op_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode)
{
	make_entry(req, parent, name, MK_DIR, mode, 0, NULL);
}

static void op_symlink(fuse_req_t req, const char *link, fuse_ino_t parent, const char *name)
{
	make_entry(req, parent, name, MK_SYMLINK, 0, 0, link);
}

static void op_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char *newname)
{
	struct rnode *n = N(ino), *p = N(newparent);
	struct fuse_entry_param e;
	char path[64];
	int err;

	if (!gate_enter(req, p))
		return;
	err = reloc_namespace_check(p, newname, true);
	if (!err && __atomic_load_n(&n->mig, __ATOMIC_ACQUIRE))
		err = -EBUSY;
	if (!err) {
		fd_path(n->fd, path);
		if (linkat(AT_FDCWD, path, p->fd, newname, AT_SYMLINK_FOLLOW) == -1)
			err = -errno;
	}
	if (!err)
		err = do_lookup(p, newname, &e);
	gate_leave(p);
	reply_entry_or_err(req, err, &e);
}

static void remove_entry(fuse_req_t req, fuse_ino_t parent, const char *name, int flags)
{
	struct rnode *p = N(parent);
	int err;

	if (!gate_enter(req, p))
		return;
	err = reloc_hidden_name(p, name) ? -ENOENT : reloc_namespace_check(p, name, false);
	if (err == -EXDEV && !flags) {
		/* a file relocated on its own: remove it where it lives, and the
		 * stale name in its directory */
		int fd = reloc_override_open(p, name);
		char path[64];

		err = fd < 0 ? fd : 0;
		if (!err) {
			fd_path(fd, path);
			char real[PATH_MAX];
			ssize_t l = readlink(path, real, sizeof(real) - 1);

			close(fd);
			if (l < 0)
				err = -errno;
			else {
				real[l] = '\0';
				if (unlink(real) == -1)
					err = -errno;
			}
		}
		if (!err) {
			unlinkat(p->fd, name, 0);
			reloc_override_removed(p, name);
		}
	} else if (!err && unlinkat(p->fd, name, flags) == -1)
		err = -errno;
	gate_leave(p);
	fuse_reply_err(req, -err);
}

static void op_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	remove_entry(req, parent, name, 0);
}

static void op_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	remove_entry(req, parent, name, AT_REMOVEDIR);
}

static void op_rename(fuse_req_t req, fuse_ino_t parent, const char *name, fuse_ino_t newparent,
		      const char *newname, unsigned int flags)
{
	struct rnode *p = N(parent), *np = N(newparent);
	int err;

	if (!gate_enter(req, p))
		return;
	if (!gate_enter(req, np)) {
		/* parked: the first gate's count is not ours to keep */
		gate_leave(p);
		return;
	}
	if (reloc_hidden_name(p, name) || reloc_hidden_name(np, newname))
		err = -EPERM;
	else
		err = reloc_namespace_check(p, name, false);
	if (!err)
		err = reloc_namespace_check(np, newname, false);
	if (!err && renameat2(p->fd, name, np->fd, newname, flags) == -1)
		err = -errno;
	gate_leave(np);
	gate_leave(p);
	fuse_reply_err(req, -err);
}

/* ---- files ------------------------------------------------------------------ */

/* Open the file that the O_PATH descriptor path_fd names, for I/O. */
static int backing_open_at(int path_fd, int flags, int *fdp)
{
	char path[64];
	int fd;

	/* the kernel computes append offsets itself; O_APPEND here would make
	 * pwrite ignore them */
	flags &= ~(O_CREAT | O_EXCL | O_NOCTTY | O_APPEND);
	fd_path(path_fd, path);
	fd = open(path, flags | O_CLOEXEC);
	if (fd == -1 && errno == EINVAL && (flags & O_DIRECT))
		fd = open(path, (flags & ~O_DIRECT) | O_CLOEXEC);	/* tmpfs and friends */
	if (fd == -1)
		return -errno;
	*fdp = fd;
	return 0;
}

static int backing_open(struct rnode *n, int flags, int *fdp)
{
	return backing_open_at(n->fd, flags, fdp);
}

static struct rhandle *handle_new(struct rnode *n, int fd, int flags)
{
	struct rhandle *h = calloc(1, sizeof(*h));

	if (!h)
		return NULL;
	h->node = n;
	h->fd = fd;
	h->fd_buffered = -1;
	h->next_fd = -1;
	h->flags = flags;
	itab_ref(n);
	pthread_mutex_lock(&n->mu);
	h->next = n->handles;
	n->handles = h;
	pthread_mutex_unlock(&n->mu);
	return h;
}

static void handle_free(struct rhandle *h)
{
	struct rnode *n = h->node;

	pthread_mutex_lock(&n->mu);
	for (struct rhandle **pp = &n->handles; *pp; pp = &(*pp)->next) {
		if (*pp == h) {
			*pp = h->next;
			break;
		}
	}
	pthread_mutex_unlock(&n->mu);
	if (h->dir)
		closedir(h->dir);
	else
		close(h->fd);
	if (h->fd_buffered != -1)
		close(h->fd_buffered);
	if (h->next_fd != -1)
		close(h->next_fd);
	itab_unref(n);
	free(h);
}

int fs_reopen_handles(struct rnode *n)
{
	int ret = 0;

	pthread_mutex_lock(&n->mu);
	for (struct rhandle *h = n->handles; h; h = h->next) {
		int fd;
		int err;

		if (h->dir)
			continue;
		err = backing_open(n, h->flags & ~O_TRUNC, &fd);
		if (err) {
			ret = err;
			continue;
		}
		close(h->fd);
		h->fd = fd;
		if (h->fd_buffered != -1) {
			close(h->fd_buffered);
			h->fd_buffered = -1;
		}
	}
	pthread_mutex_unlock(&n->mu);
	return ret;
}

void fs_cancel_reopen(struct rnode *n)
{
	pthread_mutex_lock(&n->mu);
	for (struct rhandle *h = n->handles; h; h = h->next) {
		if (h->next_fd != -1)
			close(h->next_fd);
		h->next_fd = -1;
	}
	pthread_mutex_unlock(&n->mu);
}

int fs_prepare_reopen(struct rnode *n, int path_fd)
{
	int err = 0;

	pthread_mutex_lock(&n->mu);
	for (struct rhandle *h = n->handles; h && !err; h = h->next)
		if (!h->dir && h->next_fd == -1)
			err = backing_open_at(path_fd, h->flags & ~O_TRUNC, &h->next_fd);
	pthread_mutex_unlock(&n->mu);
	if (err)
		fs_cancel_reopen(n);
	return err;
}

void fs_commit_reopen(struct rnode *n)
{
	pthread_mutex_lock(&n->mu);
	for (struct rhandle *h = n->handles; h; h = h->next) {
		if (h->next_fd == -1)
			continue;	/* a directory */
		close(h->fd);
		h->fd = h->next_fd;
		h->next_fd = -1;
		if (h->fd_buffered != -1) {
			close(h->fd_buffered);
			h->fd_buffered = -1;
		}
	}
	pthread_mutex_unlock(&n->mu);
}

/*
 * Open flags the kernel should see that libfuse 3.14 cannot express: set by
 * an open handler just before it replies, added to the reply by fs_writev()
 * on its way to the kernel (same thread, inside fuse_reply_open/create).
 */
static __thread uint32_t extra_open_flags;

static void set_open_flags(struct rnode *n, struct fuse_file_info *fi)
{
	(void)n;
	fi->noflush = 0;
	if (fi->flags & O_DIRECT) {
		/* QEMU cache=none: let the kernel send concurrent direct writes
		 * (without FOPEN_DIRECT_IO and FOPEN_PARALLEL_DIRECT_WRITES it
		 * serialises them on the inode lock) */
		fi->direct_io = 1;
		extra_open_flags = FOPEN_PARALLEL_DIRECT_WRITES;
	} else {
		/* all writes go through us: cached pages stay valid across opens */
		fi->keep_cache = 1;
	}
}

/* The session's writev (fuse_session_custom_io): every reply passes here. */
static ssize_t fs_writev(int fd, struct iovec *iov, int count, void *userdata)
{
	uint32_t extra = extra_open_flags;

	(void)userdata;
	if (extra && count >= 2) {
		const struct fuse_out_header *oh = iov[0].iov_base;
		struct fuse_open_out *oo = NULL;

		if (oh->error == 0 && iov[1].iov_len == sizeof(struct fuse_open_out))
			oo = iov[1].iov_base;
		else if (oh->error == 0 &&
			 iov[1].iov_len == sizeof(struct fuse_entry_out) + sizeof(struct fuse_open_out))
			oo = (struct fuse_open_out *)((char *)iov[1].iov_base +
						      sizeof(struct fuse_entry_out));
		if (oo)
			oo->open_flags |= extra;
		extra_open_flags = 0;
	}
	return writev(fd, iov, count);
}

static ssize_t fs_read(int fd, void *buf, size_t len, void *userdata)
{
	(void)userdata;
	return read(fd, buf, len);
}

int fs_attach_io(struct fuse_session *se)
{
	static const struct fuse_custom_io io = { .writev = fs_writev, .read = fs_read };

	return fuse_session_custom_io(se, &io, fuse_session_fd(se));
}

static void op_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
		      struct fuse_file_info *fi)
{
	struct rnode *p = N(parent);
	struct fuse_entry_param e;
	struct rhandle *h;
	struct creds c;
	int fd, err;
	int flags = (fi->flags | O_CREAT) & ~(O_NOFOLLOW | O_APPEND);

	if (!gate_enter(req, p))
		return;
	err = reloc_namespace_check(p, name, true);
	if (err)
		goto out;
	c = creds_enter(req);
	fd = openat(p->fd, name, flags | O_CLOEXEC, mode);
	if (fd == -1 && errno == EINVAL && (flags & O_DIRECT))
		fd = openat(p->fd, name, (flags & ~O_DIRECT) | O_CLOEXEC, mode);
	err = fd == -1 ? -errno : 0;
	creds_leave(c);
	if (err)
		goto out;
	err = do_lookup(p, name, &e);
	if (err) {
		close(fd);
		goto out;
	}
	h = handle_new(N(e.ino), fd, fi->flags);
	if (!h) {
		close(fd);
		itab_forget(N(e.ino), 1);
		err = -ENOMEM;
		goto out;
	}
	fi->fh = (uintptr_t)h;
	set_open_flags(N(e.ino), fi);
out:
	gate_leave(p);
	if (err)
		fuse_reply_err(req, -err);
	else
		fuse_reply_create(req, &e, fi);
	extra_open_flags = 0;
}

static void op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct rnode *n = N(ino);
	struct migration *m;
	struct rhandle *h;
	int fd, err;

	if (!gate_enter(req, n))
		return;
	m = __atomic_load_n(&n->mig, __ATOMIC_ACQUIRE);
	/* a migrating file's source is frozen: truncate the live view instead */
	err = backing_open(n, m ? (fi->flags & ~O_TRUNC) : fi->flags, &fd);
	if (!err && m && (fi->flags & O_TRUNC))
		err = mig_truncate(m, 0);
	if (err)
		goto out;
	h = handle_new(n, fd, fi->flags);
	if (!h) {
		close(fd);
		err = -ENOMEM;
		goto out;
	}
	fi->fh = (uintptr_t)h;
	set_open_flags(n, fi);
out:
	gate_leave(n);
	if (err)
		fuse_reply_err(req, -err);
	else
		fuse_reply_open(req, fi);
	extra_open_flags = 0;
}

static void op_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct rnode *n = N(ino);

	if (!gate_enter(req, n))
		return;
	gate_leave(n);
	handle_free(H(fi));
	fuse_reply_err(req, 0);
}

static void op_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	/* close() is not a durability point; POSIX locks are the kernel's */
	fuse_reply_err(req, 0);
}

static bool unaligned(const void *buf, size_t len, off_t off)
{
	return ((uintptr_t)buf | len | (size_t)off) & 511;
}

/* The same file without O_DIRECT, for requests O_DIRECT refuses. */
static int buffered_fd(struct rhandle *h)
{
	int fd;

	if (!(h->flags & O_DIRECT))
		return h->fd;
	pthread_mutex_lock(&h->node->mu);
	if (h->fd_buffered == -1 && backing_open(h->node, h->flags & ~(O_DIRECT | O_TRUNC), &fd) == 0)
		h->fd_buffered = fd;
	fd = h->fd_buffered;
	pthread_mutex_unlock(&h->node->mu);
	return fd == -1 ? h->fd : fd;
}

static ssize_t handle_pread(struct rhandle *h, char *buf, size_t len, off_t off)
{
	int fd = h->fd;
	ssize_t r;

	if ((h->flags & O_DIRECT) && unaligned(buf, len, off))
		fd = buffered_fd(h);
	r = pread(fd, buf, len, off);
	if (r == -1 && errno == EINVAL && fd == h->fd && (h->flags & O_DIRECT))
		r = pread(buffered_fd(h), buf, len, off);
	return r == -1 ? -errno : r;
}

static ssize_t handle_pwrite(struct rhandle *h, const char *buf, size_t len, off_t off)
{
	int fd = h->fd;
	ssize_t r;

	if ((h->flags & O_DIRECT) && unaligned(buf, len, off))
		fd = buffered_fd(h);
	r = pwrite(fd, buf, len, off);
	if (r == -1 && errno == EINVAL && fd == h->fd && (h->flags & O_DIRECT))
		r = pwrite(buffered_fd(h), buf, len, off);
	return r == -1 ? -errno : r;
}

static void op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		    struct fuse_file_info *fi)
{
	struct rnode *n = N(ino);
	struct migration *m;
	char *buf;
	ssize_t r;

	if (!gate_enter(req, n))
		return;
	if (size > MAX_IO)
		size = MAX_IO;
	buf = read_buf();
	if (buf) {
		m = __atomic_load_n(&n->mig, __ATOMIC_ACQUIRE);
		r = m ? mig_read(m, buf, size, off) : handle_pread(H(fi), buf, size, off);
	} else {
		r = -ENOMEM;
	}
	gate_leave(n);
	if (r < 0)
		fuse_reply_err(req, (int)-r);
	else
		fuse_reply_buf(req, buf, (size_t)r);
}

static void op_write_buf(fuse_req_t req, fuse_ino_t ino, struct fuse_bufvec *in, off_t off,
			 struct fuse_file_info *fi)
{
	struct rnode *n = N(ino);
	struct rhandle *h = H(fi);
	struct migration *m;
	size_t len = fuse_buf_size(in);
	const char *data;
	ssize_t r;

	if (!gate_enter(req, n))
		return;
	if (in->count == 1 && !(in->buf[0].flags & FUSE_BUF_IS_FD)) {
		data = in->buf[0].mem;
	} else {
		struct fuse_bufvec dst = FUSE_BUFVEC_INIT(len);

		r = io_buf_get();
		if (r || len > MAX_IO)
			goto done_err;
		dst.buf[0].mem = io_buf;
		r = fuse_buf_copy(&dst, in, 0);
		if (r < 0)
			goto done;
		len = (size_t)r;
		data = io_buf;
	}
	m = __atomic_load_n(&n->mig, __ATOMIC_ACQUIRE);
	if (m) {
		r = mig_write(m, data, len, off);
		if (r >= 0 && (h->flags & (O_SYNC | O_DSYNC))) {
			int err = mig_fsync(m, (h->flags & O_SYNC) != O_SYNC);

			if (err)
				r = err;
		}
	} else {
		r = handle_pwrite(h, data, len, off);
		if (r >= 0 && (h->flags & (O_SYNC | O_DSYNC)) && reloc_flush_barrier())
			r = -EIO;
	}
	goto done;
done_err:
	if (!r)
		r = -EINVAL;
done:
	gate_leave(n);
	if (r < 0)
		fuse_reply_err(req, (int)-r);
	else
		fuse_reply_write(req, (size_t)r);
}

static void op_fsync(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
	struct rnode *n = N(ino);
	struct migration *m;
	int err;

	if (!gate_enter(req, n))
		return;
	m = __atomic_load_n(&n->mig, __ATOMIC_ACQUIRE);
	if (m)
		err = mig_fsync(m, datasync);
	else
		err = (datasync ? fdatasync(H(fi)->fd) : fsync(H(fi)->fd)) == -1 ? -errno : 0;
	gate_leave(n);
	if (reloc_flush_barrier() && !err)
		err = -EIO;
	fuse_reply_err(req, -err);
}

static void op_fallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t off, off_t len,
			 struct fuse_file_info *fi)
{
	struct rnode *n = N(ino);
	struct migration *m;
	int err;

	if (!gate_enter(req, n))
		return;
	m = __atomic_load_n(&n->mig, __ATOMIC_ACQUIRE);
	if (m)
		err = mig_fallocate(m, mode, off, len);
	else
		err = fallocate(H(fi)->fd, mode, off, len) == -1 ? -errno : 0;
	gate_leave(n);
	fuse_reply_err(req, -err);
}

static void op_lseek(fuse_req_t req, fuse_ino_t ino, off_t off, int whence,
		     struct fuse_file_info *fi)
{
	struct rnode *n = N(ino);
	struct migration *m;
	off_t r;

	if (!gate_enter(req, n))
		return;
	m = __atomic_load_n(&n->mig, __ATOMIC_ACQUIRE);
	if (m)
		r = mig_lseek(m, off, whence);
	else if ((r = lseek(H(fi)->fd, off, whence)) == -1)
		r = -errno;	/* the offset it returns is the answer: a second
				 * lseek could see another request's position */
	gate_leave(n);
	if (r < 0)
		fuse_reply_err(req, (int)-r);
	else
		fuse_reply_lseek(req, r);
}

static void op_copy_file_range(fuse_req_t req, fuse_ino_t ino_in, off_t off_in,
			       struct fuse_file_info *fi_in, fuse_ino_t ino_out, off_t off_out,
			       struct fuse_file_info *fi_out, size_t len, int flags)
{
	struct rnode *ni = N(ino_in), *no = N(ino_out);
	struct migration *mi, *mo;
	ssize_t r;

	if (!gate_enter(req, ni))
		return;
	if (!gate_enter(req, no)) {
		gate_leave(ni);
		return;
	}
	mi = __atomic_load_n(&ni->mig, __ATOMIC_ACQUIRE);
	mo = __atomic_load_n(&no->mig, __ATOMIC_ACQUIRE);
	if (!mi && !mo) {
		r = copy_file_range(H(fi_in)->fd, &off_in, H(fi_out)->fd, &off_out, len, (unsigned)flags);
		r = r == -1 ? -errno : r;
	} else {
		/* one side migrates: copy one buffer through the live views */
		r = io_buf_get();
		if (!r) {
			size_t n = len < MAX_IO ? len : MAX_IO;

			r = mi ? mig_read(mi, io_buf, n, off_in) : handle_pread(H(fi_in), io_buf, n, off_in);
			if (r > 0)
				r = mo ? mig_write(mo, io_buf, (size_t)r, off_out)
				       : handle_pwrite(H(fi_out), io_buf, (size_t)r, off_out);
		}
	}
	gate_leave(no);
	gate_leave(ni);
	if (r < 0)
		fuse_reply_err(req, (int)-r);
	else
		fuse_reply_write(req, (size_t)r);
}

/* ---- directories ------------------------------------------------------------ */

static void op_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct rnode *n = N(ino);
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
	h = handle_new(n, fd, O_RDONLY | O_DIRECTORY);
	if (!h) {
		closedir(d);
		err = -ENOMEM;
		goto out;
	}
	h->dir = d;
	fi->fh = (uintptr_t)h;
	fi->cache_readdir = 0;
out:
	gate_leave(n);
	if (err)
		fuse_reply_err(req, -err);
	else
		fuse_reply_open(req, fi);
}

static void do_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		       struct fuse_file_info *fi, bool plus)
{
	struct rnode *n = N(ino);
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
		if (reloc_hidden_name(n, de->d_name)) {
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
				err = do_lookup(n, de->d_name, &e);
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
					itab_forget(N(e.ino), 1);
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
	gate_leave(n);
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
	struct rnode *n = N(ino);

	if (!gate_enter(req, n))
		return;
	gate_leave(n);
	handle_free(H(fi));
	fuse_reply_err(req, 0);
}

static void op_fsyncdir(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
	struct rnode *n = N(ino);
	int fd, err;

	if (!gate_enter(req, n))
		return;
	fd = dirfd((DIR *)H(fi)->dir);
	err = (datasync ? fdatasync(fd) : fsync(fd)) == -1 ? -errno : 0;
	gate_leave(n);
	if (reloc_flush_barrier() && !err)
		err = -EIO;
	fuse_reply_err(req, -err);
}

static void op_statfs(fuse_req_t req, fuse_ino_t ino)
{
	struct rnode *n = N(ino);
	struct statvfs sv;
	int err;

	if (!gate_enter(req, n))
		return;
	err = fstatvfs(n->fd, &sv) == -1 ? errno : 0;
	gate_leave(n);
	if (err)
		fuse_reply_err(req, err);
	else
		fuse_reply_statfs(req, &sv);
}

/* ---- extended attributes ------------------------------------------------------ */

static void op_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name, const char *value,
			size_t size, int flags)
{
	struct rnode *n = N(ino);
	char path[64];
	int err;

	if (!gate_enter(req, n))
		return;
	fd_path(n->fd, path);
	if (n->type == S_IFLNK)
		err = EPERM;
	else
		err = setxattr(path, name, value, size, flags) == -1 ? errno : 0;
	gate_leave(n);
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
	struct rnode *n = N(ino);
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
	gate_leave(n);
	reply_xattr(req, size, r, buf);
	free(buf);
}

static void op_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size)
{
	struct rnode *n = N(ino);
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
	gate_leave(n);
	reply_xattr(req, size, r, buf);
	free(buf);
}

static void op_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name)
{
	struct rnode *n = N(ino);
	char path[64];
	int err;

	if (!gate_enter(req, n))
		return;
	fd_path(n->fd, path);
	if (n->type == S_IFLNK)
		err = EPERM;
	else
		err = removexattr(path, name) == -1 ? errno : 0;
	gate_leave(n);
	fuse_reply_err(req, err);
}

const struct fuse_lowlevel_ops fs_ops = {
	.init = op_init,
	.lookup = op_lookup,
	.forget = op_forget,
	.forget_multi = op_forget_multi,
	.getattr = op_getattr,
	.setattr = op_setattr,
	.readlink = op_readlink,
	.mknod = op_mknod,
	.mkdir = op_mkdir,
	.symlink = op_symlink,
	.link = op_link,
	.unlink = op_unlink,
	.rmdir = op_rmdir,
	.rename = op_rename,
	.create = op_create,
	.open = op_open,
	.release = op_release,
	.flush = op_flush,
	.read = op_read,
	.write_buf = op_write_buf,
	.fsync = op_fsync,
	.fallocate = op_fallocate,
	.lseek = op_lseek,
	.copy_file_range = op_copy_file_range,
	.opendir = op_opendir,
	.readdir = op_readdir,
	.readdirplus = op_readdirplus,
	.releasedir = op_releasedir,
	.fsyncdir = op_fsyncdir,
	.statfs = op_statfs,
	.setxattr = op_setxattr,
	.getxattr = op_getxattr,
	.listxattr = op_listxattr,
	.removexattr = op_removexattr,
};

/* ---- the worker loop -------------------------------------------------------- */

static sem_t loop_done;

/*
 * Each worker reads requests into its own buffer, placed so that a WRITE's
 * payload (after fuse_in_header and fuse_write_in) starts on a page: O_DIRECT
 * writes then go to the backing file straight from the request, and a READ
 * uses the same area for its data (read_buf).  The first 2 MiB, which hold
 * all of a request of up to MAX_IO, are asked to be one transparent huge
 * page: the kernel then pins one page instead of 256 for each 1 MiB it
 * copies in or out or sends to the disk (1 MiB direct reads measured about
 * 15 % faster, bench/results), for 2 MiB of memory per worker.
 */
static void *worker(void *arg)
{
	struct fuse_session *se = arg;
	size_t bufsize = 2 * MAX_IO + 2 * IO_ALIGN;
	char *base;
	struct fuse_buf fb = { 0 };
	sigset_t set;

	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	if (posix_memalign((void **)&base, HUGE_PAGE, bufsize)) {
		log_warnx("cannot allocate a request buffer");
		sem_post(&loop_done);
		return NULL;
	}
	madvise(base, HUGE_PAGE, MADV_HUGEPAGE);	/* a hint: fine if refused */
	fb.mem = base + IO_ALIGN - WRITE_PAYLOAD;
	rx_buf = &fb;
	rx_payload = base + IO_ALIGN;
	while (!fuse_session_exited(se)) {
		int res = fuse_session_receive_buf(se, &fb);

		if (res == -EINTR)
			continue;
		if (res <= 0)
			break;
		cur_buf = &fb;
		fuse_session_process_buf(se, &fb);
		cur_buf = NULL;
	}
	free(base);
	free(io_buf);
	io_buf = NULL;
	sem_post(&loop_done);
	return NULL;
}

int fs_loop(struct fuse_session *se, unsigned threads)
{
	pthread_t *tids = calloc(threads, sizeof(*tids));
	unsigned started = 0;

	if (!tids)
		return -ENOMEM;
	fs_se = se;
	sem_init(&loop_done, 0, 0);
	for (; started < threads; started++)
		if (pthread_create(&tids[started], NULL, worker, se))
			break;
	if (!started) {
		free(tids);
		return -EAGAIN;
	}
	/* the first worker to stop (unmount, or a signal) ends the session */
	while (sem_wait(&loop_done) == -1 && errno == EINTR && !fuse_session_exited(se))
		;
	fuse_session_exit(se);
	for (unsigned i = 0; i < started; i++)
		pthread_kill(tids[i], SIGUSR1);
	for (unsigned i = 0; i < started; i++)
		pthread_join(tids[i], NULL);
	free(tids);
	return 0;
}

long fs_inflight(void)
{
	return atomic_load(&gate.inflight_all);
}
