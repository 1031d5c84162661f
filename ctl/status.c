/*
 * status: what the engine tells relocctl: status (JSON, and the text made
 * from it: one line per job with a progress bar, then its files) and
 * verify, which compares a job's destination with the live view.
 *
 * The JSON object: "source", "mountpoint", "last_cutover_ms",
 * "last_cutover_hooks", "last_cutover_handover", "budget" and "parallel" (the limits), "jobs" (the
 * queued, running and failed jobs, then the finished ones), and "files"
 * (the files of those jobs, each with its job's name; a file of a finished
 * job only while no later job has it; a running job's file also has its
 * write-ahead log's counters).  With exactly one job there are also
 * "destination", "delta_dir" and "copy_rate", as before jobs had names.  A
 * job being handed off to another host has "handoff" (and with exactly one
 * job, so has the root); the root has "host" (this one), "handoff_note"
 * (how the last hand-off went) and the files handed off, in "files" with
 * "to" and "vm" (handoff.c).  The process adds its own fields (the worker's
 * pid, hand-overs: engine_proc).
 */
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/util.h"
#include "copier/copier.h"
#include "ctl/engine_i.h"
#include "delta/delta.h"

static json_t *jint(uint64_t v)
{
	return json_integer((json_int_t)v);
}

static json_t *file_json(struct job *j, struct job_file *f, const char *backend)
{
	struct delta_status st;
	json_t *o = json_object();

	delta_status(f->d, &st);
	json_object_set_new(o, "path", json_string(f->relpath));
	json_object_set_new(o, "job", json_string(j->name));
	json_object_set_new(o, "state", json_string(delta_phase_name(st.phase, st.dirty_bytes)));
	json_object_set_new(o, "bytes_total", jint(st.base_size));
	json_object_set_new(o, "bytes_copied", jint(st.copied));
	json_object_set_new(o, "delta_bytes", jint(st.delta_bytes));
	json_object_set_new(o, "unmerged_bytes", jint(st.dirty_bytes));
	json_object_set_new(o, "size", jint(st.size));
	json_object_set_new(o, "backend", json_string(backend));
	json_object_set_new(o, "throttled", json_boolean(st.throttled));
	json_object_set_new(o, "throttle_events", jint(st.throttle_events));
	json_object_set_new(o, "wal_bytes", jint(st.wal_bytes));
	json_object_set_new(o, "wal_used", jint(st.wal_used));
	json_object_set_new(o, "wal_waits", jint(st.wal_waits));
	json_object_set_new(o, "wal_syncs", jint(st.wal_syncs));
	json_object_set_new(o, "checkpoints", jint(st.checkpoints));
	json_object_set_new(o, "error", st.error[0] ? json_string(st.error) : json_null());
	return o;
}

static json_t *queued_file_json(struct job *j, const char *path, const char *backend)
{
	json_t *o = json_object();

	json_object_set_new(o, "path", json_string(path));
	json_object_set_new(o, "job", json_string(j->name));
	/* a job that could not start: its files never left the source */
	json_object_set_new(o, "state", json_string(j->state == JOB_QUEUED ? "queued" : "idle"));
	json_object_set_new(o, "bytes_total", jint(0));
	json_object_set_new(o, "bytes_copied", jint(0));
	json_object_set_new(o, "delta_bytes", jint(0));
	json_object_set_new(o, "backend", json_string(backend));
	json_object_set_new(o, "error", json_null());
	return o;
}

/* One active job, and its files into files.  e->lock held. */
static json_t *job_json(struct engine *e, struct job *j, json_t *files, size_t pos)
{
	const struct job_pace *p = &j->pace;
	uint64_t total = 0, copied = 0, unmerged = 0;
	bool throttled = false;
	json_t *o = json_object(), *error = j->state == JOB_FAILED ? json_string(j->error) : NULL;
	struct copier_progress cp;

	if (j->state == JOB_RUNNING)
		job_dest_ok(j);
	for (size_t i = 0; i < j->n; i++) {
		struct delta_status st;

		delta_status(j->files[i].d, &st);
		total += st.base_size;
		copied += st.copied;
		unmerged += st.dirty_bytes;
		throttled |= st.throttled;
		if (st.error[0] && !error)	/* the first file that failed says why */
			error = json_sprintf("'%s': %s", j->files[i].relpath, st.error);
		json_array_append_new(files, file_json(j, &j->files[i], e->root));
	}
	for (size_t i = 0; j->state != JOB_RUNNING && i < j->nwant; i++)
		json_array_append_new(files, queued_file_json(j, j->want[i], e->root));
	copier_progress(j->copier, &cp);
	json_object_set_new(o, "name", json_string(j->name));
	json_object_set_new(o, "state", json_string(job_state_name(j)));
	json_object_set_new(o, "dest", json_string(j->dest));
	json_object_set_new(o, "tree", json_boolean(j->tree));
	json_object_set_new(o, "files", jint(j->state == JOB_RUNNING ? j->n : j->nwant));
	json_object_set_new(o, "priority", jint(j->priority));
	json_object_set_new(o, "limit", jint(j->rate));
	json_object_set_new(o, "share", jint(p->share));
	json_object_set_new(o, "rate", jint(j->copier ? cp.rate : 0));
	json_object_set_new(o, "deadline_s",
			    j->deadline_ms ? json_integer((json_int_t)(j->deadline_ms / 1000) -
							  (json_int_t)time(NULL))
					   : json_null());
	json_object_set_new(o, "deadline_rate", j->deadline_ms ? jint(p->deadline_rate) : json_null());
	json_object_set_new(o, "deadline_needed", j->deadline_ms ? jint(p->needed) : json_null());
	json_object_set_new(o, "deadline_ok", j->deadline_ms ? json_boolean(!p->late) : json_null());
	json_object_set_new(o, "eta_s", j->state == JOB_RUNNING && p->eta_s >= 0
					       ? json_integer(p->eta_s) : json_null());
	json_object_set_new(o, "bytes_total", jint(j->state == JOB_RUNNING ? total : j->planned));
	json_object_set_new(o, "bytes_copied", jint(copied));
	json_object_set_new(o, "bytes_merged", jint(p->merged_before + cp.merged));
	json_object_set_new(o, "bytes_moved", jint(p->moved_before + cp.copied + cp.merged));
	json_object_set_new(o, "unmerged_bytes", jint(unmerged));
	json_object_set_new(o, "dirty_rate", jint(p->dirty_rate));
	json_object_set_new(o, "throttled", json_boolean(throttled));
	json_object_set_new(o, "delta_dir", json_string(j->delta_dir));
	if (j->state == JOB_QUEUED)
		json_object_set_new(o, "position", jint(pos));
	if (j->handoff.state != MS_HANDOFF_NONE)
		json_object_set_new(o, "handoff", handoff_job_json(e, j));
	json_object_set_new(o, "error", error ? error : json_null());
	return o;
}

/* Is path a file of an active job, or of a finished one after k? */
static bool path_taken(struct engine *e, const char *path, size_t k)
{
	for (size_t i = 0; i < e->njobs; i++) {
		struct job *j = e->jobs[i];

		for (size_t f = 0; f < j->n; f++)
			if (!strcmp(j->files[f].relpath, path))
				return true;
		for (size_t f = 0; j->state != JOB_RUNNING && f < j->nwant; f++)
			if (!strcmp(j->want[f], path))
				return true;
	}
	for (size_t i = k + 1; i < e->nfin; i++)
		for (size_t f = 0; f < e->fin[i].n; f++)
			if (!strcmp(e->fin[i].files[f].path, path))
				return true;
	return false;
}

static json_t *finished_json(struct engine *e, size_t k, json_t *files)
{
	const struct finished_job *fj = &e->fin[k];
	json_t *o = json_object();

	json_object_set_new(o, "name", json_string(fj->name));
	json_object_set_new(o, "state", json_string(fj->state));
	json_object_set_new(o, "dest", json_string(fj->dest));
	json_object_set_new(o, "files", jint(fj->n));
	json_object_set_new(o, "bytes_total", jint(fj->bytes));
	json_object_set_new(o, "bytes_copied", jint(fj->bytes));
	json_object_set_new(o, "rate", jint(0));
	json_object_set_new(o, "eta_s", json_null());
	json_object_set_new(o, "deadline_s", json_null());
	json_object_set_new(o, "throttled", json_false());
	json_object_set_new(o, "error", json_null());
	for (size_t i = 0; i < fj->n; i++) {
		json_t *f;

		if (path_taken(e, fj->files[i].path, k))
			continue;
		f = json_object();
		json_object_set_new(f, "path", json_string(fj->files[i].path));
		json_object_set_new(f, "job", json_string(fj->name));
		json_object_set_new(f, "state", json_string(fj->files[i].state));
		json_object_set_new(f, "bytes_total", jint(fj->files[i].size));
		json_object_set_new(f, "bytes_copied", jint(fj->files[i].size));
		json_object_set_new(f, "delta_bytes", json_integer(0));
		json_object_set_new(f, "backend", json_string(fj->files[i].backend));
		json_object_set_new(f, "error", json_null());
		json_array_append_new(files, f);
	}
	return o;
}

char *status_json(struct engine *e, const char *name, char **err)
{
	json_t *root = json_object(), *files = json_array(), *jobs = json_array();
	size_t queued = 0, shown = 0;
	struct job *only = NULL;
	char *s;

	pthread_mutex_lock(&e->lock);
	if (name && !job_find(e, name)) {
		bool known = false;

		for (size_t k = 0; k < e->nfin; k++)
			known |= !strcmp(e->fin[k].name, name);
		if (!known) {
			pthread_mutex_unlock(&e->lock);
			json_decref(root);
			json_decref(files);
			json_decref(jobs);
			*err = xasprintf("no job '%s' (see status)", name);
			return NULL;
		}
	}
	json_object_set_new(root, "source", json_string(e->root));
	json_object_set_new(root, "mountpoint", json_string(e->mountpoint));
	json_object_set_new(root, "last_cutover_ms",
			    json_real((double)e->ms.last_cutover_us / 1000.0));
	json_object_set_new(root, "last_cutover_hooks", json_string(e->last_hooks));
	json_object_set_new(root, "last_cutover_handover", json_string(e->last_handover));
	json_object_set_new(root, "budget", jint(e->ms.budget));
	json_object_set_new(root, "parallel", jint(e->ms.parallel));
	for (size_t k = 0; k < e->njobs; k++) {
		struct job *j = e->jobs[k];
		size_t pos = j->state == JOB_QUEUED ? ++queued : 0;

		if (name && strcmp(j->name, name))
			continue;
		json_array_append_new(jobs, job_json(e, j, files, pos));
		only = j;
		shown++;
	}
	if (shown == 1 && only->state == JOB_RUNNING) {
		json_object_set_new(root, "destination", json_string(only->dest));
		json_object_set_new(root, "delta_dir", json_string(only->delta_dir));
		json_object_set_new(root, "copy_rate", jint(copier_rate(only->copier)));
		if (only->handoff.state != MS_HANDOFF_NONE)
			json_object_set_new(root, "handoff", handoff_job_json(e, only));
	}
	for (size_t k = 0; k < e->nfin; k++) {
		if (name && strcmp(e->fin[k].name, name))
			continue;
		json_array_append_new(jobs, finished_json(e, k, files));
	}
	handoff_status(e, root, files, !name);
	pthread_mutex_unlock(&e->lock);
	/* the process's own fields (worker, hand-overs), not under e->lock:
	 * they ask the FUSE layer, whose callbacks take e->lock */
	if (e->proc.status)
		e->proc.status(e->proc.arg, root);
	json_object_set_new(root, "jobs", jobs);
	json_object_set_new(root, "files", files);
	s = json_dumps(root, JSON_COMPACT);
	json_decref(root);
	return s;
}

/* "1h05m", "4m10s", "12s"; a time past is "0s" */
static void fmt_secs(int64_t s, char *buf, size_t len)
{
	if (s >= 3600)
		snprintf(buf, len, "%" PRId64 "h%02" PRId64 "m", s / 3600, s / 60 % 60);
	else if (s >= 60)
		snprintf(buf, len, "%" PRId64 "m%02" PRId64 "s", s / 60, s % 60);
	else
		snprintf(buf, len, "%" PRId64 "s", s < 0 ? 0 : s);
}

static uint64_t uget(json_t *o, const char *k)
{
	return (uint64_t)json_integer_value(json_object_get(o, k));
}

static const char *sget(json_t *o, const char *k)
{
	const char *s = json_string_value(json_object_get(o, k));

	return s ? s : "";
}

/* A job's hand-off to another host, under its line. */
static void handoff_line(FILE *mf, json_t *h, const char *host)
{
	if (!json_is_object(h))
		return;
	fprintf(mf, "  hand-off %s%s%s%s from %s to %s (%s)\n", sget(h, "state"),
		*sget(h, "vm") ? ", vm '" : "", sget(h, "vm"), *sget(h, "vm") ? "'" : "", host,
		sget(h, "to"), sget(h, "phase"));
}

/* One line for a job: state, progress bar, bytes, rate, ETA, deadline,
 * and its hand-off. */
static void job_line(FILE *mf, json_t *jo, const char *host)
{
	const char *name = json_string_value(json_object_get(jo, "name"));
	const char *state = json_string_value(json_object_get(jo, "state"));
	json_t *err = json_object_get(jo, "error"), *eta = json_object_get(jo, "eta_s");
	json_t *dl = json_object_get(jo, "deadline_s");
	uint64_t total = uget(jo, "bytes_total"), copied = uget(jo, "bytes_copied");
	int width = 24, fill = total ? (int)((double)width * (double)copied / (double)total) : 0;
	char bar[32], a[32], b[32], r[32], t[32];

	if (fill > width)
		fill = width;
	if (!strcmp(state, "done") || !strcmp(state, "ready") || !strcmp(state, "handed-off"))
		fill = width;
	memset(bar, '#', (size_t)fill);
	memset(bar + fill, '.', (size_t)(width - fill));
	bar[width] = '\0';
	ctl_fmt_bytes((double)copied, a, sizeof(a));
	ctl_fmt_bytes((double)total, b, sizeof(b));
	ctl_fmt_bytes((double)uget(jo, "rate"), r, sizeof(r));
	fprintf(mf, "job %-12s %-8s [%s] %3d%%  %s / %s", name && *name ? name : "(unnamed)",
		state, bar, total ? (int)(100.0 * (double)(copied < total ? copied : total) /
					  (double)total) : 100, a, b);
	if (!strcmp(state, "copying") || !strcmp(state, "merging") || !strcmp(state, "ready")) {
		fprintf(mf, "  %s/s", r);
		if (json_is_integer(eta)) {
			fmt_secs(json_integer_value(eta), t, sizeof(t));
			fprintf(mf, "  eta %s", t);
		}
	}
	if (!strcmp(state, "queued"))
		fprintf(mf, "  #%" PRIu64 " in line", uget(jo, "position"));
	fprintf(mf, "  to %s", json_string_value(json_object_get(jo, "dest")));
	if (uget(jo, "limit")) {
		ctl_fmt_bytes((double)uget(jo, "limit"), t, sizeof(t));
		fprintf(mf, "  (limit %s/s)", t);
	}
	if (json_is_integer(dl) && strcmp(state, "done") && strcmp(state, "aborted") &&
	    strcmp(state, "handed-off")) {
		fmt_secs(json_integer_value(dl), t, sizeof(t));
		ctl_fmt_bytes((double)uget(jo, "deadline_rate"), r, sizeof(r));
		fprintf(mf, "  deadline in %s", t);
		if (uget(jo, "deadline_rate"))
			fprintf(mf, " (at %s/s)", r);
		if (json_is_false(json_object_get(jo, "deadline_ok"))) {
			ctl_fmt_bytes((double)uget(jo, "deadline_needed"), r, sizeof(r));
			if (uget(jo, "deadline_needed"))
				fprintf(mf, ": CANNOT BE MET, it needs %s/s", r);
			else
				fprintf(mf, ": MISSED");
		}
	}
	if (json_is_true(json_object_get(jo, "throttled")))
		fprintf(mf, "  guest writes slowed");
	if (json_is_string(err))
		fprintf(mf, ": %s", json_string_value(err));
	fputc('\n', mf);
	handoff_line(mf, json_object_get(jo, "handoff"), host);
}

char *status_text(struct engine *e, const char *name, char **errout)
{
	char *json = status_json(e, name, errout), *out = NULL, b[32];
	json_t *root = json ? json_loads(json, 0, NULL) : NULL, *f, *jo;
	const char *hand;
	size_t i, k, len;
	FILE *mf;

	free(json);
	if (!root)
		return NULL;
	mf = open_memstream(&out, &len);
	fprintf(mf, "serving: %s\n", json_string_value(json_object_get(root, "source")));
	ctl_fmt_bytes((double)uget(root, "budget"), b, sizeof(b));
	fprintf(mf, "budget: %s%s; %s", uget(root, "budget") ? b : "none",
		uget(root, "budget") ? "/s for every job's copies and merges" : "",
		uget(root, "parallel") ? "" : "no limit on the jobs copying at once\n");
	if (uget(root, "parallel"))
		fprintf(mf, "at most %" PRIu64 " job(s) copy at once\n", uget(root, "parallel"));
	fprintf(mf, "last cutover: %.1f ms\n", json_real_value(json_object_get(root, "last_cutover_ms")));
	hand = json_string_value(json_object_get(root, "last_cutover_handover"));
	if (hand && hand[0])
		fprintf(mf, "hand-over to QEMU's rbd driver: %s\n", hand);
	if (json_object_get(root, "destination"))
		fprintf(mf, "migrating to: %s\n",
			json_string_value(json_object_get(root, "destination")));
	if (*sget(root, "handoff_note"))
		fprintf(mf, "last hand-off: %s\n", sget(root, "handoff_note"));
	json_array_foreach(json_object_get(root, "jobs"), k, jo) {
		const char *jn = json_string_value(json_object_get(jo, "name"));

		job_line(mf, jo, sget(root, "host"));
		json_array_foreach(json_object_get(root, "files"), i, f) {
			json_t *err = json_object_get(f, "error");

			if (json_is_string(json_object_get(f, "to")) || strcmp(sget(f, "job"), jn))
				continue;
			fprintf(mf, "  %-8s %s  %" JSON_INTEGER_FORMAT "/%" JSON_INTEGER_FORMAT
				" bytes copied, delta %" JSON_INTEGER_FORMAT "%s%s%s\n",
				json_string_value(json_object_get(f, "state")),
				json_string_value(json_object_get(f, "path")),
				json_integer_value(json_object_get(f, "bytes_copied")),
				json_integer_value(json_object_get(f, "bytes_total")),
				json_integer_value(json_object_get(f, "delta_bytes")),
				json_is_true(json_object_get(f, "throttled")) ? ", guest writes slowed" : "",
				json_is_string(err) ? ": " : "",
				json_is_string(err) ? json_string_value(err) : "");
		}
	}
	json_array_foreach(json_object_get(root, "files"), i, f) {
		if (!json_is_string(json_object_get(f, "to")))
			continue;
		fprintf(mf, "handed-off %s  to %s%s%s%s: read-only here\n", sget(f, "path"),
			sget(f, "to"), *sget(f, "vm") ? " (vm '" : "", sget(f, "vm"),
			*sget(f, "vm") ? "')" : "");
	}
	fclose(mf);
	json_decref(root);
	return out;
}

void finished_job_free(struct finished_job *f)
{
	for (size_t i = 0; i < f->n; i++) {
		free(f->files[i].path);
		free(f->files[i].backend);
	}
	free(f->files);
	free(f->name);
	free(f->dest);
}

void finish_job(struct engine *e, struct job *j, const char *state, const char *file_state,
		const char *backend)
{
	struct finished_job fj = { 0 };
	size_t n = j->state == JOB_RUNNING ? j->n : j->nwant;

	fj.name = strdup(j->name);
	fj.dest = strdup(j->dest);
	fj.files = calloc(n ? n : 1, sizeof(*fj.files));
	snprintf(fj.state, sizeof(fj.state), "%s", state);
	if (!fj.name || !fj.dest || !fj.files)
		goto fail;
	for (size_t i = 0; i < n; i++) {
		struct done_file *df = &fj.files[i];

		if (j->state == JOB_RUNNING) {
			struct delta_status st;

			delta_status(j->files[i].d, &st);
			df->size = st.size;
			df->path = strdup(j->files[i].relpath);
		} else {
			df->path = strdup(j->want[i]);
		}
		df->backend = strdup(backend);
		snprintf(df->state, sizeof(df->state), "%s", file_state);
		fj.bytes += df->size;
		fj.n++;
		if (!df->path || !df->backend)
			goto fail;
	}
	/* a job of the same name, or more than FINISHED_MAX, make room */
	for (size_t k = 0; k < e->nfin; k++) {
		if (strcmp(e->fin[k].name, j->name) && e->nfin < FINISHED_MAX)
			continue;
		finished_job_free(&e->fin[k]);
		memmove(&e->fin[k], &e->fin[k + 1], (e->nfin - k - 1) * sizeof(*e->fin));
		e->nfin--;
		break;
	}
	{
		struct finished_job *nf = realloc(e->fin, (e->nfin + 1) * sizeof(*nf));

		if (!nf)
			goto fail;
		e->fin = nf;
		e->fin[e->nfin++] = fj;
	}
	return;
fail:
	finished_job_free(&fj);
}

int cmd_verify(struct engine *e, const struct ctl_request *req, char **out)
{
	struct job *j;
	size_t ok = 0;
	char lb[96];
	int ret = job_resolve(e, req->job, &j, out);

	if (ret == CTL_EFAIL && !req->job && !strcmp(*out, "nothing is migrating")) {
		free(*out);
		*out = xasprintf("nothing is migrating: verify compares a migration's destination "
				 "with the live view");
	}
	if (ret)
		return ret;
	job_label(j, lb, sizeof(lb));
	if (j->state != JOB_RUNNING) {
		*out = xasprintf("%s has not started: nothing to verify", lb);
		return CTL_EFAIL;
	}
	if (j->busy) {
		*out = xasprintf("%s is busy: a cutover or verify of it is in progress", lb);
		return CTL_EFAIL;
	}
	job_busy_begin(e, j);
	for (size_t i = 0; i < j->n && !*out; i++) {
		struct delta_status st;
		uint64_t off = 0;
		int r;

		delta_status(j->files[i].d, &st);
		if (st.phase != DELTA_MERGING) {
			*out = xasprintf("'%s': the base copy is not finished (%s)", j->files[i].relpath,
					 delta_phase_name(st.phase, st.dirty_bytes));
			break;
		}
		r = delta_verify(j->files[i].d, &off);
		if (r < 0)
			*out = xasprintf("'%s': cannot verify: %s", j->files[i].relpath, strerror(-r));
		else if (r > 0)
			*out = xasprintf("'%s': the destination differs from the live view at byte %" PRIu64,
					 j->files[i].relpath, off);
		else
			ok++;
	}
	job_busy_end(e, j);
	if (*out)
		return CTL_EFAIL;
	*out = xasprintf("%s%sverified %zu file(s): the destination matches the live view (XXH3)",
			 j->name[0] ? lb : "", j->name[0] ? ": " : "", ok);
	return CTL_OK;
}
