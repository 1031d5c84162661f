/*
 * fsop: single system calls for the shell tests, where coreutils has no
 * command for them (renameat2 flags, SEEK_DATA/SEEK_HOLE maps,
 * copy_file_range, fsync of a directory, open with given flags).
 *
 *   fsop renameat2 noreplace|exchange|plain OLD NEW
 *   fsop seekmap FILE              one "data START END" line per extent
 *   fsop seek FILE OFF data|hole   one lseek(SEEK_DATA/SEEK_HOLE): "ok N"
 *   fsop seekstorm FILE THREADS N  THREADS threads share one descriptor and
 *                                  each runs N rounds of SEEK_DATA/SEEK_HOLE
 *                                  probes; every answer must equal the one
 *                                  a single thread got first: "ok" or the
 *                                  first disagreement
 *   fsop copy_file_range SRC DST [OFF_IN OFF_OUT LEN]
 *   fsop fsync|fdatasync|fsyncdir|syncfs PATH
 *   fsop open PATH FLAGS           FLAGS: comma list of rdonly wronly rdwr
 *                                  creat excl trunc append direct
 *   fsop pwrite PATH OFF TEXT      write TEXT at OFF (no O_TRUNC)
 *   fsop lock PATH                 F_OFD_SETLK write lock on the whole file;
 *                                  held until stdin reaches EOF
 *
 * A test compares what a call does through the mount with what it does on
 * the backing directory, so fsop prints the outcome rather than judging it:
 * "ok" (plus output, if any) or the errno name ("EEXIST").  Exit status: 0
 * when the call succeeded, 1 when it failed, 2 on usage errors.
 *
 * It deliberately checks nothing itself.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

static int outcome(int ret)
{
	if (ret < 0) {
		const char *name = strerrorname_np(errno);

		printf("%s\n", name ? name : "E?");
		return 1;
	}
	printf("ok\n");
	return 0;
}

static int usage(void)
{
	fprintf(stderr, "usage: fsop renameat2|seekmap|seek|seekstorm|copy_file_range|fsync|fdatasync|"
		"fsyncdir|syncfs|open|pwrite|lock ARGS (see tests/tools/fsop.c)\n");
	return 2;
}

static int do_renameat2(int argc, char **argv)
{
	unsigned int flags;

	if (argc != 5)
		return usage();
	if (strcmp(argv[2], "noreplace") == 0)
		flags = RENAME_NOREPLACE;
	else if (strcmp(argv[2], "exchange") == 0)
		flags = RENAME_EXCHANGE;
	else if (strcmp(argv[2], "plain") == 0)
		flags = 0;
	else
		return usage();
	return outcome(renameat2(AT_FDCWD, argv[3], AT_FDCWD, argv[4], flags));
}

static int do_seekmap(int argc, char **argv)
{
	int fd;
	off_t off = 0, end, d, h;

	if (argc != 3)
		return usage();
	fd = open(argv[2], O_RDONLY);
	if (fd < 0)
		return outcome(-1);
	end = lseek(fd, 0, SEEK_END);
	while (off < end) {
		d = lseek(fd, off, SEEK_DATA);
		if (d < 0 && errno == ENXIO)
			break;
		if (d < 0)
			return outcome(-1);
		h = lseek(fd, d, SEEK_HOLE);
		if (h < 0)
			return outcome(-1);
		printf("data %jd %jd\n", (intmax_t)d, (intmax_t)h);
		off = h;
	}
	close(fd);
	return 0;
}

static int do_seek(int argc, char **argv)
{
	int fd;
	off_t r;

	if (argc != 5)
		return usage();
	fd = open(argv[2], O_RDONLY);
	if (fd < 0)
		return outcome(-1);
	r = lseek(fd, strtoll(argv[3], NULL, 0), strcmp(argv[4], "hole") == 0 ? SEEK_HOLE : SEEK_DATA);
	if (r < 0)
		return outcome(-1);
	printf("ok %jd\n", (intmax_t)r);
	return 0;
}

#define STORM_PROBES 64

static struct {
	int fd;
	long rounds;
	off_t probe[STORM_PROBES];
	off_t want[STORM_PROBES][2];	/* SEEK_DATA, SEEK_HOLE; -errno on error */
	atomic_bool bad;
	char msg[200];
	pthread_mutex_t lock;
} storm = { .lock = PTHREAD_MUTEX_INITIALIZER };

static off_t seek_or_errno(int fd, off_t off, int whence)
{
	off_t r = lseek(fd, off, whence);

	return r < 0 ? -errno : r;
}

static void *storm_thread(void *arg)
{
	for (long r = 0; r < storm.rounds && !atomic_load(&storm.bad); r++)
		for (int i = 0; i < STORM_PROBES; i++)
			for (int k = 0; k < 2; k++) {
				off_t got = seek_or_errno(storm.fd, storm.probe[i], k ? SEEK_HOLE : SEEK_DATA);

				if (got == storm.want[i][k])
					continue;
				pthread_mutex_lock(&storm.lock);
				if (!atomic_exchange(&storm.bad, true))
					snprintf(storm.msg, sizeof(storm.msg),
						 "mismatch: %s from %jd gave %jd, alone it gave %jd",
						 k ? "SEEK_HOLE" : "SEEK_DATA", (intmax_t)storm.probe[i],
						 (intmax_t)got, (intmax_t)storm.want[i][k]);
				pthread_mutex_unlock(&storm.lock);
				return NULL;
			}
	return NULL;
}

static int do_seekstorm(int argc, char **argv)
{
	pthread_t t[64];
	int n;
	off_t size;

	if (argc != 5)
		return usage();
	n = atoi(argv[3]);
	storm.rounds = atol(argv[4]);
	if (n < 1 || n > 64)
		return usage();
	storm.fd = open(argv[2], O_RDONLY);
	if (storm.fd < 0)
		return outcome(-1);
	size = lseek(storm.fd, 0, SEEK_END);
	for (int i = 0; i < STORM_PROBES; i++) {
		storm.probe[i] = size / STORM_PROBES * i + i * 513 % 4096;
		storm.want[i][0] = seek_or_errno(storm.fd, storm.probe[i], SEEK_DATA);
		storm.want[i][1] = seek_or_errno(storm.fd, storm.probe[i], SEEK_HOLE);
	}
	for (int i = 0; i < n; i++)
		pthread_create(&t[i], NULL, storm_thread, NULL);
	for (int i = 0; i < n; i++)
		pthread_join(t[i], NULL);
	if (atomic_load(&storm.bad)) {
		printf("%s\n", storm.msg);
		return 1;
	}
	return outcome(0);
}

static int do_copy_file_range(int argc, char **argv)
{
	int in, out;
	loff_t oi = 0, oo = 0;
	uint64_t len = UINT64_MAX;
	ssize_t n;

	if (argc != 4 && argc != 7)
		return usage();
	if (argc == 7) {
		oi = strtoll(argv[4], NULL, 0);
		oo = strtoll(argv[5], NULL, 0);
		len = strtoull(argv[6], NULL, 0);
	}
	in = open(argv[2], O_RDONLY);
	if (in < 0)
		return outcome(-1);
	out = open(argv[3], O_WRONLY | O_CREAT, 0644);
	if (out < 0)
		return outcome(-1);
	if (argc == 4 && ftruncate(out, 0) < 0)
		return outcome(-1);
	while (len > 0) {
		n = copy_file_range(in, &oi, out, &oo, len > (1u << 30) ? (1u << 30) : len, 0);
		if (n < 0)
			return outcome(-1);
		if (n == 0)
			break;
		len -= (uint64_t)n;
	}
	return outcome(close(out));
}

static int do_sync(int argc, char **argv)
{
	int fd;

	if (argc != 3)
		return usage();
	if (strcmp(argv[1], "fsyncdir") == 0)
		fd = open(argv[2], O_RDONLY | O_DIRECTORY);
	else
		fd = open(argv[2], strcmp(argv[1], "syncfs") == 0 ? O_RDONLY : O_RDWR);
	if (fd < 0)
		return outcome(-1);
	if (strcmp(argv[1], "fdatasync") == 0)
		return outcome(fdatasync(fd));
	if (strcmp(argv[1], "syncfs") == 0)
		return outcome(syncfs(fd));
	return outcome(fsync(fd));
}

static int do_open(int argc, char **argv)
{
	static const struct { const char *name; int flag; } names[] = {
		{ "rdonly", O_RDONLY }, { "wronly", O_WRONLY }, { "rdwr", O_RDWR },
		{ "creat", O_CREAT }, { "excl", O_EXCL }, { "trunc", O_TRUNC },
		{ "append", O_APPEND }, { "direct", O_DIRECT }, { "directory", O_DIRECTORY },
	};
	int flags = 0;
	char *list, *tok, *save;

	if (argc != 4)
		return usage();
	list = strdup(argv[3]);
	for (tok = strtok_r(list, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		size_t i;

		for (i = 0; i < sizeof(names) / sizeof(names[0]); i++)
			if (strcmp(tok, names[i].name) == 0)
				break;
		if (i == sizeof(names) / sizeof(names[0]))
			return usage();
		flags |= names[i].flag;
	}
	free(list);
	return outcome(open(argv[2], flags, 0666));
}

static int do_pwrite(int argc, char **argv)
{
	int fd;
	size_t len;

	if (argc != 5)
		return usage();
	fd = open(argv[2], O_WRONLY | O_CREAT, 0644);
	if (fd < 0)
		return outcome(-1);
	len = strlen(argv[4]);
	if (pwrite(fd, argv[4], len, strtoll(argv[3], NULL, 0)) != (ssize_t)len)
		return outcome(-1);
	return outcome(close(fd));
}

static int do_lock(int argc, char **argv)
{
	struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET };
	int fd;

	if (argc != 3)
		return usage();
	fd = open(argv[2], O_RDWR);
	if (fd < 0)
		return outcome(-1);
	if (fcntl(fd, F_OFD_SETLK, &fl) < 0)
		return outcome(-1);
	outcome(0);
	fflush(stdout);
	while (getchar() != EOF)
		;
	return 0;
}

int main(int argc, char **argv)
{
	static const struct {
		const char *name;
		int (*fn)(int, char **);
	} cmds[] = {
		{ "renameat2", do_renameat2 }, { "seekmap", do_seekmap },
		{ "seek", do_seek }, { "seekstorm", do_seekstorm },
		{ "copy_file_range", do_copy_file_range }, { "fsync", do_sync },
		{ "fdatasync", do_sync }, { "fsyncdir", do_sync }, { "syncfs", do_sync },
		{ "open", do_open }, { "pwrite", do_pwrite }, { "lock", do_lock },
	};

	if (argc < 2)
		return usage();
	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
		if (strcmp(argv[1], cmds[i].name) == 0)
			return cmds[i].fn(argc, argv);
	return usage();
}
