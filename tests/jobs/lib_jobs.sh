# tests/jobs/lib_jobs.sh: sourced by the jobs tests after tests/lib.sh and
# tests/reloc/lib_reloc.sh: several "VMs" on one mount, each with its own
# images, writer, model and exec hook.
#
#   make_vm VM SIZE_MIB...   VM's directory with one fully allocated image
#                 per size (disk0.img, disk1.img, ...), data copied from one
#                 random chunk (so every block is data: copy rates count it)
#   vm_files VM              the images' names ("disk0.img disk1.img")
#   vm_writer_start VM SEED [OPTS...]  relocwriter on VM's images through the
#                 mount, its model in $TEST_DIR/model-VM; waits until ready
#   vm_writer_stop VM [RC]   stop it; it must exit with RC (default 0)
#   vm_writers_stop RC VM... the same for several
#   vm_check MODE DIR VM     every image of VM under DIR/VM equals the
#                 writer's final model (MODE final) or holds what it had
#                 flushed (MODE acked)
#   make_vm_hook VM          $TEST_DIR/hook-VM: an exec hook that logs
#                 "VM ACTION FILES..." to $HOOKLOG and, on pause, writes and
#                 syncs VM/paused.txt through the mount (a guest's last flush)
#   job_field JOB FIELD      a field of JOB's entry in status --json's jobs
#   job_state JOB            its state
#   jobs_json                status --json's jobs list, compact
#   wait_job_state SECONDS JOB STATE...  poll until JOB is in one of them
#   mib N                    N MiB in bytes
#
# Every exit path stops the writers before lib_reloc's clean-up runs.

HOOKLOG=$TEST_DIR/hooks.log
declare -A VM_WPID=()

mib() { echo $(($1 * 1048576)); }

make_vm() {
	local vm=$1 i=0 s
	shift
	mkdir -p "$TEST_SRC/$vm"
	[ -s "$TEST_DIR/chunk" ] || head -c 8M /dev/urandom >"$TEST_DIR/chunk"
	for s in "$@"; do
		: >"$TEST_SRC/$vm/disk$i.img"
		for _ in $(seq 1 $((s / 8))); do
			cat "$TEST_DIR/chunk" >>"$TEST_SRC/$vm/disk$i.img"
		done
		[ $((s % 8)) = 0 ] || head -c "$((s % 8))M" "$TEST_DIR/chunk" >>"$TEST_SRC/$vm/disk$i.img"
		i=$((i + 1))
	done
}

vm_files() {
	(cd "$TEST_SRC/$1" 2>/dev/null || cd "$TEST_MNT/$1" && ls disk*.img) | tr '\n' ' '
}

vm_writer_start() {
	local vm=$1 seed=$2 f args=()
	shift 2
	for f in $(vm_files "$vm"); do
		args+=(--file "$TEST_MNT/$vm/$f")
	done
	mkdir -p "$TEST_DIR/model-$vm"
	rm -f "$TEST_DIR/stop-$vm" "$TEST_DIR/model-$vm/ready"
	"$WRITER" --model-dir "$TEST_DIR/model-$vm" --until-file "$TEST_DIR/stop-$vm" \
		--seed "$seed" --size 1 "$@" "${args[@]}" >"$TEST_DIR/writer-$vm.log" 2>&1 &
	VM_WPID[$vm]=$!
	wait_until 120 eval "[ -e '$TEST_DIR/model-$vm/ready' ] || ! kill -0 ${VM_WPID[$vm]} 2>/dev/null" ||
		fail "the writer of $vm did not get ready within 120 s"
	[ -e "$TEST_DIR/model-$vm/ready" ] ||
		fail "the writer of $vm exited before it was ready: $(cat "$TEST_DIR/writer-$vm.log")"
}

vm_writer_running() {
	kill -0 "${VM_WPID[$1]}" 2>/dev/null
}

vm_writer_stop() {
	local vm=$1 want=${2:-0} rc=0
	touch "$TEST_DIR/stop-$vm"
	wait "${VM_WPID[$vm]}" || rc=$?
	unset "VM_WPID[$vm]"
	[ "$rc" = "$want" ] ||
		fail "the writer of $vm exited with status $rc, expected $want: $(tail -n 5 "$TEST_DIR/writer-$vm.log")"
}

vm_writers_stop() {
	local want=$1 vm
	shift
	for vm in "$@"; do
		touch "$TEST_DIR/stop-$vm"
	done
	for vm in "$@"; do
		vm_writer_stop "$vm" "$want"
	done
}

vm_check() {
	local mode=$1 dir=$2 vm=$3 f out rc
	for f in $(vm_files "$vm"); do
		rc=0
		if [ "$mode" = acked ]; then
			out=$("$WRITER" --check "$dir/$vm/$f" --model "$TEST_DIR/model-$vm/$f.acked" \
				--check-acked 2>&1) || rc=$?
		else
			out=$("$WRITER" --check "$dir/$vm/$f" --model "$TEST_DIR/model-$vm/$f.final" 2>&1) || rc=$?
		fi
		[ $rc = 0 ] || fail "$dir/$vm/$f is not what the writer of $vm wrote ($mode): $out"
	done
}

make_vm_hook() {
	local vm=$1
	cat >"$TEST_DIR/hook-$vm" <<EOF
#!/bin/sh
echo "$vm \$1 \$(printf '%s' "\$RELOCFS_FILES" | tr '\n' ' ')" >>"$HOOKLOG"
[ "\$1" = pause ] || exit 0
printf '%s paused\n' "$vm" >"$TEST_MNT/$vm/paused.txt" && sync "$TEST_MNT/$vm/paused.txt"
EOF
	chmod +x "$TEST_DIR/hook-$vm"
}

jobs_json() {
	status_json | jq -c '.jobs'
}

job_field() {
	status_json | jq -r --arg j "$1" ".jobs[] | select(.name == \$j) | .$2"
}

job_state() {
	job_field "$1" state
}

job_state_is() {
	local j=$1 cur
	shift
	cur=$(job_state "$j") || return 1
	one_of "$cur" "$@"
}

wait_job_state() {
	local limit=$1 j=$2
	shift 2
	wait_until "$limit" job_state_is "$j" "$@" ||
		fail "job '$j' did not reach state $* within $limit s; jobs: $(jobs_json)"
}

jobs_cleanup() {
	local rc=$? vm
	trap - ERR
	set +e
	for vm in "${!VM_WPID[@]}"; do
		kill "${VM_WPID[$vm]}" 2>/dev/null
	done
	for vm in "${!VM_WPID[@]}"; do
		wait_until 10 eval "! kill -0 ${VM_WPID[$vm]} 2>/dev/null"
		kill -9 "${VM_WPID[$vm]}" 2>/dev/null
	done
	reloc_set_rc "$rc"
	reloc_cleanup
}
trap jobs_cleanup EXIT
