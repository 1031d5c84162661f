#!/bin/bash
test_description='requests parked by a hold are all served after the release, even one that was still on its way to the parking list when the hold ended (a 300 ms delay point in the parking path widens that window): a writer goes on through migrate, cutover and abort holds'
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/lib_reloc.sh"
RELOCFS_DELAYPOINT=park:300000 relocfs_mount

# writer_alive WHAT: the writer has flushed within 20 s; a request lost on the
# parking list hangs it for good
writer_alive() {
	local before
	before=$(stat -c %Y.%i "$MODEL/a.img.acked" 2>/dev/null)
	wait_until 20 eval '[ "$(stat -c %Y.%i "$MODEL/a.img.acked" 2>/dev/null)" != "$before" ] || ! writer_running' ||
		fail "the writer has not flushed for 20 s after $1: a parked request was never served"
	writer_running || fail "the writer stopped after $1: $(cat "$TEST_DIR/writer.log")"
}

step 'a writer on a 16 MiB image, flushing often'
writer_start --seed 404 --direct --flush-every 4 --delay-us 200 --size 16M --file "$TEST_MNT/a.img"
writer_alive "the start"

for round in 1 2 3; do
	step "round $round: migrate (a hold), abort (a hold): the writer goes on after each"
	ctl migrate --to "$TEST_DST" >/dev/null
	writer_alive "migrate"
	ctl wait --timeout 60 >/dev/null
	ctl abort >/dev/null
	writer_alive "abort"
done

step 'migrate, cut over (a hold): the writer goes on'
ctl migrate --to "$TEST_DST" >/dev/null
ctl wait --timeout 60 >/dev/null
ctl cutover --timeout 60 >/dev/null
writer_alive "the cutover"

step 'the writer stops within 20 s; the mount and DEST hold what it wrote'
touch "$WRITER_STOP"
wait_until 20 eval '! writer_running' || fail "the writer does not stop: a request hangs"
writer_stop 0
check_final "$TEST_MNT" a.img
check_final "$TEST_DST" a.img
test_done
