/*
 * server: accepts relocctl connections (see server.h).  Each connection
 * gets a detached thread that reads one request, checks it, runs it through
 * the handler it was started with (the job engine's engine_command) and
 * writes one reply.  Does not interpret commands itself.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/log.h"
#include "ctl/proto.h"
#include "ctl/server.h"

static struct {
	int fd;
	int stop_fd;		/* written once: the accept thread ends */
	char path[108];
	pthread_t thread;
	bool running;
	atomic_int clients;
	ctl_handler handler;
	void *handler_arg;
} srv = { .fd = -1, .stop_fd = -1 };

/* A connection to a control socket: does a daemon answer "status" on it
 * within timeout_ms?  (A daemon that was killed may keep its socket open
 * for a while in a process of it that is still ending, and never answers.) */
static bool answers(int fd, int timeout_ms)
{
	char *const argv[] = { "status", NULL };
	char buf[64];
	struct pollfd p = { .fd = fd, .events = POLLIN };
	struct ctl_hdr h;
	char *payload = NULL;
	int len = ctl_join_argv(1, argv, buf, sizeof(buf));

	if (len < 0 || ctl_send(fd, CTL_T_REQUEST, 0, buf, (uint32_t)len) ||
	    poll(&p, 1, timeout_ms) != 1 || ctl_recv(fd, CTL_T_REPLY, CTL_REPLY_MAX, &h, &payload))
		return false;
	free(payload);
	return true;
}

/* 1 if a live daemon listens at sa, 0 if nothing does (any socket file left
 * there is stale), -1 if something keeps the socket open without answering
 * for as long as we waited. */
static int daemon_listens(const struct sockaddr_un *sa)
{
	int64_t deadline = now_ms() + 10000;

	for (;;) {
		int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		int r;

		if (fd == -1)
			return 1;	/* cannot tell: say what is safe */
		if (connect(fd, (const struct sockaddr *)sa, sizeof(*sa)) == -1) {
			close(fd);
			return 0;
		}
		r = answers(fd, 2000);
		close(fd);
		if (r)
			return 1;
		if (now_ms() >= deadline)
			return -1;
		usleep(100000);
	}
}

int ctl_server_bind(const char *mountpoint, char *err, size_t errlen)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	const char *dir;
	char *slash;
	int fd;

	if (ctl_socket_path(mountpoint, srv.path, sizeof(srv.path))) {
		snprintf(err, errlen, "control socket path for '%s' is too long", mountpoint);
		return -ENAMETOOLONG;
	}
	memcpy(sa.sun_path, srv.path, sizeof(srv.path));
	slash = strrchr(srv.path, '/');
	if (slash) {
		*slash = '\0';
		dir = srv.path;
		if (mkdir(dir, 0700) == -1 && errno != EEXIST) {
			snprintf(err, errlen, "cannot create '%s': %s", dir, strerror(errno));
			*slash = '/';
			return -errno;
		}
		*slash = '/';
	}
	/* a socket file left by a daemon that died: remove it if nobody
	 * answers, once nothing keeps it open (a killed daemon's worker may
	 * still be ending: a service manager restarts relocfs at once) */
	switch (daemon_listens(&sa)) {
	case 1:
		snprintf(err, errlen, "a relocfs daemon already serves '%s'", mountpoint);
		return -EADDRINUSE;
	case -1:
		snprintf(err, errlen, "a process keeps the control socket of '%s' open but does "
			 "not answer on it (a relocfs daemon that hangs?)", mountpoint);
		return -EADDRINUSE;
	}
	unlink(srv.path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd == -1) {
		snprintf(err, errlen, "cannot create control socket: %s", strerror(errno));
		return -errno;
	}
	mode_t old = umask(077);
	int r = bind(fd, (struct sockaddr *)&sa, sizeof(sa));
	umask(old);
	if (r == -1 || chmod(srv.path, 0600) == -1 || listen(fd, 16) == -1) {
		snprintf(err, errlen, "cannot listen on '%s': %s", srv.path, strerror(errno));
		close(fd);
		return -errno;
	}
	srv.fd = fd;
	return 0;
}

static bool peer_allowed(int fd)
{
	struct ucred cred;
	socklen_t len = sizeof(cred);

	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == -1)
		return false;
	return cred.uid == 0 || cred.uid == geteuid();
}

static void reply(int fd, int status, const char *text)
{
	ctl_send(fd, CTL_T_REPLY, status, text, text ? (uint32_t)strlen(text) : 0);
}

/* Read exactly len bytes before deadline (CLOCK_MONOTONIC ms): a client
 * that trickles bytes cannot keep its slot past CTL_IDLE_S in total. */
static int read_by(int fd, void *buf, size_t len, int64_t deadline)
{
	char *p = buf;

	while (len > 0) {
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		int64_t now = now_ms();
		ssize_t n;
		int r;

		if (now >= deadline)
			return -ETIMEDOUT;
		r = poll(&pfd, 1, (int)(deadline - now));
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return r == 0 ? -ETIMEDOUT : -errno;
		n = read(fd, p, len);
		if (n < 0) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			return -errno;
		}
		if (n == 0)
			return -EPIPE;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

static int recv_request(int fd, struct ctl_hdr *h, char **payload)
{
	int64_t deadline = now_ms() + CTL_IDLE_S * 1000;
	int ret;

	*payload = NULL;
	ret = read_by(fd, h, sizeof(*h), deadline);
	if (!ret)
		ret = ctl_hdr_check(h, CTL_T_REQUEST, CTL_REQ_MAX);
	if (ret)
		return ret;
	*payload = malloc((size_t)h->len + 1);
	if (!*payload)
		return -ENOMEM;
	ret = h->len ? read_by(fd, *payload, h->len, deadline) : 0;
	if (ret) {
		free(*payload);
		*payload = NULL;
		return ret;
	}
	(*payload)[h->len] = '\0';
	return 0;
}

static void *client_thread(void *arg)
{
	int fd = (int)(intptr_t)arg;
	struct timeval tv = { .tv_sec = CTL_IDLE_S };	/* for the reply */
	const char *argv[CTL_ARGV_MAX];
	struct ctl_request req;
	struct ctl_hdr h;
	char *payload = NULL, *out = NULL, err[256];
	int argc, ret, status;

	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if (!peer_allowed(fd)) {
		reply(fd, CTL_EFAIL, "permission denied: not the daemon's user");
		goto out;
	}
	ret = recv_request(fd, &h, &payload);
	if (ret) {
		if (ret == -EMSGSIZE || ret == -EPROTO)
			reply(fd, CTL_EUSAGE, ret == -EMSGSIZE ? "request too large" : "bad request header");
		goto out;
	}
	argc = ctl_split_argv(payload, h.len, argv, CTL_ARGV_MAX);
	if (argc < 0) {
		reply(fd, CTL_EUSAGE, "malformed request");
		goto out;
	}
	if (ctl_parse_request(argc, argv, &req, err, sizeof(err))) {
		reply(fd, CTL_EUSAGE, err);
		goto out;
	}
	/* long commands (wait, cutover) keep the connection; nothing to read */
	tv.tv_sec = 0;
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	status = srv.handler(srv.handler_arg, &req, &out);
	reply(fd, status, out ? out : "");
out:
	free(out);
	free(payload);
	close(fd);
	atomic_fetch_sub(&srv.clients, 1);
	return NULL;
}

/*
 * The accept thread is never cancelled: a connection accepted and then
 * dropped by a cancellation would be reset under its client.  It polls the
 * listening socket (non-blocking) and the stop eventfd; a connection it has
 * not accepted when it stops waits in the backlog for the next worker.
 */
static void *accept_thread(void *arg)
{
	struct pollfd p[2] = { { .fd = srv.fd, .events = POLLIN },
			       { .fd = srv.stop_fd, .events = POLLIN } };

	for (;;) {
		pthread_attr_t attr;
		pthread_t t;
		int fd;

		if (poll(p, 2, -1) == -1) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (p[1].revents)
			break;
		fd = accept4(srv.fd, NULL, NULL, SOCK_CLOEXEC);
		if (fd == -1) {
			if (errno == EINTR || errno == EAGAIN || errno == ECONNABORTED ||
			    errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
				if (errno != EINTR && errno != EAGAIN && errno != ECONNABORTED)
					usleep(100000);
				continue;
			}
			break;	/* socket shut down */
		}
		if (atomic_fetch_add(&srv.clients, 1) >= CTL_MAX_CLIENTS) {
			atomic_fetch_sub(&srv.clients, 1);
			reply(fd, CTL_EFAIL, "daemon busy: too many control connections");
			close(fd);
			continue;
		}
		pthread_attr_init(&attr);
		pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
		if (pthread_create(&t, &attr, client_thread, (void *)(intptr_t)fd)) {
			atomic_fetch_sub(&srv.clients, 1);
			close(fd);
		}
		pthread_attr_destroy(&attr);
	}
	return NULL;
}

int ctl_server_start(ctl_handler handler, void *arg)
{
	if (srv.fd == -1)
		return -EBADF;
	srv.handler = handler;
	srv.handler_arg = arg;
	if (fcntl(srv.fd, F_SETFL, fcntl(srv.fd, F_GETFL) | O_NONBLOCK) == -1)
		return -errno;
	srv.stop_fd = eventfd(0, EFD_CLOEXEC);
	if (srv.stop_fd == -1)
		return -errno;
	if (pthread_create(&srv.thread, NULL, accept_thread, NULL)) {
		close(srv.stop_fd);
		srv.stop_fd = -1;
		return -EAGAIN;
	}
	srv.running = true;
	return 0;
}

int ctl_server_fd(void)
{
	return srv.fd;
}

void ctl_server_adopt(int fd, const char *mountpoint)
{
	srv.fd = fd;
	if (ctl_socket_path(mountpoint, srv.path, sizeof(srv.path)))
		srv.path[0] = '\0';
}

static void stop_accepting(void)
{
	uint64_t one = 1;

	if (!srv.running)
		return;
	if (write(srv.stop_fd, &one, sizeof(one)) != sizeof(one))
		log_warnx("control socket: cannot stop accepting: %s", strerror(errno));
	pthread_join(srv.thread, NULL);
	close(srv.stop_fd);
	srv.stop_fd = -1;
	srv.running = false;
}

void ctl_server_quiesce(void)
{
	stop_accepting();
	/* the commands in progress answer (a restart's own reply among them) */
	for (int i = 0; i < 10000 && atomic_load(&srv.clients) > 0; i++)
		usleep(1000);
}

void ctl_server_stop(void)
{
	if (srv.fd == -1)
		return;
	stop_accepting();
	shutdown(srv.fd, SHUT_RDWR);
	unlink(srv.path);
	close(srv.fd);
	srv.fd = -1;
}
