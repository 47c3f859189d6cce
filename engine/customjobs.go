package engine

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/somaflow/somaflow/drms"
	"github.com/somaflow/somaflow/model"
)

// engineJobs are soma-workflow's soma_workflow.custom_jobs classes, done
// natively: each turns a job's parameters (param_dict after its links) into
// its output parameters, as the class's engine_execution does in
// soma-workflow's engine, Python semantics included (negative indexes,
// slices, integer division, "%d" patterns). A Python exception there is an
// error here: the job fails with it as the reason.
var engineJobs = map[string]func(p map[string]any) (map[string]any, error){
	"soma_workflow.custom_jobs.MapJob":                 mapJob,
	"soma_workflow.custom_jobs.ReduceJob":              reduceJob,
	"soma_workflow.custom_jobs.LeaveOneOutJob":         leaveOneOutJob,
	"soma_workflow.custom_jobs.CrossValidationFoldJob": crossValidationFoldJob,
	"soma_workflow.custom_jobs.ListCatJob":             listCatJob,
	"soma_workflow.custom_jobs.StrCatJob":              strCatJob,
}

// mapJob: every item of each input list (input_names, default ["inputs"])
// becomes an output named by the matching pattern of output_names (default
// ["output_%d"]); other parameters pass through; "lengths" lists the
// lengths.
func mapJob(p map[string]any) (map[string]any, error) {
	inputs, err := strList(get(p, "input_names", []any{"inputs"}), "input_names")
	if err != nil {
		return nil, err
	}
	outputs, err := strList(get(p, "output_names", []any{"output_%d"}), "output_names")
	if err != nil {
		return nil, err
	}
	out := without(p, append(append([]string{"input_names", "output_names"}, inputs...), outputs...))
	lengths := []any{}
	for k := 0; k < min(len(inputs), len(outputs)); k++ {
		v, ok := p[inputs[k]]
		if !ok {
			return nil, fmt.Errorf("KeyError: %q", inputs[k])
		}
		items, err := pyList(v, inputs[k])
		if err != nil {
			return nil, err
		}
		for i, item := range items {
			name, err := pyFormatInt(outputs[k], i)
			if err != nil {
				return nil, err
			}
			out[name] = item
		}
		lengths = append(lengths, len(items))
	}
	out["lengths"] = lengths
	return out, nil
}

// reduceJob: for each pattern of input_names (default ["input_%d"]) and its
// length in lengths, the inputs 0..length-1 make one list output, named by
// output_names (default ["outputs"]); other parameters pass through.
func reduceJob(p map[string]any) (map[string]any, error) {
	inputs, err := strList(get(p, "input_names", []any{"input_%d"}), "input_names")
	if err != nil {
		return nil, err
	}
	outputs, err := strList(get(p, "output_names", []any{"outputs"}), "output_names")
	if err != nil {
		return nil, err
	}
	lv, ok := p["lengths"]
	if !ok {
		return nil, errors.New(`KeyError: "lengths"`)
	}
	lengths, err := pyList(lv, "lengths")
	if err != nil {
		return nil, err
	}
	out := without(p, append(append([]string{"input_names", "output_names", "lengths"}, inputs...), outputs...))
	for k := 0; k < min(len(inputs), len(outputs), len(lengths)); k++ {
		n, err := pyInt(lengths[k], "lengths")
		if err != nil {
			return nil, err
		}
		list := []any{}
		for i := 0; i < n; i++ {
			name, err := pyFormatInt(inputs[k], i)
			if err != nil {
				return nil, err
			}
			v, ok := p[name]
			if !ok {
				return nil, fmt.Errorf("KeyError: %q", name)
			}
			list = append(list, v)
		}
		out[outputs[k]] = list
	}
	return out, nil
}

// leaveOneOutJob: "test" is inputs[index], "train" the list without it.
func leaveOneOutJob(p map[string]any) (map[string]any, error) {
	inputs, err := pyList(p["inputs"], "inputs")
	if err != nil {
		return nil, err
	}
	index, err := pyInt(p["index"], "index")
	if err != nil {
		return nil, err
	}
	n := len(inputs)
	if index < -n || index >= n {
		return nil, errors.New("IndexError: list index out of range")
	}
	test := inputs[(index+n)%n]
	train := append(pySlice(inputs, 0, index, false, true), pySlice(inputs, index+1, 0, true, false)...)
	return map[string]any{"train": train, "test": test}, nil
}

// crossValidationFoldJob: fold number fold of nfolds folds of inputs is
// "test", the rest "train" (the first len % nfolds folds one item larger).
func crossValidationFoldJob(p map[string]any) (map[string]any, error) {
	inputs, err := pyList(p["inputs"], "inputs")
	if err != nil {
		return nil, err
	}
	fold, err := pyInt(p["fold"], "fold")
	if err != nil {
		return nil, err
	}
	nfolds, err := pyInt(p["nfolds"], "nfolds")
	if err != nil {
		return nil, err
	}
	if nfolds == 0 {
		return nil, errors.New("ZeroDivisionError: integer division or modulo by zero")
	}
	nitems := len(inputs)
	size, nsupp := floorDiv(nitems, nfolds), floorMod(nitems, nfolds)
	begin := size * fold
	begin += min(begin, nsupp)
	end := size * (fold + 1)
	end += min(end, nsupp)
	train := append(pySlice(inputs, 0, begin, false, true), pySlice(inputs, end, 0, true, false)...)
	return map[string]any{"train": train, "test": pySlice(inputs, begin, end, true, true)}, nil
}

// listCatJob: "outputs" is the concatenation of the lists in inputs.
func listCatJob(p map[string]any) (map[string]any, error) {
	lists, err := pyList(p["inputs"], "inputs")
	if err != nil {
		return nil, err
	}
	outputs := []any{}
	for i, l := range lists {
		if s, ok := l.(string); ok { // list += str extends by characters
			for _, r := range s {
				outputs = append(outputs, string(r))
			}
			continue
		}
		items, err := pyList(l, fmt.Sprintf("inputs[%d]", i))
		if err != nil {
			return nil, err
		}
		outputs = append(outputs, items...)
	}
	return map[string]any{"outputs": outputs}, nil
}

// strCatJob: the inputs named by input_names (strings, or lists of strings
// joined) joined into one string, output as output_name.
func strCatJob(p map[string]any) (map[string]any, error) {
	names, err := strList(p["input_names"], "input_names")
	if err != nil {
		return nil, err
	}
	outName, ok := p["output_name"].(string)
	if !ok {
		return nil, fmt.Errorf("output_name must be a string, not %s", pyType(p["output_name"]))
	}
	var sb strings.Builder
	for _, name := range names {
		v, ok := p[name]
		if !ok {
			return nil, fmt.Errorf("KeyError: %q", name)
		}
		if l, isList := v.([]any); isList {
			parts, err := strList(l, name)
			if err != nil {
				return nil, fmt.Errorf("TypeError: sequence item: expected str instance (%v)", err)
			}
			sb.WriteString(strings.Join(parts, ""))
			continue
		}
		s, ok := v.(string)
		if !ok {
			return nil, fmt.Errorf("TypeError: sequence item: expected str instance, %s found (%s)", pyType(v), name)
		}
		sb.WriteString(s)
	}
	return map[string]any{outName: sb.String()}, nil
}

// runInEngine ends a job that runs no process: a barrier succeeds; an
// engine-side job (model.EngineClasses) computes its outputs from its
// parameters, or fails with the error as its reason. It reports success.
func (e *Engine) runInEngine(w *wfRun, j *job) bool {
	mj := w.def.Jobs[j.row.Index]
	if !mj.RunsInEngine() {
		e.endJob(j, drms.Exited(0))
		return true
	}
	params, err := e.jobParams(w, j.row.Index)
	var out map[string]any
	if err == nil {
		if params == nil {
			params = map[string]any{}
		}
		out, err = engineJobs[mj.Class](params)
	}
	if err == nil {
		j.row.OutputParams, err = json.Marshal(out)
	}
	if err != nil {
		e.endJob(j, &drms.Outcome{Status: model.JobFailed, ExitStatus: model.ExitAborted,
			Reason: fmt.Sprintf("%s: %v", strings.TrimPrefix(mj.Class, "soma_workflow.custom_jobs."), err)})
		return false
	}
	j.row.Attempt = max(j.row.Attempt, 1)
	e.endJob(j, drms.Exited(0))
	return true
}

// engineParamDict is the param_dict of an engine-side job: a soma-workflow
// file keeps the job's fields as they are (Job.Extra, as for any class but
// Job), the native format may give params; these win.
func engineParamDict(mj *model.Job) map[string]json.RawMessage {
	var dict map[string]json.RawMessage
	if raw, ok := mj.Extra["param_dict"]; ok {
		_ = json.Unmarshal(raw, &dict) // not an object: no parameters from it
	}
	if dict == nil {
		dict = map[string]json.RawMessage{}
	}
	for k, v := range mj.ParamDict {
		dict[k] = v
	}
	return dict
}

func get(p map[string]any, k string, def any) any {
	if v, ok := p[k]; ok {
		return v
	}
	return def
}

// without copies p without the keys drop.
func without(p map[string]any, drop []string) map[string]any {
	out := make(map[string]any, len(p))
	for k, v := range p {
		out[k] = v
	}
	for _, k := range drop {
		delete(out, k)
	}
	return out
}

func pyType(v any) string {
	switch v.(type) {
	case nil:
		return "NoneType"
	case string:
		return "str"
	case float64:
		return "number"
	case bool:
		return "bool"
	case []any:
		return "list"
	case map[string]any:
		return "dict"
	}
	return fmt.Sprintf("%T", v)
}

func pyList(v any, name string) ([]any, error) {
	l, ok := v.([]any)
	if !ok {
		return nil, fmt.Errorf("%s must be a list, not %s", name, pyType(v))
	}
	return l, nil
}

func strList(v any, name string) ([]string, error) {
	l, err := pyList(v, name)
	if err != nil {
		return nil, err
	}
	out := make([]string, len(l))
	for i, x := range l {
		s, ok := x.(string)
		if !ok {
			return nil, fmt.Errorf("%s[%d] must be a string, not %s", name, i, pyType(x))
		}
		out[i] = s
	}
	return out, nil
}

func pyInt(v any, name string) (int, error) {
	f, ok := v.(float64)
	if !ok || f != math.Trunc(f) || math.Abs(f) > 1<<53 {
		return 0, fmt.Errorf("%s must be an integer, not %s", name, pyType(v))
	}
	return int(f), nil
}

// pyFormatInt is Python's pattern % i for one integer: %d and %i (with
// flags and width), %s, %%.
func pyFormatInt(pattern string, i int) (string, error) {
	var sb strings.Builder
	used := 0
	for k := 0; k < len(pattern); k++ {
		if pattern[k] != '%' {
			sb.WriteByte(pattern[k])
			continue
		}
		j := k + 1
		for j < len(pattern) && strings.IndexByte("0123456789-+ #", pattern[j]) >= 0 {
			j++
		}
		if j >= len(pattern) {
			return "", fmt.Errorf("ValueError: incomplete format in %q", pattern)
		}
		spec := pattern[k+1 : j]
		switch pattern[j] {
		case '%':
			sb.WriteByte('%')
		case 'd', 'i', 'u':
			used++
			sb.WriteString(fmt.Sprintf("%"+spec+"d", i))
		case 's':
			used++
			sb.WriteString(fmt.Sprintf("%"+spec+"s", strconv.Itoa(i)))
		default:
			return "", fmt.Errorf("unsupported format character %q in %q", pattern[j], pattern)
		}
		k = j
	}
	if used != 1 {
		if used == 0 {
			return "", fmt.Errorf("TypeError: not all arguments converted during string formatting (%q)", pattern)
		}
		return "", fmt.Errorf("TypeError: not enough arguments for format string (%q)", pattern)
	}
	return sb.String(), nil
}

// pySlice is Python's l[lo:hi]; hasLo/hasHi false for an omitted bound.
func pySlice(l []any, lo, hi int, hasLo, hasHi bool) []any {
	n := len(l)
	clamp := func(x int) int {
		if x < 0 {
			x += n
		}
		return max(0, min(x, n))
	}
	a, b := 0, n
	if hasLo {
		a = clamp(lo)
	}
	if hasHi {
		b = clamp(hi)
	}
	if a >= b {
		return []any{}
	}
	return append([]any(nil), l[a:b]...)
}

// floorDiv and floorMod are Python's // and % on integers.
func floorDiv(a, b int) int {
	q := a / b
	if (a%b != 0) && ((a < 0) != (b < 0)) {
		q--
	}
	return q
}

func floorMod(a, b int) int { return a - floorDiv(a, b)*b }
