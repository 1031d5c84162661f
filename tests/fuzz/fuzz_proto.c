/*
 * fuzz_proto: libFuzzer target for the control protocol parser (ctl/proto.c),
 * the code that reads what any local peer sends to the daemon.
 *
 * An input is a wire message: a struct ctl_hdr (16 bytes) then the payload.
 * Every input goes through
 *   - ctl_hdr_check, against an independent statement of the rule;
 *   - ctl_recv on a pipe holding the input (the daemon's read path);
 *   - ctl_split_argv on the payload (hdr.len bytes if the header is good and
 *     that many are there, else all that follows the header), copied to a
 *     buffer of exactly that size so that an over-read is an ASan report;
 *     the argv must tile the buffer, and ctl_join_argv must give it back;
 *   - ctl_parse_request on the argv, with an error buffer of 1..64 bytes:
 *     the result must be well formed (pointers into argv, counts in bounds,
 *     the error NUL-terminated inside the buffer);
 *   - ctl_parse_size on every argument, checked against strtoull for plain
 *     decimal numbers; ctl_parse_duration and ctl_job_name_ok on every
 *     argument (a duration accepted is positive and in range, a name
 *     accepted has only the documented bytes); ctl_socket_path with a small
 *     buffer.
 * A broken invariant aborts, which libFuzzer reports as a crash.
 *
 * Built and run by tests/fuzz/run.sh; not part of the unit build.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ctl/proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond) do { \
	if (!(cond)) { \
		fprintf(stderr, "fuzz_proto: %s:%d: invariant '%s' broken\n", \
			__FILE__, __LINE__, #cond); \
		abort(); \
	} \
} while (0)

static bool points_into(const char *p, const char *const *argv, int argc)
{
	for (int i = 0; i < argc; i++)
		if (p == argv[i] || (p > argv[i] && p <= argv[i] + strlen(argv[i])))
			return true;
	return false;
}

static void check_hdr(const struct ctl_hdr *h)
{
	static const struct { uint16_t type; uint32_t max; } cases[] = {
		{ CTL_T_REQUEST, CTL_REQ_MAX }, { CTL_T_REPLY, CTL_REPLY_MAX },
		{ CTL_T_REQUEST, 0 }, { 0, UINT32_MAX },
	};

	for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
		int r = ctl_hdr_check(h, cases[k].type, cases[k].max);
		bool proto_ok = h->magic == CTL_MAGIC && h->version == CTL_VERSION &&
				h->type == cases[k].type;

		if (!proto_ok)
			CHECK(r == -EPROTO);
		else if (h->len > cases[k].max)
			CHECK(r == -EMSGSIZE);
		else
			CHECK(r == 0);
	}
}

static void check_recv(const uint8_t *data, size_t size)
{
	struct ctl_hdr h;
	char *payload = (char *)1;
	int fds[2], r;

	if (size > 60000 || pipe2(fds, O_CLOEXEC) == -1)	/* fits in a pipe */
		return;
	CHECK(ctl_write_all(fds[1], data, size) == 0);
	close(fds[1]);
	r = ctl_recv(fds[0], CTL_T_REQUEST, CTL_REQ_MAX, &h, &payload);
	close(fds[0]);
	if (r == 0) {
		CHECK(size >= sizeof(h) + h.len);
		CHECK(h.len <= CTL_REQ_MAX);
		CHECK(payload != NULL && payload[h.len] == '\0');
		CHECK(memcmp(payload, data + sizeof(h), h.len) == 0);
		free(payload);
	} else {
		CHECK(r == -EPIPE || r == -EPROTO || r == -EMSGSIZE);
		CHECK(payload == NULL);
	}
}

static void check_size(const char *s)
{
	uint64_t v = 0xdeadbeef;
	int r = ctl_parse_size(s, &v);
	size_t n = strlen(s);

	CHECK(r == 0 || r == -EINVAL);
	if (r == 0)
		CHECK(*s != '-' && *s != '+');
	if (n > 0 && n <= 15 && strspn(s, "0123456789") == n) {
		CHECK(r == 0);
		CHECK(v == strtoull(s, NULL, 10));
	}
}

static void check_duration_and_name(const char *s)
{
	double v = -1;
	int r = ctl_parse_duration(s, &v);

	CHECK(r == 0 || r == -EINVAL);
	if (r == 0)
		CHECK(v > 0 && v <= CTL_DEADLINE_MAX_S);
	if (ctl_job_name_ok(s)) {
		size_t n = strlen(s);

		CHECK(n >= 1 && n <= CTL_JOB_NAME_MAX && s[0] != '-' && s[0] != '.');
		CHECK(strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-+:@") == n);
	}
}

static void check_request(int argc, const char **argv, size_t errlen)
{
	struct ctl_request req;
	char *err = malloc(errlen);	/* exactly errlen: ASan sees overruns */
	int r;

	if (!err)
		return;
	memset(err, 'x', errlen);
	r = ctl_parse_request(argc, argv, &req, err, errlen);
	CHECK(r == 0 || r == -EINVAL);
	if (r == -EINVAL) {
		CHECK(memchr(err, '\0', errlen) != NULL);
		CHECK(errlen == 1 || err[0] != '\0');
#ifdef FUZZ_STRICT_ERR
		/* proto.h: "writes one line, without newline" */
		CHECK(strchr(err, '\n') == NULL);
#endif
		free(err);
		return;
	}
	free(err);
	CHECK(req.cmd >= CTL_CMD_STATUS && req.cmd <= CTL_CMD_LIMIT);
	CHECK(strcmp(argv[0], "status") == 0 || req.cmd != CTL_CMD_STATUS);
	CHECK(req.nfiles >= 0 && req.nfiles <= CTL_FILES_MAX);
	CHECK(req.nhooks >= 0 && req.nhooks <= CTL_HOOKS_MAX);
	CHECK(req.nfiles == 0 || req.cmd == CTL_CMD_MIGRATE);
	CHECK(req.cmd != CTL_CMD_MIGRATE || req.to != NULL);
	CHECK(!req.json || req.cmd == CTL_CMD_STATUS);
	CHECK(!req.remove_source || req.cmd == CTL_CMD_CUTOVER);
	CHECK(req.nhooks == 0 || req.cmd == CTL_CMD_CUTOVER);
	CHECK(req.max_downtime_ms >= 0 && req.max_downtime_ms <= 3600 * 1000);
	CHECK(req.timeout_s >= 0 && req.timeout_s <= 1e9);
	CHECK(req.rate == 0 || req.cmd == CTL_CMD_MIGRATE);
	CHECK(req.priority >= 0 && req.priority <= CTL_PRIORITY_MAX);
	CHECK(req.priority == 0 || req.cmd == CTL_CMD_MIGRATE);
	CHECK(req.deadline_s >= 0 && req.deadline_s <= CTL_DEADLINE_MAX_S);
	CHECK(req.deadline_s == 0 || req.cmd == CTL_CMD_MIGRATE);
	CHECK(req.parallel >= -1 && req.parallel <= CTL_PARALLEL_MAX);
	CHECK(req.parallel == -1 || req.cmd == CTL_CMD_LIMIT);
	CHECK(!req.has_limit || req.cmd == CTL_CMD_LIMIT);
	CHECK(req.has_limit || req.limit == 0);
	CHECK(req.cmd != CTL_CMD_LIMIT || !req.job || (req.has_limit && req.parallel == -1));
	if (req.job)
		CHECK(ctl_job_name_ok(req.job) && points_into(req.job, argv, argc));
	if (req.to)
		CHECK(*req.to && points_into(req.to, argv, argc));
	if (req.delta_dir)
		CHECK(*req.delta_dir && points_into(req.delta_dir, argv, argc));
	for (int i = 0; i < req.nfiles; i++)
		CHECK(*req.files[i] && points_into(req.files[i], argv, argc));
	for (int i = 0; i < req.nhooks; i++)
		CHECK(*req.hooks[i] && points_into(req.hooks[i], argv, argc));
}

static void check_payload(const char *buf, size_t len, size_t errlen)
{
	static const char *argv[CTL_ARGV_MAX + 1];
	size_t nuls = 0;
	int argc = ctl_split_argv(buf, len, argv, CTL_ARGV_MAX);
	char *join;

	for (size_t i = 0; i < len; i++)
		nuls += buf[i] == '\0';
	if (len == 0 || buf[len - 1] != '\0' || nuls > CTL_ARGV_MAX) {
		CHECK(argc == -EINVAL);
		return;
	}
	CHECK(argc == (int)nuls);

	/* the strings tile the buffer, in order */
	for (int i = 0; i < argc; i++) {
		size_t off = (size_t)(argv[i] - buf);

		CHECK(off < len);
		CHECK(i > 0 || off == 0);
		if (i > 0)
			CHECK(argv[i] == argv[i - 1] + strlen(argv[i - 1]) + 1);
	}
	CHECK(argv[argc - 1] + strlen(argv[argc - 1]) + 1 == buf + len);

	/* join gives the payload back, and refuses a buffer one byte short */
	join = malloc(len);
	if (join) {
		CHECK(ctl_join_argv(argc, (char *const *)argv, join, len) == (int)len);
		CHECK(memcmp(join, buf, len) == 0);
		CHECK(ctl_join_argv(argc, (char *const *)argv, join, len - 1) == -EMSGSIZE);
		free(join);
	}
	/* fewer slots than strings is refused */
	if (argc > 1)
		CHECK(ctl_split_argv(buf, len, argv, argc - 1) == -EINVAL);

	check_request(argc, argv, errlen);
	for (int i = 0; i < argc; i++) {
		check_size(argv[i]);
		check_duration_and_name(argv[i]);
	}

	char path[48];
	int r = ctl_socket_path(argv[0], path, sizeof(path));

	CHECK(r == 0 || r == -ENAMETOOLONG);
	if (r == 0)
		CHECK(strlen(path) < sizeof(path));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ctl_hdr h;
	size_t len, errlen;
	char *buf;

	if (size < sizeof(h))
		return 0;
	memcpy(&h, data, sizeof(h));
	check_hdr(&h);
	check_recv(data, size);

	len = size - sizeof(h);
	if (ctl_hdr_check(&h, CTL_T_REQUEST, CTL_REQ_MAX) == 0 && h.len <= len)
		len = h.len;
	/* the error buffer size comes from the (otherwise unused) status */
	errlen = 1 + (uint32_t)h.status % 64;
	buf = malloc(len ? len : 1);
	if (!buf)
		return 0;
	memcpy(buf, data + sizeof(h), len);
	check_payload(buf, len, errlen);
	free(buf);
	return 0;
}
