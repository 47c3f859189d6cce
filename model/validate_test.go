package model

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

// problemsOf returns the lines of a *ValidationError (fails on another error).
func problemsOf(t *testing.T, err error) []string {
	t.Helper()
	if err == nil {
		return nil
	}
	var ve *ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("error %v (%T) is not a *ValidationError", err, err)
	}
	return strings.Split(ve.Error(), "\n")
}

func checkProblems(t *testing.T, err error, want []string) {
	t.Helper()
	got := problemsOf(t, err)
	if len(want) == 0 {
		if err != nil {
			t.Fatalf("unexpected problems:\n%v", err)
		}
		return
	}
	if err == nil {
		t.Fatalf("no error, want:\n%s", strings.Join(want, "\n"))
	}
	for _, w := range want {
		found := false
		for _, g := range got {
			if g == w {
				found = true
			}
		}
		if !found {
			t.Errorf("missing problem %q; got:\n%s", w, strings.Join(got, "\n"))
		}
	}
}

// TestValidateNative checks each kind of problem, found by DecodeNative or
// by Validate, with its exact message.
func TestValidateNative(t *testing.T) {
	cases := []struct {
		name   string
		doc    string
		decode []string // problems from DecodeNative
		valid  []string // problems from Validate
	}{
		{name: "ok", doc: `
jobs:
  a: {command: [echo, a]}
  b: {shell: "echo b", after: [a]}
`},
		{name: "unknown dependency", doc: `
jobs:
  sort_1: {command: [sort]}
  align_3: {command: [align], after: [sort_1, sort_9]}
`, decode: []string{`job "align_3": after: dependency on unknown job "sort_9"`}},
		{name: "unknown group member and root", doc: `
jobs:
  a: {command: ["true"]}
groups:
  G: [a, nope]
root: [a, G, zzz]
`, decode: []string{`groups.G: unknown job or group "nope"`, `root: unknown job or group "zzz"`}},
		{name: "duplicated job name", doc: `
jobs:
  a: {command: ["true"]}
  a: {command: ["false"]}
`, decode: []string{`jobs.a: key appears twice (line 4)`}},
		{name: "job and group share a name", doc: `
jobs:
  a: {command: ["true"]}
groups:
  a: [a]
`, decode: []string{`groups.a: "a" names both a job and a group (line 5)`}},
		{name: "bad types", doc: `
jobs:
  a:
    command: echo
    priority: high
    join_stderrout: "yes"
    env: {X: [1]}
    stdout_file: [a, b]
    disposal_timeout: 1.5
`, decode: []string{
			`job "a": command: expected a list, got "echo" (line 4)`,
			`job "a": priority: expected an integer, got "high" (line 5)`,
			`job "a": join_stderrout: expected true or false, got "yes" (line 6)`,
			`job "a": env.X: expected a string, got a list (line 7)`,
			`job "a": stdout_file: expected a path, got a list (line 8)`,
			`job "a": disposal_timeout: expected an integer, got a number (line 9)`,
		}},
		{name: "unknown fields", doc: `
wat: 1
jobs:
  a: {command: ["true"], colour: red}
`, decode: []string{
			`wat: unknown key (line 2); keys soma-workflow knows and somaflow does not go under soma.extra`,
			`job "a": colour: unknown job field (line 4)`,
		}},
		{name: "missing jobs", doc: "name: x\n", decode: []string{`jobs: missing`}},
		{name: "empty command", doc: `
jobs:
  a: {command: []}
  b: {}
  c: {command: [""]}
  d: {command: [x], shell: "y"}
  e: {barrier: true}
`, valid: []string{
			`job "a": command: empty command`,
			`job "b": command: empty command`,
			`job "c": command[0]: empty program name`,
			`job "d": command: both command and shell are set`,
		}},
		{name: "cycle", doc: `
jobs:
  a: {command: ["true"], after: [c]}
  b: {command: ["true"], after: [a]}
  c: {command: ["true"], after: [b]}
  d: {command: ["true"], after: [d]}
`, valid: []string{
			`job "a": dependencies: dependency cycle: "a" -> "b" -> "c" -> "a"`,
			`job "d": dependencies: dependency cycle: "d" -> "d"`,
		}},
		{name: "cycle through a group", doc: `
jobs:
  a: {command: ["true"], after: [G]}
  b: {command: ["true"]}
groups:
  G: [a, b]
`, valid: []string{`job "a": dependencies: dependency cycle: "a" -> group "G" -> "a"`}},
		{name: "group contains itself", doc: `
jobs:
  a: {command: ["true"]}
groups:
  G: [a, H]
  H: [G]
`, valid: []string{`groups: group contains itself: "G" -> "H" -> "G"`}},
		{name: "python the engine cannot run", doc: `
jobs:
  m: {soma: {class: soma_workflow.custom_jobs.MapJob}}
  mc: {command: ["true"], soma: {class: soma_workflow.custom_jobs.ReduceJob}}
  own: {command: ["true"], soma: {class: mymodule.MyJob}}
  p: {command: ["true"], has_outputs: true}
  q:
    command: ["true"]
    links:
      x: {from: p, param: y, transform: mymodule.myfunc}
      z: [{from: p, param: y, transform: [no_such, 1]}]
soma:
  env_builder_code: "print('{}')"
`, valid: []string{
			`job "mc": command: a job of class soma_workflow.custom_jobs.ReduceJob runs no command`,
			`job "own": class: custom Python job class "mymodule.MyJob" cannot run in somaflow (only soma_workflow.client_types.Job, soma_workflow.client_types.BarrierJob and soma_workflow.custom_jobs' ` + engineClassList() + `)`,
			`job "q": param_links.x: link function "mymodule.myfunc" is Python code: somaflow runs only the built-in functions (` + linkFunctionList() + `)`,
			`job "q": param_links.z: unknown link function "no_such" (built-in: ` + linkFunctionList() + `)`,
		}},
		{name: "unknown link source and special path", doc: `
jobs:
  q:
    command: [cat, {transfer: 3}]
    links:
      x: nobody.out
`, decode: []string{`job "q": links.x: parameter link from unknown job "nobody"`}},
		{name: "unknown special path", doc: `
jobs:
  q: {command: [cat, {transfer: 3}]}
`, valid: []string{`job "q": command[1]: reference to unknown special path (kind 0, index 3)`}},
		{name: "bad env names", doc: `
env: {"A=B": x}
jobs:
  q: {command: ["true"], env: {"": y}}
`, valid: []string{`env: bad environment variable name "A=B"`, `job "q": env: bad environment variable name ""`}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			w, err := DecodeNative([]byte(c.doc))
			checkProblems(t, err, c.decode)
			if err != nil {
				return
			}
			checkProblems(t, w.Validate(), c.valid)
		})
	}
}

// TestValidateSoma checks problems found while decoding soma-workflow files.
func TestValidateSoma(t *testing.T) {
	job := func(name string) string {
		return fmt.Sprintf(`{"name": %q, "command": ["true"]}`, name)
	}
	cases := []struct {
		name  string
		doc   string
		want  []string
		valid []string
		warn  []string
	}{
		{name: "smallest", doc: `{"serialized_jobs": {"0": {"name": "a", "command": ["true"]}, "1": {"name": "b", "command": ["true"]}}, "dependencies": [[0, 1]]}`},
		{name: "unknown dependency", doc: `{"serialized_jobs": {"0": ` + job("a") + `}, "dependencies": [["<tuple>", 0, 7]]}`,
			want: []string{`dependencies[0]: dependency on unknown job id 7`}},
		{name: "duplicated id", doc: `{"serialized_jobs": {"0": ` + job("a") + `, "0": ` + job("b") + `}}`,
			want: []string{`serialized_jobs: duplicated id 0`}},
		{name: "duplicated id across kinds", doc: `{"serialized_jobs": {"0": ` + job("a") + `}, "serialized_groups": {"0": {"name": "g", "elements": [0]}}}`,
			want: []string{`serialized_groups: duplicated id 0`}},
		{name: "missing command", doc: `{"serialized_jobs": {"0": {"name": "a"}}}`,
			want: []string{`job "a": command: missing (soma-workflow cannot load a job without it)`}},
		{name: "bad types", doc: `{"serialized_jobs": {"0": {"name": "a", "command": ["x", true, {"k": 1}], "priority": "high", "env": {"X": 1}, "has_outputs": 1}}}`,
			want: []string{
				`job "a": command[1]: expected a string, a number, a list or a special path reference, got a boolean`,
				`job "a": command[2]: expected a string, a number, a list or a special path reference, got an object`,
				`job "a": priority: expected an integer, got a string`,
				`job "a": env: "X": expected a string, got a number`,
				`job "a": has_outputs: expected a boolean, got a number`,
			}},
		{name: "unknown path", doc: `{"serialized_jobs": {"0": {"name": "a", "command": ["cat", ["<tuple>", "<id>", 5]]}}}`,
			want: []string{`job "a": command[1]: reference to unknown special path id 5`}},
		{name: "not soma", doc: `{"jobs": {}}`, want: []string{`serialized_jobs: missing: not a soma-workflow workflow`}},
		{name: "cycle", doc: `{"serialized_jobs": {"0": ` + job("a") + `, "1": ` + job("b") + `}, "dependencies": [[0, 1], [1, 0]]}`,
			valid: []string{`job "a": dependencies: dependency cycle: "a" -> "b" -> "a"`}},
		{name: "custom class", doc: `{"serialized_jobs": {"0": {"class": "mymodule.MyJob", "name": "m", "command": []}}}`,
			valid: []string{`job "m": class: custom Python job class "mymodule.MyJob" cannot run in somaflow (only soma_workflow.client_types.Job, soma_workflow.client_types.BarrierJob and soma_workflow.custom_jobs' ` + engineClassList() + `)`}},
		{name: "engine-side class", doc: `{"serialized_jobs": {"0": {"class": "soma_workflow.custom_jobs.MapJob", "name": "m", "command": [], "has_outputs": true, "param_dict": {"inputs": [1, 2]}}}}`},
		{name: "dropped groups are reported", doc: `{"serialized_jobs": {"0": ` + job("a") + `}, "root_group": [0, 1, 9], "serialized_groups": {"1": {"name": "ok", "elements": [0]}, "2": {"name": "bad", "elements": [0, 8]}, "3": {"name": "lost", "elements": [0]}}}`,
			warn: []string{
				`serialized_groups: group "bad" (id 2) names an unknown element or contains itself: dropped, as soma-workflow does`,
				`serialized_groups: group "lost" (id 3) is not reachable from root_group: dropped, as soma-workflow does`,
				`root_group: unknown id 9 skipped, as soma-workflow does`,
			}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			w, err := DecodeSoma([]byte(c.doc))
			checkProblems(t, err, c.want)
			if err != nil {
				return
			}
			checkProblems(t, w.Validate(), c.valid)
			if c.warn != nil {
				checkProblems(t, &ValidationError{Problems: w.Warnings}, c.warn)
			}
		})
	}
}

// TestValidateModel covers problems only a model built in Go can have.
func TestValidateModel(t *testing.T) {
	a := "a"
	w := &Workflow{
		Jobs:         []*Job{{Name: &a, Command: []Arg{{Value: "true"}}}},
		Dependencies: []Dependency{{From: Element{Index: 5}, To: Element{Index: 0}}},
		ParamLinks:   []ParamLink{{Dest: 0, DestParam: "x", Src: 9, SrcParam: "y"}},
		Root:         []Element{{Kind: GroupElement, Index: 2}},
	}
	checkProblems(t, w.Validate(), []string{
		`job "a": dependencies: dependency on unknown job #5`,
		`job "a": param_links.x: parameter link from unknown job #9`,
		`root: root group contains unknown group #2`,
	})
}

// TestValidateLargeChain: a 100,000-job chain (and a cycle closing it)
// must not overflow the stack.
func TestValidateLargeChain(t *testing.T) {
	const n = 100000
	w := &Workflow{}
	for i := range n {
		name := fmt.Sprintf("j%d", i)
		w.Jobs = append(w.Jobs, &Job{Name: &name, Command: []Arg{{Value: "true"}}})
		if i > 0 {
			w.Dependencies = append(w.Dependencies, Dependency{From: Element{Index: i - 1}, To: Element{Index: i}})
		}
	}
	if err := w.Validate(); err != nil {
		t.Fatal(err)
	}
	w.Dependencies = append(w.Dependencies, Dependency{From: Element{Index: n - 1}, To: Element{Index: 0}})
	lines := problemsOf(t, w.Validate())
	if len(lines) != 1 || !strings.HasPrefix(lines[0], `job "j0": dependencies: dependency cycle: "j0" -> "j1" -> "j2"`) ||
		!strings.HasSuffix(lines[0], `"j99999" -> "j0"`) {
		t.Fatalf("got %.200q", lines)
	}
}

func TestAllDependencies(t *testing.T) {
	job := func(i int) Element { return Element{JobElement, i} }
	jobs := []*Job{{}, {}, {}}
	cases := []struct {
		name  string
		deps  []Dependency
		links []ParamLink
		want  []Dependency
	}{
		{"no links", []Dependency{{job(0), job(1)}}, nil, []Dependency{{job(0), job(1)}}},
		{"link alone", nil, []ParamLink{{Src: 0, Dest: 2}}, []Dependency{{job(0), job(2)}}},
		{"link already written", []Dependency{{job(0), job(2)}}, []ParamLink{{Src: 0, Dest: 2, DestParam: "a"}}, []Dependency{{job(0), job(2)}}},
		{"two links, one source", nil, []ParamLink{{Src: 1, Dest: 2, DestParam: "a"}, {Src: 1, Dest: 2, DestParam: "b"}}, []Dependency{{job(1), job(2)}}},
		{"group dependency kept, link added", []Dependency{{Element{GroupElement, 0}, job(2)}}, []ParamLink{{Src: 0, Dest: 2}},
			[]Dependency{{Element{GroupElement, 0}, job(2)}, {job(0), job(2)}}},
		{"link out of range", nil, []ParamLink{{Src: 7, Dest: 2}}, nil},
	}
	for _, c := range cases {
		w := &Workflow{Jobs: jobs, Dependencies: c.deps, ParamLinks: c.links}
		got := w.AllDependencies()
		if len(got) != len(c.want) {
			t.Errorf("%s: got %v, want %v", c.name, got, c.want)
			continue
		}
		for i := range got {
			if got[i] != c.want[i] {
				t.Errorf("%s: got %v, want %v", c.name, got, c.want)
			}
		}
		if len(c.deps) > 0 && len(w.Dependencies) != len(c.deps) {
			t.Errorf("%s: Dependencies modified", c.name)
		}
	}
}
