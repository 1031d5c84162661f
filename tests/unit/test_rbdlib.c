// modules: target/rbd.c common/log.c
/*
 * test_rbdlib: librbd and librados missing, or too old, as the RBD target
 * meets them (target/rbdlib.c, built here with sonames no system has):
 *
 *  - parsing a spec and naming images load nothing;
 *  - rbdlib_load fails with -ELIBACC and one line naming the library and
 *    the Debian package, and says it again when asked again (a failed
 *    load is retried, so installing the package is enough);
 *  - checking, opening, creating and removing images fail with that error
 *    and that line, and do not crash;
 *  - a library that lacks a function is refused, naming the function.
 */
#include <dlfcn.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#define RBDLIB_LIBRADOS "librados.so.2-relocfs-test-missing"
#define RBDLIB_LIBRBD "librbd.so.1-relocfs-test-missing"
#include "target/rbdlib.c"

#include "target/target.h"

#define MISSING_RADOS "cannot load librados.so.2-relocfs-test-missing: cannot open shared " \
		      "object file: No such file or directory; install Debian's librados2"

static struct rbd_spec spec;

static void test_parsing_and_naming_load_nothing(void **state)
{
	char err[256] = "", *name;

	assert_int_equal(rbd_spec_parse("rbd:pool/vm-:conf=/etc/ceph/x.conf:id=relocfs", &spec, err,
					sizeof(err)), 0);
	name = rbd_image_name(&spec, "a/b.img");
	assert_string_equal(name, "vm-a%2Fb.img");
	free(name);
	assert_null(rados_handle);
	assert_null(rbd_handle);
	assert_null(rbdlib_rbd_open);
}

static void test_a_missing_library_is_one_line_naming_the_package(void **state)
{
	char err[512] = "";

	assert_int_equal(rbdlib_load(err, sizeof(err)), -ELIBACC);
	assert_string_equal(err, MISSING_RADOS);
	err[0] = '\0';
	assert_int_equal(rbdlib_load(err, sizeof(err)), -ELIBACC);
	assert_string_equal(err, MISSING_RADOS);
	assert_null(strchr(err, '\n'));
}

static void test_every_entry_point_fails_cleanly(void **state)
{
	const char *images[] = { "vm-a.img" };
	struct target *t = NULL;
	char err[512] = "";

	assert_int_equal(target_rbd_check(&spec, images, 1, 1 << 20, err, sizeof(err)), -ELIBACC);
	assert_string_equal(err, MISSING_RADOS);
	err[0] = '\0';
	assert_int_equal(target_rbd_open(&t, &spec, "vm-a.img", true, 1 << 20, err, sizeof(err)),
			 -ELIBACC);
	assert_string_equal(err, MISSING_RADOS);
	assert_null(t);
	err[0] = '\0';
	assert_int_equal(target_rbd_open(&t, &spec, "vm-a.img", false, 0, err, sizeof(err)),
			 -ELIBACC);
	assert_string_equal(err, MISSING_RADOS);
	assert_null(t);
	assert_int_equal(target_rbd_remove(&spec, "vm-a.img"), -ELIBACC);
}

static void test_the_message_names_librbd1_for_librbd(void **state)
{
	void *h = NULL;
	char err[512] = "";

	assert_int_equal(open_lib(&h, "librbd.so.1-relocfs-test-missing", "librbd1", err,
				  sizeof(err)), -ELIBACC);
	assert_null(h);
	assert_string_equal(err, "cannot load librbd.so.1-relocfs-test-missing: cannot open "
			    "shared object file: No such file or directory; install Debian's "
			    "librbd1");
}

static void test_a_library_without_a_function_is_refused(void **state)
{
	void *libc = dlopen("libc.so.6", RTLD_NOW | RTLD_LOCAL);
	char err[512] = "";
	int r = 0;

	assert_non_null(libc);
	assert_non_null(sym(libc, "libc.so.6", "malloc", &r, err, sizeof(err)));
	assert_int_equal(r, 0);
	assert_null(sym(libc, "libc.so.6", "rbd_diff_iterate2", &r, err, sizeof(err)));
	assert_int_equal(r, -ELIBACC);
	assert_string_equal(err, "cannot load libc.so.6: it has no rbd_diff_iterate2 (relocfs "
			    "needs the library of Ceph 14 (Nautilus) or later)");
	/* after the first, the rest are not looked up: the first is the one said */
	assert_null(sym(libc, "libc.so.6", "malloc", &r, err, sizeof(err)));
	assert_string_equal(err, "cannot load libc.so.6: it has no rbd_diff_iterate2 (relocfs "
			    "needs the library of Ceph 14 (Nautilus) or later)");
	dlclose(libc);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parsing_and_naming_load_nothing),
		cmocka_unit_test(test_a_missing_library_is_one_line_naming_the_package),
		cmocka_unit_test(test_every_entry_point_fails_cleanly),
		cmocka_unit_test(test_the_message_names_librbd1_for_librbd),
		cmocka_unit_test(test_a_library_without_a_function_is_refused),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
