/*
 * shm: see shm.h.
 */
#include <errno.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/shm.h"

int shm_create(struct shm *s, const char *name, size_t size)
{
	long page = sysconf(_SC_PAGESIZE);
	int fd = memfd_create(name, 0);
	int err;

	if (fd == -1)
		return -errno;
	size = (size + (size_t)page - 1) / (size_t)page * (size_t)page;
	if (ftruncate(fd, (off_t)size) == -1) {
		err = -errno;
		close(fd);
		return err;
	}
	err = shm_map(s, fd, NULL);
	if (err)
		close(fd);
	return err;
}

int shm_map(struct shm *s, int fd, void *addr)
{
	struct stat st;
	void *p = MAP_FAILED;

	if (fstat(fd, &st) == -1)
		return -errno;
	if (addr)
		p = mmap(addr, (size_t)st.st_size, PROT_READ | PROT_WRITE,
			 MAP_SHARED | MAP_FIXED_NOREPLACE, fd, 0);
	if (p == MAP_FAILED)
		p = mmap(NULL, (size_t)st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED)
		return -errno;
	s->fd = fd;
	s->base = p;
	s->size = (size_t)st.st_size;
	return 0;
}

void shm_unmap(struct shm *s)
{
	if (s->base)
		munmap(s->base, s->size);
	s->base = NULL;
}
