/*
 * bitmap: see bitmap.h.  Words are 64 bits; bit i is word i/64, bit i%64.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "delta/bitmap.h"

#define WBITS 64u

int bitmap_resize(struct bitmap *b, uint64_t nbits)
{
	uint64_t need = nbits / WBITS + (nbits % WBITS != 0);	/* no wrap near UINT64_MAX */

	if (need > b->nwords) {
		uint64_t n = b->nwords ? b->nwords : 16;
		uint64_t *w;

		while (n < need)
			n *= 2;
		w = realloc(b->w, n * sizeof(*w));
		if (!w)
			return -ENOMEM;
		memset(w + b->nwords, 0, (n - b->nwords) * sizeof(*w));
		b->w = w;
		b->nwords = n;
	}
	if (nbits < b->nbits)
		bitmap_clear_range(b, nbits, b->nbits - nbits);
	b->nbits = nbits;
	return 0;
}

void bitmap_free(struct bitmap *b)
{
	free(b->w);
	memset(b, 0, sizeof(*b));
}

bool bitmap_test(const struct bitmap *b, uint64_t i)
{
	if (i >= b->nbits)
		return false;
	return (__atomic_load_n(&b->w[i / WBITS], __ATOMIC_ACQUIRE) >> (i % WBITS)) & 1;
}

static void range_op(struct bitmap *b, uint64_t start, uint64_t count, bool set)
{
	uint64_t end;

	if (start >= b->nbits)
		return;
	end = count > b->nbits - start ? b->nbits : start + count;
	while (start < end) {
		uint64_t wi = start / WBITS, bit = start % WBITS;
		uint64_t n = WBITS - bit < end - start ? WBITS - bit : end - start;
		uint64_t mask = (n == WBITS ? ~0ull : ((1ull << n) - 1)) << bit;

		if (set)
			__atomic_fetch_or(&b->w[wi], mask, __ATOMIC_RELEASE);
		else
			__atomic_fetch_and(&b->w[wi], ~mask, __ATOMIC_RELEASE);
		start += n;
	}
}

void bitmap_set_range(struct bitmap *b, uint64_t start, uint64_t count)
{
	range_op(b, start, count, true);
}

void bitmap_clear_range(struct bitmap *b, uint64_t start, uint64_t count)
{
	range_op(b, start, count, false);
}

static uint64_t next_bit(const struct bitmap *b, uint64_t i, bool want)
{
	while (i < b->nbits) {
		uint64_t w = __atomic_load_n(&b->w[i / WBITS], __ATOMIC_ACQUIRE);

		if (!want)
			w = ~w;
		w &= ~0ull << (i % WBITS);
		if (w) {
			uint64_t r = (i / WBITS) * WBITS + (uint64_t)__builtin_ctzll(w);

			return r < b->nbits ? r : b->nbits;
		}
		i = (i / WBITS + 1) * WBITS;
	}
	return b->nbits;
}

uint64_t bitmap_next_set(const struct bitmap *b, uint64_t i)
{
	return next_bit(b, i, true);
}

uint64_t bitmap_next_clear(const struct bitmap *b, uint64_t i)
{
	return next_bit(b, i, false);
}

bool bitmap_all_set(const struct bitmap *b, uint64_t start, uint64_t count)
{
	if (count == 0)
		return true;
	if (start >= b->nbits || count > b->nbits - start)
		return false;
	return next_bit(b, start, false) >= start + count;
}

uint64_t bitmap_count(const struct bitmap *b)
{
	uint64_t c = 0, full = b->nbits / WBITS;

	for (uint64_t i = 0; i < full; i++)
		c += (uint64_t)__builtin_popcountll(__atomic_load_n(&b->w[i], __ATOMIC_RELAXED));
	if (b->nbits % WBITS)
		c += (uint64_t)__builtin_popcountll(__atomic_load_n(&b->w[full], __ATOMIC_RELAXED) &
						    ((1ull << (b->nbits % WBITS)) - 1));
	return c;
}
