#!/usr/bin/env bash
# make demo: validate and convert the examples, run them with `somaflow run`,
# and check that the demo ends exactly as documented in examples/demo.yaml.
set -euo pipefail
bin=$(readlink -f "${1:-bin/somaflow}")
top=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"

echo "== validate and convert the examples"
for f in "$top"/examples/*; do
	"$bin" validate "$f"
	"$bin" convert --to soma "$f" > soma.json
	"$bin" convert --to native soma.json > native.yaml
	"$bin" convert --to soma native.yaml > again.json
	"$bin" convert --to native again.json > again.yaml
	# Dependencies may come back in another order; the native form is a fixpoint.
	cmp -s native.yaml again.yaml || { echo "soma -> native -> soma changed $f"; diff native.yaml again.yaml; exit 1; }
done

echo
echo "== somaflow run examples/hello.json (every job succeeds: exit 0)"
"$bin" run "$top/examples/hello.json"

echo
echo "== somaflow run examples/demo.yaml (one job fails on purpose: exit 1)"
set +e
"$bin" run "$top/examples/demo.yaml"
code=$?
set -e
[ "$code" -eq 1 ] || { echo "demo: exit $code, want 1"; exit 1; }
rm -rf demo-out

echo
echo "== somaflow run --json examples/demo.yaml, checked job by job"
set +e
"$bin" run --json "$top/examples/demo.yaml" > demo.json
code=$?
set -e
[ "$code" -eq 1 ] || { echo "demo --json: exit $code, want 1"; exit 1; }
(cd "$top" && go run ./scripts/democheck "$work/demo-out") < demo.json
