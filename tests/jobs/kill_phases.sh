#!/bin/bash
test_description='kill -9 with eight jobs under writers, two ready, one merging, two copying, two queued and one in its cutover (its hook pausing, a limit changed meanwhile): restarted with the same arguments every flushed write is there, the interrupted cutover alone is rolled back, the others carry on where they were with their limits; then killed in the switch of another cutover, which alone is rolled back; in the end every job is cut over or aborted as asked, and nothing is lost'
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/../lib.sh"
. "$HERE/../reloc/lib_reloc.sh"
. "$HERE/lib_jobs.sh"
require_daemon
shopt -s extglob

VMS="vm1 vm2 vm3 vm4 vm5 vm6 vm7 vm8"
CUTPID=

# writers_start ROUND: a writer on every VM; vm3's writes as fast as it can
writers_start() {
	local vm i=0
	for vm in $VMS; do
		i=$((i + 1))
		if [ "$vm" = vm3 ]; then
			vm_writer_start "$vm" $(($1 * 100 + i)) --direct --flush-every 32 --delay-us 0
		else
			vm_writer_start "$vm" $(($1 * 100 + i)) --direct --flush-every 8 --delay-us 3000
		fi
	done
}

# the state of every job, "name=state" in the order of $VMS (none: gone)
states() {
	status_json | jq -r '[.jobs[] | {(.name): .state}] | add // {} |
		[("vm1","vm2","vm3","vm4","vm5","vm6","vm7","vm8") as $v | "\($v)=\(.[$v] // "none")"] | join(" ")'
}

step 'eight VMs and a writer on each; four jobs that get ready, one of them throttled to merging'
for vm in vm1 vm2 vm6 vm7 vm8; do make_vm "$vm" 16; done
make_vm vm3 32
make_vm vm4 64
make_vm vm5 64
for vm in $VMS; do mkdir -p "$TEST_DIR/dst-$vm"; done
relocfs_mount
writers_start 1
for vm in vm1 vm2 vm3 vm8; do
	ctl migrate --job "$vm" --to "$TEST_DIR/dst-$vm" $(cd "$TEST_SRC" && ls -d "$vm"/disk*.img) >/dev/null
done
for vm in vm1 vm2 vm8; do wait_job_state 120 "$vm" ready; done
wait_job_state 120 vm3 merging ready
ctl limit --job vm3 64K >/dev/null
wait_job_state 60 vm3 merging

step 'two slow jobs copy; at most two copy at once, so two more are queued'
for vm in vm4 vm5; do
	ctl migrate --job "$vm" --rate 512K --to "$TEST_DIR/dst-$vm" "$vm/disk0.img" >/dev/null
done
ctl limit --parallel 2 >/dev/null
for vm in vm6 vm7; do
	out=$(ctl migrate --job "$vm" --to "$TEST_DIR/dst-$vm" "$vm/disk0.img")
	case $out in queued:*) ;; *) fail "$vm was not queued: $out" ;; esac
done

step 'vm8 is cut over with a hook that does not come back from its pause; a limit changes meanwhile'
cat >"$TEST_DIR/hook-block" <<EOF
#!/bin/sh
echo \$\$ >"$TEST_DIR/hook.pid"
[ "\$1" = pause ] || exit 0
touch "$TEST_DIR/vm8.paused"
while [ ! -e "$TEST_DIR/vm8.go" ]; do sleep 0.1; done
EOF
chmod +x "$TEST_DIR/hook-block"
ctl cutover --job vm8 --hook "exec:$TEST_DIR/hook-block" --timeout 120 >"$TEST_DIR/cutover.out" 2>&1 &
CUTPID=$!
wait_until 60 test -e "$TEST_DIR/vm8.paused" || fail "the hook did not pause: $(cat "$TEST_DIR/cutover.out")"
ctl limit --job vm5 1M >/dev/null
before=$(states)
say "  $before"
assert_eq "vm1=ready vm2=ready vm3=merging vm4=copying vm5=copying vm6=queued vm7=queued vm8=cutover" \
	"$before" "the jobs' states before the kill"

step 'kill -9; the writers stop on the dead mount'
kill_daemon
wait "$CUTPID" 2>/dev/null || true
CUTPID=
touch "$TEST_DIR/vm8.go"
vm_writers_stop 3 $VMS

step 'restarted with the same arguments (and a crash point in the switch of the next cutover): every flushed write is there'
RELOCFS_CRASHPOINT=cutover-released relocfs_mount
for vm in $VMS; do vm_check acked "$TEST_MNT" "$vm"; done
after=$(states)
say "  $after"
case $after in
"vm1="@(ready|merging)" vm2="@(ready|merging)" vm3=merging vm4=copying vm5=copying vm6=queued vm7=queued vm8=none") ;;
*) fail "after the restart the jobs are: $after" ;;
esac
[ -z "$(find "$TEST_DIR/dst-vm8" -type f)" ] || fail "the rolled-back cutover left files in dst-vm8"
assert_eq "65536 524288 1048576 2" \
	"$(job_field vm3 limit) $(job_field vm4 limit) $(job_field vm5 limit) $(status_field parallel)" \
	"limits after the restart"

step 'the cutover of vm1 dies in its switch; restarted, vm1 alone is rolled back'
writers_start 2
out=$(ctl cutover --job vm1 --timeout 120 2>&1) && fail "the cutover survived its crash point: $out"
wait_until 30 eval '! kill -0 $RELOCFS_PID 2>/dev/null' || fail "the daemon did not die at the crash point"
rc=0
wait "$RELOCFS_PID" || rc=$?
[ $rc = 137 ] || fail "the daemon exited with status $rc, not killed by SIGKILL"
RELOCFS_PID=
fusermount3 -uz "$TEST_MNT" 2>/dev/null || umount -l "$TEST_MNT"
RELOCFS_MOUNTED=
vm_writers_stop 3 $VMS
relocfs_mount
for vm in $VMS; do vm_check acked "$TEST_MNT" "$vm"; done
after=$(states)
say "  $after"
case $after in
"vm1=none vm2="@(ready|merging)" vm3=merging vm4=copying vm5=copying vm6=queued vm7=queued vm8=none") ;;
*) fail "after the second restart the jobs are: $after" ;;
esac
[ -z "$(find "$TEST_DIR/dst-vm1" -type f)" ] || fail "the rolled-back cutover left files in dst-vm1"

step 'as asked: vm7 (queued) and vm4 (copying) aborted; the limits lifted; vm1 and vm8 migrated again'
writers_start 3
out=$(ctl abort --job vm7)
case $out in *dequeued*) ;; *) fail "abort of the queued vm7 says: $out" ;; esac
ctl abort --job vm4 >/dev/null
ctl limit --parallel 0 >/dev/null
for vm in vm3 vm5; do ctl limit --job "$vm" 0 >/dev/null; done
for vm in vm1 vm8; do
	ctl migrate --job "$vm" --to "$TEST_DIR/dst-$vm" $(cd "$TEST_SRC" && ls -d "$vm"/disk*.img) >/dev/null
done

step 'the others are cut over one by one'
for vm in vm1 vm2 vm3 vm5 vm6 vm8; do
	ctl wait --job "$vm" --timeout 180 >/dev/null
	out=$(ctl cutover --job "$vm" --timeout 120 2>&1) || fail "cutover --job $vm: $out"
	assert_eq done "$(job_state "$vm")" "state of $vm"
done
assert_eq "" "$(status_json | jq -r '.jobs[] | select(.state != "done" and .state != "aborted") | .name')" \
	"jobs neither done nor aborted"

step 'nothing lost: the live view, the destinations and the sources hold what the last writers wrote'
sleep 0.5
vm_writers_stop 0 $VMS
for vm in $VMS; do
	vm_check final "$TEST_MNT" "$vm"
	case $vm in
	vm4|vm7) vm_check final "$TEST_SRC" "$vm" ;;
	*) vm_check final "$TEST_DIR/dst-$vm" "$vm" ;;
	esac
done
relocfs_umount
test_done
