package model

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// NativeNames returns the unique names the native format gives the jobs
// and groups of w: a job or group keeps its name when no other job or
// group has it; the others (null, empty or repeated names) get NAME_2,
// NAME_3... (argv[0] or "job"/"group" for a job or group with no name).
func NativeNames(w *Workflow) (jobs, groups []string) {
	count := map[string]int{}
	for _, j := range w.Jobs {
		if j != nil && j.Name != nil {
			count[*j.Name]++
		}
	}
	for _, g := range w.Groups {
		if g != nil {
			count[g.Name]++
		}
	}
	used := map[string]bool{}
	for n, c := range count {
		if c == 1 && n != "" {
			used[n] = true
		}
	}
	fresh := func(base string) string {
		if base == "" {
			base = "job"
		}
		for k := 2; ; k++ {
			n := base + "_" + strconv.Itoa(k)
			if !used[n] {
				used[n] = true
				return n
			}
		}
	}
	jobs = make([]string, len(w.Jobs))
	for i, j := range w.Jobs {
		switch {
		case j == nil:
			jobs[i] = fresh("job")
		case j.Name != nil && count[*j.Name] == 1 && *j.Name != "":
			jobs[i] = *j.Name
		case j.Name != nil && *j.Name != "":
			if !used[*j.Name] {
				used[*j.Name] = true
				jobs[i] = *j.Name
			} else {
				jobs[i] = fresh(*j.Name)
			}
		default:
			base := j.DisplayName()
			if base == "" {
				base = "job"
			}
			if !used[base] {
				used[base] = true
				jobs[i] = base
			} else {
				jobs[i] = fresh(base)
			}
		}
	}
	groups = make([]string, len(w.Groups))
	for i, g := range w.Groups {
		base := "group"
		if g != nil && g.Name != "" {
			base = g.Name
		}
		if g != nil && g.Name != "" && count[g.Name] == 1 {
			groups[i] = g.Name
		} else if !used[base] {
			used[base] = true
			groups[i] = base
		} else {
			groups[i] = fresh(base)
		}
	}
	return jobs, groups
}

// EncodeNative writes a workflow in the native format (YAML). What the
// native format has no field for travels in soma: blocks, so that
// DecodeNative gives back an Equivalent workflow.
func EncodeNative(w *Workflow) ([]byte, error) {
	if w == nil {
		return nil, fmt.Errorf("encode native workflow: nil workflow")
	}
	for i, j := range w.Jobs {
		if j == nil {
			return nil, fmt.Errorf("encode native workflow: job %d is nil", i)
		}
	}
	for i, g := range w.Groups {
		if g == nil {
			return nil, fmt.Errorf("encode native workflow: group %d is nil", i)
		}
	}
	e := &nativeEncoder{w: w}
	e.jobNames, e.groupNames = NativeNames(w)
	root, err := e.build()
	if err != nil {
		return nil, fmt.Errorf("encode native workflow: %w", err)
	}
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(root); err != nil {
		return nil, fmt.Errorf("encode native workflow: %w", err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("encode native workflow: %w", err)
	}
	return buf.Bytes(), nil
}

type nativeEncoder struct {
	w                    *Workflow
	jobNames, groupNames []string
}

func strN(s string) *yaml.Node {
	n := &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: s}
	if strings.Contains(s, "\n") && !strings.ContainsAny(s, "\r\t") && strings.TrimRight(s, " \n") == s[:len(strings.TrimRight(s, "\n"))] {
		n.Style = yaml.LiteralStyle
	}
	return n
}
func intN(v int) *yaml.Node {
	return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!int", Value: strconv.Itoa(v)}
}
func boolN(v bool) *yaml.Node {
	return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!bool", Value: strconv.FormatBool(v)}
}
func nullN() *yaml.Node { return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!null", Value: "null"} }
func mapN() *yaml.Node  { return &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"} }
func seqN() *yaml.Node  { return &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq"} }

func put(m *yaml.Node, k string, v *yaml.Node) {
	m.Content = append(m.Content, strN(k), v)
}

// flowIfShort prints short lists of scalars on one line.
func flowIfShort(s *yaml.Node) *yaml.Node {
	total := 0
	for _, c := range s.Content {
		if c.Kind != yaml.ScalarNode || strings.ContainsAny(c.Value, "\n\r\t") {
			return s
		}
		total += len(c.Value) + 2
	}
	if total < 100 {
		s.Style = yaml.FlowStyle
	}
	return s
}

// rawN converts a raw JSON value to a YAML node, keeping key order.
func rawN(raw []byte) (*yaml.Node, error) {
	switch jsonKind(raw) {
	case 'o':
		kvs, err := splitObject(raw)
		if err != nil {
			return nil, err
		}
		m := mapN()
		for _, p := range kvs {
			v, err := rawN(p.val)
			if err != nil {
				return nil, err
			}
			put(m, p.key, v)
		}
		if len(m.Content) == 0 {
			m.Style = yaml.FlowStyle
		}
		return m, nil
	case 'a':
		items, err := splitArray(raw)
		if err != nil {
			return nil, err
		}
		s := seqN()
		for _, it := range items {
			v, err := rawN(it)
			if err != nil {
				return nil, err
			}
			s.Content = append(s.Content, v)
		}
		return flowIfShort(s), nil
	case 's':
		str, err := parseString(raw)
		if err != nil {
			return nil, err
		}
		return strN(str), nil
	case 'b':
		b, err := parseBool(raw)
		return boolN(b), err
	case 'z':
		return nullN(), nil
	case 'n':
		t := string(bytes.TrimSpace(raw))
		if !json.Valid([]byte(t)) {
			return nil, fmt.Errorf("bad number %q", t)
		}
		tag := "!!float"
		if _, err := strconv.ParseInt(t, 10, 64); err == nil {
			tag = "!!int"
		}
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: tag, Value: t}, nil
	}
	return nil, fmt.Errorf("empty JSON value")
}

func (e *nativeEncoder) argN(a Arg) (*yaml.Node, error) {
	switch a.Kind {
	case ArgString:
		return strN(a.Value), nil
	case ArgNumber:
		if jsonKind([]byte(a.Value)) != 'n' {
			return strN(a.Value), nil
		}
		return rawN([]byte(a.Value))
	case ArgPath, ArgPathIn:
		m := mapN()
		m.Style = yaml.FlowStyle
		k := map[PathKind]string{TransferPath: "transfer", SharedPath: "shared", TempPath: "temporary", OptionPathKind: "option"}[a.Path.Kind]
		if k == "" {
			return nil, fmt.Errorf("bad special path kind %d", a.Path.Kind)
		}
		put(m, k, intN(a.Path.Index))
		tp := e.w.pathPattern(a.Path)
		if tp == "" {
			tp = "%s"
		}
		if a.Path.Pattern != tp && a.Path.Pattern != "" {
			put(m, "pattern", strN(a.Path.Pattern))
		}
		if a.Kind == ArgPathIn {
			put(m, "file", strN(a.Value))
		}
		return m, nil
	case ArgList:
		s := seqN()
		for _, x := range a.List {
			n, err := e.argN(x)
			if err != nil {
				return nil, err
			}
			s.Content = append(s.Content, n)
		}
		return flowIfShort(s), nil
	}
	return nil, fmt.Errorf("bad argument kind %d", a.Kind)
}

func (e *nativeEncoder) argsN(as []Arg) (*yaml.Node, error) {
	s := seqN()
	for _, a := range as {
		n, err := e.argN(a)
		if err != nil {
			return nil, err
		}
		s.Content = append(s.Content, n)
	}
	return flowIfShort(s), nil
}

func stringMapN(m map[string]string) *yaml.Node {
	n := mapN()
	for _, k := range sortedKeys(m) {
		put(n, k, strN(m[k]))
	}
	if len(m) == 0 {
		n.Style = yaml.FlowStyle
	}
	return n
}

func nativeSpecN(ns NativeSpec, asList bool) *yaml.Node {
	if ns == nil {
		return nullN()
	}
	if !asList && len(ns) == 1 {
		return strN(ns[0])
	}
	s := seqN()
	for _, x := range ns {
		s.Content = append(s.Content, strN(x))
	}
	return flowIfShort(s)
}

func extraN(m map[string]json.RawMessage) (*yaml.Node, error) {
	n := mapN()
	for _, k := range sortedKeys(m) {
		v, err := rawN(m[k])
		if err != nil {
			return nil, fmt.Errorf("%s: %w", k, err)
		}
		put(n, k, v)
	}
	return n, nil
}

func (e *nativeEncoder) elemName(el Element) string {
	if el.Kind == GroupElement && el.Index >= 0 && el.Index < len(e.groupNames) {
		return e.groupNames[el.Index]
	}
	if el.Kind == JobElement && el.Index >= 0 && el.Index < len(e.jobNames) {
		return e.jobNames[el.Index]
	}
	return fmt.Sprintf("#%d", el.Index)
}

func (e *nativeEncoder) build() (*yaml.Node, error) {
	w := e.w
	for _, d := range w.Dependencies {
		for _, el := range []Element{d.From, d.To} {
			if (el.Kind == JobElement && (el.Index < 0 || el.Index >= len(w.Jobs))) ||
				(el.Kind == GroupElement && (el.Index < 0 || el.Index >= len(w.Groups))) ||
				(el.Kind != JobElement && el.Kind != GroupElement) {
				return nil, fmt.Errorf("dependency on unknown element %v", el)
			}
		}
	}
	for _, l := range w.ParamLinks {
		if l.Src < 0 || l.Src >= len(w.Jobs) || l.Dest < 0 || l.Dest >= len(w.Jobs) {
			return nil, fmt.Errorf("parameter link %q: unknown job", l.DestParam)
		}
	}
	root := mapN()
	if w.Name != nil {
		put(root, "name", strN(*w.Name))
	}
	if w.Env != nil {
		put(root, "env", stringMapN(w.Env))
	}
	if w.NativeSpecification != nil {
		put(root, "native_specification", nativeSpecN(w.NativeSpecification, w.NativeSpecAsList))
	}
	jobAfter := make([][]string, len(w.Jobs))
	groupAfter := make([][]string, len(w.Groups))
	for _, d := range w.Dependencies {
		if d.To.Kind == GroupElement {
			groupAfter[d.To.Index] = append(groupAfter[d.To.Index], e.elemName(d.From))
		} else {
			jobAfter[d.To.Index] = append(jobAfter[d.To.Index], e.elemName(d.From))
		}
	}
	links := make([][]ParamLink, len(w.Jobs))
	for _, l := range w.ParamLinks {
		links[l.Dest] = append(links[l.Dest], l)
	}
	jobs := mapN()
	for i, j := range w.Jobs {
		n, err := e.job(i, j, jobAfter[i], links[i])
		if err != nil {
			return nil, fmt.Errorf("job %q: %w", e.jobNames[i], err)
		}
		put(jobs, e.jobNames[i], n)
	}
	if len(w.Jobs) == 0 {
		jobs.Style = yaml.FlowStyle
	}
	put(root, "jobs", jobs)
	if len(w.Groups) > 0 {
		groups := mapN()
		for i, g := range w.Groups {
			members := seqN()
			for _, el := range g.Elements {
				members.Content = append(members.Content, strN(e.elemName(el)))
			}
			flowIfShort(members)
			if len(groupAfter[i]) == 0 && g.Name == e.groupNames[i] && len(g.Extra) == 0 {
				put(groups, e.groupNames[i], members)
				continue
			}
			m := mapN()
			put(m, "members", members)
			if len(groupAfter[i]) > 0 {
				a := seqN()
				for _, s := range groupAfter[i] {
					a.Content = append(a.Content, strN(s))
				}
				put(m, "after", flowIfShort(a))
			}
			if g.Name != e.groupNames[i] || len(g.Extra) > 0 {
				s := mapN()
				if g.Name != e.groupNames[i] {
					put(s, "name", strN(g.Name))
				}
				if len(g.Extra) > 0 {
					x, err := extraN(g.Extra)
					if err != nil {
						return nil, fmt.Errorf("group %q: %w", g.Name, err)
					}
					put(s, "extra", x)
				}
				put(m, "soma", s)
			}
			put(groups, e.groupNames[i], m)
		}
		put(root, "groups", groups)
	}
	if len(w.Root) > 0 && !sameElements(w.Root, DefaultRoot(w)) {
		r := seqN()
		for _, el := range w.Root {
			r.Content = append(r.Content, strN(e.elemName(el)))
		}
		put(root, "root", flowIfShort(r))
	}
	soma, err := e.topSoma()
	if err != nil {
		return nil, err
	}
	if len(soma.Content) > 0 {
		put(root, "soma", soma)
	}
	return root, nil
}

func sameElements(a, b []Element) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func timeoutN(t *int) *yaml.Node {
	if t == nil {
		return nullN()
	}
	return intN(*t)
}

func (e *nativeEncoder) topSoma() (*yaml.Node, error) {
	w := e.w
	s := mapN()
	if w.UUID != "" {
		put(s, "uuid", strN(w.UUID))
	}
	if w.EnvBuilderCode != "" {
		put(s, "env_builder_code", strN(w.EnvBuilderCode))
	}
	if len(w.Extra) > 0 {
		x, err := extraN(w.Extra)
		if err != nil {
			return nil, err
		}
		put(s, "extra", x)
	}
	addExtra := func(m *yaml.Node, ex map[string]json.RawMessage) error {
		if len(ex) == 0 {
			return nil
		}
		x, err := extraN(ex)
		if err != nil {
			return err
		}
		put(m, "extra", x)
		return nil
	}
	if len(w.Transfers) > 0 {
		l := seqN()
		for _, t := range w.Transfers {
			m := mapN()
			put(m, "client_path", strN(t.ClientPath))
			if t.ClientPaths != nil {
				cp := seqN()
				for _, p := range t.ClientPaths {
					cp.Content = append(cp.Content, strN(p))
				}
				put(m, "client_paths", cp)
			}
			put(m, "initial_status", strN(t.InitialStatus))
			put(m, "disposal_timeout", timeoutN(t.DisposalTimeout))
			put(m, "name", strN(t.Name))
			put(m, "pattern", strN(t.Pattern))
			if err := addExtra(m, t.Extra); err != nil {
				return nil, err
			}
			l.Content = append(l.Content, m)
		}
		put(s, "transfers", l)
	}
	if len(w.SharedPaths) > 0 {
		l := seqN()
		for _, p := range w.SharedPaths {
			m := mapN()
			put(m, "relative_path", strN(p.RelativePath))
			put(m, "namespace", strN(p.Namespace))
			put(m, "uuid", strN(p.UUID))
			put(m, "disposal_timeout", timeoutN(p.DisposalTimeout))
			put(m, "pattern", strN(p.Pattern))
			if err := addExtra(m, p.Extra); err != nil {
				return nil, err
			}
			l.Content = append(l.Content, m)
		}
		put(s, "shared_paths", l)
	}
	if len(w.TempPaths) > 0 {
		l := seqN()
		for _, p := range w.TempPaths {
			m := mapN()
			put(m, "is_directory", boolN(p.IsDirectory))
			put(m, "disposal_timeout", timeoutN(p.DisposalTimeout))
			put(m, "name", strN(p.Name))
			put(m, "suffix", strN(p.Suffix))
			put(m, "pattern", strN(p.Pattern))
			if err := addExtra(m, p.Extra); err != nil {
				return nil, err
			}
			l.Content = append(l.Content, m)
		}
		put(s, "temporary_paths", l)
	}
	if len(w.OptionPaths) > 0 {
		l := seqN()
		for _, p := range w.OptionPaths {
			m := mapN()
			put(m, "parent_type", strN(p.ParentType))
			if p.ParentPath != nil {
				v, err := rawN(p.ParentPath)
				if err != nil {
					return nil, err
				}
				put(m, "parent_path", v)
			}
			put(m, "uri", strN(p.URI))
			put(m, "name", strN(p.Name))
			put(m, "pattern", strN(p.Pattern))
			if err := addExtra(m, p.Extra); err != nil {
				return nil, err
			}
			l.Content = append(l.Content, m)
		}
		put(s, "option_paths", l)
	}
	return s, nil
}

func (e *nativeEncoder) job(i int, j *Job, after []string, links []ParamLink) (*yaml.Node, error) {
	m := mapN()
	if j.IsBarrier() {
		put(m, "barrier", boolN(true))
	}
	if j.Command != nil {
		c, err := e.argsN(j.Command)
		if err != nil {
			return nil, fmt.Errorf("command: %w", err)
		}
		put(m, "command", c)
	}
	if j.Shell != "" {
		put(m, "shell", strN(j.Shell))
	}
	if len(after) > 0 {
		a := seqN()
		for _, s := range after {
			a.Content = append(a.Content, strN(s))
		}
		put(m, "after", flowIfShort(a))
	}
	for _, f := range []struct {
		k string
		a *Arg
	}{{"stdin", j.Stdin}, {"stdout_file", j.StdoutFile}, {"stderr_file", j.StderrFile},
		{"working_directory", j.WorkingDirectory}, {"input_params_file", j.InputParamsFile},
		{"output_params_file", j.OutputParamsFile}} {
		if f.a != nil {
			n, err := e.argN(*f.a)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", f.k, err)
			}
			put(m, f.k, n)
		}
	}
	if j.JoinStderrout {
		put(m, "join_stderrout", boolN(true))
	}
	if j.Priority != 0 {
		put(m, "priority", intN(j.Priority))
	}
	if j.Retries != 0 {
		put(m, "retries", intN(j.Retries))
	}
	if r := j.Resources; r.CPUs != 0 {
		put(m, "cpus", intN(r.CPUs))
	}
	if r := j.Resources; r.MemoryMB != 0 {
		put(m, "memory", strN(FormatMemory(r.MemoryMB)))
	}
	if r := j.Resources; r.Walltime != 0 {
		put(m, "walltime", strN(FormatWalltime(r.Walltime)))
	}
	if r := j.Resources; r.GPUs != 0 {
		put(m, "gpus", intN(r.GPUs))
	}
	if j.NativeSpecification != nil {
		put(m, "native_specification", nativeSpecN(j.NativeSpecification, j.NativeSpecAsList))
	}
	if p := j.ParallelJobInfo; p != nil {
		pm := mapN()
		pm.Style = yaml.FlowStyle
		put(pm, "config_name", strN(p.ConfigName))
		put(pm, "nodes_number", intN(p.NodesNumber))
		put(pm, "cpu_per_node", intN(p.CPUPerNode))
		put(m, "parallel_job_info", pm)
	}
	if j.DisposalTimeout != nil && *j.DisposalTimeout != DefaultDisposalTimeout {
		put(m, "disposal_timeout", intN(*j.DisposalTimeout))
	}
	if j.Env != nil {
		put(m, "env", stringMapN(j.Env))
	}
	if j.UseInputParamsFile {
		put(m, "use_input_params_file", boolN(true))
	}
	if j.HasOutputs {
		put(m, "has_outputs", boolN(true))
	}
	if len(j.ReferencedInputFiles) > 0 {
		n, err := e.argsN(j.ReferencedInputFiles)
		if err != nil {
			return nil, err
		}
		put(m, "referenced_input_files", n)
	}
	if len(j.ReferencedOutputFiles) > 0 {
		n, err := e.argsN(j.ReferencedOutputFiles)
		if err != nil {
			return nil, err
		}
		put(m, "referenced_output_files", n)
	}
	if len(j.ParamDict) > 0 {
		pm := mapN()
		for _, k := range sortedKeys(j.ParamDict) {
			v, err := rawN(j.ParamDict[k])
			if err != nil {
				return nil, fmt.Errorf("params.%s: %w", k, err)
			}
			put(pm, k, v)
		}
		put(m, "params", pm)
	}
	if len(links) > 0 {
		lm := mapN()
		idx := map[string]*yaml.Node{}
		for _, l := range links {
			seq, ok := idx[l.DestParam]
			if !ok {
				seq = seqN()
				idx[l.DestParam] = seq
				put(lm, l.DestParam, seq)
			}
			one := mapN()
			one.Style = yaml.FlowStyle
			put(one, "from", strN(e.jobNames[l.Src]))
			put(one, "param", strN(l.SrcParam))
			if t := l.Transform; t != nil {
				if !t.Tuple && len(t.Args) == 0 {
					put(one, "transform", strN(t.Name))
				} else {
					ts := seqN()
					ts.Style = yaml.FlowStyle
					ts.Content = append(ts.Content, strN(t.Name))
					for _, a := range t.Args {
						v, err := rawN(a)
						if err != nil {
							return nil, fmt.Errorf("links.%s: %w", l.DestParam, err)
						}
						ts.Content = append(ts.Content, v)
					}
					put(one, "transform", ts)
				}
			}
			seq.Content = append(seq.Content, one)
		}
		put(m, "links", lm)
	}
	s := mapN()
	switch {
	case j.Name == nil:
		put(s, "name", nullN())
	case *j.Name != e.jobNames[i]:
		put(s, "name", strN(*j.Name))
	}
	if j.Class != "" && j.Class != ClassJob && j.Class != ClassBarrier {
		put(s, "class", strN(j.Class))
	}
	if j.UUID != "" {
		put(s, "uuid", strN(j.UUID))
	}
	if len(j.Configuration) > 0 && !isEmptyObject(j.Configuration) {
		v, err := rawN(j.Configuration)
		if err != nil {
			return nil, fmt.Errorf("configuration: %w", err)
		}
		put(s, "configuration", v)
	}
	if j.UserStorage != nil {
		v, err := rawN(j.UserStorage)
		if err != nil {
			return nil, fmt.Errorf("user_storage: %w", err)
		}
		put(s, "user_storage", v)
	}
	if len(j.Extra) > 0 {
		x, err := extraN(j.Extra)
		if err != nil {
			return nil, err
		}
		put(s, "extra", x)
	}
	if len(s.Content) > 0 {
		put(m, "soma", s)
	}
	if len(m.Content) == 0 {
		m.Style = yaml.FlowStyle
	}
	return m, nil
}

func isEmptyObject(raw []byte) bool {
	kvs, err := splitObject(raw)
	return err == nil && len(kvs) == 0
}
