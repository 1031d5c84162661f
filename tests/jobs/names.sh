#!/bin/bash
test_description='what jobs may and may not do to each other: names are unique, a file moves with one job at a time and by its only name (a file with hard links is refused), a whole-tree job runs alone, a command without --job means the only job or says which there are, unknown jobs are named in the error, a queued job is dequeued by abort and cannot be cut over, and fails at its start if its file gained a second name meanwhile, status and wait take --job, and the unnamed job of old scripts works beside named ones'
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/../lib.sh"
. "$HERE/../reloc/lib_reloc.sh"
. "$HERE/lib_jobs.sh"

# refused RC WHAT CMD...: exit status RC, one line on stderr, the daemon alive
refused() {
	local want=$1 what=$2 rc=0 err
	shift 2
	err=$("$@" 2>&1 >/dev/null) || rc=$?
	[ "$rc" = "$want" ] || fail "$what: exit status $rc, expected $want: $err"
	[ "$(printf '%s\n' "$err" | wc -l)" = 1 ] || fail "$what: not one line on stderr: $err"
	ERR=$err
	kill -0 "$RELOCFS_PID" || fail "$what: the daemon died"
}

step 'four VMs, one with a hard link to its image; a writer on vm1'
for vm in vm1 vm2 vm3 vm4; do
	make_vm "$vm" 8
	mkdir -p "$TEST_DIR/dst-$vm"
done
ln "$TEST_SRC/vm3/disk0.img" "$TEST_SRC/vm3/twin.img"
relocfs_mount
vm_writer_start vm1 1101 --direct --flush-every 8 --delay-us 3000
ctl limit 64K >/dev/null	# slow: the jobs stay at work while this test looks at them

step 'a named job and the unnamed one side by side; names are unique'
ctl migrate --job vm1 --to "$TEST_DIR/dst-vm1" vm1/disk0.img >/dev/null
ctl migrate --to "$TEST_DIR/dst-vm2" vm2/disk0.img >/dev/null
refused 1 "a second job named vm1" ctl migrate --job vm1 --to "$TEST_DIR/dst-vm3" vm3/disk0.img
case $ERR in *"job 'vm1' exists already"*) ;; *) fail "the refusal does not say why: $ERR" ;; esac
refused 1 "a second unnamed job" ctl migrate --to "$TEST_DIR/dst-vm3" vm3/disk0.img
case $ERR in *"already in progress"*) ;; *) fail "the refusal does not say why: $ERR" ;; esac

step 'a file moves with one job at a time, and only a file of one name'
refused 1 "a file of another job" ctl migrate --job again --to "$TEST_DIR/dst-vm3" vm1/disk0.img
case $ERR in *"'vm1/disk0.img' is in job 'vm1'"*) ;; *) fail "the refusal does not name the job: $ERR" ;; esac
# a files job moves one name; another would keep the old copy after the cutover
refused 1 "a file with two names" ctl migrate --job twice --to "$TEST_DIR/dst-vm3" vm3/twin.img
case $ERR in *"'vm3/twin.img' has 2 names (hard links)"*) ;; *) fail "the refusal does not say why: $ERR" ;; esac
refused 1 "both names of one file" \
	ctl migrate --job twice --to "$TEST_DIR/dst-vm3" vm3/disk0.img vm3/twin.img
case $ERR in *"has 2 names"*) ;; *) fail "the refusal does not say why: $ERR" ;; esac
# a name made beside the mount for a file of a running job
ln "$TEST_SRC/vm2/disk0.img" "$TEST_SRC/vm3/link.img"
refused 1 "another name of a file of another job" ctl migrate --job link --to "$TEST_DIR/dst-vm3" vm3/link.img
case $ERR in *"has 2 names"*) ;; *) fail "the refusal does not say why: $ERR" ;; esac
rm "$TEST_SRC/vm3/link.img" "$TEST_SRC/vm3/twin.img"
refused 2 "one file named twice" ctl migrate --job twice --to "$TEST_DIR/dst-vm3" vm3/disk0.img vm3/disk0.img
case $ERR in *"is named twice"*) ;; *) fail "the refusal does not say why: $ERR" ;; esac
[ -z "$(ls -A "$TEST_DIR/dst-vm3")" ] || fail "refused jobs left files in dst-vm3"

step 'a whole-tree job runs alone'
mkdir "$TEST_DIR/dst-tree"
refused 1 "a whole-tree job beside others" ctl migrate --job tree --to "$TEST_DIR/dst-tree"
case $ERR in *"runs alone"*) ;; *) fail "the refusal does not say why: $ERR" ;; esac

step 'without --job: ambiguous commands say which jobs there are; status and wait take them all'
for cmd in cutover abort verify; do
	refused 2 "$cmd without --job" ctl $cmd
	case $ERR in *"2 jobs are migrating (vm1, (unnamed))"*"--job NAME"*) ;;
	*) fail "'$cmd' without --job: $ERR" ;; esac
done
assert_eq "vm1 " "$(status_json | jq -r '[.jobs[].name] | join(" ")')" "names in status"
assert_eq "vm1/disk0.img vm1" "$(status_json | jq -r '.files[] | select(.job == "vm1") | "\(.path) \(.job)"')" \
	"vm1's file in status"
assert_eq "vm2/disk0.img" "$(status_json | jq -r '.files[] | select(.job == "") | .path')" \
	"the unnamed job's file in status"
assert_eq "vm1" "$(ctl status --json --job vm1 | jq -r '[.jobs[].name] | join(" ")')" "status --job vm1"
refused 1 "status of an unknown job" ctl status --job nosuch
case $ERR in *"no job 'nosuch'"*) ;; *) fail "status --job nosuch: $ERR" ;; esac
refused 1 "wait for an unknown job" ctl wait --job nosuch --timeout 5
refused 1 "cutover of an unknown job" ctl cutover --job nosuch
refused 1 "limit of an unknown job" ctl limit --job nosuch 1M
refused 1 "wait for all, not ready in time" ctl wait --timeout 2
case $ERR in *"of 2 job(s) ready"*) ;; *) fail "wait for all: $ERR" ;; esac

step 'a queued job: cutover says it has not started, abort dequeues it, status shows its place'
ctl limit --parallel 1 >/dev/null
out=$(ctl migrate --job vm3 --to "$TEST_DIR/dst-vm3" vm3/disk0.img)
case $out in "queued: job 'vm3'"*) ;; *) fail "vm3 was not queued: $out" ;; esac
assert_eq "queued 1" "$(job_field vm3 state) $(job_field vm3 position)" "vm3 in status"
refused 1 "cutover of a queued job" ctl cutover --job vm3
case $ERR in *"queued"*) ;; *) fail "cutover of vm3: $ERR" ;; esac
out=$(ctl abort --job vm3)
case $out in *dequeued*) ;; *) fail "abort of vm3 says: $out" ;; esac
assert_eq "aborted" "$(job_state vm3)" "vm3 after abort"
[ -z "$(ls -A "$TEST_DIR/dst-vm3")" ] || fail "the queued job left files in dst-vm3"

step 'the unnamed job and vm1 cut over on their own; the old no-job commands work once one is left'
ctl limit 0 >/dev/null
ctl wait --job vm1 --timeout 120 >/dev/null
ctl cutover --job vm1 --timeout 60 >/dev/null
# one job left: the commands of old scripts need no --job
ctl wait --timeout 120 >/dev/null
ctl verify >/dev/null
out=$(ctl cutover --timeout 60)
case $out in "switched 1 file(s) to '$TEST_DIR/dst-vm2'"*) ;; *) fail "cutover without --job: $out" ;; esac
refused 1 "cutover of a job that is done" ctl cutover --job vm1
case $ERR in *"job 'vm1' is cut over"*) ;; *) fail "cutover of a finished job: $ERR" ;; esac
vm_writer_stop vm1
vm_check final "$TEST_MNT" vm1
vm_check final "$TEST_DIR/dst-vm1" vm1
cmp -s "$TEST_SRC/vm2/disk0.img" "$TEST_DIR/dst-vm2/vm2/disk0.img" || fail "dst-vm2 differs"

step 'a queued job whose file gained a second name before it could start fails then'
ctl limit 64K >/dev/null
ctl limit --parallel 1 >/dev/null
ctl migrate --job vm4 --to "$TEST_DIR/dst-vm4" vm4/disk0.img >/dev/null
out=$(ctl migrate --job vm3b --to "$TEST_DIR/dst-vm3" vm3/disk0.img)
case $out in "queued: job 'vm3b'"*) ;; *) fail "vm3b was not queued: $out" ;; esac
ln "$TEST_SRC/vm3/disk0.img" "$TEST_SRC/vm3/late.img"
ctl limit --parallel 0 >/dev/null
wait_job_state 30 vm3b failed
case $(job_field vm3b error) in *"has 2 names"*) ;;
*) fail "vm3b failed for another reason: $(job_field vm3b error)" ;; esac
[ -z "$(ls -A "$TEST_DIR/dst-vm3")" ] || fail "the failed start left files in dst-vm3"
ctl abort --job vm4 >/dev/null
relocfs_umount
test_done
