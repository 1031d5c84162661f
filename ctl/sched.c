/*
 * sched: several jobs on one mount.
 *
 *  - Which job a command means: --job NAME, or the only one there is; with
 *    several and no name the command says so rather than guess.
 *  - The queue: at most e->ms.parallel jobs copy their base at once (0: no
 *    limit).  A job that finds no slot waits, recorded but with nothing made,
 *    and the governor starts the waiting jobs in the order they were asked
 *    for as slots free.  A job frees its slot when its base is copied: what
 *    is left until its cutover is merging the guest's writes, which the
 *    budget paces like the rest.
 *  - The governor thread, every GOVERNOR_TICK_US (and when woken): measures
 *    each running job (what it has left to copy and merge, how fast the
 *    guest adds to that, how fast it moves), sets its part of the mount's
 *    budget (copier/budget.h) from its priority, its own limit and its
 *    deadline, and starts queued jobs.
 *  - Deadlines: a job with one asks the budget for the lowest rate that
 *    makes it ready a twentieth of its span early (budget_deadline_rate), ahead
 *    of the jobs without one; the governor recomputes it every tick from what
 *    is left and the guest's measured rate, and says (status, and once in
 *    the log) when the rate needed is more than the job can have.
 *  - limit: the mount's budget, a job's own limit, the number of jobs that
 *    copy at once; each takes effect at once (the copiers ask the budget
 *    again every few tens of milliseconds) and is recorded.
 *
 * The governor reads the jobs under e->lock and never frees one; it starts
 * queued jobs under cmd_lock (taken with trylock: a command in progress
 * only delays it to a later tick).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/clock.h"
#include "common/log.h"
#include "common/util.h"
#include "copier/budget.h"
#include "copier/copier.h"
#include "ctl/engine_i.h"
#include "delta/delta.h"

#define DIRTY_RATE_TAU_US 5000000.0	/* the guest's rate is smoothed over about this */

static uint64_t wall_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

struct job *job_find(struct engine *e, const char *name)
{
	for (size_t k = 0; k < e->njobs; k++)
		if (!strcmp(e->jobs[k]->name, name))
			return e->jobs[k];
	return NULL;
}

int job_resolve(struct engine *e, const char *name, struct job **jp, char **out)
{
	struct job *j;

	*jp = NULL;
	pthread_mutex_lock(&e->lock);
	if (name) {
		j = job_find(e, name);
		if (!j) {
			const struct finished_job *f = NULL;

			for (size_t k = 0; k < e->nfin; k++)
				if (!strcmp(e->fin[k].name, name))
					f = &e->fin[k];
			if (f && !strcmp(f->state, "handed-off"))
				*out = xasprintf("job '%s' is handed off to another host (from '%s'): "
						 "nothing to do", name, f->dest);
			else if (f)
				*out = xasprintf("job '%s' is %s (%s '%s'): nothing to do", name,
						 !strcmp(f->state, "done") ? "cut over" : "aborted",
						 !strcmp(f->state, "done") ? "to" : "it stays on",
						 !strcmp(f->state, "done") ? f->dest : e->root);
			else
				*out = xasprintf("no job '%s' (see status)", name);
			pthread_mutex_unlock(&e->lock);
			return CTL_EFAIL;
		}
	} else if (e->njobs == 1) {
		j = e->jobs[0];
	} else if (e->njobs == 0) {
		pthread_mutex_unlock(&e->lock);
		*out = xasprintf("nothing is migrating");
		return CTL_EFAIL;
	} else {
		char names[256] = "";
		size_t l = 0;

		for (size_t k = 0; k < e->njobs && l < sizeof(names) - 8; k++)
			l += (size_t)snprintf(names + l, sizeof(names) - l, "%s%s", k ? ", " : "",
					      e->jobs[k]->name[0] ? e->jobs[k]->name : "(unnamed)");
		*out = xasprintf("%zu jobs are migrating (%s): say which with --job NAME",
				 e->njobs, names);
		pthread_mutex_unlock(&e->lock);
		return CTL_EUSAGE;
	}
	*jp = j;
	pthread_mutex_unlock(&e->lock);
	return CTL_OK;
}

void job_busy_begin(struct engine *e, struct job *j)
{
	j->busy = true;
	e->busy++;
	pthread_mutex_unlock(&e->cmd_lock);
}

void job_busy_end(struct engine *e, struct job *j)
{
	pthread_mutex_lock(&e->cmd_lock);
	j->busy = false;
	if (--e->busy == 0)
		pthread_cond_broadcast(&e->idle);
}

bool slot_free(struct engine *e)
{
	size_t copying = 0;

	if (!e->ms.parallel)
		return true;
	for (size_t k = 0; k < e->njobs; k++)
		copying += job_copying(e->jobs[k]);
	return copying < e->ms.parallel;
}

/* What a job has left: its files' unmerged bytes, and the base data its
 * copier has still to read (until the copier has scanned for it, the
 * bytes between each copying file's progress and its end). */
static uint64_t measure(struct job *j, struct job_pace *p, struct copier_progress *cp)
{
	uint64_t base_left = 0;

	p->dirty = 0;
	p->copying = false;
	for (size_t i = 0; i < j->n; i++) {
		struct delta_status st;

		delta_status(j->files[i].d, &st);
		p->dirty += st.dirty_bytes;
		if (st.phase == DELTA_COPYING) {
			p->copying = true;
			base_left += st.base_size > st.copied ? st.base_size - st.copied : 0;
		}
	}
	copier_progress(j->copier, cp);
	base_left = cp->scanned ? cp->data_left : base_left;
	p->left = base_left + p->dirty;
	p->rate = cp->rate;
	return base_left;
}

void job_pace_update(struct engine *e, struct job *j, uint64_t now)
{
	struct job_pace *p = &j->pace;
	struct copier_progress cp;
	uint64_t prev_dirty = p->dirty, prev_merged = p->merged, cap = j->rate, total, wnow, base;
	bool was_late = p->late;
	char lb[96];

	if (j->state == JOB_QUEUED) {
		/* what it would need if it started now, for status */
		wnow = wall_us();
		p->needed = 0;
		if (j->deadline_ms && j->deadline_ms * 1000 > wnow)
			p->needed = (uint64_t)((double)j->planned * 1e6 /
					       (double)(j->deadline_ms * 1000 - wnow));
		total = budget_total(e->budget);
		p->late = j->deadline_ms && (!p->needed || (j->rate && p->needed > j->rate) ||
					     (total && p->needed > total));
		goto warn;
	}
	if (j->state != JOB_RUNNING)
		return;
	base = measure(j, p, &cp);
	p->merged = p->merged_before + cp.merged;
	if (p->t_us && now > p->t_us && j->copier) {
		/* the guest adds to what is unmerged; merges take from it */
		double dt = (double)(now - p->t_us), made;

		made = (double)p->dirty - (double)prev_dirty + (double)(p->merged - prev_merged);
		if (made < 0)
			made = 0;
		p->dirty_rate = (uint64_t)((double)p->dirty_rate +
					   (made * 1e6 / dt - (double)p->dirty_rate) * dt /
						   (DIRTY_RATE_TAU_US + dt));
	}
	p->t_us = now;
	p->deadline_rate = p->needed = 0;
	p->late = false;
	if (j->deadline_ms) {
		wnow = wall_us();
		/* ready leaves DELTA_READY_BYTES a file unmerged: aim below */
		p->deadline_rate = budget_deadline_rate(j->since_ms * 1000, j->deadline_ms * 1000,
							wnow, base, p->dirty, p->dirty_rate,
							(uint64_t)j->n * DELTA_READY_BYTES * 3 / 4,
							&p->needed);
		if (p->deadline_rate && (!cap || p->deadline_rate < cap))
			cap = p->deadline_rate;
	}
	if (j->bc) {
		budget_set(j->bc, j->priority, cap, p->deadline_rate != 0, now);
		p->share = budget_share(j->bc);
	}
	if (j->deadline_ms) {
		bool ready = !p->copying && p->dirty <= (uint64_t)j->n * DELTA_READY_BYTES;

		total = budget_total(e->budget);
		if (!p->deadline_rate)
			p->late = !ready;	/* passed */
		else
			p->late = (j->rate && p->needed > j->rate) || (total && p->needed > total) ||
				  (p->share && p->needed > p->share + p->share / 50);
	}
	/* until ready: what is left over what the job gains on the guest */
	{
		uint64_t eff = p->rate ? p->rate : p->share, allow = (uint64_t)j->n * DELTA_READY_BYTES;

		if (!p->copying && p->dirty <= allow)
			p->eta_s = 0;
		else if (eff > p->dirty_rate)
			p->eta_s = (int64_t)((p->left > allow ? p->left - allow : p->left) /
					     (eff - p->dirty_rate)) + 1;
		else
			p->eta_s = -1;
	}
warn:
	if (p->late && !was_late)
		log_warnx("%s cannot be ready by its deadline: it needs %" PRIu64 " bytes/s%s",
			  job_label(j, lb, sizeof(lb)), p->needed,
			  p->needed ? "" : " (the deadline has passed)");
}

/* Start queued jobs while slots are free (cmd_lock not held). */
static void start_queued(struct engine *e)
{
	if (pthread_mutex_trylock(&e->cmd_lock))
		return;	/* a command runs: at a later tick */
	for (;;) {
		struct job *j = NULL;
		char *out = NULL, lb[96];

		pthread_mutex_lock(&e->lock);
		for (size_t k = 0; k < e->njobs && !j; k++)
			if (e->jobs[k]->state == JOB_QUEUED)
				j = e->jobs[k];
		if (j && (e->stopping || e->handing_over || !slot_free(e)))
			j = NULL;
		pthread_mutex_unlock(&e->lock);
		if (!j)
			break;
		if (job_start(e, j, &out))
			job_start_failed(e, j, out ? out : "out of memory");
		else
			log_info("%s started: %zu file(s) to '%s'", job_label(j, lb, sizeof(lb)), j->n,
				 j->dest);
		free(out);
	}
	pthread_mutex_unlock(&e->cmd_lock);
}

static void *governor_main(void *arg)
{
	struct engine *e = arg;

	pthread_mutex_lock(&e->lock);
	while (!e->stopping) {
		uint64_t now = now_us();
		bool start = false;
		struct timespec ts;

		for (size_t k = 0; k < e->njobs; k++) {
			job_pace_update(e, e->jobs[k], now);
			if (e->jobs[k]->state == JOB_QUEUED)
				start = true;
		}
		start = start && slot_free(e);
		pthread_mutex_unlock(&e->lock);
		if (start)
			start_queued(e);
		pthread_mutex_lock(&e->lock);
		if (e->stopping)
			break;
		clock_gettime(CLOCK_MONOTONIC, &ts);
		ts.tv_nsec += GOVERNOR_TICK_US * 1000L;
		ts.tv_sec += ts.tv_nsec / 1000000000L;
		ts.tv_nsec %= 1000000000L;
		pthread_cond_timedwait(&e->wake, &e->lock, &ts);
	}
	pthread_mutex_unlock(&e->lock);
	return NULL;
}

int governor_start(struct engine *e)
{
	if (e->governor_running)
		return 0;
	if (pthread_create(&e->governor, NULL, governor_main, e))
		return -EAGAIN;
	e->governor_running = true;
	return 0;
}

void governor_wake(struct engine *e)
{
	pthread_mutex_lock(&e->lock);
	pthread_cond_broadcast(&e->wake);
	pthread_mutex_unlock(&e->lock);
}

void governor_stop(struct engine *e)
{
	pthread_mutex_lock(&e->lock);
	e->stopping = true;
	pthread_cond_broadcast(&e->wake);
	pthread_mutex_unlock(&e->lock);
	if (e->governor_running)
		pthread_join(e->governor, NULL);
	e->governor_running = false;
}

static const char *fmt_rate(uint64_t r, char *buf, size_t len)
{
	if (!r)
		snprintf(buf, len, "none");
	else if (r >= (1u << 20))
		snprintf(buf, len, "%.1f MiB/s", (double)r / (1u << 20));
	else
		snprintf(buf, len, "%.1f KiB/s", (double)r / 1024);
	return buf;
}

/* What the limits are now (e->lock held). */
static char *limits_text(struct engine *e)
{
	char b[32], r[32];
	char *s, *line;
	size_t running = 0, queued = 0;

	for (size_t k = 0; k < e->njobs; k++) {
		running += e->jobs[k]->state == JOB_RUNNING;
		queued += e->jobs[k]->state == JOB_QUEUED;
	}
	s = xasprintf("budget: %s for every job's copies and merges; %s%u job(s) copy at once; "
		      "%zu running, %zu queued", fmt_rate(e->ms.budget, b, sizeof(b)),
		      e->ms.parallel ? "at most " : "no limit on how many: ", e->ms.parallel,
		      running, queued);
	for (size_t k = 0; s && k < e->njobs; k++) {
		struct job *j = e->jobs[k];

		if (!j->rate)
			continue;
		line = xasprintf("%s\n%s: limited to %s", s, j->name[0] ? j->name : "(unnamed)",
				 fmt_rate(j->rate, r, sizeof(r)));
		free(s);
		s = line;
	}
	return s;
}

int cmd_limit(struct engine *e, const struct ctl_request *req, char **out)
{
	char r[32], lb[96];
	int ret = CTL_OK, err = state_dir(e);

	if (err < 0) {
		*out = xasprintf("cannot create the state directory in '%s': %s", e->source,
				 strerror(-err));
		return CTL_EFAIL;
	}
	err = 0;
	pthread_mutex_lock(&e->lock);
	if (req->job) {
		struct job *j = job_find(e, req->job);

		if (!j || j->state == JOB_FAILED) {
			*out = xasprintf("no job '%s' is migrating (see status)", req->job);
			ret = CTL_EFAIL;
			goto out;
		}
		j->rate = req->limit;
		if (ms_find_job(&e->ms, j->id))
			err = job_to_ms(&e->ms, j, j->state == JOB_QUEUED);
		if (!err)
			err = save_record(e);
		job_pace_update(e, j, now_us());
		if (req->limit)
			*out = xasprintf("%s: limited to %s", job_label(j, lb, sizeof(lb)),
					 fmt_rate(req->limit, r, sizeof(r)));
		else
			*out = xasprintf("%s: no limit of its own (the budget's share)",
					 job_label(j, lb, sizeof(lb)));
	} else if (req->has_limit || req->parallel >= 0) {
		if (req->has_limit) {
			e->ms.budget = req->limit;
			budget_set_total(e->budget, req->limit, now_us());
		}
		if (req->parallel >= 0)
			e->ms.parallel = (unsigned)req->parallel;
		err = save_record(e);
		*out = limits_text(e);
	} else {
		*out = limits_text(e);
	}
	if (err) {
		free(*out);
		*out = xasprintf("the limit applies now, but the state record could not be written "
				 "(a restart would forget it): %s", strerror(-err));
		ret = CTL_EFAIL;
	}
out:
	pthread_cond_broadcast(&e->wake);
	pthread_mutex_unlock(&e->lock);
	return ret;
}
