#!/bin/sh
# Installs the external services the tock test suite runs against for real:
# redis-server (worker/runner redis tests, the benchmark suite's smoke test),
# rabbitmq-server (worker/runner amqp tests) and beanstalkd (the benchmark
# suite's smoke test, bench/suite). Nothing is started here: the tests start
# private servers on free loopback ports and stop them (see
# worker/runner/main_test.go, bench/suite/suite_test.go).
#
# Idempotent (does nothing when all are installed) and quiet: apt output is
# shown only if the installation fails.
set -eu

installed() {
	command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ] || [ -x "/usr/bin/$1" ]
}

need=""
for p in redis-server rabbitmq-server beanstalkd; do
	installed "$p" || need="$need $p"
done
if [ -z "$need" ]; then
	exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
	SUDO="sudo"
fi

log=$(mktemp)
trap 'rm -f "$log"' EXIT
if ! {
	$SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -q &&
		$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $need
} >"$log" 2>&1; then
	cat "$log" >&2
	echo "install-services.sh: installing$need failed" >&2
	exit 1
fi
