package model

import (
	"encoding/json"
	"fmt"
	"sort"
)

// EncodeSoma writes a workflow in soma-workflow's JSON format, as
// Helper.serialize does: indent 4, ASCII only, jobs numbered 0..n-1, then
// groups, then special paths in the order they are first met while the
// jobs are written. Dependencies that name a group are expanded into
// <group>_input / <group>_output barrier jobs exactly as soma-workflow's
// Workflow() does, and every parameter link also gets its src -> dest
// dependency. The model is not modified.
func EncodeSoma(w *Workflow) ([]byte, error) {
	if w == nil {
		return nil, fmt.Errorf("encode soma-workflow JSON: nil workflow")
	}
	e := &somaEncoder{w: w}
	if err := e.prepare(); err != nil {
		return nil, fmt.Errorf("encode soma-workflow JSON: %w", err)
	}
	e.write()
	return e.out.b, nil
}

type somaEncoder struct {
	w      *Workflow
	jobs   []*Job // model jobs then group hubs
	deps   [][2]int
	groups []int // model group indexes in id order
	gid    map[int]int
	root   []int // file ids
	// file id of each special path, by model path ID
	pathFileID []int
	pathOrder  []int // model path IDs in file id order
	nextID     int
	out        pyWriter
}

func (e *somaEncoder) checkElem(el Element) error {
	switch el.Kind {
	case JobElement:
		if el.Index < 0 || el.Index >= len(e.w.Jobs) {
			return fmt.Errorf("unknown job index %d", el.Index)
		}
	case GroupElement:
		if el.Index < 0 || el.Index >= len(e.w.Groups) {
			return fmt.Errorf("unknown group index %d", el.Index)
		}
	default:
		return fmt.Errorf("bad element kind %d", el.Kind)
	}
	return nil
}

func (e *somaEncoder) prepare() error {
	w := e.w
	for i, j := range w.Jobs {
		if j == nil {
			return fmt.Errorf("job %d is nil", i)
		}
	}
	for i, g := range w.Groups {
		if g == nil {
			return fmt.Errorf("group %d is nil", i)
		}
		for _, el := range g.Elements {
			if err := e.checkElem(el); err != nil {
				return fmt.Errorf("group %q: %w", g.Name, err)
			}
		}
	}
	for _, d := range w.Dependencies {
		if err := e.checkElem(d.From); err != nil {
			return fmt.Errorf("dependency: %w", err)
		}
		if err := e.checkElem(d.To); err != nil {
			return fmt.Errorf("dependency: %w", err)
		}
	}
	for _, l := range w.ParamLinks {
		if l.Src < 0 || l.Src >= len(w.Jobs) || l.Dest < 0 || l.Dest >= len(w.Jobs) {
			return fmt.Errorf("parameter link %q: unknown job index", l.DestParam)
		}
	}
	e.jobs = append([]*Job(nil), w.Jobs...)
	e.expandGroups()
	// dependencies implied by parameter links (Workflow.add_dependencies_from_links)
	if len(w.ParamLinks) > 0 {
		have := make(map[[2]int]bool, len(e.deps))
		for _, d := range e.deps {
			have[d] = true
		}
		for _, l := range w.ParamLinks {
			d := [2]int{l.Src, l.Dest}
			if !have[d] {
				have[d] = true
				e.deps = append(e.deps, d)
			}
		}
	}
	// groups: stack walk from the root group, as Workflow() lists them
	root := w.Root
	if len(root) == 0 {
		root = DefaultRoot(w)
	}
	e.gid = map[int]int{}
	var stack []int
	for _, el := range root {
		if el.Kind == GroupElement {
			stack = append(stack, el.Index)
		}
	}
	seen := map[int]bool{}
	var order []int
	for len(stack) > 0 {
		g := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if seen[g] {
			continue
		}
		seen[g] = true
		order = append(order, g)
		for _, el := range w.Groups[g].Elements {
			if el.Kind == GroupElement {
				stack = append(stack, el.Index)
			}
		}
	}
	for g := range w.Groups { // not reachable: written all the same
		if !seen[g] {
			order = append(order, g)
		}
	}
	e.nextID = len(e.jobs)
	for _, g := range order {
		e.gid[g] = e.nextID
		e.nextID++
	}
	e.groups = order
	if len(w.Root) == 0 && len(w.Groups) == 0 {
		for i := range e.jobs {
			e.root = append(e.root, i)
		}
	} else {
		for _, el := range root {
			e.root = append(e.root, e.elemID(el))
		}
	}
	// special paths, first met while jobs are written
	n := w.pathCount()
	e.pathFileID = make([]int, n)
	for i := range e.pathFileID {
		e.pathFileID[i] = -1
	}
	for _, j := range e.jobs {
		e.visitJobPaths(j)
	}
	for i := 0; i < len(e.pathOrder); i++ { // option parents, also met late
		if r, ok := w.PathRefByID(e.pathOrder[i]); ok && r.Kind == OptionPathKind {
			e.visitRaw(w.OptionPaths[r.Index].ParentPath)
		}
	}
	for _, l := range w.ParamLinks {
		if l.Transform != nil {
			for _, a := range l.Transform.Args {
				e.visitRaw(a)
			}
		}
	}
	for id := range n { // never referenced: kept all the same
		e.visitID(id)
		if r, _ := w.PathRefByID(id); r.Kind == OptionPathKind {
			e.visitRaw(w.OptionPaths[r.Index].ParentPath)
		}
	}
	return nil
}

func (e *somaEncoder) elemID(el Element) int {
	if el.Kind == GroupElement {
		return e.gid[el.Index]
	}
	return el.Index
}

func (e *somaEncoder) visitID(id int) {
	if id < 0 || id >= len(e.pathFileID) || e.pathFileID[id] >= 0 {
		return
	}
	e.pathFileID[id] = e.nextID
	e.nextID++
	e.pathOrder = append(e.pathOrder, id)
}

func (e *somaEncoder) visitArg(a *Arg) {
	if a == nil {
		return
	}
	switch a.Kind {
	case ArgPath, ArgPathIn:
		e.visitID(e.w.PathID(a.Path))
	case ArgList:
		for i := range a.List {
			e.visitArg(&a.List[i])
		}
	}
}

func (e *somaEncoder) visitRaw(raw json.RawMessage) {
	if raw == nil {
		return
	}
	_, _ = mapPathIDs(raw, func(n int) (int, error) {
		e.visitID(n)
		return n, nil
	})
}

func (e *somaEncoder) visitJobPaths(j *Job) {
	if !j.IsBarrier() && isRunnableClass(j.Class) {
		for i := range j.Command {
			e.visitArg(&j.Command[i])
		}
	}
	for i := range j.ReferencedInputFiles {
		e.visitArg(&j.ReferencedInputFiles[i])
	}
	for i := range j.ReferencedOutputFiles {
		e.visitArg(&j.ReferencedOutputFiles[i])
	}
	if j.IsBarrier() || !isRunnableClass(j.Class) {
		return
	}
	for _, a := range []*Arg{j.Stdin, j.StdoutFile, j.StderrFile, j.InputParamsFile, j.OutputParamsFile, j.WorkingDirectory} {
		e.visitArg(a)
	}
	for _, k := range sortedKeys(j.ParamDict) {
		e.visitRaw(j.ParamDict[k])
	}
}

// isRunnableClass reports whether a class is written with the full job
// block (Job); barriers and other classes carry only a few keys.
func isRunnableClass(c string) bool { return c == "" || c == ClassJob }

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// expandGroups turns dependencies that name groups into barrier jobs, as
// soma-workflow's Workflow.__convert_group_dependencies does.
func (e *somaEncoder) expandGroups() {
	w := e.w
	type hubs struct{ in, out int }
	hub := map[int]hubs{}
	var hubOrder []int
	groupHubs := func(g int) hubs {
		if h, ok := hub[g]; ok {
			return h
		}
		name := w.Groups[g].Name
		in, out := name+"_input", name+"_output"
		h := hubs{len(e.jobs), len(e.jobs) + 1}
		e.jobs = append(e.jobs,
			&Job{Class: ClassBarrier, Name: &in},
			&Job{Class: ClassBarrier, Name: &out})
		hub[g] = h
		hubOrder = append(hubOrder, g)
		return h
	}
	groupHubsRecurs := func(g int) hubs {
		queue := []int{g}
		first := groupHubs(g)
		done := map[int]bool{}
		for len(queue) > 0 {
			x := queue[0]
			queue = queue[1:]
			if done[x] {
				continue
			}
			done[x] = true
			groupHubs(x)
			for _, el := range w.Groups[x].Elements {
				if el.Kind == GroupElement {
					queue = append(queue, el.Index)
				}
			}
		}
		return first
	}
	var kept, added [][2]int
	for _, d := range w.Dependencies {
		if d.From.Kind == JobElement && d.To.Kind == JobElement {
			kept = append(kept, [2]int{d.From.Index, d.To.Index})
			continue
		}
		a, b := d.From.Index, d.To.Index
		if d.From.Kind == GroupElement {
			a = groupHubsRecurs(d.From.Index).out
		}
		if d.To.Kind == GroupElement {
			b = groupHubsRecurs(d.To.Index).in
		}
		added = append(added, [2]int{a, b})
	}
	for _, g := range hubOrder {
		h := hub[g]
		for _, el := range w.Groups[g].Elements {
			if el.Kind == GroupElement {
				sub := groupHubs(el.Index)
				added = append(added, [2]int{h.in, sub.in}, [2]int{sub.out, h.out})
			} else {
				added = append(added, [2]int{h.in, el.Index}, [2]int{el.Index, h.out})
			}
		}
	}
	e.deps = append(kept, added...)
}

// DefaultRoot is the root group used when Workflow.Root is empty: jobs that
// are in no group, and each top-level group where its first job (or, for a
// group with no job, at the end), in job order.
func DefaultRoot(w *Workflow) []Element {
	if len(w.Groups) == 0 {
		out := make([]Element, len(w.Jobs))
		for i := range w.Jobs {
			out[i] = Element{Kind: JobElement, Index: i}
		}
		return out
	}
	parentOfGroup := make([]int, len(w.Groups))
	for i := range parentOfGroup {
		parentOfGroup[i] = -1
	}
	jobGroup := make([]int, len(w.Jobs))
	for i := range jobGroup {
		jobGroup[i] = -1
	}
	for gi, g := range w.Groups {
		for _, el := range g.Elements {
			if el.Kind == GroupElement && el.Index >= 0 && el.Index < len(w.Groups) && el.Index != gi && parentOfGroup[el.Index] < 0 {
				parentOfGroup[el.Index] = gi
			}
			if el.Kind == JobElement && el.Index >= 0 && el.Index < len(w.Jobs) && jobGroup[el.Index] < 0 {
				jobGroup[el.Index] = gi
			}
		}
	}
	top := func(g int) int {
		for steps := 0; parentOfGroup[g] >= 0 && steps <= len(w.Groups); steps++ {
			g = parentOfGroup[g]
		}
		return g
	}
	var out []Element
	placed := make([]bool, len(w.Groups))
	for i := range w.Jobs {
		if jobGroup[i] < 0 {
			out = append(out, Element{Kind: JobElement, Index: i})
			continue
		}
		if t := top(jobGroup[i]); !placed[t] {
			placed[t] = true
			out = append(out, Element{Kind: GroupElement, Index: t})
		}
	}
	for g := range w.Groups {
		if t := top(g); !placed[t] {
			placed[t] = true
			out = append(out, Element{Kind: GroupElement, Index: t})
		}
	}
	return out
}

func (e *somaEncoder) rawOut(raw json.RawMessage) json.RawMessage {
	out, err := mapPathIDs(raw, func(n int) (int, error) {
		if n >= 0 && n < len(e.pathFileID) {
			return e.pathFileID[n], nil
		}
		return n, nil
	})
	if err != nil {
		return raw
	}
	return out
}

func (e *somaEncoder) write() {
	w := e.w
	o := &e.out
	o.b = make([]byte, 0, 512+600*len(e.jobs))
	o.openV('{')
	o.key("name")
	if w.Name != nil {
		o.vStr(*w.Name)
	} else {
		o.vLit("null")
	}
	o.key("jobs")
	o.openV('[')
	for i := range e.jobs {
		o.aInt(i)
	}
	o.close(']')
	o.key("dependencies")
	o.openV('[')
	for _, d := range e.deps {
		o.open('[')
		o.aStr("<tuple>")
		o.aInt(d[0])
		o.aInt(d[1])
		o.close(']')
	}
	o.close(']')
	o.key("param_links")
	e.writeLinks()
	o.key("groups")
	o.openV('[')
	for _, g := range e.groups {
		o.aInt(e.gid[g])
	}
	o.close(']')
	o.key("root_group")
	o.openV('[')
	for _, id := range e.root {
		o.aInt(id)
	}
	o.close(']')
	o.key("serialized_groups")
	o.openV('{')
	for _, g := range e.groups {
		gr := w.Groups[g]
		o.key(itoa(e.gid[g]))
		o.openV('{')
		o.kStr("name", gr.Name)
		o.key("elements")
		o.openV('[')
		for _, el := range gr.Elements {
			o.aInt(e.elemID(el))
		}
		o.close(']')
		e.writeExtra(gr.Extra)
		o.close('}')
	}
	o.close('}')
	o.key("serialized_jobs")
	o.openV('{')
	for i, j := range e.jobs {
		o.key(itoa(i))
		e.writeJob(j)
	}
	o.close('}')
	e.writeTables()
	if len(w.Env) > 0 {
		o.key("env")
		e.writeStringMap(w.Env)
	}
	if w.EnvBuilderCode != "" {
		o.kStr("env_builder_code", w.EnvBuilderCode)
	}
	if w.UUID != "" {
		o.kStr("uuid", w.UUID)
	}
	if len(w.NativeSpecification) > 0 {
		o.key("native_specification")
		e.writeNativeSpec(w.NativeSpecification, w.NativeSpecAsList)
	}
	e.writeExtra(w.Extra)
	o.close('}')
}

func itoa(n int) string { return fmt.Sprint(n) }

func (e *somaEncoder) writeExtra(m map[string]json.RawMessage) {
	for _, k := range sortedKeys(m) {
		e.out.key(k)
		e.out.vRaw(e.rawOut(m[k]))
	}
}

func (e *somaEncoder) writeStringMap(m map[string]string) {
	o := &e.out
	o.openV('{')
	for _, k := range sortedKeys(m) {
		o.kStr(k, m[k])
	}
	o.close('}')
}

func (e *somaEncoder) writeNativeSpec(ns NativeSpec, asList bool) {
	o := &e.out
	if ns == nil {
		o.vLit("null")
		return
	}
	if !asList && len(ns) == 1 {
		o.vStr(ns[0])
		return
	}
	o.openV('[')
	for _, s := range ns {
		o.aStr(s)
	}
	o.close(']')
}

func (e *somaEncoder) writeLinks() {
	o := &e.out
	w := e.w
	type key struct {
		dest  int
		param string
	}
	var dests []int
	params := map[int][]string{}
	links := map[key][]ParamLink{}
	for _, l := range w.ParamLinks {
		if _, ok := params[l.Dest]; !ok {
			dests = append(dests, l.Dest)
			params[l.Dest] = nil
		}
		k := key{l.Dest, l.DestParam}
		if _, ok := links[k]; !ok {
			params[l.Dest] = append(params[l.Dest], l.DestParam)
		}
		links[k] = append(links[k], l)
	}
	o.openV('{')
	for _, d := range dests {
		o.key(itoa(d))
		o.openV('{')
		for _, p := range params[d] {
			o.key(p)
			o.openV('[')
			for _, l := range links[key{d, p}] {
				o.open('[')
				o.aStr("<tuple>")
				o.aInt(l.Src)
				o.aStr(l.SrcParam)
				if t := l.Transform; t != nil {
					if !t.Tuple && len(t.Args) == 0 {
						o.aStr(t.Name)
					} else {
						o.open('[')
						o.aStr("<tuple>")
						o.aStr(t.Name)
						for _, a := range t.Args {
							o.aRaw(e.rawOut(a))
						}
						o.close(']')
					}
				}
				o.close(']')
			}
			o.close(']')
		}
		o.close('}')
	}
	o.close('}')
}

func (e *somaEncoder) writeRef(r PathRef) {
	o := &e.out
	o.openV('[')
	o.aStr("<tuple>")
	o.aStr("<id>")
	id := e.w.PathID(r)
	fid := -1
	if id >= 0 && id < len(e.pathFileID) {
		fid = e.pathFileID[id]
	}
	o.aInt(fid)
	o.close(']')
}

func (e *somaEncoder) writeArg(a Arg) {
	o := &e.out
	switch a.Kind {
	case ArgNumber:
		if json.Valid([]byte(a.Value)) && jsonKind([]byte(a.Value)) == 'n' {
			o.vLit(a.Value)
		} else {
			o.vStr(a.Value)
		}
	case ArgPath:
		e.writeRef(a.Path)
	case ArgPathIn:
		o.openV('[')
		o.aStr("<tuple>")
		o.item()
		e.writeRef(a.Path)
		o.aStr(a.Value)
		o.close(']')
	case ArgList:
		o.openV('[')
		for _, x := range a.List {
			o.item()
			e.writeArg(x)
		}
		o.close(']')
	default:
		o.vStr(a.Value)
	}
}

func (e *somaEncoder) writeArgs(key string, args []Arg) {
	o := &e.out
	o.key(key)
	o.openV('[')
	for _, a := range args {
		o.item()
		e.writeArg(a)
	}
	o.close(']')
}

func (e *somaEncoder) writeJob(j *Job) {
	o := &e.out
	o.openV('{')
	class := j.Class
	if class == "" {
		class = ClassJob
	}
	name := func() {
		o.key("name")
		if j.Name != nil {
			o.vStr(*j.Name)
		} else {
			o.vLit("null")
		}
	}
	timeout := func() {
		if j.DisposalTimeout != nil {
			o.kInt("disposal_timeout", *j.DisposalTimeout)
		} else {
			o.kInt("disposal_timeout", DefaultDisposalTimeout)
		}
	}
	refs := func() {
		if len(j.ReferencedInputFiles) > 0 {
			e.writeArgs("referenced_input_files", j.ReferencedInputFiles)
		}
		if len(j.ReferencedOutputFiles) > 0 {
			e.writeArgs("referenced_output_files", j.ReferencedOutputFiles)
		}
	}
	if !isRunnableClass(class) {
		name()
		timeout()
		o.kStr("class", class)
		refs()
		e.writeExtra(j.Extra)
		o.close('}')
		return
	}
	o.kStr("class", class)
	name()
	o.kBool("join_stderrout", j.JoinStderrout)
	o.kInt("priority", j.Priority)
	o.key("native_specification")
	e.writeNativeSpec(j.NativeSpecification, j.NativeSpecAsList)
	o.key("parallel_job_info")
	if p := j.ParallelJobInfo; p != nil {
		o.openV('{')
		o.kStr("config_name", p.ConfigName)
		o.kInt("nodes_number", p.NodesNumber)
		o.kInt("cpu_per_node", p.CPUPerNode)
		o.close('}')
	} else {
		o.vLit("null")
	}
	timeout()
	o.key("env")
	if j.Env != nil {
		e.writeStringMap(j.Env)
	} else {
		o.vLit("null")
	}
	o.kBool("use_input_params_file", j.UseInputParamsFile)
	o.kBool("has_outputs", j.HasOutputs)
	o.key("configuration")
	if len(j.Configuration) > 0 {
		o.vRaw(j.Configuration)
	} else {
		o.vLit("{}")
	}
	if j.UUID != "" {
		o.kStr("uuid", j.UUID)
	}
	if j.Retries != 0 {
		o.kInt("retries", j.Retries)
	}
	if r := j.Resources; !r.IsZero() {
		o.key("resources")
		o.vRaw([]byte(fmt.Sprintf(`{"cpus": %d, "memory_mb": %d, "walltime_s": %d, "gpus": %d}`, r.CPUs, r.MemoryMB, r.Walltime, r.GPUs)))
	}
	cmd := j.Command
	if cmd == nil && j.Shell != "" {
		// soma-workflow has no shell lines: run it as sh -c
		cmd = []Arg{{Value: "/bin/sh"}, {Value: "-c"}, {Value: j.Shell}}
	}
	if cmd == nil {
		cmd = []Arg{}
	}
	e.writeArgs("command", cmd)
	refs()
	for _, f := range []struct {
		key string
		a   *Arg
	}{{"stdin", j.Stdin}, {"stdout_file", j.StdoutFile}, {"stderr_file", j.StderrFile},
		{"input_params_file", j.InputParamsFile}, {"output_params_file", j.OutputParamsFile},
		{"working_directory", j.WorkingDirectory}} {
		if f.a != nil {
			o.key(f.key)
			e.writeArg(*f.a)
		}
	}
	if len(j.ParamDict) > 0 {
		o.key("param_dict")
		o.openV('{')
		for _, k := range sortedKeys(j.ParamDict) {
			o.key(k)
			o.vRaw(e.rawOut(j.ParamDict[k]))
		}
		o.close('}')
	}
	if j.UserStorage != nil {
		o.key("user_storage")
		o.vRaw(j.UserStorage)
	}
	e.writeExtra(j.Extra)
	o.close('}')
}

func (e *somaEncoder) writeTables() {
	o := &e.out
	w := e.w
	timeout := func(t *int) {
		o.key("disposal_timeout")
		if t == nil {
			o.vLit("null")
		} else {
			o.vInt(*t)
		}
	}
	pattern := func(p string) {
		if p == "" {
			p = "%s"
		}
		o.kStr("pattern", p)
	}
	for _, kind := range []PathKind{TransferPath, SharedPath, TempPath, OptionPathKind} {
		switch kind {
		case TransferPath:
			o.key("serialized_file_transfers")
		case SharedPath:
			o.key("serialized_shared_res_paths")
		case TempPath:
			o.key("serialized_temporary_paths")
		case OptionPathKind:
			o.key("serialized_option_paths")
		}
		o.openV('{')
		for _, id := range e.pathOrder {
			r, _ := w.PathRefByID(id)
			if r.Kind != kind {
				continue
			}
			o.key(itoa(e.pathFileID[id]))
			o.openV('{')
			switch kind {
			case TransferPath:
				t := w.Transfers[r.Index]
				o.kStr("client_path", t.ClientPath)
				o.key("client_paths")
				if t.ClientPaths == nil {
					o.vLit("null")
				} else {
					o.openV('[')
					for _, s := range t.ClientPaths {
						o.aStr(s)
					}
					o.close(']')
				}
				o.kStr("initial_status", t.InitialStatus)
				timeout(t.DisposalTimeout)
				o.kStr("name", t.Name)
				pattern(t.Pattern)
				e.writeExtra(t.Extra)
			case SharedPath:
				s := w.SharedPaths[r.Index]
				o.kStr("relative_path", s.RelativePath)
				o.kStr("namespace", s.Namespace)
				o.kStr("uuid", s.UUID)
				timeout(s.DisposalTimeout)
				pattern(s.Pattern)
				e.writeExtra(s.Extra)
			case TempPath:
				t := w.TempPaths[r.Index]
				o.kBool("is_directory", t.IsDirectory)
				timeout(t.DisposalTimeout)
				o.kStr("name", t.Name)
				o.kStr("suffix", t.Suffix)
				pattern(t.Pattern)
				e.writeExtra(t.Extra)
			case OptionPathKind:
				op := w.OptionPaths[r.Index]
				pt := op.ParentType
				if pt == "" {
					pt = "str"
				}
				o.kStr("parent_type", pt)
				o.key("parent_path")
				if op.ParentPath == nil {
					o.vLit("null")
				} else {
					o.vRaw(e.rawOut(op.ParentPath))
				}
				o.kStr("uri", op.URI)
				o.kStr("name", op.Name)
				pattern(op.Pattern)
				e.writeExtra(op.Extra)
			}
			o.close('}')
		}
		o.close('}')
	}
}
