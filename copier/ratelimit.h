/*
 * ratelimit: a token bucket in bytes per second.  Pure: the caller passes
 * the time, so tests need no clock.  Not thread-safe (one per copier).
 */
#ifndef RELOCFS_RATELIMIT_H
#define RELOCFS_RATELIMIT_H

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

#endif
