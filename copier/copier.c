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
#include "copier/copier.h"
#include "copier/ratelimit.h"
#include "delta/delta.h"
#include "target/target.h"

#define MERGE_BATCH	(4u << 20)
#define IDLE_SLEEP_US	20000

struct copier {
	pthread_t thread;
	atomic_bool stop;
	struct delta **files;
	copier_busy_fn busy;		/* how busy the guest is */
	void *busy_arg;
	size_t n;
	struct ratelimit rl;
	atomic_uint_fast64_t rate_bps;	/* measured */
	uint64_t **sums;		/* per file, per chunk; written by the thread only */
	uint64_t *nsums;
	char *buf;
	uint64_t since_yield;		/* bytes moved since the last yield check */
};

/*
 * Rate limit, and make room for the guest: dm-clone pauses hydration while
 * user I/O is in flight; here the copier yields 500 us for every 4 MiB it
 * moves while the guest has requests in flight (per byte, so that a base of
 * many small extents is not slowed more than a contiguous one).  yield is
 * false where the guest's own writes are what the copier must catch up with.
 */
static void pace(struct copier *c, size_t len, bool yield)
{
	uint64_t wait = ratelimit_take(&c->rl, len, now_us());

	c->since_yield += len;
	if (yield && c->since_yield >= COPIER_CHUNK) {
		c->since_yield = 0;
		if (c->busy && c->busy(c->busy_arg) > 0)
			wait += 500;
	}
	while (wait > 0 && !atomic_load(&c->stop)) {
		uint64_t s = wait > 100000 ? 100000 : wait;

		usleep((useconds_t)s);
		wait -= s;
	}
}

/* Copy the base of one file, resuming at its checkpoint.  0, or -errno with
 * the file already failed. */
static int copy_base(struct copier *c, size_t k)
{
	struct delta *m = c->files[k];
	int src = delta_source_fd(m);
	struct target *dst = delta_dest(m);
	uint64_t pos, end, since_ckpt = 0, t0 = now_us(), bytes = 0;
	struct delta_status st;
	int err = 0;

	delta_status(m, &st);
	pos = st.copied - st.copied % COPIER_CHUNK;
	end = st.base_size;
	c->nsums[k] = (end + COPIER_CHUNK - 1) / COPIER_CHUNK;
	c->sums[k] = calloc(c->nsums[k] ? c->nsums[k] : 1, sizeof(uint64_t));
	if (!dst) {
		delta_fail(m, ENODEV, "the destination was lost");
		return -ENODEV;
	}
	posix_fadvise(src, 0, 0, POSIX_FADV_SEQUENTIAL);
	while (pos < end && !atomic_load(&c->stop)) {
		off_t data = lseek(src, (off_t)pos, SEEK_DATA), hole;
		uint64_t cend;
		ssize_t r;

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
		pace(c, cend - pos, true);
		r = pread(src, c->buf, cend - pos, (off_t)pos);
		if (r < 0) {
			err = -errno;
			delta_fail(m, err, "cannot read the source");
			return err;
		}
		if (r == 0)
			break;
		if (pos % COPIER_CHUNK == 0 && (uint64_t)r == (cend - pos) &&
		    (cend - pos == COPIER_CHUNK || cend == end))
			c->sums[k][pos / COPIER_CHUNK] = XXH3_64bits(c->buf, (size_t)r);
		err = target_write_data(dst, c->buf, (size_t)r, pos);
		if (err) {
			delta_fail(m, err, "cannot write the destination");
			return err;
		}
		pos += (uint64_t)r;
		bytes += (uint64_t)r;
		since_ckpt += (uint64_t)r;
		delta_note_progress(m, pos);	/* the checkpoint is below */
		if (since_ckpt >= COPIER_CHECKPOINT) {
			err = target_sync(dst);
			if (err) {
				delta_fail(m, err, "cannot sync the destination");
				return err;
			}
			posix_fadvise(src, (off_t)(pos - since_ckpt), (off_t)since_ckpt,
				      POSIX_FADV_DONTNEED);
			target_drop_cache(dst, pos - since_ckpt, since_ckpt);
			err = delta_note_copied(m, pos);
			if (err) {
				delta_fail(m, err, "cannot write the delta journal");
				return err;
			}
			since_ckpt = 0;
			crashpoint("copier-checkpoint");
		}
		{
			uint64_t dt = now_us() - t0;

			if (dt > 0)
				atomic_store(&c->rate_bps, bytes * 1000000 / dt);
		}
	}
	if (atomic_load(&c->stop))
		return 0;
	/* the destination's size, then make the whole base durable */
	err = target_resize(dst, end);
	if (!err)
		err = target_sync(dst);
	if (err) {
		delta_fail(m, err, "cannot sync the destination");
		return err;
	}
	posix_fadvise(src, 0, 0, POSIX_FADV_DONTNEED);
	target_drop_cache(dst, 0, end);
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
				/* past the ready mark the merge has priority: the
				 * guest is the one being slowed then */
				pace(c, MERGE_BATCH, st.dirty_bytes <= DELTA_READY_BYTES);
				r = delta_merge_some(m, MERGE_BATCH);
				if (r < 0)
					delta_fail(m, (int)r, "merge failed");
				else if (r > 0) {
					work = true;
					crashpoint("merge-batch");
				}
			}
		}
		if (!work)
			usleep(IDLE_SLEEP_US);
	}
	return NULL;
}

int copier_start(struct copier **out, struct delta **files, size_t n, uint64_t rate,
		 copier_busy_fn busy, void *busy_arg)
{
	struct copier *c = calloc(1, sizeof(*c));

	if (!c)
		return -ENOMEM;
	c->files = files;
	c->n = n;
	c->busy = busy;
	c->busy_arg = busy_arg;
	c->sums = calloc(n ? n : 1, sizeof(*c->sums));
	c->nsums = calloc(n ? n : 1, sizeof(*c->nsums));
	if (!c->sums || !c->nsums || posix_memalign((void **)&c->buf, 4096, COPIER_CHUNK))
		goto fail;
	ratelimit_init(&c->rl, rate, now_us());
	if (pthread_create(&c->thread, NULL, copier_main, c))
		goto fail;
	*out = c;
	return 0;
fail:
	free(c->sums);
	free(c->nsums);
	free(c->buf);
	free(c);
	return -ENOMEM;
}

void copier_stop(struct copier *c)
{
	if (!c)
		return;
	atomic_store(&c->stop, true);
	pthread_join(c->thread, NULL);
	for (size_t k = 0; k < c->n; k++)
		free(c->sums[k]);
	free(c->sums);
	free(c->nsums);
	free(c->buf);
	free(c);
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
