/*
 * gate: holds requests to chosen nodes while the job engine switches them to
 * another backend (see fs.h).
 *
 * Holding: fs_hold() marks nodes held and waits until no request is in
 * flight on them.  A request that arrives for a held node is parked: its raw
 * bytes are copied and its fuse_req_t is dropped without a reply; no worker
 * thread waits.  fs_release() clears the marks and feeds the parked requests
 * back through libfuse, so they are served (on whatever backend is current
 * then) in the order they arrived.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <linux/fuse.h>

#include "common/clock.h"
#include "common/crashpoint.h"
#include "fs/fs_i.h"
#include "fs/once.h"

static bool is_held(struct gate *g, const struct rnode *n)
{
	return atomic_load(&g->hold_all) || __atomic_load_n(&n->held, __ATOMIC_SEQ_CST);
}

/*
 * Park the request being served while n is held.  The hold is checked again
 * under g->lock, which fs_release() holds while it clears the flags and
 * takes the list: a request is either on the list it takes or sees the hold
 * gone.  Returns false in that second case (the caller serves it now).
 */
static bool park(fuse_req_t req, struct gate *g, const struct rnode *n)
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
	pthread_mutex_lock(&g->lock);
	if (!is_held(g, n)) {
		pthread_mutex_unlock(&g->lock);
		free(p);
		return false;
	}
	*g->tail = p;
	g->tail = &p->next;
	pthread_mutex_unlock(&g->lock);
	fuse_reply_none(req);	/* frees req; the kernel still waits for the reply */
	return true;
}

/*
 * The inflight counts go up before the hold flags are read, and fs_hold()
 * sets the flags before it reads the counts, so a request either sees the
 * hold or is waited for (both sequentially consistent).
 */
bool gate_try_enter(fuse_req_t req, struct rnode *n)
{
	struct gate *g = &FS(req)->gate;

	atomic_fetch_add(&g->inflight_all, 1);
	__atomic_fetch_add(&n->inflight, 1, __ATOMIC_SEQ_CST);
	if (!is_held(g, n))
		return true;
	__atomic_fetch_sub(&n->inflight, 1, __ATOMIC_SEQ_CST);
	atomic_fetch_sub(&g->inflight_all, 1);
	return false;
}

bool gate_enter(fuse_req_t req, struct rnode *n)
{
	if (!n) {
		fuse_reply_err(req, ESTALE);
		return false;
	}
	while (!gate_try_enter(req, n)) {
		if (park(req, &FS(req)->gate, n))
			return false;
		/* released while we were about to park: enter again */
	}
	return true;
}

void gate_leave(fuse_req_t req, struct rnode *n)
{
	struct gate *g = &FS(req)->gate;

	__atomic_fetch_sub(&n->inflight, 1, __ATOMIC_SEQ_CST);
	atomic_fetch_sub(&g->inflight_all, 1);
}

int fs_hold(struct fs *fs, bool all, struct rnode **nodes, size_t cnt, uint64_t timeout_us)
{
	struct gate *g = &fs->gate;
	uint64_t deadline = now_us() + timeout_us;

	if (all)
		atomic_store(&g->hold_all, true);
	for (size_t i = 0; i < cnt; i++)
		__atomic_store_n(&nodes[i]->held, true, __ATOMIC_SEQ_CST);
	for (;;) {
		bool busy = all && atomic_load(&g->inflight_all) > 0;

		for (size_t i = 0; !busy && i < cnt; i++)
			busy = __atomic_load_n(&nodes[i]->inflight, __ATOMIC_SEQ_CST) > 0;
		if (!busy)
			return 0;
		if (now_us() > deadline) {
			fs_release(fs, all, nodes, cnt);
			return -ETIMEDOUT;
		}
		usleep(50);
	}
}

struct replay {
	struct fs *fs;
	struct parked *list;
};

/* A request record for a thread that replays parked requests (they may
 * change the tables like any request): one of those after the workers'. */
static int rec_acquire(struct fs *fs)
{
	int idx = -1;

	pthread_mutex_lock(&fs->rec_lock);
	for (unsigned i = 0; i < FS_REPLAY_RECS; i++) {
		if (!(fs->recs_busy & (1ull << i))) {
			fs->recs_busy |= 1ull << i;
			idx = (int)(fs->cfg.threads + i);
			break;
		}
	}
	pthread_mutex_unlock(&fs->rec_lock);
	return idx;
}

static void rec_release(struct fs *fs, int idx)
{
	if (idx < 0)
		return;
	pthread_mutex_lock(&fs->rec_lock);
	fs->recs_busy &= ~(1ull << (idx - (int)fs->cfg.threads));
	pthread_mutex_unlock(&fs->rec_lock);
}

static void replay(struct fs *fs, struct parked *list)
{
	const struct fuse_buf *saved = cur_buf;
	int rec = rec_acquire(fs);
	struct parked *p;

	once_bind(fs->itab.r, rec);
	while ((p = list)) {
		struct fuse_buf fb = { .size = p->len, .mem = p->data };

		list = p->next;
		cur_buf = &fb;
		once_begin(p->data, p->len);
		fuse_session_process_buf(fs->se, &fb);
		free(p);
	}
	once_bind(fs->itab.r, -1);
	rec_release(fs, rec);
	cur_buf = saved;
	atomic_fetch_sub(&fs->gate.replays, 1);
}

static void *replay_thread(void *arg)
{
	struct replay *r = arg;

	replay(r->fs, r->list);
	free(r);
	io_buf_release();
	return NULL;
}

size_t fs_release(struct fs *fs, bool all, struct rnode **nodes, size_t cnt)
{
	struct gate *g = &fs->gate;
	struct parked *list, *p;
	uint64_t now = now_us(), max_us = 0;
	size_t replayed = 0;
	struct replay *r;
	pthread_t t;

	/* the flags go down and the list is taken under the lock that park()
	 * checks the flags under: no request is left behind on the list */
	pthread_mutex_lock(&g->lock);
	for (size_t i = 0; i < cnt; i++)
		__atomic_store_n(&nodes[i]->held, false, __ATOMIC_SEQ_CST);
	if (all)
		atomic_store(&g->hold_all, false);
	list = g->head;
	g->head = NULL;
	g->tail = &g->head;
	pthread_mutex_unlock(&g->lock);

	for (p = list; p; p = p->next) {
		if (now - p->since_us > max_us)
			max_us = now - p->since_us;
		replayed++;
	}
	g->last_max_us = max_us;
	if (!list)
		return 0;
	atomic_fetch_add(&g->replays, 1);
	/* served by a thread of their own, in the order they came: the caller
	 * (a cutover) still has work to do, and a replayed flush may wait for
	 * it (the flush barrier) */
	r = malloc(sizeof(*r));
	if (r) {
		r->fs = fs;
		r->list = list;
		if (pthread_create(&t, NULL, replay_thread, r) == 0) {
			pthread_detach(t);
			return replayed;
		}
		free(r);
	}
	replay(fs, list);
	return replayed;
}

uint64_t fs_last_hold_max_us(struct fs *fs)
{
	return fs->gate.last_max_us;
}

long fs_busy(void *arg)
{
	struct fs *fs = arg;

	return atomic_load(&fs->gate.inflight_all);
}
