// modules: ctl/proto.c
/*
 * Unit tests for the control protocol (ctl/proto.c): header checks, argv
 * framing, request parsing, sizes, socket paths and the send/receive pair
 * over a socketpair.  Pure logic but for the last group, which needs no
 * daemon.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "ctl/proto.h"

#define ARGC(a) ((int)(sizeof(a) / sizeof((a)[0])))

static struct ctl_hdr good_hdr(uint16_t type, uint32_t len)
{
	struct ctl_hdr h = {
		.magic = CTL_MAGIC, .version = CTL_VERSION, .type = type, .len = len,
	};
	return h;
}

/* parse argv, expecting failure; returns the error text */
static const char *parse_error(int argc, const char **argv)
{
	static char err[256];
	struct ctl_request req;

	err[0] = '\0';
	assert_int_equal(ctl_parse_request(argc, argv, &req, err, sizeof(err)), -EINVAL);
	assert_true(err[0] != '\0');
	assert_null(strchr(err, '\n'));
	return err;
}

static void parse_ok(int argc, const char **argv, struct ctl_request *req)
{
	char err[256] = "";
	int ret = ctl_parse_request(argc, argv, req, err, sizeof(err));

	if (ret)
		fail_msg("parse failed: %s", err);
}

/* ---- ctl_hdr_check ---- */

static void test_hdr_check_accepts_a_well_formed_header(void **state)
{
	struct ctl_hdr h = good_hdr(CTL_T_REQUEST, 100);

	assert_int_equal(ctl_hdr_check(&h, CTL_T_REQUEST, CTL_REQ_MAX), 0);
}

static void test_hdr_check_rejects_wrong_magic(void **state)
{
	struct ctl_hdr h = good_hdr(CTL_T_REQUEST, 0);

	h.magic = 0x12345678;
	assert_int_equal(ctl_hdr_check(&h, CTL_T_REQUEST, CTL_REQ_MAX), -EPROTO);
}

static void test_hdr_check_rejects_wrong_version(void **state)
{
	struct ctl_hdr h = good_hdr(CTL_T_REQUEST, 0);

	h.version = CTL_VERSION + 1;
	assert_int_equal(ctl_hdr_check(&h, CTL_T_REQUEST, CTL_REQ_MAX), -EPROTO);
}

static void test_hdr_check_rejects_a_reply_where_a_request_is_expected(void **state)
{
	struct ctl_hdr h = good_hdr(CTL_T_REPLY, 0);

	assert_int_equal(ctl_hdr_check(&h, CTL_T_REQUEST, CTL_REQ_MAX), -EPROTO);
}

static void test_hdr_check_accepts_a_payload_of_exactly_the_maximum(void **state)
{
	struct ctl_hdr h = good_hdr(CTL_T_REQUEST, CTL_REQ_MAX);

	assert_int_equal(ctl_hdr_check(&h, CTL_T_REQUEST, CTL_REQ_MAX), 0);
}

static void test_hdr_check_rejects_a_payload_one_byte_over_the_maximum(void **state)
{
	struct ctl_hdr h = good_hdr(CTL_T_REQUEST, CTL_REQ_MAX + 1);

	assert_int_equal(ctl_hdr_check(&h, CTL_T_REQUEST, CTL_REQ_MAX), -EMSGSIZE);
}

/* ---- ctl_split_argv / ctl_join_argv ---- */

static void test_split_argv_splits_nul_terminated_strings(void **state)
{
	static const char buf[] = "migrate\0--to\0/dst\0disk.raw";	/* final NUL implied */
	const char *argv[8];

	assert_int_equal(ctl_split_argv(buf, sizeof(buf), argv, 8), 4);
	assert_string_equal(argv[0], "migrate");
	assert_string_equal(argv[1], "--to");
	assert_string_equal(argv[2], "/dst");
	assert_string_equal(argv[3], "disk.raw");
}

static void test_split_argv_keeps_empty_strings(void **state)
{
	static const char buf[] = "a\0\0b";
	const char *argv[8];

	assert_int_equal(ctl_split_argv(buf, sizeof(buf), argv, 8), 3);
	assert_string_equal(argv[1], "");
}

static void test_split_argv_rejects_missing_terminator(void **state)
{
	static const char buf[] = { 's', 't', 'a', 't', 'u', 's' };
	const char *argv[8];

	assert_int_equal(ctl_split_argv(buf, sizeof(buf), argv, 8), -EINVAL);
}

static void test_split_argv_rejects_an_empty_payload(void **state)
{
	const char *argv[8];

	assert_int_equal(ctl_split_argv("", 0, argv, 8), -EINVAL);
}

static void test_split_argv_rejects_more_strings_than_fit(void **state)
{
	static const char buf[] = "a\0b\0c";
	const char *argv[2];

	assert_int_equal(ctl_split_argv(buf, sizeof(buf), argv, 2), -EINVAL);
}

static void test_split_argv_accepts_exactly_max_strings(void **state)
{
	static const char buf[] = "a\0b\0c";
	const char *argv[3];

	assert_int_equal(ctl_split_argv(buf, sizeof(buf), argv, 3), 3);
}

static void test_join_then_split_round_trips(void **state)
{
	char *in[] = { "cutover", "--hook", "exec:/bin/true", "--max-downtime", "500" };
	char buf[256];
	const char *out[8];
	int len = ctl_join_argv(ARGC(in), in, buf, sizeof(buf));

	assert_true(len > 0);
	assert_int_equal(ctl_split_argv(buf, (size_t)len, out, 8), ARGC(in));
	for (int i = 0; i < ARGC(in); i++)
		assert_string_equal(out[i], in[i]);
}

static void test_join_argv_counts_every_terminator(void **state)
{
	char *in[] = { "ab", "", "c" };
	char buf[16];

	assert_int_equal(ctl_join_argv(ARGC(in), in, buf, sizeof(buf)), 3 + 1 + 2);
}

static void test_join_argv_fails_when_the_buffer_is_one_byte_short(void **state)
{
	char *in[] = { "status", "--json" };
	char buf[14];

	assert_int_equal(ctl_join_argv(ARGC(in), in, buf, 14), 14);
	assert_int_equal(ctl_join_argv(ARGC(in), in, buf, 13), -EMSGSIZE);
}

/* ---- ctl_parse_size ---- */

static void test_parse_size_reads_plain_bytes(void **state)
{
	uint64_t v;

	assert_int_equal(ctl_parse_size("123", &v), 0);
	assert_int_equal(v, 123);
}

static void test_parse_size_uses_powers_of_1024(void **state)
{
	uint64_t v;

	assert_int_equal(ctl_parse_size("10M", &v), 0);
	assert_int_equal(v, 10ull << 20);
	assert_int_equal(ctl_parse_size("4k", &v), 0);
	assert_int_equal(v, 4096);
	assert_int_equal(ctl_parse_size("2T", &v), 0);
	assert_int_equal(v, 2ull << 40);
}

static void test_parse_size_accepts_fractions(void **state)
{
	uint64_t v;

	assert_int_equal(ctl_parse_size("1.5G", &v), 0);
	assert_int_equal(v, 3ull << 29);
}

static void test_parse_size_accepts_iB_and_B_suffixes(void **state)
{
	uint64_t v;

	assert_int_equal(ctl_parse_size("100MiB", &v), 0);
	assert_int_equal(v, 100ull << 20);
	assert_int_equal(ctl_parse_size("100MB", &v), 0);
	assert_int_equal(v, 100ull << 20);
}

static void test_parse_size_rejects_garbage(void **state)
{
	static const char *bad[] = {
		"", "-1", "+5", "abc", "10X", "10MiBs", "1e400", "nan", "inf", "M", "10 M",
	};
	uint64_t v;

	for (int i = 0; i < ARGC(bad); i++)
		if (ctl_parse_size(bad[i], &v) != -EINVAL)
			fail_msg("'%s' was accepted", bad[i]);
	assert_int_equal(ctl_parse_size(NULL, &v), -EINVAL);
}

static void test_parse_size_rejects_values_that_overflow_64_bits(void **state)
{
	uint64_t v;

	assert_int_equal(ctl_parse_size("16777216T", &v), -EINVAL);
	assert_int_equal(ctl_parse_size("18446744073709551616", &v), -EINVAL);
}

/* ---- ctl_parse_request ---- */

static void test_parse_request_reads_status_with_json(void **state)
{
	const char *argv[] = { "status", "--json" };
	struct ctl_request req;

	parse_ok(ARGC(argv), argv, &req);
	assert_int_equal(req.cmd, CTL_CMD_STATUS);
	assert_true(req.json);
}

static void test_parse_request_reads_migrate_with_every_option(void **state)
{
	const char *argv[] = { "migrate", "--to", "/new", "--delta-dir", "/d", "--rate", "100M",
			       "a.raw", "b.qcow2" };
	struct ctl_request req;

	parse_ok(ARGC(argv), argv, &req);
	assert_int_equal(req.cmd, CTL_CMD_MIGRATE);
	assert_string_equal(req.to, "/new");
	assert_string_equal(req.delta_dir, "/d");
	assert_int_equal(req.rate, 100ull << 20);
	assert_int_equal(req.nfiles, 2);
	assert_string_equal(req.files[0], "a.raw");
	assert_string_equal(req.files[1], "b.qcow2");
}

static void test_parse_request_takes_files_after_double_dash(void **state)
{
	const char *argv[] = { "migrate", "--to", "/new", "--", "--odd-name" };
	struct ctl_request req;

	parse_ok(ARGC(argv), argv, &req);
	assert_int_equal(req.nfiles, 1);
	assert_string_equal(req.files[0], "--odd-name");
}

static void test_parse_request_reads_cutover_with_hooks_and_downtime(void **state)
{
	const char *argv[] = { "cutover", "--max-downtime", "250", "--hook", "qmp:/run/vm.sock",
			       "--hook", "exec:/bin/true", "--timeout", "2.5", "--remove-source" };
	struct ctl_request req;

	parse_ok(ARGC(argv), argv, &req);
	assert_int_equal(req.cmd, CTL_CMD_CUTOVER);
	assert_int_equal(req.max_downtime_ms, 250);
	assert_int_equal(req.nhooks, 2);
	assert_string_equal(req.hooks[1], "exec:/bin/true");
	assert_true(req.timeout_s > 2.49 && req.timeout_s < 2.51);
	assert_true(req.remove_source);
}

static void test_parse_request_reads_wait_abort_and_verify(void **state)
{
	const char *w[] = { "wait", "--timeout", "0" };
	const char *a[] = { "abort" };
	const char *v[] = { "verify" };
	struct ctl_request req;

	parse_ok(ARGC(w), w, &req);
	assert_int_equal(req.cmd, CTL_CMD_WAIT);
	parse_ok(ARGC(a), a, &req);
	assert_int_equal(req.cmd, CTL_CMD_ABORT);
	parse_ok(ARGC(v), v, &req);
	assert_int_equal(req.cmd, CTL_CMD_VERIFY);
}

static void test_parse_request_clears_the_request_first(void **state)
{
	const char *argv[] = { "abort" };
	struct ctl_request req;

	memset(&req, 0xa5, sizeof(req));
	parse_ok(ARGC(argv), argv, &req);
	assert_int_equal(req.nfiles, 0);
	assert_int_equal(req.nhooks, 0);
	assert_null(req.to);
	assert_false(req.json);
}

/* ---- jobs, limit, durations ---- */

static void test_parse_request_reads_migrate_of_a_named_job_with_priority_and_deadline(void **state)
{
	const char *argv[] = { "migrate", "--job", "vm-7.db", "--to", "/new", "--priority", "250",
			       "--deadline", "1h30m", "--rate", "8M", "vm7/disk.img" };
	struct ctl_request req;

	parse_ok(ARGC(argv), argv, &req);
	assert_int_equal(req.cmd, CTL_CMD_MIGRATE);
	assert_string_equal(req.job, "vm-7.db");
	assert_int_equal(req.priority, 250);
	assert_true(req.deadline_s > 5399.9 && req.deadline_s < 5400.1);
	assert_int_equal(req.rate, 8u << 20);
	assert_int_equal(req.nfiles, 1);
}

static void test_parse_request_without_job_options_leaves_them_unset(void **state)
{
	const char *argv[] = { "migrate", "--to", "/new" };
	struct ctl_request req;

	parse_ok(ARGC(argv), argv, &req);
	assert_null(req.job);
	assert_int_equal(req.priority, 0);
	assert_true(req.deadline_s == 0);
	assert_false(req.has_limit);
	assert_int_equal(req.parallel, -1);
}

static void test_parse_request_takes_job_for_every_command_that_acts_on_one(void **state)
{
	static const char *cmds[] = { "status", "wait", "cutover", "abort", "verify" };

	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
		const char *argv[] = { cmds[i], "--job", "a" };
		struct ctl_request req;

		parse_ok(ARGC(argv), argv, &req);
		assert_string_equal(req.job, "a");
	}
}

static void test_parse_request_rejects_bad_job_names(void **state)
{
	static const char *bad[] = { "", "-x", ".hidden", "a b", "a/b", "a\nb", "\xc3\xa9",
				     "x12345678901234567890123456789012345678901234567890123456789012345" };

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		const char *argv[] = { "abort", "--job", bad[i] };

		parse_error(ARGC(argv), argv);
	}
}

static void test_job_name_ok_accepts_the_documented_characters_up_to_the_maximum(void **state)
{
	char name[CTL_JOB_NAME_MAX + 2];

	assert_true(ctl_job_name_ok("vm_7.db-2+x:y@host"));
	assert_true(ctl_job_name_ok("7"));
	memset(name, 'a', CTL_JOB_NAME_MAX);
	name[CTL_JOB_NAME_MAX] = '\0';
	assert_true(ctl_job_name_ok(name));
	name[CTL_JOB_NAME_MAX] = 'a';
	name[CTL_JOB_NAME_MAX + 1] = '\0';
	assert_false(ctl_job_name_ok(name));
	assert_false(ctl_job_name_ok(NULL));
}

static void test_parse_request_rejects_bad_priorities_and_deadlines(void **state)
{
	static const char *prios[] = { "0", "1001", "-1", "x", "1.5", " 1" };
	static const char *deadlines[] = { "0", "0s", "-5m", "1h30", "30m1h", "1x", "m", "1e3",
					   "inf", "367d", "1m1m", "nan" };

	for (size_t i = 0; i < sizeof(prios) / sizeof(prios[0]); i++) {
		const char *argv[] = { "migrate", "--to", "/d", "--priority", prios[i] };

		parse_error(ARGC(argv), argv);
	}
	for (size_t i = 0; i < sizeof(deadlines) / sizeof(deadlines[0]); i++) {
		const char *argv[] = { "migrate", "--to", "/d", "--deadline", deadlines[i] };

		parse_error(ARGC(argv), argv);
	}
}

static void test_parse_duration_reads_units_in_order(void **state)
{
	double v;

	assert_int_equal(ctl_parse_duration("90", &v), 0);
	assert_true(v == 90);
	assert_int_equal(ctl_parse_duration("45m", &v), 0);
	assert_true(v == 2700);
	assert_int_equal(ctl_parse_duration("2h", &v), 0);
	assert_true(v == 7200);
	assert_int_equal(ctl_parse_duration("1d2h3m4s", &v), 0);
	assert_true(v == 86400 + 7200 + 180 + 4);
	assert_int_equal(ctl_parse_duration("1.5h", &v), 0);
	assert_true(v == 5400);
	assert_int_equal(ctl_parse_duration("1h5s", &v), 0);
	assert_true(v == 3605);
	assert_int_equal(ctl_parse_duration("s", &v), -EINVAL);
	assert_int_equal(ctl_parse_duration("", &v), -EINVAL);
}

static void test_parse_request_reads_limit_forms(void **state)
{
	const char *total[] = { "limit", "40M" };
	const char *job[] = { "limit", "--job", "a", "0" };
	const char *par[] = { "limit", "--parallel", "3" };
	const char *both[] = { "limit", "--parallel", "0", "1G" };
	const char *show[] = { "limit" };
	struct ctl_request req;

	parse_ok(ARGC(total), total, &req);
	assert_int_equal(req.cmd, CTL_CMD_LIMIT);
	assert_true(req.has_limit);
	assert_int_equal(req.limit, 40u << 20);
	assert_null(req.job);
	assert_int_equal(req.parallel, -1);
	parse_ok(ARGC(job), job, &req);
	assert_string_equal(req.job, "a");
	assert_true(req.has_limit);
	assert_int_equal(req.limit, 0);
	parse_ok(ARGC(par), par, &req);
	assert_int_equal(req.parallel, 3);
	assert_false(req.has_limit);
	parse_ok(ARGC(both), both, &req);
	assert_int_equal(req.parallel, 0);
	assert_int_equal(req.limit, 1u << 30);
	parse_ok(ARGC(show), show, &req);
	assert_false(req.has_limit);
	assert_int_equal(req.parallel, -1);
}

static void test_parse_request_rejects_bad_limits(void **state)
{
	const char *two[] = { "limit", "1M", "2M" };
	const char *bad[] = { "limit", "fast" };
	const char *jobpar[] = { "limit", "--job", "a", "--parallel", "2", "1M" };
	const char *jobonly[] = { "limit", "--job", "a" };
	const char *par[] = { "limit", "--parallel", "1025" };
	const char *neg[] = { "limit", "--parallel", "-1" };
	const char *other[] = { "migrate", "--to", "/d", "--parallel", "2" };

	assert_non_null(strstr(parse_error(ARGC(two), two), "one BYTES_PER_S"));
	parse_error(ARGC(bad), bad);
	assert_non_null(strstr(parse_error(ARGC(jobpar), jobpar), "without --job"));
	parse_error(ARGC(jobonly), jobonly);
	parse_error(ARGC(par), par);
	parse_error(ARGC(neg), neg);
	parse_error(ARGC(other), other);
}

static void test_parse_request_rejects_no_command(void **state)
{
	const char *argv[] = { NULL };

	assert_string_equal(parse_error(0, argv), "no command given");
}

static void test_parse_request_rejects_an_unknown_command(void **state)
{
	const char *argv[] = { "frobnicate" };

	assert_string_equal(parse_error(1, argv), "unknown command 'frobnicate'");
}

static void test_parse_request_rejects_migrate_without_destination(void **state)
{
	const char *argv[] = { "migrate", "disk.raw" };

	assert_string_equal(parse_error(ARGC(argv), argv), "migrate needs --to DEST_DIR");
}

static void test_parse_request_rejects_an_option_of_another_command(void **state)
{
	const char *a[] = { "status", "--to", "/x" };
	const char *b[] = { "migrate", "--json", "--to", "/x" };
	const char *c[] = { "abort", "--timeout", "3" };

	assert_string_equal(parse_error(ARGC(a), a), "option '--to' does not apply to 'status'");
	assert_string_equal(parse_error(ARGC(b), b), "option '--json' does not apply to 'migrate'");
	assert_string_equal(parse_error(ARGC(c), c), "option '--timeout' does not apply to 'abort'");
}

static void test_parse_request_rejects_an_option_missing_its_value(void **state)
{
	const char *a[] = { "migrate", "--to" };
	const char *b[] = { "migrate", "--to", "" };

	assert_string_equal(parse_error(ARGC(a), a), "option '--to' needs a value");
	assert_string_equal(parse_error(ARGC(b), b), "option '--to' needs a value");
}

static void test_parse_request_rejects_an_unknown_option(void **state)
{
	const char *argv[] = { "status", "--verbose" };

	assert_string_equal(parse_error(ARGC(argv), argv), "unknown option '--verbose' for 'status'");
}

static void test_parse_request_rejects_a_zero_or_bad_rate(void **state)
{
	const char *a[] = { "migrate", "--to", "/x", "--rate", "0" };
	const char *b[] = { "migrate", "--to", "/x", "--rate", "fast" };

	assert_non_null(strstr(parse_error(ARGC(a), a), "bad rate '0'"));
	assert_non_null(strstr(parse_error(ARGC(b), b), "bad rate 'fast'"));
}

static void test_parse_request_rejects_bad_timeouts_and_downtimes(void **state)
{
	const char *a[] = { "wait", "--timeout", "-1" };
	const char *b[] = { "wait", "--timeout", "soon" };
	const char *c[] = { "cutover", "--max-downtime", "0" };
	const char *d[] = { "cutover", "--max-downtime", "1.5" };
	const char *e[] = { "cutover", "--max-downtime", "3600001" };

	assert_string_equal(parse_error(ARGC(a), a), "bad timeout '-1' (seconds)");
	assert_string_equal(parse_error(ARGC(b), b), "bad timeout 'soon' (seconds)");
	assert_string_equal(parse_error(ARGC(c), c), "bad max-downtime '0' (milliseconds)");
	assert_string_equal(parse_error(ARGC(d), d), "bad max-downtime '1.5' (milliseconds)");
	assert_string_equal(parse_error(ARGC(e), e), "bad max-downtime '3600001' (milliseconds)");
}

static void test_parse_request_rejects_files_for_commands_other_than_migrate(void **state)
{
	const char *argv[] = { "status", "disk.raw" };

	assert_string_equal(parse_error(ARGC(argv), argv), "'status' takes no file arguments");
}

static void test_parse_request_rejects_an_empty_file_name(void **state)
{
	const char *argv[] = { "migrate", "--to", "/x", "" };

	assert_string_equal(parse_error(ARGC(argv), argv), "empty file name");
}

static void test_parse_request_rejects_more_files_than_the_limit(void **state)
{
	const char *argv[3 + CTL_FILES_MAX + 1];
	struct ctl_request req;

	argv[0] = "migrate";
	argv[1] = "--to";
	argv[2] = "/x";
	for (int i = 0; i < CTL_FILES_MAX + 1; i++)
		argv[3 + i] = "f";
	parse_ok(3 + CTL_FILES_MAX, argv, &req);
	assert_int_equal(req.nfiles, CTL_FILES_MAX);
	assert_string_equal(parse_error(ARGC(argv), argv), "too many files (at most 128)");
}

static void test_parse_request_rejects_more_hooks_than_the_limit(void **state)
{
	const char *argv[1 + 2 * (CTL_HOOKS_MAX + 1)];

	argv[0] = "cutover";
	for (int i = 0; i < CTL_HOOKS_MAX + 1; i++) {
		argv[1 + 2 * i] = "--hook";
		argv[2 + 2 * i] = "exec:/bin/true";
	}
	assert_string_equal(parse_error(ARGC(argv), argv), "too many hooks (at most 8)");
}

static void test_parse_request_truncates_a_long_error_to_the_buffer(void **state)
{
	const char *argv[] = { "status", "--an-option-name-much-longer-than-the-error-buffer" };
	struct ctl_request req;
	char err[16];

	assert_int_equal(ctl_parse_request(ARGC(argv), argv, &req, err, sizeof(err)), -EINVAL);
	assert_int_equal(strlen(err), sizeof(err) - 1);
}

/* ---- ctl_socket_path ---- */

static void test_socket_path_uses_rundir_from_the_environment(void **state)
{
	char path[256];

	setenv("RELOCFS_RUNDIR", "/tmp/rd", 1);
	assert_int_equal(ctl_socket_path("/var/lib/vm", path, sizeof(path)), 0);
	assert_int_equal(strncmp(path, "/tmp/rd/", 8), 0);
	assert_int_equal(strlen(path), strlen("/tmp/rd/") + 16 + strlen(".sock"));
	assert_string_equal(path + strlen(path) - 5, ".sock");
}

static void test_socket_path_defaults_to_run_relocfs(void **state)
{
	char path[256];

	unsetenv("RELOCFS_RUNDIR");
	assert_int_equal(ctl_socket_path("/var/lib/vm", path, sizeof(path)), 0);
	assert_int_equal(strncmp(path, CTL_RUNDIR "/", strlen(CTL_RUNDIR) + 1), 0);
	setenv("RELOCFS_RUNDIR", "", 1);
	assert_int_equal(ctl_socket_path("/var/lib/vm", path, sizeof(path)), 0);
	assert_int_equal(strncmp(path, CTL_RUNDIR "/", strlen(CTL_RUNDIR) + 1), 0);
}

static void test_socket_path_differs_between_mountpoints_and_is_stable(void **state)
{
	char a[256], b[256], c[256];

	setenv("RELOCFS_RUNDIR", "/tmp/rd", 1);
	assert_int_equal(ctl_socket_path("/mnt/a", a, sizeof(a)), 0);
	assert_int_equal(ctl_socket_path("/mnt/b", b, sizeof(b)), 0);
	assert_int_equal(ctl_socket_path("/mnt/a", c, sizeof(c)), 0);
	assert_string_not_equal(a, b);
	assert_string_equal(a, c);
}

static void test_socket_path_fails_when_the_buffer_is_too_small(void **state)
{
	char path[20];

	setenv("RELOCFS_RUNDIR", "/tmp/rd", 1);
	assert_int_equal(ctl_socket_path("/mnt/a", path, sizeof(path)), -ENAMETOOLONG);
}

/* ---- ctl_send / ctl_recv over a socketpair ---- */

static int pair[2];

static int setup_pair(void **state)
{
	return socketpair(AF_UNIX, SOCK_STREAM, 0, pair);
}

static int teardown_pair(void **state)
{
	close(pair[0]);
	close(pair[1]);
	return 0;
}

static void test_send_then_recv_delivers_payload_and_status(void **state)
{
	struct ctl_hdr h;
	char *payload;

	assert_int_equal(ctl_send(pair[0], CTL_T_REPLY, CTL_EUSAGE, "bad", 3), 0);
	assert_int_equal(ctl_recv(pair[1], CTL_T_REPLY, CTL_REPLY_MAX, &h, &payload), 0);
	assert_int_equal(h.status, CTL_EUSAGE);
	assert_int_equal(h.len, 3);
	assert_string_equal(payload, "bad");
	free(payload);
}

static void test_recv_of_an_empty_payload_gives_an_empty_string(void **state)
{
	struct ctl_hdr h;
	char *payload;

	assert_int_equal(ctl_send(pair[0], CTL_T_REPLY, 0, NULL, 0), 0);
	assert_int_equal(ctl_recv(pair[1], CTL_T_REPLY, CTL_REPLY_MAX, &h, &payload), 0);
	assert_non_null(payload);
	assert_string_equal(payload, "");
	free(payload);
}

static void test_recv_rejects_an_oversized_request_before_reading_it(void **state)
{
	struct ctl_hdr h = good_hdr(CTL_T_REQUEST, CTL_REQ_MAX + 1);
	char *payload = (char *)1;

	assert_int_equal(ctl_write_all(pair[0], &h, sizeof(h)), 0);
	assert_int_equal(ctl_recv(pair[1], CTL_T_REQUEST, CTL_REQ_MAX, &h, &payload), -EMSGSIZE);
	assert_null(payload);
}

static void test_recv_reports_epipe_when_the_peer_closes_mid_payload(void **state)
{
	struct ctl_hdr h = good_hdr(CTL_T_REQUEST, 10);
	char *payload;

	assert_int_equal(ctl_write_all(pair[0], &h, sizeof(h)), 0);
	assert_int_equal(ctl_write_all(pair[0], "abc", 3), 0);
	close(pair[0]);
	pair[0] = -1;
	assert_int_equal(ctl_recv(pair[1], CTL_T_REQUEST, CTL_REQ_MAX, &h, &payload), -EPIPE);
	assert_null(payload);
}

static void test_recv_reports_epipe_on_a_closed_connection(void **state)
{
	struct ctl_hdr h;
	char *payload;

	close(pair[0]);
	pair[0] = -1;
	assert_int_equal(ctl_recv(pair[1], CTL_T_REPLY, CTL_REPLY_MAX, &h, &payload), -EPIPE);
}

static void test_recv_rejects_a_message_of_the_wrong_type(void **state)
{
	struct ctl_hdr h;
	char *payload;

	assert_int_equal(ctl_send(pair[0], CTL_T_REQUEST, 0, "x", 1), 0);
	assert_int_equal(ctl_recv(pair[1], CTL_T_REPLY, CTL_REPLY_MAX, &h, &payload), -EPROTO);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_hdr_check_accepts_a_well_formed_header),
		cmocka_unit_test(test_hdr_check_rejects_wrong_magic),
		cmocka_unit_test(test_hdr_check_rejects_wrong_version),
		cmocka_unit_test(test_hdr_check_rejects_a_reply_where_a_request_is_expected),
		cmocka_unit_test(test_hdr_check_accepts_a_payload_of_exactly_the_maximum),
		cmocka_unit_test(test_hdr_check_rejects_a_payload_one_byte_over_the_maximum),
		cmocka_unit_test(test_split_argv_splits_nul_terminated_strings),
		cmocka_unit_test(test_split_argv_keeps_empty_strings),
		cmocka_unit_test(test_split_argv_rejects_missing_terminator),
		cmocka_unit_test(test_split_argv_rejects_an_empty_payload),
		cmocka_unit_test(test_split_argv_rejects_more_strings_than_fit),
		cmocka_unit_test(test_split_argv_accepts_exactly_max_strings),
		cmocka_unit_test(test_join_then_split_round_trips),
		cmocka_unit_test(test_join_argv_counts_every_terminator),
		cmocka_unit_test(test_join_argv_fails_when_the_buffer_is_one_byte_short),
		cmocka_unit_test(test_parse_size_reads_plain_bytes),
		cmocka_unit_test(test_parse_size_uses_powers_of_1024),
		cmocka_unit_test(test_parse_size_accepts_fractions),
		cmocka_unit_test(test_parse_size_accepts_iB_and_B_suffixes),
		cmocka_unit_test(test_parse_size_rejects_garbage),
		cmocka_unit_test(test_parse_size_rejects_values_that_overflow_64_bits),
		cmocka_unit_test(test_parse_request_reads_status_with_json),
		cmocka_unit_test(test_parse_request_reads_migrate_with_every_option),
		cmocka_unit_test(test_parse_request_takes_files_after_double_dash),
		cmocka_unit_test(test_parse_request_reads_cutover_with_hooks_and_downtime),
		cmocka_unit_test(test_parse_request_reads_wait_abort_and_verify),
		cmocka_unit_test(test_parse_request_clears_the_request_first),
		cmocka_unit_test(test_parse_request_reads_migrate_of_a_named_job_with_priority_and_deadline),
		cmocka_unit_test(test_parse_request_without_job_options_leaves_them_unset),
		cmocka_unit_test(test_parse_request_takes_job_for_every_command_that_acts_on_one),
		cmocka_unit_test(test_parse_request_rejects_bad_job_names),
		cmocka_unit_test(test_job_name_ok_accepts_the_documented_characters_up_to_the_maximum),
		cmocka_unit_test(test_parse_request_rejects_bad_priorities_and_deadlines),
		cmocka_unit_test(test_parse_duration_reads_units_in_order),
		cmocka_unit_test(test_parse_request_reads_limit_forms),
		cmocka_unit_test(test_parse_request_rejects_bad_limits),
		cmocka_unit_test(test_parse_request_rejects_no_command),
		cmocka_unit_test(test_parse_request_rejects_an_unknown_command),
		cmocka_unit_test(test_parse_request_rejects_migrate_without_destination),
		cmocka_unit_test(test_parse_request_rejects_an_option_of_another_command),
		cmocka_unit_test(test_parse_request_rejects_an_option_missing_its_value),
		cmocka_unit_test(test_parse_request_rejects_an_unknown_option),
		cmocka_unit_test(test_parse_request_rejects_a_zero_or_bad_rate),
		cmocka_unit_test(test_parse_request_rejects_bad_timeouts_and_downtimes),
		cmocka_unit_test(test_parse_request_rejects_files_for_commands_other_than_migrate),
		cmocka_unit_test(test_parse_request_rejects_an_empty_file_name),
		cmocka_unit_test(test_parse_request_rejects_more_files_than_the_limit),
		cmocka_unit_test(test_parse_request_rejects_more_hooks_than_the_limit),
		cmocka_unit_test(test_parse_request_truncates_a_long_error_to_the_buffer),
		cmocka_unit_test(test_socket_path_uses_rundir_from_the_environment),
		cmocka_unit_test(test_socket_path_defaults_to_run_relocfs),
		cmocka_unit_test(test_socket_path_differs_between_mountpoints_and_is_stable),
		cmocka_unit_test(test_socket_path_fails_when_the_buffer_is_too_small),
		cmocka_unit_test_setup_teardown(test_send_then_recv_delivers_payload_and_status,
						 setup_pair, teardown_pair),
		cmocka_unit_test_setup_teardown(test_recv_of_an_empty_payload_gives_an_empty_string,
						 setup_pair, teardown_pair),
		cmocka_unit_test_setup_teardown(test_recv_rejects_an_oversized_request_before_reading_it,
						 setup_pair, teardown_pair),
		cmocka_unit_test_setup_teardown(test_recv_reports_epipe_when_the_peer_closes_mid_payload,
						 setup_pair, teardown_pair),
		cmocka_unit_test_setup_teardown(test_recv_reports_epipe_on_a_closed_connection,
						 setup_pair, teardown_pair),
		cmocka_unit_test_setup_teardown(test_recv_rejects_a_message_of_the_wrong_type,
						 setup_pair, teardown_pair),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
