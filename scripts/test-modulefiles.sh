#!/usr/bin/env bash
# Checks contrib/modulefiles with the real Lmod (Lua and Tcl files) from
# Debian's package: load puts somaflow on PATH and sets SOMAFLOW_CONFIG when
# the site config exists (and somaflow works when it does not), unload
# removes both. Needs root for apt-get when lmod is missing.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
bin=$(readlink -f "${1:-$top/bin/somaflow}")
if [ ! -f /usr/share/lmod/lmod/init/bash ]; then
	apt-get install -y --no-install-recommends lmod >/dev/null
fi
set +u
source /usr/share/lmod/lmod/init/bash
set -u
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
prefix=$work/prefix
mkdir -p "$prefix/bin" "$prefix/etc"
cp "$bin" "$prefix/bin/somaflow"
echo "queue: fromsite" > "$prefix/etc/somaflow.yaml"
for kind in lmod tcl; do
	rm -rf "$work/mf" && cp -r "$top/contrib/modulefiles/$kind" "$work/mf"
	sed -i "s#/opt/somaflow/0.1.0#$prefix#" "$work"/mf/somaflow/*
	module purge
	module use "$work/mf"
	module load somaflow
	[ "$(command -v somaflow)" = "$prefix/bin/somaflow" ] || { echo "$kind: somaflow not on PATH"; exit 1; }
	[ "$SOMAFLOW_CONFIG" = "$prefix/etc/somaflow.yaml" ] || { echo "$kind: SOMAFLOW_CONFIG not set"; exit 1; }
	somaflow version | grep -q "$prefix/etc/somaflow.yaml" || { echo "$kind: site config not read"; exit 1; }
	module unload somaflow
	if command -v somaflow >/dev/null && [ "$(command -v somaflow)" = "$prefix/bin/somaflow" ]; then echo "$kind: unload left PATH"; exit 1; fi
	[ -z "${SOMAFLOW_CONFIG:-}" ] || { echo "$kind: unload left SOMAFLOW_CONFIG"; exit 1; }
	# A site that installs the module without a config file.
	mv "$prefix/etc/somaflow.yaml" "$work/saved.yaml"
	module load somaflow
	[ -z "${SOMAFLOW_CONFIG:-}" ] || { echo "$kind: SOMAFLOW_CONFIG set to a missing file"; exit 1; }
	somaflow version >/dev/null || { echo "$kind: somaflow broken by the module without a site config"; exit 1; }
	module unload somaflow
	mv "$work/saved.yaml" "$prefix/etc/somaflow.yaml"
	module unuse "$work/mf"
	echo "modulefile ($kind): ok"
done
