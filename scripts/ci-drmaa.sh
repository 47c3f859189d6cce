#!/usr/bin/env bash
# ci-drmaa.sh [PACKAGE...]: the DRMAA part of CI, on a fresh Debian 12 machine
# as root. It installs Grid Engine and its DRMAA library from Debian's
# packages, starts a one-host cell (scripts/gridengine-up.sh), runs
#
#	SOMAFLOW_REQUIRE=drmaa go test -tags drmaa -count=1 -timeout 30m PACKAGE...
#
# (default ./drmaa/...) with the cgo flags for Debian's libdrmaa, and stops
# the cell again (scripts/gridengine-down.sh), whatever the tests did. Its
# exit status is the tests'.
#
# Environment: GO (default: go on PATH, else /usr/local/go/bin/go),
# CGO_CFLAGS / CGO_LDFLAGS (default: Debian's gridengine-drmaa-dev paths),
# SOMAFLOW_REQUIRE (drmaa is added to it), GO_TEST_FLAGS (extra go test flags).
set -euo pipefail

cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "ci-drmaa: must run as root (apt-get, Grid Engine daemons)" >&2; exit 2; }

PACKAGES=(gridengine-master gridengine-exec gridengine-client gridengine-drmaa-dev)
installed() {
	local p
	for p in "${PACKAGES[@]}"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || return 1
	done
}
if installed; then
	echo "ci-drmaa: Grid Engine packages already installed" >&2
else
	export DEBIAN_FRONTEND=noninteractive
	apt-get update
	# Pre-seed debconf so that gridengine-common configures the cell
	# "default" with this host as master, without questions.
	printf '%s\n' \
		"gridengine-common shared/gridengineconfig boolean true" \
		"gridengine-common shared/gridenginecell string default" \
		"gridengine-common shared/gridenginemaster string $(hostname)" | debconf-set-selections
	apt-get install -y --no-install-recommends "${PACKAGES[@]}"
fi

export SGE_ROOT=${SGE_ROOT:-/var/lib/gridengine}
export SGE_CELL=${SGE_CELL:-default}
trap 'bash scripts/gridengine-down.sh || true' EXIT
bash scripts/gridengine-up.sh

# -DSOG selects the Son of Grid Engine variant of the binding's C code; the
# rpath lets the test binaries find libdrmaa.so without LD_LIBRARY_PATH.
DRMAA_DIR=/usr/lib/gridengine-drmaa
export CGO_ENABLED=1
export CGO_CFLAGS="${CGO_CFLAGS:--DSOG -I$DRMAA_DIR/include}"
export CGO_LDFLAGS="${CGO_LDFLAGS:--L$DRMAA_DIR/lib -Wl,-rpath,$DRMAA_DIR/lib}"

case ",${SOMAFLOW_REQUIRE:-}," in
*,drmaa,*) ;;
*) export SOMAFLOW_REQUIRE="${SOMAFLOW_REQUIRE:+$SOMAFLOW_REQUIRE,}drmaa" ;;
esac

GO=${GO:-}
if [ -z "$GO" ]; then
	GO=$(command -v go || echo /usr/local/go/bin/go)
fi
[ $# -gt 0 ] || set -- ./drmaa/...
# shellcheck disable=SC2086 # GO_TEST_FLAGS is a list of flags
"$GO" test -tags drmaa -count=1 -timeout 30m ${GO_TEST_FLAGS:-} "$@"
# End-to-end workflows through the CLI with --backend drmaa (a binary built
# with -tags drmaa).
SOMAFLOW_E2E_BACKEND=drmaa SOMAFLOW_TEST_TAGS=drmaa \
	"$GO" test -tags drmaa -count=1 -timeout 30m -run TestBatchE2E ./cli/
