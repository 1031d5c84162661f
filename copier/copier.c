/*
 * copier: background base copy and merge (see copier.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <xxhash.h>

#include "common/clock.h"
#include "common/crashpoint.h"
#include "common/log.h"
#include "copier/budget.h"
#include "copier/copier.h"
#include "copier/ratelimit.h"
#include "delta/delta.h"

#define IDLE_SLEEP_US	20000
#define WAIT_SLICE_US	50000	/* a budget changed meanwhile applies after this */

struct copier {
	pthread_t thread;
	atomic_bool stop;
	struct delta **files;
	struct budget_client *bc;	/* may be NULL */
	copier_busy_fn busy;		/* how busy the guest is */
	void *busy_arg;
	size_t n;
	bool hungry;			/* as the budget was told; the thread's */
	struct ratemeter meter;		/* the thread's */
	atomic_uint_fast64_t rate_bps;	/* published from the meter */
	atomic_uint_fast64_t copied, merged;
	atomic_bool scanned;
	atomic_uint_fast64_t *data_left;	/* per file */
	uint64_t **sums;		/* per file, per chunk; written by the thread only */
	uint64_t *nsums;
	char *buf;			/* COPIER_PIECE, aligned */
	XXH3_state_t *xs;		/* the sum of the chunk being copied */
	uint64_t since_yield;		/* bytes moved since the last yield check */
};

static void publish_rate(struct copier *c)
{
	atomic_store(&c->rate_bps, ratemeter_rate(&c->meter, now_us()));
}

static void moved(struct copier *c, uint64_t len)
{
	ratemeter_add(&c->meter, len, now_us());
	publish_rate(c);
}

static void set_hungry(struct copier *c, bool hungry)
{
	if (c->hungry == hungry || !c->bc)
		return;
	c->hungry = hungry;
	budget_set_hungry(c->bc, hungry, now_us());
}

/*
 * Pay the budget, and make room for the guest: dm-clone pauses hydration
 * while user I/O is in flight; here the copier yields 500 us for every
 * 4 MiB it moves while the guest has requests in flight (per byte, so that
 * a base of many small extents is not slowed more than a contiguous one).
 * yield is false where the guest's own writes are what the copier must
 * catch up with.  The wait is asked for again every slice: a budget
 * lowered meanwhile applies to the rest of it.
 */
static void pace(struct copier *c, size_t len, bool yield)
{
	if (c->bc) {
		budget_take(c->bc, len, now_us());	/* hungry from now on */
		c->hungry = true;
	}
	c->since_yield += len;
	if (yield && c->since_yield >= COPIER_CHUNK) {
		c->since_yield = 0;
		if (c->busy && c->busy(c->busy_arg) > 0)
			usleep(500);
	}
	while (c->bc && !atomic_load(&c->stop)) {
		uint64_t wait = budget_wait(c->bc, now_us());

		if (!wait)
			break;
		usleep((useconds_t)(wait > WAIT_SLICE_US ? WAIT_SLICE_US : wait));
		publish_rate(c);
	}
}

/* The base data left to copy in file k from byte pos on (SEEK_DATA and
 * SEEK_HOLE: what the copier will read). */
static uint64_t data_from(struct copier *c, size_t k, uint64_t pos, uint64_t end)
{
	int src = delta_source_fd(c->files[k]);
	uint64_t sum = 0;

	while (pos < end) {
		off_t data = lseek(src, (off_t)pos, SEEK_DATA), hole;

		if (data < 0 || (uint64_t)data >= end)
			break;
		hole = lseek(src, data, SEEK_HOLE);
		if (hole < 0 || (uint64_t)hole > end)
			hole = (off_t)end;
		sum += (uint64_t)(hole - data);
		pos = (uint64_t)hole;
	}
	return sum;
}

/* What is left to copy, for the deadlines of the job engine. */
static void scan(struct copier *c)
{
	for (size_t k = 0; k < c->n && !atomic_load(&c->stop); k++) {
		struct delta_status st;

		delta_status(c->files[k], &st);
		if (st.phase == DELTA_COPYING)
			atomic_store(&c->data_left[k],
				     data_from(c, k, st.copied - st.copied % COPIER_CHUNK, st.base_size));
	}
	atomic_store(&c->scanned, true);
}

static void note_copied(struct copier *c, size_t k, uint64_t len)
{
	uint64_t left = atomic_load(&c->data_left[k]);

	atomic_store(&c->data_left[k], left > len ? left - len : 0);
	atomic_fetch_add(&c->copied, len);
	moved(c, len);
}

static bool zero_chunk(const char *p, size_t len)
{
	const uint64_t *w = (const uint64_t *)p;

	for (size_t i = 0; i < len / 8; i++)
		if (w[i])
			return false;
	for (size_t i = len & ~(size_t)7; i < len; i++)
		if (p[i])
			return false;
	return true;
}

/* Write the blocks of buf that hold data; all-zero blocks stay holes in the
 * destination (sparse-aware at 4 KiB, like cp --sparse=always). */
static int write_nonzero(int fd, const char *buf, size_t len, uint64_t off)
{
	const size_t bs = 4096;
	size_t i = 0;

	while (i < len) {
		size_t s, e;
		ssize_t w;

		while (i < len && zero_chunk(buf + i, len - i < bs ? len - i : bs))
			i += bs;
		if (i >= len)
			break;
		s = i;
		while (i < len && !zero_chunk(buf + i, len - i < bs ? len - i : bs))
			i += bs;
		e = i < len ? i : len;
		w = pwrite(fd, buf + s, e - s, (off_t)(off + s));
		if (w != (ssize_t)(e - s))
			return w < 0 ? -errno : -ENOSPC;
	}
	return 0;
}

/* Copy the base of one file, resuming at its checkpoint.  0, or -errno with
 * the file already failed. */
static int copy_base(struct copier *c, size_t k)
{
	struct delta *m = c->files[k];
	int src = delta_source_fd(m), dst = delta_dest_fd(m);
	uint64_t pos, end, since_ckpt = 0;
	struct delta_status st;
	bool eof = false;
	int err = 0;

	delta_status(m, &st);
	pos = st.copied - st.copied % COPIER_CHUNK;
	end = st.base_size;
	c->nsums[k] = (end + COPIER_CHUNK - 1) / COPIER_CHUNK;
	free(c->sums[k]);
	c->sums[k] = calloc(c->nsums[k] ? c->nsums[k] : 1, sizeof(uint64_t));
	posix_fadvise(src, 0, 0, POSIX_FADV_SEQUENTIAL);
	while (pos < end && !eof && !atomic_load(&c->stop)) {
		off_t data = lseek(src, (off_t)pos, SEEK_DATA), hole;
		uint64_t cend, cstart;
		bool whole;

		if (data < 0) {
			if (errno == ENXIO)
				break;	/* only a hole is left */
			err = -errno;
			delta_fail(m, err, "cannot read the source");
			return err;
		}
		if ((uint64_t)data >= end)
			break;
		/* chunk boundaries stay aligned so that sums name whole chunks */
		if ((uint64_t)data > pos)
			pos = (uint64_t)data - (uint64_t)data % COPIER_CHUNK > pos
				      ? (uint64_t)data - (uint64_t)data % COPIER_CHUNK
				      : pos;
		hole = lseek(src, (off_t)pos, SEEK_HOLE);
		cend = (pos / COPIER_CHUNK + 1) * COPIER_CHUNK;
		if (cend > end)
			cend = end;
		if (hole > 0 && (uint64_t)hole > pos && (uint64_t)hole < cend &&
		    (uint64_t)hole % 4096 == 0)
			cend = (uint64_t)hole;
		/* a sum names a whole chunk, read from its start to its end */
		cstart = pos;
		whole = c->sums[k] && pos % COPIER_CHUNK == 0 &&
			(cend - pos == COPIER_CHUNK || cend == end);
		XXH3_64bits_reset(c->xs);
		while (pos < cend && !atomic_load(&c->stop)) {
			size_t len = cend - pos < COPIER_PIECE ? (size_t)(cend - pos) : COPIER_PIECE;
			ssize_t r;

			pace(c, len, true);
			if (atomic_load(&c->stop))
				break;
			r = pread(src, c->buf, len, (off_t)pos);
			if (r < 0) {
				err = -errno;
				delta_fail(m, err, "cannot read the source");
				return err;
			}
			if (r == 0) {
				eof = true;
				break;
			}
			XXH3_64bits_update(c->xs, c->buf, (size_t)r);
			err = write_nonzero(dst, c->buf, (size_t)r, pos);
			if (err) {
				delta_fail(m, err, "cannot write the destination");
				return err;
			}
			pos += (uint64_t)r;
			since_ckpt += (uint64_t)r;
			delta_note_progress(m, pos);	/* the checkpoint is below */
			note_copied(c, k, (uint64_t)r);
		}
		if (whole && pos == cend)
			c->sums[k][cstart / COPIER_CHUNK] = XXH3_64bits_digest(c->xs);
		if (since_ckpt >= COPIER_CHECKPOINT) {
			if (fdatasync(dst) == -1) {
				err = -errno;
				delta_fail(m, err, "cannot sync the destination");
				return err;
			}
			posix_fadvise(src, (off_t)(pos - since_ckpt), (off_t)since_ckpt,
				      POSIX_FADV_DONTNEED);
			posix_fadvise(dst, (off_t)(pos - since_ckpt), (off_t)since_ckpt,
				      POSIX_FADV_DONTNEED);
			err = delta_note_copied(m, pos);
			if (err) {
				delta_fail(m, err, "cannot write the delta journal");
				return err;
			}
			since_ckpt = 0;
			crashpoint("copier-checkpoint");
		}
	}
	if (atomic_load(&c->stop))
		return 0;
	/* the destination's size, then make the whole base durable */
	if (ftruncate(dst, (off_t)end) == -1 || fdatasync(dst) == -1) {
		err = -errno;
		delta_fail(m, err, "cannot sync the destination");
		return err;
	}
	posix_fadvise(src, 0, 0, POSIX_FADV_DONTNEED);
	posix_fadvise(dst, 0, 0, POSIX_FADV_DONTNEED);
	atomic_store(&c->data_left[k], 0);
	err = delta_note_copied(m, end);
	if (!err)
		err = delta_set_phase(m, DELTA_MERGING);
	if (err)
		delta_fail(m, err, "cannot write the delta journal");
	return err;
}

static void *copier_main(void *arg)
{
	struct copier *c = arg;

	scan(c);
	while (!atomic_load(&c->stop)) {
		bool work = false;

		for (size_t k = 0; k < c->n && !atomic_load(&c->stop); k++) {
			struct delta *m = c->files[k];
			struct delta_status st;
			ssize_t r;

			delta_status(m, &st);
			if (st.phase == DELTA_COPYING) {
				copy_base(c, k);
				work = true;
			} else if (st.phase == DELTA_MERGING && st.dirty_bytes) {
				r = delta_merge_some(m, COPIER_PIECE);
				if (r < 0) {
					delta_fail(m, (int)r, "merge failed");
				} else if (r > 0) {
					work = true;
					atomic_fetch_add(&c->merged, (uint64_t)r);
					moved(c, (uint64_t)r);
					crashpoint("merge-batch");
					/* past the ready mark the merge has priority:
					 * the guest is the one being slowed then */
					pace(c, (size_t)r, st.dirty_bytes <= DELTA_READY_BYTES);
				}
			}
		}
		if (!work) {
			/* nothing moved (blocks whose records are not durable
			 * are not mergeable yet): the others have the share */
			set_hungry(c, false);
			usleep(IDLE_SLEEP_US);
			publish_rate(c);
		}
	}
	return NULL;
}

int copier_start(struct copier **out, struct delta **files, size_t n, struct budget_client *bc,
		 copier_busy_fn busy, void *busy_arg)
{
	struct copier *c = calloc(1, sizeof(*c));

	if (!c)
		return -ENOMEM;
	c->files = files;
	c->n = n;
	c->bc = bc;
	c->busy = busy;
	c->busy_arg = busy_arg;
	ratemeter_init(&c->meter, now_us());
	c->sums = calloc(n ? n : 1, sizeof(*c->sums));
	c->nsums = calloc(n ? n : 1, sizeof(*c->nsums));
	c->data_left = calloc(n ? n : 1, sizeof(*c->data_left));
	c->xs = XXH3_createState();
	if (!c->sums || !c->nsums || !c->data_left || !c->xs ||
	    posix_memalign((void **)&c->buf, 4096, COPIER_PIECE))
		goto fail;
	if (pthread_create(&c->thread, NULL, copier_main, c))
		goto fail;
	*out = c;
	return 0;
fail:
	free(c->sums);
	free(c->nsums);
	free((void *)c->data_left);
	XXH3_freeState(c->xs);
	free(c->buf);
	free(c);
	return -ENOMEM;
}

void copier_stop(struct copier *c, struct copier_progress *last)
{
	if (last)
		memset(last, 0, sizeof(*last));
	if (!c)
		return;
	atomic_store(&c->stop, true);
	pthread_join(c->thread, NULL);
	if (last)
		copier_progress(c, last);
	if (c->bc && c->hungry)
		budget_set_hungry(c->bc, false, now_us());
	for (size_t k = 0; k < c->n; k++)
		free(c->sums[k]);
	free(c->sums);
	free(c->nsums);
	free((void *)c->data_left);
	XXH3_freeState(c->xs);
	free(c->buf);
	free(c);
}

void copier_progress(struct copier *c, struct copier_progress *p)
{
	memset(p, 0, sizeof(*p));
	if (!c)
		return;
	p->rate = atomic_load(&c->rate_bps);
	p->copied = atomic_load(&c->copied);
	p->merged = atomic_load(&c->merged);
	p->scanned = atomic_load(&c->scanned);
	for (size_t k = 0; p->scanned && k < c->n; k++)
		p->data_left += atomic_load(&c->data_left[k]);
}

uint64_t copier_rate(struct copier *c)
{
	return c ? atomic_load(&c->rate_bps) : 0;
}

uint64_t copier_chunk_sum(struct copier *c, size_t k, uint64_t i)
{
	if (!c || k >= c->n || !c->sums[k] || i >= c->nsums[k])
		return 0;
	return c->sums[k][i];
}
