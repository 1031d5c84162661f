#!/bin/bash
test_description='eight VMs (two images and a flushing writer each) moved as eight jobs to eight destinations under one 40 MiB/s budget, priorities 1 to 4: the copy rates in status add up to the budget and each job has its weighted share; a lower budget applies within a second; names outside the jobs stay free; each job is verified and cut over on its own with its own exec hook while the others copy; every byte is what the writers wrote'
# test: alone
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/../lib.sh"
. "$HERE/../reloc/lib_reloc.sh"
. "$HERE/lib_jobs.sh"

BUDGET_MIB=40
LOW_MIB=20
VMS="vm1 vm2 vm3 vm4 vm5 vm6 vm7 vm8"
declare -A PRIO=([vm1]=1 [vm2]=1 [vm3]=2 [vm4]=2 [vm5]=3 [vm6]=3 [vm7]=4 [vm8]=4)
SUMW=20

step 'eight VMs of 112 + 16 MiB, a file outside them to remove later; a writer per VM'
for vm in $VMS; do
	make_vm "$vm" 112 16
	make_vm_hook "$vm"
	mkdir -p "$TEST_DIR/dst-$vm"
done
mkdir -p "$TEST_SRC/iso"
echo "an installer" >"$TEST_SRC/iso/old.iso"
relocfs_mount
seed=800
for vm in $VMS; do
	seed=$((seed + 1))
	vm_writer_start "$vm" "$seed" --direct --no-truncate --flush-every 16 --delay-us 5000
done

step "a budget of $BUDGET_MIB MiB/s; eight jobs, priority 1 to 4"
ctl limit "${BUDGET_MIB}M" >/dev/null
for vm in $VMS; do
	ctl migrate --job "$vm" --to "$TEST_DIR/dst-$vm" --priority "${PRIO[$vm]}" \
		"$vm/disk0.img" "$vm/disk1.img" >/dev/null
done
ctl status >"$TEST_DIR/status.txt"

# names outside the jobs, while all eight run (done between two samples)
namespace_checks() {
	mkdir "$TEST_MNT/vm9"
	head -c 1M /dev/urandom >"$TEST_MNT/vm9/disk0.img"
	rm "$TEST_MNT/iso/old.iso"
	mv "$TEST_MNT/iso" "$TEST_MNT/isos"
	[ -e "$TEST_SRC/vm9/disk0.img" ] && [ ! -e "$TEST_SRC/iso/old.iso" ] && [ -d "$TEST_SRC/isos" ] ||
		fail "the new file, the removal or the rename did not reach the source"
	echo note >"$TEST_MNT/vm1/notes.txt"	# a new name beside a job's files
	for victim in vm1/disk0.img vm1; do
		out=$(untrapped mv "$TEST_MNT/$victim" "$TEST_MNT/moved" 2>&1) && fail "renaming '$victim' succeeded while its job runs"
		case $out in *'Device or resource busy'*) ;; *) fail "renaming '$victim' failed, but not with EBUSY: $out" ;; esac
	done
	out=$(untrapped rm "$TEST_MNT/vm2/disk1.img" 2>&1) && fail "removing a file of a running job succeeded"
	return 0
}

step 'the copy rates add up to the budget, each job has its weighted share (sampled while all copy); meanwhile names outside the jobs are created, removed and renamed, the jobs pin theirs'
sleep 2.5	# a rate is measured over two seconds: from when all eight run
samples=0
declare -A RSUM=()
while [ $samples -lt 12 ]; do
	# one jq a sample: how many copy, then each job's rate in the order of $VMS
	read -r ncopying rates < <(status_json | jq -r '[([.jobs[] | select(.state == "copying")] | length),
		(.jobs | map({(.name): .rate}) | add | [.vm1, .vm2, .vm3, .vm4, .vm5, .vm6, .vm7, .vm8]
		 | map(tostring) | join(" "))] | map(tostring) | join(" ")')
	[ "$ncopying" = 8 ] || break
	sum=0 line= i=0
	for r in $rates; do
		i=$((i + 1))
		sum=$((sum + r))
		RSUM[vm$i]=$(( ${RSUM[vm$i]:-0} + r ))
		line+=" vm$i=$((r / 1024))K"
	done
	say "  sample $samples:$line sum=$((sum / 1024)) KiB/s"
	awk -v s="$sum" -v b="$(mib $BUDGET_MIB)" 'BEGIN { exit !(s >= 0.85 * b && s <= 1.15 * b) }' ||
		fail "sum of the copy rates $sum bytes/s is not within 15 % of the budget $(mib $BUDGET_MIB)"
	samples=$((samples + 1))
	if [ $samples = 2 ]; then
		namespace_checks
		ns_done=1
	fi
	sleep 0.5
done
[ $samples -ge 4 ] || fail "only $samples samples while all eight copied (a job finished too early)"
[ -n "${ns_done:-}" ] || fail "the names were not checked while all eight ran"
[ "$(grep -c '^job vm[1-8] .*copying *\[[#.]*\]' "$TEST_DIR/status.txt")" = 8 ] ||
	fail "the human status does not show one line with a bar per job: $(cat "$TEST_DIR/status.txt")"
assert_eq $(mib $BUDGET_MIB) "$(status_field budget)" "budget in status"
for vm in $VMS; do
	got=$((RSUM[$vm] / samples))
	want=$(($(mib $BUDGET_MIB) * PRIO[$vm] / SUMW))
	say "  $vm (priority ${PRIO[$vm]}): $((got / 1024)) KiB/s, weighted share $((want / 1024)) KiB/s"
	awk -v g="$got" -v w="$want" 'BEGIN { exit !(g >= 0.7 * w && g <= 1.3 * w) }' ||
		fail "$vm copies at $got bytes/s, not within 30 % of its weighted share $want"
done

step "the budget lowered to $LOW_MIB MiB/s takes effect within a second"
n=$(jobs_json | jq '[.[] | select(.state == "copying")] | length')
[ "$n" -ge 4 ] || fail "only $n jobs still copy before the budget is lowered: $(jobs_json)"
ctl limit "${LOW_MIB}M" >/dev/null
t0=$(date +%s.%N)
sleep 1
m1=$(jobs_json | jq '[.[].bytes_moved] | add')
t1=$(date +%s.%N)
sleep 2
m2=$(jobs_json | jq '[.[].bytes_moved] | add')
t2=$(date +%s.%N)
rate=$(awk -v a="$m1" -v b="$m2" -v s="$t1" -v e="$t2" 'BEGIN { printf "%d", (b - a) / (e - s) }')
say "  from $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }') s after the change on: $((rate / 1024)) KiB/s moved"
awk -v r="$rate" -v b="$(mib $LOW_MIB)" 'BEGIN { exit !(r <= 1.15 * b && r >= 0.5 * b) }' ||
	fail "after lowering the budget to $(mib $LOW_MIB) bytes/s the jobs moved $rate bytes/s"
ctl limit "${BUDGET_MIB}M" >/dev/null

step 'without --job, commands that need one job say that there are eight'
for cmd in cutover abort verify; do
	rc=0
	out=$(ctl $cmd 2>&1) || rc=$?
	assert_eq "2 1" "$rc $(printf '%s\n' "$out" | wc -l)" "'$cmd' without --job: exit status and lines"
	case $out in *"8 jobs are migrating"*"--job NAME"*) ;;
	*) fail "'$cmd' without --job does not say it is ambiguous: $out" ;; esac
done

step 'each job, once ready, is verified and cut over on its own with its own hook while the others copy'
declare -A CUT=()
first=1
while [ ${#CUT[@]} -lt 8 ]; do
	js=$(jobs_json)
	ready=$(jq -r '.[] | select(.state == "ready") | .name' <<<"$js" | head -n 1)
	if [ -z "$ready" ]; then
		bad=$(jq -r '.[] | select(.state == "failed") | "\(.name): \(.error)"' <<<"$js")
		[ -z "$bad" ] || fail "a job failed: $bad"
		sleep 0.2
		continue
	fi
	copying=$(jq -r '[.[] | select(.state == "copying") | .name] | join(" ")' <<<"$js")
	before=$(jq '[.[] | select(.state == "copying") | .bytes_copied] | add // 0' <<<"$js")
	out=$(ctl verify --job "$ready" 2>&1) || fail "verify --job $ready: $out"
	out=$(ctl cutover --job "$ready" --hook "exec:$TEST_DIR/hook-$ready" --timeout 120 2>&1) ||
		fail "cutover --job $ready: $out"
	say "  $ready: $out; copying meanwhile: ${copying:-none}"
	CUT[$ready]=1
	if [ -n "$copying" ] && [ $first = 1 ]; then
		# the jobs that copied before go on (none of them was held)
		sleep 1
		after=$(jobs_json | jq --arg c " $copying " '[.[] | select(.name as $n | $c | contains(" " + $n + " ")) | .bytes_copied] | add // 0')
		[ "$after" -gt "$before" ] || fail "the other jobs did not copy on during the cutover of $ready ($before -> $after)"
		first=0
	fi
	assert_eq done "$(job_state "$ready")" "state of $ready after its cutover"
done
[ $first = 0 ] || fail "no cutover happened while another job was copying"

step 'each hook paused and resumed only its own VM, with its two images'
for vm in $VMS; do
	assert_eq "pause|resume" "$(awk -v v="$vm" '$1 == v { print $2 }' "$HOOKLOG" | paste -sd'|')" "hook calls of $vm"
	files=$(awk -v v="$vm" '$1 == v && $2 == "pause"' "$HOOKLOG" | cut -d' ' -f3-)
	assert_eq "$TEST_MNT/$vm/disk0.img $TEST_MNT/$vm/disk1.img" "$(echo $files)" "RELOCFS_FILES of $vm's hook"
done

step 'the writers never noticed; every byte is what they wrote, through the mount and on each destination'
for vm in $VMS; do
	vm_writer_running "$vm" || fail "the writer of $vm stopped: $(tail -n 3 "$TEST_DIR/writer-$vm.log")"
done
sleep 1
vm_writers_stop 0 $VMS
for vm in $VMS; do
	vm_check final "$TEST_MNT" "$vm"
	vm_check final "$TEST_DIR/dst-$vm" "$vm"
	# a new name beside the job's files: it stays with the directory
	assert_eq "$vm paused" "$(cat "$TEST_MNT/$vm/paused.txt" 2>&1)" "what $vm's hook flushed in its pause"
done
assert_eq note "$(cat "$TEST_MNT/vm1/notes.txt")" "vm1/notes.txt"
relocfs_umount
test_done
