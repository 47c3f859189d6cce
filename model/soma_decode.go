package model

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
)

// Top-level keys of soma-workflow's JSON that DecodeSoma understands.
var somaTopKeys = map[string]bool{
	"name": true, "jobs": true, "dependencies": true, "param_links": true,
	"groups": true, "root_group": true, "serialized_groups": true,
	"serialized_jobs": true, "serialized_barriers": true,
	"serialized_file_transfers": true, "serialized_shared_res_paths": true,
	"serialized_temporary_paths": true, "serialized_option_paths": true,
	"env": true, "env_builder_code": true, "native_specification": true,
	"uuid": true,
}

type idKind int

const (
	idJob idKind = iota
	idGroup
	idTransfer
	idShared
	idTemp
	idOption
)

type idEntry struct {
	kind  idKind
	index int
}

// somaDecoder holds the state of one DecodeSoma call.
type somaDecoder struct {
	w     *Workflow
	ps    problems
	ids   map[int]idEntry
	jobID []int // file id of each job
	// file id -> model path id, for raw values
	pathModelID map[int]int
	optParents  [][]byte
}

// DecodeSoma reads a workflow in soma-workflow's JSON format (what
// Helper.serialize writes; also plain [a, b] dependencies and legacy
// serialized_barriers). Ids become slice indexes; unknown keys are kept in
// the Extra maps; what soma-workflow drops when it loads a file is dropped
// too and listed in Workflow.Warnings. A malformed file gives an error that
// names the job and field (a *ValidationError when the JSON itself is
// well-formed).
func DecodeSoma(data []byte) (*Workflow, error) {
	top, err := splitObject(data)
	if err != nil {
		return nil, fmt.Errorf("soma-workflow JSON: %w", err)
	}
	return decodeSomaTop(top)
}

func decodeSomaTop(top []kv) (*Workflow, error) {
	d := &somaDecoder{w: &Workflow{}, ids: map[int]idEntry{}, pathModelID: map[int]int{}}
	w := d.w
	get := map[string][]byte{}
	for _, p := range top {
		if _, dup := get[p.key]; dup {
			d.ps.add("", p.key, "key appears twice in the workflow object")
			continue
		}
		get[p.key] = p.val
		if !somaTopKeys[p.key] {
			raw, err := validRaw(p.val)
			if err != nil {
				d.ps.add("", p.key, "%v", err)
				continue
			}
			if w.Extra == nil {
				w.Extra = map[string]json.RawMessage{}
			}
			w.Extra[p.key] = raw
		}
	}
	if _, ok := get["serialized_jobs"]; !ok {
		d.ps.add("", "serialized_jobs", "missing: not a soma-workflow workflow")
		return nil, d.ps.err()
	}
	if v, ok := get["name"]; ok && !isNull(v) {
		s, err := parseString(v)
		if err != nil {
			d.ps.add("", "name", "%v", err)
		} else {
			w.Name = &s
		}
	}
	// "jobs" and "groups" are ignored by soma-workflow's reader; check syntax only.
	for _, k := range []string{"jobs", "groups"} {
		if v, ok := get[k]; ok {
			if _, err := validRaw(v); err != nil {
				d.ps.add("", k, "%v", err)
			}
		}
	}
	d.pathTables(get)
	d.jobs(get["serialized_jobs"], "serialized_jobs", false)
	if v, ok := get["serialized_barriers"]; ok {
		d.jobs(v, "serialized_barriers", true)
	}
	d.optionParents()
	d.groups(get)
	d.deps(get["dependencies"])
	d.links(get["param_links"])
	d.extraPaths()
	if v, ok := get["env"]; ok && !isNull(v) {
		m, err := parseStringMap(v)
		if err != nil {
			d.ps.add("", "env", "%v", err)
		} else if len(m) > 0 {
			w.Env = m
		}
	}
	if v, ok := get["env_builder_code"]; ok && !isNull(v) {
		s, err := parseString(v)
		if err != nil {
			d.ps.add("", "env_builder_code", "%v", err)
		}
		w.EnvBuilderCode = s
	}
	if v, ok := get["native_specification"]; ok {
		ns, isList, err := parseNativeSpec(v)
		if err != nil {
			d.ps.add("", "native_specification", "%v", err)
		}
		w.NativeSpecification, w.NativeSpecAsList = ns, isList
	}
	if v, ok := get["uuid"]; ok && !isNull(v) {
		s, err := parseString(v)
		if err != nil {
			d.ps.add("", "uuid", "%v", err)
		}
		w.UUID = s
	}
	if err := d.ps.err(); err != nil {
		return nil, err
	}
	return w, nil
}

func parseNativeSpec(v []byte) (NativeSpec, bool, error) {
	switch jsonKind(v) {
	case 'z':
		return nil, false, nil
	case 's':
		s, err := parseString(v)
		return NativeSpec{s}, false, err
	case 'a':
		items, err := splitArray(v)
		if err != nil {
			return nil, true, err
		}
		ns := make(NativeSpec, 0, len(items))
		for i, it := range items {
			s, err := parseString(it)
			if err != nil {
				return nil, true, fmt.Errorf("item %d: %w", i, err)
			}
			ns = append(ns, s)
		}
		return ns, true, nil
	}
	return nil, false, fmt.Errorf("expected a string, a list of strings or null, got %s", describe(v))
}

// register records a file id; it reports duplicates.
func (d *somaDecoder) register(key, table string, e idEntry) (int, bool) {
	id, err := strconv.Atoi(key)
	if err != nil {
		d.ps.add("", table, "id %q is not an integer", key)
		return 0, false
	}
	if _, dup := d.ids[id]; dup {
		d.ps.add("", table, "duplicated id %d", id)
		return id, false
	}
	d.ids[id] = e
	return id, true
}

// pathTables reads the four special-path tables.
func (d *somaDecoder) pathTables(get map[string][]byte) {
	w := d.w
	type table struct {
		key  string
		kind idKind
	}
	for _, t := range []table{
		{"serialized_file_transfers", idTransfer},
		{"serialized_shared_res_paths", idShared},
		{"serialized_temporary_paths", idTemp},
		{"serialized_option_paths", idOption},
	} {
		v, ok := get[t.key]
		if !ok || isNull(v) {
			continue
		}
		kvs, err := splitObject(v)
		if err != nil {
			d.ps.add("", t.key, "%v", err)
			continue
		}
		for _, p := range kvs {
			where := t.key + "." + p.key
			var idx int
			switch t.kind {
			case idTransfer:
				idx = len(w.Transfers)
			case idShared:
				idx = len(w.SharedPaths)
			case idTemp:
				idx = len(w.TempPaths)
			case idOption:
				idx = len(w.OptionPaths)
			}
			fields, err := splitObject(p.val)
			if err != nil {
				d.ps.add("", where, "%v", err)
				continue
			}
			id, ok := d.register(p.key, t.key, idEntry{t.kind, idx})
			if !ok {
				continue
			}
			pe := &pathEntry{d: d, where: where}
			switch t.kind {
			case idTransfer:
				w.Transfers = append(w.Transfers, pe.transfer(fields))
			case idShared:
				w.SharedPaths = append(w.SharedPaths, pe.shared(fields))
			case idTemp:
				w.TempPaths = append(w.TempPaths, pe.temp(fields))
			case idOption:
				o, parent := pe.option(fields)
				w.OptionPaths = append(w.OptionPaths, o)
				d.optParents = append(d.optParents, parent)
			}
			_ = id
		}
	}
	// model path ids, now that table sizes are known
	for id, e := range d.ids {
		switch e.kind {
		case idTransfer:
			d.pathModelID[id] = w.PathID(PathRef{Kind: TransferPath, Index: e.index})
		case idShared:
			d.pathModelID[id] = w.PathID(PathRef{Kind: SharedPath, Index: e.index})
		case idTemp:
			d.pathModelID[id] = w.PathID(PathRef{Kind: TempPath, Index: e.index})
		case idOption:
			d.pathModelID[id] = w.PathID(PathRef{Kind: OptionPathKind, Index: e.index})
		}
	}
}

// optionParents resolves OptionPath parents that are references.
func (d *somaDecoder) optionParents() {
	for i, o := range d.w.OptionPaths {
		raw := d.optParents[i]
		if raw == nil || isNull(raw) {
			continue // absent and null are both None in soma-workflow
		}
		if jsonKind(raw) != 'a' {
			o.ParentPath = raw
			continue
		}
		// Path references in an array are model ids in the model, whatever
		// the parent type says (the encoder renumbers them all alike).
		r, err := d.rawPaths(raw)
		if err != nil {
			d.ps.add("", "serialized_option_paths", "parent_path: %v", err)
		}
		o.ParentPath = r
	}
}

// extraPaths rewrites the file ids of path references kept in unknown keys
// (Extra maps) to model ids, as for every other raw value, so that they
// still name the same entries once the encoder renumbers the tables.
func (d *somaDecoder) extraPaths() {
	fix := func(where string, m map[string]json.RawMessage) {
		for _, k := range sortedKeys(m) {
			r, err := d.rawPaths(m[k])
			if err != nil {
				d.ps.add(where, k, "%v", err)
				continue
			}
			m[k] = r
		}
	}
	w := d.w
	fix("", w.Extra)
	for i := range w.Jobs {
		fix(w.JobLabel(i), w.Jobs[i].Extra)
	}
	for i := range w.Groups {
		fix(fmt.Sprintf("group %d", i), w.Groups[i].Extra)
	}
	for i := range w.Transfers {
		fix(fmt.Sprintf("file transfer %d", i), w.Transfers[i].Extra)
	}
	for i := range w.SharedPaths {
		fix(fmt.Sprintf("shared path %d", i), w.SharedPaths[i].Extra)
	}
	for i := range w.TempPaths {
		fix(fmt.Sprintf("temporary path %d", i), w.TempPaths[i].Extra)
	}
	for i := range w.OptionPaths {
		fix(fmt.Sprintf("option path %d", i), w.OptionPaths[i].Extra)
	}
}

// rawPaths rewrites file ids of path references in a raw value to model ids.
func (d *somaDecoder) rawPaths(raw []byte) (json.RawMessage, error) {
	return mapPathIDs(raw, func(n int) (int, error) {
		m, ok := d.pathModelID[n]
		if !ok {
			return 0, unknownPathErr(n)
		}
		return m, nil
	})
}

// pathEntry decodes one special-path table entry.
type pathEntry struct {
	d     *somaDecoder
	where string
}

// pattern reads a path's pattern; "" is the default "%s", as the encoder
// writes it (soma-workflow cannot format a path with an empty pattern).
func (pe *pathEntry) pattern(v []byte, key string) string {
	if p := pe.str(v, key); p != "" {
		return p
	}
	return "%s"
}

func (pe *pathEntry) bad(key string, err error) {
	pe.d.ps.add("", pe.where+"."+key, "%v", err)
}

func (pe *pathEntry) str(v []byte, key string) string {
	s, err := parseString(v)
	if err != nil {
		pe.bad(key, err)
	}
	return s
}

func (pe *pathEntry) timeout(v []byte, key string) *int {
	if isNull(v) {
		return nil
	}
	n, err := parseInt(v)
	if err != nil {
		pe.bad(key, err)
	}
	return &n
}

func (pe *pathEntry) extra(m *map[string]json.RawMessage, key string, v []byte) {
	raw, err := validRaw(v)
	if err != nil {
		pe.bad(key, err)
		return
	}
	if *m == nil {
		*m = map[string]json.RawMessage{}
	}
	(*m)[key] = raw
}

func dflt168() *int { n := DefaultDisposalTimeout; return &n }

func (pe *pathEntry) transfer(fields []kv) *FileTransfer {
	t := &FileTransfer{InitialStatus: TransferOnClientSide, DisposalTimeout: dflt168(), Pattern: "%s"}
	hasName := false
	for _, f := range fields {
		switch f.key {
		case "client_path":
			t.ClientPath = pe.str(f.val, f.key)
		case "client_paths":
			if isNull(f.val) {
				t.ClientPaths = nil
				continue
			}
			items, err := splitArray(f.val)
			if err != nil {
				pe.bad(f.key, err)
				continue
			}
			t.ClientPaths = make([]string, 0, len(items))
			for _, it := range items {
				t.ClientPaths = append(t.ClientPaths, pe.str(it, f.key))
			}
		case "initial_status":
			t.InitialStatus = pe.str(f.val, f.key)
		case "disposal_timeout":
			t.DisposalTimeout = pe.timeout(f.val, f.key)
		case "name":
			t.Name = pe.str(f.val, f.key)
			hasName = true
		case "pattern":
			t.Pattern = pe.pattern(f.val, f.key)
		default:
			pe.extra(&t.Extra, f.key, f.val)
		}
	}
	if !hasName {
		t.Name = t.ClientPath + "transfer"
	}
	return t
}

func (pe *pathEntry) shared(fields []kv) *SharedResourcePath {
	s := &SharedResourcePath{DisposalTimeout: dflt168(), Pattern: "%s"}
	for _, f := range fields {
		switch f.key {
		case "relative_path":
			s.RelativePath = pe.str(f.val, f.key)
		case "namespace":
			s.Namespace = pe.str(f.val, f.key)
		case "uuid":
			s.UUID = pe.str(f.val, f.key)
		case "disposal_timeout":
			s.DisposalTimeout = pe.timeout(f.val, f.key)
		case "pattern":
			s.Pattern = pe.pattern(f.val, f.key)
		default:
			pe.extra(&s.Extra, f.key, f.val)
		}
	}
	return s
}

func (pe *pathEntry) temp(fields []kv) *TemporaryPath {
	t := &TemporaryPath{DisposalTimeout: dflt168(), Name: "temporary", Pattern: "%s"}
	for _, f := range fields {
		switch f.key {
		case "is_directory":
			b, err := parseBool(f.val)
			if err != nil {
				pe.bad(f.key, err)
			}
			t.IsDirectory = b
		case "disposal_timeout":
			t.DisposalTimeout = pe.timeout(f.val, f.key)
		case "name":
			t.Name = pe.str(f.val, f.key)
		case "suffix":
			t.Suffix = pe.str(f.val, f.key)
		case "pattern":
			t.Pattern = pe.pattern(f.val, f.key)
		default:
			pe.extra(&t.Extra, f.key, f.val)
		}
	}
	return t
}

func (pe *pathEntry) option(fields []kv) (*OptionPath, []byte) {
	o := &OptionPath{ParentType: "str", Pattern: "%s"}
	var parent []byte
	for _, f := range fields {
		switch f.key {
		case "parent_type":
			o.ParentType = pe.str(f.val, f.key)
		case "parent_path":
			raw, err := validRaw(f.val)
			if err != nil {
				pe.bad(f.key, err)
				continue
			}
			parent = raw
		case "uri":
			o.URI = pe.str(f.val, f.key)
		case "name":
			o.Name = pe.str(f.val, f.key)
		case "pattern":
			o.Pattern = pe.pattern(f.val, f.key)
		default:
			pe.extra(&o.Extra, f.key, f.val)
		}
	}
	return o, parent
}

// normaliseClass maps the spellings soma-workflow accepts for its two job
// classes to their full names.
func normaliseClass(c string) string {
	switch c {
	case "Job", "soma_workflow.client.Job", ClassJob:
		return ClassJob
	case "BarrierJob", "soma_workflow.client.BarrierJob", ClassBarrier:
		return ClassBarrier
	}
	return c
}

// jobs reads serialized_jobs (or legacy serialized_barriers).
func (d *somaDecoder) jobs(v []byte, table string, barriers bool) {
	kvs, err := splitObject(v)
	if err != nil {
		d.ps.add("", table, "%v", err)
		return
	}
	if d.w.Jobs == nil {
		d.w.Jobs = make([]*Job, 0, len(kvs))
		d.jobID = make([]int, 0, len(kvs))
	}
	for _, p := range kvs {
		fields, err := splitObject(p.val)
		if err != nil {
			d.ps.add("id "+p.key, table, "%v", err)
			continue
		}
		id, ok := d.register(p.key, table, idEntry{idJob, len(d.w.Jobs)})
		if !ok {
			continue
		}
		j := d.job(fields, "id "+p.key, barriers)
		d.w.Jobs = append(d.w.Jobs, j)
		d.jobID = append(d.jobID, id)
	}
}

// jobDecoder decodes one job object.
type jobDecoder struct {
	d     *somaDecoder
	label string
}

func (jd *jobDecoder) bad(field string, err error) {
	jd.d.ps.add(jd.label, field, "%v", err)
}

func (d *somaDecoder) job(fields []kv, label string, barrier bool) *Job {
	j := &Job{}
	jd := &jobDecoder{d: d, label: label}
	seenKey := func(k int) bool {
		for _, f := range fields[:k] {
			if f.key == fields[k].key {
				return true
			}
		}
		return false
	}
	for _, f := range fields {
		if f.key == "name" {
			if s, err := parseString(f.val); err == nil {
				jd.label = s
			}
		}
		if f.key == "class" {
			s, err := parseString(f.val)
			if err != nil {
				jd.bad("class", err)
			}
			j.Class = normaliseClass(s)
		}
	}
	if barrier && j.Class == "" {
		j.Class = ClassBarrier
	}
	full := j.Class == "" || j.Class == ClassJob
	hasName := false
	hasCommand := false
	for k, f := range fields {
		if seenKey(k) {
			jd.bad(f.key, fmt.Errorf("key appears twice"))
			continue
		}
		switch f.key {
		case "class":
			continue
		case "name":
			hasName = true
			if !isNull(f.val) {
				s, err := parseString(f.val)
				if err != nil {
					jd.bad(f.key, err)
				}
				j.Name = &s
			}
			continue
		case "disposal_timeout":
			n, err := parseInt(f.val)
			if err != nil {
				jd.bad(f.key, err)
			}
			j.DisposalTimeout = &n
			continue
		case "referenced_input_files", "referenced_output_files":
			if isNull(f.val) {
				continue
			}
			args := jd.argList(f.val, f.key, false)
			if f.key == "referenced_input_files" {
				j.ReferencedInputFiles = args
			} else {
				j.ReferencedOutputFiles = args
			}
			continue
		}
		if !full {
			jd.extra(j, f)
			continue
		}
		switch f.key {
		case "join_stderrout":
			j.JoinStderrout = jd.bool(f)
		case "use_input_params_file":
			j.UseInputParamsFile = jd.bool(f)
		case "has_outputs":
			j.HasOutputs = jd.bool(f)
		case "priority":
			n, err := parseInt(f.val)
			if err != nil {
				jd.bad(f.key, err)
			}
			j.Priority = n
		case "resources": // somaflow's extension, as "retries"
			if isNull(f.val) {
				continue
			}
			var r struct {
				CPUs     int   `json:"cpus"`
				MemoryMB int64 `json:"memory_mb"`
				Walltime int64 `json:"walltime_s"`
				GPUs     int   `json:"gpus"`
			}
			dec := json.NewDecoder(bytes.NewReader(f.val))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&r); err != nil {
				jd.bad(f.key, err)
			}
			j.Resources = Resources{CPUs: r.CPUs, MemoryMB: r.MemoryMB, Walltime: r.Walltime, GPUs: r.GPUs}
		case "retries": // somaflow's extension; soma-workflow keeps it as an attribute
			n, err := parseInt(f.val)
			if err != nil {
				jd.bad(f.key, err)
			}
			j.Retries = n
		case "native_specification":
			ns, isList, err := parseNativeSpec(f.val)
			if err != nil {
				jd.bad(f.key, err)
			}
			j.NativeSpecification, j.NativeSpecAsList = ns, isList
		case "parallel_job_info":
			if isNull(f.val) {
				continue
			}
			var pji ParallelJobInfo
			dec := json.NewDecoder(bytes.NewReader(f.val))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&pji); err != nil {
				jd.bad(f.key, err)
			}
			j.ParallelJobInfo = &pji
		case "env":
			if isNull(f.val) {
				continue
			}
			m, err := parseStringMap(f.val)
			if err != nil {
				jd.bad(f.key, err)
			}
			j.Env = m
		case "configuration":
			raw, err := validRaw(f.val)
			if err != nil {
				jd.bad(f.key, err)
			}
			j.Configuration = raw
		case "uuid":
			if isNull(f.val) {
				continue
			}
			s, err := parseString(f.val)
			if err != nil {
				jd.bad(f.key, err)
			}
			j.UUID = s
		case "command":
			hasCommand = true
			j.Command = jd.argList(f.val, f.key, true)
			if j.Command == nil {
				j.Command = []Arg{}
			}
		case "stdin", "stdout_file", "stderr_file", "working_directory",
			"input_params_file", "output_params_file":
			if isNull(f.val) {
				continue
			}
			a, err := d.arg(f.val, false)
			if err != nil {
				jd.bad(f.key, err)
				continue
			}
			switch f.key {
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
		case "param_dict":
			if isNull(f.val) {
				continue
			}
			kvs, err := splitObject(f.val)
			if err != nil {
				jd.bad(f.key, err)
				continue
			}
			j.ParamDict = make(map[string]json.RawMessage, len(kvs))
			for _, p := range kvs {
				raw, err := validRaw(p.val)
				if err == nil {
					raw, err = d.rawPaths(raw)
				}
				if err != nil {
					jd.bad("param_dict."+p.key, err)
					continue
				}
				if _, dup := j.ParamDict[p.key]; dup {
					jd.bad("param_dict."+p.key, fmt.Errorf("key appears twice"))
				}
				j.ParamDict[p.key] = raw
			}
		case "user_storage":
			raw, err := validRaw(f.val)
			if err != nil {
				jd.bad(f.key, err)
			}
			j.UserStorage = raw
		default:
			jd.extra(j, f)
		}
	}
	if full && !hasCommand {
		jd.bad("command", fmt.Errorf("missing (soma-workflow cannot load a job without it)"))
	}
	if full && !hasName && len(j.Command) > 0 {
		// soma-workflow's Job() names a job after argv[0] when it has no name
		if a := j.Command[0]; a.Kind == ArgString || a.Kind == ArgNumber {
			s := a.Value
			j.Name = &s
		}
	}
	return j
}

func (jd *jobDecoder) bool(f kv) bool {
	b, err := parseBool(f.val)
	if err != nil {
		jd.bad(f.key, err)
	}
	return b
}

func (jd *jobDecoder) extra(j *Job, f kv) {
	raw, err := validRaw(f.val)
	if err != nil {
		jd.bad(f.key, err)
		return
	}
	if j.Extra == nil {
		j.Extra = map[string]json.RawMessage{}
	}
	j.Extra[f.key] = raw
}

// argList decodes a JSON array of arguments; listOK says whether an element
// may itself be a list (a command argument may; a referenced file may not).
func (jd *jobDecoder) argList(v []byte, field string, listOK bool) []Arg {
	items, err := splitArray(v)
	if err != nil {
		jd.bad(field, err)
		return nil
	}
	args := make([]Arg, 0, len(items))
	for i, it := range items {
		a, err := jd.d.arg(it, listOK)
		if err != nil {
			jd.bad(field+"["+strconv.Itoa(i)+"]", err)
			continue
		}
		args = append(args, a)
	}
	return args
}

// arg decodes a command element or a file field.
func (d *somaDecoder) arg(v []byte, listOK bool) (Arg, error) {
	switch jsonKind(v) {
	case 's':
		s, err := parseString(v)
		return Arg{Kind: ArgString, Value: s}, err
	case 'n':
		if !json.Valid(v) {
			return Arg{}, fmt.Errorf("bad number %q", truncate(string(v), 40))
		}
		return Arg{Kind: ArgNumber, Value: string(bytes.TrimSpace(v))}, nil
	case 'a':
		items, isTuple, err := tupleItems(v, true)
		if err != nil {
			return Arg{}, err
		}
		if isTuple {
			if n, ok := pathRefID(v); ok {
				r, err := d.pathRef(n)
				return Arg{Kind: ArgPath, Path: r}, err
			}
			if len(items) == 2 {
				if n, ok := pathRefID(items[0]); ok {
					r, err := d.pathRef(n)
					if err != nil {
						return Arg{}, err
					}
					name, err := parseString(items[1])
					if err != nil {
						return Arg{}, fmt.Errorf("file name in a (path, name) pair: %w", err)
					}
					return Arg{Kind: ArgPathIn, Path: r, Value: name}, nil
				}
			}
			return Arg{}, fmt.Errorf("unsupported tuple %s (expected a special path reference or a (path, name) pair)", truncate(string(v), 60))
		}
		if !listOK {
			return Arg{}, fmt.Errorf("expected a string or a special path reference, got a list")
		}
		list := make([]Arg, 0, len(items))
		for i, it := range items {
			a, err := d.arg(it, true)
			if err != nil {
				return Arg{}, fmt.Errorf("item %d: %w", i, err)
			}
			list = append(list, a)
		}
		return Arg{Kind: ArgList, List: list}, nil
	}
	return Arg{}, fmt.Errorf("expected a string, a number, a list or a special path reference, got %s", describe(v))
}

func (d *somaDecoder) pathRef(n int) (PathRef, error) {
	m, ok := d.pathModelID[n]
	if !ok {
		return PathRef{}, unknownPathErr(n)
	}
	r, _ := d.w.PathRefByID(m)
	return r, nil
}

func (d *somaDecoder) jobLabel(i int) string {
	j := d.w.Jobs[i]
	if j.Name != nil {
		return *j.Name
	}
	return "id " + strconv.Itoa(d.jobID[i])
}

// groups rebuilds groups as soma-workflow's reader does: a group is kept
// when all its elements are known (sub-groups resolved first) and it can be
// reached from root_group; the others are dropped with a warning.
func (d *somaDecoder) groups(get map[string][]byte) {
	w := d.w
	type rawGroup struct {
		id       int
		name     string
		elements []int
		extra    map[string]json.RawMessage
	}
	raws := map[int]*rawGroup{}
	var order []int
	if v, ok := get["serialized_groups"]; ok && !isNull(v) {
		kvs, err := splitObject(v)
		if err != nil {
			d.ps.add("", "serialized_groups", "%v", err)
		}
		for _, p := range kvs {
			where := "serialized_groups." + p.key
			fields, err := splitObject(p.val)
			if err != nil {
				d.ps.add("", where, "%v", err)
				continue
			}
			id, ok := d.register(p.key, "serialized_groups", idEntry{idGroup, -1})
			if !ok {
				continue
			}
			g := &rawGroup{id: id}
			hasElems := false
			for _, f := range fields {
				switch f.key {
				case "name":
					s, err := parseString(f.val)
					if err != nil {
						d.ps.add("", where+".name", "%v", err)
					}
					g.name = s
				case "elements":
					hasElems = true
					items, err := splitArray(f.val)
					if err != nil {
						d.ps.add("", where+".elements", "%v", err)
						continue
					}
					for _, it := range items {
						n, err := parseInt(it)
						if err != nil {
							d.ps.add("", where+".elements", "%v", err)
							continue
						}
						g.elements = append(g.elements, n)
					}
				default:
					raw, err := validRaw(f.val)
					if err != nil {
						d.ps.add("", where+"."+f.key, "%v", err)
						continue
					}
					if g.extra == nil {
						g.extra = map[string]json.RawMessage{}
					}
					g.extra[f.key] = raw
				}
			}
			if !hasElems {
				d.ps.add("", where, "missing elements")
			}
			raws[id] = g
			order = append(order, id)
		}
	}
	// resolve like Workflow.from_dict: repeat until stuck
	resolved := map[int]bool{}
	for {
		progress := false
		for _, id := range order {
			if resolved[id] {
				continue
			}
			ok := true
			for _, e := range raws[id].elements {
				ent, known := d.ids[e]
				if known && ent.kind == idJob {
					continue
				}
				if known && ent.kind == idGroup && resolved[e] {
					continue
				}
				ok = false
				break
			}
			if ok {
				resolved[id] = true
				progress = true
			}
		}
		if !progress {
			break
		}
	}
	for _, id := range order {
		if !resolved[id] {
			w.Warnings = append(w.Warnings, Problem{Field: "serialized_groups",
				Msg: fmt.Sprintf("group %q (id %d) names an unknown element or contains itself: dropped, as soma-workflow does", raws[id].name, id)})
		}
	}
	// root group
	var rootIDs []int
	if v, ok := get["root_group"]; ok && !isNull(v) {
		items, err := splitArray(v)
		if err != nil {
			d.ps.add("", "root_group", "%v", err)
		}
		for _, it := range items {
			n, err := parseInt(it)
			if err != nil {
				d.ps.add("", "root_group", "%v", err)
				continue
			}
			rootIDs = append(rootIDs, n)
		}
	}
	groupIndex := map[int]int{}
	var elem func(id int) Element
	elem = func(id int) Element {
		if resolved[id] {
			return Element{Kind: GroupElement, Index: groupIndex[id]}
		}
		return Element{Kind: JobElement, Index: d.ids[id].index}
	}
	// groups in the order soma-workflow's Workflow() lists them: a stack
	// walk from the root group
	var stack []int
	for _, id := range rootIDs {
		if resolved[id] {
			stack = append(stack, id)
		}
	}
	var walk []int
	for len(stack) > 0 {
		id := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if _, seen := groupIndex[id]; seen {
			continue
		}
		groupIndex[id] = len(walk)
		walk = append(walk, id)
		for _, e := range raws[id].elements {
			if resolved[e] {
				stack = append(stack, e)
			}
		}
	}
	for _, id := range walk {
		g := raws[id]
		gg := &Group{Name: g.name, Extra: g.extra, Elements: make([]Element, 0, len(g.elements))}
		for _, e := range g.elements {
			gg.Elements = append(gg.Elements, elem(e))
		}
		w.Groups = append(w.Groups, gg)
	}
	for _, id := range order {
		if _, ok := groupIndex[id]; !ok && resolved[id] {
			w.Warnings = append(w.Warnings, Problem{Field: "serialized_groups",
				Msg: fmt.Sprintf("group %q (id %d) is not reachable from root_group: dropped, as soma-workflow does", raws[id].name, id)})
		}
	}
	for _, id := range rootIDs {
		ent, known := d.ids[id]
		switch {
		case resolved[id]:
			w.Root = append(w.Root, elem(id))
		case known && ent.kind == idJob:
			w.Root = append(w.Root, elem(id))
		default:
			w.Warnings = append(w.Warnings, Problem{Field: "root_group",
				Msg: fmt.Sprintf("unknown id %d skipped, as soma-workflow does", id)})
		}
	}
}

// jobRef resolves a job id of a dependency or a link.
func (d *somaDecoder) jobRef(v []byte, field string) (int, bool) {
	n, err := parseInt(v)
	if err != nil {
		d.ps.add("", field, "%v", err)
		return 0, false
	}
	ent, ok := d.ids[n]
	if !ok || ent.kind != idJob {
		d.ps.add("", field, "dependency on unknown job id %d", n)
		return 0, false
	}
	return ent.index, true
}

func (d *somaDecoder) deps(v []byte) {
	if v == nil || isNull(v) {
		return
	}
	items, err := splitArray(v)
	if err != nil {
		d.ps.add("", "dependencies", "%v", err)
		return
	}
	d.w.Dependencies = make([]Dependency, 0, len(items))
	for i, it := range items {
		field := "dependencies[" + strconv.Itoa(i) + "]"
		pair, _, err := tupleItems(it, true)
		if err == nil && len(pair) != 2 {
			err = fmt.Errorf("expected two job ids, got %d items", len(pair))
		}
		if err != nil {
			d.ps.add("", field, "%v", err)
			continue
		}
		a, ok1 := d.jobRef(pair[0], field)
		b, ok2 := d.jobRef(pair[1], field)
		if ok1 && ok2 {
			d.w.Dependencies = append(d.w.Dependencies, Dependency{
				From: Element{Kind: JobElement, Index: a}, To: Element{Kind: JobElement, Index: b}})
		}
	}
}

func (d *somaDecoder) links(v []byte) {
	if v == nil || isNull(v) {
		return
	}
	dests, err := splitObject(v)
	if err != nil {
		d.ps.add("", "param_links", "%v", err)
		return
	}
	for _, dp := range dests {
		field := "param_links." + dp.key
		n, err := strconv.Atoi(dp.key)
		ent, ok := d.ids[n]
		if err != nil || !ok || ent.kind != idJob {
			d.ps.add("", field, "link to unknown job id %q", dp.key)
			continue
		}
		params, err := splitObject(dp.val)
		if err != nil {
			d.ps.add(d.jobLabel(ent.index), field, "%v", err)
			continue
		}
		for _, pp := range params {
			pfield := field + "." + pp.key
			links, err := splitArray(pp.val)
			if err != nil {
				d.ps.add(d.jobLabel(ent.index), pfield, "%v", err)
				continue
			}
			for _, l := range links {
				items, _, err := tupleItems(l, true)
				if err == nil && (len(items) < 2 || len(items) > 3) {
					err = fmt.Errorf("expected (source job id, parameter[, transform]), got %d items", len(items))
				}
				if err != nil {
					d.ps.add(d.jobLabel(ent.index), pfield, "%v", err)
					continue
				}
				src, ok := d.jobRef(items[0], pfield)
				if !ok {
					continue
				}
				sp, err := parseString(items[1])
				if err != nil {
					d.ps.add(d.jobLabel(ent.index), pfield, "source parameter: %v", err)
					continue
				}
				pl := ParamLink{Dest: ent.index, DestParam: pp.key, Src: src, SrcParam: sp}
				if len(items) == 3 {
					t, err := d.transform(items[2])
					if err != nil {
						d.ps.add(d.jobLabel(ent.index), pfield, "transform: %v", err)
						continue
					}
					pl.Transform = t
				}
				d.w.ParamLinks = append(d.w.ParamLinks, pl)
			}
		}
	}
}

func (d *somaDecoder) transform(v []byte) (*LinkTransform, error) {
	switch jsonKind(v) {
	case 's':
		s, err := parseString(v)
		return &LinkTransform{Name: s}, err
	case 'a':
		items, _, err := tupleItems(v, true)
		if err != nil {
			return nil, err
		}
		if len(items) == 0 {
			return nil, fmt.Errorf("empty")
		}
		name, err := parseString(items[0])
		if err != nil {
			return nil, fmt.Errorf("function name: %w", err)
		}
		t := &LinkTransform{Name: name, Tuple: true}
		for _, a := range items[1:] {
			raw, err := validRaw(a)
			if err == nil {
				raw, err = d.rawPaths(raw)
			}
			if err != nil {
				return nil, err
			}
			t.Args = append(t.Args, raw)
		}
		return t, nil
	}
	return nil, fmt.Errorf("expected a function name or a (name, args...) tuple, got %s", describe(v))
}
