// modules: ctl/mount_state.c
/*
 * Unit tests for the mount's durable record (ctl/mount_state.c): path
 * encoding, the text format and its parser (version 3, with several jobs,
 * their hand-offs and the files handed off; version 1 and 2 records), what a damaged record parses to,
 * and saving and loading real files in a private temporary directory.
 *
 * The rule a record must keep: whatever ms_format wrote, ms_parse gives
 * back; and a record changed in any one byte, or cut short anywhere, is
 * refused or parses to exactly the state that was saved, never another.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <xxhash.h>

#include "ctl/mount_state.h"

/* ---- helpers ---- */

static bool str_eq(const char *a, const char *b)
{
	if (!a || !b)
		return a == b;
	return strcmp(a, b) == 0;
}

static bool job_equal(const struct ms_job *a, const struct ms_job *b)
{
	if (a->id != b->id || a->tree != b->tree || a->queued != b->queued ||
	    !str_eq(a->name, b->name) || !str_eq(a->dest, b->dest) ||
	    !str_eq(a->delta_dir, b->delta_dir) || a->rate != b->rate ||
	    a->priority != b->priority || a->since_ms != b->since_ms ||
	    a->deadline_ms != b->deadline_ms || a->nfiles != b->nfiles ||
	    a->handoff != b->handoff || !str_eq(a->handoff_spec, b->handoff_spec) ||
	    !str_eq(a->handoff_vm, b->handoff_vm) ||
	    a->handoff_remove_source != b->handoff_remove_source)
		return false;
	for (size_t i = 0; i < a->nfiles; i++)
		if (!str_eq(a->files[i], b->files[i]))
			return false;
	return true;
}

/* Same state, field by field. */
static bool state_equal(const struct mount_state *a, const struct mount_state *b)
{
	if (!str_eq(a->root, b->root) || a->last_cutover_us != b->last_cutover_us ||
	    a->budget != b->budget || a->parallel != b->parallel ||
	    a->cutover_job != b->cutover_job || a->noverrides != b->noverrides ||
	    a->njobs != b->njobs || a->ncleanup != b->ncleanup || a->nsealed != b->nsealed)
		return false;
	for (size_t i = 0; i < a->nsealed; i++)
		if (!str_eq(a->sealed[i].relpath, b->sealed[i].relpath) ||
		    !str_eq(a->sealed[i].to, b->sealed[i].to) ||
		    !str_eq(a->sealed[i].vm, b->sealed[i].vm))
			return false;
	for (size_t i = 0; i < a->noverrides; i++)
		if (!str_eq(a->overrides[i].relpath, b->overrides[i].relpath) ||
		    !str_eq(a->overrides[i].backend, b->overrides[i].backend))
			return false;
	for (size_t k = 0; k < a->njobs; k++)
		if (!job_equal(&a->jobs[k], &b->jobs[k]))
			return false;
	for (size_t i = 0; i < a->ncleanup; i++)
		if (!str_eq(a->cleanup[i], b->cleanup[i]))
			return false;
	return true;
}

static char *xstrdup(const char *s)
{
	char *d = strdup(s);

	assert_non_null(d);
	return d;
}

/* A state with every kind of item, and names that need encoding: a
 * started files job with three files and a recorded hand-off, then a
 * queued one with a name, a deadline and one file, and a file handed off.  The strings are malloc'd so that ms_free can
 * free it. */
static void full_state(struct mount_state *st)
{
	static const char *files[] = { "vm/disk 1.qcow2", "vm/100%.img", "new\nline.raw" };
	struct ms_job *j;

	memset(st, 0, sizeof(*st));
	st->root = xstrdup("/srv/images with space");
	st->last_cutover_us = 18446744073709551615ull;
	st->budget = 40u << 20;
	st->parallel = 3;
	st->noverrides = 2;
	st->overrides = calloc(2, sizeof(*st->overrides));
	assert_non_null(st->overrides);
	st->overrides[0].relpath = xstrdup("a/b.img");
	st->overrides[0].backend = xstrdup("/mnt/fast");
	st->overrides[1].relpath = xstrdup("tab\there");
	st->overrides[1].backend = xstrdup("/mnt/\xc3\xa9t\xc3\xa9");
	st->njobs = 2;
	st->jobs = calloc(2, sizeof(*st->jobs));
	assert_non_null(st->jobs);
	j = &st->jobs[0];
	j->id = 42;
	j->tree = false;
	j->name = xstrdup("");
	j->dest = xstrdup("/mnt/new disk");
	j->delta_dir = xstrdup("/mnt/new disk/.relocfs/job-42");
	j->rate = 100u << 20;
	j->priority = 100;
	j->since_ms = 1790000000123ull;
	j->nfiles = 3;
	j->files = calloc(3, sizeof(*j->files));
	assert_non_null(j->files);
	for (size_t i = 0; i < 3; i++)
		j->files[i] = xstrdup(files[i]);
	j->handoff = MS_HANDOFF_RECORDED;
	j->handoff_spec = xstrdup("qmp-migrate:/run/vm 1.qmp@tcp:10.0.0.2:4444");
	j->handoff_vm = xstrdup("");
	j->handoff_remove_source = true;
	j = &st->jobs[1];
	j->id = 43;
	j->queued = true;
	j->name = xstrdup("vm7:db@host");
	j->dest = xstrdup("/mnt/other");
	j->delta_dir = xstrdup("/srv/images with space/.relocfs/delta/job-43");
	j->priority = 1000;
	j->since_ms = 1790000000456ull;
	j->deadline_ms = 1790002700456ull;
	j->nfiles = 1;
	j->files = calloc(1, sizeof(*j->files));
	assert_non_null(j->files);
	j->files[0] = xstrdup("vm7/db.img");
	st->cutover_job = 42;
	st->nsealed = 1;
	st->sealed = calloc(1, sizeof(*st->sealed));
	assert_non_null(st->sealed);
	st->sealed[0].relpath = xstrdup("vm9/d c.qcow2");
	st->sealed[0].to = xstrdup("unix:/run/x");
	st->sealed[0].vm = xstrdup("vm9");
	st->ncleanup = 2;
	st->cleanup = calloc(2, sizeof(*st->cleanup));
	assert_non_null(st->cleanup);
	st->cleanup[0] = xstrdup("/mnt/old/.relocfs/job-41");
	st->cleanup[1] = xstrdup("");
}

static void minimal_state(struct mount_state *st)
{
	memset(st, 0, sizeof(*st));
	st->root = xstrdup("/srv/images");
}

/* format st, parse it back, expect the same state */
static void assert_round_trip(const struct mount_state *st)
{
	struct mount_state back;
	char *text = ms_format(st);

	assert_non_null(text);
	assert_int_equal(ms_parse(text, &back), 0);
	if (!state_equal(st, &back))
		fail_msg("the record does not parse back to the state it was made from:\n%s", text);
	ms_free(&back);
	free(text);
}

/* ---- ms_encode / ms_decode ---- */

static void test_encode_then_decode_gives_back_every_byte_1_to_255(void **state)
{
	char all[256];

	for (int c = 1; c <= 255; c++) {
		char s[4] = { 'a', (char)c, 'z', '\0' };
		char *e = ms_encode(s), *d;

		assert_non_null(e);
		for (const unsigned char *p = (const unsigned char *)e; *p; p++)
			if (*p <= 0x20 || *p >= 0x7f)
				fail_msg("byte 0x%02x encodes to '%s', which holds byte 0x%02x", c, e, *p);
		d = ms_decode(e);
		assert_non_null(d);
		assert_string_equal(d, s);
		free(d);
		free(e);
		all[c - 1] = (char)c;
	}
	all[255] = '\0';
	char *e = ms_encode(all), *d = ms_decode(e);

	assert_non_null(d);
	assert_memory_equal(d, all, 256);
	free(d);
	free(e);
}

static void test_encode_escapes_space_percent_and_newline(void **state)
{
	char *e = ms_encode("a b%c\nd");

	assert_string_equal(e, "a%20b%25c%0Ad");
	free(e);
}

static void test_encode_of_empty_string_is_a_lone_percent_and_decodes_back(void **state)
{
	char *e = ms_encode(""), *d;

	assert_string_equal(e, "%");
	d = ms_decode(e);
	assert_string_equal(d, "");
	free(d);
	free(e);
}

static void test_encode_of_a_lone_percent_is_not_the_empty_string(void **state)
{
	char *e = ms_encode("%"), *d;

	assert_string_equal(e, "%25");
	d = ms_decode(e);
	assert_string_equal(d, "%");
	free(d);
	free(e);
}

static void test_decode_refuses_bad_escapes(void **state)
{
	static const char *bad[] = { "a%", "%4", "a%4", "%G0", "%0G", "%%", "%00", "a%00b", "%-1" };

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char *d = ms_decode(bad[i]);

		if (d)
			fail_msg("ms_decode('%s') accepted, gave '%s'", bad[i], d);
	}
}

static void test_decode_accepts_lower_case_hex(void **state)
{
	char *d = ms_decode("%2a%2F");

	assert_string_equal(d, "*/");
	free(d);
}

/* ---- ms_format / ms_parse ---- */

static void test_minimal_record_round_trips(void **state)
{
	struct mount_state st;

	minimal_state(&st);
	assert_round_trip(&st);
	ms_free(&st);
}

static void test_record_with_overrides_jobs_files_and_cleanup_round_trips(void **state)
{
	struct mount_state st;

	full_state(&st);
	assert_round_trip(&st);
	st.jobs[0].tree = true;
	st.jobs[1].queued = false;
	st.cutover_job = 0;
	assert_round_trip(&st);
	ms_free(&st);
}

static void test_record_with_a_job_and_no_files_round_trips(void **state)
{
	struct mount_state st;

	full_state(&st);
	for (size_t i = 0; i < st.jobs[0].nfiles; i++)
		free(st.jobs[0].files[i]);
	st.jobs[0].nfiles = 0;
	st.jobs[0].rate = 0;
	st.jobs[0].id = 0;
	st.jobs[0].priority = 0;
	assert_round_trip(&st);
	ms_free(&st);
}

static void test_record_without_jobs_round_trips(void **state)
{
	struct mount_state st;

	full_state(&st);
	for (size_t k = 0; k < st.njobs; k++)
		ms_job_free(&st.jobs[k]);
	st.njobs = 0;
	st.cutover_job = 0;
	assert_round_trip(&st);
	ms_free(&st);
}

static void test_a_started_job_carries_its_hand_off_after_its_files(void **state)
{
	struct mount_state st, back;
	char *text, *h, *f;

	full_state(&st);
	st.jobs[0].handoff = MS_HANDOFF_STARTED;
	free(st.jobs[0].handoff_vm);
	st.jobs[0].handoff_vm = xstrdup("vm 1");
	st.jobs[0].handoff_remove_source = false;
	text = ms_format(&st);
	assert_non_null(text);
	h = strstr(text, "\nhandoff started qmp-migrate:/run/vm%201.qmp@tcp:10.0.0.2:4444 vm%201 0\n");
	f = strstr(text, "\nfile 2 ");
	assert_non_null(h);
	assert_non_null(f);
	assert_true(f < h && h < strstr(text, "\njob 43 "));
	assert_int_equal(ms_parse(text, &back), 0);
	assert_int_equal(back.jobs[0].handoff, MS_HANDOFF_STARTED);
	assert_string_equal(back.jobs[0].handoff_vm, "vm 1");
	assert_int_equal(back.jobs[1].handoff, MS_HANDOFF_NONE);
	assert_null(back.jobs[1].handoff_spec);
	assert_true(state_equal(&st, &back));
	ms_free(&back);
	free(text);
	ms_free(&st);
}

static int parse_with_good_sum(const char *body, struct mount_state *st);

static void test_a_hand_off_belongs_to_a_started_job_and_a_version_3_record(void **state)
{
	static const char *bad[] = {
		"relocfs-state 3\nroot /x\nhandoff recorded s vm 0\n",	/* no job */
		"relocfs-state 3\nroot /x\njob 1 files queued % /d /dd 0 1 2 3\nfile 0 a\n"
		"handoff recorded s vm 0\n",
		"relocfs-state 3\nroot /x\njob 1 files started % /d /dd 0 1 2 3\n"
		"handoff recorded s vm 0\nfile 0 a\n",		/* a file after it */
		"relocfs-state 3\nroot /x\njob 1 files started % /d /dd 0 1 2 3\n"
		"handoff recorded s vm 0\nhandoff started s vm 0\n",
		"relocfs-state 3\nroot /x\njob 1 files started % /d /dd 0 1 2 3\n"
		"handoff done s vm 0\n",
		"relocfs-state 3\nroot /x\njob 1 files started % /d /dd 0 1 2 3\n"
		"handoff recorded s vm 2\n",
		"relocfs-state 3\nroot /x\njob 1 files started % /d /dd 0 1 2 3\n"
		"handoff recorded s vm\n",
		"relocfs-state 3\nroot /x\nsealed a b\n",
		"relocfs-state 3\nroot /x\nsealed a%zz b c\n",
		/* version 3 lines in a version 2 record */
		"relocfs-state 2\nroot /x\njob 1 files started % /d /dd 0 1 2 3\n"
		"handoff recorded s vm 0\n",
		"relocfs-state 2\nroot /x\nsealed a b c\n",
	};
	struct mount_state st;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int ret = parse_with_good_sum(bad[i], &st);

		if (ret != -EBADMSG)
			fail_msg("record accepted (%d):\n%s", ret, bad[i]);
	}
	assert_int_equal(parse_with_good_sum("relocfs-state 3\nroot /x\njob 1 files started % /d "
					     "/dd 0 1 2 3\nfile 0 a\nhandoff recorded s vm 1\n"
					     "sealed b unix:/y %\n", &st), 0);
	assert_int_equal(st.jobs[0].handoff, MS_HANDOFF_RECORDED);
	assert_true(st.jobs[0].handoff_remove_source);
	assert_int_equal(st.nsealed, 1);
	assert_string_equal(st.sealed[0].vm, "");
	ms_free(&st);
}

static void test_record_opens_with_its_version_and_closes_with_a_sum(void **state)
{
	struct mount_state st;
	char *text;
	size_t n;

	full_state(&st);
	text = ms_format(&st);
	assert_true(strncmp(text, "relocfs-state 3\nroot /srv/images%20with%20space\n", 47) == 0);
	n = strlen(text);
	assert_true(n > 22 && text[n - 1] == '\n');
	assert_true(strncmp(text + n - 22, "\nsum ", 5) == 0);
	free(text);
	ms_free(&st);
}

static void test_each_job_lists_its_own_files_from_zero(void **state)
{
	struct mount_state st;
	char *text;

	full_state(&st);
	text = ms_format(&st);
	assert_non_null(strstr(text, "job 42 files started % /mnt/new%20disk "
				     "/mnt/new%20disk/.relocfs/job-42 104857600 100 1790000000123 0\n"
				     "file 0 vm/disk%201.qcow2\nfile 1 vm/100%25.img\n"
				     "file 2 new%0Aline.raw\n"));
	assert_non_null(strstr(text, "job 43 files queued vm7:db@host /mnt/other "));
	assert_non_null(strstr(text, " 1000 1790000000456 1790002700456\nfile 0 vm7/db.img\n"));
	free(text);
	ms_free(&st);
}

static void test_find_and_drop_job_by_id(void **state)
{
	struct mount_state st;

	full_state(&st);
	assert_ptr_equal(ms_find_job(&st, 43), &st.jobs[1]);
	assert_null(ms_find_job(&st, 44));
	ms_drop_job(&st, 42);
	assert_int_equal(st.njobs, 1);
	assert_int_equal(st.jobs[0].id, 43);
	assert_string_equal(st.jobs[0].files[0], "vm7/db.img");
	ms_drop_job(&st, 44);	/* none: nothing changes */
	assert_int_equal(st.njobs, 1);
	ms_drop_job(&st, 43);
	assert_int_equal(st.njobs, 0);
	assert_round_trip(&st);
	ms_free(&st);
}

/* A path of n bytes: components of 100 two-byte UTF-8 characters ("é"),
 * or of spaces, joined by '/'. */
static char *long_path(size_t n, bool utf8)
{
	char *p = malloc(n + 1);

	assert_non_null(p);
	for (size_t i = 0; i < n; i++) {
		if (i % 201 == 200)
			p[i] = '/';
		else if (!utf8)
			p[i] = ' ';
		else
			p[i] = (char)(i % 201 % 2 ? 0xa9 : 0xc3);
	}
	if (utf8 && n % 201 % 2)
		p[n - 1] = 'x';		/* no half character at the end */
	p[n] = '\0';
	return p;
}

/*
 * A relocated path may be up to PATH_MAX - 1 bytes, and encoding makes each
 * byte up to three.  Whatever ms_format writes must come back: a record that
 * ms_save wrote and ms_load refuses keeps the daemon from starting, and one
 * that loads with a shortened path names another file.  Each field is tried
 * on its own; every field that fails is listed.
 */
static void test_paths_of_up_to_path_max_bytes_round_trip_in_every_field(void **state)
{
	static const char *fields[] = { "root", "override relpath", "override backend", "dest",
					"delta_dir", "file", "cleanup", "job name" };
	static const size_t lens[] = { 1364, 1406, 4095 };
	char report[1024] = "";
	size_t used = 0;
	int nbad = 0;

	for (size_t k = 0; k < sizeof(lens) / sizeof(lens[0]); k++) {
		for (int utf8 = 0; utf8 <= 1; utf8++) {
			for (size_t f = 0; f < sizeof(fields) / sizeof(fields[0]); f++) {
				struct mount_state st, back;
				char *p = long_path(lens[k], utf8), *text;
				int ret;

				full_state(&st);
				switch (f) {
				case 0: free(st.root); st.root = p; break;
				case 1: free(st.overrides[0].relpath); st.overrides[0].relpath = p; break;
				case 2: free(st.overrides[0].backend); st.overrides[0].backend = p; break;
				case 3: free(st.jobs[0].dest); st.jobs[0].dest = p; break;
				case 4: free(st.jobs[0].delta_dir); st.jobs[0].delta_dir = p; break;
				case 5: free(st.jobs[0].files[1]); st.jobs[0].files[1] = p; break;
				case 6: free(st.cleanup[0]); st.cleanup[0] = p; break;
				default: free(st.jobs[1].name); st.jobs[1].name = p; break;
				}
				text = ms_format(&st);
				assert_non_null(text);
				ret = ms_parse(text, &back);
				if ((ret != 0 || !state_equal(&st, &back)) && nbad++ < 8)
					used += (size_t)snprintf(report + used, sizeof(report) - used,
						"\n  %s of %zu bytes (%s): %s", fields[f], lens[k],
						utf8 ? "UTF-8" : "spaces",
						ret ? "record refused" : "parses to another state");
				if (ret == 0)
					ms_free(&back);
				free(text);
				ms_free(&st);
			}
		}
	}
	if (nbad)
		fail_msg("%d of %zu long paths do not round trip, the first:%s", nbad,
			 2 * sizeof(lens) / sizeof(lens[0]) * sizeof(fields) / sizeof(fields[0]),
			 report);
}

static void test_parse_refuses_a_record_without_sum(void **state)
{
	struct mount_state st;

	assert_int_equal(ms_parse("relocfs-state 1\nroot /x\n", &st), -EBADMSG);
	assert_int_equal(ms_parse("", &st), -EBADMSG);
	assert_null(st.root);
}

static void test_parse_refuses_a_wrong_sum(void **state)
{
	struct mount_state st;

	assert_int_equal(ms_parse("relocfs-state 1\nroot /x\nsum 0000000000000000\n", &st),
			 -EBADMSG);
}

/* A record with a good sum but bad content: the sum is computed here, as
 * ms_format does, so that the parser's other checks are reached. */
static int parse_with_good_sum(const char *body, struct mount_state *st)
{
	size_t n = strlen(body);
	char *text = malloc(n + 32);
	int ret;

	assert_non_null(text);
	snprintf(text, n + 32, "%ssum %016llx\n", body,
		 (unsigned long long)XXH3_64bits(body, n));
	ret = ms_parse(text, st);
	free(text);
	return ret;
}

static void test_parse_refuses_unknown_lines_and_bad_fields_even_with_a_good_sum(void **state)
{
	static const char *bad[] = {
		"relocfs-state 4\nroot /x\n",
		"relocfs-state 0\nroot /x\n",
		"relocfs-state 33\nroot /x\n",
		"relocfs-state 1\n",				/* no root */
		"relocfs-state 1\nroot /x\nfrobnicate 1\n",
		"relocfs-state 1\nroot /x y\n",
		"relocfs-state 1\nroot /x%zz\n",
		"relocfs-state 1\nroot /x\noverride a\n",
		"relocfs-state 1\nroot /x\njob 1 tree /d\n",
		"relocfs-state 1\nroot /x\njob 1 tree /d /dd 0\njob 2 tree /d /dd 0\n",
		"relocfs-state 1\nroot /x\njob 1 tree /d /dd 0\nfile 1 a\n",
		"relocfs-state 1\nroot /x\ncleanup\n",
		/* version 2 lines in a version 1 record */
		"relocfs-state 1\nroot /x\nbudget 5\n",
		"relocfs-state 1\nroot /x\nparallel 5\n",
		"relocfs-state 1\nroot /x\njob 1 files started % /d /dd 0 1 2 3\n",
		"relocfs-state 1\nroot /x\ncutover 1\n",
		/* version 2: a version 1 job line, fields missing or bad */
		"relocfs-state 2\nroot /x\njob 1 tree /d /dd 0\n",
		"relocfs-state 2\nroot /x\njob 1 tree started % /d /dd 0 1 2\n",
		"relocfs-state 2\nroot /x\njob 1 tree started % /d /dd 0 1 2 3 4\n",
		"relocfs-state 2\nroot /x\njob 1 tree begun % /d /dd 0 1 2 3\n",
		"relocfs-state 2\nroot /x\njob 1 both queued % /d /dd 0 1 2 3\n",
		"relocfs-state 2\nroot /x\njob 1 tree queued % /d /dd -1 1 2 3\n",
		"relocfs-state 2\nroot /x\njob 1 tree queued % /d /dd 0 4294967296 2 3\n",
		"relocfs-state 2\nroot /x\njob 1 tree queued % /d /dd 0 1 2 +3\n",
		"relocfs-state 2\nroot /x\njob 1 tree queued % /d /dd 0 1 2 99999999999999999999\n",
		"relocfs-state 2\nroot /x\nbudget -1\n",
		"relocfs-state 2\nroot /x\nparallel 4294967296\n",
		"relocfs-state 2\nroot /x\ncutover 0\n",
		"relocfs-state 2\nroot /x\ncutover 1\ncutover 2\n",
		"relocfs-state 2\nroot /x\nfile 0 a\n",	/* a file without a job */
		"relocfs-state 2\nroot /x\njob 1 tree queued % /d /dd 0 1 2 3\nfile 1 a\n",
		"relocfs-state 2\nrelocfs-state 2\nroot /x\n",
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct mount_state st;
		int ret = parse_with_good_sum(bad[i], &st);

		if (ret != -EBADMSG)
			fail_msg("record accepted (%d):\n%s", ret, bad[i]);
	}
}

static void test_a_version_1_record_is_one_started_unnamed_job(void **state)
{
	struct mount_state st;

	assert_int_equal(parse_with_good_sum("relocfs-state 1\nroot /x\njob 7 tree /d /dd 5\n"
					     "file 0 a%20b\ncleanup /old\n", &st), 0);
	assert_string_equal(st.root, "/x");
	assert_int_equal(st.njobs, 1);
	assert_true(st.jobs[0].tree && !st.jobs[0].queued);
	assert_int_equal(st.jobs[0].id, 7);
	assert_string_equal(st.jobs[0].name, "");
	assert_string_equal(st.jobs[0].dest, "/d");
	assert_string_equal(st.jobs[0].delta_dir, "/dd");
	assert_int_equal(st.jobs[0].rate, 5);
	assert_int_equal(st.jobs[0].priority, 0);	/* the default */
	assert_int_equal(st.jobs[0].deadline_ms, 0);
	assert_int_equal(st.jobs[0].nfiles, 1);
	assert_string_equal(st.jobs[0].files[0], "a b");
	assert_int_equal(st.budget, 0);
	assert_int_equal(st.parallel, 0);
	assert_int_equal(st.ncleanup, 1);
	/* written again, it is a version 3 record of the same state */
	assert_round_trip(&st);
	ms_free(&st);
}

static void test_parse_with_good_sum_accepts_a_hand_written_version_2_record(void **state)
{
	struct mount_state st;

	assert_int_equal(parse_with_good_sum("relocfs-state 2\nroot /x\nbudget 41943040\n"
					     "parallel 3\njob 7 files started a /d /dd 0 0 0 0\n"
					     "file 0 f\nfile 1 g\njob 8 files queued b /e /ee 1 2 3 4\n"
					     "file 0 h\ncutover 7\n", &st), 0);
	assert_int_equal(st.budget, 40u << 20);
	assert_int_equal(st.parallel, 3);
	assert_int_equal(st.njobs, 2);
	assert_int_equal(st.jobs[0].nfiles, 2);
	assert_string_equal(st.jobs[1].name, "b");
	assert_true(st.jobs[1].queued);
	assert_int_equal(st.jobs[1].priority, 2);
	assert_int_equal(st.jobs[1].since_ms, 3);
	assert_int_equal(st.jobs[1].deadline_ms, 4);
	assert_string_equal(st.jobs[1].files[0], "h");
	assert_int_equal(st.cutover_job, 7);
	ms_free(&st);
}

/* ---- damaged records ---- */

static void check_damaged(const struct mount_state *orig, const char *text, size_t len,
			  const char *what)
{
	struct mount_state back;
	int ret = ms_parse(text, &back);

	if (ret == 0) {
		if (!state_equal(orig, &back))
			fail_msg("%s: the damaged record parses to another state:\n%s", what, text);
		ms_free(&back);
	} else if (ret != -EBADMSG) {
		fail_msg("%s: ms_parse returned %d, expected 0 or -EBADMSG", what, ret);
	}
}

static void test_every_single_byte_change_is_refused_or_harmless(void **state)
{
	struct mount_state st;
	char *text, *copy, what[64];
	size_t len;

	full_state(&st);
	text = ms_format(&st);
	len = strlen(text);
	copy = malloc(len + 1);
	assert_non_null(copy);
	for (size_t pos = 0; pos < len; pos++) {
		for (int c = 0; c <= 255; c++) {
			if (c == (unsigned char)text[pos])
				continue;
			memcpy(copy, text, len + 1);
			copy[pos] = (char)c;
			snprintf(what, sizeof(what), "byte %zu set to 0x%02x", pos, c);
			check_damaged(&st, copy, len, what);
		}
	}
	free(copy);
	free(text);
	ms_free(&st);
}

static void test_a_record_cut_short_anywhere_is_refused_or_harmless(void **state)
{
	struct mount_state st;
	char *text, what[64];
	size_t len;

	full_state(&st);
	text = ms_format(&st);
	len = strlen(text);
	for (size_t cut = 0; cut < len; cut++) {
		char *copy = strndup(text, cut);

		assert_non_null(copy);
		snprintf(what, sizeof(what), "cut to %zu of %zu bytes", cut, len);
		check_damaged(&st, copy, cut, what);
		free(copy);
	}
	free(text);
	ms_free(&st);
}

static void test_every_single_byte_deletion_is_refused_or_harmless(void **state)
{
	struct mount_state st;
	char *text, *copy, what[64];
	size_t len;

	full_state(&st);
	text = ms_format(&st);
	len = strlen(text);
	copy = malloc(len + 1);
	assert_non_null(copy);
	for (size_t pos = 0; pos < len; pos++) {
		memcpy(copy, text, pos);
		memcpy(copy + pos, text + pos + 1, len - pos);
		snprintf(what, sizeof(what), "byte %zu deleted", pos);
		check_damaged(&st, copy, len - 1, what);
	}
	free(copy);
	free(text);
	ms_free(&st);
}

/* ---- ms_save / ms_load on real files ---- */

struct tmpdir {
	char path[64];
	int fd;
};

static int tmpdir_setup(void **state)
{
	struct tmpdir *t = calloc(1, sizeof(*t));

	if (!t)
		return -1;
	snprintf(t->path, sizeof(t->path), "%s", "/tmp/test_mount_state.XXXXXX");
	if (!mkdtemp(t->path)) {
		free(t);
		return -1;
	}
	t->fd = open(t->path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (t->fd == -1) {
		rmdir(t->path);
		free(t);
		return -1;
	}
	*state = t;
	return 0;
}

static int tmpdir_teardown(void **state)
{
	struct tmpdir *t = *state;

	unlinkat(t->fd, "state", 0);
	unlinkat(t->fd, "state.tmp", 0);
	close(t->fd);
	rmdir(t->path);
	free(t);
	return 0;
}

static void write_file(int dirfd, const char *name, const char *text, size_t len)
{
	int fd = openat(dirfd, name, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, len), (ssize_t)len);
	close(fd);
}

static char *read_file(int dirfd, const char *name)
{
	static char buf[1 << 16];
	int fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC);
	ssize_t n;

	if (fd == -1)
		return NULL;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	assert_true(n >= 0);
	buf[n] = '\0';
	return buf;
}

static void test_load_of_a_directory_without_record_is_enoent(void **state)
{
	struct tmpdir *t = *state;
	struct mount_state st;

	assert_int_equal(ms_load(t->fd, &st), -ENOENT);
}

static void test_save_then_load_gives_the_same_state_and_leaves_no_tmp(void **state)
{
	struct tmpdir *t = *state;
	struct mount_state st, back;
	struct stat sb;
	char *text;

	full_state(&st);
	assert_int_equal(ms_save(t->fd, &st), 0);
	assert_int_equal(fstatat(t->fd, "state.tmp", &sb, 0), -1);
	assert_int_equal(errno, ENOENT);
	assert_int_equal(fstatat(t->fd, "state", &sb, 0), 0);
	assert_int_equal(sb.st_mode & 07777, 0600);
	text = ms_format(&st);
	assert_string_equal(read_file(t->fd, "state"), text);
	free(text);
	assert_int_equal(ms_load(t->fd, &back), 0);
	assert_true(state_equal(&st, &back));
	ms_free(&back);
	ms_free(&st);
}

static void test_a_second_save_replaces_the_first_whole(void **state)
{
	struct tmpdir *t = *state;
	struct mount_state big, small, back;

	full_state(&big);
	minimal_state(&small);
	assert_int_equal(ms_save(t->fd, &big), 0);
	assert_int_equal(ms_save(t->fd, &small), 0);
	assert_int_equal(ms_load(t->fd, &back), 0);
	assert_true(state_equal(&small, &back));
	ms_free(&back);
	ms_free(&big);
	ms_free(&small);
}

static void test_a_leftover_state_tmp_does_not_matter(void **state)
{
	struct tmpdir *t = *state;
	struct mount_state st, other, back;
	char *garbage = malloc(100000), *text;

	assert_non_null(garbage);
	memset(garbage, 'x', 100000);
	full_state(&st);
	minimal_state(&other);
	assert_int_equal(ms_save(t->fd, &st), 0);

	/* a crash before the rename leaves a tmp: with garbage, or with a whole
	 * newer record; either way the record is the committed one */
	write_file(t->fd, "state.tmp", garbage, 100000);
	assert_int_equal(ms_load(t->fd, &back), 0);
	assert_true(state_equal(&st, &back));
	ms_free(&back);
	text = ms_format(&other);
	write_file(t->fd, "state.tmp", text, strlen(text));
	free(text);
	assert_int_equal(ms_load(t->fd, &back), 0);
	assert_true(state_equal(&st, &back));
	ms_free(&back);

	/* and the next save goes through, leaving no tail of the old tmp */
	write_file(t->fd, "state.tmp", garbage, 100000);
	assert_int_equal(ms_save(t->fd, &other), 0);
	text = ms_format(&other);
	assert_string_equal(read_file(t->fd, "state"), text);
	free(text);
	assert_int_equal(ms_load(t->fd, &back), 0);
	assert_true(state_equal(&other, &back));
	ms_free(&back);
	free(garbage);
	ms_free(&st);
	ms_free(&other);
}

static void test_load_of_a_damaged_record_is_ebadmsg(void **state)
{
	struct tmpdir *t = *state;
	struct mount_state st, back;
	char *text;
	size_t len;

	full_state(&st);
	text = ms_format(&st);
	len = strlen(text);
	text[len / 2] ^= 0x01;
	write_file(t->fd, "state", text, len);
	assert_int_equal(ms_load(t->fd, &back), -EBADMSG);
	write_file(t->fd, "state", text, 0);
	assert_int_equal(ms_load(t->fd, &back), -EBADMSG);
	free(text);
	ms_free(&st);
}

static void test_load_of_a_record_with_a_nul_byte_is_refused_or_harmless(void **state)
{
	struct tmpdir *t = *state;
	struct mount_state st, back;
	char *text;
	size_t len;
	int ret;

	full_state(&st);
	text = ms_format(&st);
	len = strlen(text);
	for (size_t pos = 0; pos < len; pos += 7) {
		char c = text[pos];

		text[pos] = '\0';
		write_file(t->fd, "state", text, len);
		ret = ms_load(t->fd, &back);
		if (ret == 0) {
			assert_true(state_equal(&st, &back));
			ms_free(&back);
		} else {
			assert_int_equal(ret, -EBADMSG);
		}
		text[pos] = c;
	}
	free(text);
	ms_free(&st);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_encode_then_decode_gives_back_every_byte_1_to_255),
		cmocka_unit_test(test_encode_escapes_space_percent_and_newline),
		cmocka_unit_test(test_encode_of_empty_string_is_a_lone_percent_and_decodes_back),
		cmocka_unit_test(test_encode_of_a_lone_percent_is_not_the_empty_string),
		cmocka_unit_test(test_decode_refuses_bad_escapes),
		cmocka_unit_test(test_decode_accepts_lower_case_hex),
		cmocka_unit_test(test_minimal_record_round_trips),
		cmocka_unit_test(test_record_with_overrides_jobs_files_and_cleanup_round_trips),
		cmocka_unit_test(test_record_with_a_job_and_no_files_round_trips),
		cmocka_unit_test(test_record_without_jobs_round_trips),
		cmocka_unit_test(test_a_started_job_carries_its_hand_off_after_its_files),
		cmocka_unit_test(test_a_hand_off_belongs_to_a_started_job_and_a_version_3_record),
		cmocka_unit_test(test_record_opens_with_its_version_and_closes_with_a_sum),
		cmocka_unit_test(test_each_job_lists_its_own_files_from_zero),
		cmocka_unit_test(test_find_and_drop_job_by_id),
		cmocka_unit_test(test_paths_of_up_to_path_max_bytes_round_trip_in_every_field),
		cmocka_unit_test(test_parse_refuses_a_record_without_sum),
		cmocka_unit_test(test_parse_refuses_a_wrong_sum),
		cmocka_unit_test(test_parse_refuses_unknown_lines_and_bad_fields_even_with_a_good_sum),
		cmocka_unit_test(test_a_version_1_record_is_one_started_unnamed_job),
		cmocka_unit_test(test_parse_with_good_sum_accepts_a_hand_written_version_2_record),
		cmocka_unit_test(test_every_single_byte_change_is_refused_or_harmless),
		cmocka_unit_test(test_a_record_cut_short_anywhere_is_refused_or_harmless),
		cmocka_unit_test(test_every_single_byte_deletion_is_refused_or_harmless),
		cmocka_unit_test_setup_teardown(test_load_of_a_directory_without_record_is_enoent,
						tmpdir_setup, tmpdir_teardown),
		cmocka_unit_test_setup_teardown(test_save_then_load_gives_the_same_state_and_leaves_no_tmp,
						tmpdir_setup, tmpdir_teardown),
		cmocka_unit_test_setup_teardown(test_a_second_save_replaces_the_first_whole,
						tmpdir_setup, tmpdir_teardown),
		cmocka_unit_test_setup_teardown(test_a_leftover_state_tmp_does_not_matter,
						tmpdir_setup, tmpdir_teardown),
		cmocka_unit_test_setup_teardown(test_load_of_a_damaged_record_is_ebadmsg,
						tmpdir_setup, tmpdir_teardown),
		cmocka_unit_test_setup_teardown(test_load_of_a_record_with_a_nul_byte_is_refused_or_harmless,
						tmpdir_setup, tmpdir_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
