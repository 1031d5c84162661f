/*
 * store: the life cycle of a delta store (create, replay after a restart,
 * free), its write-ahead log and checkpoints, its phases and its status
 * (see delta.h for the model).
 *
 * Crash safety of the delta store
 * --------------------------------
 * Files, in the job's delta directory: "<id>.delta" (sparse, same offsets as
 * the image), "<id>.wal" (wal.h: a ring of fixed size, written with zeros
 * when it is created) and "<id>.journal" (journal.h: append-only, 48-byte
 * records).  The journal records, in order: the base size and how far the
 * base copy is durable (JR_COPIED), the live size and base limit (JR_SIZE),
 * the phase (JR_PHASE), blocks that now live in the delta (JR_SET_DE),
 * blocks that went back to the source (JR_CLEAR_D, only after a delta
 * failure), and where the WAL must be read from (JR_WAL).
 *
 * A guest write puts its data in the delta file (filling partial blocks
 * from the base first), sets the D bits in memory (so reads see it), and
 * then, before it returns, appends a record to the WAL: the blocks as they
 * now are in the delta file (DATA), or the range it zeroed (ZERO); size
 * changes (SIZE) and writes that went to the source in place (CLEAR_D) are
 * logged too, and every record carries the live size and base limit after
 * it.  The journal records the change needs (JR_SET_DE for new D bits,
 * JR_SIZE, JR_CLEAR_D) are queued in the same critical section as the
 * append, so the journal's queue is in log order.  A guest flush makes the
 * WAL durable up to its own writes (one fdatasync of allocated, written
 * space, shared by concurrent flushes) and replies; the first flush after
 * the migration began also fdatasyncs the source (its page cache may still
 * hold the guest's writes from before).  The delta file is not synced by a
 * flush: the WAL alone rebuilds every block a flush covered.  For that, no
 * record's effect depends on what the delta file held before it (which a
 * crash may have replaced by a later, unlogged write): DATA and ZERO cover
 * whole blocks, and a SIZE record that cuts through a block carries that
 * block whole, as the truncation left it.
 *
 * A checkpoint (in the background, when the ring is half full, or every
 * 5 s if an eighth of it is in use, and when a writer finds it full) notes
 * the WAL head (seq, pos) and queues JR_SIZE and JR_WAL(seq, pos) under the
 * append lock, then commits the journal: take the queued records, fdatasync
 * the WAL (a record must never be in the journal before its WAL record is
 * durable, or a replay could combine a later journal state with an earlier
 * WAL prefix), fdatasync the delta file (and the source where needed),
 * append the records and fdatasync the journal.  Only then is the WAL space
 * before seq free: everything logged before it is in the journal and the
 * synced delta file.  Between checkpoints the checkpointer starts the
 * delta file's writeback every 500 ms without waiting for it, so that a
 * checkpoint's fdatasync is short and the guest's flushes do not queue
 * behind seconds of delta data.
 *
 * After a crash, delta_open replays the journal (D, sizes, phase, copy
 * progress, the WAL tail), then the WAL from the tail: each record with the
 * next sequence number and a good checksum is applied (DATA: its payload
 * written into the delta file, D set; ZERO: punched, D set; SIZE and
 * CLEAR_D: as they happened), up to the first that is not.  Records the
 * journal already reflects are applied again, in log order, with the same
 * result.  After a host crash the WAL holds at least every record a flush
 * covered, and a torn or stale record ends the replay (its flush was never
 * acknowledged): every block, and the size, read as they were at some
 * moment since the guest's last flush, which is therefore never lost.
 * After the process dies with the host up, the WAL is read through the page
 * cache and holds every record whose append returned (appends are
 * serialised): the live view comes back exactly as the guest last saw it,
 * flushed or not, with its size.  The replayed state is then checkpointed
 * at once, with the WAL going on from a sequence number no record in the
 * ring can have (wal_next_generation), so that nothing written before the
 * crash can ever be read as a later record.
 *
 * The base copy is checkpointed with JR_COPIED only after the destination
 * was fdatasynced up to that offset, so a restarted copier may copy a chunk
 * twice but never skips one.  M (what the destination already holds of the
 * delta) lives only in memory: after a restart every D block is merged
 * again.  The merger takes only blocks whose D bit is durable (DD: the WAL
 * record that set it was synced, or checkpointed), so that the target never
 * holds a write a replay could forget; it forces a WAL sync itself when
 * nothing else is mergeable.  The one exception is the cutover's hold
 * (DELTA_FINISH_SWITCH), which merges everything without a sync, and is
 * safe because a restart that finds the cutover unfinished rolls the job
 * back to the source (ctl/cutover.c).
 *
 * If the delta cannot take a write (full, failing), the migration fails and
 * the write goes to the source in place instead, after filling the edge
 * blocks from the delta; the source is fdatasynced before the CLEAR_D
 * record is logged (so the record never reaches the disk before the data
 * it points to), the block's D bit is cleared, and flushes then also
 * fdatasync the source.  From then on the source is no longer a frozen
 * base, so the migration can only be aborted.
 *
 * Space: the delta file is at most the image's size (same offsets); the
 * WAL is fixed (wal_ring_for: an eighth of the image, 1 to 64 MiB); the
 * journal takes 48 bytes per new run of D blocks plus two records per
 * checkpoint (at most one per eighth of the ring written: 12 bytes per MiB
 * the guest writes, with a 64 MiB ring), and is preallocated (2 MiB) so that
 * a full store can still record.
 * A writer that finds the ring full waits for a checkpoint (counted in
 * status as wal_waits); a delta file that cannot grow sends the write to
 * the source in place, as above.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <linux/falloc.h>

#include "common/clock.h"
#include "common/crashpoint.h"
#include "common/log.h"
#include "common/util.h"
#include "delta/delta_i.h"
#include "target/target.h"

struct delta_tunables delta_tun = { .wal_max = DELTA_WAL_MAX, .ckpt_ms = 5000 };

/* ---- durability of D bits ------------------------------------------------------ */

void apply_durable(struct delta *d)
{
	uint64_t durable = wal_durable_seq(&d->w);
	size_t i;

	pthread_mutex_lock(&d->mu);
	for (i = 0; i < d->dd_n && d->dd_q[i].seq < durable; i++)
		bitmap_set_range(&d->DD, d->dd_q[i].a, d->dd_q[i].n);
	if (i) {
		memmove(d->dd_q, d->dd_q + i, (d->dd_n - i) * sizeof(*d->dd_q));
		d->dd_n -= i;
	}
	pthread_mutex_unlock(&d->mu);
}

static bool dd_push(struct delta *d, uint64_t seq, uint64_t a, uint64_t n);

void dd_forget(struct delta *d, uint64_t b, uint64_t n)
{
	pthread_mutex_lock(&d->mu);
	for (size_t i = 0, n0 = d->dd_n; i < n0; i++) {
		struct ddq q = d->dd_q[i];

		if (q.a + q.n <= b || q.a >= b + n)
			continue;
		/* keep what lies outside [b, b+n), on either side */
		d->dd_q[i].n = q.a < b ? b - q.a : 0;
		if (q.a + q.n > b + n && !dd_push(d, q.seq, b + n, q.a + q.n - (b + n)))
			log_warnx("'%s': out of memory: some blocks wait for the next "
				  "checkpoint to be merged", d->name);
	}
	pthread_mutex_unlock(&d->mu);
}

bool dd_pending(struct delta *d)
{
	bool p;

	pthread_mutex_lock(&d->mu);
	p = d->dd_n > 0;
	pthread_mutex_unlock(&d->mu);
	return p;
}

/* caller holds mu; false if out of memory (the range then stays unmergeable
 * until the cutover's hold, which merges everything, or a restart) */
static bool dd_push(struct delta *d, uint64_t seq, uint64_t a, uint64_t n)
{
	if (d->dd_n == d->dd_cap) {
		size_t cap = d->dd_cap ? d->dd_cap * 2 : 64;
		struct ddq *q = realloc(d->dd_q, cap * sizeof(*q));

		if (!q)
			return false;
		d->dd_q = q;
		d->dd_cap = cap;
	}
	d->dd_q[d->dd_n++] = (struct ddq){ .seq = seq, .a = a, .n = n };
	return true;
}

/* ---- the write-ahead log --------------------------------------------------------- */

static void kick_checkpoint(void *arg)
{
	struct delta *d = arg;

	pthread_mutex_lock(&d->ckpt_mu);
	d->ckpt_kick = true;
	pthread_cond_signal(&d->ckpt_cv);
	pthread_mutex_unlock(&d->ckpt_mu);
}

int store_log(struct delta *d, const struct wr *r_, const struct iovec *iov, int iovcnt,
	      const struct jr *jrs, int njr, uint64_t dd_a, uint64_t dd_n)
{
	struct wr r = *r_;
	uint32_t plen = 0;
	uint64_t seq;
	int err;

	for (int i = 0; i < iovcnt; i++)
		plen += (uint32_t)iov[i].iov_len;
	err = wal_begin(&d->w, plen);
	if (err)
		return err;
	pthread_mutex_lock(&d->mu);
	if (r.type == WR_SIZE) {
		/* r.size and r.limit as given */
	} else {
		if (r.size < d->size)
			r.size = d->size;
		if (r.type != WR_CLEAR_D)
			r.limit = d->base_limit;
	}
	pthread_mutex_unlock(&d->mu);
	err = wal_write(&d->w, &r, iov, iovcnt, &seq);
	if (err) {
		wal_end(&d->w);
		return err;
	}
	crashpoint("wal-appended");	/* in the page cache, the write not answered */
	pthread_mutex_lock(&d->mu);
	d->size = r.size;
	d->base_limit = r.limit;
	if (dd_n)
		dd_push(d, seq, dd_a, dd_n);
	pthread_mutex_unlock(&d->mu);
	for (int i = 0; i < njr; i++) {
		if (journal_add(&d->j, jrs[i].type, jrs[i].a, jrs[i].b)) {
			/* a checkpoint would free the record's WAL space without
			 * the journal knowing: none may succeed from here */
			d->j.broken = true;
			log_warnx("'%s': out of memory queueing a journal record", d->name);
		}
	}
	if (wal_used(&d->w) > d->w.ring / 2 && !delta_tun.lazy)
		kick_checkpoint(d);
	wal_end(&d->w);
	return 0;
}

/* ---- checkpoints ------------------------------------------------------------------ */

static int sync_for_checkpoint(void *arg)
{
	int err = sync_for_flush(arg);

	if (!err)
		crashpoint("checkpoint-data-synced");	/* WAL and delta durable, journal not yet */
	return err;
}

int store_checkpoint(struct delta *d)
{
	uint64_t seq, pos;
	int err;

	pthread_mutex_lock(&d->ckpt_run);
	pthread_mutex_lock(&d->w.append_mu);
	seq = d->w.head_seq;
	pos = d->w.head_pos;
	if (seq == d->ckpt_seq && !journal_pending(&d->j)) {
		pthread_mutex_unlock(&d->w.append_mu);
		pthread_mutex_unlock(&d->ckpt_run);
		return 0;
	}
	/* the size writes reached is in the WAL records only */
	pthread_mutex_lock(&d->mu);
	err = 0;
	if (d->size != d->journal_size || d->base_limit != d->journal_limit) {
		err = journal_add(&d->j, JR_SIZE, d->size, d->base_limit);
		d->journal_size = d->size;
		d->journal_limit = d->base_limit;
	}
	pthread_mutex_unlock(&d->mu);
	if (!err)
		err = journal_add(&d->j, JR_WAL, seq, pos);
	pthread_mutex_unlock(&d->w.append_mu);
	if (!err)
		err = journal_commit(&d->j, sync_for_checkpoint, d);
	if (!err) {
		crashpoint("checkpoint-committed");
		wal_release(&d->w, seq, pos);
		d->ckpt_seq = seq;
		pthread_mutex_lock(&d->mu);
		d->checkpoints++;
		pthread_mutex_unlock(&d->mu);
	}
	pthread_mutex_unlock(&d->ckpt_run);
	return err;
}

/* How often the checkpointer starts the writeback of the delta file's dirty
 * pages (asynchronously), so that a checkpoint's fdatasync finds little left
 * and the device gets a trickle instead of a burst in front of the guest's
 * flushes. */
#define TRICKLE_MS	500

static void *ckpt_main(void *arg)
{
	struct delta *d = arg;
	uint64_t last = now_us();

	pthread_mutex_lock(&d->ckpt_mu);
	while (!d->ckpt_stop) {
		bool kicked;
		int err;

		if (!d->ckpt_kick) {
			unsigned ms = delta_tun.ckpt_ms < TRICKLE_MS ? delta_tun.ckpt_ms : TRICKLE_MS;
			struct timespec ts;

			clock_gettime(CLOCK_REALTIME, &ts);
			ts.tv_sec += ms / 1000;
			ts.tv_nsec += (long)(ms % 1000) * 1000000;
			if (ts.tv_nsec >= 1000000000) {
				ts.tv_sec++;
				ts.tv_nsec -= 1000000000;
			}
			if (ms)
				pthread_cond_timedwait(&d->ckpt_cv, &d->ckpt_mu, &ts);
			else
				pthread_cond_wait(&d->ckpt_cv, &d->ckpt_mu);	/* tests: when asked */
			if (d->ckpt_stop)
				break;
		}
		kicked = d->ckpt_kick;
		d->ckpt_kick = false;
		/* not held below: writers take it under the append lock */
		pthread_mutex_unlock(&d->ckpt_mu);
		if (!kicked) {
			/* a timed look: only every ckpt_ms, and only for an eighth
			 * of the ring or more, so that the journal grows with what
			 * is written, not with time */
			bool worth = now_us() - last >= delta_tun.ckpt_ms * 1000ull;

			if (worth) {
				pthread_mutex_lock(&d->w.append_mu);
				worth = wal_used(&d->w) >= d->w.ring / 8;
				pthread_mutex_unlock(&d->w.append_mu);
			}
			if (!worth) {
				sync_file_range(d->delta_fd, 0, 0, SYNC_FILE_RANGE_WRITE);
				pthread_mutex_lock(&d->ckpt_mu);
				continue;
			}
		}
		err = store_checkpoint(d);
		last = now_us();
		if (err) {
			delta_fail(d, err, "cannot checkpoint the delta store");
			/* writers waiting for room get an error, not a hang */
			wal_break(&d->w, -EIO);
		}
		pthread_mutex_lock(&d->ckpt_mu);
		if (err)
			break;
	}
	pthread_mutex_unlock(&d->ckpt_mu);
	return NULL;
}

static int ckpt_start(struct delta *d)
{
	d->w.need_room = kick_checkpoint;
	d->w.need_room_arg = d;
	if (pthread_create(&d->ckpt_thread, NULL, ckpt_main, d))
		return -EAGAIN;
	d->ckpt_started = true;
	return 0;
}

static void ckpt_stop(struct delta *d)
{
	if (!d->ckpt_started)
		return;
	pthread_mutex_lock(&d->ckpt_mu);
	d->ckpt_stop = true;
	pthread_cond_signal(&d->ckpt_cv);
	pthread_mutex_unlock(&d->ckpt_mu);
	pthread_join(d->ckpt_thread, NULL);
	d->ckpt_started = false;
}

void delta_quiesce(struct delta *d)
{
	ckpt_stop(d);
}

/* ---- life cycle ------------------------------------------------------------ */

static struct delta *store_alloc(const char *name, unsigned id, int src_fd, struct target *dst,
				 int dirfd)
{
	struct delta *d = calloc(1, sizeof(*d));
	pthread_rwlockattr_t ra;
	int sfd;

	if (!d)
		return NULL;
	d->name = strdup(name);
	sfd = dup(src_fd);
	d->src = sfd == -1 ? NULL : target_file_new(sfd, name);
	if (!d->name || !d->src) {
		if (!d->src && sfd != -1)
			close(sfd);
		free(d->name);
		free(d);
		return NULL;
	}
	d->id = id;
	d->src_fd = src_fd;
	d->dst = dst;
	d->target = dst;
	d->dirfd = dirfd;
	d->delta_fd = -1;
	d->j.fd = -1;
	d->w.fd = -1;
	pthread_rwlockattr_init(&ra);
	/* the merger and size changes must not starve behind a stream of I/O */
	pthread_rwlockattr_setkind_np(&ra, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
	pthread_rwlock_init(&d->io, &ra);
	pthread_rwlockattr_destroy(&ra);
	for (unsigned i = 0; i < REGIONS; i++)
		pthread_mutex_init(&d->region[i], NULL);
	pthread_mutex_init(&d->mu, NULL);
	pthread_mutex_init(&d->ckpt_mu, NULL);
	pthread_cond_init(&d->ckpt_cv, NULL);
	pthread_mutex_init(&d->ckpt_run, NULL);
	return d;
}

int bitmaps_fit(struct delta *d, uint64_t nblocks)
{
	uint64_t want = nblocks + 256;	/* room for small extensions without a resize */

	if (d->D.nbits >= nblocks)
		return 0;
	if (bitmap_resize(&d->D, want) || bitmap_resize(&d->M, want) || bitmap_resize(&d->DD, want))
		return -ENOMEM;
	return 0;
}

static void store_file(unsigned id, const char *ext, char buf[32])
{
	snprintf(buf, 32, "%u.%s", id, ext);
}

static int journal_prealloc(struct delta *d)
{
	/* records then overwrite allocated space: a full delta store cannot
	 * stop them */
	if (fallocate(d->j.fd, FALLOC_FL_KEEP_SIZE, 0, DELTA_JOURNAL_PREALLOC) == -1 &&
	    errno != EOPNOTSUPP)
		return -errno;
	return 0;
}

static uint64_t ring_for(uint64_t image_bytes)
{
	return delta_tun.wal_ring ? delta_tun.wal_ring : wal_ring_for(image_bytes, delta_tun.wal_max);
}

uint64_t delta_space_needed(uint64_t image_bytes)
{
	return DELTA_JOURNAL_PREALLOC + ring_for(image_bytes);
}

int delta_create(struct delta **out, const char *name, unsigned id, int src_fd,
		 struct target *dst, int dirfd)
{
	struct delta *d;
	struct stat st;
	char file[32];
	int err;

	if (fstat(src_fd, &st) == -1)
		return -errno;
	d = store_alloc(name, id, src_fd, dst, dirfd);
	if (!d)
		return -ENOMEM;
	d->size = d->base_size = d->base_limit = d->journal_size = d->journal_limit =
		(uint64_t)st.st_size;
	d->phase = DELTA_COPYING;
	err = bitmaps_fit(d, blocks_for(d->size));
	if (err)
		goto fail;
	store_file(id, "delta", file);
	d->delta_fd = openat(dirfd, file, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (d->delta_fd == -1) {
		err = -errno;
		goto fail;
	}
	store_file(id, "wal", file);
	unlinkat(dirfd, file, 0);
	err = wal_create(dirfd, file, ring_for(d->size), &d->w);
	if (err)
		goto fail;
	store_file(id, "journal", file);
	unlinkat(dirfd, file, 0);
	err = journal_create(dirfd, file, &d->j);
	if (!err)
		err = journal_prealloc(d);
	if (!err)
		err = journal_add(&d->j, JR_COPIED, 0, d->base_size);
	if (!err)
		err = journal_add(&d->j, JR_SIZE, d->size, d->base_limit);
	/* b = 0: created, the base not frozen yet (see delta_rebase) */
	if (!err)
		err = journal_add(&d->j, JR_PHASE, DELTA_COPYING, 0);
	if (!err)
		err = journal_add(&d->j, JR_WAL, 0, 0);
	if (!err)
		err = journal_commit(&d->j, NULL, NULL);
	if (!err)
		err = ckpt_start(d);
	if (err)
		goto fail;
	*out = d;
	return 0;
fail:
	d->src_fd = -1;		/* the caller keeps its descriptor and target */
	d->dst = NULL;
	delta_free(d, true);
	return err;
}

static int replay_one(void *arg, const struct jr *r)
{
	struct delta *d = arg;

	switch (r->type) {
	case JR_SET_DE:
		if (bitmaps_fit(d, r->a + r->b))
			return -ENOMEM;
		bitmap_set_range(&d->D, r->a, r->b);
		break;
	case JR_CLEAR_D:
		bitmap_clear_range(&d->D, r->a, r->b);
		break;
	case JR_SIZE:
		d->size = d->journal_size = r->a;
		d->base_limit = d->journal_limit = r->b;
		if (bitmaps_fit(d, blocks_for(r->a)))
			return -ENOMEM;
		if (blocks_for(r->a) < d->D.nbits)
			bitmap_clear_range(&d->D, blocks_for(r->a), d->D.nbits - blocks_for(r->a));
		break;
	case JR_PHASE:
		d->phase = (enum delta_phase)r->a;
		d->started = r->b != 0;
		break;
	case JR_COPIED:
		d->copied = r->a;
		d->base_size = r->b;
		break;
	case JR_WAL:
		d->wal_seq0 = r->a;
		d->wal_pos0 = r->b;
		break;
	default:
		break;	/* JR_SET_E: written by older versions only */
	}
	return 0;
}

/* the source was written in place (a CLEAR_D record): only abort is left */
static void replayed_fallback(struct delta *d)
{
	if (d->phase != DELTA_FAILED)
		journal_add(&d->j, JR_PHASE, DELTA_FAILED, 1);
	d->phase = DELTA_FAILED;
	d->started = true;
}

/* Bring the delta file's bytes [off, off+len) to payload, writing only what
 * differs (after the process died they are the same: nothing is dirtied
 * and no space is taken). */
static int replay_data(struct delta *d, const char *payload, uint64_t off, uint64_t len)
{
	char buf[64 * 1024];

	while (len) {
		size_t n = len < sizeof(buf) ? (size_t)len : sizeof(buf);
		ssize_t r = pread(d->delta_fd, buf, n, (off_t)off);

		if (r < 0)
			return -errno;
		if ((size_t)r != n || memcmp(buf, payload, n)) {
			int err = pwrite_full(d->delta_fd, payload, n, (off_t)off);

			if (err)
				return err;
		}
		payload += n;
		off += n;
		len -= n;
	}
	return 0;
}

/* One WAL record, as the live view made it; its journal records queued. */
static int wal_apply(void *arg, uint64_t seq, const struct wr *r, const char *payload)
{
	struct delta *d = arg;
	uint64_t b0 = r->off / BS, n = (r->len + BS - 1) / BS;
	int err = 0;

	switch (r->type) {
	case WR_DATA:
	case WR_ZERO:
		if (r->off % BS || r->len % BS || !n || (r->type == WR_DATA) != (payload != NULL))
			return -EINVAL;	/* checksummed, so written so: not ours */
		err = bitmaps_fit(d, b0 + n);
		if (err)
			return err;
		if (r->type == WR_DATA)
			err = replay_data(d, payload, r->off, r->len);
		else if (fallocate(d->delta_fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
				   (off_t)r->off, (off_t)r->len) == -1)
			err = -errno;
		if (err)
			return err;
		bitmap_set_range(&d->D, b0, n);
		if (d->warm_open) {
			/* durable once the WAL is synced past the record */
			pthread_mutex_lock(&d->mu);
			if (!dd_push(d, seq, b0, n))
				err = -ENOMEM;
			pthread_mutex_unlock(&d->mu);
			if (err)
				return err;
		}
		err = journal_add(&d->j, JR_SET_DE, b0, n);
		break;
	case WR_SIZE:
		if (r->size < d->size) {
			uint64_t keep = blocks_for(r->size);

			if (ftruncate(d->delta_fd, (off_t)r->size) == -1)
				return -errno;
			if (keep < d->D.nbits) {
				bitmap_clear_range(&d->D, keep, d->D.nbits - keep);
				bitmap_clear_range(&d->DD, keep, d->DD.nbits - keep);
				dd_forget(d, keep, d->D.nbits - keep);
			}
		}
		/* the block the end cuts through, whole (see delta_truncate) */
		if (payload) {
			err = replay_data(d, payload, r->size / BS * BS, BS);
			if (err)
				return err;
		}
		err = journal_add(&d->j, JR_SIZE, r->size, r->limit);
		/* the journal's last size from here on, as delta_truncate
		 * notes it: else, after a warm replay, a checkpoint would not
		 * record a size later records brought back to the old one */
		d->journal_size = r->size;
		d->journal_limit = r->limit;
		break;
	case WR_CLEAR_D:
		err = bitmaps_fit(d, b0 + n);
		if (err)
			return err;
		dd_forget(d, b0, n);
		bitmap_clear_range(&d->D, b0, n);
		bitmap_clear_range(&d->DD, b0, n);
		replayed_fallback(d);
		err = journal_add(&d->j, JR_CLEAR_D, b0, n);
		break;
	default:
		return -EINVAL;
	}
	d->size = r->size;
	d->base_limit = r->limit;
	return err ? err : bitmaps_fit(d, blocks_for(d->size));
}

/* The log of a store from before there was one: an empty ring. */
static int wal_open_or_create(struct delta *d, const char *file)
{
	int err = wal_open(d->dirfd, file, &d->w);

	if (err != -ENOENT)
		return err;
	d->wal_seq0 = d->wal_pos0 = 0;
	return wal_create(d->dirfd, file, ring_for(d->size), &d->w);
}

int delta_open(struct delta **out, const char *name, unsigned id, int src_fd,
	       struct target *dst, int dirfd, bool warm)
{
	struct delta *d = store_alloc(name, id, src_fd, dst, dirfd);
	uint64_t replayed = 0, gen;
	char file[32];
	int err;

	if (!d)
		return -ENOMEM;
	store_file(id, "delta", file);
	d->delta_fd = openat(dirfd, file, O_RDWR | O_CLOEXEC);
	if (d->delta_fd == -1) {
		err = -errno;
		goto fail;
	}
	store_file(id, "journal", file);
	err = journal_open(dirfd, file, &d->j, replay_one, d);
	if (err)
		goto fail;
	store_file(id, "wal", file);
	err = wal_open_or_create(d, file);
	if (err)
		goto fail;
	if (warm) {
		/* what the journal names is durable; the WAL's records become
		 * so with the next sync of the ring (wal_apply queues them) */
		d->warm_open = true;
		for (uint64_t w = 0; w < d->D.nwords; w++)
			d->DD.w[w] = d->D.w[w];
		d->journal_size = d->size;
		d->journal_limit = d->base_limit;
	}
	err = wal_replay(&d->w, d->wal_seq0, d->wal_pos0, wal_apply, d, &replayed);
	if (err) {
		log_warnx("'%s': cannot replay the delta store's log: %s", d->name, strerror(-err));
		goto fail;
	}
	if (replayed)
		log_info("'%s': %llu change(s) replayed from the delta store's log", d->name,
			 (unsigned long long)replayed);
	if (d->phase == DELTA_FAILED)
		snprintf(d->error, sizeof(d->error),
			 "failed before a restart: the source was written in place; abort to finish");
	if (warm) {
		/*
		 * The host did not crash: the ring in the page cache holds
		 * exactly the records appended, the last one whole (appends
		 * are serialised, and one the process died in fails its
		 * checksum).  Go on appending after it with the next sequence
		 * number, so that a replay from the same tail reads the new
		 * records too; nothing is synced here.  The next flush syncs
		 * the replayed records with its own.
		 */
		wal_continue(&d->w);
		d->ckpt_seq = d->wal_seq0;
		goto opened;
	}
	/*
	 * Make what was replayed durable (after the host crashed part of it
	 * may be lost past the point the replay stopped), and go on in a new
	 * generation of sequence numbers: the records after the head are
	 * stale, and one of them could otherwise be read as the next record
	 * after a later crash.
	 */
	gen = wal_next_generation(&d->w);
	wal_restart(&d->w, gen);
	d->journal_size = d->size;
	d->journal_limit = d->base_limit;
	err = journal_add(&d->j, JR_SIZE, d->size, d->base_limit);
	if (!err)
		err = journal_add(&d->j, JR_WAL, gen, d->w.head_pos);
	if (!err)
		err = journal_commit(&d->j, sync_for_flush, d);
	if (err)
		goto fail;
	d->ckpt_seq = gen;
	/* everything replayed is durable */
	for (uint64_t w = 0; w < d->D.nwords; w++)
		d->DD.w[w] = d->D.w[w];
opened:
	d->warm_open = false;
	if (d->phase == DELTA_CUTOVER)
		d->phase = DELTA_MERGING;	/* the switch did not happen: still merging */
	if (!d->started) {
		/* the daemon died between recording the job and freezing the
		 * base: no write went to the delta, the source is the truth */
		err = delta_rebase(d);
		if (err)
			goto fail;
	}
	d->dirty = bitmap_count(&d->D);
	err = ckpt_start(d);
	if (err)
		goto fail;
	*out = d;
	return 0;
fail:
	d->src_fd = -1;
	d->dst = NULL;
	delta_free(d, false);
	return err;
}

void delta_free(struct delta *d, bool unlink_files)
{
	char file[32];

	if (!d)
		return;
	ckpt_stop(d);
	if (d->j.fd != -1 || d->j.pending)
		journal_close(&d->j);
	if (d->w.fd != -1)
		wal_close(&d->w);
	if (d->delta_fd != -1)
		close(d->delta_fd);
	if (unlink_files && d->dirfd != -1) {
		store_file(d->id, "delta", file);
		unlinkat(d->dirfd, file, 0);
		store_file(d->id, "journal", file);
		unlinkat(d->dirfd, file, 0);
		store_file(d->id, "wal", file);
		unlinkat(d->dirfd, file, 0);
	}
	if (d->src_fd != -1)
		close(d->src_fd);
	target_put(d->src);
	target_put(d->dst);
	bitmap_free(&d->D);
	bitmap_free(&d->M);
	bitmap_free(&d->DD);
	free(d->dd_q);
	pthread_rwlock_destroy(&d->io);
	for (unsigned i = 0; i < REGIONS; i++)
		pthread_mutex_destroy(&d->region[i]);
	pthread_mutex_destroy(&d->mu);
	pthread_mutex_destroy(&d->ckpt_mu);
	pthread_cond_destroy(&d->ckpt_cv);
	pthread_mutex_destroy(&d->ckpt_run);
	free(d->name);
	free(d);
}

bool source_fallback(struct delta *d)
{
	bool f;

	pthread_mutex_lock(&d->mu);
	f = d->phase == DELTA_FAILED && d->error[0] == '!';
	pthread_mutex_unlock(&d->mu);
	return f;
}

void snapshot_limits(struct delta *d, uint64_t *size, uint64_t *limit)
{
	pthread_mutex_lock(&d->mu);
	*size = d->size;
	*limit = d->base_limit;
	pthread_mutex_unlock(&d->mu);
}

/* the first flush since the migration began covers the guest's writes from
 * before it, which may still be in the source's page cache */
static int sync_base(struct delta *d)
{
	if (!__atomic_load_n(&d->base_synced, __ATOMIC_ACQUIRE)) {
		if (fdatasync(d->src_fd) == -1)
			return -errno;
		__atomic_store_n(&d->base_synced, true, __ATOMIC_RELEASE);
	}
	return 0;
}

int sync_for_flush(void *arg)
{
	struct delta *d = arg;
	int err = wal_sync_all(&d->w);

	if (!err)
		err = sync_base(d);
	if (!err && fdatasync(d->delta_fd) == -1)
		err = -errno;
	if (!err && source_fallback(d) && fdatasync(d->src_fd) == -1)
		err = -errno;
	if (!err)
		crashpoint("journal-data-synced");	/* data durable, records not yet */
	return err;
}

int store_flush(struct delta *d, uint64_t upto)
{
	int err = sync_base(d);

	if (!err)
		err = wal_sync(&d->w, upto);
	if (!err && source_fallback(d) && fdatasync(d->src_fd) == -1)
		err = -errno;
	if (!err)
		crashpoint("flush-wal-synced");	/* durable, the flush not answered */
	return err;
}

/* ---- phases and the merge engine -------------------------------------------------- */

int delta_rebase(struct delta *d)
{
	struct stat st;
	int err;

	if (fstat(d->src_fd, &st) == -1)
		return -errno;
	pthread_mutex_lock(&d->mu);
	d->size = d->base_size = d->base_limit = d->journal_size = d->journal_limit =
		(uint64_t)st.st_size;
	pthread_mutex_unlock(&d->mu);
	err = bitmaps_fit(d, blocks_for((uint64_t)st.st_size));
	if (!err)
		err = journal_add(&d->j, JR_COPIED, 0, (uint64_t)st.st_size);
	if (!err)
		err = journal_add(&d->j, JR_SIZE, (uint64_t)st.st_size, (uint64_t)st.st_size);
	if (!err)
		err = journal_add(&d->j, JR_PHASE, DELTA_COPYING, 1);	/* frozen from here */
	if (!err)
		err = journal_commit(&d->j, NULL, NULL);
	if (!err)
		d->started = true;
	return err;
}

int delta_set_phase(struct delta *d, enum delta_phase phase)
{
	int err;

	pthread_mutex_lock(&d->mu);
	if (d->phase == DELTA_FAILED && phase != DELTA_ABORTING && phase != DELTA_ABORTED) {
		/* failed is final: only an abort leaves it */
		pthread_mutex_unlock(&d->mu);
		return -EIO;
	}
	d->phase = phase;
	pthread_mutex_unlock(&d->mu);
	/* only phases a restart must know are journalled */
	if (phase != DELTA_COPYING && phase != DELTA_MERGING && phase != DELTA_ABORTING)
		return 0;
	err = journal_add(&d->j, JR_PHASE, phase, 1);
	if (!err)
		err = journal_commit(&d->j, sync_for_flush, d);
	return err;
}

int delta_note_copied(struct delta *d, uint64_t bytes)
{
	int err;

	pthread_mutex_lock(&d->mu);
	d->copied = bytes;
	pthread_mutex_unlock(&d->mu);
	err = journal_add(&d->j, JR_COPIED, bytes, d->base_size);
	if (!err)
		err = journal_commit(&d->j, sync_for_flush, d);
	return err;
}

int delta_commit(struct delta *d)
{
	int err = wal_sync_all(&d->w);

	if (!err && journal_pending(&d->j))
		err = journal_commit(&d->j, sync_for_flush, d);
	return err;
}

void delta_status(struct delta *d, struct delta_status *st)
{
	pthread_mutex_lock(&d->mu);
	st->phase = d->phase;
	st->size = d->size;
	st->base_size = d->base_size;
	st->copied = d->copied;
	st->dirty_bytes = d->dirty * BS;
	st->throttled = d->throttled;
	st->throttle_events = d->throttle_events;
	st->checkpoints = d->checkpoints;
	snprintf(st->error, sizeof(st->error), "%s", d->error[0] == '!' ? d->error + 1 : d->error);
	pthread_mutex_unlock(&d->mu);
	pthread_rwlock_rdlock(&d->io);	/* D may be growing under io */
	st->delta_bytes = bitmap_count(&d->D) * BS;
	pthread_rwlock_unlock(&d->io);
	pthread_mutex_lock(&d->w.append_mu);
	st->wal_bytes = d->w.ring;
	st->wal_used = wal_used(&d->w);
	st->wal_waits = d->w.waits;
	pthread_mutex_unlock(&d->w.append_mu);
	pthread_mutex_lock(&d->w.sync_mu);
	st->wal_syncs = d->w.syncs;
	pthread_mutex_unlock(&d->w.sync_mu);
}

void delta_fail(struct delta *d, int err, const char *what)
{
	pthread_mutex_lock(&d->mu);
	if (d->phase != DELTA_FAILED) {
		d->phase = DELTA_FAILED;
		snprintf(d->error, sizeof(d->error), "%s: %s", what, strerror(err < 0 ? -err : err));
		log_warnx("'%s': migration failed: %s", d->name, d->error);
	}
	pthread_mutex_unlock(&d->mu);
}

const char *delta_phase_name(enum delta_phase p, uint64_t dirty_bytes)
{
	switch (p) {
	case DELTA_COPYING: return "copying";
	case DELTA_MERGING: return dirty_bytes <= DELTA_READY_BYTES ? "ready" : "merging";
	case DELTA_CUTOVER: return "cutover";
	case DELTA_DONE: return "done";
	case DELTA_ABORTING: return "aborting";
	case DELTA_ABORTED: return "idle";
	case DELTA_FAILED: return "failed";
	}
	return "idle";
}
void delta_note_progress(struct delta *d, uint64_t bytes)
{
	pthread_mutex_lock(&d->mu);
	d->copied = bytes;	/* for status; durable only by delta_note_copied */
	pthread_mutex_unlock(&d->mu);
}

const char *delta_name(const struct delta *d)
{
	return d->name;
}

int delta_source_fd(const struct delta *d)
{
	return d->src_fd;
}

struct target *delta_dest(const struct delta *d)
{
	return d->dst;
}

int delta_dest_fd(const struct delta *d)
{
	return d->dst ? target_fd(d->dst) : -1;
}

void delta_set_mtime(struct delta *d, const struct timespec *ts)
{
	pthread_mutex_lock(&d->mu);
	d->mtime = *ts;
	d->mtime_set = true;
	pthread_mutex_unlock(&d->mu);
}

bool delta_mtime(struct delta *d, struct timespec *ts)
{
	bool set;

	pthread_mutex_lock(&d->mu);
	set = d->mtime_set;
	if (set)
		*ts = d->mtime;
	pthread_mutex_unlock(&d->mu);
	return set;
}
