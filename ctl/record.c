/*
 * record: the mount's record as the engine keeps it (saving, the clean-up
 * list, the next record of a cutover) and the paths it names, which may lie
 * under the over-mounted source.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/log.h"
#include "common/util.h"
#include "ctl/engine_i.h"

/*
 * While a cutover's next record is on disk, it must stay "the record with
 * that one job switched": the commit renames it over the record, and a
 * change saved meanwhile (another job started, a limit) must not be lost
 * by that rename.  So both are written, the record first; a crash between
 * the two leaves a next record that lacks the change, and a restart that
 * finds a next record reads only which job it switches from it (the rest
 * comes from the record), so nothing is lost either way.
 */
int write_next_record(struct engine *e)
{
	struct next_state ns;
	int r;

	if (!e->cutover_job)
		return 0;
	if (e->record_frozen)
		return -EIO;
	r = next_state_build(e, &ns, e->cutover_job);
	if (!r)
		r = ms_replace(e->state_fd, "state.next", &ns.ms);
	next_state_free(&ns);
	return r;
}

int save_record(struct engine *e)
{
	int r;

	if (e->record_frozen)
		return -EIO;
	r = ms_save(e->state_fd, &e->ms);
	if (!r)
		r = write_next_record(e);
	return r;
}

int state_dir(struct engine *e)
{
	if (e->state_fd != -1)
		return e->state_fd;
	if (mkdirat(e->source_fd, STATE_DIR, 0700) == -1 && errno != EEXIST)
		return -errno;
	e->state_fd = openat(e->source_fd, STATE_DIR, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	return e->state_fd == -1 ? -errno : e->state_fd;
}

int ms_add_cleanup(struct mount_state *ms, const char *dir)
{
	char **c = realloc(ms->cleanup, (ms->ncleanup + 1) * sizeof(*c));

	if (!c)
		return -ENOMEM;
	ms->cleanup = c;
	if (!(c[ms->ncleanup] = strdup(dir)))
		return -ENOMEM;
	ms->ncleanup++;
	return 0;
}

void run_cleanup(struct engine *e)
{
	for (size_t i = 0; i < e->ms.ncleanup; i++) {
		int err = rm_rf_path(e, e->ms.cleanup[i]);

		if (err && err != -ENOENT)
			log_warnx("cannot remove '%s': %s", e->ms.cleanup[i], strerror(-err));
		free(e->ms.cleanup[i]);
	}
	free(e->ms.cleanup);
	e->ms.cleanup = NULL;
	e->ms.ncleanup = 0;
	if (e->state_fd != -1)
		save_record(e);
}

void drop_next_state(struct engine *e)
{
	if (e->state_fd == -1)
		return;
	unlinkat(e->state_fd, "state.next.tmp", 0);
	if (unlinkat(e->state_fd, "state.next", 0) == 0)
		fsync(e->state_fd);
}

/*
 * Paths under SOURCE_DIR are hidden by the mount when relocfs is mounted over
 * its source: reach them through the descriptor opened before mounting.
 * Returns the path to use with *at() calls relative to *dirfd.
 */
static const char *path_at(struct engine *e, const char *path, int *dirfd)
{
	size_t l = strlen(e->source);

	if (!strncmp(path, e->source, l) && (path[l] == '/' || path[l] == '\0')) {
		*dirfd = e->source_fd;
		return path[l] ? path + l + 1 : ".";
	}
	*dirfd = AT_FDCWD;
	return path;
}

int open_path(struct engine *e, const char *path, int flags)
{
	int dfd;
	const char *rel = path_at(e, path, &dfd);
	int fd = openat(dfd, rel, flags | O_CLOEXEC);

	return fd == -1 ? -errno : fd;
}

int open_dir(struct engine *e, const char *path, int flags)
{
	return open_path(e, path, flags | O_DIRECTORY);
}

int mkdir_path(struct engine *e, const char *path, mode_t mode)
{
	int dfd;
	const char *rel = path_at(e, path, &dfd);

	return mkdirat(dfd, rel, mode) == -1 && errno != EEXIST ? -errno : 0;
}

int rm_rf_path(struct engine *e, const char *path)
{
	int dfd;
	const char *rel = path_at(e, path, &dfd);

	return rm_rf_at(dfd, rel);
}
