/*
 * table: transactions on the shared tables (see table.h).
 */
#include <stddef.h>

#include "fs/table.h"

static void barrier(void)
{
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
}

void tx_begin(struct fs_region *r)
{
	(void)r;	/* the log is empty between transactions */
}

void tx_set(struct fs_region *r, uint64_t *w, uint64_t v)
{
	uint64_t n = r->undo.n;

	if (n == FS_UNDO_MAX) {
		/* a transaction is a handful of words: a bigger one is a bug */
		__builtin_trap();
	}
	r->undo.e[n].off = (uint64_t)((char *)w - (char *)r);
	r->undo.e[n].old = *w;
	barrier();
	__atomic_store_n(&r->undo.n, n + 1, __ATOMIC_SEQ_CST);
	__atomic_store_n(w, v, __ATOMIC_SEQ_CST);
}

void tx_commit(struct fs_region *r)
{
	barrier();
	__atomic_store_n(&r->undo.n, 0, __ATOMIC_SEQ_CST);
}

unsigned tx_recover(struct fs_region *r)
{
	unsigned n = (unsigned)r->undo.n;

	if (n > FS_UNDO_MAX)
		n = FS_UNDO_MAX;
	for (unsigned i = n; i-- > 0;) {
		uint64_t *w = (uint64_t *)((char *)r + r->undo.e[i].off);

		__atomic_store_n(w, r->undo.e[i].old, __ATOMIC_SEQ_CST);
	}
	barrier();
	r->undo.n = 0;
	return n;
}
