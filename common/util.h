/*
 * util: small helpers every layer uses: formatted strings, path joining,
 * whole-buffer I/O, removing a tree and numbers from sysfs.  No state,
 * thread-safe.
 */
#ifndef RELOCFS_UTIL_H
#define RELOCFS_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* malloc'd printf; NULL on ENOMEM */
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* "a/b", or the other part when one is empty; malloc'd, NULL on ENOMEM */
char *path_join(const char *a, const char *b);

/* true if p is dir or lies below it (both canonical) */
bool path_within(const char *p, const char *dir);

/* "/proc/self/fd/N" for a descriptor (reopens an O_PATH descriptor) */
void fd_path(int fd, char buf[64]);

/* pread/pwrite all of len, restarting on EINTR and short counts; a read
 * past the end of the file fills the rest with zeros.  0 or -errno. */
int pread_full(int fd, char *buf, size_t len, off_t off);
int pwrite_full(int fd, const char *buf, size_t len, off_t off);

/* Remove everything below dirfd/name, then name itself (a file: unlink it).
 * 0 (also when name does not exist) or -errno of the last step. */
int rm_rf_at(int dirfd, const char *name);

/* Remove every entry of the directory dirfd but the one named keep (NULL:
 * none).  Best effort. */
void empty_dir(int dirfd, const char *keep);

/* The number a sysfs file holds, or -1 if it cannot be read. */
long sysfs_num(const char *path);
/* Write v into a sysfs file: 0 or -errno. */
int sysfs_set_num(const char *path, long v);

/* An attribute of block device dev's request queue (a partition's is its
 * disk's), e.g. "max_segments"; -1 where dev is no block device (NFS,
 * tmpfs, btrfs) or the attribute cannot be read. */
long block_queue_attr(dev_t dev, const char *attr);

#endif
