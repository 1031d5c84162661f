/*
 * vmhook: pause and resume the virtual machines that use the files being cut
 * over.  One hook per --hook SPEC given to "relocctl cutover":
 *
 *   qmp:SOCKET             QEMU's QMP on a UNIX socket: stop / cont / query-status
 *   qmp-rbd:SOCKET         as qmp, and before "cont" hands QEMU's disks over to
 *                          the RBD images the files were relocated into
 *                          (vmhook_handover): QEMU then reads and writes them
 *                          with its own rbd driver, not through the mount
 *   qmp-migrate:SOCKET@URI QEMU's migration to another host (see "Hand-off" below)
 *   libvirt:DOMAIN[@URI]   suspend / resume a libvirt domain
 *   exec:PROGRAM           runs "PROGRAM pause" / "PROGRAM resume"; the files
 *                          being cut over are in RELOCFS_FILES (newline
 *                          separated, absolute paths through the mount) and
 *                          RELOCFS_MOUNTPOINT is set
 *   freeze                 relocfs's own I/O hold only (the default)
 *   none                   no hypervisor hook
 *
 * The daemon always holds new I/O to the migrating files while it switches
 * them, whatever the hooks; hooks make the guest quiesce first (QEMU drains
 * and flushes its block devices on "stop").
 *
 * SOCKET and PROGRAM must be absolute paths (PROGRAM may also be a bare name
 * looked up in PATH): the daemon's working directory is not relocctl's.
 *
 * A hook resumes only what it paused: a VM that was already paused (by its
 * operator) when vmhook_pause ran is left paused by vmhook_resume.  qmp and
 * libvirt ask the run state first; exec leaves that to the program.
 *
 * All calls block the calling thread for at most timeout_ms (except that a
 * failed pause may spend up to two seconds more resuming the VM) and are called
 * by the daemon's cutover thread only; a struct vmhook is not shared between
 * threads.  Errors: -errno and one line (no newline) in err.
 */
#ifndef RELOCFS_VMHOOK_H
#define RELOCFS_VMHOOK_H

#include <stdbool.h>
#include <stddef.h>

struct vmhook;

/* Parse a spec and prepare the hook (no connection yet). */
int vmhook_new(const char *spec, struct vmhook **out, char *err, size_t errlen);
void vmhook_free(struct vmhook *h);

/* The spec as given, for status and error messages. */
const char *vmhook_spec(const struct vmhook *h);

/* true for "freeze" and "none", which pause nothing outside relocfs */
bool vmhook_is_internal(const struct vmhook *h);

/* Pause the VM.  On success the VM is paused and its I/O drained; on failure
 * the VM is left running (a hook that got as far as pausing resumes it before
 * it returns an error). */
int vmhook_pause(struct vmhook *h, const char *mountpoint, const char *const *files,
		 int nfiles, int timeout_ms, char *err, size_t errlen);

/*
 * Where a file's data lives after the switch, for a hook that hands the VM
 * over to it: the RBD image the file was relocated into.
 */
struct vmhook_image {
	const char *path;	/* the file, absolute through the mount */
	const char *pool;
	const char *image;
	const char *conf;	/* the Ceph configuration file; "" for Ceph's default */
	const char *user;	/* the Ceph client name without "client."; "" for admin */
};

/* true for hooks that hand the VM over to the files' new home (qmp-rbd):
 * they need a job into RBD images. */
bool vmhook_hands_over(const struct vmhook *h);

/*
 * After the switch and before vmhook_resume, with the VM paused by
 * vmhook_pause: point the VM's disks that are these files at their images
 * instead, so that the VM no longer goes through the mount for them.  All or
 * nothing: on failure every disk is left as it was (on the mount, which
 * serves the images) and err says why.  The images must be flushed by the
 * caller first (the VM's driver is another client of the cluster).  A no-op
 * for hooks that do not hand over.
 */
int vmhook_handover(struct vmhook *h, const struct vmhook_image *imgs, int n, int timeout_ms,
		    char *err, size_t errlen);

/* Resume a VM paused by vmhook_pause (no-op if it paused nothing).  Retries
 * within timeout_ms while QEMU's socket is busy or drops (qmp), or while the
 * program or virsh exits non-zero (exec, libvirt). */
int vmhook_resume(struct vmhook *h, int timeout_ms, char *err, size_t errlen);

/* Take over a pause that another process made with a hook of the same spec
 * (a worker that died in a cutover): vmhook_resume then resumes the VM. */
void vmhook_adopt_paused(struct vmhook *h, const char *mountpoint, const char *const *files,
			 int nfiles);

/* Ask the VM's run state ("running", "paused", ...).  -ENOTSUP for hooks
 * that cannot tell (exec, freeze, none). */
int vmhook_query(struct vmhook *h, char *state, size_t len, int timeout_ms,
		 char *err, size_t errlen);

/*
 * Hand-off: a hook that moves the VM to another host (qmp-migrate:) pauses
 * by starting QEMU's migration to URI and returning at its switch-over
 * point ("pre-switchover": the guest stopped, its disks drained and flushed,
 * nothing sent to the destination that it could run with).  The caller then
 * makes the destination's files durable and records the hand-off; then:
 *   vmhook_resume   lets the migration finish: 0 when QEMU reports it
 *                   completed (the VM runs at the destination); -ECANCELED
 *                   when it failed there and the VM runs on at the source;
 *                   any other error: how it ended is not known (err says why)
 *   vmhook_cancel   cancels it before the record: the VM runs on at the
 *                   source; -EALREADY if it had completed all the same.
 * Both work on a hook made afresh from the same spec (a restarted daemon),
 * asking QEMU where its migration stands first.  The pause's timeout is the
 * time QEMU may take to copy the VM's memory; a pause that fails cancels the
 * migration (the VM runs on at the source).
 */
bool vmhook_hands_off(const struct vmhook *h);
/* For other hooks: vmhook_resume. */
int vmhook_cancel(struct vmhook *h, int timeout_ms, char *err, size_t errlen);
/* The image files the VM has open (absolute paths; free each and the array).
 * -ENOTSUP for hooks that cannot tell. */
int vmhook_disks(struct vmhook *h, char ***paths, size_t *n, int timeout_ms, char *err,
		 size_t errlen);
/* QEMU's state of the hand-off's migration ("none", "active",
 * "pre-switchover", "completed", "failed", ...); -ENOTSUP for other hooks. */
int vmhook_migration(struct vmhook *h, char *state, size_t len, int timeout_ms, char *err,
		     size_t errlen);
/* One line on the VM ("vm 'NAME', qemu downtime 41 ms"); "" if nothing. */
void vmhook_describe(struct vmhook *h, char *buf, size_t len);
/* The VM's name as the hypervisor knows it, "" if not known. */
void vmhook_vm_name(struct vmhook *h, char *buf, size_t len);

#endif
