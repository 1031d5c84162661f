// modules: delta/journal.c common/log.c
/*
 * test_journal_crash: the journal across a host crash at every byte.
 *
 * A seeded random history of commits (batches of 1..6 random records) is
 * written through journal_add + journal_commit.  A host crash leaves some
 * prefix of the file on disk, possibly followed by what the disk held before
 * (garbage, or records of an older journal generation with the very sequence
 * numbers that come next).  For every byte length L of the file, the journal
 * is replaced by such a crash image and reopened; the model is "a record is
 * durable iff it was fully written", so:
 *
 *  - replay returns exactly the first L / JR_BYTES committed records: a
 *    prefix of the committed sequence, never a record that was not
 *    committed, and at least every batch whose commit had returned before
 *    the cut;
 *  - a batch appended after that replay, then another replay, gives the
 *    prefix followed by the new batch: no stale record comes back.
 *
 * Images per crash point:
 *   cut     the prefix alone;
 *   stale   the prefix, then the older generation's bytes from offset L on:
 *           a torn record completed with old bytes, followed by valid old
 *           records with the next sequence numbers.  Where the new bytes of
 *           the torn record equal the old ones (always at a record boundary)
 *           that would be the old record itself, which a crash cannot put
 *           there (the older tail was cut and fsynced before any append), so
 *           the rest of that record is garbage instead (likewise where the
 *           old bytes happen to complete the new record);
 *   garbage the prefix, then random bytes;
 * and per record k, "hole": the whole file with record k zeroed (written out
 * of order by writeback), which must replay as the first k records.
 *
 * RELOCFS_TEST_SEED picks another history.  Runs in a private mkdtemp
 * directory under $TMPDIR (else /tmp).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "delta/journal.h"

#define NBATCH	14
#define MAXREC	(NBATCH * 6 + 64)

static char dir[256];
static int dirfd_ = -1;
static uint64_t rng_state;

static uint64_t rnd(void)
{
	/* splitmix64 */
	uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static struct jr random_record(void)
{
	return (struct jr){
		.type = (uint16_t)(1 + rnd() % (JR_TYPE_MAX - 1)),
		.a = rnd() >> (rnd() % 64),
		.b = rnd() >> (rnd() % 64),
	};
}

static bool jr_same(const struct jr *x, const struct jr *y)
{
	return x->type == y->type && x->a == y->a && x->b == y->b;
}

struct got {
	struct jr r[MAXREC];
	size_t n;
};

static int collect(void *arg, const struct jr *r)
{
	struct got *g = arg;

	if (g->n == MAXREC)
		return -E2BIG;
	g->r[g->n++] = *r;
	return 0;
}

/* a committed history: records, and how many were durable after each commit */
struct history {
	struct jr rec[MAXREC];
	size_t n;
	size_t batch_end[MAXREC];	/* records committed when commit i returned */
	size_t nbatch;
	unsigned char *file;
	size_t len;
};

static void read_whole(const char *name, struct history *h)
{
	int fd = openat(dirfd_, name, O_RDONLY);
	struct stat st;

	assert_true(fd >= 0);
	assert_int_equal(fstat(fd, &st), 0);
	h->len = (size_t)st.st_size;
	h->file = malloc(h->len + 1);
	assert_non_null(h->file);
	assert_int_equal(pread(fd, h->file, h->len, 0), (ssize_t)h->len);
	close(fd);
}

/* at least nbatch commits, and at least min_records records */
static void record_history(const char *name, struct history *h, size_t nbatch,
			   size_t min_records)
{
	struct journal j;

	memset(h, 0, sizeof(*h));
	assert_int_equal(journal_create(dirfd_, name, &j), 0);
	for (size_t b = 0; b < nbatch || h->n < min_records; b++) {
		size_t k = 1 + rnd() % 6;

		for (size_t i = 0; i < k; i++) {
			struct jr r = random_record();

			assert_int_equal(journal_add(&j, r.type, r.a, r.b), 0);
			h->rec[h->n++] = r;
		}
		assert_int_equal(journal_commit(&j, NULL, NULL), 0);
		h->batch_end[h->nbatch++] = h->n;
	}
	journal_close(&j);
	read_whole(name, h);
	assert_int_equal(h->len, h->n * JR_BYTES);
}

static void write_image(const unsigned char *img, size_t len)
{
	int fd = openat(dirfd_, "crash", O_WRONLY | O_CREAT | O_TRUNC, 0600);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, img, len), (ssize_t)len);
	close(fd);
}

#define CHECK(cond, ...) do { \
	if (!(cond)) { \
		print_error("%s at byte %zu: ", variant, cut); \
		fail_msg(__VA_ARGS__); \
	} \
} while (0)

/*
 * Open the crash image, check the replay against the history, append a new
 * batch, reopen and check again.  'durable' is the number of records the
 * image holds whole; 'cut' and 'variant' only name the case in messages.
 */
static void check_image(const struct history *h, const unsigned char *img, size_t len,
			size_t durable, const char *variant, size_t cut)
{
	static struct got g;
	struct jr extra[3];
	size_t nextra = 1 + rnd() % 3, committed = 0;
	struct journal j;
	struct stat st;
	int err;

	/* the model, from the bytes: records equal to the history's, whole */
	for (size_t k = 0; k < durable; k++)
		CHECK(memcmp(img + k * JR_BYTES, h->file + k * JR_BYTES, JR_BYTES) == 0,
		      "image record %zu is not the written one", k);
	CHECK(len < (durable + 1) * JR_BYTES || durable == h->n ||
	      memcmp(img + durable * JR_BYTES, h->file + durable * JR_BYTES, JR_BYTES) != 0,
	      "image holds record %zu whole", durable);
	write_image(img, len);
	g.n = 0;
	err = journal_open(dirfd_, "crash", &j, collect, &g);
	CHECK(err == 0, "journal_open: %s", strerror(-err));
	for (size_t b = 0; b < h->nbatch && h->batch_end[b] <= durable; b++)
		committed = h->batch_end[b];
	CHECK(g.n >= committed, "replayed %zu records, but %zu were committed before the crash",
	      g.n, committed);
	CHECK(g.n == durable, "replayed %zu records, %zu were fully written", g.n, durable);
	for (size_t i = 0; i < g.n; i++)
		CHECK(jr_same(&g.r[i], &h->rec[i]), "replayed record %zu was never committed", i);

	for (size_t i = 0; i < nextra; i++) {
		extra[i] = random_record();
		err = journal_add(&j, extra[i].type, extra[i].a, extra[i].b);
		CHECK(err == 0, "journal_add: %s", strerror(-err));
	}
	err = journal_commit(&j, NULL, NULL);
	CHECK(err == 0, "journal_commit after replay: %s", strerror(-err));
	journal_close(&j);

	g.n = 0;
	err = journal_open(dirfd_, "crash", &j, collect, &g);
	CHECK(err == 0, "second journal_open: %s", strerror(-err));
	journal_close(&j);
	CHECK(g.n == durable + nextra, "after appending %zu records replay gave %zu, expected %zu",
	      nextra, g.n, durable + nextra);
	for (size_t i = 0; i < durable; i++)
		CHECK(jr_same(&g.r[i], &h->rec[i]), "second replay: record %zu changed", i);
	for (size_t i = 0; i < nextra; i++)
		CHECK(jr_same(&g.r[durable + i], &extra[i]),
		      "second replay: appended record %zu is not what was appended", i);
	assert_int_equal(fstatat(dirfd_, "crash", &st, 0), 0);
	CHECK((size_t)st.st_size == (durable + nextra) * JR_BYTES,
	      "journal is %lld bytes after append, expected %zu",
	      (long long)st.st_size, (durable + nextra) * JR_BYTES);
}

static void test_every_crash_point_replays_a_prefix_and_appends_cleanly(void **state)
{
	static struct history cur, old;
	const char *seed = getenv("RELOCFS_TEST_SEED");
	unsigned char *img;
	size_t points[4] = { 0 }, total = 0;

	rng_state = seed ? strtoull(seed, NULL, 0) : 0x10c0f5;
	print_message("seed 0x%llx (RELOCFS_TEST_SEED)\n", (unsigned long long)rng_state);

	record_history("cur", &cur, NBATCH, 0);
	/* an older generation, longer than the current one */
	record_history("old", &old, 1, cur.n + 10);
	print_message("history: %zu records in %zu commits, %zu bytes; older generation %zu records\n",
		      cur.n, cur.nbatch, cur.len, old.n);
	assert_true(old.len > cur.len);

	img = malloc(old.len + cur.len + 512);
	assert_non_null(img);

	for (size_t cut = 0; cut <= cur.len; cut++) {
		size_t durable = cut / JR_BYTES, len;
		const char *variant;

		/* cut: the prefix alone */
		variant = "cut";
		memcpy(img, cur.file, cut);
		check_image(&cur, img, cut, durable, variant, cut);
		points[0]++;

		/* stale: completed with, and followed by, the older generation */
		variant = "stale";
		len = (durable + 1) * JR_BYTES;
		memcpy(img + cut, old.file + cut, len - cut);
		if (memcmp(img + durable * JR_BYTES, old.file + durable * JR_BYTES, JR_BYTES) == 0 ||
		    (cut < cur.len &&
		     memcmp(img + durable * JR_BYTES, cur.file + durable * JR_BYTES, JR_BYTES) == 0)) {
			/* the old or the new record whole, not torn: tear it */
			for (size_t i = cut; i < len; i++)
				img[i] = (unsigned char)rnd();
			if (cut < cur.len)
				img[cut] = cur.file[cut] ^ (unsigned char)(1 + rnd() % 255);
		}
		memcpy(img + len, old.file + len, old.len - len);
		len = old.len;
		check_image(&cur, img, len, durable, variant, cut);
		points[1]++;

		/* garbage: followed by random bytes */
		variant = "garbage";
		len = cut + 1 + rnd() % 200;
		for (size_t i = cut; i < len; i++)
			img[i] = (unsigned char)rnd();
		if (cut < cur.len)	/* the written bytes end at the cut */
			img[cut] = cur.file[cut] ^ (unsigned char)(1 + rnd() % 255);
		check_image(&cur, img, len, durable, variant, cut);
		points[2]++;
	}

	/* hole: record k never reached the disk, later ones did */
	for (size_t k = 0; k < cur.n; k++) {
		const char *variant = "hole";
		size_t cut = k * JR_BYTES;

		memcpy(img, cur.file, cur.len);
		memset(img + cut, 0, JR_BYTES);
		check_image(&cur, img, cur.len, k, variant, cut);
		points[3]++;
	}

	for (int i = 0; i < 4; i++)
		total += points[i];
	print_message("%zu crash points tested (%zu cut, %zu stale, %zu garbage, %zu hole)\n",
		      total, points[0], points[1], points[2], points[3]);
	free(img);
	free(cur.file);
	free(old.file);
}

static int setup(void **state)
{
	const char *tmp = getenv("TMPDIR");

	snprintf(dir, sizeof(dir), "%s/test_journal_crash.XXXXXX", tmp && *tmp ? tmp : "/tmp");
	if (!mkdtemp(dir))
		return -1;
	dirfd_ = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	return dirfd_ == -1 ? -1 : 0;
}

static int teardown(void **state)
{
	DIR *d = fdopendir(dup(dirfd_));
	struct dirent *de;

	while (d && (de = readdir(d)))
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
			unlinkat(dirfd_, de->d_name, 0);
	if (d)
		closedir(d);
	close(dirfd_);
	rmdir(dir);
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_every_crash_point_replays_a_prefix_and_appends_cleanly),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
