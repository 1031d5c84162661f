/*
 * handle: open files and directories (fi->fh), and moving them to another
 * backend when their node is switched (see fs.h).
 *
 * Each handle is a slot of the shared handle table (table.h), so that it
 * outlives the worker: the file handle the kernel holds is (generation,
 * slot), and the slot keeps the descriptors and the open flags.  struct
 * rhandle is the worker's own view of it (a directory's DIR stream, the
 * list of a node's handles).  A handle keeps the kernel's open flags, so that
 * a switch or a new worker opens the backend the same way (O_DIRECT stays
 * direct).  The kernel computes append offsets itself, so backing files are
 * opened without O_APPEND.  A handle whose descriptor is O_DIRECT opens a
 * second one without it on demand, for requests the backing file refuses
 * for alignment; the kernel keeps the two coherent.
 *
 * With the writeback cache, a file opened without O_DIRECT is cached by the
 * kernel on the mount, its reads and its writes, and the backing file's page
 * cache would hold each of its pages a second time (512 MiB read through
 * the mount took 1 GiB of page cache).  So such a handle's descriptor is
 * made O_DIRECT where the backing file is on a local disk's filesystem
 * (ext4, XFS): backing_uncache.  The kernel's reads and write-backs are of
 * whole pages into page-aligned buffers; the last, partial page of a file
 * goes through the buffered descriptor.  Elsewhere the backing file stays
 * buffered: on NFS and CephFS each direct write waits for the server,
 * where their page cache gathers the commits for the next flush.  Without
 * the writeback cache each buffered write(2) waits for relocfs, and would
 * wait for the disk too.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <linux/magic.h>

#include "common/util.h"
#include "fs/fs_i.h"
#include "fs/once.h"

int backing_open_at(int path_fd, int flags, int *fdp)
{
	char path[64];
	int fd;

	/* the kernel computes append offsets itself; O_APPEND here would make
	 * pwrite ignore them */
	flags &= ~(O_CREAT | O_EXCL | O_NOCTTY | O_APPEND);
	fd_path(path_fd, path);
	/* with the kernel's writeback cache, a write to part of a page reads
	 * the page first, through whatever handle writes: write-only handles
	 * read too, where the daemon may */
	if ((flags & O_ACCMODE) == O_WRONLY) {
		fd = open(path, (flags & ~O_ACCMODE) | O_RDWR | O_CLOEXEC);
		if (fd != -1 || (errno != EACCES && errno != EPERM && errno != EROFS)) {
			if (fd == -1 && errno == EINVAL && (flags & O_DIRECT))
				fd = open(path, (flags & ~(O_ACCMODE | O_DIRECT)) | O_RDWR | O_CLOEXEC);
			if (fd == -1)
				return -errno;
			*fdp = fd;
			return 0;
		}
	}
	fd = open(path, flags | O_CLOEXEC);
	if (fd == -1 && errno == EINVAL && (flags & O_DIRECT))
		fd = open(path, (flags & ~O_DIRECT) | O_CLOEXEC);	/* tmpfs and friends */
	if (fd == -1)
		return -errno;
	*fdp = fd;
	return 0;
}

/* Make fd, a file the kernel opened with flags, O_DIRECT where the mount's
 * page cache is the one that caches it (see the top).  Left as it is where
 * that cannot be. */
static void backing_uncache(struct fs *fs, int fd, int flags)
{
	struct statfs sf;
	int fl;

	if (!fs->wb_cache || (flags & O_DIRECT) || fstatfs(fd, &sf) == -1 ||
	    (sf.f_type != EXT4_SUPER_MAGIC && sf.f_type != XFS_SUPER_MAGIC))
		return;
	fl = fcntl(fd, F_GETFL);
	if (fl != -1)
		(void)fcntl(fd, F_SETFL, fl | O_DIRECT);
}

static bool is_direct(int fd)
{
	int fl = fcntl(fd, F_GETFL);

	return fl != -1 && (fl & O_DIRECT);
}

static uint64_t fh_of(const struct rhandle *h)
{
	return h->gen << 32 | h->slot;
}

struct rhandle *handle_get(struct fs *fs, uint64_t fh)
{
	uint64_t slot = fh & 0xffffffffu;
	struct rhandle *h;

	if (slot >= FS_HANDLES_MAX)
		return NULL;
	h = __atomic_load_n(&fs->handles[slot], __ATOMIC_ACQUIRE);
	return h && h->gen == fh >> 32 ? h : NULL;
}

static void link_handle(struct rhandle *h)
{
	struct rnode *n = h->node;

	pthread_mutex_lock(&n->mu);
	h->next = n->handles;
	n->handles = h;
	pthread_mutex_unlock(&n->mu);
}

static struct rhandle *handle_view(struct fs *fs, uint32_t slot)
{
	struct handle_slot *s = &fs->itab.r->handles[slot];
	struct rhandle *h = calloc(1, sizeof(*h));

	if (!h)
		return NULL;
	h->slot = slot;
	h->gen = s->gen;
	h->node = itab_node(&fs->itab, s->node + 1);
	h->fd = (int)s->fd;
	h->fd_direct = s->dir == 0 && is_direct(h->fd);
	h->fd_buffered = s->fd_buffered == NO_FD ? -1 : (int)s->fd_buffered;
	h->next_fd = -1;
	h->flags = (int)s->flags;
	h->is_dir = s->dir != 0;
	h->dir_off = (off_t)s->dir_off;
	return h;
}

/* A free handle slot, or -1.  Caller holds the table lock. */
static int64_t free_handle_slot(struct fs *fs)
{
	struct fs_region *r = fs->itab.r;

	for (uint64_t i = fs->handle_hint; i < r->handles_hw; i++) {
		if (r->handles[i].state == SLOT_FREE) {
			fs->handle_hint = i + 1;
			return (int64_t)i;
		}
	}
	fs->handle_hint = r->handles_hw + 1;
	return r->handles_hw < FS_HANDLES_MAX ? (int64_t)r->handles_hw : -1;
}

struct rhandle *handle_new(struct fs *fs, struct rnode *n, int fd, int flags, bool dir)
{
	struct fs_region *r = fs->itab.r;
	struct handle_slot *s;
	struct rhandle *h;
	int64_t slot;

	if (!dir)
		backing_uncache(fs, fd, flags);
	pthread_mutex_lock(&fs->itab.lock);
	slot = free_handle_slot(fs);
	if (slot < 0) {
		pthread_mutex_unlock(&fs->itab.lock);
		return NULL;
	}
	s = &r->handles[slot];
	tx_begin(r);
	tx_set(r, &s->node, n->slot);
	tx_set(r, &s->fd, (uint64_t)fd);
	tx_set(r, &s->fd_buffered, NO_FD);
	tx_set(r, &s->flags, (uint64_t)(uint32_t)flags);
	tx_set(r, &s->dir, dir);
	tx_set(r, &s->dir_off, 0);
	tx_set(r, &s->state, SLOT_USED);
	if ((uint64_t)slot == r->handles_hw)
		tx_set(r, &r->handles_hw, (uint64_t)slot + 1);
	h = handle_view(fs, (uint32_t)slot);
	if (!h) {
		tx_recover(r);
		pthread_mutex_unlock(&fs->itab.lock);
		return NULL;
	}
	h->node = n;
	once_tx_done(r, (uint64_t)n->slot + 1, fh_of(h), 0);
	tx_commit(r);
	n->refs++;	/* a daemon reference, under the table lock */
	__atomic_store_n(&fs->handles[slot], h, __ATOMIC_RELEASE);
	pthread_mutex_unlock(&fs->itab.lock);
	link_handle(h);
	return h;
}

uint64_t handle_fh(const struct rhandle *h)
{
	return fh_of(h);
}

void handle_free(struct fs *fs, struct rhandle *h)
{
	struct fs_region *r = fs->itab.r;
	struct handle_slot *s = &r->handles[h->slot];
	struct rnode *n = h->node;

	pthread_mutex_lock(&n->mu);
	for (struct rhandle **pp = &n->handles; *pp; pp = &(*pp)->next) {
		if (*pp == h) {
			*pp = h->next;
			break;
		}
	}
	pthread_mutex_unlock(&n->mu);
	pthread_mutex_lock(&fs->itab.lock);
	tx_begin(r);
	tx_set(r, &s->state, SLOT_FREE);
	tx_set(r, &s->gen, s->gen + 1);
	tx_set(r, &s->fd, NO_FD);
	tx_set(r, &s->fd_buffered, NO_FD);
	once_tx_done(r, 0, fh_of(h), 0);
	tx_commit(r);
	__atomic_store_n(&fs->handles[h->slot], NULL, __ATOMIC_RELEASE);
	if (h->slot < fs->handle_hint)
		fs->handle_hint = h->slot;
	pthread_mutex_unlock(&fs->itab.lock);
	if (h->dir)
		closedir(h->dir);
	else
		close(h->fd);
	if (h->fd_buffered != -1)
		close(h->fd_buffered);
	if (h->next_fd != -1)
		close(h->next_fd);
	itab_unref(&fs->itab, n);
	free(h);
}

/* Record new descriptors of h in its slot (a transaction); the old ones are
 * the caller's to close afterwards. */
static void handle_set_fds(struct fs *fs, struct rhandle *h, int fd, int fd_buffered)
{
	struct fs_region *r = fs->itab.r;
	struct handle_slot *s = &r->handles[h->slot];

	pthread_mutex_lock(&fs->itab.lock);
	tx_begin(r);
	tx_set(r, &s->fd, (uint64_t)fd);
	tx_set(r, &s->fd_buffered, fd_buffered == -1 ? NO_FD : (uint64_t)fd_buffered);
	tx_commit(r);
	pthread_mutex_unlock(&fs->itab.lock);
}

int buffered_fd(struct fs *fs, struct rhandle *h)
{
	int fd;

	if (!h->fd_direct)
		return h->fd;
	pthread_mutex_lock(&h->node->mu);
	if (h->fd_buffered == -1 &&
	    backing_open_at(h->node->fd, h->flags & ~(O_DIRECT | O_TRUNC), &fd) == 0) {
		handle_set_fds(fs, h, h->fd, fd);
		h->fd_buffered = fd;
	}
	fd = h->fd_buffered;
	pthread_mutex_unlock(&h->node->mu);
	return fd == -1 ? h->fd : fd;
}

void handle_seen_dir_off(struct fs *fs, struct rhandle *h)
{
	/* a hint for a new worker's readdir, not a transaction: the kernel
	 * names the offset it wants in every READDIR */
	__atomic_store_n(&fs->itab.r->handles[h->slot].dir_off, (uint64_t)h->dir_off,
			 __ATOMIC_RELAXED);
}

int fs_reopen_handles(struct fs *fs, struct rnode *n)
{
	int ret = 0;

	pthread_mutex_lock(&n->mu);
	for (struct rhandle *h = n->handles; h; h = h->next) {
		int fd, old, oldb;
		int err;

		if (h->is_dir)
			continue;
		err = backing_open_at(n->fd, h->flags & ~O_TRUNC, &fd);
		if (err) {
			ret = err;
			continue;
		}
		backing_uncache(fs, fd, h->flags);
		handle_set_fds(fs, h, fd, -1);
		old = h->fd;
		oldb = h->fd_buffered;
		h->fd = fd;
		h->fd_direct = is_direct(fd);
		h->fd_buffered = -1;
		close(old);
		if (oldb != -1)
			close(oldb);
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

int fs_prepare_reopen(struct fs *fs, struct rnode *n, int path_fd)
{
	int err = 0;

	pthread_mutex_lock(&n->mu);
	for (struct rhandle *h = n->handles; h && !err; h = h->next) {
		if (h->is_dir || h->next_fd != -1)
			continue;
		err = backing_open_at(path_fd, h->flags & ~O_TRUNC, &h->next_fd);
		if (!err)
			backing_uncache(fs, h->next_fd, h->flags);
	}
	pthread_mutex_unlock(&n->mu);
	if (err)
		fs_cancel_reopen(n);
	return err;
}

void fs_commit_reopen(struct fs *fs, struct rnode *n)
{
	pthread_mutex_lock(&n->mu);
	for (struct rhandle *h = n->handles; h; h = h->next) {
		int old, oldb;

		if (h->next_fd == -1)
			continue;	/* a directory */
		handle_set_fds(fs, h, h->next_fd, -1);
		old = h->fd;
		oldb = h->fd_buffered;
		h->fd = h->next_fd;
		h->fd_direct = is_direct(h->fd);
		h->next_fd = -1;
		h->fd_buffered = -1;
		close(old);
		if (oldb != -1)
			close(oldb);
	}
	pthread_mutex_unlock(&n->mu);
}

int handles_adopt(struct fs *fs)
{
	struct fs_region *r = fs->itab.r;

	for (uint64_t i = 0; i < r->handles_hw && i < FS_HANDLES_MAX; i++) {
		struct handle_slot *s = &r->handles[i];
		struct rhandle *h;

		if (s->state != SLOT_USED)
			continue;
		h = handle_view(fs, (uint32_t)i);
		if (!h)
			return -ENOMEM;
		if (!h->node) {
			/* its node is gone: a slot of a broken table */
			free(h);
			return -EINVAL;
		}
		h->node->refs++;
		fs->handles[i] = h;
		link_handle(h);
	}
	return 0;
}

size_t handles_fds(struct fs *fs, int *keep, size_t max)
{
	struct fs_region *r = fs->itab.r;
	size_t k = 0;

	for (uint64_t i = 0; i < r->handles_hw && i < FS_HANDLES_MAX && k + 2 <= max; i++) {
		if (r->handles[i].state != SLOT_USED)
			continue;
		if (r->handles[i].fd != NO_FD)
			keep[k++] = (int)r->handles[i].fd;
		if (r->handles[i].fd_buffered != NO_FD)
			keep[k++] = (int)r->handles[i].fd_buffered;
	}
	return k;
}
