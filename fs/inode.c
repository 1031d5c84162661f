/*
 * inode: node table (see inode.h).  A fixed-size hash of (dev, ino) with
 * chaining; nodeids handed to the kernel are node pointers, the root is
 * FUSE_ROOT_ID.  Does not know about migrations beyond the pointer it keeps.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fs/inode.h"
#include "fs/log.h"

#define ITAB_BUCKETS 4096

static struct {
	pthread_mutex_t lock;
	struct rnode *bucket[ITAB_BUCKETS];	/* protected by lock */
	struct rnode root;
} itab = { .lock = PTHREAD_MUTEX_INITIALIZER };

static unsigned itab_hash(dev_t dev, ino_t ino)
{
	uint64_t h = (uint64_t)ino * 0x9E3779B97F4A7C15ull ^ (uint64_t)dev;

	return (unsigned)(h >> 40) % ITAB_BUCKETS;
}

static void node_init(struct rnode *n, int fd, const struct stat *st)
{
	memset(n, 0, sizeof(*n));
	n->fd = fd;
	n->dev = st->st_dev;
	n->ino = st->st_ino;
	n->type = st->st_mode & S_IFMT;
	pthread_mutex_init(&n->mu, NULL);
	pthread_cond_init(&n->cond, NULL);
}

static void itab_insert_locked(struct rnode *n)
{
	unsigned b = itab_hash(n->dev, n->ino);

	n->hnext = itab.bucket[b];
	itab.bucket[b] = n;
}

static void itab_remove_locked(struct rnode *n)
{
	struct rnode **pp = &itab.bucket[itab_hash(n->dev, n->ino)];

	for (; *pp; pp = &(*pp)->hnext) {
		if (*pp == n) {
			*pp = n->hnext;
			return;
		}
	}
}

int itab_init(int root_fd)
{
	struct stat st;

	if (fstatat(root_fd, "", &st, AT_EMPTY_PATH) == -1)
		return -errno;
	node_init(&itab.root, root_fd, &st);
	itab.root.nlookup = 2;
	pthread_mutex_lock(&itab.lock);
	itab_insert_locked(&itab.root);
	pthread_mutex_unlock(&itab.lock);
	return 0;
}

void itab_fini(void)
{
	pthread_mutex_lock(&itab.lock);
	for (unsigned b = 0; b < ITAB_BUCKETS; b++) {
		struct rnode *n = itab.bucket[b];

		while (n) {
			struct rnode *next = n->hnext;

			if (n != &itab.root) {
				close(n->fd);
				free(n);
			}
			n = next;
		}
		itab.bucket[b] = NULL;
	}
	pthread_mutex_unlock(&itab.lock);
}

struct rnode *itab_root(void)
{
	return &itab.root;
}

struct rnode *itab_node(fuse_ino_t ino)
{
	if (ino == FUSE_ROOT_ID)
		return &itab.root;
	return (struct rnode *)(uintptr_t)ino;
}

fuse_ino_t itab_nodeid(const struct rnode *n)
{
	if (n == &itab.root)
		return FUSE_ROOT_ID;
	return (fuse_ino_t)(uintptr_t)n;
}

struct rnode *itab_lookup(int fd, const struct stat *st)
{
	struct rnode *n;

	pthread_mutex_lock(&itab.lock);
	for (n = itab.bucket[itab_hash(st->st_dev, st->st_ino)]; n; n = n->hnext)
		if (n->dev == st->st_dev && n->ino == st->st_ino)
			break;
	if (n) {
		n->nlookup++;
		pthread_mutex_unlock(&itab.lock);
		close(fd);
		return n;
	}
	n = malloc(sizeof(*n));
	if (!n) {
		pthread_mutex_unlock(&itab.lock);
		close(fd);
		return NULL;
	}
	node_init(n, fd, st);
	n->nlookup = 1;
	itab_insert_locked(n);
	pthread_mutex_unlock(&itab.lock);
	return n;
}

static void node_maybe_free_locked(struct rnode *n)
{
	if (n == &itab.root || n->nlookup || n->refs)
		return;
	itab_remove_locked(n);
	close(n->fd);
	pthread_mutex_destroy(&n->mu);
	pthread_cond_destroy(&n->cond);
	free(n);
}

void itab_forget(struct rnode *n, uint64_t count)
{
	pthread_mutex_lock(&itab.lock);
	if (count > n->nlookup) {
		log_warnx("forget of %llu references on a node that has %llu",
			  (unsigned long long)count, (unsigned long long)n->nlookup);
		count = n->nlookup;
	}
	n->nlookup -= count;
	node_maybe_free_locked(n);
	pthread_mutex_unlock(&itab.lock);
}

void itab_ref(struct rnode *n)
{
	pthread_mutex_lock(&itab.lock);
	n->refs++;
	pthread_mutex_unlock(&itab.lock);
}

void itab_unref(struct rnode *n)
{
	pthread_mutex_lock(&itab.lock);
	n->refs--;
	node_maybe_free_locked(n);
	pthread_mutex_unlock(&itab.lock);
}

void itab_rekey(struct rnode *n, int fd, const struct stat *st)
{
	int old;

	pthread_mutex_lock(&itab.lock);
	itab_remove_locked(n);
	n->dev = st->st_dev;
	n->ino = st->st_ino;
	old = n->fd;
	n->fd = fd;
	itab_insert_locked(n);
	pthread_mutex_unlock(&itab.lock);
	close(old);
}

void itab_foreach(void (*fn)(struct rnode *n, void *arg), void *arg)
{
	struct rnode **all = NULL;
	size_t cnt = 0, cap = 0;

	pthread_mutex_lock(&itab.lock);
	for (unsigned b = 0; b < ITAB_BUCKETS; b++) {
		for (struct rnode *n = itab.bucket[b]; n; n = n->hnext) {
			if (cnt == cap) {
				size_t ncap = cap ? cap * 2 : 256;
				struct rnode **na = realloc(all, ncap * sizeof(*na));

				if (!na)
					goto out;
				all = na;
				cap = ncap;
			}
			n->refs++;
			all[cnt++] = n;
		}
	}
out:
	pthread_mutex_unlock(&itab.lock);
	for (size_t i = 0; i < cnt; i++) {
		fn(all[i], arg);
		itab_unref(all[i]);
	}
	free(all);
}

void fd_path(int fd, char buf[64])
{
	snprintf(buf, 64, "/proc/self/fd/%d", fd);
}
