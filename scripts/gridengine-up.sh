#!/usr/bin/env bash
# gridengine-up.sh: configure and start a one-host Grid Engine cell (qmaster +
# execd on this machine, queue all.q) from Debian's gridengine packages, then
# wait until a trivial job runs. It installs nothing: install the packages
# first (scripts/ci-drmaa.sh does). Idempotent: running daemons are kept and
# the configuration is applied again. Must run as root.
#
# Steps and settings follow notes/gridengine-drmaa.md (verified on Debian 12
# with Grid Engine 8.1.9).
set -euo pipefail

export SGE_ROOT=${SGE_ROOT:-/var/lib/gridengine}
export SGE_CELL=${SGE_CELL:-default}
SPOOL=/var/spool/gridengine
HOST=$(hostname)
SLOTS=${GRIDENGINE_SLOTS:-16}
TIMEOUT=${GRIDENGINE_UP_TIMEOUT:-120}

die() { echo "gridengine-up: $*" >&2; exit 1; }
log() { echo "gridengine-up: $*" >&2; }

[ "$(id -u)" = 0 ] || die "must run as root"
for b in /usr/sbin/sge_qmaster /usr/sbin/sge_execd; do
	[ -x "$b" ] || die "$b missing: install gridengine-master gridengine-exec gridengine-client gridengine-drmaa-dev first"
done
command -v qconf >/dev/null || die "qconf missing: install gridengine-client"
[ -d "$SGE_ROOT/$SGE_CELL/common" ] || die "$SGE_ROOT/$SGE_CELL/common missing: the gridengine-common package did not configure a cell (pre-seed debconf, see scripts/ci-drmaa.sh)"

# wait_for DESCRIPTION COMMAND...: retry COMMAND every 0.2 s until it succeeds
# or TIMEOUT seconds have passed.
wait_for() {
	local what=$1; shift
	local deadline=$((SECONDS + TIMEOUT))
	until "$@" >/dev/null 2>&1; do
		[ $SECONDS -lt $deadline ] || die "timed out after ${TIMEOUT}s waiting for $what"
		sleep 0.2
	done
}

alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# stop_pid PID: stop a daemon and wait until it is gone.
stop_pid() {
	kill "$1" 2>/dev/null || return 0
	local deadline=$((SECONDS + TIMEOUT))
	while kill -0 "$1" 2>/dev/null; do
		[ $SECONDS -lt $deadline ] || die "daemon $1 does not stop"
		sleep 0.2
	done
}

# stop_unrecorded NAME: stop the daemons called NAME. Used for daemons started
# before the cell was configured (by the packages' init scripts): an execd
# started before the host alias existed never registers and writes no pid
# file, so they are found by name (on a machine being set up, only Grid
# Engine's own daemons have these names).
stop_unrecorded() {
	local pid
	for pid in $(pgrep -x "$1" || true); do
		log "stopping $1 ($pid), started before the cell was configured"
		stop_pid "$pid"
	done
}

# 1. 127.0.0.1 resolves to "localhost" while the host calls itself something
# else; without the alias the exec host never registers. The master is this
# host, whatever the package was told. Daemons read both files when they
# start: ones already running (started by the package's init script) are
# restarted when the files change.
common=$SGE_ROOT/$SGE_CELL/common
if [ "$(cat "$common/host_aliases" 2>/dev/null)" != "$HOST localhost" ] ||
	[ "$(cat "$common/act_qmaster" 2>/dev/null)" != "$HOST" ]; then
	stop_unrecorded sge_execd
	stop_unrecorded sge_qmaster
	echo "$HOST localhost" >"$common/host_aliases"
	echo "$HOST" >"$common/act_qmaster"
fi

# 2. qmaster.
install -d -o sgeadmin -g sgeadmin /var/run/gridengine
if alive "$SPOOL/qmaster/qmaster.pid"; then
	log "qmaster already running"
else
	log "starting qmaster"
	setsid /usr/sbin/sge_qmaster </dev/null >/dev/null 2>&1 ||
		die "sge_qmaster failed to start (exit $?); see $SPOOL/qmaster/messages"
fi
wait_for "qmaster (qconf -sh)" qconf -sh


# set_key FILE KEY VALUE: replace the line "KEY ..." in a qconf dump.
set_key() {
	if grep -q "^$2[[:space:]]" "$1"; then
		sed -i "s|^$2[[:space:]].*|$2 $3|" "$1"
	else
		echo "$2 $3" >>"$1"
	fi
}

# 3. Global configuration: root may run jobs, fast load reports, accounting
# flushed within a second (qacct sees jobs at once), and processes that left
# the job's process group killed with the job (by the additional group id;
# Grid Engine never does that for root's processes).
qconf -sconf global >"$tmp/global"
set_key "$tmp/global" min_uid 0
set_key "$tmp/global" min_gid 0
set_key "$tmp/global" load_report_time 00:00:05
set_key "$tmp/global" shell_start_mode unix_behavior
set_key "$tmp/global" execd_params ENABLE_ADDGRP_KILL=TRUE
# reporting_params spans continuation lines; flush_time may be on any of them.
sed -i 's|\bflush_time=[0-9:]*|flush_time=00:00:01|' "$tmp/global"
# -Mconf takes the configuration's name from the file's name.
qconf -Mconf "$tmp/global" >/dev/null

# 4. Scheduler: jobs start within about a second.
qconf -ssconf >"$tmp/sconf"
set_key "$tmp/sconf" schedule_interval 0:0:1
set_key "$tmp/sconf" flush_submit_sec 1
set_key "$tmp/sconf" flush_finish_sec 1
set_key "$tmp/sconf" job_load_adjustments NONE
set_key "$tmp/sconf" load_adjustment_decay_time 0:0:0
qconf -Msconf "$tmp/sconf" >/dev/null

# 5. Submit host, exec host, queue all.q.
qconf -sh 2>/dev/null | grep -qx "$HOST" || qconf -ah "$HOST" >/dev/null
qconf -ss 2>/dev/null | grep -qx "$HOST" || qconf -as "$HOST" >/dev/null
if ! qconf -sel 2>/dev/null | grep -qx "$HOST"; then
	cat >"$tmp/exechost" <<EOF
hostname              $HOST
load_scaling          NONE
complex_values        NONE
user_lists            NONE
xuser_lists           NONE
projects              NONE
xprojects             NONE
usage_scaling         NONE
report_variables      NONE
EOF
	qconf -Ae "$tmp/exechost" >/dev/null
fi
cat >"$tmp/all.q" <<EOF
qname                 all.q
hostlist              $HOST
seq_no                0
load_thresholds       NONE
suspend_thresholds    NONE
nsuspend              1
suspend_interval      00:05:00
priority              0
min_cpu_interval      00:05:00
processors            UNDEFINED
qtype                 BATCH INTERACTIVE
ckpt_list             NONE
pe_list               make
rerun                 FALSE
slots                 $SLOTS
tmpdir                /tmp
shell                 /bin/sh
prolog                NONE
epilog                NONE
shell_start_mode      unix_behavior
starter_method        NONE
suspend_method        NONE
resume_method         NONE
terminate_method      NONE
notify                00:00:60
owner_list            NONE
user_lists            NONE
xuser_lists           NONE
subordinate_list      NONE
complex_values        NONE
projects              NONE
xprojects             NONE
calendar              NONE
initial_state         default
s_rt                  INFINITY
h_rt                  INFINITY
s_cpu                 INFINITY
h_cpu                 INFINITY
s_fsize               INFINITY
h_fsize               INFINITY
s_data                INFINITY
h_data                INFINITY
s_stack               INFINITY
h_stack               INFINITY
s_core                INFINITY
h_core                INFINITY
s_rss                 INFINITY
h_rss                 INFINITY
s_vmem                INFINITY
h_vmem                INFINITY
EOF
if qconf -sql 2>/dev/null | grep -qx all.q; then
	qconf -Mq "$tmp/all.q" >/dev/null
else
	qconf -Aq "$tmp/all.q" >/dev/null
fi

# 6. execd.
execd_pid=$(ls "$SPOOL"/execd/*/execd.pid 2>/dev/null | head -n1 || true)
if [ -n "$execd_pid" ] && alive "$execd_pid"; then
	log "execd already running"
else
	stop_unrecorded sge_execd
	log "starting execd"
	setsid /usr/sbin/sge_execd </dev/null >/dev/null 2>&1 ||
		die "sge_execd failed to start (exit $?); see $SPOOL/execd/*/messages"
fi

# The queue instance is ready when it shows a load value and no state letters.
queue_ready() {
	qstat -f -q all.q | awk -v h="all.q@$HOST" '
		$1 == h && $4 != "-NA-" && $6 == "" { ok = 1 }
		END { exit !ok }'
}
wait_for "queue all.q@$HOST to report a load" queue_ready

# Clear an error state left by an earlier run (harmless otherwise).
qmod -c "all.q@$HOST" >/dev/null 2>&1 || true

# A trivial job must run.
log "running a trivial job"
qsub -sync y -b y -o /dev/null -e /dev/null -N gridengine-up /bin/true >"$tmp/qsub" 2>&1 ||
	die "trivial job failed: $(cat "$tmp/qsub")"
grep -q 'exited with exit code 0' "$tmp/qsub" || die "trivial job: $(cat "$tmp/qsub")"
log "Grid Engine is up (SGE_ROOT=$SGE_ROOT SGE_CELL=$SGE_CELL, queue all.q@$HOST)"
