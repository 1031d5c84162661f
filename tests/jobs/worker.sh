#!/bin/bash
test_description='four jobs on one mount (two copying under a budget, two queued) go on across worker hand-overs and deaths: relocctl restart and a killed worker keep every job in its state and the limits; a worker killed after one job'"'"'s switch has that cutover finished while the others copy on; a worker killed in another job'"'"'s abort has the abort finished in the background; the rest cut over; every byte is what the writers wrote'
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/../lib.sh"
. "$HERE/../reloc/lib_reloc.sh"
. "$HERE/lib_jobs.sh"
. "$HERE/../worker/lib_worker.sh"
require_root
VMS="vm1 vm2 vm3 vm4"

# the jobs' states, "vm1=STATE vm2=STATE ..."
states() {
	jobs_json | jq -r 'map(select(.name | startswith("vm")) | "\(.name)=\(.state)") | join(" ")'
}

# running_or_queued QUEUED...: those jobs are queued, the others of $VMS run
running_or_queued() {
	local vm st
	for vm in $VMS; do
		st=$(job_state "$vm")
		case " $* " in
		*" $vm "*) [ "$st" = queued ] || fail "job $vm is '$st', not queued: $(states)" ;;
		*) case $st in copying | merging | ready) ;; *) fail "job $vm is '$st': $(states)" ;; esac ;;
		esac
	done
}

export RELOCFS_DELAYPOINT=cutover-switched:1500000,abort-hold:1500000
step 'four VMs of 24 + 8 MiB, a flushing writer each; a budget of 2 MiB/s, two jobs copying at once'
for vm in $VMS; do
	make_vm "$vm" 24 8
	mkdir -p "$TEST_DIR/dst-$vm"
done
relocfs_mount
seed=40
for vm in $VMS; do
	seed=$((seed + 1))
	vm_writer_start "$vm" "$seed" --direct --no-truncate --flush-every 8 --delay-us 3000
done
ctl limit --parallel 2 2M >/dev/null
for vm in $VMS; do
	ctl migrate --job "$vm" --to "$TEST_DIR/dst-$vm" "$vm/disk0.img" "$vm/disk1.img" >/dev/null
done
wait_job_state 30 vm1 copying
running_or_queued vm3 vm4

step 'relocctl restart while two jobs copy and two wait: each job, and the limits, go on in the new worker'
old=$(worker_pid)
out=$(ctl restart) || fail "restart failed: $out"
[ "$(worker_pid)" != "$old" ] || fail "still worker $old after the restart"
running_or_queued vm3 vm4
assert_eq "$(mib 2) 2" "$(status_json | jq -r '"\(.budget) \(.parallel)"')" "budget and parallel limit in the new worker"

step 'the worker killed while the jobs copy: they carry on in the next one'
kill_worker
running_or_queued vm3 vm4
# the copy goes on from what was recorded copied (a fresh start may have
# recorded nothing yet)
wait_until 60 eval '[ "$(job_field vm1 bytes_copied)" -gt 0 ]' || fail "vm1 copied nothing: $(states)"

step 'the queued jobs start when the parallel limit is raised; all four get ready'
ctl limit --parallel 4 32M >/dev/null
for vm in $VMS; do
	wait_job_state 300 "$vm" ready
done

step "the worker killed after vm1's switch, before it was durable: the new worker finishes it, the others go on"
mark=$(log_mark)
w=$(worker_pid)
ctl cutover --job vm1 --timeout 120 >"$TEST_DIR/cut-vm1.out" 2>&1 &
CUT=$!
log_since "$mark" "delay point 'cutover-switched' reached"
kill_worker "$w"
wait "$CUT" || true
log_since "$mark" "finished the cutover to '$TEST_DIR/dst-vm1' (job 'vm1')"
wait_job_state 30 vm1 done
for vm in vm2 vm3 vm4; do
	wait_job_state 120 "$vm" merging ready
done
for vm in $VMS; do
	vm_writer_running "$vm" || fail "the writer of $vm stopped: $(tail -n 3 "$TEST_DIR/writer-$vm.log")"
done

step "the worker killed in vm4's abort: the new worker finishes the abort in the background"
mark=$(log_mark)
w=$(worker_pid)
ctl abort --job vm4 >"$TEST_DIR/abort-vm4.out" 2>&1 &
AB=$!
log_since "$mark" "delay point 'abort-hold' reached"
kill_worker "$w"
wait "$AB" || true
log_since "$mark" "aborting job 'vm4'"
wait_job_state 60 vm4 aborted
# (the directory the job made for its files stays: a restarted job does not
# know which directories it made)
left=$(find "$TEST_DIR/dst-vm4" ! -type d)
[ -z "$left" ] || fail "the aborted job left files in its destination: $left"

step 'one more hand-over; then vm2 and vm3 cut over with the writers running'
old=$(worker_pid)
out=$(ctl restart) || fail "restart failed: $out"
[ "$(worker_pid)" != "$old" ] || fail "still worker $old after the restart"
for vm in vm2 vm3; do
	wait_job_state 120 "$vm" ready
	out=$(ctl cutover --job "$vm" --timeout 120 2>&1) || fail "cutover --job $vm: $out"
	assert_eq done "$(job_state "$vm")" "state of $vm after its cutover"
done
assert_eq 3 "$(status_field worker_deaths)" "workers that died (the three killed)"

step 'every byte is what the writers wrote: through the mount, on the destinations, vm4 on the source'
for vm in $VMS; do
	vm_writer_running "$vm" || fail "the writer of $vm stopped: $(tail -n 3 "$TEST_DIR/writer-$vm.log")"
done
vm_writers_stop 0 $VMS
for vm in $VMS; do
	vm_check final "$TEST_MNT" "$vm"
done
for vm in vm1 vm2 vm3; do
	vm_check final "$TEST_DIR/dst-$vm" "$vm"
done
vm_check final "$TEST_SRC" vm4
relocfs_umount
test_done
