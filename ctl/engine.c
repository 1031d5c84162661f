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
#include <unistd.h>

#include "common/clock.h"
#include "common/log.h"
#include "common/util.h"
#include "copier/budget.h"
#include "ctl/engine.h"
#include "ctl/engine_i.h"
#include "fs/fs.h"

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

int engine_new(struct engine **out, int source_fd, const char *source_path,
	       const char *mountpoint, int *root_fd, char *err, size_t errlen)
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
	return recover_jobs(e, *root_fd, err, errlen);
}

void engine_set_max_jobs(struct engine *e, unsigned n)
{
	pthread_mutex_lock(&e->lock);
	e->ms.parallel = n;
	pthread_mutex_unlock(&e->lock);
}

int engine_attach(struct engine *e, struct fs *fs, char *err, size_t errlen)
{
	e->fs = fs;
	register_policy(e);
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
	return 0;
}

int engine_start(struct engine *e)
{
	int r = 0;

	pthread_mutex_lock(&e->cmd_lock);
	for (size_t k = 0; k < e->njobs && !r; k++)
		if (e->jobs[k]->state == JOB_RUNNING)
			r = job_copier_start(e, e->jobs[k]);
	if (!r)
		r = governor_start(e);
	pthread_mutex_unlock(&e->cmd_lock);
	return r;
}

void engine_stop(struct engine *e)
{
	governor_stop(e);	/* also tells waiting commands to give up */
	pthread_mutex_lock(&e->cmd_lock);	/* no command half done */
	while (e->busy)
		pthread_cond_wait(&e->idle, &e->cmd_lock);
	for (size_t k = 0; k < e->njobs; k++)
		job_copier_stop(e, e->jobs[k]);
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
	for (size_t k = 0; k < e->nfin; k++) {
		for (size_t i = 0; i < e->fin[k].n; i++) {
			free(e->fin[k].files[i].path);
			free(e->fin[k].files[i].backend);
		}
		free(e->fin[k].files);
		free(e->fin[k].name);
		free(e->fin[k].dest);
	}
	free(e->fin);
	if (e->state_fd != -1)
		close(e->state_fd);
	if (e->root_fd != -1)
		close(e->root_fd);
	free(e->source);
	free(e->mountpoint);
	free(e->root);
	free(e);
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
		ret = cmd_limit(e, req, out);
		goto out;
	default:
		break;
	}
	pthread_mutex_lock(&e->cmd_lock);
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
