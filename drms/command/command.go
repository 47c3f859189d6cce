// Package command is the backend for batch systems somaflow does not ship:
// a site admin describes the system's commands in the site configuration
// (argv templates for submit, status, cancel, hold and release, and the
// regular expressions that read their output), and every job runs, as on
// the built-in batch backends, as a batch script in the spool dir that
// `exec`s `somaflow exec-job`; outcomes follow design.md's precedence
// (exec-job's status file first, then what the status command says).
//
// A template is split into words like a shell line (quotes group, nothing
// is expanded), and only then are placeholders replaced inside each word:
// a job's fields become parts of one argument, never shell text. A word
// whose placeholders are all empty is dropped (`--partition={queue}`
// without a queue), as is an optional group of words in brackets
// (`[ -q {queue} ]`), and the words {native} and {ids} expand to several
// arguments (the job's native specification; the ids of the jobs Status
// asks about).
//
// Placeholders: {name} (the job name sf-TAG-W-J-A, unique), {script},
// {output} (the DRMS's own output file), {spool} (the attempt's spool
// dir), {dir} (the working directory, informational: exec-job changes to
// it), {queue}, {cpus}, {memory_mb}, {walltime_s}, {walltime_min},
// {walltime_hms}, {gpus}, {nodes}, {cpus_per_node}, {user}, {id}
// (cancel/hold/release), {native} and {ids} (whole words only).
//
// Settings (drms.Config.Settings; contrib/command-backends/ has examples):
//
//	name             the backend's name in messages (default "command")
//	submit           argv template; must contain {script}            (required)
//	submit_id        regexp with one group: the job id in submit's output (required)
//	status           argv template, run once per Status for all jobs (required)
//	status_line      regexp matched on each line of status's output, with
//	                 named groups id and state (required), name, exit, reason
//	queued, held, running, suspended, ended
//	                 comma-separated states of each phase (a state in none of
//	                 them is queued); a job the listing lacks has ended
//	cancelled, timeout, memory
//	                 comma-separated ended states that mean a cancel, a time
//	                 limit, a memory limit (the reason of a signal)
//	cancel           argv template with {id} (required)
//	hold, release    argv templates with {id} (optional)
//	unavailable      regexp: a command output that means the DRMS cannot be
//	                 reached now (default: connection refused, timeouts, "try again")
//	gone             regexp: a cancel/hold/release output that means the job
//	                 has already ended (default: "unknown job|invalid job|already")
//	command_timeout, submit_timeout, lookup_delay, status_grace
//	                 as for Slurm (60s, 60s, 2s, 5s)
//	status_interval, status_idle_interval
//	                 as squeue_interval and squeue_idle_interval for Slurm
//	                 (30s, 5m): how often Status runs the status command while
//	                 exec-job's files answer for every job and something is
//	                 due (a job queued, held, suspended, running at the DRMS
//	                 without its started file, past its walltime, or killed
//	                 by somaflow: at once), and while nothing is (0: at every
//	                 Status)
package command

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/somaflow/somaflow/drms"
	"github.com/somaflow/somaflow/drms/batch"
)

// HandleVersion is the version of the handles this package writes.
const HandleVersion = 1

// Backend runs jobs through configured commands. It is safe for
// concurrent use.
type Backend struct {
	cfg   drms.Config
	spool batch.Spool
	cmds  batch.Commands
	name  string
	user  string

	submit, status, cancel, hold, release   [][]string // templates, split into words
	submitID, statusLine, unavailable, gone *regexp.Regexp
	phases                                  map[string]drms.Phase
	cancelled, timeout, memory              map[string]bool

	cmdTimeout, submitTimeout, lookupDelay, grace time.Duration
	statusEvery, statusIdle                       time.Duration

	mu         sync.Mutex
	noFileSeen map[string]time.Time
	lastSeen   map[string]entry  // the last listing entry of each job
	lastList   map[string]entry  // Status's last listing
	lastListAt time.Time         // when it was asked for
	recent     batch.Submissions // job ids this backend submitted
	pace       batch.Pace        // exec-job's files first, the status command paced
	handles    batch.Handles[handleState]
}

// entry is one job of the status command's output.
type entry struct {
	ID, State, Name, Reason string
	Exit                    *int
}

// handleState is the persisted part of a handle; Handle.ID is the job id
// the submit command printed.
type handleState struct {
	Name    string `json:"name"`
	Status  string `json:"status"`
	Started string `json:"started"`
	Output  string `json:"output"`
	// Limit is the job's walltime in seconds (0: none): past it, its
	// status file is overdue and the job is due.
	Limit int64 `json:"limit,omitempty"`
}

// New returns a command backend from cfg.Settings; a missing or malformed
// setting is an error naming it. It runs no command.
func New(cfg drms.Config) (*Backend, error) {
	b, err := configure(cfg.Settings)
	if err != nil {
		return nil, err
	}
	if cfg.ExecPath == "" {
		return nil, fmt.Errorf("%s backend: no somaflow executable configured for exec-job (Config.ExecPath)", b.name)
	}
	if cfg.EngineTag == "" || strings.ContainsAny(cfg.EngineTag, "-| \t\n") {
		return nil, fmt.Errorf("%s backend: engine tag %q must be set and must not contain '-', '|' or spaces", b.name, cfg.EngineTag)
	}
	if cfg.ExecPath, err = batch.ExecPath(cfg.ExecPath); err != nil {
		return nil, fmt.Errorf("%s backend: %v", b.name, err)
	}
	b.cfg = cfg
	u, err := user.Current()
	if err != nil {
		return nil, fmt.Errorf("%s backend: current user: %v", b.name, err)
	}
	b.user = u.Username
	if b.spool, err = batch.NewSpool(cfg); err != nil {
		return nil, fmt.Errorf("%s backend: %v", b.name, err)
	}
	return b, nil
}

// Validate checks the settings of a command backend as New does, without
// creating anything (somaflow doctor).
func Validate(settings map[string]string) error {
	_, err := configure(settings)
	return err
}

// configure reads the settings.
func configure(settings map[string]string) (*Backend, error) {
	set := func(k string) string { return strings.TrimSpace(settings[k]) }
	name := set("name")
	if name == "" {
		name = "command"
	}
	fail := func(format string, a ...any) (*Backend, error) {
		return nil, fmt.Errorf("%s backend: "+format, append([]any{name}, a...)...)
	}
	var err error
	b := &Backend{name: name, noFileSeen: map[string]time.Time{}, lastSeen: map[string]entry{}, phases: map[string]drms.Phase{}}
	b.pace.Live = true // running only with its started file, as in Status
	tmpl := func(key string, required bool, must ...string) ([][]string, error) {
		v := set(key)
		if v == "" {
			if required {
				return nil, fmt.Errorf("%s backend: setting %s (an argv template) is required", name, key)
			}
			return nil, nil
		}
		words, err := batch.SplitWords(v)
		if err != nil || len(words) == 0 {
			return nil, fmt.Errorf("%s backend: setting %s=%q: %v", name, key, v, err)
		}
		for _, m := range must {
			if !strings.Contains(v, m) {
				return nil, fmt.Errorf("%s backend: setting %s=%q must contain %s", name, key, v, m)
			}
		}
		out, err := groups(words)
		if err != nil {
			return nil, fmt.Errorf("%s backend: setting %s=%q: %v", name, key, v, err)
		}
		return out, nil
	}
	if b.submit, err = tmpl("submit", true, "{script}"); err != nil {
		return nil, err
	}
	if b.status, err = tmpl("status", true); err != nil {
		return nil, err
	}
	if b.cancel, err = tmpl("cancel", true, "{id}"); err != nil {
		return nil, err
	}
	if b.hold, err = tmpl("hold", false, "{id}"); err != nil {
		return nil, err
	}
	if b.release, err = tmpl("release", false, "{id}"); err != nil {
		return nil, err
	}
	re := func(key, def string, groups ...string) (*regexp.Regexp, error) {
		v := settings[key]
		if strings.TrimSpace(v) == "" {
			v = def
		}
		if v == "" {
			return nil, fmt.Errorf("%s backend: setting %s (a regular expression) is required", name, key)
		}
		r, err := regexp.Compile(v)
		if err != nil {
			return nil, fmt.Errorf("%s backend: setting %s=%q: %v", name, key, v, err)
		}
		for _, g := range groups {
			if g == "1" && r.NumSubexp() < 1 || g != "1" && r.SubexpIndex(g) < 0 {
				return nil, fmt.Errorf("%s backend: setting %s=%q needs the group %s", name, key, v, g)
			}
		}
		return r, nil
	}
	if b.submitID, err = re("submit_id", "", "1"); err != nil {
		return nil, err
	}
	if b.statusLine, err = re("status_line", "", "id", "state"); err != nil {
		return nil, err
	}
	if b.unavailable, err = re("unavailable", `(?i)connection refused|timed out|try again|temporarily unavailable|cannot connect|unable to contact`); err != nil {
		return nil, err
	}
	if b.gone, err = re("gone", `(?i)unknown job|invalid job|already|not found|no such job`); err != nil {
		return nil, err
	}
	for key, p := range map[string]drms.Phase{"queued": drms.Queued, "held": drms.Held, "running": drms.Running, "suspended": drms.Suspended, "ended": drms.Ended} {
		for _, s := range list(set(key)) {
			if q, dup := b.phases[s]; dup && q != p {
				return fail("state %q is in two phases (%s and %s)", s, q, key)
			}
			b.phases[s] = p
		}
	}
	b.cancelled, b.timeout, b.memory = setOf(list(set("cancelled"))), setOf(list(set("timeout"))), setOf(list(set("memory")))
	if err := (batch.Settings{Backend: name + " backend", M: settings}).Durations(
		map[string]*time.Duration{"command_timeout": &b.cmdTimeout, "submit_timeout": &b.submitTimeout, "lookup_delay": &b.lookupDelay, "status_grace": &b.grace,
			"status_interval": &b.statusEvery, "status_idle_interval": &b.statusIdle},
		map[string]time.Duration{"command_timeout": time.Minute, "submit_timeout": time.Minute, "lookup_delay": 2 * time.Second, "status_grace": 5 * time.Second,
			"status_interval": 30 * time.Second, "status_idle_interval": 5 * time.Minute},
	); err != nil {
		return nil, err
	}
	return b, nil
}

func list(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

func setOf(l []string) map[string]bool {
	m := make(map[string]bool, len(l))
	for _, s := range l {
		m[s] = true
	}
	return m
}

// Capabilities implements drms.Backend. The DRMS enforces walltimes when
// the submit template passes one.
func (b *Backend) Capabilities() drms.Capabilities {
	walltime := false
	for _, g := range b.submit {
		for _, w := range g {
			walltime = walltime || strings.Contains(w, "{walltime")
		}
	}
	return drms.Capabilities{Name: b.name, Queues: true, ExternalCancel: true, SystemFailures: true, SurvivesEngine: true, Walltime: walltime}
}

// Close implements drms.Backend; jobs keep running.
func (b *Backend) Close() error { return nil }

// Calls returns how many times each command was run.
func (b *Backend) Calls() map[string]int { return b.cmds.Calls() }

func (b *Backend) handle(id string, spec drms.JobSpec) drms.Handle {
	p := b.spool.Paths(spec)
	st, _ := json.Marshal(handleState{Name: spec.Name(), Status: p.Status, Started: p.Started, Output: p.Output, Limit: spec.Resources.Walltime})
	return drms.Handle{Version: HandleVersion, ID: id, State: st}
}

func (b *Backend) decodeHandle(h drms.Handle) (handleState, error) {
	var st handleState
	if h.Version != HandleVersion {
		return st, fmt.Errorf("%s backend: handle %s has version %d, want %d", b.name, h.ID, h.Version, HandleVersion)
	}
	if err := json.Unmarshal(h.State, &st); err != nil {
		return st, fmt.Errorf("%s backend: handle %s: %w", b.name, h.ID, err)
	}
	return st, nil
}

// groups splits template words into groups: "[" and "]" (words of their
// own) enclose an optional group ("[ -q {queue} ]"); every other word is a
// group of one.
func groups(words []string) ([][]string, error) {
	var out [][]string
	var cur []string
	in := false
	for _, w := range words {
		switch {
		case w == "[" && in:
			return nil, errors.New("'[' inside an optional group")
		case w == "[":
			in, cur = true, nil
		case w == "]" && !in:
			return nil, errors.New("']' without '['")
		case w == "]":
			if len(cur) == 0 {
				return nil, errors.New("empty optional group")
			}
			out, in = append(out, cur), false
		case in:
			cur = append(cur, w)
		default:
			out = append(out, []string{w})
		}
	}
	if in {
		return nil, errors.New("'[' without ']'")
	}
	return out, nil
}

// Expand turns a template into argv: placeholders are replaced from vars
// inside each word (never splitting a value), the words {native} and
// {ids} become the words of multi, and a group (a word, or "[ ... ]")
// whose placeholders are all empty is dropped.
func Expand(tmpl [][]string, vars map[string]string, multi map[string][]string) []string {
	var argv []string
	for _, g := range tmpl {
		var words []string
		placeholders, empty := 0, 0
		for _, word := range g {
			if m, ok := multi[word]; ok {
				words = append(words, m...)
				continue
			}
			var out strings.Builder
			for rest := word; ; {
				i := strings.IndexByte(rest, '{')
				j := strings.IndexByte(rest[max(i, 0):], '}')
				if i < 0 || j < 0 {
					out.WriteString(rest)
					break
				}
				key := rest[i+1 : i+j]
				v, known := vars[key]
				if !known {
					out.WriteString(rest[:i+j+1])
					rest = rest[i+j+1:]
					continue
				}
				placeholders++
				if v == "" {
					empty++
				}
				out.WriteString(rest[:i])
				out.WriteString(v)
				rest = rest[i+j+1:]
			}
			words = append(words, out.String())
		}
		if placeholders > 0 && empty == placeholders {
			continue
		}
		argv = append(argv, words...)
	}
	return argv
}

// vars are the placeholders of a job.
func (b *Backend) vars(spec drms.JobSpec, p batch.Paths) map[string]string {
	r := spec.Resources
	num := func(n int64) string {
		if n <= 0 {
			return ""
		}
		return strconv.FormatInt(n, 10)
	}
	v := map[string]string{
		"name": spec.Name(), "script": p.Script, "output": p.Output, "spool": p.Dir, "dir": spec.Dir,
		"queue": spec.Queue, "cpus": num(int64(r.CPUs)), "memory_mb": num(r.MemoryMB), "gpus": num(int64(r.GPUs)),
		"walltime_s": num(r.Walltime), "walltime_min": num((r.Walltime + 59) / 60), "walltime_hms": "", "user": b.user,
		"nodes": "", "cpus_per_node": "",
	}
	if r.Walltime > 0 {
		v["walltime_hms"] = fmt.Sprintf("%02d:%02d:%02d", r.Walltime/3600, r.Walltime/60%60, r.Walltime%60)
	}
	if pj := spec.Parallel; pj != nil {
		v["nodes"], v["cpus_per_node"] = num(int64(max(pj.NodesNumber, 1))), num(int64(max(pj.CPUPerNode, 1)))
	}
	return v
}

// native splits a job's native specification into words; each must be an
// option with its value attached ("-q=long", "--partition=x", "-qlong"),
// so that none can become the submit command's script operand.
func native(spec drms.JobSpec) ([]string, error) {
	var out []string
	for _, ns := range spec.NativeSpec {
		words, err := batch.SplitWords(ns)
		if err != nil {
			return nil, &drms.StartError{Reason: fmt.Sprintf("native specification %q: %v", ns, err)}
		}
		for _, w := range words {
			if len(w) < 2 || w[0] != '-' || w == "--" || strings.ContainsAny(w, "\x00\n\r") {
				return nil, &drms.StartError{Reason: fmt.Sprintf("native specification word %q: each word must be an option with its value attached (-q=long, --opt=value)", w)}
			}
		}
		out = append(out, words...)
	}
	return out, nil
}

// Submit implements drms.Backend: it writes the batch script and the job's
// environment in the spool and runs the submit command. A non-zero exit is
// a *drms.StartError with the command's words (or drms.ErrUnavailable when
// they match unavailable); a timeout or output without a job id is looked
// up by name in the status listing, else drms.ErrSubmitUncertain.
func (b *Backend) Submit(ctx context.Context, spec drms.JobSpec) (drms.Handle, error) {
	if len(spec.Argv) == 0 {
		return drms.Handle{}, &drms.StartError{Reason: "empty command"}
	}
	if spec.EngineTag != b.cfg.EngineTag {
		return drms.Handle{}, fmt.Errorf("%s backend: job %s has engine tag %q, this backend %q", b.name, spec.Name(), spec.EngineTag, b.cfg.EngineTag)
	}
	nat, err := native(spec)
	if err != nil {
		return drms.Handle{}, err
	}
	p, err := b.spool.Prepare(spec)
	if err != nil {
		return drms.Handle{}, fmt.Errorf("%s backend: %w", b.name, err)
	}
	header := []string{"# somaflow job " + spec.Name() + ": " + strings.ReplaceAll(spec.JobName, "\n", " ")}
	if err := batch.WriteScript(p.Script, batch.Script(header, b.spool.ExecArgv(b.cfg.ExecPath, spec))); err != nil {
		return drms.Handle{}, fmt.Errorf("%s backend: %w", b.name, err)
	}
	argv := Expand(b.submit, b.vars(spec, p), map[string][]string{"{native}": nat})
	out, stderr, err := b.cmds.Run(ctx, b.submitTimeout, nil, argv[0], argv[1:]...)
	if err == nil {
		if m := b.submitID.FindStringSubmatch(out); m != nil && strings.TrimSpace(m[1]) != "" && !strings.ContainsAny(m[1], " \t\n") {
			return b.submitted(strings.TrimSpace(m[1]), spec), nil
		}
		err = fmt.Errorf("%s printed %q: no job id matches submit_id %q", argv[0], batch.OneLine(out), b.submitID)
	} else if !errors.Is(err, batch.ErrTimeout) && !batch.Signaled(err) {
		if b.unavailable.MatchString(out + stderr) {
			return drms.Handle{}, fmt.Errorf("%s backend: %s: %s: %w", b.name, argv[0], batch.OneLine(out+stderr), drms.ErrUnavailable)
		}
		var ee *exec.ExitError
		if errors.As(err, &ee) && ee.Exited() {
			return drms.Handle{}, &drms.StartError{Reason: batch.Refusal(argv[0]+" refused the job", ee, stderr+"\n"+out)}
		}
		return drms.Handle{}, fmt.Errorf("%s backend: %s: %w", b.name, argv[0], err)
	}
	if b.statusLine.SubexpIndex("name") >= 0 {
		for i := 0; i < 2; i++ {
			if i > 0 {
				select {
				case <-time.After(b.lookupDelay):
				case <-ctx.Done():
					return drms.Handle{}, fmt.Errorf("%s backend: %s: %v: %w", b.name, spec.Name(), err, drms.ErrSubmitUncertain)
				}
			}
			if l, lerr := b.list(ctx, nil); lerr == nil {
				if id, ok := byName(l, spec.Name()); ok {
					return b.submitted(id, spec), nil
				}
			}
		}
	}
	return drms.Handle{}, fmt.Errorf("%s backend: %s: %v; not found by name afterwards: %w", b.name, spec.Name(), err, drms.ErrSubmitUncertain)
}

// submitted is the handle of a job this backend just submitted, noted so
// that Status may answer for it from files before a listing shows it.
func (b *Backend) submitted(id string, spec drms.JobSpec) drms.Handle {
	b.recent.Note(id)
	return b.handle(id, spec)
}

func byName(l map[string]entry, name string) (string, bool) {
	best := ""
	for id, e := range l {
		if e.Name == name && (best == "" || idLess(best, id)) {
			best = id
		}
	}
	return best, best != ""
}

func idLess(a, b string) bool {
	x, ex := strconv.ParseInt(a, 10, 64)
	y, ey := strconv.ParseInt(b, 10, 64)
	if ex == nil && ey == nil {
		return x < y
	}
	return a < b
}

// list runs the status command once (ids fill {ids}) and reads its lines
// with status_line. Output in which no line matches is an error (the
// status command or its pattern is wrong), unless it is empty.
func (b *Backend) list(ctx context.Context, ids []string) (map[string]entry, error) {
	argv := Expand(b.status, map[string]string{"user": b.user}, map[string][]string{"{ids}": ids})
	out, stderr, err := b.cmds.Run(ctx, b.cmdTimeout, nil, argv[0], argv[1:]...)
	if err != nil {
		return nil, b.cmdError(argv[0], out+stderr, err)
	}
	l := map[string]entry{}
	idx := func(g string) int { return b.statusLine.SubexpIndex(g) }
	lines, first := 0, ""
	for _, line := range strings.Split(out, "\n") {
		line = strings.TrimRight(line, "\r")
		if strings.TrimSpace(line) == "" {
			continue
		}
		lines++
		m := b.statusLine.FindStringSubmatch(line)
		if m == nil {
			if first == "" {
				first = line
			}
			continue
		}
		e := entry{ID: strings.TrimSpace(m[idx("id")]), State: strings.TrimSpace(m[idx("state")])}
		if i := idx("name"); i >= 0 {
			e.Name = strings.TrimSpace(m[i])
		}
		if i := idx("reason"); i >= 0 {
			e.Reason = strings.TrimSpace(m[i])
		}
		if i := idx("exit"); i >= 0 {
			if n, err := strconv.Atoi(strings.TrimSpace(m[i])); err == nil {
				e.Exit = &n
			}
		}
		if e.ID != "" {
			l[e.ID] = e
		}
	}
	if lines > 0 && len(l) == 0 {
		return nil, fmt.Errorf("%s backend: %s printed %d lines and none matches status_line %q (first: %q): %w",
			b.name, argv[0], lines, b.statusLine, batch.OneLine(first), drms.ErrUnavailable)
	}
	return l, nil
}

// Status implements drms.Backend. exec-job's files are the primary
// signal: while every job asked about can be answered from its status
// file (ended by an exit or a failure to start), its started file
// (running) or the last listing (queued, held), and that listing is
// younger than status_interval (status_idle_interval when nothing is
// due), no command runs (fromFiles). Otherwise it runs the status command
// once for all the jobs.
func (b *Backend) Status(ctx context.Context, hs []drms.Handle) (map[string]drms.State, error) {
	out := make(map[string]drms.State, len(hs))
	if len(hs) == 0 {
		return out, nil
	}
	if fast, ok := b.fromFiles(hs); ok {
		return fast, nil
	}
	ids := make([]string, len(hs))
	for i, h := range hs {
		ids[i] = h.ID
	}
	at := time.Now()
	l, err := b.list(ctx, ids)
	if err != nil {
		return nil, err
	}
	b.mu.Lock()
	b.lastList, b.lastListAt = l, at
	b.mu.Unlock()
	now := time.Now()
	for _, h := range hs {
		st, err := b.decodeHandle(h)
		if err != nil {
			out[h.ID] = drms.State{Phase: drms.Ended, Outcome: drms.Undetermined(err.Error())}
			continue
		}
		e, listed := l[h.ID]
		if listed && e.Name != "" && e.Name != st.Name {
			listed = false // another job got this id
		}
		if listed {
			b.mu.Lock()
			b.lastSeen[h.ID] = e
			b.mu.Unlock()
			p, known := b.phases[e.State]
			if !known {
				p = drms.Queued
			}
			if p != drms.Ended {
				s := drms.State{Phase: p}
				if p == drms.Queued || p == drms.Held {
					s.Reason = e.Reason
				}
				out[h.ID] = batch.Live(s, e.State, st.Started)
				continue
			}
		}
		o, done := b.outcome(h, st, now)
		if !done {
			out[h.ID] = batch.Pending(st.Started) // its status file may be on its way
			continue
		}
		out[h.ID] = drms.State{Phase: drms.Ended, Started: o.Started, Outcome: o}
		b.forget(h.ID)
	}
	return out, nil
}

// fromFiles answers Status without the status command when it can
// (batch.Pace.FromFiles): ok is false when a job needs the DRMS (a
// signal's reason, an end without a status file, our kill, a job that
// left the listing or was never in it) or the last listing is too old.
func (b *Backend) fromFiles(hs []drms.Handle) (map[string]drms.State, bool) {
	b.mu.Lock()
	l, at := b.lastList, b.lastListAt
	b.mu.Unlock()
	if l == nil {
		return nil, false
	}
	return batch.FromHandles(&b.pace, &b.handles, hs, at, b.statusEvery, b.statusIdle, batch.Paced[handleState]{
		Decode: b.decodeHandle,
		Job: func(h drms.Handle, st handleState) batch.PacedJob {
			return batch.PacedJob{Status: st.Status, Started: st.Started, Limit: st.Limit, Ask: b.pace.Killed(h.ID)}
		},
		Listed: func(h drms.Handle, st handleState) batch.Listed {
			e, listed := l[h.ID]
			if listed && e.Name != "" && e.Name != st.Name {
				return batch.Listed{Ask: true} // another job got this id
			}
			if !listed {
				// Only a job submitted after the listing may be missing from it.
				sub, ok := b.recent.At(h.ID)
				return batch.Listed{State: drms.State{Phase: drms.Queued}, Ask: !ok || sub.Before(at)}
			}
			p, known := b.phases[e.State]
			if !known {
				p = drms.Queued
			}
			if p == drms.Ended {
				return batch.Listed{Ask: true}
			}
			s := drms.State{Phase: p}
			if p == drms.Queued || p == drms.Held {
				s.Reason = e.Reason
			}
			return batch.Listed{State: s, Word: e.State}
		},
		Forget: b.forget,
	})
}

// forget drops what the backend remembers of an ended job.
func (b *Backend) forget(id string) {
	b.mu.Lock()
	delete(b.noFileSeen, id)
	delete(b.lastSeen, id)
	b.mu.Unlock()
	b.pace.Forget(id)
	b.handles.Forget(id)
}

// outcome decides the outcome of a job that ended or that the listing no
// longer has; done is false while its status file may still be on its way.
func (b *Backend) outcome(h drms.Handle, st handleState, now time.Time) (*drms.Outcome, bool) {
	killed := b.pace.Killed(h.ID)
	b.mu.Lock()
	last, seen := b.lastSeen[h.ID]
	b.mu.Unlock()
	file, ferr := batch.ReadOutcome(st.Status)
	if ferr != nil {
		file = nil
	}
	if file != nil {
		if file.Signal != "" && !killed && seen {
			return batch.Combine(file, &drms.Outcome{Reason: b.signalReason(last.State)}), true
		}
		return file, true
	}
	b.mu.Lock()
	first, ok := b.noFileSeen[h.ID]
	if !ok {
		b.noFileSeen[h.ID], first = now, now
	}
	b.mu.Unlock()
	if now.Sub(first) < b.grace {
		return nil, false
	}
	si, _ := batch.ReadStarted(st.Started)
	started := si != nil
	what := fmt.Sprintf("%s: job %s", b.name, h.ID)
	if seen {
		what += " state " + last.State
		if last.Reason != "" {
			what += " (" + last.Reason + ")"
		}
	} else {
		what += " no longer listed"
	}
	switch {
	case seen && last.Exit != nil && started:
		return drms.Exited(*last.Exit), true
	case seen && last.Exit != nil:
		return drms.NotStarted("the batch script failed before somaflow exec-job started (" + what + ")"), true
	case !started && killed:
		return drms.Unclear("cancelled while queued (" + what + ")"), true
	case !started && seen && b.cancelled[last.State]:
		return drms.Unclear("cancelled outside somaflow while queued (" + what + ")"), true
	case seen && (b.timeout[last.State] || b.memory[last.State]) && started:
		return drms.Signaled("SIGKILL", b.signalReason(last.State)), true
	case seen:
		return drms.Unclear(what + "; exec-job left no status file"), true
	}
	return drms.Undetermined(what + " and exec-job left no status file " + st.Status), true
}

// signalReason is the reason of a signal that somaflow did not send, from
// the job's last state.
func (b *Backend) signalReason(state string) string {
	switch {
	case b.timeout[state]:
		return "time limit"
	case b.memory[state]:
		return "memory limit"
	case b.cancelled[state]:
		return "cancelled outside somaflow"
	}
	return ""
}

// Kill implements drms.Backend with the cancel command; a job that
// already ended is not an error.
func (b *Backend) Kill(ctx context.Context, h drms.Handle) error {
	b.pace.Kill(h.ID)
	return b.jobCommand(ctx, "cancel", b.cancel, h.ID)
}

// Hold implements drms.Holder with the hold command.
func (b *Backend) Hold(ctx context.Context, h drms.Handle) error {
	return b.jobCommand(ctx, "hold", b.hold, h.ID)
}

// Release implements drms.Holder with the release command.
func (b *Backend) Release(ctx context.Context, h drms.Handle) error {
	return b.jobCommand(ctx, "release", b.release, h.ID)
}

func (b *Backend) jobCommand(ctx context.Context, what string, tmpl [][]string, id string) error {
	if tmpl == nil {
		return fmt.Errorf("%s backend: no %s command configured (setting %s)", b.name, what, what)
	}
	if id == "" || strings.ContainsAny(id, " \t\n") {
		return fmt.Errorf("%s backend: %q is not a job id", b.name, id)
	}
	argv := Expand(tmpl, map[string]string{"id": id, "user": b.user}, nil)
	out, stderr, err := b.cmds.Run(ctx, b.cmdTimeout, nil, argv[0], argv[1:]...)
	if err == nil || b.gone.MatchString(out+stderr) {
		return nil
	}
	if l, lerr := b.list(ctx, []string{id}); lerr == nil {
		if e, ok := l[id]; !ok || b.phases[e.State] == drms.Ended {
			return nil // already ended
		}
	}
	return b.cmdError(argv[0], out+stderr, err)
}

// Recover implements drms.Backend: the job's state, as Status reports it.
func (b *Backend) Recover(ctx context.Context, h drms.Handle) (drms.State, error) {
	if _, err := b.decodeHandle(h); err != nil {
		return drms.State{}, err
	}
	st, err := b.Status(ctx, []drms.Handle{h})
	if err != nil {
		return drms.State{}, err
	}
	return st[h.ID], nil
}

// Locate implements drms.Locator: the spool's started file (exec-job
// wrote the DRMS's job id when the DRMS sets one of the variables it
// reads), then the name in the listing when status_line has a name group;
// never submitted when the script was never written.
func (b *Backend) Locate(ctx context.Context, spec drms.JobSpec) (drms.Handle, bool, bool, error) {
	p := b.spool.Paths(spec)
	if si, err := batch.ReadStarted(p.Started); err == nil && si != nil && si.JobID != "" {
		return b.handle(si.JobID, spec), true, false, nil
	}
	if _, err := os.Stat(p.Script); errors.Is(err, os.ErrNotExist) {
		return drms.Handle{}, false, true, nil
	}
	if b.statusLine.SubexpIndex("name") >= 0 {
		l, err := b.list(ctx, nil)
		if err != nil {
			return drms.Handle{}, false, false, err
		}
		if id, ok := byName(l, spec.Name()); ok {
			return b.handle(id, spec), true, false, nil
		}
	}
	return drms.Handle{}, false, false, nil
}

// cmdError wraps a failed command: timeouts and outputs matching
// unavailable wrap drms.ErrUnavailable.
func (b *Backend) cmdError(name, msg string, err error) error {
	return batch.CommandError(b.name+" backend", name, msg, err, b.unavailable.MatchString, "is the batch system's client on PATH?")
}

var (
	_ drms.Backend = (*Backend)(nil)
	_ drms.Locator = (*Backend)(nil)
	_ drms.Holder  = (*Backend)(nil)
)
