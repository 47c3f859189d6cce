#!/bin/bash
# slurm-up.sh [--accounting]: start a one-node Slurm cluster on this machine
# (munge + slurmctld + slurmd; with --accounting also MariaDB + slurmdbd, so
# that sacct answers) from Debian's packages, which must be installed
# (scripts/ci-slurm.sh installs them). Run as root. Idempotent: daemons that
# already run are kept, unless the accounting mode changes, in which case
# slurmctld and slurmd are restarted with the new configuration.
#
# Environment: SLURM_MIN_JOB_AGE (default 10: finished jobs leave squeue
# quickly, so that tests of the purge fallback are quick).
# Waits until the node is idle; exits non-zero (with the logs) otherwise.
set -euo pipefail

accounting=no
for a in "$@"; do
	case $a in
	--accounting) accounting=yes ;;
	-h | --help)
		sed -n '2,10p' "$0"
		exit 0
		;;
	*)
		echo "slurm-up.sh: unknown argument $a" >&2
		exit 2
		;;
	esac
done
[ "$(id -u)" = 0 ] || {
	echo "slurm-up.sh: must run as root" >&2
	exit 2
}
for c in munged slurmctld slurmd sinfo; do
	command -v $c >/dev/null || {
		echo "slurm-up.sh: $c not found (apt-get install slurmctld slurmd slurm-client munge)" >&2
		exit 2
	}
done

min_job_age=${SLURM_MIN_JOB_AGE:-10}
mode_file=/run/somaflow-slurm.mode

alive() { # alive PIDFILE
	[ -s "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null
}

wait_for() { # wait_for SECONDS DESCRIPTION COMMAND...
	local n=$(($1 * 10)) what=$2
	shift 2
	while ! "$@" >/dev/null 2>&1; do
		n=$((n - 1))
		if [ $n -le 0 ]; then
			echo "slurm-up.sh: timed out waiting for $what" >&2
			return 1
		fi
		sleep 0.1
	done
}

stop_pid() { # stop_pid PIDFILE
	if alive "$1"; then
		local pid
		pid=$(cat "$1")
		kill "$pid"
		for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
		kill -9 "$pid" 2>/dev/null || true
	fi
	rm -f "$1"
}

dump_logs() {
	for f in /var/log/slurm/slurmctld.log /var/log/slurm/slurmd.log /var/log/slurm/slurmdbd.log; do
		[ -f "$f" ] && { echo "== $f"; tail -n 30 "$f"; }
	done >&2
}
trap 'dump_logs' ERR

# 1. munge
if ! alive /run/munge/munged.pid; then
	install -d -o munge -g munge -m 755 /run/munge
	[ -s /etc/munge/munge.key ] || {
		dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key 2>/dev/null
		chown munge:munge /etc/munge/munge.key
		chmod 400 /etc/munge/munge.key
	}
	runuser -u munge -- /usr/sbin/munged
fi
wait_for 10 munged sh -c 'munge -n | unmunge'

mkdir -p /var/lib/slurm/slurmctld /var/lib/slurm/slurmd /var/log/slurm /etc/slurm

# 2. accounting: MariaDB + slurmdbd
if [ $accounting = yes ]; then
	command -v slurmdbd >/dev/null && command -v mysqld_safe >/dev/null || {
		echo "slurm-up.sh: --accounting needs slurmdbd and mariadb-server" >&2
		exit 2
	}
	if ! mysqladmin ping >/dev/null 2>&1; then
		install -d -o mysql -g mysql /run/mysqld
		setsid mysqld_safe >/var/log/slurm/mysqld_safe.log 2>&1 </dev/null &
		wait_for 60 mariadb mysqladmin ping
	fi
	mysql -u root <<'SQL'
CREATE DATABASE IF NOT EXISTS slurm_acct_db;
CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY 'somaflow-slurmdbd';
GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost';
FLUSH PRIVILEGES;
SQL
	umask 077
	cat >/etc/slurm/slurmdbd.conf <<'EOF'
AuthType=auth/munge
DbdHost=localhost
SlurmUser=root
StorageType=accounting_storage/mysql
StorageHost=localhost
StorageUser=slurm
StoragePass=somaflow-slurmdbd
StorageLoc=slurm_acct_db
LogFile=/var/log/slurm/slurmdbd.log
PidFile=/run/slurmdbd.pid
EOF
	umask 022
	chmod 600 /etc/slurm/slurmdbd.conf
	if ! alive /run/slurmdbd.pid; then
		slurmdbd
	fi
	acct_lines="AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost"
else
	acct_lines="AccountingStorageType=accounting_storage/none"
fi

# 3. slurm.conf (rewritten every time; daemons restarted if the mode changed)
conf=$(
	cat <<EOF
# Written by somaflow scripts/slurm-up.sh: a one-node test cluster.
ClusterName=somaflow
SlurmctldHost=localhost
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
ReturnToService=2
StateSaveLocation=/var/lib/slurm/slurmctld
SlurmdSpoolDir=/var/lib/slurm/slurmd
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
SchedulerType=sched/backfill
SchedulerParameters=batch_sched_delay=0,sched_min_interval=0
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=100
SlurmdParameters=config_overrides
MinJobAge=$min_job_age
KillWait=2
InactiveLimit=0
Waittime=0
MailProg=/bin/true
JobCompType=jobcomp/filetxt
JobCompLoc=/var/log/slurm/jobcomp.log
JobAcctGatherType=jobacct_gather/linux
JobAcctGatherFrequency=task=1
JobAcctGatherParams=OverMemoryKill
$acct_lines
NodeName=localhost NodeAddr=127.0.0.1 CPUs=16 RealMemory=16000 State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
)
mode="accounting=$accounting min_job_age=$min_job_age"
if [ "$(cat $mode_file 2>/dev/null)" != "$mode" ] || ! cmp -s <(printf '%s\n' "$conf") /etc/slurm/slurm.conf; then
	stop_pid /run/slurmd.pid
	stop_pid /run/slurmctld.pid
	printf '%s\n' "$conf" >/etc/slurm/slurm.conf
	chmod 644 /etc/slurm/slurm.conf
fi
if [ $accounting = yes ]; then
	# sacctmgr reads slurm.conf: it must name slurmdbd before this.
	wait_for 30 slurmdbd sacctmgr -n list cluster
	sacctmgr -n list cluster format=cluster | grep -qw somaflow || sacctmgr -i add cluster somaflow >/dev/null
fi

# 4. slurmctld, slurmd
alive /run/slurmctld.pid || slurmctld -i
wait_for 30 slurmctld scontrol ping
alive /run/slurmd.pid || slurmd -N localhost
echo "$mode" >$mode_file

node_idle() {
	local s
	s=$(sinfo -h -N -o %T 2>/dev/null) || return 1
	case $s in
	idle | mixed | allocated) return 0 ;;
	down* | drain* | fail*)
		scontrol update nodename=localhost state=resume >/dev/null 2>&1 || true
		return 1
		;;
	*) return 1 ;;
	esac
}
wait_for 60 "the node to be idle" node_idle
if [ $accounting = yes ]; then
	wait_for 30 "sacct" sacct -n -X -S now-1minute
fi
echo "slurm-up.sh: one-node Slurm is up ($mode)"
