#!/bin/bash
test_description='hostile control clients (oversized, truncated, malformed, garbage, slow, half-closed, idle, a flood, another uid) get a refusal or nothing; the daemon stays alive, keeps serving relocctl and the mount, and holds no extra file descriptors afterwards'
. "$(dirname "$0")/../lib.sh"

require_tool ctlpoke
POKE=$TOOLS/ctlpoke
POKE_PIDS=()			# background ctlpoke processes, ended by poke_cleanup
OTHER_UID=1234

poke_cleanup() {
	local rc=$? p
	trap - ERR
	set +e
	for p in "${POKE_PIDS[@]}"; do
		kill "$p" 2>/dev/null
	done
	for p in "${POKE_PIDS[@]}"; do
		wait "$p" 2>/dev/null
	done
	poke_set_rc "$rc"
	cleanup
}
poke_set_rc() { return "$1"; }
trap poke_cleanup EXIT

relocfs_mount

# the daemon's socket: the only one in our private run directory
socks=("$RELOCFS_RUNDIR"/*.sock)
[ ${#socks[@]} = 1 ] && [ -S "${socks[0]}" ] || fail "expected one socket in '$RELOCFS_RUNDIR', found: ${socks[*]}"
SOCK=${socks[0]}

# healthy AFTER: the daemon is alive, "relocctl status" answers, and a file
# written through the mount reads back (through the mount and underneath)
CHECKS=0
healthy() {
	local out rc=0 want
	CHECKS=$((CHECKS + 1))
	kill -0 "$RELOCFS_PID" 2>/dev/null || fail "the daemon died after $1"
	is_mounted "$TEST_MNT" || fail "'$TEST_MNT' is no longer mounted after $1"
	out=$(untrapped timeout 30 "$RELOCCTL" -s "$SOCK" status 2>&1) || rc=$?
	[ "$rc" = 0 ] || fail "relocctl status after $1: exit $rc: $out"
	case $out in "serving: $TEST_SRC"*) ;; *) fail "relocctl status after $1 says: $out" ;; esac
	want="check $CHECKS after $1"
	printf '%s\n' "$want" >"$TEST_MNT/check.txt"
	assert_eq "$want" "$(cat "$TEST_MNT/check.txt")" "file written through the mount, read back after $1"
	assert_eq "$want" "$(cat "$TEST_SRC/check.txt")" "file written through the mount, read underneath after $1"
}

# poke WANT MODE [ARG]: ctlpoke's one line must match the glob WANT; then
# the daemon must be healthy
poke() {
	local want=$1 out rc=0
	shift
	out=$(untrapped timeout 120 "$POKE" "$SOCK" "$@" 2>&1) || rc=$?
	say "  ctlpoke $*: $out"
	[ "$rc" = 0 ] || fail "ctlpoke $* exited with $rc: $out"
	[ "$(printf '%s\n' "$out" | wc -l)" = 1 ] || fail "ctlpoke $*: expected one line, got: $out"
	# shellcheck disable=SC2053
	[[ $out == $want ]] || fail "ctlpoke $*: expected a line like '$want', got: $out"
	healthy "ctlpoke $*"
}

# refused RC PATTERN CMD...: CMD exits with RC and prints one line on stderr
# that matches the glob PATTERN, nothing on stdout.  Death by SIGPIPE is
# noted in $SIGPIPED and failed at the end.
SIGPIPED=
refused() {
	local want=$1 pat=$2 rc=0 out err
	shift 2
	out=$(untrapped timeout 30 "$@" 2>"$TEST_DIR/refused.err") || rc=$?
	err=$(cat "$TEST_DIR/refused.err")
	say "  $*: exit $rc: $err"
	if [ "$rc" = 141 ]; then
		# the daemon replied and closed before relocctl had sent its
		# request: judged at the end, so that the other steps still run
		SIGPIPED+="
    $*"
		return 0
	fi
	[ "$rc" = "$want" ] || fail "expected exit $want, got $rc from: $* (stderr: $err)"
	[ -n "$err" ] && [ "$(printf '%s\n' "$err" | wc -l)" = 1 ] ||
		fail "expected one line on stderr from: $*, got: $err"
	# shellcheck disable=SC2053
	[[ $err == $pat ]] || fail "stderr of '$*' does not match '$pat': $err"
	[ -z "$out" ] || fail "unexpected output on stdout from $*: $out"
}

fd_count() { find "/proc/$RELOCFS_PID/fd" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l; }
# ctl_clients: control connections the daemon holds (accepted sockets on
# $SOCK among its descriptors; a connection still in the listen backlog or
# another descriptor coming and going, such as a backing file's, is not one)
ctl_clients() {
	find "/proc/$RELOCFS_PID/fd" -mindepth 1 -maxdepth 1 -lname 'socket:*' -printf '%l\n' 2>/dev/null |
		sed 's/^socket:\[\(.*\)\]$/\1/' |
		awk -v path="$SOCK" 'NR == FNR { mine[$1]; next }
			$6 == "03" && $8 == path && ($7 in mine) { n++ } END { print n + 0 }' - /proc/net/unix
}

step 'the socket is 0600, owned by the daemon user, and answers relocctl -m and -s'
assert_eq "600 $(id -u)" "$(stat -c '%a %u' "$SOCK")" "mode and owner of '$SOCK'"
ctl_m=$("$RELOCCTL" -m "$TEST_MNT" status)
case $ctl_m in "serving: $TEST_SRC"*) ;; *) fail "relocctl -m status says: $ctl_m" ;; esac
healthy "mount"
FDS=$(fd_count)
say "  daemon holds $FDS file descriptors"

step 'well-formed requests: status, a half-closed client, an unknown command'
poke "status: reply 0 'serving: $TEST_SRC*'" status
poke "halfclose: reply 0 'serving: $TEST_SRC*'" halfclose
poke "unknown: reply 2 'unknown command 'frobnicate''" unknown

step 'bad headers are refused before any payload is read'
poke "badmagic: reply 2 'bad request header'" badmagic
poke "badversion: reply 2 'bad request header'" badversion
poke "badtype: reply 2 'bad request header'" badtype
big="reply 2 'request too large'"
poke "oversized: len=65537 $big; len=65537+data $big; len=2147483648 $big; len=2147483648+data $big; len=4294967295 $big; len=4294967295+data $big" oversized
poke "oversized: len=65536 EOF; len=65536+data reply 2 'malformed request'" oversized 65536

step 'bad payloads: no final NUL, empty, too many arguments, cut short'
poke "noterm: reply 2 'malformed request'" noterm
poke "empty: reply 2 'malformed request'" empty
poke "manyargs: reply 2 'malformed request'" manyargs
poke "truncated: EOF" truncated

step 'random bytes: a short message is dropped, a long one refused by its header'
for n in 0 1 15; do
	CTLPOKE_SEED=$n poke "garbage $n (seed $n): EOF" garbage "$n"
done
for n in 16 100 4096 70000 1000000; do
	CTLPOKE_SEED=$n poke "garbage $n (seed $n): reply 2 'bad request header'" garbage "$n"
done

step 'a slow client (one byte per 200 ms) is served'
poke "slow: reply 0 'serving: $TEST_SRC*'" slow

step 'an idle client does not hold up others, and is dropped after the idle timeout'
"$POKE" "$SOCK" idle 30 >"$TEST_DIR/idle.out" 2>&1 &
POKE_PIDS+=($!)
idle_pid=$!
sleep 0.5
t0=$(date +%s%N)
healthy "an idle client connected"
# 15 slots are left: some of 20 at once may be told "busy", none get less
poke "flood 20: [1-9]* ok, * busy, 0 other, 0 eof, 0 error, 0 noconnect" flood 20
elapsed_ms=$((($(date +%s%N) - t0) / 1000000))
[ "$elapsed_ms" -lt 5000 ] || fail "other clients took $elapsed_ms ms while one was idle"
kill -0 "$idle_pid" 2>/dev/null || fail "the idle client ended early: $(cat "$TEST_DIR/idle.out")"
wait "$idle_pid" || fail "ctlpoke idle failed: $(cat "$TEST_DIR/idle.out")"
POKE_PIDS=()
idle=$(cat "$TEST_DIR/idle.out")
say "  $idle"
[[ $idle =~ ^idle:\ EOF\ after\ ([0-9]+)\.[0-9]\ s$ ]] || fail "idle client: expected EOF, got: $idle"
secs=${BASH_REMATCH[1]}
[ "$secs" -ge 9 ] && [ "$secs" -le 15 ] || fail "idle client dropped after $secs s, expected about 10"
healthy "an idle client was dropped"

step '200 concurrent clients: each gets status or "busy", nothing else'
out=$("$POKE" "$SOCK" flood 200)
say "  $out"
[[ $out =~ ^flood\ 200:\ ([0-9]+)\ ok,\ ([0-9]+)\ busy,\ 0\ other,\ 0\ eof,\ 0\ error,\ 0\ noconnect$ ]] ||
	fail "flood 200: $out"
assert_eq 200 $((BASH_REMATCH[1] + BASH_REMATCH[2])) "replies ok + busy"
healthy "flood 200"

step 'with every slot held by idle clients, others are told "busy"; the slots come back'
wait_until 10 eval '[ "$(ctl_clients)" -eq 0 ]' || fail "the daemon still holds $(ctl_clients) control connections"
for i in $(seq 1 16); do
	"$POKE" "$SOCK" idle 30 >"$TEST_DIR/idle.$i" 2>&1 &
	POKE_PIDS+=($!)
done
# wait until the daemon has accepted all 16 (asking it with another client
# could take a slot from one of them)
wait_until 10 eval '[ "$(ctl_clients)" -ge 16 ]' ||
	fail "the daemon took $(ctl_clients) of 16 idle clients within 10 s"
out=$("$POKE" "$SOCK" flood 20)
say "  $out"
assert_eq "flood 20: 0 ok, 20 busy, 0 other, 0 eof, 0 error, 0 noconnect" "$out" "flood while the daemon is full"
# relocctl against a full daemon: one line, exit 1.  The daemon closes right
# after "busy"; relocctl may still be sending its request then.  Judged at
# the end, so that one run reports the other steps too.
busy_rcs= busy_bad=
for i in $(seq 1 20); do
	rc=0
	"$RELOCCTL" -s "$SOCK" status >/dev/null 2>"$TEST_DIR/busy.err" || rc=$?
	busy_rcs+=" $rc"
	busy_err=$(cat "$TEST_DIR/busy.err")
	if [ "$rc" != 1 ] || [ "$busy_err" != "relocctl: daemon busy: too many control connections" ]; then
		busy_bad="try $i: exit $rc, stderr: '$busy_err'"
	fi
done
say "  relocctl status against a full daemon, exit statuses:$busy_rcs"
for p in "${POKE_PIDS[@]}"; do
	wait "$p" || fail "ctlpoke idle failed"
done
POKE_PIDS=()
for i in $(seq 1 16); do
	case $(cat "$TEST_DIR/idle.$i") in
	"idle: EOF after "*) ;;
	*) fail "idle client $i: $(cat "$TEST_DIR/idle.$i")" ;;
	esac
done
healthy "16 idle clients were dropped"

step 'relocctl usage errors exit 2 with one line'
refused 2 "relocctl: unknown command 'frobnicate'" "$RELOCCTL" -s "$SOCK" frobnicate
refused 2 "relocctl: unknown option '--bogus'*" "$RELOCCTL" --bogus -s "$SOCK" status
refused 2 "relocctl: unknown option '--bogus' for 'status'" "$RELOCCTL" -s "$SOCK" status --bogus
refused 2 "relocctl: option '--to' does not apply to 'status'" "$RELOCCTL" -s "$SOCK" status --to /tmp
healthy "usage errors"

step 'a client of another uid is refused'
if [ "$(id -u)" != 0 ] || ! command -v setpriv >/dev/null 2>&1; then
	say "  not root or no setpriv: cannot run a client of another uid; not tested"
else
	# let uid $OTHER_UID reach the socket file, so that its mode is what refuses it
	chmod 711 "$TEST_DIR" "$RELOCFS_RUNDIR"
	as_other=(setpriv --reuid "$OTHER_UID" --regid "$OTHER_UID" --clear-groups)
	refused 1 "relocctl: cannot reach the relocfs daemon at '$SOCK': Permission denied" \
		"${as_other[@]}" "$RELOCCTL" -s "$SOCK" status
	# with CAP_DAC_OVERRIDE the socket's mode lets it in: the daemon's
	# SO_PEERCRED check must refuse it
	if setpriv --help 2>&1 | grep -q -- --ambient-caps; then
		as_other_dac=("${as_other[@]}" --inh-caps +dac_override --ambient-caps +dac_override)
		refused 1 "relocctl: permission denied: not the daemon's user" \
			"${as_other_dac[@]}" "$RELOCCTL" -s "$SOCK" status
		refused 1 "relocctl: permission denied: not the daemon's user" \
			"${as_other_dac[@]}" "$RELOCCTL" -s "$SOCK" migrate --to "$TEST_DIR/dst"
		[ ! -e "$TEST_DIR/dst" ] || fail "a migrate from uid $OTHER_UID created '$TEST_DIR/dst'"
		out=$("${as_other_dac[@]}" "$POKE" "$SOCK" oversized)
		say "  ctlpoke oversized as uid $OTHER_UID: $out"
		[ "$(grep -o "reply 1 'permission denied: not the daemon's user'" <<<"$out" | wc -l)" = 6 ] ||
			fail "oversized requests from uid $OTHER_UID: $out"
	else
		say "  setpriv has no --ambient-caps: the SO_PEERCRED check is not reached; not tested"
	fi
	chmod 700 "$TEST_DIR"
	healthy "clients of uid $OTHER_UID"
fi

step 'the daemon holds no more file descriptors than before'
wait_until 10 eval '[ "$(fd_count)" -le "$FDS" ]' ||
	fail "the daemon holds $(fd_count) file descriptors, $FDS before the hostile clients: $(ls -l "/proc/$RELOCFS_PID/fd")"

step 'unmount: the daemon exits 0 and removes its socket'
relocfs_umount
[ ! -e "$SOCK" ] || fail "'$SOCK' is still there after unmount"

step 'relocctl, refused by the daemon, printed one line and exited 1 every time (steps 9, 11)'
[ -z "$busy_bad" ] ||
	fail "against a full daemon: exit statuses:$busy_rcs; last bad: $busy_bad"
[ -z "$SIGPIPED" ] ||
	fail "killed by SIGPIPE (exit 141) without a message:$SIGPIPED"
test_done
