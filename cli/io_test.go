package cli

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The TTY policy lives in IO: indented JSON, colour and questions only on
// a terminal, compact JSON and no colour for programs.
func TestIOPolicy(t *testing.T) {
	t.Setenv("NO_COLOR", "")
	t.Setenv("TERM", "xterm")
	for _, tc := range []struct {
		tty             bool
		json, painted   string
		confirms, color bool
	}{
		{tty: false, json: "{\"a\":1}\n", painted: "x", confirms: false},
		{tty: true, json: "{\n  \"a\": 1\n}\n", painted: "\x1b[31mx\x1b[0m", confirms: true, color: true},
	} {
		s, in, out, _ := Test()
		s.SetTTY(tc.tty)
		if err := s.JSON(map[string]int{"a": 1}); err != nil {
			t.Fatal(err)
		}
		if out.String() != tc.json {
			t.Errorf("tty=%v: JSON %q, want %q", tc.tty, out.String(), tc.json)
		}
		if got := s.paint("31", "x"); got != tc.painted || s.Color() != tc.color {
			t.Errorf("tty=%v: paint %q (colour %v), want %q", tc.tty, got, s.Color(), tc.painted)
		}
		in.WriteString("yes\n")
		if got := s.Confirm("sure?"); got != tc.confirms {
			t.Errorf("tty=%v: Confirm %v, want %v", tc.tty, got, tc.confirms)
		}
	}
}

// Commands run in-process on the factory's streams: nothing reaches the
// process's own stdout or stderr, and the lazily opened client is closed
// at the end of the invocation.
func TestFactoryRunInProcess(t *testing.T) {
	t.Setenv("SOMAFLOW_CONFIG", "")
	state := t.TempDir()
	for _, tc := range []struct {
		args []string
		code int
		out  string // in stdout
		err  string // in stderr
	}{
		{[]string{"--state-dir", state, "list", "--json"}, ExitOK, "[]", ""},
		{[]string{"--state-dir", state, "status", "7"}, ExitNotFound, "", "7"},
		{[]string{"--state-dir", state, "status", "x"}, ExitBadInput, "", `"x" is not a workflow id`},
		{[]string{"--state-dir", state, "list", "extra"}, ExitBadInput, "", "list takes no arguments"},
		{[]string{"version", "--json"}, ExitOK, `"schema_version"`, ""},
	} {
		s, _, out, errOut := Test()
		f := NewFactory(s)
		f.OwnProcess = false
		code := f.Run(context.Background(), append([]string{"somaflow"}, tc.args...))
		if code != tc.code || !strings.Contains(out.String(), tc.out) || !strings.Contains(errOut.String(), tc.err) {
			t.Errorf("%v: exit %d, stdout %q, stderr %q; want exit %d, %q in stdout, %q in stderr",
				tc.args, code, out.String(), errOut.String(), tc.code, tc.out, tc.err)
		}
		if f.client != nil {
			t.Errorf("%v: the factory's client is still open after Run", tc.args)
		}
	}
}

// On a terminal, run draws a progress bar on stderr from the jobs counted
// in the database while they run, and clears it when the run ends.
func TestProgressBar(t *testing.T) {
	t.Setenv("SOMAFLOW_CONFIG", "")
	wf := filepath.Join(t.TempDir(), "wf.yaml")
	if err := os.WriteFile(wf, []byte("jobs:\n  quick: {command: [\"true\"]}\n  slow: {command: [sleep, \"1.5\"]}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	s, _, _, errOut := Test()
	s.SetTTY(true)
	f := NewFactory(s)
	f.OwnProcess = false
	if code := f.Run(context.Background(), []string{"somaflow", "--state-dir", t.TempDir(), "run", wf}); code != ExitOK {
		t.Fatalf("run: exit %d: %s", code, errOut)
	}
	bar := errOut.String()
	if !strings.Contains(bar, "] 1/2  1 running  0 failed  0 aborted ") || !strings.HasSuffix(bar, "\r\x1b[K") {
		t.Fatalf("progress bar: want 1 of 2 jobs ended while the other runs, then the bar cleared: %q", bar)
	}
}
