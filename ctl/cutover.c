/*
 * cutover: switching a job's files to the destination inside one short
 * hold, as named steps (the hold is the only time guest I/O waits):
 *
 *   1. wait until every file is ready (little left to merge), with the job
 *      marked busy and the other commands free to run (cmd_lock let go);
 *   2. prepare, while the guest runs: stop the copier, merge and sync the
 *      destinations until a sync finds little to do, write the next record
 *      ("state.next", synced), open the destination's files, sync again and
 *      commit and merge the delta records written meanwhile;
 *   3. pause the VMs with the hooks (none: relocfs's own hold only);
 *   4. hold the files (new requests are parked, in-flight ones drain), merge
 *      the blocks written since step 2, durable records or not, fix sizes
 *      and holes (no sync, no commit), and open every file and handle on the
 *      destination, checked to be the copy;
 *   5. switch: point every node and open handle at the destination and
 *      release the hold (parked requests are served from the destination);
 *      then, for a job into RBD with a hook that hands over (qmp-rbd), flush
 *      the images and hand the paused VM's disks to QEMU's own rbd driver
 *      (a failure leaves the VM on the mount, which serves the images);
 *   6. resume the VMs;
 *   7. commit: sync the destinations, rename the next record over the
 *      mount's record (the commit point) and sync its directory; no flush
 *      is acknowledged before (the flush barrier); then remove the delta
 *      store (and the source, if asked) in the background.
 * A failure before 5 releases everything on the source and reports; after
 * it the switch is done whatever else fails.  A restart that finds the next
 * record (a crash before the commit point was durable) rolls the job it
 * names back to the source; after it, the destination is served.  Each step
 * either succeeds or leaves what it did for the forward unwinding in
 * cmd_cutover.  The other jobs go on copying throughout: only this job's
 * files are held, and from step 2 to step 7 the cutover holds cmd_lock, so
 * that one cutover's next record is on disk at a time.  A hook that hands
 * the VM to another host (qmp-migrate) takes its own way, handoff.c, which
 * uses steps 1, 4, 5 and 7 from here.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/crashpoint.h"
#include "common/log.h"
#include "common/util.h"
#include "ctl/engine_i.h"
#include "delta/delta.h"
#include "fs/fs.h"
#include "target/target.h"
#include "vmhooks/vmhook.h"

#define HOLD_MERGE_BYTES (1u << 20)	/* left per file by the merge-and-sync passes */

static bool stopping(struct engine *e)
{
	bool s;

	pthread_mutex_lock(&e->lock);
	s = e->stopping;
	pthread_mutex_unlock(&e->lock);
	return s;
}

/* Wait until every file has at most max_dirty bytes left to merge. */
static int wait_ready(struct engine *e, struct job *j, double timeout_s, uint64_t max_dirty,
		      char **out)
{
	uint64_t deadline = now_us() + (uint64_t)(timeout_s * 1e6);

	for (;;) {
		size_t ready = 0;

		if (stopping(e)) {
			*out = xasprintf("relocfs is stopping: cutover cancelled, nothing switched");
			return CTL_EFAIL;
		}
		job_dest_ok(j);
		for (size_t i = 0; i < j->n; i++) {
			struct delta_status st;

			delta_status(j->files[i].d, &st);
			if (st.phase == DELTA_FAILED) {
				*out = xasprintf("'%s' failed: %s", j->files[i].relpath, st.error);
				return CTL_EFAIL;
			}
			if (st.phase == DELTA_MERGING && st.dirty_bytes <= max_dirty)
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

/* Merge until at most max bytes per file are left, for up to limit_us. */
static void converge(struct job *j, uint64_t max, uint64_t limit_us)
{
	uint64_t until = now_us() + limit_us;
	bool left = true;

	while (left && now_us() < until) {
		left = false;
		for (size_t i = 0; i < j->n; i++) {
			struct delta_status st;

			delta_status(j->files[i].d, &st);
			if (st.dirty_bytes > max) {
				left = true;
				if (delta_merge_some(j->files[i].d, 16u << 20) < 0)
					return;
			}
		}
	}
}

/*
 * fsync every destination file; on failure *out says so.  A failed sync
 * leaves it unknown which of the writes since the last good one reached
 * the destination (the kernel drops the failed pages; a network
 * filesystem such as sshfs reports a write's failure only at the next
 * write or sync), so every block of the delta is merged again before the
 * destination is trusted; the base copy was synced before it ended.
 */
int sync_dests(struct job *j, char **out)
{
	for (size_t i = 0; i < j->n; i++) {
		int r = target_sync(delta_dest(j->files[i].d));

		if (r) {
			*out = xasprintf("cutover cancelled, nothing switched: cannot sync '%s' in '%s': %s",
					 j->files[i].relpath, j->dest, strerror(-r));
			for (size_t k = 0; k < j->n; k++) {
				struct delta_status st;

				delta_status(j->files[k].d, &st);
				if (st.phase == DELTA_MERGING)
					delta_target_dest(j->files[k].d, DELTA_MERGING);
			}
			log_warnx("cannot sync '%s' in '%s': %s; every delta block will be merged again",
				  j->files[i].relpath, j->dest, strerror(-r));
			return r;
		}
	}
	return 0;
}

/* ---- the steps -------------------------------------------------------------- */

static int step_hooks(struct cutover *c, char **out)
{
	int handing = 0;

	for (int i = 0; i < c->req->nhooks; i++) {
		if (vmhook_new(c->req->hooks[i], &c->hooks[c->nhooks], c->err, sizeof(c->err))) {
			*out = xasprintf("%s", c->err);
			return CTL_EUSAGE;
		}
		c->nhooks++;
		if (!vmhook_hands_over(c->hooks[c->nhooks - 1]))
			continue;
		if (!c->j->rbd) {
			*out = xasprintf("hook '%s' hands QEMU over to RBD images, but %s goes to "
					 "'%s'", c->req->hooks[i], c->label, c->j->dest);
			return CTL_EUSAGE;
		}
		/* the hand-over gives every file of the job to its QEMU */
		if (++handing > 1) {
			*out = xasprintf("'%s' is a second hook that hands QEMU over: the files of "
					 "a job go to one QEMU; move each VM as a job of its own",
					 c->req->hooks[i]);
			return CTL_EUSAGE;
		}
	}
	return CTL_OK;
}

/* 1: --max-downtime leaves no more to merge inside the hold than about
 * 100 KiB per allowed millisecond (a conservative merge rate).  The job is
 * busy meanwhile, and the other commands free to run. */
int step_wait(struct cutover *c, char **out)
{
	const struct ctl_request *req = c->req;
	double timeout = req->timeout_s > 0 ? req->timeout_s : DEFAULT_CUTOVER_TIMEOUT_S;
	uint64_t max = DELTA_READY_BYTES;
	int ret;

	if (req->max_downtime_ms > 0 && (uint64_t)req->max_downtime_ms * 102400 < max)
		max = (uint64_t)req->max_downtime_ms * 102400;
	job_busy_begin(c->e, c->j);
	ret = wait_ready(c->e, c->j, timeout, max, out);
	job_busy_end(c->e, c->j);
	if (!ret && c->e->handing_over) {
		/* a restart came while it waited: the next worker cuts over */
		*out = xasprintf("relocfs is handing the mount over to a new worker: cutover "
				 "cancelled, nothing switched; run it again");
		ret = CTL_EFAIL;
	}
	return ret;
}

/* 2: everything that can be done while the guest runs.  The copier is
 * stopped on return, whatever the result. */
static int step_prepare(struct cutover *c, char **out)
{
	struct engine *e = c->e;
	struct job *j = c->j;
	int r;

	/* a worker after this one must know a cutover was under way */
	__atomic_store_n(&e->region->cutover_job, j->id, __ATOMIC_SEQ_CST);
	job_copier_stop(e, j);
	/* the first sync of the destinations writes back what the copier
	 * left in the page cache, and may take seconds while the guest keeps
	 * writing: merge and sync again until a sync finds little to do */
	for (int pass = 0; pass < 4; pass++) {
		uint64_t t0;

		converge(j, HOLD_MERGE_BYTES, 2000000);
		t0 = now_us();
		if (sync_dests(j, out))
			return CTL_EFAIL;
		if (now_us() - t0 < 20000)
			break;
	}
	if (j->tree)
		sync_dirs(e->root_fd, j);
	c->nodes = job_nodes(j);
	c->sw = calloc(j->n ? j->n : 1, sizeof(*c->sw));
	if (!c->nodes || !c->sw) {
		*out = xasprintf("out of memory");
		return CTL_EFAIL;
	}
	/* durable before anything is switched: a restart that finds it knows
	 * that this job's cutover was under way (recover.c); records saved
	 * from now on until the commit keep it up to date */
	pthread_mutex_lock(&e->lock);
	e->cutover_job = j;
	r = write_next_record(e);
	if (r)
		e->cutover_job = NULL;
	pthread_mutex_unlock(&e->lock);
	if (r) {
		*out = xasprintf("cutover cancelled, nothing switched: cannot write "
				 "'%s/%s/state.next': %s", e->source, STATE_DIR, strerror(-r));
		return CTL_EFAIL;
	}
	c->pre.e = e;
	c->pre.job = j;
	if (j->tree) {
		fs_foreach_node(e->fs, preopen_node, &c->pre);
		if (c->pre.n)
			qsort(c->pre.p, c->pre.n, sizeof(*c->pre.p), preopen_cmp);
	}
	if (!job_dest_ok(j)) {
		*out = xasprintf("cutover cancelled, nothing switched: '%s' no longer leads to the "
				 "copy", j->dest);
		return CTL_EFAIL;
	}
	/* sync what was merged since the last sync (so that the sync after
	 * the hold is short), then, last of all, commit and merge the delta
	 * records written meanwhile: the hold merges only what comes after */
	if (sync_dests(j, out))
		return CTL_EFAIL;
	converge(j, 256u << 10, 2000000);
	return CTL_OK;
}

/* 3: pause the VMs; on failure the ones paused are resumed by step_resume */
static int step_pause(struct cutover *c, char **out)
{
	struct job *j = c->j;
	const char **files = calloc(j->n ? j->n : 1, sizeof(char *));
	char **abs = calloc(j->n ? j->n : 1, sizeof(char *));
	int r = 0;

	for (size_t i = 0; files && abs && i < j->n; i++) {
		abs[i] = path_join(c->e->mountpoint, j->files[i].relpath);
		files[i] = abs[i];
	}
	for (int i = 0; i < c->nhooks; i++) {
		c->hook_t0[i] = now_us();
		r = vmhook_pause(c->hooks[i], c->e->mountpoint, files, (int)j->n, c->hook_ms, c->err,
				 sizeof(c->err));
		if (r)
			break;
		/* a worker after this one resumes what this one paused */
		snprintf(c->e->region->paused[c->paused], HOOK_SPEC_MAX, "%s",
			 vmhook_spec(c->hooks[i]));
		__atomic_store_n(&c->e->region->npaused, (uint64_t)c->paused + 1, __ATOMIC_SEQ_CST);
		c->paused++;
	}
	for (size_t i = 0; abs && i < j->n; i++)
		free(abs[i]);
	free(abs);
	free(files);
	if (r) {
		*out = xasprintf("cutover cancelled, nothing switched: pause failed: %s", c->err);
		return CTL_EFAIL;
	}
	return CTL_OK;
}

/* 4: the hold.  On failure the hold is released with nothing switched. */
int step_hold(struct cutover *c, char **out)
{
	struct job *j = c->j;
	int r = 0;

	c->t_hold = now_us();
	if (fs_hold(c->e->fs, j->tree, c->nodes, j->n, HOLD_DRAIN_US)) {
		*out = xasprintf("cutover cancelled, nothing switched: requests in flight did not "
				 "finish within %u s", HOLD_DRAIN_US / 1000000);
		return CTL_EFAIL;
	}
	c->t_drained = now_us();
	c->merged_unsynced = !c->handoff;
	delaypoint("cutover-hold");	/* tests: requests park meanwhile */
	/* a hand-off finished the copies before it was recorded: the
	 * destination is the other host's now, nothing more is merged */
	for (size_t i = 0; i < j->n && !r && !c->handoff; i++) {
		struct job_file *f = &j->files[i];
		struct timespec mtime;

		delta_set_phase(f->d, DELTA_CUTOVER);
		r = delta_finish_target(f->d, DELTA_FINISH_SWITCH);
		if (r) {
			snprintf(c->err, sizeof(c->err), "'%s': %s", f->relpath, strerror(-r));
			break;
		}
		r = j->rbd ? rbd_dest_meta(f)
			   : copy_meta(delta_source_fd(f->d), delta_dest_fd(f->d),
				       fs_node_mtime(c->e->fs, f->node, &mtime) ||
				       delta_mtime(f->d, &mtime) ? &mtime : NULL);
		if (r)
			log_warnx("'%s': cannot copy metadata: %s", f->relpath, strerror(-r));
		r = 0;
	}
	if (!r)
		r = switch_prepare(j, &c->pre, c->sw, c->err, sizeof(c->err));
	c->t_merged = now_us();
	crashpoint("cutover-merged");
	if (r) {
		for (size_t i = 0; i < j->n; i++)
			delta_set_phase(j->files[i].d, DELTA_MERGING);
		fs_release(c->e->fs, j->tree, c->nodes, j->n);
		*out = xasprintf("cutover failed, nothing switched, the VM runs on the source: %s",
				 c->err);
		return CTL_EFAIL;
	}
	return CTL_OK;
}

/* 5: the point of no return: nothing here can fail.  The record is renamed
 * after the hold (step_commit), and no flush is acknowledged before. */
void step_switch(struct cutover *c)
{
	struct engine *e = c->e;
	struct job *j = c->j;

	commit_begin(e, j);
	c->switched = true;
	/* from here a worker after this one finishes the switch; what the
	 * mount serves changes now, the record at the commit */
	__atomic_store_n(&e->region->switched, 1, __ATOMIC_SEQ_CST);
	pthread_mutex_lock(&e->lock);
	switch_serving(e, j);
	if (j->tree) {
		c->old_root_fd = e->root_fd;
		e->root_fd = dup(j->dest_fd);
		free(e->root);
		e->root = strdup(j->dest);
	}
	jobs_remove(e, j);
	pthread_mutex_unlock(&e->lock);
	/* the migrating files first */
	for (size_t i = 0; i < j->n; i++) {
		if (j->rbd) {
			/* the name stays on its stub, the data goes to the image */
			fs_node_target(c->sw[i].node, delta_dest(j->files[i].d));
			continue;
		}
		fs_node_rekey(e->fs, c->sw[i].node, c->sw[i].fd, &c->sw[i].st);
		c->sw[i].fd = -1;
		fs_commit_reopen(e->fs, c->sw[i].node);
	}
	if (j->tree) {
		struct switch_ctx sc = { .e = e, .job = j };

		for (size_t i = 0; i < c->pre.n; i++) {
			struct rnode *n = c->pre.p[i].node;
			dev_t dev;
			ino_t ino;

			fs_node_key(n, &dev, &ino);
			if (job_entry_path(j, dev, ino)) {	/* not switched yet */
				fs_node_rekey(e->fs, n, c->pre.p[i].fd, &c->pre.p[i].st);
				c->pre.p[i].fd = -1;
				fs_reopen_handles(e->fs, n);
			}
		}
		fs_foreach_node(e->fs, switch_tree_node, &sc);	/* nodes looked up since */
		if (sc.errors)
			log_warnx("%d node(s) could not be switched", sc.errors);
	}
	for (size_t i = 0; i < j->n; i++) {
		delta_set_phase(j->files[i].d, DELTA_DONE);
		fs_node_route(j->files[i].node, NULL);
		if (c->handoff)
			fs_node_seal(e->fs, j->files[i].node, true);
	}
	c->t_release = now_us();
	c->parked = fs_release(e->fs, j->tree, c->nodes, j->n);
	log_info("cutover: I/O held %.2f ms: %.2f draining, %.2f finishing the copies, %.2f switching",
		 (c->t_release - c->t_hold) / 1000.0, (c->t_drained - c->t_hold) / 1000.0,
		 (c->t_merged - c->t_drained) / 1000.0, (c->t_release - c->t_merged) / 1000.0);
	c->hold_us = c->t_release - c->t_hold;
	crashpoint("cutover-released");
	delaypoint("cutover-switched");	/* tests: switched, not yet durable */
}

/* The images as a hook that hands over sees them; NULL if out of memory. */
static struct vmhook_image *handover_images(struct cutover *c, char **abs, char **names)
{
	struct job *j = c->j;
	struct vmhook_image *imgs = calloc(j->n ? j->n : 1, sizeof(*imgs));
	bool ok = imgs != NULL;

	for (size_t i = 0; ok && i < j->n; i++) {
		abs[i] = path_join(c->e->mountpoint, j->files[i].relpath);
		names[i] = rbd_image_name(j->rbd, j->files[i].relpath);
		ok = abs[i] && names[i];
		imgs[i] = (struct vmhook_image){ .path = abs[i], .pool = j->rbd->pool,
						 .image = names[i], .conf = j->rbd->conf,
						 .user = j->rbd->id };
	}
	if (!ok) {
		free(imgs);
		return NULL;
	}
	return imgs;
}

/* 5b: with the VM still paused, hand its disks over to QEMU's own rbd
 * driver (the hooks that do, qmp-rbd).  The switch stands whatever happens
 * here: a failure leaves the VM on the mount, which serves the images, and
 * is reported with the cutover. */
static void step_handover(struct cutover *c)
{
	struct job *j = c->j;
	char **abs, **names;
	struct vmhook_image *imgs = NULL;
	int r = 0, hooks = 0;

	for (int i = 0; i < c->paused; i++)
		hooks += vmhook_hands_over(c->hooks[i]);
	if (!hooks || !j->rbd)
		return;
	abs = calloc(j->n ? j->n : 1, sizeof(char *));
	names = calloc(j->n ? j->n : 1, sizeof(char *));
	if (abs && names)
		imgs = handover_images(c, abs, names);
	if (!imgs) {
		r = -ENOMEM;
		snprintf(c->err, sizeof(c->err), "out of memory");
	}
	/* what relocfs merged may still sit in librbd's cache: QEMU's driver
	 * is another client of the cluster and must find it there */
	for (size_t i = 0; !r && i < j->n; i++) {
		r = target_sync(delta_dest(j->files[i].d));
		if (r)
			snprintf(c->err, sizeof(c->err), "cannot flush '%s': %s",
				 target_name(delta_dest(j->files[i].d)), strerror(-r));
	}
	for (int i = 0; !r && i < c->paused; i++)
		if (vmhook_hands_over(c->hooks[i]))
			r = vmhook_handover(c->hooks[i], imgs, (int)j->n, c->hook_ms, c->err,
					    sizeof(c->err));
	if (r) {
		c->handover_failed = true;
		snprintf(c->handover, sizeof(c->handover), "failed, the VM runs on the mount, "
			 "served from RBD: %s", c->err);
		log_warnx("hand-over to QEMU's rbd driver %s", c->handover);
	} else {
		snprintf(c->handover, sizeof(c->handover), "%zu disk(s) on QEMU's rbd driver",
			 j->n);
	}
	for (size_t i = 0; abs && names && i < j->n; i++) {
		free(abs[i]);
		free(names[i]);
	}
	free(abs);
	free(names);
	free(imgs);
}

/* Nothing switched: the copier goes on where it was. */
static void step_undo(struct cutover *c)
{
	bool ok = true;

	if (c->merged_unsynced) {
		/* the hold merged blocks whose records were not durable */
		for (size_t i = 0; i < c->j->n; i++)
			if (delta_commit(c->j->files[i].d))
				ok = false;
	}
	pthread_mutex_lock(&c->e->lock);
	c->j->cutting = false;
	if (!ok) {
		/* the next record stays, and with it the roll-back a restart
		 * does; nothing may change the record until then */
		log_warnx("cannot commit the delta records after the failed cutover: a restart "
			  "will roll the job back");
		c->e->record_frozen = true;
	} else if (c->e->cutover_job == c->j) {
		c->e->cutover_job = NULL;
		drop_next_state(c->e);
	}
	pthread_mutex_unlock(&c->e->lock);
	job_copier_start(c->e, c->j);
}

/* 6: resume what was paused, in reverse order, whatever happened */
static int step_resume(struct cutover *c, int ret, char **out)
{
	for (int i = c->paused - 1; i >= 0; i--) {
		char rerr[512];
		size_t l;

		if (vmhook_resume(c->hooks[i], c->hook_ms, rerr, sizeof(rerr))) {
			log_warnx("cannot resume the VM with '%s': %s", vmhook_spec(c->hooks[i]), rerr);
			free(*out);
			*out = xasprintf("%s, but resuming with '%s' failed: %s",
					 c->switched ? "switched" : "nothing switched",
					 vmhook_spec(c->hooks[i]), rerr);
			ret = CTL_EFAIL;
		}
		l = strlen(c->hooktxt);
		snprintf(c->hooktxt + l, sizeof(c->hooktxt) - l, "%s%s=%.1fms", l ? ", " : "",
			 vmhook_spec(c->hooks[i]), (double)(now_us() - c->hook_t0[i]) / 1000.0);
	}
	return ret;
}

struct cleanup_job {
	struct engine *e;
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
	struct engine *e = c->e;
	struct job *j = c->job;

	if (c->remove_source && !j->tree)
		for (size_t i = 0; i < j->n; i++)
			if (ftruncate(delta_source_fd(j->files[i].d), 0) == -1)
				log_warn("cannot empty the source of '%s'", j->files[i].relpath);
	if (c->remove_source && c->old_root_fd != -1)
		empty_dir(c->old_root_fd, STATE_DIR);
	if (c->old_root_fd != -1)
		close(c->old_root_fd);
	if (!c->have_cmd_lock)
		pthread_mutex_lock(&e->cmd_lock);	/* not while another command runs */
	job_free(e, j, true);
	pthread_mutex_lock(&e->lock);
	run_cleanup(e);
	pthread_mutex_unlock(&e->lock);
	if (!c->have_cmd_lock)
		pthread_mutex_unlock(&e->cmd_lock);
	pthread_mutex_lock(&e->lock);
	if (--e->cleanups == 0)
		pthread_cond_broadcast(&e->cleanups_done);
	pthread_mutex_unlock(&e->lock);
	free(c);
	return NULL;
}

static void start_cleanup(struct cutover *c)
{
	struct cleanup_job *cj = calloc(1, sizeof(*cj));
	pthread_t t;

	if (!cj) {
		log_warnx("out of memory: the delta store of the cutover is left in place");
		return;
	}
	cj->e = c->e;
	cj->job = c->j;
	cj->remove_source = c->remove_source;
	cj->old_root_fd = c->old_root_fd;
	c->old_root_fd = -1;
	pthread_mutex_lock(&c->e->lock);
	c->e->cleanups++;
	pthread_mutex_unlock(&c->e->lock);
	if (pthread_create(&t, NULL, cleanup_thread, cj) == 0) {
		pthread_detach(t);
	} else {
		cj->have_cmd_lock = true;
		cleanup_thread(cj);
	}
}

/* 7: durable: the destinations, then the renamed record; then report and
 * clean up in the background (unless the switch could not be made durable:
 * the delta store is kept for the roll-back a restart does). */
int step_commit(struct cutover *c, int ret, char **out)
{
	struct engine *e = c->e;
	struct job *j = c->j;
	const struct ctl_request *req = c->req;
	int dr = commit_make_durable(e);

	if (dr) {
		free(*out);
		*out = xasprintf("switched, but the switch could not be made durable: %s; flushes "
				 "fail from now on: restart relocfs, which rolls back to the source",
				 strerror(-dr));
		ret = CTL_EFAIL;
	}
	pthread_mutex_lock(&e->lock);
	e->ms.last_cutover_us = c->hold_us;
	e->last_hold_us = c->hold_us;
	snprintf(e->last_hooks, sizeof(e->last_hooks), "%s", c->hooktxt);
	snprintf(e->last_handover, sizeof(e->last_handover), "%s", c->handover);
	finish_job(e, j, c->handoff ? "handed-off" : "done", c->handoff ? "handed-off" : "done",
		   j->dest);
	pthread_mutex_unlock(&e->lock);
	if (ret == CTL_OK) {
		*out = xasprintf("%s%sswitched %zu file(s) to '%s'; I/O held %.1f ms (%zu request(s) "
				 "parked, longest %.1f ms)%s%s%s%s%s",
				 j->name[0] ? c->label : "", j->name[0] ? ": " : "",
				 j->n, j->dest, (double)c->hold_us / 1000.0, c->parked,
				 (double)fs_last_hold_max_us(e->fs) / 1000.0, c->hooktxt[0] ? "; " : "",
				 c->hooktxt,
				 req->max_downtime_ms > 0 && c->hold_us > (uint64_t)req->max_downtime_ms * 1000
					 ? "; longer than --max-downtime"
					 : "",
				 c->handover[0] ? (c->handover_failed ? "; but the hand-over to QEMU's "
					 "rbd driver " : "; ") : "", c->handover);
		/* the operator asked for QEMU on its rbd driver and did not get it */
		if (c->handover_failed)
			ret = CTL_EFAIL;
	}
	if (!dr)
		start_cleanup(c);
	return ret;
}

void cutover_free(struct cutover *c)
{
	for (int i = 0; i < c->nhooks; i++)
		vmhook_free(c->hooks[i]);
	preopen_free(&c->pre);
	free(c->nodes);
	free(c->sw);
	if (c->old_root_fd != -1)
		close(c->old_root_fd);
}

/* The job a cutover is for: running, and no other command at work on it. */
static int cutover_job(struct engine *e, const struct ctl_request *req, struct job **jp,
		       char **out)
{
	struct job *j;
	char lb[96];
	int ret = job_resolve(e, req->job, &j, out);

	if (ret)
		return ret;
	job_label(j, lb, sizeof(lb));
	pthread_mutex_lock(&e->lock);
	if (j->state == JOB_QUEUED)
		*out = xasprintf("%s is queued and has not started: nothing to switch yet", lb);
	else if (j->state == JOB_FAILED)
		*out = xasprintf("%s could not start (%s): abort it to dismiss it", lb, j->error);
	else if (j->busy)
		*out = xasprintf("%s is busy: a cutover or verify of it is in progress", lb);
	pthread_mutex_unlock(&e->lock);
	if (*out)
		return CTL_EFAIL;
	*jp = j;
	return CTL_OK;
}

int cmd_cutover(struct engine *e, const struct ctl_request *req, char **out)
{
	struct cutover c = { .e = e, .req = req, .old_root_fd = -1 };
	int ret;

	ret = cutover_job(e, req, &c.j, out);
	if (ret)
		return ret;
	job_label(c.j, c.label, sizeof(c.label));
	c.hook_ms = req->max_downtime_ms > 0 ? req->max_downtime_ms * 4 + 5000 : 30000;
	c.remove_source = req->remove_source;
	ret = step_hooks(&c, out);
	if (ret)
		goto out;
	/* a hand-off to another host, or the settling of one (handoff.c) */
	if (handoff_pending(e, c.j, req)) {
		ret = handoff_settle(&c, out);
		goto out;
	}
	for (int i = 0; i < c.nhooks; i++) {
		if (vmhook_hands_off(c.hooks[i])) {
			ret = cmd_handoff(&c, out);
			goto out;
		}
	}
	ret = step_wait(&c, out);
	if (ret)
		goto out;
	pthread_mutex_lock(&e->lock);
	c.j->cutting = true;
	pthread_mutex_unlock(&e->lock);
	ret = step_prepare(&c, out);
	if (!ret)
		ret = step_pause(&c, out);
	if (!ret)
		ret = step_hold(&c, out);
	if (!ret) {
		step_switch(&c);
		step_handover(&c);
	} else
		step_undo(&c);
	ret = step_resume(&c, ret, out);
	if (c.switched)
		ret = step_commit(&c, ret, out);
	__atomic_store_n(&e->region->npaused, 0, __ATOMIC_SEQ_CST);
	__atomic_store_n(&e->region->switched, 0, __ATOMIC_SEQ_CST);
	__atomic_store_n(&e->region->cutover_job, 0, __ATOMIC_SEQ_CST);
out:
	cutover_free(&c);
	return ret;
}
