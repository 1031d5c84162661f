/*
 * job: a relocation job's files: the tree walk that mirrors a tree job's
 * directories into the destination, each file's destination file and delta
 * store, the nodes that serve them, the copier, and what the job leaves in
 * the destination if it is undone.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <linux/openat2.h>

#include "common/log.h"
#include "common/util.h"
#include "copier/copier.h"
#include "ctl/engine_i.h"
#include "delta/delta.h"
#include "fs/fs.h"

/* The job's copier is read by status under e->lock: swap it under the lock,
 * stop or start it outside. */
void job_copier_stop(struct engine *e, struct job *j)
{
	struct copier *c;

	pthread_mutex_lock(&e->lock);
	c = j->copier;
	j->copier = NULL;
	pthread_mutex_unlock(&e->lock);
	copier_stop(c);
}

int job_copier_start(struct engine *e, struct job *j)
{
	struct copier *c = NULL;
	int r;

	if (j->copier)
		return 0;
	r = copier_start(&c, j->deltas, j->n, j->rate, fs_busy, e->fs);
	pthread_mutex_lock(&e->lock);
	j->copier = c;
	pthread_mutex_unlock(&e->lock);
	return r;
}

void job_free(struct engine *e, struct job *j, bool unlink_delta)
{
	if (!j)
		return;
	copier_stop(j->copier);
	for (size_t i = 0; i < j->n; i++) {
		struct job_file *f = &j->files[i];

		if (f->node)
			fs_node_put(e->fs, f->node);
		delta_free(f->d, unlink_delta);
		free(f->relpath);
	}
	free(j->files);
	free(j->deltas);
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

int job_add_entry(struct job *j, const struct stat *st, const char *rel)
{
	struct entry *en;

	for (size_t i = 0; i < j->nentries; i++)
		if (j->entries[i].dev == st->st_dev && j->entries[i].ino == st->st_ino)
			return 1;	/* a hard link seen before */
	en = realloc(j->entries, (j->nentries + 1) * sizeof(*en));
	if (!en)
		return -ENOMEM;
	j->entries = en;
	en[j->nentries].dev = st->st_dev;
	en[j->nentries].ino = st->st_ino;
	en[j->nentries].relpath = strdup(rel);
	if (!en[j->nentries].relpath)
		return -ENOMEM;
	j->nentries++;
	return 0;
}

const char *job_entry_path(struct job *j, dev_t dev, ino_t ino)
{
	for (size_t i = 0; i < j->nentries; i++)
		if (j->entries[i].dev == dev && j->entries[i].ino == ino)
			return j->entries[i].relpath;
	return NULL;
}

/* Where a file's base lives: its override, or the served root. */
int open_source_file(struct engine *e, const char *rel, int flags)
{
	char *p = NULL;
	int fd;

	for (size_t i = 0; i < e->novr; i++)
		if (!strcmp(e->ovr[i].relpath, rel))
			p = path_join(e->ovr[i].backend, rel);
	if (!p) {
		/* below the served root, with no symlink on the way (a FILE
		 * argument must not lead out of the tree) */
		struct open_how how = {
			.flags = (uint64_t)(flags | O_NOFOLLOW | O_CLOEXEC),
			.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS,
		};

		fd = (int)syscall(SYS_openat2, e->root_fd, rel, &how, sizeof(how));
		return fd == -1 ? (errno == ELOOP || errno == EXDEV ? -EXDEV : -errno) : fd;
	}
	fd = open_path(e, p, flags | O_NOFOLLOW);
	free(p);
	return fd;
}

void walk_free(struct walk *w)
{
	for (size_t i = 0; i < w->nfiles; i++)
		free(w->files[i]);
	free(w->files);
	w->files = NULL;
	w->nfiles = 0;
}

/* Mirror one entry that is not a directory or regular file. */
static int walk_other(struct walk *w, int fd, int ddir, const char *nm, const struct stat *st)
{
	if (!w->create)
		return 0;
	if (S_ISLNK(st->st_mode)) {
		char target[PATH_MAX + 1];
		ssize_t l = readlinkat(fd, nm, target, PATH_MAX);

		if (l < 0 || (target[l] = '\0', symlinkat(target, ddir, nm) == -1))
			return -errno;
	} else if (mknodat(ddir, nm, st->st_mode, st->st_rdev) == -1) {
		return -errno;
	}
	fchownat(ddir, nm, st->st_uid, st->st_gid, AT_SYMLINK_NOFOLLOW);
	return 0;
}

static int walk_dir(struct walk *w, int fd, int ddir, const char *nm, const struct stat *st,
		    const char *crel)
{
	int sfd = openat(fd, nm, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC), dfd = -1, err = 0;

	if (w->create && mkdirat(ddir, nm, st->st_mode & 07777) == -1)
		err = -errno;
	if (!err)
		dfd = openat(ddir, nm, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (!err && (sfd == -1 || dfd == -1))
		err = -errno;
	if (!err && w->create)
		fchownat(dfd, "", st->st_uid, st->st_gid, AT_EMPTY_PATH);
	if (!err)
		err = walk_tree(w, sfd, dfd, crel);
	if (sfd != -1)
		close(sfd);
	if (dfd != -1)
		close(dfd);
	return err;
}

static int walk_file(struct walk *w, int ddir, const char *nm, const struct stat *st,
		     const char *crel)
{
	char **nf = realloc(w->files, (w->nfiles + 1) * sizeof(*nf));

	if (!nf)
		return -ENOMEM;
	w->files = nf;
	w->files[w->nfiles++] = strdup(crel);
	w->bytes += (uint64_t)st->st_blocks * 512;
	w->delta_room += delta_space_needed((uint64_t)st->st_size);
	/* create it now, so that hard links to it can follow */
	if (w->create) {
		int dfd = openat(ddir, nm, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);

		if (dfd == -1)
			return -errno;
		close(dfd);
	}
	return 0;
}

/* Walk the served tree below rel; mirror directories, links and special
 * files into the destination; collect regular files. */
int walk_tree(struct walk *w, int sdir, int ddir, const char *rel)
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
			err = walk_dir(w, fd, ddir, nm, &st, crel);
		} else if (!err && S_ISREG(st.st_mode)) {
			err = walk_file(w, ddir, nm, &st, crel);
		} else if (!err) {
			err = walk_other(w, fd, ddir, nm, &st);
		}
		if (err && !w->err[0])
			snprintf(w->err, sizeof(w->err), "'%s': %s", crel, strerror(-err));
		free(crel);
	}
	closedir(d);
	return err;
}

struct rnode *node_for(struct engine *e, const char *rel)
{
	struct stat st;
	int fd = open_source_file(e, rel, O_PATH);

	if (fd < 0)
		return NULL;
	if (fstatat(fd, "", &st, AT_EMPTY_PATH) == -1) {
		close(fd);
		return NULL;
	}
	return fs_node_get(e->fs, fd, &st);
}

/* Append a file to the job's arrays (the store is the job's from then on). */
static int job_append(struct job *j, const char *rel, struct delta *d)
{
	struct job_file *nf = realloc(j->files, (j->n + 1) * sizeof(*nf));
	struct delta **nd;

	if (!nf)
		return -ENOMEM;
	j->files = nf;
	nd = realloc(j->deltas, (j->n + 1) * sizeof(*nd));
	if (!nd)
		return -ENOMEM;
	j->deltas = nd;
	nf[j->n] = (struct job_file){ .relpath = strdup(rel), .d = d };
	if (!nf[j->n].relpath)
		return -ENOMEM;
	nd[j->n] = d;
	j->n++;
	return 0;
}

int job_add_file(struct engine *e, struct job *j, const char *rel, bool create, char *err,
		 size_t errlen)
{
	struct delta *d;
	int src, dst, r;

	src = open_source_file(e, rel, O_RDWR);
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
	r = create ? delta_create(&d, rel, (unsigned)j->n, src, dst, j->delta_fd)
		   : delta_open(&d, rel, (unsigned)j->n, src, dst, j->delta_fd, e->warm);
	if (r) {
		snprintf(err, errlen, "cannot %s the delta store of '%s' in '%s': %s",
			 create ? "create" : "open", rel, j->delta_dir, strerror(-r));
		close(src);
		if (dst != -1)
			close(dst);
		return r;
	}
	if (job_append(j, rel, d)) {
		delta_free(d, create);
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	return 0;
}

int job_to_ms(struct mount_state *ms, struct job *j)
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
	if (!j) {
		free(ms->handoff_spec);
		free(ms->handoff_vm);
		ms->handoff_spec = ms->handoff_vm = NULL;
		ms->handoff = MS_HANDOFF_NONE;
		return 0;
	}
	ms->job_id = j->id;
	ms->tree = j->tree;
	ms->rate = j->rate;
	ms->dest = strdup(j->dest);
	ms->delta_dir = strdup(j->delta_dir);
	ms->files = calloc(j->n ? j->n : 1, sizeof(char *));
	if (!ms->dest || !ms->delta_dir || !ms->files)
		return -ENOMEM;
	for (size_t i = 0; i < j->n; i++)
		if (!(ms->files[i] = strdup(j->files[i].relpath)))
			return -ENOMEM;
	ms->nfiles = j->n;
	return 0;
}

void remove_dest(struct job *j)
{
	if (j->keep_dest || j->dest_fd < 0) {
		if (j->keep_dest)
			log_warnx("what the migration put in '%s' is left there: it was handed off",
				  j->dest);
		return;
	}
	if (j->tree) {
		/* the destination was empty when the job began: all of it is ours */
		empty_dir(j->dest_fd, STATE_DIR);
		return;
	}
	for (size_t i = 0; i < j->n; i++)
		unlinkat(j->dest_fd, j->files[i].relpath, 0);
	/* the directories a files job made, deepest first */
	for (size_t i = j->nentries; i-- > 0;)
		unlinkat(j->dest_fd, j->entries[i].relpath, AT_REMOVEDIR);
}

/* The record's clean-up list gets what the job put in DEST: its files (a
 * files job) or every entry of DEST (a tree job, whose DEST was empty). */
void add_dest_cleanup(struct engine *e, struct job *j)
{
	struct dirent *de;
	DIR *d;
	int fd;

	if (j->dest_lost)
		return;	/* left there, and the operator told so */
	if (!j->tree) {
		for (size_t i = 0; i < j->n; i++) {
			char *p = path_join(j->dest, j->files[i].relpath);

			if (p)
				ms_add_cleanup(&e->ms, p);
			free(p);
		}
		return;
	}
	fd = openat(j->dest_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	d = fd == -1 ? NULL : fdopendir(fd);
	while (d && (de = readdir(d))) {
		char *p;

		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if ((p = path_join(j->dest, de->d_name)))
			ms_add_cleanup(&e->ms, p);
		free(p);
	}
	if (d)
		closedir(d);
	else if (fd != -1)
		close(fd);
}

bool job_dest_ok(struct job *j)
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
		delta_fail(j->files[i].d, err, err == ENODEV ? "the destination path no longer leads "
					       "to the copy (unmounted or replaced)"
					     : "cannot reach the destination");
	return false;
}

struct rnode **job_nodes(struct job *j)
{
	struct rnode **nodes = calloc(j->n ? j->n : 1, sizeof(*nodes));

	for (size_t i = 0; nodes && i < j->n; i++)
		nodes[i] = j->files[i].node;
	return nodes;
}
