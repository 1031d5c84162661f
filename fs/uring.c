/*
 * uring: FUSE over io_uring (Linux 6.14+), underneath libfuse's request
 * processing, the way loop.c serves /dev/fuse.
 *
 * The kernel makes one queue per possible CPU and puts a request on the
 * queue of the CPU that issued it.  Each queue is served by a ring thread
 * with an io_uring of its own and entries (a header buffer and a 1 MiB
 * payload buffer each) registered with the kernel: as many as -o threads,
 * within a memory budget, at most ENTS_OWN a thread.
 *
 * The ring thread serves the passthrough's READ, WRITE and FSYNC itself,
 * and queues their backing I/O on its own ring (fs_i.h, io_async): each
 * request's I/O goes to the disk as soon as it is read (a batch sent as
 * one reached a virtio disk as a burst and took longer there), the thread
 * takes the next request without waiting for it, and the replies go out
 * with the commands that fetch the next requests.  Everything else (a
 * lookup, a request through the delta store, a large direct read) could
 * keep the thread, and every entry of its CPU with it, waiting, so it goes
 * to the helpers: threads, one per entry, that serve a request from its
 * entry and reply into it, and the ring thread commits.  At queue depth 16
 * from one CPU, one thread of 16 entries served 4 KiB direct reads at 1.5x
 * the rate of four threads of 4 and 2x that of sixteen threads of one
 * (each of those waited in pread for its own request), which is what this
 * shape is for (docs/performance.md).
 *
 * A request arrives as a completion; the thread makes it contiguous again
 * (the kernel splits it into fuse_in_header, the opcode's header and the
 * payload; the first two are copied into the page before the payload, so
 * a WRITE's data stays page-aligned, as in loop.c), hands it to libfuse,
 * and the reply (request.c's writev passes it here) goes into the entry's
 * buffers and back to the kernel with the command that fetches the next
 * request.  INIT, FORGET, INTERRUPT, notifications and resent requests
 * still use /dev/fuse (loop.c).
 *
 * Surviving the worker
 * --------------------
 * The entries' buffers live in the shared region, mapped at the same
 * address in every worker, and each entry's state is recorded there
 * (table.h: struct ring_slot), so that a request an entry held when its
 * worker died is finished by the next worker: re-served from the buffers
 * (once.h makes that exactly-once, as for a resend) or, if its reply was
 * complete, committed.  The kernel finds the request by its commit id from
 * any ring.  Two kernel behaviours shape the rest:
 *
 *   - A request handed to an idle entry is copied into it by task work of
 *     the thread that submitted the entry's command.  If that thread has
 *     exited, the copy is cancelled and the request fails with ECANCELED:
 *     an idle entry of a dead thread is a trap for the next request of its
 *     CPU.  At a thread's exit (kill -9 included), before the thread is
 *     marked exiting, the kernel cancels the thread's idle entries and runs
 *     the task work queued to it, looping for as long as the thread has a
 *     "tracked" io_uring request in flight.  Each ring thread keeps one
 *     for its whole life, a poll on another ring (the anchor) that never
 *     fires, so that the kernel does this at all; and each entry's command
 *     is linked to a futex wait (a tracked request from its submission
 *     that ends the moment the command completes), so that the kernel
 *     loops until every command of the thread has completed: a request the
 *     kernel was handing to an entry as the thread died lands in it (and
 *     is recorded there for the next worker) instead of failing.  A request
 *     either lands in an entry or waits in the kernel's queue
 *     (docs/uring-takeover.md).
 *   - The copy into an entry runs in a thread that may be being killed,
 *     and then cannot fault a page in: a worker maps every page of the
 *     entries it arms, adopted ones included, before arming them.
 *   - Requests that wait in a queue are pulled only when an entry of that
 *     queue commits a reply, never by a new registration: a new worker
 *     sends one request from each CPU itself (from a process of its own,
 *     which the worker's death could not leave waiting) to get them going.
 *
 * The reply overwrites the buffers the request came in, so a small reply is
 * first staged in the entry's shadow (the request stays intact until the
 * state says REPLIED), and a large one (READ data, directory listings) is
 * only for requests whose payload is small enough to be saved first.
 *
 * Threads: uring_start and uring_stop from the loop's threads; uring_reply
 * from any thread that replies (a helper, or the gate's replay thread for a
 * parked request: the entry's own thread is woken to commit it, so that
 * every command of an entry comes from the thread that retires it).
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/statfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include <liburing.h>

#include "common/clock.h"
#include "common/crashpoint.h"
#include "common/log.h"
#include "fs/fs_i.h"
#include "fs/fuse_uring_abi.h"
#include "fs/once.h"

/* where things are in an entry's buffers (table.h: FS_RING_BYTES) */
#define ENT_IOV		512		/* struct iovec[2] for REGISTER */
#define ENT_SHADOW	1024		/* a small reply, staged */
#define SHADOW_MAX	2560
#define ENT_SAVE	(ENT_SHADOW + SHADOW_MAX)	/* a small request payload */
#define SAVE_MAX	512
#define ENT_HEADROOM	4096
#define ENT_PAYLOAD	8192

#define ENTS_PER_QUEUE_MAX	16
#define RING_ENTS_BUDGET	32	/* entries of all queues, where CPUs are few */
#define ENTS_OWN		16	/* a thread's own entries (see the top) */
#define ENTS_PER_THREAD_MAX	32	/* its own, and entries adopted */
#define BACKLOG_MAX		(ENTS_PER_THREAD_MAX + 4)
#define RING_STACK		(8u << 20)

/* completion tags: an entry's slot number, or one of these */
#define TAG_WAKE	(1ull << 32)
#define TAG_ANCHOR	(2ull << 32)
#define TAG_LINK	(3ull << 32)
#define TAG_IO		(4ull << 32)	/* | the slot of the entry whose I/O it is */

/* io_uring's futex wait (Linux 6.7+; liburing 2.3 and Debian 12's headers
 * predate it), in the ABI of include/uapi/linux/io_uring.h and futex.h */
#define OP_FUTEX_WAIT		51
#define FUTEX2_SIZE_U32_	0x02
#define FUTEX2_PRIVATE_		128
#define FUTEX_MATCH_ANY_	0xffffffffu

struct rthread;

struct rent {
	unsigned slot;
	struct rthread *t;
	atomic_bool need_commit;	/* the reply is in: commit it */
	bool adopted;			/* left by the last worker: finish first */
	bool dead;			/* the kernel ended the entry */
	bool io_busy;			/* io holds the request's queued I/O */
	struct aio io;
};

struct rthread {
	struct uring *u;
	unsigned idx, qid;
	pthread_t tid;
	bool started;
	struct io_uring ring;
	int wake_fd;
	uint64_t wake_val;
	uint32_t link_word;		/* 0 for ever: the linked waits end at once */
	struct rent *ents[ENTS_PER_THREAD_MAX];
	unsigned nents;
	unsigned nio;			/* entries with I/O queued */
	atomic_uint noff;		/* entries whose request a helper serves */
	/* completions io_drain took off the ring that are not I/O: the
	 * thread's loop handles them next (one command per entry, the wake
	 * and the anchor at most) */
	struct { uint64_t tag; int res; } backlog[BACKLOG_MAX];
	unsigned back_head, back_len;
};

struct uring {
	struct fs *fs;
	int fuse_fd;
	int anchor_fd;			/* a ring the threads poll (see the top) */
	long poll_ns;			/* -o poll, 0: sleep at once */
	struct io_uring anchor;
	unsigned nq, per_q, nthreads;	/* per_q: threads of a queue */
	unsigned ents_q;		/* entries of a queue, at most */
	struct rthread *threads;
	struct rent ents[FS_RING_MAX];	/* by slot */
	atomic_bool quiesce;		/* leave new requests for the next worker */
	atomic_bool ending;		/* threads end */
	atomic_uint registered;		/* threads whose entries are in the kernel */
	/* the helpers and their queue (see the top) */
	pthread_t *helpers;
	unsigned nhelpers, helpers_started;
	atomic_uint helpers_up;
	pthread_mutex_t hmu;
	pthread_cond_t hcv;
	struct rent *hq[FS_RING_MAX];
	unsigned hq_head, hq_len;
	bool hstop;
	void *stacks;			/* the threads' stacks (see uring_start) */
};

static __thread struct rent *cur_ent;	/* the entry whose request this thread serves */
static __thread struct rthread *cur_t;	/* the ring thread this is */

static char *ent_base(struct fs_region *r, unsigned slot)
{
	return (char *)r->ringbuf[slot];
}

static struct fuse_uring_req_header *ent_hdr(struct fs_region *r, unsigned slot)
{
	return (struct fuse_uring_req_header *)ent_base(r, slot);
}

static char *ent_payload(struct fs_region *r, unsigned slot)
{
	return ent_base(r, slot) + ENT_PAYLOAD;
}

unsigned uring_queues(void)
{
	FILE *f = fopen("/sys/devices/system/cpu/possible", "r");
	unsigned a = 0, b = 0, max = 0;
	char sep;

	if (f) {
		/* "0-3", "0", "0-3,8-11" */
		while (fscanf(f, "%u", &a) == 1) {
			b = a;
			if (fscanf(f, "%c", &sep) == 1 && sep == '-' && fscanf(f, "%u", &b) == 1)
				(void)fscanf(f, "%c", &sep);
			if (b + 1 > max)
				max = b + 1;
		}
		fclose(f);
	}
	if (!max) {
		long n = sysconf(_SC_NPROCESSORS_CONF);

		max = n > 0 ? (unsigned)n : 1;
	}
	return max;
}

int fs_transport_check(enum fs_transport t, char *why, size_t len)
{
	struct io_uring ring;
	char c = 'N';
	int fd, r;

	if (t == FS_TRANSPORT_DEV)
		return 0;
	fd = open("/sys/module/fuse/parameters/enable_uring", O_RDONLY | O_CLOEXEC);
	if (fd == -1) {
		snprintf(why, len, "this kernel has no FUSE over io_uring "
			 "(/sys/module/fuse/parameters/enable_uring is missing; Linux 6.14+ "
			 "with CONFIG_FUSE_IO_URING)");
		return -ENOTSUP;
	}
	r = (int)read(fd, &c, 1);
	close(fd);
	if (r != 1 || (c != 'Y' && c != '1')) {
		snprintf(why, len, "FUSE over io_uring is off (echo 1 > "
			 "/sys/module/fuse/parameters/enable_uring)");
		return -ENOTSUP;
	}
	r = io_uring_queue_init(4, &ring, IORING_SETUP_SQE128);
	if (r < 0) {
		snprintf(why, len, "io_uring rings cannot be made here: %s", strerror(-r));
		return -ENOTSUP;
	}
	io_uring_queue_exit(&ring);
	return 0;
}

const char *fs_transport_name(struct fs *fs)
{
	switch (atomic_load(&fs->transport)) {
	case FS_TRANSPORT_URING:
		return "uring";
	case FS_TRANSPORT_DEV:
		return "dev";
	default:
		return "";
	}
}

/* ---- commands ---------------------------------------------------------------- */

static struct io_uring_sqe *get_sqe(struct rthread *t)
{
	struct io_uring_sqe *sqe;

	/* the ring has room for every command a thread has out at once; a
	 * full SQ only means some are prepared and not yet submitted */
	while (!(sqe = io_uring_get_sqe(&t->ring)))
		io_uring_submit(&t->ring);
	return sqe;
}

/*
 * The futex wait linked to an entry's command (see the top): submitted with
 * the command, it counts as in flight until the command completes, and then
 * ends at once (the word never holds the value it waits for).  If the
 * command fails, the kernel cancels it.  Its completion is ignored.
 */
static void prep_link(struct rthread *t)
{
	struct io_uring_sqe *sqe = get_sqe(t);

	memset(sqe, 0, 128);
	sqe->opcode = OP_FUTEX_WAIT;
	sqe->fd = FUTEX2_SIZE_U32_ | FUTEX2_PRIVATE_;
	sqe->addr = (uint64_t)(uintptr_t)&t->link_word;
	sqe->addr2 = 1;			/* the value waited for */
	sqe->addr3 = FUTEX_MATCH_ANY_;
	io_uring_sqe_set_data64(sqe, TAG_LINK);
}

/* A REGISTER or COMMIT_AND_FETCH for e (liburing 2.3 has no helper for
 * URING_CMD, and get_sqe does not clear the 128 bytes). */
static void prep_cmd(struct rthread *t, struct rent *e, int cmd)
{
	struct fs_region *r = t->u->fs->itab.r;
	struct ring_slot *s = &r->ring[e->slot];
	struct io_uring_sqe *sqe;
	struct fuse_uring_cmd_req *req;

	/* the command and its linked wait in one submission: a link does
	 * not reach across two */
	if (io_uring_sq_space_left(&t->ring) < 2)
		io_uring_submit(&t->ring);
	sqe = get_sqe(t);
	/* the whole 128-byte SQE (the type covers the first 64) */
	memset(sqe, 0, sizeof(*sqe));
	memset(sqe->cmd, 0, 128 - offsetof(struct io_uring_sqe, cmd));
	sqe->opcode = IORING_OP_URING_CMD;
	sqe->flags = IOSQE_FIXED_FILE | IOSQE_IO_LINK;
	sqe->fd = 0;
	sqe->cmd_op = (uint32_t)cmd;
	req = (struct fuse_uring_cmd_req *)sqe->cmd;
	req->qid = (uint16_t)t->qid;
	if (cmd == FUSE_IO_URING_CMD_REGISTER) {
		struct iovec *iov = (struct iovec *)(ent_base(r, e->slot) + ENT_IOV);

		iov[0] = (struct iovec){ ent_hdr(r, e->slot), sizeof(struct fuse_uring_req_header) };
		iov[1] = (struct iovec){ ent_payload(r, e->slot), FS_RING_PAYLOAD };
		sqe->addr = (uint64_t)(uintptr_t)iov;
		sqe->len = 2;
		s->qid = t->qid;
		__atomic_store_n(&s->state, RING_WAIT, __ATOMIC_RELEASE);
	} else {
		req->commit_id = s->unique;
	}
	/* a request handed over later writes its commit id here (see
	 * adopt_slot); the kernel does not read it back */
	__atomic_store_n(&ent_hdr(r, e->slot)->ring_ent_in_out.commit_id, 0, __ATOMIC_RELEASE);
	io_uring_sqe_set_data64(sqe, e->slot);
	prep_link(t);
}

static void prep_wake_read(struct rthread *t)
{
	struct io_uring_sqe *sqe = get_sqe(t);

	io_uring_prep_read(sqe, t->wake_fd, &t->wake_val, sizeof(t->wake_val), 0);
	io_uring_sqe_set_data64(sqe, TAG_WAKE);
}

static void prep_anchor(struct rthread *t)
{
	struct io_uring_sqe *sqe = get_sqe(t);

	io_uring_prep_poll_add(sqe, t->u->anchor_fd, POLLIN);
	io_uring_sqe_set_data64(sqe, TAG_ANCHOR);
}

static void wake(struct rthread *t)
{
	uint64_t one = 1;

	(void)!write(t->wake_fd, &one, sizeof(one));
}

/* ---- requests ---------------------------------------------------------------- */

/* Hand the request entry e holds (contiguous, recorded) to libfuse, from a
 * ring thread or a helper. */
static void run(struct fs *fs, struct rent *e)
{
	struct fs_region *r = fs->itab.r;
	struct ring_slot *s = &r->ring[e->slot];
	char *payload = ent_payload(r, e->slot);
	char *start = payload - (s->len - s->psz);
	struct fuse_buf fb = { .mem = start, .size = s->len };

	cur_ent = e;
	cur_buf = &fb;
	rx_buf = &fb;
	rx_payload = payload;
	once_begin(start, s->len);
	fuse_session_process_buf(fs->se, &fb);
	cur_buf = NULL;
	rx_buf = NULL;
	cur_ent = NULL;
}

/*
 * The requests a ring thread serves itself while it has no I/O queued
 * (nothing of its own can then be waited for): the frequent ones that
 * take an attribute or a name, for which a helper's two hand-overs
 * nearly doubled the time (an uncached stat through the mount: 134 us
 * through a helper, 87 us served so, 70 us with a ring thread for every
 * entry).
 */
static bool quick(uint32_t opcode)
{
	return opcode == FUSE_GETATTR || opcode == FUSE_LOOKUP || opcode == FUSE_STATFS ||
	       opcode == FUSE_FLUSH || opcode == FUSE_ACCESS;
}

/* A request a ring thread does not serve itself (see the top): to the
 * helpers' queue. */
static void hand_to_helper(struct rthread *t, struct rent *e)
{
	struct uring *u = t->u;

	atomic_fetch_add(&t->noff, 1);
	pthread_mutex_lock(&u->hmu);
	u->hq[(u->hq_head + u->hq_len++) % FS_RING_MAX] = e;
	pthread_cond_signal(&u->hcv);
	pthread_mutex_unlock(&u->hmu);
}

static void *helper_thread(void *arg)
{
	struct uring *u = arg;
	struct fs *fs = u->fs;
	unsigned idx = atomic_fetch_add(&u->helpers_up, 1);
	sigset_t all;

	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, NULL);
	pthread_setname_np(pthread_self(), "uring-help");
	once_bind(fs->itab.r, (int)(FS_RING_REC0 + u->nthreads + idx));
	for (;;) {
		struct rent *e;
		struct rthread *t;

		pthread_mutex_lock(&u->hmu);
		while (!u->hq_len && !u->hstop)
			pthread_cond_wait(&u->hcv, &u->hmu);
		if (!u->hq_len) {
			pthread_mutex_unlock(&u->hmu);
			break;
		}
		e = u->hq[u->hq_head];
		u->hq_head = (u->hq_head + 1) % FS_RING_MAX;
		u->hq_len--;
		pthread_mutex_unlock(&u->hmu);
		t = e->t;
		run(fs, e);
		/* the thread waits for this at its end (ring_thread) */
		if (atomic_fetch_sub(&t->noff, 1) == 1 && atomic_load(&u->ending))
			wake(t);
	}
	once_bind(fs->itab.r, -1);
	io_buf_release();
	return NULL;
}

/* Serve the request e holds.  fresh: just handed over by the kernel (made
 * contiguous and recorded here); else one the last worker held (its record
 * is intact), served as a resend. */
static void serve(struct rthread *t, struct rent *e, bool fresh)
{
	struct fs *fs = t->u->fs;
	struct fs_region *r = fs->itab.r;
	struct ring_slot *s = &r->ring[e->slot];
	char *payload = ent_payload(r, e->slot);
	struct fuse_in_header *in;
	char *start;

	if (fresh) {
		struct fuse_uring_req_header *h = ent_hdr(r, e->slot);
		const struct fuse_in_header *kin = (const void *)h->in_out;
		uint32_t psz = h->ring_ent_in_out.payload_sz;
		size_t oplen;

		if (kin->len < sizeof(*kin) + psz || psz > FS_RING_PAYLOAD ||
		    kin->len - sizeof(*kin) - psz > FUSE_URING_OP_IN_OUT_SZ) {
			log_warnx("io_uring: malformed request (opcode %u, length %u, payload %u)",
				  kin->opcode, kin->len, psz);
			return;
		}
		/* the record changes from the last request's to this one's:
		 * WAIT first, so that a worker dying before it says HELD
		 * leaves an entry that was handed a request (adopt_slot), not
		 * this id beside the last request's reply */
		__atomic_store_n(&s->state, RING_WAIT, __ATOMIC_RELEASE);
		__atomic_signal_fence(__ATOMIC_SEQ_CST);
		oplen = kin->len - sizeof(*kin) - psz;
		start = payload - oplen - sizeof(*kin);
		memcpy(start, kin, sizeof(*kin));
		memcpy(start + sizeof(*kin), h->op_in, oplen);
		if (psz <= SAVE_MAX)
			memcpy(ent_base(r, e->slot) + ENT_SAVE, payload, psz);
		s->unique = kin->unique;
		crashpoint("ring-request-recording");
		s->len = kin->len;
		s->psz = psz;
		__atomic_store_n(&s->state, RING_HELD, __ATOMIC_RELEASE);
	} else {
		start = payload - (s->len - s->psz);
		if (s->psz <= SAVE_MAX)
			memcpy(payload, ent_base(r, e->slot) + ENT_SAVE, s->psz);
	}
	in = (struct fuse_in_header *)start;
	/* a request the last worker held is a resend to once.c */
	in->unique = fresh ? s->unique : s->unique | FUSE_UNIQUE_RESEND;
	if (!data_inline(fs, in) && !(quick(in->opcode) && !t->nio)) {
		hand_to_helper(t, e);
		return;
	}
	run(fs, e);
}

/* The entry holding request unique, of this worker. */
static struct rent *find_ent(struct uring *u, uint64_t unique)
{
	struct fs_region *r = u->fs->itab.r;
	struct rent *e = cur_ent;

	if (e && r->ring[e->slot].unique == unique &&
	    __atomic_load_n(&r->ring[e->slot].state, __ATOMIC_ACQUIRE) == RING_HELD)
		return e;
	for (unsigned i = 0; i < u->nthreads; i++) {
		struct rthread *t = &u->threads[i];

		for (unsigned k = 0; k < t->nents; k++) {
			struct ring_slot *s = &r->ring[t->ents[k]->slot];

			if (__atomic_load_n(&s->state, __ATOMIC_ACQUIRE) == RING_HELD &&
			    s->unique == unique)
				return t->ents[k];
		}
	}
	return NULL;
}

ssize_t uring_reply(struct fs *fs, const struct iovec *iov, int count)
{
	struct uring *u = fs->uring;
	const struct fuse_out_header *oh = iov[0].iov_base;
	struct fs_region *r = fs->itab.r;
	struct fuse_out_header out;
	struct ring_slot *s;
	size_t total = 0, plen, off = 0;
	char *base, *payload;
	struct rent *e;

	if (!u || !oh->unique)
		return -ENOENT;
	e = find_ent(u, oh->unique & ~FUSE_UNIQUE_RESEND);
	if (!e)
		return -ENOENT;
	s = &r->ring[e->slot];
	base = ent_base(r, e->slot);
	payload = base + ENT_PAYLOAD;
	for (int i = 0; i < count; i++)
		total += iov[i].iov_len;
	plen = total - iov[0].iov_len;
	out = (struct fuse_out_header){ .unique = s->unique, .error = oh->error };
	if (!oh->error && plen > SHADOW_MAX - sizeof(out) && (plen > FS_RING_PAYLOAD ||
	    (s->psz > SAVE_MAX))) {
		/* cannot happen with relocfs's operations (see the top) */
		log_warnx("io_uring: a reply of %zu bytes to opcode %u does not fit", plen,
			  ((struct fuse_in_header *)(payload - (s->len - s->psz)))->opcode);
		out.error = -EIO;
	}
	if (out.error)
		plen = 0;
	out.len = (uint32_t)(sizeof(out) + plen);
	if (plen <= SHADOW_MAX - sizeof(out)) {
		/* staged first: the request stays whole until REPLIED */
		char *sh = base + ENT_SHADOW;

		memcpy(sh, &out, sizeof(out));
		for (int i = 1; i < count && plen; i++) {
			memcpy(sh + sizeof(out) + off, iov[i].iov_base, iov[i].iov_len);
			off += iov[i].iov_len;
		}
		s->shadow_len = plen;
		__atomic_store_n(&s->state, RING_REPLIED, __ATOMIC_RELEASE);
		crashpoint("ring-reply-staged");
		memcpy(ent_hdr(r, e->slot)->in_out, sh, sizeof(out));
		memcpy(payload, sh + sizeof(out), plen);
	} else {
		for (int i = 1; i < count; i++) {
			if (iov[i].iov_base != payload + off)
				memmove(payload + off, iov[i].iov_base, iov[i].iov_len);
			off += iov[i].iov_len;
		}
		memcpy(ent_hdr(r, e->slot)->in_out, &out, sizeof(out));
		crashpoint("ring-reply-writing");
		s->shadow_len = RING_NO_SHADOW;
		__atomic_store_n(&s->state, RING_REPLIED, __ATOMIC_RELEASE);
	}
	ent_hdr(r, e->slot)->ring_ent_in_out.payload_sz = (uint32_t)plen;
	atomic_store(&e->need_commit, true);
	if (cur_t != e->t)
		wake(e->t);	/* a reply from another thread: the entry's thread commits */
	return (ssize_t)total;
}

/* ---- backing I/O queued on the thread's ring (fs_i.h) --------------------------- */

bool io_async(const struct aio *a)
{
	struct rthread *t = cur_t;
	struct rent *e = cur_ent;
	struct io_uring_sqe *sqe;

	if (!t || !e || e->t != t || e->io_busy || cur_buf != rx_buf)
		return false;
	e->io = *a;
	e->io_busy = true;
	t->nio++;
	/* the I/O and its linked wait in one submission (see prep_cmd) */
	if (io_uring_sq_space_left(&t->ring) < 2)
		io_uring_submit(&t->ring);
	sqe = get_sqe(t);
	switch (a->op) {
	case AIO_READ:
		io_uring_prep_read(sqe, a->fd, a->buf, (unsigned)a->len, (uint64_t)a->off);
		break;
	case AIO_WRITE:
		io_uring_prep_write(sqe, a->fd, a->buf, (unsigned)a->len, (uint64_t)a->off);
		break;
	case AIO_FSYNC:
		io_uring_prep_fsync(sqe, a->fd, a->datasync ? IORING_FSYNC_DATASYNC : 0);
		break;
	}
	/* linked to a tracked request: a thread that dies with it queued
	 * does not finish dying before it completes, so that it cannot land
	 * after the next worker served the request again (and a write after
	 * that one) */
	sqe->flags |= IOSQE_IO_LINK;
	io_uring_sqe_set_data64(sqe, TAG_IO | e->slot);
	prep_link(t);
	/* to the disk now, not with the rest of the batch: a virtio disk
	 * served the batches of eight that one wake-up brings at 240 us a
	 * read where one at a time took 176 us and native fio 160 us at the
	 * same depth, which made QD16 reads 0.59 of native against 0.67
	 * (docs/performance.md); a failed submit leaves the two in the SQ
	 * for the loop's */
	io_uring_submit(&t->ring);
	return true;
}

/* The I/O of e completed with res: its request's end, as the entry's. */
static void io_complete(struct rthread *t, struct rent *e, int res)
{
	const struct fuse_buf *saved_buf = cur_buf, *saved_rx = rx_buf;
	struct rent *saved_ent = cur_ent;
	char *saved_payload = rx_payload;
	struct aio a = e->io;

	e->io_busy = false;
	t->nio--;
	cur_ent = e;
	cur_buf = rx_buf = NULL;
	rx_payload = NULL;
	a.done(&a, res);
	cur_ent = saved_ent;
	cur_buf = saved_buf;
	rx_buf = saved_rx;
	rx_payload = saved_payload;
}

/* An I/O completion (tag TAG_IO | slot) of thread t: 1 if it was one. */
static int io_cqe(struct rthread *t, uint64_t tag, int res)
{
	uint64_t slot = tag & 0xffffffffull;
	struct rent *e;

	if ((tag & ~0xffffffffull) != TAG_IO)
		return 0;
	e = slot < FS_RING_MAX ? &t->u->ents[slot] : NULL;
	if (e && e->t == t && e->io_busy)
		io_complete(t, e, res);
	return 1;
}

void io_drain(void)
{
	struct rthread *t = cur_t;

	while (t && t->nio) {
		struct io_uring_cqe *cqe;
		int ret = io_uring_submit_and_wait(&t->ring, 1);

		if (ret < 0 && ret != -EINTR && ret != -EAGAIN && ret != -EBUSY) {
			log_warnx("io_uring: queue %u: %s", t->qid, strerror(-ret));
			return;
		}
		/* one at a time, each off the ring before it is handled: a
		 * completion's reply may drain again */
		while (io_uring_peek_cqe(&t->ring, &cqe) == 0) {
			uint64_t tag = io_uring_cqe_get_data64(cqe);
			int res = cqe->res;

			io_uring_cqe_seen(&t->ring, cqe);
			if (tag == TAG_LINK || io_cqe(t, tag, res))
				continue;
			if (t->back_len == BACKLOG_MAX) {
				log_warnx("io_uring: queue %u: a completion lost (tag %llx)", t->qid,
					  (unsigned long long)tag);
				continue;
			}
			t->backlog[(t->back_head + t->back_len++) % BACKLOG_MAX].tag = tag;
			t->backlog[(t->back_head + t->back_len - 1) % BACKLOG_MAX].res = res;
		}
	}
}

/* ---- adopting what the last worker's entries held ------------------------------ */

/*
 * What slot s of a dead worker needs, from its record and the header the
 * kernel writes: 1 to be adopted (a request to serve or a reply to
 * commit), 0 if its entry is gone from the kernel (free to register anew).
 */
static int adopt_slot(struct fs_region *r, unsigned slot)
{
	struct ring_slot *s = &r->ring[slot];
	uint64_t hc = __atomic_load_n(&ent_hdr(r, slot)->ring_ent_in_out.commit_id,
				      __ATOMIC_ACQUIRE);

	switch (s->state) {
	case RING_HELD:
		return 1;
	case RING_REPLIED:
		/* committed, and the kernel handed over the next request: that
		 * one is what the entry holds */
		if (hc && hc != s->unique)
			s->state = RING_WAIT;
		return 1;
	case RING_WAIT:
		if (hc)
			return 1;	/* handed over, never seen (or half recorded) */
		s->state = RING_FREE;	/* retired when its thread ended */
		return 0;
	default:
		return 0;
	}
}

/* ---- the ring threads ---------------------------------------------------------- */

static void commit_ready(struct rthread *t)
{
	for (unsigned k = 0; k < t->nents; k++) {
		struct rent *e = t->ents[k];

		/* a load first: this runs after every completion, and an
		 * exchange of every entry's flag, a locked instruction each,
		 * was most of the ring thread's time in relocfs's code (a flag
		 * set after the load comes with a wake-up) */
		if (atomic_load_explicit(&e->need_commit, memory_order_acquire) &&
		    atomic_exchange(&e->need_commit, false)) {
			prep_cmd(t, e, FUSE_IO_URING_CMD_COMMIT_AND_FETCH);
			crashpoint("ring-commit-prepared");	/* not submitted */
		}
	}
}

/* Finish an entry the last worker left (see adopt_slot). */
static void finish_adopted(struct rthread *t, struct rent *e)
{
	struct fs_region *r = t->u->fs->itab.r;
	struct ring_slot *s = &r->ring[e->slot];

	e->adopted = false;
	switch (s->state) {
	case RING_HELD:
		serve(t, e, false);
		break;
	case RING_REPLIED:
		if (s->shadow_len != RING_NO_SHADOW) {
			char *sh = ent_base(r, e->slot) + ENT_SHADOW;

			memcpy(ent_hdr(r, e->slot)->in_out, sh, sizeof(struct fuse_out_header));
			memcpy(ent_payload(r, e->slot), sh + sizeof(struct fuse_out_header),
			       s->shadow_len);
			ent_hdr(r, e->slot)->ring_ent_in_out.payload_sz = (uint32_t)s->shadow_len;
		}
		atomic_store(&e->need_commit, true);
		break;
	case RING_WAIT:
		serve(t, e, true);
		break;
	}
}

static void on_entry(struct rthread *t, struct rent *e, int res)
{
	struct fs_region *r = t->u->fs->itab.r;

	if (res == 0) {
		if (atomic_load(&t->u->quiesce)) {
			/* a hand-over: the next worker serves it (adopt_slot) */
			return;
		}
		serve(t, e, true);
		return;
	}
	if (res == -EAGAIN || res == -EINTR) {
		usleep(1000);	/* before INIT was answered */
		prep_cmd(t, e, FUSE_IO_URING_CMD_REGISTER);
		return;
	}
	if (res == -ENOENT && !atomic_load(&t->u->ending)) {
		/* a reply the last worker had committed already: the entry
		 * went when its thread ended; register the buffers anew */
		prep_cmd(t, e, FUSE_IO_URING_CMD_REGISTER);
		return;
	}
	/* the connection ended (ENOTCONN, ECONNABORTED), or refused */
	if (res != -ENOTCONN && res != -ECONNABORTED)
		log_warnx("io_uring: queue %u: the kernel ended an entry: %s", t->qid,
			  strerror(-res));
	e->dead = true;
	__atomic_store_n(&r->ring[e->slot].state, RING_FREE, __ATOMIC_RELEASE);
}

static bool all_dead(struct rthread *t)
{
	for (unsigned k = 0; k < t->nents; k++)
		if (!t->ents[k]->dead)
			return false;
	return true;
}

static void on_cqe(struct rthread *t, uint64_t tag, int res)
{
	struct uring *u = t->u;

	if (tag == TAG_WAKE) {
		prep_wake_read(t);
	} else if (tag == TAG_ANCHOR) {
		prep_anchor(t);
	} else if (tag == TAG_LINK) {
		/* see prep_link */
	} else if (io_cqe(t, tag, res)) {
		/* replied */
	} else if (tag < FS_RING_MAX && u->ents[tag].t == t) {
		on_entry(t, &u->ents[tag], res);
	}
	commit_ready(t);
}

/*
 * -o poll: submit what is prepared, then look for a completion for up to
 * poll_ns before the loop sleeps for one.  A request or a backing I/O's
 * completion for this thread is task work that runs only in a kernel entry
 * (COOP_TASKRUN, thread_setup); the kernel flags it (TASKRUN_FLAG) and
 * io_uring_get_events runs it without sleeping.  A thread that does not
 * sleep is not woken: at 4 KiB QD1 reads on fast storage that took the
 * mount from about 0.5 of native to 0.7 to 1.0, for a CPU kept busy while
 * requests come (docs/performance.md).  The clock bounds every pass, so
 * that work that posts nothing cannot keep the thread here.
 */
static void poll_ring(struct rthread *t)
{
	struct timespec a, b;

	io_uring_submit(&t->ring);
	clock_gettime(CLOCK_MONOTONIC, &a);
	while (!io_uring_cq_ready(&t->ring)) {
		if (IO_URING_READ_ONCE(*t->ring.sq.kflags) & IORING_SQ_TASKRUN)
			(void)io_uring_get_events(&t->ring);
#if defined(__x86_64__) || defined(__i386__)
		else
			__builtin_ia32_pause();
#endif
		clock_gettime(CLOCK_MONOTONIC, &b);
		if ((b.tv_sec - a.tv_sec) * 1000000000L + (b.tv_nsec - a.tv_nsec) > t->u->poll_ns)
			break;
	}
}

static void *ring_thread(void *arg)
{
	struct rthread *t = arg;
	struct uring *u = t->u;
	struct fs *fs = u->fs;
	char name[16];
	sigset_t all;

	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, NULL);
	/* not pinned to its queue's CPU: the kernel's task work wakes it on
	 * the CPU that issued the request when that CPU is free, and when it
	 * is busy (fio at queue depth 16 on one CPU) the other CPUs serve;
	 * pinned, queue depth 16 ran at 0.6 of unpinned here, queue depth 1
	 * the same within the noise (docs/performance.md) */
	snprintf(name, sizeof(name), "uring-q%u", t->qid);
	pthread_setname_np(pthread_self(), name);
	once_bind(fs->itab.r, (int)(FS_RING_REC0 + t->idx));
	cur_t = t;

	/* the anchor first: no entry of this thread may outlive it (the top) */
	prep_anchor(t);
	prep_wake_read(t);
	for (unsigned k = 0; k < t->nents; k++)
		if (!t->ents[k]->adopted)
			prep_cmd(t, t->ents[k], FUSE_IO_URING_CMD_REGISTER);
	io_uring_submit(&t->ring);
	atomic_fetch_add(&u->registered, 1);
	for (unsigned k = 0; k < t->nents; k++) {
		if (t->ents[k]->adopted) {
			finish_adopted(t, t->ents[k]);
			commit_ready(t);
		}
	}

	/* until the end, and the I/O queued then is complete and the
	 * helpers are done with this thread's requests */
	while (t->nio || atomic_load(&t->noff) || (!atomic_load(&u->ending) && !all_dead(t))) {
		struct io_uring_cqe *cqe;
		int ret;

		if (t->back_len) {
			uint64_t tag = t->backlog[t->back_head].tag;
			int res = t->backlog[t->back_head].res;

			t->back_head = (t->back_head + 1) % BACKLOG_MAX;
			t->back_len--;
			on_cqe(t, tag, res);
			continue;
		}
		/* not while a helper serves one of this thread's requests:
		 * on few CPUs the spin would take the CPU the helper needs
		 * (1 MiB direct reads at QD1 ran at 0.42 of native polling
		 * so, 0.53 without polling) */
		if (u->poll_ns && !atomic_load(&t->noff) && !io_uring_cq_ready(&t->ring))
			poll_ring(t);
		ret = io_uring_submit_and_wait(&t->ring, 1);
		if (ret < 0 && ret != -EINTR && ret != -EAGAIN && ret != -EBUSY) {
			log_warnx("io_uring: queue %u: %s", t->qid, strerror(-ret));
			break;
		}
		/* one at a time, each off the ring before it is handled (a
		 * request's service may drain the ring: io_drain) */
		while (!t->back_len && io_uring_peek_cqe(&t->ring, &cqe) == 0) {
			uint64_t tag = io_uring_cqe_get_data64(cqe);
			int res = cqe->res;

			io_uring_cqe_seen(&t->ring, cqe);
			on_cqe(t, tag, res);
		}
		commit_ready(t);
	}
	io_uring_submit(&t->ring);	/* commits prepared last */
	once_bind(fs->itab.r, -1);
	io_buf_release();
	return NULL;
}

/* ---- start, stop ----------------------------------------------------------- */

/*
 * COOP_TASKRUN: a request or a completion for a ring thread that is running
 * waits for the thread's next io_uring_enter (it makes one for every
 * request) instead of an interrupt to its CPU; the interrupts were an eighth of the
 * machine's time at queue depth 16, and without them the mount served
 * 1.4 to 1.7x the reads (docs/performance.md).  A sleeping thread is woken
 * as before, and the thread's exit runs its task work as before.
 * TASKRUN_FLAG: the kernel says when such work waits (poll_ring, and
 * liburing's peek enters the kernel to run it).
 */
static int thread_setup(struct uring *u, struct rthread *t)
{
	struct io_uring_params p = { .flags = IORING_SETUP_SQE128 | IORING_SETUP_CQSIZE |
					      IORING_SETUP_COOP_TASKRUN | IORING_SETUP_TASKRUN_FLAG,
				     .cq_entries = 64 };
	int r;

	t->wake_fd = eventfd(0, EFD_CLOEXEC);
	if (t->wake_fd == -1)
		return -errno;
	r = io_uring_queue_init_params(32, &t->ring, &p);
	if (r < 0) {
		close(t->wake_fd);
		return r;
	}
	r = io_uring_register_files(&t->ring, &u->fuse_fd, 1);
	if (r < 0) {
		io_uring_queue_exit(&t->ring);
		close(t->wake_fd);
	}
	return r;
}

/* A request from each CPU, from a process of our own (see the top). */
static void kick_queues(struct uring *u)
{
	const char *mnt = u->fs->cfg.mountpoint;
	pid_t pid;

	if (!mnt)
		return;
	pid = fork();
	if (pid == 0) {
		for (unsigned q = 0; q < u->nq; q++) {
			if (fork() == 0) {
				cpu_set_t cpus;
				struct statfs st;

				CPU_ZERO(&cpus);
				CPU_SET(q, &cpus);
				if (sched_setaffinity(0, sizeof(cpus), &cpus) == 0)
					statfs(mnt, &st);
				_exit(0);
			}
		}
		_exit(0);
	}
	if (pid > 0)
		waitpid(pid, NULL, 0);
}

/*
 * Map every page of an entry's buffers in this process before its first
 * command from here.  The kernel copies a request into an entry in the task
 * of the thread that armed it, and if that thread is being killed, a copy
 * that has to fault a page in fails (EINTR from get_user_pages, EFAULT from
 * copy_to_user), and the request with it.  A worker's pages of the shared
 * region are not mapped until it touches them (a fork copies no page tables
 * of shared mappings): an adopted entry's are not either.
 */
static void populate_ent(struct fs_region *r, unsigned slot)
{
	volatile uint8_t *p = r->ringbuf[slot];

	if (madvise(r->ringbuf[slot], FS_RING_BYTES, MADV_POPULATE_WRITE) == 0)
		return;
	for (size_t off = 0; off < FS_RING_BYTES; off += 4096)
		p[off] = p[off];	/* a write fault that keeps what an adopted entry holds */
}

static unsigned adopt_all(struct uring *u, unsigned *ents_of)
{
	struct fs_region *r = u->fs->itab.r;
	unsigned adopted = 0;

	if (r->ring_base && r->ring_base != (uint64_t)(uintptr_t)r) {
		for (unsigned i = 0; i < FS_RING_MAX; i++) {
			if (r->ring[i].state == RING_HELD || r->ring[i].state == RING_REPLIED)
				log_warnx("io_uring: the shared state moved: a request the last "
					  "worker held on queue %llu cannot be finished",
					  (unsigned long long)r->ring[i].qid);
			r->ring[i].state = RING_FREE;
		}
		return 0;
	}
	for (unsigned i = 0; i < FS_RING_MAX; i++) {
		struct rent *e = &u->ents[i];
		unsigned q = (unsigned)r->ring[i].qid;
		struct rthread *t;

		if (!adopt_slot(r, i))
			continue;
		if (q >= u->nq) {
			log_warnx("io_uring: an entry of queue %u that this machine lacks", q);
			continue;
		}
		/* the thread of queue q with the fewest entries */
		t = &u->threads[q * u->per_q];
		for (unsigned k = 1; k < u->per_q; k++)
			if (u->threads[q * u->per_q + k].nents < t->nents)
				t = &u->threads[q * u->per_q + k];
		if (t->nents == ENTS_PER_THREAD_MAX)
			continue;
		e->slot = i;
		e->t = t;
		e->adopted = true;
		t->ents[t->nents++] = e;
		ents_of[i] = 1;
		adopted++;
	}
	return adopted;
}

int uring_start(struct fs *fs, bool adopt)
{
	struct fs_region *r = fs->itab.r;
	unsigned ents_of[FS_RING_MAX] = { 0 };
	unsigned next = 0, adopted = 0;
	struct uring *u;
	int err;

	u = calloc(1, sizeof(*u));
	if (!u)
		return -ENOMEM;
	u->fs = fs;
	u->fuse_fd = (int)r->fuse_fd;
	u->poll_ns = (long)fs->cfg.poll_us * 1000;
	u->nq = uring_queues();
	/* as many requests of one CPU in service at once as -o threads, with
	 * at most RING_ENTS_BUDGET entries (a MiB each) for all queues, and
	 * ENTS_OWN entries a thread */
	u->ents_q = RING_ENTS_BUDGET / u->nq;
	if (u->ents_q > fs->cfg.threads)
		u->ents_q = fs->cfg.threads;
	if (u->ents_q > ENTS_PER_QUEUE_MAX)
		u->ents_q = ENTS_PER_QUEUE_MAX;
	if (u->ents_q < 1)
		u->ents_q = 1;
	while (u->nq * u->ents_q > FS_RING_MAX && u->ents_q > 1)
		u->ents_q--;
	u->per_q = (u->ents_q + ENTS_OWN - 1) / ENTS_OWN;
	u->nthreads = u->nq * u->per_q;
	/* a helper for every entry: a request never waits for one */
	u->nhelpers = u->nq * u->ents_q;
	if (u->nthreads + u->nhelpers > FS_RING_MAX)
		u->nhelpers = u->nthreads < FS_RING_MAX ? FS_RING_MAX - u->nthreads : 0;
	if (u->nthreads > FS_RING_MAX || !u->nhelpers) {
		free(u);
		return -E2BIG;
	}
	pthread_mutex_init(&u->hmu, NULL);
	pthread_cond_init(&u->hcv, NULL);
	u->helpers = calloc(u->nhelpers, sizeof(*u->helpers));
	u->threads = u->helpers ? calloc(u->nthreads, sizeof(*u->threads)) : NULL;
	err = u->threads ? io_uring_queue_init(2, &u->anchor, 0) : -ENOMEM;
	if (err)
		goto fail;
	u->anchor_fd = u->anchor.ring_fd;
	for (unsigned i = 0; i < u->nthreads; i++) {
		u->threads[i].u = u;
		u->threads[i].idx = i;
		u->threads[i].qid = i / u->per_q;
		u->threads[i].wake_fd = -1;
	}
	if (adopt)
		adopted = adopt_all(u, ents_of);
	else
		memset(r->ring, 0, sizeof(r->ring));
	/* entries of its own for each thread, up to its share of its queue's
	 * (a thread that adopted entries has those) */
	for (unsigned i = 0; i < u->nthreads; i++) {
		struct rthread *t = &u->threads[i];
		unsigned k = i % u->per_q;
		unsigned share = u->ents_q / u->per_q + (k < u->ents_q % u->per_q);

		while (t->nents < share) {
			struct rent *e;

			while (next < FS_RING_MAX &&
			       (ents_of[next] || r->ring[next].state != RING_FREE))
				next++;
			if (next == FS_RING_MAX) {
				err = -ENOSPC;
				goto fail;
			}
			e = &u->ents[next];
			e->slot = next;
			e->t = t;
			ents_of[next] = 1;
			t->ents[t->nents++] = e;
			next++;
		}
	}
	for (unsigned i = 0; i < u->nthreads; i++)
		for (unsigned k = 0; k < u->threads[i].nents; k++)
			populate_ent(r, u->threads[i].ents[k]->slot);
	__atomic_store_n(&r->ring_base, (uint64_t)(uintptr_t)r, __ATOMIC_RELEASE);
	for (unsigned i = 0; i < u->nthreads; i++) {
		err = thread_setup(u, &u->threads[i]);
		if (err)
			goto fail;
	}
	fs->uring = u;
	/* stacks of our own: glibc gives a thread's stack back to the kernel
	 * (madvise) as the thread ends, unless it is the caller's, and the
	 * ring threads all end at a hand-over, while the connection waits:
	 * 3.5 to 6 ms for their ends with glibc's stacks, 0.1 to 1.7 with
	 * these (they go with the process) */
	u->stacks = mmap(NULL, (size_t)(u->nhelpers + u->nthreads) * RING_STACK,
			 PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK, -1, 0);
	if (u->stacks == MAP_FAILED)
		u->stacks = NULL;
	/* the helpers first: a ring thread may hand them what it adopted */
	for (unsigned i = 0; i < u->nhelpers + u->nthreads; i++) {
		bool helper = i < u->nhelpers;
		pthread_attr_t attr;
		int e;

		pthread_attr_init(&attr);
		if (u->stacks) {
			char *st = (char *)u->stacks + (size_t)i * RING_STACK;

			mprotect(st, 4096, PROT_NONE);	/* a guard page below */
			pthread_attr_setstack(&attr, st, RING_STACK);
		}
		if (helper)
			e = pthread_create(&u->helpers[i], &attr, helper_thread, u);
		else
			e = pthread_create(&u->threads[i - u->nhelpers].tid, &attr, ring_thread,
					   &u->threads[i - u->nhelpers]);
		pthread_attr_destroy(&attr);
		if (e) {
			err = -EAGAIN;
			uring_stop(fs);
			return err;
		}
		if (helper)
			u->helpers_started++;
		else
			u->threads[i - u->nhelpers].started = true;
	}
	if (adopt) {
		while (atomic_load(&u->registered) < u->nthreads)
			usleep(200);
		kick_queues(u);
		log_info("io_uring: %u queue(s) x %u thread(s); finished %u request(s) the last "
			 "worker's entries held", u->nq, u->per_q, adopted);
	}
	return 0;
fail:
	for (unsigned i = 0; u->threads && i < u->nthreads; i++) {
		if (u->threads[i].wake_fd != -1) {
			io_uring_queue_exit(&u->threads[i].ring);
			close(u->threads[i].wake_fd);
		}
	}
	if (u->anchor_fd)
		io_uring_queue_exit(&u->anchor);
	free(u->threads);
	free(u->helpers);
	free(u);
	return err;
}

void uring_quiesce(struct fs *fs)
{
	struct uring *u = fs->uring;

	if (u)
		atomic_store(&u->quiesce, true);
}

void uring_stop(struct fs *fs)
{
	struct uring *u = fs->uring;

	if (!u)
		return;
	atomic_store(&u->ending, true);
	/* all woken first: they end side by side, not one after another
	 * (each exit retires the thread's entries in the kernel) */
	for (unsigned i = 0; i < u->nthreads; i++)
		if (u->threads[i].started)
			wake(&u->threads[i]);
	for (unsigned i = 0; i < u->nthreads; i++)
		if (u->threads[i].started)
			pthread_join(u->threads[i].tid, NULL);
	/* the ring threads waited for what the helpers served for them */
	pthread_mutex_lock(&u->hmu);
	u->hstop = true;
	pthread_cond_broadcast(&u->hcv);
	pthread_mutex_unlock(&u->hmu);
	for (unsigned i = 0; i < u->helpers_started; i++)
		pthread_join(u->helpers[i], NULL);
	/* from here no thread replies into an entry */
	fs->uring = NULL;
	/* A hand-over: this process ends at once, and the next worker closes
	 * the rings once it serves (daemon/worker.c, sweep_fds); here, closing
	 * them and unmapping the stacks took 3 to 8 ms of the connection's
	 * wait.  Nothing may be closed after the next worker starts: the
	 * descriptor table is shared, and a number closed twice could be one
	 * of its own. */
	if (!atomic_load(&fs->stopping)) {
		for (unsigned i = 0; i < u->nthreads; i++) {
			io_uring_queue_exit(&u->threads[i].ring);
			close(u->threads[i].wake_fd);
		}
		io_uring_queue_exit(&u->anchor);
		if (u->stacks)
			munmap(u->stacks, (size_t)(u->nhelpers + u->nthreads) * RING_STACK);
	}
	free(u->threads);
	free(u->helpers);
	free(u);
}
