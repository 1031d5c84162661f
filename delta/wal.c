/*
 * wal: see wal.h for the format and the guarantees.  This file knows
 * nothing of blocks or bitmaps: what a record means is the store's.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define XXH_STATIC_LINKING_ONLY	/* XXH3_state_t on the stack */
#include <xxhash.h>

#include "common/util.h"
#include "delta/wal.h"

static void put16(unsigned char *p, uint16_t v) { memcpy(p, &v, 2); }
static void put32(unsigned char *p, uint32_t v) { memcpy(p, &v, 4); }
static void put64(unsigned char *p, uint64_t v) { memcpy(p, &v, 8); }
static uint16_t get16(const unsigned char *p) { uint16_t v; memcpy(&v, p, 2); return v; }
static uint32_t get32(const unsigned char *p) { uint32_t v; memcpy(&v, p, 4); return v; }
static uint64_t get64(const unsigned char *p) { uint64_t v; memcpy(&v, p, 8); return v; }

static uint64_t rec_bytes(uint32_t plen)
{
	return ((uint64_t)WAL_HDR + plen + WAL_ALIGN - 1) / WAL_ALIGN * WAL_ALIGN;
}

/* layout: magic 0, type 4, reserved 6, plen 8, reserved 12, seq 16, off 24,
 * len 32, size 40, limit 48, csum 56 (XXH3 of bytes 0..55 and the payload) */
void wr_encode(const struct wr *r, uint64_t seq, const struct iovec *iov, int iovcnt,
	       unsigned char out[WAL_HDR])
{
	XXH3_state_t st;
	uint32_t plen = 0;

	for (int i = 0; i < iovcnt; i++)
		plen += (uint32_t)iov[i].iov_len;
	memset(out, 0, WAL_HDR);
	put32(out, WAL_MAGIC);
	put16(out + 4, r->type);
	put32(out + 8, plen);
	put64(out + 16, seq);
	put64(out + 24, r->off);
	put64(out + 32, r->len);
	put64(out + 40, r->size);
	put64(out + 48, r->limit);
	XXH3_64bits_reset(&st);
	XXH3_64bits_update(&st, out, 56);
	for (int i = 0; i < iovcnt; i++)
		XXH3_64bits_update(&st, iov[i].iov_base, iov[i].iov_len);
	put64(out + 56, XXH3_64bits_digest(&st));
}

int wr_decode(const unsigned char in[WAL_HDR], uint64_t seq, uint64_t ring, struct wr *r,
	      uint32_t *plen)
{
	if (get32(in) != WAL_MAGIC || get64(in + 16) != seq)
		return -EINVAL;
	r->type = get16(in + 4);
	*plen = get32(in + 8);
	if (r->type == 0 || r->type >= WR_TYPE_MAX || *plen > WAL_MAX_PAYLOAD ||
	    rec_bytes(*plen) > ring)
		return -EINVAL;
	r->off = get64(in + 24);
	r->len = get64(in + 32);
	r->size = get64(in + 40);
	r->limit = get64(in + 48);
	return 0;
}

bool wr_check(const unsigned char hdr[WAL_HDR], const void *payload, uint32_t plen)
{
	XXH3_state_t st;

	XXH3_64bits_reset(&st);
	XXH3_64bits_update(&st, hdr, 56);
	if (plen)
		XXH3_64bits_update(&st, payload, plen);
	return XXH3_64bits_digest(&st) == get64(hdr + 56);
}

uint64_t wal_ring_for(uint64_t image_bytes, uint64_t max_ring)
{
	uint64_t r = (image_bytes / 8 + (1u << 20) - 1) >> 20 << 20;

	if (max_ring < WAL_MIN_RING)
		max_ring = WAL_MIN_RING;
	return r < WAL_MIN_RING ? WAL_MIN_RING : r > max_ring ? max_ring : r;
}

static void wal_init(struct wal *w, int fd, uint64_t ring)
{
	memset(w, 0, sizeof(*w));
	w->fd = fd;
	w->ring = ring;
	pthread_mutex_init(&w->append_mu, NULL);
	pthread_cond_init(&w->space, NULL);
	pthread_mutex_init(&w->sync_mu, NULL);
	pthread_cond_init(&w->synced_cv, NULL);
}

int wal_create(int dirfd, const char *name, uint64_t ring, struct wal *w)
{
	const size_t chunk = 1u << 20;
	int fd = openat(dirfd, name, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	char *zeros;
	int err = 0;

	if (fd == -1)
		return -errno;
	ring = ring / WAL_ALIGN * WAL_ALIGN;
	zeros = calloc(1, chunk);
	if (!zeros) {
		err = -ENOMEM;
		goto fail;
	}
	/* one extent where the filesystem can, then written: see wal.h */
	if (fallocate(fd, 0, 0, (off_t)ring) == -1 && errno != EOPNOTSUPP) {
		err = -errno;
		goto fail;
	}
	for (uint64_t off = 0; !err && off < ring; off += chunk)
		err = pwrite_full(fd, zeros, ring - off < chunk ? (size_t)(ring - off) : chunk,
				  (off_t)off);
	if (!err && (fdatasync(fd) == -1 || fsync(dirfd) == -1))
		err = -errno;
	if (err)
		goto fail;
	free(zeros);
	wal_init(w, fd, ring);
	return 0;
fail:
	free(zeros);
	close(fd);
	unlinkat(dirfd, name, 0);
	return err;
}

int wal_open(int dirfd, const char *name, struct wal *w)
{
	int fd = openat(dirfd, name, O_RDWR | O_CLOEXEC);
	struct stat st;

	if (fd == -1)
		return -errno;
	if (fstat(fd, &st) == -1) {
		int err = -errno;

		close(fd);
		return err;
	}
	if (st.st_size < 4 * WAL_HDR) {
		close(fd);
		return -EINVAL;
	}
	wal_init(w, fd, (uint64_t)st.st_size / WAL_ALIGN * WAL_ALIGN);
	return 0;
}

void wal_close(struct wal *w)
{
	if (w->fd != -1)
		close(w->fd);
	w->fd = -1;
	pthread_mutex_destroy(&w->append_mu);
	pthread_cond_destroy(&w->space);
	pthread_mutex_destroy(&w->sync_mu);
	pthread_cond_destroy(&w->synced_cv);
}

int wal_replay(struct wal *w, uint64_t seq, uint64_t pos,
	       int (*apply)(void *arg, uint64_t seq, const struct wr *r, const char *payload),
	       void *arg, uint64_t *count)
{
	unsigned char hdr[WAL_HDR];
	char *buf = malloc(WAL_MAX_PAYLOAD);
	uint64_t seq0 = seq, pos0 = pos, n = 0;
	int err = 0;

	if (!buf)
		return -ENOMEM;
	if (pos >= w->ring || pos % WAL_ALIGN)
		pos = 0;	/* not a place a record can start: an empty log */
	for (;;) {
		struct wr r;
		uint32_t plen;

		if (w->ring - pos < WAL_HDR)
			pos = 0;
		err = pread_full(w->fd, (char *)hdr, WAL_HDR, (off_t)pos);
		if (err)
			break;
		if (wr_decode(hdr, seq, w->ring, &r, &plen))
			break;
		if (pos + rec_bytes(plen) > w->ring)
			break;
		if (plen) {
			err = pread_full(w->fd, buf, plen, (off_t)(pos + WAL_HDR));
			if (err)
				break;
		}
		if (!wr_check(hdr, buf, plen))
			break;
		if (r.type == WR_PAD) {
			pos = 0;
			seq++;
			continue;
		}
		err = apply(arg, seq, &r, plen ? buf : NULL);
		if (err)
			break;
		pos += rec_bytes(plen);
		seq++;
		n++;
	}
	free(buf);
	if (pos >= w->ring)
		pos = 0;
	w->tail_seq = seq0;
	w->tail_pos = pos0 < w->ring ? pos0 : 0;
	w->head_seq = seq;
	w->head_pos = pos;
	w->written_seq = w->synced_seq = seq;
	w->released_seq = seq0;
	if (count)
		*count = n;
	return err;
}

uint64_t wal_next_generation(const struct wal *w)
{
	return w->head_seq + w->ring / WAL_ALIGN + 1;
}

void wal_restart(struct wal *w, uint64_t seq)
{
	pthread_mutex_lock(&w->append_mu);
	w->head_seq = w->tail_seq = seq;
	w->tail_pos = w->head_pos;
	pthread_mutex_unlock(&w->append_mu);
	pthread_mutex_lock(&w->sync_mu);
	w->written_seq = w->synced_seq = w->released_seq = seq;
	pthread_mutex_unlock(&w->sync_mu);
}

void wal_continue(struct wal *w)
{
	pthread_mutex_lock(&w->sync_mu);
	w->written_seq = w->head_seq;
	w->synced_seq = w->released_seq;
	pthread_mutex_unlock(&w->sync_mu);
}

uint64_t wal_used(const struct wal *w)
{
	uint64_t u;

	if (w->head_seq == w->tail_seq)
		return 0;
	u = (w->head_pos + w->ring - w->tail_pos) % w->ring;
	return u ? u : w->ring;
}

/* Where a record of rs bytes goes, and the bytes skipped before it. */
static uint64_t place(const struct wal *w, uint64_t rs, uint64_t *skip)
{
	uint64_t left = w->ring - w->head_pos;

	*skip = left < WAL_HDR || left < rs ? left : 0;
	return *skip ? 0 : w->head_pos;
}

int wal_begin(struct wal *w, uint32_t plen)
{
	uint64_t rs = rec_bytes(plen), skip;

	if (rs + WAL_ALIGN > w->ring / 2)
		return -EFBIG;	/* never, for the store: its records are far smaller */
	pthread_mutex_lock(&w->append_mu);
	for (;;) {
		place(w, rs, &skip);
		/* a gap of WAL_ALIGN keeps the head off the tail */
		if (wal_used(w) + skip + rs + WAL_ALIGN <= w->ring)
			return 0;
		if (w->broken) {
			int err = w->broken;

			pthread_mutex_unlock(&w->append_mu);
			return err;
		}
		w->waits++;
		if (w->need_room)
			w->need_room(w->need_room_arg);
		pthread_cond_wait(&w->space, &w->append_mu);
	}
}

int wal_write(struct wal *w, const struct wr *r, const struct iovec *iov, int iovcnt,
	      uint64_t *seq)
{
	static const char zeros[WAL_ALIGN];
	unsigned char hdr[WAL_HDR], pad[WAL_HDR];
	struct iovec v[8];
	uint32_t plen = 0;
	uint64_t rs, skip, pos, seq0 = w->head_seq;
	ssize_t n;
	int nv = 0;

	if (iovcnt > 6)
		return -EINVAL;
	for (int i = 0; i < iovcnt; i++)
		plen += (uint32_t)iov[i].iov_len;
	if (plen > WAL_MAX_PAYLOAD)
		return -EINVAL;
	rs = rec_bytes(plen);
	pos = place(w, rs, &skip);
	if (skip >= WAL_HDR) {
		struct wr p = { .type = WR_PAD };

		wr_encode(&p, w->head_seq, NULL, 0, pad);
		if (pwrite(w->fd, pad, WAL_HDR, (off_t)w->head_pos) != WAL_HDR) {
			int err = errno ? -errno : -EIO;

			pthread_mutex_lock(&w->sync_mu);
			if (!w->sync_err)
				w->sync_err = err;
			pthread_mutex_unlock(&w->sync_mu);
			return err;
		}
		w->head_seq++;
	}
	wr_encode(r, w->head_seq, iov, iovcnt, hdr);
	v[nv++] = (struct iovec){ .iov_base = hdr, .iov_len = WAL_HDR };
	for (int i = 0; i < iovcnt; i++)
		v[nv++] = iov[i];
	if (rs > WAL_HDR + plen)
		v[nv++] = (struct iovec){ .iov_base = (void *)zeros, .iov_len = rs - WAL_HDR - plen };
	n = pwritev(w->fd, v, nv, (off_t)pos);
	if (n != (ssize_t)rs) {
		int err = n < 0 ? -errno : -EIO;

		w->head_seq = seq0;	/* the PAD, if any, is followed by nothing valid */
		/* the change is not logged: no later flush may say it is durable */
		pthread_mutex_lock(&w->sync_mu);
		if (!w->sync_err)
			w->sync_err = err;
		pthread_mutex_unlock(&w->sync_mu);
		return err;
	}
	*seq = w->head_seq++;
	w->head_pos = pos + rs;
	if (w->head_pos >= w->ring)
		w->head_pos = 0;
	return 0;
}

void wal_end(struct wal *w)
{
	pthread_mutex_lock(&w->sync_mu);
	w->written_seq = w->head_seq;
	pthread_mutex_unlock(&w->sync_mu);
	pthread_mutex_unlock(&w->append_mu);
}

uint64_t wal_head(struct wal *w)
{
	uint64_t s;

	pthread_mutex_lock(&w->sync_mu);
	s = w->written_seq;
	pthread_mutex_unlock(&w->sync_mu);
	return s;
}

int wal_sync(struct wal *w, uint64_t upto)
{
	int err = 0;

	pthread_mutex_lock(&w->sync_mu);
	for (;;) {
		uint64_t target;
		int r;

		if (w->sync_err) {
			err = w->sync_err;
			break;
		}
		if (w->synced_seq >= upto)
			break;
		if (w->syncing) {
			/* a sync is running; it may have started before our
			 * records were written: wait, then look again */
			pthread_cond_wait(&w->synced_cv, &w->sync_mu);
			continue;
		}
		target = w->written_seq;
		w->syncing = true;
		pthread_mutex_unlock(&w->sync_mu);
		r = fdatasync(w->fd) == -1 ? -errno : 0;
		pthread_mutex_lock(&w->sync_mu);
		w->syncing = false;
		w->syncs++;
		if (r)
			w->sync_err = r;
		else if (target > w->synced_seq)
			w->synced_seq = target;
		pthread_cond_broadcast(&w->synced_cv);
	}
	pthread_mutex_unlock(&w->sync_mu);
	return err;
}

int wal_sync_all(struct wal *w)
{
	return wal_sync(w, wal_head(w));
}

uint64_t wal_durable_seq(struct wal *w)
{
	uint64_t s;

	pthread_mutex_lock(&w->sync_mu);
	s = w->synced_seq > w->released_seq ? w->synced_seq : w->released_seq;
	pthread_mutex_unlock(&w->sync_mu);
	return s;
}

void wal_release(struct wal *w, uint64_t seq, uint64_t pos)
{
	pthread_mutex_lock(&w->append_mu);
	if (seq > w->tail_seq) {
		w->tail_seq = seq;
		w->tail_pos = pos;
	}
	pthread_cond_broadcast(&w->space);
	pthread_mutex_unlock(&w->append_mu);
	pthread_mutex_lock(&w->sync_mu);
	if (seq > w->released_seq)
		w->released_seq = seq;
	pthread_mutex_unlock(&w->sync_mu);
}

void wal_break(struct wal *w, int err)
{
	pthread_mutex_lock(&w->append_mu);
	if (!w->broken)
		w->broken = err;
	pthread_cond_broadcast(&w->space);
	pthread_mutex_unlock(&w->append_mu);
}
