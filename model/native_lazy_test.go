package model

import (
	"encoding/json"
	"fmt"
	"reflect"
	"testing"

	"go.yaml.in/yaml/v3"
)

// decodeNativeWhole is DecodeNative of a JSON document as it was before the
// jobs were converted one at a time: the whole document as one YAML tree.
func decodeNativeWhole(data []byte) (*Workflow, error) {
	n, err := rawN(data)
	if err != nil {
		return nil, fmt.Errorf("native workflow: %w", err)
	}
	if err := checkShape(n); err != nil {
		return nil, fmt.Errorf("native workflow: %w", err)
	}
	d := &nativeDecoder{w: &Workflow{}, jobIdx: map[string]int{}, groupIdx: map[string]int{}}
	root := d.deref(n)
	if root == nil || root.Kind != yaml.MappingNode {
		return nil, fmt.Errorf("native workflow: expected a mapping at the top (line %d)", lineOf(root))
	}
	d.decode(root)
	if len(d.ps) > 0 {
		d.ps = append(d.ps, d.semanticProblems()...)
		return nil, d.ps.err()
	}
	return d.w, nil
}

// TestDecodeNativeJSONJobsOneAtATime: a JSON file whose jobs are converted
// one at a time decodes to the same workflow, or the same problems, as the
// whole tree did: the examples and the soma-workflow reference files as
// JSON, and broken jobs.
func TestDecodeNativeJSONJobsOneAtATime(t *testing.T) {
	docs := []string{
		`{"jobs": {}}`,
		`{"jobs": {"a": {"command": ["true"]}, "a": {"command": ["x"]}}}`,
		`{"jobs": {"a": {"command": ["true"]}}, "jobs": {"b": {"command": ["true"]}}}`,
		`{"jobs": [1]}`,
		`{"jobs": null}`,
		`{"name": "x"}`,
		`{"jobs": {"a": 5, "b": {"command": "x", "after": ["zz"]}, "c": {"comand": ["true"]}}}`,
		`{"defaults": {"retries": 2, "cpus": 3}, "jobs": {"b": {"command": ["echo", 1, 2.5, true, ["x", "y"]], "after": ["a", "G"]}, "a": {"shell": "true", "priority": 4, "links": {"p": "b.q"}}}, "groups": {"G": ["a"]}}`,
		`{"jobs": {"a": {"command": ["true"], "after": ["b"]}, "b": {"command": ["true"], "after": ["a"]}}}`,
		`{"jobs": {"a": {"command": [{"temporary": 0}], "stdout_file": {"temporary": 0, "file": "o"}}}, "soma": {"temporary_paths": [{"name": "t"}]}}`,
	}
	soma, native := fuzzSeeds(t)
	for _, s := range soma {
		if w, err := DecodeSoma(s); err == nil {
			if n, err := EncodeNative(w); err == nil {
				native = append(native, n)
			}
		}
	}
	for _, b := range native {
		var v any
		if err := yaml.Unmarshal(b, &v); err != nil {
			continue
		}
		if j, err := json.Marshal(v); err == nil {
			docs = append(docs, string(j))
		}
	}
	if len(docs) < 20 {
		t.Fatalf("only %d documents: the examples and reference files were not found", len(docs))
	}
	for _, doc := range docs {
		want, wantErr := decodeNativeWhole([]byte(doc))
		got, err := DecodeNative([]byte(doc))
		if fmt.Sprint(err) != fmt.Sprint(wantErr) {
			t.Errorf("%.200s:\nerror %v\nwant  %v", doc, err, wantErr)
			continue
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%.200s: decoded differently:\n%+v\nwant %+v", doc, got, want)
		}
	}
}
