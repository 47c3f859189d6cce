package execjob

import (
	"syscall"
	"unsafe"
)

// resetSignal restores sig's default disposition with a raw rt_sigaction:
// signal.Reset hands signals such as SIGSEGV or SIGQUIT back to the Go
// runtime, which would print a traceback and exit 2 instead of dying by them.
// An all-zero kernel sigaction is SIG_DFL with no flags on every Linux
// architecture, whatever the order of its fields.
func resetSignal(sig syscall.Signal) {
	var act [8]uint64
	_, _, _ = syscall.RawSyscall6(syscall.SYS_RT_SIGACTION, uintptr(sig), uintptr(unsafe.Pointer(&act)), 0, 8, 0, 0)
	var set uint64 = 1 << (uint(sig) - 1)
	_, _, _ = syscall.RawSyscall6(syscall.SYS_RT_SIGPROCMASK, 1 /* SIG_UNBLOCK */, uintptr(unsafe.Pointer(&set)), 0, 8, 0, 0)
}
