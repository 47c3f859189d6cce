package pbs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/somaflow/somaflow/drms"
	"github.com/somaflow/somaflow/drms/batch"
	"github.com/somaflow/somaflow/privdir"
)

// Job arrays (setting arrays=true; off by default: tested on recorded
// qstat outputs and fake commands only, as Slurm's Torque wrappers, the
// only PBS of CI, list no subjobs), through drms/batch's arrays: one
// `qsub -J 0-N` (PBS Pro) or `qsub -t 0-N` (Torque) of one dispatcher that
// picks the task by $PBS_ARRAY_INDEX (PBS Pro) or $PBS_ARRAYID (Torque).
// qsub prints the array's id "123[].server"; task N's handle is
// "123[N].server", which qstat -t, qdel and qhold take. PBS's own output
// of task N goes to <spool>/<W>/<array>.N.drms.out (PBS Pro's ^array_index^)
// or <spool>/<W>/<array>.drms.out-N (Torque appends -N itself). The
// array's id is written to <spool>/<W>/<array>.jobid once qsub answered.

// arrayIndex is the dispatcher's index expression, for both dialects.
const arrayIndex = "${PBS_ARRAY_INDEX:-${PBS_ARRAYID:-}}"

// taskID is the id of task task of the array whose id is arr ("123[].s").
func taskID(arr, task string) string {
	return strings.Replace(arr, "[]", "["+task+"]", 1)
}

// taskOutput is where PBS writes its own output of a task.
func taskOutput(d Dialect, dir, name, task string) string {
	if d == PBSPro {
		return filepath.Join(dir, name+"."+task+".drms.out")
	}
	return filepath.Join(dir, name+".drms.out-"+task)
}

func (b *Backend) taskHandle(d Dialect, id string, spec drms.JobSpec, arr, task string) drms.Handle {
	p := b.spool.Paths(spec)
	st, _ := json.Marshal(handleState{Name: arr, Status: p.Status, Started: p.Started, Output: taskOutput(d, p.Dir, arr, task), Task: task, Limit: spec.Resources.Walltime})
	return drms.Handle{Version: HandleVersion, ID: id, State: st}
}

// SubmitArray implements drms.ArraySubmitter (setting arrays=true): one
// qsub per compatible group of specs (a group of one is a plain Submit),
// at most max_array (default 1000) tasks each; errors as batch.ArraySubmit.
func (b *Backend) SubmitArray(ctx context.Context, specs []drms.JobSpec) ([]drms.Handle, error) {
	if !b.arrays {
		return nil, errors.New("pbs: job arrays are off (setting arrays=true turns them on)")
	}
	for _, s := range specs {
		if s.EngineTag != b.cfg.EngineTag {
			return nil, fmt.Errorf("pbs: job %s has engine tag %q, this backend %q", s.Name(), s.EngineTag, b.cfg.EngineTag)
		}
	}
	return batch.ArraySubmit{
		Name: "pbs", Max: b.maxArray, One: b.Submit, Chunk: b.submitChunk,
		Refused: func(spec drms.JobSpec, reason string) drms.Handle { return b.presetHandle(spec, "refused", reason) },
	}.Submit(ctx, specs)
}

// submitChunk submits specs[idx...] (two or more, one group) as one array.
func (b *Backend) submitChunk(ctx context.Context, specs []drms.JobSpec, idx []int) ([]drms.Handle, error) {
	d := b.Dialect(ctx)
	first := specs[idx[0]]
	af := b.spool.ArrayFiles(first)
	rng := []string{"-J", fmt.Sprintf("0-%d", len(idx)-1)}
	output := filepath.Join(af.Dir, af.Name+".^array_index^.drms.out")
	if d != PBSPro {
		rng[0] = "-t"
		output = filepath.Join(af.Dir, af.Name+".drms.out")
	}
	args, err := b.QsubArgs(d, af.Name, first, af.Dispatcher, output, rng)
	if err != nil {
		return nil, err // a bad native specification: nothing written
	}
	if af, err = b.spool.WriteArray(b.cfg.ExecPath, specs, idx, arrayIndex, nil); err != nil {
		return nil, fmt.Errorf("pbs: %w", err)
	}
	handles := func(id string) []drms.Handle {
		// Best effort: Locate finds the id here without asking PBS.
		_ = privdir.WriteFileAtomic(filepath.Join(af.Dir, af.Name+".jobid"), []byte(id+"\n"))
		hs := make([]drms.Handle, len(idx))
		for k, i := range idx {
			t := strconv.Itoa(k)
			hs[k] = b.taskHandle(d, taskID(id, t), specs[i], af.Name, t)
		}
		return hs
	}
	out, stderr, err := b.cmds.Run(ctx, b.submitTimeout, nil, "qsub", args...)
	if err == nil {
		if id := strings.TrimSpace(out); isJobID(id) && strings.Contains(id, "[]") {
			b.submitted(id)
			return handles(id), nil
		}
		err = fmt.Errorf("qsub printed %q, not a job array id", batch.OneLine(out))
	} else if !errors.Is(err, batch.ErrTimeout) && !batch.Signaled(err) {
		af.Remove()
		if isUnavailable(out + stderr) {
			return nil, fmt.Errorf("pbs: qsub: %s: %w", batch.OneLine(out+stderr), drms.ErrUnavailable)
		}
		var ee *exec.ExitError
		if errors.As(err, &ee) && ee.Exited() {
			return nil, &drms.StartError{Reason: batch.Refusal("qsub refused the job array", ee, stderr+"\n"+out)}
		}
		return nil, fmt.Errorf("pbs: qsub: %w", err)
	}
	for i := 0; i < 2; i++ {
		if i > 0 {
			select {
			case <-time.After(b.lookupDelay):
			case <-ctx.Done():
				return nil, fmt.Errorf("pbs: qsub array %s: %v: %w", af.Name, err, drms.ErrSubmitUncertain)
			}
		}
		if jobs, lerr := b.list(ctx); lerr == nil {
			if id, found := byName(jobs, af.Name); found && strings.Contains(id, "[]") {
				return handles(id), nil
			}
		}
	}
	return nil, fmt.Errorf("pbs: qsub array %s: %v; not found by name afterwards: %w", af.Name, err, drms.ErrSubmitUncertain)
}

// locateTask is Locate for an attempt whose batch script says it is task
// task of array arr: the array's id from the spool (written when qsub
// answered), else from qstat by name, else the task's own id from its
// started file; otherwise nobody can tell.
func (b *Backend) locateTask(ctx context.Context, spec drms.JobSpec, arr, task string) (drms.Handle, bool, bool, error) {
	d := b.Dialect(ctx)
	p := b.spool.Paths(spec)
	if data, err := os.ReadFile(filepath.Join(p.Dir, arr+".jobid")); err == nil {
		if id := strings.TrimSpace(string(data)); isJobID(id) {
			return b.taskHandle(d, taskID(id, task), spec, arr, task), true, false, nil
		}
	}
	if si, err := batch.ReadStarted(p.Started); err == nil && si != nil && isJobID(si.JobID) {
		return b.taskHandle(d, si.JobID, spec, arr, task), true, false, nil
	}
	jobs, err := b.list(ctx)
	if err != nil {
		return drms.Handle{}, false, false, err
	}
	if id, found := byName(jobs, arr); found && strings.Contains(id, "[]") {
		return b.taskHandle(d, taskID(id, task), spec, arr, task), true, false, nil
	}
	return drms.Handle{}, false, false, nil
}

var _ drms.ArraySubmitter = (*Backend)(nil)
