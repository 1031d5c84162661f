/*
 * target_i: the table of operations each kind of target fills in, and the
 * header every target starts with.  Not included outside target/.
 */
#ifndef RELOCFS_TARGET_I_H
#define RELOCFS_TARGET_I_H

#include "target/target.h"

struct target_ops {
	int (*pread)(struct target *t, char *buf, size_t len, uint64_t off);
	int (*pwrite)(struct target *t, const char *buf, size_t len, uint64_t off);
	/* the non-zero runs of buf (the generic code found them) */
	int (*write_runs)(struct target *t, const char *buf, const size_t (*runs)[2], size_t n,
			  uint64_t off);
	int (*punch)(struct target *t, uint64_t off, uint64_t len);
	int (*fallocate)(struct target *t, int mode, uint64_t off, uint64_t len);
	int (*resize)(struct target *t, uint64_t size);
	int (*size)(struct target *t, uint64_t *size);
	int (*sync)(struct target *t);
	int64_t (*seek)(struct target *t, uint64_t off, int whence);
	void (*drop_cache)(struct target *t, uint64_t off, uint64_t len);
	int (*get_meta)(struct target *t, struct target_meta *m);
	int (*set_meta)(struct target *t, const struct target_meta *m, const char *path);
	void (*close)(struct target *t);
};

struct target {
	const struct target_ops *ops;
	unsigned refs;			/* atomic */
	int fd;				/* a file's; -1 for other kinds */
	char *name;
};

#endif
