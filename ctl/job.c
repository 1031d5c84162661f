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

#include "common/clock.h"
#include "common/log.h"
#include "common/util.h"
#include "copier/budget.h"
#include "copier/copier.h"
#include "ctl/engine_i.h"
#include "delta/delta.h"
#include "fs/fs.h"
#include "target/target.h"

/* The job's copier is read by status and the governor under e->lock: swap
 * it under the lock, stop or start it outside. */
void job_copier_stop(struct engine *e, struct job *j)
{
	struct copier_progress last;
	struct copier *c;

	pthread_mutex_lock(&e->lock);
	c = j->copier;
	j->copier = NULL;
	pthread_mutex_unlock(&e->lock);
	if (!c)
		return;
	copier_stop(c, &last);
	pthread_mutex_lock(&e->lock);
	j->pace.moved_before += last.copied + last.merged;
	j->pace.merged_before += last.merged;
	pthread_mutex_unlock(&e->lock);
}

int job_copier_start(struct engine *e, struct job *j)
{
	struct copier *c = NULL;
	int r;

	if (j->copier)
		return 0;
	if (!j->bc) {
		struct budget_client *bc;

		r = budget_join(e->budget, &bc, j->priority, now_us());
		if (r)
			return r;
		pthread_mutex_lock(&e->lock);	/* the governor reads j->bc */
		j->bc = bc;
		job_pace_update(e, j, now_us());
		pthread_mutex_unlock(&e->lock);
	}
	r = copier_start(&c, j->deltas, j->n, j->bc, fs_busy, e->fs);
	pthread_mutex_lock(&e->lock);
	j->copier = c;
	pthread_mutex_unlock(&e->lock);
	return r;
}

struct job *job_alloc(const char *name, const char *dest, const char *delta_dir)
{
	struct job *j = calloc(1, sizeof(*j));

	if (!j)
		return NULL;
	j->dest_fd = j->delta_fd = -1;
	j->priority = JOB_PRIORITY_DEFAULT;
	j->pace.eta_s = -1;
	j->name = strdup(name);
	j->dest = strdup(dest);
	j->delta_dir = strdup(delta_dir);
	if (!j->name || !j->dest || !j->delta_dir) {
		free(j->name);
		free(j->dest);
		free(j->delta_dir);
		free(j);
		return NULL;
	}
	return j;
}

void job_files_free(struct engine *e, struct job *j, bool unlink_delta)
{
	for (size_t i = 0; i < j->n; i++) {
		struct job_file *f = &j->files[i];

		if (f->node)
			fs_node_put(e->fs, f->node);
		delta_free(f->d, unlink_delta);
		free(f->relpath);
		free(f->ddev);
		free(f->dino);
	}
	free(j->files);
	free(j->deltas);
	j->files = NULL;
	j->deltas = NULL;
	j->n = 0;
	for (size_t i = 0; i < j->nentries; i++)
		free(j->entries[i].relpath);
	free(j->entries);
	j->entries = NULL;
	j->nentries = 0;
}

void job_free(struct engine *e, struct job *j, bool unlink_delta)
{
	if (!j)
		return;
	copier_stop(j->copier, NULL);
	budget_leave(j->bc);
	job_files_free(e, j, unlink_delta);
	for (size_t i = 0; i < j->nwant; i++)
		free(j->want[i]);
	free(j->want);
	if (j->dest_fd != -1)
		close(j->dest_fd);
	if (j->delta_fd != -1)
		close(j->delta_fd);
	handoff_job_free(j);
	free(j->name);
	free(j->dest);
	free(j->delta_dir);
	free(j->rbd);
	free(j);
}

int job_add_entry(struct job *j, const struct stat *st, const char *rel)
{
	struct entry *en;

	for (size_t i = 0; i < j->nentries; i++) {
		if (j->entries[i].dev == st->st_dev && j->entries[i].ino == st->st_ino) {
			j->entries[i].names++;
			return 1;	/* a hard link seen before */
		}
	}
	en = realloc(j->entries, (j->nentries + 1) * sizeof(*en));
	if (!en)
		return -ENOMEM;
	j->entries = en;
	en[j->nentries].dev = st->st_dev;
	en[j->nentries].ino = st->st_ino;
	en[j->nentries].reg = S_ISREG(st->st_mode);
	en[j->nentries].nlink = st->st_nlink;
	en[j->nentries].names = 1;
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
		if (!strcmp(e->ovr[i].relpath, rel) && !override_is_rbd(&e->ovr[i]))
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
	struct target *t = NULL;
	struct delta *d;
	int src, dst = -1, r;

	src = open_source_file(e, rel, O_RDWR);
	if (src < 0) {
		snprintf(err, errlen, "cannot open '%s': %s", rel, strerror(-src));
		return src;
	}
	if (j->rbd) {
		r = rbd_dest_open(j, rel, src, create, &t, err, errlen);
		if (r) {
			close(src);
			return r;
		}
		goto store;
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
	if (dst != -1 && !(t = target_file_new(dst, rel))) {
		close(dst);
		close(src);
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
store:
	r = create ? delta_create(&d, rel, (unsigned)j->n, src, t, j->delta_fd)
		   : delta_open(&d, rel, (unsigned)j->n, src, t, j->delta_fd, e->warm);
	if (r) {
		snprintf(err, errlen, "cannot %s the delta store of '%s' in '%s': %s",
			 create ? "create" : "open", rel, j->delta_dir, strerror(-r));
		close(src);
		target_put(t);
		if (create && j->rbd) {
			char *image = rbd_image_name(j->rbd, rel);

			if (image)
				target_rbd_remove(j->rbd, image);
			free(image);
		}
		return r;
	}
	if (job_append(j, rel, d)) {
		delta_free(d, create);
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	return 0;
}

int job_to_ms(struct mount_state *ms, struct job *j, bool queued)
{
	struct ms_job *mj = ms_find_job(ms, j->id), nj = { 0 };
	char **files = queued ? j->want : NULL;
	size_t nfiles = queued ? j->nwant : j->n;

	nj.id = j->id;
	nj.tree = j->tree;
	nj.queued = queued;
	nj.rate = j->rate;
	nj.priority = j->priority;
	nj.since_ms = j->since_ms;
	nj.deadline_ms = j->deadline_ms;
	nj.name = strdup(j->name);
	nj.dest = strdup(j->dest);
	nj.delta_dir = strdup(j->delta_dir);
	nj.files = calloc(nfiles ? nfiles : 1, sizeof(char *));
	if (!nj.name || !nj.dest || !nj.delta_dir || !nj.files)
		goto nomem;
	for (size_t i = 0; i < nfiles; i++) {
		if (!(nj.files[i] = strdup(files ? files[i] : j->files[i].relpath)))
			goto nomem;
		nj.nfiles++;
	}
	if (!queued && handoff_to_ms(&nj, j))
		goto nomem;
	if (mj) {
		ms_job_free(mj);
		*mj = nj;
		return 0;
	}
	mj = realloc(ms->jobs, (ms->njobs + 1) * sizeof(*mj));
	if (!mj)
		goto nomem;
	ms->jobs = mj;
	ms->jobs[ms->njobs++] = nj;
	return 0;
nomem:
	ms_job_free(&nj);
	return -ENOMEM;
}

void remove_dest(struct job *j)
{
	if (j->keep_dest) {
		log_warnx("what the migration put in '%s' is left there: it was handed off", j->dest);
		return;
	}
	if (j->rbd) {
		rbd_dest_remove(j);
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

	if (j->dest_lost || j->keep_dest || j->rbd)
		return;	/* left there, and the operator told so; images are
			 * removed by remove_dest */
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

	if (j->rbd)
		return true;	/* an image cannot be replaced under its handle */
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

/* Add n to the set unless it is there: 1 if added, 0 if there, -ENOMEM. */
static int set_add(struct rnode ***set, size_t *cnt, struct rnode *n)
{
	struct rnode **ns;

	for (size_t i = 0; i < *cnt; i++)
		if ((*set)[i] == n)
			return 0;
	ns = realloc(*set, (*cnt + 1) * sizeof(*ns));
	if (!ns)
		return -ENOMEM;
	*set = ns;
	(*set)[(*cnt)++] = n;
	return 1;
}

struct rnode **job_start_nodes(struct engine *e, struct job *j, size_t *cnt)
{
	struct rnode **set = job_nodes(j);

	*cnt = j->n;
	for (size_t i = 0; set && !j->tree && i < j->n; i++) {
		const char *rel = j->files[i].relpath, *slash = NULL;

		/* ".", then each directory down to the file's own */
		do {
			char *dir = slash ? strndup(rel, (size_t)(slash - rel)) : strdup(".");
			struct rnode *n = dir ? node_for(e, dir) : NULL;
			int r = n ? set_add(&set, cnt, n) : -ENOMEM;

			free(dir);
			if (r <= 0 && n)
				fs_node_put(e->fs, n);
			if (r < 0) {
				job_start_nodes_free(e, j, set, *cnt);
				return NULL;
			}
			slash = strchr(slash ? slash + 1 : rel, '/');
		} while (slash);
	}
	return set;
}

void job_start_nodes_free(struct engine *e, struct job *j, struct rnode **nodes, size_t cnt)
{
	for (size_t i = j->n; nodes && i < cnt; i++)
		fs_node_put(e->fs, nodes[i]);
	free(nodes);
}

bool job_copying(struct job *j)
{
	if (j->state != JOB_RUNNING)
		return false;
	for (size_t i = 0; i < j->n; i++) {
		struct delta_status st;

		delta_status(j->files[i].d, &st);
		if (st.phase == DELTA_COPYING)
			return true;
	}
	return false;
}

/* The job's state is its files' worst: a failed file fails the job, one
 * still copying keeps it copying, and it is ready when all are. */
const char *job_state_name(struct job *j)
{
	static const enum delta_phase order[] = {
		DELTA_FAILED, DELTA_ABORTING, DELTA_CUTOVER, DELTA_COPYING, DELTA_MERGING,
	};
	bool seen[DELTA_FAILED + 1] = { false }, unready = false;

	if (j->state == JOB_QUEUED)
		return "queued";
	if (j->state == JOB_FAILED)
		return "failed";
	if (j->cutting)
		return "cutover";
	for (size_t i = 0; i < j->n; i++) {
		struct delta_status st;

		delta_status(j->files[i].d, &st);
		if (st.phase >= DELTA_COPYING && st.phase <= DELTA_FAILED)
			seen[st.phase] = true;
		if (st.phase == DELTA_MERGING && st.dirty_bytes > DELTA_READY_BYTES)
			unready = true;
	}
	for (size_t k = 0; k < sizeof(order) / sizeof(order[0]); k++) {
		if (!seen[order[k]])
			continue;
		if (order[k] == DELTA_MERGING)
			return unready ? "merging" : "ready";
		return delta_phase_name(order[k], 0);
	}
	return seen[DELTA_ABORTED] ? "aborted" : "done";
}

const char *job_label(const struct job *j, char *buf, size_t len)
{
	if (!j->name[0])
		snprintf(buf, len, "the migration");
	else
		snprintf(buf, len, "job '%s'", j->name);
	return buf;
}

int jobs_add(struct engine *e, struct job *j)
{
	struct job **nj;

	for (size_t i = 0; i < e->njobs; i++)
		if (e->jobs[i] == j)
			return 0;
	nj = realloc(e->jobs, (e->njobs + 1) * sizeof(*nj));
	if (!nj)
		return -ENOMEM;
	e->jobs = nj;
	e->jobs[e->njobs++] = j;
	return 0;
}

void jobs_remove(struct engine *e, struct job *j)
{
	for (size_t i = 0; i < e->njobs; i++) {
		if (e->jobs[i] == j) {
			memmove(&e->jobs[i], &e->jobs[i + 1], (e->njobs - i - 1) * sizeof(*e->jobs));
			e->njobs--;
			return;
		}
	}
}
