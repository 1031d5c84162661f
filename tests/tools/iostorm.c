/*
 * iostorm: small requests from every CPU, as many as the mount serves,
 * each one checked.
 *
 *   iostorm DIR SECONDS [PER_CPU]
 *
 * PER_CPU threads per CPU (default 2), each pinned to its CPU, each with a file of its own
 * in DIR: in turn an O_DIRECT 4 KiB write of a new value, an O_DIRECT read
 * of it back, and a stat of the file.  Every call must succeed and every
 * read must return what the thread wrote last.  The point is the kernel's
 * hand-over of a request to the server while the server dies: with requests
 * always in flight from every CPU, a kill of relocfs's worker finds some
 * on their way to it.  Prints the calls made; exit 1 at the first failed
 * call or wrong byte (and says which), 2 on bad arguments.  Stops early if
 * DIR/iostorm.stop appears.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define BLK 4096

static const char *dir;
static double seconds;
static atomic_bool stop, failed;
static atomic_long calls;

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void *run(void *arg)
{
	long id = (long)arg;
	int ncpu = (int)sysconf(_SC_NPROCESSORS_ONLN);
	char path[4096], stopfile[4096];
	uint8_t *w, *r;
	cpu_set_t set;
	struct stat st;
	double end = now() + seconds;
	long n = 0;
	int fd;

	CPU_ZERO(&set);
	CPU_SET((int)(id % (ncpu > 0 ? ncpu : 1)), &set);
	(void)sched_setaffinity(0, sizeof(set), &set);
	snprintf(path, sizeof(path), "%s/storm.%ld", dir, id);
	snprintf(stopfile, sizeof(stopfile), "%s/iostorm.stop", dir);
	if (posix_memalign((void **)&w, BLK, BLK) || posix_memalign((void **)&r, BLK, BLK)) {
		fprintf(stderr, "iostorm: out of memory\n");
		exit(2);
	}
	fd = open(path, O_RDWR | O_CREAT | O_DIRECT, 0644);
	if (fd == -1) {
		fprintf(stderr, "iostorm: cannot open '%s': %s\n", path, strerror(errno));
		atomic_store(&failed, true);
		return NULL;
	}
	while (!atomic_load(&stop) && !atomic_load(&failed)) {
		const char *what = NULL;
		ssize_t k;

		memset(w, (int)(n % 251) + 1, BLK);
		memcpy(w, &n, sizeof(n));
		k = pwrite(fd, w, BLK, 0);
		if (k != BLK)
			what = "O_DIRECT write";
		else if ((k = pread(fd, r, BLK, 0)) != BLK)
			what = "O_DIRECT read";
		else if (memcmp(r, w, BLK)) {
			fprintf(stderr, "iostorm: '%s': read back something else than write %ld\n",
				path, n);
			atomic_store(&failed, true);
			break;
		} else if (fstat(fd, &st))
			what = "stat";
		if (what) {
			fprintf(stderr, "iostorm: %s of '%s' (call %ld): %s\n", what, path, n,
				k < 0 ? strerror(errno) : "short transfer");
			atomic_store(&failed, true);
			break;
		}
		n++;
		atomic_fetch_add(&calls, 3);
		if (!(n & 255) && (now() > end || access(stopfile, F_OK) == 0))
			atomic_store(&stop, true);
	}
	close(fd);
	unlink(path);
	return NULL;
}

int main(int argc, char **argv)
{
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN), nthreads, per_cpu = 2;
	pthread_t *tids;
	char *end;

	if ((argc != 3 && argc != 4) || !(seconds = strtod(argv[2], &end)) || *end ||
	    seconds < 0 ||
	    (argc == 4 && ((per_cpu = strtol(argv[3], &end, 10)) < 1 || per_cpu > 64 || *end))) {
		fprintf(stderr, "usage: iostorm DIR SECONDS [PER_CPU (1 to 64)]\n");
		return 2;
	}
	dir = argv[1];
	nthreads = per_cpu * (ncpu > 0 ? ncpu : 1);
	tids = calloc((size_t)nthreads, sizeof(*tids));
	if (!tids)
		return 2;
	for (long i = 0; i < nthreads; i++)
		if (pthread_create(&tids[i], NULL, run, (void *)i)) {
			fprintf(stderr, "iostorm: cannot start a thread\n");
			return 2;
		}
	for (long i = 0; i < nthreads; i++)
		pthread_join(tids[i], NULL);
	printf("iostorm: %ld calls from %ld threads%s\n", atomic_load(&calls), nthreads,
	       atomic_load(&failed) ? ", stopped on a failure" : "");
	return atomic_load(&failed) ? 1 : 0;
}
