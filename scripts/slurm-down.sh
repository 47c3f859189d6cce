#!/bin/bash
# slurm-down.sh: stop what scripts/slurm-up.sh started, by pid files, in
# order: slurmd, slurmctld, slurmdbd, MariaDB, munged. Jobs still running
# are killed with slurmd. Missing daemons are not an error.
set -uo pipefail

stop_pid() { # stop_pid PIDFILE NAME
	local f=$1 name=$2 pid
	[ -s "$f" ] || return 0
	pid=$(cat "$f")
	if kill -0 "$pid" 2>/dev/null; then
		kill "$pid"
		for _ in $(seq 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
		if kill -0 "$pid" 2>/dev/null; then
			echo "slurm-down.sh: $name ($pid) did not stop; SIGKILL" >&2
			kill -9 "$pid" 2>/dev/null
		fi
	fi
	rm -f "$f"
}

stop_pid /run/slurmd.pid slurmd
stop_pid /run/slurmctld.pid slurmctld
stop_pid /run/slurmdbd.pid slurmdbd
if command -v mysqladmin >/dev/null && mysqladmin ping >/dev/null 2>&1; then
	mysqladmin shutdown || echo "slurm-down.sh: mysqladmin shutdown failed" >&2
fi
stop_pid /run/munge/munged.pid munged
rm -f /run/somaflow-slurm.mode
echo "slurm-down.sh: stopped"
