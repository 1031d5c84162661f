#!/bin/bash
test_description='cutover with two exec hooks on a real mount: a failing pause cancels it with nothing switched and resumes the hook already paused; a pause that writes and flushes through the mount (as QEMU does when it stops) is not blocked; pauses run in order, resumes in reverse, with the files in RELOCFS_FILES; status reports each pause'
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/lib_reloc.sh"
relocfs_mount

HOOKLOG=$TEST_DIR/hooks.log
# an exec hook: logs "NAME ACTION FILES...", fails its pause while
# $TEST_DIR/fail.NAME exists, and on pause writes and fsyncs
# $TEST_MNT/NAME.flushed through the mount
make_hook() {
	cat >"$TEST_DIR/$1" <<EOF
#!/bin/sh
echo "$1 \$1 \$(printf '%s' "\$RELOCFS_FILES" | tr '\n' ' ')" >>"$HOOKLOG"
[ "\$1" = pause ] || exit 0
[ ! -e "$TEST_DIR/fail.$1" ] || { echo "$1 refuses to pause"; exit 3; }
printf '%s paused\n' "$1" >"$TEST_MNT/$1.flushed" && sync "$TEST_MNT/$1.flushed"
EOF
	chmod +x "$TEST_DIR/$1"
}
make_hook vm1
make_hook vm2
HOOKS=(--hook "exec:$TEST_DIR/vm1" --hook "exec:$TEST_DIR/vm2")

step 'a writer on two images; migrate both; wait until ready'
writer_start --seed 303 --direct --flush-every 16 --delay-us 1000 \
	--size 64M --file "$TEST_MNT/disk0.img" --size 8M --file "$TEST_MNT/disk1.img"
echo "before" >"$TEST_MNT/vm1.flushed"
echo "before" >"$TEST_MNT/vm2.flushed"
ctl migrate --to "$TEST_DST" --rate 64M >/dev/null
ctl wait --timeout 120 >/dev/null

step 'the second pause fails: the cutover is cancelled, nothing is switched, the first hook is resumed'
touch "$TEST_DIR/fail.vm2"
out=$(ctl cutover "${HOOKS[@]}" --timeout 60 2>&1) && fail "cutover succeeded although vm2 refused to pause: $out"
say "  relocctl: $out"
[ "$(printf '%s\n' "$out" | wc -l)" = 1 ] || fail "the error is more than one line: $out"
case $out in *"nothing switched"*"vm2 refuses to pause"*) ;;
*) fail "the error does not say that nothing was switched and why: $out" ;; esac
assert_eq "vm1 pause|vm2 pause|vm1 resume" "$(cut -d' ' -f1,2 "$HOOKLOG" | paste -sd'|')" "hook calls"
assert_eq "$TEST_SRC" "$(status_field source)" "status source after the cancelled cutover"
for f in disk0.img disk1.img; do
	assert_eq ready "$(file_state "$f")" "state of '$f' after the cancelled cutover"
done
writer_running || fail "the writer stopped: $(cat "$TEST_DIR/writer.log")"

step 'the retry succeeds; both hooks see both images in RELOCFS_FILES'
rm -f "$TEST_DIR/fail.vm2" "$HOOKLOG"
out=$(ctl cutover "${HOOKS[@]}" --timeout 60 2>&1) || fail "cutover failed: $out"
say "  relocctl: $out"
assert_eq "vm1 pause|vm2 pause|vm2 resume|vm1 resume" "$(cut -d' ' -f1,2 "$HOOKLOG" | paste -sd'|')" "hook calls"
while read -r name action files; do
	for f in disk0.img disk1.img; do
		case " $files " in *" $TEST_MNT/$f "*) ;;
		*) fail "$name $action: RELOCFS_FILES lacks $TEST_MNT/$f (got: $files)" ;; esac
	done
done <"$HOOKLOG"
writer_running || fail "the writer stopped during the cutover: $(cat "$TEST_DIR/writer.log")"

step 'status: both switched; the last cutover reports one pause per hook'
assert_eq "$TEST_DST" "$(status_field source)" "status source after the cutover"
for f in disk0.img disk1.img; do
	assert_eq "done $TEST_DST" "$(file_state "$f") $(file_field "$f" backend)" "state and backend of '$f'"
done
hooks=$(status_field last_cutover_hooks)
say "  last_cutover_hooks: $hooks"
echo "$hooks" | grep -Eq "^exec:$TEST_DIR/vm2=[0-9.]+ms, exec:$TEST_DIR/vm1=[0-9.]+ms\$" ||
	fail "last_cutover_hooks does not give one pause per hook: '$hooks'"

step 'what the hooks wrote and flushed during their pause is on DEST'
for h in vm1 vm2; do
	assert_eq "$h paused" "$(cat "$TEST_DST/$h.flushed" 2>&1)" "DEST/$h.flushed"
done

step 'the writer stops cleanly; the live view and DEST hold exactly what it wrote'
sleep 1
writer_stop 0
check_final "$TEST_MNT" disk0.img disk1.img
check_final "$TEST_DST" disk0.img disk1.img
test_done
