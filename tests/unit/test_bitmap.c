// modules: delta/bitmap.c
/*
 * test_bitmap: the block bitmap against its header.
 *
 *  - set/clear ranges touch exactly the range, are clamped to nbits and never
 *    wrap on huge counts;
 *  - next_set/next_clear across word boundaries and whole empty/full words,
 *    never reporting the padding bits past nbits;
 *  - all_set and count on partial last words;
 *  - resize: growing keeps bits and shows new bits clear, shrinking clears
 *    what is cut off, a size whose word count overflows is refused;
 *  - a seeded random sequence of operations against a bool-array model;
 *  - concurrent set_range on bits sharing words loses no bit.
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "delta/bitmap.h"

/* a huge allocation that fails must return NULL, not abort, under ASan/TSan */
const char *__asan_default_options(void);
const char *__asan_default_options(void)
{
	return "allocator_may_return_null=1";
}

const char *__tsan_default_options(void);
const char *__tsan_default_options(void)
{
	return "allocator_may_return_null=1";
}

static struct bitmap make(uint64_t nbits)
{
	struct bitmap b = { 0 };

	assert_int_equal(bitmap_resize(&b, nbits), 0);
	assert_int_equal(b.nbits, nbits);
	return b;
}

/* ----------------------------------------------------------- set / clear */

static void test_new_bitmap_has_no_bit_set(void **state)
{
	struct bitmap b = make(1000);

	assert_int_equal(bitmap_count(&b), 0);
	assert_int_equal(bitmap_next_set(&b, 0), 1000);
	assert_int_equal(bitmap_next_clear(&b, 0), 0);
	for (uint64_t i = 0; i < 1000; i++)
		assert_false(bitmap_test(&b, i));
	bitmap_free(&b);
}

static void test_set_range_sets_exactly_the_range(void **state)
{
	struct bitmap b = make(300);

	bitmap_set_range(&b, 70, 130);	/* crosses words 1, 2 and 3 */
	for (uint64_t i = 0; i < 300; i++)
		assert_int_equal(bitmap_test(&b, i), i >= 70 && i < 200);
	assert_int_equal(bitmap_count(&b), 130);
	bitmap_free(&b);
}

static void test_set_range_of_one_whole_aligned_word(void **state)
{
	struct bitmap b = make(192);

	bitmap_set_range(&b, 64, 64);
	assert_false(bitmap_test(&b, 63));
	assert_true(bitmap_test(&b, 64));
	assert_true(bitmap_test(&b, 127));
	assert_false(bitmap_test(&b, 128));
	assert_int_equal(bitmap_count(&b), 64);
	bitmap_free(&b);
}

static void test_clear_range_clears_exactly_the_range(void **state)
{
	struct bitmap b = make(300);

	bitmap_set_range(&b, 0, 300);
	bitmap_clear_range(&b, 63, 66);
	for (uint64_t i = 0; i < 300; i++)
		assert_int_equal(bitmap_test(&b, i), i < 63 || i >= 129);
	assert_int_equal(bitmap_count(&b), 300 - 66);
	bitmap_free(&b);
}

static void test_set_range_of_zero_bits_changes_nothing(void **state)
{
	struct bitmap b = make(128);

	bitmap_set_range(&b, 10, 0);
	assert_int_equal(bitmap_count(&b), 0);
	bitmap_free(&b);
}

static void test_set_range_is_clamped_to_nbits(void **state)
{
	struct bitmap b = make(100);

	bitmap_set_range(&b, 90, 1000);
	assert_int_equal(bitmap_count(&b), 10);
	/* the padding of the last word stays clear: growing shows it clear */
	assert_int_equal(bitmap_resize(&b, 128), 0);
	assert_int_equal(bitmap_next_set(&b, 100), 128);
	assert_int_equal(bitmap_count(&b), 10);
	bitmap_free(&b);
}

static void test_set_range_with_a_count_that_would_wrap_stops_at_nbits(void **state)
{
	struct bitmap b = make(200);

	bitmap_set_range(&b, 5, UINT64_MAX);
	assert_int_equal(bitmap_count(&b), 195);
	assert_false(bitmap_test(&b, 4));
	bitmap_clear_range(&b, 150, UINT64_MAX - 100);
	assert_int_equal(bitmap_count(&b), 145);
	bitmap_free(&b);
}

static void test_range_ops_starting_past_the_end_do_nothing(void **state)
{
	struct bitmap b = make(100);

	bitmap_set_range(&b, 100, 10);
	bitmap_set_range(&b, UINT64_MAX, 10);
	assert_int_equal(bitmap_count(&b), 0);
	bitmap_set_range(&b, 0, 100);
	bitmap_clear_range(&b, 100, 10);
	assert_int_equal(bitmap_count(&b), 100);
	bitmap_free(&b);
}

static void test_test_past_the_end_is_false(void **state)
{
	struct bitmap b = make(64);

	bitmap_set_range(&b, 0, 64);
	assert_true(bitmap_test(&b, 63));
	assert_false(bitmap_test(&b, 64));
	assert_false(bitmap_test(&b, UINT64_MAX));
	bitmap_free(&b);
}

static void test_empty_bitmap_answers_without_storage(void **state)
{
	struct bitmap b = { 0 };

	assert_false(bitmap_test(&b, 0));
	assert_int_equal(bitmap_next_set(&b, 0), 0);
	assert_int_equal(bitmap_next_clear(&b, 0), 0);
	assert_int_equal(bitmap_count(&b), 0);
	assert_true(bitmap_all_set(&b, 0, 0));
	assert_false(bitmap_all_set(&b, 0, 1));
	bitmap_set_range(&b, 0, 10);
	bitmap_free(&b);
}

/* ------------------------------------------------------------ next_* */

static void test_next_set_skips_whole_empty_words(void **state)
{
	struct bitmap b = make(64 * 20);

	bitmap_set_range(&b, 64 * 17 + 5, 1);
	assert_int_equal(bitmap_next_set(&b, 0), 64 * 17 + 5);
	assert_int_equal(bitmap_next_set(&b, 64 * 17 + 5), 64 * 17 + 5);
	assert_int_equal(bitmap_next_set(&b, 64 * 17 + 6), 64 * 20);
	bitmap_free(&b);
}

static void test_next_set_ignores_bits_before_the_start_in_the_same_word(void **state)
{
	struct bitmap b = make(256);

	bitmap_set_range(&b, 64, 10);
	bitmap_set_range(&b, 120, 1);
	assert_int_equal(bitmap_next_set(&b, 74), 120);
	assert_int_equal(bitmap_next_set(&b, 121), 256);
	bitmap_free(&b);
}

static void test_next_set_finds_bit_63_and_64(void **state)
{
	struct bitmap b = make(256);

	bitmap_set_range(&b, 63, 2);
	assert_int_equal(bitmap_next_set(&b, 0), 63);
	assert_int_equal(bitmap_next_set(&b, 64), 64);
	assert_int_equal(bitmap_next_clear(&b, 63), 65);
	bitmap_free(&b);
}

static void test_next_set_from_past_the_end_returns_nbits(void **state)
{
	struct bitmap b = make(100);

	bitmap_set_range(&b, 0, 100);
	assert_int_equal(bitmap_next_set(&b, 100), 100);
	assert_int_equal(bitmap_next_set(&b, 5000), 100);
	assert_int_equal(bitmap_next_clear(&b, UINT64_MAX), 100);
	bitmap_free(&b);
}

static void test_next_clear_skips_whole_full_words(void **state)
{
	struct bitmap b = make(64 * 20);

	bitmap_set_range(&b, 0, 64 * 20);
	bitmap_clear_range(&b, 64 * 13 + 40, 1);
	assert_int_equal(bitmap_next_clear(&b, 0), 64 * 13 + 40);
	assert_int_equal(bitmap_next_clear(&b, 64 * 13 + 41), 64 * 20);
	bitmap_free(&b);
}

static void test_next_clear_does_not_report_padding_past_nbits(void **state)
{
	struct bitmap b = make(100);	/* word 1 has 28 bits of padding */

	bitmap_set_range(&b, 0, 100);
	assert_int_equal(bitmap_next_clear(&b, 0), 100);
	assert_int_equal(bitmap_next_clear(&b, 99), 100);
	bitmap_free(&b);
}

/* ------------------------------------------------------- all_set / count */

static void test_all_set_is_true_only_when_every_bit_is_set(void **state)
{
	struct bitmap b = make(300);

	bitmap_set_range(&b, 50, 200);
	assert_true(bitmap_all_set(&b, 50, 200));
	assert_true(bitmap_all_set(&b, 100, 1));
	assert_false(bitmap_all_set(&b, 49, 2));
	assert_false(bitmap_all_set(&b, 249, 2));
	bitmap_clear_range(&b, 130, 1);
	assert_false(bitmap_all_set(&b, 50, 200));
	assert_true(bitmap_all_set(&b, 50, 80));
	bitmap_free(&b);
}

static void test_all_set_of_an_empty_range_is_true(void **state)
{
	struct bitmap b = make(10);

	assert_true(bitmap_all_set(&b, 3, 0));
	assert_true(bitmap_all_set(&b, 1000, 0));
	bitmap_free(&b);
}

static void test_all_set_of_a_range_reaching_past_the_end_is_false(void **state)
{
	struct bitmap b = make(100);

	bitmap_set_range(&b, 0, 100);
	assert_true(bitmap_all_set(&b, 0, 100));
	assert_false(bitmap_all_set(&b, 0, 101));
	assert_false(bitmap_all_set(&b, 100, 1));
	assert_false(bitmap_all_set(&b, 10, UINT64_MAX));
	assert_false(bitmap_all_set(&b, UINT64_MAX, 2));
	bitmap_free(&b);
}

static void test_count_counts_a_partial_last_word(void **state)
{
	struct bitmap b = make(130);

	bitmap_set_range(&b, 0, 130);
	assert_int_equal(bitmap_count(&b), 130);
	bitmap_clear_range(&b, 128, 1);
	assert_int_equal(bitmap_count(&b), 129);
	bitmap_free(&b);
}

/* ---------------------------------------------------------------- resize */

static void test_grow_keeps_old_bits_and_shows_new_bits_clear(void **state)
{
	struct bitmap b = make(70);

	bitmap_set_range(&b, 0, 70);
	assert_int_equal(bitmap_resize(&b, 100000), 0);
	assert_int_equal(b.nbits, 100000);
	assert_true(bitmap_all_set(&b, 0, 70));
	assert_int_equal(bitmap_next_set(&b, 70), 100000);
	assert_int_equal(bitmap_count(&b), 70);
	bitmap_set_range(&b, 99999, 1);
	assert_true(bitmap_test(&b, 99999));
	bitmap_free(&b);
}

static void test_shrink_clears_the_cut_bits_so_growing_again_shows_them_clear(void **state)
{
	struct bitmap b = make(1000);

	bitmap_set_range(&b, 0, 1000);
	assert_int_equal(bitmap_resize(&b, 77), 0);
	assert_int_equal(bitmap_count(&b), 77);
	assert_false(bitmap_test(&b, 77));
	assert_int_equal(bitmap_resize(&b, 1000), 0);
	assert_int_equal(bitmap_count(&b), 77);
	assert_int_equal(bitmap_next_set(&b, 77), 1000);
	assert_int_equal(bitmap_next_clear(&b, 0), 77);
	bitmap_free(&b);
}

static void test_shrink_to_zero_then_grow_shows_all_clear(void **state)
{
	struct bitmap b = make(500);

	bitmap_set_range(&b, 0, 500);
	assert_int_equal(bitmap_resize(&b, 0), 0);
	assert_int_equal(bitmap_count(&b), 0);
	assert_int_equal(bitmap_resize(&b, 500), 0);
	assert_int_equal(bitmap_count(&b), 0);
	bitmap_free(&b);
}

static void test_grow_one_bit_at_a_time_across_many_reallocations(void **state)
{
	struct bitmap b = { 0 };

	for (uint64_t n = 1; n <= 5000; n++) {
		assert_int_equal(bitmap_resize(&b, n), 0);
		assert_false(bitmap_test(&b, n - 1));
		bitmap_set_range(&b, n - 1, 1);
		if (n % 1000 == 0)
			assert_int_equal(bitmap_count(&b), n);
	}
	assert_true(bitmap_all_set(&b, 0, 5000));
	bitmap_free(&b);
}

static void test_resize_to_a_size_whose_word_count_overflows_fails(void **state)
{
	/* (nbits + 63) / 64 must not wrap to 0 words: either memory for the
	 * bits or -ENOMEM, never success with no storage behind the bits */
	struct bitmap b = make(64);

	assert_int_equal(bitmap_resize(&b, UINT64_MAX - 10), -ENOMEM);
	assert_int_equal(b.nbits, 64);
	bitmap_set_range(&b, 0, 64);
	assert_int_equal(bitmap_count(&b), 64);
	bitmap_free(&b);
}

static void test_free_leaves_an_empty_bitmap_that_can_be_reused(void **state)
{
	struct bitmap b = make(1000);

	bitmap_set_range(&b, 0, 1000);
	bitmap_free(&b);
	assert_null(b.w);
	assert_int_equal(b.nbits, 0);
	assert_int_equal(b.nwords, 0);
	assert_int_equal(bitmap_resize(&b, 200), 0);
	assert_int_equal(bitmap_count(&b), 0);
	bitmap_free(&b);
}

/* ------------------------------------------------------------ model check */

static uint64_t rng_state;

static uint64_t rnd(void)
{
	/* splitmix64 */
	uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static void check_against_model(const struct bitmap *b, const bool *m, uint64_t n)
{
	uint64_t c = 0, ns = n, nc = n;

	assert_int_equal(b->nbits, n);
	for (uint64_t k = n; k-- > 0;) {
		assert_int_equal(bitmap_test(b, k), m[k]);
		c += m[k];
		if (m[k])
			ns = k;
		else
			nc = k;
		/* ns / nc are now the first set / clear at or after k */
		assert_int_equal(bitmap_next_set(b, k), ns);
		assert_int_equal(bitmap_next_clear(b, k), nc);
	}
	assert_int_equal(bitmap_count(b), c);
}

static void test_random_operations_match_a_bool_array_model(void **state)
{
	const char *seed = getenv("RELOCFS_TEST_SEED");
	enum { MAXBITS = 700 };
	bool m[MAXBITS + 64] = { 0 };
	struct bitmap b = { 0 };
	uint64_t n = 0;

	rng_state = seed ? strtoull(seed, NULL, 0) : 0x5eed;
	print_message("seed 0x%llx (RELOCFS_TEST_SEED)\n", (unsigned long long)rng_state);
	for (int step = 0; step < 3000; step++) {
		uint64_t op = rnd() % 10, s = n ? rnd() % (n + 8) : rnd() % 8;
		uint64_t c = rnd() % 3 == 0 ? rnd() % 200 : rnd() % 8;

		if (op == 0) {
			uint64_t nn = rnd() % MAXBITS;

			assert_int_equal(bitmap_resize(&b, nn), 0);
			for (uint64_t k = nn; k < n; k++)
				m[k] = false;
			n = nn;
		} else if (op <= 4) {
			bitmap_set_range(&b, s, c);
			for (uint64_t k = s; k < s + c && k < n; k++)
				m[k] = true;
		} else if (op <= 8) {
			bitmap_clear_range(&b, s, c);
			for (uint64_t k = s; k < s + c && k < n; k++)
				m[k] = false;
		} else {
			bool all = s + c <= n || c == 0;

			for (uint64_t k = s; all && k < s + c; k++)
				all = m[k];
			assert_int_equal(bitmap_all_set(&b, s, c), all);
		}
		if (step % 10 == 0)
			check_against_model(&b, m, n);
	}
	check_against_model(&b, m, n);
	bitmap_free(&b);
}

/* ----------------------------------------------------------- concurrency */

struct setter {
	struct bitmap *b;
	uint64_t first;
};

static void *set_every_other_bit(void *arg)
{
	struct setter *s = arg;

	for (uint64_t i = s->first; i < s->b->nbits; i += 2)
		bitmap_set_range(s->b, i, 1);
	return NULL;
}

static void test_concurrent_set_range_on_one_word_loses_no_bit(void **state)
{
	/* two threads set the even and the odd bits: every word is shared */
	struct bitmap b = make(1 << 20);
	struct setter even = { &b, 0 }, odd = { &b, 1 };
	pthread_t t1, t2;

	assert_int_equal(pthread_create(&t1, NULL, set_every_other_bit, &even), 0);
	assert_int_equal(pthread_create(&t2, NULL, set_every_other_bit, &odd), 0);
	pthread_join(t1, NULL);
	pthread_join(t2, NULL);
	assert_int_equal(bitmap_count(&b), 1 << 20);
	bitmap_free(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_new_bitmap_has_no_bit_set),
		cmocka_unit_test(test_set_range_sets_exactly_the_range),
		cmocka_unit_test(test_set_range_of_one_whole_aligned_word),
		cmocka_unit_test(test_clear_range_clears_exactly_the_range),
		cmocka_unit_test(test_set_range_of_zero_bits_changes_nothing),
		cmocka_unit_test(test_set_range_is_clamped_to_nbits),
		cmocka_unit_test(test_set_range_with_a_count_that_would_wrap_stops_at_nbits),
		cmocka_unit_test(test_range_ops_starting_past_the_end_do_nothing),
		cmocka_unit_test(test_test_past_the_end_is_false),
		cmocka_unit_test(test_empty_bitmap_answers_without_storage),
		cmocka_unit_test(test_next_set_skips_whole_empty_words),
		cmocka_unit_test(test_next_set_ignores_bits_before_the_start_in_the_same_word),
		cmocka_unit_test(test_next_set_finds_bit_63_and_64),
		cmocka_unit_test(test_next_set_from_past_the_end_returns_nbits),
		cmocka_unit_test(test_next_clear_skips_whole_full_words),
		cmocka_unit_test(test_next_clear_does_not_report_padding_past_nbits),
		cmocka_unit_test(test_all_set_is_true_only_when_every_bit_is_set),
		cmocka_unit_test(test_all_set_of_an_empty_range_is_true),
		cmocka_unit_test(test_all_set_of_a_range_reaching_past_the_end_is_false),
		cmocka_unit_test(test_count_counts_a_partial_last_word),
		cmocka_unit_test(test_grow_keeps_old_bits_and_shows_new_bits_clear),
		cmocka_unit_test(test_shrink_clears_the_cut_bits_so_growing_again_shows_them_clear),
		cmocka_unit_test(test_shrink_to_zero_then_grow_shows_all_clear),
		cmocka_unit_test(test_grow_one_bit_at_a_time_across_many_reallocations),
		cmocka_unit_test(test_resize_to_a_size_whose_word_count_overflows_fails),
		cmocka_unit_test(test_free_leaves_an_empty_bitmap_that_can_be_reused),
		cmocka_unit_test(test_random_operations_match_a_bool_array_model),
		cmocka_unit_test(test_concurrent_set_range_on_one_word_loses_no_bit),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
