#!/usr/bin/env python3
"""Check that soma-workflow accepts workflow JSON files.

Usage:
    PYTHONPATH=/tmp/swf/python python3 check_unserialize.py DIR_OR_FILE... \
        [--roundtrip]

For each *.json file (directories are scanned, not recursively, in sorted
order) call soma_workflow.client.Helper.unserialize and print
    <file>: OK (<n> jobs, <d> dependencies, <g> groups, <l> param link dests)
or
    <file>: ERROR <ExceptionType>: <message>
With --roundtrip, an accepted file is serialized again with Helper.serialize
and the line says whether the result is byte-identical to the input
("roundtrip identical" / "roundtrip differs").
Exit status: 0 when every file was accepted, 1 otherwise.
"""
import os
import sys
import tempfile

from soma_workflow.client import Helper


def files_of(args):
    for a in args:
        if os.path.isdir(a):
            for f in sorted(os.listdir(a)):
                if f.endswith('.json'):
                    yield os.path.join(a, f)
        else:
            yield a


def main(argv):
    roundtrip = '--roundtrip' in argv
    args = [a for a in argv[1:] if a != '--roundtrip']
    if not args:
        print(__doc__)
        return 2
    bad = 0
    for path in files_of(args):
        try:
            wf = Helper.unserialize(path)
            msg = 'OK (%d jobs, %d dependencies, %d groups, %d param link ' \
                  'dests)' % (len(wf.jobs), len(wf.dependencies),
                              len(wf.groups), len(wf.param_links))
            if roundtrip:
                fd, tmp = tempfile.mkstemp(suffix='.json')
                os.close(fd)
                try:
                    Helper.serialize(tmp, wf)
                    with open(tmp, 'rb') as f1, open(path, 'rb') as f2:
                        same = f1.read() == f2.read()
                finally:
                    os.unlink(tmp)
                msg += ', roundtrip %s' % ('identical' if same else 'differs')
        except BaseException as e:
            bad += 1
            msg = 'ERROR %s: %s' % (type(e).__name__, e)
        print('%s: %s' % (path, msg), flush=True)
    return 1 if bad else 0


if __name__ == '__main__':
    sys.exit(main(sys.argv))
