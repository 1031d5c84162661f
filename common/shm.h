/*
 * shm: a region of memory shared by the daemon's processes: a memfd, mapped
 * MAP_SHARED, that outlives any one of them while one keeps its descriptor.
 * The supervisor creates it; each worker (a clone sharing the descriptor
 * table) maps it; a re-executed supervisor maps it again from the
 * descriptor number.  Its pages cost memory only once touched.
 *
 * What lives in it must hold no pointers (each process maps it at its own
 * address) and no locks (a process may die holding one): offsets and plain
 * words, written in an order that a reader can recover from at any point.
 */
#ifndef RELOCFS_SHM_H
#define RELOCFS_SHM_H

#include <stddef.h>

struct shm {
	int fd;
	void *base;
	size_t size;
};

/* A new zeroed region of size bytes (rounded up to a page).  The descriptor
 * is not close-on-exec: it must survive the supervisor's exec.  0 or -errno. */
int shm_create(struct shm *s, const char *name, size_t size);

/* Map the region behind fd (its whole size), at addr if it is not NULL
 * and that range is free (else anywhere).  0 or -errno. */
int shm_map(struct shm *s, int fd, void *addr);

void shm_unmap(struct shm *s);

#endif
