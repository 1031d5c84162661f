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

#include "ctl/ctl_server.h"
#include "fs/crashpoint.h"
#include "fs/fsops.h"
#include "fs/inode.h"
#include "fs/log.h"
#include "fs/relocate.h"

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

int main(int argc, char *argv[])
{
	struct fuse_args args = FUSE_ARGS_INIT(argc, argv);
	struct opts o = { .threads = 16, .timeout = 1.0 };
	struct fuse_session *se = NULL;
	char source[PATH_MAX], mnt[PATH_MAX], err[512], fsname[PATH_MAX + 64];
	int source_fd = -1, root_fd = -1, ret = 1, rfd;
	struct sigaction sa = { .sa_handler = on_sigusr1 };
	struct stat st;

	umask(0);	/* the kernel has applied the caller's umask already */
	log_init("relocfs", false, LOG_LVL_INFO);
	crashpoint_init();
	if (fuse_opt_parse(&args, &o, opt_spec, opt_proc) == -1) {
		ret = 2;
		goto out;
	}
	if (o.help || o.version) {
		if (o.help)
			usage(stdout);
		else
			printf("relocfs 0.1 (libfuse %s)\n", fuse_pkgversion());
		ret = 0;
		goto out;
	}
	if (o.npaths < 1 || o.npaths > 2) {
		fprintf(stderr, "relocfs: %s (see relocfs --help)\n",
			o.npaths ? "too many arguments" : "missing SOURCE_DIR and MOUNTPOINT");
		ret = 2;
		goto out;
	}
	if (o.threads < 1 || o.threads > 256) {
		fprintf(stderr, "relocfs: threads=%u is out of range (1 to 256)\n", o.threads);
		ret = 2;
		goto out;
	}
	if (o.debug) {
		o.foreground = 1;
		fuse_opt_add_arg(&args, "-odebug");
	}
	if (!realpath(o.paths[0], source)) {
		fprintf(stderr, "relocfs: cannot use source '%s': %s\n", o.paths[0], strerror(errno));
		goto out;
	}
	if (!realpath(o.paths[o.npaths - 1], mnt)) {
		fprintf(stderr, "relocfs: cannot use mountpoint '%s': %s\n", o.paths[o.npaths - 1],
			strerror(errno));
		goto out;
	}
	if (stat(mnt, &st) == -1 || !S_ISDIR(st.st_mode)) {
		fprintf(stderr, "relocfs: mountpoint '%s' is not a directory\n", mnt);
		goto out;
	}
	if (mounted_here(mnt)) {
		fprintf(stderr, "relocfs: '%s' is already a relocfs mount\n", mnt);
		goto out;
	}
	/* open the source before mounting: with an over-mount the mount hides it */
	rfd = open(source, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (rfd == -1) {
		fprintf(stderr, "relocfs: cannot open source '%s': %s\n", source, strerror(errno));
		goto out;
	}
	close(rfd);
	source_fd = open(source, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (source_fd == -1) {
		fprintf(stderr, "relocfs: cannot open source '%s': %s\n", source, strerror(errno));
		goto out;
	}
	if (access("/dev/fuse", R_OK | W_OK) == -1) {
		fprintf(stderr, "relocfs: cannot use /dev/fuse: %s\n", strerror(errno));
		goto out;
	}
	if (reloc_init(source_fd, source, mnt, &root_fd, err, sizeof(err))) {
		fprintf(stderr, "relocfs: %s\n", err);
		goto out;
	}
	if (itab_init(root_fd)) {
		fprintf(stderr, "relocfs: cannot stat '%s': %s\n", source, strerror(errno));
		goto out;
	}
	if (reloc_attach(err, sizeof(err))) {
		fprintf(stderr, "relocfs: %s\n", err);
		goto out;
	}
	if (ctl_server_bind(mnt, err, sizeof(err))) {
		fprintf(stderr, "relocfs: %s\n", err);
		goto out;
	}

	fs_cfg.source = source;
	fs_cfg.root_fd = root_fd;
	fs_cfg.threads = o.threads;
	fs_cfg.timeout = o.timeout;
	fs_cfg.writeback = o.writeback;
	snprintf(fsname, sizeof(fsname), "-ofsname=relocfs:%s,subtype=relocfs,default_permissions",
		 source);
	fuse_opt_insert_arg(&args, 1, fsname);

	se = fuse_session_new(&args, &fs_ops, sizeof(fs_ops), NULL);
	if (!se)
		goto out_ctl;	/* libfuse said which option it did not know */
	if (fuse_set_signal_handlers(se))
		goto out_ctl;
	sigaction(SIGUSR1, &sa, NULL);
	if (fuse_session_mount(se, mnt)) {
		fprintf(stderr, "relocfs: cannot mount on '%s'\n", mnt);
		goto out_ctl;
	}
	if (fs_attach_io(se)) {
		fprintf(stderr, "relocfs: cannot set up the session's I/O\n");
		goto out_unmount;
	}
	if (!o.foreground)
		log_init("relocfs", true, LOG_LVL_INFO);
	if (fuse_daemonize(o.foreground)) {
		fprintf(stderr, "relocfs: cannot daemonize\n");
		goto out_unmount;
	}
	/* the recovered job's copier first: a command may come as soon as the
	 * control socket listens */
	if (reloc_start() || ctl_server_start())
		log_warnx("relocation control did not start; serving files only");
	log_info("serving '%s' at '%s'", source, mnt);
	ret = fs_loop(se, o.threads) ? 1 : 0;
	ctl_server_stop();	/* no new command; reloc_stop waits for a running one */
	reloc_stop();
out_unmount:
	fuse_session_unmount(se);
out_ctl:
	ctl_server_stop();
	if (se) {
		fuse_remove_signal_handlers(se);
		fuse_session_destroy(se);
	}
out:
	if (source_fd != -1)
		close(source_fd);
	for (int i = 0; i < o.npaths && i < 3; i++)
		free(o.paths[i]);
	fuse_opt_free_args(&args);
	return ret;
}
