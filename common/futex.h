/*
 * futex: wait on a word of memory shared between processes, and wake its
 * waiters.  For the few places where one process must wait for another's
 * store into the shared region without polling (daemon/, the hand-over).
 *
 * futex_wait blocks the calling thread while *addr == val, for at most
 * timeout_ms (a signal or a spurious wake-up also ends it): callers loop and
 * check the word.  futex_wake wakes every waiter.  Neither allocates or
 * takes a lock; both are safe in any thread of any process that maps the
 * word.
 */
#ifndef RELOCFS_FUTEX_H
#define RELOCFS_FUTEX_H

#include <linux/futex.h>
#include <stdint.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static inline void futex_wait(uint32_t *addr, uint32_t val, int timeout_ms)
{
	struct timespec ts = { .tv_sec = timeout_ms / 1000,
			       .tv_nsec = (long)(timeout_ms % 1000) * 1000000 };

	syscall(SYS_futex, addr, FUTEX_WAIT, val, &ts, NULL, 0);
}

static inline void futex_wake(uint32_t *addr)
{
	syscall(SYS_futex, addr, FUTEX_WAKE, INT32_MAX, NULL, NULL, 0);
}

#endif
