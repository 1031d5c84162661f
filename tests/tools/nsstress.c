/*
 * nsstress: namespace operations with a model of what each must return.
 *
 *   nsstress [--seed N] [--threads N] [--seconds S] [--until-file F] DIR
 *
 * Each thread works in its own directory DIR/tN and keeps a model of it:
 * which of its names exist and whether each is a file or a directory, and
 * what each file holds.  It picks random operations (create with O_EXCL,
 * mkdir, unlink, rmdir, rename, link, open/write/read/close of files it
 * keeps open, stat) whose result the model fixes exactly: an EEXIST for a
 * name that did not exist, an ENOENT for one that did, a short read or a
 * wrong byte is an error.  It is meant to run while the daemon under it is
 * killed and replaced: every operation must be done exactly once.
 *
 * At the end every descriptor is closed and the directories are emptied;
 * it prints the number of operations.  Exit: 0 all as the model says, 1 a
 * mismatch (the first is printed), 2 usage.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define NAMES	24
#define KEEP	6

enum kind { NONE, FILE_, DIR_ };

struct name {
	enum kind kind;
	uint32_t content;	/* files: the 4 bytes they hold (0: empty) */
	int links;		/* files: how many of the thread's names lead to it; see link */
	int id;			/* files: which file (names sharing it are links) */
};

struct thread {
	int idx;
	char dir[3072];
	uint64_t rng;
	struct name n[NAMES];
	int fd[KEEP];		/* open descriptors ... */
	int fd_id[KEEP];	/* ... of file id */
	uint64_t ops;
	int next_id;
};

static const char *root;
static atomic_bool failed, stop;
static char first_error[1024];
static pthread_mutex_t err_lock = PTHREAD_MUTEX_INITIALIZER;
static const char *until_file;
static double seconds = 10;

static uint64_t rnd(struct thread *t, uint64_t n)
{
	t->rng ^= t->rng << 13;
	t->rng ^= t->rng >> 7;
	t->rng ^= t->rng << 17;
	return t->rng % n;
}

static void fail_op(struct thread *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void fail_op(struct thread *t, const char *fmt, ...)
{
	va_list ap;

	pthread_mutex_lock(&err_lock);
	if (!atomic_exchange(&failed, true)) {
		int n = snprintf(first_error, sizeof(first_error), "thread %d op %llu: ", t->idx,
				 (unsigned long long)t->ops);

		va_start(ap, fmt);
		vsnprintf(first_error + n, sizeof(first_error) - (size_t)n, fmt, ap);
		va_end(ap);
	}
	pthread_mutex_unlock(&err_lock);
	atomic_store(&stop, true);
}

static void path(struct thread *t, int i, char *buf)
{
	snprintf(buf, 4096, "%s/n%d", t->dir, i);
}

/* the other names that lead to the same file as name i */
static void set_content(struct thread *t, int id, uint32_t v)
{
	for (int i = 0; i < NAMES; i++)
		if (t->n[i].kind == FILE_ && t->n[i].id == id)
			t->n[i].content = v;
}

static int links_of(struct thread *t, int id)
{
	int c = 0;

	for (int i = 0; i < NAMES; i++)
		c += t->n[i].kind == FILE_ && t->n[i].id == id;
	return c;
}

static void expect(struct thread *t, const char *what, int got, int want)
{
	if (got != want)
		fail_op(t, "%s: got %s, expected %s", what, got ? strerror(got) : "success",
			want ? strerror(want) : "success");
}

static void op_create(struct thread *t, int i)
{
	char p[4096];
	int fd, e;

	path(t, i, p);
	fd = open(p, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0644);
	e = fd == -1 ? errno : 0;
	expect(t, "create", e, t->n[i].kind == NONE ? 0 : EEXIST);
	if (fd != -1) {
		close(fd);
		t->n[i] = (struct name){ .kind = FILE_, .id = ++t->next_id };
	}
}

static void op_mkdir(struct thread *t, int i)
{
	char p[4096];
	int e;

	path(t, i, p);
	e = mkdir(p, 0755) == -1 ? errno : 0;
	expect(t, "mkdir", e, t->n[i].kind == NONE ? 0 : EEXIST);
	if (!e)
		t->n[i] = (struct name){ .kind = DIR_ };
}

static void op_unlink(struct thread *t, int i)
{
	char p[4096];
	int e, want = t->n[i].kind == FILE_ ? 0 : t->n[i].kind == DIR_ ? EISDIR : ENOENT;

	path(t, i, p);
	e = unlink(p) == -1 ? errno : 0;
	expect(t, "unlink", e, want);
	if (!e)
		t->n[i].kind = NONE;
}

static void op_rmdir(struct thread *t, int i)
{
	char p[4096];
	int e, want = t->n[i].kind == DIR_ ? 0 : t->n[i].kind == FILE_ ? ENOTDIR : ENOENT;

	path(t, i, p);
	e = rmdir(p) == -1 ? errno : 0;
	expect(t, "rmdir", e, want);
	if (!e)
		t->n[i].kind = NONE;
}

static void op_rename(struct thread *t, int a, int b)
{
	char pa[4096], pb[4096];
	int e, want = 0;

	path(t, a, pa);
	path(t, b, pb);
	if (t->n[a].kind == NONE)
		want = ENOENT;
	else if (a == b)
		want = 0;
	else if (t->n[a].kind == FILE_ && t->n[b].kind == DIR_)
		want = EISDIR;
	else if (t->n[a].kind == DIR_ && t->n[b].kind == FILE_)
		want = ENOTDIR;
	else if (t->n[a].kind == FILE_ && t->n[b].kind == FILE_ && t->n[a].id == t->n[b].id)
		want = 0;	/* links of one file: rename does nothing */
	/* a directory over a directory: both are empty (nothing is made in
	 * them), so it replaces it */
	e = rename(pa, pb) == -1 ? errno : 0;
	expect(t, "rename", e, want);
	if (!e && a != b && !(t->n[a].kind == FILE_ && t->n[b].kind == FILE_ &&
			      t->n[a].id == t->n[b].id)) {
		t->n[b] = t->n[a];
		t->n[a].kind = NONE;
	}
}

static void op_link(struct thread *t, int a, int b)
{
	char pa[4096], pb[4096];
	int e, want;

	path(t, a, pa);
	path(t, b, pb);
	want = t->n[a].kind == NONE ? ENOENT : t->n[b].kind != NONE ? EEXIST
					     : t->n[a].kind == DIR_ ? EPERM : 0;
	e = link(pa, pb) == -1 ? errno : 0;
	expect(t, "link", e, want);
	if (!e)
		t->n[b] = t->n[a];
}

static void op_open_write(struct thread *t, int i)
{
	char p[4096];
	uint32_t v = (uint32_t)(t->idx + 1) << 24 | (uint32_t)(t->ops & 0xffffff), got = 0;
	int k = (int)rnd(t, KEEP), fd;
	ssize_t r;

	if (t->n[i].kind != FILE_)
		return;
	path(t, i, p);
	fd = open(p, O_RDWR | O_CLOEXEC);
	if (fd == -1) {
		fail_op(t, "open '%s': %s", p, strerror(errno));
		return;
	}
	r = pread(fd, &got, sizeof(got), 0);
	if (r != (t->n[i].content ? 4 : 0) || (r == 4 && got != t->n[i].content))
		fail_op(t, "read '%s': %zd bytes %08x, expected %08x", p, r, got, t->n[i].content);
	if (pwrite(fd, &v, sizeof(v), 0) != 4)
		fail_op(t, "write '%s': %s", p, strerror(errno));
	set_content(t, t->n[i].id, v);
	/* keep it open for a while: handles live across the daemon's workers */
	if (t->fd[k] != -1)
		close(t->fd[k]);
	t->fd[k] = fd;
	t->fd_id[k] = t->n[i].id;
}

static void op_kept(struct thread *t)
{
	int k = (int)rnd(t, KEEP);
	uint32_t got = 0;

	if (t->fd[k] == -1)
		return;
	/* the file may have no name left: it still reads what was written */
	if (pread(t->fd[k], &got, sizeof(got), 0) != 4)
		fail_op(t, "read of a kept descriptor: %s", strerror(errno));
	for (int i = 0; i < NAMES; i++)
		if (t->n[i].kind == FILE_ && t->n[i].id == t->fd_id[k] && got != t->n[i].content)
			fail_op(t, "kept descriptor reads %08x, its file holds %08x", got,
				t->n[i].content);
	if (rnd(t, 3) == 0) {
		close(t->fd[k]);
		t->fd[k] = -1;
	}
}

static void op_stat(struct thread *t, int i)
{
	char p[4096];
	struct stat st;
	int e;

	path(t, i, p);
	e = lstat(p, &st) == -1 ? errno : 0;
	expect(t, "stat", e, t->n[i].kind == NONE ? ENOENT : 0);
	if (!e && (S_ISDIR(st.st_mode) != (t->n[i].kind == DIR_)))
		fail_op(t, "stat '%s': wrong type", p);
	if (!e && t->n[i].kind == FILE_ && (int)st.st_nlink != links_of(t, t->n[i].id))
		fail_op(t, "stat '%s': %lu links, expected %d", p, (unsigned long)st.st_nlink,
			links_of(t, t->n[i].id));
}

static bool should_stop(void)
{
	return atomic_load(&stop) || (until_file && access(until_file, F_OK) == 0);
}

static void *run(void *arg)
{
	struct thread *t = arg;
	struct timespec t0, now;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	if (mkdir(t->dir, 0755) == -1 && errno != EEXIST) {
		fail_op(t, "mkdir '%s': %s", t->dir, strerror(errno));
		return NULL;
	}
	while (!should_stop()) {
		int a = (int)rnd(t, NAMES), b = (int)rnd(t, NAMES);

		switch (rnd(t, 10)) {
		case 0: op_create(t, a); break;
		case 1: op_mkdir(t, a); break;
		case 2: op_unlink(t, a); break;
		case 3: op_rmdir(t, a); break;
		case 4: op_rename(t, a, b); break;
		case 5: op_link(t, a, b); break;
		case 6: op_open_write(t, a); break;
		case 7: op_kept(t); break;
		default: op_stat(t, a); break;
		}
		t->ops++;
		clock_gettime(CLOCK_MONOTONIC, &now);
		if (!until_file && (now.tv_sec - t0.tv_sec) + (now.tv_nsec - t0.tv_nsec) / 1e9 > seconds)
			break;
	}
	for (int k = 0; k < KEEP; k++)
		if (t->fd[k] != -1)
			close(t->fd[k]);
	for (int i = 0; i < NAMES; i++) {
		char p[4096];

		path(t, i, p);
		if (t->n[i].kind == FILE_)
			unlink(p);
		else if (t->n[i].kind == DIR_)
			rmdir(p);
	}
	rmdir(t->dir);
	return NULL;
}

int main(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "seed", required_argument, NULL, 's' },
		{ "threads", required_argument, NULL, 't' },
		{ "seconds", required_argument, NULL, 'S' },
		{ "until-file", required_argument, NULL, 'u' },
		{ NULL, 0, NULL, 0 },
	};
	unsigned seed = 1, nthreads = 4;
	struct thread *t;
	pthread_t *tid;
	uint64_t ops = 0;
	int c;

	while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (c) {
		case 's': seed = (unsigned)atoi(optarg); break;
		case 't': nthreads = (unsigned)atoi(optarg); break;
		case 'S': seconds = atof(optarg); break;
		case 'u': until_file = optarg; break;
		default:
			fprintf(stderr, "usage: nsstress [--seed N] [--threads N] [--seconds S] "
					"[--until-file F] DIR\n");
			return 2;
		}
	}
	if (optind != argc - 1 || nthreads < 1 || nthreads > 64) {
		fprintf(stderr, "usage: nsstress [--seed N] [--threads N] [--seconds S] "
				"[--until-file F] DIR\n");
		return 2;
	}
	root = argv[optind];
	t = calloc(nthreads, sizeof(*t));
	tid = calloc(nthreads, sizeof(*tid));
	for (unsigned i = 0; i < nthreads; i++) {
		t[i].idx = (int)i;
		t[i].rng = (uint64_t)seed * 0x9E3779B97F4A7C15ull + i + 1;
		snprintf(t[i].dir, sizeof(t[i].dir), "%s/t%u", root, i);
		for (int k = 0; k < KEEP; k++)
			t[i].fd[k] = -1;
		pthread_create(&tid[i], NULL, run, &t[i]);
	}
	for (unsigned i = 0; i < nthreads; i++) {
		pthread_join(tid[i], NULL);
		ops += t[i].ops;
	}
	if (atomic_load(&failed)) {
		fprintf(stderr, "nsstress: %s\n", first_error);
		return 1;
	}
	printf("nsstress: %llu operations as the model says\n", (unsigned long long)ops);
	return 0;
}
