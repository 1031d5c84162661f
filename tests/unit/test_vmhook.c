// modules: vmhooks/vmhook.c vmhooks/qmp.c vmhooks/qmp_hook.c vmhooks/qmp_rbd.c vmhooks/qmp_migrate_hook.c vmhooks/exec_hook.c vmhooks/libvirt_hook.c vmhooks/hook_util.c common/log.c common/crashpoint.c
/*
 * test_vmhook: the hooks against real peers.
 *
 *  - spec parsing;
 *  - the exec hook running real shell scripts (exit codes, timeout with the
 *    process group killed, the environment it passes);
 *  - the qmp client and hook against a small QMP server in a thread on a
 *    UNIX socket, speaking the protocol as QEMU does: greeting, events sent
 *    before and after replies, "\r\n" line ends, replies split across
 *    writes, a stale reply, error replies, a server that closes in the
 *    middle of "stop", one that never greets;
 *  - the libvirt hook against a virsh stand-in script (argument order, exit
 *    codes);
 *  - with RELOCFS_TEST_QMP_SOCKET / RELOCFS_TEST_LIBVIRT_DOMAIN set (by
 *    tests/vm/hook_qmp.sh and tests/vm/hook_libvirt.sh), the same hooks
 *    against a real QEMU and a real libvirtd; skipped otherwise.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "common/log.h"
#include "vmhooks/hook_impl.h"
#include "vmhooks/qmp.h"
#include "vmhooks/vmhook.h"

static char tmpdir[64];

static void path_in_tmp(char *buf, size_t len, const char *name)
{
	snprintf(buf, len, "%s/%s", tmpdir, name);
}

static void write_script(const char *name, const char *body, char *path, size_t len)
{
	FILE *f;

	path_in_tmp(path, len, name);
	f = fopen(path, "w");
	assert_non_null(f);
	fprintf(f, "#!/bin/sh\n%s", body);
	fclose(f);
	assert_int_equal(chmod(path, 0755), 0);
}

static char *slurp(const char *path)
{
	static char buf[8192];
	FILE *f = fopen(path, "r");
	size_t n = 0;

	buf[0] = '\0';
	if (f) {
		n = fread(buf, 1, sizeof(buf) - 1, f);
		fclose(f);
	}
	buf[n] = '\0';
	return buf;
}

/* ------------------------------------------------------------ spec parsing */

static void test_spec_none_and_freeze_are_internal(void **state)
{
	struct vmhook *h;
	char err[256];

	assert_int_equal(vmhook_new("none", &h, err, sizeof(err)), 0);
	assert_true(vmhook_is_internal(h));
	assert_string_equal(vmhook_spec(h), "none");
	assert_int_equal(vmhook_pause(h, "/mnt", NULL, 0, 100, err, sizeof(err)), 0);
	assert_int_equal(vmhook_resume(h, 100, err, sizeof(err)), 0);
	vmhook_free(h);
	assert_int_equal(vmhook_new("freeze", &h, err, sizeof(err)), 0);
	assert_true(vmhook_is_internal(h));
	vmhook_free(h);
}

static void test_spec_unknown_kind_is_rejected_with_one_line(void **state)
{
	struct vmhook *h = (void *)1;
	char err[256];

	assert_int_equal(vmhook_new("ssh:host", &h, err, sizeof(err)), -EINVAL);
	assert_null(h);
	assert_string_equal(err, "unknown hook 'ssh:host' (expected qmp:SOCKET, qmp-rbd:SOCKET, "
			    "qmp-migrate:SOCKET@URI, libvirt:DOMAIN[@URI], exec:PROGRAM, freeze or none)");
	assert_int_equal(vmhook_new("", &h, err, sizeof(err)), -EINVAL);
	assert_int_equal(vmhook_new("qmp", &h, err, sizeof(err)), -EINVAL);
}

static void test_spec_qmp_migrate_needs_socket_at_uri(void **state)
{
	struct vmhook *h;
	char err[256];

	assert_int_equal(vmhook_new("qmp-migrate:/run/v@1.qmp@tcp:10.0.0.2:4444", &h, err,
				    sizeof(err)), 0);
	assert_true(vmhook_hands_off(h));
	assert_false(vmhook_is_internal(h));
	vmhook_free(h);
	assert_int_equal(vmhook_new("qmp-migrate:/run/vm1.qmp@unix:/run/mig.sock", &h, err,
				    sizeof(err)), 0);
	vmhook_free(h);
	assert_int_equal(vmhook_new("qmp-migrate:/run/vm1.qmp", &h, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "expected SOCKET@URI"));
	assert_int_equal(vmhook_new("qmp-migrate:/run/vm1.qmp@ftp:x", &h, err, sizeof(err)), -EINVAL);
	assert_int_equal(vmhook_new("qmp-migrate:@tcp:h:1", &h, err, sizeof(err)), -EINVAL);
	assert_int_equal(vmhook_new("qmp-migrate:vm1.qmp@tcp:h:1", &h, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "qmp-migrate 'vm1.qmp@tcp:h:1': socket path must be absolute");
	/* the other hooks do not hand off */
	assert_int_equal(vmhook_new("qmp:/run/vm1.qmp", &h, err, sizeof(err)), 0);
	assert_false(vmhook_hands_off(h));
	vmhook_free(h);
}

static void test_spec_qmp_needs_an_absolute_socket_path(void **state)
{
	struct vmhook *h;
	char err[256];

	assert_int_equal(vmhook_new("qmp:/run/vm1.qmp", &h, err, sizeof(err)), 0);
	assert_false(vmhook_is_internal(h));
	assert_string_equal(vmhook_spec(h), "qmp:/run/vm1.qmp");
	vmhook_free(h);
	assert_int_equal(vmhook_new("qmp:", &h, err, sizeof(err)), -EINVAL);
	assert_int_equal(vmhook_new("qmp:vm1.qmp", &h, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "qmp 'vm1.qmp': socket path must be absolute");

	char longp[200];
	memset(longp, 'a', sizeof(longp));
	memcpy(longp, "qmp:/", 5);
	longp[sizeof(longp) - 1] = '\0';
	assert_int_equal(vmhook_new(longp, &h, err, sizeof(err)), -ENAMETOOLONG);
}

static void test_spec_qmp_rbd_needs_an_absolute_socket_and_hands_over(void **state)
{
	struct vmhook *h;
	char err[256];

	assert_int_equal(vmhook_new("qmp-rbd:/run/vm1.qmp", &h, err, sizeof(err)), 0);
	assert_false(vmhook_is_internal(h));
	assert_true(vmhook_hands_over(h));
	assert_string_equal(vmhook_spec(h), "qmp-rbd:/run/vm1.qmp");
	vmhook_free(h);
	assert_int_equal(vmhook_new("qmp-rbd:", &h, err, sizeof(err)), -EINVAL);
	assert_int_equal(vmhook_new("qmp-rbd:vm1.qmp", &h, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "qmp-rbd 'vm1.qmp': socket path must be absolute");
}

static void test_spec_only_qmp_rbd_hands_over_and_the_others_do_nothing(void **state)
{
	static const char *const specs[] = { "qmp:/run/vm1.qmp", "exec:true", "libvirt:vm1",
					     "freeze", "none" };
	struct vmhook_image img = { "/mnt/vm.img", "rbd", "vm.img", "", "" };
	struct vmhook *h;
	char err[256];

	for (size_t i = 0; i < sizeof(specs) / sizeof(specs[0]); i++) {
		assert_int_equal(vmhook_new(specs[i], &h, err, sizeof(err)), 0);
		assert_false(vmhook_hands_over(h));
		assert_int_equal(vmhook_handover(h, &img, 1, 100, err, sizeof(err)), 0);
		vmhook_free(h);
	}
}

static void test_spec_exec_takes_absolute_path_or_name_in_path(void **state)
{
	struct vmhook *h;
	char err[256];

	assert_int_equal(vmhook_new("exec:/usr/local/bin/vmctl", &h, err, sizeof(err)), 0);
	vmhook_free(h);
	assert_int_equal(vmhook_new("exec:vmctl", &h, err, sizeof(err)), 0);
	vmhook_free(h);
	assert_int_equal(vmhook_new("exec:./vmctl", &h, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "exec './vmctl': program must be an absolute path or a name in PATH");
	assert_int_equal(vmhook_new("exec:", &h, err, sizeof(err)), -EINVAL);
}

static void test_spec_libvirt_splits_domain_and_uri_at_first_at(void **state)
{
	struct vmhook *h;
	char err[256];

	assert_int_equal(vmhook_new("libvirt:web1", &h, err, sizeof(err)), 0);
	vmhook_free(h);
	assert_int_equal(vmhook_new("libvirt:web1@qemu+ssh://root@h/system", &h, err,
				    sizeof(err)), 0);
	vmhook_free(h);
	assert_int_equal(vmhook_new("libvirt:", &h, err, sizeof(err)), -EINVAL);
	assert_int_equal(vmhook_new("libvirt:@qemu:///system", &h, err, sizeof(err)), -EINVAL);
	assert_int_equal(vmhook_new("libvirt:web1@", &h, err, sizeof(err)), -EINVAL);
}

static void test_query_is_not_supported_by_exec_and_internal_hooks(void **state)
{
	struct vmhook *h;
	char err[256], st[32];

	assert_int_equal(vmhook_new("exec:true", &h, err, sizeof(err)), 0);
	assert_int_equal(vmhook_query(h, st, sizeof(st), 100, err, sizeof(err)), -ENOTSUP);
	vmhook_free(h);
	assert_int_equal(vmhook_new("none", &h, err, sizeof(err)), 0);
	assert_int_equal(vmhook_query(h, st, sizeof(st), 100, err, sizeof(err)), -ENOTSUP);
	vmhook_free(h);
}

/* -------------------------------------------------------------- exec hook */

/* a hook script that logs its argument and environment to LOG */
static struct vmhook *logging_exec_hook(const char *pause_body, char *logpath, size_t len)
{
	char script[256], body[2048], spec[300], err[256];
	struct vmhook *h;

	path_in_tmp(logpath, len, "exec.log");
	unlink(logpath);
	snprintf(body, sizeof(body),
		 "LOG=%s\n"
		 "echo \"action=$1\" >> $LOG\n"
		 "echo \"mnt=$RELOCFS_MOUNTPOINT\" >> $LOG\n"
		 "printf 'files=%%s\\n' \"$RELOCFS_FILES\" >> $LOG\n"
		 "if [ \"$1\" = pause ]; then\n%s\nfi\n"
		 "exit 0\n", logpath, pause_body);
	write_script("hook.sh", body, script, sizeof(script));
	snprintf(spec, sizeof(spec), "exec:%s", script);
	assert_int_equal(vmhook_new(spec, &h, err, sizeof(err)), 0);
	return h;
}

static void test_exec_hook_passes_files_and_mountpoint(void **state)
{
	const char *files[] = { "/mnt/a.img", "/mnt/dir/b.qcow2" };
	char logpath[256], err[256];
	struct vmhook *h = logging_exec_hook("exit 0", logpath, sizeof(logpath));

	setenv("RELOCFS_FILES", "stale", 1);
	assert_int_equal(vmhook_pause(h, "/mnt", files, 2, 5000, err, sizeof(err)), 0);
	unsetenv("RELOCFS_FILES");
	assert_int_equal(vmhook_resume(h, 5000, err, sizeof(err)), 0);
	assert_string_equal(slurp(logpath),
			    "action=pause\nmnt=/mnt\nfiles=/mnt/a.img\n/mnt/dir/b.qcow2\n"
			    "action=resume\nmnt=/mnt\nfiles=/mnt/a.img\n/mnt/dir/b.qcow2\n");
	vmhook_free(h);
}

static void test_exec_hook_pause_failure_is_an_error_with_its_message(void **state)
{
	const char *files[] = { "/mnt/a.img" };
	char logpath[256], err[256];
	struct vmhook *h = logging_exec_hook("echo 'vm busy' >&2; exit 3", logpath,
					     sizeof(logpath));
	char expect[512];

	assert_int_equal(vmhook_pause(h, "/mnt", files, 1, 5000, err, sizeof(err)), -EIO);
	snprintf(expect, sizeof(expect), "exec '%s/hook.sh': pause exited with status 3: vm busy",
		 tmpdir);
	assert_string_equal(err, expect);
	/* not paused, so nothing to resume */
	assert_int_equal(vmhook_resume(h, 5000, err, sizeof(err)), 0);
	assert_null(strstr(slurp(logpath), "action=resume"));
	vmhook_free(h);
}

static bool pid_gone(pid_t pid)
{
	char path[64], st[512];
	FILE *f;

	if (kill(pid, 0) < 0 && errno == ESRCH)
		return true;
	/* a zombie waiting for init counts as gone */
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	f = fopen(path, "r");
	if (!f)
		return true;
	if (!fgets(st, sizeof(st), f))
		st[0] = '\0';
	fclose(f);
	char *p = strrchr(st, ')');
	return p && p[1] == ' ' && p[2] == 'Z';
}

static void test_exec_hook_pause_timeout_kills_group_and_resumes(void **state)
{
	const char *files[] = { "/mnt/a.img" };
	char logpath[256], pidpath[256], err[256], body[2048];
	struct vmhook *h;

	path_in_tmp(pidpath, sizeof(pidpath), "sleeper.pid");
	unlink(pidpath);
	snprintf(body, sizeof(body), "sleep 60 & echo $! > %s; wait", pidpath);
	h = logging_exec_hook(body, logpath, sizeof(logpath));
	assert_int_equal(vmhook_pause(h, "/mnt", files, 1, 300, err, sizeof(err)), -ETIMEDOUT);
	assert_non_null(strstr(err, "pause timed out after 300 ms, killed"));
	/* the script's own child went with it: SIGKILL reaches a process the
	 * next time it runs, so give a loaded host time to run it (the child
	 * would otherwise sleep for 60 s) */
	int pid = atoi(slurp(pidpath));
	assert_true(pid > 0);
	for (int i = 0; i < 1000 && !pid_gone(pid); i++)
		usleep(10000);
	assert_true(pid_gone(pid));
	/* and resume ran once to undo a partial pause */
	assert_non_null(strstr(slurp(logpath), "action=resume"));
	vmhook_free(h);
}

static void test_exec_hook_resume_is_retried_until_it_succeeds(void **state)
{
	char script[256], cnt[256], body[2048], spec[300], err[256];
	struct vmhook *h;

	path_in_tmp(cnt, sizeof(cnt), "resume.count");
	unlink(cnt);
	snprintf(body, sizeof(body),
		 "[ \"$1\" = pause ] && exit 0\n"
		 "n=$(cat %s 2>/dev/null || echo 0); n=$((n+1)); echo $n > %s\n"
		 "[ $n -ge 3 ] || { echo 'not yet'; exit 1; }\n", cnt, cnt);
	write_script("flaky.sh", body, script, sizeof(script));
	snprintf(spec, sizeof(spec), "exec:%s", script);
	assert_int_equal(vmhook_new(spec, &h, err, sizeof(err)), 0);
	assert_int_equal(vmhook_pause(h, "/mnt", NULL, 0, 5000, err, sizeof(err)), 0);
	assert_int_equal(vmhook_resume(h, 10000, err, sizeof(err)), 0);
	assert_int_equal(atoi(slurp(cnt)), 3);
	vmhook_free(h);
}

static void test_exec_hook_missing_program_cannot_run(void **state)
{
	char spec[300], err[256];
	struct vmhook *h;

	snprintf(spec, sizeof(spec), "exec:%s/does-not-exist", tmpdir);
	assert_int_equal(vmhook_new(spec, &h, err, sizeof(err)), 0);
	assert_int_equal(vmhook_pause(h, "/mnt", NULL, 0, 1000, err, sizeof(err)), -ENOENT);
	assert_non_null(strstr(err, "cannot run"));
	assert_non_null(strstr(err, "No such file or directory"));
	vmhook_free(h);
}

static void test_hook_run_does_not_wait_for_a_daemon_holding_its_output(void **state)
{
	char *argv[] = { "sh", "-c", "echo hello; (sleep 60 >&2 &) ; exit 0", NULL };
	struct hook_run_result res;
	char err[256];

	assert_int_equal(hook_run("t", argv, NULL, 20000, true, &res, err, sizeof(err)), 0);
	assert_false(res.timed_out);
	assert_true(WIFEXITED(res.status) && WEXITSTATUS(res.status) == 0);
	assert_string_equal(res.last_line, "hello");
	assert_string_equal(res.out, "hello\n");
}

/* ------------------------------------------------------------- QMP server */

enum peer_mode {
	PEER_QEMU,		/* behaves like QEMU */
	PEER_STOP_ERROR,	/* "stop" gets an error reply */
	PEER_DIES_ON_STOP,	/* closes everything when "stop" arrives */
	PEER_SILENT,		/* accepts, never greets (QEMU with another client) */
	PEER_STOP_IGNORED,	/* "stop" succeeds but the VM keeps running */
	PEER_DROPS_AFTER_STOP,	/* closes the connection after the paused query-status */
	PEER_GARBAGE,		/* answers query-status with a line that is not JSON */
};

struct peer {
	char path[108];
	int lfd;
	int quit[2];
	pthread_t thread;
	enum peer_mode mode;
	pthread_mutex_t lock;	/* held while the server handles a command */
	bool running;		/* the VM's state; under lock */
	char log[1024];		/* commands received, space separated; under lock */
	int connections;	/* under lock */
};

/* write a line as QEMU does ("\r\n"), in two pieces to exercise framing */
static bool peer_send(int fd, const char *fmt, ...)
{
	char buf[1024];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, sizeof(buf) - 2, fmt, ap);
	va_end(ap);
	buf[n++] = '\r';
	buf[n++] = '\n';
	int half = n / 2;
	if (send(fd, buf, half, MSG_NOSIGNAL) != half)
		return false;
	usleep(1000);
	return send(fd, buf + half, n - half, MSG_NOSIGNAL) == n - half;
}

static bool peer_event(int fd, const char *name)
{
	return peer_send(fd, "{\"timestamp\": {\"seconds\": 1700000000, \"microseconds\": 1}, "
			 "\"event\": \"%s\"}", name);
}

/* answer one command; false to close the connection */
static bool peer_command(struct peer *p, int fd, json_t *req)
{
	const char *cmd = json_string_value(json_object_get(req, "execute"));
	json_int_t id = json_integer_value(json_object_get(req, "id"));

	strncat(p->log, cmd ? cmd : "?", sizeof(p->log) - strlen(p->log) - 2);
	strcat(p->log, " ");
	if (!cmd)
		return peer_send(fd, "{\"error\": {\"class\": \"GenericError\", "
				 "\"desc\": \"QMP input lacks member 'execute'\"}}");

	/* an unrelated event before every reply, as a busy QEMU would send */
	if (!peer_event(fd, "RTC_CHANGE"))
		return false;
	if (strcmp(cmd, "qmp_capabilities") == 0)
		return peer_send(fd, "{\"return\": {}, \"id\": %lld}", (long long)id);
	if (strcmp(cmd, "stop") == 0) {
		if (p->mode == PEER_DIES_ON_STOP) {
			close(p->lfd);
			p->lfd = -1;
			unlink(p->path);
			return false;
		}
		if (p->mode == PEER_STOP_ERROR)
			return peer_send(fd, "{\"id\": %lld, \"error\": {\"class\": \"GenericError\", "
					 "\"desc\": \"cannot stop: migration in progress\"}}",
					 (long long)id);
		/* QEMU emits STOP before it answers, and only if the VM ran */
		if (p->running && p->mode != PEER_STOP_IGNORED) {
			p->running = false;
			if (!peer_event(fd, "STOP"))
				return false;
		}
		return peer_send(fd, "{\"return\": {}, \"id\": %lld}", (long long)id);
	}
	if (strcmp(cmd, "cont") == 0) {
		if (!p->running) {
			p->running = true;
			if (!peer_event(fd, "RESUME"))
				return false;
		}
		return peer_send(fd, "{\"return\": {}, \"id\": %lld}", (long long)id);
	}
	if (strcmp(cmd, "query-status") == 0) {
		if (p->mode == PEER_GARBAGE)
			return peer_send(fd, "{\"return\": {\"running\": tru");
		/* a late reply to some earlier command first */
		if (!peer_send(fd, "{\"return\": {}, \"id\": 424242}"))
			return false;
		bool ok = peer_send(fd, "{\"return\": {\"status\": \"%s\", \"singlestep\": false, "
				    "\"running\": %s}, \"id\": %lld}",
				    p->running ? "running" : "paused",
				    p->running ? "true" : "false", (long long)id);
		if (!p->running && p->mode == PEER_DROPS_AFTER_STOP) {
			p->mode = PEER_QEMU;	/* once */
			return false;
		}
		/* and an event right after the reply */
		return ok && peer_event(fd, "NIC_RX_FILTER_CHANGED");
	}
	return peer_send(fd, "{\"id\": %lld, \"error\": {\"class\": \"CommandNotFound\", "
			 "\"desc\": \"The command %s has not been found\"}}", (long long)id, cmd);
}

static void peer_serve(struct peer *p, int fd)
{
	char buf[4096];
	size_t len = 0;

	if (p->mode != PEER_SILENT &&
	    !peer_send(fd, "{\"QMP\": {\"version\": {\"qemu\": {\"micro\": 19, \"minor\": 2, "
		       "\"major\": 7}, \"package\": \"Debian 1:7.2+dfsg-7\"}, "
		       "\"capabilities\": [\"oob\"]}}"))
		return;
	for (;;) {
		struct pollfd pf[2] = { { fd, POLLIN, 0 }, { p->quit[0], POLLIN, 0 } };

		if (poll(pf, 2, -1) < 0 || pf[1].revents)
			return;
		ssize_t r = read(fd, buf + len, sizeof(buf) - len - 1);
		if (r <= 0)
			return;
		len += (size_t)r;
		char *nl;
		while ((nl = memchr(buf, '\n', len))) {
			json_t *req = json_loadb(buf, (size_t)(nl - buf), 0, NULL);

			pthread_mutex_lock(&p->lock);
			bool keep = req && peer_command(p, fd, req);
			pthread_mutex_unlock(&p->lock);

			json_decref(req);
			len -= (size_t)(nl - buf) + 1;
			memmove(buf, nl + 1, len);
			if (!keep)
				return;
		}
	}
}

static void *peer_main(void *arg)
{
	struct peer *p = arg;

	for (;;) {
		struct pollfd pf[2] = { { p->lfd, POLLIN, 0 }, { p->quit[0], POLLIN, 0 } };

		if (p->lfd < 0 || poll(pf, 2, -1) < 0 || pf[1].revents)
			break;
		int fd = accept(p->lfd, NULL, NULL);
		if (fd < 0)
			continue;
		pthread_mutex_lock(&p->lock);
		p->connections++;
		pthread_mutex_unlock(&p->lock);
		peer_serve(p, fd);
		close(fd);
	}
	return NULL;
}

static struct peer *peer_start(enum peer_mode mode, bool running)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	struct peer *p = calloc(1, sizeof(*p));

	assert_non_null(p);
	p->mode = mode;
	p->running = running;
	pthread_mutex_init(&p->lock, NULL);
	path_in_tmp(p->path, sizeof(p->path), "qmp.sock");
	unlink(p->path);
	strcpy(sun.sun_path, p->path);
	p->lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(p->lfd >= 0);
	assert_int_equal(bind(p->lfd, (struct sockaddr *)&sun, sizeof(sun)), 0);
	assert_int_equal(listen(p->lfd, 4), 0);
	assert_int_equal(pipe(p->quit), 0);
	assert_int_equal(pthread_create(&p->thread, NULL, peer_main, p), 0);
	return p;
}

static void peer_stop(struct peer *p)
{
	assert_int_equal(write(p->quit[1], "q", 1), 1);
	pthread_join(p->thread, NULL);
	if (p->lfd >= 0)
		close(p->lfd);
	close(p->quit[0]);
	close(p->quit[1]);
	unlink(p->path);
	free(p);
}

static const char *peer_log(struct peer *p)
{
	static char copy[1024];

	pthread_mutex_lock(&p->lock);
	strcpy(copy, p->log);
	pthread_mutex_unlock(&p->lock);
	return copy;
}

static bool peer_running(struct peer *p)
{
	pthread_mutex_lock(&p->lock);
	bool r = p->running;
	pthread_mutex_unlock(&p->lock);
	return r;
}

static int peer_connections(struct peer *p)
{
	pthread_mutex_lock(&p->lock);
	int n = p->connections;
	pthread_mutex_unlock(&p->lock);
	return n;
}

static struct vmhook *qmp_hook_for(struct peer *p)
{
	char spec[200], err[256];
	struct vmhook *h;

	snprintf(spec, sizeof(spec), "qmp:%s", p->path);
	assert_int_equal(vmhook_new(spec, &h, err, sizeof(err)), 0);
	return h;
}

/* ---------------------------------------------------------------- QMP tests */

static void test_qmp_client_skips_events_and_stale_replies(void **state)
{
	struct peer *p = peer_start(PEER_QEMU, true);
	char err[256], st[32];
	struct qmp *q;
	bool running;

	assert_int_equal(qmp_open(p->path, 5000, &q, err, sizeof(err)), 0);
	assert_int_equal(qmp_query_status(q, &running, st, sizeof(st), 5000, err, sizeof(err)), 0);
	assert_true(running);
	assert_string_equal(st, "running");
	assert_int_equal(qmp_execute(q, "stop", NULL, NULL, 5000, err, sizeof(err)), 0);
	assert_int_equal(qmp_query_status(q, &running, st, sizeof(st), 5000, err, sizeof(err)), 0);
	assert_false(running);
	assert_string_equal(st, "paused");
	/* RTC_CHANGE x4, NIC_RX_FILTER_CHANGED x1 (after the first query-status), STOP */
	assert_true(qmp_events_seen(q) >= 6);
	qmp_close(q);
	assert_string_equal(peer_log(p), "qmp_capabilities query-status stop query-status ");
	peer_stop(p);
}

static void test_qmp_client_reports_unknown_command_as_not_supported(void **state)
{
	struct peer *p = peer_start(PEER_QEMU, true);
	char err[256], expect[300];
	struct qmp *q;

	assert_int_equal(qmp_open(p->path, 5000, &q, err, sizeof(err)), 0);
	assert_int_equal(qmp_execute(q, "x-frobnicate", NULL, NULL, 5000, err, sizeof(err)),
			 -ENOTSUP);
	snprintf(expect, sizeof(expect),
		 "qmp '%s': x-frobnicate: The command x-frobnicate has not been found", p->path);
	assert_string_equal(err, expect);
	/* the connection is still good after an error reply */
	assert_int_equal(qmp_execute(q, "cont", NULL, NULL, 5000, err, sizeof(err)), 0);
	qmp_close(q);
	peer_stop(p);
}

static void test_qmp_client_rejects_a_line_that_is_not_json(void **state)
{
	struct peer *p = peer_start(PEER_GARBAGE, true);
	char err[256];
	struct qmp *q;
	bool running;

	assert_int_equal(qmp_open(p->path, 5000, &q, err, sizeof(err)), 0);
	assert_int_equal(qmp_query_status(q, &running, NULL, 0, 5000, err, sizeof(err)), -EPROTO);
	assert_non_null(strstr(err, "not a json object"));
	qmp_close(q);
	peer_stop(p);
}

static void test_qmp_client_times_out_without_greeting(void **state)
{
	struct peer *p = peer_start(PEER_SILENT, true);
	char err[256];
	struct qmp *q;

	assert_int_equal(qmp_open(p->path, 300, &q, err, sizeof(err)), -ETIMEDOUT);
	assert_null(q);
	assert_non_null(strstr(err, "timed out waiting for greeting"));
	peer_stop(p);
}

static void test_qmp_client_connect_refused_is_one_line(void **state)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	char path[108], err[256], expect[300];
	struct qmp *q;
	int fd;

	/* a socket file with nobody listening, as a dead QEMU leaves it */
	path_in_tmp(path, sizeof(path), "dead.sock");
	unlink(path);
	strcpy(sun.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM, 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&sun, sizeof(sun)), 0);
	close(fd);
	assert_int_equal(qmp_open(path, 1000, &q, err, sizeof(err)), -ECONNREFUSED);
	snprintf(expect, sizeof(expect), "qmp '%s': cannot connect: Connection refused", path);
	assert_string_equal(err, expect);
	unlink(path);
	assert_int_equal(qmp_open(path, 1000, &q, err, sizeof(err)), -ENOENT);
}

static void test_qmp_hook_pauses_and_resumes_a_running_vm(void **state)
{
	struct peer *p = peer_start(PEER_QEMU, true);
	struct vmhook *h = qmp_hook_for(p);
	char err[256], st[32];

	assert_int_equal(vmhook_pause(h, "/mnt", NULL, 0, 5000, err, sizeof(err)), 0);
	assert_false(peer_running(p));
	assert_int_equal(vmhook_query(h, st, sizeof(st), 5000, err, sizeof(err)), 0);
	assert_string_equal(st, "paused");
	assert_int_equal(vmhook_resume(h, 5000, err, sizeof(err)), 0);
	assert_int_equal(vmhook_query(h, st, sizeof(st), 5000, err, sizeof(err)), 0);
	assert_string_equal(st, "running");
	vmhook_free(h);
	assert_string_equal(peer_log(p),
			    "qmp_capabilities query-status stop query-status query-status "
			    "cont query-status qmp_capabilities query-status ");
	/* pause to resume on one connection; the last query on its own */
	assert_int_equal(peer_connections(p), 2);
	peer_stop(p);
}

/* a QEMU that lacks the block commands: the hand-over fails in one line,
 * the VM stays paused until the resume, which still works */
static void test_qmp_rbd_hook_failed_handover_leaves_the_vm_to_resume(void **state)
{
	struct peer *p = peer_start(PEER_QEMU, true);
	struct vmhook_image img = { "/mnt/vm.img", "rbd", "vm.img", "", "" };
	char spec[200], err[256];
	struct vmhook *h;

	snprintf(spec, sizeof(spec), "qmp-rbd:%s", p->path);
	assert_int_equal(vmhook_new(spec, &h, err, sizeof(err)), 0);
	assert_int_equal(vmhook_pause(h, "/mnt", NULL, 0, 5000, err, sizeof(err)), 0);
	assert_int_equal(vmhook_handover(h, &img, 1, 5000, err, sizeof(err)), -ENOTSUP);
	assert_non_null(strstr(err, "query-named-block-nodes"));
	assert_null(strchr(err, '\n'));
	assert_false(peer_running(p));
	assert_int_equal(vmhook_resume(h, 5000, err, sizeof(err)), 0);
	assert_true(peer_running(p));
	vmhook_free(h);
	assert_string_equal(peer_log(p), "qmp_capabilities query-status stop query-status "
			    "query-named-block-nodes cont query-status ");
	assert_int_equal(peer_connections(p), 1);
	peer_stop(p);
}

static void test_qmp_hook_leaves_an_operator_paused_vm_paused(void **state)
{
	struct peer *p = peer_start(PEER_QEMU, false);
	struct vmhook *h = qmp_hook_for(p);
	char err[256];

	assert_int_equal(vmhook_pause(h, "/mnt", NULL, 0, 5000, err, sizeof(err)), 0);
	assert_int_equal(vmhook_resume(h, 5000, err, sizeof(err)), 0);
	assert_false(peer_running(p));
	assert_null(strstr(peer_log(p), "stop"));
	assert_null(strstr(peer_log(p), "cont"));
	vmhook_free(h);
	peer_stop(p);
}

static void test_qmp_hook_second_pause_still_resumes_what_it_paused(void **state)
{
	struct peer *p = peer_start(PEER_QEMU, true);
	struct vmhook *h = qmp_hook_for(p);
	char err[256];

	assert_int_equal(vmhook_pause(h, "/mnt", NULL, 0, 5000, err, sizeof(err)), 0);
	assert_int_equal(vmhook_pause(h, "/mnt", NULL, 0, 5000, err, sizeof(err)), 0);
	assert_int_equal(vmhook_resume(h, 5000, err, sizeof(err)), 0);
	assert_true(peer_running(p));
	vmhook_free(h);
	peer_stop(p);
}

static void test_qmp_hook_stop_error_is_one_line_and_vm_keeps_running(void **state)
{
	struct peer *p = peer_start(PEER_STOP_ERROR, true);
	struct vmhook *h = qmp_hook_for(p);
	char err[256], expect[300];

	assert_int_equal(vmhook_pause(h, "/mnt", NULL, 0, 5000, err, sizeof(err)), -EIO);
	snprintf(expect, sizeof(expect), "qmp '%s': stop: cannot stop: migration in progress",
		 p->path);
	assert_string_equal(err, expect);
	assert_true(peer_running(p));
	/* nothing was paused, nothing is resumed */
	assert_int_equal(vmhook_resume(h, 5000, err, sizeof(err)), 0);
	assert_null(strstr(peer_log(p), "cont"));
	vmhook_free(h);
	peer_stop(p);
}

static void test_qmp_hook_fails_when_qemu_dies_during_stop(void **state)
{
	struct peer *p = peer_start(PEER_DIES_ON_STOP, true);
	struct vmhook *h = qmp_hook_for(p);
	char err[256], expect[300];

	assert_int_equal(vmhook_pause(h, "/mnt", NULL, 0, 5000, err, sizeof(err)), -ECONNRESET);
	snprintf(expect, sizeof(expect), "qmp '%s': connection closed by qemu while waiting for "
		 "reply to 'stop'", p->path);
	/* EOF or a reset, depending on what the kernel saw first */
	if (strcmp(err, expect) != 0) {
		snprintf(expect, sizeof(expect), "qmp '%s': connection reset while waiting for "
			 "reply to 'stop'", p->path);
		assert_string_equal(err, expect);
	}
	/* QEMU is gone: resume fails at once rather than pretending */
	assert_int_equal(vmhook_resume(h, 2000, err, sizeof(err)), -ENOENT);
	vmhook_free(h);
	peer_stop(p);
}

static void test_qmp_hook_resumes_when_stop_does_not_take(void **state)
{
	struct peer *p = peer_start(PEER_STOP_IGNORED, true);
	struct vmhook *h = qmp_hook_for(p);
	char err[256];

	assert_int_equal(vmhook_pause(h, "/mnt", NULL, 0, 5000, err, sizeof(err)), -EAGAIN);
	assert_non_null(strstr(err, "vm still running after stop (running)"));
	/* the contract: a failed pause leaves the VM running, and says cont */
	assert_non_null(strstr(peer_log(p), "stop query-status cont"));
	assert_true(peer_running(p));
	vmhook_free(h);
	peer_stop(p);
}

static void test_qmp_hook_resume_reconnects_after_connection_loss(void **state)
{
	struct peer *p = peer_start(PEER_DROPS_AFTER_STOP, true);
	struct vmhook *h = qmp_hook_for(p);
	char err[256];

	assert_int_equal(vmhook_pause(h, "/mnt", NULL, 0, 5000, err, sizeof(err)), 0);
	assert_false(peer_running(p));
	assert_int_equal(vmhook_resume(h, 5000, err, sizeof(err)), 0);
	assert_true(peer_running(p));
	assert_int_equal(peer_connections(p), 2);
	vmhook_free(h);
	peer_stop(p);
}

static void test_qmp_hook_reports_a_missing_socket(void **state)
{
	char spec[200], err[256], expect[300];
	struct vmhook *h;

	snprintf(spec, sizeof(spec), "qmp:%s/nothing.sock", tmpdir);
	assert_int_equal(vmhook_new(spec, &h, err, sizeof(err)), 0);
	assert_int_equal(vmhook_pause(h, "/mnt", NULL, 0, 1000, err, sizeof(err)), -ENOENT);
	snprintf(expect, sizeof(expect),
		 "qmp '%s/nothing.sock': cannot connect: No such file or directory", tmpdir);
	assert_string_equal(err, expect);
	vmhook_free(h);
}

/* against a real QEMU, when tests/vm/hook_qmp.sh provides its QMP socket */
static void test_qmp_hook_against_real_qemu(void **state)
{
	const char *sock = getenv("RELOCFS_TEST_QMP_SOCKET");
	char spec[200], err[256], st[32];
	struct vmhook *h;
	struct qmp *op;
	bool running;

	if (!sock || !*sock)
		skip();
	snprintf(spec, sizeof(spec), "qmp:%s", sock);
	assert_int_equal(vmhook_new(spec, &h, err, sizeof(err)), 0);

	/* a running VM: paused, then running again */
	if (vmhook_query(h, st, sizeof(st), 30000, err, sizeof(err)) != 0)
		fail_msg("%s", err);
	assert_string_equal(st, "running");
	if (vmhook_pause(h, "/mnt", NULL, 0, 30000, err, sizeof(err)) != 0)
		fail_msg("%s", err);
	assert_int_equal(vmhook_query(h, st, sizeof(st), 30000, err, sizeof(err)), 0);
	assert_string_equal(st, "paused");
	if (vmhook_resume(h, 30000, err, sizeof(err)) != 0)
		fail_msg("%s", err);
	assert_int_equal(vmhook_query(h, st, sizeof(st), 30000, err, sizeof(err)), 0);
	assert_string_equal(st, "running");

	/* the operator stops it (QEMU serves one client: theirs closes first) */
	assert_int_equal(qmp_open(sock, 30000, &op, err, sizeof(err)), 0);
	assert_int_equal(qmp_execute(op, "stop", NULL, NULL, 30000, err, sizeof(err)), 0);
	qmp_close(op);
	assert_int_equal(vmhook_pause(h, "/mnt", NULL, 0, 30000, err, sizeof(err)), 0);
	assert_int_equal(vmhook_resume(h, 30000, err, sizeof(err)), 0);
	assert_int_equal(vmhook_query(h, st, sizeof(st), 30000, err, sizeof(err)), 0);
	assert_string_equal(st, "paused");
	assert_int_equal(qmp_open(sock, 30000, &op, err, sizeof(err)), 0);
	assert_int_equal(qmp_execute(op, "cont", NULL, NULL, 30000, err, sizeof(err)), 0);
	assert_int_equal(qmp_query_status(op, &running, NULL, 0, 30000, err, sizeof(err)), 0);
	assert_true(running);
	/* QEMU's own error reply for a command it does not have */
	assert_int_equal(qmp_execute(op, "x-no-such-command", NULL, NULL, 30000, err, sizeof(err)),
			 -ENOTSUP);
	qmp_close(op);
	vmhook_free(h);
}

/* ------------------------------------------------------------ libvirt hook */

/* a virsh stand-in: keeps the domain state in a file, logs its arguments */
static struct vmhook *libvirt_hook_with_fake_virsh(const char *initial, const char *spec)
{
	char script[256], statef[256], logf[256], body[2048], err[256];
	struct vmhook *h;
	FILE *f;

	path_in_tmp(statef, sizeof(statef), "virsh.state");
	path_in_tmp(logf, sizeof(logf), "virsh.log");
	unlink(logf);
	f = fopen(statef, "w");
	assert_non_null(f);
	fprintf(f, "%s\n", initial);
	fclose(f);
	snprintf(body, sizeof(body),
		 "echo \"$*\" >> %s\n"
		 "while [ $# -gt 2 ]; do shift; done\n"
		 "cmd=$1; dom=$2\n"
		 "[ \"$dom\" = web1 ] || { echo \"error: failed to get domain '$dom'\" >&2; exit 1; }\n"
		 "case $cmd in\n"
		 "domstate) cat %s; echo ;;\n"
		 "suspend) grep -q running %s || { echo 'error: domain is not running' >&2; exit 1; }\n"
		 "         echo paused > %s; echo \"Domain '$dom' suspended\" ;;\n"
		 "resume) echo running > %s ;;\n"
		 "*) exit 1 ;;\n"
		 "esac\n", logf, statef, statef, statef, statef);
	write_script("virsh", body, script, sizeof(script));
	setenv("RELOCFS_VIRSH", script, 1);
	assert_int_equal(vmhook_new(spec, &h, err, sizeof(err)), 0);
	unsetenv("RELOCFS_VIRSH");
	return h;
}

static void test_libvirt_hook_suspends_and_resumes_with_uri(void **state)
{
	struct vmhook *h = libvirt_hook_with_fake_virsh("running", "libvirt:web1@qemu:///system");
	char err[256], st[32], logf[256];

	assert_int_equal(vmhook_pause(h, "/mnt", NULL, 0, 5000, err, sizeof(err)), 0);
	assert_int_equal(vmhook_query(h, st, sizeof(st), 5000, err, sizeof(err)), 0);
	assert_string_equal(st, "paused");
	assert_int_equal(vmhook_resume(h, 5000, err, sizeof(err)), 0);
	path_in_tmp(logf, sizeof(logf), "virsh.log");
	assert_string_equal(slurp(logf),
			    "-c qemu:///system -q domstate web1\n"
			    "-c qemu:///system -q suspend web1\n"
			    "-c qemu:///system -q domstate web1\n"
			    "-c qemu:///system -q resume web1\n");
	vmhook_free(h);
}

static void test_libvirt_hook_leaves_a_paused_domain_paused(void **state)
{
	struct vmhook *h = libvirt_hook_with_fake_virsh("paused", "libvirt:web1");
	char err[256], logf[256];

	assert_int_equal(vmhook_pause(h, "/mnt", NULL, 0, 5000, err, sizeof(err)), 0);
	assert_int_equal(vmhook_resume(h, 5000, err, sizeof(err)), 0);
	path_in_tmp(logf, sizeof(logf), "virsh.log");
	assert_string_equal(slurp(logf), "-q domstate web1\n");
	vmhook_free(h);
}

static void test_libvirt_hook_unknown_domain_is_one_line(void **state)
{
	struct vmhook *h = libvirt_hook_with_fake_virsh("running", "libvirt:db9");
	char err[256];

	assert_int_equal(vmhook_pause(h, "/mnt", NULL, 0, 5000, err, sizeof(err)), -EIO);
	assert_string_equal(err, "libvirt 'db9': domstate failed: error: failed to get domain 'db9'");
	vmhook_free(h);
}

/* against a real libvirtd, when tests/vm/hook_libvirt.sh provides a domain:
 * a running domain is paused and resumed; a paused one stays paused */
static void test_libvirt_hook_against_real_libvirtd(void **state)
{
	const char *dom = getenv("RELOCFS_TEST_LIBVIRT_DOMAIN");
	char spec[256], err[256], st[64], before[64];
	struct vmhook *h;

	if (!dom || !*dom)
		skip();
	snprintf(spec, sizeof(spec), "libvirt:%s", dom);
	assert_int_equal(vmhook_new(spec, &h, err, sizeof(err)), 0);
	if (vmhook_query(h, before, sizeof(before), 30000, err, sizeof(err)) != 0)
		fail_msg("%s", err);
	if (vmhook_pause(h, "/mnt", NULL, 0, 30000, err, sizeof(err)) != 0)
		fail_msg("%s", err);
	assert_int_equal(vmhook_query(h, st, sizeof(st), 30000, err, sizeof(err)), 0);
	assert_string_equal(st, "paused");
	if (vmhook_resume(h, 30000, err, sizeof(err)) != 0)
		fail_msg("%s", err);
	assert_int_equal(vmhook_query(h, st, sizeof(st), 30000, err, sizeof(err)), 0);
	assert_string_equal(st, before);
	vmhook_free(h);
}

/* ------------------------------------------------------------------- main */

static int setup_all(void **state)
{
	strcpy(tmpdir, "/tmp/test_vmhook.XXXXXX");
	if (!mkdtemp(tmpdir))
		return -1;
	log_init("test_vmhook", false, getenv("RELOCFS_TEST_DEBUG") ? LOG_LVL_DEBUG : LOG_LVL_WARN);
	signal(SIGPIPE, SIG_IGN);
	return 0;
}

static int teardown_all(void **state)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	return system(cmd) == 0 ? 0 : -1;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_spec_none_and_freeze_are_internal),
		cmocka_unit_test(test_spec_unknown_kind_is_rejected_with_one_line),
		cmocka_unit_test(test_spec_qmp_needs_an_absolute_socket_path),
		cmocka_unit_test(test_spec_qmp_rbd_needs_an_absolute_socket_and_hands_over),
		cmocka_unit_test(test_spec_only_qmp_rbd_hands_over_and_the_others_do_nothing),
		cmocka_unit_test(test_spec_qmp_migrate_needs_socket_at_uri),
		cmocka_unit_test(test_spec_exec_takes_absolute_path_or_name_in_path),
		cmocka_unit_test(test_spec_libvirt_splits_domain_and_uri_at_first_at),
		cmocka_unit_test(test_query_is_not_supported_by_exec_and_internal_hooks),
		cmocka_unit_test(test_exec_hook_passes_files_and_mountpoint),
		cmocka_unit_test(test_exec_hook_pause_failure_is_an_error_with_its_message),
		cmocka_unit_test(test_exec_hook_pause_timeout_kills_group_and_resumes),
		cmocka_unit_test(test_exec_hook_resume_is_retried_until_it_succeeds),
		cmocka_unit_test(test_exec_hook_missing_program_cannot_run),
		cmocka_unit_test(test_hook_run_does_not_wait_for_a_daemon_holding_its_output),
		cmocka_unit_test(test_qmp_client_skips_events_and_stale_replies),
		cmocka_unit_test(test_qmp_client_reports_unknown_command_as_not_supported),
		cmocka_unit_test(test_qmp_client_rejects_a_line_that_is_not_json),
		cmocka_unit_test(test_qmp_client_times_out_without_greeting),
		cmocka_unit_test(test_qmp_client_connect_refused_is_one_line),
		cmocka_unit_test(test_qmp_hook_pauses_and_resumes_a_running_vm),
		cmocka_unit_test(test_qmp_hook_leaves_an_operator_paused_vm_paused),
		cmocka_unit_test(test_qmp_rbd_hook_failed_handover_leaves_the_vm_to_resume),
		cmocka_unit_test(test_qmp_hook_second_pause_still_resumes_what_it_paused),
		cmocka_unit_test(test_qmp_hook_stop_error_is_one_line_and_vm_keeps_running),
		cmocka_unit_test(test_qmp_hook_fails_when_qemu_dies_during_stop),
		cmocka_unit_test(test_qmp_hook_resumes_when_stop_does_not_take),
		cmocka_unit_test(test_qmp_hook_resume_reconnects_after_connection_loss),
		cmocka_unit_test(test_qmp_hook_reports_a_missing_socket),
		cmocka_unit_test(test_qmp_hook_against_real_qemu),
		cmocka_unit_test(test_libvirt_hook_suspends_and_resumes_with_uri),
		cmocka_unit_test(test_libvirt_hook_leaves_a_paused_domain_paused),
		cmocka_unit_test(test_libvirt_hook_unknown_domain_is_one_line),
		cmocka_unit_test(test_libvirt_hook_against_real_libvirtd),
	};

	return cmocka_run_group_tests(tests, setup_all, teardown_all);
}
