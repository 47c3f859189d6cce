// Package model defines somaflow's workflow model — workflows, jobs, groups,
// barrier jobs, file transfers and special paths — with soma-workflow's
// status strings, validation, and the two file formats (soma-workflow's JSON
// and somaflow's native YAML/JSON).
//
// Jobs, groups and special paths are identified by their index in the
// workflow's slices; file formats map their own ids onto those indexes.
package model

import (
	"encoding/json"
	"sort"
)

// Workflow is a set of jobs with dependencies between them, as soma-workflow's
// client_types.Workflow describes it.
type Workflow struct {
	// Name is the display name; nil when the file says null or nothing.
	Name *string
	// Jobs lists every job, barrier jobs included, in file order.
	Jobs []*Job
	// Groups lists every group; Root is the top level of the display tree.
	Groups []*Group
	Root   []Element
	// Dependencies says that From must succeed before To starts. Either end
	// may be a group, meaning every job in it (transitively).
	Dependencies []Dependency
	// ParamLinks feed output parameters of one job into parameters of another.
	ParamLinks []ParamLink
	// Env applies to every job (job env wins).
	Env map[string]string
	// EnvBuilderCode is Python source run (with python3) when the workflow
	// starts: it prints a JSON object of environment variables for every
	// job, below the workflow's env and each job's.
	EnvBuilderCode string
	// NativeSpecification is the workflow-wide DRMS option string or list.
	NativeSpecification NativeSpec
	UUID                string
	// Special paths, referenced from job commands and file fields.
	Transfers   []*FileTransfer
	SharedPaths []*SharedResourcePath
	TempPaths   []*TemporaryPath
	OptionPaths []*OptionPath
	// Extra keeps top-level keys this version does not know, verbatim.
	Extra map[string]json.RawMessage

	// NativeSpecAsList records that the file wrote NativeSpecification as a
	// JSON list (a single string otherwise).
	NativeSpecAsList bool
	// Warnings lists what a decoder accepted but changed, as soma-workflow
	// itself does when it loads the file (groups naming unknown elements or
	// not reachable from the root group are dropped, unknown root ids are
	// skipped). Validate does not fail on them; tools should show them.
	Warnings []Problem
}

// ElementKind says whether an Element is a job or a group.
type ElementKind int

const (
	// JobElement refers to Workflow.Jobs[Index].
	JobElement ElementKind = iota
	// GroupElement refers to Workflow.Groups[Index].
	GroupElement
)

// Element refers to a job or a group of a workflow by index.
type Element struct {
	Kind  ElementKind
	Index int
}

// Dependency orders two elements: From must succeed before To starts.
type Dependency struct {
	From, To Element
}

// AllDependencies returns the workflow's dependencies followed by those its
// parameter links imply: a link makes its destination depend on its source
// (soma-workflow's Workflow.add_dependencies_from_links), in both formats.
// An implied dependency already written as a job-to-job dependency, or
// implied by an earlier link, is not repeated; links with an index out of
// range imply nothing (Validate reports them). The engine's graph,
// validation counts, dot and the soma export all read this, so they agree.
func (w *Workflow) AllDependencies() []Dependency {
	if len(w.ParamLinks) == 0 {
		return w.Dependencies
	}
	have := make(map[[2]int]bool, len(w.Dependencies)+len(w.ParamLinks))
	for _, d := range w.Dependencies {
		if d.From.Kind == JobElement && d.To.Kind == JobElement {
			have[[2]int{d.From.Index, d.To.Index}] = true
		}
	}
	deps := w.Dependencies[:len(w.Dependencies):len(w.Dependencies)]
	for _, l := range w.ParamLinks {
		k := [2]int{l.Src, l.Dest}
		if have[k] || l.Src < 0 || l.Src >= len(w.Jobs) || l.Dest < 0 || l.Dest >= len(w.Jobs) {
			continue
		}
		have[k] = true
		deps = append(deps, Dependency{From: Element{JobElement, l.Src}, To: Element{JobElement, l.Dest}})
	}
	return deps
}

// Group is display structure that can also be the end of a dependency.
type Group struct {
	Name     string
	Elements []Element
	// Extra keeps unknown keys of the group's object.
	Extra map[string]json.RawMessage
}

// Job classes as soma-workflow names them.
const (
	ClassJob     = "soma_workflow.client_types.Job"
	ClassBarrier = "soma_workflow.client_types.BarrierJob"
)

// EngineClasses are soma-workflow's soma_workflow.custom_jobs classes: jobs
// that run no process but turn their parameters into output parameters
// inside the engine (EngineExecutionJob). somaflow's engine runs them
// natively.
var EngineClasses = map[string]bool{
	"soma_workflow.custom_jobs.MapJob":                 true,
	"soma_workflow.custom_jobs.ReduceJob":              true,
	"soma_workflow.custom_jobs.LeaveOneOutJob":         true,
	"soma_workflow.custom_jobs.CrossValidationFoldJob": true,
	"soma_workflow.custom_jobs.ListCatJob":             true,
	"soma_workflow.custom_jobs.StrCatJob":              true,
}

// MaxRetries bounds a job's retries.
const MaxRetries = 100

// DefaultDisposalTimeout is soma-workflow's default, in hours.
const DefaultDisposalTimeout = 168

// Job is one command line (or a barrier: no process).
type Job struct {
	// Class is soma-workflow's Python class; "" means ClassJob.
	Class string
	// Name may be nil in soma-workflow files (then argv[0] is shown).
	Name *string
	// Command is an argv whose elements may reference special paths.
	Command []Arg
	// Shell is a shell line (native format only): run as /bin/sh -c Shell.
	// Exactly one of Command and Shell is set for a non-barrier job.
	Shell string

	Stdin            *Arg
	StdoutFile       *Arg
	StderrFile       *Arg
	WorkingDirectory *Arg
	InputParamsFile  *Arg
	OutputParamsFile *Arg
	JoinStderrout    bool

	Priority int
	// Retries is how many times a failed attempt runs again (somaflow's
	// extension: `retries` in both formats; 0: none). A user's stop, an
	// aborted dependency, a command that cannot start and a lost outcome
	// are not retried.
	Retries int
	// Resources are the CPUs, memory, walltime and GPUs the job asks for.
	Resources           Resources
	NativeSpecification NativeSpec
	// NativeSpecAsList records that the file wrote NativeSpecification as a
	// JSON list (a single string otherwise).
	NativeSpecAsList bool
	ParallelJobInfo  *ParallelJobInfo
	// DisposalTimeout in hours; nil means DefaultDisposalTimeout.
	DisposalTimeout *int
	// Env is nil when the file has null; it overrides the workflow's Env.
	Env map[string]string

	UseInputParamsFile bool
	HasOutputs         bool
	// Configuration is a JSON object (raw), "{}" when empty.
	Configuration json.RawMessage
	UUID          string

	ReferencedInputFiles  []Arg
	ReferencedOutputFiles []Arg
	// ParamDict maps parameter names to JSON values (raw; may contain path
	// references in soma-workflow's tuple form ["<tuple>", "<id>", N], where
	// N is the model's path ID: see Workflow.PathRefByID).
	ParamDict map[string]json.RawMessage
	// UserStorage is kept verbatim (raw JSON) when present.
	UserStorage json.RawMessage
	// Extra keeps unknown keys of the job's object, verbatim.
	Extra map[string]json.RawMessage
}

// IsBarrier reports whether the job is a barrier (no process).
func (j *Job) IsBarrier() bool { return j.Class == ClassBarrier }

// RunsInEngine reports whether the job is one of soma-workflow's
// engine-side jobs (EngineClasses): no process, outputs from its parameters.
func (j *Job) RunsInEngine() bool { return EngineClasses[j.Class] }

// NoProcess reports whether the engine runs the job without a process: a
// barrier or an engine-side job.
func (j *Job) NoProcess() bool { return j.IsBarrier() || j.RunsInEngine() }

// DisplayName is the job's name, or argv[0] when it has none.
func (j *Job) DisplayName() string {
	if j.Name != nil {
		return *j.Name
	}
	if len(j.Command) > 0 {
		return j.Command[0].Value
	}
	return ""
}

// ArgKind says what an Arg holds.
type ArgKind int

const (
	// ArgString is a literal argument.
	ArgString ArgKind = iota
	// ArgNumber is a JSON number, passed as its text.
	ArgNumber
	// ArgPath is a reference to a special path.
	ArgPath
	// ArgPathIn is a file named Value inside a special path (a directory).
	ArgPathIn
	// ArgList is a nested list, passed as ONE argument holding Python's repr.
	ArgList
)

// Arg is one element of a command, or a file field that may be a special path.
type Arg struct {
	Kind  ArgKind
	Value string
	Path  PathRef
	List  []Arg
}

// PathKind says which table a PathRef points into.
type PathKind int

// Special path tables.
const (
	TransferPath PathKind = iota
	SharedPath
	TempPath
	OptionPathKind
)

// PathRef points to Workflow.Transfers, SharedPaths, TempPaths or OptionPaths.
type PathRef struct {
	Kind  PathKind
	Index int
	// Pattern is the format with one %s where the path goes ("%s" normally).
	Pattern string
}

// NativeSpec is a DRMS option string or list; nil when unset.
type NativeSpec []string

// ParallelJobInfo asks for several nodes / CPUs.
type ParallelJobInfo struct {
	ConfigName  string `json:"config_name"`
	NodesNumber int    `json:"nodes_number"`
	CPUPerNode  int    `json:"cpu_per_node"`
}

// ParamLink sets parameter DestParam of job Dest from output SrcParam of job Src.
type ParamLink struct {
	Dest      int
	DestParam string
	Src       int
	SrcParam  string
	// Transform is nil, or a function name followed by its extra arguments
	// (raw JSON values).
	Transform *LinkTransform
}

// LinkTransform is a parameter-link function with its extra arguments.
type LinkTransform struct {
	Name string
	Args []json.RawMessage
	// Tuple records that the file wrote it as a tuple even without args.
	Tuple bool
}

// FileTransfer is soma-workflow's FileTransfer.
type FileTransfer struct {
	ClientPath      string
	ClientPaths     []string
	InitialStatus   string
	DisposalTimeout *int
	Name            string
	Pattern         string
	Extra           map[string]json.RawMessage
}

// IsOutput tells whether a job makes the transfer's files (initial status
// "do not exist"); they then come back from the computing resource.
func (t *FileTransfer) IsOutput() bool { return t.InitialStatus == TransferDoNotExist }

// SharedResourcePath is a path relative to a namespace translated per resource.
type SharedResourcePath struct {
	RelativePath    string
	Namespace       string
	UUID            string
	DisposalTimeout *int
	Pattern         string
	Extra           map[string]json.RawMessage
}

// TemporaryPath is a file or directory created by the engine for the run.
type TemporaryPath struct {
	IsDirectory     bool
	DisposalTimeout *int
	Name            string
	Suffix          string
	Pattern         string
	Extra           map[string]json.RawMessage
}

// OptionPath is a path with a URI suffix (soma-workflow's OptionPath).
type OptionPath struct {
	ParentType string
	// ParentPath is a string or a reference (raw JSON; a reference holds a
	// model path ID: see Workflow.PathRefByID).
	ParentPath json.RawMessage
	URI        string
	Name       string
	Pattern    string
	Extra      map[string]json.RawMessage
}

// JobOrder returns the jobs' indexes in an order that runs every job after
// the jobs it depends on (groups stand for their jobs, links imply
// dependencies; file order among jobs that are ready together), and each
// job's direct predecessor jobs. A cycle leaves its jobs out (Validate
// reports it).
func (w *Workflow) JobOrder() (order []int, preds [][]int) {
	memo := map[int][]int{}
	var jobsOf func(el Element, seen map[int]bool) []int
	jobsOf = func(el Element, seen map[int]bool) []int {
		if el.Kind == JobElement {
			if el.Index >= 0 && el.Index < len(w.Jobs) {
				return []int{el.Index}
			}
			return nil
		}
		if js, ok := memo[el.Index]; ok {
			return js
		}
		if el.Index < 0 || el.Index >= len(w.Groups) || w.Groups[el.Index] == nil || seen[el.Index] {
			return nil
		}
		seen[el.Index] = true
		var js []int
		for _, m := range w.Groups[el.Index].Elements {
			js = append(js, jobsOf(m, seen)...)
		}
		memo[el.Index] = js
		return js
	}
	n := len(w.Jobs)
	preds = make([][]int, n)
	succ := make([][]int, n)
	indeg := make([]int, n)
	edge := map[[2]int]bool{}
	for _, d := range w.AllDependencies() {
		for _, to := range jobsOf(d.To, map[int]bool{}) {
			for _, from := range jobsOf(d.From, map[int]bool{}) {
				if from == to || edge[[2]int{from, to}] {
					continue
				}
				edge[[2]int{from, to}] = true
				preds[to] = append(preds[to], from)
				succ[from] = append(succ[from], to)
				indeg[to]++
			}
		}
	}
	ready := []int{}
	for i := range n {
		if indeg[i] == 0 {
			ready = append(ready, i)
		}
	}
	for len(ready) > 0 {
		sort.Ints(ready)
		v := ready[0]
		ready = ready[1:]
		order = append(order, v)
		for _, s := range succ[v] {
			if indeg[s]--; indeg[s] == 0 {
				ready = append(ready, s)
			}
		}
	}
	return order, preds
}
