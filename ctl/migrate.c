/*
 * migrate: asking for a job, and starting one.
 *
 * Asking (cmd_migrate), in steps that each succeed or say why in *out:
 *   1. check the request: a name not in use, a whole-tree job alone, a
 *      destination outside the mount and the source tree (or a Ceph pool,
 *      "rbd:POOL[/PREFIX]", for files), FILE arguments inside the tree,
 *      regular, in no other job (migrate_check, check_files);
 *   2. start it now if a slot is free and no job waits before it, else
 *      queue it: recorded, nothing else made; the governor (sched.c)
 *      starts it when a slot frees.
 * Starting (job_start, also for a queued job):
 *   1. the job's destination and delta directory (job_open);
 *   2. what it moves: the whole tree mirrored into the empty destination,
 *      or the named files (plan_tree, plan_file), and room for it (for
 *      RBD: the cluster answers, the pool exists, no image is in the way);
 *   3. each file's destination file and delta store;
 *   4. its names pinned (job_pin), then the record names it as started,
 *      durably, before any write goes to a delta (a restart finds it and
 *      carries on);
 *   5. hold the files while their base is frozen and their routes switch to
 *      the live view (job_begin), then start the copier.
 * Whatever fails before 5 is undone (the record goes back to what it was,
 * the delta directory and what was made in the destination are removed);
 * nothing was routed yet.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include "common/crashpoint.h"
#include "common/log.h"
#include "common/util.h"
#include "ctl/engine_i.h"
#include "delta/delta.h"
#include "fs/fs.h"
#include "target/target.h"

/* A FILE argument: relative, no "..", no symlinks on the way, a regular file. */
static int check_file_arg(const char *f, char **out)
{
	char *copy;
	int ret = 0;

	if (f[0] == '/') {
		*out = xasprintf("'%s' is outside the mount (give a path relative to it)", f);
		return CTL_EUSAGE;
	}
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

/* dest: req->to made canonical (it may not exist yet: its parent must). */
static int resolve_dest(const struct ctl_request *req, char dest[PATH_MAX], char **out)
{
	char parent[PATH_MAX], *copy, *base;
	int n;

	if (realpath(req->to, dest))
		return CTL_OK;
	copy = strdup(req->to);
	base = copy ? strrchr(copy, '/') : NULL;
	if (errno != ENOENT || !base || !base[1])
		goto fail;
	*base++ = '\0';
	if (!realpath(*copy ? copy : "/", parent))
		goto fail;
	n = snprintf(dest, PATH_MAX, "%s/%s", strcmp(parent, "/") ? parent : "", base);
	if (n >= PATH_MAX) {
		errno = ENAMETOOLONG;
		goto fail;
	}
	free(copy);
	return CTL_OK;
fail:
	*out = xasprintf("cannot use destination '%s': %s", req->to, strerror(errno));
	free(copy);
	return CTL_EFAIL;
}

/* An RBD destination: a spec relocctl built, files only. */
static int check_rbd_dest(const struct ctl_request *req, char dest[PATH_MAX], char **out)
{
	struct rbd_spec sp;
	char err[512], *canon;

	if (rbd_spec_parse(req->to, &sp, err, sizeof(err))) {
		*out = xasprintf("%s", err);
		return CTL_EUSAGE;
	}
	if (req->nfiles == 0) {
		*out = xasprintf("an RBD destination takes files, one image each: name them");
		return CTL_EUSAGE;
	}
	canon = rbd_spec_format(&sp);
	if (!canon || strlen(canon) >= PATH_MAX) {
		free(canon);
		*out = xasprintf("out of memory");
		return CTL_EFAIL;
	}
	strcpy(dest, canon);
	free(canon);
	return CTL_OK;
}

/* Names in use, and a whole-tree job alone.  e->lock held. */
static int check_jobs(struct engine *e, const struct ctl_request *req, char **out)
{
	const char *name = req->job ? req->job : "";
	struct job *other = job_find(e, name), *tree = NULL;

	if (other && !name[0]) {
		*out = xasprintf("a migration is already in progress (%zu file(s) to '%s'): wait, "
				 "cut over or abort it first", other->state == JOB_QUEUED ? other->nwant
				 : other->n, other->dest);
		return CTL_EFAIL;
	}
	if (other) {
		*out = xasprintf("job '%s' exists already (%s, to '%s'): cut it over or abort it "
				 "first, or give another name", name, job_state_name(other),
				 other->dest);
		return CTL_EFAIL;
	}
	for (size_t k = 0; k < e->njobs; k++)
		if (e->jobs[k]->tree)
			tree = e->jobs[k];
	if (tree) {
		*out = xasprintf("the whole tree is migrating (%s%s%s to '%s'), and that job runs "
				 "alone: cut it over or abort it first", tree->name[0] ? "job '" : "",
				 tree->name[0] ? tree->name : "no job name",
				 tree->name[0] ? "'" : "", tree->dest);
		return CTL_EFAIL;
	}
	if (req->nfiles == 0 && e->njobs) {
		*out = xasprintf("a whole-tree migration runs alone, and %zu job(s) are migrating "
				 "(see status): name the files to move, or wait for them", e->njobs);
		return CTL_EFAIL;
	}
	if (e->njobs >= ENGINE_JOBS_MAX) {
		*out = xasprintf("too many jobs (at most %d at once)", ENGINE_JOBS_MAX);
		return CTL_EFAIL;
	}
	return CTL_OK;
}

/* Files handed off to another host are read-only here.  e->lock held. */
static int check_sealed(struct engine *e, const struct ctl_request *req, char **out)
{
	const char *to;

	if (req->nfiles == 0 && e->nsealed) {
		*out = xasprintf("the tree holds %zu file(s) handed off to another host (e.g. '%s'): "
				 "migrate the other files by name", e->nsealed, e->sealed[0].relpath);
		return CTL_EFAIL;
	}
	for (int i = 0; i < req->nfiles; i++) {
		if (handoff_sealed(e, req->files[i], &to)) {
			*out = xasprintf("'%s' was handed off to '%s': it is read-only here",
					 req->files[i], to);
			return CTL_EFAIL;
		}
	}
	return CTL_OK;
}

static int migrate_check(struct engine *e, const struct ctl_request *req, char dest[PATH_MAX],
			 char **out)
{
	int ret;

	pthread_mutex_lock(&e->lock);
	ret = check_jobs(e, req, out);
	if (!ret)
		ret = check_sealed(e, req, out);
	pthread_mutex_unlock(&e->lock);
	if (ret)
		return ret;
	if (rbd_spec_is(req->to)) {
		ret = check_rbd_dest(req, dest, out);
		if (ret)
			return ret;
		goto files;
	}
	if (req->to[0] != '/') {
		*out = xasprintf("destination '%s' must be an absolute path", req->to);
		return CTL_EUSAGE;
	}
	ret = resolve_dest(req, dest, out);
	if (ret)
		return ret;
	if (path_within(dest, e->mountpoint)) {
		*out = xasprintf("destination '%s' is inside the mount '%s'", dest, e->mountpoint);
		return CTL_EUSAGE;
	}
	if (path_within(dest, e->root) || path_within(e->root, dest)) {
		*out = xasprintf("destination '%s' overlaps the source tree '%s'", dest, e->root);
		return CTL_EUSAGE;
	}
	if (mkdir(dest, 0755) == -1 && errno != EEXIST) {
		*out = xasprintf("cannot create destination '%s': %s", dest, strerror(errno));
		return CTL_EFAIL;
	}
files:
	for (int i = 0; i < req->nfiles; i++) {
		ret = check_file_arg(req->files[i], out);
		if (ret)
			return ret;
		for (int k = 0; k < i; k++) {
			if (!strcmp(req->files[k], req->files[i])) {
				*out = xasprintf("'%s' is named twice", req->files[i]);
				return CTL_EUSAGE;
			}
		}
	}
	return CTL_OK;
}

/* deltabase: --delta-dir, or SOURCE/.relocfs/delta made if need be. */
static int delta_base(struct engine *e, const struct ctl_request *req, char deltabase[PATH_MAX],
		      char **out)
{
	char p[PATH_MAX];
	int r;

	if (req->delta_dir) {
		if (req->delta_dir[0] != '/' || !realpath(req->delta_dir, deltabase)) {
			*out = xasprintf("cannot use delta directory '%s': %s", req->delta_dir,
					 req->delta_dir[0] != '/' ? "not an absolute path"
								  : strerror(errno));
			return CTL_EUSAGE;
		}
		if (path_within(deltabase, e->mountpoint)) {
			*out = xasprintf("delta directory '%s' is inside the mount", deltabase);
			return CTL_EUSAGE;
		}
		return CTL_OK;
	}
	snprintf(p, sizeof(p), "%s/%s", e->root, STATE_DIR);
	mkdir_path(e, p, 0700);
	snprintf(deltabase, PATH_MAX, "%s/%s/delta", e->root, STATE_DIR);
	r = mkdir_path(e, deltabase, 0700);
	if (r) {
		*out = xasprintf("cannot create '%s': %s", deltabase, strerror(-r));
		return CTL_EFAIL;
	}
	return CTL_OK;
}

/* The job's destination and delta directory, open (made if need be). */
static int job_open(struct engine *e, struct job *j, char **out)
{
	int r;

	if (j->rbd)
		goto delta_dir;	/* the images are made with the stores */
	r = open_dir(e, j->dest, O_RDONLY);
	if (r < 0) {
		*out = xasprintf("cannot open destination '%s': %s", j->dest, strerror(-r));
		return CTL_EFAIL;
	}
	j->dest_fd = r;
delta_dir:
	r = mkdir_path(e, j->delta_dir, 0700);
	if (r) {
		*out = xasprintf("cannot create delta directory '%s': %s", j->delta_dir, strerror(-r));
		return CTL_EFAIL;
	}
	r = open_dir(e, j->delta_dir, O_RDONLY);
	if (r < 0) {
		*out = xasprintf("cannot open delta directory '%s': %s", j->delta_dir, strerror(-r));
		return CTL_EFAIL;
	}
	j->delta_fd = r;
	return CTL_OK;
}

static bool dir_empty(int dirfd)
{
	DIR *d = fdopendir(dup(dirfd));
	struct dirent *de;
	bool empty = true;

	while (d && (de = readdir(d)))
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..") &&
		    strcmp(de->d_name, STATE_DIR))
			empty = false;
	if (d)
		closedir(d);
	return empty;
}

/* A tree job: mirror the tree into the (empty) destination. */
static int plan_tree(struct engine *e, struct job *j, struct walk *w, char **out)
{
	int root = fs_node_fd(fs_root(e->fs));
	struct stat st;
	int r;

	if (!dir_empty(j->dest_fd)) {
		*out = xasprintf("destination '%s' is not empty", j->dest);
		return CTL_EFAIL;
	}
	if (fstatat(root, "", &st, AT_EMPTY_PATH) == -1 || job_add_entry(j, &st, "") < 0) {
		*out = xasprintf("out of memory");
		return CTL_EFAIL;
	}
	r = walk_tree(w, root, j->dest_fd, "");
	if (r) {
		*out = xasprintf("cannot mirror the tree into '%s': %s", j->dest,
				 w->err[0] ? w->err : strerror(-r));
		return CTL_EFAIL;
	}
	/* a name outside the tree would keep leading to the old copy */
	for (size_t i = 0; i < j->nentries; i++) {
		const struct entry *en = &j->entries[i];

		if (en->reg && en->names < en->nlink) {
			*out = xasprintf("'%s' has %ju names and %u of them in the tree: the others "
					 "would keep the old copy; remove them first", en->relpath,
					 (uintmax_t)en->nlink, en->names);
			return CTL_EFAIL;
		}
	}
	return CTL_OK;
}

/* Make the destination's parent directories of rel, remembering what this
 * job made (to remove it on abort). */
static void make_parents(struct job *j, const char *rel)
{
	char *dir = strdup(rel);

	for (char *slash = dir ? strchr(dir, '/') : NULL; slash; slash = strchr(slash + 1, '/')) {
		struct stat st;

		*slash = '\0';
		if (mkdirat(j->dest_fd, dir, 0755) == 0 && fstatat(j->dest_fd, dir, &st, 0) == 0)
			job_add_entry(j, &st, dir);
		*slash = '/';
	}
	free(dir);
}

/* Which other active job has the file st (rel): a running one by its
 * node, a queued one by the name it asked for.  e->lock held. */
static struct job *file_owner(struct engine *e, struct job *self, const char *rel,
			      const struct stat *st)
{
	for (size_t k = 0; k < e->njobs; k++) {
		struct job *o = e->jobs[k];

		if (o == self)
			continue;
		for (size_t i = 0; o->state == JOB_QUEUED && i < o->nwant; i++)
			if (!strcmp(o->want[i], rel))
				return o;
		for (size_t i = 0; o->state == JOB_RUNNING && i < o->n; i++) {
			dev_t dev;
			ino_t ino;

			if (!o->files[i].node)
				continue;
			fs_node_key(o->files[i].node, &dev, &ino);
			if (dev == st->st_dev && ino == st->st_ino)
				return o;
		}
	}
	return NULL;
}

/* A file the job asks for: a regular file of the tree with one name, not
 * relocated on its own before, in no other job, not named twice.
 * Its stat in *st.  Nothing is made. */
static int check_file(struct engine *e, struct job *j, size_t idx, struct stat *st, dev_t *devs,
		      ino_t *inos, char **out)
{
	const char *rel = j->want[idx];
	struct job *other;
	int fd = open_source_file(e, rel, O_PATH), r;
	char lb[96];

	if (fd == -EXDEV) {
		*out = xasprintf("'%s' leads out of the tree or through a symlink", rel);
		return CTL_EFAIL;
	}
	if (fd < 0) {
		*out = xasprintf("cannot open '%s': %s", rel, strerror(-fd));
		return CTL_EFAIL;
	}
	r = fstatat(fd, "", st, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW);
	close(fd);
	if (r == -1 || !S_ISREG(st->st_mode)) {
		*out = xasprintf("'%s' is not a regular file", rel);
		return CTL_EUSAGE;
	}
	if (st->st_nlink > 1) {
		*out = xasprintf("'%s' has %ju names (hard links): a files job moves one name and the "
				 "others would keep the old copy; relocate the whole tree or remove "
				 "the other names", rel, (uintmax_t)st->st_nlink);
		return CTL_EFAIL;
	}
	/* one file under two names of the job: after the rule above, only a
	 * name that moved between the two checks (a rename onto the second) */
	for (size_t k = 0; k < idx; k++) {
		if (devs[k] == st->st_dev && inos[k] == st->st_ino) {
			*out = xasprintf("'%s' and '%s' are the same file", j->want[k], rel);
			return CTL_EUSAGE;
		}
	}
	devs[idx] = st->st_dev;
	inos[idx] = st->st_ino;
	pthread_mutex_lock(&e->lock);
	for (size_t k = 0; k < e->novr; k++) {
		if (!strcmp(e->ovr[k].relpath, rel)) {
			pthread_mutex_unlock(&e->lock);
			*out = xasprintf("'%s' was relocated on its own before; relocate the whole "
					 "tree to move it again", rel);
			return CTL_EFAIL;
		}
	}
	other = file_owner(e, j, rel, st);
	if (other)
		*out = xasprintf("'%s' is in %s already (%s): a file moves with one job at a time",
				 rel, job_label(other, lb, sizeof(lb)), job_state_name(other));
	pthread_mutex_unlock(&e->lock);
	return other ? CTL_EFAIL : CTL_OK;
}

/* Every file the job asks for (check_file); what they hold in j->planned. */
static int check_files(struct engine *e, struct job *j, char **out)
{
	dev_t *devs = calloc(j->nwant ? j->nwant : 1, sizeof(*devs));
	ino_t *inos = calloc(j->nwant ? j->nwant : 1, sizeof(*inos));
	int ret = devs && inos ? CTL_OK : CTL_EFAIL;

	if (ret)
		*out = xasprintf("out of memory");
	j->planned = 0;
	for (size_t i = 0; !ret && i < j->nwant; i++) {
		struct stat st;

		ret = check_file(e, j, i, &st, devs, inos, out);
		j->planned += (uint64_t)st.st_blocks * 512;
	}
	free(devs);
	free(inos);
	return ret;
}

/* A file of a files job, as it starts: checked again (it may have changed
 * while the job was queued), its parent directories made in DEST. */
static int plan_file(struct engine *e, struct job *j, size_t idx, struct walk *w, char **out,
		     dev_t *devs, ino_t *inos)
{
	const char *rel = j->want[idx];
	struct stat st;
	char **nf;
	int ret = check_file(e, j, idx, &st, devs, inos, out);

	if (ret)
		return ret;
	if (j->rbd)
		;	/* the images are looked for together (check_space) */
	else if (make_parents(j, rel), faccessat(j->dest_fd, rel, F_OK, AT_SYMLINK_NOFOLLOW) == 0) {
		*out = xasprintf("'%s/%s' exists already", j->dest, rel);
		return CTL_EFAIL;
	}
	nf = realloc(w->files, (w->nfiles + 1) * sizeof(char *));
	if (!nf || !(nf[w->nfiles] = strdup(rel))) {
		if (nf)
			w->files = nf;
		*out = xasprintf("out of memory");
		return CTL_EFAIL;
	}
	w->files = nf;
	w->nfiles++;
	w->bytes += (uint64_t)st.st_blocks * 512;
	w->delta_room += delta_space_needed((uint64_t)st.st_size);
	return CTL_OK;
}

/*
 * Room for the files in the destination, and to start in the delta store: the
 * journals and log rings it creates, and 8 MiB for the first writes (a store
 * that fills later fails the job safely: see delta_full).
 */
static int check_space(struct job *j, const struct walk *w, char **out)
{
	uint64_t need = w->delta_room + (8u << 20);
	struct statvfs sv;
	int r;

	if (j->rbd) {
		r = rbd_dest_check(j, w->files, w->nfiles, w->bytes, out);
		if (r)
			return r;
	} else if (fstatvfs(j->dest_fd, &sv) == 0 &&
		   (uint64_t)sv.f_bavail * sv.f_frsize < w->bytes) {
		*out = xasprintf("destination '%s' has %" PRIu64 " bytes free, the files need %" PRIu64,
				 j->dest, (uint64_t)sv.f_bavail * sv.f_frsize, w->bytes);
		return CTL_EFAIL;
	}
	if (fstatvfs(j->delta_fd, &sv) == 0 && (uint64_t)sv.f_bavail * sv.f_frsize < need) {
		*out = xasprintf("delta directory '%s' has %" PRIu64 " bytes free; %zu file(s) need at "
				 "least %" PRIu64 " to start (and room for what the guest writes)",
				 j->delta_dir, (uint64_t)sv.f_bavail * sv.f_frsize, w->nfiles, need);
		return CTL_EFAIL;
	}
	return CTL_OK;
}

/* The job's files are its nodes from now on, and pinned: the names the
 * record is about to say must stay where they are.  The job is running
 * (and in e->jobs) from here on, though nothing is routed yet. */
static int job_pin(struct engine *e, struct job *j, char **out)
{
	int r = 0;

	for (size_t i = 0; i < j->n; i++) {
		j->files[i].node = node_for(e, j->files[i].relpath);
		if (!j->files[i].node) {
			*out = xasprintf("cannot look up '%s'", j->files[i].relpath);
			return CTL_EFAIL;
		}
		if (!j->tree && job_file_resolve(&j->files[i], e->root_fd)) {
			*out = xasprintf("cannot look up the directories of '%s'", j->files[i].relpath);
			return CTL_EFAIL;
		}
	}
	pthread_mutex_lock(&e->lock);
	r = jobs_add(e, j);
	if (!r)
		j->state = JOB_RUNNING;
	pthread_mutex_unlock(&e->lock);
	if (r) {
		*out = xasprintf("out of memory");
		return CTL_EFAIL;
	}
	return CTL_OK;
}

/* The record names the job as started, durably, before any write goes to
 * a delta. */
static int job_record(struct engine *e, struct job *j, char **out)
{
	int r;

	pthread_mutex_lock(&e->lock);
	r = job_to_ms(&e->ms, j, false);
	if (!r)
		r = save_record(e);
	pthread_mutex_unlock(&e->lock);
	if (r) {
		*out = xasprintf("cannot write the state record in '%s/%s': %s", e->source, STATE_DIR,
				 strerror(-r));
		return CTL_EFAIL;
	}
	crashpoint("migrate-recorded");
	return CTL_OK;
}

/* Route the files through their delta stores: hold them so that the writes
 * in flight land in the base before it is frozen.  A files job holds their
 * directories too: a name request whose check passed before job_pin and
 * that runs on has finished when the hold is taken, and one that comes
 * later is checked against the running job.  So under the hold each name
 * must still lead to the file set up, or the start fails.  On failure
 * nothing is routed. */
static int job_begin(struct engine *e, struct job *j, char **out)
{
	size_t cnt = 0;
	struct rnode **nodes = job_start_nodes(e, j, &cnt);
	const char *moved = NULL;
	int r = 0;

	if (!nodes) {
		*out = xasprintf("cannot look up the files' directories");
		return CTL_EFAIL;
	}
	if (fs_hold(e->fs, j->tree, nodes, cnt, HOLD_DRAIN_US)) {
		job_start_nodes_free(e, j, nodes, cnt);
		*out = xasprintf("requests in flight did not finish within %u s; nothing started",
				 HOLD_DRAIN_US / 1000000);
		return CTL_EFAIL;
	}
	for (size_t i = 0; !j->tree && i < j->n && !r; i++) {
		r = job_file_same(e, &j->files[i]);
		if (r == -ESTALE || r == -EMLINK)
			moved = j->files[i].relpath;
	}
	for (size_t i = 0; i < j->n && !r; i++) {
		r = delta_rebase(j->files[i].d);
		if (r)
			log_warnx("'%s': cannot record the base size: %s", j->files[i].relpath,
				  strerror(-r));
		else
			fs_node_route(nodes[i], j->files[i].d);
	}
	if (r) {
		/* unrouted before the release: a write from then on goes to
		 * the source (the caller takes the job out of the record) */
		for (size_t i = 0; i < j->n; i++)
			fs_node_route(nodes[i], NULL);
	}
	fs_release(e->fs, j->tree, nodes, cnt);
	job_start_nodes_free(e, j, nodes, cnt);
	if (moved && r == -EMLINK)
		*out = xasprintf("'%s' was given another name (a hard link) before the job started; "
				 "nothing started", moved);
	else if (moved)
		*out = xasprintf("'%s' was renamed or removed as the job started; nothing started",
				 moved);
	else if (r)
		*out = xasprintf("cannot start: %s", strerror(-r));
	return r ? CTL_EFAIL : CTL_OK;
}

/* Undo a start that failed: the job is what it was before (queued, or
 * nobody's), the record too; its delta directory and what it made in the
 * destination are gone. */
static void job_unstart(struct engine *e, struct job *j, bool queued)
{
	pthread_mutex_lock(&e->lock);
	if (queued) {
		j->state = JOB_QUEUED;
		if (job_to_ms(&e->ms, j, true) == 0)
			save_record(e);
	} else {
		jobs_remove(e, j);
		if (ms_find_job(&e->ms, j->id)) {
			ms_drop_job(&e->ms, j->id);
			save_record(e);
		}
	}
	pthread_mutex_unlock(&e->lock);
	if (j->dest_fd != -1 || j->rbd)
		remove_dest(j);
	job_files_free(e, j, true);
	if (j->delta_fd != -1) {
		rm_rf_path(e, j->delta_dir);
		close(j->delta_fd);
		j->delta_fd = -1;
	}
	if (j->dest_fd != -1) {
		close(j->dest_fd);
		j->dest_fd = -1;
	}
}

int job_start(struct engine *e, struct job *j, char **out)
{
	bool queued = j->state == JOB_QUEUED;
	struct walk w = { .job = j, .create = true };
	dev_t *devs = calloc(j->nwant ? j->nwant : 1, sizeof(*devs));
	ino_t *inos = calloc(j->nwant ? j->nwant : 1, sizeof(*inos));
	char err[512] = "";
	int ret, r;

	ret = devs && inos ? job_open(e, j, out) : CTL_EFAIL;
	if (!devs || !inos)
		*out = xasprintf("out of memory");
	if (!ret && j->tree)
		ret = plan_tree(e, j, &w, out);
	for (size_t i = 0; !ret && i < j->nwant; i++)
		ret = plan_file(e, j, i, &w, out, devs, inos);
	if (!ret)
		ret = check_space(j, &w, out);
	for (size_t i = 0; !ret && i < w.nfiles; i++) {
		if (job_add_file(e, j, w.files[i], true, err, sizeof(err))) {
			*out = xasprintf("%s", err);
			ret = CTL_EFAIL;
		}
	}
	if (!ret)
		ret = job_pin(e, j, out);
	if (!ret)
		ret = job_record(e, j, out);
	if (!ret)
		ret = job_begin(e, j, out);
	free(devs);
	free(inos);
	if (ret) {
		job_unstart(e, j, queued);
		walk_free(&w);
		return ret;
	}
	if (j->tree || !j->planned)
		j->planned = w.bytes;
	walk_free(&w);
	r = job_copier_start(e, j);
	if (r)
		log_warnx("cannot start the copier: %s", strerror(-r));
	governor_wake(e);
	return CTL_OK;
}

void job_start_failed(struct engine *e, struct job *j, const char *why)
{
	char lb[96];

	log_warnx("%s could not start: %s", job_label(j, lb, sizeof(lb)), why);
	pthread_mutex_lock(&e->lock);
	j->state = JOB_FAILED;
	snprintf(j->error, sizeof(j->error), "%s", why);
	ms_drop_job(&e->ms, j->id);
	save_record(e);
	pthread_mutex_unlock(&e->lock);
}

/* Job ids grow: they name delta directories, and two jobs asked for in
 * one second must not share one. */
static uint64_t new_id(struct engine *e)
{
	uint64_t id = (uint64_t)time(NULL);

	if (id <= e->last_id)
		id = e->last_id + 1;
	e->last_id = id;
	return id;
}

static uint64_t wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* The job as asked for, not started. */
static int job_new(struct engine *e, const struct ctl_request *req, const char *dest,
		   const char *deltabase, struct job **jp, char **out)
{
	uint64_t id = new_id(e);
	char *dd = xasprintf("%s/job-%" PRIu64, deltabase, id);
	struct job *j = dd ? job_alloc(req->job ? req->job : "", dest, dd) : NULL;

	free(dd);
	*jp = j;
	if (!j)
		goto nomem;
	j->id = id;
	if (rbd_spec_is(dest)) {
		char err[512];

		if (rbd_dest_parse(j, err, sizeof(err))) {
			*out = xasprintf("%s", err);
			return CTL_EUSAGE;
		}
	}
	j->tree = req->nfiles == 0;
	j->rate = req->rate;
	j->priority = req->priority ? (unsigned)req->priority : JOB_PRIORITY_DEFAULT;
	j->since_ms = wall_ms();
	if (req->deadline_s > 0)
		j->deadline_ms = j->since_ms + (uint64_t)(req->deadline_s * 1000);
	j->want = calloc(req->nfiles ? (size_t)req->nfiles : 1, sizeof(char *));
	if (!j->want)
		goto nomem;
	for (int i = 0; i < req->nfiles; i++) {
		if (!(j->want[i] = strdup(req->files[i])))
			goto nomem;
		j->nwant++;
	}
	return CTL_OK;
nomem:
	*out = xasprintf("out of memory");
	return CTL_EFAIL;
}

/* No slot: the job waits, recorded, in e->jobs. */
static int job_queue(struct engine *e, struct job *j, char **out)
{
	size_t ahead = 0, copying = 0;
	unsigned parallel;
	char lb[96];
	int r;

	pthread_mutex_lock(&e->lock);
	parallel = e->ms.parallel;
	for (size_t k = 0; k < e->njobs; k++) {
		ahead += e->jobs[k]->state == JOB_QUEUED;
		copying += job_copying(e->jobs[k]);
	}
	j->state = JOB_QUEUED;
	r = jobs_add(e, j);
	if (!r)
		r = job_to_ms(&e->ms, j, true);
	if (!r)
		r = save_record(e);
	if (r) {
		jobs_remove(e, j);
		ms_drop_job(&e->ms, j->id);
	}
	pthread_mutex_unlock(&e->lock);
	if (r) {
		*out = xasprintf("cannot write the state record in '%s/%s': %s", e->source, STATE_DIR,
				 strerror(-r));
		return CTL_EFAIL;
	}
	*out = xasprintf("queued: %s (%zu file(s) to '%s') starts when a slot is free "
			 "(%zu job(s) copying, at most %u at once; %zu waiting before it)",
			 job_label(j, lb, sizeof(lb)), j->nwant, j->dest, copying, parallel, ahead);
	return CTL_OK;
}

int cmd_migrate(struct engine *e, const struct ctl_request *req, char **out)
{
	char dest[PATH_MAX], deltabase[PATH_MAX], lb[96];
	struct job *j = NULL;
	bool now;
	int ret, r;

	ret = migrate_check(e, req, dest, out);
	if (!ret)
		ret = delta_base(e, req, deltabase, out);
	if (ret)
		return ret;
	r = state_dir(e);
	if (r < 0) {
		*out = xasprintf("cannot create the state directory in '%s': %s", e->source,
				 strerror(-r));
		return CTL_EFAIL;
	}
	ret = job_new(e, req, dest, deltabase, &j, out);
	if (!ret && !j->tree)
		ret = check_files(e, j, out);
	if (ret)
		goto out_free;
	pthread_mutex_lock(&e->lock);
	now = slot_free(e);
	for (size_t k = 0; k < e->njobs; k++)
		if (e->jobs[k]->state == JOB_QUEUED)
			now = false;	/* in the order they were asked for */
	pthread_mutex_unlock(&e->lock);
	if (!now)
		return job_queue(e, j, out);
	ret = job_start(e, j, out);
	if (ret)
		goto out_free;
	*out = xasprintf("%s%smigrating %zu file(s) to '%s' (delta store '%s')",
			 j->name[0] ? job_label(j, lb, sizeof(lb)) : "", j->name[0] ? ": " : "",
			 j->n, dest, j->delta_dir);
	return CTL_OK;
out_free:
	job_free(e, j, true);
	return ret;
}
