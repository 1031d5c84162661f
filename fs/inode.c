/*
 * inode: node table (see inode.h).  The slots are in the shared region; the
 * worker keeps a hash of (dev, ino) to its struct rnode, and an array from
 * slot index to it.  Node ids are slot + 1 (the root is FUSE_ROOT_ID, slot
 * 0).  Does not know about migrations beyond the pointer it keeps.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"
#include "fs/inode.h"
#include "fs/once.h"
#include "target/target.h"

static unsigned itab_hash(dev_t dev, ino_t ino)
{
	uint64_t h = (uint64_t)ino * 0x9E3779B97F4A7C15ull ^ (uint64_t)dev;

	return (unsigned)(h >> 40) % ITAB_BUCKETS;
}

static struct rnode *node_new(struct itab *t, uint32_t slot)
{
	struct node_slot *s = &t->r->nodes[slot];
	struct rnode *n = calloc(1, sizeof(*n));

	if (!n)
		return NULL;
	n->slot = slot;
	n->dev = (dev_t)s->dev;
	n->ino = (ino_t)s->ino;
	n->fd = (int)s->fd;
	n->type = (mode_t)s->type;
	pthread_mutex_init(&n->mu, NULL);
	return n;
}

static void node_destroy(struct rnode *n)
{
	target_put(n->target);
	pthread_mutex_destroy(&n->mu);
	free(n);
}

static void hash_insert(struct itab *t, struct rnode *n)
{
	unsigned b = itab_hash(n->dev, n->ino);

	n->hnext = t->bucket[b];
	t->bucket[b] = n;
}

static void hash_remove(struct itab *t, struct rnode *n)
{
	struct rnode **pp = &t->bucket[itab_hash(n->dev, n->ino)];

	for (; *pp; pp = &(*pp)->hnext) {
		if (*pp == n) {
			*pp = n->hnext;
			return;
		}
	}
}

int itab_init(struct itab *t, struct fs_region *r, int root_fd, bool adopt)
{
	struct stat st;
	struct rnode *n;

	memset(t, 0, sizeof(*t));
	pthread_mutex_init(&t->lock, NULL);
	t->r = r;
	t->free_hint = 1;
	t->by_slot = calloc(FS_NODES_MAX, sizeof(*t->by_slot));
	if (!t->by_slot)
		return -ENOMEM;
	if (!adopt) {
		struct node_slot *s = &r->nodes[0];

		if (fstatat(root_fd, "", &st, AT_EMPTY_PATH) == -1)
			return -errno;
		s->nlookup = 2;
		s->dev = st.st_dev;
		s->ino = st.st_ino;
		s->fd = (uint64_t)root_fd;
		s->type = st.st_mode & S_IFMT;
		s->state = SLOT_USED;
		r->nodes_hw = 1;
	} else if (root_fd != -1) {
		close(root_fd);	/* the root slot's descriptor serves */
	}
	for (uint64_t i = 0; i < r->nodes_hw && i < FS_NODES_MAX; i++) {
		if (r->nodes[i].state != SLOT_USED)
			continue;
		n = node_new(t, (uint32_t)i);
		if (!n)
			return -ENOMEM;
		t->by_slot[i] = n;
		hash_insert(t, n);
	}
	if (!t->by_slot[0])
		return -EINVAL;	/* a region without a root: not ours */
	return 0;
}

void itab_fini(struct itab *t)
{
	if (!t->by_slot)
		return;
	pthread_mutex_lock(&t->lock);
	for (uint64_t i = 0; i < t->r->nodes_hw && i < FS_NODES_MAX; i++) {
		if (t->by_slot[i])
			node_destroy(t->by_slot[i]);
	}
	free(t->by_slot);
	t->by_slot = NULL;
	pthread_mutex_unlock(&t->lock);
}

struct rnode *itab_root(struct itab *t)
{
	return t->by_slot[0];
}

struct rnode *itab_node(struct itab *t, fuse_ino_t ino)
{
	if (ino == 0 || ino > FS_NODES_MAX)
		return NULL;
	return __atomic_load_n(&t->by_slot[ino - 1], __ATOMIC_ACQUIRE);
}

fuse_ino_t itab_nodeid(struct itab *t, const struct rnode *n)
{
	(void)t;
	return (fuse_ino_t)n->slot + 1;
}

/* A free slot, or -1 when the table is full.  Caller holds the lock. */
static int64_t free_slot(struct itab *t)
{
	struct fs_region *r = t->r;

	for (uint64_t i = t->free_hint; i < r->nodes_hw; i++) {
		if (r->nodes[i].state == SLOT_FREE) {
			t->free_hint = i + 1;
			return (int64_t)i;
		}
	}
	t->free_hint = r->nodes_hw + 1;
	return r->nodes_hw < FS_NODES_MAX ? (int64_t)r->nodes_hw : -1;
}

struct rnode *itab_lookup(struct itab *t, int fd, const struct stat *st)
{
	struct fs_region *r = t->r;
	struct node_slot *s;
	struct rnode *n;
	int64_t slot;

	pthread_mutex_lock(&t->lock);
	for (n = t->bucket[itab_hash(st->st_dev, st->st_ino)]; n; n = n->hnext)
		if (n->dev == st->st_dev && n->ino == st->st_ino)
			break;
	if (n) {
		s = &r->nodes[n->slot];
		if (!s->nlookup)	/* held by the daemon alone until now */
			__atomic_store_n(&n->kmtime_fresh, true, __ATOMIC_RELEASE);
		tx_begin(r);
		tx_set(r, &s->nlookup, s->nlookup + 1);
		once_tx_done(r, (uint64_t)n->slot + 1, 0, 0);
		tx_commit(r);
		pthread_mutex_unlock(&t->lock);
		close(fd);
		return n;
	}
	slot = free_slot(t);
	if (slot < 0) {
		static long last;

		pthread_mutex_unlock(&t->lock);
		if (log_ratelimited(&last))
			log_warnx("the node table is full (%u nodes)", FS_NODES_MAX);
		close(fd);
		return NULL;
	}
	s = &r->nodes[slot];
	tx_begin(r);
	tx_set(r, &s->nlookup, 1);
	tx_set(r, &s->dev, st->st_dev);
	tx_set(r, &s->ino, st->st_ino);
	tx_set(r, &s->fd, (uint64_t)fd);
	tx_set(r, &s->type, st->st_mode & S_IFMT);
	tx_set(r, &s->state, SLOT_USED);
	if ((uint64_t)slot == r->nodes_hw)
		tx_set(r, &r->nodes_hw, (uint64_t)slot + 1);
	once_tx_done(r, (uint64_t)slot + 1, 0, 0);
	n = node_new(t, (uint32_t)slot);
	if (!n) {
		/* nothing of it may stand: undo by hand, as a dead worker's
		 * transaction would be */
		tx_recover(r);
		pthread_mutex_unlock(&t->lock);
		close(fd);
		return NULL;
	}
	tx_commit(r);
	n->kmtime_fresh = true;
	hash_insert(t, n);
	__atomic_store_n(&t->by_slot[slot], n, __ATOMIC_RELEASE);
	pthread_mutex_unlock(&t->lock);
	return n;
}

/* Free n if nothing refers to it; returns the descriptor to close after
 * the caller's transaction commits, or -1.  Caller holds the lock and has a
 * transaction open. */
static int maybe_free_locked(struct itab *t, struct rnode *n)
{
	struct node_slot *s = &t->r->nodes[n->slot];
	int fd = n->fd;

	if (n->slot == 0 || s->nlookup || n->refs)
		return -1;
	tx_set(t->r, &s->state, SLOT_FREE);
	tx_set(t->r, &s->fd, NO_FD);
	return fd;
}

/* After the commit that freed n: forget it in the worker. */
static void drop_node(struct itab *t, struct rnode *n)
{
	hash_remove(t, n);
	__atomic_store_n(&t->by_slot[n->slot], NULL, __ATOMIC_RELEASE);
	if (n->slot < t->free_hint)
		t->free_hint = n->slot;
	node_destroy(n);
}

void itab_forget(struct itab *t, struct rnode *n, uint64_t count)
{
	struct fs_region *r = t->r;
	struct node_slot *s = &r->nodes[n->slot];
	struct req_rec *rec = once_rec();
	int fd;

	pthread_mutex_lock(&t->lock);
	if (count > s->nlookup) {
		log_warnx("forget of %llu references on a node that has %llu",
			  (unsigned long long)count, (unsigned long long)s->nlookup);
		count = s->nlookup;
	}
	tx_begin(r);
	tx_set(r, &s->nlookup, s->nlookup - count);
	/* a FORGET in progress counts the entries it applied */
	if (rec && rec->forgets)
		tx_set(r, &rec->forgets_done, rec->forgets_done + 1);
	fd = maybe_free_locked(t, n);
	tx_commit(r);
	if (fd != -1)
		drop_node(t, n);
	pthread_mutex_unlock(&t->lock);
	if (fd != -1)
		close(fd);
}

void itab_ref(struct itab *t, struct rnode *n)
{
	pthread_mutex_lock(&t->lock);
	n->refs++;
	pthread_mutex_unlock(&t->lock);
}

void itab_unref(struct itab *t, struct rnode *n)
{
	int fd;

	pthread_mutex_lock(&t->lock);
	n->refs--;
	tx_begin(t->r);
	fd = maybe_free_locked(t, n);
	tx_commit(t->r);
	if (fd != -1)
		drop_node(t, n);
	pthread_mutex_unlock(&t->lock);
	if (fd != -1)
		close(fd);
}

void itab_rekey(struct itab *t, struct rnode *n, int fd, const struct stat *st)
{
	struct fs_region *r = t->r;
	struct node_slot *s = &r->nodes[n->slot];
	int old;

	pthread_mutex_lock(&t->lock);
	hash_remove(t, n);
	tx_begin(r);
	tx_set(r, &s->dev, st->st_dev);
	tx_set(r, &s->ino, st->st_ino);
	tx_set(r, &s->fd, (uint64_t)fd);
	tx_commit(r);
	n->dev = st->st_dev;
	n->ino = st->st_ino;
	old = n->fd;
	n->fd = fd;
	hash_insert(t, n);
	pthread_mutex_unlock(&t->lock);
	close(old);
}

void itab_foreach(struct itab *t, void (*fn)(struct rnode *n, void *arg), void *arg)
{
	struct rnode **all = NULL;
	size_t cnt = 0, cap = 0;

	pthread_mutex_lock(&t->lock);
	for (uint64_t i = 0; i < t->r->nodes_hw && i < FS_NODES_MAX; i++) {
		struct rnode *n = t->by_slot[i];

		if (!n)
			continue;
		if (cnt == cap) {
			size_t ncap = cap ? cap * 2 : 256;
			struct rnode **na = realloc(all, ncap * sizeof(*na));

			if (!na)
				break;
			all = na;
			cap = ncap;
		}
		n->refs++;
		all[cnt++] = n;
	}
	pthread_mutex_unlock(&t->lock);
	for (size_t i = 0; i < cnt; i++) {
		fn(all[i], arg);
		itab_unref(t, all[i]);
	}
	free(all);
}

size_t itab_fds(struct itab *t, int *keep, size_t max)
{
	size_t k = 0;

	for (uint64_t i = 0; i < t->r->nodes_hw && i < FS_NODES_MAX && k < max; i++)
		if (t->r->nodes[i].state == SLOT_USED && t->r->nodes[i].fd != NO_FD)
			keep[k++] = (int)t->r->nodes[i].fd;
	return k;
}

uint64_t itab_count(struct itab *t)
{
	uint64_t c = 0;

	pthread_mutex_lock(&t->lock);
	for (uint64_t i = 0; i < t->r->nodes_hw && i < FS_NODES_MAX; i++)
		c += t->by_slot[i] != NULL;
	pthread_mutex_unlock(&t->lock);
	return c;
}
