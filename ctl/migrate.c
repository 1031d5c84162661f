/*
 * migrate: starting a job, in steps that each succeed or say why in *out:
 *   1. check the request: a destination outside the mount and the source
 *      tree, FILE arguments inside the tree (migrate_check);
 *   2. the job, its destination and its delta directory (job_new);
 *   3. what it moves: the whole tree mirrored into the empty destination,
 *      or the named files (plan_tree, plan_files), and room for it;
 *   4. each file's destination file and delta store;
 *   5. the record names the job, durably, before any write goes to a delta
 *      (a restart finds it and carries on);
 *   6. hold the files while their base is frozen and their routes switch to
 *      the live view (job_begin), then start the copier.
 * Whatever fails before 6 is undone (the record, the delta directory, what
 * was made in the destination); nothing was routed yet.
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

static int migrate_check(struct engine *e, const struct ctl_request *req, char dest[PATH_MAX],
			 char **out)
{
	int ret;

	if (e->job) {
		*out = xasprintf("a migration is already in progress (%zu file(s) to '%s'): wait, "
				 "cut over or abort it first", e->job->n, e->job->dest);
		return CTL_EFAIL;
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
	if (req->nfiles == 0 && __atomic_load_n(&e->nsealed, __ATOMIC_ACQUIRE)) {
		*out = xasprintf("the tree holds %zu file(s) handed off to another host (e.g. '%s'): "
				 "migrate the other files by name", e->nsealed, e->sealed[0].relpath);
		return CTL_EFAIL;
	}
	for (int i = 0; i < req->nfiles; i++) {
		ret = check_file_arg(req->files[i], out);
		if (ret)
			return ret;
		for (size_t k = 0; k < e->nsealed; k++) {
			if (!strcmp(e->sealed[k].relpath, req->files[i])) {
				*out = xasprintf("'%s' was handed off to '%s': it is read-only here",
						 req->files[i], e->sealed[k].to);
				return CTL_EFAIL;
			}
		}
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

/* The job, with its destination and delta directory open. */
static int job_new(struct engine *e, const struct ctl_request *req, const char *dest,
		   const char *deltabase, struct job **jp, char **out)
{
	struct job *j = calloc(1, sizeof(*j));
	int r;

	*jp = j;
	if (!j)
		goto nomem;
	j->dest_fd = j->delta_fd = -1;
	j->id = (uint64_t)time(NULL);
	j->tree = req->nfiles == 0;
	j->rate = req->rate;
	j->dest = strdup(dest);
	j->delta_dir = xasprintf("%s/job-%" PRIu64, deltabase, j->id);
	if (!j->dest || !j->delta_dir)
		goto nomem;
	r = open_dir(e, dest, O_RDONLY);
	if (r < 0) {
		*out = xasprintf("cannot open destination '%s': %s", dest, strerror(-r));
		return CTL_EFAIL;
	}
	j->dest_fd = r;
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
nomem:
	*out = xasprintf("out of memory");
	return CTL_EFAIL;
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

static int plan_file(struct engine *e, struct job *j, const char *rel, struct walk *w, char **out)
{
	struct stat st;
	char **nf;
	int fd = open_source_file(e, rel, O_PATH), r;

	if (fd == -EXDEV) {
		*out = xasprintf("'%s' leads out of the tree or through a symlink", rel);
		return CTL_EFAIL;
	}
	if (fd < 0) {
		*out = xasprintf("cannot open '%s': %s", rel, strerror(-fd));
		return CTL_EFAIL;
	}
	r = fstatat(fd, "", &st, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW);
	close(fd);
	if (r == -1 || !S_ISREG(st.st_mode)) {
		*out = xasprintf("'%s' is not a regular file", rel);
		return CTL_EUSAGE;
	}
	for (size_t k = 0; k < e->novr; k++) {
		if (!strcmp(e->ovr[k].relpath, rel)) {
			*out = xasprintf("'%s' was relocated on its own before; relocate the whole "
					 "tree to move it again", rel);
			return CTL_EFAIL;
		}
	}
	make_parents(j, rel);
	if (faccessat(j->dest_fd, rel, F_OK, AT_SYMLINK_NOFOLLOW) == 0) {
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

	if (fstatvfs(j->dest_fd, &sv) == 0 && (uint64_t)sv.f_bavail * sv.f_frsize < w->bytes) {
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

/* The record names the job, durably, before any write goes to a delta. */
static int job_record(struct engine *e, struct job *j, char **out)
{
	int r;

	pthread_mutex_lock(&e->lock);
	r = job_to_ms(&e->ms, j);
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
 * in flight land in the base before it is frozen.  On failure nothing is
 * routed and the job is no longer the engine's. */
static int job_begin(struct engine *e, struct job *j, char **out)
{
	struct rnode **nodes;
	int r = 0;

	for (size_t i = 0; i < j->n; i++) {
		j->files[i].node = node_for(e, j->files[i].relpath);
		if (!j->files[i].node) {
			*out = xasprintf("cannot look up '%s'", j->files[i].relpath);
			return CTL_EFAIL;
		}
	}
	nodes = job_nodes(j);
	if (!nodes) {
		*out = xasprintf("out of memory");
		return CTL_EFAIL;
	}
	if (fs_hold(e->fs, j->tree, nodes, j->n, HOLD_DRAIN_US)) {
		free(nodes);
		*out = xasprintf("requests in flight did not finish within %u s; nothing started",
				 HOLD_DRAIN_US / 1000000);
		return CTL_EFAIL;
	}
	pthread_mutex_lock(&e->lock);
	e->job = j;
	pthread_mutex_unlock(&e->lock);
	for (size_t i = 0; i < j->n && !r; i++) {
		r = delta_rebase(j->files[i].d);
		if (r)
			log_warnx("'%s': cannot record the base size: %s", j->files[i].relpath,
				  strerror(-r));
		else
			fs_node_route(nodes[i], j->files[i].d);
	}
	if (r) {
		/* unrouted and unrecorded before the release: a write from then
		 * on goes to the source, and a restart must not find a job */
		for (size_t i = 0; i < j->n; i++)
			fs_node_route(nodes[i], NULL);
		pthread_mutex_lock(&e->lock);
		e->job = NULL;
		job_to_ms(&e->ms, NULL);
		save_record(e);
		pthread_mutex_unlock(&e->lock);
	}
	fs_release(e->fs, j->tree, nodes, j->n);
	free(nodes);
	if (r) {
		*out = xasprintf("cannot start: %s", strerror(-r));
		return CTL_EFAIL;
	}
	return CTL_OK;
}

/* Undo a job that did not start: the record, the delta directory, what it
 * made in the destination. */
static void job_undo(struct engine *e, struct job *j)
{
	pthread_mutex_lock(&e->lock);
	if (e->ms.job && e->ms.job_id == j->id) {
		job_to_ms(&e->ms, NULL);
		save_record(e);
	}
	pthread_mutex_unlock(&e->lock);
	if (j->delta_fd != -1)
		rm_rf_path(e, j->delta_dir);
	if (j->dest_fd != -1)
		remove_dest(j);
	job_free(e, j, true);
}

int cmd_migrate(struct engine *e, const struct ctl_request *req, char **out)
{
	char dest[PATH_MAX], deltabase[PATH_MAX], err[512] = "";
	struct walk w = { 0 };
	struct job *j = NULL;
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
	if (ret)
		goto out_undo;
	w.job = j;
	w.create = true;
	if (j->tree)
		ret = plan_tree(e, j, &w, out);
	for (int i = 0; !ret && i < req->nfiles; i++)
		ret = plan_file(e, j, req->files[i], &w, out);
	if (!ret)
		ret = check_space(j, &w, out);
	for (size_t i = 0; !ret && i < w.nfiles; i++) {
		if (job_add_file(e, j, w.files[i], true, err, sizeof(err))) {
			*out = xasprintf("%s", err);
			ret = CTL_EFAIL;
		}
	}
	if (!ret)
		ret = job_record(e, j, out);
	if (!ret)
		ret = job_begin(e, j, out);
	if (ret)
		goto out_undo;
	r = job_copier_start(e, j);
	if (r)
		log_warnx("cannot start the copier: %s", strerror(-r));
	*out = xasprintf("migrating %zu file(s) to '%s' (delta store '%s')", j->n, dest,
			 j->delta_dir);
	walk_free(&w);
	return CTL_OK;
out_undo:
	if (j)
		job_undo(e, j);
	walk_free(&w);
	return ret;
}
