/*
 * rbd: the RBD kind of target: one image in a Ceph pool, through librbd's
 * asynchronous calls.
 *
 * A request is cut into pieces of at most RBD_PIECE bytes that are all
 * issued at once and waited for together (librbd spreads them over the
 * image's objects, and so over the OSDs).  Holes: the base copy writes only
 * blocks that hold data, so the rest of a new image stays unallocated; a
 * punch is rbd_write_zeroes, which discards the whole objects it covers and
 * writes zeros into the rest (rbd_discard would skip partial objects, and
 * they would keep their data).  A write past the end grows the image first
 * (a file that grows, a qcow2 file gaining clusters, grows its image).
 * SEEK_DATA/SEEK_HOLE ask the object map (rbd_diff_iterate2, whole
 * objects) where the image has fast-diff; without it all is data.
 *
 * What an image lacks of a file is kept in its metadata: relocfs.mode,
 * relocfs.uid, relocfs.gid, relocfs.atime, relocfs.mtime ("SEC.NSEC") and
 * relocfs.path (the file's path in the mount), so that a restarted relocfs,
 * or an operator with `rbd image-meta list`, finds them there.  The mtime
 * is advanced in memory by every write and recorded at the next flush.
 *
 * Connections: one rados_t per (configuration file, client name) in the
 * process, shared by the images opened with it and shut down with the last
 * of them.  A worker process opens its own (librados is not fork-safe); the
 * supervisor never opens one.  Every use of the libraries starts with a
 * connection, so conn_get() is where they are loaded (rbdlib_load(): a
 * process that never reaches an image never loads them).
 *
 * Deliberately not here: snapshots, clones, namespaces, encryption.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <linux/falloc.h>

#include "common/log.h"
#include "target/rbdlib.h"
#include "target/target_i.h"

#define RBD_PIECE	(1u << 20)
#define IMAGE_NAME_MAX	250

/* ---- the spec and the naming rule ------------------------------------------ */

bool rbd_spec_is(const char *s)
{
	return s && !strncmp(s, "rbd:", 4);
}

static bool name_ok(const char *s)
{
	return !strpbrk(s, "/@:") && strlen(s) < 128;
}

int rbd_spec_parse(const char *s, struct rbd_spec *sp, char *err, size_t errlen)
{
	char buf[1024], *opt, *slash;

	memset(sp, 0, sizeof(*sp));
	if (!rbd_spec_is(s) || strlen(s) >= sizeof(buf)) {
		snprintf(err, errlen, "'%s' is not an RBD destination (rbd:POOL[/PREFIX])", s);
		return -EINVAL;
	}
	snprintf(buf, sizeof(buf), "%s", s + 4);
	opt = strchr(buf, ':');
	if (opt)
		*opt++ = '\0';
	slash = strchr(buf, '/');
	if (slash)
		*slash++ = '\0';
	if (!buf[0] || !name_ok(buf) || (slash && !name_ok(slash))) {
		snprintf(err, errlen, "'%s': give the pool as rbd:POOL[/PREFIX] (no '/', '@' or ':' "
			 "in either)", s);
		return -EINVAL;
	}
	snprintf(sp->pool, sizeof(sp->pool), "%s", buf);
	snprintf(sp->prefix, sizeof(sp->prefix), "%s", slash ? slash : "");
	while (opt && *opt) {
		char *next = strchr(opt, ':');

		if (next)
			*next++ = '\0';
		if (!strncmp(opt, "conf=", 5) && opt[5] == '/' && strlen(opt + 5) < sizeof(sp->conf)) {
			snprintf(sp->conf, sizeof(sp->conf), "%s", opt + 5);
		} else if (!strncmp(opt, "id=", 3) && opt[3] && strlen(opt + 3) < sizeof(sp->id)) {
			snprintf(sp->id, sizeof(sp->id), "%s", opt + 3);
		} else {
			snprintf(err, errlen, "'%s': unknown or bad option '%s' (conf=ABSOLUTE_PATH, "
				 "id=NAME)", s, opt);
			return -EINVAL;
		}
		opt = next;
	}
	return 0;
}

char *rbd_spec_format(const struct rbd_spec *sp)
{
	char buf[1024];

	snprintf(buf, sizeof(buf), "rbd:%s%s%s%s%s%s%s", sp->pool, sp->prefix[0] ? "/" : "",
		 sp->prefix, sp->conf[0] ? ":conf=" : "", sp->conf, sp->id[0] ? ":id=" : "", sp->id);
	return strdup(buf);
}

char *rbd_image_name(const struct rbd_spec *sp, const char *relpath)
{
	static const char keep[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._+-";
	size_t n = strlen(sp->prefix), cap = n + 3 * strlen(relpath) + 1;
	char *s = malloc(cap);

	if (!s)
		return NULL;
	memcpy(s, sp->prefix, n);
	for (const unsigned char *p = (const unsigned char *)relpath; *p; p++) {
		if (*p && strchr(keep, *p))
			s[n++] = (char)*p;
		else
			n += (size_t)sprintf(s + n, "%%%02X", *p);
	}
	s[n] = '\0';
	if (n > IMAGE_NAME_MAX) {
		free(s);
		return NULL;
	}
	return s;
}

/* ---- connections --------------------------------------------------------------- */

struct conn {
	struct conn *next;
	char conf[512], id[64];
	rados_t cluster;
	unsigned refs;			/* conns_lock */
};

static pthread_mutex_t conns_lock = PTHREAD_MUTEX_INITIALIZER;
static struct conn *conns;		/* conns_lock */

/* Set a timeout the configuration left at Ceph's default. */
static void default_timeout(rados_t c, const char *opt, const char *ceph_default, const char *ours)
{
	char v[32];

	if (rados_conf_get(c, opt, v, sizeof(v)) == 0 && !strcmp(v, ceph_default))
		rados_conf_set(c, opt, ours);
}

static int conn_get(const struct rbd_spec *sp, struct conn **out, char *err, size_t errlen)
{
	struct conn *c;
	int r = rbdlib_load(err, errlen);

	if (r)
		return r;
	pthread_mutex_lock(&conns_lock);
	for (c = conns; c; c = c->next) {
		if (!strcmp(c->conf, sp->conf) && !strcmp(c->id, sp->id)) {
			c->refs++;
			pthread_mutex_unlock(&conns_lock);
			*out = c;
			return 0;
		}
	}
	c = calloc(1, sizeof(*c));
	if (!c) {
		pthread_mutex_unlock(&conns_lock);
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	snprintf(c->conf, sizeof(c->conf), "%s", sp->conf);
	snprintf(c->id, sizeof(c->id), "%s", sp->id);
	r = rados_create(&c->cluster, sp->id[0] ? sp->id : NULL);
	if (r < 0) {
		snprintf(err, errlen, "cannot set up a Ceph client: %s", strerror(-r));
		goto fail;
	}
	r = rados_conf_read_file(c->cluster, sp->conf[0] ? sp->conf : NULL);
	if (r < 0) {
		snprintf(err, errlen, "cannot read the Ceph configuration '%s': %s",
			 sp->conf[0] ? sp->conf : "/etc/ceph/ceph.conf", strerror(-r));
		goto fail_shutdown;
	}
	default_timeout(c->cluster, "client_mount_timeout", "300.000000", "10");
	default_timeout(c->cluster, "rados_osd_op_timeout", "0.000000", "60");
	default_timeout(c->cluster, "rados_mon_op_timeout", "0.000000", "60");
	/* librbd copies what it is given to write (the default, said here
	 * because the base copy reuses its buffer at once) */
	rados_conf_set(c->cluster, "rbd_disable_zero_copy_writes", "true");
	r = rados_connect(c->cluster);
	if (r < 0) {
		snprintf(err, errlen, "cannot reach the Ceph cluster of '%s': %s",
			 sp->conf[0] ? sp->conf : "/etc/ceph/ceph.conf",
			 r == -ETIMEDOUT ? "no monitor answered" : strerror(-r));
		goto fail_shutdown;
	}
	c->refs = 1;
	c->next = conns;
	conns = c;
	pthread_mutex_unlock(&conns_lock);
	*out = c;
	return 0;
fail_shutdown:
	rados_shutdown(c->cluster);
fail:
	pthread_mutex_unlock(&conns_lock);
	free(c);
	return r < 0 ? r : -EIO;
}

static void conn_put(struct conn *c)
{
	struct conn **pp;

	pthread_mutex_lock(&conns_lock);
	if (--c->refs) {
		pthread_mutex_unlock(&conns_lock);
		return;
	}
	for (pp = &conns; *pp != c; pp = &(*pp)->next)
		;
	*pp = c->next;
	pthread_mutex_unlock(&conns_lock);
	rados_shutdown(c->cluster);
	free(c);
}

static int pool_open(struct conn *c, const struct rbd_spec *sp, rados_ioctx_t *io, char *err,
		     size_t errlen)
{
	int r = rados_ioctx_create(c->cluster, sp->pool, io);

	if (r < 0)
		snprintf(err, errlen, r == -ENOENT ? "Ceph pool '%s' does not exist"
						   : "cannot open Ceph pool '%s': %s",
			 sp->pool, strerror(-r));
	return r;
}

/* ---- an image ---------------------------------------------------------------- */

struct rbd_target {
	struct target t;
	struct conn *c;
	rados_ioctx_t io;
	rbd_image_t image;
	bool fast_diff;
	pthread_mutex_t mu;		/* protects the fields below; resizes */
	struct target_meta meta;	/* as recorded (read at open), but the size */
	struct timespec mtime;
	bool mtime_dirty;		/* written since the mtime was recorded */
};

static struct rbd_target *R(struct target *t)
{
	return (struct rbd_target *)t;
}

/* Asynchronous requests issued together and waited for together. */
struct batch {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	unsigned pending;		/* mu */
	int err;			/* mu: the first error */
};

static void batch_done(rbd_completion_t comp, void *arg)
{
	struct batch *b = arg;
	ssize_t r = rbd_aio_get_return_value(comp);

	rbd_aio_release(comp);
	pthread_mutex_lock(&b->mu);
	if (r < 0 && !b->err)
		b->err = (int)r;
	if (--b->pending == 0)
		pthread_cond_signal(&b->cv);
	pthread_mutex_unlock(&b->mu);
}

static void batch_init(struct batch *b)
{
	pthread_mutex_init(&b->mu, NULL);
	pthread_cond_init(&b->cv, NULL);
	b->pending = 0;
	b->err = 0;
}

enum io_kind { IO_READ, IO_WRITE, IO_ZERO };

/* Issue one piece; on a failed submission the batch takes the error. */
static void batch_issue(struct batch *b, rbd_image_t image, enum io_kind k, char *buf, size_t len,
			uint64_t off)
{
	rbd_completion_t comp;
	int r;

	pthread_mutex_lock(&b->mu);
	b->pending++;
	pthread_mutex_unlock(&b->mu);
	r = rbd_aio_create_completion(b, batch_done, &comp);
	if (r == 0) {
		if (k == IO_READ)
			r = rbd_aio_read(image, off, len, buf, comp);
		else if (k == IO_WRITE)
			r = rbd_aio_write(image, off, len, buf, comp);
		else
			r = rbd_aio_write_zeroes(image, off, len, comp, 0, 0);
		if (r < 0)
			rbd_aio_release(comp);
	}
	if (r < 0) {
		pthread_mutex_lock(&b->mu);
		if (!b->err)
			b->err = r;
		b->pending--;
		pthread_mutex_unlock(&b->mu);
	}
}

static void batch_range(struct batch *b, rbd_image_t image, enum io_kind k, char *buf, size_t len,
			uint64_t off)
{
	for (size_t done = 0; done < len;) {
		size_t n = len - done < RBD_PIECE ? len - done : RBD_PIECE;

		batch_issue(b, image, k, buf ? buf + done : NULL, n, off + done);
		done += n;
	}
}

static int batch_wait(struct batch *b)
{
	int err;

	pthread_mutex_lock(&b->mu);
	while (b->pending)
		pthread_cond_wait(&b->cv, &b->mu);
	err = b->err;
	pthread_mutex_unlock(&b->mu);
	pthread_mutex_destroy(&b->mu);
	pthread_cond_destroy(&b->cv);
	return err;
}

static int image_size(struct rbd_target *r, uint64_t *size)
{
	return rbd_get_size(r->image, size);
}

/* Grow the image to at least end (a write past it would fail). */
static int grow_to(struct rbd_target *r, uint64_t end)
{
	uint64_t size;
	int err;

	if (image_size(r, &size) == 0 && size >= end)
		return 0;
	pthread_mutex_lock(&r->mu);
	err = image_size(r, &size);
	if (!err && size < end)
		err = rbd_resize(r->image, end);
	pthread_mutex_unlock(&r->mu);
	return err;
}

static void note_write(struct rbd_target *r)
{
	struct timespec now;

	clock_gettime(CLOCK_REALTIME, &now);
	pthread_mutex_lock(&r->mu);
	r->mtime = now;
	r->mtime_dirty = true;
	pthread_mutex_unlock(&r->mu);
}

static int rbd_pread_t(struct target *t, char *buf, size_t len, uint64_t off)
{
	struct rbd_target *r = R(t);
	struct batch b;
	uint64_t size;
	size_t n;
	int err = image_size(r, &size);

	if (err)
		return err;
	n = off >= size ? 0 : size - off < len ? (size_t)(size - off) : len;
	if (n < len)
		memset(buf + n, 0, len - n);
	if (!n)
		return 0;
	batch_init(&b);
	batch_range(&b, r->image, IO_READ, buf, n, off);
	return batch_wait(&b);
}

static int rbd_pwrite_t(struct target *t, const char *buf, size_t len, uint64_t off)
{
	struct rbd_target *r = R(t);
	struct batch b;
	int err = grow_to(r, off + len);

	if (err)
		return err;
	batch_init(&b);
	batch_range(&b, r->image, IO_WRITE, (char *)buf, len, off);
	err = batch_wait(&b);
	note_write(r);
	return err;
}

static int rbd_write_runs(struct target *t, const char *buf, const size_t (*runs)[2], size_t n,
			  uint64_t off)
{
	struct rbd_target *r = R(t);
	struct batch b;
	int err = grow_to(r, off + runs[n - 1][0] + runs[n - 1][1]);

	if (err)
		return err;
	batch_init(&b);
	for (size_t i = 0; i < n; i++)
		batch_range(&b, r->image, IO_WRITE, (char *)buf + runs[i][0], runs[i][1],
			    off + runs[i][0]);
	err = batch_wait(&b);
	note_write(r);
	return err;
}

static int rbd_punch(struct target *t, uint64_t off, uint64_t len)
{
	struct rbd_target *r = R(t);
	struct batch b;
	uint64_t size;
	int err = image_size(r, &size);

	if (err || off >= size)
		return err;
	if (off + len > size)
		len = size - off;
	batch_init(&b);
	batch_issue(&b, r->image, IO_ZERO, NULL, (size_t)len, off);
	err = batch_wait(&b);
	note_write(r);
	return err;
}

static int rbd_resize_t(struct target *t, uint64_t size)
{
	struct rbd_target *r = R(t);
	int err;

	pthread_mutex_lock(&r->mu);
	err = rbd_resize(r->image, size);
	pthread_mutex_unlock(&r->mu);
	note_write(r);
	return err;
}

static int rbd_fallocate(struct target *t, int mode, uint64_t off, uint64_t len)
{
	struct rbd_target *r = R(t);
	int known = FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE | FALLOC_FL_ZERO_RANGE;
	int err = 0;

	if (mode & ~known)
		return -EOPNOTSUPP;
	if (mode & (FALLOC_FL_PUNCH_HOLE | FALLOC_FL_ZERO_RANGE))
		err = rbd_punch(t, off, len);
	/* mode 0 and ZERO_RANGE set the size; an image has no preallocation
	 * (its objects are made when written) */
	if (!err && !(mode & FALLOC_FL_KEEP_SIZE))
		err = grow_to(r, off + len);
	return err;
}

static int rbd_size_t(struct target *t, uint64_t *size)
{
	return image_size(R(t), size);
}

static void fmt_time(char *buf, size_t len, const struct timespec *ts)
{
	snprintf(buf, len, "%lld.%09ld", (long long)ts->tv_sec, ts->tv_nsec);
}

static int rbd_sync_t(struct target *t)
{
	struct rbd_target *r = R(t);
	struct timespec mt;
	bool dirty;
	int err;

	pthread_mutex_lock(&r->mu);
	dirty = r->mtime_dirty;
	r->mtime_dirty = false;
	mt = r->mtime;
	pthread_mutex_unlock(&r->mu);
	if (dirty) {
		char v[40];

		fmt_time(v, sizeof(v), &mt);
		err = rbd_metadata_set(r->image, "relocfs.mtime", v);
		if (err)
			log_warnx("'%s': cannot record the mtime: %s", t->name, strerror(-err));
	}
	err = rbd_flush(r->image);
	return err;
}

/* rbd_diff_iterate2's callback: the first allocated extent at or after the
 * asked offset (SEEK_DATA) or the end of the allocated run from it
 * (SEEK_HOLE); stops the walk with 1 once it knows. */
struct seek_ctx {
	uint64_t off, pos;
	int whence;
	bool found;
};

static int seek_cb(uint64_t ofs, size_t len, int exists, void *arg)
{
	struct seek_ctx *s = arg;

	if (!exists)
		return 0;
	if (s->whence == SEEK_DATA) {
		if (ofs + len <= s->off)
			return 0;
		s->pos = ofs > s->off ? ofs : s->off;
		s->found = true;
		return 1;
	}
	if (ofs + len <= s->pos)
		return 0;
	if (ofs > s->pos) {
		s->found = true;	/* a hole at pos */
		return 1;
	}
	s->pos = ofs + len;
	return 0;
}

static int64_t rbd_seek_t(struct target *t, uint64_t off, int whence)
{
	struct rbd_target *r = R(t);
	struct seek_ctx s = { .off = off, .pos = off, .whence = whence };
	uint64_t size, flags = 0;
	int err = image_size(r, &size);

	if (err)
		return err;
	if (off >= size)
		return -ENXIO;
	if (!r->fast_diff || rbd_get_flags(r->image, &flags) < 0 ||
	    (flags & RBD_FLAG_FAST_DIFF_INVALID))
		return whence == SEEK_DATA ? (int64_t)off : (int64_t)size;
	err = rbd_diff_iterate2(r->image, NULL, off, size - off, 1, 1, seek_cb, &s);
	if (err < 0 && err != 1)
		return err;
	if (whence == SEEK_DATA)
		return s.found ? (int64_t)s.pos : -ENXIO;
	return (int64_t)(s.pos < size ? s.pos : size);
}

static void rbd_drop_cache(struct target *t, uint64_t off, uint64_t len)
{
	(void)t;	/* librbd's cache is flushed by rbd_flush and kept small */
}

static bool meta_get(struct rbd_target *r, const char *key, char *v, size_t len)
{
	size_t l = len;

	return rbd_metadata_get(r->image, key, v, &l) == 0;
}

static void parse_time(const char *v, struct timespec *ts)
{
	long long s = 0;
	long ns = 0;

	if (sscanf(v, "%lld.%ld", &s, &ns) >= 1) {
		ts->tv_sec = (time_t)s;
		ts->tv_nsec = ns;
	}
}

/* What the image's metadata says (at open: a getattr must not cost a
 * round trip to the cluster). */
static void meta_load(struct rbd_target *r)
{
	struct target_meta *m = &r->meta;
	char v[64];

	if (meta_get(r, "relocfs.mode", v, sizeof(v))) {
		m->mode = (mode_t)strtoul(v, NULL, 8);
		m->have_owner = true;
	}
	if (meta_get(r, "relocfs.uid", v, sizeof(v)))
		m->uid = (uid_t)strtoul(v, NULL, 10);
	if (meta_get(r, "relocfs.gid", v, sizeof(v)))
		m->gid = (gid_t)strtoul(v, NULL, 10);
	if (meta_get(r, "relocfs.atime", v, sizeof(v)))
		parse_time(v, &m->atime);
	if (meta_get(r, "relocfs.mtime", v, sizeof(v)))
		parse_time(v, &r->mtime);
}

static int rbd_get_meta(struct target *t, struct target_meta *m)
{
	struct rbd_target *r = R(t);
	int err = image_size(r, &m->size);

	if (err)
		return err;
	pthread_mutex_lock(&r->mu);
	m->mode = r->meta.mode;
	m->uid = r->meta.uid;
	m->gid = r->meta.gid;
	m->have_owner = r->meta.have_owner;
	m->atime = r->meta.atime;
	m->mtime = r->mtime;
	pthread_mutex_unlock(&r->mu);
	m->blocks = (m->size + 511) / 512;
	return 0;
}

static int rbd_set_meta(struct target *t, const struct target_meta *m, const char *path)
{
	struct rbd_target *r = R(t);
	char v[64];
	int err = 0, e;

	if (m->have_owner) {
		snprintf(v, sizeof(v), "%o", (unsigned)(m->mode & 07777));
		if ((e = rbd_metadata_set(r->image, "relocfs.mode", v)))
			err = e;
		snprintf(v, sizeof(v), "%u", (unsigned)m->uid);
		if ((e = rbd_metadata_set(r->image, "relocfs.uid", v)))
			err = e;
		snprintf(v, sizeof(v), "%u", (unsigned)m->gid);
		if ((e = rbd_metadata_set(r->image, "relocfs.gid", v)))
			err = e;
	}
	fmt_time(v, sizeof(v), &m->atime);
	if ((e = rbd_metadata_set(r->image, "relocfs.atime", v)))
		err = e;
	fmt_time(v, sizeof(v), &m->mtime);
	if ((e = rbd_metadata_set(r->image, "relocfs.mtime", v)))
		err = e;
	if (path && (e = rbd_metadata_set(r->image, "relocfs.path", path)))
		err = e;
	pthread_mutex_lock(&r->mu);
	r->meta = *m;
	r->mtime = m->mtime;
	r->mtime_dirty = false;
	pthread_mutex_unlock(&r->mu);
	return err;
}

static void rbd_close_t(struct target *t)
{
	struct rbd_target *r = R(t);

	if (r->mtime_dirty)
		rbd_sync_t(t);
	rbd_close(r->image);
	rados_ioctx_destroy(r->io);
	conn_put(r->c);
	pthread_mutex_destroy(&r->mu);
	free(t->name);
	free(r);
}

static const struct target_ops rbd_ops = {
	.pread = rbd_pread_t,
	.pwrite = rbd_pwrite_t,
	.write_runs = rbd_write_runs,
	.punch = rbd_punch,
	.fallocate = rbd_fallocate,
	.resize = rbd_resize_t,
	.size = rbd_size_t,
	.sync = rbd_sync_t,
	.seek = rbd_seek_t,
	.drop_cache = rbd_drop_cache,
	.get_meta = rbd_get_meta,
	.set_meta = rbd_set_meta,
	.close = rbd_close_t,
};

int target_rbd_open(struct target **out, const struct rbd_spec *sp, const char *image,
		    bool create, uint64_t size, char *err, size_t errlen)
{
	struct rbd_target *r = calloc(1, sizeof(*r));
	uint64_t features = 0;
	int e;

	if (!r) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	e = conn_get(sp, &r->c, err, errlen);
	if (e)
		goto fail;
	e = pool_open(r->c, sp, &r->io, err, errlen);
	if (e)
		goto fail_conn;
	if (create) {
		rbd_image_options_t opts;

		rbd_image_options_create(&opts);
		e = rbd_create4(r->io, image, size, opts);
		rbd_image_options_destroy(opts);
		if (e) {
			snprintf(err, errlen, e == -EEXIST ? "RBD image '%s/%s' exists already"
							   : "cannot create RBD image '%s/%s': %s",
				 sp->pool, image, strerror(-e));
			goto fail_io;
		}
	}
	e = rbd_open(r->io, image, &r->image, NULL);
	if (e) {
		snprintf(err, errlen, "cannot open RBD image '%s/%s': %s", sp->pool, image,
			 strerror(-e));
		goto fail_io;
	}
	r->fast_diff = rbd_get_features(r->image, &features) == 0 &&
		       (features & RBD_FEATURE_FAST_DIFF);
	pthread_mutex_init(&r->mu, NULL);
	clock_gettime(CLOCK_REALTIME, &r->mtime);
	if (!create)
		meta_load(r);
	r->t.ops = &rbd_ops;
	r->t.refs = 1;
	r->t.fd = -1;
	if (asprintf(&r->t.name, "%s/%s", sp->pool, image) < 0) {
		r->t.name = NULL;
		e = -ENOMEM;
		snprintf(err, errlen, "out of memory");
		rbd_close(r->image);
		goto fail_io;
	}
	*out = &r->t;
	return 0;
fail_io:
	rados_ioctx_destroy(r->io);
fail_conn:
	conn_put(r->c);
fail:
	free(r);
	return e;
}

int target_rbd_remove(const struct rbd_spec *sp, const char *image)
{
	char err[256];
	rados_ioctx_t io;
	struct conn *c;
	int e = conn_get(sp, &c, err, sizeof(err));

	if (e)
		return e;
	e = pool_open(c, sp, &io, err, sizeof(err));
	if (!e) {
		e = rbd_remove(io, image);
		rados_ioctx_destroy(io);
	}
	conn_put(c);
	return e;
}

int target_rbd_check(const struct rbd_spec *sp, const char *const *images, size_t n, uint64_t bytes,
	      char *err, size_t errlen)
{
	struct rados_cluster_stat_t cs;
	rados_ioctx_t io;
	struct conn *c;
	int e = conn_get(sp, &c, err, errlen);

	if (e)
		return e;
	e = pool_open(c, sp, &io, err, errlen);
	if (e)
		goto out;
	for (size_t i = 0; i < n && !e; i++) {
		rbd_image_t im;

		e = rbd_open_read_only(io, images[i], &im, NULL);
		if (e == 0) {
			rbd_close(im);
			snprintf(err, errlen, "RBD image '%s/%s' exists already", sp->pool, images[i]);
			e = -EEXIST;
		} else if (e == -ENOENT) {
			e = 0;
		} else {
			snprintf(err, errlen, "cannot look for RBD image '%s/%s': %s", sp->pool,
				 images[i], strerror(-e));
		}
	}
	if (!e && rados_cluster_stat(c->cluster, &cs) == 0 && cs.kb_avail * 1024 < bytes) {
		snprintf(err, errlen, "the Ceph cluster has %" PRIu64 " bytes free, the files need "
			 "%" PRIu64, (uint64_t)cs.kb_avail * 1024, bytes);
		e = -ENOSPC;
	}
	rados_ioctx_destroy(io);
out:
	conn_put(c);
	return e;
}
