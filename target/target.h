/*
 * target: where a relocated file's data goes, behind one table of
 * operations: a file (any filesystem a directory reaches: local, NFS,
 * CephFS through ceph-fuse) or an RBD image in a Ceph pool (librbd).
 *
 * The layer's contract
 * --------------------
 * A target is a byte-addressed store with a size, like a file: reads past
 * the end return zeros up to the requested length (the callers read whole
 * blocks), writes past the end grow it, a punched range reads as zeros.
 * The delta store merges into a target, the copier writes a file's base
 * into it, verify reads it back, and after a cutover the FUSE layer serves
 * the file from it.  None of them asks which kind it drives; what only a
 * file has (a descriptor for copy_file_range, owner and extended
 * attributes) is reached through target_fd(), -1 for other kinds.
 *
 * Durability: a write is durable once target_sync() returned 0 after it
 * (fdatasync of the file; rbd_flush of the image).  A failed sync means
 * the target cannot vouch for anything written since the last good one.
 *
 * Threads and locking: every call may be made from any thread, concurrently
 * with any other on the same target, but target_put() dropping the last
 * reference (nothing else may run on the target then).  Concurrent writes
 * to overlapping ranges land in no defined order (the callers never issue
 * them: the delta store serialises a block's writers, the kernel a page's).
 * No lock of the caller's is taken here; callbacks run nowhere.
 *
 * Blocking: every I/O call blocks until the I/O is done.  An RBD target
 * issues a large request as several asynchronous ones to the cluster at
 * once and waits for all of them; an operation the cluster does not answer
 * within its timeout (rados_osd_op_timeout and rados_mon_op_timeout, 60 s
 * unless the Ceph configuration sets them) fails with -ETIMEDOUT, so that a
 * cluster that went away fails a copy instead of hanging it.  Opening a
 * connection waits client_mount_timeout (10 s unless configured).
 *
 * Errors: 0 or -errno; a full pool or cluster is -ENOSPC or -EDQUOT where
 * Ceph reports it, -ETIMEDOUT where it holds the writes back.
 *
 * Process: an RBD target holds a connection to its cluster (one per
 * configuration file and client name in a process, shared by its images)
 * that belongs to the process that opened it; a new worker process opens
 * its targets anew.  Nothing here is kept in shared memory.
 */
#ifndef RELOCFS_TARGET_H
#define RELOCFS_TARGET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>

struct target;

/* ---- the kinds ----------------------------------------------------------- */

/* A file open read-write (no O_DIRECT) as fd, taken over; name for messages. */
struct target *target_file_new(int fd, const char *name);

/* A target that could not be opened (a cluster that cannot be reached when
 * relocfs starts): every call fails with err (a negative errno), so that a
 * file whose data lives there is never served from anywhere else. */
struct target *target_failed_new(const char *name, int err);

/*
 * Where RBD images go: "rbd:POOL[/PREFIX][:conf=PATH][:id=NAME]", the form
 * relocctl builds from --to, --ceph-conf and --ceph-id and the mount's
 * record keeps (QEMU's rbd: filenames put options the same way).
 */
struct rbd_spec {
	char pool[128];
	char prefix[128];
	char conf[512];		/* "" for Ceph's default search */
	char id[64];		/* "" for "admin" */
};

/* Parse a spec; -EINVAL with one line in err. */
int rbd_spec_parse(const char *s, struct rbd_spec *sp, char *err, size_t errlen);
/* Format it back (canonical); malloc'd. */
char *rbd_spec_format(const struct rbd_spec *sp);
/* true if s names an RBD destination ("rbd:...") */
bool rbd_spec_is(const char *s);

/*
 * The image a file of the mount becomes: PREFIX, then the file's path
 * relative to the mount with every byte outside [A-Za-z0-9._+-] written
 * as %XX (so "vm.img" stays "vm.img" and "pool/a b.img" becomes
 * "pool%2Fa%20b.img": '/' and '@' mean pool and snapshot to Ceph).
 * malloc'd; NULL if the name would be longer than RBD allows.
 */
char *rbd_image_name(const struct rbd_spec *sp, const char *relpath);

/*
 * Before a job starts: can the cluster be reached, does the pool exist,
 * are the images free, is there room for 'bytes' in the pool?  Blocks for
 * up to the connection timeout.  0, or -errno with one line in err.
 */
int target_rbd_check(const struct rbd_spec *sp, const char *const *images, size_t n, uint64_t bytes,
	      char *err, size_t errlen);

/* Create the image (size bytes; -EEXIST if it exists) and open it, or open
 * an existing one (create false).  0 or -errno with one line in err. */
int target_rbd_open(struct target **out, const struct rbd_spec *sp, const char *image,
		    bool create, uint64_t size, char *err, size_t errlen);

/* Remove an image (closed everywhere in this process).  0, -ENOENT or
 * -errno. */
int target_rbd_remove(const struct rbd_spec *sp, const char *image);

/* ---- references ------------------------------------------------------------ */

void target_ref(struct target *t);
/* Drop a reference; the last one closes the file or the image. */
void target_put(struct target *t);

/* ---- I/O ------------------------------------------------------------------- */

/* All of len (zeros past the end).  0 or -errno. */
int target_pread(struct target *t, char *buf, size_t len, uint64_t off);
/* All of len, growing the target if need be.  0 or -errno. */
int target_pwrite(struct target *t, const char *buf, size_t len, uint64_t off);
/* Write only the 4 KiB blocks of buf that hold data; the others are left
 * as they are (holes in a new target).  For the base copy. */
int target_write_data(struct target *t, const char *buf, size_t len, uint64_t off);
/* Make [off, off+len) read as zeros, giving the space back where the kind
 * can (a hole; discarded objects); never changes the size. */
int target_punch(struct target *t, uint64_t off, uint64_t len);
/* fallocate(2) as a file takes it (mode 0, KEEP_SIZE, PUNCH_HOLE,
 * ZERO_RANGE), mapped to what the kind offers; -EOPNOTSUPP otherwise. */
int target_fallocate(struct target *t, int mode, uint64_t off, uint64_t len);
int target_resize(struct target *t, uint64_t size);
int target_size(struct target *t, uint64_t *size);
/* Make every write so far durable. */
int target_sync(struct target *t);
/* SEEK_DATA / SEEK_HOLE; -ENXIO at or past the end.  A kind that cannot
 * tell reports everything as data. */
int64_t target_seek(struct target *t, uint64_t off, int whence);
/* Drop cached pages of a range (after a base copy); best effort. */
void target_drop_cache(struct target *t, uint64_t off, uint64_t len);

/* ---- what a stat says ------------------------------------------------------- */

/*
 * What the target knows of the file besides its data.  For a file, its
 * stat; for an image, what relocfs keeps in the image's metadata
 * (relocfs.mode, relocfs.uid, relocfs.gid, relocfs.atime, relocfs.mtime,
 * relocfs.path) and the image's size.
 */
struct target_meta {
	uint64_t size;
	uint64_t blocks;	/* 512-byte units, an estimate for images */
	mode_t mode;
	uid_t uid;
	gid_t gid;
	struct timespec atime, mtime;
	bool have_owner;	/* mode, uid, gid were recorded */
};

int target_get_meta(struct target *t, struct target_meta *m);
/* Record mode, owner and times (and the file's path, for an image, if
 * path is not NULL).  For a file: fchmod, fchown, futimens. */
int target_set_meta(struct target *t, const struct target_meta *m, const char *path);

/* ---- the rest ---------------------------------------------------------------- */

/* The file's descriptor, or -1 for a target that is not a file. */
int target_fd(const struct target *t);
/* For messages: the file's name, or "POOL/IMAGE". */
const char *target_name(const struct target *t);

#endif
