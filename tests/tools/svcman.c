/*
 * svcman: the part of systemd that a Type=notify service with a file
 * descriptor store talks to, for tests on a machine where systemd is not
 * PID 1.
 *
 *   svcman [-m MOUNTPOINT] [-r RESTARTS] [-t SECONDS] -- COMMAND [ARG...]
 *
 * Runs COMMAND with NOTIFY_SOCKET set to a datagram socket of its own and
 * prints, one line each, flushed at once:
 *   started: pid PID              COMMAND runs (again)
 *   notify: pid PID: KEY=VALUE    each line of each message, with the
 *                                 sender's pid (SO_PASSCRED)
 *   ready: mounted                on READY=1, with -m: the topmost mount at
 *                                 MOUNTPOINT is fuse.relocfs and a stat of it
 *                                 is answered; else "ready: not mounted: WHY"
 *   fdstore: NAME TARGET          FDSTORE=1: a descriptor kept (TARGET is
 *                                 what /proc/self/fd/N links to)
 *   fdstore: removed NAME         FDSTOREREMOVE=1
 *   fdstore: hung up NAME         POLLERR or POLLHUP on a kept descriptor
 *                                 (systemd drops those too)
 *   exited: status N | killed: signal N
 * When COMMAND ends and restarts are left (-r, default 0), it is started
 * again with the kept descriptors as systemd passes them: from fd 3, with
 * LISTEN_FDS, LISTEN_FDNAMES and LISTEN_PID.  Otherwise svcman closes
 * them and exits 0.  SIGTERM or SIGINT to svcman is passed on to COMMAND.
 * After -t SECONDS (default 300) it kills COMMAND and exits 1.
 *
 * What it does not do: MAINPID=, watchdogs, credentials checks
 * (NotifyAccess=all), more than 16 kept descriptors.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_FDS 16

struct kept {
	int fd;
	char name[256];
};

static struct kept kept[MAX_FDS];
static int nkept;
static volatile sig_atomic_t got_signal;
static const char *mountpoint;

static void on_signal(int sig)
{
	got_signal = sig;
}

static void on_child(int sig)
{
	(void)sig;	/* wakes poll */
}

static void drop_kept(int i, const char *why)
{
	printf("fdstore: %s %s\n", why, kept[i].name);
	close(kept[i].fd);
	kept[i] = kept[--nkept];
}

/* the topmost mount at path is fuse.relocfs (mounts stacked later are listed later) */
static bool top_is_relocfs(const char *path)
{
	FILE *f = fopen("/proc/self/mountinfo", "r");
	char line[8192];
	bool relocfs = false;

	if (!f)
		return false;
	while (fgets(line, sizeof(line), f)) {
		char point[4096], fstype[256];
		const char *sep = strstr(line, " - ");

		if (!sep || sscanf(line, "%*s %*s %*s %*s %4095s", point) != 1 ||
		    sscanf(sep + 3, "%255s", fstype) != 1)
			continue;
		if (strcmp(point, path) == 0)
			relocfs = strcmp(fstype, "fuse.relocfs") == 0;
	}
	fclose(f);
	return relocfs;
}

static void check_ready(void)
{
	struct stat st;

	if (!mountpoint)
		return;
	if (!top_is_relocfs(mountpoint))
		printf("ready: not mounted: '%s' is not a relocfs mount\n", mountpoint);
	else if (stat(mountpoint, &st) == -1)
		printf("ready: not mounted: stat '%s': %s\n", mountpoint, strerror(errno));
	else
		printf("ready: mounted\n");
}

static void receive(int sock)
{
	char buf[4096], cbuf[CMSG_SPACE(sizeof(int) * MAX_FDS) + CMSG_SPACE(sizeof(struct ucred))];
	struct iovec iov = { buf, sizeof(buf) - 1 };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf,
			     .msg_controllen = sizeof(cbuf) };
	int fds[MAX_FDS], nfds = 0;
	pid_t pid = 0;
	bool fdstore = false, fdremove = false, ready = false;
	char name[256] = "stored";
	ssize_t n = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);

	if (n < 0)
		return;
	buf[n] = '\0';
	for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
		if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
			int k = (int)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));

			memcpy(fds + nfds, CMSG_DATA(c), sizeof(int) * (size_t)k);
			nfds += k;
		} else if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_CREDENTIALS) {
			struct ucred cr;

			memcpy(&cr, CMSG_DATA(c), sizeof(cr));
			pid = cr.pid;
		}
	}
	for (char *line = strtok(buf, "\n"); line; line = strtok(NULL, "\n")) {
		printf("notify: pid %d: %s\n", (int)pid, line);
		if (!strcmp(line, "FDSTORE=1"))
			fdstore = true;
		else if (!strcmp(line, "FDSTOREREMOVE=1"))
			fdremove = true;
		else if (!strcmp(line, "READY=1"))
			ready = true;
		else if (!strncmp(line, "FDNAME=", 7))
			snprintf(name, sizeof(name), "%s", line + 7);
	}
	for (int i = 0; i < nfds; i++) {
		char link[64], target[256] = "?";
		ssize_t l;

		if (!fdstore || nkept >= MAX_FDS) {
			close(fds[i]);
			continue;
		}
		snprintf(link, sizeof(link), "/proc/self/fd/%d", fds[i]);
		l = readlink(link, target, sizeof(target) - 1);
		target[l > 0 ? l : 1] = '\0';
		kept[nkept].fd = fds[i];
		snprintf(kept[nkept].name, sizeof(kept[nkept].name), "%s", name);
		nkept++;
		printf("fdstore: %s %s\n", name, target);
	}
	if (fdremove)
		for (int i = nkept - 1; i >= 0; i--)
			if (!strcmp(kept[i].name, name))
				drop_kept(i, "removed");
	if (ready)
		check_ready();
}

static pid_t start(char **argv, const char *sockpath)
{
	pid_t pid = fork();

	if (pid == -1) {
		perror("svcman: fork");
		exit(1);
	}
	if (pid == 0) {
		char names[4096] = "", num[32];
		sigset_t none;

		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		setenv("NOTIFY_SOCKET", sockpath, 1);
		unsetenv("LISTEN_FDS");
		unsetenv("LISTEN_FDNAMES");
		unsetenv("LISTEN_PID");
		if (nkept) {
			/* move them out of the way first: 3.. may be taken */
			for (int i = 0; i < nkept; i++)
				kept[i].fd = fcntl(kept[i].fd, F_DUPFD_CLOEXEC, 3 + MAX_FDS);
			for (int i = 0; i < nkept; i++) {
				dup2(kept[i].fd, 3 + i);	/* dup2 clears FD_CLOEXEC */
				if (i)
					strcat(names, ":");
				strncat(names, kept[i].name, sizeof(names) - strlen(names) - 2);
			}
			snprintf(num, sizeof(num), "%d", nkept);
			setenv("LISTEN_FDS", num, 1);
			setenv("LISTEN_FDNAMES", names, 1);
			snprintf(num, sizeof(num), "%d", (int)getpid());
			setenv("LISTEN_PID", num, 1);
		}
		execvp(argv[0], argv);
		fprintf(stderr, "svcman: cannot run '%s': %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	printf("started: pid %d\n", (int)pid);
	return pid;
}

int main(int argc, char **argv)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct sigaction sig = { .sa_handler = on_signal }, chld = { .sa_handler = on_child };
	int restarts = 0, timeout = 300, opt, sock, one = 1, status;
	time_t deadline;
	pid_t child;

	while ((opt = getopt(argc, argv, "m:r:t:")) != -1) {
		switch (opt) {
		case 'm': mountpoint = optarg; break;
		case 'r': restarts = atoi(optarg); break;
		case 't': timeout = atoi(optarg); break;
		default:
			fprintf(stderr, "usage: svcman [-m MOUNTPOINT] [-r RESTARTS] [-t SECONDS] -- COMMAND [ARG...]\n");
			return 2;
		}
	}
	if (optind >= argc) {
		fprintf(stderr, "svcman: no command\n");
		return 2;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/svcman.%d.sock",
		 getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp", (int)getpid());
	sock = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	unlink(sa.sun_path);
	if (sock == -1 || bind(sock, (struct sockaddr *)&sa, sizeof(sa)) == -1 ||
	    setsockopt(sock, SOL_SOCKET, SO_PASSCRED, &one, sizeof(one)) == -1) {
		fprintf(stderr, "svcman: cannot make '%s': %s\n", sa.sun_path, strerror(errno));
		return 1;
	}
	sigaction(SIGTERM, &sig, NULL);
	sigaction(SIGINT, &sig, NULL);
	sigaction(SIGCHLD, &chld, NULL);
	child = start(argv + optind, sa.sun_path);
	deadline = time(NULL) + timeout;
	for (;;) {
		struct pollfd p[1 + MAX_FDS] = { { .fd = sock, .events = POLLIN } };
		pid_t w;

		for (int i = 0; i < nkept; i++)
			p[1 + i] = (struct pollfd){ .fd = kept[i].fd, .events = 0 };
		poll(p, (nfds_t)(1 + nkept), 200);
		if (p[0].revents & POLLIN)
			while (p[0].revents & POLLIN) {
				receive(sock);
				if (poll(p, 1, 0) <= 0)
					break;
			}
		for (int i = nkept - 1; i >= 0; i--)
			if (p[1 + i].revents & (POLLERR | POLLHUP))
				drop_kept(i, "hung up");
		if (got_signal) {
			kill(child, got_signal);
			got_signal = 0;
			restarts = 0;
		}
		if (time(NULL) > deadline) {
			printf("timeout: killing pid %d\n", (int)child);
			kill(child, SIGKILL);
			waitpid(child, NULL, 0);
			unlink(sa.sun_path);
			return 1;
		}
		w = waitpid(child, &status, WNOHANG);
		if (w != child)
			continue;
		/* what it sent just before it ended is for this run */
		while (poll(p, 1, 0) > 0 && (p[0].revents & POLLIN))
			receive(sock);
		if (WIFSIGNALED(status))
			printf("killed: signal %d\n", WTERMSIG(status));
		else
			printf("exited: status %d\n", WEXITSTATUS(status));
		if (restarts-- <= 0)
			break;
		child = start(argv + optind, sa.sun_path);
	}
	while (nkept)
		drop_kept(nkept - 1, "released");
	unlink(sa.sun_path);
	return 0;
}
