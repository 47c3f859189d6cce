package engine

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/somaflow/somaflow/drms"
	"github.com/somaflow/somaflow/model"
	"github.com/somaflow/somaflow/store"
)

// specError makes a job fail (aborted) with a reason before it is submitted.
type specError struct{ reason string }

func (e *specError) Error() string { return e.reason }

// paramFiles are the parameter files of one attempt: written (input) and
// cleared (output) by prepare when the attempt is submitted, never when a
// spec is only built (recovery looks an attempt up with its spec, and must
// not touch the files of an attempt that may have ended already).
type paramFiles struct {
	in     string // input parameters file, "" when the job uses none
	inData []byte
	out    string // output parameters file, "" when the job has no outputs
}

// prepare writes the input parameters and removes a stale output file, so
// that an earlier attempt's outputs are never read as this one's.
func (f paramFiles) prepare() error {
	if f.out != "" {
		if err := os.MkdirAll(filepath.Dir(f.out), 0o700); err != nil {
			return fmt.Errorf("output params dir: %w", err)
		}
		if err := os.Remove(f.out); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("output params: %w", err)
		}
	}
	if f.in != "" {
		if err := os.MkdirAll(filepath.Dir(f.in), 0o700); err != nil {
			return fmt.Errorf("input params dir: %w", err)
		}
		if err := os.WriteFile(f.in, f.inData, 0o600); err != nil {
			return fmt.Errorf("input params: %w", err)
		}
	}
	return nil
}

// buildSpec resolves everything a backend needs for one attempt of a job:
// argv with special paths and parameters, environment precedence
// (submitter < workflow < job < SOMAWF_*), files, queue. It has no side
// effect: the parameter files it names are prepared by the caller that
// submits (paramFiles.prepare).
func (e *Engine) buildSpec(w *wfRun, j *job) (drms.JobSpec, paramFiles, error) {
	var files paramFiles
	mj := w.def.Jobs[j.row.Index]
	spec := drms.JobSpec{
		EngineTag: e.tag, WorkflowID: w.row.ID, JobID: j.row.ID, JobName: j.row.Name,
		Attempt: j.row.Attempt, Queue: w.row.Queue, Join: mj.JoinStderrout,
		Parallel: mj.ParallelJobInfo, Priority: mj.Priority, Resources: mj.Resources,
	}
	w.pool(&spec, j.row.Index)
	spec.NativeSpec = mj.NativeSpecification
	if spec.NativeSpec == nil {
		spec.NativeSpec = w.def.NativeSpecification
	}
	params, err := e.jobParams(w, j.row.Index)
	if err != nil {
		return spec, files, err
	}
	if mj.Shell != "" {
		spec.Argv = []string{"/bin/sh", "-c", mj.Shell}
	} else {
		spec.Argv = make([]string, len(mj.Command))
		for i, a := range mj.Command {
			s, err := w.renderArg(a, params)
			if err != nil {
				return spec, files, &specError{fmt.Sprintf("command[%d]: %v", i, err)}
			}
			spec.Argv[i] = s
		}
	}
	if spec.Dir, err = w.jobDir(mj); err != nil {
		return spec, files, err
	}
	if spec.Stdin, err = w.jobFile(spec.Dir, "stdin", mj.Stdin); err != nil {
		return spec, files, err
	}
	if spec.Stdout, err = w.jobFile(spec.Dir, "stdout_file", mj.StdoutFile); err != nil {
		return spec, files, err
	}
	if spec.Stderr, err = w.jobFile(spec.Dir, "stderr_file", mj.StderrFile); err != nil {
		return spec, files, err
	}
	logBase := filepath.Join(e.logDir(w.row.ID), fmt.Sprintf("%d.%d", j.row.ID, j.row.Attempt))
	if spec.Stdout == "" {
		spec.Stdout, spec.LazyStdout = logBase+".out", true
	}
	if spec.Stderr == "" && !spec.Join {
		spec.Stderr, spec.LazyStderr = logBase+".err", true
	}

	env := append([]string(nil), w.baseEnv...)
	env = appendEnv(env, mj.Env)
	if mj.HasOutputs {
		if files.out, err = e.outParamsFile(w, j, mj, spec.Dir); err != nil {
			return spec, files, err
		}
		env = append(env, "SOMAWF_OUTPUT_PARAMS="+files.out)
	}
	if mj.UseInputParamsFile {
		in, err := w.jobFile(spec.Dir, "input_params_file", mj.InputParamsFile)
		if err != nil {
			return spec, files, err
		}
		if in == "" {
			in = absIn(spec.Dir, filepath.Join(e.paramDir(w.row.ID), fmt.Sprintf("%d.%d.in.json", j.row.ID, j.row.Attempt)))
		}
		// Written as Python's json.dump does: "parameters" first, then
		// "configuration_dict", with ", " and ": " separators.
		text := `{"parameters": ` + pyJSON(params)
		if hasConfig(mj.Configuration) {
			var conf any
			if err := json.Unmarshal(mj.Configuration, &conf); err != nil {
				return spec, files, &specError{fmt.Sprintf("configuration: %v", err)}
			}
			text += `, "configuration_dict": ` + pyJSON(conf)
		}
		files.in, files.inData = in, []byte(text+"}")
		env = append(env, "SOMAWF_INPUT_PARAMS="+in)
	}
	spec.Env = env
	return spec, files, nil
}

// jobDir is the working directory of a job: its own (relative to the
// submitter's), else the submitter's.
func (w *wfRun) jobDir(mj *model.Job) (string, error) {
	dir, err := w.jobFile(w.row.Cwd, "working_directory", mj.WorkingDirectory)
	if dir == "" && err == nil {
		dir = w.row.Cwd
	}
	return dir, err
}

// jobFile renders one of a job's file fields, made absolute against dir;
// "" when the field is not set.
func (w *wfRun) jobFile(dir, field string, a *model.Arg) (string, error) {
	if a == nil {
		return "", nil
	}
	s, err := w.renderArg(*a, nil)
	if err != nil {
		return "", &specError{fmt.Sprintf("%s: %v", field, err)}
	}
	return absIn(dir, s), nil
}

// absIn makes a relative path p absolute against dir ("" stays "").
func absIn(dir, p string) string {
	if p != "" && !filepath.IsAbs(p) {
		return filepath.Join(dir, p)
	}
	return p
}

// outParamsFile is where the current attempt of a job with outputs writes
// them: derived from the definition, the job and its attempt alone, so that
// an engine that reloads a running workflow reads the same file the
// attempt was given.
func (e *Engine) outParamsFile(w *wfRun, j *job, mj *model.Job, dir string) (string, error) {
	out, err := w.jobFile(dir, "output_params_file", mj.OutputParamsFile)
	if out == "" && err == nil {
		out = absIn(dir, filepath.Join(e.paramDir(w.row.ID), fmt.Sprintf("%d.%d.out.json", j.row.ID, j.row.Attempt)))
	}
	return out, err
}

func hasConfig(c json.RawMessage) bool {
	s := strings.TrimSpace(string(c))
	return s != "" && s != "{}" && s != "null"
}

// appendEnv adds variables in sorted order (maps have none of their own);
// later entries win, as in exec.
func appendEnv(env []string, m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		env = append(env, k+"="+m[k])
	}
	return env
}

// jobParams returns the parameters of a job: its param_dict, updated by
// parameter links from the outputs of jobs that ended.
func (e *Engine) jobParams(w *wfRun, idx int) (map[string]any, error) {
	mj := w.def.Jobs[idx]
	links := w.linksTo[idx]
	dict := mj.ParamDict
	if mj.RunsInEngine() {
		dict = engineParamDict(mj)
	}
	if len(dict) == 0 && len(links) == 0 && !hasConfig(mj.Configuration) {
		return nil, nil
	}
	params := make(map[string]any, len(dict))
	for k, v := range dict {
		var x any
		if err := json.Unmarshal(v, &x); err != nil {
			return nil, &specError{fmt.Sprintf("param_dict[%q]: %v", k, err)}
		}
		x, err := w.resolveValue(x)
		if err != nil {
			return nil, &specError{fmt.Sprintf("param_dict[%q]: %v", k, err)}
		}
		params[k] = x
	}
	for _, l := range links {
		src := w.jobs[l.Src]
		if len(src.row.OutputParams) == 0 {
			continue
		}
		var outs map[string]any
		if err := json.Unmarshal(src.row.OutputParams, &outs); err != nil {
			continue
		}
		v, ok := outs[l.SrcParam]
		if !ok {
			continue
		}
		nv, err := applyTransform(l, v, params[l.DestParam])
		if err != nil {
			return nil, &specError{fmt.Sprintf("parameter link %s.%s -> %s: %v", w.jobs[l.Src].row.Name, l.SrcParam, l.DestParam, err)}
		}
		params[l.DestParam] = nv
	}
	if hasConfig(mj.Configuration) && !mj.UseInputParamsFile {
		var conf any
		if err := json.Unmarshal(mj.Configuration, &conf); err != nil {
			return nil, &specError{fmt.Sprintf("configuration: %v", err)}
		}
		params["configuration_dict"] = pyJSON(conf)
	}
	return params, nil
}

// resolveValue replaces special-path references inside a parameter value
// (["<tuple>", "<id>", N], N a model path ID) by their engine-side paths.
func (w *wfRun) resolveValue(v any) (any, error) {
	l, ok := v.([]any)
	if !ok {
		return v, nil
	}
	if len(l) == 3 && l[0] == "<tuple>" && l[1] == "<id>" {
		if n, ok := l[2].(float64); ok {
			ref, ok := w.def.PathRefByID(int(n))
			if !ok {
				return nil, fmt.Errorf("unknown special path %v", n)
			}
			return w.resolvePath(ref)
		}
	}
	out := make([]any, len(l))
	for i, x := range l {
		r, err := w.resolveValue(x)
		if err != nil {
			return nil, err
		}
		out[i] = r
	}
	return out, nil
}

var placeholder = regexp.MustCompile(`%\(([^)]*)\)[sdfr]`)

// renderArg turns one command element into its string: literals, numbers,
// special paths (with their pattern), nested lists as Python's repr, and
// %(name)s parameter placeholders (one per element, as soma-workflow does).
func (w *wfRun) renderArg(a model.Arg, params map[string]any) (string, error) {
	switch a.Kind {
	case model.ArgString:
		s := a.Value
		if params != nil {
			if m := placeholder.FindAllStringSubmatchIndex(s, -1); len(m) == 1 {
				name := s[m[0][2]:m[0][3]]
				if v, ok := params[name]; ok {
					s = s[:m[0][0]] + paramText(v) + s[m[0][1]:]
				}
			}
		}
		return s, nil
	case model.ArgNumber:
		return a.Value, nil
	case model.ArgPath, model.ArgPathIn:
		p, err := w.resolvePath(a.Path)
		if err != nil {
			return "", err
		}
		if a.Kind == model.ArgPathIn {
			p = filepath.Join(p, a.Value)
		}
		return p, nil
	case model.ArgList:
		parts := make([]string, len(a.List))
		for i, x := range a.List {
			s, err := w.renderArg(x, params)
			if err != nil {
				return "", err
			}
			if x.Kind == model.ArgNumber || x.Kind == model.ArgList {
				parts[i] = s // numbers and nested lists are not quoted in a repr
			} else {
				parts[i] = pyQuote(s)
			}
		}
		return "[" + strings.Join(parts, ", ") + "]", nil
	}
	return "", fmt.Errorf("unknown argument kind %d", a.Kind)
}

// resolvePath gives the engine-side path of a special path: a transfer is
// its client path (this machine is the computing resource, as in
// soma-workflow's light mode), a temporary path lives in the state dir, a
// shared resource path is the translation stored at submission.
func (w *wfRun) resolvePath(r model.PathRef) (string, error) {
	var base string
	d := w.def
	switch r.Kind {
	case model.TransferPath:
		if r.Index < 0 || r.Index >= len(d.Transfers) {
			return "", fmt.Errorf("unknown file transfer %d", r.Index)
		}
		base = d.Transfers[r.Index].ClientPath
		if r.Index < len(w.tr.enginePaths) && w.tr.enginePaths[r.Index] != "" {
			base = w.tr.enginePaths[r.Index]
		}
	case model.TempPath:
		if r.Index < 0 || r.Index >= len(w.tempPaths) {
			return "", fmt.Errorf("unknown temporary path %d", r.Index)
		}
		base = w.tempPaths[r.Index]
	case model.SharedPath:
		if r.Index < 0 || r.Index >= len(d.SharedPaths) {
			return "", fmt.Errorf("unknown shared resource path %d", r.Index)
		}
		if r.Index < len(w.sharedPaths) && w.sharedPaths[r.Index] != "" {
			base = w.sharedPaths[r.Index]
			break
		}
		sp := d.SharedPaths[r.Index]
		return "", fmt.Errorf("shared resource path %q (namespace %q, uuid %q) has no translation on this resource", sp.RelativePath, sp.Namespace, sp.UUID)
	case model.OptionPathKind:
		if r.Index < 0 || r.Index >= len(d.OptionPaths) {
			return "", fmt.Errorf("unknown option path %d", r.Index)
		}
		op := d.OptionPaths[r.Index]
		var raw any
		if err := json.Unmarshal(op.ParentPath, &raw); err != nil {
			return "", fmt.Errorf("option path %q: bad parent path: %v", op.Name, err)
		}
		parent, err := w.resolveValue(raw)
		if err != nil {
			return "", fmt.Errorf("option path %q: %v", op.Name, err)
		}
		p, ok := parent.(string)
		if !ok {
			return "", fmt.Errorf("option path %q: parent path is neither a path nor a special path", op.Name)
		}
		base = p + op.URI
	default:
		return "", fmt.Errorf("unknown special path kind %d", r.Kind)
	}
	pat := r.Pattern
	if pat == "" {
		pat = "%s"
	}
	return strings.Replace(pat, "%s", base, 1), nil
}

// paramText formats a parameter value as soma-workflow does (Python str()).
func paramText(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64)
	case bool:
		if x {
			return "True"
		}
		return "False"
	case nil:
		return "None"
	default:
		return pyRepr(v)
	}
}

func pyRepr(v any) string {
	switch x := v.(type) {
	case string:
		return pyQuote(x)
	case []any:
		parts := make([]string, len(x))
		for i, e := range x {
			parts[i] = pyRepr(e)
		}
		return "[" + strings.Join(parts, ", ") + "]"
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		parts := make([]string, len(keys))
		for i, k := range keys {
			parts[i] = pyQuote(k) + ": " + pyRepr(x[k])
		}
		return "{" + strings.Join(parts, ", ") + "}"
	default:
		return paramText(v)
	}
}

// pyJSON formats a JSON value as Python's json.dumps does by default:
// ", " and ": " separators, non-ASCII escaped (keys sorted: Go maps have no
// order of their own).
func pyJSON(v any) string {
	switch x := v.(type) {
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		parts := make([]string, len(keys))
		for i, k := range keys {
			parts[i] = pyJSON(k) + ": " + pyJSON(x[k])
		}
		return "{" + strings.Join(parts, ", ") + "}"
	case []any:
		parts := make([]string, len(x))
		for i, e := range x {
			parts[i] = pyJSON(e)
		}
		return "[" + strings.Join(parts, ", ") + "]"
	case string:
		return model.PyJSONString(x)
	case nil:
		return "null"
	case bool:
		if x {
			return "true"
		}
		return "false"
	case float64:
		if x == float64(int64(x)) && x < 1e15 && x > -1e15 {
			return strconv.FormatInt(int64(x), 10)
		}
		return strconv.FormatFloat(x, 'g', -1, 64)
	}
	data, _ := json.Marshal(v)
	return string(data)
}

func pyQuote(s string) string {
	if strings.Contains(s, "'") && !strings.Contains(s, `"`) {
		return `"` + s + `"`
	}
	return "'" + strings.ReplaceAll(strings.ReplaceAll(s, `\`, `\\`), "'", `\'`) + "'"
}

func (e *Engine) logDir(wf int64) string {
	return filepath.Join(e.opts.StateDir, "logs", strconv.FormatInt(wf, 10))
}

func (e *Engine) paramDir(wf int64) string {
	return filepath.Join(e.opts.StateDir, "params", strconv.FormatInt(wf, 10))
}

// TempPathFor is the engine-side path of temporary path i (with its
// suffix) of workflow wf in a state dir: created when the workflow is
// loaded, removed with it or when it is done.
func TempPathFor(stateDir string, wf int64, i int, suffix string) string {
	return filepath.Join(stateDir, "tmp", strconv.FormatInt(wf, 10), fmt.Sprintf("tmp%d%s", i, suffix))
}

func (e *Engine) tmpDir(wf int64) string {
	return filepath.Join(e.opts.StateDir, "tmp", strconv.FormatInt(wf, 10))
}

// environ decodes the submitter's environment of a workflow.
func environ(row *store.Workflow) []string {
	var env []string
	_ = json.Unmarshal(row.Environ, &env)
	return env
}
