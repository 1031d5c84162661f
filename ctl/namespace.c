/*
 * namespace: what the FUSE layer asks of the engine about names (its
 * fs_policy): which names a job pins, and where a file relocated on its own
 * lives now.
 *
 * While a whole-tree job runs, the tree's names are pinned (creating,
 * removing and renaming entries fail with EBUSY) while the data of every
 * file keeps changing; a files job pins only its files' names and the
 * directories that lead to them (renaming one would move a file the job's
 * record names), so that everything else in the mount can be created,
 * renamed and removed while any number of files jobs run.  Queued jobs pin
 * nothing.  A file relocated on its own (an "override") is served from its
 * destination under its old name: the FUSE layer's lookups are redirected
 * there, renaming it or a directory above it fails (EXDEV / EBUSY), and
 * unlinking it removes it where it lives.  A file relocated into an RBD
 * image keeps its name on a stub in the served directory, which lookups
 * find as before (the stub's node is served from the image); unlinking it
 * removes the stub and forgets the image, which stays in the pool: after a
 * qmp-rbd hand-off QEMU writes that image directly, and a name removed on
 * the mount must not take a running VM's disk with it.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/util.h"
#include "ctl/engine_i.h"
#include "fs/fs.h"

void override_free(struct override *o)
{
	free(o->relpath);
	free(o->backend);
	free(o->adev);
	free(o->aino);
}

/* The directories from the root down to relpath's parent, as (dev, ino)
 * in *dev, *ino (n of them, the root first). */
static int resolve_dirs(const char *relpath, int root_fd, size_t *n, dev_t **dev, ino_t **ino)
{
	char *copy = strdup(relpath), *p, *slash;
	int fd = dup(root_fd), err = 0;

	if (!copy || fd == -1) {
		free(copy);
		if (fd != -1)
			close(fd);
		return -ENOMEM;
	}
	for (p = copy;; p = slash + 1) {
		struct stat st;
		dev_t *nd;
		ino_t *ni;
		int nfd;

		if (fstatat(fd, "", &st, AT_EMPTY_PATH) == -1) {
			err = -errno;
			break;
		}
		nd = realloc(*dev, (*n + 1) * sizeof(**dev));
		if (nd)
			*dev = nd;
		ni = realloc(*ino, (*n + 1) * sizeof(**ino));
		if (ni)
			*ino = ni;
		if (!nd || !ni) {
			err = -ENOMEM;
			break;
		}
		(*dev)[*n] = st.st_dev;
		(*ino)[*n] = st.st_ino;
		(*n)++;
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

int job_file_same(struct engine *e, struct job_file *f)
{
	size_t n = 0;
	dev_t *dev = NULL, ndev;
	ino_t *ino = NULL, nino;
	struct stat st;
	int err = resolve_dirs(f->relpath, e->root_fd, &n, &dev, &ino), fd;

	if (!err && (n != f->ndirs || memcmp(dev, f->ddev, n * sizeof(*dev)) ||
		     memcmp(ino, f->dino, n * sizeof(*ino))))
		err = -ESTALE;	/* a directory on the way was renamed */
	free(dev);
	free(ino);
	if (err)
		return err == -ENOMEM ? err : -ESTALE;
	fd = open_source_file(e, f->relpath, O_PATH);
	if (fd < 0)
		return fd == -ENOMEM ? fd : -ESTALE;
	if (fstatat(fd, "", &st, AT_EMPTY_PATH) == -1)
		err = -errno;
	close(fd);
	fs_node_key(f->node, &ndev, &nino);
	if (!err && (st.st_dev != ndev || st.st_ino != nino))
		err = -ESTALE;	/* the name leads to another file now */
	else if (!err && st.st_nlink > 1)
		err = -EMLINK;	/* linked since check_file looked */
	return err;
}

/* Resolve relpath's directories from the served root; caller holds e->lock. */
int override_resolve(struct override *o, int root_fd)
{
	int err = resolve_dirs(o->relpath, root_fd, &o->nanc, &o->adev, &o->aino);

	o->name = strrchr(o->relpath, '/') ? strrchr(o->relpath, '/') + 1 : o->relpath;
	if (!err && o->nanc) {
		o->pdev = o->adev[o->nanc - 1];
		o->pino = o->aino[o->nanc - 1];
	}
	return err;
}

int job_file_resolve(struct job_file *f, int root_fd)
{
	return resolve_dirs(f->relpath, root_fd, &f->ndirs, &f->ddev, &f->dino);
}

int overrides_to_ms(struct engine *e, struct mount_state *ms)
{
	struct ms_override *a = calloc(e->novr ? e->novr : 1, sizeof(*a));

	if (!a)
		return -ENOMEM;
	for (size_t i = 0; i < e->novr; i++) {
		a[i].relpath = strdup(e->ovr[i].relpath);
		a[i].backend = strdup(e->ovr[i].backend);
	}
	for (size_t i = 0; i < ms->noverrides; i++) {
		free(ms->overrides[i].relpath);
		free(ms->overrides[i].backend);
	}
	free(ms->overrides);
	ms->overrides = a;
	ms->noverrides = e->novr;
	return 0;
}

static bool override_names(const struct override *o, const struct fs_dir *dir, const char *name)
{
	return o->pdev == dir->dev && o->pino == dir->ino && !strcmp(o->name, name);
}

int ns_redirect(void *arg, const struct fs_dir *dir, const char *name)
{
	struct engine *e = arg;
	int fd = -ENOENT;

	if (!__atomic_load_n(&e->novr, __ATOMIC_ACQUIRE))
		return -ENOENT;
	pthread_mutex_lock(&e->lock);
	for (size_t i = 0; i < e->novr; i++) {
		struct override *o = &e->ovr[i];

		if (override_names(o, dir, name)) {
			char *p = override_is_rbd(o) ? NULL : path_join(o->backend, o->relpath);

			if (override_is_rbd(o))
				fd = openat(dir->fd, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
			else
				fd = p ? open(p, O_PATH | O_NOFOLLOW | O_CLOEXEC) : -1;
			fd = fd == -1 ? -errno : fd;
			free(p);
			break;
		}
	}
	pthread_mutex_unlock(&e->lock);
	return fd;
}

void ns_redirect_removed(void *arg, const struct fs_dir *dir, const char *name)
{
	struct engine *e = arg;

	pthread_mutex_lock(&e->lock);
	for (size_t i = 0; i < e->novr; i++) {
		struct override *o = &e->ovr[i];

		if (override_names(o, dir, name)) {
			handoff_forget(e, o->relpath);
			/* out of the record by name: e->ovr may already hold a
			 * cutover's overrides that the record gets at its commit */
			for (size_t k = 0; k < e->ms.noverrides; k++) {
				struct ms_override *m = &e->ms.overrides[k];

				if (strcmp(m->relpath, o->relpath))
					continue;
				free(m->relpath);
				free(m->backend);
				*m = e->ms.overrides[--e->ms.noverrides];
				if (e->state_fd != -1)
					save_record(e);
				break;
			}
			override_free(o);
			e->ovr[i] = e->ovr[e->novr - 1];
			__atomic_store_n(&e->novr, e->novr - 1, __ATOMIC_RELEASE);
			break;
		}
	}
	pthread_mutex_unlock(&e->lock);
}

/* Does the running job j pin the entry st (its file, or a directory on
 * the way to one)?  Caller holds e->lock. */
static bool job_pins(struct job *j, const struct stat *st)
{
	for (size_t i = 0; i < j->n; i++) {
		struct job_file *f = &j->files[i];
		dev_t dev;
		ino_t ino;

		if (S_ISDIR(st->st_mode)) {
			/* the root (first) is never renamed through the mount */
			for (size_t k = 1; k < f->ndirs; k++)
				if (f->ddev[k] == st->st_dev && f->dino[k] == st->st_ino)
					return true;
			continue;
		}
		if (!f->node)
			continue;
		fs_node_key(f->node, &dev, &ino);
		if (dev == st->st_dev && ino == st->st_ino)
			return true;
	}
	return false;
}

int ns_name_check(void *arg, const struct fs_dir *dir, const char *name, bool creates)
{
	struct engine *e = arg;
	bool running = false;
	struct stat st;
	int err = 0;

	pthread_mutex_lock(&e->lock);
	for (size_t k = 0; k < e->njobs; k++) {
		if (e->jobs[k]->state != JOB_RUNNING)
			continue;
		running = true;
		if (e->jobs[k]->tree) {
			err = -EBUSY;	/* a whole-tree job pins every name */
			goto out;
		}
	}
	if (!running && !e->novr && !e->nsealed)
		goto out;
	if (fstatat(dir->fd, name, &st, AT_SYMLINK_NOFOLLOW) == -1)
		goto out;	/* a new name pins nothing */
	if (e->nsealed && (err = handoff_name_check(e, dir, name, &st, creates)))
		goto out;	/* handed off to another host */
	for (size_t k = 0; k < e->njobs; k++) {
		if (e->jobs[k]->state == JOB_RUNNING && job_pins(e->jobs[k], &st)) {
			err = -EBUSY;
			goto out;
		}
	}
	for (size_t i = 0; i < e->novr; i++) {
		struct override *o = &e->ovr[i];

		if (S_ISDIR(st.st_mode)) {
			for (size_t k = 1; k < o->nanc; k++)
				if (o->adev[k] == st.st_dev && o->aino[k] == st.st_ino)
					err = -EBUSY;	/* would move a relocated file's path */
		} else if (override_names(o, dir, name)) {
			err = creates ? -EBUSY : -EXDEV;	/* lives on another backend */
		}
	}
out:
	pthread_mutex_unlock(&e->lock);
	return err;
}
