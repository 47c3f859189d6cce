#!/usr/bin/env python3
"""Build reference workflows with soma-workflow's own Python API and write
each one, untouched, with soma_workflow.client.Helper.serialize to
workflows/<name>.json.

Run (see README.md):
    PYTHONPATH=/tmp/swf/python HOME=<scratch> TMPDIR=<scratch> python3 gen.py

Every path a command uses lies under REF (/tmp/somaflow-ref/<workflow name>/);
run_outcomes.py recreates /tmp/somaflow-ref/<name>/ (empty) before running a
workflow, and jobs create any sub-directory they need.
"""
import os
import sys

from soma_workflow.client import (Job, BarrierJob, Group, Workflow, Helper,
                                  FileTransfer, SharedResourcePath,
                                  TemporaryPath, OptionPath)

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, 'workflows')
REF = '/tmp/somaflow-ref'

WORKFLOWS = {}   # name -> (description, builder)


def wf(description):
    def deco(fn):
        WORKFLOWS[fn.__name__] = (description, fn)
        return fn
    return deco


def d(name, *rest):
    """path under the workflow's own reference directory"""
    return os.path.join(REF, name, *rest)


def sh(script, **kw):
    return Job(['sh', '-c', script], **kw)


# ---------------------------------------------------------------- basics
@wf('one job, one command, no dependencies')
def single_job():
    j = Job(['sh', '-c', 'echo hello > %s' % d('single_job', 'out.txt')],
            name='hello')
    return Workflow([j], name='single_job')


@wf('chain of 5 jobs j1 -> j2 -> j3 -> j4 -> j5, each appends to a file')
def chain5():
    f = d('chain5', 'chain.txt')
    jobs = [sh('echo j%d >> %s' % (i, f), name='j%d' % i) for i in range(1, 6)]
    deps = [(jobs[i], jobs[i + 1]) for i in range(4)]
    return Workflow(jobs, dependencies=deps, name='chain5')


@wf('fan-out: root -> 4 leaves')
def fan_out():
    root = sh('echo root > %s' % d('fan_out', 'root.txt'), name='root')
    leaves = [sh('cat %s > %s' % (d('fan_out', 'root.txt'),
                                  d('fan_out', 'leaf%d.txt' % i)),
                 name='leaf%d' % i) for i in range(4)]
    return Workflow([root] + leaves, dependencies=[(root, l) for l in leaves],
                    name='fan_out')


@wf('fan-in: 4 sources -> sink')
def fan_in():
    srcs = [sh('echo s%d > %s' % (i, d('fan_in', 's%d.txt' % i)),
               name='src%d' % i) for i in range(4)]
    sink = sh('cat %s/s0.txt %s/s1.txt %s/s2.txt %s/s3.txt > %s'
              % ((d('fan_in'),) * 4 + (d('fan_in', 'sink.txt'),)),
              name='sink')
    return Workflow(srcs + [sink], dependencies=[(s, sink) for s in srcs],
                    name='fan_in')


@wf('diamond: a -> b, a -> c, b -> d, c -> d')
def diamond():
    a = sh('echo a > %s' % d('diamond', 'a.txt'), name='a')
    b = sh('cat %s > %s' % (d('diamond', 'a.txt'), d('diamond', 'b.txt')),
           name='b')
    c = sh('cat %s > %s' % (d('diamond', 'a.txt'), d('diamond', 'c.txt')),
           name='c')
    dd = sh('cat %s %s > %s' % (d('diamond', 'b.txt'), d('diamond', 'c.txt'),
                                d('diamond', 'd.txt')), name='d')
    return Workflow([a, b, c, dd], dependencies=[(a, b), (a, c), (b, dd),
                                                 (c, dd)],
                    name='diamond')


@wf('display groups only (no dependency names a group, so no barriers)')
def groups():
    a = Job(['true'], name='a')
    b = Job(['true'], name='b')
    c = Job(['true'], name='c')
    e = Job(['true'], name='e')
    g1 = Group([b, c], name='group_bc')
    g2 = Group([e], name='group_e')
    return Workflow([a, b, c, e], dependencies=[(a, b)],
                    root_group=[a, g1, g2], name='groups')


@wf('nested groups: outer = {x, inner = {y, z}}, display only')
def nested_groups():
    x = Job(['true'], name='x')
    y = Job(['true'], name='y')
    z = Job(['true'], name='z')
    w = Job(['true'], name='w')
    inner = Group([y, z], name='inner')
    outer = Group([x, inner], name='outer')
    return Workflow([x, y, z, w], dependencies=[(y, z)],
                    root_group=[outer, w], name='nested_groups')


@wf('dependencies naming groups: job->G1, G1->G2 (G2 contains a sub-group), '
    'G2->job; soma-workflow adds <G>_input/<G>_output BarrierJobs')
def group_deps():
    f = d('group_deps', 'log.txt')
    start = sh('echo start >> %s' % f, name='start')
    a1 = sh('echo a1 >> %s' % f, name='a1')
    a2 = sh('echo a2 >> %s' % f, name='a2')
    b1 = sh('echo b1 >> %s' % f, name='b1')
    s1 = sh('echo s1 >> %s' % f, name='s1')
    s2 = sh('echo s2 >> %s' % f, name='s2')
    end = sh('echo end >> %s' % f, name='end')
    ga = Group([a1, a2], name='GA')
    sub = Group([s1, s2], name='SUB')
    gb = Group([b1, sub], name='GB')
    return Workflow([start, a1, a2, b1, s1, s2, end],
                    dependencies=[(start, ga), (ga, gb), (gb, end)],
                    root_group=[start, ga, gb, end], name='group_deps')


@wf('explicit BarrierJob joining 3 jobs, then 2 jobs after it')
def barrier_explicit():
    f = d('barrier_explicit', 'log.txt')
    firsts = [sh('echo p%d >> %s' % (i, f), name='p%d' % i) for i in range(3)]
    bar = BarrierJob(name='barrier')
    afters = [sh('echo q%d >> %s' % (i, f), name='q%d' % i) for i in range(2)]
    deps = [(p, bar) for p in firsts] + [(bar, q) for q in afters]
    return Workflow(firsts + [bar] + afters, dependencies=deps,
                    name='barrier_explicit')


@wf('workflow env + job env (+ env_builder_code); jobs dump env vars and '
    'fail (exit 1) on mismatch')
def env():
    f = d('env', '%s.txt')
    chk = ('echo "WF_VAR=$WF_VAR SHARED=$SHARED JOB_VAR=$JOB_VAR '
           'BUILT=$BUILT" > %s; test "$WF_VAR" = wf && test "$SHARED" = %s '
           '&& test "$JOB_VAR" = "%s" && test "$BUILT" = built')
    j1 = sh(chk % (f % 'j1', 'job', 'j1'), name='j1_env',
            env={'SHARED': 'job', 'JOB_VAR': 'j1'})
    j2 = sh(chk % (f % 'j2', 'wf', ''), name='j2_noenv')
    code = ('import json\n'
            'print(json.dumps({"BUILT": "built", "SHARED": "builder"}))\n')
    return Workflow([j1, j2], name='env',
                    env={'WF_VAR': 'wf', 'SHARED': 'wf'},
                    env_builder_code=code)


@wf('priorities 0, 1, 5, 10, -1 on independent jobs')
def priorities():
    f = d('priorities', 'order.txt')
    jobs = [sh('echo p%d >> %s' % (p, f), name='prio%d' % p, priority=p)
            for p in (0, 1, 5, 10, -1)]
    return Workflow(jobs, name='priorities')


@wf('stdin, stdout_file, stderr_file, join_stderrout, working_directory '
    '(first job creates the input file and directories)')
def streams():
    base = d('streams')
    prep = sh('mkdir -p %s/wd %s/out && printf "line1\\nline2\\n" > %s/in.txt'
              % (base, base, base), name='prepare')
    cat = Job(['sh', '-c', 'cat; echo to-stderr >&2; pwd > where.txt'],
              name='stdin_stdout_stderr_wd', stdin='%s/in.txt' % base,
              stdout_file='%s/out/cat.out' % base,
              stderr_file='%s/out/cat.err' % base,
              working_directory='%s/wd' % base)
    joined = Job(['sh', '-c', 'echo out1; echo err1 >&2; echo out2'],
                 name='join_stdout_only', join_stderrout=True,
                 stdout_file='%s/out/joined.out' % base)
    joined2 = Job(['sh', '-c', 'echo out1; echo err1 >&2'],
                  name='join_with_stderr_file', join_stderrout=True,
                  stdout_file='%s/out/joined2.out' % base,
                  stderr_file='%s/out/joined2.err' % base)
    nostderr = Job(['sh', '-c', 'echo out; echo err >&2'],
                   name='stdout_file_no_stderr_file',
                   stdout_file='%s/out/nostderr.out' % base)
    newdir = Job(['sh', '-c', 'echo x'], name='stdout_in_new_dir',
                 stdout_file='%s/out/new/sub/x.out' % base)
    jobs = [prep, cat, joined, joined2, nostderr, newdir]
    return Workflow(jobs, dependencies=[(prep, j) for j in jobs[1:]],
                    name='streams')


@wf('native_specification (string and list, job and workflow level) and '
    'parallel_job_info')
def native_spec():
    a = Job(['true'], name='ns_string',
            native_specification='-l walltime=10:00:00')
    b = Job(['true'], name='ns_list',
            native_specification=['--mem=20g', '--time=2-00:00:00'])
    c = Job(['true'], name='ns_inherited_from_workflow')
    p = Job(['true'], name='parallel',
            parallel_job_info={'config_name': 'native', 'nodes_number': 1,
                               'cpu_per_node': 2})
    return Workflow([a, b, c, p], name='native_spec',
                    native_specification='-q default_queue')


@wf('param_dict %(x)s substitution: whole element, embedded, %(n)d, two '
    'placeholders in one element, unknown name, list value')
def param_dict():
    base = d('param_dict')
    j = Job(['sh', '-c', 'printf "%s\\n" "$@" > ' + base + '/args.txt',
             'argv0', '%(whole)s', 'pre-%(emb)s-post', 'n=%(num)d',
             '%(a)s+%(b)s', '%(unknown)s', '%(lst)s', '%(flt)f'],
            name='subst',
            param_dict={'whole': 'W', 'emb': 'E', 'num': 7, 'a': 'A',
                        'b': 'B', 'lst': ['l1', 'l2'], 'flt': 1.5})
    return Workflow([j], name='param_dict')


@wf('has_outputs + param_links (plain link and list_to_sequence transform)')
def param_links():
    base = d('param_links')
    prod = Job(['sh', '-c',
                'echo \'{"out": "produced", "lst": ["first", "second"]}\' '
                '> "$SOMAWF_OUTPUT_PARAMS"'],
               name='producer', has_outputs=True)
    cons = Job(['sh', '-c', 'echo "$1 $2" > %s/consumer.txt' % base, 'argv0',
                '%(inp)s', '%(item)s'],
               name='consumer', param_dict={'inp': 'default', 'item': 'none'})
    links = {cons: {'inp': [(prod, 'out')],
                    'item': [(prod, 'lst', ('list_to_sequence', 1))]}}
    return Workflow([prod, cons], name='param_links', param_links=links)


@wf('use_input_params_file + configuration; jobs copy $SOMAWF_INPUT_PARAMS')
def input_params_file():
    base = d('input_params_file')
    a = Job(['sh', '-c', 'cat "$SOMAWF_INPUT_PARAMS" > %s/a.json' % base],
            name='with_configuration', use_input_params_file=True,
            param_dict={'x': 1, 'y': 'why'},
            configuration={'conf_key': 'conf_val'})
    b = Job(['sh', '-c', 'cat "$SOMAWF_INPUT_PARAMS" > %s/b.json' % base],
            name='explicit_input_params_file', use_input_params_file=True,
            param_dict={'z': [1, 2]},
            input_params_file='%s/b_in.json' % base)
    c = Job(['sh', '-c', 'echo "$1" > %s/c.txt' % base, 'argv0',
             '%(configuration_dict)s'],
            name='configuration_no_input_file',
            param_dict={'p': 1}, configuration={'k': 'v'})
    return Workflow([a, b, c], name='input_params_file')


@wf('FileTransfer: input file, output file, input dir with (transfer, '
    'relative) tuple, client_paths; used in commands and referenced files')
def file_transfers():
    base = d('file_transfers')
    fin = FileTransfer(True, '%s/client/in.txt' % base, name='input file')
    fout = FileTransfer(False, '%s/client/out.txt' % base, name='output file')
    fdir = FileTransfer(True, '%s/client/indir' % base)
    fmulti = FileTransfer(True, '%s/client/img.nii' % base,
                          client_paths=['%s/client/img.nii' % base,
                                        '%s/client/img.nii.minf' % base])
    j1 = Job(['sh', '-c', 'cat "$1" "$2" > "$3"; ls "$4" > /dev/null',
              'argv0', fin, (fdir, 'f.txt'), fout, fmulti],
             name='copy', referenced_input_files=[fin, fdir, fmulti],
             referenced_output_files=[fout])
    j2 = Job(['cat', fout], name='read_output', referenced_input_files=[fout])
    return Workflow([j1, j2], dependencies=[(j1, j2)], name='file_transfers')


@wf('SharedResourcePath in command and stdout (needs translation files; '
    'light mode has none)')
def shared_paths():
    srp = SharedResourcePath('data/in.txt', namespace='MyApp',
                             uuid='my_uuid_1', disposal_timeout=None)
    srp_out = SharedResourcePath('out.txt', namespace='MyApp',
                                 uuid='my_uuid_2')
    j = Job(['cat', srp], name='cat_shared', stdout_file=srp_out)
    return Workflow([j], name='shared_paths')


@wf('TemporaryPath file and directory: writer -> reader')
def temporary_paths():
    base = d('temporary_paths')
    tf = TemporaryPath(name='tmpfile', suffix='.txt')
    td = TemporaryPath(is_directory=True, name='tmpdir')
    w = Job(['sh', '-c', 'echo data > "$1"; echo inside > "$2/f.txt"; '
             'echo "$1" > %s/paths.txt; echo "$2" >> %s/paths.txt'
             % (base, base), 'argv0', tf, td],
            name='writer', referenced_output_files=[tf, td])
    r = Job(['sh', '-c', 'cat "$1" "$2/f.txt" > %s/read.txt' % base,
             'argv0', tf, td],
            name='reader', referenced_input_files=[tf, td])
    return Workflow([w, r], dependencies=[(w, r)], name='temporary_paths')


@wf('OptionPath with a string parent and with a TemporaryPath parent, '
    'uri as string and as dict')
def option_paths():
    base = d('option_paths')
    o1 = OptionPath('%s/image.nii' % base, uri='?x=1&y=2', name='opt1')
    o2 = OptionPath('%s/image2.nii' % base, uri={'resample': 'yes'})
    tmp = TemporaryPath(suffix='.nii', name='tmp')
    o3 = OptionPath(tmp, uri='?z=3')
    j = Job(['sh', '-c', 'printf "%s\\n" "$@" > ' + base + '/args.txt',
             'argv0', o1, o2, o3], name='print_option_paths',
            referenced_output_files=[tmp])
    return Workflow([j], name='option_paths')


@wf('numeric command elements and a nested-list command element')
def command_types():
    base = d('command_types')
    j = Job(['sh', '-c', 'printf "%s\\n" "$@" > ' + base + '/args.txt',
             'argv0', 42, 3.5, ['a', 'b', 'c'], ['x', ['y', 'z']]],
            name='mixed_command')
    return Workflow([j], name='command_types')


@wf('user_storage (workflow and job), disposal_timeout, uuid (workflow and '
    'job)')
def storage_uuid():
    j = Job(['true'], name='with_storage', user_storage={'k': 'v'},
            disposal_timeout=5)
    j.uuid = 'f0e1d2c3-0000-4000-8000-000000000001'
    k = Job(['true'], name='plain', disposal_timeout=1000)
    w = Workflow([j, k], name='storage_uuid', user_storage=['wf', 1],
                 disposal_timeout=12)
    w.uuid = 'a1b2c3d4-0000-4000-8000-000000000002'
    return w


@wf('non-ASCII job, group and workflow names')
def non_ascii_name():
    a = Job(['true'], name='tâche été ✓')
    b = Job(['true'], name='日本語ジョブ')
    g = Group([b], name='groupe à')
    return Workflow([a, b], dependencies=[(a, b)], root_group=[a, g],
                    name='flux «déjà»')


@wf('unicode in commands, env, param_dict and file contents')
def unicode():
    base = d('unicode')
    j = Job(['sh', '-c', 'echo "héllo $GREET $1" > %s/ü.txt' % base,
             'argv0', '%(p)s'], name='ünïcødé',
            env={'GREET': 'grüß'}, param_dict={'p': 'π≈3.14'})
    k = Job(['cat', '%s/ü.txt' % base], name='read_ü')
    return Workflow([j, k], dependencies=[(j, k)], name='ユニコード',
                    env={'WF_Ü': 'ö'})


# ---------------------------------------------------------------- failures
@wf('job exits 3; it has direct and transitive dependants; an independent '
    'job succeeds')
def fail_exit3():
    bad = sh('exit 3', name='fails_exit3')
    child = Job(['true'], name='child')
    grandchild = Job(['true'], name='grandchild')
    indep = Job(['true'], name='independent')
    return Workflow([bad, child, grandchild, indep],
                    dependencies=[(bad, child), (child, grandchild)],
                    name='fail_exit3')


@wf('various exit codes: 0, 1, 2, 42, 127, 255')
def exit_codes():
    jobs = [sh('exit %d' % n, name='exit%d' % n) for n in (0, 1, 2, 42, 127,
                                                           255)]
    return Workflow(jobs, name='exit_codes')


@wf("job killed by a signal: sh -c 'kill -9 $$' and 'kill -TERM $$', with "
    "dependants")
def signal_kill():
    k9 = sh('kill -9 $$', name='kill9')
    k15 = sh('kill -TERM $$', name='kill15')
    after9 = Job(['true'], name='after_kill9')
    after15 = Job(['true'], name='after_kill15')
    return Workflow([k9, k15, after9, after15],
                    dependencies=[(k9, after9), (k15, after15)],
                    name='signal_kill')


@wf('argv[0] does not exist; a dependant')
def cmd_not_found():
    j = Job(['/nonexistent/somaflow-no-such-command', 'x'], name='not_found')
    k = Job(['true'], name='after_not_found')
    return Workflow([j, k], dependencies=[(j, k)], name='cmd_not_found')


@wf('working_directory does not exist; a dependant')
def missing_workdir():
    j = Job(['pwd'], name='bad_wd',
            working_directory=d('missing_workdir', 'does', 'not', 'exist'))
    k = Job(['true'], name='after_bad_wd')
    return Workflow([j, k], dependencies=[(j, k)], name='missing_workdir')


@wf('stdin file does not exist; a dependant')
def missing_stdin():
    j = Job(['cat'], name='bad_stdin',
            stdin=d('missing_stdin', 'no-such-input.txt'))
    k = Job(['true'], name='after_bad_stdin')
    return Workflow([j, k], dependencies=[(j, k)], name='missing_stdin')


@wf('dependency cycle a -> b -> a, plus c (soma-workflow does not check)')
def cycle():
    a = Job(['true'], name='a')
    b = Job(['true'], name='b')
    c = Job(['true'], name='c')
    return Workflow([a, b, c], dependencies=[(a, b), (b, a)], name='cycle')


@wf('stop/restart: first -> long (sleep 30) -> after1 -> after2, plus '
    'side (sleep 30); run_outcomes.py stops it while long runs, then '
    'restarts it')
def stop_restart():
    base = d('stop_restart')
    first = sh('echo first >> %s/log.txt' % base, name='first')
    long = sh('echo long-start >> %s/log.txt; sleep 30; echo long-end >> '
              '%s/log.txt' % (base, base), name='long')
    a1 = sh('echo after1 >> %s/log.txt' % base, name='after1')
    a2 = sh('echo after2 >> %s/log.txt' % base, name='after2')
    side = sh('sleep 30', name='side')
    return Workflow([first, long, a1, a2, side],
                    dependencies=[(first, long), (long, a1), (a1, a2)],
                    name='stop_restart')


# ---------------------------------------------------------------- engine-side jobs
# soma_workflow.custom_jobs classes run in soma-workflow's engine, no process.
def _final(base, name, param, fname):
    """a job that writes one parameter (Python repr of a list) to a file"""
    return Job(['sh', '-c', 'printf "%s\\n" "$1" > ' + base + '/' + fname,
                'argv0', '%(' + param + ')s'],
               name=name, param_dict={param: ''})


@wf('MapJob -> two shell jobs -> ReduceJob -> final, all by param_links')
def map_reduce():
    from soma_workflow.custom_jobs import MapJob, ReduceJob
    base = d('map_reduce')
    prod = sh('echo \'{"outputs": ["a", "b"]}\' > "$SOMAWF_OUTPUT_PARAMS"',
              name='produce', has_outputs=True)
    work = [Job(['sh', '-c',
                 'printf "%%s-done\\n" "$1" > %s/w%d.txt; '
                 'printf \'{"output": "%%s-done"}\' "$1" > "$SOMAWF_OUTPUT_PARAMS"'
                 % (base, i), 'argv0', '%(input)s'],
                name='work_%d' % i, param_dict={'input': ''}, has_outputs=True)
            for i in range(2)]
    mapj = MapJob(name='map')
    red = ReduceJob(name='reduce')
    final = _final(base, 'final', 'inputs', 'final.txt')
    links = {mapj: {'inputs': [(prod, 'outputs')]},
             work[0]: {'input': [(mapj, 'output_0')]},
             work[1]: {'input': [(mapj, 'output_1')]},
             red: {'input_0': [(work[0], 'output')],
                   'input_1': [(work[1], 'output')],
                   'lengths': [(mapj, 'lengths')]},
             final: {'inputs': [(red, 'outputs')]}}
    return Workflow([prod, mapj] + work + [red, final], name='map_reduce',
                    param_links=links)


@wf('LeaveOneOutJob (index 2) between a producer and train/test jobs')
def leave_one_out():
    from soma_workflow.custom_jobs import LeaveOneOutJob
    base = d('leave_one_out')
    prod = sh('echo \'{"outputs": [10, 20, 30, 40]}\' > "$SOMAWF_OUTPUT_PARAMS"',
              name='produce', has_outputs=True)
    loo = LeaveOneOutJob(param_dict={'index': 2})
    train = _final(base, 'train', 'inputs', 'train.txt')
    test = _final(base, 'test', 'input', 'test.txt')
    links = {loo: {'inputs': [(prod, 'outputs')]},
             train: {'inputs': [(loo, 'train')]},
             test: {'input': [(loo, 'test')]}}
    return Workflow([prod, loo, train, test], name='leave_one_out',
                    param_links=links)


@wf('CrossValidationFoldJob (fold 1 of 3, 7 items) and its train/test jobs')
def cross_validation():
    from soma_workflow.custom_jobs import CrossValidationFoldJob
    base = d('cross_validation')
    prod = sh('echo \'{"outputs": [0, 1, 2, 3, 4, 5, 6]}\' > "$SOMAWF_OUTPUT_PARAMS"',
              name='produce', has_outputs=True)
    cv = CrossValidationFoldJob(param_dict={'nfolds': 3, 'fold': 1})
    train = _final(base, 'train', 'inputs', 'train.txt')
    test = _final(base, 'test', 'inputs', 'test.txt')
    links = {cv: {'inputs': [(prod, 'outputs')]},
             train: {'inputs': [(cv, 'train')]},
             test: {'inputs': [(cv, 'test')]}}
    return Workflow([prod, cv, train, test], name='cross_validation',
                    param_links=links)


@wf('ListCatJob and StrCatJob fed by a producer, their results written')
def list_str_cat():
    from soma_workflow.custom_jobs import ListCatJob, StrCatJob
    base = d('list_str_cat')
    prod = sh('echo \'{"lists": [[1, 2], [], [3]], "strs": ["x", "y"]}\' '
              '> "$SOMAWF_OUTPUT_PARAMS"', name='produce', has_outputs=True)
    lcat = ListCatJob(name='list_cat')
    scat = StrCatJob(name='str_cat',
                     param_dict={'input_names': ['a', 'b'],
                                 'output_name': 'out', 'a': 'pre-'})
    lout = _final(base, 'list_out', 'inputs', 'list.txt')
    sout = _final(base, 'str_out', 'inputs', 'str.txt')
    links = {lcat: {'inputs': [(prod, 'lists')]},
             scat: {'b': [(prod, 'strs')]},
             lout: {'inputs': [(lcat, 'outputs')]},
             sout: {'inputs': [(scat, 'out')]}}
    return Workflow([prod, lcat, scat, lout, sout], name='list_str_cat',
                    param_links=links)


def build(name):
    return WORKFLOWS[name][1]()


def main(argv):
    os.makedirs(OUT, exist_ok=True)
    names = argv[1:] or list(WORKFLOWS)
    for name in names:
        w = build(name)
        path = os.path.join(OUT, name + '.json')
        Helper.serialize(path, w)
        print('wrote %s (%d jobs)' % (os.path.relpath(path, HERE),
                                      len(w.jobs)))
    print('%d workflows' % len(names))


if __name__ == '__main__':
    main(sys.argv)
