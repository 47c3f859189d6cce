#!/bin/bash
# ci-slurm.sh [PACKAGE...]: the Slurm part of CI, run as root on Debian 12
# from the repository root. Installs Slurm, munge, MariaDB and slurmdbd from
# Debian's packages (once), starts a one-node cluster (scripts/slurm-up.sh),
# runs the Slurm-backed tests with SOMAFLOW_REQUIRE=slurm (so that none can
# silently skip) without accounting, then again with slurmdbd + MariaDB
# (sacct), and stops everything (scripts/slurm-down.sh), also on failure.
#
# Extra go test package patterns (e.g. ./cli/... for end-to-end workflows
# with --backend slurm) are run in both rounds too, with SOMAFLOW_BACKEND=slurm
# set for them.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=$PATH:/usr/local/go/bin

pkgs=(slurmctld slurmd slurm-client munge mariadb-server slurmdbd)
missing=()
for p in "${pkgs[@]}"; do
	dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
	echo "ci-slurm.sh: installing ${missing[*]}"
	apt-get update -q
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

trap 'scripts/slurm-down.sh' EXIT

own=(./drms/slurm/... ./drms/command/... ./drms/execjob/... ./drms/batch/...)
round() { # round LABEL [slurm-up options]
	local label=$1
	shift
	echo "== ci-slurm.sh: $label"
	scripts/slurm-up.sh "$@"
	SOMAFLOW_REQUIRE=slurm${SOMAFLOW_REQUIRE:+,$SOMAFLOW_REQUIRE} SOMAFLOW_SLURM_OUTAGE=1 \
		go test -count=1 -timeout 30m "${own[@]}"
	if [ ${#extra[@]} -gt 0 ]; then
		SOMAFLOW_REQUIRE=slurm${SOMAFLOW_REQUIRE:+,$SOMAFLOW_REQUIRE} SOMAFLOW_BACKEND=slurm \
			SOMAFLOW_E2E_BACKEND=slurm SOMAFLOW_SLURM_OUTAGE=1 \
			go test -count=1 -timeout 30m "${extra[@]}"
	fi
}
extra=("$@")
round "Slurm without accounting"
round "Slurm with accounting (slurmdbd + MariaDB)" --accounting
echo "ci-slurm.sh: all Slurm tests passed, with and without accounting"
