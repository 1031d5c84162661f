// modules: delta/journal.c common/log.c
/*
 * test_journal: the metadata journal against its header, on real files in a
 * private mkdtemp directory (under $TMPDIR, else /tmp).
 *
 *  - record encoding: round trip, every single-bit flip rejected, wrong
 *    sequence number and unknown types rejected;
 *  - create / open: O_EXCL, empty journal, missing file, apply errors;
 *  - replay stops at a torn record, a bad checksum, a sequence gap, and cuts
 *    the tail there so that new records are never followed by old ones;
 *  - the commit protocol: sync_data runs after the take and before the write,
 *    records queued meanwhile wait for the next commit, a failed sync or a
 *    failed write keeps the records, in order, for the next commit;
 *  - concurrent add + commit from two threads keeps each thread's order.
 *
 * The crash-point sweep over every prefix of a journal is test_journal_crash.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cmocka.h>

#include "delta/journal.h"

/*
 * fdatasync, interposed: the next call fails with EIO after fail_next_sync is
 * set (the write before it has reached the page cache, as after a real
 * writeback error).  journal.c is linked into this binary, so its calls come
 * here.
 */
static int fail_next_sync;

int fdatasync(int fd)
{
	if (fail_next_sync) {
		fail_next_sync = 0;
		errno = EIO;
		return -1;
	}
	return (int)syscall(SYS_fdatasync, fd);
}

struct env {
	char dir[256];
	int dirfd;
};

/* records replayed by journal_open */
struct got {
	struct jr r[4096];
	size_t n;
	size_t fail_at;		/* apply returns -EIO at this index (0 = never) */
};

static int collect(void *arg, const struct jr *r)
{
	struct got *g = arg;

	if (g->fail_at && g->n == g->fail_at)
		return -EIO;
	assert_true(g->n < sizeof(g->r) / sizeof(g->r[0]));
	g->r[g->n++] = *r;
	return 0;
}

static int setup(void **state)
{
	struct env *e = calloc(1, sizeof(*e));
	const char *tmp = getenv("TMPDIR");

	if (!e)
		return -1;
	snprintf(e->dir, sizeof(e->dir), "%s/test_journal.XXXXXX", tmp && *tmp ? tmp : "/tmp");
	if (!mkdtemp(e->dir)) {
		free(e);
		return -1;
	}
	e->dirfd = open(e->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (e->dirfd == -1) {
		rmdir(e->dir);
		free(e);
		return -1;
	}
	*state = e;
	return 0;
}

static int teardown(void **state)
{
	struct env *e = *state;
	DIR *d = fdopendir(dup(e->dirfd));
	struct dirent *de;

	while (d && (de = readdir(d)))
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
			unlinkat(e->dirfd, de->d_name, 0);
	if (d)
		closedir(d);
	close(e->dirfd);
	rmdir(e->dir);
	free(e);
	return 0;
}

static off_t file_size(struct env *e, const char *name)
{
	struct stat st;

	assert_int_equal(fstatat(e->dirfd, name, &st, 0), 0);
	return st.st_size;
}

static int truncate_at(struct env *e, const char *name, off_t len)
{
	int fd = openat(e->dirfd, name, O_WRONLY);
	int ret;

	if (fd == -1)
		return -errno;
	ret = ftruncate(fd, len) == -1 ? -errno : 0;
	close(fd);
	return ret;
}

static struct jr rec(uint16_t type, uint64_t a, uint64_t b)
{
	return (struct jr){ .type = type, .a = a, .b = b };
}

/* record i of a made-up history */
static struct jr nth(uint64_t i)
{
	return rec((uint16_t)(1 + i % (JR_TYPE_MAX - 1)), i * 1000 + 7, i ^ 0xabcdef);
}

static void assert_jr_equal(const struct jr *x, const struct jr *y)
{
	assert_int_equal(x->type, y->type);
	assert_int_equal(x->a, y->a);
	assert_int_equal(x->b, y->b);
}

/* write encoded records with sequence numbers seq[i] straight into a file */
static void write_raw(struct env *e, const char *name, const struct jr *r,
		      const uint64_t *seq, size_t n)
{
	int fd = openat(e->dirfd, name, O_WRONLY | O_CREAT | O_TRUNC, 0600);

	assert_true(fd >= 0);
	for (size_t i = 0; i < n; i++) {
		unsigned char b[JR_BYTES];

		jr_encode(&r[i], seq[i], b);
		assert_int_equal(pwrite(fd, b, JR_BYTES, (off_t)(i * JR_BYTES)), JR_BYTES);
	}
	close(fd);
}

/* a journal holding nth(0..n-1), written through the module */
static void make_journal(struct env *e, const char *name, size_t n)
{
	struct journal j;

	assert_int_equal(journal_create(e->dirfd, name, &j), 0);
	for (size_t i = 0; i < n; i++)
		assert_int_equal(journal_add(&j, nth(i).type, nth(i).a, nth(i).b), 0);
	assert_int_equal(journal_commit(&j, NULL, NULL), 0);
	journal_close(&j);
}

static void replay(struct env *e, const char *name, struct got *g)
{
	struct journal j;

	g->n = 0;
	assert_int_equal(journal_open(e->dirfd, name, &j, collect, g), 0);
	journal_close(&j);
}

static void assert_replays_nth(struct env *e, const char *name, size_t n)
{
	static struct got g;

	replay(e, name, &g);
	if (g.n != n)
		fail_msg("'%s' replayed %zu records, expected %zu", name, g.n, n);
	for (size_t i = 0; i < n; i++) {
		struct jr x = nth(i);

		assert_jr_equal(&g.r[i], &x);
	}
}

/* -------------------------------------------------------------- encoding */

static void test_encode_then_decode_round_trips(void **state)
{
	struct jr in = rec(JR_SIZE, UINT64_MAX, 0x0123456789abcdefull), out;
	unsigned char b[JR_BYTES];

	jr_encode(&in, 42, b);
	assert_int_equal(jr_decode(b, 42, &out), 0);
	assert_jr_equal(&out, &in);
}

static void test_decode_rejects_every_single_bit_flip(void **state)
{
	struct jr in = rec(JR_SET_DE, 4096, 16), out;
	unsigned char b[JR_BYTES];

	jr_encode(&in, 7, b);
	for (int bit = 0; bit < JR_BYTES * 8; bit++) {
		b[bit / 8] ^= (unsigned char)(1u << (bit % 8));
		if (jr_decode(b, 7, &out) != -EINVAL)
			fail_msg("flipping bit %d went unnoticed", bit);
		b[bit / 8] ^= (unsigned char)(1u << (bit % 8));
	}
	assert_int_equal(jr_decode(b, 7, &out), 0);
}

static void test_decode_rejects_a_wrong_sequence_number(void **state)
{
	struct jr in = rec(JR_PHASE, 3, 0), out;
	unsigned char b[JR_BYTES];

	jr_encode(&in, 5, b);
	assert_int_equal(jr_decode(b, 4, &out), -EINVAL);
	assert_int_equal(jr_decode(b, 6, &out), -EINVAL);
	assert_int_equal(jr_decode(b, 5, &out), 0);
}

static void test_decode_rejects_types_outside_the_enum(void **state)
{
	struct jr out;
	unsigned char b[JR_BYTES];
	uint16_t bad[] = { 0, JR_TYPE_MAX, 0xffff };

	for (size_t k = 0; k < sizeof(bad) / sizeof(bad[0]); k++) {
		struct jr in = rec(bad[k], 1, 2);

		jr_encode(&in, 0, b);	/* a valid checksum over a bad type */
		assert_int_equal(jr_decode(b, 0, &out), -EINVAL);
	}
	for (uint16_t t = 1; t < JR_TYPE_MAX; t++) {
		struct jr in = rec(t, 1, 2);

		jr_encode(&in, 0, b);
		assert_int_equal(jr_decode(b, 0, &out), 0);
	}
}

/* --------------------------------------------------------- create / open */

static void test_create_makes_an_empty_journal(void **state)
{
	struct env *e = *state;
	struct journal j;

	assert_int_equal(journal_create(e->dirfd, "j", &j), 0);
	assert_int_equal(journal_pending(&j), 0);
	journal_close(&j);
	assert_int_equal(file_size(e, "j"), 0);
	assert_replays_nth(e, "j", 0);
}

static void test_create_refuses_an_existing_file(void **state)
{
	struct env *e = *state;
	struct journal j;

	make_journal(e, "j", 3);
	assert_int_equal(journal_create(e->dirfd, "j", &j), -EEXIST);
	assert_replays_nth(e, "j", 3);
}

static void test_open_of_a_missing_journal_fails_with_enoent(void **state)
{
	struct env *e = *state;
	struct journal j;
	struct got g = { .n = 0 };

	assert_int_equal(journal_open(e->dirfd, "nope", &j, collect, &g), -ENOENT);
	assert_int_equal(g.n, 0);
}

static void test_apply_error_stops_open_and_is_returned(void **state)
{
	struct env *e = *state;
	struct journal j;
	static struct got g;

	make_journal(e, "j", 5);
	g.n = 0;
	g.fail_at = 2;
	assert_int_equal(journal_open(e->dirfd, "j", &j, collect, &g), -EIO);
	assert_int_equal(g.n, 2);
	assert_int_equal(j.fd, -1);
	g.fail_at = 0;
}

static void test_apply_error_leaves_the_file_as_it_was(void **state)
{
	struct env *e = *state;
	struct journal j;
	static struct got g;

	make_journal(e, "j", 5);
	g.n = 0;
	g.fail_at = 1;
	assert_int_equal(journal_open(e->dirfd, "j", &j, collect, &g), -EIO);
	g.fail_at = 0;
	assert_int_equal(file_size(e, "j"), 5 * JR_BYTES);
	assert_replays_nth(e, "j", 5);
}

/* ---------------------------------------------------------------- replay */

static void test_commit_writes_records_that_replay_in_order(void **state)
{
	struct env *e = *state;

	make_journal(e, "j", 10);
	assert_int_equal(file_size(e, "j"), 10 * JR_BYTES);
	assert_replays_nth(e, "j", 10);
}

static void test_replay_stops_at_a_torn_record(void **state)
{
	struct env *e = *state;

	make_journal(e, "j", 5);
	assert_int_equal(truncate_at(e, "j", 3 * JR_BYTES + 20), 0);
	assert_replays_nth(e, "j", 3);
}

static void test_replay_cuts_a_torn_tail(void **state)
{
	struct env *e = *state;

	make_journal(e, "j", 5);
	assert_int_equal(truncate_at(e, "j", 3 * JR_BYTES + 20), 0);
	assert_replays_nth(e, "j", 3);
	assert_int_equal(file_size(e, "j"), 3 * JR_BYTES);
}

static void test_replay_stops_at_a_bad_checksum_even_if_later_records_are_good(void **state)
{
	struct env *e = *state;
	int fd;
	unsigned char c;

	make_journal(e, "j", 6);
	fd = openat(e->dirfd, "j", O_RDWR);
	assert_true(fd >= 0);
	assert_int_equal(pread(fd, &c, 1, 2 * JR_BYTES + 17), 1);
	c ^= 0x10;
	assert_int_equal(pwrite(fd, &c, 1, 2 * JR_BYTES + 17), 1);
	close(fd);
	assert_replays_nth(e, "j", 2);
	assert_int_equal(file_size(e, "j"), 2 * JR_BYTES);
}

static void test_replay_stops_at_a_sequence_gap(void **state)
{
	struct env *e = *state;
	struct jr r[4] = { nth(0), nth(1), nth(2), nth(3) };
	uint64_t seq[4] = { 0, 1, 3, 4 };

	write_raw(e, "j", r, seq, 4);
	assert_replays_nth(e, "j", 2);
}

static void test_replay_stops_at_a_record_that_repeats_a_sequence_number(void **state)
{
	struct env *e = *state;
	struct jr r[4] = { nth(0), nth(1), nth(1), nth(2) };
	uint64_t seq[4] = { 0, 1, 1, 2 };

	write_raw(e, "j", r, seq, 4);
	assert_replays_nth(e, "j", 2);
}

static void test_replay_reads_across_its_read_buffer(void **state)
{
	/* journal_open reads 256 records at a time */
	struct env *e = *state;

	make_journal(e, "j", 1000);
	assert_replays_nth(e, "j", 1000);
	assert_int_equal(truncate_at(e, "j", 600 * JR_BYTES + 1), 0);
	assert_replays_nth(e, "j", 600);
	assert_int_equal(truncate_at(e, "j", 512 * JR_BYTES), 0);
	assert_replays_nth(e, "j", 512);
}

static void test_replay_cuts_a_stale_tail_so_new_records_are_not_followed_by_old_ones(void **state)
{
	/*
	 * Records 0..9, then record 3 torn: 4..9 are stale (valid, and with the
	 * sequence numbers that appending would reuse).  After replay and two
	 * new records, a second replay must give 0..2 and the new ones only.
	 */
	struct env *e = *state;
	struct journal j;
	static struct got g;
	unsigned char junk[10];
	int fd;

	make_journal(e, "j", 10);
	fd = openat(e->dirfd, "j", O_RDWR);
	assert_true(fd >= 0);
	memset(junk, 0xee, sizeof(junk));
	assert_int_equal(pwrite(fd, junk, sizeof(junk), 3 * JR_BYTES + 30), (ssize_t)sizeof(junk));
	close(fd);

	g.n = 0;
	assert_int_equal(journal_open(e->dirfd, "j", &j, collect, &g), 0);
	assert_int_equal(g.n, 3);
	assert_int_equal(journal_add(&j, JR_PHASE, 77, 0), 0);
	assert_int_equal(journal_add(&j, JR_COPIED, 88, 0), 0);
	assert_int_equal(journal_commit(&j, NULL, NULL), 0);
	journal_close(&j);

	replay(e, "j", &g);
	assert_int_equal(g.n, 5);
	for (size_t i = 0; i < 3; i++) {
		struct jr x = nth(i);

		assert_jr_equal(&g.r[i], &x);
	}
	assert_int_equal(g.r[3].type, JR_PHASE);
	assert_int_equal(g.r[3].a, 77);
	assert_int_equal(g.r[4].type, JR_COPIED);
	assert_int_equal(g.r[4].a, 88);
	assert_int_equal(file_size(e, "j"), 5 * JR_BYTES);
}

static void test_appending_after_reopen_continues_the_sequence(void **state)
{
	struct env *e = *state;
	struct journal j;
	static struct got g;

	make_journal(e, "j", 4);
	g.n = 0;
	assert_int_equal(journal_open(e->dirfd, "j", &j, collect, &g), 0);
	assert_int_equal(j.seq, 4);
	assert_int_equal(j.off, 4 * JR_BYTES);
	for (size_t i = 4; i < 9; i++)
		assert_int_equal(journal_add(&j, nth(i).type, nth(i).a, nth(i).b), 0);
	assert_int_equal(journal_commit(&j, NULL, NULL), 0);
	journal_close(&j);
	assert_replays_nth(e, "j", 9);
}

/* -------------------------------------------------------- write / commit */

static void test_journal_write_appends_records_directly(void **state)
{
	struct env *e = *state;
	struct journal j;
	struct jr r[3] = { nth(0), nth(1), nth(2) };

	assert_int_equal(journal_create(e->dirfd, "j", &j), 0);
	assert_int_equal(journal_write(&j, r, 2), 0);
	assert_int_equal(journal_write(&j, r + 2, 1), 0);
	assert_int_equal(journal_pending(&j), 0);
	journal_close(&j);
	assert_replays_nth(e, "j", 3);
}

static void test_one_commit_larger_than_the_write_buffer_replays_whole(void **state)
{
	/* journal_write encodes 128 records at a time */
	struct env *e = *state;

	make_journal(e, "j", 300);
	assert_int_equal(file_size(e, "j"), 300 * JR_BYTES);
	assert_replays_nth(e, "j", 300);
}

static void test_pending_counts_queued_records_until_commit(void **state)
{
	struct env *e = *state;
	struct journal j;

	assert_int_equal(journal_create(e->dirfd, "j", &j), 0);
	for (size_t i = 0; i < 100; i++)	/* past the first realloc */
		assert_int_equal(journal_add(&j, JR_SET_E, i, 1), 0);
	assert_int_equal(journal_pending(&j), 100);
	assert_int_equal(file_size(e, "j"), 0);
	assert_int_equal(journal_commit(&j, NULL, NULL), 0);
	assert_int_equal(journal_pending(&j), 0);
	journal_close(&j);
	assert_int_equal(file_size(e, "j"), 100 * JR_BYTES);
}

static void test_commit_with_nothing_queued_writes_nothing(void **state)
{
	struct env *e = *state;
	struct journal j;

	assert_int_equal(journal_create(e->dirfd, "j", &j), 0);
	assert_int_equal(journal_commit(&j, NULL, NULL), 0);
	journal_close(&j);
	assert_int_equal(file_size(e, "j"), 0);
}

/* what sync_data saw and does */
struct sync_probe {
	struct env *e;
	struct journal *j;
	int calls;
	off_t size_seen;
	size_t pending_seen;
	int add_during;		/* records to journal_add from inside sync */
	int ret;		/* what sync returns */
};

static int probe_sync(void *arg)
{
	struct sync_probe *p = arg;

	p->calls++;
	p->size_seen = file_size(p->e, "j");
	p->pending_seen = journal_pending(p->j);
	for (int i = 0; i < p->add_during; i++)
		assert_int_equal(journal_add(p->j, JR_PHASE, 1000 + (uint64_t)i, 0), 0);
	return p->ret;
}

static void test_commit_runs_sync_before_writing_records(void **state)
{
	struct env *e = *state;
	struct journal j;
	struct sync_probe p = { .e = e, .j = &j };

	assert_int_equal(journal_create(e->dirfd, "j", &j), 0);
	assert_int_equal(journal_add(&j, JR_SET_DE, 0, 8), 0);
	assert_int_equal(journal_add(&j, JR_SET_DE, 8, 8), 0);
	assert_int_equal(journal_commit(&j, probe_sync, &p), 0);
	assert_int_equal(p.calls, 1);
	assert_int_equal(p.size_seen, 0);	/* nothing written yet */
	assert_int_equal(p.pending_seen, 0);	/* but already taken */
	journal_close(&j);
	assert_int_equal(file_size(e, "j"), 2 * JR_BYTES);
}

static void test_records_queued_during_sync_wait_for_the_next_commit(void **state)
{
	struct env *e = *state;
	struct journal j;
	struct sync_probe p = { .e = e, .j = &j, .add_during = 1 };
	static struct got g;

	assert_int_equal(journal_create(e->dirfd, "j", &j), 0);
	assert_int_equal(journal_add(&j, JR_SET_DE, 0, 8), 0);
	assert_int_equal(journal_commit(&j, probe_sync, &p), 0);
	assert_int_equal(journal_pending(&j), 1);
	assert_int_equal(file_size(e, "j"), JR_BYTES);
	p.add_during = 0;
	assert_int_equal(journal_commit(&j, probe_sync, &p), 0);
	journal_close(&j);
	replay(e, "j", &g);
	assert_int_equal(g.n, 2);
	assert_int_equal(g.r[0].type, JR_SET_DE);
	assert_int_equal(g.r[1].type, JR_PHASE);
	assert_int_equal(g.r[1].a, 1000);
}

static void test_failed_sync_writes_nothing_and_is_returned(void **state)
{
	struct env *e = *state;
	struct journal j;
	struct sync_probe p = { .e = e, .j = &j, .ret = -EIO };

	assert_int_equal(journal_create(e->dirfd, "j", &j), 0);
	assert_int_equal(journal_add(&j, JR_SET_DE, 0, 8), 0);
	assert_int_equal(journal_commit(&j, probe_sync, &p), -EIO);
	journal_close(&j);
	assert_int_equal(file_size(e, "j"), 0);
}

static void test_failed_commit_keeps_records_for_the_next(void **state)
{
	struct env *e = *state;
	struct journal j;
	struct sync_probe p = { .e = e, .j = &j, .ret = -EIO };

	assert_int_equal(journal_create(e->dirfd, "j", &j), 0);
	for (size_t i = 0; i < 3; i++)
		assert_int_equal(journal_add(&j, nth(i).type, nth(i).a, nth(i).b), 0);
	assert_int_equal(journal_commit(&j, probe_sync, &p), -EIO);
	assert_int_equal(journal_pending(&j), 3);
	p.ret = 0;
	assert_int_equal(journal_commit(&j, probe_sync, &p), 0);
	assert_int_equal(journal_pending(&j), 0);
	journal_close(&j);
	assert_replays_nth(e, "j", 3);
}

static void test_failed_commit_puts_its_records_before_ones_queued_meanwhile(void **state)
{
	struct env *e = *state;
	struct journal j;
	struct sync_probe p = { .e = e, .j = &j, .ret = -EIO, .add_during = 2 };
	static struct got g;

	assert_int_equal(journal_create(e->dirfd, "j", &j), 0);
	assert_int_equal(journal_add(&j, JR_SET_DE, 0, 8), 0);
	assert_int_equal(journal_add(&j, JR_SET_E, 8, 8), 0);
	assert_int_equal(journal_commit(&j, probe_sync, &p), -EIO);
	assert_int_equal(journal_pending(&j), 4);
	p.ret = 0;
	p.add_during = 0;
	assert_int_equal(journal_commit(&j, probe_sync, &p), 0);
	journal_close(&j);
	replay(e, "j", &g);
	assert_int_equal(g.n, 4);
	assert_int_equal(g.r[0].type, JR_SET_DE);
	assert_int_equal(g.r[1].type, JR_SET_E);
	assert_int_equal(g.r[2].a, 1000);
	assert_int_equal(g.r[3].a, 1001);
}

static void test_failed_write_keeps_records_for_the_next_commit(void **state)
{
	/* a read-only descriptor makes pwrite fail with EBADF */
	struct env *e = *state;
	struct journal j;
	int rw, ro;

	assert_int_equal(journal_create(e->dirfd, "j", &j), 0);
	for (size_t i = 0; i < 4; i++)
		assert_int_equal(journal_add(&j, nth(i).type, nth(i).a, nth(i).b), 0);
	ro = openat(e->dirfd, "j", O_RDONLY);
	assert_true(ro >= 0);
	rw = j.fd;
	j.fd = ro;
	assert_int_equal(journal_commit(&j, NULL, NULL), -EBADF);
	j.fd = rw;
	close(ro);
	assert_int_equal(journal_pending(&j), 4);
	assert_int_equal(journal_commit(&j, NULL, NULL), 0);
	journal_close(&j);
	assert_replays_nth(e, "j", 4);
}

static void test_failed_write_is_returned_by_journal_write(void **state)
{
	struct env *e = *state;
	struct journal j;
	struct jr r = nth(0);
	int rw, ro;

	assert_int_equal(journal_create(e->dirfd, "j", &j), 0);
	ro = openat(e->dirfd, "j", O_RDONLY);
	assert_true(ro >= 0);
	rw = j.fd;
	j.fd = ro;
	assert_int_equal(journal_write(&j, &r, 1), -EBADF);
	j.fd = rw;
	close(ro);
	assert_int_equal(journal_write(&j, &r, 1), 0);
	journal_close(&j);
	assert_replays_nth(e, "j", 1);
}

static void test_failed_journal_sync_then_retry_leaves_each_record_once(void **state)
{
	/*
	 * The first commit's pwrite lands and its fdatasync fails; the commit
	 * keeps the records and the next one writes them.  The journal must
	 * then hold them once: replay is a prefix of what was committed, not
	 * the batch twice (which would replay a phase going backwards).
	 */
	struct env *e = *state;
	struct journal j;

	assert_int_equal(journal_create(e->dirfd, "j", &j), 0);
	for (size_t i = 0; i < 2; i++)
		assert_int_equal(journal_add(&j, nth(i).type, nth(i).a, nth(i).b), 0);
	fail_next_sync = 1;
	assert_int_equal(journal_commit(&j, NULL, NULL), -EIO);
	assert_int_equal(journal_pending(&j), 2);
	assert_int_equal(journal_add(&j, nth(2).type, nth(2).a, nth(2).b), 0);
	assert_int_equal(journal_commit(&j, NULL, NULL), 0);
	journal_close(&j);
	assert_replays_nth(e, "j", 3);
	assert_int_equal(file_size(e, "j"), 3 * JR_BYTES);
}

/* ----------------------------------------------------------- concurrency */

struct committer {
	struct journal *j;
	uint64_t id;
};

static void *add_and_commit(void *arg)
{
	struct committer *c = arg;

	for (uint64_t i = 0; i < 200; i++) {
		if (journal_add(c->j, JR_SET_E, c->id, i))
			return (void *)1;
		if (i % 7 == 6 && journal_commit(c->j, NULL, NULL))
			return (void *)1;
	}
	return journal_commit(c->j, NULL, NULL) ? (void *)1 : NULL;
}

static void test_concurrent_commits_keep_every_record_in_each_threads_order(void **state)
{
	struct env *e = *state;
	struct journal j;
	struct committer c1 = { &j, 1 }, c2 = { &j, 2 };
	pthread_t t1, t2;
	void *r1, *r2;
	static struct got g;
	uint64_t next[3] = { 0, 0, 0 };

	assert_int_equal(journal_create(e->dirfd, "j", &j), 0);
	assert_int_equal(pthread_create(&t1, NULL, add_and_commit, &c1), 0);
	assert_int_equal(pthread_create(&t2, NULL, add_and_commit, &c2), 0);
	pthread_join(t1, &r1);
	pthread_join(t2, &r2);
	assert_null(r1);
	assert_null(r2);
	journal_close(&j);
	replay(e, "j", &g);
	assert_int_equal(g.n, 400);
	for (size_t i = 0; i < g.n; i++) {
		assert_true(g.r[i].a == 1 || g.r[i].a == 2);
		assert_int_equal(g.r[i].b, next[g.r[i].a]);
		next[g.r[i].a]++;
	}
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_encode_then_decode_round_trips),
		cmocka_unit_test(test_decode_rejects_every_single_bit_flip),
		cmocka_unit_test(test_decode_rejects_a_wrong_sequence_number),
		cmocka_unit_test(test_decode_rejects_types_outside_the_enum),
		T(test_create_makes_an_empty_journal),
		T(test_create_refuses_an_existing_file),
		T(test_open_of_a_missing_journal_fails_with_enoent),
		T(test_apply_error_stops_open_and_is_returned),
		T(test_apply_error_leaves_the_file_as_it_was),
		T(test_commit_writes_records_that_replay_in_order),
		T(test_replay_stops_at_a_torn_record),
		T(test_replay_cuts_a_torn_tail),
		T(test_replay_stops_at_a_bad_checksum_even_if_later_records_are_good),
		T(test_replay_stops_at_a_sequence_gap),
		T(test_replay_stops_at_a_record_that_repeats_a_sequence_number),
		T(test_replay_reads_across_its_read_buffer),
		T(test_replay_cuts_a_stale_tail_so_new_records_are_not_followed_by_old_ones),
		T(test_appending_after_reopen_continues_the_sequence),
		T(test_journal_write_appends_records_directly),
		T(test_one_commit_larger_than_the_write_buffer_replays_whole),
		T(test_pending_counts_queued_records_until_commit),
		T(test_commit_with_nothing_queued_writes_nothing),
		T(test_commit_runs_sync_before_writing_records),
		T(test_records_queued_during_sync_wait_for_the_next_commit),
		T(test_failed_sync_writes_nothing_and_is_returned),
		T(test_failed_commit_keeps_records_for_the_next),
		T(test_failed_commit_puts_its_records_before_ones_queued_meanwhile),
		T(test_failed_write_keeps_records_for_the_next_commit),
		T(test_failed_write_is_returned_by_journal_write),
		T(test_failed_journal_sync_then_retry_leaves_each_record_once),
		T(test_concurrent_commits_keep_every_record_in_each_threads_order),
	};
#undef T

	return cmocka_run_group_tests(tests, NULL, NULL);
}
