package cli

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/somaflow/somaflow/client"
	"github.com/somaflow/somaflow/drms/batch"
	"github.com/somaflow/somaflow/drms/slurm"
	"github.com/somaflow/somaflow/model"
)

// plannedJob is one job of a dry run (`run --dry-run --json`).
type plannedJob struct {
	Order     int               `json:"order"`
	Name      string            `json:"name"`
	After     []string          `json:"after"`
	Argv      []string          `json:"argv"`
	Dir       string            `json:"working_directory,omitempty"`
	Stdin     string            `json:"stdin,omitempty"`
	Stdout    string            `json:"stdout_file,omitempty"`
	Stderr    string            `json:"stderr_file,omitempty"`
	Env       map[string]string `json:"env,omitempty"`
	CPUs      int               `json:"cpus,omitempty"`
	MemoryMB  int64             `json:"memory_mb,omitempty"`
	Walltime  int64             `json:"walltime_s,omitempty"`
	GPUs      int               `json:"gpus,omitempty"`
	Retries   int               `json:"retries,omitempty"`
	Barrier   bool              `json:"barrier,omitempty"`
	Sbatch    []string          `json:"sbatch_options,omitempty"`
	Directive []string          `json:"sbatch_directives,omitempty"`
}

// argText is an argument as a dry run shows it: its value, or what it
// refers to ({shared:3}, {transfer:0}...) when only the engine resolves it.
func argText(w *model.Workflow, a model.Arg) string {
	switch a.Kind {
	case model.ArgString, model.ArgNumber:
		return a.Value
	case model.ArgList:
		parts := make([]string, len(a.List))
		for i, x := range a.List {
			parts[i] = argText(w, x)
		}
		return "[" + strings.Join(parts, ", ") + "]"
	}
	kind := map[model.PathKind]string{model.TransferPath: "transfer", model.SharedPath: "shared", model.TempPath: "temporary", model.OptionPathKind: "option"}[a.Path.Kind]
	ref := fmt.Sprintf("{%s:%d}", kind, a.Path.Index)
	if a.Kind == model.ArgPathIn {
		ref += "/" + a.Value
	}
	return ref
}

// planWorkflow lists what a run of w would submit, in an order that
// respects its dependencies; for Slurm with the sbatch options and the
// directives of each job's script.
func planWorkflow(w *model.Workflow, backend, queue string) ([]plannedJob, error) {
	order, preds := w.JobOrder()
	plan := make([]plannedJob, 0, len(order))
	for k, i := range order {
		j := w.Jobs[i]
		p := plannedJob{Order: k + 1, Name: w.JobLabel(i), After: []string{}, Barrier: j.NoProcess(), Env: j.Env,
			CPUs: j.Resources.CPUs, MemoryMB: j.Resources.MemoryMB, Walltime: j.Resources.Walltime, GPUs: j.Resources.GPUs, Retries: j.Retries}
		ps := append([]int(nil), preds[i]...)
		sort.Ints(ps)
		for _, q := range ps {
			p.After = append(p.After, w.JobLabel(q))
		}
		if j.Shell != "" {
			p.Argv = []string{"/bin/sh", "-c", j.Shell}
		} else {
			for _, a := range j.Command {
				p.Argv = append(p.Argv, argText(w, a))
			}
		}
		for _, f := range []struct {
			dst *string
			a   *model.Arg
		}{{&p.Dir, j.WorkingDirectory}, {&p.Stdin, j.Stdin}, {&p.Stdout, j.StdoutFile}, {&p.Stderr, j.StderrFile}} {
			if f.a != nil {
				*f.dst = argText(w, *f.a)
			}
		}
		if backend == "slurm" && !p.Barrier {
			if queue != "" {
				p.Sbatch = append(p.Sbatch, "--partition="+queue)
			}
			p.Sbatch = append(p.Sbatch, slurm.ResourceOptions(j.Resources)...)
			ns := j.NativeSpecification
			if ns == nil {
				ns = w.NativeSpecification
			}
			d, err := slurm.Directives(ns)
			if err != nil {
				return nil, usagef("job %q: native specification: %v", p.Name, err)
			}
			p.Directive = d
		}
		plan = append(plan, p)
	}
	if len(plan) != len(w.Jobs) {
		return nil, usagef("the workflow has a dependency cycle: see somaflow validate")
	}
	return plan, nil
}

// printPlan prints a dry run for people.
func printPlan(s *IO, w *model.Workflow, plan []plannedJob, backend string) {
	name := "null"
	if w.Name != nil {
		name = fmt.Sprintf("%q", *w.Name)
	}
	fmt.Fprintf(s.Out, "dry run of workflow %s on backend %s: %d jobs, in this order; nothing is stored or started\n", name, backend, len(plan))
	for _, p := range plan {
		cmd := batch.ShellJoin(p.Argv)
		if p.Barrier {
			cmd = "(barrier: no process)"
		}
		fmt.Fprintf(s.Out, "%d. %s: %s\n", p.Order, printable(p.Name), printable(cmd))
		var extra []string
		if len(p.After) > 0 {
			extra = append(extra, "after "+strings.Join(p.After, ", "))
		}
		for _, f := range []struct{ k, v string }{{"dir", p.Dir}, {"stdin", p.Stdin}, {"stdout", p.Stdout}, {"stderr", p.Stderr}} {
			if f.v != "" {
				extra = append(extra, f.k+" "+f.v)
			}
		}
		if p.CPUs > 0 {
			extra = append(extra, fmt.Sprintf("cpus %d", p.CPUs))
		}
		if p.MemoryMB > 0 {
			extra = append(extra, "memory "+model.FormatMemory(p.MemoryMB))
		}
		if p.Walltime > 0 {
			extra = append(extra, "walltime "+(time.Duration(p.Walltime)*time.Second).String())
		}
		if p.GPUs > 0 {
			extra = append(extra, fmt.Sprintf("gpus %d", p.GPUs))
		}
		if p.Retries > 0 {
			extra = append(extra, fmt.Sprintf("retries %d", p.Retries))
		}
		keys := make([]string, 0, len(p.Env))
		for k := range p.Env {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			extra = append(extra, "env "+k+"="+p.Env[k])
		}
		if len(extra) > 0 {
			fmt.Fprintf(s.Out, "   %s\n", printable(strings.Join(extra, "; ")))
		}
		if len(p.Sbatch) > 0 {
			fmt.Fprintf(s.Out, "   sbatch %s\n", printable(strings.Join(p.Sbatch, " ")))
		}
		for _, d := range p.Directive {
			fmt.Fprintf(s.Out, "   %s\n", printable(d))
		}
	}
}

// dryRun checks a workflow as run and submit would, then prints what they
// would submit (--json: the plan as an array); nothing is stored.
func dryRun(s *IO, w *model.Workflow, backend, queue string, translationFiles []string, asJSON bool) error {
	if err := client.CheckBackend(backend); err != nil {
		return err
	}
	if err := client.CheckTranslated(w, translationFiles); err != nil {
		return err
	}
	plan, err := planWorkflow(w, backend, queue)
	if err != nil {
		return err
	}
	if asJSON {
		return s.JSON(plan)
	}
	printPlan(s, w, plan, backend)
	return nil
}
