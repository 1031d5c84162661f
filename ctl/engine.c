/*
 * engine: the job engine's entry points (see engine.h): its life cycle
 * around the mount, what it registers with the FUSE layer, and the dispatch
 * of control commands to migrate.c, cutover.c, abort.c and status.c.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/log.h"
#include "common/util.h"
#include "copier/budget.h"
#include "ctl/engine.h"
#include "ctl/engine_i.h"
#include "delta/delta.h"
#include "fs/fs.h"
#include "vmhooks/vmhook.h"

/* What the FUSE layer asks of the engine: the namespace (namespace.c) and
 * the cutover's flush barrier (switch.c). */
static void register_policy(struct engine *e)
{
	struct fs_policy p = {
		.arg = e,
		.name_check = ns_name_check,
		.redirect = ns_redirect,
		.redirect_removed = ns_redirect_removed,
		.flush_barrier = commit_barrier,
	};

	fs_set_policy(e->fs, &p);
}

size_t engine_region_size(void)
{
	return sizeof(struct engine_region);
}

void engine_set_proc(struct engine *e, const struct engine_proc *proc)
{
	e->proc = *proc;
}

int engine_new(struct engine **out, int source_fd, const char *source_path,
	       const char *mountpoint, int *root_fd, void *region, bool warm, char *err,
	       size_t errlen)
{
	struct engine *e = calloc(1, sizeof(*e));
	int r;

	*out = e;
	*root_fd = -1;
	if (!e) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	pthread_mutex_init(&e->cmd_lock, NULL);
	pthread_mutex_init(&e->lock, NULL);
	pthread_mutex_init(&e->commit.lock, NULL);
	pthread_cond_init(&e->commit.done, NULL);
	pthread_cond_init(&e->cleanups_done, NULL);
	pthread_cond_init(&e->idle, NULL);
	{
		pthread_condattr_t ca;

		pthread_condattr_init(&ca);
		pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
		pthread_cond_init(&e->wake, &ca);
		pthread_condattr_destroy(&ca);
	}
	e->state_fd = e->root_fd = -1;
	e->region = region;
	e->warm = warm;
	if (e->region->magic != ENGINE_REGION_MAGIC) {
		memset(e->region, 0, sizeof(*e->region));
		e->region->magic = ENGINE_REGION_MAGIC;
	}
	e->source_fd = source_fd;
	e->source = strdup(source_path);
	e->mountpoint = strdup(mountpoint);
	if (!e->source || !e->mountpoint) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	r = load_record(e, root_fd, err, errlen);
	if (r)
		return r;
	if (budget_new(&e->budget, e->ms.budget, now_us())) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	if (e->ms.ncleanup)
		run_cleanup(e);
	load_overrides(e, *root_fd);
	r = recover_jobs(e, root_fd, err, errlen);
	return r ? r : handoff_load(e, err, errlen);
}

int engine_set_max_jobs(struct engine *e, unsigned n, char *err, size_t errlen)
{
	int r = 0;

	pthread_mutex_lock(&e->lock);
	if (e->ms.parallel != n) {
		e->ms.parallel = n;
		r = state_dir(e);
		if (r >= 0)
			r = save_record(e);
		if (r < 0)
			snprintf(err, errlen, "max_jobs=%u applies, but the state record in '%s' "
				 "could not be written (a new worker would forget it): %s", n,
				 e->source, strerror(-r));
	}
	pthread_mutex_unlock(&e->lock);
	return r < 0 ? r : 0;
}

/* Warm: the nodes a dead worker's cutover had not switched yet (it passed
 * its point of no return): the job's files, or every node of its tree,
 * still on the source are switched now. */
static void finish_switch(struct engine *e, struct job *j)
{
	struct switch_ctx sc = { .e = e, .job = j };

	if (j->rbd)
		goto done;	/* the overrides lead to the images (engine_attach) */
	if (!j->tree) {
		/* the files, by their source keys */
		for (size_t i = 0; i < j->n; i++) {
			struct stat st;

			if (fstat(delta_source_fd(j->files[i].d), &st) == 0)
				job_add_entry(j, &st, j->files[i].relpath);
		}
	}
	fs_foreach_node(e->fs, switch_tree_node, &sc);
	if (sc.errors)
		log_warnx("%d node(s) could not be switched to '%s'", sc.errors, j->dest);
done:
	pthread_mutex_lock(&e->lock);
	if (j->handoff.state == MS_HANDOFF_RECORDED)
		finish_job(e, j, "handed-off", "handed-off", j->dest);
	else
		finish_job(e, j, "done", "done", j->dest);
	pthread_mutex_unlock(&e->lock);
	/* a switch that is not durable keeps its delta stores: the next
	 * restart rolls back to the source with them */
	job_free(e, j, !e->record_frozen);
	pthread_mutex_lock(&e->lock);
	if (!e->record_frozen)
		run_cleanup(e);
	pthread_mutex_unlock(&e->lock);
}

int engine_attach(struct engine *e, struct fs *fs, char *err, size_t errlen)
{
	e->fs = fs;
	register_policy(e);
	if (e->finish_switch) {
		finish_switch(e, e->finish_switch);
		e->finish_switch = NULL;
	}
	rbd_overrides_attach(e);
	for (size_t k = 0; k < e->njobs; k++) {
		struct job *j = e->jobs[k];

		for (size_t i = 0; j->state == JOB_RUNNING && i < j->n; i++) {
			struct rnode *n = node_for(e, j->files[i].relpath);

			if (!n) {
				snprintf(err, errlen, "cannot look up migrating file '%s'",
					 j->files[i].relpath);
				return -ENOENT;
			}
			j->files[i].node = n;
			fs_node_route(n, j->files[i].d);
		}
	}
	handoff_attach(e);
	return 0;
}

/* Warm: resume the VMs a dead worker's cutover had paused, in reverse. */
static void resume_paused(struct engine *e)
{
	struct engine_region *reg = e->region;
	uint64_t n = reg->npaused < CTL_HOOKS_MAX ? reg->npaused : CTL_HOOKS_MAX;

	while (n-- > 0) {
		struct vmhook *h;
		char err[512];

		if (vmhook_new(reg->paused[n], &h, err, sizeof(err))) {
			log_warnx("cannot resume the VM a cutover paused with '%s': %s", reg->paused[n],
				  err);
			continue;
		}
		vmhook_adopt_paused(h, e->mountpoint, NULL, 0);
		if (vmhook_resume(h, 30000, err, sizeof(err)))
			log_warnx("cannot resume the VM a cutover paused with '%s': %s", reg->paused[n],
				  err);
		else
			log_info("resumed the VM the last worker's cutover paused with '%s'",
				 reg->paused[n]);
		vmhook_free(h);
	}
	__atomic_store_n(&reg->npaused, 0, __ATOMIC_SEQ_CST);
	__atomic_store_n(&reg->switched, 0, __ATOMIC_SEQ_CST);
	__atomic_store_n(&reg->cutover_job, 0, __ATOMIC_SEQ_CST);
}

/* Start the copiers of the running jobs but those aborted in the
 * background, and those whose hand-off to another host a dead daemon left
 * unsettled: a thread settles each, and starts its copier if the job goes
 * on mirroring (cmd_lock held). */
static int start_copiers(struct engine *e)
{
	int r = 0;

	for (size_t k = 0; k < e->njobs && !r; k++) {
		struct job *j = e->jobs[k];

		if (j->state != JOB_RUNNING || j->bg_abort)
			continue;
		if (j->handoff.state != MS_HANDOFF_NONE) {
			handoff_resolve_start(e, j);
			continue;
		}
		r = job_copier_start(e, j);
	}
	return r;
}

/* The next running job to abort in the background, or NULL: none left, or
 * relocfs stops.  *busy: one waits for a command at work on it.  cmd_lock
 * held. */
static struct job *next_bg_abort(struct engine *e, bool *busy)
{
	struct job *j = NULL;

	*busy = false;
	pthread_mutex_lock(&e->lock);
	for (size_t k = 0; !e->stopping && k < e->njobs && !j; k++) {
		if (!e->jobs[k]->bg_abort)
			continue;
		if (e->jobs[k]->busy)
			*busy = true;
		else
			j = e->jobs[k];
	}
	pthread_mutex_unlock(&e->lock);
	return j;
}

/* Warm: the aborts a dead worker had under way, and the roll-backs a start
 * must do, go on while the mount serves, one job after another (its files
 * are served through their live views meanwhile). */
static void *abort_thread(void *arg)
{
	struct engine *e = arg;
	struct job *j;
	bool busy;

	pthread_mutex_lock(&e->cmd_lock);
	for (;;) {
		char *out = NULL;

		j = next_bg_abort(e, &busy);
		if (!j && busy) {
			pthread_cond_wait(&e->idle, &e->cmd_lock);
			continue;
		}
		if (!j)
			break;
		if (abort_running(e, j, &out) != CTL_OK) {
			log_warnx("%s; run relocctl abort", out ? out : "abort failed");
			j->bg_abort = false;
		} else {
			log_info("%s", out ? out : "aborted");
		}
		free(out);
	}
	pthread_mutex_unlock(&e->cmd_lock);
	return NULL;
}

int engine_start(struct engine *e)
{
	bool bg = false;
	int r;

	if (e->warm)
		resume_paused(e);
	pthread_mutex_lock(&e->cmd_lock);
	r = start_copiers(e);
	if (!r)
		r = governor_start(e);
	for (size_t k = 0; k < e->njobs; k++)
		bg |= e->jobs[k]->bg_abort;
	if (bg) {
		if (pthread_create(&e->bg_thread, NULL, abort_thread, e) == 0)
			e->bg_running = true;
		else
			log_warnx("cannot go on with the aborts: run relocctl abort");
	}
	pthread_mutex_unlock(&e->cmd_lock);
	return r;
}

void engine_stop(struct engine *e)
{
	governor_stop(e);	/* also tells waiting commands to give up */
	if (e->bg_running) {
		/* it ends after the abort in progress */
		pthread_join(e->bg_thread, NULL);
		e->bg_running = false;
	}
	pthread_mutex_lock(&e->cmd_lock);	/* no command half done */
	while (e->busy)
		pthread_cond_wait(&e->idle, &e->cmd_lock);
	e->stopped = true;			/* and none to come */
	/* the stores need nothing more: each write is in the WAL before it
	 * returns, and the next worker (or mount) replays it */
	for (size_t k = 0; k < e->njobs; k++)
		job_copier_stop(e, e->jobs[k]);
	pthread_mutex_unlock(&e->cmd_lock);
	/* a cutover's clean-up finishes too: it needs the engine */
	pthread_mutex_lock(&e->lock);
	while (e->cleanups)
		pthread_cond_wait(&e->cleanups_done, &e->lock);
	pthread_mutex_unlock(&e->lock);
	/* last, the checkpointers: the next worker may open the stores as
	 * soon as this returns, before this process has exited */
	for (size_t k = 0; k < e->njobs; k++)
		for (size_t i = 0; i < e->jobs[k]->n; i++)
			if (e->jobs[k]->deltas[i])
				delta_quiesce(e->jobs[k]->deltas[i]);
}

void engine_free(struct engine *e)
{
	if (!e)
		return;
	/* the jobs' stores hold nothing that is not on disk; a restart
	 * carries on from the record */
	for (size_t k = 0; k < e->njobs; k++)
		job_free(e, e->jobs[k], false);
	free(e->jobs);
	budget_free(e->budget);
	ms_free(&e->ms);
	for (size_t i = 0; i < e->novr; i++)
		override_free(&e->ovr[i]);
	free(e->ovr);
	for (size_t k = 0; k < e->nfin; k++)
		finished_job_free(&e->fin[k]);
	free(e->fin);
	handoff_free(e);
	if (e->state_fd != -1)
		close(e->state_fd);
	if (e->root_fd != -1)
		close(e->root_fd);
	free(e->source);
	free(e->mountpoint);
	free(e->root);
	free(e);
}

/* relocctl restart: the process hands the mount over once the reply is out;
 * every job goes on in the next worker (from the record and the delta
 * stores). */
static int cmd_restart(struct engine *e, const struct ctl_request *req, char **out)
{
	char err[512] = "";
	struct job **stopped;
	size_t n = 0;

	if (!e->proc.restart) {
		*out = xasprintf("this daemon cannot hand over");
		return CTL_EFAIL;
	}
	if (handoff_in_progress(e, err, sizeof(err))) {
		*out = xasprintf("%s: restart once it has ended", err);
		return CTL_EFAIL;
	}
	stopped = calloc(e->njobs ? e->njobs : 1, sizeof(*stopped));
	if (!stopped) {
		*out = xasprintf("out of memory");
		return CTL_EFAIL;
	}
	/* the copiers stop while the mount is still served: waiting for their
	 * chunks in flight would otherwise lengthen the hand-over's gap */
	for (size_t k = 0; k < e->njobs; k++) {
		if (!e->jobs[k]->copier)
			continue;
		job_copier_stop(e, e->jobs[k]);
		stopped[n++] = e->jobs[k];
	}
	if (e->proc.restart(e->proc.arg, req->exec_path, err, sizeof(err))) {
		for (size_t k = 0; k < n; k++)
			if (job_copier_start(e, stopped[k]))
				log_warnx("a copier did not start again: its job waits for a restart");
		free(stopped);
		*out = xasprintf("cannot restart: %s", err);
		return CTL_EFAIL;
	}
	free(stopped);
	__atomic_store_n(&e->handing_over, true, __ATOMIC_SEQ_CST);
	*out = xasprintf("handing the mount over to a new worker%s%s", req->exec_path ? " of " : "",
			 req->exec_path ? req->exec_path : "");
	return CTL_OK;
}

/* During a hand-over the next worker runs the commands that change state. */
static int refuse_handing_over(char **out)
{
	*out = xasprintf("relocfs is handing the mount over to a new worker: run the command again");
	return CTL_EFAIL;
}

static int refuse_stopping(char **out)
{
	*out = xasprintf("relocfs is stopping");
	return CTL_EFAIL;
}

int engine_command(void *arg, const struct ctl_request *req, char **out)
{
	struct engine *e = arg;
	int ret;

	*out = NULL;
	switch (req->cmd) {
	case CTL_CMD_STATUS:
	case CTL_CMD_WAIT: {
		/* wait: relocctl polls status itself; a plain wait answers at once */
		char *err = NULL, *s;

		s = req->json || req->cmd == CTL_CMD_WAIT ? status_json(e, req->job, &err)
							 : status_text(e, req->job, &err);
		if (s) {
			free(err);
			*out = s;
			return CTL_OK;
		}
		*out = err ? err : xasprintf("out of memory");
		return CTL_EFAIL;
	}
	case CTL_CMD_LIMIT:
		/* without cmd_lock: a limit applies even while a cutover holds it */
		if ((req->job || req->has_limit || req->parallel >= 0) &&
		    __atomic_load_n(&e->handing_over, __ATOMIC_SEQ_CST)) {
			ret = refuse_handing_over(out);
			goto out;
		}
		ret = cmd_limit(e, req, out);
		goto out;
	default:
		break;
	}
	pthread_mutex_lock(&e->cmd_lock);
	if (e->handing_over || e->stopped) {
		/* the next worker runs it: this one no longer serves the mount */
		pthread_mutex_unlock(&e->cmd_lock);
		ret = e->handing_over ? refuse_handing_over(out) : refuse_stopping(out);
		goto out;
	}
	switch (req->cmd) {
	case CTL_CMD_MIGRATE:
		ret = cmd_migrate(e, req, out);
		break;
	case CTL_CMD_CUTOVER:
		ret = cmd_cutover(e, req, out);
		break;
	case CTL_CMD_ABORT:
		ret = cmd_abort(e, req, out);
		break;
	case CTL_CMD_VERIFY:
		ret = cmd_verify(e, req, out);
		break;
	case CTL_CMD_RESTART:
		ret = cmd_restart(e, req, out);
		break;
	default:
		*out = xasprintf("unknown command");
		ret = CTL_EUSAGE;
	}
	pthread_mutex_unlock(&e->cmd_lock);
out:
	if (ret != CTL_OK && *out)
		log_info("command failed: %s", *out);
	return ret;
}
