/*
 * relocctl: tell a relocfs daemon to migrate, wait, cut over, abort, verify,
 * limit, or report its status; each of them of one named job (--job) or,
 * without a name, of the only job there is.
 *
 *   relocctl [-m MOUNTPOINT | -s SOCKET] COMMAND [ARGS]
 *
 * Exit status: 0 success, 1 failure (one line on stderr), 2 usage error.
 * The request is checked with the daemon's own parser (proto.c) before it is
 * sent, so usage errors never reach the daemon.  "wait" polls "status --json"
 * and draws progress itself; without --job it waits for every job.
 */
#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "ctl/proto.h"

static const char *prog = "relocctl";

static void usage(FILE *f)
{
	fprintf(f,
"usage: relocctl [-m MOUNTPOINT | -s SOCKET] COMMAND [ARGS]\n"
"       relocctl -V | --version\n"
"\n"
"commands:\n"
"  status [--job NAME] [--json]           jobs, their progress, where each file lives\n"
"  migrate --to DEST_DIR [--job NAME] [--rate BYTES_PER_S] [--priority P]\n"
"          [--deadline DURATION] [--delta-dir DIR] [FILE...]\n"
"                                         start moving the tree (or FILEs) to DEST_DIR;\n"
"                                         queued while --parallel jobs copy already\n"
"  migrate --to rbd:POOL[/PREFIX] [--ceph-conf PATH] [--ceph-id NAME] [...] FILE...\n"
"                                         move FILEs into RBD images, one each\n"
"  wait [--job NAME] [--timeout S]        until the job's files (every job's) are ready\n"
"  cutover [--job NAME] [--hook SPEC]... [--max-downtime MS] [--timeout S]\n"
"          [--remove-source] [--force]    switch the job's files to its DEST_DIR (hooks:\n"
"                                         freeze, none, qmp:SOCKET, qmp-rbd:SOCKET,\n"
"                                         libvirt:DOMAIN[@URI], exec:PROGRAM;\n"
"                                         qmp-migrate:SOCKET@URI hands the VM to another\n"
"                                         host; --force: such a VM runs there, QEMU\n"
"                                         cannot say)\n"
"  abort [--job NAME] [--force]           stop the job; the source keeps every write\n"
"                                         (--force: also after a hand-off whose end is\n"
"                                         unknown)\n"
"  verify [--job NAME]                    compare the job's destination with the live view\n"
"  limit [--job NAME] [--parallel N] [BYTES_PER_S]\n"
"                                         the mount's bandwidth for every job's copies and\n"
"                                         merges, or one job's (0: none), and how many jobs\n"
"                                         copy at once; without values, show them\n"
"  restart [--exec PATH] [--timeout S]    hand the mount, with every job, to a new worker\n"
"                                         process (of PATH: an upgrade) without unmounting\n"
"\n"
"--job NAME picks one of several jobs; without it a command means the only job\n"
"there is.  Sizes and rates take K, M, G, T (powers of 1024); durations s, m, h,\n"
"d (45m, 1h30m); a job's priority (1 to %d, default 100) is its weight in\n"
"sharing the bandwidth\n",
		CTL_PRIORITY_MAX);
}

static int die(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int die(int code, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "%s: ", prog);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(code);
}

/*
 * migrate --ceph-conf PATH --ceph-id NAME: folded into the RBD spec that
 * --to gives ("rbd:POOL/PREFIX:conf=PATH:id=NAME", the form the daemon and
 * the mount's record keep, as QEMU's rbd: filenames put options), so that
 * the protocol carries one destination string.  Returns the new argc.
 */
static int fold_ceph_options(int i, int argc, char **argv)
{
	const char *conf = NULL, *id = NULL;
	int to = -1, n = i;

	if (i >= argc || strcmp(argv[i], "migrate"))
		return argc;
	for (int k = i; k < argc; k++) {
		if (k + 1 < argc && !strcmp(argv[k], "--ceph-conf")) {
			conf = argv[++k];
			continue;
		}
		if (k + 1 < argc && !strcmp(argv[k], "--ceph-id")) {
			id = argv[++k];
			continue;
		}
		if (!strcmp(argv[k], "--ceph-conf") || !strcmp(argv[k], "--ceph-id"))
			die(2, "'%s' needs a value", argv[k]);
		if (k + 1 < argc && !strcmp(argv[k], "--to"))
			to = n + 1;
		argv[n++] = argv[k];
		if (k + 1 < argc && (!strcmp(argv[k], "--to") || !strcmp(argv[k], "--delta-dir") ||
				     !strcmp(argv[k], "--rate") || !strcmp(argv[k], "--job") ||
				     !strcmp(argv[k], "--priority") || !strcmp(argv[k], "--deadline")))
			argv[n++] = argv[++k];
	}
	if (!conf && !id)
		return n;
	if (to < 0 || strncmp(argv[to], "rbd:", 4))
		die(2, "--ceph-conf and --ceph-id go with an RBD destination (--to rbd:POOL)");
	if (strchr(argv[to] + 4, ':'))
		die(2, "give Ceph options either in '%s' or as --ceph-conf/--ceph-id", argv[to]);
	if (id && (!*id || strchr(id, ':')))
		die(2, "bad Ceph client name '%s'", id);
	if (conf) {
		char abs[PATH_MAX];

		if (!realpath(conf, abs))
			die(1, "cannot use Ceph configuration '%s': %s", conf, strerror(errno));
		if (strchr(abs, ':'))
			die(2, "Ceph configuration path '%s' may not contain ':'", abs);
		conf = strdup(abs);
	}
	if (asprintf(&argv[to], "%s%s%s%s%s", argv[to], conf ? ":conf=" : "", conf ? conf : "",
		     id ? ":id=" : "", id ? id : "") < 0)
		die(1, "out of memory");
	return n;
}

static int connect_to(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd;

	if (strlen(path) >= sizeof(sa.sun_path))
		die(2, "socket path '%s' is too long", path);
	strcpy(sa.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd == -1)
		die(1, "cannot create socket: %s", strerror(errno));
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == -1)
		die(1, "cannot reach the relocfs daemon at '%s': %s", path, strerror(errno));
	return fd;
}

/* One request, one reply.  Returns the reply's status; *out is its text. */
static int request(const char *sock, int argc, char **argv, char **out)
{
	static char buf[CTL_REQ_MAX];
	struct ctl_hdr h;
	int fd, len, ret;

	len = ctl_join_argv(argc, argv, buf, sizeof(buf));
	if (len < 0)
		die(2, "request too long");
	fd = connect_to(sock);
	ret = ctl_send(fd, CTL_T_REQUEST, 0, buf, (uint32_t)len);
	/* a daemon that refuses us (busy, another uid) replies and closes
	 * before it reads the request: its reply is still there to read */
	if (!ret || ret == -EPIPE || ret == -ECONNRESET)
		ret = ctl_recv(fd, CTL_T_REPLY, CTL_REPLY_MAX, &h, out);
	close(fd);
	if (ret)
		die(1, "no reply from the relocfs daemon: %s", strerror(-ret));
	return h.status;
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static bool state_in(const char *s, const char *const *set)
{
	for (; s && *set; set++)
		if (!strcmp(s, *set))
			return true;
	return false;
}

/* wait: poll status until every file of the job (of every job) is ready
 * (0), one failed (1), or time runs out (1) */
static int cmd_wait(const char *sock, const char *job, double timeout)
{
	static const char *const active[] = { "queued", "copying", "merging", "ready", "cutover",
					      "aborting", "failed", NULL };
	static const char *const finished[] = { "done", "ready", NULL };
	char *argv[] = { "status", "--json", "--job", (char *)job };
	bool tty = isatty(STDERR_FILENO);
	double start = now_s(), last_print = 0, rate = 0, prev_t = 0;
	uint64_t prev_done = 0;
	bool first = true;

	for (;;) {
		char *out = NULL, a[32], b[32], r[32];
		json_error_t jerr;
		json_t *root, *files, *jobs, *f;
		uint64_t total = 0, done = 0, delta = 0;
		size_t i, nfiles = 0, ready = 0, njobs = 0, jready = 0, nfin = 0, finready = 0;
		const char *failed = NULL, *failed_path = NULL, *failed_job = NULL;
		double t;
		int st = request(sock, job ? 4 : 2, argv, &out);

		if (st != CTL_OK)
			die(1, "%s", out && *out ? out : "status failed");
		root = json_loads(out, 0, &jerr);
		free(out);
		if (!root || !(files = json_object_get(root, "files")) || !json_is_array(files) ||
		    !(jobs = json_object_get(root, "jobs")) || !json_is_array(jobs))
			die(1, "bad status from the daemon");
		/* the jobs still at work (every one of them), or else the
		 * finished ones, as a wait after a cutover says ready */
		json_array_foreach(jobs, i, f) {
			const char *state = json_string_value(json_object_get(f, "state"));

			if (state_in(state, active)) {
				njobs++;
				jready += !strcmp(state, "ready");
				total += (uint64_t)json_integer_value(json_object_get(f, "bytes_total"));
				done += (uint64_t)json_integer_value(json_object_get(f, "bytes_copied"));
				if (!strcmp(state, "failed") && !failed_job) {
					failed_job = json_string_value(json_object_get(f, "name"));
					failed = json_string_value(json_object_get(f, "error"));
				}
			} else {
				nfin++;
				finready += state_in(state, finished);
			}
		}
		json_array_foreach(files, i, f) {
			const char *state = json_string_value(json_object_get(f, "state"));

			if (njobs && !state_in(state, active))
				continue;	/* a finished job's */
			nfiles++;
			delta += (uint64_t)json_integer_value(json_object_get(f, "delta_bytes"));
			if (state_in(state, finished))
				ready++;
			if (state && !strcmp(state, "failed") && !failed_path) {
				failed = json_string_value(json_object_get(f, "error"));
				failed_path = json_string_value(json_object_get(f, "path"));
			}
		}
		if (failed_path || failed_job) {
			if (tty)
				fputc('\n', stderr);
			if (failed_path)
				die(1, "migration of '%s' failed: %s", failed_path,
				    failed ? failed : "failed");
			die(1, "job '%s' could not start: %s", failed_job ? failed_job : "?",
			    failed ? failed : "failed");
		}
		if (!njobs) {
			json_decref(root);
			if (nfin && finready == nfin) {
				printf("ready: %zu file(s)\n", nfiles);
				return 0;
			}
			die(1, "nothing is migrating");
		}
		t = now_s();
		if (!first && t > prev_t) {
			double inst = ((double)done - (double)prev_done) / (t - prev_t);

			rate = rate == 0 ? inst : 0.7 * rate + 0.3 * inst;
			if (rate < 0)
				rate = 0;
		}
		prev_t = t;
		prev_done = done;
		first = false;
		ctl_fmt_bytes((double)done, a, sizeof(a));
		ctl_fmt_bytes((double)total, b, sizeof(b));
		ctl_fmt_bytes(rate, r, sizeof(r));
		if (jready == njobs) {
			json_decref(root);
			if (tty)
				fprintf(stderr, "\r\033[K");
			if (njobs > 1)
				printf("ready: %zu job(s), %zu file(s), %s copied\n", njobs, nfiles, b);
			else
				printf("ready: %zu file(s), %s copied\n", nfiles, b);
			return 0;
		}
		if (tty) {
			int width = 30, fill = total ? (int)(width * (double)done / (double)total) : 0;
			char bar[64];
			char eta[32] = "--";

			if (fill > width)
				fill = width;
			if (rate > 0 && total > done)
				snprintf(eta, sizeof(eta), "%.0fs", (double)(total - done) / rate);
			memset(bar, '#', (size_t)fill);
			memset(bar + fill, '.', (size_t)(width - fill));
			bar[width] = '\0';
			if (njobs > 1)
				fprintf(stderr, "\r[%s] %s / %s  %s/s  eta %s  %zu/%zu jobs ready\033[K",
					bar, a, b, r, eta, jready, njobs);
			else
				fprintf(stderr, "\r[%s] %s / %s  %s/s  eta %s  %zu/%zu ready\033[K", bar,
					a, b, r, eta, ready, nfiles);
		} else if (t - last_print >= 5) {
			printf("progress: %s / %s copied, %s/s, delta %llu bytes, %zu/%zu ready", a, b,
			       r, (unsigned long long)delta, ready, nfiles);
			if (njobs > 1)
				printf(", %zu/%zu jobs ready", jready, njobs);
			printf("\n");
			fflush(stdout);
			last_print = t;
		}
		json_decref(root);
		if (timeout > 0 && t - start >= timeout) {
			if (tty)
				fputc('\n', stderr);
			if (njobs > 1)
				die(1, "timed out after %.0f s: %zu of %zu job(s) ready", timeout, jready,
				    njobs);
			die(1, "timed out after %.0f s: %zu of %zu file(s) ready", timeout, ready, nfiles);
		}
		usleep(tty ? 250000 : 500000);
	}
}

/* The worker serving sock now, from status --json (0 if unknown). */
static long worker_pid(const char *sock, double *gap_ms)
{
	char *argv[] = { "status", "--json" };
	char *out = NULL;
	json_t *root;
	long pid = 0;

	if (request(sock, 2, argv, &out) == CTL_OK && (root = json_loads(out, 0, NULL))) {
		pid = (long)json_integer_value(json_object_get(root, "worker_pid"));
		if (gap_ms)
			*gap_ms = json_number_value(json_object_get(root, "last_unserved_ms"));
		json_decref(root);
	}
	free(out);
	return pid;
}

/* restart: the daemon hands the mount to a new worker; wait until it serves. */
static int cmd_restart(const char *sock, int argc, char **argv, double timeout)
{
	long old = worker_pid(sock, NULL), now;
	double start = now_s(), gap = 0;
	char *out = NULL;
	int st = request(sock, argc, argv, &out);

	if (st != CTL_OK) {
		fprintf(stderr, "%s: %s\n", prog, out && *out ? out : "failed");
		free(out);
		return st == CTL_EUSAGE ? 2 : 1;
	}
	free(out);
	if (timeout <= 0)
		timeout = 30;
	for (;;) {
		usleep(20000);
		now = worker_pid(sock, &gap);
		if (now && now != old)
			break;
		if (now_s() - start > timeout)
			die(1, "no new worker after %.0f s (the old one was %ld)", timeout, old);
	}
	printf("restarted: worker %ld serves (was %ld); the connection waited %.1f ms\n", now, old,
	       gap);
	return 0;
}

int main(int argc, char **argv)
{
	const char *mnt = NULL, *sock = NULL;
	char sockbuf[PATH_MAX], real[PATH_MAX], err[256], *out = NULL;
	const char *cargv[CTL_ARGV_MAX];
	struct ctl_request req;
	int i, status;

	signal(SIGPIPE, SIG_IGN);
	for (i = 1; i < argc && argv[i][0] == '-'; i++) {
		if (!strcmp(argv[i], "-m") && i + 1 < argc)
			mnt = argv[++i];
		else if (!strcmp(argv[i], "-s") && i + 1 < argc)
			sock = argv[++i];
		else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
			usage(stdout);
			return 0;
		} else if (!strcmp(argv[i], "-V") || !strcmp(argv[i], "--version")) {
			printf("relocctl %s\n", RELOCFS_VERSION);
			return 0;
		} else {
			fprintf(stderr, "%s: unknown option '%s' (see relocctl --help)\n", prog, argv[i]);
			return 2;
		}
	}
	if (i >= argc) {
		usage(stderr);
		return 2;
	}
	if (mnt && sock)
		die(2, "give -m or -s, not both");
	if (argc - i > CTL_ARGV_MAX)
		die(2, "too many arguments");
	/* the daemon runs in another directory: a new binary by its full path */
	for (int k = i + 1; k + 1 < argc; k++) {
		char abs[PATH_MAX];

		if (strcmp(argv[k], "--exec") || argv[k + 1][0] == '/')
			continue;
		if (!realpath(argv[k + 1], abs))
			die(1, "cannot use '%s': %s", argv[k + 1], strerror(errno));
		argv[k + 1] = strdup(abs);
	}
	argc = fold_ceph_options(i, argc, argv);
	for (int k = i; k < argc; k++)
		cargv[k - i] = argv[k];
	if (ctl_parse_request(argc - i, cargv, &req, err, sizeof(err)))
		die(2, "%s", err);
	if (!sock) {
		if (!mnt)
			mnt = ".";
		if (!realpath(mnt, real))
			die(1, "cannot use mountpoint '%s': %s", mnt, strerror(errno));
		if (ctl_socket_path(real, sockbuf, sizeof(sockbuf)))
			die(2, "socket path too long");
		sock = sockbuf;
		/* FILE arguments: paths through the mount become relative to it */
		if (req.cmd == CTL_CMD_MIGRATE) {
			size_t l = strlen(real);

			for (int k = i + 1; k < argc; k++) {
				bool file = false;

				for (int n = 0; n < req.nfiles; n++)
					file |= req.files[n] == argv[k];
				if (file && !strncmp(argv[k], real, l) && argv[k][l] == '/')
					argv[k] += l + 1;
			}
		}
	}
	/* the daemon runs in another directory: send absolute paths */
	if (req.cmd == CTL_CMD_CUTOVER) {
		char cwd[PATH_MAX];

		for (int k = i; k + 1 < argc; k++) {
			char *v = argv[k + 1], *colon = strchr(v, ':');
			size_t pl = colon ? (size_t)(colon - v) + 1 : 0;

			if (strcmp(argv[k], "--hook") || !colon || colon[1] == '/' ||
			    (strncmp(v, "qmp:", 4) && strncmp(v, "qmp-rbd:", 8) &&
			     !(strncmp(v, "exec:", 5) == 0 && strchr(colon, '/'))))
				continue;
			if (!getcwd(cwd, sizeof(cwd)) ||
			    asprintf(&argv[k + 1], "%.*s%s/%s", (int)pl, v, cwd, colon + 1) < 0)
				die(1, "cannot make '%s' absolute", v);
			k++;
		}
	}
	if (req.cmd == CTL_CMD_MIGRATE) {
		char cwd[PATH_MAX];

		for (int k = i; k + 1 < argc; k++) {
			if ((strcmp(argv[k], "--to") && strcmp(argv[k], "--delta-dir")) ||
			    argv[k + 1][0] == '/' || !strncmp(argv[k + 1], "rbd:", 4))
				continue;
			if (!getcwd(cwd, sizeof(cwd)) ||
			    asprintf(&argv[k + 1], "%s/%s", cwd, argv[k + 1]) < 0)
				die(1, "cannot make '%s' absolute", argv[k + 1]);
			k++;
		}
	}
	if (req.cmd == CTL_CMD_WAIT)
		return cmd_wait(sock, req.job, req.timeout_s);
	if (req.cmd == CTL_CMD_RESTART)
		return cmd_restart(sock, argc - i, argv + i, req.timeout_s);

	status = request(sock, argc - i, argv + i, &out);
	if (status == CTL_OK) {
		if (out && *out)
			fputs(out, stdout);
		if (out && *out && out[strlen(out) - 1] != '\n')
			fputc('\n', stdout);
	} else {
		fprintf(stderr, "%s: %s\n", prog, out && *out ? out : "failed");
	}
	free(out);
	return status == CTL_OK ? 0 : (status == CTL_EUSAGE ? 2 : 1);
}
