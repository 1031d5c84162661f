/*
 * ratelimit: see ratelimit.h.  The bucket holds at most a quarter second of
 * rate (at least 1 MiB), so a pause does not turn into a burst.
 */
#include <string.h>

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

static void refill(struct ratelimit *rl, uint64_t now_us)
{
	if (now_us > rl->last_us) {
		rl->tokens += (double)(now_us - rl->last_us) * (double)rl->rate / 1e6;
		if (rl->tokens > (double)rl->burst)
			rl->tokens = (double)rl->burst;
		rl->last_us = now_us;
	}
}

/* microseconds until the debt is paid at the current rate, rounded up: any
 * debt waits */
static uint64_t debt_wait(const struct ratelimit *rl)
{
	double wait;

	if (rl->tokens >= 0)
		return 0;
	wait = -rl->tokens * 1e6 / (double)rl->rate;
	return (uint64_t)wait + ((double)(uint64_t)wait < wait);
}

uint64_t ratelimit_take(struct ratelimit *rl, uint64_t len, uint64_t now_us)
{
	if (rl->rate == 0)
		return 0;
	refill(rl, now_us);
	rl->tokens -= (double)len;
	return debt_wait(rl);
}

uint64_t ratelimit_wait(struct ratelimit *rl, uint64_t now_us)
{
	if (rl->rate == 0) {
		/* unlimited now: a debt from a limited spell is forgiven */
		if (rl->tokens < 0)
			rl->tokens = 0;
		rl->last_us = now_us > rl->last_us ? now_us : rl->last_us;
		return 0;
	}
	refill(rl, now_us);
	return debt_wait(rl);
}

/* Forget the slots older than the window that ends in slot 'cur'. */
static void ratemeter_advance(struct ratemeter *m, uint64_t cur)
{
	if (cur <= m->last)
		return;
	if (cur - m->last >= RATEMETER_SLOTS) {
		memset(m->slot, 0, sizeof(m->slot));
	} else {
		for (uint64_t s = m->last + 1; s <= cur; s++)
			m->slot[s % RATEMETER_SLOTS] = 0;
	}
	m->last = cur;
}

void ratemeter_init(struct ratemeter *m, uint64_t now_us)
{
	memset(m, 0, sizeof(*m));
	m->start_us = now_us;
	m->last = now_us / RATEMETER_SLOT_US;
}

void ratemeter_add(struct ratemeter *m, uint64_t bytes, uint64_t now_us)
{
	uint64_t cur = now_us / RATEMETER_SLOT_US;

	ratemeter_advance(m, cur);
	if (cur + RATEMETER_SLOTS > m->last)	/* not older than the window */
		m->slot[cur % RATEMETER_SLOTS] += bytes;
}

uint64_t ratemeter_rate(struct ratemeter *m, uint64_t now_us)
{
	uint64_t cur = now_us / RATEMETER_SLOT_US, sum = 0, span;

	if (now_us <= m->start_us)
		return 0;
	ratemeter_advance(m, cur);
	for (int i = 0; i < RATEMETER_SLOTS; i++)
		sum += m->slot[i];
	/* the window: the full slots before this one, and this one so far */
	span = (RATEMETER_SLOTS - 1) * (uint64_t)RATEMETER_SLOT_US + now_us % RATEMETER_SLOT_US;
	if (now_us - m->start_us < span)
		span = now_us - m->start_us;
	if (span < RATEMETER_SLOT_US / 10)
		span = RATEMETER_SLOT_US / 10;	/* a first sample is not a rate yet */
	return (uint64_t)((double)sum * 1e6 / (double)span);
}
