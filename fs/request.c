/*
 * request: what each worker thread keeps for the request it serves: its
 * receive buffer (placed by loop.c), a buffer of its own for data that does
 * not fit there, and the open flags the reply should carry; and the
 * session's custom I/O, through which every reply passes (fs_writev adds
 * what libfuse 3.14 cannot express).
 */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include <linux/fuse.h>

#include "common/crashpoint.h"
#include "common/log.h"
#include "fs/fs_i.h"
#include "fs/fuse_uring_abi.h"
#include "fs/once.h"

__thread const struct fuse_buf *cur_buf;	/* the request being served */
__thread const struct fuse_buf *rx_buf;	/* the worker's receive buffer */
__thread char *rx_payload;		/* in it: page-aligned, MAX_IO bytes */
static __thread char *own_buf;			/* page-aligned, MAX_IO bytes */
/* open flags libfuse 3.14 cannot set, for the next open reply (fs_writev) */
static __thread uint32_t extra_open_flags;
/* replies not to be sent: a new worker replaying the connection's INIT */
static __thread bool swallow;
/* this thread serves the connection's INIT: its reply is negotiated here */
static __thread bool serving_init;

char *io_buf(void)
{
	if (!own_buf && posix_memalign((void **)&own_buf, IO_ALIGN, MAX_IO))
		return NULL;
	return own_buf;
}

void io_buf_release(void)
{
	free(own_buf);
	own_buf = NULL;
}

/*
 * Where a READ puts its data: the payload area of the worker's receive
 * buffer, which a read request leaves unused (libfuse has copied its
 * arguments out by then) and which sits on a huge page; a replayed request
 * is not in that buffer and uses the thread's own.
 */
char *read_buf(void)
{
	if (cur_buf == rx_buf)
		return rx_payload;
	return io_buf();
}

void reply_open_flags(uint32_t flags)
{
	extra_open_flags = flags;
}

const void *req_args(uint32_t opcode, size_t len)
{
	const struct fuse_in_header *in = cur_buf ? cur_buf->mem : NULL;

	if (!in || in->opcode != opcode || in->len < sizeof(*in) + len)
		return NULL;
	return in + 1;
}

/*
 * The INIT reply: what libfuse 3.14 cannot ask for, if the kernel offered
 * it: FUSE_HANDLE_KILLPRIV_V2 (relocfs clears setuid and setgid when the
 * kernel says so, names.c node_kill_suidgid, and the kernel no longer asks
 * for security.capability before every write: it marks a file that has
 * none, SB_NOSEC); and in flags2 (with FUSE_INIT_EXT, without which the
 * kernel ignores flags2) mmap of files opened with O_DIRECT (the kernel
 * keeps shared mappings coherent with direct I/O, flushing and
 * invalidating the range of each direct write), and FUSE over io_uring
 * when that transport is wanted.
 * Returns the transport that will serve.
 */
static enum fs_transport negotiate_init(struct fs *fs, struct iovec *iov, int count)
{
	const struct fuse_out_header *oh = iov[0].iov_base;
	bool uring = fs->cfg.transport != FS_TRANSPORT_DEV &&
		     (fs->init_flags2 & FUSE2_OVER_IO_URING);
	struct fuse_init_out *io;

	if (oh->error || count < 2 || iov[1].iov_len < sizeof(*io))
		return FS_TRANSPORT_DEV;
	io = iov[1].iov_base;
	io->flags |= FUSE_INIT_EXT;
	io->flags2 |= fs->init_flags2 & FUSE2_DIRECT_IO_ALLOW_MMAP;
	io->flags |= fs->init_flags & FUSE_HANDLE_KILLPRIV_V2;
	if (uring)
		io->flags2 |= FUSE2_OVER_IO_URING;
	else if (fs->cfg.transport == FS_TRANSPORT_URING)
		log_warnx("transport=uring: the kernel did not offer FUSE over io_uring in "
			  "INIT; serving over /dev/fuse");
	return uring ? FS_TRANSPORT_URING : FS_TRANSPORT_DEV;
}

/* The session's writev (fuse_session_custom_io): every reply passes here. */
static ssize_t fs_writev(int fd, struct iovec *iov, int count, void *userdata)
{
	uint32_t extra = extra_open_flags;
	struct fs *fs = userdata;
	enum fs_transport init = 0;
	ssize_t n;

	if (swallow) {
		n = 0;
		for (int i = 0; i < count; i++)
			n += (ssize_t)iov[i].iov_len;
		return n;
	}
	if (extra && count >= 2) {
		const struct fuse_out_header *oh = iov[0].iov_base;
		struct fuse_open_out *oo = NULL;

		if (oh->error == 0 && iov[1].iov_len == sizeof(struct fuse_open_out))
			oo = iov[1].iov_base;
		else if (oh->error == 0 &&
			 iov[1].iov_len == sizeof(struct fuse_entry_out) + sizeof(struct fuse_open_out))
			oo = (struct fuse_open_out *)((char *)iov[1].iov_base +
						      sizeof(struct fuse_entry_out));
		if (oo)
			oo->open_flags |= extra;
		extra_open_flags = 0;
	}
	if (serving_init) {
		serving_init = false;
		init = negotiate_init(fs, iov, count);
		/* before the kernel hears it: a worker after this one must know */
		__atomic_store_n(&fs->itab.r->transport, (uint64_t)init, __ATOMIC_RELEASE);
	} else if (fs->uring) {
		n = uring_reply(fs, iov, count);
		if (n != -ENOENT) {
			once_replied(((const struct fuse_out_header *)iov[0].iov_base)->unique);
			return n;
		}
	}
	n = writev(fd, iov, count);
	crashpoint("dev-reply-written");	/* answered, its record not closed */
	/* a reply the kernel refused is not resent either */
	once_replied(((const struct fuse_out_header *)iov[0].iov_base)->unique);
	if (init)
		transport_serves(fs, init, false);
	return n;
}

void transport_serves(struct fs *fs, enum fs_transport t, bool adopt)
{
	int err = 0;

	if (t == FS_TRANSPORT_URING) {
		err = uring_start(fs, adopt);
		if (err)
			log_warnx("cannot start the io_uring queues: %s; requests wait", strerror(-err));
	}
	atomic_store(&fs->transport, (int)t);
	if (!adopt && t == FS_TRANSPORT_URING && fs->cfg.poll_us)
		log_info("transport: FUSE over io_uring (one queue per CPU), polling %u us",
			 fs->cfg.poll_us);
	else if (!adopt)
		log_info("transport: %s", t == FS_TRANSPORT_URING
			 ? "FUSE over io_uring (one queue per CPU)" : "/dev/fuse");
	if (!adopt && t != FS_TRANSPORT_URING && fs->cfg.poll_us)
		log_warnx("-o poll=%u does nothing over /dev/fuse", fs->cfg.poll_us);
}

static ssize_t fs_read(int fd, void *buf, size_t len, void *userdata)
{
	(void)userdata;
	return read(fd, buf, len);
}

int fs_attach_io(struct fs *fs, int fuse_fd)
{
	static const struct fuse_custom_io io = { .writev = fs_writev, .read = fs_read };

	return fuse_session_custom_io(fs->se, &io, fuse_fd);
}

int replay_init(struct fs *fs)
{
	struct fs_region *r = fs->itab.r;
	struct fuse_buf fb;
	char *buf;

	if (!r->init_len || r->init_len > FS_INIT_MAX)
		return -ENOENT;
	/* libfuse frees nothing of it, but may write the arguments it parses */
	buf = aligned_alloc(IO_ALIGN, FS_INIT_MAX);
	if (!buf)
		return -ENOMEM;
	memcpy(buf, r->init, r->init_len);
	fb = (struct fuse_buf){ .size = r->init_len, .mem = buf };
	swallow = true;
	fuse_session_process_buf(fs->se, &fb);
	swallow = false;
	free(buf);
	return 0;
}

void save_init(struct fs *fs, const void *req, size_t len)
{
	struct fs_region *r = fs->itab.r;
	const struct fuse_in_header *in = req;
	const struct fuse_init_in *ii = (const void *)(in + 1);

	if (len >= sizeof(*in) + sizeof(*ii)) {
		fs->init_flags = ii->flags;
		if (ii->flags & FUSE_INIT_EXT)
			fs->init_flags2 = ii->flags2;
	}
	serving_init = true;

	if (r->init_len || len > FS_INIT_NEG_OFF)
		return;
	memcpy(r->init, req, len);
	__atomic_store_n(&r->init_len, len, __ATOMIC_RELEASE);
}
