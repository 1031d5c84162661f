/*
 * relocfs: serve a directory through FUSE, and relocate it live on command.
 *
 *   relocfs [-f] [-o OPTS] SOURCE_DIR MOUNTPOINT
 *   relocfs [-f] [-o OPTS] DIR              (over-mount: DIR is served at DIR)
 *
 * Start-up order matters for error reporting: everything that can fail on
 * bad input (arguments, source, mountpoint, control socket, saved state,
 * mount) happens before the daemon forks, so the caller gets one line and a
 * non-zero exit, and nothing stays mounted or running.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fuse_lowlevel.h>
#include <fuse_opt.h>

#include "common/crashpoint.h"
#include "common/log.h"
#include "ctl/engine.h"
#include "ctl/server.h"
#include "fs/fs.h"

struct opts {
	char *paths[3];
	int npaths;
	int foreground;
	int debug;
	int help;
	int version;
	unsigned threads;
	double timeout;
	int writeback;
	int max_jobs;		/* -1: not given (the record's, or no limit) */
};

#define OPT(t, p, v) { t, offsetof(struct opts, p), v }

static const struct fuse_opt opt_spec[] = {
	OPT("-f", foreground, 1),
	OPT("-d", debug, 1),
	OPT("debug", debug, 1),
	OPT("-h", help, 1),
	OPT("--help", help, 1),
	OPT("-V", version, 1),
	OPT("--version", version, 1),
	OPT("threads=%u", threads, 0),
	OPT("timeout=%lf", timeout, 0),
	OPT("writeback", writeback, 1),
	OPT("max_jobs=%d", max_jobs, 0),
	FUSE_OPT_END
};

static int opt_proc(void *data, const char *arg, int key, struct fuse_args *outargs)
{
	struct opts *o = data;

	if (key != FUSE_OPT_KEY_NONOPT)
		return 1;	/* keep: libfuse checks it */
	if (o->npaths >= 3) {
		o->npaths++;
		return 0;
	}
	o->paths[o->npaths++] = strdup(arg);
	return 0;
}

static void usage(FILE *f)
{
	fprintf(f,
"usage: relocfs [-f] [-o OPTS] SOURCE_DIR MOUNTPOINT\n"
"       relocfs [-f] [-o OPTS] DIR\n"
"\n"
"Serves SOURCE_DIR at MOUNTPOINT (or DIR over itself) and relocates it live\n"
"to new storage on command (see relocctl).\n"
"\n"
"  -f                 stay in the foreground\n"
"  -d, -o debug       FUSE debug output (implies -f)\n"
"  -o threads=N       worker threads (default 16)\n"
"  -o timeout=S       attribute and entry cache timeout in seconds (default 1)\n"
"  -o writeback       kernel writeback cache for buffered writes\n"
"  -o max_jobs=N      at most N relocation jobs copy at once, the others wait\n"
"                     (0: no limit; relocctl limit --parallel changes it)\n"
"  -o allow_other     let other users (e.g. the hypervisor's) use the mount\n"
"  other -o options are passed to FUSE; default_permissions is always on\n");
}

/* true if path is already the mountpoint of a relocfs */
static bool mounted_here(const char *path)
{
	FILE *f = fopen("/proc/self/mountinfo", "r");
	char line[4096];
	bool found = false;

	if (!f)
		return false;
	while (!found && fgets(line, sizeof(line), f)) {
		char mnt[PATH_MAX], fstype[256];
		const char *sep = strstr(line, " - ");

		if (!sep || sscanf(line, "%*s %*s %*s %*s %4095s", mnt) != 1 ||
		    sscanf(sep + 3, "%255s", fstype) != 1)
			continue;
		found = strcmp(mnt, path) == 0 && strcmp(fstype, "fuse.relocfs") == 0;
	}
	fclose(f);
	return found;
}

static void on_sigusr1(int sig)
{
	(void)sig;	/* only interrupts blocking reads of the workers */
}

/* The daemon's parts, made in the order start-up needs them. */
struct daemon {
	struct opts o;
	char source[PATH_MAX], mnt[PATH_MAX];
	int source_fd;		/* O_PATH on SOURCE_DIR, opened before the mount hides it */
	struct engine *eng;
	struct fs *fs;
	struct fuse_session *se;
};

/* Options and paths: 0, or the exit status (2: usage, 1: a bad path). */
static int check_args(struct daemon *d)
{
	struct opts *o = &d->o;
	struct stat st;

	if (o->npaths < 1 || o->npaths > 2) {
		fprintf(stderr, "relocfs: %s (see relocfs --help)\n",
			o->npaths ? "too many arguments" : "missing SOURCE_DIR and MOUNTPOINT");
		return 2;
	}
	if (o->max_jobs < -1 || o->max_jobs > 1024) {
		fprintf(stderr, "relocfs: max_jobs=%d is out of range (0 to 1024)\n", o->max_jobs);
		return 2;
	}
	if (o->threads < 1 || o->threads > 256) {
		fprintf(stderr, "relocfs: threads=%u is out of range (1 to 256)\n", o->threads);
		return 2;
	}
	if (!realpath(o->paths[0], d->source)) {
		fprintf(stderr, "relocfs: cannot use source '%s': %s\n", o->paths[0], strerror(errno));
		return 1;
	}
	if (!realpath(o->paths[o->npaths - 1], d->mnt)) {
		fprintf(stderr, "relocfs: cannot use mountpoint '%s': %s\n", o->paths[o->npaths - 1],
			strerror(errno));
		return 1;
	}
	if (stat(d->mnt, &st) == -1 || !S_ISDIR(st.st_mode)) {
		fprintf(stderr, "relocfs: mountpoint '%s' is not a directory\n", d->mnt);
		return 1;
	}
	if (mounted_here(d->mnt)) {
		fprintf(stderr, "relocfs: '%s' is already a relocfs mount\n", d->mnt);
		return 1;
	}
	return 0;
}

/* Everything that can fail on bad input, before the mount: the source, the
 * engine's record, the FUSE layer, the control socket.  0 or -1 (said). */
static int prepare(struct daemon *d)
{
	char err[512];
	struct fs_config cfg;
	int root_fd, rfd;

	/* open the source before mounting: with an over-mount the mount hides it */
	rfd = open(d->source, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (rfd == -1) {
		fprintf(stderr, "relocfs: cannot open source '%s': %s\n", d->source, strerror(errno));
		return -1;
	}
	close(rfd);
	d->source_fd = open(d->source, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (d->source_fd == -1) {
		fprintf(stderr, "relocfs: cannot open source '%s': %s\n", d->source, strerror(errno));
		return -1;
	}
	if (access("/dev/fuse", R_OK | W_OK) == -1) {
		fprintf(stderr, "relocfs: cannot use /dev/fuse: %s\n", strerror(errno));
		return -1;
	}
	if (engine_new(&d->eng, d->source_fd, d->source, d->mnt, &root_fd, err, sizeof(err))) {
		fprintf(stderr, "relocfs: %s\n", err);
		return -1;
	}
	if (d->o.max_jobs >= 0)
		engine_set_max_jobs(d->eng, (unsigned)d->o.max_jobs);
	cfg = (struct fs_config){
		.source = d->source,
		.root_fd = root_fd,
		.threads = d->o.threads,
		.timeout = d->o.timeout,
		.writeback = d->o.writeback,
		.hidden = ".relocfs",
	};
	if (fs_new(&d->fs, &cfg)) {
		fprintf(stderr, "relocfs: cannot stat '%s': %s\n", d->source, strerror(errno));
		close(root_fd);
		return -1;
	}
	if (engine_attach(d->eng, d->fs, err, sizeof(err)) ||
	    ctl_server_bind(d->mnt, err, sizeof(err))) {
		fprintf(stderr, "relocfs: %s\n", err);
		return -1;
	}
	return 0;
}

/* Mount, daemonize, serve until unmounted.  Returns the exit status. */
static int serve(struct daemon *d, struct fuse_args *args)
{
	struct sigaction sa = { .sa_handler = on_sigusr1 };
	char fsname[PATH_MAX + 64];
	int ret = 1;

	snprintf(fsname, sizeof(fsname), "-ofsname=relocfs:%s,subtype=relocfs,default_permissions",
		 d->source);
	fuse_opt_insert_arg(args, 1, fsname);
	d->se = fs_session_new(d->fs, args);
	if (!d->se || fuse_set_signal_handlers(d->se))
		return 1;	/* libfuse said which option it did not know */
	sigaction(SIGUSR1, &sa, NULL);
	if (fuse_session_mount(d->se, d->mnt)) {
		fprintf(stderr, "relocfs: cannot mount on '%s'\n", d->mnt);
		return 1;
	}
	if (fs_attach_io(d->fs)) {
		fprintf(stderr, "relocfs: cannot set up the session's I/O\n");
		goto out_unmount;
	}
	if (!d->o.foreground)
		log_init("relocfs", true, LOG_LVL_INFO);
	if (fuse_daemonize(d->o.foreground)) {
		fprintf(stderr, "relocfs: cannot daemonize\n");
		goto out_unmount;
	}
	/* the recovered job's copier first: a command may come as soon as the
	 * control socket listens */
	if (engine_start(d->eng) || ctl_server_start(engine_command, d->eng))
		log_warnx("relocation control did not start; serving files only");
	log_info("serving '%s' at '%s'", d->source, d->mnt);
	ret = fs_loop(d->fs) ? 1 : 0;
	ctl_server_stop();	/* no new command; engine_stop waits for a running one */
	engine_stop(d->eng);
out_unmount:
	fuse_session_unmount(d->se);
	return ret;
}

int main(int argc, char *argv[])
{
	struct fuse_args args = FUSE_ARGS_INIT(argc, argv);
	struct daemon d = { .o = { .threads = 16, .timeout = 1.0, .max_jobs = -1 }, .source_fd = -1 };
	int ret = 1;

	umask(0);	/* the kernel has applied the caller's umask already */
	log_init("relocfs", false, LOG_LVL_INFO);
	crashpoint_init();
	if (fuse_opt_parse(&args, &d.o, opt_spec, opt_proc) == -1) {
		ret = 2;
		goto out;
	}
	if (d.o.help || d.o.version) {
		if (d.o.help)
			usage(stdout);
		else
			printf("relocfs 0.1 (libfuse %s)\n", fuse_pkgversion());
		ret = 0;
		goto out;
	}
	if (d.o.debug) {
		d.o.foreground = 1;
		fuse_opt_add_arg(&args, "-odebug");
	}
	ret = check_args(&d);
	if (ret)
		goto out;
	ret = prepare(&d) ? 1 : serve(&d, &args);
	ctl_server_stop();
	if (d.se) {
		fuse_remove_signal_handlers(d.se);
		fuse_session_destroy(d.se);
	}
out:
	engine_free(d.eng);
	fs_free(d.fs);
	if (d.source_fd != -1)
		close(d.source_fd);
	for (int i = 0; i < d.o.npaths && i < 3; i++)
		free(d.o.paths[i]);
	fuse_opt_free_args(&args);
	return ret;
}
