/*
 * relocfs: serve a directory through FUSE, and relocate it live on command.
 *
 *   relocfs [-f] [-o OPTS] SOURCE_DIR MOUNTPOINT
 *   relocfs [-f] [-o OPTS] DIR              (over-mount: DIR is served at DIR)
 *   relocfs SOURCE_DIR MOUNTPOINT -o OPTS   (as mount.fuse3 runs it, from
 *                                            mount -t fuse.relocfs and fstab)
 *
 * Start-up order matters for error reporting: everything that can fail on
 * bad input (arguments, source, mountpoint, control socket, saved state,
 * mount) happens before the caller is let go: the process that was started
 * waits until the first worker says the mount serves, or has said why it
 * cannot, so the caller gets one line and a non-zero exit, and nothing stays
 * mounted or running.  The processes are in daemon.h.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fuse_lowlevel.h>
#include <fuse_opt.h>

#include "common/crashpoint.h"
#include "common/log.h"
#include "ctl/mount_state.h"
#include "ctl/proto.h"
#include "ctl/server.h"
#include "daemon/daemon.h"
#include "daemon/service.h"
#include "fs/fs.h"

#define OPT(t, p, v) { t, offsetof(struct daemon, o.p), v }

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
	OPT("nowriteback", writeback, 0),
	OPT("transport=%s", transport, 0),
	OPT("poll=%u", poll_us, 0),
	OPT("transport", transport_bare, 1),
	OPT("takeover=%d", takeover_fd, 0),
	FUSE_OPT_END
};

/* Options of mount(8), fstab and systemd that mean nothing to a FUSE
 * mount; mount.fuse3 drops most of them, other callers may not.  libfuse
 * would refuse them as unknown. */
static bool mount_only_option(const char *opt)
{
	static const char *const names[] = {
		"defaults", "auto", "noauto", "nofail", "_netdev", "user", "nouser", "users",
		"owner", "group", "relatime", "norelatime", "strictatime", "nostrictatime",
		"lazytime", "nolazytime", "diratime", "nodiratime", "iversion", "noiversion",
	};

	if (strncmp(opt, "x-", 2) == 0 || strncmp(opt, "comment=", 8) == 0)
		return true;
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (strcmp(opt, names[i]) == 0)
			return true;
	return false;
}

static int opt_proc(void *data, const char *arg, int key, struct fuse_args *outargs)
{
	struct daemon *d = data;

	if (key == FUSE_OPT_KEY_OPT && mount_only_option(arg))
		return 0;	/* drop */
	if (key != FUSE_OPT_KEY_NONOPT)
		return 1;	/* keep: libfuse checks it */
	if (d->o.npaths >= 3) {
		d->o.npaths++;
		return 0;
	}
	d->o.paths[d->o.npaths++] = strdup(arg);
	return 0;
}

static void usage(FILE *f)
{
	fprintf(f,
"usage: relocfs [-f] [-o OPTS] SOURCE_DIR MOUNTPOINT\n"
"       relocfs [-f] [-o OPTS] DIR\n"
"       mount -t fuse.relocfs [-o OPTS] SOURCE_DIR MOUNTPOINT\n"
"\n"
"Serves SOURCE_DIR at MOUNTPOINT (or DIR over itself) and relocates it live\n"
"to new storage on command (see relocctl).\n"
"\n"
"  -f                 stay in the foreground (as under systemd)\n"
"  -V, --version      print the version\n"
"  -d, -o debug       FUSE debug output (implies -f)\n"
"  -o threads=N       worker threads (default 16)\n"
"  -o timeout=S       attribute and entry cache timeout in seconds (default 1)\n"
"  -o nowriteback     no kernel writeback cache: every buffered write is a\n"
"                     request (by default they are cached until written back,\n"
"                     an fsync or a close; see relocfs(8))\n"
"  -o transport=T     how requests reach relocfs: auto (default: io_uring where\n"
"                     the kernel offers it, else /dev/fuse), uring, dev\n"
"  -o poll=US         io_uring: a queue's thread checks for work for US\n"
"                     microseconds (at most %u) before it sleeps: faster\n"
"                     requests for a CPU while they come (default 0: sleep)\n"
"  -o max_jobs=N      at most N relocation jobs copy at once, the others wait\n"
"                     (0: no limit; relocctl limit --parallel changes it)\n"
"  -o allow_other     let other users (e.g. the hypervisor's) use the mount\n"
"  other -o options are passed to FUSE; default_permissions is always on;\n"
"  mount(8) options such as defaults, nofail, _netdev, x-* are ignored\n",
		FS_POLL_US_MAX);
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

/* -o transport: 0, or the exit status (2: not a transport, 1: one this
 * kernel does not offer).  A re-executed supervisor serves over what the
 * mount was set up with, and checks nothing. */
static int check_transport(struct daemon *d)
{
	static const char *const names[] = {
		[FS_TRANSPORT_AUTO] = "auto", [FS_TRANSPORT_URING] = "uring",
		[FS_TRANSPORT_DEV] = "dev",
	};
	const char *t = d->o.transport;
	char why[256];

	if (d->o.transport_bare || (t && !*t)) {
		fprintf(stderr, "relocfs: -o transport needs a value: auto, uring or dev\n");
		return 2;
	}
	d->transport = -1;
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (strcmp(t ? t : "auto", names[i]) == 0)
			d->transport = (int)i;
	if (d->transport < 0) {
		fprintf(stderr, "relocfs: unknown transport '%s' (auto, uring or dev)\n", t);
		return 2;
	}
	if (d->o.poll_us > FS_POLL_US_MAX) {
		fprintf(stderr, "relocfs: poll=%u is out of range (0 to %u microseconds)\n",
			d->o.poll_us, FS_POLL_US_MAX);
		return 2;
	}
	if (d->o.poll_us && d->transport == FS_TRANSPORT_DEV) {
		fprintf(stderr, "relocfs: -o poll is for FUSE over io_uring, not transport=dev\n");
		return 2;
	}
	if (d->transport == FS_TRANSPORT_URING && d->o.takeover_fd < 0 &&
	    fs_transport_check(FS_TRANSPORT_URING, why, sizeof(why))) {
		fprintf(stderr, "relocfs: cannot serve over io_uring: %s\n", why);
		return 1;
	}
	return 0;
}

/*
 * The arguments as given, but with the source and the mountpoint as the
 * absolute paths they resolved to: a re-execution (restart --exec, or the
 * supervisor running itself again) parses them again after the daemon has
 * left its starting directory for /, where relative ones would name
 * something else, the new binary would refuse them and the mount would go.
 * The paths are the arguments that are not options, in order (opt_proc);
 * an option's value follows "-o" or is joined to it.
 */
static void absolute_args(struct daemon *d)
{
	char **argv = calloc((size_t)d->argc + 1, sizeof(*argv));
	int k = 0;

	if (!argv)
		return;	/* a re-execution then needs the same directory */
	for (int i = 0; i < d->argc; i++) {
		argv[i] = d->argv[i];
		if (i == 0)
			continue;
		if (!strcmp(d->argv[i], "-o") && i + 1 < d->argc) {
			argv[i + 1] = d->argv[i + 1];
			i++;
			continue;
		}
		if (d->argv[i][0] == '-')
			continue;
		if (k == 0)
			argv[i] = d->source;
		if (k == d->o.npaths - 1)
			argv[i] = d->mnt;
		k++;
	}
	d->argv = argv;
}

/* Options and paths: 0, or the exit status (2: usage, 1: a bad path). */
static int check_args(struct daemon *d)
{
	struct stat st;
	int r;

	if (d->o.npaths < 1 || d->o.npaths > 2) {
		fprintf(stderr, "relocfs: %s (see relocfs --help)\n",
			d->o.npaths ? "too many arguments" : "missing SOURCE_DIR and MOUNTPOINT");
		return 2;
	}
	if (d->o.max_jobs < -1 || d->o.max_jobs > CTL_PARALLEL_MAX) {
		fprintf(stderr, "relocfs: max_jobs=%d is out of range (0 to %d)\n", d->o.max_jobs,
			CTL_PARALLEL_MAX);
		return 2;
	}
	if (d->o.threads < 1 || d->o.threads > 256) {
		fprintf(stderr, "relocfs: threads=%u is out of range (1 to 256)\n", d->o.threads);
		return 2;
	}
	r = check_transport(d);
	if (r)
		return r;
	if (!realpath(d->o.paths[0], d->source)) {
		fprintf(stderr, "relocfs: cannot use source '%s': %s\n", d->o.paths[0],
			strerror(errno));
		return 1;
	}
	if (!realpath(d->o.paths[d->o.npaths - 1], d->mnt)) {
		fprintf(stderr, "relocfs: cannot use mountpoint '%s': %s\n",
			d->o.paths[d->o.npaths - 1], strerror(errno));
		return 1;
	}
	absolute_args(d);
	if (d->o.takeover_fd >= 0)
		return 0;	/* the mount is ours already */
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

/* What must be open before anything is mounted: the source (an over-mount
 * hides it), /dev/fuse, the control socket (refused if a daemon serves the
 * mountpoint already).  0 or -1 (said). */
static int prepare(struct daemon *d)
{
	char err[512];
	int rfd;

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
	if (ctl_server_bind(d->mnt, err, sizeof(err))) {
		fprintf(stderr, "relocfs: %s\n", err);
		return -1;
	}
	return 0;
}

/*
 * Into the background: the process that was started waits until the first
 * worker says the mount serves ("OK" on the pipe) and exits 0, or exits 1
 * when the pipe ends without it (the worker said why on stderr).  Returns
 * in the background process only.
 */
static void background(struct daemon *d)
{
	int p[2];
	char buf[2];
	pid_t pid;

	if (pipe2(p, O_CLOEXEC) == -1) {
		fprintf(stderr, "relocfs: cannot daemonize: %s\n", strerror(errno));
		exit(1);
	}
	pid = fork();
	if (pid == -1) {
		fprintf(stderr, "relocfs: cannot daemonize: %s\n", strerror(errno));
		exit(1);
	}
	if (pid > 0) {
		close(p[1]);
		exit(read(p[0], buf, 2) == 2 ? 0 : 1);
	}
	close(p[0]);
	d->ready_fd = p[1];
	setsid();
	if (chdir("/") == -1)
		exit(1);
}

int main(int argc, char *argv[])
{
	struct daemon d = {
		.o = { .threads = 16, .timeout = 1.0, .writeback = -1, .takeover_fd = -1,
		       .max_jobs = -1 },
		.argc = argc,
		.argv = argv,
		.args = FUSE_ARGS_INIT(argc, argv),
		.source_fd = -1,
		.ready_fd = -1,
	};
	char fsname[PATH_MAX + 64];
	int ret;

	umask(0);	/* the kernel has applied the caller's umask already */
	log_init("relocfs", false, LOG_LVL_INFO);
	crashpoint_init();
	if (fuse_opt_parse(&d.args, &d, opt_spec, opt_proc) == -1)
		return 2;
	if (d.o.help || d.o.version) {
		if (d.o.help)
			usage(stdout);
		else
			/* "state layout N)" last: binaries look for it so */
			printf("relocfs %s (libfuse %s, state record %s, backing %s, "
			       "state layout %s)\n", RELOCFS_VERSION, fuse_pkgversion(),
			       MS_VERSION_STR, RELOCFS_BACKING_STR, RELOCFS_LAYOUT_STR);
		return 0;
	}
	if (d.o.debug) {
		d.o.foreground = 1;
		fuse_opt_add_arg(&d.args, "-odebug");
	}
	/* before check_args looks at the mountpoint: a dead mount there hangs
	 * (not after an upgrade's re-execution: it keeps the connection) */
	if (d.o.takeover_fd < 0 && d.o.npaths >= 1 && d.o.npaths <= 2)
		svc_drop_stored_connection(d.o.paths[d.o.npaths - 1]);
	ret = check_args(&d);
	if (ret)
		return ret;
	if (d.o.takeover_fd < 0) {
		if (prepare(&d))
			return 1;
		if (!d.o.foreground)
			background(&d);
	}
	snprintf(fsname, sizeof(fsname), "-ofsname=relocfs:%s,subtype=relocfs,default_permissions",
		 d.source);
	fuse_opt_insert_arg(&d.args, 1, fsname);
	return supervise(&d);
}
