/*
 * ctlpoke: a hostile client for the daemon's control socket, for the tests
 * that check the daemon survives whatever a local peer sends it.
 *
 *   ctlpoke SOCKET MODE [ARG]
 *
 * Modes (each opens its own connection(s) and prints one line: the mode,
 * then what came back: "reply STATUS 'TEXT'", "EOF", or the error):
 *   status        a valid "status" request
 *   unknown       a well-framed request with an unknown command
 *   oversized [LEN]  a header whose len exceeds CTL_REQ_MAX, followed by as
 *                 many bytes as the daemon will take; without LEN, each of
 *                 CTL_REQ_MAX + 1, 2^31 and 2^32 - 1 on its own connection
 *   truncated     a header for a 1000-byte request, half of it, then the
 *                 write side is shut (the daemon sees EOF mid-payload)
 *   badmagic, badversion, badtype   a "status" request with that header
 *                 field wrong
 *   noterm        a payload "status" without its final NUL
 *   empty         a header with len 0 and no payload
 *   manyargs      CTL_ARGV_MAX + 1 arguments
 *   garbage N     N random bytes (seed from CTLPOKE_SEED, else the pid),
 *                 then the write side is shut
 *   slow [MS]     a valid "status" request, one byte per MS ms (default 200)
 *   halfclose     a valid "status" request, shutdown(SHUT_WR), then the reply
 *   idle [S]      connect, send nothing; wait for the daemon to drop us, or
 *                 give up after S seconds (default 30); prints the time taken
 *   flood N       N threads connect at once and each asks for status; prints
 *                 how many got a reply ok, "busy", another reply, EOF, or an
 *                 error
 *   mute S        no client: listen on SOCKET and never accept, for S
 *                 seconds (a killed daemon whose last process is ending);
 *                 prints "listening" once it does
 *
 *   ctlpoke --path MOUNTPOINT   prints the control socket of MOUNTPOINT
 *
 * Exit status: 0 when the exchange ran (whatever the daemon answered), 1 when
 * the socket could not be reached or a local call failed, 2 on usage errors.
 * It judges nothing: the test script compares the line with what it expects.
 *
 * proto.c is compiled in, so the tool builds from this one file.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "ctl/proto.c"

static const char *sock_path;

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Connect, with a receive timeout so that a daemon that never answers shows
 * as an error rather than a hang.  -errno on failure. */
static int poke_connect(int timeout_s)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct timeval tv = { .tv_sec = timeout_s };
	int fd;

	if (strlen(sock_path) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	strcpy(sa.sun_path, sock_path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd == -1)
		return -errno;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == -1) {
		int err = -errno;

		close(fd);
		return err;
	}
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	return fd;
}

static int connect_or_die(const char *mode, int timeout_s)
{
	int fd = poke_connect(timeout_s);

	if (fd < 0) {
		printf("%s: cannot connect to '%s': %s\n", mode, sock_path, strerror(-fd));
		exit(1);
	}
	return fd;
}

/* The reply's text on one line: control characters as \n, \t or \xNN,
 * at most 300 bytes of it. */
static void put_text(FILE *f, const char *s)
{
	size_t n = 0;

	fputc('\'', f);
	for (; *s && n < 300; s++, n++) {
		unsigned char c = (unsigned char)*s;

		if (c == '\n')
			fputs("\\n", f);
		else if (c == '\t')
			fputs("\\t", f);
		else if (c < 0x20 || c == 0x7f)
			fprintf(f, "\\x%02x", c);
		else
			fputc(c, f);
	}
	if (*s)
		fputs("...", f);
	fputc('\'', f);
}

enum outcome { O_REPLY, O_EOF, O_ERROR };

/* Read one reply; describe it (without newline) to f.  The text, if any, is
 * left in *text (malloc'd) for callers that classify it. */
static enum outcome read_reply(int fd, FILE *f, int *status, char **text)
{
	struct ctl_hdr h;
	char *payload = NULL;
	int ret = ctl_recv(fd, CTL_T_REPLY, CTL_REPLY_MAX, &h, &payload);

	if (text)
		*text = NULL;
	if (ret == -EPIPE) {
		if (f)
			fputs("EOF", f);
		return O_EOF;
	}
	if (ret) {
		if (f)
			fprintf(f, "error %s", ret == -EAGAIN ? "timeout" : strerror(-ret));
		return O_ERROR;
	}
	if (f) {
		fprintf(f, "reply %d ", h.status);
		put_text(f, payload);
	}
	*status = h.status;
	if (text)
		*text = payload;
	else
		free(payload);
	return O_REPLY;
}

static void finish(const char *mode, int fd)
{
	int status;

	printf("%s: ", mode);
	read_reply(fd, stdout, &status, NULL);
	putchar('\n');
	close(fd);
}

/* Send bytes, ignoring a daemon that has stopped reading (EPIPE, ECONNRESET). */
static void send_bytes(int fd, const void *buf, size_t len)
{
	(void)ctl_write_all(fd, buf, len);
}

static struct ctl_hdr header(uint32_t len)
{
	struct ctl_hdr h = {
		.magic = CTL_MAGIC, .version = CTL_VERSION, .type = CTL_T_REQUEST, .len = len,
	};
	return h;
}

/* A whole request: header h, then len bytes of payload. */
static void send_request(int fd, struct ctl_hdr h, const void *payload, size_t len)
{
	send_bytes(fd, &h, sizeof(h));
	send_bytes(fd, payload, len);
}

static const char status_req[] = "status";	/* with its NUL: 7 bytes */

static void mode_simple(const char *mode, const char *payload, size_t len)
{
	int fd = connect_or_die(mode, 30);

	send_request(fd, header((uint32_t)len), payload, len);
	finish(mode, fd);
}

static void mode_badheader(const char *mode)
{
	struct ctl_hdr h = header(sizeof(status_req));
	int fd = connect_or_die(mode, 30);

	if (!strcmp(mode, "badmagic"))
		h.magic = 0x32434c52u;		/* "RLC2" */
	else if (!strcmp(mode, "badversion"))
		h.version = CTL_VERSION + 1;
	else
		h.type = CTL_T_REPLY;
	send_request(fd, h, status_req, sizeof(status_req));
	finish(mode, fd);
}

static void mode_oversized(const char *arg)
{
	static const uint32_t lens[] = { CTL_REQ_MAX + 1, 1u << 31, UINT32_MAX };
	static char junk[CTL_REQ_MAX + 1];
	uint32_t one = 0;
	size_t n = sizeof(lens) / sizeof(lens[0]);

	if (arg) {
		char *end;
		unsigned long v = strtoul(arg, &end, 0);

		if (*end || v > UINT32_MAX) {
			fprintf(stderr, "ctlpoke: bad length '%s'\n", arg);
			exit(2);
		}
		one = (uint32_t)v;
		n = 1;
	}
	memset(junk, 'A', sizeof(junk));
	printf("oversized:");
	for (size_t i = 0; i < n; i++) {
		uint32_t len = arg ? one : lens[i];
		int fd = connect_or_die("oversized", 30), status;
		struct ctl_hdr h = header(len);

		/* the header, then more than the daemon's limit: a daemon that
		 * read the payload before checking the length would take it */
		send_bytes(fd, &h, sizeof(h));
		shutdown(fd, SHUT_WR);	/* the reply must come from the header alone */
		printf(" len=%u ", len);
		read_reply(fd, stdout, &status, NULL);
		close(fd);

		/* and once more with the bytes sent, as far as the socket takes them */
		fd = connect_or_die("oversized", 30);
		{
			struct timeval tv = { .tv_sec = 2 };

			setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
		}
		send_bytes(fd, &h, sizeof(h));
		send_bytes(fd, junk, sizeof(junk));
		printf("; len=%u+data ", len);
		read_reply(fd, stdout, &status, NULL);
		close(fd);
		if (i + 1 < n)
			printf(";");
	}
	putchar('\n');
}

static void mode_truncated(void)
{
	static char payload[1000];
	int fd = connect_or_die("truncated", 30);
	struct ctl_hdr h = header(sizeof(payload));

	memset(payload, 'a', sizeof(payload));
	payload[sizeof(payload) - 1] = '\0';
	memcpy(payload, "status", sizeof("status"));
	send_bytes(fd, &h, sizeof(h));
	send_bytes(fd, payload, sizeof(payload) / 2);
	shutdown(fd, SHUT_WR);
	finish("truncated", fd);
}

static void mode_manyargs(void)
{
	char payload[2 * (CTL_ARGV_MAX + 1) + 8];
	size_t len = 0;

	memcpy(payload, status_req, sizeof(status_req));
	len = sizeof(status_req);
	for (int i = 1; i <= CTL_ARGV_MAX; i++) {
		payload[len++] = 'x';
		payload[len++] = '\0';
	}
	mode_simple("manyargs", payload, len);
}

static void mode_garbage(const char *arg)
{
	const char *seed_env = getenv("CTLPOKE_SEED");
	unsigned seed = seed_env ? (unsigned)strtoul(seed_env, NULL, 0) : (unsigned)getpid();
	char *end = NULL;
	unsigned long n = arg ? strtoul(arg, &end, 10) : 0;
	unsigned char *buf;
	int fd;

	if (!arg || *end || n > (64ul << 20)) {
		fprintf(stderr, "usage: ctlpoke SOCKET garbage N (N <= 64 MiB)\n");
		exit(2);
	}
	buf = malloc(n ? n : 1);
	if (!buf) {
		printf("garbage: out of memory\n");
		exit(1);
	}
	srandom(seed);
	for (unsigned long i = 0; i < n; i++)
		buf[i] = (unsigned char)(random() >> 7);
	fd = connect_or_die("garbage", 30);
	{
		struct timeval tv = { .tv_sec = 2 };

		setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	}
	send_bytes(fd, buf, n);
	shutdown(fd, SHUT_WR);
	free(buf);
	{
		char label[64];

		snprintf(label, sizeof(label), "garbage %lu (seed %u)", n, seed);
		finish(label, fd);
	}
}

static void mode_slow(const char *arg)
{
	long ms = arg ? atol(arg) : 200;
	unsigned char msg[sizeof(struct ctl_hdr) + sizeof(status_req)];
	struct ctl_hdr h = header(sizeof(status_req));
	int fd = connect_or_die("slow", 30);

	memcpy(msg, &h, sizeof(h));
	memcpy(msg + sizeof(h), status_req, sizeof(status_req));
	for (size_t i = 0; i < sizeof(msg); i++) {
		send_bytes(fd, msg + i, 1);
		usleep((useconds_t)(ms > 0 ? ms : 200) * 1000);
	}
	finish("slow", fd);
}

static void mode_halfclose(void)
{
	int fd = connect_or_die("halfclose", 30);

	send_request(fd, header(sizeof(status_req)), status_req, sizeof(status_req));
	shutdown(fd, SHUT_WR);
	finish("halfclose", fd);
}

static void mode_idle(const char *arg)
{
	int limit = arg ? atoi(arg) : 30;
	double t0 = now_s();
	int fd = connect_or_die("idle", limit > 0 ? limit : 30), status;

	printf("idle: ");
	read_reply(fd, stdout, &status, NULL);
	printf(" after %.1f s\n", now_s() - t0);
	close(fd);
}

struct flood {
	pthread_mutex_t lock;
	pthread_barrier_t go;
	int ok, busy, other, eof, error, noconn;
	char first_other[200];		/* protected by lock */
};

static void *flood_one(void *arg)
{
	struct flood *fl = arg;
	enum outcome o = O_ERROR;
	char *text = NULL;
	int status = -1, fd;

	pthread_barrier_wait(&fl->go);
	fd = poke_connect(30);
	if (fd >= 0) {
		send_request(fd, header(sizeof(status_req)), status_req, sizeof(status_req));
		o = read_reply(fd, NULL, &status, &text);
		close(fd);
	}
	pthread_mutex_lock(&fl->lock);
	if (fd < 0)
		fl->noconn++;
	else if (o == O_EOF)
		fl->eof++;
	else if (o == O_ERROR)
		fl->error++;
	else if (status == CTL_OK)
		fl->ok++;
	else if (status == CTL_EFAIL && text && strstr(text, "busy"))
		fl->busy++;
	else {
		if (!fl->other)
			snprintf(fl->first_other, sizeof(fl->first_other), "%d %s", status,
				 text ? text : "");
		fl->other++;
	}
	pthread_mutex_unlock(&fl->lock);
	free(text);
	return NULL;
}

static void mode_flood(const char *arg)
{
	char *end = NULL;
	long n = arg ? strtol(arg, &end, 10) : 0;
	struct flood fl = { .lock = PTHREAD_MUTEX_INITIALIZER };
	pthread_t *t;
	pthread_attr_t attr;
	long started = 0;

	if (!arg || *end || n < 1 || n > 4000) {
		fprintf(stderr, "usage: ctlpoke SOCKET flood N (1 <= N <= 4000)\n");
		exit(2);
	}
	t = calloc((size_t)n, sizeof(*t));
	if (!t || pthread_barrier_init(&fl.go, NULL, (unsigned)n)) {
		printf("flood: out of memory\n");
		exit(1);
	}
	pthread_attr_init(&attr);
	pthread_attr_setstacksize(&attr, 256 << 10);
	for (long i = 0; i < n; i++) {
		if (pthread_create(&t[i], &attr, flood_one, &fl)) {
			/* the barrier counts n: without every thread nobody starts */
			printf("flood: cannot start thread %ld of %ld\n", i + 1, n);
			exit(1);
		}
		started++;
	}
	for (long i = 0; i < started; i++)
		pthread_join(t[i], NULL);
	pthread_attr_destroy(&attr);
	pthread_barrier_destroy(&fl.go);
	free(t);
	printf("flood %ld: %d ok, %d busy, %d other, %d eof, %d error, %d noconnect", n, fl.ok,
	       fl.busy, fl.other, fl.eof, fl.error, fl.noconn);
	if (fl.other) {
		printf(" (first other: ");
		put_text(stdout, fl.first_other);
		putchar(')');
	}
	putchar('\n');
}

static void mode_mute(const char *arg)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);
	int secs = arg ? atoi(arg) : 0;

	if (secs <= 0 || strlen(sock_path) >= sizeof(sa.sun_path)) {
		fprintf(stderr, "ctlpoke: mute needs seconds and a short path\n");
		exit(2);
	}
	strcpy(sa.sun_path, sock_path);
	if (fd == -1 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == -1 || listen(fd, 4) == -1) {
		perror("ctlpoke: mute");
		exit(1);
	}
	printf("listening\n");
	sleep((unsigned)secs);
	close(fd);
	unlink(sock_path);
}

static void usage(void)
{
	fprintf(stderr,
		"usage: ctlpoke SOCKET MODE [ARG]\n"
		"modes: status unknown oversized [LEN] truncated badmagic badversion badtype\n"
		"       noterm empty manyargs garbage N slow [MS] halfclose idle [S] flood N\n"
		"       mute S\n"
		"       ctlpoke --path MOUNTPOINT\n");
	exit(2);
}

int main(int argc, char **argv)
{
	const char *mode, *arg;

	if (argc == 3 && !strcmp(argv[1], "--path")) {
		char path[108];

		if (ctl_socket_path(argv[2], path, sizeof(path)))
			return 1;
		printf("%s\n", path);
		return 0;
	}
	if (argc < 3 || argc > 4)
		usage();
	sock_path = argv[1];
	mode = argv[2];
	arg = argc == 4 ? argv[3] : NULL;
	if (arg && (!strcmp(mode, "status") || !strcmp(mode, "unknown") ||
		    !strcmp(mode, "truncated") ||
		    !strcmp(mode, "halfclose") || !strcmp(mode, "noterm") ||
		    !strcmp(mode, "empty") || !strcmp(mode, "manyargs") ||
		    !strncmp(mode, "bad", 3)))
		usage();
	signal(SIGPIPE, SIG_IGN);
	setvbuf(stdout, NULL, _IOLBF, 0);

	if (!strcmp(mode, "status"))
		mode_simple(mode, status_req, sizeof(status_req));
	else if (!strcmp(mode, "unknown"))
		mode_simple(mode, "frobnicate\0--now", sizeof("frobnicate\0--now"));
	else if (!strcmp(mode, "noterm"))
		mode_simple(mode, status_req, strlen(status_req));
	else if (!strcmp(mode, "empty"))
		mode_simple(mode, "", 0);
	else if (!strcmp(mode, "oversized"))
		mode_oversized(arg);
	else if (!strcmp(mode, "truncated"))
		mode_truncated();
	else if (!strcmp(mode, "badmagic") || !strcmp(mode, "badversion") ||
		 !strcmp(mode, "badtype"))
		mode_badheader(mode);
	else if (!strcmp(mode, "manyargs"))
		mode_manyargs();
	else if (!strcmp(mode, "garbage"))
		mode_garbage(arg);
	else if (!strcmp(mode, "slow"))
		mode_slow(arg);
	else if (!strcmp(mode, "halfclose"))
		mode_halfclose();
	else if (!strcmp(mode, "idle"))
		mode_idle(arg);
	else if (!strcmp(mode, "flood"))
		mode_flood(arg);
	else if (!strcmp(mode, "mute"))
		mode_mute(arg);
	else
		usage();
	return 0;
}
