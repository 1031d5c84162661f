/*
 * view: the live view of a migrating file: reads as delta over base,
 * writes into the delta (filling partial blocks from the base first), size
 * changes, holes, flushes; and the fallback that writes the source in place
 * when the delta refuses a write (see the essay in store.c).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <linux/falloc.h>

#include "common/log.h"
#include "common/util.h"
#include "delta/delta_i.h"

#define THROTTLE_SLEEP_US 2000

/* Lock the regions of blocks [b0, b1] in ascending index order. */
uint64_t regions_lock(struct delta *d, uint64_t b0, uint64_t b1)
{
	uint64_t mask = 0;

	if (((b1 >> REGION_SHIFT) - (b0 >> REGION_SHIFT)) >= REGIONS)
		mask = ~0ull;
	else
		for (uint64_t r = b0 >> REGION_SHIFT; r <= b1 >> REGION_SHIFT; r++)
			mask |= 1ull << (r % REGIONS);
	for (unsigned i = 0; i < REGIONS; i++)
		if (mask & (1ull << i))
			pthread_mutex_lock(&d->region[i]);
	return mask;
}

void regions_unlock(struct delta *d, uint64_t mask)
{
	for (unsigned i = REGIONS; i-- > 0;)
		if (mask & (1ull << i))
			pthread_mutex_unlock(&d->region[i]);
}

/* ---- helpers on the live view ----------------------------------------------- */

/* Read bytes [off, off+len) of block-aligned-or-not range from the base,
 * with zeros past base_limit.  Caller holds io. */
static int read_base(struct delta *d, char *buf, size_t len, uint64_t off, uint64_t limit)
{
	size_t n = 0;

	if (off < limit)
		n = limit - off < len ? (size_t)(limit - off) : len;
	if (n) {
		int err = pread_full(d->src_fd, buf, n, (off_t)off);

		if (err)
			return err;
	}
	memset(buf + n, 0, len - n);
	return 0;
}

/* live view of [off, off+len), no EOF clipping; caller holds io */
int read_live(struct delta *d, char *buf, size_t len, uint64_t off, uint64_t limit)
{
	uint64_t end = off + len;

	while (off < end) {
		uint64_t b = blk(off);
		bool in_delta = bitmap_test(&d->D, b);
		uint64_t next = in_delta ? bitmap_next_clear(&d->D, b) : bitmap_next_set(&d->D, b);
		uint64_t run_end = next * BS < end ? next * BS : end;
		int err;

		if (run_end <= off)
			run_end = end;	/* past the bitmap: no delta there */
		if (in_delta)
			err = pread_full(d->delta_fd, buf, run_end - off, (off_t)off);
		else
			err = read_base(d, buf, run_end - off, off, limit);
		if (err)
			return err;
		buf += run_end - off;
		off = run_end;
	}
	return 0;
}

ssize_t delta_read(struct delta *d, char *buf, size_t len, off_t off)
{
	uint64_t size, limit;
	int err;

	pthread_rwlock_rdlock(&d->io);
	snapshot_limits(d, &size, &limit);
	if ((uint64_t)off >= size) {
		pthread_rwlock_unlock(&d->io);
		return 0;
	}
	if (len > size - (uint64_t)off)
		len = size - (uint64_t)off;
	err = read_live(d, buf, len, (uint64_t)off, limit);
	pthread_rwlock_unlock(&d->io);
	return err ? err : (ssize_t)len;
}

/* Make sure the bitmaps cover block b (takes io exclusively if they must grow). */
static int ensure_blocks(struct delta *d, uint64_t nblocks)
{
	int err = 0;

	pthread_rwlock_rdlock(&d->io);
	if (d->D.nbits >= nblocks)
		return 0;	/* returns with io held shared */
	pthread_rwlock_unlock(&d->io);
	pthread_rwlock_wrlock(&d->io);
	err = bitmaps_fit(d, nblocks);
	pthread_rwlock_unlock(&d->io);
	if (err)
		return err;
	pthread_rwlock_rdlock(&d->io);
	return 0;
}

/* the live view's last write time (the size is set as the write is logged) */
static void touch(struct delta *d)
{
	pthread_mutex_lock(&d->mu);
	clock_gettime(CLOCK_REALTIME, &d->mtime);
	d->mtime_set = true;
	pthread_mutex_unlock(&d->mu);
}

/* Blocks [b0, b1] now hold their latest data in the delta.  Caller holds the
 * regions.  True if any of them was not in D before. */
static bool mark_delta(struct delta *d, uint64_t b0, uint64_t b1)
{
	uint64_t newly_dirty = 0;
	bool new_d = false;

	for (uint64_t b = b0; b <= b1; b++) {
		bool in_d = bitmap_test(&d->D, b), mm = bitmap_test(&d->M, b);

		if (!in_d)
			new_d = true;
		if (!in_d || mm)
			newly_dirty++;
	}
	bitmap_set_range(&d->D, b0, b1 - b0 + 1);
	bitmap_clear_range(&d->M, b0, b1 - b0 + 1);
	if (newly_dirty) {
		pthread_mutex_lock(&d->mu);
		d->dirty += newly_dirty;
		pthread_mutex_unlock(&d->mu);
	}
	return new_d;
}

/* Log blocks [b0, b1], just written (buf: the bytes at off; NULL: zeros),
 * as they now are in the delta.  Caller holds the regions. */
static int log_write(struct delta *d, const char *buf, size_t len, uint64_t off, uint64_t b0,
		     uint64_t b1, bool new_d)
{
	uint64_t start = b0 * BS, end = (b1 + 1) * BS;
	char *whole = NULL;
	const char *src;
	int err = 0;

	if (!buf) {
		struct wr r = { .type = WR_ZERO, .off = off, .len = len, .size = off + len };
		struct jr j = { .type = JR_SET_DE, .a = b0, .b = b1 - b0 + 1 };

		return store_log(d, &r, NULL, 0, &j, new_d, b0, new_d ? b1 - b0 + 1 : 0);
	}
	if (off == start && off + len == end) {
		src = buf;	/* a guest's aligned write: its buffer is the payload */
	} else {
		/* the edges were filled from the base or were in the delta: the
		 * blocks are read back whole */
		whole = malloc(end - start);
		if (!whole)
			return -ENOMEM;
		err = pread_full(d->delta_fd, whole, end - start, (off_t)start);
		if (err) {
			free(whole);
			return err;
		}
		src = whole;
	}
	for (uint64_t a = start; !err && a < end; a += WAL_MAX_PAYLOAD) {
		uint64_t n = end - a < WAL_MAX_PAYLOAD ? end - a : WAL_MAX_PAYLOAD;
		struct iovec v = { .iov_base = (void *)(src + (a - start)), .iov_len = n };
		struct wr r = { .type = WR_DATA, .off = a, .len = n,
				.size = a + n < off + len ? a + n : off + len };
		struct jr j = { .type = JR_SET_DE, .a = a / BS, .b = n / BS };

		err = store_log(d, &r, &v, 1, &j, new_d, a / BS, new_d ? n / BS : 0);
	}
	free(whole);
	return err;
}

/* Fill block b in the delta with its current live content (before a partial
 * write to a block that is not in the delta yet). */
static int prefill_block(struct delta *d, uint64_t b, uint64_t limit, char *tmp)
{
	int err = read_base(d, tmp, BS, b * BS, limit);

	return err ? err : pwrite_full(d->delta_fd, tmp, BS, (off_t)(b * BS));
}

/*
 * The delta refused a write: fail the migration and put the data in the
 * source instead (see the essay at the top).  Caller holds the regions.
 */
static int write_source_in_place(struct delta *d, const char *buf, size_t len, uint64_t off,
				 int why)
{
	uint64_t b0 = blk(off), b1 = blk(off + len - 1), size, limit;
	char tmp[BS];
	int err = 0;

	snapshot_limits(d, &size, &limit);
	pthread_mutex_lock(&d->mu);
	if (!(d->phase == DELTA_FAILED && d->error[0] == '!')) {
		/* '!' marks "the source has been written": only abort is left */
		snprintf(d->error, sizeof(d->error), "!delta store refused a write: %s; "
			 "writes now go to the source, abort to finish", strerror(-why));
		d->phase = DELTA_FAILED;
		log_warnx("'%s': delta store refused a write (%s); writing the source in place",
			  d->name, strerror(-why));
		/* in the journal at the next checkpoint; the WAL's CLEAR_D
		 * record says the same to a replay before that */
		journal_add(&d->j, JR_PHASE, DELTA_FAILED, 1);
	}
	pthread_mutex_unlock(&d->mu);
	/* edge blocks that live in the delta go back to the source first, so
	 * that the bytes this write does not cover stay right */
	uint64_t edges[2] = { b0, b1 };

	for (int i = 0; i < (b0 == b1 ? 1 : 2); i++) {
		uint64_t b = edges[i];

		if (!bitmap_test(&d->D, b))
			continue;
		err = pread_full(d->delta_fd, tmp, BS, (off_t)(b * BS));
		if (!err)
			err = pwrite_full(d->src_fd, tmp, BS, (off_t)(b * BS));
		if (err)
			return err;
	}
	if (off + len > limit) {
		/* past the base limit the source holds stale bytes (the guest
		 * truncated them away): cut them before this write extends the
		 * visible base, so that the bytes in between read as zeros */
		struct stat st;

		pthread_mutex_lock(&d->mu);
		limit = d->base_limit;
		if (off + len > limit) {
			if (fstat(d->src_fd, &st) == 0 && (uint64_t)st.st_size > limit &&
			    ftruncate(d->src_fd, (off_t)limit) == -1)
				err = -errno;
			if (!err)
				err = pwrite_full(d->src_fd, buf, len, (off_t)off);
			if (!err)
				d->base_limit = off + len;
			pthread_mutex_unlock(&d->mu);
			if (err)
				return err;
			goto written;
		}
		pthread_mutex_unlock(&d->mu);
	}
	err = pwrite_full(d->src_fd, buf, len, (off_t)off);
	if (err)
		return err;
written:
	/* the data durable before the record that sends reads of these
	 * blocks to the source can be: a rare, slow path */
	if (fdatasync(d->src_fd) == -1)
		return -errno;
	apply_durable(d);	/* so that no queued range sets these again */
	dd_forget(d, b0, b1 - b0 + 1);
	{
		/* blocks leaving D \ M leave the merger's count with it: a
		 * finish that found it above zero would call them unmergeable */
		uint64_t gone = 0;

		for (uint64_t b = b0; b <= b1; b++)
			gone += bitmap_test(&d->D, b) && !bitmap_test(&d->M, b);
		pthread_mutex_lock(&d->mu);
		d->dirty -= gone < d->dirty ? gone : d->dirty;
		pthread_mutex_unlock(&d->mu);
	}
	bitmap_clear_range(&d->D, b0, b1 - b0 + 1);
	bitmap_clear_range(&d->M, b0, b1 - b0 + 1);
	bitmap_clear_range(&d->DD, b0, b1 - b0 + 1);
	snapshot_limits(d, &size, &limit);
	{
		struct wr r = { .type = WR_CLEAR_D, .off = b0 * BS, .len = (b1 - b0 + 1) * BS,
				.size = off + len, .limit = limit };
		struct jr j = { .type = JR_CLEAR_D, .a = b0, .b = b1 - b0 + 1 };

		return store_log(d, &r, NULL, 0, &j, 1, 0, 0);
	}
}

/*
 * Slow a guest write down while the merge is behind: nothing below
 * DELTA_THROTTLE_BYTES unmerged, then a delay that grows linearly to
 * THROTTLE_SLEEP_US at twice that, so that the guest settles where the
 * merge keeps up instead of stopping and starting.
 */
static void throttle(struct delta *d)
{
	uint64_t dirty, us = 0;

	pthread_mutex_lock(&d->mu);
	dirty = d->dirty * BS;
	if (d->phase == DELTA_MERGING && dirty > DELTA_THROTTLE_BYTES) {
		uint64_t excess = dirty - DELTA_THROTTLE_BYTES;

		us = excess >= DELTA_THROTTLE_BYTES ? THROTTLE_SLEEP_US
						  : 50 + excess * THROTTLE_SLEEP_US / DELTA_THROTTLE_BYTES;
		d->throttle_events++;
	}
	d->throttled = us > 0;
	pthread_mutex_unlock(&d->mu);
	if (us)
		usleep((useconds_t)us);
}

/* Write buf (NULL: zeros, punched in the delta) to the live view. */
static ssize_t live_write(struct delta *d, const char *buf, size_t len, uint64_t off)
{
	uint64_t b0, b1, mask, size, limit;
	char tmp[BS];
	int err;

	if (len == 0)
		return 0;
	b0 = blk(off);
	b1 = blk(off + len - 1);
	err = ensure_blocks(d, b1 + 1);
	if (err)
		return err;
	throttle(d);
	mask = regions_lock(d, b0, b1);
	snapshot_limits(d, &size, &limit);
	if (source_fallback(d)) {
		err = -ENOSPC;
		goto fallback;
	}
	/* partial edge blocks not in the delta: fill them from the base first */
	if (off % BS && !bitmap_test(&d->D, b0))
		err = prefill_block(d, b0, limit, tmp);
	if (!err && (off + len) % BS && !bitmap_test(&d->D, b1) && (b1 != b0 || off % BS == 0))
		err = prefill_block(d, b1, limit, tmp);
	if (!err) {
		if (buf) {
			err = pwrite_full(d->delta_fd, buf, len, (off_t)off);
		} else {
			if (fallocate(d->delta_fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
				      (off_t)off, (off_t)len) == -1)
				err = -errno;
			/* a hole past the delta's end reads as zeros already */
		}
	}
	if (err)
		goto fallback;
	err = log_write(d, buf, len, off, b0, b1, mark_delta(d, b0, b1));
	regions_unlock(d, mask);
	pthread_rwlock_unlock(&d->io);
	if (err) {
		/* the data is in the delta and reads see it, but no replay
		 * would: the store cannot vouch for it any more */
		delta_fail(d, err, "cannot write the delta store's log");
		return err == -ENOMEM ? err : -EIO;
	}
	touch(d);
	return (ssize_t)len;
fallback:
	if (err == -ENOSPC || err == -EIO || err == -EDQUOT || err == -EROFS) {
		static const char zeros[1 << 20];
		int why = err;

		/* zeros go in 1 MiB pieces (the regions stay locked for all) */
		err = 0;
		for (uint64_t done = 0; !err && done < len;) {
			size_t n = buf || len - done <= sizeof(zeros) ? (size_t)(len - done) : sizeof(zeros);

			err = write_source_in_place(d, buf ? buf + done : zeros, n, off + done, why);
			done += n;
		}
	}
	regions_unlock(d, mask);
	pthread_rwlock_unlock(&d->io);
	if (err)
		return err;
	touch(d);
	return (ssize_t)len;
}

ssize_t delta_write(struct delta *d, const char *buf, size_t len, off_t off)
{
	return live_write(d, buf, len, (uint64_t)off);
}

int delta_truncate(struct delta *d, off_t size_)
{
	uint64_t size = (uint64_t)size_, cur, limit;
	int err = 0;

	pthread_rwlock_wrlock(&d->io);
	apply_durable(d);	/* before the truncation clears the bits */
	err = bitmaps_fit(d, blocks_for(size));
	if (err)
		goto out;
	snapshot_limits(d, &cur, &limit);
	if (size < cur) {
		uint64_t keep = blocks_for(size);

		/* the delta past the new end reads as zeros from now on */
		if (ftruncate(d->delta_fd, (off_t)size) == -1) {
			err = -errno;
			goto out;
		}
		if (keep < d->D.nbits) {
			bitmap_clear_range(&d->D, keep, d->D.nbits - keep);
			bitmap_clear_range(&d->M, keep, d->M.nbits - keep);
			bitmap_clear_range(&d->DD, keep, d->DD.nbits - keep);
			dd_forget(d, keep, d->D.nbits - keep);
		}
		/* the block the new end cuts through changed in the delta (its
		 * tail is zeros now): the target must get it again */
		if (size % BS)
			bitmap_clear_range(&d->M, blk(size), 1);
		if (size < limit)
			limit = size;
		pthread_mutex_lock(&d->mu);
		d->dirty = 0;
		for (uint64_t w = 0; w < d->D.nwords; w++)
			d->dirty += (uint64_t)__builtin_popcountll(d->D.w[w] & ~d->M.w[w]);
		pthread_mutex_unlock(&d->mu);
	}
	{
		struct wr r = { .type = WR_SIZE, .size = size, .limit = limit };
		struct jr j = { .type = JR_SIZE, .a = size, .b = limit };
		char tail[BS];
		struct iovec v = { .iov_base = tail, .iov_len = BS };
		bool cut = size < cur && size % BS && bitmap_test(&d->D, blk(size));

		/* a block the new end cuts through is logged whole, as it now
		 * is: a replay must not cut whatever later writes left there */
		if (cut) {
			memset(tail, 0, BS);
			if (pread(d->delta_fd, tail, size % BS, (off_t)(blk(size) * BS)) < 0)
				err = -errno;
		}
		if (!err)
			err = store_log(d, &r, &v, cut, &j, 1, 0, 0);
	}
	if (err) {
		delta_fail(d, err, "cannot write the delta store's log");
		goto out;
	}
	pthread_mutex_lock(&d->mu);
	d->journal_size = size;
	d->journal_limit = limit;
	pthread_mutex_unlock(&d->mu);
	touch(d);
out:
	pthread_rwlock_unlock(&d->io);
	return err;
}

int delta_fallocate(struct delta *d, int mode, off_t off, off_t len)
{
	uint64_t size, limit, end = (uint64_t)off + (uint64_t)len;
	bool keep = mode & FALLOC_FL_KEEP_SIZE;

	if (off < 0 || len <= 0)
		return -EINVAL;
	if (mode & ~(FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE | FALLOC_FL_ZERO_RANGE))
		return -EOPNOTSUPP;
	if ((mode & FALLOC_FL_PUNCH_HOLE) && !keep)
		return -EINVAL;
	snapshot_limits(d, &size, &limit);
	if (mode & (FALLOC_FL_PUNCH_HOLE | FALLOC_FL_ZERO_RANGE)) {
		uint64_t zend = end > size ? size : end;
		uint64_t a = (uint64_t)off;

		/*
		 * Grow first: what lies past the old end reads as zeros, and
		 * every record the zeroing logs then carries the final size,
		 * so a crash in between shows each block old or zeroed, never
		 * a size the file never had.
		 */
		if (!keep && end > size) {
			int err = delta_truncate(d, (off_t)end);

			if (err)
				return err;
		}

		/* edges as written zeros, whole blocks as holes in the delta */
		while (a < zend) {
			uint64_t bend = (a / BS + 1) * BS;
			uint64_t n;
			ssize_t r;

			if (a % BS == 0 && zend - a >= BS)
				n = (zend / BS) * BS - a;
			else
				n = (bend < zend ? bend : zend) - a;
			if (a % BS == 0 && n % BS == 0) {
				r = live_write(d, NULL, n, a);
			} else {
				static const char zeros[BS];

				r = live_write(d, zeros, n, a);
			}
			if (r < 0)
				return (int)r;
			a += n;
		}
		return 0;
	}
	/* preallocation: the live view only changes size */
	if (!keep && end > size)
		return delta_truncate(d, (off_t)end);
	return 0;
}

int delta_fsync(struct delta *d, bool datasync)
{
	/* every write answered before this call was logged below here */
	int err = store_flush(d, wal_head(&d->w));

	if (err) {
		static long last;

		if (log_ratelimited(&last))
			log_warnx("'%s': flush failed: %s", d->name, strerror(-err));
		/* after a failed sync the kernel may have dropped the dirty
		 * pages: the delta store can no longer vouch for its data */
		delta_fail(d, err, "cannot sync the delta store");
		return err == -ENOSPC ? -ENOSPC : -EIO;
	}
	return 0;
}

off_t delta_lseek(struct delta *d, off_t off_, int whence)
{
	uint64_t size, limit, pos = (uint64_t)off_;
	off_t ret;

	if (whence != SEEK_DATA && whence != SEEK_HOLE)
		return -EINVAL;
	pthread_rwlock_rdlock(&d->io);
	snapshot_limits(d, &size, &limit);
	if (off_ < 0 || pos >= size) {
		ret = -ENXIO;
		goto out;
	}
	if (whence == SEEK_DATA) {
		uint64_t nd = bitmap_next_set(&d->D, blk(pos)), best = UINT64_MAX;

		if (nd < d->D.nbits)
			best = nd * BS > pos ? nd * BS : pos;
		if (pos < limit) {
			off_t r = lseek(d->src_fd, (off_t)pos, SEEK_DATA);

			if (r >= 0 && (uint64_t)r < limit && (uint64_t)r < best)
				best = (uint64_t)r;
		}
		ret = best < size ? (off_t)best : -ENXIO;
		goto out;
	}
	while (pos < size) {
		off_t h;

		if (bitmap_test(&d->D, blk(pos))) {
			uint64_t c = bitmap_next_clear(&d->D, blk(pos)) * BS;

			pos = c > pos ? c : pos + 1;
			continue;
		}
		if (pos >= limit)
			break;
		h = lseek(d->src_fd, (off_t)pos, SEEK_HOLE);
		if (h < 0 || (uint64_t)h > limit)
			h = (off_t)limit;
		if ((uint64_t)h <= pos)
			break;
		pos = (uint64_t)h;
	}
	ret = (off_t)(pos < size ? pos : size);
out:
	pthread_rwlock_unlock(&d->io);
	return ret;
}

void delta_getattr(struct delta *d, struct stat *st)
{
	pthread_rwlock_rdlock(&d->io);	/* D may be growing under io */
	pthread_mutex_lock(&d->mu);
	st->st_size = (off_t)d->size;
	st->st_blocks += (blkcnt_t)(bitmap_count(&d->D) * (BS / 512));
	if (d->mtime_set) {
		st->st_mtim = d->mtime;
		st->st_ctim = d->mtime;
	}
	pthread_mutex_unlock(&d->mu);
	pthread_rwlock_unlock(&d->io);
}