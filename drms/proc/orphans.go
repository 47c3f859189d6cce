package proc

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// JobEnvVar is in the environment of every job somaflow starts, naming the
// attempt. Processes inherit it, so one that left its job's process group
// (setsid) and was reparented to a child subreaper (the supervisor, `run`)
// can still be traced to its job.
const JobEnvVar = "SOMAFLOW_JOB"

// Children lists the pids of this process's children, as the kernel lists
// them for each of its threads (/proc/self/task/*/children): jobs it
// started, and orphans reparented to it as a child subreaper.
func Children() []int {
	tasks, _ := filepath.Glob("/proc/self/task/*/children")
	var pids []int
	for _, t := range tasks {
		data, err := os.ReadFile(t)
		if err != nil {
			continue
		}
		for _, f := range strings.Fields(string(data)) {
			if pid, err := strconv.Atoi(f); err == nil {
				pids = append(pids, pid)
			}
		}
	}
	return pids
}

// JobOf is the job a process belongs to (its JobEnvVar), "" when it has
// none or cannot be read.
func JobOf(pid int) string {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/environ")
	if err != nil {
		return ""
	}
	for _, kv := range bytes.Split(data, []byte{0}) {
		if v, ok := bytes.CutPrefix(kv, []byte(JobEnvVar+"=")); ok {
			return string(v)
		}
	}
	return ""
}

// KillOrphans kills (SIGKILL) the children of this process that keep does
// not keep, with their process groups when they lead one, and returns how
// many it killed; reaping them is the caller's. keep gets a child's pid and
// a function giving its job (JobOf, read only if asked).
func KillOrphans(keep func(pid int, job func() string) bool) int {
	n := 0
	for _, pid := range Children() {
		if keep(pid, func() string { return JobOf(pid) }) {
			continue
		}
		if pgid, err := syscall.Getpgid(pid); err == nil && pgid == pid {
			_ = syscall.Kill(-pid, syscall.SIGKILL)
		}
		if syscall.Kill(pid, syscall.SIGKILL) == nil {
			n++
		}
	}
	return n
}
