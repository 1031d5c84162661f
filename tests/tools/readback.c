/*
 * readback: a buffered write is read back by its writer while other
 * threads of the same process read the file and change its times.
 *
 *   readback FILE ROUNDS
 *
 * FILE (on the mount) is created, 64 pages long.  One thread writes page 16
 * (all of it but 100 bytes at each end, a new value each round) and reads
 * it back, ROUNDS times; two threads stat the file and read its first 64
 * pages over and over; one more writes page 40 and stats the file, so that
 * its modification time keeps changing.  Every read-back must be the value
 * just written: the page cache may never hold a page older than a write
 * that has returned.  Prints the rounds and the stale reads; exit 1 if
 * there was one.
 *
 * The kernel drops a file's cached pages when it sees the file's times
 * change, if the filesystem asks it to (FUSE_AUTO_INVAL_DATA): a page
 * dropped while its write is on its way to the filesystem, then read in
 * again by another thread before the write lands, is the old page, cached
 * as up to date.
 */
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define PG	4096
#define PAGES	64
#define EDGE	100

static const char *path;
static int fd;
static atomic_bool stop;

static void die(const char *what)
{
	perror(what);
	exit(2);
}

static long rounds, stale, first_stale = -1;

static void *writer(void *arg)
{
	static char buf[PG], rb[PG];
	long n = *(long *)arg;

	for (long i = 0; i < n; i++) {
		memset(buf, (int)(i % 251) + 1, PG);
		if (pwrite(fd, buf + EDGE, PG - 2 * EDGE, 16 * PG + EDGE) != PG - 2 * EDGE)
			die("pwrite");
		if (pread(fd, rb, PG, 16 * PG) != PG)
			die("pread");
		if (memcmp(rb + EDGE, buf + EDGE, PG - 2 * EDGE)) {
			if (first_stale < 0)
				first_stale = i;
			stale++;
		}
		rounds++;
	}
	atomic_store(&stop, true);
	return NULL;
}

static void *reader(void *arg)
{
	static __thread char rb[PAGES * PG];
	struct stat st;
	int rfd = open(path, O_RDONLY);

	if (rfd == -1)
		die("open");
	while (!atomic_load(&stop)) {
		if (fstat(rfd, &st) || pread(rfd, rb, sizeof(rb), 0) < 0)
			die("reader");
	}
	close(rfd);
	return NULL;
}

static void *toucher(void *arg)
{
	char b[PG];
	struct stat st;

	memset(b, 7, PG);
	while (!atomic_load(&stop)) {
		if (pwrite(fd, b, PG, 40 * PG) != PG || fstat(fd, &st))
			die("toucher");
	}
	return NULL;
}

int main(int argc, char **argv)
{
	static char zero[PAGES * PG];
	pthread_t t[4];
	long n;

	if (argc != 3 || (n = atol(argv[2])) <= 0) {
		fprintf(stderr, "usage: readback FILE ROUNDS\n");
		return 2;
	}
	path = argv[1];
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
	if (fd == -1 || write(fd, zero, sizeof(zero)) != (ssize_t)sizeof(zero))
		die(path);
	if (pthread_create(&t[0], NULL, writer, &n) || pthread_create(&t[1], NULL, reader, NULL) ||
	    pthread_create(&t[2], NULL, reader, NULL) || pthread_create(&t[3], NULL, toucher, NULL))
		die("pthread_create");
	for (int i = 0; i < 4; i++)
		pthread_join(t[i], NULL);
	printf("readback: %ld rounds, %ld stale read-backs", rounds, stale);
	if (stale)
		printf(" (first in round %ld)", first_stale);
	printf("\n");
	return stale ? 1 : 0;
}
