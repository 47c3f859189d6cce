package model

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Format names a workflow file format.
type Format string

// The file formats somaflow reads and writes.
const (
	FormatSoma   Format = "soma"
	FormatNative Format = "native"
)

// Decode reads a workflow in either format: soma-workflow's JSON (a JSON
// object with "serialized_jobs") or the native YAML/JSON format.
func Decode(data []byte) (*Workflow, Format, error) {
	if i := skipWS(data, 0); i < len(data) && data[i] == '{' {
		if top, err := splitObject(data); err == nil {
			for _, p := range top {
				if p.key == "serialized_jobs" {
					w, err := decodeSomaTop(top)
					return w, FormatSoma, err
				}
			}
		}
	}
	w, err := DecodeNative(data)
	return w, FormatNative, err
}

// Native job fields (besides command, shell, barrier, after, soma), also
// allowed under defaults.
var nativeJobFields = map[string]bool{
	"stdin": true, "stdout_file": true, "stderr_file": true, "working_directory": true,
	"input_params_file": true, "output_params_file": true, "join_stderrout": true,
	"priority": true, "retries": true, "cpus": true, "memory": true, "walltime": true, "gpus": true, "native_specification": true, "parallel_job_info": true,
	"disposal_timeout": true, "env": true, "use_input_params_file": true,
	"has_outputs": true, "referenced_input_files": true, "referenced_output_files": true,
	"params": true, "links": true,
}

// jobFieldNames are the fields a native job may have, sorted.
func jobFieldNames() []string {
	names := []string{"command", "shell", "barrier", "after", "soma"}
	for k := range nativeJobFields {
		names = append(names, k)
	}
	sort.Strings(names)
	return names
}

// maxAliasNodes bounds YAML alias expansion (a "billion laughs" file):
// the values aliases add to a document, counted once for the whole
// document, whatever field they are in.
const maxAliasNodes = 1 << 20

type nativeDecoder struct {
	w  *Workflow
	ps problems
	// names
	jobIdx   map[string]int
	groupIdx map[string]int
	// lazyNode, when not nil, stands for the jobs mapping of a JSON
	// document, whose jobs lazyJobs holds as raw JSON: each is converted
	// to YAML nodes only when decoded, so that the nodes of a single job
	// are in memory at a time (a 1,000,000-job file's whole tree took
	// over a gigabyte next to the decoded workflow). err is a conversion
	// error found then.
	lazyNode *yaml.Node
	lazyJobs []kv
	err      error
}

// DecodeNative reads a workflow in somaflow's native format (YAML, or the
// same structure in JSON); see docs/native-format.md. Every problem found
// is listed in the returned *ValidationError, each naming its job and
// field.
func DecodeNative(data []byte) (*Workflow, error) {
	var doc yaml.Node
	d := &nativeDecoder{w: &Workflow{}, jobIdx: map[string]int{}, groupIdx: map[string]int{}}
	if i := skipWS(data, 0); i < len(data) && data[i] == '{' && json.Valid(data) {
		// skipValue bounds the nesting of the whole document, the jobs
		// that rawTop leaves as JSON included (more strictly than
		// checkShape, and JSON has no aliases).
		if _, err := skipValue(data, i); err != nil {
			return nil, fmt.Errorf("native workflow: %w", err)
		}
		// JSON: converted directly, much faster than the YAML parser
		n, err := d.rawTop(data)
		if err != nil {
			return nil, fmt.Errorf("native workflow: %w", err)
		}
		doc = *n
	} else if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("native workflow: %w", err)
	}
	if err := checkShape(&doc); err != nil {
		return nil, fmt.Errorf("native workflow: %w", err)
	}
	if doc.Kind == 0 {
		return nil, fmt.Errorf("native workflow: empty document")
	}
	root := &doc
	if root.Kind == yaml.DocumentNode {
		if len(root.Content) == 0 {
			return nil, fmt.Errorf("native workflow: empty document")
		}
		root = root.Content[0]
	}
	root = d.deref(root)
	if root == nil || root.Kind != yaml.MappingNode {
		return nil, fmt.Errorf("native workflow: expected a mapping at the top (line %d)", lineOf(root))
	}
	d.decode(root)
	if d.err != nil {
		return nil, fmt.Errorf("native workflow: %w", d.err)
	}
	if len(d.ps) > 0 {
		// A type error must not hide the rest: what the decoded part
		// gets wrong is reported too, once per job and field.
		d.ps = append(d.ps, d.semanticProblems()...)
		return nil, d.ps.err()
	}
	return d.w, nil
}

// rawTop is rawN of a JSON document, except for the value of its first
// top-level "jobs" key when that is an object: its members are kept as raw
// JSON in d.lazyJobs, and its node is the empty mapping d.lazyNode (see
// lazyPairs and job).
func (d *nativeDecoder) rawTop(data []byte) (*yaml.Node, error) {
	if jsonKind(data) != 'o' {
		return rawN(data)
	}
	top, err := splitObject(data)
	if err != nil {
		return nil, err
	}
	m := mapN()
	for _, p := range top {
		if p.key == "jobs" && d.lazyNode == nil && jsonKind(p.val) == 'o' {
			jobs, err := splitObject(p.val)
			if err != nil {
				return nil, err
			}
			d.lazyNode, d.lazyJobs = mapN(), jobs
			put(m, p.key, d.lazyNode)
			continue
		}
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
}

// lazyPairs is pairs of the jobs rawTop kept as JSON: their keys are
// strings, and a repeated one is reported as pairs reports it.
func (d *nativeDecoder) lazyPairs() []pair {
	out := make([]pair, 0, len(d.lazyJobs))
	seen := make(map[string]bool, len(d.lazyJobs))
	for _, p := range d.lazyJobs {
		if seen[p.key] {
			d.ps.add("", joinField("jobs", p.key), "key appears twice (line %d)", 0)
			continue
		}
		seen[p.key] = true
		out = append(out, pair{key: p.key, raw: p.val})
	}
	d.lazyJobs = nil
	return out
}

// semanticProblems are Validate's problems of a workflow decoded with
// errors, except for the jobs and fields already reported (a value that
// could not be decoded would be reported again as missing).
func (d *nativeDecoder) semanticProblems() (ps problems) {
	defer func() {
		if recover() != nil {
			ps = nil // a part too broken to check: its decoding errors say enough
		}
	}()
	var ve *ValidationError
	if !errors.As(d.w.Validate(), &ve) {
		return nil
	}
	seen := map[string]bool{}
	for _, p := range d.ps {
		seen[p.Job+"\x00"+p.Field] = true
	}
	for _, p := range ve.Problems {
		if !seen[p.Job+"\x00"+p.Field] {
			ps = append(ps, p)
		}
	}
	return ps
}

// checkShape bounds a YAML tree before anything walks it: nesting (at most
// maxNesting levels, aliases followed) and alias expansion (the values
// aliases add, at most maxAliasNodes in the whole document). Each node is
// measured once, so this costs O(nodes) however much the aliases expand.
func checkShape(doc *yaml.Node) error {
	s := shaper{memo: map[*yaml.Node]shape{}}
	if _, err := s.measure(doc, 0); err != nil {
		return err
	}
	if s.added > maxAliasNodes {
		return fmt.Errorf("aliases expand to more than %d values (line %d): refusing the document", maxAliasNodes, s.line)
	}
	return nil
}

// shape is a node's depth and expanded size (values, aliases followed),
// the size capped past maxAliasNodes.
type shape struct{ depth, size int }

type shaper struct {
	memo  map[*yaml.Node]shape
	added int // values that aliases add
	line  int // where added first went past the bound
}

func (s *shaper) measure(n *yaml.Node, level int) (shape, error) {
	if n == nil {
		return shape{}, nil
	}
	if level > maxNesting {
		return shape{}, fmt.Errorf("nested more than %d levels deep (line %d)", maxNesting, n.Line)
	}
	if m, ok := s.memo[n]; ok {
		if level+m.depth > maxNesting+1 {
			return shape{}, fmt.Errorf("nested more than %d levels deep (line %d)", maxNesting, n.Line)
		}
		return m, nil
	}
	m := shape{size: 1}
	if n.Alias != nil {
		a, err := s.measure(n.Alias, level)
		if err != nil {
			return shape{}, err
		}
		m = shape{depth: a.depth - 1, size: a.size}
		s.added = min(s.added+a.size, maxAliasNodes+1)
		if s.added > maxAliasNodes && s.line == 0 {
			s.line = n.Line
		}
	}
	for _, c := range n.Content {
		cm, err := s.measure(c, level+1)
		if err != nil {
			return shape{}, err
		}
		m.depth = max(m.depth, cm.depth)
		m.size = min(m.size+cm.size, maxAliasNodes+1)
	}
	m.depth++
	s.memo[n] = m
	return m, nil
}

func lineOf(n *yaml.Node) int {
	if n == nil {
		return 0
	}
	return n.Line
}

// deref follows aliases.
func (d *nativeDecoder) deref(n *yaml.Node) *yaml.Node {
	for steps := 0; n != nil && n.Kind == yaml.AliasNode; steps++ {
		if steps > 100 {
			return nil
		}
		n = n.Alias
	}
	return n
}

type pair struct {
	key  string
	val  *yaml.Node
	line int
	// raw, when not nil, is the value as JSON, not converted yet (val is
	// nil): see lazyPairs.
	raw []byte
}

// pairs lists the members of a mapping in order; it reports non-string and
// duplicated keys.
func (d *nativeDecoder) pairs(n *yaml.Node, job, field string) []pair {
	n = d.deref(n)
	if n == nil || n.Kind != yaml.MappingNode {
		d.ps.add(job, field, "expected a mapping, got %s (line %d)", kindName(n), lineOf(n))
		return nil
	}
	out := make([]pair, 0, len(n.Content)/2)
	seen := make(map[string]bool, len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k := d.deref(n.Content[i])
		if k == nil || k.Kind != yaml.ScalarNode {
			d.ps.add(job, field, "expected a plain key (line %d)", lineOf(n.Content[i]))
			continue
		}
		if k.Tag == "!!merge" {
			d.ps.add(job, field, "YAML merge keys (<<) are not supported (line %d)", k.Line)
			continue
		}
		if seen[k.Value] {
			d.ps.add(job, joinField(field, k.Value), "key appears twice (line %d)", k.Line)
			continue
		}
		seen[k.Value] = true
		out = append(out, pair{key: k.Value, val: n.Content[i+1], line: k.Line})
	}
	return out
}

func joinField(a, b string) string {
	if a == "" {
		return b
	}
	return a + "." + b
}

func kindName(n *yaml.Node) string {
	if n == nil {
		return "nothing"
	}
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		switch n.ShortTag() {
		case "!!null":
			return "null"
		case "!!bool":
			return "a boolean"
		case "!!int", "!!float":
			return "a number"
		}
		return fmt.Sprintf("%q", truncate(n.Value, 40))
	}
	return "something else"
}

func isNullNode(n *yaml.Node) bool {
	return n != nil && n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

func (d *nativeDecoder) str(n *yaml.Node, job, field string) (string, bool) {
	n = d.deref(n)
	if n == nil || n.Kind != yaml.ScalarNode || n.ShortTag() == "!!null" {
		d.ps.add(job, field, "expected a string, got %s (line %d)", kindName(n), lineOf(n))
		return "", false
	}
	if n.ShortTag() == "!!binary" {
		d.ps.add(job, field, "binary values are not supported (line %d)", n.Line)
		return "", false
	}
	return n.Value, true
}

func (d *nativeDecoder) int(n *yaml.Node, job, field string) (int, bool) {
	n = d.deref(n)
	if n != nil && n.Kind == yaml.ScalarNode && n.ShortTag() == "!!int" {
		var v int
		if err := n.Decode(&v); err == nil {
			return v, true
		}
	}
	d.ps.add(job, field, "expected an integer, got %s (line %d)", kindName(n), lineOf(n))
	return 0, false
}

func (d *nativeDecoder) bool(n *yaml.Node, job, field string) bool {
	n = d.deref(n)
	if n != nil && n.Kind == yaml.ScalarNode && n.ShortTag() == "!!bool" {
		var v bool
		if err := n.Decode(&v); err == nil {
			return v
		}
	}
	d.ps.add(job, field, "expected true or false, got %s (line %d)", kindName(n), lineOf(n))
	return false
}

func (d *nativeDecoder) seq(n *yaml.Node, job, field string) []*yaml.Node {
	n = d.deref(n)
	if n == nil || n.Kind != yaml.SequenceNode {
		d.ps.add(job, field, "expected a list, got %s (line %d)", kindName(n), lineOf(n))
		return nil
	}
	return n.Content
}

// names reads a name or a list of names.
func (d *nativeDecoder) names(n *yaml.Node, job, field string) []string {
	n = d.deref(n)
	if n != nil && n.Kind == yaml.ScalarNode {
		if s, ok := d.str(n, job, field); ok {
			return []string{s}
		}
		return nil
	}
	var out []string
	for _, it := range d.seq(n, job, field) {
		if s, ok := d.str(it, job, field); ok {
			out = append(out, s)
		}
	}
	return out
}

func (d *nativeDecoder) stringMap(n *yaml.Node, job, field string) map[string]string {
	ps := d.pairs(n, job, field)
	m := make(map[string]string, len(ps))
	for _, p := range ps {
		v := d.deref(p.val)
		if v == nil || v.Kind != yaml.ScalarNode || isNullNode(v) {
			d.ps.add(job, joinField(field, p.key), "expected a string, got %s (line %d)", kindName(v), lineOf(v))
			continue
		}
		m[p.key] = v.Value
	}
	return m
}

func (d *nativeDecoder) nativeSpec(n *yaml.Node, job, field string) (NativeSpec, bool) {
	n = d.deref(n)
	if isNullNode(n) {
		return nil, false
	}
	if n != nil && n.Kind == yaml.SequenceNode {
		ns := NativeSpec{}
		for _, it := range n.Content {
			if s, ok := d.str(it, job, field); ok {
				ns = append(ns, s)
			}
		}
		return ns, true
	}
	s, _ := d.str(n, job, field)
	return NativeSpec{s}, false
}

// raw converts a YAML value to JSON.
func (d *nativeDecoder) raw(n *yaml.Node, job, field string) json.RawMessage {
	var b []byte
	var err error
	b, err = d.appendJSON(b, n, 0)
	if err != nil {
		d.ps.add(job, field, "%v", err)
		return nil
	}
	return b
}

func (d *nativeDecoder) appendJSON(b []byte, n *yaml.Node, depth int) ([]byte, error) {
	n = d.deref(n)
	if n == nil {
		return nil, fmt.Errorf("bad alias")
	}
	if depth > 1000 {
		return nil, fmt.Errorf("nested too deeply (line %d)", n.Line)
	}
	var err error
	switch n.Kind {
	case yaml.MappingNode:
		b = append(b, '{')
		seen := map[string]bool{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := d.deref(n.Content[i])
			if k == nil || k.Kind != yaml.ScalarNode || k.Tag == "!!merge" {
				return nil, fmt.Errorf("expected a plain key (line %d)", lineOf(n.Content[i]))
			}
			if seen[k.Value] {
				return nil, fmt.Errorf("key %q appears twice (line %d)", k.Value, k.Line)
			}
			seen[k.Value] = true
			if i > 0 {
				b = append(b, ',')
			}
			b = appendPyString(b, k.Value)
			b = append(b, ':')
			if b, err = d.appendJSON(b, n.Content[i+1], depth+1); err != nil {
				return nil, err
			}
		}
		return append(b, '}'), nil
	case yaml.SequenceNode:
		b = append(b, '[')
		for i, it := range n.Content {
			if i > 0 {
				b = append(b, ',')
			}
			if b, err = d.appendJSON(b, it, depth+1); err != nil {
				return nil, err
			}
		}
		return append(b, ']'), nil
	case yaml.ScalarNode:
		switch n.ShortTag() {
		case "!!null":
			return append(b, "null"...), nil
		case "!!bool":
			var v bool
			if err := n.Decode(&v); err != nil {
				return nil, err
			}
			return strconv.AppendBool(b, v), nil
		case "!!int", "!!float":
			num, err := jsonNumber(n)
			if err != nil {
				return nil, err
			}
			return append(b, num...), nil
		case "!!str":
			return appendPyString(b, n.Value), nil
		}
		return nil, fmt.Errorf("unsupported YAML type %s (line %d)", n.ShortTag(), n.Line)
	}
	return nil, fmt.Errorf("unsupported YAML node (line %d)", n.Line)
}

// jsonNumber returns a YAML number as JSON number text.
func jsonNumber(n *yaml.Node) (string, error) {
	if json.Valid([]byte(n.Value)) && jsonKind([]byte(n.Value)) == 'n' {
		return n.Value, nil
	}
	if n.ShortTag() == "!!int" {
		var v int64
		if err := n.Decode(&v); err == nil {
			return strconv.FormatInt(v, 10), nil
		}
		var u uint64
		if err := n.Decode(&u); err == nil {
			return strconv.FormatUint(u, 10), nil
		}
	}
	var f float64
	if err := n.Decode(&f); err != nil {
		return "", fmt.Errorf("bad number %q (line %d)", n.Value, n.Line)
	}
	if math.IsInf(f, 0) || math.IsNaN(f) {
		return "", fmt.Errorf("number %q cannot be written in JSON (line %d)", n.Value, n.Line)
	}
	s := strconv.FormatFloat(f, 'g', -1, 64)
	if !strings.ContainsAny(s, ".eE") {
		s += ".0"
	}
	return s, nil
}

func (d *nativeDecoder) decode(root *yaml.Node) {
	w := d.w
	var jobsNode, groupsNode, defaultsNode, somaNode, rootNode *yaml.Node
	for _, p := range d.pairs(root, "", "") {
		switch p.key {
		case "name":
			if !isNullNode(d.deref(p.val)) {
				if s, ok := d.str(p.val, "", "name"); ok {
					w.Name = &s
				}
			}
		case "env":
			w.Env = d.stringMap(p.val, "", "env")
		case "native_specification":
			w.NativeSpecification, w.NativeSpecAsList = d.nativeSpec(p.val, "", p.key)
		case "jobs":
			jobsNode = p.val
		case "groups":
			groupsNode = p.val
		case "defaults":
			defaultsNode = p.val
		case "root":
			rootNode = p.val
		case "soma":
			somaNode = p.val
		default:
			d.ps.add("", p.key, "unknown key (line %d); keys soma-workflow knows and somaflow does not go under soma.extra", p.line)
		}
	}
	if somaNode != nil {
		d.topSoma(somaNode)
	}
	defaults := map[string]*yaml.Node{}
	if defaultsNode != nil {
		for _, p := range d.pairs(defaultsNode, "", "defaults") {
			if !nativeJobFields[p.key] {
				d.ps.add("", "defaults."+p.key, "not a job field that can have a default (line %d)", p.line)
				continue
			}
			defaults[p.key] = p.val
		}
	}
	if jobsNode == nil {
		d.ps.add("", "jobs", "missing")
		return
	}
	var jobPairs []pair
	if d.lazyNode != nil && jobsNode == d.lazyNode {
		jobPairs = d.lazyPairs()
	} else {
		jobPairs = d.pairs(jobsNode, "", "jobs")
	}
	var groupPairs []pair
	if groupsNode != nil {
		groupPairs = d.pairs(groupsNode, "", "groups")
	}
	// names first, so that references can point forward
	w.Jobs = make([]*Job, 0, len(jobPairs))
	for i, p := range jobPairs {
		d.jobIdx[p.key] = i
		n := p.key
		w.Jobs = append(w.Jobs, &Job{Name: &n})
	}
	for i, p := range groupPairs {
		if _, clash := d.jobIdx[p.key]; clash {
			d.ps.add("", "groups."+p.key, "%q names both a job and a group (line %d)", p.key, p.line)
		}
		d.groupIdx[p.key] = i
		w.Groups = append(w.Groups, &Group{Name: p.key})
	}
	for i, p := range jobPairs {
		d.job(i, p, defaults)
	}
	for i, p := range groupPairs {
		d.group(i, p)
	}
	d.resolvePatterns()
	if rootNode != nil {
		for _, name := range d.names(rootNode, "", "root") {
			if el, ok := d.element(name); ok {
				w.Root = append(w.Root, el)
			} else {
				d.ps.add("", "root", "unknown job or group %q", name)
			}
		}
	}
}

func (d *nativeDecoder) element(name string) (Element, bool) {
	if i, ok := d.jobIdx[name]; ok {
		return Element{Kind: JobElement, Index: i}, true
	}
	if i, ok := d.groupIdx[name]; ok {
		return Element{Kind: GroupElement, Index: i}, true
	}
	return Element{}, false
}

func (d *nativeDecoder) after(n *yaml.Node, label string, to Element) {
	for _, name := range d.names(n, label, "after") {
		el, ok := d.element(name)
		if !ok {
			d.ps.add(label, "after", "dependency on unknown job %q", name)
			continue
		}
		d.w.Dependencies = append(d.w.Dependencies, Dependency{From: el, To: to})
	}
}

func (d *nativeDecoder) job(i int, p pair, defaults map[string]*yaml.Node) {
	j := d.w.Jobs[i]
	label := p.key
	val := p.val
	if p.raw != nil {
		n, err := rawN(p.raw)
		if err != nil {
			if d.err == nil {
				d.err = err
			}
			return
		}
		val = n
	}
	fields := d.pairs(val, label, "")
	set := map[string]*yaml.Node{}
	lines := map[string]int{}
	var order []string
	for _, f := range fields {
		set[f.key] = f.val
		lines[f.key] = f.line
		order = append(order, f.key)
	}
	for _, k := range sortedKeys(defaults) {
		if _, ok := set[k]; !ok {
			set[k] = defaults[k]
			order = append(order, k)
		}
	}
	barrier := false
	if n, ok := set["barrier"]; ok {
		barrier = d.bool(n, label, "barrier")
	}
	if barrier {
		j.Class = ClassBarrier
	}
	for _, k := range order {
		n := set[k]
		switch k {
		case "barrier":
		case "command":
			j.Command = d.args(n, label, "command", true)
			if j.Command == nil {
				j.Command = []Arg{}
			}
		case "shell":
			j.Shell, _ = d.str(n, label, "shell")
		case "after":
			d.after(n, label, Element{Kind: JobElement, Index: i})
		case "stdin", "stdout_file", "stderr_file", "working_directory", "input_params_file", "output_params_file":
			if isNullNode(d.deref(n)) {
				continue
			}
			a, ok := d.arg(n, label, k, false)
			if !ok {
				continue
			}
			switch k {
			case "stdin":
				j.Stdin = &a
			case "stdout_file":
				j.StdoutFile = &a
			case "stderr_file":
				j.StderrFile = &a
			case "working_directory":
				j.WorkingDirectory = &a
			case "input_params_file":
				j.InputParamsFile = &a
			case "output_params_file":
				j.OutputParamsFile = &a
			}
		case "join_stderrout":
			j.JoinStderrout = d.bool(n, label, k)
		case "use_input_params_file":
			j.UseInputParamsFile = d.bool(n, label, k)
		case "has_outputs":
			j.HasOutputs = d.bool(n, label, k)
		case "priority":
			j.Priority, _ = d.int(n, label, k)
		case "retries":
			j.Retries, _ = d.int(n, label, k)
		case "cpus":
			j.Resources.CPUs, _ = d.int(n, label, k)
		case "gpus":
			j.Resources.GPUs, _ = d.int(n, label, k)
		case "memory", "walltime":
			v := d.deref(n)
			if v == nil || v.Kind != yaml.ScalarNode || v.ShortTag() == "!!null" || v.ShortTag() == "!!bool" {
				d.ps.add(label, k, "expected a size or a duration, got %s (line %d)", kindName(v), lineOf(v))
				continue
			}
			var err error
			if k == "memory" {
				j.Resources.MemoryMB, err = ParseMemory(v.Value)
			} else {
				j.Resources.Walltime, err = ParseWalltime(v.Value)
			}
			if err != nil {
				d.ps.add(label, k, "%v (line %d)", err, lineOf(v))
			}
		case "disposal_timeout":
			if v, ok := d.int(n, label, k); ok {
				j.DisposalTimeout = &v
			}
		case "native_specification":
			j.NativeSpecification, j.NativeSpecAsList = d.nativeSpec(n, label, k)
		case "parallel_job_info":
			if isNullNode(d.deref(n)) {
				continue
			}
			pji := &ParallelJobInfo{}
			for _, f := range d.pairs(n, label, k) {
				switch f.key {
				case "config_name":
					pji.ConfigName, _ = d.str(f.val, label, k+"."+f.key)
				case "nodes_number":
					pji.NodesNumber, _ = d.int(f.val, label, k+"."+f.key)
				case "cpu_per_node":
					pji.CPUPerNode, _ = d.int(f.val, label, k+"."+f.key)
				default:
					d.ps.add(label, k+"."+f.key, "unknown key (line %d)", f.line)
				}
			}
			j.ParallelJobInfo = pji
		case "env":
			if isNullNode(d.deref(n)) {
				continue
			}
			j.Env = d.stringMap(n, label, k)
		case "referenced_input_files":
			j.ReferencedInputFiles = d.args(n, label, k, false)
		case "referenced_output_files":
			j.ReferencedOutputFiles = d.args(n, label, k, false)
		case "params":
			ps := d.pairs(n, label, k)
			j.ParamDict = make(map[string]json.RawMessage, len(ps))
			for _, f := range ps {
				if r := d.raw(f.val, label, "params."+f.key); r != nil {
					j.ParamDict[f.key] = r
				}
			}
		case "links":
			d.links(i, n, label)
		case "soma":
			d.jobSoma(j, n, label)
		default:
			msg := "unknown job field"
			if near := Nearest(k, jobFieldNames()); near != "" {
				msg += fmt.Sprintf(" (did you mean %q?)", near)
			}
			d.ps.add(label, k, "%s (line %d)", msg, lines[k])
		}
	}
}

func (d *nativeDecoder) links(dest int, n *yaml.Node, label string) {
	for _, p := range d.pairs(n, label, "links") {
		field := "links." + p.key
		items := []*yaml.Node{p.val}
		if v := d.deref(p.val); v != nil && v.Kind == yaml.SequenceNode {
			items = v.Content
		}
		for _, it := range items {
			it = d.deref(it)
			l := ParamLink{Dest: dest, DestParam: p.key, Src: -1}
			var src string
			if it != nil && it.Kind == yaml.ScalarNode {
				s, _ := d.str(it, label, field)
				k := strings.LastIndexByte(s, '.')
				if k <= 0 || k == len(s)-1 {
					d.ps.add(label, field, "expected JOB.PARAM or {from: JOB, param: PARAM}, got %q", s)
					continue
				}
				src, l.SrcParam = s[:k], s[k+1:]
			} else {
				for _, f := range d.pairs(it, label, field) {
					switch f.key {
					case "from":
						src, _ = d.str(f.val, label, field+".from")
					case "param":
						l.SrcParam, _ = d.str(f.val, label, field+".param")
					case "transform":
						l.Transform = d.transform(f.val, label, field+".transform")
					default:
						d.ps.add(label, field+"."+f.key, "unknown key (line %d)", f.line)
					}
				}
			}
			i, ok := d.jobIdx[src]
			if !ok {
				d.ps.add(label, field, "parameter link from unknown job %q", src)
				continue
			}
			l.Src = i
			d.w.ParamLinks = append(d.w.ParamLinks, l)
		}
	}
}

func (d *nativeDecoder) transform(n *yaml.Node, label, field string) *LinkTransform {
	n = d.deref(n)
	if n != nil && n.Kind == yaml.ScalarNode {
		s, _ := d.str(n, label, field)
		return &LinkTransform{Name: s}
	}
	items := d.seq(n, label, field)
	if len(items) == 0 {
		d.ps.add(label, field, "expected a function name or [name, args...]")
		return nil
	}
	name, _ := d.str(items[0], label, field)
	t := &LinkTransform{Name: name, Tuple: true}
	for _, a := range items[1:] {
		t.Args = append(t.Args, d.raw(a, label, field))
	}
	return t
}

func (d *nativeDecoder) args(n *yaml.Node, label, field string, listOK bool) []Arg {
	items := d.seq(n, label, field)
	if items == nil {
		return nil
	}
	out := make([]Arg, 0, len(items))
	for k, it := range items {
		if a, ok := d.arg(it, label, field+"["+strconv.Itoa(k)+"]", listOK); ok {
			out = append(out, a)
		}
	}
	return out
}

// arg decodes a command element or a file field: a string, a number, a
// list (one argument holding Python's repr) or a special path reference
// {transfer|shared|temporary|option: INDEX[, pattern: P][, file: NAME]}.
func (d *nativeDecoder) arg(n *yaml.Node, label, field string, listOK bool) (Arg, bool) {
	n = d.deref(n)
	if n == nil {
		d.ps.add(label, field, "bad alias")
		return Arg{}, false
	}
	switch n.Kind {
	case yaml.ScalarNode:
		switch n.ShortTag() {
		case "!!str", "!!bool":
			return Arg{Kind: ArgString, Value: n.Value}, true
		case "!!int", "!!float":
			num, err := jsonNumber(n)
			if err != nil {
				d.ps.add(label, field, "%v", err)
				return Arg{}, false
			}
			return Arg{Kind: ArgNumber, Value: num}, true
		}
		d.ps.add(label, field, "expected a string, a number, a list or a special path, got %s (line %d)", kindName(n), n.Line)
		return Arg{}, false
	case yaml.SequenceNode:
		if !listOK {
			d.ps.add(label, field, "expected a path, got a list (line %d)", n.Line)
			return Arg{}, false
		}
		a := Arg{Kind: ArgList, List: make([]Arg, 0, len(n.Content))}
		for k, it := range n.Content {
			x, ok := d.arg(it, label, field+"["+strconv.Itoa(k)+"]", true)
			if !ok {
				return Arg{}, false
			}
			a.List = append(a.List, x)
		}
		return a, true
	case yaml.MappingNode:
		a := Arg{Kind: ArgPath}
		kinds := 0
		hasPattern := false
		for _, f := range d.pairs(n, label, field) {
			switch f.key {
			case "transfer", "shared", "temporary", "option":
				kinds++
				a.Path.Kind = map[string]PathKind{"transfer": TransferPath, "shared": SharedPath, "temporary": TempPath, "option": OptionPathKind}[f.key]
				a.Path.Index, _ = d.int(f.val, label, field+"."+f.key)
			case "pattern":
				a.Path.Pattern, _ = d.str(f.val, label, field+".pattern")
				hasPattern = true
			case "file":
				a.Kind = ArgPathIn
				a.Value, _ = d.str(f.val, label, field+".file")
			default:
				d.ps.add(label, field+"."+f.key, "unknown key in a special path reference (line %d)", f.line)
			}
		}
		if kinds != 1 {
			d.ps.add(label, field, "a special path reference names exactly one of transfer, shared, temporary, option (line %d)", n.Line)
			return Arg{}, false
		}
		if !hasPattern {
			a.Path.Pattern = "\x00table" // resolved once the tables are known
		}
		return a, true
	}
	d.ps.add(label, field, "unsupported value (line %d)", n.Line)
	return Arg{}, false
}

func (d *nativeDecoder) jobSoma(j *Job, n *yaml.Node, label string) {
	for _, f := range d.pairs(n, label, "soma") {
		field := "soma." + f.key
		switch f.key {
		case "name":
			if isNullNode(d.deref(f.val)) {
				j.Name = nil
			} else if s, ok := d.str(f.val, label, field); ok {
				j.Name = &s
			}
		case "class":
			s, _ := d.str(f.val, label, field)
			j.Class = normaliseClass(s)
		case "uuid":
			j.UUID, _ = d.str(f.val, label, field)
		case "configuration":
			j.Configuration = d.raw(f.val, label, field)
		case "user_storage":
			j.UserStorage = d.raw(f.val, label, field)
		case "extra":
			for _, e := range d.pairs(f.val, label, field) {
				if j.Extra == nil {
					j.Extra = map[string]json.RawMessage{}
				}
				if r := d.raw(e.val, label, field+"."+e.key); r != nil {
					j.Extra[e.key] = r
				}
			}
		default:
			d.ps.add(label, field, "unknown key (line %d)", f.line)
		}
	}
}

func (d *nativeDecoder) group(i int, p pair) {
	g := d.w.Groups[i]
	label := "" // problems about groups name the group in the field
	field := "groups." + p.key
	v := d.deref(p.val)
	var members *yaml.Node
	if v != nil && v.Kind == yaml.MappingNode {
		for _, f := range d.pairs(v, label, field) {
			switch f.key {
			case "members":
				members = f.val
			case "after":
				for _, name := range d.names(f.val, label, field+".after") {
					el, ok := d.element(name)
					if !ok {
						d.ps.add(label, field+".after", "dependency on unknown job %q", name)
						continue
					}
					d.w.Dependencies = append(d.w.Dependencies, Dependency{From: el, To: Element{Kind: GroupElement, Index: i}})
				}
			case "soma":
				for _, s := range d.pairs(f.val, label, field+".soma") {
					switch s.key {
					case "name":
						g.Name, _ = d.str(s.val, label, field+".soma.name")
					case "extra":
						for _, e := range d.pairs(s.val, label, field+".soma.extra") {
							if g.Extra == nil {
								g.Extra = map[string]json.RawMessage{}
							}
							if r := d.raw(e.val, label, field+".soma.extra."+e.key); r != nil {
								g.Extra[e.key] = r
							}
						}
					default:
						d.ps.add(label, field+".soma."+s.key, "unknown key (line %d)", s.line)
					}
				}
			default:
				d.ps.add(label, field+"."+f.key, "unknown key (line %d)", f.line)
			}
		}
	} else {
		members = v
	}
	g.Elements = []Element{}
	if members == nil {
		return
	}
	for _, name := range d.names(members, label, field) {
		el, ok := d.element(name)
		if !ok {
			d.ps.add(label, field, "unknown job or group %q", name)
			continue
		}
		g.Elements = append(g.Elements, el)
	}
}

// topSoma reads the top-level soma: block.
func (d *nativeDecoder) topSoma(n *yaml.Node) {
	w := d.w
	pending := map[string]*yaml.Node{}
	for _, f := range d.pairs(n, "", "soma") {
		field := "soma." + f.key
		switch f.key {
		case "uuid":
			w.UUID, _ = d.str(f.val, "", field)
		case "env_builder_code":
			w.EnvBuilderCode, _ = d.str(f.val, "", field)
		case "extra":
			for _, e := range d.pairs(f.val, "", field) {
				if w.Extra == nil {
					w.Extra = map[string]json.RawMessage{}
				}
				if r := d.raw(e.val, "", field+"."+e.key); r != nil {
					w.Extra[e.key] = r
				}
			}
		case "transfers", "shared_paths", "temporary_paths", "option_paths":
			pending[f.key] = f.val
		default:
			d.ps.add("", field, "unknown key (line %d)", f.line)
		}
	}
	for _, it := range d.seqIf(pending["transfers"], "soma.transfers") {
		t := &FileTransfer{}
		for _, f := range d.pairs(it, "", "soma.transfers") {
			field := "soma.transfers." + f.key
			switch f.key {
			case "client_path":
				t.ClientPath, _ = d.str(f.val, "", field)
			case "client_paths":
				if !isNullNode(d.deref(f.val)) {
					t.ClientPaths = []string{}
					for _, s := range d.seq(f.val, "", field) {
						x, _ := d.str(s, "", field)
						t.ClientPaths = append(t.ClientPaths, x)
					}
				}
			case "initial_status":
				t.InitialStatus, _ = d.str(f.val, "", field)
			case "disposal_timeout":
				t.DisposalTimeout = d.timeout(f.val, field)
			case "name":
				t.Name, _ = d.str(f.val, "", field)
			case "pattern":
				t.Pattern, _ = d.str(f.val, "", field)
			case "extra":
				t.Extra = d.extraMap(f.val, field)
			default:
				d.ps.add("", field, "unknown key (line %d)", f.line)
			}
		}
		w.Transfers = append(w.Transfers, t)
	}
	for _, it := range d.seqIf(pending["shared_paths"], "soma.shared_paths") {
		s := &SharedResourcePath{}
		for _, f := range d.pairs(it, "", "soma.shared_paths") {
			field := "soma.shared_paths." + f.key
			switch f.key {
			case "relative_path":
				s.RelativePath, _ = d.str(f.val, "", field)
			case "namespace":
				s.Namespace, _ = d.str(f.val, "", field)
			case "uuid":
				s.UUID, _ = d.str(f.val, "", field)
			case "disposal_timeout":
				s.DisposalTimeout = d.timeout(f.val, field)
			case "pattern":
				s.Pattern, _ = d.str(f.val, "", field)
			case "extra":
				s.Extra = d.extraMap(f.val, field)
			default:
				d.ps.add("", field, "unknown key (line %d)", f.line)
			}
		}
		w.SharedPaths = append(w.SharedPaths, s)
	}
	for _, it := range d.seqIf(pending["temporary_paths"], "soma.temporary_paths") {
		t := &TemporaryPath{}
		for _, f := range d.pairs(it, "", "soma.temporary_paths") {
			field := "soma.temporary_paths." + f.key
			switch f.key {
			case "is_directory":
				t.IsDirectory = d.bool(f.val, "", field)
			case "disposal_timeout":
				t.DisposalTimeout = d.timeout(f.val, field)
			case "name":
				t.Name, _ = d.str(f.val, "", field)
			case "suffix":
				t.Suffix, _ = d.str(f.val, "", field)
			case "pattern":
				t.Pattern, _ = d.str(f.val, "", field)
			case "extra":
				t.Extra = d.extraMap(f.val, field)
			default:
				d.ps.add("", field, "unknown key (line %d)", f.line)
			}
		}
		w.TempPaths = append(w.TempPaths, t)
	}
	for _, it := range d.seqIf(pending["option_paths"], "soma.option_paths") {
		o := &OptionPath{}
		for _, f := range d.pairs(it, "", "soma.option_paths") {
			field := "soma.option_paths." + f.key
			switch f.key {
			case "parent_type":
				o.ParentType, _ = d.str(f.val, "", field)
			case "parent_path":
				o.ParentPath = d.raw(f.val, "", field)
			case "uri":
				o.URI, _ = d.str(f.val, "", field)
			case "name":
				o.Name, _ = d.str(f.val, "", field)
			case "pattern":
				o.Pattern, _ = d.str(f.val, "", field)
			case "extra":
				o.Extra = d.extraMap(f.val, field)
			default:
				d.ps.add("", field, "unknown key (line %d)", f.line)
			}
		}
		w.OptionPaths = append(w.OptionPaths, o)
	}
}

func (d *nativeDecoder) seqIf(n *yaml.Node, field string) []*yaml.Node {
	if n == nil {
		return nil
	}
	return d.seq(n, "", field)
}

func (d *nativeDecoder) timeout(n *yaml.Node, field string) *int {
	if isNullNode(d.deref(n)) {
		return nil
	}
	v, _ := d.int(n, "", field)
	return &v
}

func (d *nativeDecoder) extraMap(n *yaml.Node, field string) map[string]json.RawMessage {
	var m map[string]json.RawMessage
	for _, e := range d.pairs(n, "", field) {
		if m == nil {
			m = map[string]json.RawMessage{}
		}
		if r := d.raw(e.val, "", field+"."+e.key); r != nil {
			m[e.key] = r
		}
	}
	return m
}

// resolvePatterns gives references with no pattern their table's, and
// reports references to unknown table entries.
func (d *nativeDecoder) resolvePatterns() {
	w := d.w
	var fix func(a *Arg, label, field string)
	fix = func(a *Arg, label, field string) {
		switch a.Kind {
		case ArgPath, ArgPathIn:
			if a.Path.Pattern == "\x00table" {
				p := w.pathPattern(a.Path)
				if p == "" {
					p = "%s"
				}
				a.Path.Pattern = p
			}
		case ArgList:
			for k := range a.List {
				fix(&a.List[k], label, field)
			}
		}
	}
	for i, j := range w.Jobs {
		label := w.JobLabel(i)
		for _, as := range [][]Arg{j.Command, j.ReferencedInputFiles, j.ReferencedOutputFiles} {
			for k := range as {
				fix(&as[k], label, "")
			}
		}
		for _, a := range []*Arg{j.Stdin, j.StdoutFile, j.StderrFile, j.WorkingDirectory, j.InputParamsFile, j.OutputParamsFile} {
			if a != nil {
				fix(a, label, "")
			}
		}
	}
}
