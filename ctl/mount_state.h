/*
 * mount_state: the mount's durable record, SOURCE_DIR/.relocfs/state.
 *
 * It says which directory the mount serves, which files were relocated on
 * their own (overrides), and the relocation job in progress, if any.  It is
 * replaced as a whole: written to "state.tmp", fsynced, renamed over
 * "state", and the directory fsynced, so a crash leaves either the old or
 * the new record, never a mix.  The rename is the commit point of a
 * cutover.  A checksum line closes the record; a record that fails it is
 * refused (the daemon then will not start rather than guess).
 *
 * A cutover writes the next record as "state.next" before it holds I/O, and
 * renames it over "state" after the hold, once the destinations are synced;
 * until that rename and the directory are durable no flush is acknowledged
 * (see ctl/cutover.c).
 *
 * Text, one item per line, fields separated by spaces, paths percent-encoded:
 *   relocfs-state 1
 *   root PATH
 *   last-cutover-us N
 *   override RELPATH BACKEND_ROOT
 *   job ID tree|files DEST DELTA_DIR RATE
 *   file N RELPATH
 *   handoff started|recorded SPEC VM 0|1
 *                          (the job's hand-off to another host: started, or
 *                          recorded as done, its hook, the VM's name, and
 *                          whether the source is to be removed)
 *   sealed RELPATH TO VM   (a file handed off to another host: read-only here)
 *   cleanup DIR            (a delta directory left to remove)
 *   sum XXH3
 */
#ifndef RELOCFS_MOUNT_STATE_H
#define RELOCFS_MOUNT_STATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct ms_override {
	char *relpath;
	char *backend;		/* the root directory the file now lives under */
};

/* A job's hand-off to another host (ctl/handoff.c). */
enum ms_handoff {
	MS_HANDOFF_NONE = 0,
	MS_HANDOFF_STARTED,	/* QEMU may be migrating: a restart cancels it */
	MS_HANDOFF_RECORDED,	/* the commit point: the destination is the truth */
};

/* A file handed off to another host. */
struct ms_sealed {
	char *relpath;
	char *to;		/* where the VM went (the migration URI) */
	char *vm;		/* its name, "" if none */
};

struct mount_state {
	char *root;
	uint64_t last_cutover_us;
	size_t noverrides;
	struct ms_override *overrides;
	bool job;
	uint64_t job_id;
	bool tree;
	char *dest;
	char *delta_dir;	/* the job's own directory of delta files */
	uint64_t rate;
	size_t nfiles;
	char **files;		/* relpaths, index = file id */
	enum ms_handoff handoff;	/* with job only */
	char *handoff_spec;
	char *handoff_vm;
	bool handoff_remove_source;
	size_t nsealed;
	struct ms_sealed *sealed;
	size_t ncleanup;
	char **cleanup;
};

/* Read the record from dirfd ("SOURCE/.relocfs").  -ENOENT if there is none,
 * -EBADMSG if it is damaged. */
int ms_load(int dirfd, struct mount_state *st);

/* Replace the record durably. */
int ms_save(int dirfd, const struct mount_state *st);

/* Write the record to dirfd/name and fsync it, without replacing "state"
 * (a cutover prepares its record, then renames it in the hold). */
int ms_write(int dirfd, const char *name, const struct mount_state *st);

void ms_free(struct mount_state *st);

/* Encode / decode a path for the record (pure; for tests).  The result is
 * malloc'd; NULL on ENOMEM or (decode) bad input. */
char *ms_encode(const char *s);
char *ms_decode(const char *s);

/* Serialise / parse (pure).  ms_format returns a malloc'd text. */
char *ms_format(const struct mount_state *st);
int ms_parse(const char *text, struct mount_state *st);

#endif
