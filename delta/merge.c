/*
 * merge: the merge engine: moves D \ M blocks from the delta into the
 * target (the destination, or the source on abort), finishes the target at
 * a switch (size, truncated tails), and compares the destination with the
 * live view for verify.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <linux/falloc.h>
#include <xxhash.h>

#include "common/clock.h"
#include "common/crashpoint.h"
#include "common/log.h"
#include "common/util.h"
#include "delta/delta_i.h"

bool all_zero(const char *p, size_t len)
{
	static const char z[BS];

	while (len >= BS) {
		if (memcmp(p, z, BS))
			return false;
		p += BS;
		len -= BS;
	}
	return len == 0 || memcmp(p, z, len) == 0;
}

/* first block at or after b in D \ M whose record is durable (any, if
 * all), or nbits */
static uint64_t next_dirty(struct delta *d, uint64_t b, bool all)
{
	uint64_t n = d->D.nbits;

	while (b < n) {
		uint64_t w = b / 64;
		uint64_t dd = all ? ~0ull : __atomic_load_n(&d->DD.w[w], __ATOMIC_ACQUIRE);
		uint64_t bits = (__atomic_load_n(&d->D.w[w], __ATOMIC_ACQUIRE) & dd &
				 ~__atomic_load_n(&d->M.w[w], __ATOMIC_RELAXED)) &
				(~0ull << (b % 64));

		if (bits) {
			uint64_t r = w * 64 + (uint64_t)__builtin_ctzll(bits);

			return r < n ? r : n;
		}
		b = (w + 1) * 64;
	}
	return n;
}

/* Merge the dirty blocks of the region holding block b (those with durable
 * records only, unless all).  Caller holds io. */
static ssize_t merge_region(struct delta *d, uint64_t b, char *buf, bool all)
{
	uint64_t rstart = (b >> REGION_SHIFT) << REGION_SHIFT;
	uint64_t rend = rstart + (1u << REGION_SHIFT);
	unsigned ri = region_of(b);
	ssize_t merged = 0;
	int err = 0;

	if (rend > d->D.nbits)
		rend = d->D.nbits;
	pthread_mutex_lock(&d->region[ri]);
	for (uint64_t x = next_dirty(d, rstart, all); x < rend; x = next_dirty(d, x, all)) {
		uint64_t e = x;
		size_t len;

		while (e < rend && bitmap_test(&d->D, e) && (all || bitmap_test(&d->DD, e)) &&
		       !bitmap_test(&d->M, e))
			e++;
		len = (size_t)((e - x) * BS);
		err = pread_full(d->delta_fd, buf, len, (off_t)(x * BS));
		if (err) {
			delta_fail(d, err, "cannot read the delta store");
			break;
		}
		if (all_zero(buf, len)) {
			if (fallocate(d->target_fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
				      (off_t)(x * BS), (off_t)len) == -1)
				err = pwrite_full(d->target_fd, buf, len, (off_t)(x * BS));
		} else {
			err = pwrite_full(d->target_fd, buf, len, (off_t)(x * BS));
		}
		if (err) {
			delta_fail(d, err, d->target_fd == d->src_fd ? "cannot write the source"
								    : "cannot write the destination");
			break;
		}
		bitmap_set_range(&d->M, x, e - x);
		pthread_mutex_lock(&d->mu);
		d->dirty -= e - x;
		pthread_mutex_unlock(&d->mu);
		merged += (ssize_t)len;
		x = e;
	}
	pthread_mutex_unlock(&d->region[ri]);
	return err ? err : merged;
}

/* How long a D range may wait for a guest flush to make it mergeable before
 * the merger syncs the WAL itself. */
#define FORCE_SYNC_US	50000

/*
 * A block may reach the target only once its D bit is durable (bit DD):
 * otherwise a crash could leave the target holding a write the restarted
 * daemon does not know about (it would read the base), and a later switch
 * would change what the guest sees without a write.  The guest's flushes
 * make most blocks durable; when nothing else is mergeable the merger
 * syncs the WAL itself (one cheap fdatasync), at most every FORCE_SYNC_US
 * unless force (a finish must merge everything).
 */
static ssize_t merge_some(struct delta *d, size_t max_bytes, bool all, bool force)
{
	char *buf;
	ssize_t total = 0;

	if (posix_memalign((void **)&buf, 4096, (size_t)BS << REGION_SHIFT))
		return -ENOMEM;
	for (int pass = 0; pass < 2; pass++) {
		uint64_t b = 0;

		if (pass == 1) {
			uint64_t now = now_us();
			int err;

			if (all || total > 0 || !dd_pending(d) ||
			    (!force && now - __atomic_load_n(&d->forced_us, __ATOMIC_RELAXED) <
					       FORCE_SYNC_US))
				break;
			__atomic_store_n(&d->forced_us, now, __ATOMIC_RELAXED);
			delaypoint("merge-force-sync");	/* tests: keep a write unsynced */
			err = wal_sync_all(&d->w);
			if (err) {
				delta_fail(d, err, "cannot sync the delta store");
				total = err;
				break;
			}
		}
		pthread_rwlock_rdlock(&d->io);
		apply_durable(d);
		while ((size_t)total < max_bytes) {
			ssize_t r;

			b = next_dirty(d, b, all);
			if (b >= d->D.nbits)
				break;
			r = merge_region(d, b, buf, all);
			if (r < 0) {
				total = r;
				break;
			}
			total += r;
			b = ((b >> REGION_SHIFT) + 1) << REGION_SHIFT;
		}
		pthread_rwlock_unlock(&d->io);
		if (total < 0)
			break;
	}
	free(buf);
	return total;
}

ssize_t delta_merge_some(struct delta *d, size_t max_bytes)
{
	return merge_some(d, max_bytes, false, false);
}

int delta_finish_target(struct delta *d, enum delta_finish how)
{
	uint64_t size, limit, tsize, a;
	struct stat st;
	ssize_t r;

	do {
		r = merge_some(d, SIZE_MAX, how == DELTA_FINISH_SWITCH, true);
	} while (r > 0);
	if (r < 0)
		return (int)r;
	pthread_mutex_lock(&d->mu);
	r = d->dirty ? -EIO : 0;	/* every block must have been mergeable */
	pthread_mutex_unlock(&d->mu);
	if (r) {
		log_warnx("'%s': blocks left unmerged at the switch", d->name);
		return (int)r;
	}
	snapshot_limits(d, &size, &limit);
	if (fstat(d->target_fd, &st) == -1)
		return -errno;
	tsize = (uint64_t)st.st_size < size ? (uint64_t)st.st_size : size;
	/* past the base limit, blocks outside the delta must read as zeros */
	a = limit;
	if (a % BS && a < tsize && !bitmap_test(&d->D, blk(a))) {
		static const char zeros[BS];
		uint64_t e = (blk(a) + 1) * BS;
		int err = pwrite_full(d->target_fd, zeros, (size_t)((e < tsize ? e : tsize) - a),
				      (off_t)a);

		if (err)
			return err;
	}
	a = blocks_for(a) * BS;
	while (a < tsize) {
		uint64_t b = blk(a), e;

		if (bitmap_test(&d->D, b)) {
			a = bitmap_next_clear(&d->D, b) * BS;
			if (a <= b * BS)
				break;
			continue;
		}
		e = bitmap_next_set(&d->D, b) * BS;
		if (e > tsize || e <= a)
			e = tsize;
		if (fallocate(d->target_fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)a,
			      (off_t)(e - a)) == -1) {
			static const char zeros[BS];

			for (uint64_t x = a; x < e; x += BS) {
				int err = pwrite_full(d->target_fd, zeros,
						      (size_t)(e - x < BS ? e - x : BS), (off_t)x);
				if (err)
					return err;
			}
		}
		a = e;
	}
	if (ftruncate(d->target_fd, (off_t)size) == -1)
		return -errno;
	if (how == DELTA_FINISH_SYNC && fdatasync(d->target_fd) == -1)
		return -errno;
	return 0;
}

void delta_target_source(struct delta *d)
{
	pthread_rwlock_wrlock(&d->io);
	d->target_fd = d->src_fd;
	bitmap_clear_range(&d->M, 0, d->M.nbits);
	pthread_mutex_lock(&d->mu);
	d->dirty = bitmap_count(&d->D);
	pthread_mutex_unlock(&d->mu);
	pthread_rwlock_unlock(&d->io);
}

void delta_target_dest(struct delta *d, enum delta_phase phase)
{
	pthread_rwlock_wrlock(&d->io);
	d->target_fd = d->dst_fd;
	bitmap_clear_range(&d->M, 0, d->M.nbits);
	pthread_mutex_lock(&d->mu);
	d->dirty = bitmap_count(&d->D);
	d->phase = phase;
	pthread_mutex_unlock(&d->mu);
	pthread_rwlock_unlock(&d->io);
}

int delta_verify(struct delta *d, uint64_t *diff_off)
{
	const size_t chunk = 1u << 20;
	char *live = NULL, *dst = NULL;
	uint64_t size, limit;
	int ret = 0;

	if (posix_memalign((void **)&live, 4096, chunk) || posix_memalign((void **)&dst, 4096, chunk)) {
		free(live);
		return -ENOMEM;
	}
	snapshot_limits(d, &size, &limit);
	for (uint64_t off = 0; off < size && !ret; off += chunk) {
		size_t len = size - off < chunk ? (size_t)(size - off) : chunk;
		uint64_t mask;

		/* no writer or merge in this chunk while both sides are read;
		 * io only per chunk, so that a truncate never waits long */
		pthread_rwlock_rdlock(&d->io);
		mask = regions_lock(d, blk(off), blk(off + len - 1));
		snapshot_limits(d, &size, &limit);
		if (off + len > size)
			len = off < size ? (size_t)(size - off) : 0;
		ret = read_live(d, live, len, off, limit);
		if (!ret)
			ret = pread_full(d->dst_fd, dst, len, (off_t)off);
		/* what the destination will hold at cutover: its data, with the
		 * delta blocks it has not merged yet, and zeros past the base
		 * limit outside the delta */
		for (uint64_t b = blk(off); !ret && b * BS < off + len; b++) {
			size_t o = b * BS > off ? (size_t)(b * BS - off) : 0;
			size_t n = len - o < BS ? len - o : BS;

			if (bitmap_test(&d->D, b)) {
				if (!bitmap_test(&d->M, b))
					ret = pread_full(d->delta_fd, dst + o, n, (off_t)(b * BS));
			} else if (off + o + n > limit) {
				size_t z = off + o >= limit ? 0 : (size_t)(limit - off - o);

				memset(dst + o + z, 0, n - z);
			}
		}
		regions_unlock(d, mask);
		pthread_rwlock_unlock(&d->io);
		if (ret)
			break;
		if (!ret && XXH3_64bits(live, len) != XXH3_64bits(dst, len)) {
			size_t i = 0;

			while (i < len && live[i] == dst[i])
				i++;
			*diff_off = off + i;
			ret = 1;
		}
	}
	free(live);
	free(dst);
	return ret;
}