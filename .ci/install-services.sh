#!/bin/sh
# Installs the external services and tools the tock test suite runs against
# for real: redis-server (worker/runner redis tests, the benchmark suite),
# rabbitmq-server (worker/runner amqp tests), beanstalkd (the benchmark
# suite, bench/suite), prometheus (its promtool checks /metrics) and
# chromium (renders the status page) and puma, for Puma's pumactl
# (e2e/pumactl_test.go). Nothing is started here: the tests
# start private servers on free loopback ports and stop them (see
# worker/runner/main_test.go, bench/suite/suite_test.go).
#
# Idempotent (does nothing when all are installed) and quiet: apt output is
# shown only if the installation fails.
set -eu

installed() {
	command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ] || [ -x "/usr/bin/$1" ]
}

# Each entry is package:command-it-provides.
need=""
for entry in redis-server:redis-server rabbitmq-server:rabbitmq-server beanstalkd:beanstalkd \
	prometheus:promtool chromium:chromium puma:pumactl; do
	installed "${entry#*:}" || need="$need ${entry%%:*}"
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
