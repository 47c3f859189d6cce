package batch

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/somaflow/somaflow/drms"
	"github.com/somaflow/somaflow/drms/execjob"
	"github.com/somaflow/somaflow/model"
)

// TestShellQuote runs a generated script through a real sh and checks that
// every argument arrives as it was.
func TestShellQuote(t *testing.T) {
	args := []string{"", "plain", "two words", "it's", `'`, `''`, `"dq"`, `$HOME`, "`id`", "a\nb", `\`, "*", "-n", "; rm -rf /", "$(echo x)", "tab\there", "é ü"}
	dir := t.TempDir()
	script := Script([]string{"# header"}, append([]string{"/bin/sh", "-c", `for a in "$@"; do printf '%s\0' "$a"; done`, "sh"}, args...))
	p := filepath.Join(dir, "s.sh")
	if err := WriteScript(p, script); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("/bin/sh", p).Output()
	if err != nil {
		t.Fatalf("script: %v\n%s", err, script)
	}
	got := strings.Split(strings.TrimSuffix(string(out), "\x00"), "\x00")
	if len(got) != len(args) {
		t.Fatalf("got %d args %q, want %q", len(got), got, args)
	}
	for i := range args {
		if got[i] != args[i] {
			t.Errorf("arg %d: got %q, want %q", i, got[i], args[i])
		}
	}
	if fi, _ := os.Stat(p); fi.Mode().Perm() != 0o600 {
		t.Errorf("script mode %v", fi.Mode().Perm())
	}
}

func TestSpool(t *testing.T) {
	state := t.TempDir()
	s, err := NewSpool(drms.Config{StateDir: state})
	if err != nil {
		t.Fatal(err)
	}
	spec := drms.JobSpec{EngineTag: "t1", WorkflowID: 7, JobID: 3, Attempt: 2, Argv: []string{"echo", "a b"}, Env: []string{"X=1"}, Dir: "/tmp", Stdout: "/tmp/o", Stderr: "/tmp/e"}
	p, err := s.Prepare(spec)
	if err != nil {
		t.Fatal(err)
	}
	root := filepath.Join(state, "spool", fmt.Sprintf("u%d-%s", os.Geteuid(), drms.EngineTag(state)))
	if s.Root != root || p.Status != filepath.Join(root, "7", "sf-t1-7-3-2.status") || p.Started != p.Status+".started" {
		t.Errorf("paths %+v", p)
	}
	for _, d := range []string{s.Root, p.Dir} {
		if fi, err := os.Stat(d); err != nil || fi.Mode().Perm() != 0o700 {
			t.Errorf("%s: %v %v", d, fi.Mode().Perm(), err)
		}
	}
	if fi, err := os.Stat(p.Env); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("env file: %v", err)
	}
	argv := s.ExecArgv("/x/somaflow", spec)
	o, err := execjob.Parse(argv[2:])
	if err != nil || argv[1] != "exec-job" || o.Status != p.Status || o.EnvFile != p.Env || strings.Join(o.Argv, "|") != "echo|a b" || o.Private != s.Root {
		t.Errorf("exec argv %q -> %+v %v", argv, o, err)
	}
	// An attempt that already started is not prepared twice.
	if err := os.WriteFile(p.Started, []byte("{}"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Prepare(spec); err == nil {
		t.Error("Prepare of a started attempt: no error")
	}
	if err := s.RemoveAttempt(spec); err != nil {
		t.Error(err)
	}
	if _, err := NewSpool(drms.Config{}); err == nil {
		t.Error("NewSpool without dirs: no error")
	}
}

// A spool dir shared by users and state dirs: each user and state dir has
// its own subdir, and a subdir someone else prepared (another owner, a
// symlink, open to others) is refused, naming why.
func TestSpoolSubdirsAreOwnAndChecked(t *testing.T) {
	shared := t.TempDir()
	os.Chmod(shared, 0o777|os.ModeSticky)
	a, err := NewSpool(drms.Config{SpoolDir: shared, StateDir: "/home/a/state", EngineTag: drms.EngineTag("/home/a/state")})
	if err != nil {
		t.Fatal(err)
	}
	b, err := NewSpool(drms.Config{SpoolDir: shared, StateDir: "/home/a/other", EngineTag: drms.EngineTag("/home/a/other")})
	if err != nil {
		t.Fatal(err)
	}
	if a.Root == b.Root || filepath.Dir(a.Root) != shared {
		t.Fatalf("two state dirs share spool subdir %s / %s", a.Root, b.Root)
	}
	if fi, err := os.Stat(shared); err != nil || fi.Mode().Perm() != 0o777 || fi.Mode()&os.ModeSticky == 0 {
		t.Fatalf("the shared spool dir's mode was changed: %v", fi.Mode())
	}
	cfg := func(tag string) drms.Config { return drms.Config{SpoolDir: shared, StateDir: "/x", EngineTag: tag} }
	planted, _ := SpoolRoot(cfg("planted"))
	if err := os.Mkdir(planted, 0o700); err != nil {
		t.Fatal(err)
	}
	if os.Geteuid() == 0 {
		os.Chown(planted, 65534, 65534)
		if _, err := NewSpool(cfg("planted")); err == nil || !strings.Contains(err.Error(), "not owned by you") {
			t.Errorf("a spool subdir owned by another user: %v", err)
		}
	}
	link, _ := SpoolRoot(cfg("link"))
	if err := os.Symlink(t.TempDir(), link); err != nil {
		t.Fatal(err)
	}
	if _, err := NewSpool(cfg("link")); err == nil || !strings.Contains(err.Error(), "symbolic link") {
		t.Errorf("a spool subdir that is a symlink: %v", err)
	}
}

func TestReadOutcome(t *testing.T) {
	dir := t.TempDir()
	write := func(s string) string {
		p := filepath.Join(dir, "s")
		if err := os.WriteFile(p, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	o, err := ReadOutcome(filepath.Join(dir, "missing"))
	if o != nil || err != nil {
		t.Errorf("missing file: %v %v", o, err)
	}
	o, err = ReadOutcome(write(`{"state":"exited","exit":3,"rusage":{"user_s":1.5,"sys_s":0.5,"max_rss_kib":2048,"wall_s":4},"started":"2026-01-02T03:04:05Z","ended":"2026-01-02T03:04:09Z"}`))
	if err != nil || o.ExitStatus != model.ExitFinishedRegular || *o.ExitValue != 3 || *o.Usage.CPUS != 2 || *o.Usage.MaxRSSKiB != 2048 || *o.Usage.WallS != 4 || o.Started.IsZero() || o.Usage.Raw["maxrss"] != "2048" {
		t.Errorf("exited: %+v %v", o, err)
	}
	o, err = ReadOutcome(write(`{"state":"signaled","signal":"SIGKILL","started":"2026-01-02T03:04:05Z","ended":"2026-01-02T03:04:09Z"}`))
	if err != nil || o.ExitStatus != model.ExitFinishedSignal || o.Signal != "SIGKILL" || o.ExitValue != nil {
		t.Errorf("signaled: %+v %v", o, err)
	}
	o, err = ReadOutcome(write(`{"state":"not_started","reason":"command \"x\" not found"}`))
	if err != nil || o.ExitStatus != model.ExitAborted || o.Status != model.JobFailed || !strings.Contains(o.Reason, "not found") || !o.Started.IsZero() {
		t.Errorf("not started: %+v %v", o, err)
	}
	for _, bad := range []string{`garbage`, `{"state":"exited"}`, `{"state":"signaled"}`, `{"state":"weird"}`} {
		if _, err := ReadOutcome(write(bad)); err == nil {
			t.Errorf("%s: no error", bad)
		}
	}
}

func TestCombine(t *testing.T) {
	now := time.Now()
	rec := drms.Signaled("SIGTERM", "time limit")
	rec.Started, rec.Ended = now.Add(-time.Minute), now
	wall := 60.0
	rec.Usage = drms.Usage{WallS: &wall, Raw: map[string]string{"Elapsed": "00:01:00"}}

	file := drms.Signaled("SIGTERM", "")
	got := Combine(file, rec)
	if got.Reason != "time limit" || got.Started != rec.Started || *got.Usage.WallS != 60 || got.Usage.Raw["Elapsed"] != "00:01:00" {
		t.Errorf("signal + record: %+v", got)
	}
	if file.Reason != "" {
		t.Error("Combine changed its argument")
	}
	// An exit code from the file is never overridden by the record.
	got = Combine(drms.Exited(7), rec)
	if got.ExitStatus != model.ExitFinishedRegular || *got.ExitValue != 7 || got.Reason != "" || got.Signal != "" {
		t.Errorf("exit + record: %+v", got)
	}
	if Combine(nil, rec) != rec || Combine(nil, nil) != nil {
		t.Error("nil cases")
	}
	if got := Combine(drms.NotStarted("x"), rec); !got.Started.IsZero() {
		t.Errorf("not started got a start time: %+v", got)
	}
}

func TestSignalName(t *testing.T) {
	if SignalName(9) != "SIGKILL" || SignalName(15) != "SIGTERM" || SignalName(200) != "SIG200" {
		t.Error(SignalName(9), SignalName(15), SignalName(200))
	}
}
