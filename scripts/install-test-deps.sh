#!/usr/bin/env bash
# Installs the real daemons and tools that the integration tests drive, from Debian's packages,
# when they are missing: logrotate (rolling-file tests), rsyslog and rsyslog-relp (syslog writer
# tests: each test starts its own unprivileged rsyslogd in a temp dir), gzip (archive checks).
# Nothing is started here; the tests start and stop their own instances.
set -euo pipefail

need=()
command -v logrotate >/dev/null 2>&1 || need+=(logrotate)
command -v rsyslogd >/dev/null 2>&1 || need+=(rsyslog)
command -v gzip >/dev/null 2>&1 || need+=(gzip)
# imrelp/omrelp are rsyslog modules shipped by rsyslog-relp.
if ! compgen -G '/usr/lib/*/rsyslog/imrelp.so' >/dev/null && [ ! -e /usr/lib/rsyslog/imrelp.so ]; then
    need+=(rsyslog-relp)
fi
[ ${#need[@]} -eq 0 ] && exit 0

echo "install-test-deps: installing ${need[*]}" >&2
sudo=""
if [ "$(id -u)" -ne 0 ]; then
    sudo="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
# --no-install-recommends keeps the machine's own syslog setup out of it; policy-rc.d stops
# the packages from starting a system-wide rsyslogd.
if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' | $sudo tee /usr/sbin/policy-rc.d >/dev/null
    $sudo chmod +x /usr/sbin/policy-rc.d
    trap '$sudo rm -f /usr/sbin/policy-rc.d' EXIT
fi
$sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
