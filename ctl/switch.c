/*
 * switch: the parts of a cutover that point the mount at the destination:
 * the next record, the destination files opened and checked before the
 * point of no return, the switch of nodes and open handles, and the commit
 * that makes it durable, with the flush barrier that keeps flushes from
 * being acknowledged before it is (see cutover.c for the order).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "common/crashpoint.h"
#include "common/log.h"
#include "common/util.h"
#include "ctl/engine_i.h"
#include "delta/delta.h"
#include "fs/fs.h"
#include "target/target.h"

/* Copy owner, mode, times and extended attributes of src to dst (O_PATH or
 * real descriptors; symlinks get owner and times only). */
int copy_meta(int src, int dst, const struct timespec *mtime)
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

/* Point node at its counterpart below dest (tree jobs: every node). */
static int switch_node(struct engine *e, struct rnode *n, int dest_fd, const char *rel)
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
	fs_node_rekey(e->fs, n, fd, &st);
	return fs_reopen_handles(e->fs, n);
}

void switch_tree_node(struct rnode *n, void *arg)
{
	struct switch_ctx *c = arg;
	const char *rel;
	dev_t dev;
	ino_t ino;
	int err;

	fs_node_key(n, &dev, &ino);
	rel = job_entry_path(c->job, dev, ino);
	if (!rel)
		return;	/* e.g. a file unlinked while open: stays where it is */
	err = switch_node(c->e, n, c->job->dest_fd, rel);
	if (err) {
		log_warnx("cannot switch '%s' to '%s': %s", rel, c->job->dest, strerror(-err));
		c->errors++;
	}
}

void sync_dirs(int dirfd, struct job *j)
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

/* Sync the switched destinations, then the renamed record; ends the
 * barrier.  Called by the cutover thread (once; later calls do nothing). */
int commit_make_durable(struct engine *e)
{
	struct commit *commit = &e->commit;
	int r = 0;

	pthread_mutex_lock(&commit->lock);
	if (!commit->pending) {
		pthread_mutex_unlock(&commit->lock);
		return commit->result;
	}
	for (size_t i = 0; i < commit->job->n && !r; i++)
		r = target_sync(delta_dest(commit->job->files[i].d));
	/* the commit point: before it is durable, a restart rolls back.
	 * Under e->lock: no other record is saved meanwhile, and the next
	 * record holds every change saved since it was first written */
	pthread_mutex_lock(&e->lock);
	if (!r && renameat(e->state_fd, "state.next", e->state_fd, "state") == -1)
		r = -errno;
	if (!r)
		crashpoint("cutover-committed");
	if (!r && fsync(e->state_fd) == -1)
		r = -errno;
	if (r) {
		log_warnx("cannot make the switch durable: %s; flushes fail until relocfs "
			  "restarts (and rolls back to the source)", strerror(-r));
		e->record_frozen = true;
	} else {
		adopt_next_state(e, commit->job);
		e->cutover_job = NULL;
	}
	pthread_mutex_unlock(&e->lock);
	__atomic_store_n(&commit->result, r, __ATOMIC_RELEASE);
	__atomic_store_n(&commit->pending, false, __ATOMIC_RELEASE);
	pthread_cond_broadcast(&commit->done);
	pthread_mutex_unlock(&commit->lock);
	return r;
}

int commit_barrier(void *arg)
{
	struct engine *e = arg;
	struct commit *commit = &e->commit;
	int r;

	if (!__atomic_load_n(&commit->pending, __ATOMIC_ACQUIRE))
		return __atomic_load_n(&commit->result, __ATOMIC_ACQUIRE) ? -EIO : 0;
	if (pthread_equal(pthread_self(), commit->owner))
		/* a parked flush replayed by the cutover thread itself */
		return commit_make_durable(e) ? -EIO : 0;
	pthread_mutex_lock(&commit->lock);
	while (commit->pending)
		pthread_cond_wait(&commit->done, &commit->lock);
	r = commit->result ? -EIO : 0;
	pthread_mutex_unlock(&commit->lock);
	return r;
}

void commit_begin(struct engine *e, struct job *j)
{
	struct commit *commit = &e->commit;

	pthread_mutex_lock(&commit->lock);
	commit->owner = pthread_self();
	commit->job = j;
	__atomic_store_n(&commit->result, 0, __ATOMIC_RELEASE);
	__atomic_store_n(&commit->pending, true, __ATOMIC_RELEASE);
	pthread_mutex_unlock(&commit->lock);
}

void preopen_node(struct rnode *n, void *arg)
{
	struct preopen_ctx *c = arg;
	struct preopen *np;
	const char *rel;
	dev_t dev;
	ino_t ino;
	int fd;

	fs_node_key(n, &dev, &ino);
	rel = job_entry_path(c->job, dev, ino);
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
	fs_node_ref(c->e->fs, n);
	c->n++;
}

void preopen_free(struct preopen_ctx *c)
{
	for (size_t i = 0; i < c->n; i++) {
		if (c->p[i].fd != -1)
			close(c->p[i].fd);
		fs_node_put(c->e->fs, c->p[i].node);
	}
	free(c->p);
	c->p = NULL;
	c->n = c->cap = 0;
}

int preopen_cmp(const void *a, const void *b)
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
int switch_prepare(struct job *j, struct preopen_ctx *pre, struct preopen *sw, char *err,
			  size_t errlen)
{
	size_t i;
	int r = 0;

	if (j->rbd) {
		/* nothing to open: the nodes keep their stubs and handles, and
		 * their data goes to the images the stores hold open */
		for (i = 0; i < j->n; i++) {
			sw[i].node = j->files[i].node;
			sw[i].fd = -1;
			if (!delta_dest(j->files[i].d)) {
				snprintf(err, errlen, "'%s': the image is not open", j->files[i].relpath);
				return -ENODEV;
			}
		}
		return 0;
	}
	for (i = 0; i < j->n; i++) {
		struct job_file *f = &j->files[i];
		struct preopen key = { .node = f->node }, *p = NULL;
		struct stat dst;

		sw[i].node = f->node;
		sw[i].fd = -1;
		if (pre->n)
			p = bsearch(&key, pre->p, pre->n, sizeof(*p), preopen_cmp);
		if (p && p->fd != -1) {
			sw[i].st = p->st;
			sw[i].fd = dup(p->fd);
			if (sw[i].fd == -1)
				r = -errno;
		} else {
			sw[i].fd = openat(j->dest_fd, f->relpath, O_PATH | O_NOFOLLOW | O_CLOEXEC);
			if (sw[i].fd == -1 ||
			    fstatat(sw[i].fd, "", &sw[i].st, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) == -1)
				r = -errno;
		}
		if (!r && fstat(delta_dest_fd(f->d), &dst) == -1)
			r = -errno;
		if (!r && (dst.st_dev != sw[i].st.st_dev || dst.st_ino != sw[i].st.st_ino))
			r = -ESTALE;	/* the name no longer leads to the copy */
		if (!r)
			r = fs_prepare_reopen(pre->e->fs, f->node, sw[i].fd);
		if (r == -ESTALE) {
			snprintf(err, errlen, "'%s' on the destination is no longer the copy",
				 f->relpath);
		} else if (r) {
			snprintf(err, errlen, "cannot open '%s' on the destination: %s", f->relpath,
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

int next_state_build(struct engine *e, struct next_state *ns, struct job *j)
{
	const struct mount_state *ms = &e->ms;
	size_t nj = 0;

	memset(ns, 0, sizeof(*ns));
	ns->ms = *ms;
	ns->ms.cutover_job = j->id;
	/* the other jobs, as they are recorded now */
	ns->jobs = calloc(ms->njobs ? ms->njobs : 1, sizeof(*ns->jobs));
	if (!ns->jobs)
		return -ENOMEM;
	for (size_t k = 0; k < ms->njobs; k++)
		if (ms->jobs[k].id != j->id)
			ns->jobs[nj++] = ms->jobs[k];
	ns->ms.jobs = ns->jobs;
	ns->ms.njobs = nj;
	if (j->tree) {
		ns->ms.root = j->dest;
		ns->ms.noverrides = 0;
		ns->ms.overrides = NULL;
	} else {
		ns->ovr = calloc(ms->noverrides + j->n + 1, sizeof(*ns->ovr));
		if (!ns->ovr)
			return -ENOMEM;
		memcpy(ns->ovr, ms->overrides, ms->noverrides * sizeof(*ns->ovr));
		for (size_t i = 0; i < j->n; i++) {
			ns->ovr[ms->noverrides + i].relpath = j->files[i].relpath;
			ns->ovr[ms->noverrides + i].backend = j->dest;
		}
		ns->ms.overrides = ns->ovr;
		ns->ms.noverrides = ms->noverrides + j->n;
	}
	ns->cleanup = calloc(ms->ncleanup + 1, sizeof(char *));
	if (!ns->cleanup)
		return -ENOMEM;
	memcpy(ns->cleanup, ms->cleanup, ms->ncleanup * sizeof(char *));
	ns->cleanup[ms->ncleanup] = j->delta_dir;
	ns->ms.cleanup = ns->cleanup;
	ns->ms.ncleanup = ms->ncleanup + 1;
	return handoff_next_state(e, ns, j);
}

void next_state_free(struct next_state *ns)
{
	free(ns->jobs);
	free(ns->sealed);
	free(ns->ovr);
	free(ns->cleanup);
	memset(ns, 0, sizeof(*ns));
}

void switch_serving(struct engine *e, struct job *j)
{
	struct override *no;

	if (j->tree) {
		for (size_t i = 0; i < e->novr; i++)
			override_free(&e->ovr[i]);
		__atomic_store_n(&e->novr, 0, __ATOMIC_RELEASE);
		return;
	}
	no = realloc(e->ovr, (e->novr + j->n) * sizeof(*no));
	if (!no) {
		log_warnx("out of memory: the files switched are served through their old "
			  "directory until relocfs restarts");
		return;
	}
	e->ovr = no;
	for (size_t i = 0; i < j->n; i++) {
		struct override *o = &e->ovr[e->novr];

		memset(o, 0, sizeof(*o));
		o->relpath = strdup(j->files[i].relpath);
		o->backend = strdup(j->dest);
		if (o->relpath && o->backend && override_resolve(o, e->root_fd) == 0) {
			if (j->rbd && j->files[i].node) {
				/* the stub's node keeps the image's route */
				o->node = j->files[i].node;
				fs_node_ref(e->fs, o->node);
			}
			__atomic_store_n(&e->novr, e->novr + 1, __ATOMIC_RELEASE);
		} else {
			override_free(o);
		}
	}
}

/* The record's own copies of what next_state_build described. */
int adopt_next_state(struct engine *e, struct job *j)
{
	struct mount_state *ms = &e->ms;
	int r = 0;

	if (j->tree) {
		char *root = strdup(j->dest);

		if (!root)
			return -ENOMEM;
		free(ms->root);
		ms->root = root;
		for (size_t i = 0; i < ms->noverrides; i++) {
			free(ms->overrides[i].relpath);
			free(ms->overrides[i].backend);
		}
		ms->noverrides = 0;
	} else {
		struct ms_override *no = realloc(ms->overrides,
						 (ms->noverrides + j->n) * sizeof(*no));

		if (!no)
			return -ENOMEM;
		ms->overrides = no;
		for (size_t i = 0; i < j->n; i++) {
			struct ms_override *o = &ms->overrides[ms->noverrides];

			o->relpath = strdup(j->files[i].relpath);
			o->backend = strdup(j->dest);
			if (o->relpath && o->backend) {
				ms->noverrides++;
			} else {
				free(o->relpath);
				free(o->backend);
				r = -ENOMEM;
			}
		}
	}
	if (handoff_adopt(e, j))
		r = -ENOMEM;
	ms_drop_job(ms, j->id);
	if (ms_add_cleanup(ms, j->delta_dir))
		r = -ENOMEM;
	return r;
}
