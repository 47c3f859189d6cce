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
	"sync"
	"time"

	"github.com/somaflow/somaflow/drms"
	"github.com/somaflow/somaflow/drms/batch"
	"github.com/somaflow/somaflow/model"
	"github.com/somaflow/somaflow/privdir"
)

// Job arrays (setting arrays=true).
//
// SubmitArray groups the specs it is given by workflow, partition, parallel
// job info and native specification; a group of one is a plain sbatch, a
// larger group is cut into chunks of at most MaxArraySize tasks, and each
// chunk is ONE `sbatch --array=0-N` of ONE dispatcher script. Every task
// keeps the spool files of a plain job (its own batch script, env file,
// status and started files), so exec-job, Status and outcomes work exactly
// as for a plain job; the dispatcher only picks the task's script by
// $SLURM_ARRAY_TASK_ID, through a directory of links named by task id
// (the only expansion in the dispatcher is that variable, quoted and
// checked to be digits):
//
//	<spool>/<W>/<array>.sh            the dispatcher
//	<spool>/<W>/<array>.tasks/<task>  a link to the task's script
//	<spool>/<W>/<array>.jobid         the array's job id, written after sbatch answered
//	<spool>/<W>/<array>.<task>.drms.out  Slurm's own output of each task
//	<spool>/<W>/<attempt>.sh          the task's script, with a "# somaflow array <array> <task>" line
//
// The array's job name is sf-TAG-W-aJ-A (J and A of its first task). A
// task's handle is ARRAYID_TASK, which squeue -r, scontrol, sacct and
// scancel all take.

// taskMark starts the line of a task's batch script that names its array
// and task id; Locate reads it.
const taskMark = "# somaflow array "

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

// arrayName is the Slurm job name of an array whose first task is first.
func arrayName(first drms.JobSpec) string {
	return fmt.Sprintf("sf-%s-%d-a%d-%d", first.EngineTag, first.WorkflowID, first.JobID, first.Attempt)
}

// groupKey says which specs may share one array: same workflow (spool dir),
// partition, parallel job info and native specification. Working dir,
// command, environment and files differ freely (exec-job handles them).
func groupKey(s drms.JobSpec) string {
	k, _ := json.Marshal(struct {
		W int64
		Q string
		N []string
		P *model.ParallelJobInfo
	}{s.WorkflowID, s.Queue, s.NativeSpec, s.Parallel})
	return string(k)
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
		Output: filepath.Join(p.Dir, arr+"."+task+".drms.out"), Task: task})
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
	hs := make([]drms.Handle, len(specs))
	reasons := map[string]bool{}
	refused := 0
	var order []string
	groups := map[string][]int{}
	for i, s := range specs {
		if len(s.Argv) == 0 {
			hs[i] = b.presetHandle(s, "refused", "empty command")
			reasons["empty command"] = true
			refused++
			continue
		}
		k := groupKey(s)
		if _, ok := groups[k]; !ok {
			order = append(order, k)
		}
		groups[k] = append(groups[k], i)
	}
	max := b.arrayMax(ctx)
	var chunks [][]int
	for _, k := range order {
		g := groups[k]
		for len(g) > max {
			chunks = append(chunks, g[:max])
			g = g[max:]
		}
		chunks = append(chunks, g)
	}
	submitted := 0
	var stop, unsure error // a failure that stops the loop; an uncertain chunk
	for _, c := range chunks {
		var got []drms.Handle
		var err error
		if len(c) == 1 {
			var h drms.Handle
			h, err = b.Submit(ctx, specs[c[0]])
			got = []drms.Handle{h}
		} else {
			got, err = b.submitChunk(ctx, specs, c)
		}
		var se *drms.StartError
		switch {
		case err == nil:
			for k, i := range c {
				hs[i] = got[k]
			}
			submitted += len(c)
		case errors.As(err, &se):
			for _, i := range c {
				hs[i] = b.presetHandle(specs[i], "refused", se.Reason)
			}
			reasons[se.Reason] = true
			refused += len(c)
		case errors.Is(err, drms.ErrSubmitUncertain):
			unsure = err // Locate will tell; the other chunks go on
		default:
			stop = err
		}
		if stop != nil {
			break // slurmctld unreachable, a spool error: the rest is not tried
		}
	}
	switch {
	case stop == nil && unsure == nil && refused == len(specs) && len(reasons) == 1:
		for r := range reasons {
			return nil, &drms.StartError{Reason: r}
		}
	case stop == nil && unsure == nil:
		return hs, nil
	case submitted == 0 && unsure == nil:
		return nil, stop
	case stop == nil:
		stop = unsure
	}
	return nil, fmt.Errorf("slurm: %d of %d jobs surely submitted as arrays, then: %v: %w", submitted, len(specs), stop, drms.ErrSubmitUncertain)
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
	name := arrayName(first)
	dir := b.spool.Paths(first).Dir
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("slurm: create spool dir: %w", err)
	}
	dispatcher := filepath.Join(dir, name+".sh")
	tasks := filepath.Join(dir, name+".tasks")
	written := make([]bool, len(idx))
	cleanup := func() {
		for k, i := range idx {
			if written[k] {
				p := b.spool.Paths(specs[i])
				os.Remove(p.Script)
				os.Remove(p.Env)
			}
		}
		os.Remove(dispatcher)
		os.RemoveAll(tasks)
	}
	// Write every task's files, in parallel (each file is synced).
	errs := make([]error, len(idx))
	var wg sync.WaitGroup
	work := make(chan int)
	for w := 0; w < min(16, len(idx)); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := range work {
				s := specs[idx[k]]
				p, err := b.spool.Prepare(s)
				if err == nil {
					written[k] = true
					header := []string{
						"# somaflow job " + s.Name() + ": " + strings.ReplaceAll(s.JobName, "\n", " "),
						taskMark + name + " " + strconv.Itoa(k),
					}
					err = batch.WriteScript(p.Script, batch.Script(header, b.spool.ExecArgv(b.cfg.ExecPath, s)))
				}
				errs[k] = err
			}
		}()
	}
	for k := range idx {
		work <- k
	}
	close(work)
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		cleanup()
		return nil, fmt.Errorf("slurm: %w", err)
	}
	// <array>.tasks/<task> links to each task's script, so that the
	// dispatcher stays a few lines however many tasks (slurmctld sends it
	// with every task it starts).
	if err := os.Mkdir(tasks, 0o700); err != nil {
		cleanup()
		return nil, fmt.Errorf("slurm: %w", err)
	}
	for k, i := range idx {
		if err := os.Symlink(b.spool.Paths(specs[i]).Script, filepath.Join(tasks, strconv.Itoa(k))); err != nil {
			cleanup()
			return nil, fmt.Errorf("slurm: %w", err)
		}
	}
	dirs, err := Directives(first.NativeSpec)
	if err != nil {
		cleanup()
		return nil, err
	}
	sc := "#!/bin/sh\n# somaflow job array " + name + ": task N runs the batch script " + tasks + "/N links to\n" +
		strings.Join(append(dirs, ""), "\n") +
		"case \"$SLURM_ARRAY_TASK_ID\" in\n" +
		"''|*[!0-9]*) echo \"somaflow: bad SLURM_ARRAY_TASK_ID\" >&2; exit 127 ;;\n" +
		"esac\n" +
		". " + batch.ShellQuote(tasks+"/") + "\"$SLURM_ARRAY_TASK_ID\"\n"
	if err := batch.WriteScript(dispatcher, sc); err != nil {
		cleanup()
		return nil, fmt.Errorf("slurm: %w", err)
	}
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

// readTaskScript reads the array and task id from an array task's batch
// script; ok is false for a plain job's script or no script.
func readTaskScript(path string) (arr, task string, ok bool) {
	data, err := os.ReadFile(path)
	if err != nil {
		return "", "", false
	}
	for _, line := range strings.Split(string(data), "\n") {
		if rest, found := strings.CutPrefix(line, taskMark); found {
			f := strings.Fields(rest)
			if len(f) == 2 && isNumber(f[1]) {
				return f[0], f[1], true
			}
		}
		if strings.HasPrefix(line, "exec ") {
			break
		}
	}
	return "", "", false
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
