package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// workload is one benchmark: a graph, how many jobs run at once, and
// whether it is repeated (rounds) or run once against an ideal time.
type workload struct {
	id    string // W1-1k, ...
	title string
	g     *graph
	conc  int
	once  bool          // run each runner once (sleep workloads)
	ideal time.Duration // ideal wall time for once workloads
	// targets are the ratios to the floor (repeated workloads) or
	// the allowed excess over the ideal time (once workloads), by runner.
	targets map[string]float64

	dir      string // generated files
	native   string
	makefile string
	xargs    []string
}

// runner names; the order is the table's.
const (
	rFloor  = "floor"
	rLogs   = "floor+logs"
	rMake   = "make"
	rXargs  = "xargs"
	rRun    = "run"
	rSubmit = "submit+wait"
)

// env is the environment of every child: the bench's own without what a
// parent make passes down (jobserver, flags) or what would redirect somaflow.
type env struct {
	vars []string
	bin  string // somaflow binary (absolute)
	make string // "" when absent
	xarg string // "" when absent
}

func newEnv(bin string) (*env, error) {
	abs, err := filepath.Abs(bin)
	if err != nil {
		return nil, err
	}
	if _, err := os.Stat(abs); err != nil {
		return nil, fmt.Errorf("somaflow binary: %w (run `make build` first)", err)
	}
	e := &env{bin: abs}
	drop := map[string]bool{"MAKEFLAGS": true, "MFLAGS": true, "MAKELEVEL": true, "MAKEOVERRIDES": true,
		"SOMAFLOW_STATE_DIR": true, "SOMAFLOW_BACKEND": true, "SOMAFLOW_FAILPOINT": true, "SOMAFLOW_ENGINE_IDLE": true}
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if !drop[k] {
			e.vars = append(e.vars, kv)
		}
	}
	e.vars = append(e.vars, "SOMAFLOW_ENGINE_IDLE=5s")
	if p, err := exec.LookPath("make"); err == nil {
		e.make = p
	}
	if p, err := exec.LookPath("xargs"); err == nil {
		e.xarg = p
	}
	return e, nil
}

// runners lists the runners available for w, in table order.
func (e *env) runners(w *workload) []string {
	rs := []string{rFloor, rLogs}
	if e.make != "" {
		rs = append(rs, rMake)
	}
	if e.xarg != "" && w.xargs != nil {
		rs = append(rs, rXargs)
	}
	return append(rs, rRun, rSubmit)
}

// prepare writes w's files under dir.
func (w *workload) prepare(dir string) error {
	w.dir = filepath.Join(dir, w.id)
	if err := os.MkdirAll(w.dir, 0o700); err != nil {
		return err
	}
	w.native = filepath.Join(w.dir, "workflow.json")
	w.makefile = filepath.Join(w.dir, "Makefile")
	if err := writeFile(w.native, func(f *os.File) error { return w.g.writeNative(f, w.id) }); err != nil {
		return err
	}
	if err := writeFile(w.makefile, func(f *os.File) error { return w.g.writeMakefile(f) }); err != nil {
		return err
	}
	var err error
	w.xargs, err = w.g.xargsStageFiles(w.dir)
	return err
}

func writeFile(path string, fill func(*os.File) error) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if err := fill(f); err != nil {
		f.Close()
		return fmt.Errorf("%s: %w", path, err)
	}
	return f.Close()
}

// measure runs w once through runner r and returns its wall time.
func (e *env) measure(ctx context.Context, w *workload, r string) (time.Duration, error) {
	switch r {
	case rFloor:
		t0 := time.Now()
		err := w.g.floor(ctx, w.conc, e.vars, "")
		return time.Since(t0), err
	case rLogs:
		dir, err := os.MkdirTemp("", "somaflow-bench-logs-")
		if err != nil {
			return 0, err
		}
		t0 := time.Now()
		err = w.g.floor(ctx, w.conc, e.vars, dir)
		os.RemoveAll(dir)
		return time.Since(t0), err
	case rMake:
		t0 := time.Now()
		_, err := e.cmd(ctx, "", e.make, "-s", "-r", "-R", "-f", w.makefile, "-j", strconv.Itoa(w.conc), "all")
		return time.Since(t0), err
	case rXargs:
		t0 := time.Now()
		for k, f := range w.xargs {
			argv := w.g.nodes[w.g.stages[k][0]].argv
			args := append([]string{"-P", strconv.Itoa(w.conc), "-I", "{}", "--"}, argv...)
			if _, err := e.cmd(ctx, f, e.xarg, args...); err != nil {
				return 0, err
			}
		}
		return time.Since(t0), nil
	case rRun:
		t0 := time.Now()
		_, err := e.cmd(ctx, "", e.bin, "run", "--max-jobs", strconv.Itoa(w.conc), w.native)
		return time.Since(t0), err
	case rSubmit:
		dir, err := os.MkdirTemp("", "somaflow-bench-")
		if err != nil {
			return 0, err
		}
		defer os.RemoveAll(dir)
		defer e.stopEngine(dir)
		t0 := time.Now()
		out, err := e.cmd(ctx, "", e.bin, "--state-dir", dir, "submit", "--json", "--max-jobs", strconv.Itoa(w.conc), w.native)
		if err != nil {
			return 0, err
		}
		var res struct{ ID string }
		if err := json.Unmarshal(out, &res); err != nil || res.ID == "" {
			return 0, fmt.Errorf("submit printed %q: %v", out, err)
		}
		if _, err := e.cmd(ctx, "", e.bin, "--state-dir", dir, "wait", res.ID); err != nil {
			return 0, err
		}
		return time.Since(t0), nil
	}
	return 0, fmt.Errorf("unknown runner %q", r)
}

// stopEngine stops the background engine of a state dir, if one runs.
func (e *env) stopEngine(dir string) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	e.cmd(ctx, "", e.bin, "--state-dir", dir, "engine", "stop")
}

// cmd runs a child to its end with stdin from the file stdin ("" for
// none), and returns its stdout; a failure carries the end of its stderr.
func (e *env) cmd(ctx context.Context, stdin, name string, args ...string) ([]byte, error) {
	c := exec.CommandContext(ctx, name, args...)
	c.Env = e.vars
	var out, errb bytes.Buffer
	c.Stdout, c.Stderr = &out, &tail{max: 4096, b: &errb}
	if stdin != "" {
		f, err := os.Open(stdin)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		c.Stdin = f
	}
	if err := c.Run(); err != nil {
		return out.Bytes(), fmt.Errorf("%s %s: %w: %s", filepath.Base(name), strings.Join(args, " "), err, strings.TrimSpace(errb.String()))
	}
	return out.Bytes(), nil
}

// tail keeps at most the first max bytes written (enough for an error).
type tail struct {
	max int
	b   *bytes.Buffer
}

func (t *tail) Write(p []byte) (int, error) {
	if room := t.max - t.b.Len(); room > 0 {
		if len(p) < room {
			room = len(p)
		}
		t.b.Write(p[:room])
	}
	return len(p), nil
}

// childResult is what a measured child left: wall time and peak RSS.
type childResult struct {
	wall   time.Duration
	maxRSS int64 // KiB, from wait4's rusage
	out    []byte
	err    error
}

// measuredCmd runs a child to its end, with its stdout kept when keep,
// else discarded, and reports its wall time and peak RSS.
func (e *env) measuredCmd(ctx context.Context, keep bool, name string, args ...string) childResult {
	c := exec.CommandContext(ctx, name, args...)
	c.Env = e.vars
	var out, errb bytes.Buffer
	if keep {
		c.Stdout = &out
	}
	c.Stderr = &tail{max: 4096, b: &errb}
	t0 := time.Now()
	err := c.Run()
	r := childResult{wall: time.Since(t0), out: out.Bytes()}
	if c.ProcessState != nil {
		if ru, ok := c.ProcessState.SysUsage().(*syscall.Rusage); ok {
			r.maxRSS = ru.Maxrss
		}
	}
	if err != nil {
		r.err = fmt.Errorf("%s %s: %w: %s", filepath.Base(name), strings.Join(args, " "), err, strings.TrimSpace(errb.String()))
	}
	return r
}
