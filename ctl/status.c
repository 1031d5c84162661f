/*
 * status: what the engine tells relocctl: status (JSON, and the text made
 * from it) and verify, which compares each destination with the live view.
 */
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"
#include "copier/copier.h"
#include "ctl/engine_i.h"
#include "delta/delta.h"

char *status_json(struct engine *e)
{
	json_t *root = json_object(), *files = json_array();
	char *s;

	pthread_mutex_lock(&e->lock);
	json_object_set_new(root, "source", json_string(e->root));
	json_object_set_new(root, "mountpoint", json_string(e->mountpoint));
	json_object_set_new(root, "last_cutover_ms",
			    json_real((double)e->ms.last_cutover_us / 1000.0));
	json_object_set_new(root, "last_cutover_hooks", json_string(e->last_hooks));
	if (e->proc.status)
		e->proc.status(e->proc.arg, root);
	if (e->job) {
		job_dest_ok(e->job);
		json_object_set_new(root, "destination", json_string(e->job->dest));
		json_object_set_new(root, "delta_dir", json_string(e->job->delta_dir));
		json_object_set_new(root, "copy_rate", json_integer((json_int_t)copier_rate(e->job->copier)));
		for (size_t i = 0; i < e->job->n; i++) {
			struct job_file *f = &e->job->files[i];
			struct delta_status st;
			json_t *o = json_object();

			delta_status(f->d, &st);
			json_object_set_new(o, "path", json_string(f->relpath));
			json_object_set_new(o, "state", json_string(delta_phase_name(st.phase, st.dirty_bytes)));
			json_object_set_new(o, "bytes_total", json_integer((json_int_t)st.base_size));
			json_object_set_new(o, "bytes_copied", json_integer((json_int_t)st.copied));
			json_object_set_new(o, "delta_bytes", json_integer((json_int_t)st.delta_bytes));
			json_object_set_new(o, "unmerged_bytes", json_integer((json_int_t)st.dirty_bytes));
			json_object_set_new(o, "size", json_integer((json_int_t)st.size));
			json_object_set_new(o, "backend", json_string(e->root));
			json_object_set_new(o, "throttled", json_boolean(st.throttled));
			json_object_set_new(o, "throttle_events", json_integer((json_int_t)st.throttle_events));
			json_object_set_new(o, "wal_bytes", json_integer((json_int_t)st.wal_bytes));
			json_object_set_new(o, "wal_used", json_integer((json_int_t)st.wal_used));
			json_object_set_new(o, "wal_waits", json_integer((json_int_t)st.wal_waits));
			json_object_set_new(o, "wal_syncs", json_integer((json_int_t)st.wal_syncs));
			json_object_set_new(o, "checkpoints", json_integer((json_int_t)st.checkpoints));
			json_object_set_new(o, "error", st.error[0] ? json_string(st.error) : json_null());
			json_array_append_new(files, o);
		}
	} else {
		for (size_t i = 0; i < e->ndone; i++) {
			json_t *f = json_object();

			json_object_set_new(f, "path", json_string(e->done[i].path));
			json_object_set_new(f, "state", json_string(e->done[i].state));
			json_object_set_new(f, "bytes_total", json_integer((json_int_t)e->done[i].size));
			json_object_set_new(f, "bytes_copied", json_integer((json_int_t)e->done[i].size));
			json_object_set_new(f, "delta_bytes", json_integer(0));
			json_object_set_new(f, "backend", json_string(e->done[i].backend));
			json_object_set_new(f, "error", json_null());
			json_array_append_new(files, f);
		}
	}
	handoff_status(e, root, files);
	pthread_mutex_unlock(&e->lock);
	json_object_set_new(root, "files", files);
	s = json_dumps(root, JSON_COMPACT);
	json_decref(root);
	return s;
}

char *status_text(struct engine *e)
{
	char *json = status_json(e), *out = NULL;
	json_t *root = json ? json_loads(json, 0, NULL) : NULL, *f;
	size_t i;
	FILE *mf;
	size_t len;

	free(json);
	if (!root)
		return NULL;
	mf = open_memstream(&out, &len);
	fprintf(mf, "serving: %s\n", json_string_value(json_object_get(root, "source")));
	fprintf(mf, "last cutover: %.1f ms\n", json_real_value(json_object_get(root, "last_cutover_ms")));
	if (json_object_get(root, "destination"))
		fprintf(mf, "migrating to: %s\n",
			json_string_value(json_object_get(root, "destination")));
	if ((f = json_object_get(root, "handoff")))
		fprintf(mf, "hand-off: %s%s%s%s from %s to %s (%s)\n",
			json_string_value(json_object_get(f, "state")),
			*json_string_value(json_object_get(f, "vm")) ? ", vm '" : "",
			json_string_value(json_object_get(f, "vm")),
			*json_string_value(json_object_get(f, "vm")) ? "'" : "",
			json_string_value(json_object_get(root, "host")),
			json_string_value(json_object_get(f, "to")),
			json_string_value(json_object_get(f, "phase")));
	if (json_is_string(json_object_get(root, "handoff_note")))
		fprintf(mf, "last hand-off: %s\n",
			json_string_value(json_object_get(root, "handoff_note")));
	json_array_foreach(json_object_get(root, "files"), i, f) {
		json_t *err = json_object_get(f, "error");

		if (json_is_string(json_object_get(f, "to"))) {
			fprintf(mf, "  handed-off %s  to %s%s%s%s: read-only here\n",
				json_string_value(json_object_get(f, "path")),
				json_string_value(json_object_get(f, "to")),
				*json_string_value(json_object_get(f, "vm")) ? " (vm '" : "",
				json_string_value(json_object_get(f, "vm")),
				*json_string_value(json_object_get(f, "vm")) ? "')" : "");
			continue;
		}
		fprintf(mf, "  %-8s %s  %" JSON_INTEGER_FORMAT "/%" JSON_INTEGER_FORMAT
			" bytes copied, delta %" JSON_INTEGER_FORMAT "%s%s%s\n",
			json_string_value(json_object_get(f, "state")),
			json_string_value(json_object_get(f, "path")),
			json_integer_value(json_object_get(f, "bytes_copied")),
			json_integer_value(json_object_get(f, "bytes_total")),
			json_integer_value(json_object_get(f, "delta_bytes")),
			json_is_true(json_object_get(f, "throttled")) ? ", guest writes slowed" : "",
			json_is_string(err) ? ": " : "", json_is_string(err) ? json_string_value(err) : "");
	}
	fclose(mf);
	json_decref(root);
	return out;
}

void set_done_list(struct engine *e, struct job *j, const char *state, const char *backend)
{
	for (size_t i = 0; i < e->ndone; i++) {
		free(e->done[i].path);
		free(e->done[i].backend);
	}
	free(e->done);
	e->ndone = 0;
	e->done = calloc(j->n ? j->n : 1, sizeof(*e->done));
	if (!e->done)
		return;
	for (size_t i = 0; i < j->n; i++) {
		struct delta_status st;

		delta_status(j->files[i].d, &st);
		e->done[i].path = strdup(j->files[i].relpath);
		e->done[i].backend = strdup(backend);
		e->done[i].size = st.size;
		snprintf(e->done[i].state, sizeof(e->done[i].state), "%s", state);
	}
	e->ndone = j->n;
}

int cmd_verify(struct engine *e, char **out)
{
	struct job *j = e->job;
	size_t ok = 0;

	if (!j) {
		*out = xasprintf("nothing is migrating: verify compares a migration's destination "
				 "with the live view");
		return CTL_EFAIL;
	}
	for (size_t i = 0; i < j->n; i++) {
		struct delta_status st;
		uint64_t off = 0;
		int r;

		delta_status(j->files[i].d, &st);
		if (st.phase != DELTA_MERGING) {
			*out = xasprintf("'%s': the base copy is not finished (%s)", j->files[i].relpath,
					 delta_phase_name(st.phase, st.dirty_bytes));
			return CTL_EFAIL;
		}
		r = delta_verify(j->files[i].d, &off);
		if (r < 0) {
			*out = xasprintf("'%s': cannot verify: %s", j->files[i].relpath, strerror(-r));
			return CTL_EFAIL;
		}
		if (r > 0) {
			*out = xasprintf("'%s': the destination differs from the live view at byte %" PRIu64,
					 j->files[i].relpath, off);
			return CTL_EFAIL;
		}
		ok++;
	}
	*out = xasprintf("verified %zu file(s): the destination matches the live view (XXH3)", ok);
	return CTL_OK;
}
