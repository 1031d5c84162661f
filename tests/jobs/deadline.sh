#!/bin/bash
test_description='a job with --deadline 30s beside a plain job under a 24 MiB/s budget: it is ready within its deadline (+10 %) and moves at no more than 1.3 times the rate the deadline needs, while the plain job goes as fast as the budget allows; status shows the deadline, the rate chosen and the ETA; a deadline that cannot be met is said at once, with the rate it would need'
# test: alone
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/../lib.sh"
. "$HERE/../reloc/lib_reloc.sh"
. "$HERE/lib_jobs.sh"

DEADLINE=30

step 'VMs of 48 MiB (deadline), 160 MiB (plain) and 48 MiB; writers on the first two; a budget of 24 MiB/s'
make_vm dl 48
make_vm plain 160
make_vm late 48
for vm in plain late dl; do
	mkdir -p "$TEST_DIR/dst-$vm"
done
relocfs_mount
vm_writer_start dl 1001 --direct --no-truncate --flush-every 8 --delay-us 20000
vm_writer_start plain 1002 --direct --no-truncate --flush-every 8 --delay-us 20000
ctl limit 24M >/dev/null

step "a job with a deadline of ${DEADLINE} s, a plain one, and one whose deadline cannot be met"
t0=$(date +%s.%N)
ctl migrate --job dl --deadline "${DEADLINE}s" --to "$TEST_DIR/dst-dl" dl/disk0.img >/dev/null
ctl migrate --job plain --to "$TEST_DIR/dst-plain" plain/disk0.img >/dev/null
ctl migrate --job late --deadline 30s --rate 256K --to "$TEST_DIR/dst-late" late/disk0.img >/dev/null

step 'status says at once that 48 MiB in 30 s at 256 KiB/s cannot be done, and the rate it needs'
wait_until 10 eval '[ "$(job_field late deadline_ok)" = false ]' ||
	fail "status does not say that the deadline of late cannot be met: $(jobs_json)"
needed=$(job_field late deadline_needed)
say "  late: needs $((needed / 1024)) KiB/s with a limit of 256 KiB/s"
[ "$needed" -ge $(mib 1) ] || fail "the rate the deadline of late needs is given as $needed bytes/s"
ctl status | grep '^job late ' | grep -q "CANNOT BE MET, it needs [0-9.]* [KM]iB/s" ||
	fail "the human status does not say it plainly: $(ctl status | grep '^job late')"
ctl abort --job late >/dev/null

step 'the deadline job shows its deadline, the rate it chose and an ETA'
sleep 1
js=$(status_json | jq -c '.jobs[] | select(.name == "dl")')
say "  $js"
jq -e '.deadline_s > 0 and .deadline_s <= 30 and .deadline_rate > 0 and .deadline_ok == true
	and (.eta_s | type) == "number"' <<<"$js" >/dev/null ||
	fail "status of the deadline job lacks its deadline, rate or ETA: $js"
ctl status | grep '^job dl ' | grep -q 'deadline in [0-9]*s (at [0-9.]* [KM]iB/s)' ||
	fail "the human status does not show the deadline and rate: $(ctl status | grep '^job dl')"

step 'until the deadline job is ready: its rate, and the plain job''s'
dl_sum=0 dl_n=0 pl_sum=0 pl_n=0
while :; do
	read -r dstate drate pstate prate < <(status_json | jq -r '[.jobs[] | select(.name == "dl" or .name == "plain")]
		| map({(.name): .}) | add | [.dl.state, .dl.rate, .plain.state, .plain.rate] | map(tostring) | join(" ")')
	now=$(date +%s.%N)
	case $dstate in ready|done) break ;; failed) fail "the deadline job failed: $(jobs_json)" ;; esac
	if [ "$dstate" = copying ]; then dl_sum=$((dl_sum + drate)); dl_n=$((dl_n + 1)); fi
	if [ "$pstate" = copying ]; then pl_sum=$((pl_sum + prate)); pl_n=$((pl_n + 1)); fi
	awk -v a="$t0" -v b="$now" -v d="$DEADLINE" 'BEGIN { exit !(b - a < d * 1.5) }' ||
		fail "not ready after $(awk -v a="$t0" -v b="$now" 'BEGIN { print b - a }') s: $(jobs_json)"
	sleep 0.5
done
t_ready=$(awk -v a="$t0" -v b="$now" 'BEGIN { printf "%.1f", b - a }')
moved=$(job_field dl bytes_moved)
needed=$(awk -v m="$moved" -v d="$DEADLINE" 'BEGIN { printf "%d", m / d }')
actual=$(awk -v m="$moved" -v t="$t_ready" 'BEGIN { printf "%d", m / t }')
dl_mean=$((dl_n ? dl_sum / dl_n : 0))
pl_mean=$((pl_n ? pl_sum / pl_n : 0))
say "  ready after $t_ready s (deadline $DEADLINE s); moved $((moved / 1024)) KiB: $((actual / 1024)) KiB/s" \
    "on average, $((needed / 1024)) KiB/s needed; sampled $((dl_mean / 1024)) KiB/s over $dl_n samples;" \
    "the plain job $((pl_mean / 1024)) KiB/s over $pl_n"
awk -v t="$t_ready" -v d="$DEADLINE" 'BEGIN { exit !(t <= d * 1.1) }' ||
	fail "ready after $t_ready s, later than the deadline of $DEADLINE s (+10 %)"
awk -v a="$actual" -v n="$needed" 'BEGIN { exit !(a <= 1.3 * n) }' ||
	fail "moved $actual bytes/s on average, more than 1.3 times the $needed the deadline needs"
awk -v a="$dl_mean" -v n="$needed" 'BEGIN { exit !(a <= 1.3 * n) }' ||
	fail "copied at $dl_mean bytes/s (sampled), more than 1.3 times the $needed the deadline needs"
[ "$pl_n" -gt 0 ] && [ "$pl_mean" -gt $((3 * dl_mean)) ] ||
	fail "the plain job ($pl_mean bytes/s) did not go much faster than the deadline job ($dl_mean)"

step 'both cut over; the writers never noticed'
ctl wait --timeout 60 >/dev/null
ctl cutover --job dl --timeout 60 >/dev/null
ctl cutover --job plain --timeout 60 >/dev/null
sleep 0.5
vm_writers_stop 0 dl plain
for vm in dl plain; do
	vm_check final "$TEST_MNT" "$vm"
	vm_check final "$TEST_DIR/dst-$vm" "$vm"
done
cmp -s "$TEST_SRC/late/disk0.img" "$TEST_MNT/late/disk0.img" || fail "late/disk0.img changed"
relocfs_umount
test_done
