/*
 * mount_state: the mount's durable record, SOURCE_DIR/.relocfs/state.
 *
 * It says which directory the mount serves, which files were relocated on
 * their own (overrides), the mount's bandwidth budget and how many jobs may
 * copy at once, and every relocation job, queued or started.  It is
 * replaced as a whole: written to "NAME.tmp", fsynced, renamed over NAME,
 * and the directory fsynced, so a crash leaves either the old or the new
 * record, never a mix.  The rename of "state.next" over "state" is the
 * commit point of a cutover.  A checksum line closes the record; a record
 * that fails it is refused (the daemon then will not start rather than
 * guess).
 *
 * A cutover writes the next record as "state.next" before it holds I/O: the
 * record as it will be once that one job is switched, with a "cutover" line
 * naming the job.  It renames it over "state" after the hold, once the
 * destinations are synced; until then no flush is acknowledged (see
 * ctl/cutover.c).  Every other change made meanwhile goes into both records.
 *
 * Text, one item per line, fields separated by spaces, paths and names
 * percent-encoded (an empty one is a lone "%"), numbers plain decimal:
 *   relocfs-state 3
 *   root PATH
 *   last-cutover-us N
 *   budget BYTES_PER_S        (0: none)
 *   parallel N                (jobs that may copy at once; 0: no limit)
 *   override RELPATH BACKEND_ROOT
 *   job ID tree|files queued|started NAME DEST DELTA_DIR RATE PRIORITY SINCE_MS DEADLINE_MS
 *   file N RELPATH            (the files of the job above, N from 0)
 *   handoff started|recorded SPEC VM 0|1
 *                             (after the files of a started job: its hand-off
 *                             to another host, started or recorded as done,
 *                             its hook, the VM's name, and whether the
 *                             source is to be removed; see ctl/handoff.c)
 *   sealed RELPATH TO VM      (a file handed off to another host, read-only
 *                             here: where the VM went, its name)
 *   cutover ID                (state.next only: the job it switches)
 *   cleanup DIR               (a delta directory or copy left to remove)
 *   sum XXH3
 * Version 1 records ("relocfs-state 1", at most one job, written as
 * "job ID tree|files DEST DELTA_DIR RATE") are read as one started job
 * with an empty name.  Version 2 records have no "handoff" or "sealed"
 * lines.
 */
#ifndef RELOCFS_MOUNT_STATE_H
#define RELOCFS_MOUNT_STATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The version of the record this relocfs writes (it reads 1 to 3).  A
 * binary that reads only older ones must not take a mount over: relocfs
 * --version says "state record N". */
#define MS_VERSION	3
#define MS_VERSION_STR	"3"

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

struct ms_job {
	uint64_t id;
	bool tree;
	bool queued;		/* waits for a slot: nothing of it exists yet */
	char *name;		/* "" for the unnamed job */
	char *dest;
	char *delta_dir;	/* the job's own directory of delta files */
	uint64_t rate;		/* the job's own limit, bytes/s; 0: none */
	unsigned priority;	/* its weight in the budget; 0: the default */
	uint64_t since_ms;	/* when it was asked for (unix ms) */
	uint64_t deadline_ms;	/* when it must be ready (unix ms); 0: none */
	size_t nfiles;
	char **files;		/* relpaths, index = file id */
	enum ms_handoff handoff;	/* started jobs only */
	char *handoff_spec;	/* the hook, "SOCKET@URI"; NULL with none */
	char *handoff_vm;	/* the VM's name, "" if not known yet */
	bool handoff_remove_source;
};

struct mount_state {
	char *root;
	uint64_t last_cutover_us;
	uint64_t budget;	/* bytes/s for every job's copies and merges; 0: none */
	unsigned parallel;	/* jobs that may copy at once; 0: no limit */
	size_t noverrides;
	struct ms_override *overrides;
	size_t njobs;
	struct ms_job *jobs;
	uint64_t cutover_job;	/* state.next: the job it switches; 0: none */
	size_t nsealed;
	struct ms_sealed *sealed;
	size_t ncleanup;
	char **cleanup;
};

/* Read the record "state" from dirfd ("SOURCE/.relocfs").  -ENOENT if there
 * is none, -EBADMSG if it is damaged. */
int ms_load(int dirfd, struct mount_state *st);
/* The same for another name (the next record of a cutover). */
int ms_load_named(int dirfd, const char *name, struct mount_state *st);

/* Replace the record "state" durably. */
int ms_save(int dirfd, const struct mount_state *st);
/* Replace dirfd/name durably (write name.tmp, fsync, rename, fsync dirfd). */
int ms_replace(int dirfd, const char *name, const struct mount_state *st);

/* Write the record to dirfd/name and fsync it, without a rename. */
int ms_write(int dirfd, const char *name, const struct mount_state *st);

void ms_free(struct mount_state *st);
void ms_job_free(struct ms_job *j);

/* The job with this id, or NULL. */
struct ms_job *ms_find_job(const struct mount_state *st, uint64_t id);
/* Remove the job with this id (if there is one). */
void ms_drop_job(struct mount_state *st, uint64_t id);

/* Encode / decode a path for the record (pure; for tests).  The result is
 * malloc'd; NULL on ENOMEM or (decode) bad input. */
char *ms_encode(const char *s);
char *ms_decode(const char *s);

/* Serialise / parse (pure).  ms_format returns a malloc'd text. */
char *ms_format(const struct mount_state *st);
int ms_parse(const char *text, struct mount_state *st);

#endif
