#!/bin/bash
# ci-pbs.sh [PACKAGE...]: the PBS part of CI, run as root on Debian 12 from
# the repository root. No PBS server is packaged for Debian, so the PBS
# backend runs end to end through Debian's slurm-wlm-torque wrappers
# (qsub/qstat/qdel/qhold/qrls in Perl over Slurm, unpacked beside the
# system by scripts/pbs-wrappers.sh, first on PATH for these tests only) on
# the real one-node Slurm of scripts/slurm-up.sh: the conformance suite,
# hold/release, dependencies, and with extra packages (./cli/) the
# end-to-end workflows with --backend pbs, all with SOMAFLOW_REQUIRE=pbs so
# that nothing skips. The parsers of real PBS Pro / Torque outputs are
# tested in make test, on testdata. Stops Slurm on exit, also on failure.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=$PATH:/usr/local/go/bin

pkgs=(slurmctld slurmd slurm-client munge)
missing=()
for p in "${pkgs[@]}"; do
	dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
	echo "ci-pbs.sh: installing ${missing[*]}"
	apt-get update -q
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
wrappers=$(bash scripts/pbs-wrappers.sh "${SOMAFLOW_PBS_WRAPPERS:-/opt/somaflow-ci/pbs}")
trap 'scripts/slurm-down.sh' EXIT
scripts/slurm-up.sh
export PATH=$wrappers:$PATH
echo "== ci-pbs.sh: qsub is $(command -v qsub)"
SOMAFLOW_REQUIRE=pbs go test -count=1 -timeout 30m ./drms/pbs/...
if [ $# -gt 0 ]; then
	SOMAFLOW_REQUIRE=pbs SOMAFLOW_E2E_BACKEND=pbs go test -count=1 -timeout 30m "$@"
fi
echo "ci-pbs.sh: all PBS tests passed"
