# bench/lib.sh: shared helpers for the relocfs benchmarks (sourced, POSIX sh + bash-isms avoided).
#
# Environment:
#   BENCH_DIR       scratch location (default /var/tmp/relocfs-bench; must not be tmpfs:
#                   the point is to compare with the real backing filesystem)
#   RELOCFS_BUILD   build directory holding relocfs and relocctl (default build)
#   BENCH_RESULTS   where result files go (default bench/results)
#   BENCH_DATE      date prefix of result files (default: today, run.sh sets it once)
#   BENCH_KEEP=1    keep scratch data (default: deleted at the end of each part)

set -eu

BENCH_ROOT=$(cd "$(dirname "$0")/.." && pwd)
BENCH_DIR=${BENCH_DIR:-/var/tmp/relocfs-bench}
RELOCFS_BUILD=${RELOCFS_BUILD:-build}
case $RELOCFS_BUILD in /*) ;; *) RELOCFS_BUILD=$BENCH_ROOT/$RELOCFS_BUILD ;; esac
RELOCFS=$RELOCFS_BUILD/relocfs
RELOCCTL=$RELOCFS_BUILD/relocctl
BENCH_RESULTS=${BENCH_RESULTS:-$BENCH_ROOT/bench/results}
BENCH_DATE=${BENCH_DATE:-$(date +%Y-%m-%d)}

MNT=
SRC=
DAEMON_PID=
RUNDIR=

die() { echo "bench: $*" >&2; exit 2; }
log() { echo "[$(date +%H:%M:%S)] $*" >&2; }

check_prereqs() {
	[ "$(id -u)" = 0 ] || die "run as root (drop_caches, FUSE mounts)"
	[ -x "$RELOCFS" ] && [ -x "$RELOCCTL" ] || die "no $RELOCFS / $RELOCCTL: run make first"
	command -v fio >/dev/null || die "fio is not installed"
	command -v jq >/dev/null || die "jq is not installed"
	mkdir -p "$BENCH_DIR" "$BENCH_RESULTS"
	fstype=$(findmnt -n -o FSTYPE -T "$BENCH_DIR")
	case $fstype in
	tmpfs|ramfs) die "BENCH_DIR=$BENCH_DIR is on $fstype: pick a directory on a real disk" ;;
	esac
}

drop_caches() {
	sync
	echo 3 >/proc/sys/vm/drop_caches
}

# machine facts, for the head of every result file
machine_facts() {
	echo "date:        $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
	echo "host:        $(uname -n)"
	echo "kernel:      $(uname -r)"
	echo "nproc:       $(nproc)"
	echo "memory:      $(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo)"
	echo "bench dir:   $BENCH_DIR"
	echo "backing fs:  $(findmnt -n -o FSTYPE -T "$BENCH_DIR") on $(df --output=source "$BENCH_DIR" | tail -1)" \
	     "($(findmnt -n -o OPTIONS -T "$BENCH_DIR" 2>/dev/null || echo '?'))"
	echo "free space:  $(df -h --output=avail "$BENCH_DIR" | tail -1 | tr -d ' ')"
	echo "fio:         $(fio --version)"
	echo "relocfs:     $(git -C "$BENCH_ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')" \
	     "$(git -C "$BENCH_ROOT" status --porcelain -- fs copier ctl vmhooks 2>/dev/null | grep -q . && echo '(dirty tree)')"
	echo "loadavg:     $(cut -d' ' -f1-3 /proc/loadavg) (at start)"
	echo "other fuse:  $(grep -c ' fuse' /proc/mounts || true) FUSE mount(s) on the host at start"
}

# mount_relocfs SRC MNT [extra -o options]
mount_relocfs() {
	SRC=$1 MNT=$2
	shift 2
	mkdir -p "$SRC" "$MNT"
	RUNDIR=$(mktemp -d "$BENCH_DIR/run.XXXXXX")
	RELOCFS_RUNDIR=$RUNDIR "$RELOCFS" "$@" "$SRC" "$MNT" 2>"$RUNDIR/relocfs.log" ||
		die "relocfs failed to start: $(cat "$RUNDIR/relocfs.log")"
	mi_i=0
	while ! grep -q " $MNT fuse" /proc/mounts; do
		mi_i=$((mi_i + 1))
		[ $mi_i -lt 100 ] || die "mount did not appear at $MNT"
		sleep 0.05
	done
	DAEMON_PID=$(daemon_pid "$MNT")
	[ -n "$DAEMON_PID" ] || die "cannot find the relocfs process for $MNT"
	export RELOCFS_RUNDIR=$RUNDIR
	log "relocfs pid $DAEMON_PID serving $SRC at $MNT"
}

# the relocfs supervisor serving MNT (the one whose arguments end with MNT and whose
# parent is not relocfs: its worker has the same arguments)
daemon_pid() {
	for dp_p in $(pgrep -x relocfs || true); do
		args=$(tr '\0' ' ' </proc/$dp_p/cmdline 2>/dev/null) || continue
		dp_pp=$(awk '/^PPid:/ {print $2}' /proc/$dp_p/status 2>/dev/null) || continue
		[ "$(cat /proc/$dp_pp/comm 2>/dev/null)" != relocfs ] || continue
		case "$args" in *" $1 "|*" $1") echo "$dp_p"; return ;; esac
	done
}

# the supervisor and its worker: their memory is the daemon's
daemon_pids() {
	[ -n "$DAEMON_PID" ] || return 0
	echo "$DAEMON_PID"
	pgrep -P "$DAEMON_PID" -x relocfs || true
}

daemon_mem() {
	[ -n "$DAEMON_PID" ] && [ -r /proc/$DAEMON_PID/status ] || { echo "VmRSS: ? VmHWM: ?"; return; }
	echo "VmRSS: $(daemon_kib VmRSS) VmHWM: $(daemon_kib VmHWM) (KiB, supervisor and worker)"
}

# daemon_kib FIELD: VmRSS or VmHWM in KiB, the supervisor's and the worker's added
daemon_kib() {
	for dk_p in $(daemon_pids); do
		awk -v f="$1:" '$1 == f {print $2}' /proc/$dk_p/status 2>/dev/null
	done | awk '{t += $1} END {print t + 0}'
}

unmount_relocfs() {
	[ -n "$MNT" ] || return 0
	if grep -q " $MNT fuse" /proc/mounts; then
		fusermount3 -u "$MNT" 2>/dev/null || { sleep 1; fusermount3 -u "$MNT" 2>/dev/null; } ||
			fusermount3 -uz "$MNT" || true
	fi
	if [ -n "$DAEMON_PID" ]; then
		um_i=0
		while kill -0 "$DAEMON_PID" 2>/dev/null && [ $um_i -lt 300 ]; do sleep 0.1; um_i=$((um_i + 1)); done
		[ $um_i -lt 10 ] || log "relocfs $DAEMON_PID took $((um_i / 10)).$((um_i % 10)) s to exit after the unmount"
		if kill -0 "$DAEMON_PID" 2>/dev/null; then
			log "relocfs $DAEMON_PID still alive 30 s after the unmount; thread states:"
			for t in /proc/$DAEMON_PID/task/*; do
				echo "  $(cat $t/comm) $(awk '{print $3}' $t/stat) $(cat $t/wchan 2>/dev/null)"
			done | sort | uniq -c >&2
			kill -9 "$DAEMON_PID"
		fi
	fi
	[ -n "$RUNDIR" ] && [ "${BENCH_KEEP:-0}" != 1 ] && rm -rf "$RUNDIR"
	MNT= DAEMON_PID= RUNDIR=
}

ctl() { "$RELOCCTL" -m "$MNT" "$@"; }

# ratio A B: A / B with 3 decimals ("n/a" if B is 0 or missing)
ratio() {
	awk -v a="$1" -v b="$2" 'BEGIN { if (b + 0 == 0 || a == "") print "n/a"; else printf "%.3f", a / b }'
}

# verdict VALUE OP TARGET: PASS / MISS
verdict() {
	awk -v v="$1" -v op="$2" -v t="$3" 'BEGIN {
		if (v == "n/a" || v == "") { print "MISS"; exit }
		if (op == ">=") print (v + 0 >= t + 0) ? "PASS" : "MISS";
		else print (v + 0 <= t + 0) ? "PASS" : "MISS" }'
}

# now in seconds with ns resolution
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; }

# make_image PATH SIZE_MIB HOLE_EVERY_MIB: writes SIZE_MIB of random-ish data with a
# 1 MiB hole every HOLE_EVERY_MIB MiB (0: no holes), fsynced
make_image() {
	mi_path=$1 mi_size=$2 mi_every=$3
	rm -f "$mi_path"
	# one 64 MiB random mi_chunk reused for speed (urandom is slow), holes punched after
	mi_chunk=$BENCH_DIR/.chunk
	[ -s "$mi_chunk" ] || dd if=/dev/urandom of="$mi_chunk" bs=1M count=64 status=none
	truncate -s "${mi_size}M" "$mi_path"
	mi_off=0
	while [ $mi_off -lt "$mi_size" ]; do
		mi_n=$((mi_size - mi_off)); [ $mi_n -gt 64 ] && mi_n=64
		dd if="$mi_chunk" of="$mi_path" bs=1M count=$mi_n seek=$mi_off conv=notrunc status=none
		mi_off=$((mi_off + mi_n))
	done
	mi_off=$((mi_every - 1))
	while [ "$mi_every" -gt 0 ] && [ $mi_off -lt "$mi_size" ]; do
		fallocate -p -o "$((mi_off * 1048576))" -l 1048576 "$mi_path"
		mi_off=$((mi_off + mi_every))
	done
	sync "$mi_path"
}

# result file for a part; every part writes its own
result_file() { echo "$BENCH_RESULTS/$BENCH_DATE-$1.txt"; }

# poll_ready: one status poll without jq (jq costs ~0.1 s a call on a loaded host).
# 0 = every file ready or done, 1 = not yet, 2 = a file failed.  Leaves the JSON in $STATUS.
poll_ready() {
	STATUS=$(ctl status --json) || return 1
	states=$(printf '%s' "$STATUS" | grep -o '"state":"[a-z_]*"' | cut -d'"' -f4 | sort -u | tr '\n' ' ')
	case " $states" in
	*" failed "*) return 2 ;;
	" ") return 1 ;;
	" ready "|" done "|" done ready "|" ready done ") return 0 ;;
	*) return 1 ;;
	esac
}
