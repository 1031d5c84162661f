/*
 * handoff: the cutover that moves a VM to another host through QEMU's own
 * migration ("cutover --hook qmp-migrate:SOCKET@URI"), and the files it
 * leaves read-only here.
 *
 * The destination is a directory the other host serves its VM's disks from
 * (shared storage, or that host's disk reached over a network filesystem).
 * The copy was made, merged and verified like any migration's; what differs
 * is the end: the files do not switch to the destination on this host, they
 * go with the VM to the other host, which writes them from then on.
 *
 * The order, and the one commit point
 * -----------------------------------
 *   1. ready: little left to merge (as any cutover);
 *   2. the VM's disks on this mount must be exactly the job's files
 *      (query-block), so that no other VM's file becomes read-only here
 *      and no disk of this VM is left behind;
 *   3. record "handoff started" (SPEC, so that a restart can reach QEMU);
 *   4. the hook starts QEMU's migration and returns at "pre-switchover":
 *      the guest is stopped, QEMU drained and flushed its disks.  The
 *      copier went on merging while QEMU copied memory;
 *   5. hold the files, commit the delta records, merge every block, fix
 *      sizes and holes, fsync the destination files (and directory):
 *      the destination now holds the live view, durably;
 *   6. record "handoff recorded": THE COMMIT POINT.  From here the
 *      destination is the truth: nothing is merged into it again, and a
 *      restart never rolls back to the source on its own;
 *   7. release the hold and let QEMU continue ("migrate-continue"): it
 *      sends the device state and the destination QEMU runs the guest;
 *   8. QEMU says "completed": switch the files to the destination on this
 *      mount, sealed (read-only: opens for writing, writes, truncates fail
 *      with EROFS, on handles open before too), in one record that lists
 *      them as "sealed", and remove the delta store (and the source, with
 *      --remove-source) in the background.
 *
 * A hand-off is one job's (a VM and its disks, "migrate --job VM ... FILE...";
 * "cutover --job VM --hook qmp-migrate:..."): its state is in the job's
 * entry of the record ("handoff" after its files), and the other jobs go
 * on copying and cutting over meanwhile.  While QEMU copies memory (4) the
 * job is busy and cmd_lock is let go, as in a cutover's wait; from 5 on it
 * is held, as for any cutover's hold and next record.
 *
 * Failures: before 6, the migration is cancelled (QEMU restarts the guest
 * at the source), "handoff" leaves the record, and the job goes on
 * mirroring.  After 6, if QEMU says the migration failed, it has restarted
 * the guest at the source: the destination was never written by anyone
 * else (QEMU opens it only at the end, for the guest), so the job goes back
 * to mirroring.  If QEMU cannot say (it died, its socket is gone), the
 * files stay sealed (the guest may run at the destination) and status says
 * so, until "cutover --hook SPEC" asks again, or the operator settles it:
 * "cutover --force" (the VM runs there) or "abort --force" (it does not;
 * the destination is left as it is).
 *
 * What a crash (of the daemon, or of a worker) leaves, at each named point:
 *   handoff-before-record   (5 done, 6 not): the record says "started".  The
 *                           restart cancels QEMU's migration (the guest
 *                           runs on at the source) and the job mirrors on.
 *   handoff-recorded        (6 done, 7 not): the record says "recorded"; QEMU
 *                           waits at pre-switchover.  The restart seals the
 *                           files and continues the migration: the guest
 *                           runs at the destination, and 8 is done.
 *   handoff-continued       (7 done): the same restart finds the migration
 *                           completed (or failed: back to mirroring).
 * A restart that finds a "state.next" naming a job whose hand-off was
 * recorded (a crash in 8) does not roll that job back to the source: it
 * asks QEMU again and does 8 again; a worker that took over after 8's
 * switch finishes it as any cutover's (recover.c).  The daemon's own death takes the mount with it only when
 * the supervisor dies too; the hand-off's logic is the same either way.
 */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <pthread.h>
#include <stdarg.h>
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
#include "vmhooks/vmhook.h"

#define HANDOFF_PAUSE_S		600	/* QEMU's memory copy, unless --timeout */
#define HANDOFF_FINISH_MS	300000	/* device state and the destination's start */
#define HANDOFF_CANCEL_MS	60000

/* The migration URI of a qmp-migrate spec ("SOCKET@URI"), for messages. */
static const char *spec_uri(const char *spec)
{
	for (const char *p = strchr(spec, '@'); p; p = strchr(p + 1, '@')) {
		const char *c = p + 1;

		while (*c >= 'a' && *c <= 'z')
			c++;
		if (c > p + 1 && *c == ':')
			return p + 1;
	}
	return spec;
}

/* What the job's hand-off is doing now, for status. */
static void phase(struct engine *e, struct job *j, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void phase(struct engine *e, struct job *j, const char *fmt, ...)
{
	va_list ap;

	pthread_mutex_lock(&e->lock);
	va_start(ap, fmt);
	vsnprintf(j->handoff.phase, sizeof(j->handoff.phase), fmt, ap);
	va_end(ap);
	pthread_mutex_unlock(&e->lock);
}

/* How the mount's last hand-off went, for status: "job 'NAME': ..." */
static void note(struct engine *e, struct job *j, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void note(struct engine *e, struct job *j, const char *fmt, ...)
{
	char text[sizeof(e->handoff_note)];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	pthread_mutex_lock(&e->lock);
	if (!text[0])
		e->handoff_note[0] = '\0';
	else if (snprintf(e->handoff_note, sizeof(e->handoff_note), "%s%s%s%s",
			  j->name[0] ? "job '" : "", j->name, j->name[0] ? "': " : "", text) < 0)
		e->handoff_note[0] = '\0';	/* a long note is cut, never lost whole */
	pthread_mutex_unlock(&e->lock);
}

/* The job's hand-off in the record, durably (its entry, job_to_ms). */
static int save_handoff(struct engine *e, struct job *j, enum ms_handoff st, const char *spec,
			const char *vm, bool remove_source)
{
	char *s = spec ? strdup(spec) : NULL, *v = vm ? strdup(vm) : NULL;
	int r;

	pthread_mutex_lock(&e->lock);
	free(j->handoff.spec);
	free(j->handoff.vm);
	j->handoff.state = st;
	j->handoff.spec = s;
	j->handoff.vm = v;
	j->handoff.remove_source = remove_source;
	if (st == MS_HANDOFF_NONE)
		j->handoff.unknown = false;
	if (st != MS_HANDOFF_NONE && (!s || !v))
		r = -ENOMEM;
	else
		r = job_to_ms(&e->ms, j, false);
	if (!r)
		r = save_record(e);
	pthread_mutex_unlock(&e->lock);
	return r;
}

static void seal_job(struct engine *e, struct job *j, bool on)
{
	for (size_t i = 0; i < j->n; i++)
		if (j->files[i].node)
			fs_node_seal(e->fs, j->files[i].node, on);
}

/* 2: the VM's disks on this mount are exactly the job's files */
static int check_disks(struct cutover *c, struct vmhook *h, char **out)
{
	struct engine *e = c->e;
	struct job *j = c->j;
	size_t ml = strlen(e->mountpoint), n = 0, on_mount = 0;
	char **paths = NULL, err[512];
	bool *used = calloc(j->n ? j->n : 1, sizeof(bool));
	int ret = CTL_OK, r;

	if (!used) {
		*out = xasprintf("out of memory");
		return CTL_EFAIL;
	}
	r = vmhook_disks(h, &paths, &n, c->hook_ms, err, sizeof(err));
	if (r) {
		*out = xasprintf("cutover cancelled, nothing switched: cannot ask the VM for its "
				 "disks: %s", err);
		ret = CTL_EFAIL;
		goto out;
	}
	for (size_t i = 0; i < n && !ret; i++) {
		const char *rel;
		size_t k;

		if (strncmp(paths[i], e->mountpoint, ml) || paths[i][ml] != '/')
			continue;
		on_mount++;
		rel = paths[i] + ml + 1;
		for (k = 0; k < j->n; k++)
			if (!strcmp(j->files[k].relpath, rel))
				break;
		if (k == j->n) {
			*out = xasprintf("cutover cancelled, nothing switched: '%s', a disk of the VM, "
					 "is not migrating: the hand-off would leave it behind", rel);
			ret = CTL_EFAIL;
		} else {
			used[k] = true;
		}
	}
	for (size_t k = 0; k < j->n && !ret; k++) {
		if (!used[k]) {
			*out = xasprintf("cutover cancelled, nothing switched: '%s' is not a disk of the "
					 "VM: a hand-off moves only the VM's own files (migrate them "
					 "with 'migrate --to DEST FILE...')", j->files[k].relpath);
			ret = CTL_EFAIL;
		}
	}
	if (!ret && !on_mount) {
		*out = xasprintf("cutover cancelled, nothing switched: none of the VM's disks is on "
				 "'%s'", e->mountpoint);
		ret = CTL_EFAIL;
	}
out:
	for (size_t i = 0; i < n; i++)
		free(paths[i]);
	free(paths);
	free(used);
	return ret;
}

/* 5: the guest is stopped: the destination gets the live view, durably.
 * On failure the hold is released and the copier runs again. */
static int finish_copies(struct cutover *c, char **out)
{
	struct engine *e = c->e;
	struct job *j = c->j;
	int r = 0;

	job_copier_stop(e, j);
	c->t_copier = now_us();
	if (!c->nodes)
		c->nodes = job_nodes(j);
	c->t_hold = now_us();
	if (!c->nodes || fs_hold(e->fs, j->tree, c->nodes, j->n, HOLD_DRAIN_US)) {
		*out = xasprintf("requests in flight did not finish within %u s",
				 HOLD_DRAIN_US / 1000000);
		job_copier_start(e, j);
		return CTL_EFAIL;
	}
	c->t_drained = now_us();
	for (size_t i = 0; i < j->n && !r; i++) {
		struct job_file *f = &j->files[i];
		struct timespec mtime;

		r = delta_commit(f->d);
		if (!r)
			r = delta_finish_target(f->d, DELTA_FINISH_SYNC);
		if (r) {
			*out = xasprintf("cannot finish '%s' in '%s': %s", f->relpath, j->dest,
					 strerror(-r));
			break;
		}
		r = copy_meta(delta_source_fd(f->d), delta_dest_fd(f->d),
			      fs_node_mtime(e->fs, f->node, &mtime) ||
			      delta_mtime(f->d, &mtime) ? &mtime : NULL);
		if (r)
			log_warnx("'%s': cannot copy metadata: %s", f->relpath, strerror(-r));
		r = 0;
	}
	if (!r && j->tree)
		sync_dirs(e->root_fd, j);
	if (!r && sync_dests(j, out))
		r = -EIO;
	if (!r && fsync(j->dest_fd) == -1 && errno != EINVAL) {
		r = -errno;
		*out = xasprintf("cannot sync '%s': %s", j->dest, strerror(errno));
	}
	c->t_merged = now_us();
	if (r) {
		fs_release(e->fs, j->tree, c->nodes, j->n);
		job_copier_start(e, j);
		return CTL_EFAIL;
	}
	return CTL_OK;
}

/* After the commit point the hand-off failed in QEMU, which restarted the
 * guest at the source: mirror again. */
static int revert(struct cutover *c, const char *why, char **out)
{
	struct engine *e = c->e;
	struct job *j = c->j;
	int r;

	seal_job(e, j, false);
	r = save_handoff(e, j, MS_HANDOFF_NONE, NULL, NULL, false);
	job_copier_start(e, j);
	phase(e, j, "%s", "");
	note(e, j, "the migration failed after the hand-off was recorded; the VM runs on at the "
		"source, the job mirrors again: %s", why);
	free(*out);
	*out = xasprintf("hand-off failed: the VM runs on at the source and the job mirrors again "
			 "(the destination is still the copy): %s%s", why,
			 r ? "; the record could not be updated (a restart asks QEMU again)" : "");
	log_warnx("%s", *out);
	return CTL_EFAIL;
}

/* QEMU cannot say how the migration ended: keep the files sealed. */
static int unknown(struct cutover *c, const char *spec, const char *why, char **out)
{
	struct engine *e = c->e;
	struct job *j = c->j;

	seal_job(e, j, true);
	pthread_mutex_lock(&e->lock);
	j->handoff.unknown = true;
	pthread_mutex_unlock(&e->lock);
	phase(e, j, "unconfirmed");
	note(e, j, "the hand-off to '%s' was recorded, but QEMU cannot say how it ended: %s",
	     spec_uri(spec), why);
	free(*out);
	*out = xasprintf("the hand-off to '%s' was recorded, but QEMU cannot say how it ended: %s; "
			 "the files are read-only here until 'cutover%s%s --hook %s' finds out, or "
			 "'cutover --force' (the VM runs at the destination) or 'abort --force' "
			 "(it does not)", spec_uri(spec), why, j->name[0] ? " --job " : "", j->name,
			 spec);
	log_warnx("%s", *out);
	return CTL_EFAIL;
}

/* 8: QEMU says the VM runs at the destination: switch the files there on
 * this mount, sealed, and forget the job.  Nothing is merged.  The next
 * record (the job gone, its files sealed: handoff_next_state) is written
 * as any cutover's, and renamed over the record by step_commit. */
static int finalize(struct cutover *c, const char *spec, const char *vm, const char *how,
		    char **out)
{
	struct engine *e = c->e;
	struct job *j = c->j;
	const char *to = spec_uri(spec);
	struct sealed_file *ns;
	size_t n = j->n;
	int r;

	/* Writes on this host after the record, which the other host's VM
	 * does not see.  Only where this worker finished the copies (a hold
	 * was measured): a worker after a restart replays the delta store's
	 * log since its last checkpoint, so what the hold merged counts as
	 * unmerged again; the files were sealed from the restart on. */
	for (size_t i = 0; c->hold_us && i < j->n; i++) {
		struct delta_status st;

		delta_status(j->files[i].d, &st);
		if (st.dirty_bytes)
			log_warnx("'%s': %llu byte(s) written on this host after the hand-off was "
				  "recorded are not at the destination (the VM runs there)",
				  j->files[i].relpath, (unsigned long long)st.dirty_bytes);
	}
	job_copier_stop(e, j);
	seal_job(e, j, true);
	c->handoff = true;
	c->remove_source = j->handoff.remove_source;
	if (!c->nodes)
		c->nodes = job_nodes(j);
	if (!c->sw)
		c->sw = calloc(j->n ? j->n : 1, sizeof(*c->sw));
	r = c->nodes && c->sw ? 0 : -ENOMEM;
	if (!r) {
		pthread_mutex_lock(&e->lock);
		e->cutover_job = j;
		r = write_next_record(e);
		if (r)
			e->cutover_job = NULL;
		pthread_mutex_unlock(&e->lock);
	}
	if (!r) {
		__atomic_store_n(&e->region->cutover_job, j->id, __ATOMIC_SEQ_CST);
		c->pre.e = e;
		c->pre.job = j;
		r = step_hold(c, out) ? -EIO : 0;
		if (r) {
			pthread_mutex_lock(&e->lock);
			if (e->cutover_job == j) {
				e->cutover_job = NULL;
				drop_next_state(e);
			}
			pthread_mutex_unlock(&e->lock);
			__atomic_store_n(&e->region->cutover_job, 0, __ATOMIC_SEQ_CST);
		}
	}
	if (r) {
		/* the VM runs there all the same: the files stay sealed here,
		 * served as they were handed off, and the record says so */
		phase(e, j, "handed off");
		note(e, j, "the VM runs at '%s'; the files could not be switched to '%s' here (%s): "
			"they stay read-only, as they were handed off", to, j->dest,
		     *out ? *out : strerror(-r));
		free(*out);
		*out = xasprintf("handed off %zu file(s) to '%s' (%s), but they could not be switched "
				 "to '%s' here: they stay read-only, as they were handed off",
				 j->n, to, how, j->dest);
		return CTL_OK;
	}
	step_switch(c);
	/* the sealed files as the next record has them */
	pthread_mutex_lock(&e->lock);
	ns = realloc(e->sealed, (e->nsealed + n) * sizeof(*ns));
	if (ns) {
		e->sealed = ns;
		for (size_t i = 0; i < n; i++) {
			struct sealed_file *s = &ns[e->nsealed];

			s->relpath = strdup(j->files[i].relpath);
			s->to = strdup(to);
			s->vm = strdup(vm);
			s->node = j->files[i].node;
			if (!s->relpath || !s->to || !s->vm) {
				free(s->relpath);
				free(s->to);
				free(s->vm);
				continue;
			}
			fs_node_ref(e->fs, s->node);
			__atomic_store_n(&e->nsealed, e->nsealed + 1, __ATOMIC_RELEASE);
		}
	}
	j->handoff.unknown = false;
	snprintf(j->handoff.phase, sizeof(j->handoff.phase), "handed off");
	pthread_mutex_unlock(&e->lock);
	note(e, j, "%zu file(s) handed off to '%s': %s", n, to, how);
	r = step_commit(c, CTL_OK, out);
	__atomic_store_n(&e->region->switched, 0, __ATOMIC_SEQ_CST);
	__atomic_store_n(&e->region->cutover_job, 0, __ATOMIC_SEQ_CST);
	if (r == CTL_OK) {
		free(*out);
		*out = xasprintf("%s%shanded off %zu file(s) to '%s': %s; the files are read-only here "
				 "(served from '%s')", c->j->name[0] ? c->label : "",
				 c->j->name[0] ? ": " : "", n, to, how, c->j->dest);
	}
	return r;
}

/* 7 and 8, from a recorded hand-off: let QEMU finish, and settle by what it
 * says.  hold_us: relocfs's hold at the switch-over, or 0 if unknown. */
static int finish(struct cutover *c, struct vmhook *h, const char *spec, const char *vm,
		  uint64_t hold_us, char **out)
{
	struct engine *e = c->e;
	struct job *j = c->j;
	char err[512], desc[256], how[512];
	uint64_t t0;
	int r;

	phase(e, j, "recorded: QEMU hands the VM over");
	t0 = now_us();
	r = vmhook_resume(h, HANDOFF_FINISH_MS, err, sizeof(err));
	if (r == -ECANCELED)
		return revert(c, err, out);
	if (r)
		return unknown(c, spec, err, out);
	vmhook_describe(h, desc, sizeof(desc));
	if (hold_us)
		snprintf(how, sizeof(how), "%s, relocfs held I/O %.1f ms at the switch-over (from "
			 "QEMU's switch-over point: %.1f ms stopping the copier, %.1f draining, %.1f "
			 "merging and syncing the destination, %.1f recording; QEMU completed %.1f ms "
			 "after it was let go)", desc, (double)hold_us / 1000.0,
			 (c->t_copier - c->t_switchover) / 1000.0, (c->t_drained - c->t_hold) / 1000.0,
			 (c->t_merged - c->t_drained) / 1000.0, (c->t_release - c->t_merged) / 1000.0,
			 (now_us() - t0) / 1000.0);
	else
		snprintf(how, sizeof(how), "%s", desc);
	return finalize(c, spec, vm, how, out);
}

/* 4: QEMU copies memory while the copier goes on merging, the job busy and
 * cmd_lock let go (the other jobs' commands run meanwhile).  Returns at
 * QEMU's switch-over point, cmd_lock held again. */
static int pause_at_switchover(struct cutover *c, struct vmhook *h, char *err, size_t errlen)
{
	struct engine *e = c->e;
	const struct ctl_request *req = c->req;
	int r;

	job_busy_begin(e, c->j);
	r = vmhook_pause(h, e->mountpoint, NULL, 0,
			 (int)(req->timeout_s > 0 ? req->timeout_s * 1000 : HANDOFF_PAUSE_S * 1000),
			 err, errlen);
	job_busy_end(e, c->j);
	/* cmd_restart refuses while the job is busy with a hand-off: this is
	 * a guard, not a path */
	if (!r && e->handing_over) {
		snprintf(err, errlen, "relocfs is handing the mount over to a new worker: run the "
			 "cutover again");
		r = -ECANCELED;
	}
	return r;
}

int cmd_handoff(struct cutover *c, char **out)
{
	struct engine *e = c->e;
	struct job *j = c->j;
	struct vmhook *h = c->hooks[0];
	const char *spec;
	char err[512], vm[128];
	uint64_t t0;
	int ret, r;

	for (int i = 0; i < c->nhooks; i++)
		if (vmhook_hands_off(c->hooks[i]))
			h = c->hooks[i];
	spec = vmhook_spec(h);
	if (c->nhooks != 1) {
		*out = xasprintf("'%s' moves the VM to another host: give it as the only hook", spec);
		return CTL_EUSAGE;
	}
	if (j->rbd) {
		*out = xasprintf("'%s' hands a VM over with its disks in a directory; a job into "
				 "RBD hands QEMU to its rbd driver with qmp-rbd:SOCKET", spec);
		return CTL_EUSAGE;
	}
	/* 1 */
	ret = step_wait(c, out);
	if (ret)
		return ret;
	/* 2 */
	ret = check_disks(c, h, out);
	if (ret)
		return ret;
	/* 3: a restart must be able to cancel what 4 starts */
	r = save_handoff(e, j, MS_HANDOFF_STARTED, spec, "", c->remove_source);
	if (r) {
		*out = xasprintf("cutover cancelled, nothing switched: cannot record the hand-off in "
				 "'%s/%s': %s", e->source, STATE_DIR, strerror(-r));
		goto out_clear;
	}
	/* 4 */
	phase(e, j, "QEMU copies the VM's memory");
	note(e, j, "%s", "");
	t0 = now_us();
	r = pause_at_switchover(c, h, err, sizeof(err));
	c->t_switchover = now_us();
	if (r == -ECANCELED) {
		*out = xasprintf("hand-off cancelled, nothing switched, the VM runs on at the source: "
				 "%s", err);
		goto out_cancel;
	}
	if (r) {
		*out = xasprintf("hand-off cancelled, nothing switched, the VM runs on at the source: "
				 "%s", err);
		goto out_clear;
	}
	vmhook_vm_name(h, vm, sizeof(vm));
	log_info("hand-off: the VM%s%s%s stopped at its switch-over point after %.1f s",
		 vm[0] ? " '" : "", vm, vm[0] ? "'" : "", (double)(now_us() - t0) / 1e6);
	/* 5 */
	phase(e, j, "switch-over: finishing the copies");
	ret = finish_copies(c, out);
	if (ret) {
		char *why = *out;

		*out = xasprintf("hand-off cancelled, nothing switched, the VM runs on at the source: "
				 "%s", why ? why : "cannot finish the copies");
		free(why);
		goto out_cancel;
	}
	crashpoint("handoff-before-record");
	/* 6: the commit point */
	r = save_handoff(e, j, MS_HANDOFF_RECORDED, spec, vm, c->remove_source);
	if (r) {
		fs_release(e->fs, j->tree, c->nodes, j->n);
		job_copier_start(e, j);
		*out = xasprintf("hand-off cancelled, nothing switched, the VM runs on at the source: "
				 "cannot record the hand-off: %s", strerror(-r));
		goto out_cancel;
	}
	crashpoint("handoff-recorded");
	c->t_release = now_us();
	c->hold_us = c->t_release - c->t_hold;
	fs_release(e->fs, j->tree, c->nodes, j->n);
	log_info("hand-off: recorded %.2f ms after QEMU's switch-over point: %.2f stopping the "
		 "copier, then I/O held %.2f ms: %.2f draining, %.2f finishing the copies and "
		 "syncing the destination, %.2f recording",
		 (c->t_release - c->t_switchover) / 1000.0,
		 (c->t_copier - c->t_switchover) / 1000.0, c->hold_us / 1000.0,
		 (c->t_drained - c->t_hold) / 1000.0, (c->t_merged - c->t_drained) / 1000.0,
		 (c->t_release - c->t_merged) / 1000.0);
	/* 7, 8 */
	return finish(c, h, spec, vm, c->hold_us, out);

out_cancel:
	if (vmhook_cancel(h, HANDOFF_CANCEL_MS, err, sizeof(err))) {
		char *o = *out;

		*out = xasprintf("%s; and cancelling QEMU's migration failed: %s", o, err);
		free(o);
	}
out_clear:
	if (save_handoff(e, j, MS_HANDOFF_NONE, NULL, NULL, false))
		log_warnx("cannot update the record: a restart asks QEMU how the hand-off ended");
	phase(e, j, "%s", "");
	note(e, j, "%s", *out ? *out : "");
	return CTL_EFAIL;
}

bool handoff_in_progress(struct engine *e, char *err, size_t errlen)
{
	bool busy = false;

	pthread_mutex_lock(&e->lock);
	for (size_t k = 0; k < e->njobs && !busy; k++) {
		struct job *j = e->jobs[k];

		if (j->busy && j->handoff.state != MS_HANDOFF_NONE) {
			busy = true;
			snprintf(err, errlen, "the hand-off of %s%s%s to '%s' is under way (%s)",
				 j->name[0] ? "job '" : "the migration", j->name,
				 j->name[0] ? "'" : "", spec_uri(j->handoff.spec ? j->handoff.spec : ""),
				 j->handoff.phase);
		}
	}
	pthread_mutex_unlock(&e->lock);
	return busy;
}

bool handoff_pending(struct engine *e, struct job *j, const struct ctl_request *req)
{
	bool recorded;

	pthread_mutex_lock(&e->lock);
	recorded = j->handoff.state == MS_HANDOFF_RECORDED;
	pthread_mutex_unlock(&e->lock);
	return recorded || req->force;
}

int handoff_settle(struct cutover *c, char **out)
{
	struct job *j = c->j;
	char *spec = j->handoff.spec ? strdup(j->handoff.spec) : NULL;
	char *vm = j->handoff.vm ? strdup(j->handoff.vm) : strdup("");
	struct vmhook *h = NULL;
	int ret;

	if (j->handoff.state != MS_HANDOFF_RECORDED) {
		*out = xasprintf("--force settles a recorded hand-off, and %s has none", c->label);
		ret = CTL_EUSAGE;
		goto out;
	}
	if (!spec || !vm) {
		*out = xasprintf("out of memory");
		ret = CTL_EFAIL;
		goto out;
	}
	if (c->req->force) {
		if (c->nhooks) {
			*out = xasprintf("--force takes no hook: it says the VM runs at '%s'",
					 spec_uri(spec));
			ret = CTL_EUSAGE;
			goto out;
		}
		log_warnx("hand-off of %s to '%s' settled by the operator: the VM runs there",
			  c->label, spec_uri(spec));
		ret = finalize(c, spec, vm, "settled by the operator", out);
		goto out;
	}
	for (int i = 0; i < c->nhooks; i++)
		if (vmhook_hands_off(c->hooks[i]))
			h = c->hooks[i];
	if (!h || c->nhooks != 1) {
		*out = xasprintf("a hand-off of %s to '%s' was recorded and is not settled: give "
				 "--hook %s (QEMU is asked how it ended), or --force", c->label,
				 spec_uri(spec), spec);
		ret = CTL_EFAIL;
		goto out;
	}
	ret = finish(c, h, spec, vm, 0, out);
out:
	free(spec);
	free(vm);
	return ret;
}

int handoff_abort_check(struct engine *e, struct job *j, bool force, char **out)
{
	const char *spec = j->handoff.spec ? j->handoff.spec : "?";

	if (j->handoff.state != MS_HANDOFF_RECORDED)
		return CTL_OK;
	if (!force) {
		*out = xasprintf("the hand-off to '%s' was recorded: the VM may run there now; if it "
				 "does not, 'abort --force'; if it does, 'cutover --force'",
				 spec_uri(spec));
		return CTL_EFAIL;
	}
	log_warnx("abort of the recorded hand-off to '%s' forced by the operator: the VM does not "
		  "run there; the destination is left as it is", spec_uri(spec));
	seal_job(e, j, false);
	j->keep_dest = true;
	phase(e, j, "%s", "");
	if (save_handoff(e, j, MS_HANDOFF_NONE, NULL, NULL, false)) {
		*out = xasprintf("cannot write the state record");
		return CTL_EFAIL;
	}
	return CTL_OK;
}

/* ---- the record ------------------------------------------------------------ */

int handoff_to_ms(struct ms_job *mj, const struct job *j)
{
	mj->handoff = j->handoff.state;
	mj->handoff_remove_source = j->handoff.remove_source;
	if (j->handoff.state == MS_HANDOFF_NONE)
		return 0;
	mj->handoff_spec = strdup(j->handoff.spec ? j->handoff.spec : "");
	mj->handoff_vm = strdup(j->handoff.vm ? j->handoff.vm : "");
	return mj->handoff_spec && mj->handoff_vm ? 0 : -ENOMEM;
}

int handoff_load_job(struct job *j, const struct ms_job *mj)
{
	j->handoff.state = mj->handoff;
	j->handoff.remove_source = mj->handoff_remove_source;
	if (mj->handoff == MS_HANDOFF_NONE)
		return 0;
	j->handoff.spec = strdup(mj->handoff_spec ? mj->handoff_spec : "");
	j->handoff.vm = strdup(mj->handoff_vm ? mj->handoff_vm : "");
	return j->handoff.spec && j->handoff.vm ? 0 : -ENOMEM;
}

void handoff_job_free(struct job *j)
{
	free(j->handoff.spec);
	free(j->handoff.vm);
	j->handoff.spec = j->handoff.vm = NULL;
}

/* Is j's the hand-off that the next record switches? */
static bool handing_off(struct job *j)
{
	return j->handoff.state == MS_HANDOFF_RECORDED;
}

int handoff_next_state(struct engine *e, struct next_state *ns, struct job *j)
{
	const struct mount_state *ms = &e->ms;
	const char *to;

	if (!handing_off(j))
		return 0;
	to = spec_uri(j->handoff.spec ? j->handoff.spec : "");
	ns->sealed = calloc(ms->nsealed + j->n + 1, sizeof(*ns->sealed));
	if (!ns->sealed)
		return -ENOMEM;
	memcpy(ns->sealed, ms->sealed, ms->nsealed * sizeof(*ns->sealed));
	for (size_t i = 0; i < j->n; i++)
		ns->sealed[ms->nsealed + i] = (struct ms_sealed){ j->files[i].relpath, (char *)to,
								  j->handoff.vm ? j->handoff.vm : "" };
	ns->ms.sealed = ns->sealed;
	ns->ms.nsealed = ms->nsealed + j->n;
	return 0;
}

int handoff_adopt(struct engine *e, struct job *j)
{
	struct mount_state *ms = &e->ms;
	struct ms_sealed *x;
	const char *to;
	int r = 0;

	if (!handing_off(j))
		return 0;
	to = spec_uri(j->handoff.spec ? j->handoff.spec : "");
	x = realloc(ms->sealed, (ms->nsealed + j->n) * sizeof(*x));
	if (!x)
		return -ENOMEM;
	ms->sealed = x;
	for (size_t i = 0; i < j->n; i++) {
		struct ms_sealed *s = &ms->sealed[ms->nsealed];

		s->relpath = strdup(j->files[i].relpath);
		s->to = strdup(to);
		s->vm = strdup(j->handoff.vm ? j->handoff.vm : "");
		if (s->relpath && s->to && s->vm) {
			ms->nsealed++;
		} else {
			free(s->relpath);
			free(s->to);
			free(s->vm);
			r = -ENOMEM;
		}
	}
	return r;
}

/* ---- after a restart ------------------------------------------------------- */

int handoff_load(struct engine *e, char *err, size_t errlen)
{
	struct sealed_file *s;

	if (!e->ms.nsealed)
		return 0;
	s = calloc(e->ms.nsealed, sizeof(*s));
	if (!s) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	e->sealed = s;
	for (size_t i = 0; i < e->ms.nsealed; i++) {
		s[i].relpath = strdup(e->ms.sealed[i].relpath);
		s[i].to = strdup(e->ms.sealed[i].to);
		s[i].vm = strdup(e->ms.sealed[i].vm);
		e->nsealed = i + 1;
		if (!s[i].relpath || !s[i].to || !s[i].vm) {
			snprintf(err, errlen, "out of memory");
			return -ENOMEM;
		}
	}
	return 0;
}

void handoff_attach(struct engine *e)
{
	for (size_t i = 0; i < e->nsealed; i++) {
		struct sealed_file *s = &e->sealed[i];

		if (!s->node)
			s->node = node_for(e, s->relpath);
		if (s->node)
			fs_node_seal(e->fs, s->node, true);
		else
			log_warnx("'%s', handed off to '%s', is gone from this mount", s->relpath,
				  s->to);
	}
	/* recorded, not settled: the guest may run at the destination */
	for (size_t k = 0; k < e->njobs; k++)
		if (e->jobs[k]->state == JOB_RUNNING &&
		    e->jobs[k]->handoff.state == MS_HANDOFF_RECORDED)
			seal_job(e, e->jobs[k], true);
}

struct resolve {
	struct engine *e;
	struct job *j;
};

/* A restart found j's hand-off under way: settle it by what QEMU says.  j
 * is busy from handoff_resolve_start until this thread holds cmd_lock,
 * which it keeps to the end: no other command touches j meanwhile. */
static void *resolve_thread(void *arg)
{
	struct resolve *rs = arg;
	struct engine *e = rs->e;
	struct job *j = rs->j;
	static const struct ctl_request none;
	struct cutover c = { .e = e, .j = j, .req = &none, .old_root_fd = -1, .hook_ms = 30000 };
	char err[512], *out = NULL, *spec, *vm;
	struct vmhook *h = NULL;
	enum ms_handoff st;
	bool stop;

	free(rs);
	pthread_mutex_lock(&e->cmd_lock);
	j->busy = false;
	if (--e->busy == 0)
		pthread_cond_broadcast(&e->idle);
	job_label(j, c.label, sizeof(c.label));
	st = j->handoff.state;
	spec = strdup(j->handoff.spec ? j->handoff.spec : "");
	vm = strdup(j->handoff.vm ? j->handoff.vm : "");
	pthread_mutex_lock(&e->lock);
	stop = e->stopping;
	pthread_mutex_unlock(&e->lock);
	if (stop || e->stopped || e->handing_over || !spec || !vm) {
		log_warnx("the hand-off of %s is left to the next worker", c.label);
		goto out;
	}
	if (vmhook_new(spec, &h, err, sizeof(err))) {
		log_warnx("cannot settle the hand-off '%s': %s", spec, err);
		if (st == MS_HANDOFF_RECORDED) {
			unknown(&c, spec, err, &out);
		} else {
			save_handoff(e, j, MS_HANDOFF_NONE, NULL, NULL, false);
			job_copier_start(e, j);
		}
		goto out;
	}
	if (st == MS_HANDOFF_STARTED) {
		int r = vmhook_cancel(h, HANDOFF_CANCEL_MS, err, sizeof(err));

		if (r == -EALREADY) {
			/* continued by someone else: the destination may lack the
			 * last writes, but the guest runs there */
			log_warnx("the hand-off of %s to '%s' was interrupted before it was recorded, "
				  "but QEMU's migration completed all the same", c.label,
				  spec_uri(spec));
			save_handoff(e, j, MS_HANDOFF_RECORDED, spec, vm, j->handoff.remove_source);
			unknown(&c, spec, "the migration completed before relocfs recorded the "
				"hand-off: check the destination", &out);
			goto out;
		}
		if (r)
			log_warnx("the hand-off of %s to '%s' was interrupted before it was recorded, "
				  "and QEMU could not be asked to cancel its migration: %s; if it waits "
				  "at its switch-over point, cancel it there (migrate_cancel)", c.label,
				  spec_uri(spec), err);
		else
			log_info("the hand-off of %s to '%s' was interrupted before it was recorded: "
				 "QEMU's migration is cancelled, the VM runs on at the source, the job "
				 "mirrors on", c.label, spec_uri(spec));
		save_handoff(e, j, MS_HANDOFF_NONE, NULL, NULL, false);
		phase(e, j, "%s", "");
		note(e, j, "the hand-off to '%s' was interrupted before it was recorded and cancelled: "
			"the VM runs on at the source", spec_uri(spec));
		job_copier_start(e, j);
		goto out;
	}
	log_info("a hand-off of %s to '%s' was recorded: asking QEMU how it ended", c.label,
		 spec_uri(spec));
	c.hooks[0] = h;
	c.nhooks = 1;
	finish(&c, h, spec, vm, 0, &out);
	c.hooks[0] = NULL;
	c.nhooks = 0;
	log_info("%s", out ? out : "hand-off settled");
out:
	cutover_free(&c);
	vmhook_free(h);
	pthread_mutex_unlock(&e->cmd_lock);
	free(out);
	free(spec);
	free(vm);
	return NULL;
}

bool handoff_resolve_start(struct engine *e, struct job *j)
{
	struct resolve *rs = malloc(sizeof(*rs));
	pthread_t t;

	if (j->handoff.state == MS_HANDOFF_NONE || !rs) {
		free(rs);
		return false;
	}
	*rs = (struct resolve){ e, j };
	phase(e, j, "settling after a restart");
	/* busy: the other commands leave it alone, engine_stop waits */
	j->busy = true;
	e->busy++;
	if (pthread_create(&t, NULL, resolve_thread, rs)) {
		j->busy = false;
		if (--e->busy == 0)
			pthread_cond_broadcast(&e->idle);
		free(rs);
		log_warnx("cannot settle the hand-off of %s: run 'relocctl cutover --hook %s'",
			  j->name[0] ? j->name : "the migration", j->handoff.spec);
		return false;
	}
	pthread_detach(t);
	return true;
}

/* ---- the namespace and status ------------------------------------------------ */

int handoff_name_check(struct engine *e, const struct fs_dir *dir, const char *name,
		       const struct stat *st, bool creates)
{
	for (size_t i = 0; i < e->nsealed; i++) {
		struct sealed_file *s = &e->sealed[i];
		dev_t dev;
		ino_t ino;
		bool override = false;

		for (size_t k = 0; k < e->novr; k++)
			if (!strcmp(e->ovr[k].relpath, s->relpath) && e->ovr[k].pdev == dir->dev &&
			    e->ovr[k].pino == dir->ino && !strcmp(e->ovr[k].name, name))
				override = true;
		if (override)
			/* the name here leads to the other host's file; removing
			 * it removes only this host's name (creating over it or
			 * renaming it is refused as for any relocated file) */
			return creates ? -EROFS : 0;
		if (!s->node)
			continue;
		fs_node_key(s->node, &dev, &ino);
		if (dev == st->st_dev && ino == st->st_ino)
			return -EROFS;
	}
	return 0;
}

bool handoff_sealed(struct engine *e, const char *relpath, const char **to)
{
	for (size_t i = 0; i < e->nsealed; i++) {
		if (!strcmp(e->sealed[i].relpath, relpath)) {
			*to = e->sealed[i].to;
			return true;
		}
	}
	return false;
}

void handoff_forget(struct engine *e, const char *relpath)
{
	for (size_t i = 0; i < e->nsealed; i++) {
		if (strcmp(e->sealed[i].relpath, relpath))
			continue;
		free(e->sealed[i].relpath);
		free(e->sealed[i].to);
		free(e->sealed[i].vm);
		if (e->sealed[i].node)
			fs_node_put(e->fs, e->sealed[i].node);
		e->sealed[i] = e->sealed[e->nsealed - 1];
		__atomic_store_n(&e->nsealed, e->nsealed - 1, __ATOMIC_RELEASE);
		break;
	}
	for (size_t i = 0; i < e->ms.nsealed; i++) {
		if (strcmp(e->ms.sealed[i].relpath, relpath))
			continue;
		free(e->ms.sealed[i].relpath);
		free(e->ms.sealed[i].to);
		free(e->ms.sealed[i].vm);
		e->ms.sealed[i] = e->ms.sealed[--e->ms.nsealed];
		break;
	}
}

json_t *handoff_job_json(struct engine *e, struct job *j)
{
	json_t *o = json_object();
	const char *spec = j->handoff.spec ? j->handoff.spec : "";
	char host[256] = "";

	(void)e;
	gethostname(host, sizeof(host) - 1);
	json_object_set_new(o, "state", json_string(j->handoff.unknown ? "unconfirmed"
						    : j->handoff.state == MS_HANDOFF_RECORDED
							    ? "recorded"
							    : "started"));
	json_object_set_new(o, "phase", json_string(j->handoff.phase));
	json_object_set_new(o, "hook", json_string(spec));
	json_object_set_new(o, "from", json_string(host));
	json_object_set_new(o, "to", json_string(spec_uri(spec)));
	json_object_set_new(o, "vm", json_string(j->handoff.vm ? j->handoff.vm : ""));
	return o;
}

void handoff_status(struct engine *e, json_t *root, json_t *files, bool all)
{
	char host[256] = "";

	gethostname(host, sizeof(host) - 1);
	json_object_set_new(root, "host", json_string(host));
	if (e->handoff_note[0])
		json_object_set_new(root, "handoff_note", json_string(e->handoff_note));
	for (size_t i = 0; i < e->nsealed; i++) {
		struct sealed_file *s = &e->sealed[i];
		json_t *f = NULL, *x;
		size_t k;

		json_array_foreach(files, k, x)
			if (!strcmp(json_string_value(json_object_get(x, "path")), s->relpath))
				f = x;
		if (!f && !all)
			continue;
		if (!f) {
			f = json_object();
			json_object_set_new(f, "path", json_string(s->relpath));
			json_object_set_new(f, "job", json_string(""));
			json_object_set_new(f, "error", json_null());
			json_array_append_new(files, f);
		}
		json_object_set_new(f, "state", json_string("handed-off"));
		json_object_set_new(f, "to", json_string(s->to));
		json_object_set_new(f, "vm", json_string(s->vm));
	}
}

void handoff_free(struct engine *e)
{
	for (size_t i = 0; i < e->nsealed; i++) {
		free(e->sealed[i].relpath);
		free(e->sealed[i].to);
		free(e->sealed[i].vm);
	}
	free(e->sealed);
	e->sealed = NULL;
	e->nsealed = 0;
}
