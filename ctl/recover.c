/*
 * recover: the engine's start-up: read the mount's record, finish what a
 * crash interrupted (an abort, a cutover's clean-up, a cutover that was not
 * durable yet), decide which directory the mount serves, and pick up the
 * jobs: the started ones resume, the queued ones wait again.
 *
 * A cutover writes "state.next" (synced) before its hold and renames it over
 * "state" right after, once the destinations are synced.  Finding it at
 * start-up means the daemon (or the host) went down before that rename was
 * durable: the hold may have merged blocks whose delta records never reached
 * the journal, and the guest may have written to the destination after the
 * switch (nothing it flushed: flushes wait for the rename).  The destination
 * of the job it names ("cutover ID") cannot be trusted, so that job is
 * rolled back to the source, where its delta store holds every flushed
 * write; the other jobs carry on from "state", which holds every change
 * saved meanwhile.  A next record that cannot be read (a version 1 one, or
 * damaged) does not say which job it switched: every started job is rolled
 * back then, which loses nothing.
 *
 * A job whose hand-off to another host was recorded is never rolled back:
 * the VM may run there, on the destination (see handoff.c).
 *
 * A worker that takes over from another (warm) must not take back anything
 * the guest saw: the cutover the last worker had switched is finished
 * (roll_forward), one it had not is cancelled, and the jobs that must be
 * rolled back are, but in the background while the mount serves.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/log.h"
#include "ctl/engine_i.h"
#include "delta/delta.h"
#include "target/target.h"

/* The job whose cutover was interrupted: its id, 0 for none, or
 * UINT64_MAX when the next record does not say (every job then). */
static uint64_t cutover_interrupted(struct engine *e)
{
	struct mount_state next;
	uint64_t id;
	int r;

	if (e->state_fd == -1)
		return 0;
	r = ms_load_named(e->state_fd, "state.next", &next);
	if (r == -ENOENT)
		return 0;
	if (r) {
		log_warnx("the next record of an interrupted cutover cannot be read (%s): rolling "
			  "back every job", r == -EBADMSG ? "damaged" : strerror(-r));
		return UINT64_MAX;
	}
	id = next.cutover_job ? next.cutover_job : UINT64_MAX;
	ms_free(&next);
	return id;
}

/* The record, and the directory it says the mount serves. */
int load_record(struct engine *e, int *root_fd, char *err, size_t errlen)
{
	int r, fd = openat(e->source_fd, STATE_DIR, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	if (fd != -1) {
		e->state_fd = fd;
		r = ms_load(fd, &e->ms);
		if (r && r != -ENOENT) {
			snprintf(err, errlen, "cannot read the state record '%s/%s/state': %s",
				 e->source, STATE_DIR,
				 r == -EBADMSG ? "damaged (checksum or syntax)" : strerror(-r));
			return r;
		}
	}
	if (!e->ms.root)
		e->ms.root = strdup(e->source);
	e->root = e->ms.root ? strdup(e->ms.root) : NULL;
	if (!e->root) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	*root_fd = open(e->root, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (*root_fd == -1) {
		r = -errno;
		snprintf(err, errlen, "cannot open '%s', where the state record says the files are: %s",
			 e->root, strerror(errno));
		return r;
	}
	e->root_fd = dup(*root_fd);
	return 0;
}

void load_overrides(struct engine *e, int root_fd)
{
	for (size_t i = 0; i < e->ms.noverrides; i++) {
		struct override o = { 0 };
		struct override *no;

		o.relpath = strdup(e->ms.overrides[i].relpath);
		o.backend = strdup(e->ms.overrides[i].backend);
		if (!o.relpath || !o.backend || override_resolve(&o, root_fd)) {
			log_warnx("relocated file '%s' is gone from '%s'; not routing it",
				  e->ms.overrides[i].relpath, e->root);
			override_free(&o);
			continue;
		}
		no = realloc(e->ovr, (e->novr + 1) * sizeof(*e->ovr));
		if (!no) {
			override_free(&o);
			continue;
		}
		e->ovr = no;
		e->ovr[e->novr++] = o;
	}
}

/* A recorded job, as a job of the engine: a queued one with the files it
 * asks for, a started one with its stores reopened from their journals. */
static int load_job(struct engine *e, const struct ms_job *mj, int root_fd, struct job **jp,
		    char *err, size_t errlen)
{
	struct job *j = job_alloc(mj->name, mj->dest, mj->delta_dir);
	int r;

	*jp = j;
	if (!j) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	j->id = mj->id;
	j->tree = mj->tree;
	j->rate = mj->rate;
	j->priority = mj->priority ? mj->priority : JOB_PRIORITY_DEFAULT;
	j->since_ms = mj->since_ms;
	j->deadline_ms = mj->deadline_ms;
	if (e->last_id < j->id)
		e->last_id = j->id;
	if (rbd_spec_is(mj->dest)) {
		r = rbd_dest_parse(j, err, errlen);
		if (r)
			return r;
	}
	if (mj->queued) {
		j->state = JOB_QUEUED;
		j->want = calloc(mj->nfiles ? mj->nfiles : 1, sizeof(char *));
		if (!j->want) {
			snprintf(err, errlen, "out of memory");
			return -ENOMEM;
		}
		for (size_t i = 0; i < mj->nfiles; i++) {
			if (!(j->want[i] = strdup(mj->files[i]))) {
				snprintf(err, errlen, "out of memory");
				return -ENOMEM;
			}
			j->nwant++;
		}
		return 0;
	}
	j->state = JOB_RUNNING;
	if (handoff_load_job(j, mj)) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	j->dest_fd = j->rbd ? -1 : open_dir(e, mj->dest, O_RDONLY);
	j->delta_fd = open_dir(e, mj->delta_dir, O_RDONLY);
	if (j->delta_fd < 0) {
		snprintf(err, errlen, "cannot resume the migration to '%s': cannot open its delta "
			 "store '%s': %s", mj->dest, mj->delta_dir, strerror(-j->delta_fd));
		j->delta_fd = -1;
		if (j->dest_fd < 0)
			j->dest_fd = -1;
		return -ENOENT;
	}
	if (j->dest_fd < 0 && !j->rbd) {
		log_warnx("cannot open the destination '%s': %s", mj->dest, strerror(-j->dest_fd));
		j->dest_fd = -1;
		j->dest_lost = true;
	}
	for (size_t i = 0; i < mj->nfiles; i++) {
		r = job_add_file(e, j, mj->files[i], false, err, errlen);
		if (r)
			return r;
		if (!j->tree)
			job_file_resolve(&j->files[i], root_fd);
	}
	if (j->tree && !j->dest_lost) {
		struct walk w = { .job = j, .create = false };
		struct stat st;

		if (fstatat(root_fd, "", &st, AT_EMPTY_PATH) == 0)
			job_add_entry(j, &st, "");
		walk_tree(&w, root_fd, j->dest_fd, "");
		walk_free(&w);
	}
	return 0;
}

/* Must the recorded job be rolled back to the source before serving? */
static bool must_roll_back(struct job *j, uint64_t interrupted)
{
	char lb[96];

	for (size_t i = 0; i < j->n; i++) {
		struct delta_status st;

		delta_status(j->files[i].d, &st);
		if (st.phase == DELTA_ABORTING)
			return true;	/* an abort was under way */
	}
	if (j->handoff.state == MS_HANDOFF_RECORDED) {
		/* the destination is the truth now, and the VM may run at the
		 * other host: never back to the source on our own (handoff.c
		 * asks QEMU, and does again what a crash interrupted, the
		 * switch of its next record included) */
		if (j->dest_lost)
			log_warnx("the destination '%s' of a recorded hand-off cannot be opened: the "
				  "files stay read-only here", j->dest);
		return false;
	}
	if (interrupted == j->id || interrupted == UINT64_MAX) {
		log_warnx("the cutover of %s to '%s' was interrupted before it was durable: rolling "
			  "back to the source; migrate again", job_label(j, lb, sizeof(lb)), j->dest);
		return true;
	}
	if (j->dest_lost) {
		/* the VM's data is whole without it: serve it from the source
		 * rather than not at all */
		log_warnx("the destination '%s' is lost: rolling %s back to the source; migrate "
			  "again", j->dest, job_label(j, lb, sizeof(lb)));
		return true;
	}
	return false;
}

/* Roll one started job back before serving anything. */
static int roll_back(struct engine *e, struct job *j, char *err, size_t errlen)
{
	char lb[96];
	int r;

	log_info("finishing the abort of %s to '%s'", job_label(j, lb, sizeof(lb)), j->dest);
	r = abort_job(e, j, err, errlen);
	if (r)
		return r;	/* j stays as it is: the daemon does not start */
	if (j->dest_lost)
		log_warnx("what %s put in '%s' is left there: remove it when it is back", lb,
			  j->dest);
	else
		remove_dest(j);
	return 0;
}

/* Make durable what the dead worker's cutover switched: its destinations,
 * then the next record over the record (what step_commit would have done). */
static int finish_commit(struct engine *e, struct job *j)
{
	int r = 0;

	for (size_t i = 0; i < j->n && !r; i++)
		r = target_sync(delta_dest(j->files[i].d));
	if (!r && renameat(e->state_fd, "state.next", e->state_fd, "state") == -1)
		r = -errno;
	if (!r && fsync(e->state_fd) == -1)
		r = -errno;
	return r;
}

/*
 * A worker took over from one that died in a cutover that had switched: the
 * guest has been using the destination since, so the cutover is finished,
 * not rolled back.  The record is the next one from then on (with every
 * other job in it, as the dead worker saved them); the nodes the dead worker
 * had not switched yet are switched by engine_attach.
 */
static int roll_forward(struct engine *e, struct job *j, int *root_fd, char *err, size_t errlen)
{
	char lb[96];
	int r = finish_commit(e, j);

	job_label(j, lb, sizeof(lb));
	if (r) {
		/* as after a failed commit: the guest runs on the destination,
		 * every flush fails until a restart of the daemon rolls back */
		log_warnx("cannot make the switch to '%s' (%s) durable: %s; flushes fail until "
			  "relocfs restarts (and rolls back to the source)", j->dest, lb,
			  strerror(-r));
		e->record_frozen = true;
		e->commit.result = -EIO;
	} else {
		log_info("finished the cutover to '%s' (%s) that the last worker had switched",
			 j->dest, lb);
	}
	ms_free(&e->ms);
	memset(&e->ms, 0, sizeof(e->ms));
	free(e->root);
	e->root = NULL;
	if (e->root_fd != -1)
		close(e->root_fd);
	e->root_fd = -1;
	close(*root_fd);
	r = load_record(e, root_fd, err, errlen);
	if (r)
		return r;
	if (e->ms.ncleanup && !e->record_frozen)
		run_cleanup(e);
	/* the overrides of the next record (a files job's switch adds them) */
	for (size_t i = 0; i < e->novr; i++)
		override_free(&e->ovr[i]);
	e->novr = 0;
	load_overrides(e, *root_fd);
	e->finish_switch = j;
	return 0;
}

/*
 * Warm, with a next record on disk: the cutover the last worker had under
 * way.  If it had switched (the shared region says so) it is finished;
 * otherwise it is cancelled and its job goes on copying: the guest never
 * saw the destination, and the delta stores, reopened warm, hold every
 * write.  Either way no job is rolled back for it.
 */
static int recover_cutover_warm(struct engine *e, int *root_fd, char *err, size_t errlen)
{
	struct engine_region *reg = e->region;
	const struct ms_job *mj = NULL;
	struct job *j = NULL;
	int r;

	if (reg->switched && reg->cutover_job)
		mj = ms_find_job(&e->ms, reg->cutover_job);
	if (!mj) {
		log_info("the cutover the last worker had under way had not switched: cancelled, "
			 "its job goes on");
		drop_next_state(e);
		return 0;
	}
	r = load_job(e, mj, *root_fd, &j, err, errlen);
	if (!r)
		r = roll_forward(e, j, root_fd, err, errlen);
	if (r)
		job_free(e, j, false);
	return r;
}

int recover_jobs(struct engine *e, int *root_fd, char *err, size_t errlen)
{
	uint64_t interrupted = cutover_interrupted(e);
	size_t n;
	uint64_t *ids;
	int r = 0;

	if (e->warm && interrupted) {
		r = recover_cutover_warm(e, root_fd, err, errlen);
		if (r)
			return r;
		interrupted = 0;
	}
	n = e->ms.njobs;
	ids = calloc(n ? n : 1, sizeof(*ids));
	if (!ids) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	for (size_t k = 0; k < n; k++)
		ids[k] = e->ms.jobs[k].id;
	for (size_t k = 0; k < n && !r; k++) {
		const struct ms_job *mj = ms_find_job(&e->ms, ids[k]);
		struct job *j = NULL;
		char lb[96];

		/* a switch that could not be made durable leaves its job in
		 * the record, for the roll-back of the next restart */
		if (!mj || (e->finish_switch && e->finish_switch->id == ids[k]))
			continue;
		r = load_job(e, mj, *root_fd, &j, err, errlen);
		if (r) {
			job_free(e, j, false);
			break;
		}
		if (j->state == JOB_RUNNING && must_roll_back(j, interrupted)) {
			if (e->warm) {
				/* the mount serves meanwhile: engine_start goes on
				 * with it in the background */
				j->bg_abort = true;
			} else {
				r = roll_back(e, j, err, errlen);
				if (r) {
					job_free(e, j, false);
					break;
				}
				job_free(e, j, true);
				continue;
			}
		}
		if (jobs_add(e, j)) {
			snprintf(err, errlen, "out of memory");
			job_free(e, j, false);
			r = -ENOMEM;
			break;
		}
		if (j->bg_abort)
			log_info("aborting %s to '%s' while the mount serves",
				 job_label(j, lb, sizeof(lb)), j->dest);
		else if (j->state == JOB_RUNNING)
			log_info("resuming %s: %zu file(s) to '%s'", job_label(j, lb, sizeof(lb)),
				 j->n, j->dest);
		else
			log_info("%s waits for a slot again", job_label(j, lb, sizeof(lb)));
	}
	free(ids);
	if (r)
		return r;
	if (!e->record_frozen) {
		drop_next_state(e);
		if (e->ms.ncleanup)
			run_cleanup(e);
	}
	return 0;
}
