/*
 * ratelimit: a token bucket in bytes per second, and a meter of the rate
 * achieved.  Pure: the caller passes the time, so tests need no clock.  Not
 * thread-safe (the caller locks).
 */
#ifndef RELOCFS_RATELIMIT_H
#define RELOCFS_RATELIMIT_H

#include <stdbool.h>
#include <stdint.h>

struct ratelimit {
	uint64_t rate;		/* bytes per second; 0 = unlimited */
	uint64_t burst;		/* bucket size in bytes */
	double tokens;
	uint64_t last_us;
};

void ratelimit_init(struct ratelimit *rl, uint64_t rate, uint64_t now_us);
void ratelimit_set(struct ratelimit *rl, uint64_t rate);

/* Take len bytes at time now_us; returns how many microseconds the caller
 * should sleep before doing the I/O (0 if it may go now). */
uint64_t ratelimit_take(struct ratelimit *rl, uint64_t len, uint64_t now_us);

/* How long, at the rate set now, until what was taken is paid for (0: it
 * is).  A caller that took and sleeps in short slices, asking again after
 * each, follows a rate changed meanwhile at once. */
uint64_t ratelimit_wait(struct ratelimit *rl, uint64_t now_us);

/* Bytes per second over the last RATEMETER_SLOTS * RATEMETER_SLOT_US (over
 * the time since ratemeter_init while that is shorter). */
#define RATEMETER_SLOTS		20
#define RATEMETER_SLOT_US	100000u

struct ratemeter {
	uint64_t slot[RATEMETER_SLOTS];	/* bytes done in each slot */
	uint64_t last;			/* number of the newest slot */
	uint64_t start_us;		/* when measuring began */
};

void ratemeter_init(struct ratemeter *m, uint64_t now_us);
void ratemeter_add(struct ratemeter *m, uint64_t bytes, uint64_t now_us);
uint64_t ratemeter_rate(struct ratemeter *m, uint64_t now_us);

#endif
