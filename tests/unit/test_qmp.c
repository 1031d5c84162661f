// modules: vmhooks/qmp.c vmhooks/hook_util.c common/log.c
/*
 * test_qmp: the QMP client's reading of replies and events, against a peer
 * on a socketpair that writes what QEMU would (a greeting, replies, events
 * at any time).
 *
 * The hand-off follows a migration by its events (qmp_migrate_hook.c): an
 * event must be handed out the moment it is read, not when the wait for it
 * ends.  A peer that sends an event and then nothing else shows the
 * difference without a clock: qmp_next_event returns the event, or times
 * out.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "common/log.h"
#include "vmhooks/qmp.h"

#define GREETING "{\"QMP\": {\"version\": {}, \"capabilities\": [\"oob\"]}}\r\n"
#define OK "{\"return\": {}}\r\n"
#define EVENT(name, status)                                                         \
	"{\"timestamp\": {\"seconds\": 1, \"microseconds\": 2}, \"event\": \"" name "\", " \
	"\"data\": {\"status\": \"" status "\"}}\r\n"

/* the long wait a test allows for what must come at once */
#define WAIT_MS 5000

struct peer {
	int fd;			/* the server's end */
	struct qmp *q;
};

static void peer_write(struct peer *p, const char *text)
{
	assert_int_equal((ssize_t)strlen(text), write(p->fd, text, strlen(text)));
}

/* A connection opened (greeting and qmp_capabilities answered), with the
 * text after the capabilities' reply already written. */
static struct peer *peer_open(const char *after)
{
	struct peer *p = calloc(1, sizeof(*p));
	char err[256];
	int sv[2];

	assert_non_null(p);
	assert_int_equal(0, socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv));
	p->fd = sv[1];
	/* QEMU answers in order; a reply without an id is the one in flight's */
	peer_write(p, GREETING OK);
	peer_write(p, after);
	assert_int_equal(0, qmp_open_fd(sv[0], "test", WAIT_MS, &p->q, err, sizeof(err)));
	return p;
}

static void peer_close(struct peer *p)
{
	qmp_close(p->q);
	close(p->fd);
	free(p);
}

static const char *status_of(json_t *ev)
{
	return json_string_value(json_object_get(json_object_get(ev, "data"), "status"));
}

static void test_an_event_read_is_returned_at_once(void **state)
{
	struct peer *p = peer_open(EVENT("MIGRATION", "pre-switchover"));
	json_t *ev = NULL;
	char err[256];

	(void)state;
	/* nothing follows the event: a wait that ends only at a reply or at the
	 * deadline would time out here */
	assert_int_equal(0, qmp_next_event(p->q, WAIT_MS, &ev, err, sizeof(err)));
	assert_string_equal("pre-switchover", status_of(ev));
	json_decref(ev);
	peer_close(p);
}

static void test_an_event_sent_while_waiting_is_returned(void **state)
{
	struct peer *p = peer_open("");
	json_t *ev = NULL;
	char err[256];

	(void)state;
	assert_int_equal(-ETIMEDOUT, qmp_next_event(p->q, 0, &ev, err, sizeof(err)));
	peer_write(p, EVENT("MIGRATION", "completed"));
	assert_int_equal(0, qmp_next_event(p->q, WAIT_MS, &ev, err, sizeof(err)));
	assert_string_equal("completed", status_of(ev));
	json_decref(ev);
	peer_close(p);
}

static void test_events_around_a_reply_are_kept_in_order(void **state)
{
	struct peer *p = peer_open("");
	json_t *ev = NULL, *ret = NULL;
	char err[256];

	(void)state;
	/* events before and after the reply, all read by the command */
	peer_write(p, EVENT("MIGRATION", "device") "{\"return\": {\"status\": \"device\"}}\r\n"
		   EVENT("MIGRATION", "completed"));
	assert_int_equal(0, qmp_execute(p->q, "query-migrate", NULL, &ret, WAIT_MS, err,
					 sizeof(err)));
	assert_string_equal("device", json_string_value(json_object_get(ret, "status")));
	json_decref(ret);
	assert_int_equal(0, qmp_next_event(p->q, WAIT_MS, &ev, err, sizeof(err)));
	assert_string_equal("device", status_of(ev));
	json_decref(ev);
	assert_int_equal(0, qmp_next_event(p->q, WAIT_MS, &ev, err, sizeof(err)));
	assert_string_equal("completed", status_of(ev));
	json_decref(ev);
	assert_int_equal(-ETIMEDOUT, qmp_next_event(p->q, 0, &ev, err, sizeof(err)));
	peer_close(p);
}

static void test_a_late_reply_is_skipped_while_waiting_for_an_event(void **state)
{
	struct peer *p = peer_open("{\"return\": {}, \"id\": 7}\r\n" EVENT("STOP", ""));
	json_t *ev = NULL;
	char err[256];

	(void)state;
	assert_int_equal(0, qmp_next_event(p->q, WAIT_MS, &ev, err, sizeof(err)));
	assert_string_equal("STOP", json_string_value(json_object_get(ev, "event")));
	json_decref(ev);
	peer_close(p);
}

static void test_a_peer_that_closes_is_an_error_not_a_timeout(void **state)
{
	struct peer *p = peer_open("");
	json_t *ev = NULL;
	char err[256] = "";

	(void)state;
	shutdown(p->fd, SHUT_WR);
	assert_int_equal(-ECONNRESET, qmp_next_event(p->q, WAIT_MS, &ev, err, sizeof(err)));
	assert_non_null(strstr(err, "closed"));
	peer_close(p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_an_event_read_is_returned_at_once),
		cmocka_unit_test(test_an_event_sent_while_waiting_is_returned),
		cmocka_unit_test(test_events_around_a_reply_are_kept_in_order),
		cmocka_unit_test(test_a_late_reply_is_skipped_while_waiting_for_an_event),
		cmocka_unit_test(test_a_peer_that_closes_is_an_error_not_a_timeout),
	};

	log_init("test_qmp", false, getenv("RELOCFS_TEST_DEBUG") ? LOG_LVL_DEBUG : LOG_LVL_WARN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
