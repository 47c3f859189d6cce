package supervisor

// This file holds the backend's connection to its supervisor: found
// through the bootstrap file or started, calls with timeouts, the event
// pump, and the resync after a lost connection.

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/somaflow/somaflow/drms"
	"github.com/somaflow/somaflow/drms/proc"
	"github.com/somaflow/somaflow/privdir"
)

// callTimeout bounds a call to the supervisor when ctx has no deadline.
const callTimeout = 30 * time.Second

// startTimeout bounds starting a new supervisor.
const startTimeout = 30 * time.Second

func withTimeout(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, callTimeout)
}

func (b *Backend) pump() {
	var batch []drms.Event
	for {
		select {
		case <-b.evWake:
		case <-b.done:
			return
		}
		b.evMu.Lock()
		batch, b.evq = b.evq, batch[:0]
		b.pumping = len(batch) > 0
		b.evMu.Unlock()
		for _, ev := range batch {
			select {
			case b.events <- ev:
			case <-b.done:
				return
			}
		}
		clear(batch)
		b.evMu.Lock()
		b.pumping = false
		if len(b.evq) > 0 {
			select {
			case b.evWake <- struct{}{}:
			default:
			}
		}
		b.evMu.Unlock()
	}
}

// conn returns the live connection, connecting to (or starting) the
// supervisor when there is none. A connection known to be broken (its
// reader saw the supervisor go, or a write failed) is never returned, even
// before its reader has handed it to lost: the caller would fail on it.
func (b *Backend) conn(ctx context.Context) (*clientConn, error) {
	b.mu.Lock()
	cc, closed := b.cc, b.closed
	b.mu.Unlock()
	if closed {
		return nil, errors.New("supervisor: backend closed")
	}
	if cc != nil && !cc.broken() {
		return cc, nil
	}
	b.dialMu.Lock()
	defer b.dialMu.Unlock()
	b.mu.Lock()
	cc = b.cc
	b.mu.Unlock()
	if cc != nil && !cc.broken() {
		return cc, nil
	}
	if cc != nil {
		b.mu.Lock()
		if b.cc == cc {
			b.cc = nil // its reader's lost finds it replaced: we connect here
		}
		b.mu.Unlock()
	}
	cc, err := b.connectOrStart(ctx)
	if err != nil {
		return nil, fmt.Errorf("supervisor: %w: %v", drms.ErrUnavailable, err)
	}
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		cc.c.Close()
		return nil, errors.New("supervisor: backend closed")
	}
	b.cc = cc
	b.mu.Unlock()
	go cc.read()
	if err := b.resync(ctx, cc); err != nil {
		// Not kept half-synced: the jobs it did not report would stay
		// running here for ever. The next conn (lost's loop, or a
		// caller's) connects and resyncs again.
		b.mu.Lock()
		if b.cc == cc {
			b.cc = nil
		}
		b.mu.Unlock()
		cc.c.Close()
		return nil, err
	}
	return cc, nil
}

// resync asks a (new) supervisor for every attempt still running here:
// after a supervisor died, they come back ended as undetermined. A start
// still being asked for (no record yet) is left to its call: it may not
// have reached any supervisor (it is then sent again, or located), and an
// "unknown" here would end it undetermined, never started.
func (b *Backend) resync(ctx context.Context, cc *clientConn) error {
	var keys []string
	b.mu.Lock()
	for k, j := range b.jobs {
		if j.rec.T != "" && !j.rec.ended() {
			keys = append(keys, k)
		}
	}
	b.mu.Unlock()
	if len(keys) == 0 {
		return nil
	}
	m, _, err := cc.call(ctx, Request{Op: "status", Keys: keys})
	if err == nil && m.Err != "" {
		err = errors.New(m.Err)
	}
	if err != nil {
		return fmt.Errorf("supervisor: resync: %w: %v", drms.ErrUnavailable, err)
	}
	for _, r := range m.Jobs {
		if r.T == recUnknown {
			b.mu.Lock()
			j := b.jobs[r.Key]
			var old Record
			if j != nil {
				old = j.rec
			}
			b.mu.Unlock()
			o := proc.Orphaned(old.PID, old.Tick, unixTime(old.Started),
				"the supervisor has no record of the job (its journal was lost); its exit status is unknown",
				"the supervisor has no record of the job (its journal was lost); the job was killed, its exit status is unknown")
			old.T, old.Reason, old.Ended = recLost, o.Reason, o.Ended.UnixNano()
			old.Key = r.Key
			r = old
		}
		b.watch(r, "", true)
	}
	return nil
}

// lost is called by a connection's reader when the supervisor went away:
// reconnect (starting a new supervisor if it died) and resync, so that its
// jobs are reported at once.
func (b *Backend) lost(cc *clientConn) {
	b.mu.Lock()
	if b.cc != cc || b.closed {
		b.mu.Unlock()
		return
	}
	b.cc = nil
	b.mu.Unlock()
	go func() {
		delay := 50 * time.Millisecond
		for {
			ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
			_, err := b.conn(ctx)
			cancel()
			if err == nil {
				return
			}
			select {
			case <-b.done:
				return
			case <-time.After(delay): // back-off after a failure, not a wait for a condition
			}
			delay = min(2*delay, 5*time.Second)
		}
	}()
}

// connectOrStart connects to the running supervisor or starts one. Starting
// is guarded by a flock, so two engines never start two supervisors for one
// state dir (the supervisor's own lock makes sure of it anyway).
func (b *Backend) connectOrStart(ctx context.Context) (*clientConn, error) {
	cc, err := b.connect(ctx)
	if err == nil {
		return cc, nil
	}
	lf, err := os.OpenFile(filepath.Join(b.dir, startLockName), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("start lock: %w", err)
	}
	defer lf.Close()
	if err := flockCtx(ctx, lf); err != nil {
		return nil, fmt.Errorf("start lock: %w", err)
	}
	defer unix.Flock(int(lf.Fd()), unix.LOCK_UN)
	if cc, err := b.connect(ctx); err == nil {
		return cc, nil
	}
	for range 3 {
		answer, err := b.spawn(ctx)
		if err != nil {
			return nil, err
		}
		cc, cerr := b.connect(ctx)
		if cerr == nil {
			return cc, nil
		}
		if answer != "busy" {
			return nil, fmt.Errorf("supervisor started but cannot be reached: %v", cerr)
		}
	}
	return nil, errors.New("a supervisor holds the state dir's lock but cannot be reached")
}

// flockCtx takes an exclusive flock, giving up when ctx ends.
func flockCtx(ctx context.Context, f *os.File) error {
	if unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB) == nil {
		return nil
	}
	done := make(chan error, 1)
	go func() { done <- unix.Flock(int(f.Fd()), unix.LOCK_EX) }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return ctx.Err() // the caller closes f, which ends the pending flock
	}
}

// spawn starts `ExecPath supervisor --state-dir DIR --idle D --ready-fd 3`
// in its own session and waits for its answer on the ready pipe.
func (b *Backend) spawn(ctx context.Context) (string, error) {
	logf, err := privdir.OpenFile(filepath.Join(b.dir, logName), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return "", fmt.Errorf("supervisor log: %w", err)
	}
	defer logf.Close()
	r, w, err := os.Pipe()
	if err != nil {
		return "", err
	}
	defer r.Close()
	exe := b.cfg.ExecPath
	if strings.Contains(exe, "/") {
		if abs, err := filepath.Abs(exe); err == nil {
			exe = abs // the supervisor runs in "/"
		}
	}
	cmd := exec.Command(exe, "supervisor", "--state-dir", b.dir, "--idle", b.idle.String(), "--ready-fd", "3")
	cmd.Dir = "/"
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.ExtraFiles = []*os.File{w}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	err = cmd.Start()
	w.Close()
	if err != nil {
		return "", fmt.Errorf("start %s supervisor: %w", b.cfg.ExecPath, err)
	}
	go cmd.Wait() // reap it if it exits while this process lives
	type res struct {
		s   string
		err error
	}
	ch := make(chan res, 1)
	go func() {
		data, err := io.ReadAll(io.LimitReader(r, 4096))
		ch <- res{strings.TrimSpace(string(data)), err}
	}()
	select {
	case x := <-ch:
		switch {
		case x.s == "ok" || x.s == "busy":
			return x.s, nil
		case x.s == "":
			return "", fmt.Errorf("supervisor (%s) exited before it was ready; see %s", b.cfg.ExecPath, filepath.Join(b.dir, logName))
		default:
			return "", fmt.Errorf("supervisor: %s", x.s)
		}
	case <-ctx.Done():
		return "", fmt.Errorf("supervisor did not get ready: %w", ctx.Err())
	}
}

// connect dials the supervisor named in the bootstrap file and says hello.
func (b *Backend) connect(ctx context.Context) (*clientConn, error) {
	bs, err := ReadBootstrap(b.dir)
	if err != nil {
		return nil, err
	}
	if bs.Protocol != ProtocolVersion {
		return nil, fmt.Errorf("supervisor pid %d speaks protocol %d, want %d", bs.PID, bs.Protocol, ProtocolVersion)
	}
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", bs.Socket)
	if err != nil {
		return nil, err
	}
	cc := newClientConn(b, c)
	// hello is answered before the reader runs: read it here.
	dl, _ := ctx.Deadline()
	c.SetDeadline(dl)
	cc.r = bufio.NewReaderSize(c, 1<<16)
	if _, err := cc.write(Request{ID: 1, Op: "hello", Protocol: ProtocolVersion, Tag: b.cfg.EngineTag}); err != nil {
		c.Close()
		return nil, err
	}
	line, err := cc.r.ReadBytes('\n')
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("hello: %w", err)
	}
	var m Message
	if err := json.Unmarshal(line, &m); err != nil || m.Err != "" {
		c.Close()
		return nil, fmt.Errorf("hello refused: %s%v", m.Err, err)
	}
	c.SetDeadline(time.Time{})
	cc.pid, cc.next = m.PID, 1
	return cc, nil
}

// clientConn is the one connection of a backend: calls are matched to
// replies by ID; events are handed to the backend.
type clientConn struct {
	b   *Backend
	c   net.Conn
	r   *bufio.Reader
	pid int

	wmu     sync.Mutex
	w       *bufio.Writer
	wrote   int64    // bytes the socket took, under wmu
	lastEnv []string // environment of the last start request sent

	mu      sync.Mutex
	next    uint64
	pending map[uint64]chan Message
	dead    chan struct{}
	err     error // set once broken: by the reader at its end, or by a failed write
}

func newClientConn(b *Backend, c net.Conn) *clientConn {
	cc := &clientConn{b: b, c: c, pending: map[uint64]chan Message{}, dead: make(chan struct{})}
	cc.w = bufio.NewWriter(countingWriter{c, &cc.wrote})
	return cc
}

// countingWriter counts the bytes the socket took.
type countingWriter struct {
	w io.Writer
	n *int64
}

func (c countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	*c.n += int64(n)
	return n, err
}

// broken reports whether the connection failed: it is not used again.
func (cc *clientConn) broken() bool {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	return cc.err != nil
}

// write sends one request; sent reports whether any byte of it may have
// reached the supervisor (a dead supervisor's socket takes none: EPIPE).
// A failed write breaks the connection: it is closed, and conn connects
// anew from then on, without waiting for the reader to see the end.
func (cc *clientConn) write(req Request) (sent bool, err error) {
	cc.wmu.Lock()
	defer cc.wmu.Unlock()
	if req.Job != nil {
		jb := *req.Job
		if cc.lastEnv != nil && slices.Equal(jb.Env, cc.lastEnv) {
			jb.Env, jb.SameEnv = nil, true
		} else {
			cc.lastEnv = jb.Env
			if cc.lastEnv == nil {
				cc.lastEnv = []string{}
			}
		}
		req.Job = &jb
	}
	data, err := json.Marshal(req)
	if err != nil {
		return false, err
	}
	before := cc.wrote
	cc.w.Write(data)
	cc.w.WriteByte('\n')
	if err := cc.w.Flush(); err != nil {
		cc.mu.Lock()
		if cc.err == nil {
			cc.err = fmt.Errorf("write to the supervisor failed: %v", err)
		}
		cc.mu.Unlock()
		cc.c.Close()
		return cc.wrote > before, err
	}
	return true, nil
}

// call sends req and waits for its reply; sent reports whether the request
// may have reached the supervisor (see also Backend.call).
func (cc *clientConn) call(ctx context.Context, req Request) (m Message, sent bool, err error) {
	ch := make(chan Message, 1)
	cc.mu.Lock()
	if cc.err != nil {
		cc.mu.Unlock()
		return m, false, cc.err
	}
	cc.next++
	req.ID = cc.next
	cc.pending[req.ID] = ch
	cc.mu.Unlock()
	defer func() {
		cc.mu.Lock()
		delete(cc.pending, req.ID)
		cc.mu.Unlock()
	}()
	if sent, err := cc.write(req); err != nil {
		return m, sent, err
	}
	select {
	case m = <-ch:
		return m, true, nil
	case <-cc.dead:
		select {
		case m = <-ch:
			return m, true, nil
		default:
		}
		return m, true, fmt.Errorf("connection to the supervisor lost: %v", cc.err)
	case <-ctx.Done():
		return m, true, ctx.Err()
	}
}

// send writes a request that wants no reply.
func (cc *clientConn) send(req Request) error {
	req.ID = 0
	_, err := cc.write(req)
	return err
}

// call sends req on cc (from conn) and waits for its reply. A request cc
// took no byte of (cc broke: its supervisor died, maybe before this
// process's reader saw it go) never reached any supervisor: it is sent once
// more, on a new connection (conn, starting a supervisor if need be),
// instead of failing, which a start would as uncertain, and a locate with
// it, on the same broken connection.
func (b *Backend) call(ctx context.Context, cc *clientConn, req Request) (m Message, sent bool, err error) {
	m, sent, err = cc.call(ctx, req)
	if err == nil || sent {
		return m, sent, err
	}
	ncc, cerr := b.conn(ctx)
	if cerr != nil || ncc == cc {
		return m, sent, err
	}
	return ncc.call(ctx, req)
}

func (cc *clientConn) read() {
	var err error
	for {
		var line []byte
		line, err = cc.r.ReadBytes('\n')
		if err != nil {
			break
		}
		var m Message
		if jerr := json.Unmarshal(line, &m); jerr != nil {
			err = fmt.Errorf("bad message from the supervisor: %v", jerr)
			break
		}
		if m.ID != 0 {
			cc.mu.Lock()
			ch := cc.pending[m.ID]
			cc.mu.Unlock()
			if ch != nil {
				ch <- m
			}
			continue
		}
		if m.Ev == "exit" || m.Ev == "start" {
			for _, r := range m.Jobs {
				cc.b.mu.Lock()
				_, watched := cc.b.jobs[r.Key]
				cc.b.mu.Unlock()
				if watched {
					cc.b.watch(r, "", true)
				}
			}
		}
	}
	cc.c.Close()
	cc.mu.Lock()
	if err == io.EOF {
		err = errors.New("the supervisor closed the connection")
	}
	cc.err = err
	close(cc.dead)
	cc.mu.Unlock()
	cc.b.lost(cc)
}
