// modules: copier/ratelimit.c
/*
 * test_ratelimit: the token bucket against its header, on a simulated clock
 * (the module takes the time as an argument, so nothing here sleeps or
 * reads a clock).
 *
 *  - rate 0 never waits; the bucket starts empty and fills at the rate;
 *  - the burst is a quarter second of rate, at least 1 MiB, and caps what a
 *    pause can save, also across ratelimit_set;
 *  - a take beyond the tokens waits exactly for the debt at the rate (at
 *    least 1 us for any debt), and a caller that sleeps as told moves at the
 *    rate in the long run;
 *  - a clock that goes backwards grants nothing;
 *  - ratelimit_wait follows the rate set now: a debt taken at one rate is
 *    paid at the next, and an unlimited rate forgives it;
 *  - the meter gives the rate over its window, and over the time since it
 *    began while that is shorter.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <cmocka.h>

#include "copier/ratelimit.h"

#define MiB (1ull << 20)
#define SEC 1000000ull

/* |got - want| <= 1 us: the wait is a rounded double */
static void assert_wait(uint64_t got, uint64_t want)
{
	if (got + 1 < want || got > want + 1)
		fail_msg("waited %llu us, expected %llu", (unsigned long long)got,
			 (unsigned long long)want);
}

static void test_rate_zero_never_waits(void **state)
{
	struct ratelimit rl;

	ratelimit_init(&rl, 0, 0);
	for (int i = 0; i < 1000; i++)
		assert_int_equal(ratelimit_take(&rl, 1ull << 40, 0), 0);
}

static void test_bucket_starts_empty(void **state)
{
	struct ratelimit rl;

	ratelimit_init(&rl, 10 * MiB, 5 * SEC);
	assert_wait(ratelimit_take(&rl, MiB, 5 * SEC), SEC / 10);
}

static void test_tokens_accumulate_at_the_rate(void **state)
{
	struct ratelimit rl;

	ratelimit_init(&rl, 4 * MiB, 0);
	assert_int_equal(ratelimit_take(&rl, MiB, SEC / 4), 0);
	assert_int_equal(ratelimit_take(&rl, 0, SEC / 4), 0);
	assert_wait(ratelimit_take(&rl, MiB / 16, SEC / 4), SEC / 64);
}

static void test_any_debt_means_a_wait_of_at_least_one_microsecond(void **state)
{
	/* one byte at 4 MiB/s is 0.24 us: rounding down to 0 would say "go
	 * now" while the bucket is empty */
	struct ratelimit rl;

	ratelimit_init(&rl, 4 * MiB, 0);
	assert_int_equal(ratelimit_take(&rl, MiB, SEC / 4), 0);
	assert_int_equal(ratelimit_take(&rl, 1, SEC / 4), 1);
}

static void test_wait_is_the_debt_at_the_rate(void **state)
{
	struct ratelimit rl;

	ratelimit_init(&rl, 2 * MiB, 0);
	assert_wait(ratelimit_take(&rl, 3 * MiB, 0), 3 * SEC / 2);
	/* a second take before the debt is paid waits for both */
	assert_wait(ratelimit_take(&rl, MiB, SEC / 2), 3 * SEC / 2);
}

static void test_sleeping_as_told_pays_the_debt_exactly(void **state)
{
	struct ratelimit rl;
	uint64_t now = 0, w;

	ratelimit_init(&rl, 8 * MiB, now);
	w = ratelimit_take(&rl, 4 * MiB, now);
	assert_wait(w, SEC / 2);
	now += w + 1;
	assert_int_equal(ratelimit_take(&rl, 0, now), 0);
	assert_wait(ratelimit_take(&rl, 8 * MiB, now), SEC);
}

static void test_burst_is_capped(void **state)
{
	/* 16 MiB/s: the bucket holds a quarter second, 4 MiB */
	struct ratelimit rl;

	ratelimit_init(&rl, 16 * MiB, 0);
	assert_int_equal(rl.burst, 4 * MiB);
	assert_int_equal(ratelimit_take(&rl, 4 * MiB, 3600 * SEC), 0);
	assert_wait(ratelimit_take(&rl, MiB, 3600 * SEC), SEC / 16);
}

static void test_burst_is_at_least_one_mib(void **state)
{
	struct ratelimit rl;

	ratelimit_init(&rl, 1000, 0);
	assert_int_equal(rl.burst, MiB);
	assert_int_equal(ratelimit_take(&rl, MiB, 100000 * SEC), 0);
	assert_wait(ratelimit_take(&rl, 1000, 100000 * SEC), SEC);
}

static void test_lowering_the_rate_caps_saved_tokens_to_the_new_burst(void **state)
{
	struct ratelimit rl;

	ratelimit_init(&rl, 100 * MiB, 0);
	assert_int_equal(ratelimit_take(&rl, 0, 10 * SEC), 0);	/* 25 MiB saved */
	ratelimit_set(&rl, 2 * MiB);
	assert_int_equal(rl.burst, MiB);
	assert_int_equal(ratelimit_take(&rl, MiB, 10 * SEC), 0);
	assert_wait(ratelimit_take(&rl, MiB, 10 * SEC), SEC / 2);
}

static void test_raising_the_rate_shortens_the_next_wait(void **state)
{
	struct ratelimit rl;

	ratelimit_init(&rl, MiB, 0);
	assert_wait(ratelimit_take(&rl, MiB, 0), SEC);
	ratelimit_set(&rl, 4 * MiB);
	assert_wait(ratelimit_take(&rl, 0, 0), SEC / 4);
}

static void test_setting_rate_zero_makes_it_unlimited(void **state)
{
	struct ratelimit rl;

	ratelimit_init(&rl, MiB, 0);
	assert_true(ratelimit_take(&rl, 10 * MiB, 0) > 0);
	ratelimit_set(&rl, 0);
	assert_int_equal(ratelimit_take(&rl, 10 * MiB, 0), 0);
}

static void test_limiting_after_a_long_unlimited_spell_grants_at_most_a_burst(void **state)
{
	struct ratelimit rl;

	ratelimit_init(&rl, 0, 0);
	for (uint64_t t = 0; t < 100; t++)
		assert_int_equal(ratelimit_take(&rl, 100 * MiB, t * SEC), 0);
	ratelimit_set(&rl, 4 * MiB);
	assert_int_equal(ratelimit_take(&rl, MiB, 1000 * SEC), 0);
	assert_wait(ratelimit_take(&rl, MiB, 1000 * SEC), SEC / 4);
}

static void test_clock_going_backwards_grants_nothing(void **state)
{
	struct ratelimit rl;

	ratelimit_init(&rl, MiB, 10 * SEC);
	assert_wait(ratelimit_take(&rl, MiB, 5 * SEC), SEC);
	assert_wait(ratelimit_take(&rl, 0, 0), SEC);
	/* time resumes from where it was, not from the earlier reading */
	assert_int_equal(ratelimit_take(&rl, 0, 11 * SEC + 1), 0);
}

static void test_many_small_takes_wait_as_much_as_one_large(void **state)
{
	struct ratelimit small, large;
	uint64_t w = 0;

	ratelimit_init(&small, 3 * MiB, 0);
	ratelimit_init(&large, 3 * MiB, 0);
	for (int i = 0; i < 768; i++)
		w = ratelimit_take(&small, 4096, 0);
	assert_wait(w, ratelimit_take(&large, 768 * 4096, 0));
	assert_wait(w, SEC);
}

static void test_a_caller_that_sleeps_as_told_moves_at_the_rate(void **state)
{
	/* 64 KiB chunks at 5 MiB/s for 100 MiB: 20 s, within a microsecond
	 * per chunk of rounding, and never faster than the rate allows */
	const uint64_t rate = 5 * MiB, chunk = 64 << 10, total = 100 * MiB;
	struct ratelimit rl;
	uint64_t now = 1000, start = now, moved = 0;

	ratelimit_init(&rl, rate, now);
	while (moved < total) {
		now += ratelimit_take(&rl, chunk, now);
		moved += chunk;
		/* what was moved by now is at most what the rate allows */
		if ((double)moved > (double)(now - start) * (double)rate / 1e6 + (double)chunk)
			fail_msg("%llu bytes moved by %llu us", (unsigned long long)moved,
				 (unsigned long long)(now - start));
	}
	assert_true(now - start + total / chunk >= total * SEC / rate - chunk * SEC / rate);
	assert_true(now - start <= total * SEC / rate + 1);
}

/* ---- ratelimit_wait ---- */

static void test_wait_after_a_take_is_what_the_take_said(void **state)
{
	struct ratelimit rl;
	uint64_t w;

	ratelimit_init(&rl, 4 * MiB, 0);
	w = ratelimit_take(&rl, 2 * MiB, 0);
	assert_wait(w, SEC / 2);
	assert_wait(ratelimit_wait(&rl, 0), SEC / 2);
	assert_wait(ratelimit_wait(&rl, SEC / 4), SEC / 4);
	assert_int_equal(ratelimit_wait(&rl, SEC / 2 + 1), 0);
}

static void test_a_debt_is_paid_at_the_rate_set_while_waiting(void **state)
{
	/* 4 MiB taken at 4 MiB/s: a second to wait; after a quarter second
	 * the rate drops to 1 MiB/s, so the 3 MiB still owed take 3 s */
	struct ratelimit rl;

	ratelimit_init(&rl, 4 * MiB, 0);
	assert_wait(ratelimit_take(&rl, 4 * MiB, 0), SEC);
	ratelimit_take(&rl, 0, SEC / 4);	/* what was earned so far */
	ratelimit_set(&rl, MiB);
	assert_wait(ratelimit_wait(&rl, SEC / 4), 3 * SEC);
	ratelimit_set(&rl, 3 * MiB);
	assert_wait(ratelimit_wait(&rl, SEC / 4), SEC);
}

static void test_an_unlimited_rate_forgives_the_debt(void **state)
{
	struct ratelimit rl;

	ratelimit_init(&rl, MiB, 0);
	assert_true(ratelimit_take(&rl, 10 * MiB, 0) > 0);
	ratelimit_set(&rl, 0);
	assert_int_equal(ratelimit_wait(&rl, 0), 0);
	ratelimit_set(&rl, MiB);
	assert_int_equal(ratelimit_wait(&rl, 0), 0);
}

/* ---- ratemeter ---- */

static void test_meter_gives_nothing_before_any_bytes(void **state)
{
	struct ratemeter m;

	ratemeter_init(&m, 5 * SEC);
	assert_int_equal(ratemeter_rate(&m, 5 * SEC), 0);
	assert_int_equal(ratemeter_rate(&m, 7 * SEC), 0);
}

static void test_meter_divides_by_the_time_since_it_began_at_first(void **state)
{
	struct ratemeter m;

	ratemeter_init(&m, 10 * SEC);
	ratemeter_add(&m, MiB, 10 * SEC + SEC / 2);
	assert_int_equal(ratemeter_rate(&m, 10 * SEC + SEC / 2), 2 * MiB);
	assert_int_equal(ratemeter_rate(&m, 11 * SEC), MiB);
}

static void test_meter_sees_a_steady_rate_over_its_window(void **state)
{
	/* 1 MiB every 100 ms for 10 s: 10 MiB/s, whenever it is asked */
	struct ratemeter m;
	uint64_t t;

	ratemeter_init(&m, 0);
	for (t = 100000; t <= 10 * SEC; t += 100000) {
		ratemeter_add(&m, MiB, t);
		if (t >= 3 * SEC) {
			uint64_t r = ratemeter_rate(&m, t);

			if (r < 9 * MiB || r > 11 * MiB)
				fail_msg("at %llu us: %llu bytes/s", (unsigned long long)t,
					 (unsigned long long)r);
		}
	}
}

static void test_meter_forgets_what_is_older_than_its_window(void **state)
{
	struct ratemeter m;

	ratemeter_init(&m, 0);
	for (uint64_t t = 0; t < 4 * SEC; t += 100000)
		ratemeter_add(&m, MiB, t);
	/* two seconds of silence later the window is empty */
	assert_int_equal(ratemeter_rate(&m, 6 * SEC + 1), 0);
	/* and a rate change shows within the window: 1 MiB per 200 ms */
	for (uint64_t t = 6 * SEC; t <= 9 * SEC; t += 200000)
		ratemeter_add(&m, MiB, t);
	assert_true(ratemeter_rate(&m, 9 * SEC) > 4 * MiB);
	assert_true(ratemeter_rate(&m, 9 * SEC) < 6 * MiB);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rate_zero_never_waits),
		cmocka_unit_test(test_bucket_starts_empty),
		cmocka_unit_test(test_tokens_accumulate_at_the_rate),
		cmocka_unit_test(test_any_debt_means_a_wait_of_at_least_one_microsecond),
		cmocka_unit_test(test_wait_is_the_debt_at_the_rate),
		cmocka_unit_test(test_sleeping_as_told_pays_the_debt_exactly),
		cmocka_unit_test(test_burst_is_capped),
		cmocka_unit_test(test_burst_is_at_least_one_mib),
		cmocka_unit_test(test_lowering_the_rate_caps_saved_tokens_to_the_new_burst),
		cmocka_unit_test(test_raising_the_rate_shortens_the_next_wait),
		cmocka_unit_test(test_setting_rate_zero_makes_it_unlimited),
		cmocka_unit_test(test_limiting_after_a_long_unlimited_spell_grants_at_most_a_burst),
		cmocka_unit_test(test_clock_going_backwards_grants_nothing),
		cmocka_unit_test(test_many_small_takes_wait_as_much_as_one_large),
		cmocka_unit_test(test_a_caller_that_sleeps_as_told_moves_at_the_rate),
		cmocka_unit_test(test_wait_after_a_take_is_what_the_take_said),
		cmocka_unit_test(test_a_debt_is_paid_at_the_rate_set_while_waiting),
		cmocka_unit_test(test_an_unlimited_rate_forgives_the_debt),
		cmocka_unit_test(test_meter_gives_nothing_before_any_bytes),
		cmocka_unit_test(test_meter_divides_by_the_time_since_it_began_at_first),
		cmocka_unit_test(test_meter_sees_a_steady_rate_over_its_window),
		cmocka_unit_test(test_meter_forgets_what_is_older_than_its_window),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
