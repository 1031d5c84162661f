// modules: delta/wal.c common/util.c
/*
 * test_wal_crash: the WAL ring across a host crash at every byte.
 *
 * A 16 KiB ring is first filled, lap after lap, with records of an older
 * generation (lower sequence numbers), then a checkpoint frees it all and a
 * seeded random history of records (random types, values and payloads of 0
 * to 600 bytes) is appended from there, running past the end of the ring
 * (a WR_PAD record or an implicit wrap) and on from offset 0.  A host crash
 * leaves the history's bytes up to some point L on disk, followed by what
 * was there before.  For every L the ring is replaced by such an image and
 * replayed from the checkpoint; the model is "a record is durable iff its
 * header and payload reached the disk whole, and so did every record before
 * it", so:
 *
 *  - replay applies exactly the durable records, in order, each as it was
 *    appended (type, values, payload), and never one that was not;
 *  - after the replay the log goes on in a new generation (as delta_open
 *    does); a record appended then is read back from there, and reading
 *    from the old checkpoint still stops where the durable records end.
 *
 * Images per crash point:
 *   cut      zeros after the prefix (a ring written for the first time);
 *   stale    the older generation's bytes after it (a torn record completed
 *            with old bytes, followed by valid old records);
 *   garbage  1..200 random bytes after it, then the older generation's.
 * And per record k, "hole": the whole history with record k's header zeroed
 * (written out of order by writeback), which must replay as the records
 * before k; a record of the same length appended after that replay ends
 * exactly where record k did, in front of the stale record k+1, which must
 * not be read as its successor (it would be, were the log to go on at
 * record k's sequence number).
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

#include "common/util.h"
#include "delta/wal.h"

#define RING	(16u << 10)
#define MAXENT	256
#define MAXPL	600

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

/* one entry of the history: a record, or the WR_PAD the ring needed */
struct ent {
	bool pad;
	uint64_t seq;
	struct wr r;
	unsigned char payload[MAXPL];
	uint32_t plen;
	uint64_t start;		/* ring offset of its header */
	uint64_t dist;		/* bytes from the checkpoint to its header, around the ring */
	uint64_t extent;	/* bytes the checksum covers (header and payload) */
};

static struct ent hist[MAXENT];
static size_t nent;
static unsigned char old_img[RING], cur_img[RING];
static uint64_t ckpt_seq, ckpt_pos, hist_len;

static struct wr random_wr(void)
{
	return (struct wr){
		.type = (uint16_t)(WR_DATA + rnd() % (WR_CLEAR_D - WR_DATA + 1)),
		.off = rnd() >> (rnd() % 64),
		.len = rnd() >> (rnd() % 64),
		.size = rnd() >> (rnd() % 64),
		.limit = rnd() >> (rnd() % 64),
	};
}

static void read_ring(const char *name, unsigned char *img)
{
	int fd = openat(dirfd_, name, O_RDONLY);

	assert_true(fd >= 0);
	assert_int_equal(pread_full(fd, (char *)img, RING, 0), 0);
	close(fd);
}

/* Append a random record as e; if the ring needed a WR_PAD first, say where
 * (*pad_seq, *pad_pos) and return true. */
static bool append(struct wal *w, struct ent *e, uint64_t *pad_seq, uint64_t *pad_pos)
{
	struct iovec v;
	uint64_t pos0, seq0, seq;
	bool pad = false;

	e->pad = false;
	e->r = random_wr();
	e->plen = (uint32_t)(rnd() % 3 ? rnd() % (MAXPL + 1) : 0);
	for (uint32_t i = 0; i < e->plen; i++)
		e->payload[i] = (unsigned char)rnd();
	v = (struct iovec){ .iov_base = e->payload, .iov_len = e->plen };
	assert_int_equal(wal_begin(w, e->plen), 0);
	pos0 = w->head_pos;
	seq0 = w->head_seq;
	assert_int_equal(wal_write(w, &e->r, &v, e->plen ? 1 : 0, &seq), 0);
	wal_end(w);
	if (seq != seq0) {	/* a WR_PAD went first, at pos0 */
		*pad_seq = seq0;
		*pad_pos = pos0;
		pad = true;
		pos0 = 0;
	} else if (RING - pos0 < WAL_HDR + e->plen) {
		pos0 = 0;	/* an implicit wrap */
	}
	e->seq = seq;
	e->start = pos0;
	e->extent = WAL_HDR + e->plen;
	return pad;
}

static void record_history(void)
{
	static struct ent tmp;
	struct wal w;
	uint64_t total = 0, ps, pp;

	assert_int_equal(wal_create(dirfd_, "hist", RING, &w), 0);
	/* the older generation: laps around the ring, checkpointed as it goes,
	 * up to a head a little before the end, so the history wraps */
	for (;;) {
		uint64_t before = w.head_pos;

		append(&w, &tmp, &ps, &pp);
		total += (w.head_pos + RING - before) % RING;
		wal_release(&w, w.head_seq, w.head_pos);
		if (total > 2 * RING && w.head_pos > RING - 3000 && w.head_pos < RING - 2000)
			break;
	}
	read_ring("hist", old_img);
	ckpt_seq = w.head_seq;
	ckpt_pos = w.head_pos;
	/* the history, from the checkpoint: about 6 KiB, past the end */
	nent = 0;
	while (hist_len < 6000) {
		struct ent *e;

		assert_true(nent < MAXENT - 2);
		if (append(&w, &tmp, &ps, &pp))
			hist[nent++] = (struct ent){ .pad = true, .seq = ps, .start = pp,
						     .extent = WAL_HDR };
		e = &hist[nent++];
		*e = tmp;
		hist_len = (e->start + RING - ckpt_pos) % RING + e->extent;
	}
	for (size_t i = 0; i < nent; i++)
		hist[i].dist = (hist[i].start + RING - ckpt_pos) % RING;
	wal_close(&w);
	read_ring("hist", cur_img);
	assert_true(hist[nent - 1].start < ckpt_pos);	/* it wrapped */
}

struct got {
	uint64_t seq[MAXENT];
	struct wr r[MAXENT];
	unsigned char payload[MAXENT][MAXPL];
	uint32_t plen[MAXENT];
	size_t n;
};
static struct got g;

static int collect(void *arg, uint64_t seq, const struct wr *r, const char *payload)
{
	struct got *gg = arg;

	if (gg->n == MAXENT)
		return -E2BIG;
	gg->seq[gg->n] = seq;
	gg->r[gg->n] = *r;
	gg->plen[gg->n] = 0;
	if (payload) {
		/* the payload's length is the record's business; ours is known */
		uint32_t pl = 0;

		for (size_t i = 0; i < nent; i++)
			if (hist[i].seq == seq && !hist[i].pad)
				pl = hist[i].plen;
		memcpy(gg->payload[gg->n], payload, pl);
		gg->plen[gg->n] = pl;
	}
	gg->n++;
	return 0;
}

static void write_image(const unsigned char *img)
{
	int fd = openat(dirfd_, "crash", O_WRONLY | O_CREAT, 0600);	/* same size: no truncation (ext4 would flush it on close) */

	assert_true(fd >= 0);
	assert_int_equal(pwrite_full(fd, (const char *)img, RING, 0), 0);
	close(fd);
}

#define CHECK(cond, ...) do { \
	if (!(cond)) { \
		print_error("%s at byte %llu: ", variant, (unsigned long long)cut); \
		fail_msg(__VA_ARGS__); \
	} \
} while (0)

/* entries [0, k) whose checksummed bytes the image holds whole, in order */
static size_t durable_entries(const unsigned char *img)
{
	size_t k = 0;

	while (k < nent && !memcmp(img + hist[k].start, cur_img + hist[k].start, hist[k].extent))
		k++;
	return k;
}

static size_t records_in(size_t k)
{
	size_t n = 0;

	for (size_t i = 0; i < k; i++)
		n += !hist[i].pad;
	return n;
}

/*
 * Replay the image from the checkpoint and check it against the history;
 * go on in a new generation with one record of 'same_len' payload bytes (or
 * random), and read back.
 */
static void check_image(const unsigned char *img, const char *variant, uint64_t cut,
			int same_len)
{
	size_t k = durable_entries(img), want = records_in(k), j = 0;
	struct wal w;
	struct ent extra;
	uint64_t count, gen, pos;
	struct iovec v;
	int err;

	write_image(img);
	assert_int_equal(wal_open(dirfd_, "crash", &w), 0);
	g.n = 0;
	err = wal_replay(&w, ckpt_seq, ckpt_pos, collect, &g, &count);
	CHECK(err == 0, "wal_replay: %s", strerror(-err));
	CHECK(g.n == want && count == want, "replayed %zu records, %zu were durable", g.n, want);
	for (size_t i = 0; i < k; i++) {
		if (hist[i].pad)
			continue;
		CHECK(g.seq[j] == hist[i].seq && g.r[j].type == hist[i].r.type &&
		      g.r[j].off == hist[i].r.off && g.r[j].len == hist[i].r.len &&
		      g.r[j].size == hist[i].r.size && g.r[j].limit == hist[i].r.limit &&
		      g.plen[j] == hist[i].plen &&
		      !memcmp(g.payload[j], hist[i].payload, hist[i].plen),
		      "replayed record %zu is not the one appended", j);
		j++;
	}

	/* a new generation, as delta_open starts it */
	gen = wal_next_generation(&w);
	pos = w.head_pos;
	wal_restart(&w, gen);
	extra.r = random_wr();
	extra.plen = same_len >= 0 ? (uint32_t)same_len : (uint32_t)(rnd() % 200);
	for (uint32_t i = 0; i < extra.plen; i++)
		extra.payload[i] = (unsigned char)rnd();
	v = (struct iovec){ .iov_base = extra.payload, .iov_len = extra.plen };
	{
		uint64_t seq;

		CHECK(wal_begin(&w, extra.plen) == 0, "no room after the replay");
		err = wal_write(&w, &extra.r, &v, extra.plen ? 1 : 0, &seq);
		wal_end(&w);
		CHECK(err == 0, "append after the replay: %s", strerror(-err));
	}
	wal_close(&w);

	assert_int_equal(wal_open(dirfd_, "crash", &w), 0);
	g.n = 0;
	err = wal_replay(&w, gen, pos, collect, &g, &count);
	wal_close(&w);
	CHECK(err == 0 && g.n == 1, "the new generation read back as %zu record(s), not 1", g.n);
	CHECK(g.r[0].type == extra.r.type && g.r[0].off == extra.r.off && g.r[0].size == extra.r.size,
	      "the new generation's record is not the one appended");

	assert_int_equal(wal_open(dirfd_, "crash", &w), 0);
	g.n = 0;
	err = wal_replay(&w, ckpt_seq, ckpt_pos, collect, &g, &count);
	wal_close(&w);
	CHECK(err == 0 && g.n == want, "from the old checkpoint after the append: %zu records, "
	      "expected %zu", g.n, want);
}

static void test_every_crash_point_replays_the_durable_records_only(void **state)
{
	const char *seed = getenv("RELOCFS_TEST_SEED");
	static unsigned char img[RING];
	size_t points[4] = { 0 };

	rng_state = seed ? strtoull(seed, NULL, 0) : 0x3a1f00d;
	print_message("seed 0x%llx (RELOCFS_TEST_SEED)\n", (unsigned long long)rng_state);
	record_history();
	{
		size_t pads = 0;

		for (size_t i = 0; i < nent; i++)
			pads += hist[i].pad;
		print_message("history: %zu records and %zu WR_PAD, %llu bytes from offset %llu of a "
			      "%u-byte ring, wrapping\n", nent - pads, pads,
			      (unsigned long long)hist_len, (unsigned long long)ckpt_pos, RING);
	}

	for (uint64_t cut = 0; cut <= hist_len; cut++) {
		const char *variant;
		uint64_t n;

		/* cut: zeros after the prefix */
		variant = "cut";
		memset(img, 0, RING);
		for (uint64_t x = 0; x < cut; x++)
			img[(ckpt_pos + x) % RING] = cur_img[(ckpt_pos + x) % RING];
		check_image(img, variant, cut, -1);
		points[0]++;

		/* stale: the older generation after it */
		variant = "stale";
		memcpy(img, old_img, RING);
		for (uint64_t x = 0; x < cut; x++)
			img[(ckpt_pos + x) % RING] = cur_img[(ckpt_pos + x) % RING];
		check_image(img, variant, cut, -1);
		points[1]++;

		/* garbage: random bytes, then the older generation */
		variant = "garbage";
		n = 1 + rnd() % 200;
		for (uint64_t x = cut; x < cut + n; x++)
			img[(ckpt_pos + x) % RING] = (unsigned char)rnd();
		check_image(img, variant, cut, -1);
		points[2]++;
	}

	/* hole: record k's header never reached the disk, later ones did */
	for (size_t k = 0; k < nent; k++) {
		const char *variant = "hole";
		uint64_t cut = hist[k].dist;

		memcpy(img, cur_img, RING);
		memset(img + hist[k].start, 0, WAL_HDR);
		check_image(img, variant, cut, hist[k].pad ? -1 : (int)hist[k].plen);
		points[3]++;
	}
	print_message("%zu crash points tested (%zu cut, %zu stale, %zu garbage, %zu hole)\n",
		      points[0] + points[1] + points[2] + points[3], points[0], points[1], points[2],
		      points[3]);
}

/* The pure parts: a header names its sequence number and covers its payload. */
static void test_a_record_checks_its_sequence_number_and_payload(void **state)
{
	unsigned char hdr[WAL_HDR], pl[100];
	struct iovec v = { .iov_base = pl, .iov_len = sizeof(pl) };
	struct wr r = { .type = WR_DATA, .off = 4096, .len = 100, .size = 8192, .limit = 5 }, got;
	uint32_t plen;

	memset(pl, 7, sizeof(pl));
	wr_encode(&r, 42, &v, 1, hdr);
	assert_int_equal(wr_decode(hdr, 42, RING, &got, &plen), 0);
	assert_int_equal(plen, sizeof(pl));
	assert_true(got.off == 4096 && got.size == 8192 && got.limit == 5);
	assert_true(wr_check(hdr, pl, plen));
	assert_int_equal(wr_decode(hdr, 43, RING, &got, &plen), -EINVAL);
	pl[99] ^= 1;
	assert_false(wr_check(hdr, pl, plen));
	pl[99] ^= 1;
	hdr[30] ^= 1;
	assert_false(wr_check(hdr, pl, plen));
}

static int setup(void **state)
{
	const char *tmp = getenv("TMPDIR");

	snprintf(dir, sizeof(dir), "%s/test_wal_crash.XXXXXX", tmp && *tmp ? tmp : "/tmp");
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
		cmocka_unit_test(test_a_record_checks_its_sequence_number_and_payload),
		cmocka_unit_test(test_every_crash_point_replays_the_durable_records_only),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
