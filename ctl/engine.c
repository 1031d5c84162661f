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

#include "common/log.h"
#include "common/util.h"
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
	if (e->ms.ncleanup)
		run_cleanup(e);
	load_overrides(e, *root_fd);
	if (!e->ms.job) {
		drop_next_state(e);	/* stale: no job to cut over */
		return handoff_load(e, err, errlen);
	}
	r = recover_job(e, root_fd, err, errlen);
	return r ? r : handoff_load(e, err, errlen);
}

/* Warm: the nodes a dead worker's cutover had not switched yet (it passed
 * its point of no return): the job's files, or every node of its tree,
 * still on the source are switched now. */
static void finish_switch(struct engine *e, struct job *j)
{
	struct switch_ctx sc = { .e = e, .job = j };

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
	job_free(e, j, true);
	pthread_mutex_lock(&e->lock);
	if (!e->record_frozen)
		run_cleanup(e);
	pthread_mutex_unlock(&e->lock);
}

int engine_attach(struct engine *e, struct fs *fs, char *err, size_t errlen)
{
	struct job *j = e->job;

	e->fs = fs;
	register_policy(e);
	if (e->finish_switch) {
		finish_switch(e, e->finish_switch);
		e->finish_switch = NULL;
	}
	for (size_t i = 0; j && i < j->n; i++) {
		struct rnode *n = node_for(e, j->files[i].relpath);

		if (!n) {
			snprintf(err, errlen, "cannot look up migrating file '%s'", j->files[i].relpath);
			return -ENOENT;
		}
		j->files[i].node = n;
		fs_node_route(n, j->files[i].d);
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

/* Warm: the abort a dead worker had under way goes on while the mount
 * serves (the files are served through their live view meanwhile). */
static void *abort_thread(void *arg)
{
	struct engine *e = arg;
	char *out = NULL;

	pthread_mutex_lock(&e->cmd_lock);
	if (e->job == e->bg_abort && cmd_abort(e, &out) != CTL_OK)
		log_warnx("%s", out ? out : "abort failed");
	else
		log_info("%s", out ? out : "aborted");
	e->bg_abort = NULL;
	pthread_mutex_unlock(&e->cmd_lock);
	free(out);
	return NULL;
}

int engine_start(struct engine *e)
{
	pthread_t t;
	int r = 0;

	if (e->warm)
		resume_paused(e);
	pthread_mutex_lock(&e->cmd_lock);
	/* a hand-off a dead daemon left is settled first; its thread starts
	 * the copier if the job goes on mirroring */
	if (e->job && !e->bg_abort && !handoff_resolve_start(e))
		r = job_copier_start(e, e->job);
	pthread_mutex_unlock(&e->cmd_lock);
	if (e->bg_abort) {
		if (pthread_create(&t, NULL, abort_thread, e) == 0)
			pthread_detach(t);
		else
			log_warnx("cannot go on with the abort: run relocctl abort");
	}
	return r;
}

void engine_stop(struct engine *e)
{
	pthread_mutex_lock(&e->cmd_lock);	/* no command half done */
	/* the stores need nothing more: each write is in the WAL before it
	 * returns, and the next worker (or mount) replays it */
	if (e->job)
		job_copier_stop(e, e->job);
	pthread_mutex_unlock(&e->cmd_lock);
	/* a cutover's clean-up finishes too: it needs the engine */
	pthread_mutex_lock(&e->lock);
	while (e->cleanups)
		pthread_cond_wait(&e->cleanups_done, &e->lock);
	pthread_mutex_unlock(&e->lock);
}

void engine_free(struct engine *e)
{
	if (!e)
		return;
	/* the job's stores hold nothing that is not on disk; a restart
	 * carries on from the record */
	job_free(e, e->job, false);
	ms_free(&e->ms);
	for (size_t i = 0; i < e->novr; i++)
		override_free(&e->ovr[i]);
	free(e->ovr);
	handoff_free(e);
	for (size_t i = 0; i < e->ndone; i++) {
		free(e->done[i].path);
		free(e->done[i].backend);
	}
	free(e->done);
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
 * the job goes on in the next worker (from its record and delta stores). */
static int cmd_restart(struct engine *e, const struct ctl_request *req, char **out)
{
	char err[512] = "";
	bool copying;

	if (!e->proc.restart) {
		*out = xasprintf("this daemon cannot hand over");
		return CTL_EFAIL;
	}
	/* the copier stops while the mount is still served: waiting for its
	 * chunk in flight would otherwise lengthen the hand-over's gap.  It
	 * starts again on a failure only if it ran: a recorded hand-off left
	 * unsettled stopped it, and its destination belongs to another host */
	copying = e->job && e->job->copier;
	if (copying)
		job_copier_stop(e, e->job);
	if (e->proc.restart(e->proc.arg, req->exec_path, err, sizeof(err))) {
		if (copying && job_copier_start(e, e->job))
			log_warnx("the copier did not start again: the job waits for a restart");
		*out = xasprintf("cannot restart: %s", err);
		return CTL_EFAIL;
	}
	e->handing_over = true;
	*out = xasprintf("handing the mount over to a new worker%s%s", req->exec_path ? " of " : "",
			 req->exec_path ? req->exec_path : "");
	return CTL_OK;
}

int engine_command(void *arg, const struct ctl_request *req, char **out)
{
	struct engine *e = arg;
	int ret;

	*out = NULL;
	switch (req->cmd) {
	case CTL_CMD_STATUS:
		*out = req->json ? status_json(e) : status_text(e);
		return *out ? CTL_OK : CTL_EFAIL;
	case CTL_CMD_WAIT:
		/* relocctl polls status itself; a plain wait answers at once */
		*out = status_json(e);
		return CTL_OK;
	default:
		break;
	}
	pthread_mutex_lock(&e->cmd_lock);
	if (e->handing_over) {
		/* the next worker runs it: this one no longer serves the mount */
		pthread_mutex_unlock(&e->cmd_lock);
		*out = xasprintf("relocfs is handing the mount over to a new worker: run the "
				 "command again");
		return CTL_EFAIL;
	}
	switch (req->cmd) {
	case CTL_CMD_MIGRATE:
		ret = cmd_migrate(e, req, out);
		break;
	case CTL_CMD_CUTOVER:
		ret = cmd_cutover(e, req, out);
		break;
	case CTL_CMD_ABORT:
		ret = handoff_abort_check(e, req->force, out);
		if (!ret)
			ret = cmd_abort(e, out);
		break;
	case CTL_CMD_VERIFY:
		ret = cmd_verify(e, out);
		break;
	case CTL_CMD_RESTART:
		ret = cmd_restart(e, req, out);
		break;
	default:
		*out = xasprintf("unknown command");
		ret = CTL_EUSAGE;
	}
	pthread_mutex_unlock(&e->cmd_lock);
	if (ret != CTL_OK && *out)
		log_info("command failed: %s", *out);
	return ret;
}
