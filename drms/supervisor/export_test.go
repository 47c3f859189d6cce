package supervisor

import (
	"net"
	"syscall"
	"time"
)

// BreakConnection stands in for the moment a supervisor has just died and
// this backend's reader has not seen it go yet: the connection in use is
// replaced by one whose writes fail at once, taking no byte, as a dead
// peer's socket does (EPIPE), and whose reader has not run. (The real
// connection is closed; its reader finds it replaced.)
func BreakConnection(b *Backend) {
	dc := deadConn{}
	b.mu.Lock()
	old := b.cc
	cc := newClientConn(b, dc)
	if old != nil {
		cc.pid = old.pid
	}
	b.cc = cc
	b.mu.Unlock()
	if old != nil {
		old.c.Close()
	}
}

// deadConn is the socket of a dead peer: every write fails with EPIPE.
type deadConn struct{}

func (deadConn) Read([]byte) (int, error) { return 0, net.ErrClosed }
func (deadConn) Write([]byte) (int, error) {
	return 0, &net.OpError{Op: "write", Net: "unix", Err: syscall.EPIPE}
}
func (deadConn) Close() error                     { return nil }
func (deadConn) LocalAddr() net.Addr              { return &net.UnixAddr{Net: "unix"} }
func (deadConn) RemoteAddr() net.Addr             { return &net.UnixAddr{Net: "unix"} }
func (deadConn) SetDeadline(time.Time) error      { return nil }
func (deadConn) SetReadDeadline(time.Time) error  { return nil }
func (deadConn) SetWriteDeadline(time.Time) error { return nil }
