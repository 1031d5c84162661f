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
#include "common/log.h"

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
}

static void itab_insert_locked(struct itab *t, struct rnode *n)
{
	unsigned b = itab_hash(n->dev, n->ino);

	n->hnext = t->bucket[b];
	t->bucket[b] = n;
}

static void itab_remove_locked(struct itab *t, struct rnode *n)
{
	struct rnode **pp = &t->bucket[itab_hash(n->dev, n->ino)];

	for (; *pp; pp = &(*pp)->hnext) {
		if (*pp == n) {
			*pp = n->hnext;
			return;
		}
	}
}

int itab_init(struct itab *t, int root_fd)
{
	struct stat st;

	memset(t, 0, sizeof(*t));
	pthread_mutex_init(&t->lock, NULL);
	if (fstatat(root_fd, "", &st, AT_EMPTY_PATH) == -1)
		return -errno;
	node_init(&t->root, root_fd, &st);
	t->root.nlookup = 2;
	pthread_mutex_lock(&t->lock);
	itab_insert_locked(t, &t->root);
	pthread_mutex_unlock(&t->lock);
	return 0;
}

void itab_fini(struct itab *t)
{
	pthread_mutex_lock(&t->lock);
	for (unsigned b = 0; b < ITAB_BUCKETS; b++) {
		struct rnode *n = t->bucket[b];

		while (n) {
			struct rnode *next = n->hnext;

			if (n != &t->root) {
				close(n->fd);
				free(n);
			}
			n = next;
		}
		t->bucket[b] = NULL;
	}
	pthread_mutex_unlock(&t->lock);
}

struct rnode *itab_root(struct itab *t)
{
	return &t->root;
}

struct rnode *itab_node(struct itab *t, fuse_ino_t ino)
{
	if (ino == FUSE_ROOT_ID)
		return &t->root;
	return (struct rnode *)(uintptr_t)ino;
}

fuse_ino_t itab_nodeid(struct itab *t, const struct rnode *n)
{
	if (n == &t->root)
		return FUSE_ROOT_ID;
	return (fuse_ino_t)(uintptr_t)n;
}

struct rnode *itab_lookup(struct itab *t, int fd, const struct stat *st)
{
	struct rnode *n;

	pthread_mutex_lock(&t->lock);
	for (n = t->bucket[itab_hash(st->st_dev, st->st_ino)]; n; n = n->hnext)
		if (n->dev == st->st_dev && n->ino == st->st_ino)
			break;
	if (n) {
		n->nlookup++;
		pthread_mutex_unlock(&t->lock);
		close(fd);
		return n;
	}
	n = malloc(sizeof(*n));
	if (!n) {
		pthread_mutex_unlock(&t->lock);
		close(fd);
		return NULL;
	}
	node_init(n, fd, st);
	n->nlookup = 1;
	itab_insert_locked(t, n);
	pthread_mutex_unlock(&t->lock);
	return n;
}

static void node_maybe_free_locked(struct itab *t, struct rnode *n)
{
	if (n == &t->root || n->nlookup || n->refs)
		return;
	itab_remove_locked(t, n);
	close(n->fd);
	pthread_mutex_destroy(&n->mu);
	free(n);
}

void itab_forget(struct itab *t, struct rnode *n, uint64_t count)
{
	pthread_mutex_lock(&t->lock);
	if (count > n->nlookup) {
		log_warnx("forget of %llu references on a node that has %llu",
			  (unsigned long long)count, (unsigned long long)n->nlookup);
		count = n->nlookup;
	}
	n->nlookup -= count;
	node_maybe_free_locked(t, n);
	pthread_mutex_unlock(&t->lock);
}

void itab_ref(struct itab *t, struct rnode *n)
{
	pthread_mutex_lock(&t->lock);
	n->refs++;
	pthread_mutex_unlock(&t->lock);
}

void itab_unref(struct itab *t, struct rnode *n)
{
	pthread_mutex_lock(&t->lock);
	n->refs--;
	node_maybe_free_locked(t, n);
	pthread_mutex_unlock(&t->lock);
}

void itab_rekey(struct itab *t, struct rnode *n, int fd, const struct stat *st)
{
	int old;

	pthread_mutex_lock(&t->lock);
	itab_remove_locked(t, n);
	n->dev = st->st_dev;
	n->ino = st->st_ino;
	old = n->fd;
	n->fd = fd;
	itab_insert_locked(t, n);
	pthread_mutex_unlock(&t->lock);
	close(old);
}

void itab_foreach(struct itab *t, void (*fn)(struct rnode *n, void *arg), void *arg)
{
	struct rnode **all = NULL;
	size_t cnt = 0, cap = 0;

	pthread_mutex_lock(&t->lock);
	for (unsigned b = 0; b < ITAB_BUCKETS; b++) {
		for (struct rnode *n = t->bucket[b]; n; n = n->hnext) {
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
	pthread_mutex_unlock(&t->lock);
	for (size_t i = 0; i < cnt; i++) {
		fn(all[i], arg);
		itab_unref(t, all[i]);
	}
	free(all);
}
