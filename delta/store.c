/*
 * store: the life cycle of a delta store (create, replay after a restart,
 * free), its phases and its status (see delta.h for the model).
 *
 * Crash safety of the delta store
 * --------------------------------
 * Files: "<id>.delta" (sparse, same offsets as the image) and "<id>.journal"
 * (journal.h) in the job's delta directory.  The journal records, in
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
 * one exception is the cutover's hold (DELTA_FINISH_SWITCH), which merges
 * everything without a commit, and is safe because a restart that finds the
 * cutover unfinished rolls the job back to the source (ctl/cutover.c).
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
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <linux/falloc.h>

#include "common/crashpoint.h"
#include "common/log.h"
#include "delta/delta_i.h"

/* ---- life cycle ------------------------------------------------------------ */

/* Records just made durable: their D blocks may now reach the target. */
static void on_durable(void *arg, const struct jr *recs, size_t n)
{
	struct delta *d = arg;
	size_t k = 0;

	/*
	 * Not applied here: a write may be growing the bitmaps (realloc) under
	 * io exclusive, and this runs under the journal's write lock, which
	 * holders of io wait for.  Queued instead, and applied by the next
	 * holder of io (apply_durable); until then the blocks are merely not
	 * mergeable yet.
	 */
	pthread_mutex_lock(&d->mu);
	for (size_t i = 0; i < n; i++)
		if (recs[i].type == JR_SET_DE || recs[i].type == JR_CLEAR_D)
			k++;
	if (k && d->dd_n + k > d->dd_cap) {
		size_t cap = (d->dd_n + k) * 2;
		struct jr *q = realloc(d->dd_q, cap * sizeof(*q));

		if (q) {
			d->dd_q = q;
			d->dd_cap = cap;
		}
	}
	for (size_t i = 0; i < n && d->dd_n < d->dd_cap; i++)
		if (recs[i].type == JR_SET_DE || recs[i].type == JR_CLEAR_D)
			d->dd_q[d->dd_n++] = recs[i];
	/* out of memory: the blocks left out stay unmergeable until written
	 * again or merged by the cutover's hold, which merges everything */
	pthread_mutex_unlock(&d->mu);
}

/* Apply the records made durable since the last call to DD.  Caller holds
 * io (shared or exclusive), so the bitmaps cannot move. */
void apply_durable(struct delta *d)
{
	pthread_mutex_lock(&d->mu);
	for (size_t i = 0; i < d->dd_n; i++) {
		if (d->dd_q[i].type == JR_SET_DE)
			bitmap_set_range(&d->DD, d->dd_q[i].a, d->dd_q[i].b);
		else
			bitmap_clear_range(&d->DD, d->dd_q[i].a, d->dd_q[i].b);
	}
	d->dd_n = 0;
	pthread_mutex_unlock(&d->mu);
}

static void journal_hook(struct delta *d)
{
	d->j.on_durable = on_durable;
	d->j.on_durable_arg = d;
}

static struct delta *store_alloc(const char *name, unsigned id, int src_fd, int dst_fd, int dirfd)
{
	struct delta *d = calloc(1, sizeof(*d));
	pthread_rwlockattr_t ra;

	if (!d)
		return NULL;
	d->name = strdup(name);
	if (!d->name) {
		free(d);
		return NULL;
	}
	d->id = id;
	d->src_fd = src_fd;
	d->dst_fd = dst_fd;
	d->target_fd = dst_fd;
	d->dirfd = dirfd;
	d->delta_fd = -1;
	d->j.fd = -1;
	pthread_rwlockattr_init(&ra);
	/* the merger and size changes must not starve behind a stream of I/O */
	pthread_rwlockattr_setkind_np(&ra, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
	pthread_rwlock_init(&d->io, &ra);
	pthread_rwlockattr_destroy(&ra);
	for (unsigned i = 0; i < REGIONS; i++)
		pthread_mutex_init(&d->region[i], NULL);
	pthread_mutex_init(&d->mu, NULL);
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

int delta_create(struct delta **out, const char *name, unsigned id, int src_fd, int dst_fd,
	       int dirfd)
{
	struct delta *d;
	struct stat st;
	char file[32];
	int err;

	if (fstat(src_fd, &st) == -1)
		return -errno;
	d = store_alloc(name, id, src_fd, dst_fd, dirfd);
	if (!d)
		return -ENOMEM;
	d->size = d->base_size = d->base_limit = d->journal_size = (uint64_t)st.st_size;
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
	store_file(id, "journal", file);
	unlinkat(dirfd, file, 0);
	err = journal_create(dirfd, file, &d->j);
	if (!err)
		journal_hook(d);
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
		err = journal_commit(&d->j, NULL, NULL);
	if (err)
		goto fail;
	*out = d;
	return 0;
fail:
	d->src_fd = d->dst_fd = d->dirfd = -1;	/* the caller keeps its descriptors */
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
		d->base_limit = r->b;
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
	default:
		break;	/* JR_SET_E: written by older versions only */
	}
	return 0;
}

int delta_open(struct delta **out, const char *name, unsigned id, int src_fd, int dst_fd,
	     int dirfd)
{
	struct delta *d = store_alloc(name, id, src_fd, dst_fd, dirfd);
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
	journal_hook(d);
	/* everything replayed is durable */
	for (uint64_t w = 0; w < d->D.nwords; w++)
		d->DD.w[w] = d->D.w[w];
	if (d->phase == DELTA_CUTOVER)
		d->phase = DELTA_MERGING;	/* the switch did not happen: still merging */
	if (!d->started) {
		/* the daemon died between recording the job and freezing the
		 * base: no write went to the delta, the source is the truth */
		err = delta_rebase(d);
		if (err)
			goto fail;
	}
	if (d->phase == DELTA_FAILED)
		snprintf(d->error, sizeof(d->error),
			 "failed before a restart: the source was written in place; abort to finish");
	d->dirty = bitmap_count(&d->D);
	*out = d;
	return 0;
fail:
	d->src_fd = d->dst_fd = d->dirfd = -1;
	delta_free(d, false);
	return err;
}

void delta_free(struct delta *d, bool unlink_files)
{
	char file[32];

	if (!d)
		return;
	if (d->j.fd != -1 || d->j.pending)
		journal_close(&d->j);
	if (d->delta_fd != -1)
		close(d->delta_fd);
	if (unlink_files && d->dirfd != -1) {
		store_file(d->id, "delta", file);
		unlinkat(d->dirfd, file, 0);
		store_file(d->id, "journal", file);
		unlinkat(d->dirfd, file, 0);
	}
	if (d->src_fd != -1)
		close(d->src_fd);
	if (d->dst_fd != -1)
		close(d->dst_fd);
	bitmap_free(&d->D);
	bitmap_free(&d->M);
	bitmap_free(&d->DD);
	free(d->dd_q);
	pthread_rwlock_destroy(&d->io);
	for (unsigned i = 0; i < REGIONS; i++)
		pthread_mutex_destroy(&d->region[i]);
	pthread_mutex_destroy(&d->mu);
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

int sync_for_flush(void *arg)
{
	struct delta *d = arg;

	/* the guest's writes from before the migration may still be in the
	 * source's page cache: the first flush since covers them too */
	if (!__atomic_load_n(&d->base_synced, __ATOMIC_ACQUIRE)) {
		if (fdatasync(d->src_fd) == -1)
			return -errno;
		__atomic_store_n(&d->base_synced, true, __ATOMIC_RELEASE);
	}
	if (fdatasync(d->delta_fd) == -1)
		return -errno;
	if (source_fallback(d) && fdatasync(d->src_fd) == -1)
		return -errno;
	crashpoint("flush-data-synced");	/* data durable, records not yet */
	return 0;
}

/* ---- phases and the merge engine -------------------------------------------------- */

int delta_rebase(struct delta *d)
{
	struct stat st;
	int err;

	if (fstat(d->src_fd, &st) == -1)
		return -errno;
	pthread_mutex_lock(&d->mu);
	d->size = d->base_size = d->base_limit = d->journal_size = (uint64_t)st.st_size;
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
	return journal_pending(&d->j) ? journal_commit(&d->j, sync_for_flush, d) : 0;
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
	snprintf(st->error, sizeof(st->error), "%s", d->error[0] == '!' ? d->error + 1 : d->error);
	pthread_mutex_unlock(&d->mu);
	pthread_rwlock_rdlock(&d->io);	/* D may be growing under io */
	st->delta_bytes = bitmap_count(&d->D) * BS;
	pthread_rwlock_unlock(&d->io);
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

int delta_dest_fd(const struct delta *d)
{
	return d->dst_fd;
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
