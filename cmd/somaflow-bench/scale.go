package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"time"
)

// scaleCase is one generated workflow of the scale benchmark.
type scaleCase struct {
	shape string // fanout or layered
	jobs  int
	// runFor bounds how long the engine runs it: until the end when
	// toEnd, else a sample of this length (enough for its peak RSS).
	toEnd  bool
	runFor time.Duration
}

// scaleResult is what a scale case measured.
type scaleResult struct {
	Shape string `json:"shape"`
	Jobs  int    `json:"jobs"`
	Edges int    `json:"edges"`
	// Groups is the number of group dependencies (layered: one per layer).
	Groups int     `json:"groups"`
	FileMB float64 `json:"file_mb"`
	// SubmitS is `somaflow submit` with no engine running (the bench holds
	// the engine lock): decoding, validation and storing.
	SubmitS      float64 `json:"submit_s"`
	SubmitRSSKiB int64   `json:"submit_maxrss_kib"`
	DBMB         float64 `json:"db_mb"`
	// StatusS is `status --json` of the stored, not started workflow.
	StatusS      float64 `json:"status_s"`
	StatusRSSKiB int64   `json:"status_maxrss_kib"`
	StatusMB     float64 `json:"status_mb"`
	// RunS is how long the engine ran it (to the end when Done == Jobs).
	RunS         float64 `json:"run_s"`
	ToEnd        bool    `json:"to_end"`
	Done         int     `json:"done"`
	Failed       int     `json:"failed"`
	EngineRSSKiB int64   `json:"engine_maxrss_kib"`
	WaitRSSKiB   int64   `json:"wait_maxrss_kib"`
	// StatusAfterS is `status --json` once the engine stopped.
	StatusAfterS      float64  `json:"status_after_s"`
	StatusAfterRSSKiB int64    `json:"status_after_maxrss_kib"`
	Notes             []string `json:"notes,omitempty"`
	Error             string   `json:"error,omitempty"`
}

func (s *scaleResult) note(format string, a ...any) {
	s.Notes = append(s.Notes, fmt.Sprintf(format, a...))
}

// runScale measures one scale case under dir; progress goes to log.
func (e *env) runScale(ctx context.Context, c scaleCase, dir string, conc int, log io.Writer) *scaleResult {
	res := &scaleResult{Shape: c.shape, Jobs: c.jobs, ToEnd: c.toEnd}
	var g *graph
	switch c.shape {
	case "fanout":
		g = fanOut(c.jobs, "true")
	case "layered":
		g = layers(10, c.jobs/10, true, "true")
		res.Groups = 9
	default:
		res.Error = "unknown shape " + c.shape
		return res
	}
	if c.shape == "fanout" {
		res.Edges = g.edges()
	}
	file := filepath.Join(dir, fmt.Sprintf("scale-%s-%d.json", c.shape, c.jobs))
	if err := writeFile(file, func(f *os.File) error { return g.writeNative(f, "scale") }); err != nil {
		res.Error = err.Error()
		return res
	}
	g = nil
	defer os.Remove(file)
	if fi, err := os.Stat(file); err == nil {
		res.FileMB = float64(fi.Size()) / 1e6
	}
	state, err := os.MkdirTemp("", "somaflow-bench-scale-")
	if err != nil {
		res.Error = err.Error()
		return res
	}
	defer os.RemoveAll(state)

	// Store with no engine: hold the engine lock so that submit does not
	// start one.
	lock, err := holdEngineLock(state)
	if err != nil {
		res.Error = err.Error()
		return res
	}
	sub := e.measuredCmd(ctx, true, e.bin, "--state-dir", state, "submit", "--json", "--max-jobs", strconv.Itoa(conc), file)
	res.SubmitS, res.SubmitRSSKiB = secs(sub.wall), sub.maxRSS
	if sub.err != nil {
		lock.Close()
		res.Error = sub.err.Error()
		return res
	}
	var id struct{ ID string }
	if err := json.Unmarshal(sub.out, &id); err != nil {
		lock.Close()
		res.Error = fmt.Sprintf("submit printed %q: %v", sub.out, err)
		return res
	}
	res.DBMB = dbSize(state)
	fmt.Fprintf(log, "  %s %d: submit %.2fs (%.0f MB RSS), db %.0f MB\n", c.shape, c.jobs, res.SubmitS, kib2mb(res.SubmitRSSKiB), res.DBMB)
	st := e.measuredCmd(ctx, false, e.bin, "--state-dir", state, "status", "--json", id.ID)
	res.StatusS, res.StatusRSSKiB = secs(st.wall), st.maxRSS
	if st.err != nil {
		res.note("status --json: %v", st.err)
	}
	fmt.Fprintf(log, "  %s %d: status --json %.2fs (%.0f MB RSS)\n", c.shape, c.jobs, res.StatusS, kib2mb(res.StatusRSSKiB))
	lock.Close()

	// Run: the engine as our child (the command submit starts), so wait4
	// reports its peak RSS; `somaflow wait` until the end or the sample's
	// length.
	eng := exec.Command(e.bin, "--state-dir", state, "engine", "--idle", "2s")
	eng.Env = e.vars
	engLog, err := os.OpenFile(filepath.Join(state, "bench-engine.log"), os.O_WRONLY|os.O_CREATE, 0o600)
	if err != nil {
		res.Error = err.Error()
		return res
	}
	defer engLog.Close()
	eng.Stdout, eng.Stderr = engLog, engLog
	if err := eng.Start(); err != nil {
		res.Error = err.Error()
		return res
	}
	wait := e.measuredCmd(ctx, false, e.bin, "--state-dir", state, "wait", "--timeout", c.runFor.String(), id.ID)
	res.RunS, res.WaitRSSKiB = secs(wait.wall), wait.maxRSS
	var exitErr *exec.ExitError
	if wait.err != nil && !(errors.As(wait.err, &exitErr) && exitErr.ExitCode() == 4) {
		res.note("wait: %v", wait.err)
	}
	if wait.err != nil {
		eng.Process.Signal(syscall.SIGTERM)
	}
	eng.Wait()
	if ru, ok := eng.ProcessState.SysUsage().(*syscall.Rusage); ok {
		res.EngineRSSKiB = ru.Maxrss
	}
	after := e.measuredCmd(ctx, true, e.bin, "--state-dir", state, "status", "--json", id.ID)
	res.StatusAfterS, res.StatusAfterRSSKiB = secs(after.wall), after.maxRSS
	res.StatusMB = float64(len(after.out)) / 1e6
	if after.err != nil {
		res.note("status --json after the run: %v", after.err)
	} else {
		var doc struct {
			Jobs []struct {
				Status     string  `json:"status"`
				ExitStatus *string `json:"exit_status"`
				ExitValue  *int    `json:"exit_value"`
			} `json:"jobs"`
		}
		if err := json.Unmarshal(after.out, &doc); err != nil {
			res.note("status document: %v", err)
		}
		for _, j := range doc.Jobs {
			switch {
			case j.Status == "done" && j.ExitValue != nil && *j.ExitValue == 0:
				res.Done++
			case j.Status == "done" || j.Status == "failed":
				res.Failed++
			}
		}
	}
	if res.Done < res.Jobs {
		rate := float64(res.Done) / res.RunS
		res.note("stopped after %.0fs with %d of %d jobs done (%.0f jobs/s; the rest would take about %.0f s more)",
			res.RunS, res.Done, res.Jobs, rate, float64(res.Jobs-res.Done)/max(rate, 1e-9))
	}
	fmt.Fprintf(log, "  %s %d: ran %.1fs, %d/%d done, engine %.0f MB RSS; status --json after %.2fs (%.0f MB)\n",
		c.shape, c.jobs, res.RunS, res.Done, res.Jobs, kib2mb(res.EngineRSSKiB), res.StatusAfterS, res.StatusMB)
	return res
}

func kib2mb(k int64) float64 { return float64(k) * 1024 / 1e6 }

// holdEngineLock takes the state dir's engine lock (engine.lock, flock), as
// an engine would: while it is held, submit starts no engine.
func holdEngineLock(dir string) (*os.File, error) {
	f, err := os.OpenFile(filepath.Join(dir, "engine.lock"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, fmt.Errorf("engine lock: %w", err)
	}
	return f, nil
}

// dbSize is the size of the database files of a state dir, in MB.
func dbSize(dir string) float64 {
	ents, _ := os.ReadDir(dir)
	var n int64
	for _, e := range ents {
		if fi, err := e.Info(); err == nil && fi.Mode().IsRegular() && filepath.Ext(e.Name()) != ".log" {
			n += fi.Size()
		}
	}
	return float64(n) / 1e6
}
