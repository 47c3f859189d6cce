package batch

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"github.com/somaflow/somaflow/drms"
	"github.com/somaflow/somaflow/model"
)

// Job arrays, as the batch backends that have them (Slurm, PBS) submit
// them: the specs of one engine cycle are grouped (ArrayGroupKey), each
// group cut into chunks, and each chunk is ONE submission of ONE dispatcher
// script. Every task keeps the spool files of a plain job (its own batch
// script, env file, status and started files), so exec-job, Status and
// outcomes work exactly as for a plain job; the dispatcher only picks the
// task's script by the DRMS's array index, through a directory of links
// named by task number (the only expansion in the dispatcher is that
// index, quoted and checked to be digits):
//
//	<spool>/<W>/<array>.sh            the dispatcher
//	<spool>/<W>/<array>.tasks/<task>  a link to the task's script
//	<spool>/<W>/<attempt>.sh          the task's script, with a "# somaflow array <array> <task>" line

// TaskMark starts the line of a task's batch script that names its array
// and task number; ReadTaskScript reads it.
const TaskMark = "# somaflow array "

// ArrayName is the DRMS job name of an array whose first task is first:
// sf-TAG-W-aJ-A.
func ArrayName(first drms.JobSpec) string {
	return fmt.Sprintf("sf-%s-%d-a%d-%d", first.EngineTag, first.WorkflowID, first.JobID, first.Attempt)
}

// ArrayGroupKey says which specs may share one array: the same workflow
// (spool dir), queue, native specification, parallel job info and
// resources (the array's submission carries the first task's). Working
// dir, command, environment and files differ freely (exec-job handles them).
func ArrayGroupKey(s drms.JobSpec) string {
	k, _ := json.Marshal(struct {
		W int64
		Q string
		N []string
		P *model.ParallelJobInfo
		R model.Resources
	}{s.WorkflowID, s.Queue, s.NativeSpec, s.Parallel, s.Resources})
	return string(k)
}

// ArraySubmit submits specs as job arrays. Its functions are the backend's.
type ArraySubmit struct {
	// Name is the backend's name, for errors.
	Name string
	// Max is the largest number of tasks in one array.
	Max int
	// One submits a group of one (a plain job).
	One func(ctx context.Context, spec drms.JobSpec) (drms.Handle, error)
	// Chunk submits specs[idx...] (two or more, one group) as one array.
	Chunk func(ctx context.Context, specs []drms.JobSpec, idx []int) ([]drms.Handle, error)
	// Refused is the handle of a spec the DRMS refused (Status reports it
	// failed / aborted with reason at once).
	Refused func(spec drms.JobSpec, reason string) drms.Handle
}

// Submit groups specs (ArrayGroupKey), cuts groups into chunks of at most
// Max, and submits each: one handle per spec, in order. Errors: when
// nothing was submitted, the DRMS's refusal of every spec for one reason
// is a *drms.StartError, an unreachable DRMS wraps drms.ErrUnavailable;
// when some chunks were submitted and another could not be (or one timed
// out and was not found), the error wraps drms.ErrSubmitUncertain and the
// backend's Locate tells which tasks reached the DRMS. When the DRMS
// refused some chunks but not all, or for different reasons, the refused
// specs get Refused handles, so that one bad group does not fail the others.
func (a ArraySubmit) Submit(ctx context.Context, specs []drms.JobSpec) ([]drms.Handle, error) {
	hs := make([]drms.Handle, len(specs))
	reasons := map[string]bool{}
	refused := 0
	var order []string
	groups := map[string][]int{}
	for i, s := range specs {
		if len(s.Argv) == 0 {
			hs[i] = a.Refused(s, "empty command")
			reasons["empty command"] = true
			refused++
			continue
		}
		k := ArrayGroupKey(s)
		if _, ok := groups[k]; !ok {
			order = append(order, k)
		}
		groups[k] = append(groups[k], i)
	}
	max := max(a.Max, 2)
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
			h, err = a.One(ctx, specs[c[0]])
			got = []drms.Handle{h}
		} else {
			got, err = a.Chunk(ctx, specs, c)
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
				hs[i] = a.Refused(specs[i], se.Reason)
			}
			reasons[se.Reason] = true
			refused += len(c)
		case errors.Is(err, drms.ErrSubmitUncertain):
			unsure = err // Locate will tell; the other chunks go on
		default:
			stop = err
		}
		if stop != nil {
			break // the DRMS unreachable, a spool error: the rest is not tried
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
	return nil, fmt.Errorf("%s: %d of %d jobs surely submitted as arrays, then: %v: %w", a.Name, submitted, len(specs), stop, drms.ErrSubmitUncertain)
}

// ArrayFiles are the spool files of one array.
type ArrayFiles struct {
	Name       string   // the array's DRMS job name (ArrayName)
	Dir        string   // the workflow's spool dir
	Dispatcher string   // <array>.sh
	Tasks      string   // <array>.tasks
	files      []string // the tasks' scripts and env files
}

// WriteArray writes the spool files of the array of specs[idx...]: every
// task's env file and batch script (exec'ing exec-job, with the TaskMark
// line), the links dir, and the dispatcher, which runs
// `. <tasks>/"$index"` after checking that index (the shell expression
// indexExpr, e.g. "$SLURM_ARRAY_TASK_ID": a constant of the backend, never
// input) is digits; header lines (DRMS directives) come after the #! line.
// On error nothing is left behind; Remove removes the files again.
func (s Spool) WriteArray(execPath string, specs []drms.JobSpec, idx []int, indexExpr string, header []string) (ArrayFiles, error) {
	af := s.ArrayFiles(specs[idx[0]])
	name := af.Name
	if err := os.MkdirAll(af.Dir, 0o700); err != nil {
		return af, fmt.Errorf("batch: create spool dir: %w", err)
	}
	written := make([]bool, len(idx))
	cleanup := func() {
		for k, i := range idx {
			if written[k] {
				p := s.Paths(specs[i])
				os.Remove(p.Script)
				os.Remove(p.Env)
			}
		}
		af.Remove()
	}
	// Every task's files, in parallel (each file is synced).
	errs := make([]error, len(idx))
	var wg sync.WaitGroup
	work := make(chan int)
	for w := 0; w < min(16, len(idx)); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := range work {
				sp := specs[idx[k]]
				p, err := s.Prepare(sp)
				if err == nil {
					written[k] = true
					h := []string{
						"# somaflow job " + sp.Name() + ": " + strings.ReplaceAll(sp.JobName, "\n", " "),
						TaskMark + name + " " + strconv.Itoa(k),
					}
					err = WriteScript(p.Script, Script(h, s.ExecArgv(execPath, sp)))
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
		return af, fmt.Errorf("batch: %w", err)
	}
	// <array>.tasks/<task> links to each task's script, so that the
	// dispatcher stays a few lines however many tasks (the DRMS sends it
	// with every task it starts).
	if err := os.Mkdir(af.Tasks, 0o700); err != nil {
		cleanup()
		return af, fmt.Errorf("batch: %w", err)
	}
	for k, i := range idx {
		if err := os.Symlink(s.Paths(specs[i]).Script, filepath.Join(af.Tasks, strconv.Itoa(k))); err != nil {
			cleanup()
			return af, fmt.Errorf("batch: %w", err)
		}
	}
	sc := "#!/bin/sh\n# somaflow job array " + name + ": task N runs the batch script " + af.Tasks + "/N links to\n" +
		strings.Join(append(header, ""), "\n") +
		"i=\"" + indexExpr + "\"\n" +
		"case \"$i\" in\n" +
		"''|*[!0-9]*) echo \"somaflow: bad array index '$i'\" >&2; exit 127 ;;\n" +
		"esac\n" +
		". " + ShellQuote(af.Tasks+"/") + "\"$i\"\n"
	if err := WriteScript(af.Dispatcher, sc); err != nil {
		cleanup()
		return af, fmt.Errorf("batch: %w", err)
	}
	for _, i := range idx {
		p := s.Paths(specs[i])
		af.files = append(af.files, p.Script, p.Env)
	}
	return af, nil
}

// ArrayFiles are the paths of the spool files of the array whose first
// task is first (nothing is created).
func (s Spool) ArrayFiles(first drms.JobSpec) ArrayFiles {
	name := ArrayName(first)
	dir := s.Paths(first).Dir
	return ArrayFiles{Name: name, Dir: dir, Dispatcher: filepath.Join(dir, name+".sh"), Tasks: filepath.Join(dir, name+".tasks")}
}

// Remove removes the array's files: the tasks' scripts and env files, the
// dispatcher and the links dir (after the DRMS refused the array).
func (af ArrayFiles) Remove() {
	for _, f := range af.files {
		os.Remove(f)
	}
	os.Remove(af.Dispatcher)
	os.RemoveAll(af.Tasks)
}

// ReadTaskScript reads the array name and task number from an array
// task's batch script; ok is false for a plain job's script or no script.
func ReadTaskScript(path string) (arr, task string, ok bool) {
	data, err := os.ReadFile(path)
	if err != nil {
		return "", "", false
	}
	for _, line := range strings.Split(string(data), "\n") {
		if rest, found := strings.CutPrefix(line, TaskMark); found {
			f := strings.Fields(rest)
			if len(f) == 2 {
				if _, err := strconv.Atoi(f[1]); err == nil {
					return f[0], f[1], true
				}
			}
		}
		if strings.HasPrefix(line, "exec ") {
			break
		}
	}
	return "", "", false
}
