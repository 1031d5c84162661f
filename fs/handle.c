/*
 * handle: open files and directories (fi->fh), and moving them to another
 * backend when their node is switched (see fs.h).
 *
 * A handle keeps the kernel's open flags, so that a switch opens the new
 * backend the same way (O_DIRECT stays direct).  The kernel computes append
 * offsets itself, so backing files are opened without O_APPEND.  An O_DIRECT
 * handle opens a second descriptor without O_DIRECT on demand, for requests
 * the backing file refuses for alignment; the kernel keeps the two coherent.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include <dirent.h>

#include "common/util.h"
#include "fs/fs_i.h"

int backing_open_at(int path_fd, int flags, int *fdp)
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

struct rhandle *handle_new(struct fs *fs, struct rnode *n, int fd, int flags)
{
	struct rhandle *h = calloc(1, sizeof(*h));

	if (!h)
		return NULL;
	h->node = n;
	h->fd = fd;
	h->fd_buffered = -1;
	h->next_fd = -1;
	h->flags = flags;
	itab_ref(&fs->itab, n);
	pthread_mutex_lock(&n->mu);
	h->next = n->handles;
	n->handles = h;
	pthread_mutex_unlock(&n->mu);
	return h;
}

void handle_free(struct fs *fs, struct rhandle *h)
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
	itab_unref(&fs->itab, n);
	free(h);
}

int buffered_fd(struct rhandle *h)
{
	int fd;

	if (!(h->flags & O_DIRECT))
		return h->fd;
	pthread_mutex_lock(&h->node->mu);
	if (h->fd_buffered == -1 &&
	    backing_open_at(h->node->fd, h->flags & ~(O_DIRECT | O_TRUNC), &fd) == 0)
		h->fd_buffered = fd;
	fd = h->fd_buffered;
	pthread_mutex_unlock(&h->node->mu);
	return fd == -1 ? h->fd : fd;
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
		err = backing_open_at(n->fd, h->flags & ~O_TRUNC, &fd);
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
