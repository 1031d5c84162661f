#!/bin/bash
test_description='relocfs -o max_jobs=3 with eight jobs: the others are queued and start in the order they were asked for as slots free; never more than three copy at once; wait without --job waits for all; every job is cut over and holds what its writer wrote'
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/../lib.sh"
. "$HERE/../reloc/lib_reloc.sh"
. "$HERE/lib_jobs.sh"

VMS="vm1 vm2 vm3 vm4 vm5 vm6 vm7 vm8"

step 'eight VMs of 24 MiB, a writer on two of them; relocfs -o max_jobs=3 and a budget of 12 MiB/s'
for vm in $VMS; do
	make_vm "$vm" 24
	mkdir -p "$TEST_DIR/dst-$vm"
done
relocfs_mount -o max_jobs=3
vm_writer_start vm1 901 --direct --flush-every 16 --delay-us 3000
vm_writer_start vm8 908 --direct --flush-every 16 --delay-us 3000
ctl limit 256K >/dev/null	# slow while the jobs are asked for: none is done before all are
case $(ctl limit) in *"at most 3 job(s) copy at once"*) ;;
*) fail "limit does not show the parallel limit: $(ctl limit)" ;; esac

step 'eight jobs: three start, five are queued in order'
for vm in $VMS; do
	out=$(ctl migrate --job "$vm" --to "$TEST_DIR/dst-$vm" "$vm/disk0.img")
	case $vm in
	vm1|vm2|vm3) case $out in "job '$vm': migrating"*) ;; *) fail "$vm did not start: $out" ;; esac ;;
	*) case $out in "queued: job '$vm'"*) ;; *) fail "$vm was not queued: $out" ;; esac ;;
	esac
done
assert_eq "1 2 3 4 5" "$(status_json | jq -r '[.jobs[] | select(.state == "queued") | .position] | join(" ")')" "queue positions"
out=$(ctl cutover --job vm8 2>&1) && fail "a queued job was cut over: $out"
case $out in *queued*) ;; *) fail "cutover of a queued job does not say it is queued: $out" ;; esac
ctl limit 12M >/dev/null

step 'until all are ready: never more than three copy at once, and they start in order'
started=()
max=0
polls=0
while :; do
	# one jq a poll: copying, not ready, failed, started (in order)
	js=$(status_json)
	read -r n notready failed names < <(jq -r '.jobs | [([.[] | select(.state == "copying")] | length),
		([.[] | select(.state != "ready")] | length), ([.[] | select(.state == "failed")] | length),
		([.[] | select(.state != "queued") | .name] | join(","))] | map(tostring) | join(" ")' <<<"$js")
	[ "$n" -le 3 ] || fail "$n jobs copy at once: $js"
	[ "$n" -le "$max" ] || max=$n
	[ "$failed" = 0 ] || fail "a job failed: $js"
	for vm in ${names//,/ }; do
		case " ${started[*]} " in *" $vm "*) ;; *) started+=("$vm") ;; esac
	done
	[ "$notready" != 0 ] || break
	polls=$((polls + 1))
	[ $polls -lt 3000 ] || fail "not all ready after $polls polls: $js"
	sleep 0.05
done
say "  at most $max copying at once over $polls polls; started: ${started[*]}"
assert_eq 3 "$max" "most jobs seen copying at once"
assert_eq "$VMS" "${started[*]}" "the order the jobs started in"

step 'wait without --job returns once every job is ready'
# a writer can make a ready job unready again: wait then prints progress
# lines before its last one
out=$(ctl wait --timeout 60)
case $(printf '%s\n' "$out" | tail -n 1) in "ready: 8 job(s)"*) ;; *) fail "wait says: $out" ;; esac

step 'each job is cut over; the writers go on'
for vm in $VMS; do
	ctl cutover --job "$vm" --timeout 60 >/dev/null
	assert_eq done "$(job_state "$vm")" "state of $vm"
done
vm_writer_running vm1 && vm_writer_running vm8 || fail "a writer stopped"
sleep 0.5
vm_writers_stop 0 vm1 vm8

step 'every image is what it was, or what its writer wrote, on its destination'
for vm in vm1 vm8; do
	vm_check final "$TEST_MNT" "$vm"
	vm_check final "$TEST_DIR/dst-$vm" "$vm"
done
for vm in vm2 vm3 vm4 vm5 vm6 vm7; do
	cmp -s "$TEST_SRC/$vm/disk0.img" "$TEST_DIR/dst-$vm/$vm/disk0.img" ||
		fail "$vm's copy differs from its source"
	cmp -s "$TEST_SRC/$vm/disk0.img" "$TEST_MNT/$vm/disk0.img" ||
		fail "$vm through the mount differs from its source"
done
relocfs_umount
test_done
