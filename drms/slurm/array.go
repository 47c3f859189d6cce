package slurm

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
	"github.com/somaflow/somaflow/model"
	"github.com/somaflow/somaflow/privdir"
)

// Job arrays (setting arrays=true), through drms/batch's arrays: the
// dispatcher picks the task by $SLURM_ARRAY_TASK_ID; Slurm's own output of
// each task goes to <spool>/<W>/<array>.<task>.drms.out, and the array's
// job id to <spool>/<W>/<array>.jobid once sbatch answered. A task's
// handle is ARRAYID_TASK, which squeue -r, scontrol, sacct and scancel all
// take.

// arrayLookup caches what Slurm said about an array's name, for the Locate
// calls that follow an uncertain SubmitArray (one per task).
type arrayLookup struct {
	id   string // "" when Slurm had no array of that name
	when time.Time
}

// arrayLookupTTL is how long an arrayLookup is used.
const arrayLookupTTL = 5 * time.Second

// arrayOf is the array job id of a task id ARRAYID_TASK.
func arrayOf(id string) string {
	a, _, _ := strings.Cut(id, "_")
	return a
}

// presetOutcome is the outcome of a handle whose job never reached Slurm.
func presetOutcome(st handleState) *drms.Outcome {
	if st.Ended == "dependency" {
		return &drms.Outcome{Status: model.JobFailed, ExitStatus: model.ExitAbortedBefore, Reason: st.Reason}
	}
	return drms.NotStarted(st.Reason)
}

// presetHandle is the handle of a job that never reached Slurm and whose
// outcome is already known: kind "refused" (sbatch refused its array
// group: failed/aborted with reason) or "dependency" (a dependency had
// already failed: aborted_before_running). Status reports it Ended at once;
// Kill does nothing.
func (b *Backend) presetHandle(spec drms.JobSpec, kind, reason string) drms.Handle {
	p := b.spool.Paths(spec)
	st, _ := json.Marshal(handleState{Name: spec.Name(), Status: p.Status, Started: p.Started, Output: p.Output, Ended: kind, Reason: reason})
	return drms.Handle{Version: HandleVersion, ID: kind + "-" + spec.Name(), State: st}
}

// taskHandle is the handle of task task of array arr (id ARRAYID_TASK, or
// the task's own job id when the array's id is not known).
func (b *Backend) taskHandle(id string, spec drms.JobSpec, arr, task string) drms.Handle {
	p := b.spool.Paths(spec)
	st, _ := json.Marshal(handleState{Name: arr, Status: p.Status, Started: p.Started,
		Output: filepath.Join(p.Dir, arr+"."+task+".drms.out"), Task: task, Limit: spec.Resources.Walltime})
	return drms.Handle{Version: HandleVersion, ID: id, State: st}
}

// SubmitArray implements drms.ArraySubmitter (setting arrays=true): one
// sbatch per compatible group of specs (a group of one is a plain Submit),
// one handle per spec in order. Errors: when nothing was submitted, sbatch's
// refusal of every spec for one reason is a *drms.StartError, an unreachable
// slurmctld wraps drms.ErrUnavailable; when some groups were submitted and
// another could not be (or an sbatch timed out and its array was not
// found), the error wraps drms.ErrSubmitUncertain and Locate tells, without
// a Slurm call for groups whose outcome this call knew, which tasks reached
// Slurm. When sbatch refused some groups but not all, or for different
// reasons, the refused specs get handles that Status reports failed/aborted
// with sbatch's message, so that one bad group does not fail the others.
func (b *Backend) SubmitArray(ctx context.Context, specs []drms.JobSpec) ([]drms.Handle, error) {
	if !b.arrays {
		return nil, errors.New("slurm: job arrays are off (setting arrays=true turns them on)")
	}
	for _, s := range specs {
		if s.EngineTag != b.cfg.EngineTag {
			return nil, fmt.Errorf("slurm: job %s has engine tag %q, this backend %q", s.Name(), s.EngineTag, b.cfg.EngineTag)
		}
	}
	return batch.ArraySubmit{
		Name: "slurm", Max: b.arrayMax(ctx), One: b.Submit, Chunk: b.submitChunk,
		Refused: func(spec drms.JobSpec, reason string) drms.Handle { return b.presetHandle(spec, "refused", reason) },
	}.Submit(ctx, specs)
}

// arrayMax is the largest number of tasks in one array: slurmctld's
// MaxArraySize (asked once), else 1000.
func (b *Backend) arrayMax(ctx context.Context) int {
	b.mu.Lock()
	m := b.maxArray
	b.mu.Unlock()
	if m == 0 {
		b.loadConfig(ctx)
		b.mu.Lock()
		m = b.maxArray
		b.mu.Unlock()
	}
	if m <= 0 {
		m = 1000
	}
	return m
}

// submitChunk submits specs[idx...] (two or more, one group) as one array.
func (b *Backend) submitChunk(ctx context.Context, specs []drms.JobSpec, idx []int) ([]drms.Handle, error) {
	first := specs[idx[0]]
	dirs, err := Directives(first.NativeSpec)
	if err != nil {
		return nil, err
	}
	af, err := b.spool.WriteArray(b.cfg.ExecPath, specs, idx, "$SLURM_ARRAY_TASK_ID", dirs)
	if err != nil {
		return nil, fmt.Errorf("slurm: %w", err)
	}
	name, dir, dispatcher, cleanup := af.Name, af.Dir, af.Dispatcher, af.Remove
	output := filepath.Join(dir, name+".%a.drms.out")
	args, err := b.sbatchArgs(first, name, dispatcher, dir, output, []string{fmt.Sprintf("--array=0-%d", len(idx)-1)})
	if err != nil {
		cleanup()
		return nil, err
	}
	handles := func(id string) []drms.Handle {
		// Best effort: Locate finds the id here without asking Slurm.
		_ = privdir.WriteFileAtomic(filepath.Join(dir, name+".jobid"), []byte(id+"\n"))
		b.mu.Lock()
		b.arrayIDs[name] = arrayLookup{id: id, when: time.Now()}
		b.mu.Unlock()
		b.submitted(id)
		hs := make([]drms.Handle, len(idx))
		for k, i := range idx {
			t := strconv.Itoa(k)
			hs[k] = b.taskHandle(id+"_"+t, specs[i], name, t)
		}
		return hs
	}
	out, stderr, err := b.cmds.Run(ctx, b.submitTimeout, sbatchEnv(), "sbatch", args...)
	if err == nil {
		id, _, _ := strings.Cut(strings.TrimSpace(out), ";")
		if isNumber(id) {
			return handles(id), nil
		}
		err = fmt.Errorf("sbatch printed %q, not a job id", strings.TrimSpace(out))
	} else if !errors.Is(err, batch.ErrTimeout) && !batch.Signaled(err) {
		cleanup()
		if isUnavailable(stderr) {
			return nil, fmt.Errorf("slurm: sbatch: %s: %w", batch.OneLine(stderr), drms.ErrUnavailable)
		}
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return nil, &drms.StartError{Reason: batch.Refusal("sbatch refused the job array", ee, stderr)}
		}
		return nil, fmt.Errorf("slurm: sbatch: %w", err)
	}
	for i := 0; i < 2; i++ {
		if i > 0 {
			select {
			case <-time.After(b.lookupDelay):
			case <-ctx.Done():
				return nil, fmt.Errorf("slurm: sbatch array %s: %v: %w", name, err, drms.ErrSubmitUncertain)
			}
		}
		if id, found, lerr := b.findByName(ctx, name, true); lerr == nil && found {
			return handles(id), nil
		}
	}
	return nil, fmt.Errorf("slurm: sbatch array %s: %v; not found by name afterwards: %w", name, err, drms.ErrSubmitUncertain)
}

// locateTask is Locate for an attempt whose batch script says it is task
// task of array arr: the array's id from the spool (written when sbatch
// answered), else from squeue by name, else (the task ran but Slurm and the
// spool lost the array's id) the task's own job id from its started file;
// with accounting, sacct by name; never submitted when Slurm has no such
// array and the script is younger than MinJobAge (or accounting has none).
func (b *Backend) locateTask(ctx context.Context, spec drms.JobSpec, arr, task string) (drms.Handle, bool, bool, error) {
	p := b.spool.Paths(spec)
	found := func(id string) (drms.Handle, bool, bool, error) {
		return b.taskHandle(id+"_"+task, spec, arr, task), true, false, nil
	}
	if data, err := os.ReadFile(filepath.Join(p.Dir, arr+".jobid")); err == nil {
		if id := strings.TrimSpace(string(data)); isNumber(id) {
			return found(id)
		}
	}
	scriptInfo, serr := os.Stat(p.Script)
	if serr != nil {
		return drms.Handle{}, false, true, nil // removed: sbatch refused it
	}
	b.mu.Lock()
	c, cached := b.arrayIDs[arr]
	b.mu.Unlock()
	if !cached || time.Since(c.when) > arrayLookupTTL {
		b.loadConfig(ctx)
		now := time.Now()
		id, ok, err := b.findByName(ctx, arr, true)
		if err != nil {
			return drms.Handle{}, false, false, err
		}
		if !ok && b.accounting(ctx) {
			out, stderr, err := b.cmds.Run(ctx, b.cmdTimeout, nil, "sacct", "-n", "-P", "-X", "-u", b.user, "--name", arr, "-S", scriptInfo.ModTime().Add(-time.Hour).Format("2006-01-02T15:04:05"), "-o", "JobID,JobName")
			if err != nil {
				return drms.Handle{}, false, false, b.cmdError("sacct", stderr, err)
			}
			for _, line := range strings.Split(out, "\n") {
				jid, name, _ := strings.Cut(strings.TrimSpace(line), "|")
				if a := arrayOf(jid); name == arr && isNumber(a) && strings.Contains(jid, "_") && (id == "" || idLess(id, a)) {
					id, ok = a, true
				}
			}
		}
		c = arrayLookup{id: id, when: now}
		b.mu.Lock()
		b.arrayIDs[arr] = c
		b.mu.Unlock()
	}
	if c.id != "" {
		return found(c.id)
	}
	if si, err := batch.ReadStarted(p.Started); err == nil && si != nil && isJobID(si.JobID) {
		// It ran, but its array's id is lost: its own job id serves (squeue
		// and scontrol know it; its status file says how it ended).
		return b.taskHandle(si.JobID, spec, arr, task), true, false, nil
	}
	if b.accounting(ctx) {
		return drms.Handle{}, false, true, nil // accounting keeps every job
	}
	b.mu.Lock()
	age := b.minJobAge
	b.mu.Unlock()
	if age > 0 && c.when.Sub(scriptInfo.ModTime()) < age {
		return drms.Handle{}, false, true, nil
	}
	return drms.Handle{}, false, false, nil
}

var _ drms.ArraySubmitter = (*Backend)(nil)
