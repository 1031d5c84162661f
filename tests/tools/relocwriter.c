/*
 * relocwriter: a guest-like writer for relocation tests, with a model of
 * what each file must hold, fine enough to check both a clean run and a
 * daemon that was killed under it.
 *
 *   relocwriter --seed N --size BYTES --file PATH [[--size BYTES] --file PATH]...
 *               --model-dir DIR [--duration S | --until-file STOPFILE]
 *               [--direct] [--no-truncate] [--flush-every N] [--delay-us N]
 *               [--max-ops N]
 *   relocwriter --check PATH --model FILE [--check-acked]
 *   relocwriter --info --model FILE
 *
 * Writer.  --size applies to the files named after it (and to those named
 * before the first --size).  A file that is missing or empty is created with
 * its size: sparse with a few data islands if it is 16 MiB or more, all data
 * if smaller.  A file that exists is read once and taken as it is.  Then,
 * until the duration passes, STOPFILE exists, or SIGTERM/SIGINT arrives, it
 * does random operations on a random file: buffered writes (4 KiB aligned,
 * and unaligned ones of 1 byte to 8 KiB), writes past the end, O_DIRECT
 * aligned writes through a second descriptor (--direct), reads that must
 * match the model, truncates (to within 1/8 of --size; with --no-truncate
 * neither truncates nor writes past the end), punched holes, and an
 * fdatasync of every file each --flush-every operations.  When DIR/ready
 * appears, every file has been created or scanned and flushed once.
 *
 * The model.  For each file, per 4 KiB block (bytes past the end count as
 * zero): the hash of what the writer last wrote ("cur"), the hash at the last
 * successful fdatasync ("acked"), and every version written since that flush;
 * likewise the size.  After every successful flush, DIR/NAME.acked (NAME is
 * the file's basename) is replaced atomically (temporary file, fsync, rename,
 * fsync of DIR) with the acknowledged state.  At exit, DIR/NAME.acked also
 * lists the versions written after the last flush; after a clean run (no
 * failed system call) the writer flushes once more and writes DIR/NAME.final,
 * the exact expected content.
 *
 * Checking.  --check compares PATH with a model exactly: same size, every
 * block the same, and names the first block that differs.  --check-acked
 * accepts, for the size and for each block, the acknowledged version or any
 * version written after it: what must hold after the daemon under the writer
 * was killed, the writer stopped, and the daemon restarted.  A block is the
 * unit because the daemon tracks its delta in 4 KiB blocks; a torn block
 * (part old, part new) is reported as a difference.
 *
 * Model file: "RWMODEL1", then little-endian u64s: block size, number of
 * sizes, the sizes (the first is the acked or final one), number of listed
 * blocks, then per listed block: index, number of hashes, the hashes (the
 * first is the acked or final one).  A block not listed must be zero.
 *
 * What it does not do: several writers on one file, threads, mmap.
 *
 * Exit: 0 ok; 1 mismatch or setup failure; 2 usage; 3 the writer stopped on
 * a failed system call (models written, no .final); 4 a read during the run
 * did not match the model.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <libgen.h>
#include <limits.h>
#include <linux/falloc.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include <xxhash.h>

#define BLK		4096u
#define MAX_FILES	16
#define MAX_IO		(64u << 10)
#define ISLAND_MIN_SIZE	(16u << 20)
#define MODEL_MAGIC	"RWMODEL1"

/* One version of a block (or, with blk == UINT64_MAX, of the size) written
 * since the last successful flush. */
struct ver {
	uint64_t blk;
	uint64_t hash;
};

struct wfile {
	char *path;
	char name[NAME_MAX + 1];
	int fd;				/* buffered, read-write */
	int dfd;			/* O_DIRECT, -1 without --direct */
	uint8_t *shadow;		/* what the file must hold; zero past size */
	uint64_t cap;			/* bytes of shadow; the file never grows past it */
	uint64_t create_size;		/* the --size in effect for this file */
	uint64_t nominal;		/* create_size, or the size it had at start */
	uint64_t size;
	uint64_t nblocks;		/* cap / BLK */
	uint64_t *cur;			/* per block */
	uint64_t *acked;		/* per block */
	uint64_t acked_size;
	struct ver *vers;		/* since the last flush */
	size_t nvers, capvers;
};

static struct {
	uint64_t seed;
	struct wfile f[MAX_FILES];
	int nf;
	uint64_t size;
	const char *model_dir;
	double duration;
	const char *until_file;
	bool direct;
	bool no_truncate;		/* sizes stay as they are */
	unsigned flush_every;
	unsigned delay_us;
	uint64_t max_ops;
	uint64_t zero_hash;
	uint64_t rng;
	/* counters */
	uint64_t ops, writes, dwrites, reads, truncs, punches, flushes, mismatches;
	bool failed;			/* a system call on a file failed: stop */
} W = { .flush_every = 64 };

static volatile sig_atomic_t stop_sig;

static void on_stop(int sig)
{
	(void)sig;
	stop_sig = 1;
}

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void die(const char *fmt, ...)
{
	va_list ap;

	fputs("relocwriter: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(1);
}

static void warnmsg(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void warnmsg(const char *fmt, ...)
{
	va_list ap;

	fputs("relocwriter: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

static void *xcalloc(size_t n, size_t sz)
{
	void *p = calloc(n ? n : 1, sz ? sz : 1);

	if (!p)
		die("out of memory");
	return p;
}

static uint64_t splitmix(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static uint64_t rnd(void)
{
	return splitmix(&W.rng);
}

/* uniform in [0, n), n > 0 */
static uint64_t rnd_below(uint64_t n)
{
	return n ? rnd() % n : 0;
}

/* fill buf with bytes that depend on the seed and a counter */
static void fill_random(uint8_t *buf, size_t len)
{
	uint64_t s = rnd();
	size_t i = 0;

	while (i < len) {
		uint64_t v = splitmix(&s);
		size_t n = len - i < 8 ? len - i : 8;

		memcpy(buf + i, &v, n);
		i += n;
	}
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static uint64_t block_hash(const uint8_t *p)
{
	return XXH3_64bits(p, BLK);
}

/* ---- the model ---- */

static void add_ver(struct wfile *f, uint64_t blk, uint64_t hash)
{
	if (f->nvers == f->capvers) {
		f->capvers = f->capvers ? 2 * f->capvers : 1024;
		f->vers = realloc(f->vers, f->capvers * sizeof(*f->vers));
		if (!f->vers)
			die("out of memory");
	}
	f->vers[f->nvers].blk = blk;
	f->vers[f->nvers].hash = hash;
	f->nvers++;
}

/* bytes [off, off+len) of the shadow changed: rehash their blocks and
 * remember the new versions */
static void touched(struct wfile *f, uint64_t off, uint64_t len)
{
	uint64_t b;

	if (!len)
		return;
	for (b = off / BLK; b <= (off + len - 1) / BLK && b < f->nblocks; b++) {
		uint64_t h = block_hash(f->shadow + b * BLK);

		if (h != f->cur[b]) {
			f->cur[b] = h;
			add_ver(f, b, h);
		}
	}
}

static void set_size(struct wfile *f, uint64_t size)
{
	if (size < f->size) {
		memset(f->shadow + size, 0, f->size - size);
		touched(f, size, f->size - size);
	}
	if (size != f->size)
		add_ver(f, UINT64_MAX, size);
	f->size = size;
}

/* the last flush succeeded: everything written so far is acknowledged */
static void ack(struct wfile *f)
{
	for (size_t i = 0; i < f->nvers; i++)
		if (f->vers[i].blk != UINT64_MAX)
			f->acked[f->vers[i].blk] = f->cur[f->vers[i].blk];
	f->acked_size = f->size;
	f->nvers = 0;
}

static int cmp_ver(const void *a, const void *b)
{
	const struct ver *x = a, *y = b;

	if (x->blk != y->blk)
		return x->blk < y->blk ? -1 : 1;
	return 0;	/* stable order of versions does not matter */
}

struct outbuf {
	uint8_t *p;
	size_t len, cap;
};

static void out_u64(struct outbuf *o, uint64_t v)
{
	if (o->len + 8 > o->cap) {
		o->cap = o->cap ? 2 * o->cap : 65536;
		o->p = realloc(o->p, o->cap);
		if (!o->p)
			die("out of memory");
	}
	for (int i = 0; i < 8; i++)
		o->p[o->len++] = (uint8_t)(v >> (8 * i));
}

static void write_all_or_die(int fd, const void *buf, size_t len, const char *what)
{
	const uint8_t *p = buf;

	while (len) {
		ssize_t n = write(fd, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			die("cannot write '%s': %s", what, strerror(errno));
		p += n;
		len -= (size_t)n;
	}
}

/*
 * Write DIR/NAME.SUFFIX.  final: the current state, one version per block.
 * Otherwise the acknowledged state, plus (with_pending) every version written
 * since the last flush.
 */
static void write_model(struct wfile *f, const char *suffix, bool final, bool with_pending)
{
	char path[PATH_MAX], tmp[PATH_MAX];
	struct outbuf o = { 0 };
	size_t nv = with_pending ? f->nvers : 0, j, nsizes = 1, nlisted = 0;
	struct ver *v = NULL;
	uint64_t b;
	int fd, dfd;

	if (nv) {
		v = xcalloc(nv, sizeof(*v));
		memcpy(v, f->vers, nv * sizeof(*v));
		qsort(v, nv, sizeof(*v), cmp_ver);
	}
	/* sizes sort last (blk UINT64_MAX) */
	for (j = 0; j < nv; j++)
		if (v[j].blk == UINT64_MAX)
			nsizes++;

	memcpy(&b, MODEL_MAGIC, 8);
	out_u64(&o, b);
	out_u64(&o, BLK);
	out_u64(&o, nsizes);
	out_u64(&o, final ? f->size : f->acked_size);
	for (j = 0; j < nv; j++)
		if (v[j].blk == UINT64_MAX)
			out_u64(&o, v[j].hash);
	size_t count_at = o.len;
	out_u64(&o, 0);		/* number of listed blocks, patched below */

	j = 0;
	for (b = 0; b < f->nblocks; b++) {
		uint64_t first = final ? f->cur[b] : f->acked[b];
		size_t k = j, n;

		while (k < nv && v[k].blk == b)
			k++;
		if (first == W.zero_hash && k == j)
			continue;
		n = 1;
		for (size_t x = j; x < k; x++) {
			bool dup = v[x].hash == first;

			for (size_t y = j; y < x && !dup; y++)
				dup = v[y].hash == v[x].hash;
			if (!dup)
				n++;
		}
		out_u64(&o, b);
		out_u64(&o, n);
		out_u64(&o, first);
		for (size_t x = j; x < k; x++) {
			bool dup = v[x].hash == first;

			for (size_t y = j; y < x && !dup; y++)
				dup = v[y].hash == v[x].hash;
			if (!dup)
				out_u64(&o, v[x].hash);
		}
		nlisted++;
		j = k;
	}
	for (int s = 0; s < 8; s++)
		o.p[count_at + (size_t)s] = (uint8_t)((uint64_t)nlisted >> (8 * s));

	snprintf(path, sizeof(path), "%s/%s.%s", W.model_dir, f->name, suffix);
	snprintf(tmp, sizeof(tmp), "%s/.%s.%s.tmp", W.model_dir, f->name, suffix);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		die("cannot create '%s': %s", tmp, strerror(errno));
	write_all_or_die(fd, o.p, o.len, tmp);
	if (fsync(fd))
		die("cannot fsync '%s': %s", tmp, strerror(errno));
	close(fd);
	if (rename(tmp, path))
		die("cannot rename '%s' to '%s': %s", tmp, path, strerror(errno));
	dfd = open(W.model_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd >= 0) {
		fsync(dfd);
		close(dfd);
	}
	free(o.p);
	free(v);
}

/* ---- operations ---- */

static void op_failed(struct wfile *f, const char *what, uint64_t off, uint64_t len, int err)
{
	warnmsg("%s '%s' at %" PRIu64 " (+%" PRIu64 "): %s", what, f->path, off, len,
		err ? strerror(err) : "short transfer");
	W.failed = true;
}

static void do_pwrite(struct wfile *f, int fd, const uint8_t *buf, uint64_t len, uint64_t off,
		      const char *what)
{
	uint64_t old_size = f->size;
	ssize_t n;

	/* the model first: a write that fails may still have landed */
	memcpy(f->shadow + off, buf, len);
	if (off + len > f->size) {
		/*
		 * The kernel may send a write as several requests, split at
		 * page boundaries (a buffered write whose first page is partly
		 * written and not cached goes as that page, then the rest).
		 * Until a flush covers it, a write may survive in part: cut
		 * short when the daemon died between its requests, or whole
		 * from here yet rolled back in part, when a cutover switched
		 * between them and a restart undid the switch.  With the
		 * writeback cache the kernel also writes back a dirty page
		 * whole while the file it knows is longer: the page that held
		 * the old end, or one written later in the hole this write
		 * leaves, may reach the daemon before this write does, and
		 * the file then ends at that page's end, zero-filled, as a
		 * local filesystem's may after a power loss.  So the file
		 * may end at any page boundary past the old end and before
		 * the new one.
		 */
		for (uint64_t p = (old_size / BLK + 1) * BLK; p < off + len; p += BLK)
			add_ver(f, UINT64_MAX, p);
		add_ver(f, UINT64_MAX, off + len);
		f->size = off + len;
	}
	touched(f, off, len);
	do
		n = pwrite(fd, buf, len, (off_t)off);
	while (n < 0 && errno == EINTR);
	if (n != (ssize_t)len)
		op_failed(f, what, off, len, n < 0 ? errno : 0);
}

static void op_write(struct wfile *f, bool aligned)
{
	static uint8_t buf[MAX_IO];
	uint64_t off, len;

	if (aligned) {
		len = BLK * (1 + rnd_below(4));
		off = f->size >= BLK ? rnd_below(f->size / BLK) * BLK : 0;
	} else {
		len = 1 + rnd_below(2 * BLK);
		off = rnd_below(f->size ? f->size : 1);
	}
	if (off + len > f->cap)
		len = f->cap - off;
	if (W.no_truncate && off + len > f->size)
		len = off < f->size ? f->size - off : 0;
	if (!len)
		return;
	fill_random(buf, len);
	do_pwrite(f, f->fd, buf, len, off, "write");
	W.writes++;
}

static void op_extend(struct wfile *f)
{
	static uint8_t buf[MAX_IO];
	uint64_t off = f->size + rnd_below(64u << 10), len = 1 + rnd_below(2 * BLK);

	if (off >= f->cap || off > f->nominal + f->nominal / 8)
		return;
	if (off + len > f->cap)
		len = f->cap - off;
	fill_random(buf, len);
	do_pwrite(f, f->fd, buf, len, off, "extending write");
	W.writes++;
}

static void op_direct_write(struct wfile *f)
{
	static uint8_t *buf;
	uint64_t len = BLK * (1 + rnd_below(16)), off;

	if (!buf) {
		buf = aligned_alloc(BLK, MAX_IO);
		if (!buf)
			die("out of memory");
	}
	off = f->size >= BLK ? rnd_below(f->size / BLK) * BLK : 0;
	if (off + len > f->cap || (W.no_truncate && off + len > f->size))
		return;
	fill_random(buf, len);
	do_pwrite(f, f->dfd, buf, len, off, "O_DIRECT write");
	W.dwrites++;
}

static void op_read(struct wfile *f)
{
	static uint8_t buf[4 * BLK];
	uint64_t len = 1 + rnd_below(sizeof(buf)), off = rnd_below(f->size ? f->size : 1);
	uint64_t want = off < f->size ? (off + len > f->size ? f->size - off : len) : 0;
	ssize_t n;

	do
		n = pread(f->fd, buf, len, (off_t)off);
	while (n < 0 && errno == EINTR);
	W.reads++;
	if (n < 0) {
		op_failed(f, "read", off, len, errno);
		return;
	}
	if ((uint64_t)n != want || memcmp(buf, f->shadow + off, want)) {
		uint64_t i = 0;

		while (i < (uint64_t)n && i < want && buf[i] == f->shadow[off + i])
			i++;
		if (W.mismatches++ < 10)
			warnmsg("read mismatch: '%s' at %" PRIu64 ": %zd of %" PRIu64
				" bytes read, first difference at offset %" PRIu64, f->path, off,
				n, want, off + i);
	}
}

static void op_truncate(struct wfile *f)
{
	uint64_t lo = f->nominal - f->nominal / 8, hi = f->nominal + f->nominal / 8, size;

	if (hi > f->cap)
		hi = f->cap;
	size = lo + rnd_below(hi - lo + 1);
	if (rnd_below(2))
		size &= ~(uint64_t)(BLK - 1);
	set_size(f, size);
	W.truncs++;
	if (ftruncate(f->fd, (off_t)size))
		op_failed(f, "truncate", size, 0, errno);
}

static void op_punch(struct wfile *f)
{
	uint64_t off, len;

	if (!f->size)
		return;
	off = rnd_below(f->size);
	len = 1 + rnd_below(256u << 10);
	if (rnd_below(2)) {
		off &= ~(uint64_t)(BLK - 1);
		len = (len + BLK - 1) & ~(uint64_t)(BLK - 1);
	}
	if (off + len > f->size)
		len = f->size - off;
	memset(f->shadow + off, 0, len);
	touched(f, off, len);
	W.punches++;
	if (fallocate(f->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)off, (off_t)len))
		op_failed(f, "punch hole", off, len, errno);
}

static void flush_all(void)
{
	for (int i = 0; i < W.nf && !W.failed; i++) {
		struct wfile *f = &W.f[i];

		if (fdatasync(f->fd)) {
			op_failed(f, "fdatasync", 0, 0, errno);
			return;
		}
		ack(f);
		write_model(f, "acked", false, false);
	}
	W.flushes++;
}

/* ---- set-up ---- */

static void open_file(struct wfile *f)
{
	struct stat st;
	char tmp[PATH_MAX];
	uint64_t start;

	snprintf(tmp, sizeof(tmp), "%s", f->path);
	snprintf(f->name, sizeof(f->name), "%s", basename(tmp));
	for (int i = 0; f != &W.f[i]; i++)
		if (!strcmp(W.f[i].name, f->name))
			die("two files named '%s': models would collide", f->name);
	f->fd = open(f->path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	if (f->fd < 0)
		die("cannot open '%s': %s", f->path, strerror(errno));
	f->dfd = -1;
	if (W.direct) {
		f->dfd = open(f->path, O_RDWR | O_DIRECT | O_CLOEXEC);
		if (f->dfd < 0)
			die("cannot open '%s' with O_DIRECT: %s", f->path, strerror(errno));
	}
	if (fstat(f->fd, &st))
		die("cannot stat '%s': %s", f->path, strerror(errno));
	start = (uint64_t)st.st_size;
	f->nominal = start ? start : f->create_size;
	if (f->nominal < BLK)
		f->nominal = BLK;
	f->cap = (f->nominal + f->nominal / 4 + (1u << 20) + BLK - 1) & ~(uint64_t)(BLK - 1);
	if (start > f->cap)
		f->cap = (start + BLK - 1) & ~(uint64_t)(BLK - 1);
	f->nblocks = f->cap / BLK;
	f->shadow = xcalloc(1, f->cap);	/* untouched pages stay unallocated */
	f->cur = xcalloc(f->nblocks, sizeof(uint64_t));
	f->acked = xcalloc(f->nblocks, sizeof(uint64_t));
	for (uint64_t b = 0; b < f->nblocks; b++)
		f->cur[b] = f->acked[b] = W.zero_hash;

	if (start) {
		/* take the file as it is, reading only its data extents */
		off_t pos = 0;

		while ((uint64_t)pos < start) {
			off_t d = lseek(f->fd, pos, SEEK_DATA), h;

			if (d < 0 && errno == ENXIO)
				break;
			if (d < 0) {
				d = pos;	/* no SEEK_DATA: read everything */
				h = (off_t)start;
			} else {
				h = lseek(f->fd, d, SEEK_HOLE);
				if (h < 0)
					h = (off_t)start;
			}
			while (d < h) {
				size_t n = (size_t)(h - d) > (1u << 20) ? (1u << 20) : (size_t)(h - d);
				ssize_t r = pread(f->fd, f->shadow + d, n, d);

				if (r <= 0)
					die("cannot read '%s' at %jd: %s", f->path, (intmax_t)d,
					    r < 0 ? strerror(errno) : "unexpected end of file");
				d += r;
			}
			pos = h;
		}
		f->size = start;
		touched(f, 0, start);
		return;
	}
	/* create: sparse with islands, or all data if small */
	f->size = 0;
	set_size(f, f->create_size);
	if (ftruncate(f->fd, (off_t)f->create_size))
		die("cannot truncate '%s': %s", f->path, strerror(errno));
	if (f->create_size < ISLAND_MIN_SIZE) {
		for (uint64_t off = 0; off < f->create_size; off += MAX_IO) {
			static uint8_t buf[MAX_IO];
			uint64_t len = f->create_size - off < MAX_IO ? f->create_size - off : MAX_IO;

			fill_random(buf, len);
			do_pwrite(f, f->fd, buf, len, off, "initial write");
		}
	} else {
		unsigned n = 6 + (unsigned)rnd_below(6);

		for (unsigned i = 0; i < n; i++) {
			uint64_t len = (64u << 10) + rnd_below(2u << 20);
			uint64_t off = rnd_below(f->create_size - len);
			uint64_t done = 0;

			if (i % 2)
				off &= ~(uint64_t)(BLK - 1);
			while (done < len) {
				static uint8_t buf[MAX_IO];
				uint64_t l = len - done < MAX_IO ? len - done : MAX_IO;

				fill_random(buf, l);
				do_pwrite(f, f->fd, buf, l, off + done, "initial write");
				done += l;
			}
		}
	}
	if (W.failed)
		die("cannot create '%s'", f->path);
}

/* ---- checking ---- */

struct model {
	uint64_t *sizes;
	uint64_t nsizes;
	uint64_t nlisted;
	uint64_t *blk;		/* listed block indexes, ascending */
	uint64_t **hashes;
	uint64_t *nhashes;
};

static uint64_t rd_u64(const uint8_t **p, const uint8_t *end, const char *path)
{
	uint64_t v = 0;

	if (end - *p < 8)
		die("model '%s' is truncated", path);
	for (int i = 0; i < 8; i++)
		v |= (uint64_t)(*p)[i] << (8 * i);
	*p += 8;
	return v;
}

static void load_model(const char *path, struct model *m)
{
	FILE *fp = fopen(path, "rb");
	uint8_t *buf;
	const uint8_t *p, *end;
	long len;
	uint64_t magic;

	if (!fp)
		die("cannot open model '%s': %s", path, strerror(errno));
	fseek(fp, 0, SEEK_END);
	len = ftell(fp);
	rewind(fp);
	buf = xcalloc(1, (size_t)len + 1);
	if (len && fread(buf, 1, (size_t)len, fp) != (size_t)len)
		die("cannot read model '%s'", path);
	fclose(fp);
	p = buf;
	end = buf + len;
	memcpy(&magic, MODEL_MAGIC, 8);
	if (rd_u64(&p, end, path) != magic || rd_u64(&p, end, path) != BLK)
		die("'%s' is not a relocwriter model", path);
	m->nsizes = rd_u64(&p, end, path);
	if (m->nsizes == 0 || m->nsizes > (uint64_t)(end - p) / 8)
		die("model '%s' is corrupt", path);
	m->sizes = xcalloc(m->nsizes, 8);
	for (uint64_t i = 0; i < m->nsizes; i++)
		m->sizes[i] = rd_u64(&p, end, path);
	m->nlisted = rd_u64(&p, end, path);
	if (m->nlisted > (uint64_t)(end - p) / 24)
		die("model '%s' is corrupt", path);
	m->blk = xcalloc(m->nlisted, 8);
	m->nhashes = xcalloc(m->nlisted, 8);
	m->hashes = xcalloc(m->nlisted, sizeof(uint64_t *));
	for (uint64_t i = 0; i < m->nlisted; i++) {
		m->blk[i] = rd_u64(&p, end, path);
		m->nhashes[i] = rd_u64(&p, end, path);
		if (m->nhashes[i] == 0 || m->nhashes[i] > (uint64_t)(end - p) / 8 ||
		    (i && m->blk[i] <= m->blk[i - 1]))
			die("model '%s' is corrupt", path);
		m->hashes[i] = xcalloc(m->nhashes[i], 8);
		for (uint64_t k = 0; k < m->nhashes[i]; k++)
			m->hashes[i][k] = rd_u64(&p, end, path);
	}
	free(buf);
}

static void free_model(struct model *m)
{
	for (uint64_t i = 0; i < m->nlisted; i++)
		free(m->hashes[i]);
	free(m->hashes);
	free(m->nhashes);
	free(m->blk);
	free(m->sizes);
}

static int check_file(const char *path, const char *model_path, bool acked)
{
	struct model m = { 0 };
	uint8_t *buf = aligned_alloc(BLK, 1u << 20);
	struct stat st;
	uint64_t size, nblk, li = 0, maxsize = 0;
	bool size_ok = false;
	int fd, ret = 0;

	if (!buf)
		die("out of memory");
	load_model(model_path, &m);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st))
		die("cannot open '%s': %s", path, strerror(errno));
	size = (uint64_t)st.st_size;
	for (uint64_t i = 0; i < (acked ? m.nsizes : 1); i++)
		size_ok |= m.sizes[i] == size;
	if (!size_ok) {
		printf("%s: size %" PRIu64 ", model '%s' says %" PRIu64 "%s\n", path, size,
		       model_path, m.sizes[0], acked && m.nsizes > 1 ? " (or a later size)" : "");
		ret = 1;
		goto out;
	}
	for (uint64_t i = 0; i < m.nsizes; i++)
		if (m.sizes[i] > maxsize)
			maxsize = m.sizes[i];
	nblk = ((size > maxsize ? size : maxsize) + BLK - 1) / BLK;
	if (m.nlisted && m.blk[m.nlisted - 1] + 1 > nblk)
		nblk = m.blk[m.nlisted - 1] + 1;
	for (uint64_t b = 0; b < nblk; b += (1u << 20) / BLK) {
		uint64_t off = b * BLK, got = 0, want = 1u << 20;

		memset(buf, 0, want);
		while (off + got < size && got < want) {
			ssize_t n = pread(fd, buf + got, want - got, (off_t)(off + got));

			if (n < 0 && errno == EINTR)
				continue;
			if (n < 0)
				die("cannot read '%s' at %" PRIu64 ": %s", path, off + got,
				    strerror(errno));
			if (n == 0)
				break;
			got += (uint64_t)n;
		}
		for (uint64_t k = 0; k < want / BLK && b + k < nblk; k++) {
			uint64_t h = block_hash(buf + k * BLK), blk = b + k;
			bool ok = false;

			while (li < m.nlisted && m.blk[li] < blk)
				li++;
			if (li < m.nlisted && m.blk[li] == blk) {
				for (uint64_t x = 0; x < (acked ? m.nhashes[li] : 1); x++)
					ok |= m.hashes[li][x] == h;
			} else {
				ok = h == W.zero_hash;
			}
			if (!ok) {
				printf("%s: block %" PRIu64 " (bytes %" PRIu64 "-%" PRIu64
				       ") differs from model '%s'%s%s\n", path, blk, blk * BLK,
				       blk * BLK + BLK - 1, model_path,
				       h == W.zero_hash ? ": reads as zeros" : "",
				       acked ? " (neither the acknowledged nor a later version)" : "");
				ret = 1;
				goto out;
			}
		}
	}
	printf("ok: '%s' matches '%s' (%" PRIu64 " bytes%s)\n", path, model_path, size,
	       acked ? ", acknowledged or later" : "");
out:
	close(fd);
	free(buf);
	free_model(&m);
	return ret;
}

static int model_info(const char *model_path)
{
	struct model m = { 0 };

	load_model(model_path, &m);
	printf("size %" PRIu64 " sizes %" PRIu64 " data_blocks %" PRIu64 "\n", m.sizes[0], m.nsizes,
	       m.nlisted);
	free_model(&m);
	return 0;
}

/* ---- main ---- */

static void usage(FILE *fp)
{
	fprintf(fp,
"usage: relocwriter --seed N --size BYTES --file PATH [[--size BYTES] --file PATH]...\n"
"                   --model-dir DIR\n"
"                   [--duration S | --until-file STOPFILE] [--direct] [--no-truncate]\n"
"                   [--flush-every N] [--delay-us N] [--max-ops N]\n"
"       relocwriter --check PATH --model FILE [--check-acked]\n"
"       relocwriter --info --model FILE\n");
}

static uint64_t parse_u64(const char *s, const char *what)
{
	char *end;
	unsigned long long v;

	errno = 0;
	v = strtoull(s, &end, 0);
	if (errno || end == s || *s == '-')
		goto bad;
	switch (*end) {
	case 'k': case 'K': v <<= 10; end++; break;
	case 'm': case 'M': v <<= 20; end++; break;
	case 'g': case 'G': v <<= 30; end++; break;
	}
	if (*end)
		goto bad;
	return v;
bad:
	fprintf(stderr, "relocwriter: bad %s '%s'\n", what, s);
	exit(2);
}

static bool should_stop(double deadline)
{
	if (stop_sig || W.failed)
		return true;
	if (W.max_ops && W.ops >= W.max_ops)
		return true;
	if (W.until_file && access(W.until_file, F_OK) == 0)
		return true;
	return deadline > 0 && now_s() >= deadline;
}

int main(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "seed", required_argument, NULL, 's' },
		{ "file", required_argument, NULL, 'f' },
		{ "size", required_argument, NULL, 'S' },
		{ "model-dir", required_argument, NULL, 'M' },
		{ "duration", required_argument, NULL, 'd' },
		{ "until-file", required_argument, NULL, 'u' },
		{ "direct", no_argument, NULL, 'D' },
		{ "no-truncate", no_argument, NULL, 'T' },
		{ "flush-every", required_argument, NULL, 'F' },
		{ "delay-us", required_argument, NULL, 'y' },
		{ "max-ops", required_argument, NULL, 'n' },
		{ "check", required_argument, NULL, 'c' },
		{ "model", required_argument, NULL, 'm' },
		{ "check-acked", no_argument, NULL, 'a' },
		{ "info", no_argument, NULL, 'i' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *check = NULL, *model = NULL;
	bool acked = false, info = false, have_seed = false;
	double deadline = 0;
	uint8_t zero[BLK] = { 0 };
	struct sigaction sa = { .sa_handler = on_stop };
	char ready[PATH_MAX];
	int c, ret = 0;

	W.zero_hash = block_hash(zero);
	while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (c) {
		case 's': W.seed = parse_u64(optarg, "seed"); have_seed = true; break;
		case 'f':
			if (W.nf == MAX_FILES) {
				fprintf(stderr, "relocwriter: at most %d files\n", MAX_FILES);
				return 2;
			}
			W.f[W.nf].create_size = W.size;
			W.f[W.nf++].path = optarg;
			break;
		case 'S':
			W.size = parse_u64(optarg, "size");
			if (!W.size) {
				fprintf(stderr, "relocwriter: --size must not be 0\n");
				return 2;
			}
			for (int i = W.nf - 1; i >= 0 && !W.f[i].create_size; i--)
				W.f[i].create_size = W.size;
			break;
		case 'M': W.model_dir = optarg; break;
		case 'd': W.duration = atof(optarg); break;
		case 'u': W.until_file = optarg; break;
		case 'D': W.direct = true; break;
		case 'T': W.no_truncate = true; break;
		case 'F': W.flush_every = (unsigned)parse_u64(optarg, "flush count"); break;
		case 'y': W.delay_us = (unsigned)parse_u64(optarg, "delay"); break;
		case 'n': W.max_ops = parse_u64(optarg, "operation count"); break;
		case 'c': check = optarg; break;
		case 'm': model = optarg; break;
		case 'a': acked = true; break;
		case 'i': info = true; break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (optind != argc) {
		usage(stderr);
		return 2;
	}
	if (info) {
		if (!model) {
			usage(stderr);
			return 2;
		}
		return model_info(model);
	}
	if (check) {
		if (!model) {
			usage(stderr);
			return 2;
		}
		return check_file(check, model, acked);
	}
	if (!have_seed || !W.nf || !W.size || !W.model_dir || W.flush_every == 0 ||
	    (W.duration > 0 && W.until_file)) {
		usage(stderr);
		return 2;
	}

	W.rng = W.seed;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	snprintf(ready, sizeof(ready), "%s/ready", W.model_dir);
	unlink(ready);
	for (int i = 0; i < W.nf; i++) {
		char p[PATH_MAX];
		struct wfile *f = &W.f[i];

		open_file(f);
		snprintf(p, sizeof(p), "%s/%s.final", W.model_dir, f->name);
		unlink(p);
	}
	flush_all();
	if (W.failed)
		die("cannot flush the initial state");
	close(open(ready, O_WRONLY | O_CREAT | O_CLOEXEC, 0644));

	if (W.duration > 0)
		deadline = now_s() + W.duration;
	while (!should_stop(deadline)) {
		struct wfile *f = &W.f[rnd_below((uint64_t)W.nf)];
		uint64_t r = rnd_below(100);

		if (r < 30)
			op_write(f, false);
		else if (r < 50)
			op_write(f, true);
		else if (r < 52 && !W.no_truncate)
			op_extend(f);
		else if (r < 52)
			op_write(f, false);
		else if (r < 67) {
			if (W.direct)
				op_direct_write(f);
			else
				op_write(f, true);
		} else if (r < 92)
			op_read(f);
		else if (r < 95 && !W.no_truncate)
			op_truncate(f);
		else if (r < 95)
			op_write(f, false);
		else
			op_punch(f);
		W.ops++;
		if (!W.failed && W.ops % W.flush_every == 0)
			flush_all();
		if (W.delay_us)
			usleep(W.delay_us);
	}

	if (!W.failed)
		flush_all();
	for (int i = 0; i < W.nf; i++) {
		struct wfile *f = &W.f[i];

		write_model(f, "acked", false, true);
		if (!W.failed)
			write_model(f, "final", true, false);
	}
	printf("relocwriter: %" PRIu64 " ops (%" PRIu64 " writes, %" PRIu64 " O_DIRECT writes, %"
	       PRIu64 " reads, %" PRIu64 " truncates, %" PRIu64 " punches), %" PRIu64
	       " flushes, %" PRIu64 " read mismatches%s\n", W.ops, W.writes, W.dwrites, W.reads,
	       W.truncs, W.punches, W.flushes, W.mismatches,
	       W.failed ? ", stopped on a failed system call" : "");
	if (W.failed)
		ret = 3;
	else if (W.mismatches)
		ret = 4;
	for (int i = 0; i < W.nf; i++) {
		close(W.f[i].fd);
		if (W.f[i].dfd >= 0)
			close(W.f[i].dfd);
	}
	return ret;
}
