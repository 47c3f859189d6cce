//go:build !linux

package execjob

import (
	"os/signal"
	"syscall"
)

// resetSignal hands sig back to its default behaviour (the Go runtime's for
// the signals it uses itself).
func resetSignal(sig syscall.Signal) { signal.Reset(sig) }
