#!/bin/bash
# pbs-wrappers.sh DIR: puts PBS's commands (qsub, qstat, qdel, qhold, qrls)
# in DIR/bin as Debian's slurm-wlm-torque wrappers over the Slurm of this
# machine, without installing the package (it conflicts with Grid Engine's
# client: both ship /usr/bin/qsub). Run as root on Debian 12; prints DIR/bin.
# The wrappers call Slurm's commands from their own directory, so symlinks
# to them go beside the wrappers; they need Slurm's Perl API.
set -euo pipefail
dir=$1
mkdir -p "$dir"
perl_pkgs=(libslurm-perl libslurmdb-perl libswitch-perl)
missing=()
for p in "${perl_pkgs[@]}"; do
	dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ] || [ ! -s "$dir/bin/qsub" ]; then
	apt-get update -q >&2
fi
if [ ${#missing[@]} -gt 0 ]; then
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >&2
fi
if [ ! -s "$dir/bin/qsub" ]; then
	tmp=$(mktemp -d)
	chmod 755 "$tmp" # apt-get download runs as _apt
	(cd "$tmp" && apt-get download -q slurm-wlm-torque >&2)
	dpkg -x "$tmp"/slurm-wlm-torque_*.deb "$tmp/root"
	mkdir -p "$dir/bin"
	for c in qsub qstat qdel qhold qrls qalter; do
		cp "$tmp/root/usr/bin/$c" "$dir/bin/$c"
	done
	rm -rf "$tmp"
fi
for c in sbatch squeue scontrol scancel srun salloc sacct sinfo; do
	p=$(command -v "$c" || true)
	[ -n "$p" ] && ln -sf "$p" "$dir/bin/$c"
done
echo "$dir/bin"
