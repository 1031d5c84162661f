// modules: delta/store.c delta/view.c delta/merge.c delta/journal.c delta/wal.c delta/bitmap.c common/log.c common/util.c common/crashpoint.c
/*
 * test_delta: the delta store on its own, against an in-memory model of the
 * file, on real files in a private mkdtemp directory (under $TMPDIR, else
 * /dev/shm, where the thousands of flushes cost nothing, else /tmp).
 *
 *  - the live view: random writes (aligned or not, across blocks and past
 *    the end), reads, truncates (shrinking and growing), holes punched and
 *    ranges zeroed read back as the model says, for many seeds;
 *  - replay: after a flush, closing and reopening the store from its
 *    journal gives the model exactly; without one, every block reads as the
 *    model or as it was at the last flush (never anything else);
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
	if (size > 3 * BLK && rnd(e, 2))
		memset(base + BLK, 0, 2 * BLK);		/* a hole in the base */
	e->src_fd = open_at(e, "src", O_RDWR | O_CREAT);
	e->dst_fd = open_at(e, "dst", O_RDWR | O_CREAT);
	assert_int_equal(pwrite_full(e->src_fd, (char *)base, size, 0), 0);
	if (size > 3 * BLK && !base[BLK])
		assert_int_equal(fallocate(e->src_fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
					   BLK, 2 * BLK), 0);
	e->now_size = e->flushed_size = size;
	memcpy(e->flushed, e->now, MAX_SIZE);
	src = dup(e->src_fd);
	dst = dup(e->dst_fd);
	assert_int_equal(delta_create(&e->d, "f", 0, src, dst, e->dirfd), 0);
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
	assert_int_equal(delta_write(e->d, (char *)buf, len, (off_t)off), (ssize_t)len);
	if (off > e->now_size)
		memset(e->now + e->now_size, 0, off - e->now_size);
	memcpy(e->now + off, buf, len);
	if (off + len > e->now_size)
		e->now_size = off + len;
	free(buf);
}

static void op_truncate(struct env *e)
{
	uint64_t size = rnd(e, MAX_SIZE);

	if (rnd(e, 2))
		size -= size % BLK;
	assert_int_equal(delta_truncate(e->d, (off_t)size), 0);
	if (size > e->now_size)
		memset(e->now + e->now_size, 0, size - e->now_size);
	else
		memset(e->now + size, 0, MAX_SIZE - size);
	e->now_size = size;
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

static void op_flush(struct env *e)
{
	assert_int_equal(delta_fsync(e->d, rnd(e, 2)), 0);
	memcpy(e->flushed, e->now, MAX_SIZE);
	e->flushed_size = e->now_size;
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

/* Close the store and reopen it from its journal, as a restart does. */
static void reopen(struct env *e)
{
	delta_free(e->d, false);
	e->d = NULL;
	assert_int_equal(delta_open(&e->d, "f", 0, dup(e->src_fd), dup(e->dst_fd), e->dirfd), 0);
}

/* Random operations, flushes and checks on one store. */
static void run_ops(struct env *e, int nops)
{
	for (int i = 0; i < nops; i++) {
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
		cmocka_unit_test(test_merged_destination_equals_the_live_view_at_the_switch),
		cmocka_unit_test(test_verify_names_the_first_difference),
		cmocka_unit_test(test_abort_writes_the_live_view_back_to_the_source),
		cmocka_unit_test(test_an_abort_is_replayed_after_a_restart),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
