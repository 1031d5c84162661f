/*
 * relocate: the relocation job: migrate, cutover, abort, status, verify,
 * and picking a job up again after a restart (see relocate.h).
 *
 * A job moves either the whole served tree (no FILE arguments) or some
 * regular files.  While a whole-tree job runs, the tree's names are pinned
 * (creating, removing and renaming entries fail with EBUSY) while the data
 * of every file keeps changing; a files job pins only its files' names.
 *
 * Order of a cutover (the hold is the only time guest I/O waits):
 *   1. wait until every file is ready (little left to merge);
 *   2. merge and sync the destinations until a sync finds little to do;
 *      write the next record ("state.next", synced); commit and merge the
 *      delta records written meanwhile and sync again: all while the guest
 *      runs;
 *   3. pause the VMs with the hooks (none: relocfs's own hold only);
 *   4. hold the files (new requests are parked, in-flight ones drain);
 *   5. merge the blocks written since step 2, durable records or not, and
 *      fix sizes and holes (mig_finish_target): no sync, no commit;
 *   6. point every node and open handle at the destination;
 *   7. release the hold (parked requests are served from the destination);
 *   8. resume the VMs; sync the destinations, rename the next record over
 *      the mount's record (the commit point) and sync its directory; no
 *      flush is acknowledged before (reloc_flush_barrier);
 *   9. remove the delta store (and the source, if asked).
 * A failure before 6 releases everything on the source and reports; after
 * it the switch is done whatever else fails.  A restart that finds the next
 * record (a crash before the commit point was durable) rolls the job back to
 * the source; after it, the destination is served.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/xattr.h>
#include <linux/openat2.h>
#include <time.h>
#include <unistd.h>

#include "copier/copier.h"
#include "fs/crashpoint.h"
#include "fs/fsops.h"
#include "fs/inode.h"
#include "fs/log.h"
#include "fs/migrate.h"
#include "fs/mount_state.h"
#include "fs/reloc.h"
#include "fs/relocate.h"
#include "vmhooks/vmhook.h"

#define STATE_DIR ".relocfs"
#define DEFAULT_CUTOVER_TIMEOUT_S 60.0
#define HOLD_DRAIN_US (10u * 1000000)	/* requests in flight must finish within this */

struct entry {
	dev_t dev;
	ino_t ino;
	char *relpath;		/* "" for the root */
};

struct job {
	uint64_t id;
	bool tree;
	char *dest;		/* canonical */
	char *delta_dir;	/* this job's directory of delta files */
	uint64_t rate;
	int dest_fd;		/* O_RDONLY directory; -1 when it was lost (restart) */
	int delta_fd;		/* O_RDONLY directory */
	bool dest_lost;		/* a restart could not open the destination */
	size_t n;
	struct migration **files;
	struct copier *copier;
	size_t nentries;	/* tree jobs: every entry, for the switch */
	struct entry *entries;
};

struct override {
	char *relpath;
	char *backend;
	dev_t pdev;		/* the directory that holds the name */
	ino_t pino;
	const char *name;	/* in relpath */
	size_t nanc;		/* directories from the root down to the parent */
	dev_t *adev;
	ino_t *aino;
};

struct done_file {
	char *path;
	char *backend;
	uint64_t size;
	char state[16];
};

static struct {
	pthread_mutex_t cmd_lock;	/* serialises migrate, cutover, abort */
	pthread_mutex_t lock;		/* protects the fields below */
	int state_fd;			/* SOURCE/.relocfs, O_RDONLY; -1 until needed */
	int source_fd;			/* O_PATH on SOURCE */
	char *source;			/* SOURCE_DIR, canonical */
	char *mountpoint;
	char *root;			/* the directory served now */
	int root_fd;			/* O_PATH on it */
	struct mount_state ms;
	struct job *job;
	struct override *ovr;
	size_t novr;
	struct done_file *done;		/* files of the last finished job, for status */
	size_t ndone;
	uint64_t last_hold_us;
	char last_hooks[512];		/* "spec=ms, ..." of the last cutover */
} R = {
	.cmd_lock = PTHREAD_MUTEX_INITIALIZER,
	.lock = PTHREAD_MUTEX_INITIALIZER,
	.state_fd = -1,
	.source_fd = -1,
	.root_fd = -1,
};

static bool job_dest_ok(struct job *j);

/* set when a cutover switched but could not make that durable: the record
 * on disk (with the cutover's next record beside it) must stay as it is, so
 * that a restart rolls back to the source */
static bool record_frozen;

static int save_record(void)
{
	return record_frozen ? -EIO : ms_save(R.state_fd, &R.ms);
}

static uint64_t now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

static char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *xasprintf(const char *fmt, ...)
{
	va_list ap;
	char *s = NULL;

	va_start(ap, fmt);
	if (vasprintf(&s, fmt, ap) < 0)
		s = NULL;
	va_end(ap);
	return s;
}

static char *path_join(const char *a, const char *b)
{
	if (!*b)
		return strdup(a);
	if (!*a)
		return strdup(b);
	return xasprintf("%s/%s", a, b);
}

/* Remove everything below dirfd/name, then name itself. */
static int rm_rf_at(int dirfd, const char *name)
{
	int fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	DIR *d;
	struct dirent *de;

	if (fd == -1) {
		if (errno == ENOTDIR || errno == ELOOP)
			return unlinkat(dirfd, name, 0) == -1 ? -errno : 0;
		return errno == ENOENT ? 0 : -errno;
	}
	d = fdopendir(fd);
	if (!d) {
		close(fd);
		return -errno;
	}
	while ((de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if (de->d_type == DT_DIR)
			rm_rf_at(fd, de->d_name);
		else
			unlinkat(fd, de->d_name, 0);
	}
	closedir(d);
	return unlinkat(dirfd, name, AT_REMOVEDIR) == -1 && errno != ENOENT ? -errno : 0;
}

/*
 * Paths under SOURCE_DIR are hidden by the mount when relocfs is mounted over
 * its source: reach them through the descriptor opened before mounting.
 * Returns the path to use with *at() calls relative to *dirfd.
 */
static const char *path_at(const char *path, int *dirfd)
{
	size_t l = strlen(R.source);

	if (!strncmp(path, R.source, l) && (path[l] == '/' || path[l] == '\0')) {
		*dirfd = R.source_fd;
		return path[l] ? path + l + 1 : ".";
	}
	*dirfd = AT_FDCWD;
	return path;
}

static int open_dir(const char *path, int flags)
{
	int dfd;
	const char *rel = path_at(path, &dfd);
	int fd = openat(dfd, rel, flags | O_DIRECTORY | O_CLOEXEC);

	return fd == -1 ? -errno : fd;
}

static int mkdir_path(const char *path, mode_t mode)
{
	int dfd;
	const char *rel = path_at(path, &dfd);

	return mkdirat(dfd, rel, mode) == -1 && errno != EEXIST ? -errno : 0;
}

static int rm_rf_path(const char *path)
{
	int dfd;
	const char *rel = path_at(path, &dfd);

	return rm_rf_at(dfd, rel);
}

/* Copy owner, mode, times and extended attributes of src to dst (O_PATH or
 * real descriptors; symlinks get owner and times only). */
static int copy_meta(int src, int dst, const struct timespec *mtime)
{
	char sp[64], dp[64];
	struct stat st;
	struct timespec tv[2];

	if (fstatat(src, "", &st, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) == -1)
		return -errno;
	if (fchownat(dst, "", st.st_uid, st.st_gid, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) == -1)
		return -errno;
	if (S_ISLNK(st.st_mode))
		return 0;
	fd_path(src, sp);
	fd_path(dst, dp);
	if (chmod(dp, st.st_mode & 07777) == -1)
		return -errno;
	{
		char names[8192];
		ssize_t len = listxattr(sp, names, sizeof(names));

		for (ssize_t i = 0; len > 0 && i < len; i += (ssize_t)strlen(names + i) + 1) {
			char val[65536];
			ssize_t vl = getxattr(sp, names + i, val, sizeof(val));

			if (vl >= 0 && setxattr(dp, names + i, val, (size_t)vl, 0) == -1 &&
			    errno != ENOTSUP && errno != EPERM)
				return -errno;
		}
	}
	tv[0] = st.st_atim;
	tv[1] = mtime ? *mtime : st.st_mtim;
	if (utimensat(AT_FDCWD, dp, tv, 0) == -1)
		return -errno;
	return 0;
}

/* ---- overrides (files relocated on their own) -------------------------------- */

static void override_free(struct override *o)
{
	free(o->relpath);
	free(o->backend);
	free(o->adev);
	free(o->aino);
}

/* Resolve relpath's directories from the served root; caller holds R.lock. */
static int override_resolve(struct override *o, int root_fd)
{
	char *copy = strdup(o->relpath), *p, *slash;
	int fd = dup(root_fd), err = 0;

	if (!copy || fd == -1) {
		free(copy);
		if (fd != -1)
			close(fd);
		return -ENOMEM;
	}
	o->name = strrchr(o->relpath, '/') ? strrchr(o->relpath, '/') + 1 : o->relpath;
	for (p = copy;; p = slash + 1) {
		struct stat st;
		int nfd;

		if (fstatat(fd, "", &st, AT_EMPTY_PATH) == -1) {
			err = -errno;
			break;
		}
		o->adev = realloc(o->adev, (o->nanc + 1) * sizeof(*o->adev));
		o->aino = realloc(o->aino, (o->nanc + 1) * sizeof(*o->aino));
		if (!o->adev || !o->aino) {
			err = -ENOMEM;
			break;
		}
		o->adev[o->nanc] = st.st_dev;
		o->aino[o->nanc] = st.st_ino;
		o->nanc++;
		o->pdev = st.st_dev;
		o->pino = st.st_ino;
		slash = strchr(p, '/');
		if (!slash)
			break;
		*slash = '\0';
		nfd = openat(fd, p, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (nfd == -1) {
			err = -errno;
			break;
		}
		close(fd);
		fd = nfd;
	}
	close(fd);
	free(copy);
	return err;
}

int reloc_override_open(struct rnode *parent, const char *name)
{
	int fd = -ENOENT;

	if (!__atomic_load_n(&R.novr, __ATOMIC_ACQUIRE))
		return -ENOENT;
	pthread_mutex_lock(&R.lock);
	for (size_t i = 0; i < R.novr; i++) {
		struct override *o = &R.ovr[i];

		if (o->pdev == parent->dev && o->pino == parent->ino && !strcmp(o->name, name)) {
			char *p = path_join(o->backend, o->relpath);

			fd = p ? open(p, O_PATH | O_NOFOLLOW | O_CLOEXEC) : -1;
			fd = fd == -1 ? -errno : fd;
			free(p);
			break;
		}
	}
	pthread_mutex_unlock(&R.lock);
	return fd;
}

static int overrides_to_ms(struct mount_state *ms)
{
	struct ms_override *a = calloc(R.novr ? R.novr : 1, sizeof(*a));

	if (!a)
		return -ENOMEM;
	for (size_t i = 0; i < R.novr; i++) {
		a[i].relpath = strdup(R.ovr[i].relpath);
		a[i].backend = strdup(R.ovr[i].backend);
	}
	for (size_t i = 0; i < ms->noverrides; i++) {
		free(ms->overrides[i].relpath);
		free(ms->overrides[i].backend);
	}
	free(ms->overrides);
	ms->overrides = a;
	ms->noverrides = R.novr;
	return 0;
}

void reloc_override_removed(struct rnode *parent, const char *name)
{
	pthread_mutex_lock(&R.lock);
	for (size_t i = 0; i < R.novr; i++) {
		struct override *o = &R.ovr[i];

		if (o->pdev == parent->dev && o->pino == parent->ino && !strcmp(o->name, name)) {
			override_free(o);
			R.ovr[i] = R.ovr[R.novr - 1];
			__atomic_store_n(&R.novr, R.novr - 1, __ATOMIC_RELEASE);
			if (overrides_to_ms(&R.ms) == 0 && R.state_fd != -1)
				save_record();
			break;
		}
	}
	pthread_mutex_unlock(&R.lock);
}

/* ---- the namespace ------------------------------------------------------------ */

bool reloc_hidden_name(struct rnode *parent, const char *name)
{
	return parent == itab_root() && strcmp(name, STATE_DIR) == 0;
}

int reloc_namespace_check(struct rnode *parent, const char *name, bool creates)
{
	struct stat st;
	int err = 0;

	pthread_mutex_lock(&R.lock);
	if (!R.job && !R.novr)
		goto out;
	if (R.job && R.job->tree) {
		err = -EBUSY;
		goto out;
	}
	if (fstatat(parent->fd, name, &st, AT_SYMLINK_NOFOLLOW) == -1)
		goto out;	/* a new name pins nothing */
	if (R.job) {
		for (size_t i = 0; i < R.job->n; i++) {
			struct rnode *n = R.job->files[i]->node;

			if (n && n->dev == st.st_dev && n->ino == st.st_ino) {
				err = -EBUSY;
				goto out;
			}
		}
	}
	for (size_t i = 0; i < R.novr; i++) {
		struct override *o = &R.ovr[i];

		if (S_ISDIR(st.st_mode)) {
			for (size_t k = 1; k < o->nanc; k++)
				if (o->adev[k] == st.st_dev && o->aino[k] == st.st_ino)
					err = -EBUSY;	/* would move a relocated file's path */
		} else if (!creates && o->pdev == parent->dev && o->pino == parent->ino &&
			   !strcmp(o->name, name)) {
			err = -EXDEV;	/* lives on another backend */
		} else if (creates && o->pdev == parent->dev && o->pino == parent->ino &&
			   !strcmp(o->name, name)) {
			err = -EBUSY;
		}
	}
out:
	pthread_mutex_unlock(&R.lock);
	return err;
}

/* ---- jobs ------------------------------------------------------------------------ */

/* The job's copier is read by status under R.lock: swap it under the lock,
 * stop or start it outside. */
static void job_copier_stop(struct job *j)
{
	struct copier *c;

	pthread_mutex_lock(&R.lock);
	c = j->copier;
	j->copier = NULL;
	pthread_mutex_unlock(&R.lock);
	copier_stop(c);
}

static int job_copier_start(struct job *j)
{
	struct copier *c = NULL;
	int r;

	if (j->copier)
		return 0;
	r = copier_start(&c, j->files, j->n, j->rate);
	pthread_mutex_lock(&R.lock);
	j->copier = c;
	pthread_mutex_unlock(&R.lock);
	return r;
}

static void job_free(struct job *j, bool unlink_delta)
{
	if (!j)
		return;
	copier_stop(j->copier);
	for (size_t i = 0; i < j->n; i++) {
		struct migration *m = j->files[i];

		if (!m)
			continue;
		if (m->node)
			itab_unref(m->node);
		mig_free(m, unlink_delta);
	}
	free(j->files);
	for (size_t i = 0; i < j->nentries; i++)
		free(j->entries[i].relpath);
	free(j->entries);
	if (j->dest_fd != -1)
		close(j->dest_fd);
	if (j->delta_fd != -1)
		close(j->delta_fd);
	free(j->dest);
	free(j->delta_dir);
	free(j);
}

static int job_add_entry(struct job *j, const struct stat *st, const char *rel)
{
	struct entry *e;

	for (size_t i = 0; i < j->nentries; i++)
		if (j->entries[i].dev == st->st_dev && j->entries[i].ino == st->st_ino)
			return 1;	/* a hard link seen before */
	e = realloc(j->entries, (j->nentries + 1) * sizeof(*e));
	if (!e)
		return -ENOMEM;
	j->entries = e;
	e[j->nentries].dev = st->st_dev;
	e[j->nentries].ino = st->st_ino;
	e[j->nentries].relpath = strdup(rel);
	if (!e[j->nentries].relpath)
		return -ENOMEM;
	j->nentries++;
	return 0;
}

static const char *job_entry_path(struct job *j, dev_t dev, ino_t ino)
{
	for (size_t i = 0; i < j->nentries; i++)
		if (j->entries[i].dev == dev && j->entries[i].ino == ino)
			return j->entries[i].relpath;
	return NULL;
}

/* Where a file's base lives: its override, or the served root. */
static int open_source_file(const char *rel, int flags)
{
	char *p = NULL;
	int fd;

	for (size_t i = 0; i < R.novr; i++)
		if (!strcmp(R.ovr[i].relpath, rel))
			p = path_join(R.ovr[i].backend, rel);
	if (!p) {
		/* below the served root, with no symlink on the way (a FILE
		 * argument must not lead out of the tree) */
		struct open_how how = {
			.flags = (uint64_t)(flags | O_NOFOLLOW | O_CLOEXEC),
			.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS,
		};

		fd = (int)syscall(SYS_openat2, R.root_fd, rel, &how, sizeof(how));
		return fd == -1 ? (errno == ELOOP || errno == EXDEV ? -EXDEV : -errno) : fd;
	}
	{
		int dfd;
		const char *at = path_at(p, &dfd);

		fd = openat(dfd, at, flags | O_NOFOLLOW | O_CLOEXEC);
	}
	free(p);
	return fd == -1 ? -errno : fd;
}

struct walk {
	struct job *job;
	bool create;		/* make the destination tree (false: a restart) */
	char **files;		/* regular files found, relpaths */
	size_t nfiles;
	uint64_t bytes;		/* their allocated size */
	char err[512];
};

/* Walk the served tree below rel; mirror directories, links and special
 * files into the destination; collect regular files. */
static int walk_tree(struct walk *w, int sdir, int ddir, const char *rel)
{
	int fd = openat(sdir, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC), err = 0;
	struct dirent *de;
	DIR *d;

	if (fd == -1)
		return -errno;
	d = fdopendir(fd);
	if (!d) {
		close(fd);
		return -errno;
	}
	while (!err && (de = readdir(d))) {
		const char *nm = de->d_name;
		struct stat st;
		char *crel;

		if (!strcmp(nm, ".") || !strcmp(nm, "..") || (!*rel && !strcmp(nm, STATE_DIR)))
			continue;
		if (fstatat(fd, nm, &st, AT_SYMLINK_NOFOLLOW) == -1) {
			err = -errno;
			break;
		}
		crel = path_join(rel, nm);
		if (!crel) {
			err = -ENOMEM;
			break;
		}
		err = job_add_entry(w->job, &st, crel);
		if (err == 1) {
			/* a hard link: link the destination too */
			const char *first = job_entry_path(w->job, st.st_dev, st.st_ino);

			err = 0;
			if (w->create && linkat(w->job->dest_fd, first, w->job->dest_fd, crel, 0) == -1)
				err = -errno;
		} else if (!err && S_ISDIR(st.st_mode)) {
			int sfd = openat(fd, nm, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC), dfd;

			if (w->create && mkdirat(ddir, nm, st.st_mode & 07777) == -1)
				err = -errno;
			dfd = err ? -1 : openat(ddir, nm, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
			if (!err && (sfd == -1 || dfd == -1))
				err = -errno;
			if (!err && w->create)
				fchownat(dfd, "", st.st_uid, st.st_gid, AT_EMPTY_PATH);
			if (!err)
				err = walk_tree(w, sfd, dfd, crel);
			if (sfd != -1)
				close(sfd);
			if (dfd != -1)
				close(dfd);
		} else if (!err && S_ISREG(st.st_mode)) {
			char **nf = realloc(w->files, (w->nfiles + 1) * sizeof(*nf));

			if (!nf) {
				err = -ENOMEM;
			} else {
				w->files = nf;
				w->files[w->nfiles++] = strdup(crel);
				w->bytes += (uint64_t)st.st_blocks * 512;
			}
			/* create it now, so that hard links to it can follow */
			if (!err && w->create) {
				int dfd = openat(ddir, nm, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);

				if (dfd == -1)
					err = -errno;
				else
					close(dfd);
			}
		} else if (!err && S_ISLNK(st.st_mode) && w->create) {
			char target[PATH_MAX + 1];
			ssize_t l = readlinkat(fd, nm, target, PATH_MAX);

			if (l < 0 || (target[l] = '\0', symlinkat(target, ddir, nm) == -1))
				err = -errno;
			else
				fchownat(ddir, nm, st.st_uid, st.st_gid, AT_SYMLINK_NOFOLLOW);
		} else if (!err && w->create && !S_ISLNK(st.st_mode)) {
			if (mknodat(ddir, nm, st.st_mode, st.st_rdev) == -1)
				err = -errno;
			else
				fchownat(ddir, nm, st.st_uid, st.st_gid, AT_SYMLINK_NOFOLLOW);
		}
		if (err && !w->err[0])
			snprintf(w->err, sizeof(w->err), "'%s': %s", crel, strerror(-err));
		free(crel);
	}
	closedir(d);
	return err;
}

/* The node of a file, with a daemon reference (made if the kernel has none). */
static struct rnode *node_for(const char *rel)
{
	struct stat st;
	struct rnode *n;
	int fd = open_source_file(rel, O_PATH);

	if (fd < 0)
		return NULL;
	if (fstatat(fd, "", &st, AT_EMPTY_PATH) == -1) {
		close(fd);
		return NULL;
	}
	n = itab_lookup(fd, &st);
	if (!n)
		return NULL;
	itab_ref(n);
	itab_forget(n, 1);
	return n;
}

/* Create the destination file, delta store and migration of one file. */
static int job_add_file(struct job *j, const char *rel, bool create, char *err, size_t errlen)
{
	struct migration *m, **nf;
	int src, dst, r;

	src = open_source_file(rel, O_RDWR);
	if (src < 0) {
		snprintf(err, errlen, "cannot open '%s': %s", rel, strerror(-src));
		return src;
	}
	/* tree jobs made the file during the walk; files jobs make it here */
	dst = j->dest_lost ? -1 : openat(j->dest_fd, rel, O_RDWR | O_CLOEXEC | O_NOFOLLOW |
				(create && !j->tree ? O_CREAT | O_EXCL : 0), 0600);
	if (dst == -1 && !create) {
		/* a restart: the source and the delta store are all a roll
		 * back needs; the caller rolls the job back */
		if (!j->dest_lost)
			log_warnx("cannot open '%s/%s': %s", j->dest, rel, strerror(errno));
		j->dest_lost = true;
	} else if (dst == -1) {
		r = -errno;
		snprintf(err, errlen, "cannot %s '%s/%s': %s", create ? "create" : "open", j->dest, rel,
			 strerror(errno));
		close(src);
		return r;
	}
	r = create ? mig_create(&m, rel, (unsigned)j->n, src, dst, j->delta_fd)
		   : mig_open(&m, rel, (unsigned)j->n, src, dst, j->delta_fd);
	if (r) {
		snprintf(err, errlen, "cannot %s the delta store of '%s' in '%s': %s",
			 create ? "create" : "open", rel, j->delta_dir, strerror(-r));
		close(src);
		if (dst != -1)
			close(dst);
		return r;
	}
	nf = realloc(j->files, (j->n + 1) * sizeof(*nf));
	if (!nf) {
		mig_free(m, create);
		return -ENOMEM;
	}
	j->files = nf;
	j->files[j->n++] = m;
	return 0;
}

static int state_dir(void)
{
	if (R.state_fd != -1)
		return R.state_fd;
	if (mkdirat(R.source_fd, STATE_DIR, 0700) == -1 && errno != EEXIST)
		return -errno;
	R.state_fd = openat(R.source_fd, STATE_DIR, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	return R.state_fd == -1 ? -errno : R.state_fd;
}

/* The job as the state record has it. */
static int job_to_ms(struct mount_state *ms, struct job *j)
{
	for (size_t i = 0; i < ms->nfiles; i++)
		free(ms->files[i]);
	free(ms->files);
	free(ms->dest);
	free(ms->delta_dir);
	ms->files = NULL;
	ms->nfiles = 0;
	ms->dest = ms->delta_dir = NULL;
	ms->job = j != NULL;
	if (!j)
		return 0;
	ms->job_id = j->id;
	ms->tree = j->tree;
	ms->rate = j->rate;
	ms->dest = strdup(j->dest);
	ms->delta_dir = strdup(j->delta_dir);
	ms->files = calloc(j->n ? j->n : 1, sizeof(char *));
	if (!ms->dest || !ms->delta_dir || !ms->files)
		return -ENOMEM;
	for (size_t i = 0; i < j->n; i++)
		if (!(ms->files[i] = strdup(j->files[i]->relpath)))
			return -ENOMEM;
	ms->nfiles = j->n;
	return 0;
}

static int ms_add_cleanup(struct mount_state *ms, const char *dir)
{
	char **c = realloc(ms->cleanup, (ms->ncleanup + 1) * sizeof(*c));

	if (!c)
		return -ENOMEM;
	ms->cleanup = c;
	if (!(c[ms->ncleanup] = strdup(dir)))
		return -ENOMEM;
	ms->ncleanup++;
	return 0;
}

static void run_cleanup(void)
{
	for (size_t i = 0; i < R.ms.ncleanup; i++) {
		int err = rm_rf_path(R.ms.cleanup[i]);

		if (err && err != -ENOENT)
			log_warnx("cannot remove '%s': %s", R.ms.cleanup[i], strerror(-err));
		free(R.ms.cleanup[i]);
	}
	free(R.ms.cleanup);
	R.ms.cleanup = NULL;
	R.ms.ncleanup = 0;
	if (R.state_fd != -1)
		save_record();
}

/* Remove everything in the directory dirfd but relocfs's own state. */
static void empty_tree(int dirfd)
{
	int fd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *d = fd == -1 ? NULL : fdopendir(fd);
	struct dirent *de;

	while (d && (de = readdir(d)))
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..") &&
		    strcmp(de->d_name, STATE_DIR))
			rm_rf_at(fd, de->d_name);
	if (d)
		closedir(d);
	else if (fd != -1)
		close(fd);
}

/* remove what the job created in the destination (files, then directories) */
static void remove_dest(struct job *j)
{
	if (j->tree) {
		/* the destination was empty when the job began: all of it is ours */
		empty_tree(j->dest_fd);
		return;
	}
	for (size_t i = 0; i < j->n; i++)
		unlinkat(j->dest_fd, j->files[i]->relpath, 0);
	/* the directories a files job made, deepest first */
	for (size_t i = j->nentries; i-- > 0;)
		unlinkat(j->dest_fd, j->entries[i].relpath, AT_REMOVEDIR);
}

/* The record's clean-up list gets what the job put in DEST: its files (a
 * files job) or every entry of DEST (a tree job, whose DEST was empty). */
static void add_dest_cleanup(struct job *j)
{
	if (j->dest_lost)
		return;	/* left there, and the operator told so */
	if (!j->tree) {
		for (size_t i = 0; i < j->n; i++) {
			char *p = path_join(j->dest, j->files[i]->relpath);

			if (p)
				ms_add_cleanup(&R.ms, p);
			free(p);
		}
		return;
	}
	int fd = openat(j->dest_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *d = fd == -1 ? NULL : fdopendir(fd);
	struct dirent *de;

	while (d && (de = readdir(d))) {
		char *p;

		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if ((p = path_join(j->dest, de->d_name)))
			ms_add_cleanup(&R.ms, p);
		free(p);
	}
	if (d)
		closedir(d);
	else if (fd != -1)
		close(fd);
}

/* ---- migrate ------------------------------------------------------------------------ */

#define FAIL(code, ...) do { *out = xasprintf(__VA_ARGS__); ret = code; goto fail; } while (0)

static bool path_within(const char *p, const char *dir)
{
	size_t l = strlen(dir);

	return !strcmp(p, dir) || (!strncmp(p, dir, l) && (p[l] == '/' || !strcmp(dir, "/")));
}

/* A FILE argument: relative, no "..", no symlinks on the way, a regular file. */
static int check_file_arg(const char *f, char **out)
{
	char *copy;
	int ret = 0;

	if (f[0] == '/')
		return *out = xasprintf("'%s' is outside the mount (give a path relative to it)", f),
		       CTL_EUSAGE;
	copy = strdup(f);
	for (char *s = copy, *t; s; s = t) {
		t = strchr(s, '/');
		if (t)
			*t++ = '\0';
		if (!strcmp(s, "..") || (!*s && t)) {
			*out = xasprintf("'%s': file names may not contain '..' or empty parts", f);
			ret = CTL_EUSAGE;
			break;
		}
		if (!strcmp(s, STATE_DIR) && s == copy) {
			*out = xasprintf("'%s' is relocfs's own state", f);
			ret = CTL_EUSAGE;
			break;
		}
	}
	free(copy);
	return ret;
}

static int cmd_migrate(const struct ctl_request *req, char **out)
{
	char dest[PATH_MAX], deltabase[PATH_MAX], *jobdir = NULL, err[512] = "";
	struct walk w = { 0 };
	struct job *j = NULL;
	struct rnode **nodes = NULL;
	struct statvfs sv;
	int ret = CTL_EFAIL, r;

	if (R.job)
		FAIL(CTL_EFAIL, "a migration is already in progress (%zu file(s) to '%s'): wait, cut over "
			     "or abort it first", R.job->n, R.job->dest);
	if (req->to[0] != '/')
		FAIL(CTL_EUSAGE, "destination '%s' must be an absolute path", req->to);
	if (!realpath(req->to, dest)) {
		/* a destination that does not exist yet: its parent must */
		char parent[PATH_MAX], *copy = strdup(req->to), *base = copy ? strrchr(copy, '/') : NULL;

		if (errno != ENOENT || !base || !base[1]) {
			free(copy);
			FAIL(CTL_EFAIL, "cannot use destination '%s': %s", req->to, strerror(errno));
		}
		*base++ = '\0';
		if (!realpath(*copy ? copy : "/", parent) ||
		    snprintf(dest, sizeof(dest), "%s/%s", strcmp(parent, "/") ? parent : "", base) >=
			    (int)sizeof(dest)) {
			free(copy);
			FAIL(CTL_EFAIL, "cannot use destination '%s': %s", req->to, strerror(errno));
		}
		free(copy);
	}
	if (path_within(dest, R.mountpoint))
		FAIL(CTL_EUSAGE, "destination '%s' is inside the mount '%s'", dest, R.mountpoint);
	if (path_within(dest, R.root) || path_within(R.root, dest))
		FAIL(CTL_EUSAGE, "destination '%s' overlaps the source tree '%s'", dest, R.root);
	if (mkdir(dest, 0755) == -1 && errno != EEXIST)
		FAIL(CTL_EFAIL, "cannot create destination '%s': %s", dest, strerror(errno));
	for (int i = 0; i < req->nfiles; i++) {
		ret = check_file_arg(req->files[i], out);
		if (ret)
			goto fail;
		for (int k = 0; k < i; k++)
			if (!strcmp(req->files[k], req->files[i]))
				FAIL(CTL_EUSAGE, "'%s' is named twice", req->files[i]);
	}
	ret = CTL_EFAIL;
	if (req->delta_dir) {
		if (req->delta_dir[0] != '/' || !realpath(req->delta_dir, deltabase))
			FAIL(CTL_EUSAGE, "cannot use delta directory '%s': %s", req->delta_dir,
			     req->delta_dir[0] != '/' ? "not an absolute path" : strerror(errno));
		if (path_within(deltabase, R.mountpoint))
			FAIL(CTL_EUSAGE, "delta directory '%s' is inside the mount", deltabase);
	} else {
		char p[PATH_MAX];

		snprintf(p, sizeof(p), "%s/%s", R.root, STATE_DIR);
		mkdir_path(p, 0700);
		snprintf(deltabase, sizeof(deltabase), "%s/%s/delta", R.root, STATE_DIR);
		r = mkdir_path(deltabase, 0700);
		if (r)
			FAIL(CTL_EFAIL, "cannot create '%s': %s", deltabase, strerror(-r));
	}
	r = state_dir();
	if (r < 0)
		FAIL(CTL_EFAIL, "cannot create the state directory in '%s': %s", R.source, strerror(-r));

	j = calloc(1, sizeof(*j));
	if (!j)
		FAIL(CTL_EFAIL, "out of memory");
	j->dest_fd = j->delta_fd = -1;
	j->id = (uint64_t)time(NULL);
	j->tree = req->nfiles == 0;
	j->rate = req->rate;
	j->dest = strdup(dest);
	jobdir = xasprintf("%s/job-%" PRIu64, deltabase, j->id);
	j->delta_dir = jobdir ? strdup(jobdir) : NULL;
	if (!j->dest || !j->delta_dir)
		FAIL(CTL_EFAIL, "out of memory");
	r = open_dir(dest, O_RDONLY);
	if (r < 0)
		FAIL(CTL_EFAIL, "cannot open destination '%s': %s", dest, strerror(-r));
	j->dest_fd = r;
	r = mkdir_path(jobdir, 0700);
	if (r)
		FAIL(CTL_EFAIL, "cannot create delta directory '%s': %s", jobdir, strerror(-r));
	r = open_dir(jobdir, O_RDONLY);
	if (r < 0)
		FAIL(CTL_EFAIL, "cannot open delta directory '%s': %s", jobdir, strerror(-r));
	j->delta_fd = r;

	/* the file list and the destination's directories */
	w.job = j;
	w.create = true;
	if (j->tree) {
		DIR *d = fdopendir(dup(j->dest_fd));
		struct dirent *de;
		bool empty = true;
		struct stat st;

		while (d && (de = readdir(d)))
			if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..") &&
			    strcmp(de->d_name, STATE_DIR))
				empty = false;
		if (d)
			closedir(d);
		if (!empty)
			FAIL(CTL_EFAIL, "destination '%s' is not empty", dest);
		if (fstatat(itab_root()->fd, "", &st, AT_EMPTY_PATH) == -1 ||
		    job_add_entry(j, &st, "") < 0)
			FAIL(CTL_EFAIL, "out of memory");
		r = walk_tree(&w, itab_root()->fd, j->dest_fd, "");
		if (r)
			FAIL(CTL_EFAIL, "cannot mirror the tree into '%s': %s", dest,
			     w.err[0] ? w.err : strerror(-r));
	} else {
		for (int i = 0; i < req->nfiles; i++) {
			struct stat st;
			int fd = open_source_file(req->files[i], O_PATH);
			char *slash, *dir;

			if (fd == -EXDEV)
				FAIL(CTL_EFAIL, "'%s' leads out of the tree or through a symlink",
				     req->files[i]);
			if (fd < 0)
				FAIL(CTL_EFAIL, "cannot open '%s': %s", req->files[i], strerror(-fd));
			r = fstatat(fd, "", &st, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW);
			close(fd);
			if (r == -1 || !S_ISREG(st.st_mode))
				FAIL(CTL_EUSAGE, "'%s' is not a regular file", req->files[i]);
			for (size_t k = 0; k < R.novr; k++)
				if (!strcmp(R.ovr[k].relpath, req->files[i]))
					FAIL(CTL_EFAIL, "'%s' was relocated on its own before; relocate the "
						     "whole tree to move it again", req->files[i]);
			/* the destination's parent directories */
			dir = strdup(req->files[i]);
			for (slash = strchr(dir, '/'); dir && slash; slash = strchr(slash + 1, '/')) {
				struct stat dst_st;

				*slash = '\0';
				/* remember what this job made, to remove it on abort */
				if (mkdirat(j->dest_fd, dir, 0755) == 0 &&
				    fstatat(j->dest_fd, dir, &dst_st, 0) == 0)
					job_add_entry(j, &dst_st, dir);
				*slash = '/';
			}
			free(dir);
			if (faccessat(j->dest_fd, req->files[i], F_OK, AT_SYMLINK_NOFOLLOW) == 0)
				FAIL(CTL_EFAIL, "'%s/%s' exists already", dest, req->files[i]);
			w.files = realloc(w.files, (w.nfiles + 1) * sizeof(char *));
			w.files[w.nfiles++] = strdup(req->files[i]);
			w.bytes += (uint64_t)st.st_blocks * 512;
		}
	}
	if (fstatvfs(j->dest_fd, &sv) == 0 && (uint64_t)sv.f_bavail * sv.f_frsize < w.bytes)
		FAIL(CTL_EFAIL, "destination '%s' has %" PRIu64 " bytes free, the files need %" PRIu64,
		     dest, (uint64_t)sv.f_bavail * sv.f_frsize, w.bytes);
	if (fstatvfs(j->delta_fd, &sv) == 0 &&
	    (uint64_t)sv.f_bavail * sv.f_frsize < w.nfiles * (uint64_t)MIG_JOURNAL_PREALLOC + (16u << 20))
		FAIL(CTL_EFAIL, "delta directory '%s' has %" PRIu64 " bytes free; %zu file(s) need at "
			     "least %" PRIu64 " to start (and room for what the guest writes)",
		     jobdir, (uint64_t)sv.f_bavail * sv.f_frsize, w.nfiles,
		     w.nfiles * (uint64_t)MIG_JOURNAL_PREALLOC + (16u << 20));
	for (size_t i = 0; i < w.nfiles; i++)
		if (job_add_file(j, w.files[i], true, err, sizeof(err)))
			FAIL(CTL_EFAIL, "%s", err);

	/* record the job before any write goes to a delta */
	pthread_mutex_lock(&R.lock);
	r = job_to_ms(&R.ms, j);
	if (!r)
		r = save_record();
	pthread_mutex_unlock(&R.lock);
	if (r)
		FAIL(CTL_EFAIL, "cannot write the state record in '%s/%s': %s", R.source, STATE_DIR,
		     strerror(-r));

	crashpoint("migrate-recorded");
	/* route the files through their delta stores: hold them so that the
	 * writes in flight land in the base before it is frozen */
	nodes = calloc(j->n ? j->n : 1, sizeof(*nodes));
	for (size_t i = 0; nodes && i < j->n; i++)
		nodes[i] = j->files[i]->node = node_for(j->files[i]->relpath);
	for (size_t i = 0; nodes && i < j->n; i++)
		if (!nodes[i])
			FAIL(CTL_EFAIL, "cannot look up '%s'", j->files[i]->relpath);
	if (!nodes)
		FAIL(CTL_EFAIL, "out of memory");
	r = fs_hold(j->tree, nodes, j->n, HOLD_DRAIN_US);
	if (r)
		FAIL(CTL_EFAIL, "requests in flight did not finish within %u s; nothing started",
		     HOLD_DRAIN_US / 1000000);
	pthread_mutex_lock(&R.lock);
	R.job = j;
	pthread_mutex_unlock(&R.lock);
	for (size_t i = 0; i < j->n; i++) {
		r = mig_rebase(j->files[i]);
		if (r) {
			log_warnx("'%s': cannot record the base size: %s", j->files[i]->relpath,
				  strerror(-r));
			break;
		}
		__atomic_store_n(&nodes[i]->mig, j->files[i], __ATOMIC_RELEASE);
	}
	if (r) {
		for (size_t i = 0; i < j->n; i++)
			__atomic_store_n(&nodes[i]->mig, NULL, __ATOMIC_RELEASE);
		pthread_mutex_lock(&R.lock);
		R.job = NULL;
		job_to_ms(&R.ms, NULL);
		save_record();
		pthread_mutex_unlock(&R.lock);
		fs_release(j->tree, nodes, j->n);
		FAIL(CTL_EFAIL, "cannot start: %s", strerror(-r));
	}
	fs_release(j->tree, nodes, j->n);
	r = job_copier_start(j);
	if (r)
		log_warnx("cannot start the copier: %s", strerror(-r));
	*out = xasprintf("migrating %zu file(s) to '%s' (delta store '%s')", j->n, dest, jobdir);
	ret = CTL_OK;
	goto done;
fail:
	if (j && R.job != j) {
		pthread_mutex_lock(&R.lock);
		if (R.ms.job && R.ms.job_id == j->id) {
			job_to_ms(&R.ms, NULL);
			save_record();
		}
		pthread_mutex_unlock(&R.lock);
		if (j->delta_fd != -1)
			rm_rf_path(jobdir);
		if (j->dest_fd != -1)
			remove_dest(j);
		job_free(j, true);
	}
done:
	for (size_t i = 0; i < w.nfiles; i++)
		free(w.files[i]);
	free(w.files);
	free(nodes);
	free(jobdir);
	return ret;
}

/* ---- status --------------------------------------------------------------------------- */

static char *status_json(void)
{
	json_t *root = json_object(), *files = json_array();
	char *s;

	pthread_mutex_lock(&R.lock);
	json_object_set_new(root, "source", json_string(R.root));
	json_object_set_new(root, "mountpoint", json_string(R.mountpoint));
	json_object_set_new(root, "last_cutover_ms",
			    json_real((double)R.ms.last_cutover_us / 1000.0));
	json_object_set_new(root, "last_cutover_hooks", json_string(R.last_hooks));
	if (R.job) {
		job_dest_ok(R.job);
		json_object_set_new(root, "destination", json_string(R.job->dest));
		json_object_set_new(root, "delta_dir", json_string(R.job->delta_dir));
		json_object_set_new(root, "copy_rate", json_integer((json_int_t)copier_rate(R.job->copier)));
		for (size_t i = 0; i < R.job->n; i++) {
			struct migration *m = R.job->files[i];
			struct mig_status st;
			json_t *f = json_object();

			mig_status(m, &st);
			json_object_set_new(f, "path", json_string(m->relpath));
			json_object_set_new(f, "state", json_string(mig_phase_name(st.phase, st.dirty_bytes)));
			json_object_set_new(f, "bytes_total", json_integer((json_int_t)st.base_size));
			json_object_set_new(f, "bytes_copied", json_integer((json_int_t)st.copied));
			json_object_set_new(f, "delta_bytes", json_integer((json_int_t)st.delta_bytes));
			json_object_set_new(f, "unmerged_bytes", json_integer((json_int_t)st.dirty_bytes));
			json_object_set_new(f, "size", json_integer((json_int_t)st.size));
			json_object_set_new(f, "backend", json_string(R.root));
			json_object_set_new(f, "throttled", json_boolean(st.throttled));
			json_object_set_new(f, "throttle_events", json_integer((json_int_t)st.throttle_events));
			json_object_set_new(f, "error", st.error[0] ? json_string(st.error) : json_null());
			json_array_append_new(files, f);
		}
	} else {
		for (size_t i = 0; i < R.ndone; i++) {
			json_t *f = json_object();

			json_object_set_new(f, "path", json_string(R.done[i].path));
			json_object_set_new(f, "state", json_string(R.done[i].state));
			json_object_set_new(f, "bytes_total", json_integer((json_int_t)R.done[i].size));
			json_object_set_new(f, "bytes_copied", json_integer((json_int_t)R.done[i].size));
			json_object_set_new(f, "delta_bytes", json_integer(0));
			json_object_set_new(f, "backend", json_string(R.done[i].backend));
			json_object_set_new(f, "error", json_null());
			json_array_append_new(files, f);
		}
	}
	pthread_mutex_unlock(&R.lock);
	json_object_set_new(root, "files", files);
	s = json_dumps(root, JSON_COMPACT);
	json_decref(root);
	return s;
}

static char *status_text(void)
{
	char *json = status_json(), *out = NULL;
	json_t *root = json ? json_loads(json, 0, NULL) : NULL, *f;
	size_t i;
	FILE *mf;
	size_t len;

	free(json);
	if (!root)
		return NULL;
	mf = open_memstream(&out, &len);
	fprintf(mf, "serving: %s\n", json_string_value(json_object_get(root, "source")));
	fprintf(mf, "last cutover: %.1f ms\n", json_real_value(json_object_get(root, "last_cutover_ms")));
	if (json_object_get(root, "destination"))
		fprintf(mf, "migrating to: %s\n",
			json_string_value(json_object_get(root, "destination")));
	json_array_foreach(json_object_get(root, "files"), i, f) {
		json_t *e = json_object_get(f, "error");

		fprintf(mf, "  %-8s %s  %" JSON_INTEGER_FORMAT "/%" JSON_INTEGER_FORMAT
			" bytes copied, delta %" JSON_INTEGER_FORMAT "%s%s%s\n",
			json_string_value(json_object_get(f, "state")),
			json_string_value(json_object_get(f, "path")),
			json_integer_value(json_object_get(f, "bytes_copied")),
			json_integer_value(json_object_get(f, "bytes_total")),
			json_integer_value(json_object_get(f, "delta_bytes")),
			json_is_true(json_object_get(f, "throttled")) ? ", guest writes slowed" : "",
			json_is_string(e) ? ": " : "", json_is_string(e) ? json_string_value(e) : "");
	}
	fclose(mf);
	json_decref(root);
	return out;
}

/* ---- cutover and abort ------------------------------------------------------------------- */

static void set_done_list(struct job *j, const char *state, const char *backend)
{
	for (size_t i = 0; i < R.ndone; i++) {
		free(R.done[i].path);
		free(R.done[i].backend);
	}
	free(R.done);
	R.ndone = 0;
	R.done = calloc(j->n ? j->n : 1, sizeof(*R.done));
	if (!R.done)
		return;
	for (size_t i = 0; i < j->n; i++) {
		struct mig_status st;

		mig_status(j->files[i], &st);
		R.done[i].path = strdup(j->files[i]->relpath);
		R.done[i].backend = strdup(backend);
		R.done[i].size = st.size;
		snprintf(R.done[i].state, sizeof(R.done[i].state), "%s", state);
	}
	R.ndone = j->n;
}

/* The destination path must still lead to the directory the copy went to
 * (an unmounted or replaced destination would be switched to empty). */
static bool job_dest_ok(struct job *j)
{
	struct stat a, b;
	int err = 0;

	if (fstat(j->dest_fd, &a) == -1 || stat(j->dest, &b) == -1)
		err = errno;
	else if (a.st_dev != b.st_dev || a.st_ino != b.st_ino)
		err = ENODEV;
	if (!err)
		return true;
	for (size_t i = 0; i < j->n; i++)
		mig_fail(j->files[i], err, err == ENODEV ? "the destination path no longer leads to "
					   "the copy (unmounted or replaced)"
					 : "cannot reach the destination");
	return false;
}

/* Wait until every file has at most max_dirty bytes left to merge; error
 * text in *out on failure. */
static int wait_ready(struct job *j, double timeout_s, uint64_t max_dirty, char **out)
{
	uint64_t deadline = now_us() + (uint64_t)(timeout_s * 1e6);

	for (;;) {
		size_t ready = 0;

		job_dest_ok(j);
		for (size_t i = 0; i < j->n; i++) {
			struct mig_status st;

			mig_status(j->files[i], &st);
			if (st.phase == MIG_FAILED) {
				*out = xasprintf("'%s' failed: %s", j->files[i]->relpath, st.error);
				return CTL_EFAIL;
			}
			if (st.phase == MIG_MERGING && st.dirty_bytes <= max_dirty)
				ready++;
		}
		if (ready == j->n)
			return CTL_OK;
		if (now_us() >= deadline) {
			*out = xasprintf("not ready after %.0f s: %zu of %zu file(s) ready (see status)",
					 timeout_s, ready, j->n);
			return CTL_EFAIL;
		}
		usleep(20000);
	}
}

/* Point node at its counterpart below dest (tree jobs: every node). */
static int switch_node(struct rnode *n, int dest_fd, const char *rel)
{
	struct stat st;
	int fd = openat(dest_fd, *rel ? rel : ".", O_PATH | O_NOFOLLOW | O_CLOEXEC);

	if (fd == -1)
		return -errno;
	if (fstatat(fd, "", &st, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) == -1) {
		int err = -errno;

		close(fd);
		return err;
	}
	itab_rekey(n, fd, &st);
	return fs_reopen_handles(n);
}

struct switch_ctx {
	struct job *job;
	int errors;
};

static void switch_tree_node(struct rnode *n, void *arg)
{
	struct switch_ctx *c = arg;
	const char *rel = job_entry_path(c->job, n->dev, n->ino);
	int err;

	if (!rel)
		return;	/* e.g. a file unlinked while open: stays where it is */
	err = switch_node(n, c->job->dest_fd, rel);
	if (err) {
		log_warnx("cannot switch '%s' to '%s': %s", rel, c->job->dest, strerror(-err));
		c->errors++;
	}
}

static void sync_dirs(int dirfd, struct job *j)
{
	/* metadata (owner, mode, times, xattrs) of a tree job's directories,
	 * symlinks and special files; regular files get theirs in the hold */
	for (size_t i = 0; i < j->nentries; i++) {
		const char *rel = *j->entries[i].relpath ? j->entries[i].relpath : ".";
		int s, d;
		struct stat st;

		if (fstatat(dirfd, rel, &st, AT_SYMLINK_NOFOLLOW) == -1 || S_ISREG(st.st_mode))
			continue;
		if (!S_ISDIR(st.st_mode)) {
			struct timespec tv[2] = { st.st_atim, st.st_mtim };

			fchownat(j->dest_fd, rel, st.st_uid, st.st_gid, AT_SYMLINK_NOFOLLOW);
			if (!S_ISLNK(st.st_mode))
				fchmodat(j->dest_fd, rel, st.st_mode & 07777, 0);
			utimensat(j->dest_fd, rel, tv, AT_SYMLINK_NOFOLLOW);
			continue;
		}
		s = openat(dirfd, *j->entries[i].relpath ? j->entries[i].relpath : ".",
			   O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		d = openat(j->dest_fd, *j->entries[i].relpath ? j->entries[i].relpath : ".",
			   O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (s != -1 && d != -1) {
			copy_meta(s, d, NULL);
			fsync(d);
		}
		if (s != -1)
			close(s);
		if (d != -1)
			close(d);
	}
}

/* ---- the cutover ---------------------------------------------------------------------- */

/*
 * After the hold, until the destination files and the renamed record are
 * durable, no flush may be acknowledged: a host crash would bring back the
 * old record (source plus delta) and lose a write the guest saw flushed on
 * the destination.  fsops calls reloc_flush_barrier() before every flush.
 */
static struct {
	pthread_mutex_t lock;
	pthread_cond_t done;
	bool pending;		/* protected by lock; read unlocked as a hint */
	pthread_t owner;	/* the cutover thread */
	struct job *job;	/* whose destinations must be synced */
	int result;		/* of the syncs: 0 or -errno */
} commit = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, false, 0, NULL, 0 };

/* Sync the switched destinations, then the renamed record; ends the
 * barrier.  Called by the cutover thread (once; later calls do nothing). */
static int commit_make_durable(void)
{
	int r = 0;

	pthread_mutex_lock(&commit.lock);
	if (!commit.pending) {
		pthread_mutex_unlock(&commit.lock);
		return commit.result;
	}
	for (size_t i = 0; i < commit.job->n && !r; i++)
		if (fsync(commit.job->files[i]->dst_fd) == -1)
			r = -errno;
	/* the commit point: before it is durable, a restart rolls back */
	if (!r && renameat(R.state_fd, "state.next", R.state_fd, "state") == -1)
		r = -errno;
	if (!r)
		crashpoint("cutover-committed");
	if (!r && fsync(R.state_fd) == -1)
		r = -errno;
	if (r) {
		log_warnx("cannot make the switch durable: %s; flushes fail until relocfs "
			  "restarts (and rolls back to the source)", strerror(-r));
		record_frozen = true;
	}
	__atomic_store_n(&commit.result, r, __ATOMIC_RELEASE);
	__atomic_store_n(&commit.pending, false, __ATOMIC_RELEASE);
	pthread_cond_broadcast(&commit.done);
	pthread_mutex_unlock(&commit.lock);
	return r;
}

int reloc_flush_barrier(void)
{
	int r;

	if (!__atomic_load_n(&commit.pending, __ATOMIC_ACQUIRE))
		return __atomic_load_n(&commit.result, __ATOMIC_ACQUIRE) ? -EIO : 0;
	if (pthread_equal(pthread_self(), commit.owner))
		/* a parked flush replayed by the cutover thread itself */
		return commit_make_durable() ? -EIO : 0;
	pthread_mutex_lock(&commit.lock);
	while (commit.pending)
		pthread_cond_wait(&commit.done, &commit.lock);
	r = commit.result ? -EIO : 0;
	pthread_mutex_unlock(&commit.lock);
	return r;
}

static void commit_begin(struct job *j)
{
	pthread_mutex_lock(&commit.lock);
	commit.owner = pthread_self();
	commit.job = j;
	__atomic_store_n(&commit.result, 0, __ATOMIC_RELEASE);
	__atomic_store_n(&commit.pending, true, __ATOMIC_RELEASE);
	pthread_mutex_unlock(&commit.lock);
}

/* A node of a tree job and its counterpart in the destination, opened
 * before the hold so that the hold only swaps descriptors. */
struct preopen {
	struct rnode *node;
	int fd;
	struct stat st;
};

struct preopen_ctx {
	struct job *job;
	struct preopen *p;
	size_t n, cap;
};

static void preopen_node(struct rnode *n, void *arg)
{
	struct preopen_ctx *c = arg;
	const char *rel = job_entry_path(c->job, n->dev, n->ino);
	struct preopen *np;
	int fd;

	if (!rel)
		return;
	if (c->n == c->cap) {
		size_t cap = c->cap ? c->cap * 2 : 64;

		np = realloc(c->p, cap * sizeof(*np));
		if (!np)
			return;	/* switched in the hold instead */
		c->p = np;
		c->cap = cap;
	}
	fd = openat(c->job->dest_fd, *rel ? rel : ".", O_PATH | O_NOFOLLOW | O_CLOEXEC);
	if (fd == -1)
		return;
	np = &c->p[c->n];
	if (fstatat(fd, "", &np->st, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) == -1) {
		close(fd);
		return;
	}
	np->fd = fd;
	np->node = n;
	itab_ref(n);
	c->n++;
}

static void preopen_free(struct preopen_ctx *c)
{
	for (size_t i = 0; i < c->n; i++) {
		if (c->p[i].fd != -1)
			close(c->p[i].fd);
		itab_unref(c->p[i].node);
	}
	free(c->p);
	memset(c, 0, sizeof(*c));
}

static int preopen_cmp(const void *a, const void *b)
{
	const struct preopen *x = a, *y = b;

	return x->node < y->node ? -1 : x->node > y->node;
}

/*
 * The fallible part of switching the migrating files, done in the hold before
 * the point of no return: an O_PATH descriptor of each destination file (from
 * the tree job's preopened ones, sorted by node, or opened now), checked to be
 * the copy the job wrote, and a new descriptor for each open handle.  On
 * failure nothing is left prepared and err says why.  A handle left on the
 * source after the switch would serve the base without the guest's writes.
 */
static int switch_prepare(struct job *j, struct preopen_ctx *pre, struct preopen *sw, char *err,
			  size_t errlen)
{
	size_t i;
	int r = 0;

	for (i = 0; i < j->n; i++) {
		struct migration *m = j->files[i];
		struct preopen key = { .node = m->node }, *p = NULL;
		struct stat dst;

		sw[i].node = m->node;
		sw[i].fd = -1;
		if (pre->n)
			p = bsearch(&key, pre->p, pre->n, sizeof(*p), preopen_cmp);
		if (p && p->fd != -1) {
			sw[i].st = p->st;
			sw[i].fd = dup(p->fd);
			if (sw[i].fd == -1)
				r = -errno;
		} else {
			sw[i].fd = openat(j->dest_fd, m->relpath, O_PATH | O_NOFOLLOW | O_CLOEXEC);
			if (sw[i].fd == -1 ||
			    fstatat(sw[i].fd, "", &sw[i].st, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) == -1)
				r = -errno;
		}
		if (!r && fstat(m->dst_fd, &dst) == -1)
			r = -errno;
		if (!r && (dst.st_dev != sw[i].st.st_dev || dst.st_ino != sw[i].st.st_ino))
			r = -ESTALE;	/* the name no longer leads to the copy */
		if (!r)
			r = fs_prepare_reopen(m->node, sw[i].fd);
		if (r == -ESTALE) {
			snprintf(err, errlen, "'%s' on the destination is no longer the copy",
				 m->relpath);
		} else if (r) {
			snprintf(err, errlen, "cannot open '%s' on the destination: %s", m->relpath,
				 strerror(-r));
		}
		if (r) {
			if (sw[i].fd != -1)
				close(sw[i].fd);
			sw[i].fd = -1;
			break;
		}
	}
	if (r) {
		while (i-- > 0) {
			fs_cancel_reopen(sw[i].node);
			close(sw[i].fd);
			sw[i].fd = -1;
		}
	}
	return r;
}

/* The record as it will be after the switch (shallow: it borrows strings). */
struct next_state {
	struct mount_state ms;
	struct ms_override *ovr;
	char **cleanup;
};

static int next_state_build(struct next_state *ns, struct job *j)
{
	ns->ms = R.ms;
	ns->ms.job = false;
	ns->ms.nfiles = 0;
	ns->ms.files = NULL;
	ns->ovr = NULL;
	if (j->tree) {
		ns->ms.root = j->dest;
		ns->ms.noverrides = 0;
		ns->ms.overrides = NULL;
	} else {
		ns->ovr = calloc(R.ms.noverrides + j->n, sizeof(*ns->ovr));
		if (!ns->ovr)
			return -ENOMEM;
		memcpy(ns->ovr, R.ms.overrides, R.ms.noverrides * sizeof(*ns->ovr));
		for (size_t i = 0; i < j->n; i++) {
			ns->ovr[R.ms.noverrides + i].relpath = j->files[i]->relpath;
			ns->ovr[R.ms.noverrides + i].backend = j->dest;
		}
		ns->ms.overrides = ns->ovr;
		ns->ms.noverrides = R.ms.noverrides + j->n;
	}
	ns->cleanup = calloc(R.ms.ncleanup + 1, sizeof(char *));
	if (!ns->cleanup)
		return -ENOMEM;
	memcpy(ns->cleanup, R.ms.cleanup, R.ms.ncleanup * sizeof(char *));
	ns->cleanup[R.ms.ncleanup] = j->delta_dir;
	ns->ms.cleanup = ns->cleanup;
	ns->ms.ncleanup = R.ms.ncleanup + 1;
	return 0;
}

/* Make R.ms what next_state_build described (owning copies).  R.lock held. */
static int adopt_next_state(struct job *j)
{
	if (j->tree) {
		free(R.ms.root);
		R.ms.root = strdup(j->dest);
		for (size_t i = 0; i < R.novr; i++)
			override_free(&R.ovr[i]);
		__atomic_store_n(&R.novr, 0, __ATOMIC_RELEASE);
	} else {
		struct override *no = realloc(R.ovr, (R.novr + j->n) * sizeof(*no));

		if (!no)
			return -ENOMEM;
		R.ovr = no;
		for (size_t i = 0; i < j->n; i++) {
			struct override *o = &R.ovr[R.novr];

			memset(o, 0, sizeof(*o));
			o->relpath = strdup(j->files[i]->relpath);
			o->backend = strdup(j->dest);
			if (o->relpath && o->backend && override_resolve(o, R.root_fd) == 0)
				__atomic_store_n(&R.novr, R.novr + 1, __ATOMIC_RELEASE);
			else
				override_free(o);
		}
	}
	job_to_ms(&R.ms, NULL);
	ms_add_cleanup(&R.ms, j->delta_dir);
	return overrides_to_ms(&R.ms);
}

struct cleanup_job {
	struct job *job;
	bool remove_source;
	int old_root_fd;	/* tree jobs: where the files were */
	bool have_cmd_lock;	/* run inline by the command itself */
};

/* After a cutover, off the command's path: removing a large sparse delta
 * can take seconds. */
static void *cleanup_thread(void *arg)
{
	struct cleanup_job *c = arg;
	struct job *j = c->job;

	if (c->remove_source && !j->tree)
		for (size_t i = 0; i < j->n; i++)
			if (ftruncate(j->files[i]->src_fd, 0) == -1)
				log_warn("cannot empty the source of '%s'", j->files[i]->relpath);
	if (c->remove_source && c->old_root_fd != -1)
		empty_tree(c->old_root_fd);
	if (c->old_root_fd != -1)
		close(c->old_root_fd);
	if (!c->have_cmd_lock)
		pthread_mutex_lock(&R.cmd_lock);	/* not while another command runs */
	job_free(j, true);
	pthread_mutex_lock(&R.lock);
	run_cleanup();
	pthread_mutex_unlock(&R.lock);
	if (!c->have_cmd_lock)
		pthread_mutex_unlock(&R.cmd_lock);
	free(c);
	return NULL;
}

/* Merge until at most max bytes per file are left, for up to limit_us. */
static void converge(struct job *j, uint64_t max, uint64_t limit_us)
{
	uint64_t until = now_us() + limit_us;
	bool left = true;

	while (left && now_us() < until) {
		left = false;
		for (size_t i = 0; i < j->n; i++) {
			struct mig_status st;

			mig_status(j->files[i], &st);
			if (st.dirty_bytes > max) {
				left = true;
				if (mig_merge_some(j->files[i], 16u << 20) < 0)
					return;
			}
		}
	}
}

#define HOLD_MERGE_BYTES (1u << 20)	/* left per file by the merge-and-sync passes */

/* Make the delta records of every file durable (after a cutover merged
 * blocks whose records were not); false if one could not be. */
static bool commit_records(struct job *j)
{
	bool ok = true;

	for (size_t i = 0; i < j->n; i++)
		if (mig_commit(j->files[i]))
			ok = false;
	return ok;
}

/* Remove the next record of a cutover that did not switch. */
static void drop_next_state(void)
{
	if (R.state_fd != -1 && unlinkat(R.state_fd, "state.next", 0) == 0)
		fsync(R.state_fd);
}

/* fsync every destination file; on failure *out says so (cutover cancelled) */
static int sync_dests(struct job *j, char **out)
{
	for (size_t i = 0; i < j->n; i++) {
		if (fsync(j->files[i]->dst_fd) == -1) {
			int e = errno;

			*out = xasprintf("cutover cancelled, nothing switched: cannot sync '%s' in '%s': %s",
					 j->files[i]->relpath, j->dest, strerror(e));
			return -e;
		}
	}
	return 0;
}

static int cmd_cutover(const struct ctl_request *req, char **out)
{
	struct job *j = R.job;
	struct vmhook *hooks[CTL_HOOKS_MAX] = { 0 };
	uint64_t hook_t0[CTL_HOOKS_MAX] = { 0 };
	struct preopen_ctx pre = { 0 };
	struct next_state ns = { 0 };
	struct rnode **nodes = NULL;
	struct preopen *sw = NULL;	/* the migrating files, prepared for the switch */
	char err[512] = "", hooktxt[512] = "";
	int nhooks = 0, paused = 0, ret = CTL_EFAIL, r = 0, old_root_fd = -1;
	double timeout = req->timeout_s > 0 ? req->timeout_s : DEFAULT_CUTOVER_TIMEOUT_S;
	int hook_ms = req->max_downtime_ms > 0 ? req->max_downtime_ms * 4 + 5000 : 30000;
	uint64_t t_hold = 0, t_drained = 0, t_merged = 0, t_release = 0, hold_us = 0;
	size_t parked = 0;
	bool switched = false, merged_unsynced = false;

	if (!j) {
		*out = xasprintf("nothing is migrating");
		return CTL_EFAIL;
	}
	for (int i = 0; i < req->nhooks; i++) {
		r = vmhook_new(req->hooks[i], &hooks[nhooks], err, sizeof(err));
		if (r) {
			*out = xasprintf("%s", err);
			ret = CTL_EUSAGE;
			goto out;
		}
		nhooks++;
	}
	/* --max-downtime: leave no more to merge inside the hold than about
	 * 100 KiB per allowed millisecond (a conservative merge rate) */
	ret = wait_ready(j, timeout,
			 req->max_downtime_ms > 0 && (uint64_t)req->max_downtime_ms * 102400 < MIG_READY_BYTES
				 ? (uint64_t)req->max_downtime_ms * 102400
				 : MIG_READY_BYTES,
			 out);
	if (ret)
		goto out;
	ret = CTL_EFAIL;

	/* everything that can be done while the guest runs: the merge down to
	 * almost nothing, durable destinations, the next record, descriptors */
	job_copier_stop(j);
	/* the first sync of the destinations writes back what the copier
	 * left in the page cache, and may take seconds while the guest keeps
	 * writing: merge and sync again until a sync finds little to do */
	for (int pass = 0; pass < 4; pass++) {
		uint64_t t0;

		converge(j, HOLD_MERGE_BYTES, 2000000);
		t0 = now_us();
		if (sync_dests(j, out))
			goto out_copier;
		if (now_us() - t0 < 20000)
			break;
	}
	if (j->tree)
		sync_dirs(R.root_fd, j);
	nodes = calloc(j->n ? j->n : 1, sizeof(*nodes));
	sw = calloc(j->n ? j->n : 1, sizeof(*sw));
	if (!nodes || !sw || next_state_build(&ns, j)) {
		*out = xasprintf("out of memory");
		goto out_copier;
	}
	for (size_t i = 0; i < j->n; i++)
		nodes[i] = j->files[i]->node;
	/* durable before anything is switched: a restart that finds it knows
	 * that a cutover was under way (see reloc_init) */
	r = ms_write(R.state_fd, "state.next", &ns.ms);
	if (!r && fsync(R.state_fd) == -1)
		r = -errno;
	if (r) {
		*out = xasprintf("cutover cancelled, nothing switched: cannot write '%s/%s/state.next': %s",
				 R.source, STATE_DIR, strerror(-r));
		goto out_copier;
	}
	pre.job = j;
	if (j->tree) {
		itab_foreach(preopen_node, &pre);
		if (pre.n)
			qsort(pre.p, pre.n, sizeof(*pre.p), preopen_cmp);
	}
	if (!job_dest_ok(j)) {
		*out = xasprintf("cutover cancelled, nothing switched: '%s' no longer leads to the copy",
				 j->dest);
		goto out_copier;
	}

	/* sync what was merged since the last sync (so that the sync after
	 * the hold is short), then, last of all, commit and merge the delta
	 * records written meanwhile: the hold merges only what comes after */
	if (sync_dests(j, out))
		goto out_copier;
	converge(j, 256u << 10, 2000000);

	/* pause the VMs */
	{
		const char **files = calloc(j->n ? j->n : 1, sizeof(char *));
		char **abs = calloc(j->n ? j->n : 1, sizeof(char *));

		for (size_t i = 0; files && abs && i < j->n; i++) {
			abs[i] = path_join(R.mountpoint, j->files[i]->relpath);
			files[i] = abs[i];
		}
		for (int i = 0; i < nhooks; i++) {
			hook_t0[i] = now_us();
			r = vmhook_pause(hooks[i], R.mountpoint, files, (int)j->n, hook_ms, err,
					 sizeof(err));
			if (r)
				break;
			paused++;
		}
		for (size_t i = 0; abs && i < j->n; i++)
			free(abs[i]);
		free(abs);
		free(files);
		if (r) {
			*out = xasprintf("cutover cancelled, nothing switched: pause failed: %s", err);
			goto out_copier;
		}
	}

	/* the hold: merge the last blocks, switch, release */
	t_hold = now_us();
	r = fs_hold(j->tree, nodes, j->n, HOLD_DRAIN_US);
	if (r) {
		*out = xasprintf("cutover cancelled, nothing switched: requests in flight did not "
				 "finish within %u s", HOLD_DRAIN_US / 1000000);
		goto out_copier;
	}
	t_drained = now_us();
	merged_unsynced = true;
	for (size_t i = 0; i < j->n && !r; i++) {
		struct migration *m = j->files[i];

		mig_set_phase(m, MIG_CUTOVER);
		r = mig_finish_target(m, MIG_FINISH_SWITCH);
		if (r) {
			snprintf(err, sizeof(err), "'%s': %s", m->relpath, strerror(-r));
			break;
		}
		r = copy_meta(m->src_fd, m->dst_fd, m->mtime_set ? &m->mtime : NULL);
		if (r)
			log_warnx("'%s': cannot copy metadata: %s", m->relpath, strerror(-r));
		r = 0;
	}
	if (!r)
		r = switch_prepare(j, &pre, sw, err, sizeof(err));
	t_merged = now_us();
	crashpoint("cutover-merged");
	if (r) {
		for (size_t i = 0; i < j->n; i++)
			mig_set_phase(j->files[i], MIG_MERGING);
		fs_release(j->tree, nodes, j->n);
		*out = xasprintf("cutover failed, nothing switched, the VM runs on the source: %s", err);
		goto out_copier;
	}
	/* switched from here; the record is renamed after the hold, with the
	 * syncs (commit_make_durable), and no flush is acknowledged before */
	commit_begin(j);
	switched = true;
	pthread_mutex_lock(&R.lock);
	adopt_next_state(j);
	if (j->tree) {
		old_root_fd = R.root_fd;
		R.root_fd = dup(j->dest_fd);
		free(R.root);
		R.root = strdup(j->dest);
	}
	R.job = NULL;
	pthread_mutex_unlock(&R.lock);
	/* the migrating files first: nothing here can fail */
	for (size_t i = 0; i < j->n; i++) {
		itab_rekey(sw[i].node, sw[i].fd, &sw[i].st);
		sw[i].fd = -1;
		fs_commit_reopen(sw[i].node);
	}
	if (j->tree) {
		struct switch_ctx c = { .job = j };

		for (size_t i = 0; i < pre.n; i++) {
			struct rnode *n = pre.p[i].node;

			if (job_entry_path(j, n->dev, n->ino)) {	/* not switched yet */
				itab_rekey(n, pre.p[i].fd, &pre.p[i].st);
				pre.p[i].fd = -1;
				fs_reopen_handles(n);
			}
		}
		itab_foreach(switch_tree_node, &c);	/* nodes looked up since */
		if (c.errors)
			log_warnx("%d node(s) could not be switched", c.errors);
	}
	for (size_t i = 0; i < j->n; i++) {
		struct migration *m = j->files[i];

		mig_set_phase(m, MIG_DONE);
		__atomic_store_n(&m->node->mig, NULL, __ATOMIC_RELEASE);
	}
	t_release = now_us();
	parked = fs_release(j->tree, nodes, j->n);
	log_info("cutover: I/O held %.2f ms: %.2f draining, %.2f finishing the copies, %.2f switching",
		 (t_release - t_hold) / 1000.0, (t_drained - t_hold) / 1000.0,
		 (t_merged - t_drained) / 1000.0, (t_release - t_merged) / 1000.0);
	hold_us = t_release - t_hold;
	crashpoint("cutover-released");
	ret = CTL_OK;

out_resume:
	for (int i = paused - 1; i >= 0; i--) {
		char rerr[512];
		size_t l;

		if (vmhook_resume(hooks[i], hook_ms, rerr, sizeof(rerr))) {
			log_warnx("cannot resume the VM with '%s': %s", vmhook_spec(hooks[i]), rerr);
			free(*out);
			*out = xasprintf("%s, but resuming with '%s' failed: %s",
					 switched ? "switched" : "nothing switched", vmhook_spec(hooks[i]), rerr);
			ret = CTL_EFAIL;
		}
		l = strlen(hooktxt);
		snprintf(hooktxt + l, sizeof(hooktxt) - l, "%s%s=%.1fms", l ? ", " : "",
			 vmhook_spec(hooks[i]), (double)(now_us() - hook_t0[i]) / 1000.0);
	}
	if (switched) {
		struct cleanup_job *c = calloc(1, sizeof(*c));
		pthread_t t;
		/* durable: the destinations, then the renamed record */
		int dr = commit_make_durable();

		if (dr) {
			free(*out);
			*out = xasprintf("switched, but the switch could not be made durable: %s; "
					 "flushes fail from now on: restart relocfs, which rolls "
					 "back to the source", strerror(-dr));
			ret = CTL_EFAIL;
			free(c);
			c = NULL;	/* keep the delta store */
		}
		pthread_mutex_lock(&R.lock);
		R.ms.last_cutover_us = hold_us;
		R.last_hold_us = hold_us;
		snprintf(R.last_hooks, sizeof(R.last_hooks), "%s", hooktxt);
		set_done_list(j, "done", j->dest);
		pthread_mutex_unlock(&R.lock);
		if (ret == CTL_OK)
			*out = xasprintf("switched %zu file(s) to '%s'; I/O held %.1f ms (%zu request(s) "
					 "parked, longest %.1f ms)%s%s%s",
					 j->n, j->dest, (double)hold_us / 1000.0, parked,
					 (double)fs_last_hold_max_us() / 1000.0, hooktxt[0] ? "; " : "",
					 hooktxt,
					 req->max_downtime_ms > 0 &&
						 hold_us > (uint64_t)req->max_downtime_ms * 1000
						 ? "; longer than --max-downtime"
						 : "");
		if (c) {
			c->job = j;
			c->remove_source = req->remove_source;
			c->old_root_fd = old_root_fd;
			old_root_fd = -1;
			if (pthread_create(&t, NULL, cleanup_thread, c) == 0) {
				pthread_detach(t);
			} else {
				c->have_cmd_lock = true;
				cleanup_thread(c);
			}
		}
	}
	goto out;
out_copier:
	/* nothing switched: the copier goes on where it was */
	if (merged_unsynced && !commit_records(j))
		log_warnx("cannot commit the delta records after the failed cutover: a restart "
			  "will roll the job back");
	else
		drop_next_state();
	job_copier_start(j);
	goto out_resume;
out:
	for (int i = 0; i < nhooks; i++)
		vmhook_free(hooks[i]);
	preopen_free(&pre);
	free(ns.ovr);
	free(ns.cleanup);
	free(nodes);
	free(sw);
	if (old_root_fd != -1)
		close(old_root_fd);
	return ret;
}

/* Bring every change back into the source and serve it as before.  With
 * nodes == NULL (a restart before mounting) nothing is held. */
static int abort_job(struct job *j, char *err, size_t errlen)
{
	struct rnode **nodes = NULL;
	enum mig_phase *prev = calloc(j->n ? j->n : 1, sizeof(*prev));
	int r = prev ? 0 : -ENOMEM;

	job_copier_stop(j);
	for (size_t i = 0; i < j->n && !r; i++) {
		struct mig_status st;

		mig_status(j->files[i], &st);
		prev[i] = st.phase;
		r = mig_set_phase(j->files[i], MIG_ABORTING);
		mig_target_source(j->files[i]);
	}
	if (r) {
		/* not recorded: nothing changes, the migration goes on */
		for (size_t i = 0; prev && i < j->n; i++)
			mig_target_dest(j->files[i], prev[i] == MIG_ABORTING ? MIG_MERGING : prev[i]);
		free(prev);
		if (j->files && j->n && j->files[0]->node)
			job_copier_start(j);
		snprintf(err, errlen, "cannot record the abort (the migration goes on): %s",
			 strerror(-r));
		return r;
	}
	free(prev);
	crashpoint("abort-recorded");
	/* most of it while the guest runs */
	for (size_t i = 0; i < j->n; i++) {
		struct mig_status st;
		ssize_t k;

		do {
			k = mig_merge_some(j->files[i], 16u << 20);
			mig_status(j->files[i], &st);
		} while (k > 0 && st.dirty_bytes > MIG_READY_BYTES);
	}
	if (j->files && j->n && j->files[0]->node) {
		nodes = calloc(j->n, sizeof(*nodes));
		for (size_t i = 0; nodes && i < j->n; i++)
			nodes[i] = j->files[i]->node;
		if (nodes && fs_hold(j->tree, nodes, j->n, HOLD_DRAIN_US)) {
			snprintf(err, errlen, "requests in flight did not finish within %u s; retry abort",
				 HOLD_DRAIN_US / 1000000);
			free(nodes);
			return -ETIMEDOUT;
		}
	}
	for (size_t i = 0; i < j->n && !r; i++) {
		r = mig_finish_target(j->files[i], MIG_FINISH_SYNC);
		if (r)
			snprintf(err, errlen, "cannot write '%s' back to the source: %s",
				 j->files[i]->relpath, strerror(-r));
	}
	crashpoint("abort-merged");
	if (!r) {
		pthread_mutex_lock(&R.lock);
		job_to_ms(&R.ms, NULL);
		ms_add_cleanup(&R.ms, j->delta_dir);
		/* what the job put in DEST goes too, even if the daemon dies
		 * before remove_dest() */
		add_dest_cleanup(j);
		r = save_record();
		if (r)
			snprintf(err, errlen, "cannot write the state record: %s", strerror(-r));
		pthread_mutex_unlock(&R.lock);
		if (!r)
			crashpoint("abort-committed");
	}
	if (!r) {
		for (size_t i = 0; i < j->n; i++) {
			mig_set_phase(j->files[i], MIG_ABORTED);
			if (j->files[i]->node)
				__atomic_store_n(&j->files[i]->node->mig, NULL, __ATOMIC_RELEASE);
		}
	}
	if (nodes)
		fs_release(j->tree, nodes, j->n);
	free(nodes);
	return r;
}

static int cmd_abort(char **out)
{
	struct job *j = R.job;
	char err[512];
	int r;

	if (!j) {
		*out = xasprintf("nothing is migrating");
		return CTL_EFAIL;
	}
	r = abort_job(j, err, sizeof(err));
	if (r) {
		*out = xasprintf("abort failed, the files stay in their delta stores (retry abort): %s",
				 err);
		return CTL_EFAIL;
	}
	pthread_mutex_lock(&R.lock);
	R.job = NULL;
	set_done_list(j, "idle", R.root);
	pthread_mutex_unlock(&R.lock);
	remove_dest(j);
	*out = xasprintf("aborted: %zu file(s) stay on '%s' with every write", j->n, R.root);
	job_free(j, true);
	pthread_mutex_lock(&R.lock);
	run_cleanup();
	pthread_mutex_unlock(&R.lock);
	return CTL_OK;
}

static int cmd_verify(char **out)
{
	struct job *j = R.job;
	size_t ok = 0;

	if (!j) {
		*out = xasprintf("nothing is migrating: verify compares a migration's destination "
				 "with the live view");
		return CTL_EFAIL;
	}
	for (size_t i = 0; i < j->n; i++) {
		struct mig_status st;
		uint64_t off = 0;
		int r;

		mig_status(j->files[i], &st);
		if (st.phase != MIG_MERGING) {
			*out = xasprintf("'%s': the base copy is not finished (%s)", j->files[i]->relpath,
					 mig_phase_name(st.phase, st.dirty_bytes));
			return CTL_EFAIL;
		}
		r = mig_verify(j->files[i], &off);
		if (r < 0) {
			*out = xasprintf("'%s': cannot verify: %s", j->files[i]->relpath, strerror(-r));
			return CTL_EFAIL;
		}
		if (r > 0) {
			*out = xasprintf("'%s': the destination differs from the live view at byte %" PRIu64,
					 j->files[i]->relpath, off);
			return CTL_EFAIL;
		}
		ok++;
	}
	*out = xasprintf("verified %zu file(s): the destination matches the live view (XXH3)", ok);
	return CTL_OK;
}

int reloc_command(const struct ctl_request *req, char **out)
{
	int ret;

	*out = NULL;
	switch (req->cmd) {
	case CTL_CMD_STATUS:
		*out = req->json ? status_json() : status_text();
		return *out ? CTL_OK : CTL_EFAIL;
	case CTL_CMD_WAIT:
		/* relocctl polls status itself; a plain wait answers at once */
		*out = status_json();
		return CTL_OK;
	default:
		break;
	}
	pthread_mutex_lock(&R.cmd_lock);
	switch (req->cmd) {
	case CTL_CMD_MIGRATE:
		ret = cmd_migrate(req, out);
		break;
	case CTL_CMD_CUTOVER:
		ret = cmd_cutover(req, out);
		break;
	case CTL_CMD_ABORT:
		ret = cmd_abort(out);
		break;
	case CTL_CMD_VERIFY:
		ret = cmd_verify(out);
		break;
	default:
		*out = xasprintf("unknown command");
		ret = CTL_EUSAGE;
	}
	pthread_mutex_unlock(&R.cmd_lock);
	if (ret != CTL_OK && *out)
		log_info("command failed: %s", *out);
	return ret;
}

/* ---- start-up ---------------------------------------------------------------------------- */

/*
 * A cutover writes "state.next" (synced) before its hold and renames it over
 * "state" right after, once the destinations are synced.  Finding it at
 * start-up with the job still recorded means the daemon (or the host) went
 * down before that rename was durable: the hold may have merged blocks whose
 * delta records never reached the journal, and the guest may have written to
 * the destination after the switch (nothing it flushed: flushes wait for the
 * rename).  The destination cannot be trusted, so the job is rolled back to
 * the source, where the delta store holds every flushed write.
 */
static bool cutover_interrupted(void)
{
	struct stat st;

	return R.state_fd != -1 && fstatat(R.state_fd, "state.next", &st, 0) == 0;
}

int reloc_init(int source_fd, const char *source_path, const char *mountpoint, int *root_fd,
	       char *err, size_t errlen)
{
	int r, fd;

	R.source_fd = source_fd;
	R.source = strdup(source_path);
	R.mountpoint = strdup(mountpoint);
	fd = openat(source_fd, STATE_DIR, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd != -1) {
		R.state_fd = fd;
		r = ms_load(fd, &R.ms);
		if (r && r != -ENOENT) {
			snprintf(err, errlen, "cannot read the state record '%s/%s/state': %s", source_path,
				 STATE_DIR, r == -EBADMSG ? "damaged (checksum or syntax)" : strerror(-r));
			return r;
		}
	}
	if (!R.ms.root)
		R.ms.root = strdup(source_path);
	R.root = strdup(R.ms.root);
	if (!R.root || !R.source || !R.mountpoint) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	*root_fd = open(R.root, O_PATH | O_DIRECTORY | O_CLOEXEC);
	R.root_fd = *root_fd == -1 ? -1 : dup(*root_fd);
	if (*root_fd == -1) {
		r = -errno;
		snprintf(err, errlen, "cannot open '%s', where the state record says the files are: %s",
			 R.root, strerror(errno));
		return r;
	}
	if (R.ms.ncleanup)
		run_cleanup();
	for (size_t i = 0; i < R.ms.noverrides; i++) {
		struct override o = { 0 };

		o.relpath = strdup(R.ms.overrides[i].relpath);
		o.backend = strdup(R.ms.overrides[i].backend);
		if (override_resolve(&o, *root_fd)) {
			log_warnx("relocated file '%s' is gone from '%s'; not routing it", o.relpath,
				  R.root);
			override_free(&o);
			continue;
		}
		R.ovr = realloc(R.ovr, (R.novr + 1) * sizeof(*R.ovr));
		R.ovr[R.novr++] = o;
	}
	if (!R.ms.job)
		drop_next_state();	/* stale: no job to cut over */
	if (R.ms.job) {
		struct job *j = calloc(1, sizeof(*j));
		bool aborting = false;

		if (!j) {
			snprintf(err, errlen, "out of memory");
			return -ENOMEM;
		}
		j->dest_fd = j->delta_fd = -1;
		j->id = R.ms.job_id;
		j->tree = R.ms.tree;
		j->rate = R.ms.rate;
		j->dest = strdup(R.ms.dest);
		j->delta_dir = strdup(R.ms.delta_dir);
		j->dest_fd = open_dir(R.ms.dest, O_RDONLY);
		j->delta_fd = open_dir(R.ms.delta_dir, O_RDONLY);
		if (j->delta_fd < 0) {
			snprintf(err, errlen, "cannot resume the migration to '%s': cannot open its "
				 "delta store '%s': %s", R.ms.dest, R.ms.delta_dir,
				 strerror(-j->delta_fd));
			j->delta_fd = -1;
			job_free(j, false);
			return -ENOENT;
		}
		if (j->dest_fd < 0) {
			log_warnx("cannot open the destination '%s': %s", R.ms.dest,
				  strerror(-j->dest_fd));
			j->dest_fd = -1;
			j->dest_lost = true;
		}
		for (size_t i = 0; i < R.ms.nfiles; i++) {
			r = job_add_file(j, R.ms.files[i], false, err, errlen);
			if (r) {
				job_free(j, false);
				return r;
			}
		}
		if (j->tree && !j->dest_lost) {
			struct walk w = { .job = j, .create = false };
			struct stat st;

			if (fstatat(*root_fd, "", &st, AT_EMPTY_PATH) == 0)
				job_add_entry(j, &st, "");
			walk_tree(&w, *root_fd, j->dest_fd, "");
			for (size_t i = 0; i < w.nfiles; i++)
				free(w.files[i]);
			free(w.files);
		}
		for (size_t i = 0; i < j->n; i++) {
			struct mig_status st;

			mig_status(j->files[i], &st);
			if (st.phase == MIG_ABORTING)
				aborting = true;
		}
		if (cutover_interrupted()) {
			log_warnx("a cutover to '%s' was interrupted before it was durable: rolling "
				  "back to the source; migrate again", j->dest);
			aborting = true;
		}
		if (j->dest_lost && !aborting) {
			/* the VM's data is whole without it: serve it from the
			 * source rather than not at all */
			log_warnx("the destination '%s' is lost: rolling the migration back to the "
				  "source; migrate again", j->dest);
			aborting = true;
		}
		if (aborting) {
			/* an abort was under way: finish it before serving anything */
			log_info("finishing the abort of the migration to '%s'", j->dest);
			r = abort_job(j, err, errlen);
			if (r)
				return r;
			drop_next_state();
			if (j->dest_lost)
				log_warnx("what the migration put in '%s' is left there: remove it when "
					  "it is back", j->dest);
			else
				remove_dest(j);
			job_free(j, true);
			run_cleanup();
		} else {
			log_info("resuming the migration of %zu file(s) to '%s'", j->n, j->dest);
			R.job = j;
		}
	}
	return 0;
}

int reloc_attach(char *err, size_t errlen)
{
	struct job *j = R.job;

	if (!j)
		return 0;
	for (size_t i = 0; i < j->n; i++) {
		struct rnode *n = node_for(j->files[i]->relpath);

		if (!n) {
			snprintf(err, errlen, "cannot look up migrating file '%s'", j->files[i]->relpath);
			return -ENOENT;
		}
		j->files[i]->node = n;
		n->mig = j->files[i];
	}
	return 0;
}

int reloc_start(void)
{
	int r = 0;

	pthread_mutex_lock(&R.cmd_lock);
	if (R.job)
		r = job_copier_start(R.job);
	pthread_mutex_unlock(&R.cmd_lock);
	return r;
}

void reloc_stop(void)
{
	pthread_mutex_lock(&R.cmd_lock);	/* no command half done */
	if (R.job)
		job_copier_stop(R.job);
	pthread_mutex_unlock(&R.cmd_lock);
}
