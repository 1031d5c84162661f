// modules: ctl/mount_state.c
/*
 * Unit tests for the mount's durable record (ctl/mount_state.c): path
 * encoding, the text format and its parser, what a damaged record parses
 * to, and saving and loading real files in a private temporary directory.
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

/* Same state, field by field.  The file list only counts when there is a
 * job: the format writes it under the job line. */
static bool state_equal(const struct mount_state *a, const struct mount_state *b)
{
	if (!str_eq(a->root, b->root) || a->last_cutover_us != b->last_cutover_us ||
	    a->noverrides != b->noverrides || a->job != b->job || a->ncleanup != b->ncleanup)
		return false;
	for (size_t i = 0; i < a->noverrides; i++)
		if (!str_eq(a->overrides[i].relpath, b->overrides[i].relpath) ||
		    !str_eq(a->overrides[i].backend, b->overrides[i].backend))
			return false;
	if (a->job) {
		if (a->job_id != b->job_id || a->tree != b->tree || !str_eq(a->dest, b->dest) ||
		    !str_eq(a->delta_dir, b->delta_dir) || a->rate != b->rate ||
		    a->nfiles != b->nfiles)
			return false;
		for (size_t i = 0; i < a->nfiles; i++)
			if (!str_eq(a->files[i], b->files[i]))
				return false;
	} else if (a->nfiles != b->nfiles) {
		return false;
	}
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

/* A state with every kind of item, and names that need encoding.  The
 * strings are malloc'd so that ms_free can free it. */
static void full_state(struct mount_state *st)
{
	static const char *files[] = { "vm/disk 1.qcow2", "vm/100%.img", "new\nline.raw" };

	memset(st, 0, sizeof(*st));
	st->root = xstrdup("/srv/images with space");
	st->last_cutover_us = 18446744073709551615ull;
	st->noverrides = 2;
	st->overrides = calloc(2, sizeof(*st->overrides));
	assert_non_null(st->overrides);
	st->overrides[0].relpath = xstrdup("a/b.img");
	st->overrides[0].backend = xstrdup("/mnt/fast");
	st->overrides[1].relpath = xstrdup("tab\there");
	st->overrides[1].backend = xstrdup("/mnt/\xc3\xa9t\xc3\xa9");
	st->job = true;
	st->job_id = 42;
	st->tree = false;
	st->dest = xstrdup("/mnt/new disk");
	st->delta_dir = xstrdup("/mnt/new disk/.relocfs/job-42");
	st->rate = 100u << 20;
	st->nfiles = 3;
	st->files = calloc(3, sizeof(*st->files));
	assert_non_null(st->files);
	for (size_t i = 0; i < 3; i++)
		st->files[i] = xstrdup(files[i]);
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

static void test_record_with_overrides_job_files_and_cleanup_round_trips(void **state)
{
	struct mount_state st;

	full_state(&st);
	assert_round_trip(&st);
	st.tree = true;
	assert_round_trip(&st);
	ms_free(&st);
}

static void test_record_with_a_job_and_no_files_round_trips(void **state)
{
	struct mount_state st;

	full_state(&st);
	for (size_t i = 0; i < st.nfiles; i++)
		free(st.files[i]);
	st.nfiles = 0;
	st.rate = 0;
	st.job_id = 0;
	assert_round_trip(&st);
	ms_free(&st);
}

static void test_record_without_job_round_trips(void **state)
{
	struct mount_state st;

	full_state(&st);
	free(st.dest);
	free(st.delta_dir);
	for (size_t i = 0; i < st.nfiles; i++)
		free(st.files[i]);
	free(st.files);
	st.dest = st.delta_dir = NULL;
	st.files = NULL;
	st.nfiles = 0;
	st.job = false;
	assert_round_trip(&st);
	ms_free(&st);
}

static void test_record_with_a_hand_off_and_sealed_files_round_trips(void **state)
{
	struct mount_state st, back;
	char *text, *again;

	full_state(&st);
	st.handoff = MS_HANDOFF_RECORDED;
	st.handoff_spec = strdup("qmp-migrate:/run/vm 1.qmp@tcp:10.0.0.2:4444");
	st.handoff_vm = strdup("");
	st.handoff_remove_source = true;
	st.nsealed = 2;
	st.sealed = calloc(2, sizeof(*st.sealed));
	st.sealed[0] = (struct ms_sealed){ strdup("a b.raw"), strdup("tcp:h:1"), strdup("vm1") };
	st.sealed[1] = (struct ms_sealed){ strdup("d/c.qcow2"), strdup("unix:/x"), strdup("") };
	text = ms_format(&st);
	assert_non_null(text);
	assert_int_equal(ms_parse(text, &back), 0);
	assert_int_equal(back.handoff, MS_HANDOFF_RECORDED);
	assert_string_equal(back.handoff_spec, st.handoff_spec);
	assert_string_equal(back.handoff_vm, "");
	assert_true(back.handoff_remove_source);
	assert_int_equal(back.nsealed, 2);
	assert_string_equal(back.sealed[0].relpath, "a b.raw");
	assert_string_equal(back.sealed[1].to, "unix:/x");
	assert_string_equal(back.sealed[1].vm, "");
	again = ms_format(&back);
	assert_string_equal(text, again);
	free(again);
	free(text);
	ms_free(&back);
	/* a hand-off belongs to a job: one without is a damaged record */
	back = st;
	back.job = false;
	text = ms_format(&back);
	back.job = true;
	assert_non_null(text);
	assert_null(strstr(text, "handoff "));
	free(text);
	ms_free(&st);
}

static void test_record_refuses_a_hand_off_without_a_job(void **state)
{
	static const char *body = "relocfs-state 1\nroot /a\nlast-cutover-us 0\n"
				  "handoff recorded qmp-migrate:/s@tcp:h:1 vm 0\n";
	struct mount_state st;
	char text[512];

	snprintf(text, sizeof(text), "%ssum %016llx\n", body,
		 (unsigned long long)XXH3_64bits(body, strlen(body)));
	assert_int_equal(ms_parse(text, &st), -EBADMSG);
}

static void test_record_opens_with_its_version_and_closes_with_a_sum(void **state)
{
	struct mount_state st;
	char *text;
	size_t n;

	full_state(&st);
	text = ms_format(&st);
	assert_true(strncmp(text, "relocfs-state 1\nroot /srv/images%20with%20space\n", 47) == 0);
	n = strlen(text);
	assert_true(n > 22 && text[n - 1] == '\n');
	assert_true(strncmp(text + n - 22, "\nsum ", 5) == 0);
	free(text);
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
					"delta_dir", "file", "cleanup" };
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
				case 3: free(st.dest); st.dest = p; break;
				case 4: free(st.delta_dir); st.delta_dir = p; break;
				case 5: free(st.files[1]); st.files[1] = p; break;
				default: free(st.cleanup[0]); st.cleanup[0] = p; break;
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
		"relocfs-state 2\nroot /x\n",
		"relocfs-state 1\n",				/* no root */
		"relocfs-state 1\nroot /x\nfrobnicate 1\n",
		"relocfs-state 1\nroot /x y\n",
		"relocfs-state 1\nroot /x%zz\n",
		"relocfs-state 1\nroot /x\noverride a\n",
		"relocfs-state 1\nroot /x\njob 1 tree /d\n",
		"relocfs-state 1\nroot /x\njob 1 tree /d /dd 0\njob 2 tree /d /dd 0\n",
		"relocfs-state 1\nroot /x\njob 1 tree /d /dd 0\nfile 1 a\n",
		"relocfs-state 1\nroot /x\ncleanup\n",
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct mount_state st;
		int ret = parse_with_good_sum(bad[i], &st);

		if (ret != -EBADMSG)
			fail_msg("record accepted (%d):\n%s", ret, bad[i]);
	}
}

static void test_parse_with_good_sum_accepts_a_hand_written_record(void **state)
{
	struct mount_state st;

	assert_int_equal(parse_with_good_sum("relocfs-state 1\nroot /x\njob 7 tree /d /dd 5\n"
					     "file 0 a%20b\ncleanup /old\n", &st), 0);
	assert_string_equal(st.root, "/x");
	assert_true(st.job && st.tree);
	assert_int_equal(st.job_id, 7);
	assert_int_equal(st.nfiles, 1);
	assert_string_equal(st.files[0], "a b");
	assert_int_equal(st.ncleanup, 1);
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
		cmocka_unit_test(test_record_with_overrides_job_files_and_cleanup_round_trips),
		cmocka_unit_test(test_record_with_a_job_and_no_files_round_trips),
		cmocka_unit_test(test_record_without_job_round_trips),
		cmocka_unit_test(test_record_with_a_hand_off_and_sealed_files_round_trips),
		cmocka_unit_test(test_record_refuses_a_hand_off_without_a_job),
		cmocka_unit_test(test_record_opens_with_its_version_and_closes_with_a_sum),
		cmocka_unit_test(test_paths_of_up_to_path_max_bytes_round_trip_in_every_field),
		cmocka_unit_test(test_parse_refuses_a_record_without_sum),
		cmocka_unit_test(test_parse_refuses_a_wrong_sum),
		cmocka_unit_test(test_parse_refuses_unknown_lines_and_bad_fields_even_with_a_good_sum),
		cmocka_unit_test(test_parse_with_good_sum_accepts_a_hand_written_record),
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
