package dashboard

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"

	"github.com/somaflow/somaflow/client"
	"github.com/somaflow/somaflow/model"
)

// logTail is how much of the end of each log a job page shows.
const logTail = 64 << 10

// jobView is one job's page: its outcome, what it runs and where, its
// attempts and the tails of the logs of the attempt shown.
type jobView struct {
	Row        jobRow
	Anchor     string
	Command    []string
	Shell      string
	Barrier    bool
	Env        []envVar
	WorkingDir string
	WorkingSrc string
	Retries    int
	Attempt    int
	Attempts   []attemptView
	Logs       []logView
	Raw        []envVar
}

type envVar struct{ Name, Value, From string }

type attemptView struct {
	N        int
	Href     string
	Selected bool
	Latest   bool
}

type logView struct {
	Name, Path string
	Text       string
	Cut        bool
	Shared     bool // the job writes every attempt to this file
	Note       string
}

// job reads one job of workflow wid for its page, with the last tail bytes
// of the logs of attempt (0: the latest).
func (s *Server) job(ctx context.Context, wid, jid int64, attempt int, tail int64) (*jobView, client.WorkflowHeader, error) {
	var h client.WorkflowHeader
	owner, index, err := s.c.JobPlace(ctx, jid)
	if err != nil {
		return nil, h, err
	}
	if owner != wid {
		return nil, h, fmt.Errorf("workflow %d has no job %d: %w", wid, jid, client.ErrUnknownObject)
	}
	infos, err := s.c.Workflows(ctx, wid)
	if err != nil {
		return nil, h, err
	}
	h = infos[0].Header()
	doc, err := s.c.JobTerminationStatus(ctx, jid)
	if err != nil {
		return nil, h, err
	}
	de, err := s.definition(ctx, wid, deref(h.Submitted))
	if err != nil {
		return nil, h, err
	}
	cwd, err := s.c.WorkflowCwd(ctx, wid)
	if err != nil {
		return nil, h, err
	}
	one := &snapshot{doc: &client.WorkflowDoc{Jobs: []client.JobDoc{*doc}}, cats: []category{categoryOf(doc)}}
	v := &jobView{Row: rowOf(one, 0, s.opts.Now()), Anchor: "job-" + doc.ID}
	describe(v, de.def, index, cwd)
	for k, val := range doc.ResourceUsage.Raw {
		v.Raw = append(v.Raw, envVar{Name: k, Value: val})
	}
	sort.Slice(v.Raw, func(a, b int) bool { return v.Raw[a].Name < v.Raw[b].Name })
	v.Attempt = doc.Attempt
	if attempt >= 1 && attempt <= doc.Attempt {
		v.Attempt = attempt
	}
	for k := 1; k <= doc.Attempt; k++ {
		v.Attempts = append(v.Attempts, attemptView{N: k, Selected: k == v.Attempt, Latest: k == doc.Attempt})
	}
	v.Logs = logsOf(doc, v.Attempt, tail)
	return v, h, nil
}

// describe fills what the definition says of job i: command, environment
// (the workflow's and the job's own; the job also gets the submitter's
// environment, not shown), working directory, retries.
func describe(v *jobView, def *model.Workflow, i int, cwd string) {
	if i < 0 || i >= len(def.Jobs) || def.Jobs[i] == nil {
		return
	}
	j := def.Jobs[i]
	v.Barrier = j.NoProcess()
	v.Shell = j.Shell
	for _, a := range j.Command {
		v.Command = append(v.Command, argText(def, a))
	}
	env := map[string]envVar{}
	for k, val := range def.Env {
		env[k] = envVar{k, val, "workflow"}
	}
	for k, val := range j.Env {
		env[k] = envVar{k, val, "job"}
	}
	for _, e := range env {
		v.Env = append(v.Env, e)
	}
	sort.Slice(v.Env, func(a, b int) bool { return v.Env[a].Name < v.Env[b].Name })
	v.WorkingDir, v.WorkingSrc = cwd, "the submitter's working directory"
	if j.WorkingDirectory != nil {
		v.WorkingDir, v.WorkingSrc = argText(def, *j.WorkingDirectory), "the job's working_directory"
	}
	v.Retries = j.Retries
}

// argText shows one command argument: its text, or what special path it
// names.
func argText(def *model.Workflow, a model.Arg) string {
	switch a.Kind {
	case model.ArgPath, model.ArgPathIn:
		p := pathText(def, a.Path)
		if a.Kind == model.ArgPathIn {
			p += "/" + a.Value
		}
		return p
	case model.ArgList:
		parts := make([]string, len(a.List))
		for i, x := range a.List {
			parts[i] = argText(def, x)
		}
		return "[" + strings.Join(parts, ", ") + "]"
	}
	return a.Value
}

func pathText(def *model.Workflow, p model.PathRef) string {
	switch p.Kind {
	case model.TransferPath:
		if p.Index >= 0 && p.Index < len(def.Transfers) {
			return def.Transfers[p.Index].ClientPath
		}
	case model.SharedPath:
		if p.Index >= 0 && p.Index < len(def.SharedPaths) {
			sp := def.SharedPaths[p.Index]
			return "<shared " + sp.Namespace + ":" + sp.RelativePath + ">"
		}
	case model.TempPath:
		if p.Index >= 0 && p.Index < len(def.TempPaths) {
			return "<temporary path " + def.TempPaths[p.Index].Name + ">"
		}
	case model.OptionPathKind:
		if p.Index >= 0 && p.Index < len(def.OptionPaths) {
			return "<option path " + def.OptionPaths[p.Index].Name + ">"
		}
	}
	return "<path>"
}

// logsOf reads the tails of a job's stdout and stderr for attempt k. The
// engine names its own log files by job and attempt (JOB.ATTEMPT.out); a
// job writing to a file of its own has one file for every attempt.
func logsOf(doc *client.JobDoc, k int, tail int64) []logView {
	var out []logView
	for _, p := range []struct {
		name string
		path *string
	}{{"stdout", doc.Stdout}, {"stderr", doc.Stderr}} {
		if p.path == nil {
			continue
		}
		if p.name == "stderr" && doc.Stdout != nil && *doc.Stdout == *p.path {
			continue // joined with stdout
		}
		lv := logView{Name: p.name, Path: *p.path}
		dir, base := filepath.Split(*p.path)
		ext := filepath.Ext(base)
		if base == doc.ID+"."+strconv.Itoa(doc.Attempt)+ext && (ext == ".out" || ext == ".err") {
			lv.Path = filepath.Join(dir, doc.ID+"."+strconv.Itoa(k)+ext)
		} else if doc.Attempt > 1 {
			lv.Shared = true
		}
		text, cut, err := readTail(lv.Path, tail)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			lv.Note = "no such file (nothing written)"
		case err != nil:
			lv.Note = err.Error()
		}
		lv.Text, lv.Cut = text, cut
		out = append(out, lv)
	}
	return out
}

// readTail reads at most the last n bytes of a regular file, as valid
// UTF-8 text. It never blocks on a FIFO nor follows a device.
func readTail(path string, n int64) (string, bool, error) {
	// Not even opened unless it is a regular file (opening some devices
	// acts on them).
	if fi, err := os.Stat(path); err != nil {
		return "", false, err
	} else if !fi.Mode().IsRegular() {
		return "", false, fmt.Errorf("%s is not a regular file: not shown", path)
	}
	fd, err := syscall.Open(path, syscall.O_RDONLY|syscall.O_NONBLOCK|syscall.O_CLOEXEC|syscall.O_NOCTTY, 0)
	if err != nil {
		return "", false, &fs.PathError{Op: "open", Path: path, Err: err}
	}
	f := os.NewFile(uintptr(fd), path)
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return "", false, err
	}
	if !fi.Mode().IsRegular() {
		return "", false, fmt.Errorf("%s is not a regular file: not shown", path)
	}
	start, cut := int64(0), false
	if fi.Size() > n {
		start, cut = fi.Size()-n, true
	}
	buf := make([]byte, fi.Size()-start)
	k, err := f.ReadAt(buf, start)
	if err != nil && !errors.Is(err, io.EOF) {
		return "", false, err
	}
	text := strings.ToValidUTF8(string(buf[:k]), "\uFFFD")
	if cut {
		if i := strings.IndexByte(text, '\n'); i >= 0 && i < len(text)-1 {
			text = text[i+1:] // start at a line
		}
	}
	return text, cut, nil
}
