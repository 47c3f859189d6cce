package model

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// Equivalent reports how two workflows differ, or nil when they are the
// same workflow once file ids, key order, tuple markers and defaults are
// normalised: same jobs (in order) with the same fields, same dependency
// set (parameter links imply theirs), same groups and root, same links and
// special paths (compared by content, not by index). Warnings are ignored.
// The error lists up to 20 differences, one per line.
func Equivalent(a, b *Workflow) error {
	if a == nil || b == nil {
		if a == b {
			return nil
		}
		return fmt.Errorf("one workflow is nil")
	}
	ca, cb := canon(a), canon(b)
	var diffs []string
	keys := map[string]bool{}
	for k := range ca {
		keys[k] = true
	}
	for k := range cb {
		keys[k] = true
	}
	for _, k := range sortedKeys(keys) {
		va, oka := ca[k]
		vb, okb := cb[k]
		switch {
		case !oka:
			diffs = append(diffs, fmt.Sprintf("%s: missing in the first, %s in the second", k, vb))
		case !okb:
			diffs = append(diffs, fmt.Sprintf("%s: %s in the first, missing in the second", k, va))
		case va != vb:
			diffs = append(diffs, fmt.Sprintf("%s: %s != %s", k, truncate(va, 300), truncate(vb, 300)))
		}
	}
	if len(diffs) == 0 {
		return nil
	}
	if len(diffs) > 20 {
		diffs = append(diffs[:20], fmt.Sprintf("... and %d more", len(diffs)-20))
	}
	return fmt.Errorf("workflows differ:\n%s", strings.Join(diffs, "\n"))
}

type canonizer struct {
	w     *Workflow
	depth int
}

// canonRaw normalises a raw JSON value: sorted object keys, compact, path
// references replaced by the content of their entry.
func (c *canonizer) canonRaw(raw []byte) string {
	if raw == nil {
		return "<nil>"
	}
	var b strings.Builder
	var walk func(v []byte)
	walk = func(v []byte) {
		switch jsonKind(v) {
		case 'a':
			if n, ok := pathRefID(v); ok {
				if r, ok := c.w.PathRefByID(n); ok {
					b.WriteString(c.pathEntry(r))
					return
				}
			}
			items, err := splitArray(v)
			if err != nil {
				b.WriteString("<bad>")
				return
			}
			b.WriteByte('[')
			for i, it := range items {
				if i > 0 {
					b.WriteByte(',')
				}
				walk(it)
			}
			b.WriteByte(']')
		case 'o':
			kvs, err := splitObject(v)
			if err != nil {
				b.WriteString("<bad>")
				return
			}
			sort.SliceStable(kvs, func(i, j int) bool { return kvs[i].key < kvs[j].key })
			b.WriteByte('{')
			for i, p := range kvs {
				if i > 0 {
					b.WriteByte(',')
				}
				b.Write(appendPyString(nil, p.key))
				b.WriteByte(':')
				walk(p.val)
			}
			b.WriteByte('}')
		case 's':
			s, _ := parseString(v)
			b.Write(appendPyString(nil, s))
		default:
			b.Write(bytes.TrimSpace(v))
		}
	}
	walk(raw)
	return b.String()
}

func canonExtra(c *canonizer, m map[string]json.RawMessage) string {
	if len(m) == 0 {
		return "{}"
	}
	parts := make([]string, 0, len(m))
	for _, k := range sortedKeys(m) {
		parts = append(parts, strconv.Quote(k)+":"+c.canonRaw(m[k]))
	}
	return "{" + strings.Join(parts, ",") + "}"
}

func timeoutStr(t *int) string {
	if t == nil {
		return "null"
	}
	return strconv.Itoa(*t)
}

// pathEntry describes a special path by content.
func (c *canonizer) pathEntry(r PathRef) string {
	w := c.w
	c.depth++
	defer func() { c.depth-- }()
	if c.depth > 20 {
		return "<deep>"
	}
	pat := func(p string) string {
		if p == "" {
			return "%s"
		}
		return p
	}
	switch r.Kind {
	case TransferPath:
		if r.Index >= 0 && r.Index < len(w.Transfers) {
			t := w.Transfers[r.Index]
			return fmt.Sprintf("transfer(%q,%q,%q,%s,%q,%q,%s)", t.ClientPath, t.ClientPaths, t.InitialStatus,
				timeoutStr(t.DisposalTimeout), t.Name, pat(t.Pattern), canonExtra(c, t.Extra))
		}
	case SharedPath:
		if r.Index >= 0 && r.Index < len(w.SharedPaths) {
			s := w.SharedPaths[r.Index]
			return fmt.Sprintf("shared(%q,%q,%q,%s,%q,%s)", s.RelativePath, s.Namespace, s.UUID,
				timeoutStr(s.DisposalTimeout), pat(s.Pattern), canonExtra(c, s.Extra))
		}
	case TempPath:
		if r.Index >= 0 && r.Index < len(w.TempPaths) {
			t := w.TempPaths[r.Index]
			return fmt.Sprintf("temp(%v,%s,%q,%q,%q,%s)", t.IsDirectory, timeoutStr(t.DisposalTimeout),
				t.Name, t.Suffix, pat(t.Pattern), canonExtra(c, t.Extra))
		}
	case OptionPathKind:
		if r.Index >= 0 && r.Index < len(w.OptionPaths) {
			o := w.OptionPaths[r.Index]
			pt := o.ParentType
			if pt == "" {
				pt = "str"
			}
			return fmt.Sprintf("option(%q,%s,%q,%q,%q,%s)", pt, c.canonRaw(o.ParentPath), o.URI, o.Name,
				pat(o.Pattern), canonExtra(c, o.Extra))
		}
	}
	return fmt.Sprintf("<unknown path %d/%d>", r.Kind, r.Index)
}

func (c *canonizer) arg(a Arg) string {
	switch a.Kind {
	case ArgString:
		return strconv.Quote(a.Value)
	case ArgNumber:
		return "num:" + a.Value
	case ArgPath:
		return "path:" + c.pathEntry(a.Path) + "%" + a.Path.Pattern
	case ArgPathIn:
		return "pathin:" + c.pathEntry(a.Path) + "%" + a.Path.Pattern + "/" + strconv.Quote(a.Value)
	case ArgList:
		parts := make([]string, len(a.List))
		for i, x := range a.List {
			parts[i] = c.arg(x)
		}
		return "[" + strings.Join(parts, ",") + "]"
	}
	return fmt.Sprintf("<kind %d>", a.Kind)
}

func (c *canonizer) args(as []Arg) string {
	parts := make([]string, len(as))
	for i, a := range as {
		parts[i] = c.arg(a)
	}
	return "[" + strings.Join(parts, ",") + "]"
}

func (c *canonizer) argp(a *Arg) string {
	if a == nil {
		return "null"
	}
	return c.arg(*a)
}

func strp(s *string) string {
	if s == nil {
		return "null"
	}
	return strconv.Quote(*s)
}

func canonEnv(m map[string]string) string {
	if len(m) == 0 {
		return "{}"
	}
	parts := make([]string, 0, len(m))
	for _, k := range sortedKeys(m) {
		parts = append(parts, strconv.Quote(k)+"="+strconv.Quote(m[k]))
	}
	return "{" + strings.Join(parts, ",") + "}"
}

func canonNS(ns NativeSpec, asList bool) string {
	if ns == nil {
		return "null"
	}
	if !asList && len(ns) == 1 {
		return strconv.Quote(ns[0])
	}
	return fmt.Sprintf("list%q", []string(ns))
}

func canonElem(el Element) string {
	if el.Kind == GroupElement {
		return "g" + strconv.Itoa(el.Index)
	}
	return "j" + strconv.Itoa(el.Index)
}

func canon(w *Workflow) map[string]string {
	c := &canonizer{w: w}
	m := map[string]string{
		"name":                 strp(w.Name),
		"env":                  canonEnv(w.Env),
		"env_builder_code":     strconv.Quote(w.EnvBuilderCode),
		"native_specification": canonNS(w.NativeSpecification, w.NativeSpecAsList),
		"uuid":                 strconv.Quote(w.UUID),
		"extra":                canonExtra(c, w.Extra),
		"jobs.count":           strconv.Itoa(len(w.Jobs)),
		"groups.count":         strconv.Itoa(len(w.Groups)),
	}
	for i, j := range w.Jobs {
		if j == nil {
			m[fmt.Sprintf("job[%d]", i)] = "nil"
			continue
		}
		p := fmt.Sprintf("job[%d].", i)
		class := j.Class
		if class == "" {
			class = ClassJob
		}
		m[p+"class"] = class
		m[p+"name"] = strp(j.Name)
		m[p+"command"] = c.args(j.Command)
		m[p+"shell"] = strconv.Quote(j.Shell)
		m[p+"stdin"] = c.argp(j.Stdin)
		m[p+"stdout_file"] = c.argp(j.StdoutFile)
		m[p+"stderr_file"] = c.argp(j.StderrFile)
		m[p+"working_directory"] = c.argp(j.WorkingDirectory)
		m[p+"input_params_file"] = c.argp(j.InputParamsFile)
		m[p+"output_params_file"] = c.argp(j.OutputParamsFile)
		m[p+"join_stderrout"] = strconv.FormatBool(j.JoinStderrout)
		m[p+"priority"] = strconv.Itoa(j.Priority)
		m[p+"retries"] = strconv.Itoa(j.Retries)
		m[p+"resources"] = fmt.Sprintf("%+v", j.Resources)
		m[p+"native_specification"] = canonNS(j.NativeSpecification, j.NativeSpecAsList)
		if j.ParallelJobInfo != nil {
			m[p+"parallel_job_info"] = fmt.Sprintf("%+v", *j.ParallelJobInfo)
		} else {
			m[p+"parallel_job_info"] = "null"
		}
		dt := DefaultDisposalTimeout
		if j.DisposalTimeout != nil {
			dt = *j.DisposalTimeout
		}
		m[p+"disposal_timeout"] = strconv.Itoa(dt)
		if j.Env == nil {
			m[p+"env"] = "null"
		} else {
			m[p+"env"] = canonEnv(j.Env)
		}
		m[p+"use_input_params_file"] = strconv.FormatBool(j.UseInputParamsFile)
		m[p+"has_outputs"] = strconv.FormatBool(j.HasOutputs)
		conf := "{}"
		if len(j.Configuration) > 0 {
			conf = c.canonRaw(j.Configuration)
		}
		m[p+"configuration"] = conf
		m[p+"uuid"] = strconv.Quote(j.UUID)
		m[p+"referenced_input_files"] = c.args(j.ReferencedInputFiles)
		m[p+"referenced_output_files"] = c.args(j.ReferencedOutputFiles)
		params := make([]string, 0, len(j.ParamDict))
		for _, k := range sortedKeys(j.ParamDict) {
			params = append(params, strconv.Quote(k)+":"+c.canonRaw(j.ParamDict[k]))
		}
		m[p+"param_dict"] = "{" + strings.Join(params, ",") + "}"
		if j.UserStorage != nil {
			m[p+"user_storage"] = c.canonRaw(j.UserStorage)
		} else {
			m[p+"user_storage"] = "<nil>"
		}
		m[p+"extra"] = canonExtra(c, j.Extra)
	}
	for i, g := range w.Groups {
		if g == nil {
			m[fmt.Sprintf("group[%d]", i)] = "nil"
			continue
		}
		els := make([]string, len(g.Elements))
		for k, el := range g.Elements {
			els[k] = canonElem(el)
		}
		m[fmt.Sprintf("group[%d]", i)] = fmt.Sprintf("%q%v%s", g.Name, els, canonExtra(c, g.Extra))
	}
	root := w.Root
	if len(root) == 0 {
		root = DefaultRoot(w)
	}
	rs := make([]string, len(root))
	for i, el := range root {
		rs[i] = canonElem(el)
	}
	m["root"] = strings.Join(rs, ",")
	deps := map[string]bool{}
	for _, d := range w.Dependencies {
		deps[canonElem(d.From)+"->"+canonElem(d.To)] = true
	}
	links := map[string][]string{}
	for _, l := range w.ParamLinks {
		deps[canonElem(Element{Index: l.Src})+"->"+canonElem(Element{Index: l.Dest})] = true
		t := ""
		if l.Transform != nil {
			args := make([]string, len(l.Transform.Args))
			for i, a := range l.Transform.Args {
				args[i] = c.canonRaw(a)
			}
			t = fmt.Sprintf(" via %q%v", l.Transform.Name, args)
			if !l.Transform.Tuple && len(args) == 0 {
				t = fmt.Sprintf(" via %q", l.Transform.Name)
			}
		}
		k := fmt.Sprintf("link[j%d.%q]", l.Dest, l.DestParam)
		links[k] = append(links[k], fmt.Sprintf("j%d.%q%s", l.Src, l.SrcParam, t))
	}
	for k, v := range links {
		m[k] = strings.Join(v, "; ")
	}
	m["dependencies"] = strings.Join(sortedKeys(deps), " ")
	var tables []string
	for id := 0; id < w.pathCount(); id++ {
		r, _ := w.PathRefByID(id)
		tables = append(tables, c.pathEntry(r))
	}
	sort.Strings(tables)
	m["special_paths"] = strings.Join(tables, "\n")
	return m
}
