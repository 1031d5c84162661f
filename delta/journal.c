/*
 * journal: see journal.h for the format and the guarantees.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <xxhash.h>

#include "delta/journal.h"
#include "common/log.h"

static void put32(unsigned char *p, uint32_t v) { memcpy(p, &v, 4); }
static void put16(unsigned char *p, uint16_t v) { memcpy(p, &v, 2); }
static void put64(unsigned char *p, uint64_t v) { memcpy(p, &v, 8); }
static uint32_t get32(const unsigned char *p) { uint32_t v; memcpy(&v, p, 4); return v; }
static uint16_t get16(const unsigned char *p) { uint16_t v; memcpy(&v, p, 2); return v; }
static uint64_t get64(const unsigned char *p) { uint64_t v; memcpy(&v, p, 8); return v; }

/* layout: magic 0, type 4, reserved 6, seq 8, a 16, b 24, reserved 32, csum 40 */
void jr_encode(const struct jr *r, uint64_t seq, unsigned char out[JR_BYTES])
{
	memset(out, 0, JR_BYTES);
	put32(out, JR_MAGIC);
	put16(out + 4, r->type);
	put64(out + 8, seq);
	put64(out + 16, r->a);
	put64(out + 24, r->b);
	put64(out + 40, XXH3_64bits(out, 40));
}

int jr_decode(const unsigned char in[JR_BYTES], uint64_t seq, struct jr *r)
{
	if (get32(in) != JR_MAGIC || get64(in + 40) != XXH3_64bits(in, 40))
		return -EINVAL;
	if (get64(in + 8) != seq)
		return -EINVAL;
	r->type = get16(in + 4);
	if (r->type == 0 || r->type >= JR_TYPE_MAX)
		return -EINVAL;
	r->a = get64(in + 16);
	r->b = get64(in + 24);
	return 0;
}

static void journal_init(struct journal *j, int fd)
{
	memset(j, 0, sizeof(*j));
	j->fd = fd;
	pthread_mutex_init(&j->lock, NULL);
	pthread_mutex_init(&j->write_lock, NULL);
}

int journal_create(int dirfd, const char *name, struct journal *j)
{
	int fd = openat(dirfd, name, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);

	if (fd == -1)
		return -errno;
	if (fsync(fd) == -1 || fsync(dirfd) == -1) {
		int err = -errno;

		close(fd);
		return err;
	}
	journal_init(j, fd);
	return 0;
}

int journal_open(int dirfd, const char *name, struct journal *j,
		 int (*apply)(void *arg, const struct jr *r), void *arg)
{
	unsigned char buf[JR_BYTES * 256];
	int fd = openat(dirfd, name, O_RDWR | O_CLOEXEC);
	off_t off = 0;
	uint64_t seq = 0;
	struct stat st;
	int err = 0;

	if (fd == -1)
		return -errno;
	journal_init(j, fd);
	for (;;) {
		ssize_t n = pread(fd, buf, sizeof(buf), off);
		ssize_t i;

		if (n < 0) {
			err = -errno;
			goto fail;
		}
		for (i = 0; i + JR_BYTES <= n; i += JR_BYTES) {
			struct jr r;

			if (jr_decode(buf + i, seq, &r))
				goto end;
			err = apply(arg, &r);
			if (err)
				goto fail;
			seq++;
			off += JR_BYTES;
		}
		if (n < (ssize_t)sizeof(buf))
			break;
	}
end:
	/* cut a torn or stale tail so it can never follow a new record */
	if (fstat(fd, &st) == -1) {
		err = -errno;
		goto fail;
	}
	if (st.st_size > off) {
		if (ftruncate(fd, off) == -1 || fsync(fd) == -1) {
			err = -errno;
			goto fail;
		}
	}
	j->seq = seq;
	j->off = off;
	return 0;
fail:
	close(fd);
	j->fd = -1;
	return err;
}

void journal_close(struct journal *j)
{
	if (j->fd != -1)
		close(j->fd);
	j->fd = -1;
	free(j->pending);
	j->pending = NULL;
	j->npending = j->cap = 0;
	pthread_mutex_destroy(&j->lock);
	pthread_mutex_destroy(&j->write_lock);
}

int journal_add(struct journal *j, uint16_t type, uint64_t a, uint64_t b)
{
	int err = 0;

	pthread_mutex_lock(&j->lock);
	if (j->npending == j->cap) {
		size_t ncap = j->cap ? j->cap * 2 : 64;
		struct jr *p = realloc(j->pending, ncap * sizeof(*p));

		if (!p) {
			err = -ENOMEM;
			goto out;
		}
		j->pending = p;
		j->cap = ncap;
	}
	j->pending[j->npending++] = (struct jr){ .type = type, .a = a, .b = b };
out:
	pthread_mutex_unlock(&j->lock);
	return err;
}

size_t journal_pending(struct journal *j)
{
	size_t n;

	pthread_mutex_lock(&j->lock);
	n = j->npending;
	pthread_mutex_unlock(&j->lock);
	return n;
}

/* caller holds write_lock */
static int journal_write_locked(struct journal *j, const struct jr *recs, size_t n)
{
	unsigned char buf[JR_BYTES * 128];
	uint64_t seq0 = j->seq;
	off_t off0 = j->off;
	size_t done = 0;
	int err = 0;

	while (done < n) {
		size_t k = n - done < 128 ? n - done : 128;
		ssize_t w;

		for (size_t i = 0; i < k; i++)
			jr_encode(&recs[done + i], j->seq + i, buf + i * JR_BYTES);
		w = pwrite(j->fd, buf, k * JR_BYTES, j->off);
		if (w != (ssize_t)(k * JR_BYTES)) {
			err = w < 0 ? -errno : -EIO;
			goto fail;
		}
		j->seq += k;
		j->off += (off_t)(k * JR_BYTES);
		done += k;
	}
	if (n && fdatasync(j->fd) == -1) {
		err = -errno;
		goto fail;
	}
	return 0;
fail:
	/* nothing of this batch counts: a retry rewrites the same slots, and
	 * what was written here must not follow a shorter retry */
	j->seq = seq0;
	j->off = off0;
	if (ftruncate(j->fd, off0) == 0)
		fdatasync(j->fd);
	return err;
}

int journal_write(struct journal *j, const struct jr *recs, size_t n)
{
	int err;

	pthread_mutex_lock(&j->write_lock);
	err = journal_write_locked(j, recs, n);
	pthread_mutex_unlock(&j->write_lock);
	return err;
}

int journal_commit(struct journal *j, int (*sync_data)(void *arg), void *arg)
{
	struct jr *recs;
	size_t n;
	int err;

	pthread_mutex_lock(&j->write_lock);
	if (j->broken) {
		pthread_mutex_unlock(&j->write_lock);
		return -EIO;
	}
	pthread_mutex_lock(&j->lock);
	recs = j->pending;
	n = j->npending;
	j->pending = NULL;
	j->npending = j->cap = 0;
	pthread_mutex_unlock(&j->lock);

	err = sync_data ? sync_data(arg) : 0;
	if (!err)
		err = journal_write_locked(j, recs, n);
	if (!err && n && j->on_durable)
		j->on_durable(j->on_durable_arg, recs, n);
	if (err && n) {
		/* put them back in front: a later commit may still succeed */
		pthread_mutex_lock(&j->lock);
		if (j->npending == 0) {
			free(j->pending);
			j->pending = recs;
			j->npending = j->cap = n;
			recs = NULL;
		} else {
			struct jr *merged = realloc(recs, (n + j->npending) * sizeof(*merged));

			if (merged) {
				memcpy(merged + n, j->pending, j->npending * sizeof(*merged));
				free(j->pending);
				j->pending = merged;
				j->npending += n;
				j->cap = j->npending;
				recs = NULL;
			} else {
				/* records are lost: no later flush may succeed */
				log_warnx("journal: out of memory keeping %zu records", n);
				j->broken = true;
			}
		}
		pthread_mutex_unlock(&j->lock);
	}
	free(recs);
	pthread_mutex_unlock(&j->write_lock);
	return err;
}
