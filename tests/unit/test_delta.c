// modules: delta/store.c delta/view.c delta/merge.c target/target.c delta/journal.c delta/wal.c delta/bitmap.c common/log.c common/util.c common/crashpoint.c
/*
 * test_delta: the delta store on its own, against an in-memory model of the
 * file, on real files in a private mkdtemp directory (under $TMPDIR, else
 * /dev/shm, where the thousands of flushes cost nothing, else /tmp).
 *
 *  - the live view: random writes (aligned or not, across blocks and past
 *    the end), reads, truncates (shrinking and growing), holes punched and
 *    ranges zeroed read back as the model says, for many seeds;
 *  - replay: after a flush, closing and reopening the store from its
 *    journal and WAL gives the model exactly; so does reopening after the
 *    process died (everything closed with no sync, the WAL read through the
 *    page cache), flushed or not, while checkpoints run in the background on
 *    a small ring;
 *  - a host crash, simulated: the WAL cut at a random point after the last
 *    flush (zeros, garbage or a torn record after it), the delta file a
 *    block-by-block mix of what the last checkpoint synced and what was
 *    written since: every flushed write is there, and every block and the
 *    size read as they were at some moment since the last flush;
 *  - merge: a base copy plus merges and the switch's finish leave the
 *    destination equal to the live view (verify agrees before the switch);
 *    an abort's finish leaves the source equal to it.
 *
 * The store is driven as the FUSE layer and the copier drive it; there is
 * no FUSE mount and no copier thread here.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <linux/falloc.h>

#include <cmocka.h>

#include "common/util.h"
#include "delta/delta.h"
#include "delta/delta_i.h"	/* the WAL's head, checkpoints, the knobs */
#include "target/target.h"

#define MAX_SIZE	(768u << 10)	/* the model's largest file */
#define BLK		DELTA_BLOCK

struct env {
	char dir[256];
	int dirfd;		/* the store's directory */
	int src_fd, dst_fd;	/* kept open by the test to look at the files */
	struct delta *d;
	unsigned seed;
	/* the model: what the live view must read */
	unsigned char *now;
	uint64_t now_size;
	/* the model at the last flush */
	unsigned char *flushed;
	uint64_t flushed_size;
	uint64_t flushed_pos;	/* the WAL's head then */
};

static uint64_t rnd(struct env *e, uint64_t n)
{
	e->seed = e->seed * 1103515245u + 12345u;
	return n ? ((uint64_t)(e->seed >> 8) * 2654435761u) % n : 0;
}

static void fill(struct env *e, unsigned char *p, size_t len)
{
	unsigned char v = (unsigned char)rnd(e, 256);

	for (size_t i = 0; i < len; i++)
		p[i] = (unsigned char)(v + i * 7);
}

static int open_at(struct env *e, const char *name, int flags)
{
	int fd = openat(e->dirfd, name, flags | O_CLOEXEC, 0600);

	assert_true(fd >= 0);
	return fd;
}

/* A source of random size and content, an empty destination, a store. */
static void env_start(struct env *e, unsigned seed)
{
	char tmpl[256];
	const char *tmp = getenv("TMPDIR");
	uint64_t size;
	unsigned char *base;
	bool hole;
	int src, dst;

	if (!tmp || !*tmp)
		tmp = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
	snprintf(tmpl, sizeof(tmpl), "%s/test_delta.XXXXXX", tmp);
	assert_non_null(mkdtemp(tmpl));
	memset(e, 0, sizeof(*e));
	snprintf(e->dir, sizeof(e->dir), "%s", tmpl);
	e->dirfd = open(e->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	assert_true(e->dirfd >= 0);
	e->seed = seed;
	e->now = calloc(1, MAX_SIZE);
	e->flushed = calloc(1, MAX_SIZE);
	assert_non_null(e->now);
	assert_non_null(e->flushed);
	size = rnd(e, MAX_SIZE / 2);
	base = e->now;
	fill(e, base, size);
	hole = size > 3 * BLK && rnd(e, 2);
	if (hole)
		memset(base + BLK, 0, 2 * BLK);		/* a hole in the base */
	e->src_fd = open_at(e, "src", O_RDWR | O_CREAT);
	e->dst_fd = open_at(e, "dst", O_RDWR | O_CREAT);
	assert_int_equal(pwrite_full(e->src_fd, (char *)base, size, 0), 0);
	if (hole)	/* not base[BLK] == 0: the fill can put a zero there */
		assert_int_equal(fallocate(e->src_fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
					   BLK, 2 * BLK), 0);
	e->now_size = e->flushed_size = size;
	memcpy(e->flushed, e->now, MAX_SIZE);
	src = dup(e->src_fd);
	dst = dup(e->dst_fd);
	assert_int_equal(delta_create(&e->d, "f", 0, src, target_file_new(dst, "dst"), e->dirfd), 0);
	assert_int_equal(delta_rebase(e->d), 0);
}

static void env_stop(struct env *e)
{
	delta_free(e->d, true);
	close(e->src_fd);
	close(e->dst_fd);
	unlinkat(e->dirfd, "src", 0);
	unlinkat(e->dirfd, "dst", 0);
	close(e->dirfd);
	rmdir(e->dir);
	free(e->now);
	free(e->flushed);
}

/* ---- operations on the store and the model ---- */

/* a write and a truncate at chosen places, the model kept with them */
static void write_at(struct env *e, const unsigned char *buf, size_t len, uint64_t off)
{
	assert_int_equal(delta_write(e->d, (const char *)buf, len, (off_t)off), (ssize_t)len);
	if (off > e->now_size)
		memset(e->now + e->now_size, 0, off - e->now_size);
	memcpy(e->now + off, buf, len);
	if (off + len > e->now_size)
		e->now_size = off + len;
}

static void truncate_to(struct env *e, uint64_t size)
{
	assert_int_equal(delta_truncate(e->d, (off_t)size), 0);
	if (size > e->now_size)
		memset(e->now + e->now_size, 0, size - e->now_size);
	else
		memset(e->now + size, 0, MAX_SIZE - size);
	e->now_size = size;
}

static void op_write(struct env *e)
{
	uint64_t off = rnd(e, MAX_SIZE - 1);
	size_t len = 1 + rnd(e, rnd(e, 4) ? 3 * BLK : 64 * 1024);
	unsigned char *buf;

	if (off + len > MAX_SIZE)
		len = MAX_SIZE - off;
	if (rnd(e, 3) == 0) {
		off -= off % BLK;	/* aligned, as a guest's */
		len = (len + BLK - 1) / BLK * BLK;
		if (off + len > MAX_SIZE)
			len = (MAX_SIZE - off) / BLK * BLK;
		if (!len)
			len = BLK;
	}
	buf = malloc(len);
	assert_non_null(buf);
	fill(e, buf, len);
	write_at(e, buf, len, off);
	free(buf);
}

static void op_truncate(struct env *e)
{
	uint64_t size = rnd(e, MAX_SIZE);

	if (rnd(e, 2))
		size -= size % BLK;
	truncate_to(e, size);
}

static void op_zero(struct env *e)
{
	uint64_t off = rnd(e, MAX_SIZE - 1), end;
	uint64_t len = 1 + rnd(e, 8 * BLK);
	int mode = rnd(e, 2) ? FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE : FALLOC_FL_ZERO_RANGE;

	if (off + len > MAX_SIZE)
		len = MAX_SIZE - off;
	if (rnd(e, 2))
		mode |= FALLOC_FL_KEEP_SIZE;
	assert_int_equal(delta_fallocate(e->d, mode, (off_t)off, (off_t)len), 0);
	end = (mode & FALLOC_FL_KEEP_SIZE) && off + len > e->now_size ? e->now_size : off + len;
	if (off < end)
		memset(e->now + off, 0, end - off);
	if (!(mode & FALLOC_FL_KEEP_SIZE) && off + len > e->now_size) {
		memset(e->now + e->now_size, 0, off + len - e->now_size);
		e->now_size = off + len;
	}
}

/* the model at every moment since the last flush (for the host crash) */
#define MAX_HIST 256
static unsigned char *hist[MAX_HIST];
static uint64_t hist_size[MAX_HIST];
static int nhist = -1;		/* < 0: not kept */

static void hist_note(struct env *e)
{
	if (nhist < 0)
		return;
	assert_true(nhist < MAX_HIST);
	if (!hist[nhist])
		hist[nhist] = malloc(MAX_SIZE);
	assert_non_null(hist[nhist]);
	memcpy(hist[nhist], e->now, MAX_SIZE);
	hist_size[nhist++] = e->now_size;
}

static void op_flush(struct env *e)
{
	assert_int_equal(delta_fsync(e->d, rnd(e, 2)), 0);
	memcpy(e->flushed, e->now, MAX_SIZE);
	e->flushed_size = e->now_size;
	e->flushed_pos = e->d->w.head_pos;
	if (nhist >= 0) {
		nhist = 0;
		hist_note(e);
	}
}

/* The live view reads as the model, whole and in random pieces. */
static void check_view(struct env *e)
{
	unsigned char *buf = malloc(MAX_SIZE + BLK);
	struct stat st;

	memset(&st, 0, sizeof(st));
	delta_getattr(e->d, &st);
	assert_int_equal((uint64_t)st.st_size, e->now_size);
	assert_int_equal(delta_read(e->d, (char *)buf, MAX_SIZE + BLK, 0), (ssize_t)e->now_size);
	assert_memory_equal(buf, e->now, e->now_size);
	for (int i = 0; i < 8; i++) {
		uint64_t off = rnd(e, e->now_size + 1);
		size_t len = 1 + rnd(e, 5 * BLK);
		ssize_t want = off >= e->now_size ? 0 : (ssize_t)(e->now_size - off < len ? e->now_size - off : len);

		assert_int_equal(delta_read(e->d, (char *)buf, len, (off_t)off), want);
		if (want)
			assert_memory_equal(buf, e->now + off, (size_t)want);
	}
	free(buf);
}

/* Close the store and reopen it from its journal, as a restart does; warm:
 * as a worker that takes over from one that died (the host up). */
static void reopen_as(struct env *e, bool warm)
{
	delta_free(e->d, false);
	e->d = NULL;
	assert_int_equal(delta_open(&e->d, "f", 0, dup(e->src_fd),
				    target_file_new(dup(e->dst_fd), "dst"), e->dirfd, warm), 0);
}

static void reopen(struct env *e)
{
	reopen_as(e, false);
}

/* Random operations, flushes and checks on one store. */
static void run_ops(struct env *e, int nops)
{
	for (int i = 0; i < nops; i++, hist_note(e)) {
		switch (rnd(e, 12)) {
		case 0:
			op_truncate(e);
			break;
		case 1:
		case 2:
			op_zero(e);
			break;
		case 3:
			op_flush(e);
			break;
		case 4:
			check_view(e);
			break;
		default:
			op_write(e);
			break;
		}
	}
}

static void test_live_view_reads_what_was_written(void **state)
{
	for (unsigned seed = 1; seed <= 40; seed++) {
		struct env e;

		env_start(&e, seed);
		run_ops(&e, 200);
		check_view(&e);
		env_stop(&e);
	}
}

static void test_replay_after_a_flush_gives_the_live_view(void **state)
{
	for (unsigned seed = 100; seed <= 130; seed++) {
		struct env e;

		env_start(&e, seed);
		for (int round = 0; round < 4; round++) {
			run_ops(&e, 60);
			op_flush(&e);
			reopen(&e);
			check_view(&e);
		}
		env_stop(&e);
	}
}

/* Without a flush, a replayed block reads as now or as at the last flush. */
static void test_replay_without_a_flush_loses_only_unflushed_blocks(void **state)
{
	unsigned char *buf = malloc(MAX_SIZE + BLK);

	for (unsigned seed = 200; seed <= 230; seed++) {
		struct env e;
		ssize_t n;

		env_start(&e, seed);
		run_ops(&e, 80);
		op_flush(&e);
		for (int i = 0; i < 20; i++)
			op_write(&e);
		reopen(&e);
		n = delta_read(e.d, (char *)buf, MAX_SIZE + BLK, 0);
		assert_true(n == (ssize_t)e.now_size || n == (ssize_t)e.flushed_size);
		for (uint64_t b = 0; b * BLK < (uint64_t)n; b++) {
			size_t len = (uint64_t)n - b * BLK < BLK ? (size_t)((uint64_t)n - b * BLK) : BLK;

			if (memcmp(buf + b * BLK, e.now + b * BLK, len) &&
			    memcmp(buf + b * BLK, e.flushed + b * BLK, len))
				fail_msg("seed %u: block %llu reads neither the last write nor the last "
					 "flush", seed, (unsigned long long)b);
		}
		env_stop(&e);
	}
	free(buf);
}

/*
 * The process dies: the store is dropped with no sync of any kind (the
 * page cache of its files survives, as it does a SIGKILL), and reopened:
 * the live view is the model exactly, flushed or not.  Small rings and a
 * checkpointer every 5 ms or none but when the ring fills: checkpoints run
 * beside the writes, and writers wait for room.
 */
static void test_reopen_after_the_process_died_gives_the_live_view_exactly(void **state)
{
	struct delta_tunables saved = delta_tun;
	uint64_t waits = 0, ckpts = 0;

	for (unsigned seed = 600; seed <= 625; seed++) {
		struct env e;

		/* half the time a 512 KiB ring and checkpoints only when it
		 * is full: writers wait for room */
		delta_tun.wal_ring = seed % 2 ? 512u << 10 : WAL_MIN_RING;
		delta_tun.ckpt_ms = seed % 2 ? 0 : 5;
		delta_tun.lazy = seed % 2;
		env_start(&e, seed);
		for (int round = 0; round < 4; round++) {
			struct delta_status st;

			run_ops(&e, 50);
			delta_status(e.d, &st);
			waits += st.wal_waits;
			ckpts += st.checkpoints;
			/* a worker takes over (warm) or the daemon restarts */
			reopen_as(&e, seed % 3 != 0 && round != 3);
			check_view(&e);
		}
		env_stop(&e);
	}
	print_message("%llu checkpoints, %llu writes waited for room in the ring\n",
		      (unsigned long long)ckpts, (unsigned long long)waits);
	assert_true(ckpts > 0 && waits > 0);
	delta_tun = saved;
}

/*
 * The size cut by a truncate and brought back to exactly what the journal
 * last said by a write, both in the log only; a worker takes over (the log
 * replayed warm), checkpoints, and another takes over.  The checkpoint must
 * record the size the write brought back: the journal's last size record
 * is the truncate's, queued by the replay, and the log before the
 * checkpoint is not read again.
 */
static void test_a_size_cut_and_written_back_survives_takeovers(void **state)
{
	unsigned char buf[3 * BLK];
	uint64_t end = 6 * BLK;
	struct env e;

	env_start(&e, 700);
	memset(buf, 0xa5, sizeof(buf));
	truncate_to(&e, BLK);		/* the base limit below every size after */
	truncate_to(&e, end);
	assert_int_equal(store_checkpoint(e.d), 0);	/* the journal: size end */
	truncate_to(&e, 2 * BLK + 100);
	write_at(&e, buf, sizeof(buf), end - sizeof(buf));
	reopen_as(&e, true);
	check_view(&e);
	assert_int_equal(store_checkpoint(e.d), 0);
	reopen_as(&e, true);
	check_view(&e);
	reopen_as(&e, false);
	check_view(&e);
	env_stop(&e);
}

static unsigned char *read_file(int dirfd, const char *name, uint64_t *len)
{
	int fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC);
	struct stat st;
	unsigned char *p;

	assert_true(fd >= 0);
	assert_int_equal(fstat(fd, &st), 0);
	*len = (uint64_t)st.st_size;
	p = malloc(*len + 1);
	assert_non_null(p);
	assert_int_equal(pread_full(fd, (char *)p, *len, 0), 0);
	close(fd);
	return p;
}

static void write_file(int dirfd, const char *name, const unsigned char *p, uint64_t len)
{
	int fd = openat(dirfd, name, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

	assert_true(fd >= 0);
	assert_int_equal(pwrite_full(fd, (const char *)p, len, 0), 0);
	close(fd);
}

/* block b of the live view (n bytes at most) as it was at some moment
 * since the last flush */
static bool seen_since_flush(const unsigned char *buf, uint64_t b, size_t n)
{
	for (int h = 0; h < nhist; h++)
		if (!memcmp(buf, hist[h] + b * BLK, n))
			return true;
	return false;
}

/*
 * The host crashes.  A checkpoint, a copy of the delta file as it synced,
 * then writes, flushes, and more writes; then the crash image: the WAL up to
 * a random point at or after the last flush's records, then zeros, garbage,
 * or the record there torn; the delta file block by block from the copy or
 * from now (writeback may have written any of it); the journal as
 * committed.  Reopened, the live view must hold every flushed write and
 * read, block by block and in its size, as it was at some moment since the
 * last flush.
 */
static void test_reopen_after_a_host_crash_keeps_every_flushed_write(void **state)
{
	struct delta_tunables saved = delta_tun;
	unsigned char *buf = malloc(MAX_SIZE + BLK);
	unsigned cases[3] = { 0 };

	delta_tun.wal_ring = 4u << 20;	/* no wrap, no checkpoint but ours */
	delta_tun.ckpt_ms = 0;
	for (unsigned seed = 700; seed <= 740; seed++) {
		struct env e;
		unsigned char *ckpt_delta, *now_delta, *wal, *mix;
		uint64_t ckpt_len, now_len, wal_len, mix_len, tail, flushed, head, cut;
		int variant;
		ssize_t n;

		env_start(&e, seed);
		run_ops(&e, 40);
		op_flush(&e);
		assert_int_equal(store_checkpoint(e.d), 0);
		ckpt_delta = read_file(e.dirfd, "0.delta", &ckpt_len);
		tail = e.d->w.head_pos;
		nhist = 0;
		hist_note(&e);
		for (int i = 0; i < 1 + (int)rnd(&e, 4); i++) {
			run_ops(&e, 10);
			/* half the time a worker takes over in the middle: the
			 * ring goes on after what it replayed */
			if (rnd(&e, 2))
				reopen_as(&e, true);
			op_flush(&e);
		}
		run_ops(&e, (int)rnd(&e, 30));
		if (rnd(&e, 2))
			reopen_as(&e, true);
		flushed = e.flushed_pos > tail ? e.flushed_pos : tail;
		head = e.d->w.head_pos;
		assert_true(head >= flushed && flushed >= tail);	/* no wrap */

		/* the crash image */
		delta_free(e.d, false);
		e.d = NULL;
		wal = read_file(e.dirfd, "0.wal", &wal_len);
		cut = flushed + rnd(&e, head - flushed + 1);
		variant = (int)rnd(&e, 3);
		cases[variant]++;
		memset(wal + cut, 0, head - cut);
		if (variant == 1) {		/* garbage after the cut */
			for (uint64_t i = cut; i < cut + 300 && i < wal_len; i++)
				wal[i] = (unsigned char)rnd(&e, 256);
		} else if (variant == 2 && cut < head) {	/* the record there torn */
			wal[cut] ^= 0x5a;
		}
		write_file(e.dirfd, "0.wal", wal, wal_len);
		now_delta = read_file(e.dirfd, "0.delta", &now_len);
		mix_len = rnd(&e, 2) ? now_len : ckpt_len;
		mix = calloc(1, mix_len + BLK);
		assert_non_null(mix);
		for (uint64_t b = 0; b * BLK < mix_len; b++) {
			bool old = rnd(&e, 2);
			const unsigned char *from = old ? ckpt_delta : now_delta;
			uint64_t from_len = old ? ckpt_len : now_len;

			if (b * BLK < from_len)
				memcpy(mix + b * BLK, from + b * BLK,
				       from_len - b * BLK < BLK ? from_len - b * BLK : BLK);
		}
		write_file(e.dirfd, "0.delta", mix, mix_len);

		assert_int_equal(delta_open(&e.d, "f", 0, dup(e.src_fd),
					    target_file_new(dup(e.dst_fd), "dst"), e.dirfd, false),
				 0);
		n = delta_read(e.d, (char *)buf, MAX_SIZE + BLK, 0);
		{
			bool size_ok = false;

			for (int h = 0; h < nhist; h++)
				size_ok |= n == (ssize_t)hist_size[h];
			if (!size_ok)
				fail_msg("seed %u: size %zd after the crash is no size the file had since "
					 "the last flush (%llu then)", seed, n,
					 (unsigned long long)e.flushed_size);
		}
		for (uint64_t b = 0; b * BLK < (uint64_t)n; b++) {
			size_t len = (uint64_t)n - b * BLK < BLK ? (size_t)((uint64_t)n - b * BLK) : BLK;

			if (!seen_since_flush(buf + b * BLK, b, len))
				fail_msg("seed %u: block %llu reads as it never was since the last flush "
					 "(cut at %llu of %llu..%llu, variant %d)", seed,
					 (unsigned long long)b, (unsigned long long)cut,
					 (unsigned long long)flushed, (unsigned long long)head, variant);
		}
		nhist = -1;
		free(ckpt_delta);
		free(now_delta);
		free(wal);
		free(mix);
		env_stop(&e);
	}
	print_message("host crashes: %u cut, %u garbage, %u torn\n", cases[0], cases[1], cases[2]);
	for (int h = 0; h < MAX_HIST; h++)
		free(hist[h]);
	free(buf);
	delta_tun = saved;
}

/* The copier's part, done here in line: copy the base, then merge. */
static void copy_base(struct env *e)
{
	struct delta_status st;
	char *buf = malloc(MAX_SIZE);
	ssize_t n;

	delta_status(e->d, &st);
	n = pread(e->src_fd, buf, st.base_size, 0);
	assert_int_equal(n, (ssize_t)st.base_size);
	assert_int_equal(pwrite_full(e->dst_fd, buf, (size_t)n, 0), 0);
	assert_int_equal(ftruncate(e->dst_fd, (off_t)st.base_size), 0);
	assert_int_equal(fdatasync(e->dst_fd), 0);
	assert_int_equal(delta_note_copied(e->d, st.base_size), 0);
	assert_int_equal(delta_set_phase(e->d, DELTA_MERGING), 0);
	free(buf);
}

static void check_file(int fd, const unsigned char *model, uint64_t size)
{
	unsigned char *buf = malloc(MAX_SIZE + 1);
	struct stat st;

	assert_int_equal(fstat(fd, &st), 0);
	assert_int_equal((uint64_t)st.st_size, size);
	assert_int_equal(pread(fd, buf, size, 0), (ssize_t)size);
	assert_memory_equal(buf, model, size);
	free(buf);
}

static void test_merged_destination_equals_the_live_view_at_the_switch(void **state)
{
	for (unsigned seed = 300; seed <= 330; seed++) {
		struct env e;
		uint64_t diff = 0;

		env_start(&e, seed);
		run_ops(&e, 40);
		copy_base(&e);
		for (int round = 0; round < 5; round++) {
			run_ops(&e, 40);
			op_flush(&e);
			while (delta_merge_some(e.d, rnd(&e, 64 * 1024) + BLK) > 0)
				;
			assert_int_equal(delta_verify(e.d, &diff), 0);
		}
		run_ops(&e, 20);	/* unflushed: the switch merges them too */
		assert_int_equal(delta_verify(e.d, &diff), 0);
		assert_int_equal(delta_set_phase(e.d, DELTA_CUTOVER), 0);
		assert_int_equal(delta_finish_target(e.d, DELTA_FINISH_SWITCH), 0);
		check_file(e.dst_fd, e.now, e.now_size);
		env_stop(&e);
	}
}

static void test_verify_names_the_first_difference(void **state)
{
	struct env e;
	uint64_t diff = 0;
	char x = 'x';

	env_start(&e, 7);
	while (e.now_size < 4 * BLK)
		op_write(&e);
	copy_base(&e);
	assert_int_equal(delta_verify(e.d, &diff), 0);
	x = (char)(e.now[2 * BLK + 5] ^ 0xff);
	assert_int_equal(pwrite(e.dst_fd, &x, 1, 2 * BLK + 5), 1);
	/* the block may be in the delta, unmerged: then verify reads the delta */
	op_flush(&e);
	while (delta_merge_some(e.d, 1 << 20) > 0)
		;
	assert_int_equal(pwrite(e.dst_fd, &x, 1, 2 * BLK + 5), 1);
	assert_int_equal(delta_verify(e.d, &diff), 1);
	assert_int_equal(diff, 2 * BLK + 5);
	env_stop(&e);
}

static void test_abort_writes_the_live_view_back_to_the_source(void **state)
{
	for (unsigned seed = 400; seed <= 420; seed++) {
		struct env e;

		env_start(&e, seed);
		run_ops(&e, 60);
		if (rnd(&e, 2))
			copy_base(&e);
		op_flush(&e);
		assert_int_equal(delta_set_phase(e.d, DELTA_ABORTING), 0);
		delta_target_source(e.d);
		while (delta_merge_some(e.d, 64 * 1024) > 0)
			;
		run_ops(&e, 20);
		assert_int_equal(delta_finish_target(e.d, DELTA_FINISH_SYNC), 0);
		check_file(e.src_fd, e.now, e.now_size);
		env_stop(&e);
	}
}

static void test_an_abort_is_replayed_after_a_restart(void **state)
{
	struct env e;
	struct delta_status st;

	env_start(&e, 500);
	run_ops(&e, 50);
	op_flush(&e);
	assert_int_equal(delta_set_phase(e.d, DELTA_ABORTING), 0);
	reopen(&e);
	delta_status(e.d, &st);
	assert_int_equal(st.phase, DELTA_ABORTING);
	check_view(&e);
	delta_target_source(e.d);
	assert_int_equal(delta_finish_target(e.d, DELTA_FINISH_SYNC), 0);
	check_file(e.src_fd, e.now, e.now_size);
	env_stop(&e);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_live_view_reads_what_was_written),
		cmocka_unit_test(test_replay_after_a_flush_gives_the_live_view),
		cmocka_unit_test(test_replay_without_a_flush_loses_only_unflushed_blocks),
		cmocka_unit_test(test_reopen_after_the_process_died_gives_the_live_view_exactly),
		cmocka_unit_test(test_reopen_after_a_host_crash_keeps_every_flushed_write),
		cmocka_unit_test(test_a_size_cut_and_written_back_survives_takeovers),
		cmocka_unit_test(test_merged_destination_equals_the_live_view_at_the_switch),
		cmocka_unit_test(test_verify_names_the_first_difference),
		cmocka_unit_test(test_abort_writes_the_live_view_back_to_the_source),
		cmocka_unit_test(test_an_abort_is_replayed_after_a_restart),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
