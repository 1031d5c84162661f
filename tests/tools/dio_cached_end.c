/*
 * dio_cached_end: O_DIRECT reads of a file that buffered writes made longer,
 * before those writes were written back (the kernel's writeback cache).
 *
 *   dio_cached_end DIR [THREADS [ROUNDS]]
 *
 * In DIR (on the mount), each step prints itself; the first that fails ends
 * the run with exit 1 and says what it expected:
 *   1. a file with an O_DIRECT descriptor open, then 4 bytes written at 0
 *      and one page at 1 MiB through a buffered descriptor: O_DIRECT reads
 *      of a hole below the new size return zeros in full, of the page at
 *      1 MiB its bytes, past the end nothing, across the end up to it;
 *   2. THREADS threads (default 8), each on its own file, ROUNDS times
 *      (default 200): a buffered write of one page 64 KiB past the end,
 *      then O_DIRECT reads of the hole before it (zeros, in full) and of
 *      the page (its bytes), with no fsync in between;
 *   3. a page written into a hole of a sparse file, the descriptor still
 *      open and nothing flushed: SEEK_DATA and SEEK_HOLE must not call it a
 *      hole (a copy that skips holes would lose it).
 * A mount that forgets the cached size answers such a read short (end of
 * file inside the file).
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define PAGE	4096
#define STRIDE	(64 * 1024)

static const char *dir;
static int rounds = 200;

static void die(const char *step, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void die(const char *step, const char *fmt, ...)
{
	va_list ap;

	printf("FAILED: %s: ", step);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	exit(1);
}

static void *aligned(size_t len)
{
	void *p;

	if (posix_memalign(&p, PAGE, len))
		exit(2);
	return p;
}

static void fill(char *p, size_t len, long tag)
{
	for (size_t i = 0; i < len; i++)
		p[i] = (char)(tag * 13 + (long)i * 7 + 1);
}

/* An O_DIRECT read of len at off must return want bytes, equal to expect
 * (NULL: zeros). */
static void check_read(const char *step, int fd, char *buf, size_t len, off_t off,
		       ssize_t want, const char *expect)
{
	ssize_t r = pread(fd, buf, len, off);

	if (r < 0)
		die(step, "O_DIRECT read at %ld failed: %s", (long)off, strerror(errno));
	if (r != want)
		die(step, "O_DIRECT read at %ld returned %zd bytes, not %zd", (long)off, r, want);
	for (ssize_t i = 0; i < r; i++)
		if (buf[i] != (expect ? expect[i] : 0))
			die(step, "wrong byte at offset %zd of the read at %ld", i, (long)off);
}

static void step_one(void)
{
	const char *step = "1. reads below the cached end";
	char path[4096], page[PAGE], *buf = aligned(STRIDE);
	int b, d;

	snprintf(path, sizeof(path), "%s/dio_cached_end.one", dir);
	unlink(path);
	b = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
	d = open(path, O_RDONLY | O_DIRECT);
	if (b == -1 || d == -1)
		die(step, "cannot open the file: %s", strerror(errno));
	fill(page, PAGE, 1);
	if (pwrite(b, "abcd", 4, 0) != 4 || pwrite(b, page, PAGE, 1 << 20) != PAGE)
		die(step, "buffered write failed: %s", strerror(errno));
	check_read(step, d, buf, PAGE, PAGE, PAGE, NULL);
	check_read(step, d, buf, PAGE, 1 << 20, PAGE, page);
	check_read(step, d, buf, PAGE, (1 << 20) + 2 * PAGE, 0, NULL);
	if (pread(d, buf, STRIDE, (1 << 20) - STRIDE / 2) != STRIDE / 2 + PAGE)
		die(step, "a read across the end did not stop at it");
	close(b);
	close(d);
	unlink(path);
	free(buf);
	printf("%s: ok\n", step);
}

static void step_three(void)
{
	const char *step = "3. SEEK_DATA and SEEK_HOLE see cached pages";
	char path[4096], page[PAGE];
	off_t at = 8 * STRIDE, d, h;
	int b;

	snprintf(path, sizeof(path), "%s/dio_cached_end.seek", dir);
	unlink(path);
	b = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
	if (b == -1 || ftruncate(b, 16 * STRIDE) == -1)
		die(step, "cannot make a sparse file: %s", strerror(errno));
	fill(page, PAGE, 3);
	if (pwrite(b, page, PAGE, at) != PAGE)
		die(step, "buffered write failed: %s", strerror(errno));
	d = lseek(b, 0, SEEK_DATA);
	if (d < 0 || d > at)
		die(step, "SEEK_DATA from 0 gave %ld (%s): the page at %ld was called a hole",
		    (long)d, d < 0 ? strerror(errno) : "past it", (long)at);
	h = lseek(b, at, SEEK_HOLE);
	if (h < 0 || h <= at)
		die(step, "SEEK_HOLE from %ld gave %ld: the page there was called a hole",
		    (long)at, (long)h);
	close(b);
	unlink(path);
	printf("%s: ok\n", step);
}

static void *worker(void *arg)
{
	const char *step = "2. threads extending and reading back";
	long id = (long)arg;
	char path[4096], page[PAGE], *buf = aligned(PAGE);
	int b, d;

	snprintf(path, sizeof(path), "%s/dio_cached_end.%ld", dir, id);
	unlink(path);
	b = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
	d = open(path, O_RDONLY | O_DIRECT);
	if (b == -1 || d == -1)
		die(step, "cannot open a file: %s", strerror(errno));
	for (int i = 1; i <= rounds; i++) {
		off_t at = (off_t)i * STRIDE;

		fill(page, PAGE, id * 100000 + i);
		if (pwrite(b, page, PAGE, at) != PAGE)
			die(step, "buffered write at %ld failed: %s", (long)at, strerror(errno));
		check_read(step, d, buf, PAGE, at - STRIDE / 2, PAGE, NULL);
		check_read(step, d, buf, PAGE, at, PAGE, page);
	}
	close(b);
	close(d);
	unlink(path);
	free(buf);
	return NULL;
}

int main(int argc, char **argv)
{
	int threads = 8;
	pthread_t t[64];

	if (argc < 2 || argc > 4) {
		fprintf(stderr, "usage: dio_cached_end DIR [THREADS [ROUNDS]]\n");
		return 2;
	}
	dir = argv[1];
	if (argc > 2)
		threads = atoi(argv[2]);
	if (argc > 3)
		rounds = atoi(argv[3]);
	if (threads < 1 || threads > 64 || rounds < 1) {
		fprintf(stderr, "dio_cached_end: THREADS must be 1 to 64, ROUNDS at least 1\n");
		return 2;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	step_one();
	for (long i = 0; i < threads; i++)
		if (pthread_create(&t[i], NULL, worker, (void *)i))
			return 2;
	for (int i = 0; i < threads; i++)
		pthread_join(t[i], NULL);
	printf("2. threads extending and reading back: ok (%d threads, %d rounds each)\n",
	       threads, rounds);
	step_three();
	return 0;
}
