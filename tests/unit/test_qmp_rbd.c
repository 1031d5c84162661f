// modules: vmhooks/qmp_rbd.c vmhooks/qmp.c vmhooks/hook_util.c common/log.c
/*
 * test_qmp_rbd: the plan of the hand-over to QEMU's rbd driver and the
 * arguments of its commands, from replies of a real QEMU 7.2 (Debian 12) to
 * query-named-block-nodes (flat, trimmed to the fields read) and
 * x-debug-query-block-graph, for a VM started with
 *
 *   -drive file=/mnt/disk.raw,format=raw,cache=none,node-name=fmt0
 *   -blockdev driver=file,filename=/mnt/top.qcow2,node-name=f1
 *   -blockdev driver=qcow2,file=f1,node-name=q1     (backing /srv/base.qcow2)
 *   -drive file=/mnt/auto.raw,format=raw,readonly=on (no node-name)
 *
 * The commands themselves run against real QEMU in tests/ceph/rbd_guest.sh.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/log.h"
#include "vmhooks/qmp_rbd.h"

static const char NODES[] =
	"[{\"node-name\": \"#block425\", \"drv\": \"raw\", \"file\": \"/mnt/auto.raw\", \"ro\": true,"
	"  \"cache\": {\"no-flush\": false, \"direct\": false, \"writeback\": true},"
	"  \"detect_zeroes\": \"off\", \"backing_file_depth\": 0},"
	" {\"node-name\": \"#block392\", \"drv\": \"file\", \"file\": \"/mnt/auto.raw\", \"ro\": true,"
	"  \"cache\": {\"no-flush\": false, \"direct\": false, \"writeback\": true},"
	"  \"detect_zeroes\": \"off\", \"backing_file_depth\": 0},"
	" {\"node-name\": \"fmt0\", \"drv\": \"raw\", \"file\": \"/mnt/disk.raw\", \"ro\": false,"
	"  \"cache\": {\"no-flush\": false, \"direct\": true, \"writeback\": true},"
	"  \"detect_zeroes\": \"off\", \"backing_file_depth\": 0},"
	" {\"node-name\": \"#block226\", \"drv\": \"file\", \"file\": \"/mnt/disk.raw\", \"ro\": false,"
	"  \"cache\": {\"no-flush\": false, \"direct\": true, \"writeback\": true},"
	"  \"detect_zeroes\": \"off\", \"backing_file_depth\": 0},"
	" {\"node-name\": \"#block153\", \"drv\": \"qcow2\", \"file\": \"/srv/base.qcow2\", \"ro\": true,"
	"  \"cache\": {\"no-flush\": false, \"direct\": false, \"writeback\": true},"
	"  \"detect_zeroes\": \"off\", \"backing_file_depth\": 0},"
	" {\"node-name\": \"#block069\", \"drv\": \"file\", \"file\": \"/srv/base.qcow2\", \"ro\": true,"
	"  \"cache\": {\"no-flush\": false, \"direct\": false, \"writeback\": true},"
	"  \"detect_zeroes\": \"off\", \"backing_file_depth\": 0},"
	" {\"node-name\": \"q1\", \"drv\": \"qcow2\", \"file\": \"/mnt/top.qcow2\", \"ro\": false,"
	"  \"cache\": {\"no-flush\": false, \"direct\": false, \"writeback\": true},"
	"  \"detect_zeroes\": \"unmap\", \"backing_file\": \"/srv/base.qcow2\", \"backing_file_depth\": 0},"
	" {\"node-name\": \"f1\", \"drv\": \"file\", \"file\": \"/mnt/top.qcow2\", \"ro\": false,"
	"  \"cache\": {\"no-flush\": true, \"direct\": false, \"writeback\": true},"
	"  \"detect_zeroes\": \"off\", \"backing_file_depth\": 0}]";

static const char GRAPH[] =
	"{\"nodes\": [{\"name\": \"#block425\", \"type\": \"block-driver\", \"id\": 4},"
	" {\"name\": \"#block392\", \"type\": \"block-driver\", \"id\": 11},"
	" {\"name\": \"fmt0\", \"type\": \"block-driver\", \"id\": 2},"
	" {\"name\": \"#block226\", \"type\": \"block-driver\", \"id\": 10},"
	" {\"name\": \"#block153\", \"type\": \"block-driver\", \"id\": 8},"
	" {\"name\": \"#block069\", \"type\": \"block-driver\", \"id\": 9},"
	" {\"name\": \"q1\", \"type\": \"block-driver\", \"id\": 6},"
	" {\"name\": \"f1\", \"type\": \"block-driver\", \"id\": 7},"
	" {\"name\": \"/machine/peripheral-anon/device[0]/virtio-backend\", \"type\": \"block-backend\","
	"  \"id\": 5},"
	" {\"name\": \"virtio1\", \"type\": \"block-backend\", \"id\": 3},"
	" {\"name\": \"virtio0\", \"type\": \"block-backend\", \"id\": 1}],"
	" \"edges\": [{\"parent\": 4, \"child\": 11, \"name\": \"file\"},"
	" {\"parent\": 2, \"child\": 10, \"name\": \"file\"},"
	" {\"parent\": 8, \"child\": 9, \"name\": \"file\"},"
	" {\"parent\": 6, \"child\": 7, \"name\": \"file\"},"
	" {\"parent\": 6, \"child\": 8, \"name\": \"backing\"},"
	" {\"parent\": 5, \"child\": 6, \"name\": \"root\"},"
	" {\"parent\": 3, \"child\": 4, \"name\": \"root\"},"
	" {\"parent\": 1, \"child\": 2, \"name\": \"root\"}]}";

struct fixture {
	json_t *nodes, *graph;
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	f->nodes = json_loads(NODES, 0, NULL);
	f->graph = json_loads(GRAPH, 0, NULL);
	assert_non_null(f->nodes);
	assert_non_null(f->graph);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	json_decref(f->nodes);
	json_decref(f->graph);
	free(f);
	return 0;
}

static struct vmhook_image image(const char *path, const char *name)
{
	return (struct vmhook_image){ .path = path, .pool = "rbd", .image = name,
				      .conf = "/etc/ceph/lab.conf", .user = "vmhost" };
}

/* ---- the plan ---------------------------------------------------------------- */

static void test_plan_finds_the_raw_node_and_its_file_made_by_drive(void **state)
{
	struct fixture *f = *state;
	struct vmhook_image img = image("/mnt/disk.raw", "disk.raw");
	struct qmp_rbd_disk d;
	char err[256];

	assert_int_equal(qmp_rbd_plan(f->nodes, f->graph, &img, 1, &d, err, sizeof(err)), 0);
	assert_string_equal(d.file_node, "#block226");
	assert_string_equal(d.format_node, "fmt0");
	assert_string_equal(d.format_drv, "raw");
	assert_false(d.has_backing);
	assert_false(d.backing_null);
	assert_true(d.direct);
	assert_true(d.file_direct);
	assert_false(d.read_only);
	assert_string_equal(d.new_node, "relocfs-rbd-0");
}

static void test_plan_keeps_the_backing_node_of_a_qcow2_overlay(void **state)
{
	struct fixture *f = *state;
	struct vmhook_image img = image("/mnt/top.qcow2", "top.qcow2");
	struct qmp_rbd_disk d;
	char err[256];

	assert_int_equal(qmp_rbd_plan(f->nodes, f->graph, &img, 1, &d, err, sizeof(err)), 0);
	assert_string_equal(d.file_node, "f1");
	assert_string_equal(d.format_node, "q1");
	assert_string_equal(d.format_drv, "qcow2");
	assert_true(d.has_backing);
	assert_string_equal(d.backing, "#block153");
	assert_string_equal(d.detect_zeroes, "unmap");
	assert_string_equal(d.file_detect_zeroes, "off");
	assert_false(d.direct);
	assert_true(d.file_no_flush);
	assert_false(d.no_flush);
}

static void test_plan_matches_a_path_written_with_extra_slashes(void **state)
{
	struct fixture *f = *state;
	struct vmhook_image img = image("//mnt/./disk.raw", "disk.raw");
	struct qmp_rbd_disk d;
	char err[256];

	assert_int_equal(qmp_rbd_plan(f->nodes, f->graph, &img, 1, &d, err, sizeof(err)), 0);
	assert_string_equal(d.format_node, "fmt0");
}

static void test_plan_gives_each_disk_a_node_name_nobody_uses(void **state)
{
	struct fixture *f = *state;
	struct vmhook_image imgs[3] = { image("/mnt/disk.raw", "a"), image("/mnt/top.qcow2", "b"),
					image("/mnt/auto.raw", "c") };
	struct qmp_rbd_disk d[3];
	char err[256];

	/* a node left by an earlier hand-over */
	json_array_append_new(f->nodes, json_pack("{s:s, s:s, s:s}", "node-name", "relocfs-rbd-1",
						  "drv", "rbd", "file", "json:{}"));
	assert_int_equal(qmp_rbd_plan(f->nodes, f->graph, imgs, 3, d, err, sizeof(err)), 0);
	assert_string_equal(d[0].new_node, "relocfs-rbd-0");
	assert_string_equal(d[1].new_node, "relocfs-rbd-2");
	assert_string_equal(d[2].new_node, "relocfs-rbd-3");
	assert_true(d[2].read_only);
	assert_string_equal(d[2].format_node, "#block425");
}

static void test_plan_fails_for_a_file_qemu_does_not_have(void **state)
{
	struct fixture *f = *state;
	struct vmhook_image img = image("/mnt/other.raw", "other.raw");
	struct qmp_rbd_disk d;
	char err[256];

	assert_int_equal(qmp_rbd_plan(f->nodes, f->graph, &img, 1, &d, err, sizeof(err)), -ENOENT);
	assert_string_equal(err, "QEMU has no node for '/mnt/other.raw' (it must name the file "
			    "by that path)");
}

static void test_plan_refuses_a_file_with_a_second_user(void **state)
{
	struct fixture *f = *state;
	struct vmhook_image img = image("/mnt/disk.raw", "disk.raw");
	struct qmp_rbd_disk d;
	char err[256];

	/* a block job's node reading the same protocol node */
	json_array_append_new(json_object_get(f->graph, "edges"),
			      json_pack("{s:i, s:i, s:s}", "parent", 8, "child", 10, "name", "file"));
	assert_int_equal(qmp_rbd_plan(f->nodes, f->graph, &img, 1, &d, err, sizeof(err)),
			 -EOPNOTSUPP);
	assert_non_null(strstr(err, "'/mnt/disk.raw' is not the file of one format node"));
}

static void test_plan_refuses_a_file_attached_without_a_format_node(void **state)
{
	struct fixture *f = *state;
	struct vmhook_image img = image("/mnt/disk.raw", "disk.raw");
	json_t *e = json_array_get(json_object_get(f->graph, "edges"), 1);
	struct qmp_rbd_disk d;
	char err[256];

	/* -blockdev driver=file straight under the device */
	json_object_set_new(e, "parent", json_integer(1));
	json_object_set_new(e, "name", json_string("root"));
	assert_int_equal(qmp_rbd_plan(f->nodes, f->graph, &img, 1, &d, err, sizeof(err)),
			 -EOPNOTSUPP);
	assert_non_null(strstr(err, "(1 user(s), block-backend)"));
}

static void test_plan_refuses_formats_other_than_raw_and_qcow2(void **state)
{
	struct fixture *f = *state;
	struct vmhook_image img = image("/mnt/disk.raw", "disk.raw");
	struct qmp_rbd_disk d;
	char err[256];

	json_object_set_new(json_array_get(f->nodes, 2), "drv", json_string("vmdk"));
	assert_int_equal(qmp_rbd_plan(f->nodes, f->graph, &img, 1, &d, err, sizeof(err)),
			 -EOPNOTSUPP);
	assert_string_equal(err, "QEMU reads '/mnt/disk.raw' with its 'vmdk' driver: the "
			    "hand-over takes raw and qcow2");
}

static void test_plan_refuses_a_qcow2_node_with_a_data_file(void **state)
{
	struct fixture *f = *state;
	struct vmhook_image img = image("/mnt/top.qcow2", "top.qcow2");
	struct qmp_rbd_disk d;
	char err[256];

	json_array_append_new(json_object_get(f->graph, "edges"),
			      json_pack("{s:i, s:i, s:s}", "parent", 6, "child", 9,
					"name", "data-file"));
	assert_int_equal(qmp_rbd_plan(f->nodes, f->graph, &img, 1, &d, err, sizeof(err)),
			 -EOPNOTSUPP);
	assert_non_null(strstr(err, "has a child 'data-file'"));
}

static void test_plan_rejects_replies_of_another_shape(void **state)
{
	struct fixture *f = *state;
	struct vmhook_image img = image("/mnt/disk.raw", "disk.raw");
	json_t *empty = json_object();
	struct qmp_rbd_disk d;
	char err[256];

	assert_int_equal(qmp_rbd_plan(empty, f->graph, &img, 1, &d, err, sizeof(err)), -EPROTO);
	assert_int_equal(qmp_rbd_plan(f->nodes, empty, &img, 1, &d, err, sizeof(err)), -EPROTO);
	json_decref(empty);
}

/* ---- the commands' arguments ---------------------------------------------------- */

static void test_add_args_name_the_image_and_repeat_the_cache_mode(void **state)
{
	struct fixture *f = *state;
	struct vmhook_image img = image("/mnt/disk.raw", "vm1-disk.raw");
	struct qmp_rbd_disk d;
	char err[256], *s;

	assert_int_equal(qmp_rbd_plan(f->nodes, f->graph, &img, 1, &d, err, sizeof(err)), 0);
	json_t *a = qmp_rbd_add_args(&d);
	s = json_dumps(a, JSON_SORT_KEYS | JSON_COMPACT);
	assert_string_equal(s, "{\"cache\":{\"direct\":true,\"no-flush\":false},"
			    "\"conf\":\"/etc/ceph/lab.conf\",\"detect-zeroes\":\"off\","
			    "\"discard\":\"unmap\",\"driver\":\"rbd\",\"image\":\"vm1-disk.raw\","
			    "\"node-name\":\"relocfs-rbd-0\",\"pool\":\"rbd\",\"read-only\":false,"
			    "\"user\":\"vmhost\"}");
	free(s);
	json_decref(a);
}

static void test_add_args_leave_conf_and_user_to_ceph_when_not_given(void **state)
{
	struct fixture *f = *state;
	struct vmhook_image img = { "/mnt/disk.raw", "rbd", "disk.raw", "", "" };
	struct qmp_rbd_disk d;
	char err[256];

	assert_int_equal(qmp_rbd_plan(f->nodes, f->graph, &img, 1, &d, err, sizeof(err)), 0);
	json_t *a = qmp_rbd_add_args(&d);
	assert_null(json_object_get(a, "conf"));
	assert_null(json_object_get(a, "user"));
	json_decref(a);
}

static void test_reopen_args_swap_the_file_and_repeat_what_a_reopen_resets(void **state)
{
	struct fixture *f = *state;
	struct vmhook_image imgs[2] = { image("/mnt/disk.raw", "a"), image("/mnt/top.qcow2", "b") };
	struct qmp_rbd_disk d[2];
	char err[256], *s;

	assert_int_equal(qmp_rbd_plan(f->nodes, f->graph, imgs, 2, d, err, sizeof(err)), 0);
	json_t *a = qmp_rbd_reopen_args(d, 2);
	s = json_dumps(a, JSON_SORT_KEYS | JSON_COMPACT);
	assert_string_equal(s, "{\"options\":["
			    "{\"cache\":{\"direct\":true,\"no-flush\":false},\"detect-zeroes\":\"off\","
			    "\"driver\":\"raw\",\"file\":\"relocfs-rbd-0\",\"node-name\":\"fmt0\","
			    "\"read-only\":false},"
			    "{\"backing\":\"#block153\",\"cache\":{\"direct\":false,\"no-flush\":false},"
			    "\"detect-zeroes\":\"unmap\",\"driver\":\"qcow2\",\"file\":\"relocfs-rbd-1\","
			    "\"node-name\":\"q1\",\"read-only\":false}]}");
	free(s);
	json_decref(a);
}

static void test_reopen_args_keep_a_qcow2_without_backing_without_one(void **state)
{
	struct fixture *f = *state;
	struct vmhook_image img = image("/mnt/top.qcow2", "top.qcow2");
	struct qmp_rbd_disk d;
	char err[256];

	/* the overlay opened with backing: null */
	json_array_remove(json_object_get(f->graph, "edges"), 4);
	assert_int_equal(qmp_rbd_plan(f->nodes, f->graph, &img, 1, &d, err, sizeof(err)), 0);
	assert_true(d.backing_null);
	json_t *a = qmp_rbd_reopen_args(&d, 1);
	json_t *o = json_array_get(json_object_get(a, "options"), 0);
	assert_true(json_is_null(json_object_get(o, "backing")));
	json_decref(a);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
		T(test_plan_finds_the_raw_node_and_its_file_made_by_drive),
		T(test_plan_keeps_the_backing_node_of_a_qcow2_overlay),
		T(test_plan_matches_a_path_written_with_extra_slashes),
		T(test_plan_gives_each_disk_a_node_name_nobody_uses),
		T(test_plan_fails_for_a_file_qemu_does_not_have),
		T(test_plan_refuses_a_file_with_a_second_user),
		T(test_plan_refuses_a_file_attached_without_a_format_node),
		T(test_plan_refuses_formats_other_than_raw_and_qcow2),
		T(test_plan_refuses_a_qcow2_node_with_a_data_file),
		T(test_plan_rejects_replies_of_another_shape),
		T(test_add_args_name_the_image_and_repeat_the_cache_mode),
		T(test_add_args_leave_conf_and_user_to_ceph_when_not_given),
		T(test_reopen_args_swap_the_file_and_repeat_what_a_reopen_resets),
		T(test_reopen_args_keep_a_qcow2_without_backing_without_one),
#undef T
	};

	log_init("test_qmp_rbd", false, getenv("RELOCFS_TEST_DEBUG") ? LOG_LVL_DEBUG : LOG_LVL_WARN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
