#!/usr/bin/env python3
"""Check that soma-workflow's own reader accepts somaflow's exports.

Outside CI (needs soma-workflow's source tree):
    PYTHONPATH=<soma-workflow>/python python3 check.py EXPORT_DIR...
For every *.json file: Helper.unserialize, then compare job names, dependency
count and group names with the JSON itself. Prints one line per file and a
closing "N passed, N failed" line.
"""
import glob
import json
import os
import sys
import tempfile

os.environ.setdefault('HOME', tempfile.mkdtemp())
from soma_workflow.client import Helper  # noqa: E402

passed = failed = 0
for d in sys.argv[1:]:
    for path in sorted(glob.glob(os.path.join(d, '*.json'))):
        name = os.path.basename(path)
        try:
            wf = Helper.unserialize(path)
            with open(path) as f:
                raw = json.load(f)
            names = [j.name for j in wf.jobs]
            want = [j.get('name') for j in raw['serialized_jobs'].values()]
            assert names == want, (names, want)
            assert len(wf.dependencies) == len(raw['dependencies']), 'dependencies'
            assert sorted(g.name for g in wf.groups) == sorted(
                g['name'] for g in raw['serialized_groups'].values()), 'groups'
            print('ok   %s: %d jobs, %d dependencies, %d groups'
                  % (name, len(wf.jobs), len(wf.dependencies), len(wf.groups)))
            passed += 1
        except Exception as e:  # report every failure, go on
            print('FAIL %s: %r' % (name, e))
            failed += 1
print('%d passed, %d failed' % (passed, failed))
sys.exit(1 if failed else 0)
