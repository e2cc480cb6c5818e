#!/bin/sh
# bench/run.sh [benchkit flags]: the side-by-side benchmark of the README's
# performance section. It installs redis-server and beanstalkd when they
# are missing (apt, as root or with sudo; idempotent), builds tock and the
# suite, and runs the suite, which starts private servers on free loopback
# ports, measures them and stops them, and writes bench/results/results.md,
# results.json and chart.png. Flags go to the suite, e.g. `-quick` (one
# short repetition) or `-targets echo,tock-memory`; `-h` lists them.
#
# Needs Go (PATH or /usr/local/go/bin). Nothing is left running: the apt
# install is made with a policy-rc.d that keeps Debian from starting the
# packages' system services, and every server the suite starts it stops,
# on errors and on Ctrl-C too.
set -eu
cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/local/go/bin"

installed() {
	command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ] || [ -x "/usr/bin/$1" ]
}

# What the script leaves behind is removed on every exit: the temporary
# policy-rc.d (if it made one) and the build directory.
policy=""
tmp=""
cleanup() {
	if [ -n "$policy" ]; then
		$SUDO rm -f "$policy"
	fi
	if [ -n "$tmp" ]; then
		rm -rf "$tmp"
	fi
}
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
	SUDO="sudo"
fi
trap cleanup EXIT
trap 'exit 130' INT TERM

need=""
installed redis-server || need="$need redis-server"
installed beanstalkd || need="$need beanstalkd"
if [ -n "$need" ]; then
	# policy-rc.d exiting 101 tells invoke-rc.d not to start services:
	# the suite runs its own servers and must leave none behind.
	if [ ! -e /usr/sbin/policy-rc.d ]; then
		policy=/usr/sbin/policy-rc.d
		printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$policy" >/dev/null
		$SUDO chmod 755 "$policy"
	fi
	echo "run.sh: installing$need" >&2
	status=0
	{
		$SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -q &&
			$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $need
	} >&2 || status=$?
	if [ -n "$policy" ]; then
		$SUDO rm -f "$policy"
		policy=""
	fi
	if [ "$status" -ne 0 ]; then
		echo "run.sh: installing$need failed" >&2
		exit 1
	fi
fi

tmp=$(mktemp -d)
commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
go build -ldflags "-X main.commit=$commit" -o "$tmp/tock" ./cmd/tock
go build -o "$tmp/benchkit" ./bench/cmd/benchkit

# The suite runs in the background so that this shell can pass on an
# interrupt (a background job of a script ignores SIGINT); it stops its
# servers on SIGTERM.
"$tmp/benchkit" -tock "$tmp/tock" -require-all -command "bench/run.sh${*:+ $*}" "$@" &
pid=$!
trap 'kill -TERM "$pid" 2>/dev/null || true' INT TERM
status=0
wait "$pid" || status=$?
# wait returns early when a trapped signal arrives; wait for the suite to
# finish stopping its servers.
while kill -0 "$pid" 2>/dev/null; do
	wait "$pid" || status=$?
done
exit "$status"
