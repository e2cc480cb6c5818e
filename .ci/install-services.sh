#!/bin/sh
# Installs the external services the tock test-suite runs against for real:
# redis-server (worker/runner redis tests) and rabbitmq-server (worker/runner
# amqp tests). Services are NOT started here: each test starts its own private
# server on a free loopback port and stops it afterwards.
#
# Idempotent and quiet: does nothing when both binaries are already present.
set -eu

have() { command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ] || [ -x "/usr/lib/rabbitmq/bin/$1" ]; }

if have redis-server && have rabbitmq-server; then
	exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
	SUDO="sudo"
fi

export DEBIAN_FRONTEND=noninteractive
# policy-rc.d exit 101 would stop the postinst from starting the services, but
# Debian's packages start them only where an init system runs; in containers
# and CI there is none, which is what we want. We do not touch policy-rc.d.
$SUDO apt-get update -qq >/dev/null
$SUDO apt-get install -y -qq --no-install-recommends redis-server rabbitmq-server >/dev/null
