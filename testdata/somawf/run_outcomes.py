#!/usr/bin/env python3
"""Run the serialized reference workflows (workflows/*.json) with
soma-workflow's light mode and record what soma-workflow reports into
outcomes/<name>.json.

Usage (see README.md):
    PYTHONPATH=/tmp/swf/python HOME=<scratch> TMPDIR=<scratch> \
        python3 run_outcomes.py [name ...]

Each workflow runs in its own child process (python3 run_outcomes.py --one
NAME) with its own isolated light-mode directory
($SOMAFLOW_SWF_SCRATCH/<name>, default /tmp/somaflow-ref-swf/<name>), so a
hung engine cannot spoil the next workflow.  Before a run,
/tmp/somaflow-ref/<name>/ is removed and recreated empty; jobs create
anything else they need (except file_transfers' client-side input files,
which this script creates, since they must exist before submission).
"""
import datetime
import json
import os
import shutil
import subprocess
import sys
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
WF_DIR = os.path.join(HERE, 'workflows')
OUT_DIR = os.path.join(HERE, 'outcomes')
REF = '/tmp/somaflow-ref'
SCRATCH = os.environ.get('SOMAFLOW_SWF_SCRATCH', '/tmp/somaflow-ref-swf')
TIMEOUT = 60          # seconds per workflow (soma-workflow's own wait)
HARD_TIMEOUT = 240    # seconds per child process

# workflows that are not run the ordinary way
SPECIAL = {'stop_restart'}


def log(*a):
    print('[%s]' % datetime.datetime.now().strftime('%H:%M:%S'), *a,
          flush=True)


def prepare(name):
    base = os.path.join(REF, name)
    shutil.rmtree(base, ignore_errors=True)
    os.makedirs(base)
    if name == 'file_transfers':
        c = os.path.join(base, 'client')
        os.makedirs(os.path.join(c, 'indir'))
        with open(os.path.join(c, 'in.txt'), 'w') as f:
            f.write('input file\n')
        with open(os.path.join(c, 'indir', 'f.txt'), 'w') as f:
            f.write('file in transferred dir\n')
        with open(os.path.join(c, 'img.nii'), 'w') as f:
            f.write('nii\n')
        with open(os.path.join(c, 'img.nii.minf'), 'w') as f:
            f.write('minf\n')


def collect_files(name):
    """text content of every file under /tmp/somaflow-ref/<name>/"""
    base = os.path.join(REF, name)
    files = {}
    for root, dirs, fnames in os.walk(base):
        dirs.sort()
        for fn in sorted(fnames):
            p = os.path.join(root, fn)
            try:
                with open(p, 'rb') as f:
                    data = f.read(4000)
                files[p] = data.decode('utf-8', 'replace')
            except Exception as e:
                files[p] = '<unreadable: %s>' % e
        for dn in dirs:
            p = os.path.join(root, dn)
            if not os.listdir(p):
                files[p + '/'] = '<empty dir>'
    return files


def read_text(p):
    """file text; None when the file does not exist (retrieve_job_stdouterr
    copies nothing for a job that never started)"""
    if not os.path.exists(p):
        return None
    try:
        with open(p, 'rb') as f:
            return f.read(4000).decode('utf-8', 'replace')
    except Exception as e:
        return '<%s: %s>' % (type(e).__name__, e)


def file_job_names(name):
    with open(os.path.join(WF_DIR, name + '.json')) as f:
        d = json.load(f)
    return [j.get('name') for j in d['serialized_jobs'].values()]


def engine_job_ids(wc, wid):
    """engine job ids in job-list order (= serialized file order)"""
    ew = wc.workflow(wid)
    return [(j.name, ew.job_mapping[j].job_id) for j in ew.jobs]


def snapshot(wc, wid, ids, name, with_streams=False):
    els = wc.workflow_elements_status(wid)
    by_id = {e[0]: e for e in els[0]}
    jobs = []
    streams = []
    for jname, jid in ids:
        e = by_id.get(jid)
        status = e[1] if e else None
        term = wc.job_termination_status(jid)
        if term is None:
            term = (None, None, None, None)
        jobs.append({'name': jname, 'status': status,
                     'exit_status': term[0], 'exit_value': term[1],
                     'signal': term[2]})
        if with_streams:
            sdir = os.path.join(SCRATCH, name, 'stdouterr')
            os.makedirs(sdir, exist_ok=True)
            po = os.path.join(sdir, '%d.out' % jid)
            pe = os.path.join(sdir, '%d.err' % jid)
            entry = {'name': jname}
            try:
                wc.retrieve_job_stdouterr(jid, po, pe)
                entry['stdout'] = read_text(po)
                entry['stderr'] = read_text(pe)
            except Exception as ex:
                entry['retrieve_error'] = '%s: %s' % (type(ex).__name__, ex)
            streams.append(entry)
    return {'workflow_status': wc.workflow_status(wid), 'jobs': jobs,
            'transfers': [[str(t[0]), list(t[1]) if isinstance(
                t[1], (list, tuple)) else t[1]] for t in els[1]],
            }, streams


NOTES = {
    'shared_paths': 'isolated light mode has no PATH_TRANSLATION_FILES, so '
                    'the namespace MyApp is unknown.',
    'file_transfers': 'client-side inputs created by run_outcomes.py; '
                      'Helper.transfer_input_files called after submission, '
                      'Helper.transfer_output_files after the end.',
}


def run_one(name):
    from soma_workflow.client import WorkflowController, Helper
    scratch = os.path.join(SCRATCH, name)
    shutil.rmtree(scratch, ignore_errors=True)
    os.makedirs(scratch)
    prepare(name)
    result = {'workflow_status': None, 'jobs': [], 'note': NOTES.get(name, '')}
    wf = Helper.unserialize(os.path.join(WF_DIR, name + '.json'))
    wc = WorkflowController(isolated_light_mode=scratch)
    try:
        wid = wc.submit_workflow(wf, name=name)
    except Exception as e:
        log('submission failed:', repr(e))
        traceback.print_exc()
        result['submit_error'] = '%s: %s' % (type(e).__name__, e)
        # keep the shape: every job of the file, nothing known about it
        result['jobs'] = [{'name': n, 'status': None, 'exit_status': None,
                           'exit_value': None, 'signal': None}
                          for n in file_job_names(name)]
        result['note'] = (result['note'] + ' submit_workflow raised; '
                          'nothing ran.').strip()
        return result
    ids = engine_job_ids(wc, wid)
    expected = file_job_names(name)
    if [n for n, _ in ids] != expected:
        result['note'] += ' WARNING: engine job order %r != file order %r' % (
            [n for n, _ in ids], expected)
    if name == 'file_transfers':
        time.sleep(1)
        Helper.transfer_input_files(wid, wc)
    t0 = time.time()
    wc.wait_workflow(wid, timeout=TIMEOUT)
    elapsed = time.time() - t0
    st = wc.workflow_status(wid)
    timed_out = st != 'workflow_done'
    if timed_out:
        log('timeout after %.1fs, workflow status %s' % (elapsed, st))
        before, _ = snapshot(wc, wid, ids, name)
        result['before_stop'] = before
        result['stop_returned'] = wc.stop_workflow(wid)
        time.sleep(3)
        result['note'] = (result['note'] + ' timeout: not finished after %d s '
                          '(status %s); stop_workflow was called, statuses '
                          'below are after the stop, before_stop holds the '
                          'ones before.' % (TIMEOUT, st)).strip()
    else:
        log('done in %.1fs' % elapsed)
    if name == 'file_transfers':
        try:
            Helper.transfer_output_files(wid, wc)
        except Exception as e:
            result['transfer_output_error'] = '%s: %s' % (type(e).__name__, e)
    snap, streams = snapshot(wc, wid, ids, name, with_streams=True)
    result.update(snap)
    if timed_out:
        result['workflow_status'] = 'timeout'
        result['workflow_status_reported'] = snap['workflow_status']
    result['stdouterr'] = streams
    result['files'] = collect_files(name)
    return result


def wait_job_status(wc, wid, jid, wanted, timeout):
    t0 = time.time()
    while time.time() - t0 < timeout:
        els = wc.workflow_elements_status(wid)
        for e in els[0]:
            if e[0] == jid and e[1] in wanted:
                return e[1]
        time.sleep(0.2)
    return None


def wait_settled(wc, wid, timeout):
    """until no job is running/queued/submission_pending"""
    busy = {'running', 'queued_active', 'submission_pending', 'undetermined',
            'kill_pending', 'delete_pending'}
    t0 = time.time()
    while time.time() - t0 < timeout:
        els = wc.workflow_elements_status(wid)
        if not any(e[1] in busy for e in els[0]):
            return True
        time.sleep(0.3)
    return False


def run_stop_restart():
    from soma_workflow.client import WorkflowController, Helper
    name = 'stop_restart'
    scratch = os.path.join(SCRATCH, name)
    shutil.rmtree(scratch, ignore_errors=True)
    os.makedirs(scratch)
    prepare(name)
    wf = Helper.unserialize(os.path.join(WF_DIR, name + '.json'))
    wc = WorkflowController(isolated_light_mode=scratch)
    wid = wc.submit_workflow(wf, name=name)
    ids = engine_job_ids(wc, wid)
    idmap = dict(ids)
    res = {'note': ''}
    st = wait_job_status(wc, wid, idmap['long'], {'running'}, 30)
    log('long job status:', st)
    time.sleep(1.5)
    res['before_stop'], _ = snapshot(wc, wid, ids, name)
    t0 = time.time()
    res['stop_returned'] = wc.stop_workflow(wid)
    log('stop_workflow returned %r in %.1fs' % (res['stop_returned'],
                                                time.time() - t0))
    res['immediately_after_stop'], _ = snapshot(wc, wid, ids, name)
    settled = wait_settled(wc, wid, 20)
    res['after_stop'], res['after_stop_stdouterr'] = snapshot(
        wc, wid, ids, name, with_streams=True)
    res['after_stop']['settled'] = settled
    res['after_stop']['log'] = read_text(os.path.join(REF, name, 'log.txt'))
    time.sleep(1)
    t0 = time.time()
    try:
        res['restart_returned'] = wc.restart_workflow(wid)
    except Exception as e:
        res['restart_error'] = '%s: %s' % (type(e).__name__, e)
        res['restart_returned'] = None
    log('restart_workflow returned %r in %.1fs' % (res['restart_returned'],
                                                   time.time() - t0))
    time.sleep(0.5)
    res['immediately_after_restart'], _ = snapshot(wc, wid, ids, name)
    wc.wait_workflow(wid, timeout=90)
    wst = wc.workflow_status(wid)
    log('after restart, workflow status', wst)
    if wst != 'workflow_done':
        res['note'] += ' restarted workflow not done after 90 s; stopped. '
        wc.stop_workflow(wid)
        time.sleep(3)
    final, streams = snapshot(wc, wid, ids, name, with_streams=True)
    res['after_restart'] = dict(final)
    res['after_restart']['log'] = read_text(os.path.join(REF, name, 'log.txt'))
    res['after_restart_stdouterr'] = streams
    out = {'workflow_status': final['workflow_status'], 'jobs': final['jobs'],
           'note': (res['note'] + 'Top-level workflow_status/jobs are the '
                    'final state after restart_workflow. The workflow was '
                    'stopped (stop_workflow) ~1.5 s after job "long" was '
                    'seen running; see before_stop, immediately_after_stop, '
                    'after_stop (once no job is running), restart_returned, '
                    'immediately_after_restart, after_restart.').strip()}
    for k, v in res.items():
        if k != 'note':
            out[k] = v
    return out


def child(name):
    try:
        if name == 'stop_restart':
            res = run_stop_restart()
        else:
            res = run_one(name)
    except Exception as e:
        traceback.print_exc()
        res = {'workflow_status': None, 'jobs': [],
               'note': 'run_outcomes.py error: %s: %s' % (type(e).__name__,
                                                           e)}
    os.makedirs(OUT_DIR, exist_ok=True)
    with open(os.path.join(OUT_DIR, name + '.json'), 'w') as f:
        json.dump(res, f, indent=2, ensure_ascii=False, sort_keys=False)
        f.write('\n')
    summary = ', '.join('%s=%s/%s/%s/%s' % (j['name'], j['status'],
                                            j['exit_status'], j['exit_value'],
                                            j['signal'])
                        for j in res.get('jobs', []))
    log('%s: %s | %s' % (name, res.get('workflow_status'), summary))
    # light mode keeps engine threads around; do not wait for them
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def main(argv):
    if len(argv) == 3 and argv[1] == '--one':
        child(argv[2])
        return
    names = argv[1:] or sorted(
        f[:-5] for f in os.listdir(WF_DIR) if f.endswith('.json'))
    for name in names:
        log('=== %s' % name)
        t0 = time.time()
        try:
            subprocess.run([sys.executable, os.path.abspath(__file__),
                            '--one', name], timeout=HARD_TIMEOUT)
        except subprocess.TimeoutExpired:
            log('%s: child process killed after %d s' % (name, HARD_TIMEOUT))
            with open(os.path.join(OUT_DIR, name + '.json'), 'w') as f:
                json.dump({'workflow_status': 'timeout', 'jobs': [],
                           'note': 'child process hung for %d s and was '
                           'killed' % HARD_TIMEOUT}, f, indent=2)
        log('%s took %.1fs' % (name, time.time() - t0))


if __name__ == '__main__':
    main(sys.argv)
