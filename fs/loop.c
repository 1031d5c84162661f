/*
 * loop: the request loop: worker threads that receive requests from
 * /dev/fuse into buffers of their own and hand them to libfuse.
 *
 * O_DIRECT without copies: each worker receives requests into a buffer
 * placed so that a WRITE's payload (after fuse_in_header and fuse_write_in)
 * starts on a page boundary, so O_DIRECT writes go to the backing file
 * straight from the request, and a READ puts its data in the same area
 * (read_buf).
 *
 * Over io_uring (uring.c) the same threads read only what still comes this
 * way (INIT, FORGET, INTERRUPT, resent requests): two of them.
 *
 * Thread i owns request record i and receive buffer i of the shared region
 * (once.h): a worker after this one knows what a request in progress had
 * done, and finds a FORGET it had read.  The buffers' page tables are filled
 * before the first read: a request the kernel is copying into a buffer when
 * the worker is killed must not meet a page fault (it would fail with EIO
 * instead of being sent again).  Shared memory gets no transparent huge
 * pages on a default kernel (shmem_enabled=never), so a 1 MiB request pins
 * 256 pages.
 *
 * The loop ends when the connection does (unmount), at a signal libfuse
 * handles (SIGTERM, SIGINT, SIGHUP: the daemon ends), or at fs_stop() (a
 * hand-over to another worker): each thread finishes the request it has
 * read and ends; a thread blocked in read() is woken by SIGUSR1, again and
 * again until it has ended, since a signal that comes just before the read
 * is not seen by it.
 */
#include <errno.h>
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <linux/fuse.h>

#include "common/clock.h"
#include "common/crashpoint.h"
#include "common/log.h"
#include "fs/fs_i.h"
#include "fs/once.h"


static sem_t loop_done;

struct worker {
	struct fs *fs;
	int idx;
	pthread_t tid;
	atomic_bool ended;
};

static void *worker(void *arg)
{
	struct worker *w = arg;
	struct fs *fs = w->fs;
	struct fuse_in_header *in = rx_header(fs->itab.r, (unsigned)w->idx);
	struct fuse_buf fb = { .mem = in, .size = FS_RX_BYTES - (IO_ALIGN - WRITE_PAYLOAD) };
	sigset_t set;

	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	sigemptyset(&set);
	sigaddset(&set, SIGUSR1);
	pthread_sigmask(SIG_UNBLOCK, &set, NULL);
	rx_buf = &fb;
	rx_payload = (char *)in + WRITE_PAYLOAD;
	once_bind(fs->itab.r, w->idx);
	while (!fuse_session_exited(fs->se)) {
		int res;

		/* a stale FORGET must not look read (once.c) */
		__atomic_store_n(&in->len, 0, __ATOMIC_SEQ_CST);
		res = fuse_session_receive_buf(fs->se, &fb);
		if (res == -EINTR)
			continue;
		if (res <= 0)
			break;
		if (in->opcode == FUSE_INIT)
			save_init(fs, fb.mem, (size_t)res);
		crashpoint("dev-request-read");	/* read, nothing done */
		once_begin(fb.mem, (size_t)res);
		cur_buf = &fb;
		fuse_session_process_buf(fs->se, &fb);
		cur_buf = NULL;
	}
	once_bind(fs->itab.r, -1);
	io_buf_release();
	atomic_store(&w->ended, true);
	sem_post(&loop_done);
	return NULL;
}

/* End every worker thread: wake each until it has ended (see the top). */
static void end_workers(struct worker *w, unsigned started)
{
	for (;;) {
		bool all = true;

		for (unsigned i = 0; i < started; i++) {
			if (!atomic_load(&w[i].ended)) {
				all = false;
				pthread_kill(w[i].tid, SIGUSR1);
			}
		}
		if (all)
			break;
		usleep(200);
	}
	for (unsigned i = 0; i < started; i++)
		pthread_join(w[i].tid, NULL);
}

static void on_wake(int sig)
{
	(void)sig;	/* only interrupts a worker's blocking read */
}

/*
 * How many threads read /dev/fuse.  Over io_uring only INIT, FORGET,
 * INTERRUPT and resent requests come that way: two threads (a FORGET never
 * waits behind a slow request).  Decided before INIT, from what the
 * transport check says the kernel offers.
 */
static unsigned dev_threads(struct fs *fs)
{
	uint64_t t = fs->itab.r->transport;
	char why[256];

	if (t == FS_TRANSPORT_URING ||
	    (!t && fs->cfg.transport != FS_TRANSPORT_DEV &&
	     fs_transport_check(FS_TRANSPORT_URING, why, sizeof(why)) == 0))
		return fs->cfg.threads < 2 ? fs->cfg.threads : 2;
	return fs->cfg.threads;
}

/* the first bytes of a receive buffer: the header and a request of 124 KiB */
#define RX_EARLY	(128u << 10)

/* Map the first len bytes of each of the threads' receive buffers. */
static void populate_rx(struct fs_region *r, unsigned threads, size_t len)
{
	for (unsigned i = 0; i < threads; i++)
		if (madvise(r->rx[i], len, MADV_POPULATE_WRITE) == -1)
			memset(r->rx[i], 0, len);
}

int fs_loop(struct fs *fs)
{
	struct sigaction sa = { .sa_handler = on_wake };	/* no SA_RESTART */
	unsigned threads = dev_threads(fs);
	struct worker *w = calloc(threads, sizeof(*w));
	unsigned started = 0;

	if (!w)
		return -ENOMEM;
	fs->dev_threads = threads;
	/* a later worker: the transport the first one negotiated serves on */
	if (fs->adopted && fs->itab.r->transport)
		transport_serves(fs, (enum fs_transport)fs->itab.r->transport, true);
	sigaction(SIGUSR1, &sa, NULL);
	/* fill the receive buffers' page tables (see the top): all of them
	 * before the first mount serves; after a takeover the first pages now
	 * and the rest once the threads serve, so that the connection waits
	 * for no more than it needs */
	if (threads > fs->itab.r->rx_hw)
		fs->itab.r->rx_hw = threads;
	populate_rx(fs->itab.r, threads, fs->adopted ? RX_EARLY : FS_RX_BYTES);
	sem_init(&loop_done, 0, 0);
	for (; started < threads; started++) {
		w[started].fs = fs;
		w[started].idx = (int)started;
		if (pthread_create(&w[started].tid, NULL, worker, &w[started]))
			break;
	}
	if (!started) {
		free(w);
		return -EAGAIN;
	}
	if (fs->adopted)
		populate_rx(fs->itab.r, threads, FS_RX_BYTES);
	/* the first worker to stop (unmount, a signal, fs_stop) ends the loop */
	while (sem_wait(&loop_done) == -1 && errno == EINTR && !fuse_session_exited(fs->se))
		;
	fuse_session_exit(fs->se);
	uring_quiesce(fs);
	end_workers(w, started);
	free(w);
	/* parked requests being replayed finish too: a hand-over must not
	 * leave one unanswered (their replies to ring entries are committed
	 * by the entries' threads, which run until here) */
	while (atomic_load(&fs->gate.replays) > 0)
		usleep(200);
	uring_stop(fs);
	return 0;
}

void fs_stop(struct fs *fs)
{
	atomic_store(&fs->stopping, true);
	uring_quiesce(fs);
	fuse_session_exit(fs->se);
	sem_post(&loop_done);
}

bool fs_stopped(struct fs *fs)
{
	return atomic_load(&fs->stopping);
}
