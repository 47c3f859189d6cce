package engine

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
)

// Each case's expected outputs were computed by running the
// engine_execution bodies of soma-workflow's custom_jobs.py
// (populse/soma-workflow, python/soma_workflow/custom_jobs.py) with Python
// 3.11 on the same param_dict: Python semantics included (ReduceJob keeps
// its inputs, a negative LeaveOneOut index, folds one item larger first).
func TestEngineJobsAsSomaWorkflow(t *testing.T) {
	cases := []struct{ class, params, want string }{
		{"MapJob", `{"extra": 7, "input_names": ["inputs"], "inputs": ["a", "b", "c"], "output_names": ["output_%d"]}`, `{"extra": 7, "lengths": [3], "output_0": "a", "output_1": "b", "output_2": "c"}`},
		{"MapJob", `{"input_names": ["xs", "ys"], "output_names": ["x_%d", "y_%03d"], "xs": [1, 2], "ys": ["p"]}`, `{"lengths": [2, 1], "x_0": 1, "x_1": 2, "y_000": "p"}`},
		{"ReduceJob", `{"input_0": "a", "input_1": "b", "input_2": "c", "input_names": ["input_%d"], "keep": true, "lengths": [3], "output_names": ["outputs"]}`, `{"input_0": "a", "input_1": "b", "input_2": "c", "keep": true, "outputs": ["a", "b", "c"]}`},
		{"LeaveOneOutJob", `{"index": 1, "inputs": [10, 20, 30, 40]}`, `{"test": 20, "train": [10, 30, 40]}`},
		{"LeaveOneOutJob", `{"index": -1, "inputs": [10, 20, 30, 40]}`, `{"test": 40, "train": [10, 20, 30, 10, 20, 30, 40]}`},
		{"CrossValidationFoldJob", `{"fold": 0, "inputs": [0, 1, 2, 3, 4, 5, 6], "nfolds": 3}`, `{"test": [0, 1, 2], "train": [3, 4, 5, 6]}`},
		{"CrossValidationFoldJob", `{"fold": 2, "inputs": [0, 1, 2, 3, 4, 5, 6], "nfolds": 3}`, `{"test": [5, 6], "train": [0, 1, 2, 3, 4]}`},
		{"ListCatJob", `{"inputs": [[1, 2], [], [3]]}`, `{"outputs": [1, 2, 3]}`},
		{"StrCatJob", `{"a": "x", "b": ["y", "z"], "input_names": ["a", "b"], "output_name": "out"}`, `{"out": "xyz"}`},
	}
	for _, c := range cases {
		var p, want map[string]any
		if err := json.Unmarshal([]byte(c.params), &p); err != nil {
			t.Fatal(err)
		}
		json.Unmarshal([]byte(c.want), &want)
		got, err := engineJobs["soma_workflow.custom_jobs."+c.class](p)
		if err != nil {
			t.Errorf("%s %s: %v", c.class, c.params, err)
			continue
		}
		// compare as JSON values (numbers are float64 on both sides)
		b, _ := json.Marshal(got)
		var g map[string]any
		json.Unmarshal(b, &g)
		if !reflect.DeepEqual(g, want) {
			t.Errorf("%s %s:\n got %s\nwant %s", c.class, c.params, b, c.want)
		}
	}
}

// What raises in Python fails the job with a reason that says why.
func TestEngineJobErrors(t *testing.T) {
	cases := []struct{ class, params, want string }{
		{"LeaveOneOutJob", `{"inputs": [1], "index": 3}`, "IndexError"},
		{"LeaveOneOutJob", `{"inputs": "abc", "index": 0}`, "inputs must be a list"},
		{"CrossValidationFoldJob", `{"inputs": [1, 2], "nfolds": 0, "fold": 0}`, "ZeroDivisionError"},
		{"CrossValidationFoldJob", `{"inputs": [1, 2], "nfolds": 1.5, "fold": 0}`, "nfolds must be an integer"},
		{"ReduceJob", `{"lengths": [2], "input_0": 1}`, `KeyError: "input_1"`},
		{"MapJob", `{"output_names": ["no_pattern"], "inputs": [1]}`, "not all arguments converted"},
		{"StrCatJob", `{"input_names": ["a"], "output_name": "o", "a": 3}`, "expected str instance"},
		{"ListCatJob", `{"inputs": [1]}`, "inputs[0] must be a list"},
	}
	for _, c := range cases {
		var p map[string]any
		json.Unmarshal([]byte(c.params), &p)
		_, err := engineJobs["soma_workflow.custom_jobs."+c.class](p)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s %s: error %v, want %q", c.class, c.params, err, c.want)
		}
	}
}
