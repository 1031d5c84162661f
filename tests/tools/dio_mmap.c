/*
 * dio_mmap: map a file opened with O_DIRECT, and check that the mapping and
 * direct I/O on the same file see each other's writes.
 *
 *   dio_mmap FILE BACKING
 *
 * FILE is on the mount (created, 256 KiB), BACKING the same file in the
 * backing directory.  Steps, each printed; the first that fails ends the
 * run with exit 1 and says what it expected:
 *   1. open FILE O_RDWR|O_DIRECT, write 256 KiB of pattern 1 with it
 *   2. mmap it MAP_SHARED (fails with ENODEV where the mount does not allow
 *      mmap of direct-I/O files) and read pattern 1 through the mapping
 *   3. write pattern 2 over the first 64 KiB with O_DIRECT: the mapping,
 *      which has those pages, sees pattern 2
 *   4. store pattern 3 into the second 64 KiB through the mapping, msync:
 *      an O_DIRECT read and the backing file see pattern 3
 *   5. a MAP_PRIVATE mapping of the same descriptor reads what is there
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define SIZE	(256 * 1024)
#define PART	(64 * 1024)

static void die(const char *step, const char *what)
{
	printf("FAILED: %s: %s\n", step, what);
	exit(1);
}

static void fill(unsigned char *p, size_t len, unsigned pattern, size_t off)
{
	for (size_t i = 0; i < len; i++)
		p[i] = (unsigned char)((off + i) * 7 + pattern * 31 + ((off + i) >> 12));
}

/* the first byte of p[0..len) that is not pattern, or -1 */
static long differs(const unsigned char *p, size_t len, unsigned pattern, size_t off)
{
	for (size_t i = 0; i < len; i++)
		if (p[i] != (unsigned char)((off + i) * 7 + pattern * 31 + ((off + i) >> 12)))
			return (long)i;
	return -1;
}

static void expect(const char *step, const unsigned char *p, size_t len, unsigned pattern,
		   size_t off)
{
	long d = differs(p, len, pattern, off);
	char msg[128];

	if (d >= 0) {
		snprintf(msg, sizeof(msg), "byte %zu is not pattern %u", off + (size_t)d, pattern);
		die(step, msg);
	}
	printf("ok: %s\n", step);
}

int main(int argc, char **argv)
{
	unsigned char *buf, *map, *priv;
	int fd, bfd;

	if (argc != 3) {
		fprintf(stderr, "usage: dio_mmap FILE BACKING\n");
		return 2;
	}
	if (posix_memalign((void **)&buf, 4096, SIZE))
		return 2;

	fd = open(argv[1], O_RDWR | O_CREAT | O_TRUNC | O_DIRECT, 0644);
	if (fd == -1)
		die("open O_DIRECT", strerror(errno));
	fill(buf, SIZE, 1, 0);
	if (pwrite(fd, buf, SIZE, 0) != SIZE)
		die("write pattern 1 with O_DIRECT", strerror(errno));
	printf("ok: write pattern 1 with O_DIRECT\n");

	map = mmap(NULL, SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (map == MAP_FAILED)
		die("mmap MAP_SHARED of the O_DIRECT descriptor", strerror(errno));
	expect("the mapping reads pattern 1", map, SIZE, 1, 0);

	fill(buf, PART, 2, 0);
	if (pwrite(fd, buf, PART, 0) != PART)
		die("write pattern 2 with O_DIRECT", strerror(errno));
	expect("after an O_DIRECT write, the mapping reads pattern 2", map, PART, 2, 0);

	fill(map + PART, PART, 3, PART);
	if (msync(map, SIZE, MS_SYNC) == -1)
		die("msync", strerror(errno));
	if (pread(fd, buf, PART, PART) != PART)
		die("O_DIRECT read after msync", strerror(errno));
	expect("after msync, an O_DIRECT read returns pattern 3", buf, PART, 3, PART);
	bfd = open(argv[2], O_RDONLY);
	if (bfd == -1)
		die("open the backing file", strerror(errno));
	if (pread(bfd, buf, SIZE, 0) != SIZE)
		die("read the backing file", strerror(errno));
	expect("the backing file has pattern 2", buf, PART, 2, 0);
	expect("the backing file has pattern 3", buf + PART, PART, 3, PART);
	expect("the backing file keeps pattern 1 beyond", buf + 2 * PART, 2 * PART, 1, 2 * PART);
	close(bfd);

	priv = mmap(NULL, SIZE, PROT_READ, MAP_PRIVATE, fd, 0);
	if (priv == MAP_FAILED)
		die("mmap MAP_PRIVATE of the O_DIRECT descriptor", strerror(errno));
	expect("a private mapping reads pattern 3", priv + PART, PART, 3, PART);
	munmap(priv, SIZE);
	munmap(map, SIZE);
	close(fd);
	free(buf);
	return 0;
}
