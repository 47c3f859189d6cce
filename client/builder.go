package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/somaflow/somaflow/model"
)

// Builder makes a workflow in Go by names, as soma-workflow's Python API
// makes one from objects: jobs, their order (After), groups, parameter
// links, environment and resources, never index-based elements by hand.
// Build checks the result and names what is wrong.
//
//	b := client.NewWorkflow("align")
//	ref := b.Job("index", "bwa", "index", "ref.fa")
//	b.Job("align", "bwa", "mem", "ref.fa", "r.fq").After(ref).CPUs(4).Walltime(2 * time.Hour)
//	w, err := b.Build()
type Builder struct {
	w     *model.Workflow
	names map[string]model.Element
	errs  []error
}

// JobRef is a job of a Builder; its methods set the job's fields and
// return it, to chain.
type JobRef struct {
	b *Builder
	i int
}

// GroupRef is a group of a Builder, usable in After and in other groups.
type GroupRef struct {
	b *Builder
	i int
}

// Element is a job or a group of a Builder (JobRef or GroupRef).
type Element interface{ element() model.Element }

func (j *JobRef) element() model.Element {
	return model.Element{Kind: model.JobElement, Index: j.i}
}
func (g *GroupRef) element() model.Element {
	return model.Element{Kind: model.GroupElement, Index: g.i}
}

// NewWorkflow starts a workflow named name ("" for none).
func NewWorkflow(name string) *Builder {
	w := &model.Workflow{}
	if name != "" {
		w.Name = &name
	}
	return &Builder{w: w, names: map[string]model.Element{}}
}

func (b *Builder) add(name string, j *model.Job) *JobRef {
	if _, dup := b.names[name]; dup || name == "" {
		b.errs = append(b.errs, fmt.Errorf("job %q: the name is empty or already taken", name))
	}
	j.Name = &name
	b.w.Jobs = append(b.w.Jobs, j)
	i := len(b.w.Jobs) - 1
	b.names[name] = model.Element{Kind: model.JobElement, Index: i}
	b.w.Root = append(b.w.Root, model.Element{Kind: model.JobElement, Index: i})
	return &JobRef{b: b, i: i}
}

// Job adds a job running argv (never through a shell).
func (b *Builder) Job(name string, argv ...string) *JobRef {
	cmd := make([]model.Arg, len(argv))
	for k, a := range argv {
		cmd[k] = model.Arg{Value: a}
	}
	return b.add(name, &model.Job{Command: cmd})
}

// Shell adds a job running a shell line (/bin/sh -c line).
func (b *Builder) Shell(name, line string) *JobRef {
	return b.add(name, &model.Job{Shell: line})
}

// Barrier adds a job without a process that succeeds once its
// dependencies did (soma-workflow's BarrierJob).
func (b *Builder) Barrier(name string) *JobRef {
	return b.add(name, &model.Job{Class: model.ClassBarrier})
}

// Group gathers elements under a name: After(group) waits for all of them.
func (b *Builder) Group(name string, members ...Element) *GroupRef {
	if _, dup := b.names[name]; dup || name == "" {
		b.errs = append(b.errs, fmt.Errorf("group %q: the name is empty or already taken", name))
	}
	g := &model.Group{Name: name}
	for _, m := range members {
		g.Elements = append(g.Elements, m.element())
	}
	b.w.Groups = append(b.w.Groups, g)
	i := len(b.w.Groups) - 1
	b.names[name] = model.Element{Kind: model.GroupElement, Index: i}
	// Members move from the root into the group.
	in := map[model.Element]bool{}
	for _, e := range g.Elements {
		in[e] = true
	}
	root := b.w.Root[:0]
	for _, e := range b.w.Root {
		if !in[e] {
			root = append(root, e)
		}
	}
	b.w.Root = append(root, model.Element{Kind: model.GroupElement, Index: i})
	return &GroupRef{b: b, i: i}
}

// Env sets an environment variable of every job.
func (b *Builder) Env(key, value string) *Builder {
	if b.w.Env == nil {
		b.w.Env = map[string]string{}
	}
	b.w.Env[key] = value
	return b
}

// Link feeds the output parameter srcParam of src (a job with outputs)
// into the parameter destParam of dest, which then depends on src.
func (b *Builder) Link(src *JobRef, srcParam string, dest *JobRef, destParam string) *Builder {
	b.w.Jobs[src.i].HasOutputs = true
	b.w.ParamLinks = append(b.w.ParamLinks, model.ParamLink{Src: src.i, SrcParam: srcParam, Dest: dest.i, DestParam: destParam})
	return b
}

// Build returns the workflow, or an error naming every problem (exit 2's
// kind: errors.Is(err, ErrInvalid)).
func (b *Builder) Build() (*model.Workflow, error) {
	if len(b.errs) > 0 {
		return nil, fmt.Errorf("%w: %v", ErrInvalid, b.errs)
	}
	if err := Check(b.w); err != nil {
		return nil, err
	}
	return b.w, nil
}

func (j *JobRef) job() *model.Job { return j.b.w.Jobs[j.i] }

// After makes the job wait until every element given succeeded.
func (j *JobRef) After(deps ...Element) *JobRef {
	for _, d := range deps {
		j.b.w.Dependencies = append(j.b.w.Dependencies, model.Dependency{From: d.element(), To: j.element()})
	}
	return j
}

// Env sets an environment variable of this job (over the workflow's).
func (j *JobRef) Env(key, value string) *JobRef {
	if j.job().Env == nil {
		j.job().Env = map[string]string{}
	}
	j.job().Env[key] = value
	return j
}

// Dir sets the job's working directory.
func (j *JobRef) Dir(dir string) *JobRef { j.job().WorkingDirectory = &model.Arg{Value: dir}; return j }

// Stdout and Stderr send the job's streams to files.
func (j *JobRef) Stdout(path string) *JobRef { j.job().StdoutFile = &model.Arg{Value: path}; return j }

// Stderr sends the job's stderr to a file.
func (j *JobRef) Stderr(path string) *JobRef { j.job().StderrFile = &model.Arg{Value: path}; return j }

// Priority: higher runs first when slots are scarce.
func (j *JobRef) Priority(p int) *JobRef { j.job().Priority = p; return j }

// Retries runs a failed attempt again, up to n times.
func (j *JobRef) Retries(n int) *JobRef { j.job().Retries = n; return j }

// CPUs asks for n CPUs.
func (j *JobRef) CPUs(n int) *JobRef { j.job().Resources.CPUs = n; return j }

// MemoryMB asks for mb megabytes of memory.
func (j *JobRef) MemoryMB(mb int64) *JobRef { j.job().Resources.MemoryMB = mb; return j }

// Walltime sets the job's time limit (rounded up to a second).
func (j *JobRef) Walltime(d time.Duration) *JobRef {
	j.job().Resources.Walltime = int64((d + time.Second - 1) / time.Second)
	return j
}

// GPUs asks for n GPUs.
func (j *JobRef) GPUs(n int) *JobRef { j.job().Resources.GPUs = n; return j }

// Param sets a parameter of the job (soma-workflow's param_dict; any value
// JSON can hold).
func (j *JobRef) Param(name string, value any) *JobRef {
	raw, err := json.Marshal(value)
	if err != nil {
		j.b.errs = append(j.b.errs, fmt.Errorf("job %q: param %s: %w", *j.job().Name, name, err))
		return j
	}
	if j.job().ParamDict == nil {
		j.job().ParamDict = map[string]json.RawMessage{}
	}
	j.job().ParamDict[name] = raw
	return j
}

// ErrJobsFailed is matched (errors.Is) by the error of WaitSucceeded when
// the workflow ended with jobs that did not succeed.
var ErrJobsFailed = errors.New("jobs did not succeed")

// JobsFailedError names the jobs of a workflow that did not succeed.
type JobsFailedError struct {
	Workflow int64
	Jobs     []JobDoc
}

func (e *JobsFailedError) Error() string {
	names := make([]string, 0, len(e.Jobs))
	for _, j := range e.Jobs {
		names = append(names, fmt.Sprintf("%s (%s)", j.Name, j.Status))
	}
	return fmt.Sprintf("workflow %d: %d job(s) did not succeed: %s", e.Workflow, len(e.Jobs), strings.Join(names, ", "))
}

// Is makes errors.Is(err, ErrJobsFailed) true.
func (e *JobsFailedError) Is(target error) bool { return target == ErrJobsFailed }

// WaitSucceeded waits as WaitWorkflow does, then tells, as `somaflow wait`'s
// exit code does, whether every job succeeded: nil, or a *JobsFailedError
// naming those that did not (ErrTimeout, ErrUnknownObject, ... otherwise).
func (c *Client) WaitSucceeded(ctx context.Context, id int64, timeout time.Duration) error {
	if err := c.WaitWorkflow(ctx, id, timeout); err != nil {
		return err
	}
	doc, err := c.WorkflowElementsStatus(ctx, id)
	if err != nil {
		return err
	}
	var failed []JobDoc
	for _, j := range doc.Jobs {
		if !model.Succeeded(j.Status, deref(j.ExitStatus), j.ExitValue) {
			failed = append(failed, j)
		}
	}
	if len(failed) > 0 {
		return &JobsFailedError{Workflow: id, Jobs: failed}
	}
	return nil
}
