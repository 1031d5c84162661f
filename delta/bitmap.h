/*
 * bitmap: a growable bit per 4 KiB block.  Pure (no I/O, no locking): the
 * owner serialises resizes; bitmap_set_range, bitmap_clear_range and
 * bitmap_test are atomic per word and may run concurrently.
 */
#ifndef RELOCFS_BITMAP_H
#define RELOCFS_BITMAP_H

#include <stdbool.h>
#include <stdint.h>

struct bitmap {
	uint64_t *w;
	uint64_t nbits;		/* bits addressable */
	uint64_t nwords;	/* words allocated */
};

/* Make room for nbits; new bits are clear; bits at and past nbits are
 * cleared when shrinking.  0 or -ENOMEM. */
int bitmap_resize(struct bitmap *b, uint64_t nbits);
void bitmap_free(struct bitmap *b);

bool bitmap_test(const struct bitmap *b, uint64_t i);
void bitmap_set_range(struct bitmap *b, uint64_t start, uint64_t count);
void bitmap_clear_range(struct bitmap *b, uint64_t start, uint64_t count);

/* first set (clear) bit at or after i, or b->nbits if none */
uint64_t bitmap_next_set(const struct bitmap *b, uint64_t i);
uint64_t bitmap_next_clear(const struct bitmap *b, uint64_t i);

/* true if every bit in [start, start+count) is set */
bool bitmap_all_set(const struct bitmap *b, uint64_t start, uint64_t count);

uint64_t bitmap_count(const struct bitmap *b);

#endif
