/*
 * bounce: large direct requests through buffers on huge pages.
 *
 * A direct read or write of a backing file goes to its block device as one
 * request only if the device takes that many physically separate pieces of
 * memory at once (its queue's max_segments: 254 on this project's virtio
 * disks).  The buffers requests arrive in are shared memory (a worker hands
 * them to the next), in 4 KiB pages of no physical order, so a 1 MiB
 * request in them is 256 pieces and the block layer splits it in two: 1 MiB
 * direct reads through the mount ran at 0.7 of the same reads from a buffer
 * on a huge page, and each counted two device reads against native fio's
 * one.  So a direct request with more pages than its device's max_segments
 * goes through a buffer on a huge page: one memcpy (tens of microseconds for
 * 1 MiB) instead of a second device request.
 *
 * BOUNCE_MAX buffers of 2 MiB for the whole worker, made on first use, taken
 * and given back around one call; a request that finds none free goes
 * without (split, as before).  The limit of each device is read once from
 * sysfs; a file on no block device (NFS, tmpfs) is never bounced.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/util.h"
#include "fs/fs_i.h"

#define BOUNCE_BYTES	(2u << 20)

/* The max_segments of fd's device, cached; 0 if unknown.  b->mu held. */
static unsigned segments_of(struct bounce *b, int fd)
{
	struct stat st;
	unsigned v;
	long segs;

	if (fstat(fd, &st) == -1)
		return 0;
	for (unsigned i = 0; i < b->ndevs; i++)
		if (b->devs[i].dev == st.st_dev)
			return b->devs[i].segments;
	segs = block_queue_attr(st.st_dev, "max_segments");
	v = segs > 0 ? (unsigned)segs : 0;
	if (b->ndevs < BOUNCE_DEVS)
		b->devs[b->ndevs++] = (typeof(b->devs[0])){ st.st_dev, v };
	return v;
}

char *bounce_get(struct fs *fs, int fd, size_t len)
{
	struct bounce *b = &fs->bounce;
	unsigned segs;
	char *buf = NULL;

	if (len <= 4096u * 64 || len > BOUNCE_BYTES)
		return NULL;	/* not worth the lock: few devices take under 64 */
	pthread_mutex_lock(&b->mu);
	segs = segments_of(b, fd);
	if (segs && (len + 4095) / 4096 > segs) {
		if (b->nfree) {
			buf = b->free[--b->nfree];
		} else if (b->nmade < BOUNCE_MAX) {
			void *p;

			if (posix_memalign(&p, BOUNCE_BYTES, BOUNCE_BYTES) == 0) {
				madvise(p, BOUNCE_BYTES, MADV_HUGEPAGE);
				b->made[b->nmade++] = buf = p;
			}
		}
	}
	pthread_mutex_unlock(&b->mu);
	return buf;
}

void bounce_put(struct fs *fs, char *buf)
{
	struct bounce *b = &fs->bounce;

	pthread_mutex_lock(&b->mu);
	b->free[b->nfree++] = buf;
	pthread_mutex_unlock(&b->mu);
}

void bounce_fini(struct fs *fs)
{
	for (unsigned i = 0; i < fs->bounce.nmade; i++)
		free(fs->bounce.made[i]);
	pthread_mutex_destroy(&fs->bounce.mu);
}
