/*
 * rbd_dest: what a job whose destination is a Ceph pool does differently
 * from one into a directory: each file becomes one RBD image (named by
 * rbd_image_name: PREFIX, then the path in the mount with '/' and other
 * bytes outside [A-Za-z0-9._+-] as %XX), checked before the job starts (the
 * cluster answers, the pool exists, no image has the name, there is room),
 * removed when the job is undone, and after the cutover served from the
 * image under the file's old name, whose file in the served directory
 * stays as a stub (owner, mode; emptied by --remove-source).
 *
 * Only files jobs go to RBD: a directory tree has no place in a pool.
 * What the image lacks of the file (mode, owner, times, its path) is kept
 * in the image's metadata (target/rbd.c), written inside the hold.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/log.h"
#include "common/util.h"
#include "ctl/engine_i.h"
#include "delta/delta.h"
#include "fs/fs.h"
#include "target/target.h"

int rbd_dest_parse(struct job *j, char *err, size_t errlen)
{
	j->rbd = calloc(1, sizeof(*j->rbd));
	if (!j->rbd) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	return rbd_spec_parse(j->dest, j->rbd, err, errlen);
}

int rbd_dest_check(struct job *j, char *const *files, size_t n, uint64_t bytes, char **out)
{
	char **images = calloc(n ? n : 1, sizeof(char *)), err[512];
	int r = 0;

	if (!images) {
		*out = xasprintf("out of memory");
		return CTL_EFAIL;
	}
	for (size_t i = 0; i < n && !r; i++) {
		images[i] = rbd_image_name(j->rbd, files[i]);
		if (!images[i]) {
			*out = xasprintf("'%s': the image name would be too long for RBD", files[i]);
			r = CTL_EUSAGE;
		}
		for (size_t k = 0; k < i && !r; k++) {
			if (!strcmp(images[k], images[i])) {
				*out = xasprintf("'%s' and '%s' would become the same image '%s'",
						 files[k], files[i], images[i]);
				r = CTL_EUSAGE;
			}
		}
	}
	if (!r && target_rbd_check(j->rbd, (const char *const *)images, n, bytes, err, sizeof(err))) {
		*out = xasprintf("%s", err);
		r = CTL_EFAIL;
	}
	for (size_t i = 0; i < n; i++)
		free(images[i]);
	free(images);
	return r;
}

int rbd_dest_open(struct job *j, const char *rel, int src_fd, bool create, struct target **out,
		  char *err, size_t errlen)
{
	char *image = rbd_image_name(j->rbd, rel);
	struct stat st;
	int r;

	*out = NULL;
	if (!image) {
		snprintf(err, errlen, "'%s': the image name would be too long for RBD", rel);
		return -ENAMETOOLONG;
	}
	if (j->dest_lost) {
		free(image);
		return 0;
	}
	if (fstat(src_fd, &st) == -1) {
		r = -errno;
		snprintf(err, errlen, "cannot stat '%s': %s", rel, strerror(errno));
		free(image);
		return r;
	}
	r = target_rbd_open(out, j->rbd, image, create, (uint64_t)st.st_size, err, errlen);
	if (r && !create) {
		/* a restart: the source and the delta store are all a roll
		 * back needs (the caller rolls the job back) */
		log_warnx("%s", err);
		j->dest_lost = true;
		r = 0;
	}
	free(image);
	return r;
}

void rbd_dest_remove(struct job *j)
{
	for (size_t i = 0; i < j->n; i++) {
		char *image = rbd_image_name(j->rbd, j->files[i].relpath);
		int r;

		/* librbd refuses to remove an image that is open: the store
		 * goes first (every caller frees the job and its stores next,
		 * its copier stopped) */
		delta_free(j->files[i].d, true);
		j->files[i].d = j->deltas[i] = NULL;
		if (!image)
			continue;
		r = target_rbd_remove(j->rbd, image);
		if (r && r != -ENOENT)
			log_warnx("cannot remove RBD image '%s/%s': %s; remove it with 'rbd rm'",
				  j->rbd->pool, image, strerror(-r));
		free(image);
	}
}

int rbd_dest_meta(struct job_file *f)
{
	struct target_meta m = { 0 };
	struct timespec mtime;
	struct stat st;

	if (fstat(delta_source_fd(f->d), &st) == -1)
		return -errno;
	m.mode = st.st_mode;
	m.uid = st.st_uid;
	m.gid = st.st_gid;
	m.have_owner = true;
	m.atime = st.st_atim;
	m.mtime = delta_mtime(f->d, &mtime) ? mtime : st.st_mtim;
	return target_set_meta(delta_dest(f->d), &m, f->relpath);
}

bool override_is_rbd(const struct override *o)
{
	return rbd_spec_is(o->backend);
}

void rbd_overrides_attach(struct engine *e)
{
	for (size_t i = 0; i < e->novr; i++) {
		struct override *o = &e->ovr[i];
		struct rbd_spec sp;
		struct target *t = NULL;
		char err[512], *image;
		int r;

		if (!override_is_rbd(o) || o->node)
			continue;
		o->node = node_for(e, o->relpath);
		if (!o->node) {
			log_warnx("cannot look up '%s', relocated into '%s'", o->relpath, o->backend);
			continue;
		}
		r = rbd_spec_parse(o->backend, &sp, err, sizeof(err));
		image = r ? NULL : rbd_image_name(&sp, o->relpath);
		if (!image)
			r = r ? r : -ENAMETOOLONG;
		if (!r)
			r = target_rbd_open(&t, &sp, image, false, 0, err, sizeof(err));
		if (r) {
			log_warnx("'%s' lives in RBD image '%s' and cannot be served: %s; every request "
				  "for it fails until relocfs restarts and reaches the image", o->relpath,
				  image ? image : o->backend, err);
			t = target_failed_new(o->relpath, -EIO);
		}
		free(image);
		if (t) {
			fs_node_target(o->node, t);
			target_put(t);	/* the node holds it */
		}
	}
}
