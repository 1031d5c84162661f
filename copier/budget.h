/*
 * budget: the mount's bandwidth for copies and merges, shared by the
 * copiers of every job.
 *
 * Each copier is a client of the mount's budget with a weight (its job's
 * priority), a cap (its job's own limit, or the rate its deadline needs),
 * and a flag saying whether it is hungry (it has base to copy or blocks to
 * merge).  The budget splits its total among the hungry clients (see
 * budget_split) and gives each a token bucket at its share; every byte a
 * copier moves is also taken from one mount-wide bucket at the total, so
 * that the sum stays within the budget while shares change.  A client that
 * stops being hungry leaves its share to the others at once.
 *
 * A copier takes before it moves (budget_take), then sleeps in short slices
 * while budget_wait says so: a share or total changed meanwhile applies to
 * the rest of the wait, so a lower budget takes effect within a slice.
 *
 * Pure but for one lock: every call takes the time as an argument, and none
 * does I/O or sleeps, so the unit tests run on a simulated clock.  Every
 * call may come from any thread (copiers take, the job engine sets).
 */
#ifndef RELOCFS_BUDGET_H
#define RELOCFS_BUDGET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A hungry client is never given less than this (bytes/s), so that no
 * copier stops outright while deadline jobs take the whole budget. */
#define BUDGET_MIN_SHARE	(64u << 10)

struct budget;
struct budget_client;

/* total in bytes/s; 0: no budget (each client is held to its cap only).
 * 0 or -ENOMEM. */
int budget_new(struct budget **out, uint64_t total, uint64_t now_us);
/* Every client must have left. */
void budget_free(struct budget *b);

void budget_set_total(struct budget *b, uint64_t total, uint64_t now_us);
uint64_t budget_total(struct budget *b);

/* A new client, not hungry, weight 1..; 0 or -ENOMEM. */
int budget_join(struct budget *b, struct budget_client **out, unsigned weight, uint64_t now_us);
void budget_leave(struct budget_client *c);

/* What the client may have: weight >= 1, cap in bytes/s (0: none), and
 * reserve: served before the clients without it (a deadline's rate). */
void budget_set(struct budget_client *c, unsigned weight, uint64_t cap, bool reserve,
		uint64_t now_us);
void budget_set_hungry(struct budget_client *c, bool hungry, uint64_t now_us);

/* The copier's side: take len bytes (the client becomes hungry), then wait
 * while budget_wait() is not 0 (microseconds). */
void budget_take(struct budget_client *c, uint64_t len, uint64_t now_us);
uint64_t budget_wait(struct budget_client *c, uint64_t now_us);

/* The client's share now, bytes/s (0: unlimited; a client that is not
 * hungry has none). */
uint64_t budget_share(struct budget_client *c);

/* ---- the pure parts, for the engine and the unit tests ---------------- */

struct budget_demand {
	unsigned weight;	/* >= 1 */
	uint64_t cap;		/* bytes/s; 0: none */
	bool reserve;		/* with a cap: served first */
	bool hungry;
};

/*
 * Split total among the hungry clients: first the reserving ones get their
 * cap (in proportion to their caps if together they need more than the
 * total); what is left goes to the others by weight, none above its cap,
 * what a capped one leaves going to the rest (weighted max-min fairness).
 * A hungry client gets at least BUDGET_MIN_SHARE; one that is not hungry
 * gets 0.  With total 0 each hungry client gets its cap (0: unlimited).
 */
void budget_split(uint64_t total, const struct budget_demand *d, size_t n, uint64_t *share);

/*
 * The rate at which a job with a deadline should move what it has left:
 * the lowest that makes it ready a twentieth of its span (from since to
 * deadline) before the deadline.  Ready means its base copied and at most
 * allowance bytes left to merge; what it has to move by a time T from now
 * is base_left, and what of the unmerged bytes (dirty now, and dirty_rate
 * more every second the guest writes) is over the allowance by then.
 * *needed is the rate that would make it ready exactly at the deadline.  A
 * deadline passed (or closer than a tenth of a second) gives 0 for both:
 * as fast as allowed.  Times in microseconds on one clock.
 */
uint64_t budget_deadline_rate(uint64_t since_us, uint64_t deadline_us, uint64_t now_us,
			      uint64_t base_left, uint64_t dirty, uint64_t dirty_rate,
			      uint64_t allowance, uint64_t *needed);

#endif
