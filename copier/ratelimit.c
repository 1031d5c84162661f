/*
 * ratelimit: see ratelimit.h.  The bucket holds at most a quarter second of
 * rate (at least 1 MiB), so a pause does not turn into a burst.
 */
#include "copier/ratelimit.h"

void ratelimit_init(struct ratelimit *rl, uint64_t rate, uint64_t now_us)
{
	rl->last_us = now_us;
	rl->tokens = 0;
	ratelimit_set(rl, rate);
}

void ratelimit_set(struct ratelimit *rl, uint64_t rate)
{
	rl->rate = rate;
	rl->burst = rate / 4 > (1u << 20) ? rate / 4 : (1u << 20);
	if (rl->tokens > (double)rl->burst)
		rl->tokens = (double)rl->burst;
}

uint64_t ratelimit_take(struct ratelimit *rl, uint64_t len, uint64_t now_us)
{
	double wait;

	if (rl->rate == 0)
		return 0;
	if (now_us > rl->last_us) {
		rl->tokens += (double)(now_us - rl->last_us) * (double)rl->rate / 1e6;
		if (rl->tokens > (double)rl->burst)
			rl->tokens = (double)rl->burst;
		rl->last_us = now_us;
	}
	rl->tokens -= (double)len;
	if (rl->tokens >= 0)
		return 0;
	wait = -rl->tokens * 1e6 / (double)rl->rate;
	return (uint64_t)wait + ((double)(uint64_t)wait < wait);	/* round up: any debt waits */
}
