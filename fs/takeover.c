/*
 * takeover: a worker after another on the same FUSE connection.
 *
 * The connection (the /dev/fuse descriptor) and the shared region outlive
 * the worker that mounted; a new worker (after a crash, or a hand-over)
 * takes them over in this order:
 *
 *   1. roll back the transaction the last worker left open (tx_recover), and
 *      build the worker's views of the node and handle slots (fs_new);
 *   2. carry the last worker's request records, apply the FORGETs it had
 *      read, and free the nodes only it referred to (takeover_tables);
 *   3. the daemon closes every descriptor that no slot and no part of the
 *      daemon names (fs_keep_fds): what a dead worker leaked;
 *   4. set libfuse up on the connection without a new INIT: the session
 *      reads and writes the existing descriptor, and the INIT request the
 *      first worker kept is processed again with its reply swallowed
 *      (libfuse 3.14 refuses every request before INIT);
 *   5. write FUSE_NOTIFY_RESEND, before the first read: the kernel then puts
 *      every request the last worker read and did not answer back in front
 *      of the queue, with FUSE_UNIQUE_RESEND set in its id (once.h).  Sent
 *      later, it would also resend requests this worker has read itself.
 *
 * On a kernel without FUSE_NOTIFY_RESEND (before Linux 6.9) the write fails
 * and the requests a dead worker had read wait for good: fs_takeover says so.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <linux/fuse.h>

#include "common/log.h"
#include "common/util.h"
#include "fs/fs_i.h"
#include "fs/once.h"

#ifndef FUSE_NOTIFY_RESEND
#define FUSE_NOTIFY_RESEND 7
#endif

int takeover_tables(struct fs *fs)
{
	struct itab *t = &fs->itab;
	int err = handles_adopt(fs);

	if (err)
		return err;
	once_recover(fs);
	/* nodes the last worker held only for itself (a walk, a job's file):
	 * the job engine takes its references again */
	for (uint64_t i = 1; i < t->r->nodes_hw && i < FS_NODES_MAX; i++) {
		struct rnode *n = t->by_slot[i];

		if (n && !t->r->nodes[i].nlookup && !n->refs) {
			n->refs++;
			itab_unref(t, n);
		}
	}
	return 0;
}

size_t fs_region_fds(void *region, int *keep, size_t max)
{
	struct fs_region *r = region;
	size_t k = 0;

	if (r->magic != FS_REGION_MAGIC)
		return 0;
	for (uint64_t i = 0; i < r->nodes_hw && i < FS_NODES_MAX && k < max; i++)
		if (r->nodes[i].state == SLOT_USED && r->nodes[i].fd != NO_FD)
			keep[k++] = (int)r->nodes[i].fd;
	for (uint64_t i = 0; i < r->handles_hw && i < FS_HANDLES_MAX && k + 2 <= max; i++) {
		if (r->handles[i].state != SLOT_USED)
			continue;
		if (r->handles[i].fd != NO_FD)
			keep[k++] = (int)r->handles[i].fd;
		if (r->handles[i].fd_buffered != NO_FD)
			keep[k++] = (int)r->handles[i].fd_buffered;
	}
	if (k < max && r->fuse_fd != NO_FD)
		keep[k++] = (int)r->fuse_fd;
	return k;
}

size_t fs_keep_fds(struct fs *fs, int *keep, size_t max)
{
	size_t k = itab_fds(&fs->itab, keep, max);

	k += handles_fds(fs, keep + k, max - k);
	if (k < max && fs->itab.r->fuse_fd != NO_FD)
		keep[k++] = (int)fs->itab.r->fuse_fd;
	return k;
}

/* A mount point as /proc/self/mountinfo writes it: octal escapes undone. */
static void unescape(char *s)
{
	char *d = s;

	for (; *s; s++, d++) {
		if (s[0] == '\\' && s[1] >= '0' && s[1] <= '3' && s[2] >= '0' && s[2] <= '7' &&
		    s[3] >= '0' && s[3] <= '7') {
			*d = (char)((s[1] - '0') << 6 | (s[2] - '0') << 3 | (s[3] - '0'));
			s += 3;
		} else {
			*d = *s;
		}
	}
	*d = 0;
}

int mount_info(const char *path, uint64_t *id, unsigned *maj, unsigned *min)
{
	char line[8192], mp[PATH_MAX];
	int found = -ENOENT;
	FILE *f = fopen("/proc/self/mountinfo", "re");

	if (!f)
		return -errno;
	/* "ID PARENT MAJ:MIN ROOT MOUNTPOINT ...": the last one there is on top */
	while (fgets(line, sizeof(line), f)) {
		unsigned long long i;
		unsigned a, b;

		if (sscanf(line, "%llu %*u %u:%u %*s %4095s", &i, &a, &b, mp) != 4)
			continue;
		unescape(mp);
		if (!strcmp(mp, path)) {
			*id = i;
			*maj = a;
			*min = b;
			found = 0;
		}
	}
	fclose(f);
	return found;
}

/*
 * The kernel gives a FUSE mount's dirty pages a strict share of the dirty
 * threshold (1 %), beyond which a writer waits for writeback at the rate the
 * daemon writes: with the writeback cache, 4 KiB random buffered writes ran
 * at about a third of native speed with it and at native speed without it
 * (docs/performance.md).  The limit protects a system from FUSE daemons it
 * cannot trust to write back; relocfs is the system's own storage service,
 * mounted by root, so it lifts the strict limit of its mount (the global
 * dirty limits and the mount's share of them above the background
 * threshold still apply).  Not being allowed to is said once.
 */
static void lift_strict_limit(unsigned maj, unsigned min)
{
	char knob[64];
	int err;

	snprintf(knob, sizeof(knob), "/sys/class/bdi/%u:%u/strict_limit", maj, min);
	err = sysfs_set_num(knob, 0);
	if (err)
		log_info("the kernel keeps this mount's strict limit of dirty pages (%s: %s): "
			 "buffered writes wait for relocfs sooner", knob, strerror(-err));
}

/*
 * With the writeback cache, cached files' backing files are read O_DIRECT
 * on ext4 and XFS (handle.c), so the source disk's readahead no longer runs
 * ahead of a sequential reader: the mount's own does, and a FUSE mount's is
 * 128 KiB where a disk's is often far more (8 MiB on a virtio disk here,
 * where 1 MiB buffered sequential reads through the mount ran at 0.6 of
 * native with 128 KiB and at native speed with 8 MiB).  So the mount reads
 * ahead as far as the disk under the source does, if that is further.
 */
static void match_readahead(unsigned maj, unsigned min, int root_fd)
{
	char knob[64];
	struct stat st;
	long disk, mine;
	int err;

	if (fstat(root_fd, &st) == -1)
		return;
	disk = block_queue_attr(st.st_dev, "read_ahead_kb");
	if (disk < 0)
		return;	/* no block device (NFS, tmpfs): backing files stay buffered */
	snprintf(knob, sizeof(knob), "/sys/class/bdi/%u:%u/read_ahead_kb", maj, min);
	mine = sysfs_num(knob);
	if (mine < 0 || disk <= mine)
		return;
	err = sysfs_set_num(knob, disk);
	if (err)
		log_info("the mount reads ahead %ld KiB, the source's disk %ld KiB (%s: %s)",
			 mine, disk, knob, strerror(-err));
}

int fs_mount(struct fs *fs, const char *mountpoint)
{
	char real[PATH_MAX];
	unsigned maj, min;
	uint64_t id;
	bool known;
	int fd;

	/* not once mounted: a path through the mount waits for this worker */
	known = realpath(mountpoint, real) != NULL;
	if (fuse_session_mount(fs->se, mountpoint))
		return -EIO;
	if (fs->cfg.writeback != 0 && known && mount_info(real, &id, &maj, &min) == 0) {
		lift_strict_limit(maj, min);
		match_readahead(maj, min, fs->cfg.root_fd);
	}
	fd = fuse_session_fd(fs->se);
	__atomic_store_n(&fs->itab.r->fuse_fd, (uint64_t)fd, __ATOMIC_RELEASE);
	return fs_attach_io(fs, fd);
}

int fs_takeover(struct fs *fs, bool resend)
{
	struct fuse_out_header oh = {
		.len = sizeof(oh),
		.error = FUSE_NOTIFY_RESEND,
		.unique = 0,
	};
	int fd = (int)fs->itab.r->fuse_fd;
	int err;

	if (fs->itab.r->fuse_fd == NO_FD)
		return -EBADF;
	err = fs_attach_io(fs, fd);
	if (!err)
		err = replay_init(fs);
	if (err)
		return err;
	if (resend && write(fd, &oh, sizeof(oh)) != (ssize_t)sizeof(oh)) {
		log_warnx("this kernel does not resend requests (FUSE_NOTIFY_RESEND: %s): requests "
			  "the last worker had read wait until the mount ends", strerror(errno));
		return -ENOTSUP;
	}
	return 0;
}
