/*
 * names: the operations on names and attributes: lookup, forget, getattr,
 * setattr, readlink, mknod, mkdir, symlink, link, unlink, rmdir, rename,
 * statfs.
 *
 * Every node holds an O_PATH descriptor (inode.c); operations work relative
 * to it with the *at() calls, so renames of parents never break a node.
 * Files and directories are created with the caller's fsuid/fsgid so that
 * they belong to the caller; permission checks are the kernel's
 * (default_permissions is always on).  Names a migration pins, and files
 * relocated on their own, are the policy's to say (fs_policy).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <stdio.h>
#include <sys/fsuid.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "common/crashpoint.h"
#include "common/util.h"
#include "fs/fs_i.h"
#include "fs/once.h"

/* ---- helpers ------------------------------------------------------------- */

bool creds_enter(fuse_req_t req)
{
	const struct fuse_ctx *ctx = fuse_req_ctx(req);

	if (geteuid() != 0)
		return false;
	setfsgid(ctx->gid);
	setfsuid(ctx->uid);
	return true;
}

void creds_leave(bool switched)
{
	if (!switched)
		return;
	setfsuid(0);
	setfsgid(0);
}

static struct fs_dir dir_of(const struct rnode *p)
{
	return (struct fs_dir){ .dev = p->dev, .ino = p->ino, .fd = p->fd };
}

bool hidden_name(struct fs *fs, struct rnode *parent, const char *name)
{
	return fs->cfg.hidden && parent == itab_root(&fs->itab) && strcmp(name, fs->cfg.hidden) == 0;
}

int name_check(struct fs *fs, struct rnode *parent, const char *name, bool creates)
{
	struct fs_dir dir = dir_of(parent);

	if (!fs->policy.name_check)
		return 0;
	return fs->policy.name_check(fs->policy.arg, &dir, name, creates);
}

static int redirect(struct fs *fs, struct rnode *parent, const char *name)
{
	struct fs_dir dir = dir_of(parent);

	if (!fs->policy.redirect)
		return -ENOENT;
	return fs->policy.redirect(fs->policy.arg, &dir, name);
}

int node_stat(struct fs *fs, struct rnode *n, struct stat *st)
{
	struct route r;

	if (fstatat(n->fd, "", st, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) == -1)
		return -errno;
	r = route(fs, n, NULL);
	r.ops->getattr(&r, st);
	return 0;
}

/* How long the kernel may keep n's attributes: a sealed node's not at all,
 * so that a write on a handle opened before the seal asks (op_getattr). */
static double attr_timeout(struct fs *fs, struct rnode *n)
{
	return __atomic_load_n(&n->sealed, __ATOMIC_ACQUIRE) ? 0 : fs->cfg.timeout;
}

/* e (its attributes filled) is the entry reply about node n */
static void fill_entry(struct fs *fs, struct rnode *n, struct fuse_entry_param *e)
{
	if (__atomic_exchange_n(&n->kmtime_fresh, false, __ATOMIC_ACQ_REL)) {
		/* the kernel's inode will be made from this reply */
		pthread_mutex_lock(&n->mu);
		n->kmtime = e->attr.st_mtim;
		n->kmtime_known = true;
		pthread_mutex_unlock(&n->mu);
	}
	e->ino = itab_nodeid(&fs->itab, n);
	e->attr_timeout = attr_timeout(fs, n);
	e->entry_timeout = fs->cfg.timeout;
}

/* A resend whose dead worker took the lookup reference already: answer
 * with that node, without another reference.  1 if answered so. */
static int carried_entry(struct fs *fs, struct fuse_entry_param *e, int *err)
{
	const struct req_rec *c = once_carried();
	struct rnode *n;

	if (!c || c->state != REC_DONE || !c->node)
		return 0;
	n = itab_node(&fs->itab, c->node);
	if (!n)
		return 0;
	*err = node_stat(fs, n, &e->attr);
	if (!*err)
		fill_entry(fs, n, e);
	return 1;
}

/* Does name exist in parent now (before a change a resend may repeat)? */
static bool name_exists(struct rnode *p, const char *name)
{
	struct stat st;

	return fstatat(p->fd, name, &st, AT_SYMLINK_NOFOLLOW) == 0;
}

/* Record the intent of a namespace change: whether the name existed before
 * it (for a resend, what the dead worker saw). */
static bool intent(struct fs *fs, struct rnode *p, const char *name)
{
	const struct req_rec *c = once_carried();
	bool existed = c && c->state == REC_INTENT ? c->existed != 0 : name_exists(p, name);

	once_intent(fs, existed);
	return existed;
}

/* A resend of a change the dead worker may have made: was it made? */
static bool redone(int err, int if_err, bool want_existed)
{
	const struct req_rec *c = once_carried();

	return err == if_err && c && c->state == REC_INTENT && (c->existed != 0) == want_existed;
}

int do_lookup(struct fs *fs, struct rnode *parent, const char *name, struct fuse_entry_param *e)
{
	struct rnode *n;
	struct stat st;
	int fd, err;

	memset(e, 0, sizeof(*e));
	if (carried_entry(fs, e, &err))
		return err;
	if (hidden_name(fs, parent, name))
		return -ENOENT;
	fd = redirect(fs, parent, name);
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
	n = itab_lookup(&fs->itab, fd, &st);
	if (!n)
		return -ENOMEM;
	err = node_stat(fs, n, &e->attr);
	if (err) {
		itab_forget(&fs->itab, n, 1);
		return err;
	}
	fill_entry(fs, n, e);
	return 0;
}

void reply_entry_or_err(fuse_req_t req, int err, struct fuse_entry_param *e)
{
	if (err)
		fuse_reply_err(req, -err);
	else
		fuse_reply_entry(req, e);
}

/* ---- lookup and attributes ---------------------------------------------------- */

static void op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct fs *fs = FS(req);
	struct rnode *p = N(req, parent);
	struct fuse_entry_param e;
	int err;

	if (!gate_enter(req, p))
		return;
	err = do_lookup(fs, p, name, &e);
	gate_leave(req, p);
	if (err == -ENOENT && fs->cfg.timeout > 0) {
		/* negative entry, cached like a positive one */
		memset(&e, 0, sizeof(e));
		e.entry_timeout = fs->cfg.timeout;
		fuse_reply_entry(req, &e);
		return;
	}
	reply_entry_or_err(req, err, &e);
}

static void op_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
	struct rnode *n = N(req, ino);

	if (n)
		itab_forget(&FS(req)->itab, n, nlookup);
	once_forgets_end();
	fuse_reply_none(req);
}

static void op_forget_multi(fuse_req_t req, size_t count, struct fuse_forget_data *f)
{
	for (size_t i = 0; i < count; i++) {
		struct rnode *n = N(req, f[i].ino);

		if (n)
			itab_forget(&FS(req)->itab, n, f[i].nlookup);
		else
			once_forget_skipped(i + 1);
	}
	once_forgets_end();
	fuse_reply_none(req);
}

static void op_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct rnode *n = N(req, ino);
	struct rhandle *h = fi ? H(fi) : NULL;
	struct route r;
	struct stat st;
	int err;

	if (!gate_enter(req, n))
		return;
	/*
	 * With the writeback cache a write(2) lands in the page cache, and
	 * asks for the file's attributes first, with its handle, when they
	 * have timed out (a sealed node's always have): a handle the route
	 * would not open now (a writable one of a sealed node) is refused
	 * here, which fails that write at once, as without the cache, rather
	 * than at its write-back.  The handle's O_TRUNC was its open's, done
	 * then: a read-only handle opened with it is still one.
	 */
	r = route(FS(req), n, h);
	err = h ? r.ops->open_flags(&r, h->flags & ~O_TRUNC) : 0;
	if (err >= 0)
		err = node_stat(FS(req), n, &st);
	gate_leave(req, n);
	if (err)
		fuse_reply_err(req, -err);
	else
		fuse_reply_attr(req, &st, attr_timeout(FS(req), n));
}

static int set_times(struct rnode *n, struct rhandle *h, const struct stat *attr, int valid)
{
	struct timespec tv[2];

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
	if (h && !h->is_dir)
		return futimens(h->fd, tv) == -1 ? -errno : 0;
	/* works on symlinks too: the O_PATH descriptor names the link itself */
	return utimensat(n->fd, "", tv, AT_EMPTY_PATH) == -1 ? -errno : 0;
}

/*
 * With the kernel's writeback cache the kernel keeps a regular file's mtime:
 * it stamps it at write(2), keeps it over the one relocfs replies with while
 * it holds the inode, and sends it in a SETATTR when it writes the inode
 * back (an fsync, a close, the periodic writeback).  relocfs's own writes to
 * the backing file stamp that file too, later, and one served after the
 * kernel's SETATTR (a written-back page and the inode go out side by side)
 * would leave the backing file ahead of the kernel: once the kernel dropped
 * the inode, the mount would show another mtime with no write in between.
 * So a node keeps the kernel's mtime (the one in the entry reply the
 * kernel's inode was made from, then each SETATTR's), a write marks it
 * stale (so does a change of route: an abort writes the delta back), and
 * the route gives it to the file again where the kernel has sent what it
 * stamped: a SETATTR, FLUSH, FSYNC or RELEASE (each follows the inode's
 * write-back).  A worker that took the node over learns it at the next
 * SETATTR.
 */
void node_written(struct fs *fs, struct rnode *n)
{
	if (fs->wb_cache)
		__atomic_store_n(&n->kmtime_stale, true, __ATOMIC_RELEASE);
}

void node_times_settle(struct fs *fs, struct rnode *n)
{
	struct route r;

	if (!fs->wb_cache || n->type != S_IFREG ||
	    !__atomic_load_n(&n->kmtime_stale, __ATOMIC_ACQUIRE))
		return;
	pthread_mutex_lock(&n->mu);
	/* cleared first: a write that lands after this marks it again */
	if (n->kmtime_known && __atomic_exchange_n(&n->kmtime_stale, false, __ATOMIC_ACQ_REL)) {
		r = route(fs, n, NULL);
		if (r.ops->set_mtime(&r, &n->kmtime))
			__atomic_store_n(&n->kmtime_stale, true, __ATOMIC_RELEASE);
	}
	pthread_mutex_unlock(&n->mu);
}

/* A SETATTR that changed the size or the times of n: with the writeback
 * cache, an mtime it carries is the kernel's (explicit for a regular file:
 * the kernel trusts its own clock there) */
static void setattr_times(struct fs *fs, struct rnode *n, const struct stat *attr, int valid)
{
	if (!fs->wb_cache || n->type != S_IFREG)
		return;
	pthread_mutex_lock(&n->mu);
	if (valid & FUSE_SET_ATTR_MTIME_NOW)
		n->kmtime_known = false;	/* the backing file's clock, not the kernel's */
	else if (valid & FUSE_SET_ATTR_MTIME) {
		n->kmtime = attr->st_mtim;
		n->kmtime_known = true;
	}
	pthread_mutex_unlock(&n->mu);
	node_written(fs, n);
	node_times_settle(fs, n);
}

bool fs_node_mtime(struct fs *fs, struct rnode *n, struct timespec *ts)
{
	bool known;

	if (!fs->wb_cache)
		return false;
	pthread_mutex_lock(&n->mu);
	known = n->kmtime_known;
	if (known)
		*ts = n->kmtime;
	pthread_mutex_unlock(&n->mu);
	return known;
}

static int set_attr(struct fs *fs, struct rnode *n, struct stat *attr, int valid,
		    struct rhandle *h)
{
	char path[64];
	int err;

	fd_path(n->fd, path);
	if (valid & FUSE_SET_ATTR_MODE) {
		if (n->type == S_IFLNK)
			return -EOPNOTSUPP;
		if (chmod(path, attr->st_mode) == -1)
			return -errno;
	}
	if (valid & (FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID)) {
		uid_t uid = (valid & FUSE_SET_ATTR_UID) ? attr->st_uid : (uid_t)-1;
		gid_t gid = (valid & FUSE_SET_ATTR_GID) ? attr->st_gid : (gid_t)-1;

		if (fchownat(n->fd, "", uid, gid, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) == -1)
			return -errno;
	}
	if (valid & FUSE_SET_ATTR_SIZE) {
		struct route r = route(fs, n, h);

		err = r.ops->truncate(&r, attr->st_size);
		if (err)
			return err;
	}
	if (valid & (FUSE_SET_ATTR_ATIME | FUSE_SET_ATTR_MTIME))
		return set_times(n, h, attr, valid);
	return 0;
}

/* Is the caller of req in group gid (its fsgid or a supplementary one)? */
static bool caller_in_group(fuse_req_t req, gid_t gid)
{
	gid_t groups[64];
	int n;

	if (fuse_req_ctx(req)->gid == gid)
		return true;
	n = fuse_req_getgroups(req, 64, groups);
	for (int i = 0; i < n && i < 64; i++)
		if (groups[i] == gid)
			return true;
	return false;
}

int node_kill_suidgid(struct fs *fs, fuse_req_t req, struct rnode *n)
{
	struct stat st;
	char path[64];
	mode_t m;

	if (fstatat(n->fd, "", &st, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) == -1)
		return -errno;
	if (!S_ISREG(st.st_mode))
		return 0;
	/*
	 * The kernel's rule: setuid goes; setgid goes if the group may
	 * execute, or if the caller is not in the file's group.  The one flag
	 * says that something goes: with setuid and a setgid the group may
	 * not execute, only the caller's groups tell whether setgid goes too.
	 */
	m = st.st_mode & 07777 & ~(mode_t)S_ISUID;
	if ((m & S_ISGID) && ((m & S_IXGRP) || !(st.st_mode & S_ISUID) ||
			      !caller_in_group(req, st.st_gid)))
		m &= ~(mode_t)S_ISGID;
	if (m == (st.st_mode & 07777))
		return 0;
	fd_path(n->fd, path);
	if (chmod(path, m) == -1)
		return -errno;
	/* the kernel keeps the mode it had until its attributes time out
	 * (a write's reply carries none): attributes only, as fs_node_rekey */
	if (fs->se)
		fuse_lowlevel_notify_inval_inode(fs->se, itab_nodeid(&fs->itab, n), -1, 0);
	return 0;
}

static void op_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int valid,
		       struct fuse_file_info *fi)
{
	const struct fuse_setattr_in *raw = req_args(FUSE_SETATTR, sizeof(*raw));
	struct rnode *n = N(req, ino);
	struct stat st;
	int err;

	if (!gate_enter(req, n))
		return;
	err = set_attr(FS(req), n, attr, valid, fi ? H(fi) : NULL);
	if (!err && (valid & (FUSE_SET_ATTR_SIZE | FUSE_SET_ATTR_MTIME)))
		setattr_times(FS(req), n, attr, valid);
	if (!err && raw && (raw->valid & FATTR_KILL_SUIDGID))
		err = node_kill_suidgid(FS(req), req, n);
	if (!err)
		err = node_stat(FS(req), n, &st);
	gate_leave(req, n);
	if (err)
		fuse_reply_err(req, -err);
	else
		fuse_reply_attr(req, &st, attr_timeout(FS(req), n));
}

static void op_readlink(fuse_req_t req, fuse_ino_t ino)
{
	struct rnode *n = N(req, ino);
	char buf[PATH_MAX + 1];
	ssize_t len;

	if (!gate_enter(req, n))
		return;
	len = readlinkat(n->fd, "", buf, sizeof(buf));
	gate_leave(req, n);
	if (len == -1)
		fuse_reply_err(req, errno);
	else if (len == sizeof(buf))
		fuse_reply_err(req, ENAMETOOLONG);
	else {
		buf[len] = '\0';
		fuse_reply_readlink(req, buf);
	}
}

/* ---- making and removing names ---------------------------------------------------- */

enum mk_kind { MK_NODE, MK_DIR, MK_SYMLINK };

static void make_entry(fuse_req_t req, fuse_ino_t parent, const char *name, enum mk_kind kind,
		       mode_t mode, dev_t rdev, const char *link)
{
	struct fs *fs = FS(req);
	struct rnode *p = N(req, parent);
	struct fuse_entry_param e;
	bool c;
	int err;

	if (!gate_enter(req, p))
		return;
	if (carried_entry(fs, &e, &err))
		goto out;	/* made, and looked up, before a worker died */
	err = name_check(fs, p, name, true);
	if (err)
		goto out;
	intent(fs, p, name);
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
	if (redone(err, -EEXIST, false))
		err = 0;	/* a worker made it before it died */
	if (!err)
		err = do_lookup(fs, p, name, &e);
out:
	gate_leave(req, p);
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
	struct fs *fs = FS(req);
	struct rnode *n = N(req, ino), *p = N(req, newparent);
	struct fuse_entry_param e;
	char path[64];
	int err;

	if (!n) {
		fuse_reply_err(req, ESTALE);
		return;
	}
	/* the file's gate too: a job's start, which holds the file, waits for
	 * a link in flight, and a later one sees the job */
	if (!gate_enter(req, n))
		return;
	if (!gate_enter(req, p)) {
		gate_leave(req, n);	/* parked: the first gate's count is not ours */
		return;
	}
	if (carried_entry(fs, &e, &err))
		goto out;
	err = name_check(fs, p, newname, true);
	if (!err && __atomic_load_n(&n->delta, __ATOMIC_ACQUIRE))
		err = -EBUSY;	/* a migrating file keeps one name */
	if (!err) {
		delaypoint("link-checked");	/* tests: a job's start comes meanwhile */
		intent(fs, p, newname);
		fd_path(n->fd, path);
		if (linkat(AT_FDCWD, path, p->fd, newname, AT_SYMLINK_FOLLOW) == -1)
			err = -errno;
		if (redone(err, -EEXIST, false))
			err = 0;
	}
	if (!err)
		err = do_lookup(fs, p, newname, &e);
out:
	gate_leave(req, p);
	gate_leave(req, n);
	reply_entry_or_err(req, err, &e);
}

/* Unlink a file relocated on its own: where it lives, and the stale name in
 * its directory. */
static int remove_redirected(struct fs *fs, struct rnode *p, const char *name)
{
	char path[64], real[PATH_MAX];
	struct fs_dir dir = dir_of(p);
	int fd = redirect(fs, p, name);
	ssize_t l;

	if (fd < 0)
		return fd;
	fd_path(fd, path);
	l = readlink(path, real, sizeof(real) - 1);
	close(fd);
	if (l < 0)
		return -errno;
	real[l] = '\0';
	if (unlink(real) == -1)
		return -errno;
	unlinkat(p->fd, name, 0);
	if (fs->policy.redirect_removed)
		fs->policy.redirect_removed(fs->policy.arg, &dir, name);
	return 0;
}

static void remove_entry(fuse_req_t req, fuse_ino_t parent, const char *name, int flags)
{
	struct fs *fs = FS(req);
	struct rnode *p = N(req, parent);
	const struct req_rec *c = once_carried();
	int err;

	if (!gate_enter(req, p))
		return;
	if (c && c->state == REC_DONE) {
		err = -(int)c->error;	/* removed before a worker died */
		goto out;
	}
	err = hidden_name(fs, p, name) ? -ENOENT : name_check(fs, p, name, false);
	delaypoint("remove-checked");	/* tests: a job's start comes meanwhile */
	if (err == -EXDEV && !flags) {
		intent(fs, p, name);
		err = remove_redirected(fs, p, name);
	} else if (!err) {
		intent(fs, p, name);
		if (unlinkat(p->fd, name, flags) == -1)
			err = -errno;
	}
	if (redone(err, -ENOENT, true))
		err = 0;
	once_done(fs, -err);
out:
	gate_leave(req, p);
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
	struct fs *fs = FS(req);
	struct rnode *p = N(req, parent), *np = N(req, newparent);
	const struct req_rec *c;
	int err;

	if (!gate_enter(req, p))
		return;
	if (!gate_enter(req, np)) {
		/* parked: the first gate's count is not ours to keep */
		gate_leave(req, p);
		return;
	}
	c = once_carried();
	if (c && c->state == REC_DONE) {
		err = -(int)c->error;	/* renamed before a worker died */
		goto out;
	}
	if (hidden_name(fs, p, name) || hidden_name(fs, np, newname))
		err = -EPERM;
	else
		err = name_check(fs, p, name, false);
	if (!err)
		err = name_check(fs, np, newname, false);
	delaypoint("rename-checked");	/* tests: a job's start comes meanwhile */
	if (!err) {
		intent(fs, p, name);
		if (renameat2(p->fd, name, np->fd, newname, flags) == -1)
			err = -errno;
		if (redone(err, -ENOENT, true) && name_exists(np, newname))
			err = 0;	/* the name was moved before a worker died */
		once_done(fs, -err);
	}
out:
	gate_leave(req, np);
	gate_leave(req, p);
	fuse_reply_err(req, -err);
}

static void op_statfs(fuse_req_t req, fuse_ino_t ino)
{
	struct rnode *n = N(req, ino);
	struct statvfs sv;
	int err;

	if (!gate_enter(req, n))
		return;
	err = fstatvfs(n->fd, &sv) == -1 ? errno : 0;
	gate_leave(req, n);
	if (err)
		fuse_reply_err(req, err);
	else
		fuse_reply_statfs(req, &sv);
}

void names_ops(struct fuse_lowlevel_ops *ops)
{
	ops->lookup = op_lookup;
	ops->forget = op_forget;
	ops->forget_multi = op_forget_multi;
	ops->getattr = op_getattr;
	ops->setattr = op_setattr;
	ops->readlink = op_readlink;
	ops->mknod = op_mknod;
	ops->mkdir = op_mkdir;
	ops->symlink = op_symlink;
	ops->link = op_link;
	ops->unlink = op_unlink;
	ops->rmdir = op_rmdir;
	ops->rename = op_rename;
	ops->statfs = op_statfs;
}
