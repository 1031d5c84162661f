/*
 * migrate: the live view, delta store and merge engine of one migrating
 * file (see migrate.h for the model).
 *
 * Crash safety of the delta store
 * --------------------------------
 * Files: "<id>.delta" (sparse, same offsets as the image) and "<id>.journal"
 * (copier/journal.h) in the job's delta directory.  The journal records, in
 * order: the base size and how far the base copy is durable (JR_COPIED), the
 * live size and base limit (JR_SIZE), the phase (JR_PHASE), blocks that now
 * live in the delta (JR_SET_DE) and blocks that went back to the source
 * (JR_CLEAR_D, only after a delta failure).
 *
 * A guest write puts its data in the delta file, then sets the D bits in
 * memory (so reads see it), then queues a JR_SET_DE record.  A guest flush
 * (fsync, fdatasync, O_SYNC/O_DSYNC write) takes the queued records, then
 * fdatasyncs the delta (and the source, see below), then appends the records
 * and fdatasyncs the journal, and only then replies.  Every record therefore
 * describes data that was durable before the record was: after a crash at
 * any point, replay yields a D bitmap whose blocks all hold the data the
 * guest last flushed, or newer; blocks the guest had not flushed read either
 * their old or their new content.  A torn record ends the replay (its flush
 * was never acknowledged).
 *
 * The base copy is checkpointed with JR_COPIED only after the destination
 * was fdatasynced up to that offset, so a restarted copier may copy a chunk
 * twice but never skips one.  M (what the destination already holds of the
 * delta) lives only in memory: after a restart every D block is merged
 * again.  The merger takes only blocks whose records are durable (DD), so
 * that the destination never holds a write the journal could forget; the
 * one exception is the cutover's hold (MIG_FINISH_SWITCH), which merges
 * everything without a commit, and is safe because a restart that finds the
 * cutover unfinished rolls the job back to the source (relocate.c).
 *
 * If the delta cannot take a write (full, failing), the migration fails and
 * the write goes to the source in place instead, after filling the block
 * from the delta; the block's D bit is cleared and a JR_CLEAR_D record
 * queued, and flushes then also fdatasync the source.  From then on the
 * source is no longer a frozen base, so the migration can only be aborted.
 * The journal is preallocated so that appending records does not need free
 * space.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <linux/falloc.h>
#include <xxhash.h>

#include "fs/crashpoint.h"
#include "fs/log.h"
#include "fs/migrate.h"

#define BS MIG_BLOCK
#define JOURNAL_PREALLOC MIG_JOURNAL_PREALLOC
#define THROTTLE_SLEEP_US 2000

static uint64_t blk(uint64_t off)
{
	return off / BS;
}

static uint64_t blocks_for(uint64_t size)
{
	return (size + BS - 1) / BS;
}

static unsigned region_of(uint64_t b)
{
	return (unsigned)((b >> MIG_REGION_SHIFT) % MIG_REGIONS);
}

/* Lock the regions of blocks [b0, b1] in ascending index order. */
static uint64_t regions_lock(struct migration *m, uint64_t b0, uint64_t b1)
{
	uint64_t mask = 0;

	if (((b1 >> MIG_REGION_SHIFT) - (b0 >> MIG_REGION_SHIFT)) >= MIG_REGIONS)
		mask = ~0ull;
	else
		for (uint64_t r = b0 >> MIG_REGION_SHIFT; r <= b1 >> MIG_REGION_SHIFT; r++)
			mask |= 1ull << (r % MIG_REGIONS);
	for (unsigned i = 0; i < MIG_REGIONS; i++)
		if (mask & (1ull << i))
			pthread_mutex_lock(&m->region[i]);
	return mask;
}

static void regions_unlock(struct migration *m, uint64_t mask)
{
	for (unsigned i = MIG_REGIONS; i-- > 0;)
		if (mask & (1ull << i))
			pthread_mutex_unlock(&m->region[i]);
}

static int pread_full(int fd, char *buf, size_t len, off_t off)
{
	size_t done = 0;

	while (done < len) {
		ssize_t r = pread(fd, buf + done, len - done, off + (off_t)done);

		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (r == 0) {
			memset(buf + done, 0, len - done);	/* past EOF reads as zeros */
			break;
		}
		done += (size_t)r;
	}
	return 0;
}

static int pwrite_full(int fd, const char *buf, size_t len, off_t off)
{
	size_t done = 0;

	while (done < len) {
		ssize_t r = pwrite(fd, buf + done, len - done, off + (off_t)done);

		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		done += (size_t)r;
	}
	return 0;
}

static bool all_zero(const char *p, size_t len)
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

/* ---- life cycle ------------------------------------------------------------ */

/* Records just made durable: their D blocks may now reach the target. */
static void on_durable(void *arg, const struct jr *recs, size_t n)
{
	struct migration *m = arg;
	size_t k = 0;

	/*
	 * Not applied here: a write may be growing the bitmaps (realloc) under
	 * io exclusive, and this runs under the journal's write lock, which
	 * holders of io wait for.  Queued instead, and applied by the next
	 * holder of io (apply_durable); until then the blocks are merely not
	 * mergeable yet.
	 */
	pthread_mutex_lock(&m->mu);
	for (size_t i = 0; i < n; i++)
		if (recs[i].type == JR_SET_DE || recs[i].type == JR_CLEAR_D)
			k++;
	if (k && m->dd_n + k > m->dd_cap) {
		size_t cap = (m->dd_n + k) * 2;
		struct jr *q = realloc(m->dd_q, cap * sizeof(*q));

		if (q) {
			m->dd_q = q;
			m->dd_cap = cap;
		}
	}
	for (size_t i = 0; i < n && m->dd_n < m->dd_cap; i++)
		if (recs[i].type == JR_SET_DE || recs[i].type == JR_CLEAR_D)
			m->dd_q[m->dd_n++] = recs[i];
	/* out of memory: the blocks left out stay unmergeable until written
	 * again or merged by the cutover's hold, which merges everything */
	pthread_mutex_unlock(&m->mu);
}

/* Apply the records made durable since the last call to DD.  Caller holds
 * io (shared or exclusive), so the bitmaps cannot move. */
static void apply_durable(struct migration *m)
{
	pthread_mutex_lock(&m->mu);
	for (size_t i = 0; i < m->dd_n; i++) {
		if (m->dd_q[i].type == JR_SET_DE)
			bitmap_set_range(&m->DD, m->dd_q[i].a, m->dd_q[i].b);
		else
			bitmap_clear_range(&m->DD, m->dd_q[i].a, m->dd_q[i].b);
	}
	m->dd_n = 0;
	pthread_mutex_unlock(&m->mu);
}

static void journal_hook(struct migration *m)
{
	m->j.on_durable = on_durable;
	m->j.on_durable_arg = m;
}

static struct migration *mig_alloc(const char *rel, unsigned id, int src_fd, int dst_fd, int dirfd)
{
	struct migration *m = calloc(1, sizeof(*m));
	pthread_rwlockattr_t ra;

	if (!m)
		return NULL;
	m->relpath = strdup(rel);
	if (!m->relpath) {
		free(m);
		return NULL;
	}
	m->id = id;
	m->src_fd = src_fd;
	m->dst_fd = dst_fd;
	m->target_fd = dst_fd;
	m->dirfd = dirfd;
	m->delta_fd = -1;
	m->j.fd = -1;
	pthread_rwlockattr_init(&ra);
	/* the merger and size changes must not starve behind a stream of I/O */
	pthread_rwlockattr_setkind_np(&ra, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
	pthread_rwlock_init(&m->io, &ra);
	pthread_rwlockattr_destroy(&ra);
	for (unsigned i = 0; i < MIG_REGIONS; i++)
		pthread_mutex_init(&m->region[i], NULL);
	pthread_mutex_init(&m->mu, NULL);
	return m;
}

static int bitmaps_fit(struct migration *m, uint64_t nblocks)
{
	uint64_t want = nblocks + 256;	/* room for small extensions without a resize */

	if (m->D.nbits >= nblocks)
		return 0;
	if (bitmap_resize(&m->D, want) || bitmap_resize(&m->M, want) || bitmap_resize(&m->DD, want))
		return -ENOMEM;
	return 0;
}

static void delta_name(unsigned id, const char *ext, char buf[32])
{
	snprintf(buf, 32, "%u.%s", id, ext);
}

static int journal_prealloc(struct migration *m)
{
	/* records then overwrite allocated space: a full delta store cannot
	 * stop them */
	if (fallocate(m->j.fd, FALLOC_FL_KEEP_SIZE, 0, JOURNAL_PREALLOC) == -1 &&
	    errno != EOPNOTSUPP)
		return -errno;
	return 0;
}

int mig_create(struct migration **out, const char *rel, unsigned id, int src_fd, int dst_fd,
	       int dirfd)
{
	struct migration *m;
	struct stat st;
	char name[32];
	int err;

	if (fstat(src_fd, &st) == -1)
		return -errno;
	m = mig_alloc(rel, id, src_fd, dst_fd, dirfd);
	if (!m)
		return -ENOMEM;
	m->size = m->base_size = m->base_limit = m->journal_size = (uint64_t)st.st_size;
	m->phase = MIG_COPYING;
	err = bitmaps_fit(m, blocks_for(m->size));
	if (err)
		goto fail;
	delta_name(id, "delta", name);
	m->delta_fd = openat(dirfd, name, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (m->delta_fd == -1) {
		err = -errno;
		goto fail;
	}
	delta_name(id, "journal", name);
	unlinkat(dirfd, name, 0);
	err = journal_create(dirfd, name, &m->j);
	if (!err)
		journal_hook(m);
	if (!err)
		err = journal_prealloc(m);
	if (!err)
		err = journal_add(&m->j, JR_COPIED, 0, m->base_size);
	if (!err)
		err = journal_add(&m->j, JR_SIZE, m->size, m->base_limit);
	/* b = 0: created, the base not frozen yet (see mig_rebase) */
	if (!err)
		err = journal_add(&m->j, JR_PHASE, MIG_COPYING, 0);
	if (!err)
		err = journal_commit(&m->j, NULL, NULL);
	if (err)
		goto fail;
	*out = m;
	return 0;
fail:
	m->src_fd = m->dst_fd = m->dirfd = -1;	/* the caller keeps its descriptors */
	mig_free(m, true);
	return err;
}

static int replay_one(void *arg, const struct jr *r)
{
	struct migration *m = arg;

	switch (r->type) {
	case JR_SET_DE:
		if (bitmaps_fit(m, r->a + r->b))
			return -ENOMEM;
		bitmap_set_range(&m->D, r->a, r->b);
		break;
	case JR_CLEAR_D:
		bitmap_clear_range(&m->D, r->a, r->b);
		break;
	case JR_SIZE:
		m->size = m->journal_size = r->a;
		m->base_limit = r->b;
		if (bitmaps_fit(m, blocks_for(r->a)))
			return -ENOMEM;
		if (blocks_for(r->a) < m->D.nbits)
			bitmap_clear_range(&m->D, blocks_for(r->a), m->D.nbits - blocks_for(r->a));
		break;
	case JR_PHASE:
		m->phase = (enum mig_phase)r->a;
		m->started = r->b != 0;
		break;
	case JR_COPIED:
		m->copied = r->a;
		m->base_size = r->b;
		break;
	default:
		break;	/* JR_SET_E: written by older versions only */
	}
	return 0;
}

int mig_open(struct migration **out, const char *rel, unsigned id, int src_fd, int dst_fd,
	     int dirfd)
{
	struct migration *m = mig_alloc(rel, id, src_fd, dst_fd, dirfd);
	char name[32];
	int err;

	if (!m)
		return -ENOMEM;
	delta_name(id, "delta", name);
	m->delta_fd = openat(dirfd, name, O_RDWR | O_CLOEXEC);
	if (m->delta_fd == -1) {
		err = -errno;
		goto fail;
	}
	delta_name(id, "journal", name);
	err = journal_open(dirfd, name, &m->j, replay_one, m);
	if (err)
		goto fail;
	journal_hook(m);
	/* everything replayed is durable */
	for (uint64_t w = 0; w < m->D.nwords; w++)
		m->DD.w[w] = m->D.w[w];
	if (m->phase == MIG_CUTOVER)
		m->phase = MIG_MERGING;	/* the switch did not happen: still merging */
	if (!m->started) {
		/* the daemon died between recording the job and freezing the
		 * base: no write went to the delta, the source is the truth */
		err = mig_rebase(m);
		if (err)
			goto fail;
	}
	if (m->phase == MIG_FAILED)
		snprintf(m->error, sizeof(m->error),
			 "failed before a restart: the source was written in place; abort to finish");
	m->dirty = bitmap_count(&m->D);
	*out = m;
	return 0;
fail:
	m->src_fd = m->dst_fd = m->dirfd = -1;
	mig_free(m, false);
	return err;
}

void mig_free(struct migration *m, bool unlink_delta)
{
	char name[32];

	if (!m)
		return;
	if (m->j.fd != -1 || m->j.pending)
		journal_close(&m->j);
	if (m->delta_fd != -1)
		close(m->delta_fd);
	if (unlink_delta && m->dirfd != -1) {
		delta_name(m->id, "delta", name);
		unlinkat(m->dirfd, name, 0);
		delta_name(m->id, "journal", name);
		unlinkat(m->dirfd, name, 0);
	}
	if (m->src_fd != -1)
		close(m->src_fd);
	if (m->dst_fd != -1)
		close(m->dst_fd);
	bitmap_free(&m->D);
	bitmap_free(&m->M);
	bitmap_free(&m->DD);
	free(m->dd_q);
	pthread_rwlock_destroy(&m->io);
	for (unsigned i = 0; i < MIG_REGIONS; i++)
		pthread_mutex_destroy(&m->region[i]);
	pthread_mutex_destroy(&m->mu);
	free(m->relpath);
	free(m);
}

/* ---- helpers on the live view ----------------------------------------------- */

/* Read bytes [off, off+len) of block-aligned-or-not range from the base,
 * with zeros past base_limit.  Caller holds io. */
static int read_base(struct migration *m, char *buf, size_t len, uint64_t off, uint64_t limit)
{
	size_t n = 0;

	if (off < limit)
		n = limit - off < len ? (size_t)(limit - off) : len;
	if (n) {
		int err = pread_full(m->src_fd, buf, n, (off_t)off);

		if (err)
			return err;
	}
	memset(buf + n, 0, len - n);
	return 0;
}

static void snapshot_limits(struct migration *m, uint64_t *size, uint64_t *limit)
{
	pthread_mutex_lock(&m->mu);
	*size = m->size;
	*limit = m->base_limit;
	pthread_mutex_unlock(&m->mu);
}

/* live view of [off, off+len), no EOF clipping; caller holds io */
static int read_live(struct migration *m, char *buf, size_t len, uint64_t off, uint64_t limit)
{
	uint64_t end = off + len;

	while (off < end) {
		uint64_t b = blk(off);
		bool in_delta = bitmap_test(&m->D, b);
		uint64_t next = in_delta ? bitmap_next_clear(&m->D, b) : bitmap_next_set(&m->D, b);
		uint64_t run_end = next * BS < end ? next * BS : end;
		int err;

		if (run_end <= off)
			run_end = end;	/* past the bitmap: no delta there */
		if (in_delta)
			err = pread_full(m->delta_fd, buf, run_end - off, (off_t)off);
		else
			err = read_base(m, buf, run_end - off, off, limit);
		if (err)
			return err;
		buf += run_end - off;
		off = run_end;
	}
	return 0;
}

ssize_t mig_read(struct migration *m, char *buf, size_t len, off_t off)
{
	uint64_t size, limit;
	int err;

	pthread_rwlock_rdlock(&m->io);
	snapshot_limits(m, &size, &limit);
	if ((uint64_t)off >= size) {
		pthread_rwlock_unlock(&m->io);
		return 0;
	}
	if (len > size - (uint64_t)off)
		len = size - (uint64_t)off;
	err = read_live(m, buf, len, (uint64_t)off, limit);
	pthread_rwlock_unlock(&m->io);
	return err ? err : (ssize_t)len;
}

/* Make sure the bitmaps cover block b (takes io exclusively if they must grow). */
static int ensure_blocks(struct migration *m, uint64_t nblocks)
{
	int err = 0;

	pthread_rwlock_rdlock(&m->io);
	if (m->D.nbits >= nblocks)
		return 0;	/* returns with io held shared */
	pthread_rwlock_unlock(&m->io);
	pthread_rwlock_wrlock(&m->io);
	err = bitmaps_fit(m, nblocks);
	pthread_rwlock_unlock(&m->io);
	if (err)
		return err;
	pthread_rwlock_rdlock(&m->io);
	return 0;
}

static void touch(struct migration *m, uint64_t end)
{
	pthread_mutex_lock(&m->mu);
	if (end > m->size)
		m->size = end;
	clock_gettime(CLOCK_REALTIME, &m->mtime);
	m->mtime_set = true;
	pthread_mutex_unlock(&m->mu);
}

/* Blocks [b0, b1] now hold their latest data in the delta.  Caller holds the
 * regions.  Queues a journal record if any bit was new. */
static int mark_delta(struct migration *m, uint64_t b0, uint64_t b1)
{
	uint64_t newly_dirty = 0;
	bool new_d = false;

	for (uint64_t b = b0; b <= b1; b++) {
		bool d = bitmap_test(&m->D, b), mm = bitmap_test(&m->M, b);

		if (!d)
			new_d = true;
		if (!d || mm)
			newly_dirty++;
	}
	bitmap_set_range(&m->D, b0, b1 - b0 + 1);
	bitmap_clear_range(&m->M, b0, b1 - b0 + 1);
	if (newly_dirty) {
		pthread_mutex_lock(&m->mu);
		m->dirty += newly_dirty;
		pthread_mutex_unlock(&m->mu);
	}
	return new_d ? journal_add(&m->j, JR_SET_DE, b0, b1 - b0 + 1) : 0;
}

/* Fill block b in the delta with its current live content (before a partial
 * write to a block that is not in the delta yet). */
static int prefill_block(struct migration *m, uint64_t b, uint64_t limit, char *tmp)
{
	int err = read_base(m, tmp, BS, b * BS, limit);

	return err ? err : pwrite_full(m->delta_fd, tmp, BS, (off_t)(b * BS));
}

static bool source_fallback(struct migration *m)
{
	bool f;

	pthread_mutex_lock(&m->mu);
	f = m->phase == MIG_FAILED && m->error[0] == '!';
	pthread_mutex_unlock(&m->mu);
	return f;
}

/*
 * The delta refused a write: fail the migration and put the data in the
 * source instead (see the essay at the top).  Caller holds the regions.
 */
static int write_source_in_place(struct migration *m, const char *buf, size_t len, uint64_t off,
				 int why)
{
	uint64_t b0 = blk(off), b1 = blk(off + len - 1), size, limit;
	char tmp[BS];
	int err = 0;

	snapshot_limits(m, &size, &limit);
	pthread_mutex_lock(&m->mu);
	if (!(m->phase == MIG_FAILED && m->error[0] == '!')) {
		/* '!' marks "the source has been written": only abort is left */
		snprintf(m->error, sizeof(m->error), "!delta store refused a write: %s; "
			 "writes now go to the source, abort to finish", strerror(-why));
		m->phase = MIG_FAILED;
		log_warnx("'%s': delta store refused a write (%s); writing the source in place",
			  m->relpath, strerror(-why));
		/* durable with the flush that acknowledges this write, before the
		 * records that move its blocks to the source */
		journal_add(&m->j, JR_PHASE, MIG_FAILED, 1);
	}
	pthread_mutex_unlock(&m->mu);
	/* edge blocks that live in the delta go back to the source first, so
	 * that the bytes this write does not cover stay right */
	uint64_t edges[2] = { b0, b1 };

	for (int i = 0; i < (b0 == b1 ? 1 : 2); i++) {
		uint64_t b = edges[i];

		if (!bitmap_test(&m->D, b))
			continue;
		err = pread_full(m->delta_fd, tmp, BS, (off_t)(b * BS));
		if (!err)
			err = pwrite_full(m->src_fd, tmp, BS, (off_t)(b * BS));
		if (err)
			return err;
	}
	if (off + len > limit) {
		/* past the base limit the source holds stale bytes (the guest
		 * truncated them away): cut them before this write extends the
		 * visible base, so that the bytes in between read as zeros */
		struct stat st;

		pthread_mutex_lock(&m->mu);
		limit = m->base_limit;
		if (off + len > limit) {
			if (fstat(m->src_fd, &st) == 0 && (uint64_t)st.st_size > limit &&
			    ftruncate(m->src_fd, (off_t)limit) == -1)
				err = -errno;
			if (!err)
				err = pwrite_full(m->src_fd, buf, len, (off_t)off);
			if (!err)
				m->base_limit = off + len;
			pthread_mutex_unlock(&m->mu);
			if (err)
				return err;
			goto written;
		}
		pthread_mutex_unlock(&m->mu);
	}
	err = pwrite_full(m->src_fd, buf, len, (off_t)off);
	if (err)
		return err;
written:
	apply_durable(m);	/* so that no queued record sets these again */
	bitmap_clear_range(&m->D, b0, b1 - b0 + 1);
	bitmap_clear_range(&m->M, b0, b1 - b0 + 1);
	bitmap_clear_range(&m->DD, b0, b1 - b0 + 1);
	return journal_add(&m->j, JR_SIZE, m->size, m->base_limit) ?:
	       journal_add(&m->j, JR_CLEAR_D, b0, b1 - b0 + 1);
}

/*
 * Slow a guest write down while the merge is behind: nothing below
 * MIG_THROTTLE_BYTES unmerged, then a delay that grows linearly to
 * THROTTLE_SLEEP_US at twice that, so that the guest settles where the
 * merge keeps up instead of stopping and starting.
 */
static void throttle(struct migration *m)
{
	uint64_t dirty, us = 0;

	pthread_mutex_lock(&m->mu);
	dirty = m->dirty * BS;
	if (m->phase == MIG_MERGING && dirty > MIG_THROTTLE_BYTES) {
		uint64_t excess = dirty - MIG_THROTTLE_BYTES;

		us = excess >= MIG_THROTTLE_BYTES ? THROTTLE_SLEEP_US
						  : 50 + excess * THROTTLE_SLEEP_US / MIG_THROTTLE_BYTES;
		m->throttle_events++;
	}
	m->throttled = us > 0;
	pthread_mutex_unlock(&m->mu);
	if (us)
		usleep((useconds_t)us);
}

/* Write buf (NULL: zeros, punched in the delta) to the live view. */
static ssize_t live_write(struct migration *m, const char *buf, size_t len, uint64_t off)
{
	uint64_t b0, b1, mask, size, limit;
	char tmp[BS];
	int err;

	if (len == 0)
		return 0;
	b0 = blk(off);
	b1 = blk(off + len - 1);
	err = ensure_blocks(m, b1 + 1);
	if (err)
		return err;
	throttle(m);
	mask = regions_lock(m, b0, b1);
	snapshot_limits(m, &size, &limit);
	if (source_fallback(m)) {
		err = -ENOSPC;
		goto fallback;
	}
	/* partial edge blocks not in the delta: fill them from the base first */
	if (off % BS && !bitmap_test(&m->D, b0))
		err = prefill_block(m, b0, limit, tmp);
	if (!err && (off + len) % BS && !bitmap_test(&m->D, b1) && (b1 != b0 || off % BS == 0))
		err = prefill_block(m, b1, limit, tmp);
	if (!err) {
		if (buf) {
			err = pwrite_full(m->delta_fd, buf, len, (off_t)off);
		} else {
			if (fallocate(m->delta_fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
				      (off_t)off, (off_t)len) == -1)
				err = -errno;
			/* a hole past the delta's end reads as zeros already */
		}
	}
	if (err)
		goto fallback;
	err = mark_delta(m, b0, b1);
	regions_unlock(m, mask);
	pthread_rwlock_unlock(&m->io);
	if (err)
		return err;
	touch(m, off + len);
	return (ssize_t)len;
fallback:
	if (err == -ENOSPC || err == -EIO || err == -EDQUOT || err == -EROFS) {
		static const char zeros[1 << 20];
		int why = err;

		/* zeros go in 1 MiB pieces (the regions stay locked for all) */
		err = 0;
		for (uint64_t done = 0; !err && done < len;) {
			size_t n = buf || len - done <= sizeof(zeros) ? (size_t)(len - done) : sizeof(zeros);

			err = write_source_in_place(m, buf ? buf + done : zeros, n, off + done, why);
			done += n;
		}
	}
	regions_unlock(m, mask);
	pthread_rwlock_unlock(&m->io);
	if (err)
		return err;
	touch(m, off + len);
	return (ssize_t)len;
}

ssize_t mig_write(struct migration *m, const char *buf, size_t len, off_t off)
{
	return live_write(m, buf, len, (uint64_t)off);
}

int mig_truncate(struct migration *m, off_t size_)
{
	uint64_t size = (uint64_t)size_;
	int err = 0;

	pthread_rwlock_wrlock(&m->io);
	apply_durable(m);	/* before the truncation clears the bits */
	err = bitmaps_fit(m, blocks_for(size));
	if (err)
		goto out;
	pthread_mutex_lock(&m->mu);
	if (size < m->size) {
		uint64_t keep = blocks_for(size);

		pthread_mutex_unlock(&m->mu);
		/* the delta past the new end reads as zeros from now on */
		if (ftruncate(m->delta_fd, (off_t)size) == -1) {
			err = -errno;
			goto out;
		}
		if (keep < m->D.nbits) {
			bitmap_clear_range(&m->D, keep, m->D.nbits - keep);
			bitmap_clear_range(&m->M, keep, m->M.nbits - keep);
			bitmap_clear_range(&m->DD, keep, m->DD.nbits - keep);
		}
		/* the block the new end cuts through changed in the delta (its
		 * tail is zeros now): the target must get it again */
		if (size % BS)
			bitmap_clear_range(&m->M, blk(size), 1);
		pthread_mutex_lock(&m->mu);
		if (size < m->base_limit)
			m->base_limit = size;
		m->dirty = 0;
		for (uint64_t w = 0; w < m->D.nwords; w++)
			m->dirty += (uint64_t)__builtin_popcountll(m->D.w[w] & ~m->M.w[w]);
	}
	m->size = size;
	m->journal_size = size;
	clock_gettime(CLOCK_REALTIME, &m->mtime);
	m->mtime_set = true;
	err = journal_add(&m->j, JR_SIZE, m->size, m->base_limit);
	pthread_mutex_unlock(&m->mu);
out:
	pthread_rwlock_unlock(&m->io);
	return err;
}

int mig_fallocate(struct migration *m, int mode, off_t off, off_t len)
{
	uint64_t size, limit, end = (uint64_t)off + (uint64_t)len;
	bool keep = mode & FALLOC_FL_KEEP_SIZE;

	if (off < 0 || len <= 0)
		return -EINVAL;
	if (mode & ~(FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE | FALLOC_FL_ZERO_RANGE))
		return -EOPNOTSUPP;
	if ((mode & FALLOC_FL_PUNCH_HOLE) && !keep)
		return -EINVAL;
	snapshot_limits(m, &size, &limit);
	if (mode & (FALLOC_FL_PUNCH_HOLE | FALLOC_FL_ZERO_RANGE)) {
		uint64_t zend = keep && end > size ? size : end;
		uint64_t a = (uint64_t)off;

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
				r = live_write(m, NULL, n, a);
			} else {
				static const char zeros[BS];

				r = live_write(m, zeros, n, a);
			}
			if (r < 0)
				return (int)r;
			a += n;
		}
		if (!keep && end > size)
			return mig_truncate(m, (off_t)end);
		return 0;
	}
	/* preallocation: the live view only changes size */
	if (!keep && end > size)
		return mig_truncate(m, (off_t)end);
	return 0;
}

static int sync_for_flush(void *arg)
{
	struct migration *m = arg;

	/* the guest's writes from before the migration may still be in the
	 * source's page cache: the first flush since covers them too */
	if (!__atomic_load_n(&m->base_synced, __ATOMIC_ACQUIRE)) {
		if (fdatasync(m->src_fd) == -1)
			return -errno;
		__atomic_store_n(&m->base_synced, true, __ATOMIC_RELEASE);
	}
	if (fdatasync(m->delta_fd) == -1)
		return -errno;
	if (source_fallback(m) && fdatasync(m->src_fd) == -1)
		return -errno;
	crashpoint("flush-data-synced");	/* data durable, records not yet */
	return 0;
}

int mig_fsync(struct migration *m, bool datasync)
{
	int err = 0;

	pthread_mutex_lock(&m->mu);
	if (m->size != m->journal_size) {
		m->journal_size = m->size;
		err = journal_add(&m->j, JR_SIZE, m->size, m->base_limit);
	}
	pthread_mutex_unlock(&m->mu);
	if (!err)
		err = journal_commit(&m->j, sync_for_flush, m);
	if (err) {
		static long last;

		if (log_ratelimited(&last))
			log_warnx("'%s': flush failed: %s", m->relpath, strerror(-err));
		/* after a failed sync the kernel may have dropped the dirty
		 * pages: the delta store can no longer vouch for its data */
		mig_fail(m, err, "cannot sync the delta store");
		return err == -ENOSPC ? -ENOSPC : -EIO;
	}
	return 0;
}

off_t mig_lseek(struct migration *m, off_t off_, int whence)
{
	uint64_t size, limit, pos = (uint64_t)off_;
	off_t ret;

	if (whence != SEEK_DATA && whence != SEEK_HOLE)
		return -EINVAL;
	pthread_rwlock_rdlock(&m->io);
	snapshot_limits(m, &size, &limit);
	if (off_ < 0 || pos >= size) {
		ret = -ENXIO;
		goto out;
	}
	if (whence == SEEK_DATA) {
		uint64_t d = bitmap_next_set(&m->D, blk(pos)), best = UINT64_MAX;

		if (d < m->D.nbits)
			best = d * BS > pos ? d * BS : pos;
		if (pos < limit) {
			off_t r = lseek(m->src_fd, (off_t)pos, SEEK_DATA);

			if (r >= 0 && (uint64_t)r < limit && (uint64_t)r < best)
				best = (uint64_t)r;
		}
		ret = best < size ? (off_t)best : -ENXIO;
		goto out;
	}
	while (pos < size) {
		off_t h;

		if (bitmap_test(&m->D, blk(pos))) {
			uint64_t c = bitmap_next_clear(&m->D, blk(pos)) * BS;

			pos = c > pos ? c : pos + 1;
			continue;
		}
		if (pos >= limit)
			break;
		h = lseek(m->src_fd, (off_t)pos, SEEK_HOLE);
		if (h < 0 || (uint64_t)h > limit)
			h = (off_t)limit;
		if ((uint64_t)h <= pos)
			break;
		pos = (uint64_t)h;
	}
	ret = (off_t)(pos < size ? pos : size);
out:
	pthread_rwlock_unlock(&m->io);
	return ret;
}

void mig_getattr(struct migration *m, struct stat *st)
{
	pthread_rwlock_rdlock(&m->io);	/* D may be growing under io */
	pthread_mutex_lock(&m->mu);
	st->st_size = (off_t)m->size;
	st->st_blocks += (blkcnt_t)(bitmap_count(&m->D) * (BS / 512));
	if (m->mtime_set) {
		st->st_mtim = m->mtime;
		st->st_ctim = m->mtime;
	}
	pthread_mutex_unlock(&m->mu);
	pthread_rwlock_unlock(&m->io);
}

/* ---- phases and the merge engine -------------------------------------------------- */

int mig_rebase(struct migration *m)
{
	struct stat st;
	int err;

	if (fstat(m->src_fd, &st) == -1)
		return -errno;
	pthread_mutex_lock(&m->mu);
	m->size = m->base_size = m->base_limit = m->journal_size = (uint64_t)st.st_size;
	pthread_mutex_unlock(&m->mu);
	err = bitmaps_fit(m, blocks_for((uint64_t)st.st_size));
	if (!err)
		err = journal_add(&m->j, JR_COPIED, 0, (uint64_t)st.st_size);
	if (!err)
		err = journal_add(&m->j, JR_SIZE, (uint64_t)st.st_size, (uint64_t)st.st_size);
	if (!err)
		err = journal_add(&m->j, JR_PHASE, MIG_COPYING, 1);	/* frozen from here */
	if (!err)
		err = journal_commit(&m->j, NULL, NULL);
	if (!err)
		m->started = true;
	return err;
}

int mig_set_phase(struct migration *m, enum mig_phase phase)
{
	int err;

	pthread_mutex_lock(&m->mu);
	if (m->phase == MIG_FAILED && phase != MIG_ABORTING && phase != MIG_ABORTED) {
		/* failed is final: only an abort leaves it */
		pthread_mutex_unlock(&m->mu);
		return -EIO;
	}
	m->phase = phase;
	pthread_mutex_unlock(&m->mu);
	/* only phases a restart must know are journalled */
	if (phase != MIG_COPYING && phase != MIG_MERGING && phase != MIG_ABORTING)
		return 0;
	err = journal_add(&m->j, JR_PHASE, phase, 1);
	if (!err)
		err = journal_commit(&m->j, sync_for_flush, m);
	return err;
}

int mig_note_copied(struct migration *m, uint64_t bytes)
{
	int err;

	pthread_mutex_lock(&m->mu);
	m->copied = bytes;
	pthread_mutex_unlock(&m->mu);
	err = journal_add(&m->j, JR_COPIED, bytes, m->base_size);
	if (!err)
		err = journal_commit(&m->j, sync_for_flush, m);
	return err;
}

/* first block at or after b in D \ M whose record is durable (any, if
 * all), or nbits */
static uint64_t next_dirty(struct migration *m, uint64_t b, bool all)
{
	uint64_t n = m->D.nbits;

	while (b < n) {
		uint64_t w = b / 64;
		uint64_t dd = all ? ~0ull : __atomic_load_n(&m->DD.w[w], __ATOMIC_ACQUIRE);
		uint64_t bits = (__atomic_load_n(&m->D.w[w], __ATOMIC_ACQUIRE) & dd &
				 ~__atomic_load_n(&m->M.w[w], __ATOMIC_RELAXED)) &
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
static ssize_t merge_region(struct migration *m, uint64_t b, char *buf, bool all)
{
	uint64_t rstart = (b >> MIG_REGION_SHIFT) << MIG_REGION_SHIFT;
	uint64_t rend = rstart + (1u << MIG_REGION_SHIFT);
	unsigned ri = region_of(b);
	ssize_t merged = 0;
	int err = 0;

	if (rend > m->D.nbits)
		rend = m->D.nbits;
	pthread_mutex_lock(&m->region[ri]);
	for (uint64_t x = next_dirty(m, rstart, all); x < rend; x = next_dirty(m, x, all)) {
		uint64_t e = x;
		size_t len;

		while (e < rend && bitmap_test(&m->D, e) && (all || bitmap_test(&m->DD, e)) &&
		       !bitmap_test(&m->M, e))
			e++;
		len = (size_t)((e - x) * BS);
		err = pread_full(m->delta_fd, buf, len, (off_t)(x * BS));
		if (err) {
			mig_fail(m, err, "cannot read the delta store");
			break;
		}
		if (all_zero(buf, len)) {
			if (fallocate(m->target_fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
				      (off_t)(x * BS), (off_t)len) == -1)
				err = pwrite_full(m->target_fd, buf, len, (off_t)(x * BS));
		} else {
			err = pwrite_full(m->target_fd, buf, len, (off_t)(x * BS));
		}
		if (err) {
			mig_fail(m, err, m->target_fd == m->src_fd ? "cannot write the source"
								    : "cannot write the destination");
			break;
		}
		bitmap_set_range(&m->M, x, e - x);
		pthread_mutex_lock(&m->mu);
		m->dirty -= e - x;
		pthread_mutex_unlock(&m->mu);
		merged += (ssize_t)len;
		x = e;
	}
	pthread_mutex_unlock(&m->region[ri]);
	return err ? err : merged;
}

static ssize_t merge_some(struct migration *m, size_t max_bytes, bool all)
{
	char *buf;
	ssize_t total = 0;
	uint64_t b = 0;

	if (posix_memalign((void **)&buf, 4096, (size_t)BS << MIG_REGION_SHIFT))
		return -ENOMEM;
	/*
	 * A block may reach the target only once the journal says it lives in
	 * the delta (bit DD): otherwise a crash could leave the target holding
	 * a write the restarted daemon does not know about (it would read the
	 * base), and a later switch would change what the guest sees without a
	 * write.  One commit here makes every block written so far mergeable.
	 */
	if (!all && journal_pending(&m->j)) {
		int err = journal_commit(&m->j, sync_for_flush, m);

		if (err) {
			mig_fail(m, err, "cannot sync the delta store");
			free(buf);
			return err;
		}
	}
	pthread_rwlock_rdlock(&m->io);
	apply_durable(m);
	while ((size_t)total < max_bytes) {
		ssize_t r;

		b = next_dirty(m, b, all);
		if (b >= m->D.nbits)
			break;
		r = merge_region(m, b, buf, all);
		if (r < 0) {
			total = r;
			break;
		}
		total += r;
		b = ((b >> MIG_REGION_SHIFT) + 1) << MIG_REGION_SHIFT;
	}
	pthread_rwlock_unlock(&m->io);
	free(buf);
	return total;
}

ssize_t mig_merge_some(struct migration *m, size_t max_bytes)
{
	return merge_some(m, max_bytes, false);
}

int mig_commit(struct migration *m)
{
	return journal_pending(&m->j) ? journal_commit(&m->j, sync_for_flush, m) : 0;
}

int mig_finish_target(struct migration *m, enum mig_finish how)
{
	uint64_t size, limit, tsize, a;
	struct stat st;
	ssize_t r;

	do {
		r = merge_some(m, SIZE_MAX, how == MIG_FINISH_SWITCH);
	} while (r > 0);
	if (r < 0)
		return (int)r;
	pthread_mutex_lock(&m->mu);
	r = m->dirty ? -EIO : 0;	/* every block must have been mergeable */
	pthread_mutex_unlock(&m->mu);
	if (r) {
		log_warnx("'%s': blocks left unmerged at the switch", m->relpath);
		return (int)r;
	}
	snapshot_limits(m, &size, &limit);
	if (fstat(m->target_fd, &st) == -1)
		return -errno;
	tsize = (uint64_t)st.st_size < size ? (uint64_t)st.st_size : size;
	/* past the base limit, blocks outside the delta must read as zeros */
	a = limit;
	if (a % BS && a < tsize && !bitmap_test(&m->D, blk(a))) {
		static const char zeros[BS];
		uint64_t e = (blk(a) + 1) * BS;
		int err = pwrite_full(m->target_fd, zeros, (size_t)((e < tsize ? e : tsize) - a),
				      (off_t)a);

		if (err)
			return err;
	}
	a = blocks_for(a) * BS;
	while (a < tsize) {
		uint64_t b = blk(a), e;

		if (bitmap_test(&m->D, b)) {
			a = bitmap_next_clear(&m->D, b) * BS;
			if (a <= b * BS)
				break;
			continue;
		}
		e = bitmap_next_set(&m->D, b) * BS;
		if (e > tsize || e <= a)
			e = tsize;
		if (fallocate(m->target_fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)a,
			      (off_t)(e - a)) == -1) {
			static const char zeros[BS];

			for (uint64_t x = a; x < e; x += BS) {
				int err = pwrite_full(m->target_fd, zeros,
						      (size_t)(e - x < BS ? e - x : BS), (off_t)x);
				if (err)
					return err;
			}
		}
		a = e;
	}
	if (ftruncate(m->target_fd, (off_t)size) == -1)
		return -errno;
	if (how == MIG_FINISH_SYNC && fdatasync(m->target_fd) == -1)
		return -errno;
	return 0;
}

void mig_target_source(struct migration *m)
{
	pthread_rwlock_wrlock(&m->io);
	m->target_fd = m->src_fd;
	bitmap_clear_range(&m->M, 0, m->M.nbits);
	pthread_mutex_lock(&m->mu);
	m->dirty = bitmap_count(&m->D);
	pthread_mutex_unlock(&m->mu);
	pthread_rwlock_unlock(&m->io);
}

void mig_target_dest(struct migration *m, enum mig_phase phase)
{
	pthread_rwlock_wrlock(&m->io);
	m->target_fd = m->dst_fd;
	bitmap_clear_range(&m->M, 0, m->M.nbits);
	pthread_mutex_lock(&m->mu);
	m->dirty = bitmap_count(&m->D);
	m->phase = phase;
	pthread_mutex_unlock(&m->mu);
	pthread_rwlock_unlock(&m->io);
}

int mig_verify(struct migration *m, uint64_t *diff_off)
{
	const size_t chunk = 1u << 20;
	char *live = NULL, *dst = NULL;
	uint64_t size, limit;
	int ret = 0;

	if (posix_memalign((void **)&live, 4096, chunk) || posix_memalign((void **)&dst, 4096, chunk)) {
		free(live);
		return -ENOMEM;
	}
	snapshot_limits(m, &size, &limit);
	for (uint64_t off = 0; off < size && !ret; off += chunk) {
		size_t len = size - off < chunk ? (size_t)(size - off) : chunk;
		uint64_t mask;

		/* no writer or merge in this chunk while both sides are read;
		 * io only per chunk, so that a truncate never waits long */
		pthread_rwlock_rdlock(&m->io);
		mask = regions_lock(m, blk(off), blk(off + len - 1));
		snapshot_limits(m, &size, &limit);
		if (off + len > size)
			len = off < size ? (size_t)(size - off) : 0;
		ret = read_live(m, live, len, off, limit);
		if (!ret)
			ret = pread_full(m->dst_fd, dst, len, (off_t)off);
		/* what the destination will hold at cutover: its data, with the
		 * delta blocks it has not merged yet, and zeros past the base
		 * limit outside the delta */
		for (uint64_t b = blk(off); !ret && b * BS < off + len; b++) {
			size_t o = b * BS > off ? (size_t)(b * BS - off) : 0;
			size_t n = len - o < BS ? len - o : BS;

			if (bitmap_test(&m->D, b)) {
				if (!bitmap_test(&m->M, b))
					ret = pread_full(m->delta_fd, dst + o, n, (off_t)(b * BS));
			} else if (off + o + n > limit) {
				size_t z = off + o >= limit ? 0 : (size_t)(limit - off - o);

				memset(dst + o + z, 0, n - z);
			}
		}
		regions_unlock(m, mask);
		pthread_rwlock_unlock(&m->io);
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

void mig_status(struct migration *m, struct mig_status *st)
{
	pthread_mutex_lock(&m->mu);
	st->phase = m->phase;
	st->size = m->size;
	st->base_size = m->base_size;
	st->copied = m->copied;
	st->dirty_bytes = m->dirty * BS;
	st->throttled = m->throttled;
	st->throttle_events = m->throttle_events;
	snprintf(st->error, sizeof(st->error), "%s", m->error[0] == '!' ? m->error + 1 : m->error);
	pthread_mutex_unlock(&m->mu);
	pthread_rwlock_rdlock(&m->io);	/* D may be growing under io */
	st->delta_bytes = bitmap_count(&m->D) * BS;
	pthread_rwlock_unlock(&m->io);
}

void mig_fail(struct migration *m, int err, const char *what)
{
	pthread_mutex_lock(&m->mu);
	if (m->phase != MIG_FAILED) {
		m->phase = MIG_FAILED;
		snprintf(m->error, sizeof(m->error), "%s: %s", what, strerror(err < 0 ? -err : err));
		log_warnx("'%s': migration failed: %s", m->relpath, m->error);
	}
	pthread_mutex_unlock(&m->mu);
}

const char *mig_phase_name(enum mig_phase p, uint64_t dirty_bytes)
{
	switch (p) {
	case MIG_COPYING: return "copying";
	case MIG_MERGING: return dirty_bytes <= MIG_READY_BYTES ? "ready" : "merging";
	case MIG_CUTOVER: return "cutover";
	case MIG_DONE: return "done";
	case MIG_ABORTING: return "aborting";
	case MIG_ABORTED: return "idle";
	case MIG_FAILED: return "failed";
	}
	return "idle";
}
