package proc

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/somaflow/somaflow/drms"
)

// needCgroups skips without usable cgroups v2, or fails when
// SOMAFLOW_REQUIRE names cgroups (CI, as root on a machine that has them).
func needCgroups(t *testing.T, name string) *Cgroups {
	t.Helper()
	t.Setenv(CgroupsEnv, "1")
	cg := OpenCgroups(name)
	if cg == nil {
		for _, s := range strings.Split(os.Getenv("SOMAFLOW_REQUIRE"), ",") {
			if s == "cgroups" {
				t.Fatal("SOMAFLOW_REQUIRE=cgroups but no job cgroup can be made here")
			}
		}
		t.Skip("cgroups v2 not usable here (not mounted, not writable)")
	}
	t.Cleanup(cg.Close)
	return cg
}

// A process that left its job's session and process group, and whose
// parent died (reparented to init: no subreaper here), is still in the
// job's cgroup, and the job's end kills it.
func TestCgroupKillsWhatEscapedTheJob(t *testing.T) {
	cg := needCgroups(t, fmt.Sprintf("somaflow-test-%d", os.Getpid()))
	dir := t.TempDir()
	pidFile := filepath.Join(dir, "escapee")
	spec := drms.JobSpec{Argv: []string{"sh", "-c", "setsid sleep 300 </dev/null >/dev/null 2>&1 & echo $! > " + pidFile + "; exec sleep 300"},
		Env: []string{"PATH=/usr/bin:/bin"}, Dir: dir, Stdout: filepath.Join(dir, "out"), Stderr: filepath.Join(dir, "err")}
	pid, out, err := StartIn(spec, dir, cg, "k1")
	if err != nil {
		t.Fatal(err)
	}
	var escapee int
	for deadline := time.Now().Add(10 * time.Second); escapee == 0; time.Sleep(10 * time.Millisecond) {
		data, _ := os.ReadFile(pidFile)
		fmt.Sscan(string(data), &escapee)
		if time.Now().After(deadline) {
			t.Fatal("the job did not start its escapee")
		}
	}
	t.Cleanup(func() { syscall.Kill(escapee, syscall.SIGKILL) })
	// $! is known before the escapee ran setsid: until it has its own
	// session it is still in the job's process group, and would die with
	// it (a loaded machine made this test fail that way).
	for deadline := time.Now().Add(10 * time.Second); sessionOf(escapee) != escapee; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the escapee (pid %d) never left its job's session", escapee)
		}
	}
	own, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", escapee))
	slot := cg.Of("k1")
	if slot == "" || !strings.HasSuffix(slot, strings.TrimSpace(strings.SplitAfter(string(own), "0::")[1])) {
		t.Fatalf("the escapee is in cgroup %q, want the job's (%s)", own, slot)
	}
	syscall.Kill(-pid, syscall.SIGKILL)
	var ws syscall.WaitStatus
	Wait4(pid, &ws, nil)
	out.Finish()
	if !processAlive(escapee) {
		t.Fatal("the escapee died with its job's process group: the test proves nothing")
	}
	cg.Kill("k1")
	for deadline := time.Now().Add(10 * time.Second); processAlive(escapee); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the escapee (pid %d) outlived its job's cgroup kill", escapee)
		}
	}
	// Once empty, the killed cgroup is removed.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		cg.Clean()
		if _, err := os.Stat(slot); os.IsNotExist(err) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the killed job's cgroup was not removed once empty")
		}
	}
	// A job that leaves nothing behind leaves its cgroup to the next job,
	// which runs there to its end.
	run := func(key string) (string, syscall.WaitStatus) {
		pid, out, err := StartIn(drms.JobSpec{Argv: []string{"sh", "-c", "sleep 0.1; exit 3"}, Env: spec.Env, Dir: dir,
			Stdout: "/dev/null", Stderr: "/dev/null"}, dir, cg, key)
		if err != nil {
			t.Fatal(err)
		}
		used := cg.Of(key)
		var ws syscall.WaitStatus
		Wait4(pid, &ws, nil)
		out.Finish()
		cg.Kill(key)
		return used, ws
	}
	first, ws1 := run("k2")
	second, ws2 := run("k3")
	if first != second || ws1.ExitStatus() != 3 || ws2.ExitStatus() != 3 {
		t.Fatalf("jobs in a cgroup used again: cgroups %s and %s, wait statuses %v and %v; want one cgroup, exit 3 twice",
			first, second, ws1, ws2)
	}
}

// processAlive tells whether a process runs (a zombie does not).
func processAlive(pid int) bool {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	return err == nil && !strings.Contains(string(stat), ") Z")
}

// BenchmarkStartTrue measures starting and reaping `true`, in a cgroup of
// its own (removed at its end) and without.
func BenchmarkStartTrue(b *testing.B) {
	b.Setenv(CgroupsEnv, "1")
	dir := b.TempDir()
	spec := drms.JobSpec{Argv: []string{"true"}, Env: []string{"PATH=/usr/bin:/bin"}, Dir: dir,
		Stdout: "/dev/null", Stderr: "/dev/null"}
	cg := OpenCgroups(fmt.Sprintf("somaflow-bench-%d", os.Getpid()))
	defer cg.Close()
	for _, bc := range []struct {
		name string
		cg   *Cgroups
	}{{"plain", nil}, {"cgroup", cg}} {
		if bc.name == "cgroup" && cg == nil {
			b.Skip("no cgroups here")
		}
		b.Run(bc.name, func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				key := fmt.Sprint(i)
				pid, out, err := StartIn(spec, dir, bc.cg, key)
				if err != nil {
					b.Fatal(err)
				}
				var ws syscall.WaitStatus
				Wait4(pid, &ws, nil)
				out.Finish()
				bc.cg.Kill(key)
				if !ws.Exited() || ws.ExitStatus() != 0 {
					b.Fatalf("true: wait status %v", ws)
				}
			}
		})
	}
}

// sessionOf is the session id of process pid (/proc/PID/stat), 0 if
// unknown.
func sessionOf(pid int) int {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// After the command's name in parentheses: state ppid pgrp session.
	i := strings.LastIndexByte(string(data), ')')
	if i < 0 {
		return 0
	}
	var state string
	var ppid, pgrp, sid int
	fmt.Sscan(string(data[i+1:]), &state, &ppid, &pgrp, &sid)
	return sid
}
