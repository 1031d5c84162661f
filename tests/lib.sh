# tests/lib.sh: sourced by every integration test (bash).
#
# Gives each test a private directory and a mount of its own:
#   $TEST_DIR   mktemp -d, removed on exit
#   $TEST_SRC   the backing directory ($TEST_DIR/src)
#   $TEST_MNT   the mountpoint ($TEST_DIR/mnt)
#   $TEST_REF   a plain directory: in_both CMD runs CMD there and in the mount
#               and compares exit status and output
#   $RELOCFS_RUNDIR  control sockets ($TEST_DIR/run), exported
#   $RELOCFS, $RELOCCTL, $TOOLS  the binaries under test (RELOCFS_BUILD selects
#               the build directory, default build/; RELOCFS_BIN overrides relocfs)
#   RELOCFS_TRANSPORT=uring|dev|uring-poll  every relocfs this test starts
#               serves over that transport (-o transport=...; uring-poll: over
#               io_uring with -o poll=RELOCFS_POLL_US, default 100); unset:
#               relocfs's default.  relocfs_mount checks that the mount is
#               served so.
#
# A test reads like git's t/ files:
#   test_description='what behaviour this file covers'
#   . "$(dirname "$0")/../lib.sh"
#   relocfs_mount
#   step 'ls -la through the mount lists what the backing directory holds'
#   assert_eq "$(ls_la "$TEST_SRC")" "$(ls_la "$TEST_MNT")" "listing"
#   test_done
#
# Every exit path, including a failed command under set -e and ^C, goes
# through cleanup(): unmount (lazily if it must), end the daemon this test
# started, remove $TEST_DIR.  fail prints the step, expected and actual.
# Mounts a test makes itself below $TEST_DIR (loop filesystems) are undone
# with at_cleanup CMD.  A test that sets its own EXIT trap must call cleanup
# at its end; fail, skip and test_done turn set -e off first, so that such a
# trap runs through even when one of its commands fails.
# Exit status: 0 pass, 1 fail, 77 skip.

set -euo pipefail
export LC_ALL=C

TOPDIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD_DIR=$TOPDIR/${RELOCFS_BUILD:-build}
RELOCFS=${RELOCFS_BIN:-$BUILD_DIR/relocfs}
RELOCCTL=$BUILD_DIR/relocctl
TOOLS=$BUILD_DIR/tests
TEST_NAME=$(basename "$0" .sh)

TEST_DIR=$(mktemp -d "${TMPDIR:-/tmp}/relocfs-$TEST_NAME.XXXXXX")
TEST_DIR=$(realpath "$TEST_DIR")
TEST_SRC=$TEST_DIR/src
TEST_MNT=$TEST_DIR/mnt
RELOCFS_RUNDIR=$TEST_DIR/run
export RELOCFS_RUNDIR
mkdir -p "$TEST_SRC" "$TEST_MNT" "$RELOCFS_RUNDIR"
printf '# %s: %s\n' "$TEST_NAME" "${test_description:-}"

CLEANUP_HOOKS=()		# commands for cleanup(), see at_cleanup
RELOCFS_PID=			# daemon started by relocfs_mount -f in background
RELOCFS_MOUNTED=		# mountpoint of the current mount
CURRENT_STEP='(set-up)'
STEPS=0
REPORTED=			# a failure message has been printed
TEST_REF=$TEST_DIR/ref		# plain directory: what the mount must behave like
mkdir -p "$TEST_REF"

# ---------------------------------------------------------------------------
# reporting

say() { printf '%s\n' "$*"; }

step() {
	CURRENT_STEP=$1
	STEPS=$((STEPS + 1))
	say "--- step $STEPS: $1"
}

fail() {
	trap - ERR
	REPORTED=1
	say "FAIL: $TEST_NAME: step $STEPS: $CURRENT_STEP"
	say "  $*"
	show_daemon_log
	set +e
	exit 1
}

skip() {
	trap - ERR
	say "SKIP: $TEST_NAME: $*"
	set +e
	exit 77
}

test_done() {
	say "ok: $TEST_NAME: $STEPS steps"
	set +e
	exit 0
}

# assert_eq EXPECTED ACTUAL [WHAT]
assert_eq() {
	if [ "$1" != "$2" ]; then
		trap - ERR
		REPORTED=1
		say "FAIL: $TEST_NAME: step $STEPS: $CURRENT_STEP"
		say "  ${3:-values differ}"
		say "  expected:"
		printf '%s\n' "$1" | sed 's/^/    | /'
		say "  actual:"
		printf '%s\n' "$2" | sed 's/^/    | /'
		if [ "$(printf '%s\n' "$1" | wc -l)" -gt 3 ]; then
			say "  diff (expected -> actual):"
			diff <(printf '%s\n' "$1") <(printf '%s\n' "$2") | sed 's/^/    /' || true
		fi
		show_daemon_log
		set +e
		exit 1
	fi
}

# untrapped CMD...: run CMD with set -e and the ERR trap off (for $(...))
untrapped() {
	trap - ERR
	set +e
	"$@"
}

# in_both CMD...: run CMD with the plain directory $TEST_REF as working
# directory, then with $TEST_MNT; exit status and output (stdout and stderr)
# must be the same.  The mount's output is left in $OUT.
in_both() {
	local ref mnt rcr=0 rcm=0
	ref=$(cd "$TEST_REF" && untrapped "$@" 2>&1) || rcr=$?
	mnt=$(cd "$TEST_MNT" && untrapped "$@" 2>&1) || rcm=$?
	assert_eq "$ref [exit $rcr]" "$mnt [exit $rcm]" \
		"'$*' in a plain directory (expected) and in the mount (actual)"
	OUT=$mnt
}

# expect_fail CMD...: the command must fail; its stderr is kept in $ERR_OUT
expect_fail() {
	if "$@" 2>"$TEST_DIR/expect_fail.err"; then
		fail "expected failure, but succeeded: $*"
	fi
	ERR_OUT=$(cat "$TEST_DIR/expect_fail.err")
}

on_err() {
	local rc=$1 line=$2 cmd=$3
	trap - ERR
	REPORTED=1
	say "FAIL: $TEST_NAME: step $STEPS: $CURRENT_STEP"
	say "  command failed (exit $rc) at ${BASH_SOURCE[1]##*/}:$line: $cmd"
	show_daemon_log
	set +e
	exit 1
}
trap 'on_err $? $LINENO "$BASH_COMMAND"' ERR

show_daemon_log() {
	if [ -s "$TEST_DIR/relocfs.log" ]; then
		say "  relocfs stderr (last 20 lines):"
		tail -n 20 "$TEST_DIR/relocfs.log" | sed 's/^/    | /'
	fi
}

# ---------------------------------------------------------------------------
# preconditions

require_cmd() {
	local c
	for c in "$@"; do
		command -v "$c" >/dev/null 2>&1 || skip "'$c' is not installed (run tests/deps.sh)"
	done
}

require_root() {
	[ "$(id -u)" = 0 ] || skip "needs root"
}

require_daemon() {
	[ -x "$RELOCFS" ] || fail "'$RELOCFS' is not built (run make)"
	[ -c /dev/fuse ] || skip "/dev/fuse is missing"
	command -v fusermount3 >/dev/null || skip "fusermount3 is not installed"
}

require_tool() {
	local t
	for t in "$@"; do
		[ -x "$TOOLS/$t" ] || fail "'$TOOLS/$t' is not built (run make)"
	done
}

# ---------------------------------------------------------------------------
# mounts

# is_mounted DIR: DIR is a FUSE mountpoint in our namespace
is_mounted() {
	awk -v m="$1" '$5 == m { for (i = 7; i <= NF; i++) if ($i == "-") { print $(i + 1); exit } }' \
		/proc/self/mountinfo | grep -q '^fuse'
}

# wait_until SECONDS CMD...: poll CMD every 0.05 s; a hang guard, not a timing check
wait_until() {
	local limit=$(($1 * 20)) i=0
	shift
	while ! "$@"; do
		i=$((i + 1))
		[ $i -lt $limit ] || return 1
		sleep 0.05
	done
}

# free_ports FIRST LAST N [OFFSET]: the first of N consecutive TCP ports in
# FIRST..LAST-1 that nothing on this machine listens on, searched from a
# start derived from our pid (plus OFFSET), so that tests running side by
# side start apart.  Each kind of server the tests start has a range of its
# own, all below the kernel's ephemeral ports (32768 and up on Debian), which
# outgoing connections take and a listener then cannot bind:
#   20000-23999 sshd (tests/host)      24000-27999 QEMU -incoming
#   28000-32759 Ceph (blocks of ten)
# A listener can still lose a port to another test between the pick and its
# bind: the callers retry on a bind failure.
free_ports() {
	local first=$1 last=$2 n=$3 span slots slot tries used p ok
	span=$((last - first))
	slots=$((span / n))
	slot=$((($$ + ${4:-0}) % slots))
	used=" $(ss -Htanl 2>/dev/null | awk '{ k = split($4, a, ":"); printf "%s ", a[k] }')"
	for ((tries = 0; tries < slots; tries++)); do
		ok=1
		for ((p = first + slot * n; p < first + slot * n + n; p++)); do
			case $used in *" $p "*) ok=0; break ;; esac
		done
		if [ $ok = 1 ]; then
			echo $((first + slot * n))
			return 0
		fi
		slot=$(((slot + 1) % slots))
	done
	return 1
}

# relocfs_mount [OPTION...]: serve $TEST_SRC at $TEST_MNT, in the foreground
# (-f) in the background so that the test knows the daemon's pid
relocfs_mount() {
	require_daemon
	[ -z "$RELOCFS_MOUNTED" ] || fail "relocfs_mount: already mounted"
	"$RELOCFS" -f $(transport_opt) "$@" "$TEST_SRC" "$TEST_MNT" >>"$TEST_DIR/relocfs.log" 2>&1 &
	RELOCFS_PID=$!
	RELOCFS_MOUNTED=$TEST_MNT
	if ! wait_until 20 mount_or_died "$TEST_MNT"; then
		fail "relocfs did not mount '$TEST_MNT' within 20 s"
	fi
	if ! is_mounted "$TEST_MNT"; then
		local rc=0
		wait "$RELOCFS_PID" || rc=$?
		RELOCFS_PID= RELOCFS_MOUNTED=
		fail "relocfs $* '$TEST_SRC' '$TEST_MNT' exited with status $rc before mounting"
	fi
	check_transport "$TEST_MNT"
}

# transport_opt: the -o option RELOCFS_TRANSPORT asks for (none if unset)
transport_opt() {
	case ${RELOCFS_TRANSPORT:-} in
	'') ;;
	uring|dev) printf '%s\n' -o "transport=$RELOCFS_TRANSPORT" ;;
	uring-poll) printf '%s\n' -o transport=uring -o "poll=${RELOCFS_POLL_US:-100}" ;;
	*) fail "RELOCFS_TRANSPORT=$RELOCFS_TRANSPORT is not uring, dev or uring-poll" ;;
	esac
}

# check_transport MNT: with RELOCFS_TRANSPORT set, the mount at MNT is
# served over it (status --json), so that a suite run for one transport
# cannot pass on the other
check_transport() {
	local got i want=${RELOCFS_TRANSPORT:-} poll=0
	[ -n "$want" ] || return 0
	[ "$want" != uring-poll ] || want=uring poll=${RELOCFS_POLL_US:-100}
	for i in $(seq 100); do
		got=$("$RELOCCTL" -m "$1" status --json 2>/dev/null |
		      jq -r '(.transport // empty) + " " + (.poll_us | tostring)' 2>/dev/null) || true
		[ "${got% *}" = "" ] || break
		sleep 0.05
	done
	assert_eq "$want $poll" "$got" "transport and polling serving '$1' (status --json)"
}

mount_or_died() {
	is_mounted "$1" || ! kill -0 "$RELOCFS_PID" 2>/dev/null
}

# relocfs_umount: unmount and check that the daemon exits with status 0
relocfs_umount() {
	local mnt=${RELOCFS_MOUNTED:-$TEST_MNT} rc=0 i
	for i in 1 2 3 4 5 6 7 8 9 10; do
		fusermount3 -u "$mnt" 2>"$TEST_DIR/umount.err" && break
		[ $i -lt 10 ] || fail "fusermount3 -u '$mnt': $(cat "$TEST_DIR/umount.err")"
		sleep 0.2
	done
	RELOCFS_MOUNTED=
	if [ -n "$RELOCFS_PID" ]; then
		wait "$RELOCFS_PID" || rc=$?
		RELOCFS_PID=
		[ $rc = 0 ] || fail "relocfs exited with status $rc after unmount"
	fi
	! is_mounted "$mnt" || fail "'$mnt' is still mounted after fusermount3 -u"
}

# at_cleanup CMD...: run CMD when the test exits, after the FUSE mounts are
# gone and before $TEST_DIR is removed (last registered, first run); for
# what a test mounts below $TEST_DIR itself, e.g. a loop filesystem
at_cleanup() {
	local q
	printf -v q '%q ' "$@"
	CLEANUP_HOOKS+=("$q")
}

# pids of relocfs processes (by name, or the binary under test) whose
# command line names this test's directory
leftover_daemons() {
	local p cmd comm args
	# builtins only: two processes forked per process listed took minutes
	# on a loaded machine
	for p in /proc/[0-9]*; do
		{ read -r comm <"$p/comm"; } 2>/dev/null || continue
		{ mapfile -d '' args <"$p/cmdline"; } 2>/dev/null || continue
		cmd="${args[*]}"
		[ "$comm" = relocfs ] || [ "${args[0]:-}" = "$RELOCFS" ] || continue
		case $cmd in *" $TEST_DIR/"*) echo "${p#/proc/}" ;; esac
	done
}

cleanup() {
	# inside a trap, BASH_COMMAND is still the command the trap came from
	local rc=$? m p last=$BASH_COMMAND
	trap - ERR EXIT INT TERM
	set +e
	if [ $rc != 0 ] && [ $rc != 77 ] && [ -z "$REPORTED" ]; then
		# set -e ended the test inside a function or subshell
		say "FAIL: $TEST_NAME: step $STEPS: $CURRENT_STEP"
		say "  a command failed (exit $rc): $last"
		show_daemon_log
	fi
	cd /
	# every FUSE mount under our directory, innermost first
	for m in $(awk -v d="$TEST_DIR/" 'index($5, d) == 1 && / - fuse/ { print $5 }' /proc/self/mountinfo | sort -r); do
		fusermount3 -u "$m" 2>/dev/null || fusermount3 -uz "$m" 2>/dev/null
	done
	if [ -n "$RELOCFS_PID" ]; then
		wait_until 5 eval '! kill -0 $RELOCFS_PID 2>/dev/null'
		kill "$RELOCFS_PID" 2>/dev/null
	fi
	for p in $(leftover_daemons); do
		[ "$p" = $$ ] || kill "$p" 2>/dev/null
	done
	for ((p = ${#CLEANUP_HOOKS[@]} - 1; p >= 0; p--)); do
		eval "${CLEANUP_HOOKS[p]}"
	done
	if [ $rc != 0 ] && [ $rc != 77 ] && [ -n "${RELOCFS_TEST_KEEP:-}" ]; then
		say "  kept for a look: $TEST_DIR"
	else
		rm -rf --one-file-system "$TEST_DIR"
	fi
	exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---------------------------------------------------------------------------
# comparing trees

# tree_listing DIR: one line per entry below DIR, .relocfs at the top ignored:
# path, type, mode, size (not for directories), owner, link target
tree_listing() {
	(cd "$1" && find . -path ./.relocfs -prune -o -mindepth 1 \
		\( -type d -printf '%P %y %m - %U:%G\n' \) -o \
		-printf '%P %y %m %s %U:%G %l\n') | sort
}

# compare_trees A B: same entries, modes, sizes, owners, link targets and
# file contents, .relocfs at the top of either ignored
compare_trees() {
	local a=$1 b=$2 f
	assert_eq "$(tree_listing "$a")" "$(tree_listing "$b")" "trees '$a' and '$b' differ"
	while IFS= read -r f; do
		cmp -s "$a/$f" "$b/$f" || fail "contents of '$f' differ: $(cmp "$a/$f" "$b/$f" 2>&1)"
	done < <(cd "$a" && find . -path ./.relocfs -prune -o -type f -printf '%P\n')
}

# ls_la DIR: ls -la without the total line, the . and .. entries' sizes
# and .relocfs; times at full resolution
ls_la() {
	ls -la --time-style=+%s.%N "$1" | awk '$NF != ".relocfs" && $1 != "total"' |
		awk '$NF == "." || $NF == ".." { $5 = "-" } { print }'
}
