/*
 * recover: the engine's start-up: read the mount's record, finish what a
 * crash interrupted (an abort, a cutover's clean-up, a cutover that was not
 * durable yet), decide which directory the mount serves, and pick up the job
 * in progress.
 *
 * A cutover writes "state.next" (synced) before its hold and renames it over
 * "state" right after, once the destinations are synced.  Finding it at
 * start-up with the job still recorded means the daemon (or the host) went
 * down before that rename was durable: the hold may have merged blocks whose
 * delta records never reached the journal, and the guest may have written to
 * the destination after the switch (nothing it flushed: flushes wait for the
 * rename).  The destination cannot be trusted, so the job is rolled back to
 * the source, where the delta store holds every flushed write.
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

static bool cutover_interrupted(struct engine *e)
{
	struct stat st;

	return e->state_fd != -1 && fstatat(e->state_fd, "state.next", &st, 0) == 0;
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

/* The recorded job, its stores reopened from their journals. */
static int load_job(struct engine *e, int root_fd, struct job **jp, char *err, size_t errlen)
{
	struct job *j = calloc(1, sizeof(*j));
	int r;

	*jp = j;
	if (!j) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	j->id = e->ms.job_id;
	j->tree = e->ms.tree;
	j->rate = e->ms.rate;
	j->dest = strdup(e->ms.dest);
	j->delta_dir = strdup(e->ms.delta_dir);
	j->dest_fd = open_dir(e, e->ms.dest, O_RDONLY);
	j->delta_fd = open_dir(e, e->ms.delta_dir, O_RDONLY);
	if (j->delta_fd < 0) {
		snprintf(err, errlen, "cannot resume the migration to '%s': cannot open its delta "
			 "store '%s': %s", e->ms.dest, e->ms.delta_dir, strerror(-j->delta_fd));
		j->delta_fd = -1;
		if (j->dest_fd < 0)
			j->dest_fd = -1;
		return -ENOENT;
	}
	if (j->dest_fd < 0) {
		log_warnx("cannot open the destination '%s': %s", e->ms.dest, strerror(-j->dest_fd));
		j->dest_fd = -1;
		j->dest_lost = true;
	}
	for (size_t i = 0; i < e->ms.nfiles; i++) {
		r = job_add_file(e, j, e->ms.files[i], false, err, errlen);
		if (r)
			return r;
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
static bool must_roll_back(struct engine *e, struct job *j)
{
	for (size_t i = 0; i < j->n; i++) {
		struct delta_status st;

		delta_status(j->files[i].d, &st);
		if (st.phase == DELTA_ABORTING)
			return true;	/* an abort was under way */
	}
	if (e->ms.handoff == MS_HANDOFF_RECORDED) {
		/* the destination is the truth now, and the VM may run at the
		 * other host: never back to the source on our own (handoff.c
		 * asks QEMU, and does again what a crash interrupted) */
		drop_next_state(e);
		if (j->dest_lost)
			log_warnx("the destination '%s' of a recorded hand-off cannot be opened: the "
				  "files stay read-only here", j->dest);
		return false;
	}
	if (cutover_interrupted(e)) {
		log_warnx("a cutover to '%s' was interrupted before it was durable: rolling back to "
			  "the source; migrate again", j->dest);
		return true;
	}
	if (j->dest_lost) {
		/* the VM's data is whole without it: serve it from the source
		 * rather than not at all */
		log_warnx("the destination '%s' is lost: rolling the migration back to the source; "
			  "migrate again", j->dest);
		return true;
	}
	return false;
}

/* Make durable what the dead worker's cutover switched: its destinations,
 * then the next record over the record (what step_commit would have done). */
static int finish_commit(struct engine *e, struct job *j)
{
	int r = 0;

	for (size_t i = 0; i < j->n && !r; i++)
		if (fsync(delta_dest_fd(j->files[i].d)) == -1)
			r = -errno;
	if (!r && renameat(e->state_fd, "state.next", e->state_fd, "state") == -1)
		r = -errno;
	if (!r && fsync(e->state_fd) == -1)
		r = -errno;
	return r;
}

/*
 * A worker took over from one that died in a cutover that had switched: the
 * guest has been using the destination since, so the cutover is finished,
 * not rolled back.  The record is the next one from then on; the nodes the
 * dead worker had not switched yet are switched by engine_attach.
 */
static int roll_forward(struct engine *e, struct job *j, int *root_fd, char *err, size_t errlen)
{
	int r = finish_commit(e, j);

	if (r) {
		/* as after a failed commit: the guest runs on the destination,
		 * every flush fails until a restart of the daemon rolls back */
		log_warnx("cannot make the switch to '%s' durable: %s; flushes fail until relocfs "
			  "restarts (and rolls back to the source)", j->dest, strerror(-r));
		e->record_frozen = true;
		e->commit.result = -EIO;
	} else {
		log_info("finished the cutover to '%s' that the last worker had switched", j->dest);
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
	load_overrides(e, *root_fd);
	e->finish_switch = j;
	return 0;
}

/* A worker takes over from another: the guest saw nothing, so nothing it saw
 * may go back (see engine.h). */
static int recover_warm(struct engine *e, struct job *j, int *root_fd, char *err, size_t errlen)
{
	struct engine_region *reg = e->region;
	bool ours = reg->cutover_job == j->id;

	if (cutover_interrupted(e)) {
		if (ours && reg->switched)
			return roll_forward(e, j, root_fd, err, errlen);
		log_info("the cutover to '%s' the last worker had under way had not switched: "
			 "cancelled, the migration goes on", j->dest);
		drop_next_state(e);
	}
	for (size_t i = 0; i < j->n; i++) {
		struct delta_status st;

		delta_status(j->files[i].d, &st);
		if (st.phase == DELTA_ABORTING)
			e->bg_abort = j;
	}
	if (j->dest_lost && !e->bg_abort && e->ms.handoff != MS_HANDOFF_RECORDED) {
		log_warnx("the destination '%s' is lost: rolling the migration back to the source; "
			  "migrate again", j->dest);
		e->bg_abort = j;
	}
	log_info("%s the migration of %zu file(s) to '%s'", e->bg_abort ? "aborting" : "resuming",
		 j->n, j->dest);
	e->job = j;
	return 0;
}

int recover_job(struct engine *e, int *root_fd, char *err, size_t errlen)
{
	struct job *j;
	int r = load_job(e, *root_fd, &j, err, errlen);

	if (r) {
		job_free(e, j, false);
		return r;
	}
	if (e->warm)
		return recover_warm(e, j, root_fd, err, errlen);
	if (!must_roll_back(e, j)) {
		log_info("resuming the migration of %zu file(s) to '%s'", j->n, j->dest);
		e->job = j;
		return 0;
	}
	/* finish the abort before serving anything */
	log_info("finishing the abort of the migration to '%s'", j->dest);
	r = abort_job(e, j, err, errlen);
	if (r)
		return r;	/* j stays as it is: the daemon does not start */
	drop_next_state(e);
	if (j->dest_lost)
		log_warnx("what the migration put in '%s' is left there: remove it when it is back",
			  j->dest);
	else
		remove_dest(j);
	job_free(e, j, true);
	run_cleanup(e);
	return 0;
}
