package model

import (
	"fmt"
	"strconv"
	"strings"
)

// LinkFunctions are the parameter-link transforms somaflow implements
// (soma-workflow's built-in ones); any other name is refused by Validate.
var LinkFunctions = map[string]bool{
	"list_to_sequence":   true,
	"sequence_to_list":   true,
	"append_to_list":     true,
	"list_all_but_one":   true,
	"list_cv_train_fold": true,
	"list_cv_test_fold":  true,
	"list_cat":           true,
	"sequence_max":       true,
	"sequence_min":       true,
}

// maxCycles bounds how many dependency cycles Validate describes.
const maxCycles = 10

// JobLabel is how messages name job i: its name, else argv[0], else "#i".
func (w *Workflow) JobLabel(i int) string {
	if i < 0 || i >= len(w.Jobs) || w.Jobs[i] == nil {
		return "#" + strconv.Itoa(i)
	}
	if s := w.Jobs[i].DisplayName(); s != "" {
		return s
	}
	return "#" + strconv.Itoa(i)
}

// Validate checks everything somaflow needs before it runs a workflow and
// returns a *ValidationError that lists every problem found (nil if none):
// references to unknown jobs, groups or special paths; dependency cycles
// (named in order) and groups that contain themselves; jobs with no
// command (or both a command and a shell line); what Go cannot run —
// custom Python job classes (but soma_workflow.custom_jobs), link functions other than
// the built-in ones. It is O(jobs + dependencies) and does not recurse, so
// it handles very large workflows.
func (w *Workflow) Validate() error {
	var ps problems
	checkEnv(&ps, "", "env", w.Env)
	nJobs, nGroups, nPaths := len(w.Jobs), len(w.Groups), w.pathCount()
	elemOK := func(el Element) bool {
		switch el.Kind {
		case JobElement:
			return el.Index >= 0 && el.Index < nJobs && w.Jobs[el.Index] != nil
		case GroupElement:
			return el.Index >= 0 && el.Index < nGroups && w.Groups[el.Index] != nil
		}
		return false
	}
	elemName := func(el Element) string {
		if el.Kind == GroupElement {
			if elemOK(el) {
				return fmt.Sprintf("group %q", w.Groups[el.Index].Name)
			}
			return fmt.Sprintf("unknown group #%d", el.Index)
		}
		if elemOK(el) {
			return fmt.Sprintf("job %q", w.JobLabel(el.Index))
		}
		return fmt.Sprintf("unknown job #%d", el.Index)
	}
	for i, j := range w.Jobs {
		if j == nil {
			ps.add("#"+strconv.Itoa(i), "", "job is nil")
			continue
		}
		w.validateJob(&ps, i, j, nPaths)
	}
	for gi, g := range w.Groups {
		if g == nil {
			ps.add("", "groups", "group #%d is nil", gi)
			continue
		}
		for _, el := range g.Elements {
			if !elemOK(el) {
				ps.add("", "groups", "group %q contains %s", g.Name, elemName(el))
			}
		}
	}
	for _, el := range w.Root {
		if !elemOK(el) {
			ps.add("", "root", "root group contains %s", elemName(el))
		}
	}
	for _, d := range w.Dependencies {
		switch {
		case !elemOK(d.To) && !elemOK(d.From):
			ps.add("", "dependencies", "dependency between %s and %s", elemName(d.From), elemName(d.To))
		case !elemOK(d.To):
			ps.add(w.depOwner(d.From), "dependencies", "%s is needed by %s", elemName(d.From), elemName(d.To))
		case !elemOK(d.From):
			ps.add(w.depOwner(d.To), "dependencies", "dependency on %s", elemName(d.From))
		}
	}
	for _, l := range w.ParamLinks {
		srcOK := l.Src >= 0 && l.Src < nJobs && w.Jobs[l.Src] != nil
		dstOK := l.Dest >= 0 && l.Dest < nJobs && w.Jobs[l.Dest] != nil
		field := "param_links." + l.DestParam
		if !dstOK {
			ps.add("", field, "parameter link to unknown job #%d", l.Dest)
			continue
		}
		if !srcOK {
			ps.add(w.JobLabel(l.Dest), field, "parameter link from unknown job #%d", l.Src)
			continue
		}
		if l.DestParam == "" || l.SrcParam == "" {
			ps.add(w.JobLabel(l.Dest), field, "parameter link with an empty parameter name")
		}
		if t := l.Transform; t != nil && !LinkFunctions[t.Name] {
			if strings.Contains(t.Name, ".") {
				ps.add(w.JobLabel(l.Dest), field, "link function %q is Python code: somaflow runs only the built-in functions (%s)", t.Name, linkFunctionList())
			} else {
				ps.add(w.JobLabel(l.Dest), field, "unknown link function %q (built-in: %s)", t.Name, linkFunctionList())
			}
		}
		for _, a := range argsOfTransform(l.Transform) {
			w.checkRawPaths(&ps, w.JobLabel(l.Dest), field, a, nPaths)
		}
	}
	for i, o := range w.OptionPaths {
		if o != nil {
			w.checkRawPaths(&ps, "", fmt.Sprintf("option_paths[%d].parent_path", i), o.ParentPath, nPaths)
		}
	}
	if len(ps) == 0 || !hasStructuralProblem(ps) {
		w.groupCycles(&ps)
		w.cycles(&ps)
	}
	return ps.err()
}

// hasStructuralProblem reports problems that make graph checks unsafe.
func hasStructuralProblem(ps problems) bool {
	for _, p := range ps {
		if p.Field == "dependencies" || p.Field == "groups" || strings.HasPrefix(p.Field, "param_links") || p.Msg == "job is nil" {
			return true
		}
	}
	return false
}

func engineClassList() string {
	var names []string
	for _, c := range sortedKeys(EngineClasses) {
		names = append(names, strings.TrimPrefix(c, "soma_workflow.custom_jobs."))
	}
	return strings.Join(names, ", ")
}

func linkFunctionList() string {
	return strings.Join(sortedKeys(LinkFunctions), ", ")
}

func argsOfTransform(t *LinkTransform) [][]byte {
	if t == nil {
		return nil
	}
	out := make([][]byte, len(t.Args))
	for i, a := range t.Args {
		out[i] = a
	}
	return out
}

// depOwner names the job a dependency problem is reported on.
func (w *Workflow) depOwner(el Element) string {
	if el.Kind == JobElement {
		return w.JobLabel(el.Index)
	}
	return ""
}

func checkEnv(ps *problems, job, field string, env map[string]string) {
	for _, k := range sortedKeys(env) {
		if k == "" || strings.ContainsAny(k, "=\x00") {
			ps.add(job, field, "bad environment variable name %q", k)
		}
		if strings.ContainsRune(env[k], 0) {
			ps.add(job, field, "environment variable %q holds a NUL byte", k)
		} else if len(k)+1+len(env[k]) > MaxArgLen {
			ps.add(job, field, "environment variable %q is %d bytes long: the system passes at most %d bytes in one entry", k, len(k)+1+len(env[k]), MaxArgLen)
		}
	}
}

func (w *Workflow) checkRawPaths(ps *problems, job, field string, raw []byte, nPaths int) {
	if raw == nil {
		return
	}
	_, _ = mapPathIDs(raw, func(n int) (int, error) {
		if n < 0 || n >= nPaths {
			ps.add(job, field, "reference to unknown special path %d", n)
		}
		return n, nil
	})
}

// MaxArgLen is the longest single argument Linux passes to a program
// (MAX_ARG_STRLEN, 32 pages, less its NUL): a longer one fails execve with
// E2BIG on every attempt.
const MaxArgLen = 32*4096 - 1

// checkText refuses what no program can receive: a NUL byte (execve
// cannot pass it) and an argument longer than MaxArgLen.
func checkText(ps *problems, job, field, s string) {
	switch {
	case strings.IndexByte(s, 0) >= 0:
		ps.add(job, field, "contains a NUL byte: no program can receive it")
	case len(s) > MaxArgLen:
		ps.add(job, field, "is %d bytes long: the system passes at most %d bytes in one argument", len(s), MaxArgLen)
	}
}

func (w *Workflow) checkArg(ps *problems, job, field string, a Arg, nPaths int) {
	switch a.Kind {
	case ArgString:
		checkText(ps, job, field, a.Value)
	case ArgNumber:
	case ArgPath, ArgPathIn:
		ok := a.Path.Index >= 0
		switch a.Path.Kind {
		case TransferPath:
			ok = ok && a.Path.Index < len(w.Transfers)
		case SharedPath:
			ok = ok && a.Path.Index < len(w.SharedPaths)
		case TempPath:
			ok = ok && a.Path.Index < len(w.TempPaths)
		case OptionPathKind:
			ok = ok && a.Path.Index < len(w.OptionPaths)
		default:
			ok = false
		}
		if !ok {
			ps.add(job, field, "reference to unknown special path (kind %d, index %d)", a.Path.Kind, a.Path.Index)
		}
	case ArgList:
		for i, x := range a.List {
			w.checkArg(ps, job, field+"["+strconv.Itoa(i)+"]", x, nPaths)
		}
	default:
		ps.add(job, field, "unknown argument kind %d", a.Kind)
	}
}

func (w *Workflow) validateJob(ps *problems, i int, j *Job, nPaths int) {
	label := w.JobLabel(i)
	switch {
	case j.Class == "" || j.Class == ClassJob || j.NoProcess():
	default:
		ps.add(label, "class", "custom Python job class %q cannot run in somaflow (only %s, %s and soma_workflow.custom_jobs' %s)",
			j.Class, ClassJob, ClassBarrier, engineClassList())
		return
	}
	for k, a := range j.ReferencedInputFiles {
		w.checkArg(ps, label, "referenced_input_files["+strconv.Itoa(k)+"]", a, nPaths)
	}
	for k, a := range j.ReferencedOutputFiles {
		w.checkArg(ps, label, "referenced_output_files["+strconv.Itoa(k)+"]", a, nPaths)
	}
	if j.NoProcess() {
		if len(j.Command) > 0 || j.Shell != "" {
			ps.add(label, "command", "a %s runs no command", map[bool]string{true: "barrier job", false: "job of class " + j.Class}[j.IsBarrier()])
		}
		return
	}
	switch {
	case len(j.Command) == 0 && j.Shell == "":
		ps.add(label, "command", "empty command")
	case len(j.Command) > 0 && j.Shell != "":
		ps.add(label, "command", "both command and shell are set")
	case len(j.Command) > 0 && j.Command[0].Kind == ArgString && j.Command[0].Value == "":
		ps.add(label, "command[0]", "empty program name")
	}
	for k, a := range j.Command {
		w.checkArg(ps, label, "command["+strconv.Itoa(k)+"]", a, nPaths)
	}
	checkText(ps, label, "shell", j.Shell)
	for _, f := range []struct {
		name string
		a    *Arg
	}{{"stdin", j.Stdin}, {"stdout_file", j.StdoutFile}, {"stderr_file", j.StderrFile},
		{"working_directory", j.WorkingDirectory}, {"input_params_file", j.InputParamsFile},
		{"output_params_file", j.OutputParamsFile}} {
		if f.a == nil {
			continue
		}
		if f.a.Kind == ArgList {
			ps.add(label, f.name, "expected a path, got a list")
			continue
		}
		w.checkArg(ps, label, f.name, *f.a, nPaths)
	}
	if r := j.Resources; r.CPUs < 0 || r.GPUs < 0 || r.MemoryMB < 0 || r.Walltime < 0 {
		ps.add(label, "resources", "negative: cpus %d, gpus %d, memory %d MB, walltime %d s", r.CPUs, r.GPUs, r.MemoryMB, r.Walltime)
	}
	if j.Retries < 0 || j.Retries > MaxRetries {
		ps.add(label, "retries", "must be between 0 and %d, got %d", MaxRetries, j.Retries)
	}
	if j.DisposalTimeout != nil && *j.DisposalTimeout < 0 {
		ps.add(label, "disposal_timeout", "negative: %d", *j.DisposalTimeout)
	}
	if p := j.ParallelJobInfo; p != nil && (p.NodesNumber < 0 || p.CPUPerNode < 0) {
		ps.add(label, "parallel_job_info", "negative node or CPU count")
	}
	checkEnv(ps, label, "env", j.Env)
	for _, k := range sortedKeys(j.ParamDict) {
		w.checkRawPaths(ps, label, "param_dict."+k, j.ParamDict[k], nPaths)
	}
	for _, k := range sortedKeys(j.Extra) {
		w.checkRawPaths(ps, label, k, j.Extra[k], nPaths)
	}
}

// groupCycles reports groups that contain themselves.
func (w *Workflow) groupCycles(ps *problems) {
	n := len(w.Groups)
	state := make([]byte, n) // 0 new, 1 on stack, 2 done
	type frame struct{ g, next int }
	for start := range n {
		if state[start] != 0 {
			continue
		}
		stack := []frame{{start, 0}}
		state[start] = 1
		for len(stack) > 0 {
			top := &stack[len(stack)-1]
			els := w.Groups[top.g].Elements
			if top.next >= len(els) {
				state[top.g] = 2
				stack = stack[:len(stack)-1]
				continue
			}
			el := els[top.next]
			top.next++
			if el.Kind != GroupElement {
				continue
			}
			switch state[el.Index] {
			case 0:
				state[el.Index] = 1
				stack = append(stack, frame{el.Index, 0})
			case 1:
				var names []string
				k := len(stack) - 1
				for k > 0 && stack[k].g != el.Index {
					k--
				}
				for _, f := range stack[k:] {
					names = append(names, strconv.Quote(w.Groups[f.g].Name))
				}
				names = append(names, strconv.Quote(w.Groups[el.Index].Name))
				ps.add("", "groups", "group contains itself: %s", strings.Join(names, " -> "))
			}
		}
	}
}

// cycles finds dependency cycles with an iterative depth-first search over
// jobs plus one input and one output hub per group used in a dependency
// (as soma-workflow's barriers), O(V+E).
func (w *Workflow) cycles(ps *problems) {
	nJobs := len(w.Jobs)
	hubIn := map[int]int{} // group -> node
	var hubGroup []int     // node-nJobs -> group (two nodes per group)
	var addHubs func(g int)
	var edges [][2]int
	addHubs = func(g int) {
		queue := []int{g}
		for len(queue) > 0 {
			x := queue[0]
			queue = queue[1:]
			if _, ok := hubIn[x]; ok {
				continue
			}
			hubIn[x] = nJobs + len(hubGroup)
			hubGroup = append(hubGroup, x, x)
			for _, el := range w.Groups[x].Elements {
				if el.Kind == GroupElement {
					queue = append(queue, el.Index)
				}
			}
		}
	}
	node := func(el Element, asSource bool) int {
		if el.Kind == JobElement {
			return el.Index
		}
		addHubs(el.Index)
		if asSource {
			return hubIn[el.Index] + 1
		}
		return hubIn[el.Index]
	}
	edges = make([][2]int, 0, len(w.Dependencies)+len(w.ParamLinks))
	for _, d := range w.Dependencies {
		edges = append(edges, [2]int{node(d.From, true), node(d.To, false)})
	}
	for _, l := range w.ParamLinks {
		edges = append(edges, [2]int{l.Src, l.Dest})
	}
	for g, in := range hubIn {
		for _, el := range w.Groups[g].Elements {
			if el.Kind == GroupElement {
				sub := hubIn[el.Index]
				edges = append(edges, [2]int{in, sub}, [2]int{sub + 1, in + 1})
			} else {
				edges = append(edges, [2]int{in, el.Index}, [2]int{el.Index, in + 1})
			}
		}
	}
	n := nJobs + len(hubGroup)
	// compressed adjacency
	start := make([]int, n+1)
	for _, e := range edges {
		start[e[0]+1]++
	}
	for i := 0; i < n; i++ {
		start[i+1] += start[i]
	}
	adj := make([]int, len(edges))
	fill := append([]int(nil), start[:n]...)
	for _, e := range edges {
		adj[fill[e[0]]] = e[1]
		fill[e[0]]++
	}
	name := func(v int) string {
		if v < nJobs {
			return strconv.Quote(w.JobLabel(v))
		}
		return fmt.Sprintf("group %q", w.Groups[hubGroup[v-nJobs]].Name)
	}
	state := make([]byte, n)
	pos := make([]int, n) // index on the path while on it
	next := make([]int, n)
	var path []int
	found := 0
	for s := 0; s < n; s++ {
		if state[s] != 0 {
			continue
		}
		path = append(path[:0], s)
		state[s], pos[s], next[s] = 1, 0, start[s]
		for len(path) > 0 {
			v := path[len(path)-1]
			if next[v] == start[v+1] {
				state[v] = 2
				path = path[:len(path)-1]
				continue
			}
			u := adj[next[v]]
			next[v]++
			switch state[u] {
			case 0:
				state[u], pos[u], next[u] = 1, len(path), start[u]
				path = append(path, u)
			case 1:
				found++
				if found > maxCycles {
					continue
				}
				cyc := path[pos[u]:]
				// start the message at the first job (lowest index) of the cycle
				best := -1
				for k, x := range cyc {
					if x < nJobs && (best < 0 || x < cyc[best]) {
						best = k
					}
				}
				if best < 0 {
					best = 0
				}
				var names []string
				for k := range cyc {
					x := cyc[(best+k)%len(cyc)]
					if x >= nJobs && k > 0 && cyc[(best+k-1)%len(cyc)] >= nJobs && hubGroup[x-nJobs] == hubGroup[cyc[(best+k-1)%len(cyc)]-nJobs] {
						continue
					}
					names = append(names, name(x))
				}
				names = append(names, name(cyc[best]))
				owner := ""
				if cyc[best] < nJobs {
					owner = w.JobLabel(cyc[best])
				}
				ps.add(owner, "dependencies", "dependency cycle: %s", strings.Join(names, " -> "))
			}
		}
	}
	if found > maxCycles {
		ps.add("", "dependencies", "%d more dependency cycles not shown", found-maxCycles)
	}
}
