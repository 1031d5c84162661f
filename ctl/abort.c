/*
 * abort: bringing every change of a job back into the source, so that the
 * mount serves the source as before.  The same merge engine that fills the
 * destination merges the delta into the source instead: most of it while
 * the guest runs, the last few MiB inside a hold.  The abort is recorded
 * (each store's phase) before anything is merged, so a restart finishes it.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/crashpoint.h"
#include "common/util.h"
#include "ctl/engine_i.h"
#include "delta/delta.h"
#include "fs/fs.h"

/* Record the abort: every store merges into the source from now on.  If it
 * cannot be recorded nothing changes and the migration goes on. */
static int abort_record(struct engine *e, struct job *j, char *err, size_t errlen)
{
	enum delta_phase *prev = calloc(j->n ? j->n : 1, sizeof(*prev));
	int r = prev ? 0 : -ENOMEM;

	job_copier_stop(e, j);
	for (size_t i = 0; i < j->n && !r; i++) {
		struct delta_status st;

		delta_status(j->files[i].d, &st);
		prev[i] = st.phase;
		r = delta_set_phase(j->files[i].d, DELTA_ABORTING);
		delta_target_source(j->files[i].d);
	}
	if (r) {
		for (size_t i = 0; prev && i < j->n; i++)
			delta_target_dest(j->files[i].d,
					  prev[i] == DELTA_ABORTING ? DELTA_MERGING : prev[i]);
		if (j->n && j->files[0].node)
			job_copier_start(e, j);
		snprintf(err, errlen, "cannot record the abort (the migration goes on): %s",
			 strerror(-r));
	}
	free(prev);
	return r;
}

/* The job is gone from the record, with what it left to clean up. */
static int abort_commit(struct engine *e, struct job *j, char *err, size_t errlen)
{
	int r;

	pthread_mutex_lock(&e->lock);
	ms_drop_job(&e->ms, j->id);
	ms_add_cleanup(&e->ms, j->delta_dir);
	/* what the job put in DEST goes too, even if the daemon dies before
	 * remove_dest() */
	add_dest_cleanup(e, j);
	r = save_record(e);
	if (r)
		snprintf(err, errlen, "cannot write the state record: %s", strerror(-r));
	pthread_mutex_unlock(&e->lock);
	if (!r)
		crashpoint("abort-committed");
	return r;
}

int abort_job(struct engine *e, struct job *j, char *err, size_t errlen)
{
	struct rnode **nodes = NULL;
	int r;

	r = abort_record(e, j, err, errlen);
	if (r)
		return r;
	crashpoint("abort-recorded");
	/* most of it while the guest runs */
	for (size_t i = 0; i < j->n; i++) {
		struct delta_status st;
		ssize_t k;

		do {
			k = delta_merge_some(j->files[i].d, 16u << 20);
			delta_status(j->files[i].d, &st);
		} while (k > 0 && st.dirty_bytes > DELTA_READY_BYTES);
	}
	if (j->n && j->files[0].node) {
		nodes = job_nodes(j);
		if (nodes && fs_hold(e->fs, j->tree, nodes, j->n, HOLD_DRAIN_US)) {
			snprintf(err, errlen, "requests in flight did not finish within %u s; retry abort",
				 HOLD_DRAIN_US / 1000000);
			free(nodes);
			return -ETIMEDOUT;
		}
	}
	delaypoint("abort-hold");	/* tests: requests park meanwhile */
	for (size_t i = 0; i < j->n && !r; i++) {
		r = delta_finish_target(j->files[i].d, DELTA_FINISH_SYNC);
		if (r)
			snprintf(err, errlen, "cannot write '%s' back to the source: %s",
				 j->files[i].relpath, strerror(-r));
	}
	crashpoint("abort-merged");
	if (!r)
		r = abort_commit(e, j, err, errlen);
	if (!r) {
		for (size_t i = 0; i < j->n; i++) {
			delta_set_phase(j->files[i].d, DELTA_ABORTED);
			if (j->files[i].node)
				fs_node_route(j->files[i].node, NULL);
		}
	}
	if (nodes)
		fs_release(e->fs, j->tree, nodes, j->n);
	free(nodes);
	return r;
}

/* A job that never started: out of the record (queued) and of the list. */
static int dismiss(struct engine *e, struct job *j, char **out)
{
	char lb[96];
	bool queued;
	int r = 0;

	pthread_mutex_lock(&e->lock);
	queued = j->state == JOB_QUEUED;
	if (ms_find_job(&e->ms, j->id)) {
		ms_drop_job(&e->ms, j->id);
		r = save_record(e);
	}
	if (!r) {
		jobs_remove(e, j);
		if (queued)
			finish_job(e, j, "aborted", "idle", e->root);
	}
	pthread_mutex_unlock(&e->lock);
	if (r) {
		*out = xasprintf("cannot write the state record: %s", strerror(-r));
		return CTL_EFAIL;
	}
	*out = xasprintf("%s: %s; nothing of it had started", job_label(j, lb, sizeof(lb)),
			 queued ? "dequeued" : "dismissed");
	job_free(e, j, true);
	governor_wake(e);
	return CTL_OK;
}

int cmd_abort(struct engine *e, const struct ctl_request *req, char **out)
{
	struct job *j;
	char lb[96];
	int r = job_resolve(e, req->job, &j, out);

	if (r)
		return r;
	job_label(j, lb, sizeof(lb));
	if (j->busy) {
		*out = xasprintf("%s is busy: a cutover or verify of it is in progress", lb);
		return CTL_EFAIL;
	}
	if (j->state != JOB_RUNNING)
		return dismiss(e, j, out);
	r = handoff_abort_check(e, j, req->force, out);
	if (r)
		return r;
	return abort_running(e, j, out);
}

int abort_running(struct engine *e, struct job *j, char **out)
{
	char err[512], lb[96];
	int r;

	job_label(j, lb, sizeof(lb));
	r = abort_job(e, j, err, sizeof(err));
	if (r) {
		*out = xasprintf("abort failed, the files stay in their delta stores (retry abort): %s",
				 err);
		return CTL_EFAIL;
	}
	pthread_mutex_lock(&e->lock);
	jobs_remove(e, j);
	finish_job(e, j, "aborted", "idle", e->root);
	pthread_mutex_unlock(&e->lock);
	remove_dest(j);
	*out = xasprintf("%s%saborted: %zu file(s) stay on '%s' with every write",
			 j->name[0] ? lb : "", j->name[0] ? ": " : "", j->n, e->root);
	job_free(e, j, true);
	pthread_mutex_lock(&e->lock);
	run_cleanup(e);
	pthread_mutex_unlock(&e->lock);
	governor_wake(e);
	return CTL_OK;
}
