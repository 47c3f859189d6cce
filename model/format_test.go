package model

import (
	"bytes"
	"os"
	"strings"
	"testing"
)

// TestGroupDependenciesLikeSomaWorkflow: dependencies naming groups, written
// natively, expand into exactly the barrier jobs and dependencies that
// soma-workflow itself wrote for the same workflow (group_deps.json).
func TestGroupDependenciesLikeSomaWorkflow(t *testing.T) {
	log := "/tmp/somaflow-ref/group_deps/log.txt"
	var b strings.Builder
	b.WriteString("name: group_deps\njobs:\n")
	for _, j := range []struct{ name, after string }{
		{"start", ""}, {"a1", "start"}, {"a2", "start"}, {"b1", "GA"}, {"s1", "GA"}, {"s2", "GA"}, {"end", "GB"},
	} {
		b.WriteString("  " + j.name + ":\n    command: [sh, -c, 'echo " + j.name + " >> " + log + "']\n")
		_ = j.after
	}
	b.WriteString("groups:\n  GA: {members: [a1, a2], after: [start]}\n  SUB: [s1, s2]\n  GB: {members: [b1, SUB], after: [GA]}\n")
	b.WriteString("  END: {members: [end], soma: {name: unused}}\n")
	// "end" after GB: a job-level dependency on a group
	doc := strings.Replace(b.String(), "    command: [sh, -c, 'echo end", "    after: [GB]\n    command: [sh, -c, 'echo end", 1)
	// soma-workflow's root group was [start, GA, GB, end]
	doc = strings.Replace(doc, "  END: {members: [end], soma: {name: unused}}\n", "root: [start, GA, GB, end]\n", 1)
	w, err := DecodeNative([]byte(doc))
	if err != nil {
		t.Fatalf("%v\n%s", err, doc)
	}
	if err := w.Validate(); err != nil {
		t.Fatal(err)
	}
	if len(w.Dependencies) != 3 {
		t.Fatalf("dependencies: %v", w.Dependencies)
	}
	// soma-workflow expands in the order its dependency list has:
	// (start, GA), (GA, GB), (GB, end)
	ga, gb := Element{Kind: GroupElement, Index: 0}, Element{Kind: GroupElement, Index: 2}
	w.Dependencies = []Dependency{{From: Element{Index: 0}, To: ga}, {From: ga, To: gb}, {From: gb, To: Element{Index: 6}}}
	got, err := EncodeSoma(w)
	if err != nil {
		t.Fatal(err)
	}
	want, err := os.ReadFile(somaRefDir + "/group_deps.json")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("EncodeSoma differs from soma-workflow's file: %v\n%s", equivalentFiles(want, got), got)
	}
}

// TestExamples: the shipped examples load, validate and round-trip.
func TestExamples(t *testing.T) {
	data, err := os.ReadFile("../examples/demo.yaml")
	if err != nil {
		t.Fatal(err)
	}
	w, f, err := Decode(data)
	if err != nil || f != FormatNative {
		t.Fatalf("demo.yaml: %v (format %q)", err, f)
	}
	if err := w.Validate(); err != nil {
		t.Fatalf("demo.yaml: %v", err)
	}
	names := map[string]*Job{}
	for _, j := range w.Jobs {
		names[*j.Name] = j
	}
	if j := names["fails"]; j == nil || !strings.Contains(j.Shell, "exit 3") {
		t.Errorf("demo.yaml: no job 'fails' that exits 3")
	}
	if len(w.Groups) != 1 || len(w.ParamLinks) != 1 || !names["produce"].HasOutputs {
		t.Errorf("demo.yaml: want one group and one parameter link from a job with outputs")
	}
	roundTripNative(t, w)
	if _, err := EncodeSoma(w); err != nil {
		t.Fatal(err)
	}

	hello, err := os.ReadFile("../examples/hello.json")
	if err != nil {
		t.Fatal(err)
	}
	w, f, err = Decode(hello)
	if err != nil || f != FormatSoma {
		t.Fatalf("hello.json: %v (format %q)", err, f)
	}
	if err := w.Validate(); err != nil {
		t.Fatalf("hello.json: %v", err)
	}
	out, err := EncodeSoma(w)
	if err != nil || !bytes.Equal(out, hello) {
		t.Fatalf("hello.json is not in soma-workflow's exact format (%v)", err)
	}
}

// TestDecodeDetects tells the formats apart, JSON native included.
func TestDecodeDetects(t *testing.T) {
	for _, c := range []struct {
		doc  string
		want Format
	}{
		{`{"serialized_jobs": {"0": {"command": ["true"]}}}`, FormatSoma},
		{`{"jobs": {"a": {"command": ["true"]}}}`, FormatNative},
		{"jobs:\n  a: {command: [\"true\"]}\n", FormatNative},
	} {
		w, f, err := Decode([]byte(c.doc))
		if err != nil || f != c.want || len(w.Jobs) != 1 {
			t.Errorf("%s: format %q, err %v", c.doc, f, err)
		}
	}
	for _, bad := range []string{"", "[]", "{", "jobs: [", `{"serialized_jobs": 3}`, "\x00"} {
		if _, _, err := Decode([]byte(bad)); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

// TestNativeNamesFromSoma: null and repeated soma-workflow names get unique
// native names; the originals travel in soma: and come back.
func TestNativeNamesFromSoma(t *testing.T) {
	doc := `{"serialized_jobs": {
		"0": {"name": null, "command": ["true"]},
		"1": {"name": "x", "command": ["true"]},
		"2": {"name": "x", "command": ["true"]},
		"3": {"name": "x_2", "command": ["true"]},
		"4": {"command": ["echo", "hi"]}},
		"root_group": [0, 1, 5],
		"serialized_groups": {"5": {"name": "x", "elements": [2, 3, 4]}}}`
	w, err := DecodeSoma([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	jobs, groups := NativeNames(w)
	if got := strings.Join(append(jobs, groups...), ","); got != "true,x,x_3,x_2,echo,x_4" {
		t.Errorf("names %s", got)
	}
	nat, err := EncodeNative(w)
	if err != nil {
		t.Fatal(err)
	}
	w2, err := DecodeNative(nat)
	if err != nil {
		t.Fatal(err)
	}
	if err := Equivalent(w, w2); err != nil {
		t.Fatalf("%v\n%s", err, nat)
	}
	if w2.Jobs[0].Name != nil || *w2.Jobs[4].Name != "echo" {
		t.Errorf("original names lost:\n%s", nat)
	}
}

// TestDocExample: the complete example of docs/native-format.md is valid.
func TestDocExample(t *testing.T) {
	doc, err := os.ReadFile("../docs/native-format.md")
	if err != nil {
		t.Fatal(err)
	}
	s := string(doc)
	i := strings.Index(s, "```yaml\n")
	j := strings.Index(s[i+8:], "```")
	if i < 0 || j < 0 {
		t.Fatal("no yaml example")
	}
	w, f, err := Decode([]byte(s[i+8 : i+8+j]))
	if err != nil || f != FormatNative {
		t.Fatalf("%v (format %q)", err, f)
	}
	if err := w.Validate(); err != nil {
		t.Fatal(err)
	}
	if len(w.ParamLinks) != 2 || len(w.Groups) != 2 || len(w.Root) != 4 || *w.Jobs[1].DisposalTimeout != 24 || w.Jobs[1].Priority != 5 || w.Jobs[0].Priority != 1 {
		t.Errorf("example decoded wrongly: %+v", w)
	}
	roundTripNative(t, w)
}

// TestSomaUnknownKeysAndLegacy: unknown keys are kept and written back at
// every level; legacy serialized_barriers load as barrier jobs; plain [a, b]
// dependencies are read.
func TestSomaUnknownKeysAndLegacy(t *testing.T) {
	doc := `{"name": "legacy", "top_extra": {"k": [1, "é"]},
	"serialized_jobs": {"0": {"name": "a", "command": ["true"], "job_extra": 7}, "1": {"name": "b", "command": ["true"]}},
	"serialized_barriers": {"2": {"name": "bar", "disposal_timeout": 168}},
	"dependencies": [[0, 2], ["<tuple>", 2, 1]],
	"root_group": [3], "serialized_groups": {"3": {"name": "g", "elements": [0, 1, 2], "group_extra": null}},
	"serialized_temporary_paths": {"4": {"is_directory": true, "name": "t", "tmp_extra": "x"}}}`
	w, err := DecodeSoma([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	if !w.Jobs[2].IsBarrier() || len(w.Dependencies) != 2 || w.Dependencies[1].From.Index != 2 {
		t.Fatalf("legacy barrier or dependencies misread: %+v %+v", w.Jobs[2], w.Dependencies)
	}
	out, err := EncodeSoma(w)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"top_extra": {`, `"\u00e9"`, `"job_extra": 7`, `"group_extra": null`, `"tmp_extra": "x"`} {
		if !strings.Contains(string(out), want) {
			t.Errorf("%s not written back:\n%s", want, out)
		}
	}
	nat, err := EncodeNative(w)
	if err != nil {
		t.Fatal(err)
	}
	w2, err := DecodeNative(nat)
	if err != nil {
		t.Fatal(err)
	}
	if err := Equivalent(w, w2); err != nil {
		t.Fatalf("%v\n%s", err, nat)
	}
}
