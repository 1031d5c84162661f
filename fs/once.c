/*
 * once: request records, the carry ring and the FORGETs a dead worker left
 * (see once.h).
 */
#include <errno.h>
#include <string.h>

#include <linux/fuse.h>

#include "common/log.h"
#include "fs/fs_i.h"
#include "fs/once.h"

#ifndef FUSE_UNIQUE_RESEND
#define FUSE_UNIQUE_RESEND (1ULL << 63)
#endif

static __thread struct fs_region *t_region;
static __thread struct req_rec *t_rec;		/* this thread's record */
static __thread const struct req_rec *t_carried;	/* a resend's old record */

void once_bind(struct fs_region *r, int idx)
{
	t_region = r;
	t_rec = idx >= 0 && idx < FS_RECS_MAX ? &r->recs[idx] : NULL;
	t_carried = NULL;
}

struct req_rec *once_rec(void)
{
	return t_rec;
}

const struct req_rec *once_carried(void)
{
	return t_carried;
}

/* The newest carried record of (unique, opcode): a request resent after two
 * deaths may have a record from each worker, and the later one knows more. */
static const struct req_rec *carry_find(struct fs_region *r, uint64_t unique, uint32_t opcode)
{
	for (unsigned k = 1; k <= FS_CARRY_MAX; k++) {
		const struct req_rec *c = &r->carry[(r->carry_next - k) % FS_CARRY_MAX];

		if (c->state != REC_IDLE && c->unique == unique && c->opcode == opcode)
			return c;
	}
	return NULL;
}

void once_begin(const void *req, size_t len)
{
	const struct fuse_in_header *in = req;
	struct req_rec *rec = t_rec;

	t_carried = NULL;
	if (!rec || len < sizeof(*in))
		return;
	if (in->unique & FUSE_UNIQUE_RESEND)
		t_carried = carry_find(t_region, in->unique & ~FUSE_UNIQUE_RESEND, in->opcode);
	/* idle first (a reply that could not be written may have left it
	 * done): the stores below describe it only once a transaction moves it
	 * out of idle */
	__atomic_store_n(&rec->state, REC_IDLE, __ATOMIC_SEQ_CST);
	rec->unique = in->unique & ~FUSE_UNIQUE_RESEND;
	rec->opcode = in->opcode;
	rec->existed = 0;
	rec->error = 0;
	rec->node = 0;
	rec->fh = 0;
	rec->forgets_done = 0;
	/* a FORGET is never resent: it stays in the receive buffer until
	 * applied, and the next worker applies what is left */
	__atomic_store_n(&rec->forgets,
			 in->opcode == FUSE_FORGET || in->opcode == FUSE_BATCH_FORGET,
			 __ATOMIC_RELEASE);
}

void once_tx_done(struct fs_region *r, uint64_t node, uint64_t fh, int error)
{
	struct req_rec *rec = t_rec;

	if (!rec || rec->forgets)
		return;	/* no request (an engine thread), or a FORGET */
	if (node)
		tx_set(r, &rec->node, node);
	if (fh)
		tx_set(r, &rec->fh, fh);
	tx_set(r, &rec->error, (uint64_t)error);
	tx_set(r, &rec->state, REC_DONE);
}

void once_intent(struct fs *fs, bool existed)
{
	struct fs_region *r = fs->itab.r;
	struct req_rec *rec = t_rec;

	if (!rec)
		return;
	pthread_mutex_lock(&fs->itab.lock);
	tx_begin(r);
	tx_set(r, &rec->existed, existed);
	tx_set(r, &rec->node, 0);
	tx_set(r, &rec->fh, 0);
	tx_set(r, &rec->state, REC_INTENT);
	tx_commit(r);
	pthread_mutex_unlock(&fs->itab.lock);
}

void once_replied(uint64_t unique)
{
	struct req_rec *rec = t_rec;

	if (rec && !rec->forgets && (unique & ~FUSE_UNIQUE_RESEND) == rec->unique)
		__atomic_store_n(&rec->state, REC_IDLE, __ATOMIC_RELEASE);
}

/* Apply the entries of the FORGET or BATCH_FORGET in, from entry first on;
 * rec counts them (itab_forget) while it is this thread's record. */
static void apply_forgets(struct fs *fs, struct req_rec *rec, const struct fuse_in_header *in,
			  uint64_t first)
{
	struct req_rec *saved = t_rec;

	t_rec = rec;
	rec->forgets_done = first;
	__atomic_store_n(&rec->forgets, 1, __ATOMIC_RELEASE);
	if (in->opcode == FUSE_FORGET) {
		const struct fuse_forget_in *f = (const void *)(in + 1);
		struct rnode *n = itab_node(&fs->itab, in->nodeid);

		if (first == 0 && n)
			itab_forget(&fs->itab, n, f->nlookup);
	} else {
		const struct fuse_batch_forget_in *b = (const void *)(in + 1);
		const struct fuse_forget_one *one = (const void *)(b + 1);
		uint64_t count = b->count;

		if (sizeof(*in) + sizeof(*b) + count * sizeof(*one) > in->len)
			count = 0;	/* not a whole request: nothing to trust */
		for (uint64_t i = first; i < count; i++) {
			struct rnode *n = itab_node(&fs->itab, one[i].nodeid);

			if (n)
				itab_forget(&fs->itab, n, one[i].nlookup);
			else
				rec->forgets_done = i + 1;	/* an id we do not know */
		}
	}
	__atomic_store_n(&rec->forgets, 0, __ATOMIC_RELEASE);
	t_rec = saved;
}

/* The FORGET a dead worker's thread i had read and not wholly applied. */
static bool recover_forget(struct fs *fs, unsigned i)
{
	struct fs_region *r = fs->itab.r;
	struct fuse_in_header *in = rx_header(r, i);
	struct req_rec *rec = &r->recs[i];
	bool found = false;

	if (in->len >= sizeof(*in) && in->len <= FS_RX_BYTES &&
	    (in->opcode == FUSE_FORGET || in->opcode == FUSE_BATCH_FORGET)) {
		if (rec->unique != in->unique || rec->opcode != in->opcode) {
			apply_forgets(fs, rec, in, 0);	/* read, never begun */
			found = true;
		} else if (rec->forgets) {
			apply_forgets(fs, rec, in, rec->forgets_done);
			found = true;
		}
	}
	in->len = 0;
	return found;
}

void once_recover(struct fs *fs)
{
	struct fs_region *r = fs->itab.r;
	unsigned carried = 0, forgets = 0;

	for (unsigned i = 0; i < r->rx_hw && i < FS_THREADS_MAX; i++)
		forgets += recover_forget(fs, i);
	for (unsigned i = 0; i < FS_RECS_MAX; i++) {
		struct req_rec *rec = &r->recs[i];

		if (rec->state != REC_IDLE && !rec->forgets) {
			r->carry[r->carry_next++ % FS_CARRY_MAX] = *rec;
			carried++;
		}
		rec->state = REC_IDLE;
		rec->forgets = 0;
	}
	log_info("took over %u request record(s) and %u FORGET(s) from the last worker", carried,
		 forgets);
}

void once_done(struct fs *fs, int error)
{
	struct fs_region *r = fs->itab.r;

	if (!t_rec)
		return;
	pthread_mutex_lock(&fs->itab.lock);
	tx_begin(r);
	once_tx_done(r, 0, 0, error);
	tx_commit(r);
	pthread_mutex_unlock(&fs->itab.lock);
}

void once_forget_skipped(uint64_t done)
{
	if (t_rec && t_rec->forgets)
		__atomic_store_n(&t_rec->forgets_done, done, __ATOMIC_RELEASE);
}

void once_forgets_end(void)
{
	if (t_rec)
		__atomic_store_n(&t_rec->forgets, 0, __ATOMIC_RELEASE);
}
