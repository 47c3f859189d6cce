// Package drmaa is somaflow's DRMAA v1 backend: jobs go to any DRMS that
// ships a DRMAA v1 C library (Grid Engine, slurm-drmaa, pbs-drmaa, LSF,
// HTCondor) through cgo and github.com/dgruber/drmaa.
//
// The cgo part is behind the build tag `drmaa`, so the default build needs no
// libdrmaa: without the tag, New returns an error wrapping ErrNotCompiled and
// Compiled is false. Build with
//
//	CGO_CFLAGS="-DSOG -I/usr/lib/gridengine-drmaa/include" \
//	CGO_LDFLAGS="-L/usr/lib/gridengine-drmaa/lib -Wl,-rpath,/usr/lib/gridengine-drmaa/lib" \
//	go build -tags drmaa ./cmd/somaflow
//
// (docs/drmaa.md has the flags for other DRMAA libraries).
//
// Every job runs under `somaflow exec-job` (cfg.ExecPath), which writes the
// attempt's status file in the spool; the outcome is taken from, in order:
// the status file, DRMAA's wait flags (with the quirks of the binding and of
// Grid Engine handled, see outcome.go), and Grid Engine's accounting (qacct)
// for jobs DRMAA has forgotten. The engine applies its own kill intent on top
// (drms.Resolve).
//
// A process holds at most one DRMAA session (the C library allows no more):
// every Backend of a process shares it, and the last Close ends it.
package drmaa

import "errors"

// ErrNotCompiled is returned by New in a build without the `drmaa` tag.
var ErrNotCompiled = errors.New("somaflow was built without DRMAA support; rebuild with -tags drmaa")

// Settings keys understood in drms.Config.Settings.
const (
	// SettingQueueOption is the native-specification option that selects a
	// queue: "-q" (Grid Engine, PBS, LSF; the default) or "-p" / "--partition"
	// (slurm-drmaa). The job's queue is passed as "OPTION QUEUE".
	SettingQueueOption = "queue_option"
	// SettingParallelOption is the native-specification template for parallel
	// jobs; {config} is the job's parallel configuration name, {nodes},
	// {cpus} (per node) and {slots} (nodes*cpus) the numbers. Default (Grid
	// Engine): "-pe {config} {slots}".
	SettingParallelOption = "parallel_option"
	// SettingNative is a native specification added to every job (before the
	// job's own).
	SettingNative = "native"
	// SettingAccounting says whether Grid Engine's qacct/qstat may be used to
	// find jobs DRMAA has forgotten and attempts lost in a crash: "true" (the
	// default when qacct is on PATH) or "false" (other DRMS).
	SettingAccounting = "accounting"
)
