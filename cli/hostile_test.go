package cli_test

// Hostile and broken surroundings (issue 23): each case is an attack or a
// broken environment driven through the binary as a user (or an attacker)
// would; the next adversarial pass extends this file.

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// aliasBomb is a ~600-byte native file whose aliases, nine levels of ten,
// expand to a billion values inside command: (the guard once covered
// params and extras only).
func aliasBomb() string {
	var sb strings.Builder
	sb.WriteString("jobs:\n  bomb:\n    command: [echo,\n      &a0 [x, x, x, x, x, x, x, x, x, x]")
	for i := 1; i <= 8; i++ {
		fmt.Fprintf(&sb, ",\n      &a%d [%s]", i, strings.TrimSuffix(strings.Repeat(fmt.Sprintf("*a%d, ", i-1), 10), ", "))
	}
	sb.WriteString("]\n")
	return sb.String()
}

func TestHostileAliasBomb(t *testing.T) {
	bomb := write(t, "bomb.yaml", aliasBomb())
	for _, cmd := range [][]string{{"validate", bomb}, {"run", bomb}, {"convert", "--to", "soma", bomb}} {
		// Before the bound this took minutes and gigabytes (then the OOM killer).
		r := runBin(t, nil, cmd...)
		if r.code != 2 || !strings.Contains(r.stderr, "aliases expand to more than") {
			t.Fatalf("%v on an alias bomb: want exit 2 naming the aliases, got %+v", cmd, r)
		}
	}
	// Aliases within bounds still work.
	ok := write(t, "ok.yaml", "jobs:\n  a: {command: &c [echo, hi]}\n  b: {command: *c, after: [a]}\n")
	if r := runBin(t, nil, "validate", ok); r.code != 0 {
		t.Fatalf("validate a file with a small alias: %+v", r)
	}
}

// A state dir, database or log that someone else owns, or that is a
// symlink planted there, is refused, naming the owner; nothing is written
// through the link. As root too (CI is root): root must not run what
// another user wrote into a state dir.
func TestHostileForeignStateDir(t *testing.T) {
	wf := write(t, "ok.yaml", okWF)
	if os.Geteuid() == 0 {
		foreign := t.TempDir()
		if err := os.Chown(foreign, 65534, 65534); err != nil {
			t.Fatal(err)
		}
		r := runBin(t, nil, "--state-dir", foreign, "list")
		if r.code == 0 || !strings.Contains(r.stderr, "not owned by you") || !strings.Contains(r.stderr, "uid 65534") {
			t.Fatalf("a state dir owned by uid 65534: want a refusal naming the owner, got %+v", r)
		}
		if _, err := os.Stat(filepath.Join(foreign, "somaflow.db")); err == nil {
			t.Fatal("a database was created in a foreign state dir")
		}
		// A database file another user planted in the user's own state dir.
		own := t.TempDir()
		if r := runBin(t, nil, "--state-dir", own, "run", wf); r.code != 0 {
			t.Fatalf("run: %+v", r)
		}
		os.Chown(filepath.Join(own, "somaflow.db"), 65534, 65534)
		if r := runBin(t, nil, "--state-dir", own, "list"); r.code == 0 || !strings.Contains(r.stderr, "not owned by you") {
			t.Fatalf("a database owned by uid 65534: want a refusal, got %+v", r)
		}
	}
	state := t.TempDir()
	if r := runBin(t, nil, "--state-dir", state, "run", wf); r.code != 0 {
		t.Fatalf("run: %+v", r)
	}
	target := filepath.Join(t.TempDir(), "victim")
	os.WriteFile(target, []byte("precious\n"), 0o600)
	if err := os.Symlink(target, filepath.Join(state, "engine.log")); err != nil {
		t.Fatal(err)
	}
	env := []string{"SOMAFLOW_STATE_DIR=" + state}
	t.Cleanup(func() { runBin(t, env, "engine", "stop") })
	r := runBin(t, env, "submit", wf)
	if r.code == 0 || !strings.Contains(r.stderr, "symbolic link") {
		t.Fatalf("submit with engine.log planted as a symlink: want a refusal, got %+v", r)
	}
	if data, _ := os.ReadFile(target); string(data) != "precious\n" {
		t.Fatalf("the symlink's target was written: %q", data)
	}
}

// A database truncated to 0 bytes (or removed) in a state dir that was
// used is an error that says so, not a new empty database.
func TestHostileTruncatedDatabase(t *testing.T) {
	for _, how := range []string{"truncated", "removed"} {
		state := t.TempDir()
		if r := runBin(t, nil, "--state-dir", state, "run", write(t, "ok.yaml", okWF)); r.code != 0 {
			t.Fatalf("run: %+v", r)
		}
		db := filepath.Join(state, "somaflow.db")
		os.Remove(db + "-wal")
		os.Remove(db + "-shm")
		if how == "truncated" {
			os.Truncate(db, 0)
		} else {
			os.Remove(db)
		}
		r := runBin(t, nil, "--state-dir", state, "list")
		if r.code != 5 || !strings.Contains(r.stderr, "database missing or empty") {
			t.Fatalf("list with the database %s: want exit 5 saying so, got %+v", how, r)
		}
		if fi, err := os.Stat(db); how == "removed" && err == nil {
			t.Fatalf("a new database was created (%d bytes)", fi.Size())
		}
	}
}

// Control characters in workflow and job names and in a job's last stderr
// line reach the terminal escaped: no escape sequence, no carriage return,
// no newline that forges a table row; --json keeps the exact text.
func TestHostileControlCharacters(t *testing.T) {
	state := t.TempDir()
	wf := write(t, "esc.json", `{"name": "wf\u001b[2J", "jobs": {"evil\u001b]0;title\u0007\nFORGED ROW": {"shell": "printf 'boom\\033[31m\\r' >&2; exit 3"}}}`)
	r := runBin(t, nil, "--state-dir", state, "run", wf)
	for _, out := range []result{r, runBin(t, nil, "--state-dir", state, "status", "1"), runBin(t, nil, "--state-dir", state, "list"), runBin(t, nil, "--state-dir", state, "failed", "1")} {
		if strings.ContainsAny(out.stdout, "\x1b\r\a") || strings.Contains(out.stdout, "\nFORGED ROW") {
			t.Fatalf("raw control characters reached the output:\n%q", out.stdout)
		}
	}
	if !strings.Contains(r.stdout, `evil\x1b]0;title\a\nFORGED ROW`) || !strings.Contains(r.stdout, `boom\x1b[31m`) {
		t.Fatalf("run's summary should show the escaped name and stderr line:\n%s", r.stdout)
	}
	if j := runBin(t, nil, "--state-dir", state, "status", "--json", "1"); !strings.Contains(j.stdout, `"name":"evil\u001b]0;title\u0007\nFORGED ROW"`) {
		t.Fatalf("--json must keep the exact name: %s", j.stdout)
	}
}

// `logs` streams: a 200 MB log is shown (and tailed) in bounded memory, and
// a job whose stdout_file is /dev/zero gives an error, not an endless read.
func TestHostileHugeLogs(t *testing.T) {
	state := t.TempDir()
	big := filepath.Join(t.TempDir(), "big.out")
	wf := write(t, "big.yaml", "jobs:\n  big: {shell: 'yes 0123456789012345678901234567890123456789012345678 | head -n 4000000; echo last-line', stdout_file: "+big+"}\n  zero: {command: [\"true\"], stdout_file: /dev/zero}\n")
	if r := runBin(t, nil, "--state-dir", state, "run", wf); r.code != 0 {
		t.Fatalf("run: %+v", r)
	}
	// The peak memory of logs is measured from a small python3 between:
	// a process this test starts itself reports at least the test
	// process's size (it shares the test's memory until it execs).
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("no python3 to measure a process's peak memory:", err)
	}
	const peak = `import resource, subprocess, sys
code = subprocess.call(sys.argv[1:])
sys.stderr.write("%d" % resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
sys.exit(code)`
	logs := func(args ...string) (string, int64) {
		cmd := exec.Command(py, append([]string{"-c", peak, binary, "--state-dir", state, "logs"}, args...)...)
		var out, errb strings.Builder
		cmd.Stdout, cmd.Stderr = &out, &errb
		if err := cmd.Run(); err != nil {
			t.Fatalf("logs %v: %v %s", args, err, errb.String())
		}
		rss, err := strconv.ParseInt(errb.String(), 10, 64)
		if err != nil {
			t.Fatalf("logs %v: peak memory: %v", args, err)
		}
		return out.String(), rss // KiB
	}
	out, rss := logs("--stdout", "--tail", "2", "1", "big")
	if out != "0123456789012345678901234567890123456789012345678\nlast-line\n" {
		t.Fatalf("--tail 2: %q", out)
	}
	full, rss2 := logs("--stdout", "1", "big")
	if len(full) != 200000010 {
		t.Fatalf("the whole log: %d bytes, want 200000010", len(full))
	}
	if rss > 64<<10 || rss2 > 64<<10 {
		t.Fatalf("logs of a 200 MB file peaked at %d / %d KiB of memory: not streamed", rss, rss2)
	}
	r := runBin(t, nil, "--state-dir", state, "logs", "--stdout", "1", "zero")
	if !strings.Contains(r.stderr, "not a regular file") {
		t.Fatalf("logs of stdout_file /dev/zero: %+v", r)
	}
}

// A command no system can execute is refused at validation when it can be
// known (a NUL byte, an argument over the system's limit); one that only
// turns out too long at run time (a parameter) fails its job at once with
// the system's words, it is not retried forever; unrelated jobs run.
func TestHostileUnrunnableCommands(t *testing.T) {
	long := strings.Repeat("x", 200<<10)
	for name, doc := range map[string]string{
		"nul":  `{"jobs": {"a": {"command": ["echo", "a\u0000b"]}}}`,
		"long": `{"jobs": {"a": {"command": ["echo", "` + long + `"]}}}`,
	} {
		r := runBin(t, nil, "validate", write(t, name+".json", doc))
		if r.code != 2 || !strings.Contains(r.stderr, `job "a": command[1]`) {
			t.Fatalf("%s argument: want exit 2 naming job and field, got %+v", name, r)
		}
	}
	wf := write(t, "param.yaml", `jobs:
  produce: {shell: 'printf "{\"x\": \"%0204800d\"}" 0 > "$SOMAWF_OUTPUT_PARAMS"', has_outputs: true}
  consume: {command: [echo, '%(x)s'], params: {x: ""}, links: {x: produce.x}}
  other: {command: ["true"]}
`)
	for _, mode := range []string{"run", "submit"} {
		state := t.TempDir()
		env := []string{"SOMAFLOW_STATE_DIR=" + state}
		if mode == "run" {
			if r := runBin(t, env, "run", wf); r.code != 1 {
				t.Fatalf("run: want exit 1 (consume cannot start), got %+v", r)
			}
		} else {
			t.Cleanup(func() { runBin(t, env, "engine", "stop") })
			if r := runBin(t, env, "submit", wf); r.code != 0 {
				t.Fatalf("submit: %+v", r)
			}
			if r := runBin(t, env, "wait", "1", "--timeout", "60s"); r.code != 1 {
				t.Fatalf("wait: want exit 1, got %+v", r)
			}
		}
		r := runBin(t, env, "status", "--json", "1")
		if !strings.Contains(r.stdout, `"name":"consume","status":"failed","exit_status":"aborted"`) || !strings.Contains(r.stdout, "argument list too long") {
			t.Fatalf("%s: consume should fail with the system's words: %s", mode, r.stdout)
		}
		if !strings.Contains(r.stdout, `"name":"other","status":"done","exit_status":"finished_regularly","exit_value":0`) {
			t.Fatalf("%s: the unrelated job did not run: %s", mode, r.stdout)
		}
	}
}

// A state dir removed under a running engine: the engine notices (the
// directory's identity, each cycle) and exits, instead of running on
// invisibly while the next command starts a second engine on the path.
func TestHostileStateDirRemoved(t *testing.T) {
	state := filepath.Join(t.TempDir(), "state")
	env := []string{"SOMAFLOW_STATE_DIR=" + state}
	if r := runBin(t, env, "submit", write(t, "slow.yaml", "jobs: {s: {command: [sleep, \"300\"]}}\n")); r.code != 0 {
		t.Fatalf("submit: %+v", r)
	}
	var st struct {
		Running bool
		PID     int
	}
	waitFor(t, "the engine to run", func() bool {
		json.Unmarshal([]byte(runBin(t, env, "engine", "status", "--json").stdout), &st)
		return st.Running && st.PID > 0
	})
	// The engine's loop runs once it started the job.
	waitFor(t, "the job to run", func() bool {
		return strings.Contains(runBin(t, env, "status", "--json", "1").stdout, `"status":"running"`)
	})
	var doc struct {
		Jobs []struct {
			DRMSID string `json:"drms_id"`
		}
	}
	json.Unmarshal([]byte(runBin(t, env, "status", "--json", "1").stdout), &doc)
	sup := supervisorPID(state)
	t.Cleanup(func() {
		var job int
		fmt.Sscan(doc.Jobs[0].DRMSID, &job)
		for _, pid := range []int{job, sup} {
			if pid > 0 {
				syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	})
	if err := os.RemoveAll(state); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the engine to exit", func() bool { return !alive(st.PID) })
}

// alive tells whether a process runs (a zombie does not).
func alive(pid int) bool {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	return err == nil && !strings.Contains(string(stat), ") Z")
}

// supervisorPID is the pid the supervisor's bootstrap file records (0: none).
func supervisorPID(state string) int {
	data, _ := os.ReadFile(filepath.Join(state, "supervisor.json"))
	var b struct{ PID int }
	json.Unmarshal(data, &b)
	return b.PID
}

// A process that leaves its job's process group (setsid) does not outlive
// the job: the supervisor and run are child subreapers and kill what an
// ended job left behind; stop does the same.
func TestHostileSetsidEscapes(t *testing.T) {
	escapee := func(dir, name string, thenSleep bool) string {
		tail := ""
		if thenSleep {
			tail = "; sleep 300"
		}
		return fmt.Sprintf("  %s: {shell: 'setsid sleep 300 </dev/null >/dev/null 2>&1 & echo $! > %s/%s.pid%s'}\n", name, dir, name, tail)
	}
	pidOf := func(dir, name string) int {
		var pid int
		waitFor(t, name+"'s escapee", func() bool {
			data, err := os.ReadFile(filepath.Join(dir, name+".pid"))
			n, _ := fmt.Sscan(string(data), &pid)
			return err == nil && n == 1 && pid > 0
		})
		return pid
	}
	dir := t.TempDir()

	// run: gone when run returns.
	if r := runBin(t, nil, "run", write(t, "run.yaml", "jobs:\n"+escapee(dir, "r", false))); r.code != 0 {
		t.Fatalf("run: %+v", r)
	}
	// Killed as run ended (SIGKILL is delivered a moment later).
	r := pidOf(dir, "r")
	defer syscall.Kill(r, syscall.SIGKILL)
	waitFor(t, "the escapee of run's job to be gone", func() bool { return !alive(r) })

	// service: killed once its job ended; and at a stop.
	env, _ := service(t)
	if r := runBin(t, env, "submit", write(t, "svc.yaml", "jobs:\n"+escapee(dir, "s", false)+escapee(dir, "k", true))); r.code != 0 {
		t.Fatalf("submit: %+v", r)
	}
	s, k := pidOf(dir, "s"), pidOf(dir, "k")
	defer syscall.Kill(s, syscall.SIGKILL)
	defer syscall.Kill(k, syscall.SIGKILL)
	waitFor(t, "the supervisor to kill the escapee of an ended job", func() bool { return !alive(s) })
	if !alive(k) {
		t.Fatal("the escapee of a job still running was killed")
	}
	if r := runBin(t, env, "stop", "1"); r.code != 0 {
		t.Fatalf("stop: %+v", r)
	}
	waitFor(t, "the escapee of a stopped job to be killed", func() bool { return !alive(k) })
}

// fullDisk mounts a small tmpfs (root only: skipped otherwise) and returns
// its path and a function that fills it to the last byte, which returns a
// function that frees the space again.
func fullDisk(t *testing.T) (dir string, fill func() (free func())) {
	t.Helper()
	dir = filepath.Join(t.TempDir(), "fs")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size=4m,mode=0700"); err != nil {
		t.Skipf("cannot mount a tmpfs to fill (%v): needs root", err)
	}
	t.Cleanup(func() { syscall.Unmount(dir, syscall.MNT_DETACH) })
	return dir, func() func() {
		filler := filepath.Join(dir, "filler")
		f, err := os.Create(filler)
		if err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 4096)
		for {
			if _, err := f.Write(buf); err != nil {
				break
			}
		}
		f.Close()
		return func() { os.Remove(filler) }
	}
}

// A full filesystem under the state dir does not end the engine: it keeps
// what happens in memory, retries, and says why in status and wait; reads
// work meanwhile; once there is space again the workflow ends as it would
// have, every job run once.
func TestHostileFullDisk(t *testing.T) {
	fs, fill := fullDisk(t)
	state := filepath.Join(fs, "state")
	env := []string{"SOMAFLOW_STATE_DIR=" + state}
	gate := filepath.Join(t.TempDir(), "gate")
	wf := write(t, "chain.yaml", fmt.Sprintf(`jobs:
  a: {shell: 'while [ ! -e %s ]; do sleep 0.05; done'}
  b: {command: [echo, b], after: [a]}
  c: {command: [echo, c], after: [b]}
`, gate))
	if r := runBin(t, env, "submit", wf); r.code != 0 {
		t.Fatalf("submit: %+v", r)
	}
	var eng struct {
		Running bool
		PID     int
	}
	waitFor(t, "a to run", func() bool {
		return strings.Contains(runBin(t, env, "status", "--json", "1").stdout, `"status":"running"`)
	})
	json.Unmarshal([]byte(runBin(t, env, "engine", "status", "--json").stdout), &eng)
	free := fill()
	freed := false
	defer func() {
		if !freed {
			free()
		}
	}()
	os.WriteFile(gate, nil, 0o600) // a ends: the engine cannot record it
	waitFor(t, "the engine's problem in status", func() bool {
		return strings.Contains(runBin(t, env, "status", "1").stdout, "the engine cannot record progress")
	})
	r := runBin(t, env, "status", "--json", "1")
	var doc struct {
		EngineProblem *struct{ Since, Message string } `json:"engine_problem"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &doc); err != nil || r.code != 0 || doc.EngineProblem == nil ||
		!strings.Contains(doc.EngineProblem.Message, "full") {
		t.Fatalf("status --json on a full disk: want engine_problem naming the full filesystem, got %+v", r)
	}
	if r := runBin(t, env, "list"); r.code != 0 || !strings.Contains(r.stdout, "workflow_in_progress") {
		t.Fatalf("list on a full disk: %+v", r)
	}
	if r := runBin(t, env, "wait", "1", "--timeout", "1s"); r.code != 4 || !strings.Contains(r.stderr, "cannot record progress") {
		t.Fatalf("wait on a full disk: want exit 4 saying why, got %+v", r)
	}
	if r := runBin(t, env, "submit", wf); r.code != 5 || !strings.Contains(r.stderr, "full") {
		t.Fatalf("submit on a full disk: want exit 5 naming the full disk, got %+v", r)
	}
	if !alive(eng.PID) {
		t.Fatalf("the engine (pid %d) exited on a full disk", eng.PID)
	}
	free()
	freed = true
	r = runBin(t, env, "wait", "1", "--timeout", "60s", "--json")
	if r.code != 0 {
		t.Fatalf("wait once space is back: %+v", r)
	}
	for _, j := range []string{"a", "b", "c"} {
		if !strings.Contains(r.stdout, fmt.Sprintf(`"name":"%s","status":"done","exit_status":"finished_regularly","exit_value":0,"signal":null,"reason":null,"attempt":1`, j)) {
			t.Fatalf("job %s did not end once, done, exit 0: %s", j, r.stdout)
		}
	}
	if r := runBin(t, env, "status", "--json", "1"); !strings.Contains(r.stdout, `"engine_problem":null`) {
		t.Fatalf("the engine's problem is still shown once solved: %s", r.stdout)
	}
	if !alive(eng.PID) {
		t.Fatalf("the engine (pid %d) did not survive the full disk", eng.PID)
	}
	runBin(t, env, "engine", "stop")
	stopSupervisor(state)
}

// With SOMAFLOW_CGROUPS=1, where cgroups v2 are writable, every job runs in a cgroup of its own,
// under run's engine and under the supervisor (whose end kills it whole;
// drms/local's tests show the kill).
func TestHostileJobsInCgroups(t *testing.T) {
	state := filepath.Join(t.TempDir(), "state")
	env := []string{"SOMAFLOW_STATE_DIR=" + state, "SOMAFLOW_CGROUPS=1"}
	wf := write(t, "cg.yaml", "jobs: {cg: {command: [cat, /proc/self/cgroup]}}\n")
	runEnv := []string{"SOMAFLOW_STATE_DIR=" + filepath.Join(t.TempDir(), "run"), "SOMAFLOW_CGROUPS=1"}
	r := runBin(t, runEnv, "run", "--keep-state", wf)
	if r.code != 0 {
		t.Fatalf("run: %+v", r)
	}
	if r := runBin(t, env, "submit", wf); r.code != 0 {
		t.Fatalf("submit: %+v", r)
	}
	defer func() { runBin(t, env, "engine", "stop"); stopSupervisor(state) }()
	if r := runBin(t, env, "wait", "1", "--timeout", "60s"); r.code != 0 {
		t.Fatalf("wait: %+v", r)
	}
	sup := runBin(t, env, "logs", "1", "cg")
	inRun := runBin(t, runEnv, "logs", "1", "cg")
	has := func(out, prefix string) bool {
		for _, line := range strings.Split(out, "\n") {
			if rest, ok := strings.CutPrefix(line, "0::"); ok && strings.Contains(rest, "/"+prefix) {
				return true
			}
		}
		return false
	}
	if !has(sup.stdout, "somaflow-sup-") && !has(inRun.stdout, "somaflow-") {
		for _, s := range strings.Split(os.Getenv("SOMAFLOW_REQUIRE"), ",") {
			if s == "cgroups" {
				t.Fatalf("SOMAFLOW_REQUIRE=cgroups but jobs run outside job cgroups: %q / %q", sup.stdout, inRun.stdout)
			}
		}
		t.Skipf("no job cgroups here (cgroups v2 not writable): %q", sup.stdout)
	}
	if !has(sup.stdout, "somaflow-sup-") || !has(inRun.stdout, "somaflow-") {
		t.Fatalf("a job outside its cgroup: under the supervisor %q, under run %q", sup.stdout, inRun.stdout)
	}
}
