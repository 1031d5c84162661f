/*
 * budget: the mount's shared bandwidth (see budget.h).  The shares are
 * computed again whenever something they depend on changes (a client
 * joins, leaves, becomes hungry or not, its weight or cap, the total), all
 * under the budget's lock; a take or a wait only touches buckets.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "copier/budget.h"
#include "copier/ratelimit.h"

#define DEADLINE_MIN_RATE	(64u << 10)	/* a deadline job never crawls below */
#define DEADLINE_END_US		2000000u	/* aim no closer than this */

struct budget_client {
	struct budget *b;
	struct budget_client *next;	/* b->clients; b->lock */
	struct budget_demand d;		/* b->lock */
	uint64_t share;			/* b->lock */
	struct ratelimit rl;		/* at share; b->lock */
	uint64_t mount_until;		/* its place in the mount bucket; b->lock */
};

struct budget {
	pthread_mutex_t lock;
	uint64_t total;			/* lock */
	struct ratelimit mount;		/* at total; lock */
	struct budget_client *clients;	/* lock */
	size_t n;			/* lock */
};

void budget_split(uint64_t total, const struct budget_demand *d, size_t n, uint64_t *share)
{
	double left = (double)total, need = 0, weights;
	bool *settled = calloc(n ? n : 1, sizeof(*settled));

	for (size_t i = 0; i < n; i++) {
		share[i] = 0;
		if (!d[i].hungry) {
			if (settled)
				settled[i] = true;
			continue;
		}
		if (total == 0) {
			share[i] = d[i].cap;
			if (settled)
				settled[i] = true;
		} else if (d[i].reserve && d[i].cap) {
			need += (double)d[i].cap;
		}
	}
	if (total == 0 || !settled)
		goto out;
	/* the reserving clients first */
	for (size_t i = 0; i < n; i++) {
		if (settled[i] || !d[i].reserve || !d[i].cap)
			continue;
		share[i] = need <= (double)total ? d[i].cap
						 : (uint64_t)((double)total * (double)d[i].cap / need);
		settled[i] = true;
	}
	left -= need < (double)total ? need : (double)total;
	/* the others by weight: settle those whose cap is below their part,
	 * until none is, then split what is left among the rest */
	for (;;) {
		bool changed = false;

		weights = 0;
		for (size_t i = 0; i < n; i++)
			if (!settled[i])
				weights += d[i].weight ? d[i].weight : 1;
		if (weights == 0)
			break;
		for (size_t i = 0; i < n; i++) {
			double part = left * (d[i].weight ? d[i].weight : 1) / weights;

			if (settled[i] || !d[i].cap || (double)d[i].cap > part)
				continue;
			share[i] = d[i].cap;
			settled[i] = true;
			left -= (double)d[i].cap;
			changed = true;
		}
		if (changed)
			continue;
		for (size_t i = 0; i < n; i++) {
			if (settled[i])
				continue;
			share[i] = (uint64_t)(left * (d[i].weight ? d[i].weight : 1) / weights);
			settled[i] = true;
		}
		break;
	}
out:
	for (size_t i = 0; total && i < n; i++)
		if (d[i].hungry && share[i] < BUDGET_MIN_SHARE)
			share[i] = BUDGET_MIN_SHARE;
	free(settled);
}

/* The rate that moves, within us, what must be moved by then. */
static uint64_t rate_within(uint64_t us, uint64_t base_left, uint64_t dirty, uint64_t dirty_rate,
			    uint64_t allowance)
{
	double over = (double)dirty + (double)dirty_rate * (double)us / 1e6 - (double)allowance;

	return (uint64_t)(((double)base_left + (over > 0 ? over : 0)) * 1e6 / (double)us);
}

uint64_t budget_deadline_rate(uint64_t since_us, uint64_t deadline_us, uint64_t now_us,
			      uint64_t base_left, uint64_t dirty, uint64_t dirty_rate,
			      uint64_t allowance, uint64_t *needed)
{
	uint64_t span = deadline_us > since_us ? deadline_us - since_us : 0;
	uint64_t aim = deadline_us - span / 20, left, aim_left, rate;

	*needed = 0;
	if (now_us + 100000 >= deadline_us)
		return 0;
	left = deadline_us - now_us;
	/* aim a twentieth of the span early, but never at less than a couple
	 * of seconds from now: the last chunks would otherwise ask for any rate */
	aim_left = aim > now_us ? aim - now_us : 0;
	if (aim_left < DEADLINE_END_US)
		aim_left = left < DEADLINE_END_US ? left : DEADLINE_END_US;
	*needed = rate_within(left, base_left, dirty, dirty_rate, allowance);
	rate = rate_within(aim_left, base_left, dirty, dirty_rate, allowance);
	return rate > DEADLINE_MIN_RATE ? rate : DEADLINE_MIN_RATE;
}

/* Give every client its share (b->lock held). */
static void resplit(struct budget *b, uint64_t now_us)
{
	struct budget_demand *d = calloc(b->n ? b->n : 1, sizeof(*d));
	uint64_t *share = calloc(b->n ? b->n : 1, sizeof(*share));
	struct budget_client *c;
	size_t i = 0;

	if (!d || !share)
		goto out;	/* the shares stay as they were */
	for (c = b->clients; c; c = c->next)
		d[i++] = c->d;
	budget_split(b->total, d, b->n, share);
	i = 0;
	for (c = b->clients; c; c = c->next, i++) {
		if (share[i] == c->share)
			continue;
		ratelimit_take(&c->rl, 0, now_us);	/* what was earned at the old rate */
		c->share = share[i];
		ratelimit_set(&c->rl, c->d.hungry ? share[i] : 0);
	}
out:
	free(d);
	free(share);
}

int budget_new(struct budget **out, uint64_t total, uint64_t now_us)
{
	struct budget *b = calloc(1, sizeof(*b));

	*out = b;
	if (!b)
		return -ENOMEM;
	pthread_mutex_init(&b->lock, NULL);
	b->total = total;
	ratelimit_init(&b->mount, total, now_us);
	return 0;
}

void budget_free(struct budget *b)
{
	if (!b)
		return;
	pthread_mutex_destroy(&b->lock);
	free(b);
}

void budget_set_total(struct budget *b, uint64_t total, uint64_t now_us)
{
	pthread_mutex_lock(&b->lock);
	if (total != b->total) {
		ratelimit_take(&b->mount, 0, now_us);
		b->total = total;
		ratelimit_set(&b->mount, total);
		/* places in the mount bucket were counted at the old total;
		 * the shares, set anew, pace from here */
		for (struct budget_client *c = b->clients; c; c = c->next)
			c->mount_until = now_us;
		resplit(b, now_us);
	}
	pthread_mutex_unlock(&b->lock);
}

uint64_t budget_total(struct budget *b)
{
	uint64_t t;

	pthread_mutex_lock(&b->lock);
	t = b->total;
	pthread_mutex_unlock(&b->lock);
	return t;
}

int budget_join(struct budget *b, struct budget_client **out, unsigned weight, uint64_t now_us)
{
	struct budget_client *c = calloc(1, sizeof(*c));

	*out = c;
	if (!c)
		return -ENOMEM;
	c->b = b;
	c->d.weight = weight ? weight : 1;
	ratelimit_init(&c->rl, 0, now_us);
	pthread_mutex_lock(&b->lock);
	c->next = b->clients;
	b->clients = c;
	b->n++;
	pthread_mutex_unlock(&b->lock);
	return 0;
}

void budget_leave(struct budget_client *c)
{
	struct budget *b;

	if (!c)
		return;
	b = c->b;
	pthread_mutex_lock(&b->lock);
	for (struct budget_client **p = &b->clients; *p; p = &(*p)->next) {
		if (*p == c) {
			*p = c->next;
			b->n--;
			break;
		}
	}
	if (c->d.hungry)
		resplit(b, c->rl.last_us);
	pthread_mutex_unlock(&b->lock);
	free(c);
}

void budget_set(struct budget_client *c, unsigned weight, uint64_t cap, bool reserve,
		uint64_t now_us)
{
	struct budget *b = c->b;

	weight = weight ? weight : 1;
	pthread_mutex_lock(&b->lock);
	if (c->d.weight != weight || c->d.cap != cap || c->d.reserve != reserve) {
		c->d.weight = weight;
		c->d.cap = cap;
		c->d.reserve = reserve;
		resplit(b, now_us);
	}
	pthread_mutex_unlock(&b->lock);
}

static void set_hungry_locked(struct budget_client *c, bool hungry, uint64_t now_us)
{
	if (c->d.hungry == hungry)
		return;
	c->d.hungry = hungry;
	c->share = (uint64_t)-1;	/* set again by resplit */
	if (!hungry) {
		/* an idle spell earns nothing: no burst when it ends */
		ratelimit_init(&c->rl, 0, now_us);
		c->mount_until = now_us;
	}
	resplit(c->b, now_us);
}

void budget_set_hungry(struct budget_client *c, bool hungry, uint64_t now_us)
{
	pthread_mutex_lock(&c->b->lock);
	set_hungry_locked(c, hungry, now_us);
	pthread_mutex_unlock(&c->b->lock);
}

void budget_take(struct budget_client *c, uint64_t len, uint64_t now_us)
{
	struct budget *b = c->b;
	uint64_t w;

	pthread_mutex_lock(&b->lock);
	set_hungry_locked(c, true, now_us);
	ratelimit_take(&c->rl, len, now_us);
	if (b->total) {
		/* a place in the mount's line: after what the others took */
		w = ratelimit_take(&b->mount, len, now_us);
		c->mount_until = now_us + w;
	}
	pthread_mutex_unlock(&b->lock);
}

uint64_t budget_wait(struct budget_client *c, uint64_t now_us)
{
	struct budget *b = c->b;
	uint64_t w, m = 0;

	pthread_mutex_lock(&b->lock);
	w = ratelimit_wait(&c->rl, now_us);
	if (b->total && c->mount_until > now_us)
		m = c->mount_until - now_us;
	pthread_mutex_unlock(&b->lock);
	return w > m ? w : m;
}

uint64_t budget_share(struct budget_client *c)
{
	uint64_t s;

	pthread_mutex_lock(&c->b->lock);
	s = c->d.hungry ? c->share : 0;
	pthread_mutex_unlock(&c->b->lock);
	return s;
}
