#!/bin/sh
# uring_param.sh on: turn on FUSE over io_uring (the fuse module's
# enable_uring, off by default) where the kernel has it and this user may,
# so that the tests and benchmarks reach both transports; prints what it
# was (Y or N), or nothing if it cannot be read or was not changed.
# uring_param.sh put N: set it back to N, unless a relocfs process still
# runs (another test run's mount, say): the kernel checks the parameter on
# every ring command, so a mount served over io_uring would stop.
P=/sys/module/fuse/parameters/enable_uring
case ${1:-} in
on)
	[ -r "$P" ] || exit 0
	was=$(cat "$P")
	[ "$was" = Y ] && { echo Y; exit 0; }
	if [ -w "$P" ] && { echo 1 >"$P"; } 2>/dev/null && [ "$(cat "$P")" = Y ]; then
		echo "note: FUSE over io_uring turned on for this run ($P)" >&2
		echo N
	fi
	;;
put)
	[ "${2:-}" = N ] && [ -w "$P" ] || exit 0
	if pgrep -x relocfs >/dev/null 2>&1; then
		echo "note: FUSE over io_uring left on: relocfs still runs here ($P)" >&2
	else
		{ echo N >"$P"; } 2>/dev/null
	fi
	;;
*)
	echo "usage: uring_param.sh on | put N" >&2
	exit 2
	;;
esac
exit 0
