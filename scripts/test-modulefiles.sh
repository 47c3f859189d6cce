#!/usr/bin/env bash
# Checks contrib/modulefiles with the real Lmod (Lua and Tcl files) from
# Debian's package, as a site installs them: `make install PREFIX=...`, then
# `module use PREFIX/share/somaflow/modulefiles/...`; load puts somaflow on
# PATH and its man page on MANPATH, sets SOMAFLOW_CONFIG when the site
# config exists (and somaflow works when it does not), and a workflow runs
# through the loaded module; unload removes them. Needs root for apt-get
# when lmod is missing.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
if [ ! -f /usr/share/lmod/lmod/init/bash ]; then
	apt-get install -y --no-install-recommends lmod >/dev/null
fi
set +u
source /usr/share/lmod/lmod/init/bash
set -u
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
prefix=$work/prefix
make -C "$top" install PREFIX="$prefix" >/dev/null
mkdir -p "$prefix/etc"
echo "max_jobs: 2" > "$prefix/etc/somaflow.yaml"
for kind in lmod tcl; do
	module purge
	module use "$prefix/share/somaflow/modulefiles/$kind"
	module load somaflow
	[ "$(command -v somaflow)" = "$prefix/bin/somaflow" ] || { echo "$kind: somaflow not on PATH"; exit 1; }
	case ":$MANPATH:" in *":$prefix/share/man:"*) ;; *) echo "$kind: man page dir not on MANPATH ($MANPATH)"; exit 1 ;; esac
	[ -s "$prefix/share/man/man1/somaflow.1" ] || { echo "$kind: no man page installed"; exit 1; }
	if command -v man >/dev/null; then
		[ "$(man -w somaflow)" = "$prefix/share/man/man1/somaflow.1" ] || { echo "$kind: man finds $(man -w somaflow 2>&1)"; exit 1; }
	fi
	# A workflow runs through the loaded module, with the site's config.
	SOMAFLOW_STATE_DIR=$work/state-$kind somaflow run "$top/examples/hello.json" >/dev/null || { echo "$kind: the example workflow failed"; exit 1; }
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
	module unuse "$prefix/share/somaflow/modulefiles/$kind"
	echo "modulefile ($kind): ok"
done
