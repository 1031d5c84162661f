#!/bin/bash
test_description='cutover with two exec hooks on a real mount: a failing pause cancels it with nothing switched and resumes the hook already paused; a pause that writes and flushes through the mount (as QEMU does when it stops) is not blocked; a copy replaced during the pause is not switched to; pauses run in order, resumes in reverse, with the files in RELOCFS_FILES; status reports each pause'
. "$(dirname "$0")/../lib.sh"
. "$(dirname "$0")/lib_reloc.sh"
relocfs_mount

HOOKLOG=$TEST_DIR/hooks.log
# an exec hook: logs "NAME ACTION FILES...", fails its pause while
# $TEST_DIR/fail.NAME exists, and on pause writes and fsyncs
# $TEST_MNT/NAME.flushed through the mount.  While $TEST_DIR/swap.NAME
# exists, its pause puts another file in the place of the file it names (a
# copy, which is moved aside) and its resume puts the copy back.
make_hook() {
	cat >"$TEST_DIR/$1" <<EOF
#!/bin/sh
echo "$1 \$1 \$(printf '%s' "\$RELOCFS_FILES" | tr '\n' ' ')" >>"$HOOKLOG"
if [ -e "$TEST_DIR/swap.$1" ]; then
	copy=\$(cat "$TEST_DIR/swap.$1")
	case \$1 in
	pause) mv "\$copy" "$TEST_DIR/aside.img" && head -c 8M /dev/zero >"\$copy" || exit 1 ;;
	resume) mv "$TEST_DIR/aside.img" "\$copy" || exit 1 ;;
	esac
fi
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

step 'qmp-rbd on a job into a directory: refused (exit 2) before any hook runs'
rc=0
out=$(ctl cutover "${HOOKS[@]}" --hook "qmp-rbd:$TEST_DIR/none.qmp" --timeout 60 2>&1) || rc=$?
say "  relocctl: $out"
assert_eq 2 "$rc" "exit status"
case $out in *"hook 'qmp-rbd:$TEST_DIR/none.qmp' hands QEMU over to RBD images, but "*"goes to '$TEST_DST'") ;;
*) fail "the error does not say why: $out" ;; esac
[ ! -e "$HOOKLOG" ] || fail "a hook ran: $(cat "$HOOKLOG")"
for f in disk0.img disk1.img; do
	assert_eq ready "$(file_state "$f")" "state of '$f' after the refused cutover"
done

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

step 'a files job moves disk1.img on to DEST2; another file takes the place of the copy during the pause: nothing is switched'
DEST2=$TEST_DIR/dst2
mkdir "$DEST2"
ctl migrate --to "$DEST2" disk1.img >/dev/null
ctl wait --timeout 120 >/dev/null
echo "$DEST2/disk1.img" >"$TEST_DIR/swap.vm1"
out=$(ctl cutover "${HOOKS[@]}" --timeout 60 2>&1) && fail "cutover switched to a file that is not the copy: $out"
say "  relocctl: $out"
case $out in *"nothing switched"*"disk1.img"*) ;;
*) fail "the error does not say that nothing was switched and which file: $out" ;; esac
[ ! -e "$TEST_DIR/aside.img" ] || fail "the hook's resume did not run"
assert_eq ready "$(file_state disk1.img)" "state of disk1.img after the refused switch"
writer_running || fail "the writer stopped: $(cat "$TEST_DIR/writer.log")"

step 'the retry switches disk1.img to DEST2'
rm -f "$TEST_DIR/swap.vm1"
out=$(ctl cutover "${HOOKS[@]}" --timeout 60 2>&1) || fail "cutover failed: $out"
assert_eq "done $DEST2" "$(file_state disk1.img) $(file_field disk1.img backend)" "state and backend of disk1.img"
writer_running || fail "the writer stopped: $(cat "$TEST_DIR/writer.log")"

step 'the writer stops cleanly; the live view and the copies hold exactly what it wrote'
sleep 1
writer_stop 0
check_final "$TEST_MNT" disk0.img disk1.img
check_final "$TEST_DST" disk0.img
check_final "$DEST2" disk1.img
test_done
