#!/usr/bin/env bash
# gridengine-down.sh: stop the one-host Grid Engine cell started by
# gridengine-up.sh (execd first, then qmaster) and wait until both are gone.
# Running jobs are lost. Idempotent: nothing running is not an error.
set -euo pipefail

SPOOL=/var/spool/gridengine
TIMEOUT=${GRIDENGINE_DOWN_TIMEOUT:-60}

# stop PIDFILE NAME: TERM the daemon whose pid is in PIDFILE, wait until it is gone.
stop() {
	local pidfile=$1 name=$2 pid
	[ -f "$pidfile" ] || return 0
	pid=$(cat "$pidfile")
	case $pid in '' | *[!0-9]*) return 0 ;; esac
	# Only a process that is the named daemon: pids get reused.
	if ! kill -0 "$pid" 2>/dev/null || ! grep -q "$name" "/proc/$pid/comm" 2>/dev/null; then
		return 0
	fi
	echo "gridengine-down: stopping $name ($pid)" >&2
	kill "$pid"
	local deadline=$((SECONDS + TIMEOUT))
	while kill -0 "$pid" 2>/dev/null; do
		if [ $SECONDS -ge $deadline ]; then
			echo "gridengine-down: $name ($pid) still running after ${TIMEOUT}s, killing it" >&2
			kill -9 "$pid" 2>/dev/null || true
			break
		fi
		sleep 0.2
	done
}

for f in "$SPOOL"/execd/*/execd.pid; do
	[ -e "$f" ] && stop "$f" sge_execd
done
stop "$SPOOL/qmaster/qmaster.pid" sge_qmaster
echo "gridengine-down: Grid Engine stopped" >&2
