// modules: copier/budget.c copier/ratelimit.c
/*
 * test_budget: the mount's shared bandwidth against its header, on a
 * simulated clock (every call takes the time, so nothing here sleeps).
 *
 *  - budget_split: weighted shares among the hungry clients, caps that
 *    leave their rest to the others, reserving (deadline) clients first and
 *    in proportion when they need more than the total, a floor for every
 *    hungry client, caps alone without a total;
 *  - budget_deadline_rate: a twentieth of the span early, from the base left
 *    and what the guest adds beyond what ready allows, nothing once the
 *    deadline has passed;
 *  - the budget with copiers simulated on the clock (take a piece, wait as
 *    told, in slices): the sum stays at the total, each gets its weighted
 *    share, a lower total or a cap applies within a slice, and a client that
 *    stops being hungry leaves its share to the others.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <cmocka.h>

#include "copier/budget.h"

#define MiB (1ull << 20)
#define SEC 1000000ull

/* ---- budget_split ---- */

static void split(uint64_t total, const struct budget_demand *d, size_t n, uint64_t *share)
{
	budget_split(total, d, n, share);
}

static void assert_near(uint64_t got, uint64_t want, double tol, const char *what)
{
	double g = (double)got, w = (double)want;

	if (g < w * (1 - tol) || g > w * (1 + tol))
		fail_msg("%s: %llu, expected %llu within %.0f %%", what, (unsigned long long)got,
			 (unsigned long long)want, tol * 100);
}

static void test_equal_weights_split_the_total_evenly(void **state)
{
	struct budget_demand d[4] = {
		{ 1, 0, false, true }, { 1, 0, false, true }, { 1, 0, false, true },
		{ 1, 0, false, true },
	};
	uint64_t s[4];

	split(40 * MiB, d, 4, s);
	for (int i = 0; i < 4; i++)
		assert_near(s[i], 10 * MiB, 0.001, "share");
}

static void test_shares_follow_the_weights(void **state)
{
	struct budget_demand d[4] = {
		{ 1, 0, false, true }, { 1, 0, false, true }, { 2, 0, false, true },
		{ 4, 0, false, true },
	};
	uint64_t s[4];

	split(32 * MiB, d, 4, s);
	assert_near(s[0], 4 * MiB, 0.001, "weight 1");
	assert_near(s[1], 4 * MiB, 0.001, "weight 1");
	assert_near(s[2], 8 * MiB, 0.001, "weight 2");
	assert_near(s[3], 16 * MiB, 0.001, "weight 4");
}

static void test_a_capped_client_leaves_its_rest_to_the_others(void **state)
{
	/* 30 MiB/s among three: one capped at 4 leaves 26 for the other two,
	 * split 1:2; a cap above its part changes nothing */
	struct budget_demand d[3] = {
		{ 1, 4 * MiB, false, true }, { 1, 0, false, true }, { 2, 100 * MiB, false, true },
	};
	uint64_t s[3];

	split(30 * MiB, d, 3, s);
	assert_int_equal(s[0], 4 * MiB);
	assert_near(s[1], 26 * MiB / 3, 0.001, "uncapped");
	assert_near(s[2], 52 * MiB / 3, 0.001, "capped high");
}

static void test_caps_that_settle_others_are_found_in_rounds(void **state)
{
	/* 12 MiB/s, weights equal: a's cap 1 < 3 settles first, then b's 3.5
	 * is under its part of the 11 left (3.67), and c, d share 7.5 */
	struct budget_demand d[4] = {
		{ 1, MiB, false, true }, { 1, 7 * MiB / 2, false, true }, { 1, 0, false, true },
		{ 1, 0, false, true },
	};
	uint64_t s[4];

	split(12 * MiB, d, 4, s);
	assert_int_equal(s[0], MiB);
	assert_int_equal(s[1], 7 * MiB / 2);
	assert_near(s[2], 15 * MiB / 4, 0.001, "c");
	assert_near(s[3], 15 * MiB / 4, 0.001, "d");
}

static void test_a_client_that_is_not_hungry_gets_nothing_and_leaves_its_share(void **state)
{
	struct budget_demand d[3] = {
		{ 1, 0, false, true }, { 5, 0, false, false }, { 1, 0, false, true },
	};
	uint64_t s[3];

	split(20 * MiB, d, 3, s);
	assert_int_equal(s[1], 0);
	assert_near(s[0], 10 * MiB, 0.001, "first");
	assert_near(s[2], 10 * MiB, 0.001, "third");
}

static void test_reserving_clients_are_served_first(void **state)
{
	/* a deadline needs 6 of 20: the others share 14 by weight, whatever
	 * their weights against the reserving one */
	struct budget_demand d[3] = {
		{ 1, 6 * MiB, true, true }, { 100, 0, false, true }, { 100, 0, false, true },
	};
	uint64_t s[3];

	split(20 * MiB, d, 3, s);
	assert_int_equal(s[0], 6 * MiB);
	assert_near(s[1], 7 * MiB, 0.001, "second");
	assert_near(s[2], 7 * MiB, 0.001, "third");
}

static void test_reserving_clients_that_need_more_than_the_total_share_it_by_need(void **state)
{
	struct budget_demand d[3] = {
		{ 1, 30 * MiB, true, true }, { 1, 10 * MiB, true, true }, { 1, 0, false, true },
	};
	uint64_t s[3];

	split(20 * MiB, d, 3, s);
	assert_near(s[0], 15 * MiB, 0.001, "needs 30");
	assert_near(s[1], 5 * MiB, 0.001, "needs 10");
	assert_int_equal(s[2], BUDGET_MIN_SHARE);	/* not stopped outright */
}

static void test_a_reserve_without_cap_is_an_ordinary_client(void **state)
{
	struct budget_demand d[2] = { { 1, 0, true, true }, { 1, 0, false, true } };
	uint64_t s[2];

	split(8 * MiB, d, 2, s);
	assert_near(s[0], 4 * MiB, 0.001, "reserve without cap");
	assert_near(s[1], 4 * MiB, 0.001, "other");
}

static void test_without_a_total_each_hungry_client_has_its_cap(void **state)
{
	struct budget_demand d[3] = {
		{ 1, 5 * MiB, false, true }, { 1, 0, false, true }, { 1, 3 * MiB, true, false },
	};
	uint64_t s[3];

	split(0, d, 3, s);
	assert_int_equal(s[0], 5 * MiB);
	assert_int_equal(s[1], 0);	/* unlimited */
	assert_int_equal(s[2], 0);	/* not hungry */
}

static void test_every_hungry_client_gets_at_least_the_floor(void **state)
{
	struct budget_demand d[2] = { { 1, 0, false, true }, { 1000000, 0, false, true } };
	uint64_t s[2];

	split(MiB, d, 2, s);
	assert_int_equal(s[0], BUDGET_MIN_SHARE);
}

/* ---- budget_deadline_rate ---- */

static void test_deadline_rate_aims_a_twentieth_of_the_span_early(void **state)
{
	/* 100 s span, 95 MiB of base left at the start, a quiet guest: 1 MiB/s
	 * makes it ready at 95 s; exactly at the deadline would need 0.95 */
	uint64_t needed, r = budget_deadline_rate(0, 100 * SEC, 0, 95 * MiB, 0, 0, 0, &needed);

	assert_near(r, MiB, 0.001, "rate");
	assert_near(needed, 95 * MiB / 100, 0.001, "needed");
}

static void test_deadline_rate_moves_what_the_guest_writes_beyond_the_allowance(void **state)
{
	/* 2 MiB unmerged now and 0.5 MiB/s more, 8 MiB may stay unmerged:
	 * by 95 s 41.5 MiB must be merged besides the 95 MiB of base */
	uint64_t needed, r = budget_deadline_rate(0, 100 * SEC, 0, 95 * MiB, 2 * MiB, MiB / 2,
						  8 * MiB, &needed);

	assert_near(r, (95 + 41.5) * MiB / 95, 0.001, "rate");
	assert_near(needed, (95 + 2 + 50 - 8) * MiB / 100, 0.001, "needed");
}

static void test_deadline_rate_ignores_what_stays_within_the_allowance(void **state)
{
	/* a guest that adds 4 MiB by then to the 2 unmerged: within the 8
	 * that ready allows, so only the base counts */
	uint64_t needed, r = budget_deadline_rate(0, 100 * SEC, 0, 95 * MiB, 2 * MiB,
						  4 * MiB / 95, 8 * MiB, &needed);

	assert_near(r, MiB, 0.001, "rate");
}

static void test_deadline_rate_on_track_stays_the_same(void **state)
{
	/* half-way to the aim, half the data left: the same rate */
	uint64_t needed, r = budget_deadline_rate(0, 100 * SEC, 47500000, 95 * MiB / 2, 0, 0, 0,
						  &needed);

	assert_near(r, MiB, 0.001, "rate");
}

static void test_deadline_rate_behind_asks_for_more(void **state)
{
	uint64_t needed, r = budget_deadline_rate(0, 100 * SEC, 47500000, 95 * MiB, 0, 0, 0, &needed);

	assert_near(r, 2 * MiB, 0.001, "rate");
	assert_near(needed, 95 * MiB / 52.5, 0.001, "needed");
}

static void test_deadline_rate_near_the_end_aims_a_couple_of_seconds_ahead(void **state)
{
	/* past the aim, 3 s before the deadline, 4 MiB left: aim at 2 s */
	uint64_t needed, r = budget_deadline_rate(0, 100 * SEC, 97 * SEC, 4 * MiB, 0, 0, 0, &needed);

	assert_near(r, 2 * MiB, 0.001, "rate");
	assert_near(needed, 4 * MiB / 3, 0.001, "needed");
}

static void test_deadline_rate_is_zero_once_passed(void **state)
{
	uint64_t needed = 1, r = budget_deadline_rate(0, 100 * SEC, 100 * SEC, 4 * MiB, 0, 0, 0,
						      &needed);

	assert_int_equal(r, 0);
	assert_int_equal(needed, 0);
	r = budget_deadline_rate(0, 100 * SEC, 200 * SEC, 4 * MiB, 0, 0, 0, &needed);
	assert_int_equal(r, 0);
}

static void test_deadline_rate_with_nothing_left_is_the_floor(void **state)
{
	uint64_t needed, r = budget_deadline_rate(0, 100 * SEC, 10 * SEC, 0, MiB, 0, 8 * MiB,
						  &needed);

	assert_int_equal(r, 64u << 10);
	assert_int_equal(needed, 0);
}

/* ---- the budget, with simulated copiers ---- */

#define PIECE	MiB
#define SLICE	50000ull	/* the copier asks again after this */
#define STEP	1000ull

struct sim {
	struct budget *b;
	size_t n;
	struct budget_client *c[16];
	uint64_t until[16];	/* asleep until; 0: ready to take */
	bool active[16];	/* has work */
	uint64_t moved[16];
	uint64_t now;
};

static void sim_init(struct sim *s, uint64_t total, size_t n, const unsigned *weights)
{
	s->now = 1000 * SEC;
	assert_int_equal(budget_new(&s->b, total, s->now), 0);
	s->n = n;
	for (size_t i = 0; i < n; i++) {
		assert_int_equal(budget_join(s->b, &s->c[i], weights[i], s->now), 0);
		s->active[i] = true;
		s->until[i] = 0;
		s->moved[i] = 0;
	}
}

static void sim_free(struct sim *s)
{
	for (size_t i = 0; i < s->n; i++)
		budget_leave(s->c[i]);
	budget_free(s->b);
}

/* Run for us microseconds: a copier with work takes a piece, then sleeps
 * min(wait, SLICE) at a time until the wait is 0, then moves the piece. */
static void sim_run(struct sim *s, uint64_t us)
{
	uint64_t end = s->now + us;

	for (; s->now < end; s->now += STEP) {
		for (size_t i = 0; i < s->n; i++) {
			uint64_t w;

			if (!s->active[i] || s->until[i] > s->now)
				continue;
			if (s->until[i] == 0) {
				budget_take(s->c[i], PIECE, s->now);
				s->until[i] = 1;	/* taken, not moved */
			}
			w = budget_wait(s->c[i], s->now);
			if (w) {
				s->until[i] = s->now + (w < SLICE ? w : SLICE);
				continue;
			}
			s->moved[i] += PIECE;
			s->until[i] = 0;
		}
	}
}

static void test_copiers_share_the_total_by_weight(void **state)
{
	static const unsigned w[8] = { 1, 1, 2, 2, 3, 3, 4, 4 };
	struct sim s;
	uint64_t sum = 0;

	sim_init(&s, 40 * MiB, 8, w);
	sim_run(&s, 2 * SEC);	/* settle */
	for (size_t i = 0; i < 8; i++)
		s.moved[i] = 0;
	sim_run(&s, 20 * SEC);
	for (size_t i = 0; i < 8; i++) {
		char what[32];

		snprintf(what, sizeof(what), "client %zu (weight %u)", i, w[i]);
		assert_near(s.moved[i] / 20, 40 * MiB * w[i] / 20, 0.05, what);
		sum += s.moved[i];
	}
	assert_near(sum / 20, 40 * MiB, 0.03, "sum");
	sim_free(&s);
}

static void test_a_lower_total_applies_within_a_slice(void **state)
{
	static const unsigned w[4] = { 1, 1, 1, 1 };
	struct sim s;
	uint64_t sum = 0;

	sim_init(&s, 40 * MiB, 4, w);
	sim_run(&s, 5 * SEC);
	budget_set_total(s.b, 8 * MiB, s.now);
	sim_run(&s, 2 * SLICE);
	for (size_t i = 0; i < 4; i++)
		s.moved[i] = 0;
	sim_run(&s, 5 * SEC);
	for (size_t i = 0; i < 4; i++)
		sum += s.moved[i];
	/* at most the new total (and a piece each of rounding) */
	if (sum > 8 * MiB * 5 + 4 * PIECE)
		fail_msg("%llu bytes moved in 5 s after lowering the total to 8 MiB/s",
			 (unsigned long long)sum);
	assert_near(sum / 5, 8 * MiB, 0.15, "sum at the new total");
	sim_free(&s);
}

static void test_a_cap_set_while_copying_holds(void **state)
{
	static const unsigned w[2] = { 1, 1 };
	struct sim s;

	sim_init(&s, 20 * MiB, 2, w);
	sim_run(&s, 2 * SEC);
	budget_set(s.c[0], 1, 2 * MiB, false, s.now);
	sim_run(&s, 2 * SLICE);
	s.moved[0] = s.moved[1] = 0;
	sim_run(&s, 10 * SEC);
	assert_near(s.moved[0] / 10, 2 * MiB, 0.1, "capped");
	assert_near(s.moved[1] / 10, 18 * MiB, 0.05, "the other has the rest");
	sim_free(&s);
}

static void test_a_client_that_stops_leaves_its_share_to_the_others(void **state)
{
	static const unsigned w[3] = { 1, 1, 1 };
	struct sim s;

	sim_init(&s, 30 * MiB, 3, w);
	sim_run(&s, 2 * SEC);
	s.active[2] = false;
	budget_set_hungry(s.c[2], false, s.now);
	assert_int_equal(budget_share(s.c[2]), 0);
	sim_run(&s, 2 * SLICE);
	s.moved[0] = s.moved[1] = 0;
	sim_run(&s, 10 * SEC);
	assert_near(s.moved[0] / 10, 15 * MiB, 0.05, "first");
	assert_near(s.moved[1] / 10, 15 * MiB, 0.05, "second");
	/* and back: the three share again, with no burst for the idle one */
	s.active[2] = true;
	s.moved[0] = s.moved[1] = s.moved[2] = 0;
	sim_run(&s, 10 * SEC);
	for (size_t i = 0; i < 3; i++)
		assert_near(s.moved[i] / 10, 10 * MiB, 0.07, "three again");
	sim_free(&s);
}

static void test_a_reserving_client_gets_its_rate_ahead_of_heavier_ones(void **state)
{
	static const unsigned w[3] = { 1, 100, 100 };
	struct sim s;

	sim_init(&s, 30 * MiB, 3, w);
	budget_set(s.c[0], 1, 3 * MiB, true, s.now);
	sim_run(&s, 2 * SEC);
	s.moved[0] = s.moved[1] = s.moved[2] = 0;
	sim_run(&s, 10 * SEC);
	assert_near(s.moved[0] / 10, 3 * MiB, 0.07, "reserved");
	assert_near(s.moved[1] / 10, 27 * MiB / 2, 0.05, "second");
	sim_free(&s);
}

static void test_no_total_means_no_wait_but_caps(void **state)
{
	static const unsigned w[2] = { 1, 1 };
	struct sim s;

	sim_init(&s, 0, 2, w);
	budget_set(s.c[1], 1, 4 * MiB, false, s.now);
	budget_take(s.c[0], 100 * MiB, s.now);
	assert_int_equal(budget_wait(s.c[0], s.now), 0);
	assert_int_equal(budget_share(s.c[0]), 0);
	sim_run(&s, 2 * SEC);
	s.moved[1] = 0;
	sim_run(&s, 10 * SEC);
	assert_near(s.moved[1] / 10, 4 * MiB, 0.1, "capped without a total");
	sim_free(&s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_equal_weights_split_the_total_evenly),
		cmocka_unit_test(test_shares_follow_the_weights),
		cmocka_unit_test(test_a_capped_client_leaves_its_rest_to_the_others),
		cmocka_unit_test(test_caps_that_settle_others_are_found_in_rounds),
		cmocka_unit_test(test_a_client_that_is_not_hungry_gets_nothing_and_leaves_its_share),
		cmocka_unit_test(test_reserving_clients_are_served_first),
		cmocka_unit_test(test_reserving_clients_that_need_more_than_the_total_share_it_by_need),
		cmocka_unit_test(test_a_reserve_without_cap_is_an_ordinary_client),
		cmocka_unit_test(test_without_a_total_each_hungry_client_has_its_cap),
		cmocka_unit_test(test_every_hungry_client_gets_at_least_the_floor),
		cmocka_unit_test(test_deadline_rate_aims_a_twentieth_of_the_span_early),
		cmocka_unit_test(test_deadline_rate_moves_what_the_guest_writes_beyond_the_allowance),
		cmocka_unit_test(test_deadline_rate_ignores_what_stays_within_the_allowance),
		cmocka_unit_test(test_deadline_rate_on_track_stays_the_same),
		cmocka_unit_test(test_deadline_rate_behind_asks_for_more),
		cmocka_unit_test(test_deadline_rate_near_the_end_aims_a_couple_of_seconds_ahead),
		cmocka_unit_test(test_deadline_rate_is_zero_once_passed),
		cmocka_unit_test(test_deadline_rate_with_nothing_left_is_the_floor),
		cmocka_unit_test(test_copiers_share_the_total_by_weight),
		cmocka_unit_test(test_a_lower_total_applies_within_a_slice),
		cmocka_unit_test(test_a_cap_set_while_copying_holds),
		cmocka_unit_test(test_a_client_that_stops_leaves_its_share_to_the_others),
		cmocka_unit_test(test_a_reserving_client_gets_its_rate_ahead_of_heavier_ones),
		cmocka_unit_test(test_no_total_means_no_wait_but_caps),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
