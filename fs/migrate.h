/*
 * migrate: the I/O path of one file while it migrates.  fsops routes every
 * data request on a node whose node->mig is set here instead of to the
 * node's backing descriptor.  The file's latest data is "delta over lower":
 * the delta store (copier/delta.h) holds what the guest wrote since the
 * migration began; lower is the frozen source while the base is copied, and
 * the destination once it holds a full copy of the base.
 *
 * All calls are made with the node gated (one request in flight counted on
 * it) and may run concurrently with each other and with the copier.  They
 * return >= 0 or -errno.
 */
#ifndef RELOCFS_MIGRATE_H
#define RELOCFS_MIGRATE_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/stat.h>
#include <sys/types.h>

struct migration;

ssize_t mig_read(struct migration *m, char *buf, size_t len, off_t off);
ssize_t mig_write(struct migration *m, const char *buf, size_t len, off_t off);
int mig_truncate(struct migration *m, off_t size);
int mig_fallocate(struct migration *m, int mode, off_t off, off_t len);
int mig_fsync(struct migration *m, bool datasync);
off_t mig_lseek(struct migration *m, off_t off, int whence);

/* Fill size, blocks and times of the live view into st (stat of the source). */
void mig_getattr(struct migration *m, struct stat *st);

#endif
