package supervisor

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/somaflow/somaflow/drms"
	"github.com/somaflow/somaflow/drms/hold"
	"github.com/somaflow/somaflow/drms/proc"
	"github.com/somaflow/somaflow/privdir"
)

// DefaultIdle is how long a supervisor with no running job and no connected
// engine waits before it exits.
const DefaultIdle = 60 * time.Second

// compactAfter: the journal is rewritten once this many jobs were forgotten
// (acknowledged) since the last rewrite, and more than it still remembers.
const compactAfter = 4096

// locateWait bounds how long "locate" waits for older connections of the same
// engine to be read to their end before it answers.
const locateWait = 10 * time.Second

// Main runs the supervisor: `somaflow supervisor --state-dir DIR [--idle
// 60s] [--ready-fd N]` (args are the arguments after "supervisor"). It
// returns the process exit code: 0 after an idle exit (or when another
// supervisor already serves the state dir), 1 on error, 2 on bad usage.
//
// It takes `<state>/supervisor.lock` (one supervisor per state dir), becomes
// a child subreaper, replays and compacts the journal — jobs a dead earlier
// supervisor was running are killed (whole process group, pid reuse checked)
// and recorded as lost —, listens on the Unix socket and writes
// supervisor.json. With --ready-fd it writes "ok" (or "busy", or an error)
// to that file descriptor and closes it once it serves or has failed.
func Main(ctx context.Context, args []string) int {
	fs := flag.NewFlagSet("supervisor", flag.ContinueOnError)
	stateDir := fs.String("state-dir", "", "state directory of the engine (required)")
	idle := fs.Duration("idle", DefaultIdle, "exit after this long with no running job and no engine connected")
	readyFD := fs.Int("ready-fd", -1, "file descriptor to report readiness on (internal)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	var ready *os.File
	if *readyFD >= 0 {
		ready = os.NewFile(uintptr(*readyFD), "ready")
	}
	report := func(msg string) {
		if ready != nil {
			io.WriteString(ready, msg+"\n")
			ready.Close()
			ready = nil
		}
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, nil)).With("pid", os.Getpid())
	fail := func(err error) int {
		log.Error("supervisor", "err", err)
		report("error: " + err.Error())
		return 1
	}
	if *stateDir == "" || fs.NArg() > 0 {
		fmt.Fprintln(os.Stderr, "usage: somaflow supervisor --state-dir DIR [--idle DURATION]")
		report("error: bad usage")
		return 2
	}
	if *idle <= 0 {
		fmt.Fprintln(os.Stderr, "supervisor: --idle must be positive")
		report("error: bad usage")
		return 2
	}
	dir, err := filepath.Abs(*stateDir)
	if err != nil {
		return fail(err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fail(fmt.Errorf("state dir: %w", err))
	}
	lock, err := os.OpenFile(filepath.Join(dir, lockName), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return fail(fmt.Errorf("lock: %w", err))
	}
	defer lock.Close()
	if !flockWait(ctx, lock, 10*time.Second) {
		log.Info("another supervisor serves this state dir", "state_dir", dir)
		report("busy")
		return 0
	}
	s := &server{stateDir: dir, idle: *idle, log: log,
		jobs: map[string]*sjob{}, byPID: map[int]*sjob{}, conns: map[*sconn]struct{}{},
		sweepNow: make(chan struct{}, 1), early: map[int]earlyExit{},
		cg: proc.OpenCgroups("somaflow-sup-" + drms.EngineTag(dir))}
	if err := s.run(ctx, report); err != nil {
		return fail(err)
	}
	return 0
}

// flockWait takes an exclusive flock, waiting up to d (an exiting
// supervisor may still hold it for a moment).
func flockWait(ctx context.Context, f *os.File, d time.Duration) bool {
	if unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB) == nil {
		return true
	}
	done := make(chan error, 1)
	go func() { done <- unix.Flock(int(f.Fd()), unix.LOCK_EX) }()
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case err := <-done:
		return err == nil
	case <-t.C:
	case <-ctx.Done():
	}
	return false // the goroutine's flock dies with the fd (Main closes it)
}

type server struct {
	stateDir string
	idle     time.Duration
	log      *slog.Logger
	jr       *journal

	// sweepNow asks the sweeper to look for escaped processes now.
	sweepNow chan struct{}
	// cg gives each job a cgroup of its own (nil where unavailable).
	cg *proc.Cgroups

	mu         sync.Mutex
	jobs       map[string]*sjob // every remembered job, by key
	byPID      map[int]*sjob    // running jobs
	conns      map[*sconn]struct{}
	connSeq    uint64
	lastActive time.Time
	forgotten  int // jobs acknowledged since the last journal rewrite
	// starting counts forks whose pid is not registered yet; exits of
	// unknown pids reaped meanwhile wait in early for their starter.
	starting int
	early    map[int]earlyExit
	// q holds the jobs waiting for their dependencies or their pool's
	// slots, and counts the slots of the started ones.
	q     hold.Queue
	retry *time.Timer // a dispatch tried again (see retryDispatchLocked)
	// started are held jobs started since the last start events went out
	// (startEvents): a job that ends before is told by its exit alone.
	started []*sjob
	// flushing: a write of the queued messages is due (flushSoonLocked).
	flushing bool
	// reaping: the reaper is ending a job (exited), and may start the one
	// held job its end lets start itself: next (dispatchLocked).
	reaping bool
	next    *heldStart
}

type earlyExit struct {
	ws    syscall.WaitStatus
	ru    syscall.Rusage
	ended time.Time
}

type sjob struct {
	rec  Record
	kill *time.Timer
	out  *proc.Output // lazily created log files, finished at exit
	// pool and need: the slots the job takes while it runs.
	pool string
	need int
	// held is set while the job is held (not started yet).
	held *hold.Job
	// killGrace is set when the job is killed while it is being started
	// (between its intent and its fork): launch kills it with that grace.
	killGrace time.Duration
}

// heldStart is what a held job needs to start later (its hold.Job's Data).
type heldStart struct {
	j   *sjob
	req Request
	env []string
}

func (s *server) run(ctx context.Context, report func(string)) error {
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		return fmt.Errorf("PR_SET_CHILD_SUBREAPER: %w", err)
	}
	// Caught, not ignored: an ignored signal stays ignored in the jobs
	// (a pipeline's writer would then see EPIPE instead of dying quietly).
	signal.Notify(make(chan os.Signal, 1), syscall.SIGHUP, syscall.SIGPIPE)
	sigchld := make(chan os.Signal, 1)
	signal.Notify(sigchld, syscall.SIGCHLD)
	defer signal.Stop(sigchld)

	if err := s.recoverJournal(); err != nil {
		return err
	}
	defer s.jr.close()
	defer s.cg.Close()

	sock, err := SocketPath(s.stateDir)
	if err != nil {
		return err
	}
	os.Remove(sock) // a dead supervisor's socket; we hold the lock
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: sock, Net: "unix"})
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	defer ln.Close() // unlinks the socket
	if err := os.Chmod(sock, 0o600); err != nil {
		return fmt.Errorf("socket mode: %w", err)
	}
	me := os.Getpid()
	if err := writeBootstrap(s.stateDir, Bootstrap{Version: BootstrapVersion, Protocol: ProtocolVersion,
		Socket: sock, PID: me, Tick: proc.StartTick(me), Started: time.Now().UTC()}); err != nil {
		return err
	}
	defer func() {
		if b, err := ReadBootstrap(s.stateDir); err == nil && b.PID == me {
			os.Remove(filepath.Join(s.stateDir, bootstrapName))
		}
	}()

	reapDone := make(chan struct{})
	defer close(reapDone)
	go s.reaper(sigchld, reapDone)
	go s.sweeper(reapDone)

	s.mu.Lock()
	s.lastActive = time.Now()
	s.mu.Unlock()
	s.log.Info("supervisor serving", "state_dir", s.stateDir, "socket", sock, "idle", s.idle)
	report("ok")

	go func() {
		<-ctx.Done()
		ln.SetDeadline(time.Now())
	}()
	for {
		ln.SetDeadline(time.Now().Add(s.idle))
		c, err := ln.AcceptUnix()
		if err != nil {
			if ctx.Err() != nil {
				s.log.Info("supervisor stopped", "running", s.running())
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				if s.idleNow() {
					s.log.Info("supervisor idle: exiting")
					return nil
				}
				continue
			}
			return fmt.Errorf("accept: %w", err)
		}
		if !sameUser(c) {
			c.Close()
			continue
		}
		s.serve(c)
	}
}

func (s *server) running() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.byPID)
}

// idleNow: no running job, no connection, and nothing happened for the idle
// period. Only the accept loop calls it, so no connection is half-accepted.
func (s *server) idleNow() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.byPID) == 0 && len(s.conns) == 0 && time.Since(s.lastActive) >= s.idle
}

func sameUser(c *net.UnixConn) bool {
	raw, err := c.SyscallConn()
	if err != nil {
		return false
	}
	var cred *unix.Ucred
	var cerr error
	raw.Control(func(fd uintptr) { cred, cerr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED) })
	return cerr == nil && (int(cred.Uid) == os.Getuid() || cred.Uid == 0)
}

// recoverJournal replays the journal, ends the jobs of a dead supervisor
// (killing what is left of them) and rewrites a compact journal.
func (s *server) recoverJournal() error {
	path := filepath.Join(s.stateDir, journalName)
	recs, truncAt, err := ReplayJournal(path)
	if err != nil {
		return err
	}
	if truncAt >= 0 {
		s.log.Warn("journal: partial last record ignored", "offset", truncAt)
	}
	for _, r := range recs {
		switch r.T {
		case recIntent:
			r.T, r.Ended = recLost, time.Now().UnixNano()
			r.Reason = "the supervisor died while starting the job; whether it started is unknown"
		case recWait:
			// Held and never started (its intent would follow the wait):
			// the engine submits it again.
			r.T = recDropped
		case recStart, recKill:
			o := proc.Orphaned(r.PID, r.Tick, unixTime(r.Started),
				"the supervisor died while the job ran; its exit status is unknown",
				"the supervisor died while the job ran; its process group was killed, its exit status is unknown")
			r.T, r.Reason, r.Ended = recLost, o.Reason, o.Ended.UnixNano()
			s.log.Warn("job of a dead supervisor ended as undetermined", "key", r.Key, "pid", r.PID, "reason", o.Reason)
		}
		s.jobs[r.Key] = &sjob{rec: *r}
	}
	s.jr, err = writeJournal(path, recs)
	return err
}

func (s *server) snapshot() map[string]*Record {
	m := make(map[string]*Record, len(s.jobs))
	for k, j := range s.jobs {
		r := j.rec
		m[k] = &r
	}
	return m
}

// reaper collects every exit: jobs, and orphans reparented to this
// subreaper. Each SIGCHLD wakes it to reap, without blocking, all that
// exited (signals coalesce: one wake may stand for many exits). It does
// not sit in a blocking wait4: a goroutine blocked in a system call holds
// on to its P, and the start of the next job (a goroutine of its own)
// then waits for the runtime to hand that P over.
func (s *server) reaper(sigchld <-chan os.Signal, done <-chan struct{}) {
	for {
		for {
			var ws syscall.WaitStatus
			var ru syscall.Rusage
			pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, &ru)
			if err == syscall.EINTR {
				continue
			}
			if err != nil || pid <= 0 {
				if err != nil && err != syscall.ECHILD {
					s.log.Error("wait4", "err", err)
				}
				break // none left that exited (or no child at all)
			}
			s.exited(pid, ws, &ru, time.Now())
		}
		select {
		case <-sigchld:
		case <-done:
			return
		}
	}
}

// sweepEvery is how often the supervisor looks for processes that escaped
// an ended job's process group (setsid) and were reparented to it.
const sweepEvery = 2 * time.Second

// sweepDelay gathers the job ends of a burst into one sweep.
const sweepDelay = 200 * time.Millisecond

// sweeper kills, after each job's end and every sweepEvery, the children
// of the supervisor that are no running job's: processes that left an
// ended job's process group and were reparented to the supervisor (a child
// subreaper). A child that says it belongs to a job still running
// (proc.JobEnvVar) is left alone; one that says nothing only once no job
// runs. The reaper reaps them.
func (s *server) sweeper(done <-chan struct{}) {
	tick := time.NewTicker(sweepEvery)
	defer tick.Stop()
	for {
		select {
		case <-done:
			return
		case <-tick.C:
		case <-s.sweepNow:
			// Job ends come in bursts: one look for a burst.
			select {
			case <-done:
				return
			case <-time.After(sweepDelay):
			}
		}
		s.sweep()
	}
}

func (s *server) sweep() {
	// Under s.mu: no job is being started (forked, not yet registered)
	// while children are told apart.
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.starting > 0 {
		return
	}
	running := make(map[string]bool, len(s.byPID))
	for _, j := range s.byPID {
		running[j.rec.Key] = true
	}
	n := proc.KillOrphans(func(pid int, job func() string) bool {
		if s.byPID[pid] != nil {
			return true // a running job itself
		}
		j := job()
		return running[j] || (j == "" && len(running) > 0)
	})
	if n > 0 {
		s.log.Info("killed processes that escaped ended jobs", "processes", n)
	}
	s.cg.Clean()
}

func (s *server) exited(pid int, ws syscall.WaitStatus, ru *syscall.Rusage, ended time.Time) {
	s.mu.Lock()
	j := s.byPID[pid]
	if j == nil {
		if s.starting > 0 {
			s.early[pid] = earlyExit{ws: ws, ru: *ru, ended: ended}
		}
		s.mu.Unlock()
		return // else an orphan reparented to us, or a failed exec
	}
	s.reaping = true
	conns := s.endLocked(pid, j, ws, ru, ended)
	s.reaping = false
	next := s.next
	s.next = nil
	s.mu.Unlock()
	for _, c := range conns {
		c.flush()
	}
	if next != nil {
		s.launch(next.j, next.req, next.env, nil)
	}
}

// endLocked records a job's exit (journal first) and queues its event on
// every connection, which the caller flushes after unlocking s.mu.
func (s *server) endLocked(pid int, j *sjob, ws syscall.WaitStatus, ru *syscall.Rusage, ended time.Time) []*sconn {
	delete(s.byPID, pid)
	if j.kill != nil {
		j.kill.Stop()
	}
	// A job's leftovers do not outlive it: its process group and its
	// cgroup now, and what escaped the group (setsid) once it is
	// reparented to us (sweep) where there are no cgroups.
	_ = syscall.Kill(-pid, syscall.SIGKILL)
	s.cg.Kill(j.rec.Key)
	select {
	case s.sweepNow <- struct{}{}:
	default:
	}
	// Its logs are complete before its end is told.
	lost := proc.LostOutputReason(j.out.Finish())
	w := int(ws)
	j.rec.merge(Record{T: recExit, Ended: ended.UnixNano(), WS: &w,
		UtimeUS: ru.Utime.Nano() / 1000, StimeUS: ru.Stime.Nano() / 1000, MaxRSS: ru.Maxrss, Reason: lost})
	if err := s.jr.append(j.rec); err != nil {
		s.log.Error("journal", "err", err)
	}
	s.jr.syncSoon()
	s.lastActive = ended
	s.q.Release(j.pool, j.need)
	conns := s.broadcastLocked("exit", j.rec)
	// The jobs held for this one or for its slot start now, as its end is
	// told: no round trip to the engine between two jobs.
	started := s.starting
	conns = append(conns, s.dispatchLocked()...)
	if s.starting > started {
		// Its slot is taken again already: the engine has nothing to
		// start in it, and reads the ends of a burst at one wake-up.
		s.flushSoonLocked()
		return nil
	}
	return conns
}

// exitDelay bounds how long the exit event of a job whose end started a
// held one waits to be written: the clients read and record the ends of a
// burst together (one wake-up, one commit) instead of one by one. Any other
// message written meanwhile takes it along.
const exitDelay = 5 * time.Millisecond

// flushSoonLocked writes the queued messages of every connection within
// exitDelay.
func (s *server) flushSoonLocked() {
	if s.flushing {
		return
	}
	s.flushing = true
	time.AfterFunc(exitDelay, func() {
		s.mu.Lock()
		s.flushing = false
		conns := make([]*sconn, 0, len(s.conns))
		for c := range s.conns {
			conns = append(conns, c)
		}
		s.mu.Unlock()
		for _, c := range conns {
			c.flush()
		}
	})
}

// writeTimeout drops a client that does not read its messages.
const writeTimeout = 10 * time.Second

// sconn is one client connection: requests are handled in order by its
// reader (starts in their own goroutines); replies and events are queued, then written by whoever queued
// them (flush), so that no extra goroutine stands between an exit and its
// event.
type sconn struct {
	s        *server
	c        *net.UnixConn
	seq      uint64
	tag      string
	closed   chan struct{}  // every request read and handled
	lastEnv  []string       // of the last start request (reader only)
	inflight sync.WaitGroup // starts being handled

	mu      sync.Mutex
	out     []Message
	writing bool
	dead    bool

	w   *bufio.Writer
	enc *json.Encoder
}

func (s *server) serve(c *net.UnixConn) {
	s.mu.Lock()
	s.connSeq++
	sc := &sconn{s: s, c: c, seq: s.connSeq, closed: make(chan struct{})}
	sc.w = bufio.NewWriterSize(c, 1<<16)
	sc.enc = json.NewEncoder(sc.w)
	s.conns[sc] = struct{}{}
	s.lastActive = time.Now()
	s.mu.Unlock()
	go sc.reader()
}

// queue adds a message; flush writes it.
func (c *sconn) queue(m Message) {
	c.mu.Lock()
	if !c.dead {
		c.out = append(c.out, m)
	}
	c.mu.Unlock()
}

func (c *sconn) send(m Message) {
	c.queue(m)
	c.flush()
}

// flush writes the queued messages unless another goroutine is writing
// them already (it then writes ours too).
func (c *sconn) flush() {
	c.mu.Lock()
	if c.writing {
		c.mu.Unlock()
		return
	}
	c.writing = true
	for len(c.out) > 0 && !c.dead {
		batch := c.out
		c.out = nil
		c.mu.Unlock()
		for _, m := range batch {
			c.enc.Encode(m)
		}
		c.c.SetWriteDeadline(time.Now().Add(writeTimeout))
		err := c.w.Flush()
		c.mu.Lock()
		if err != nil {
			// Only the write side is shut: the peer sees the end of the
			// connection, and what it sent before it died or gave up is
			// still read and carried out to its end. Closing the whole
			// connection here would drop a dead engine's last requests
			// unread at random, and "locate" could not say whether they
			// were ever carried out.
			c.dead = true
			c.c.CloseWrite()
		}
	}
	c.writing = false
	c.mu.Unlock()
}

func (c *sconn) reader() {
	s := c.s
	defer func() {
		c.inflight.Wait()
		s.mu.Lock()
		delete(s.conns, c)
		s.lastActive = time.Now()
		s.mu.Unlock()
		c.mu.Lock()
		c.dead = true
		c.mu.Unlock()
		close(c.closed)
		c.c.Close()
	}()
	sc := bufio.NewScanner(c.c)
	sc.Buffer(make([]byte, 0, 1<<16), 64<<20)
	for sc.Scan() {
		var req Request
		if err := json.Unmarshal(sc.Bytes(), &req); err != nil {
			c.send(Message{Err: "bad request: " + err.Error()})
			return
		}
		if m, ok := c.handle(req); ok && req.ID != 0 {
			m.ID = req.ID
			c.send(m)
		}
	}
}

// handle runs one request; ok is false when the reply was already sent.
func (c *sconn) handle(req Request) (Message, bool) {
	s := c.s
	switch req.Op {
	case "hello":
		if req.Protocol != ProtocolVersion {
			return Message{Err: fmt.Sprintf("protocol %d not supported (supervisor speaks %d)", req.Protocol, ProtocolVersion)}, true
		}
		s.mu.Lock()
		c.tag = req.Tag
		s.mu.Unlock()
		return Message{PID: os.Getpid(), Protocol: ProtocolVersion}, true
	case "start":
		if req.Key == "" || req.Job == nil {
			return Message{Err: "start: key and job required"}, true
		}
		// The client decides SameEnv in request order: follow it here.
		env := req.Job.Env
		if req.Job.SameEnv {
			env = c.lastEnv
		} else {
			c.lastEnv = env
		}
		// Admitted in request order (a later "ack" of a dependency cannot
		// overtake it); started concurrently: a fork blocks its thread
		// until the child has exec'd, which takes long on a busy machine.
		c.admit(req, env)
		return Message{}, false
	case "status":
		s.mu.Lock()
		m := Message{Jobs: make([]Record, len(req.Keys))}
		for i, k := range req.Keys {
			if j := s.jobs[k]; j != nil {
				m.Jobs[i] = j.rec
			} else {
				m.Jobs[i] = Record{T: recUnknown, Key: k}
			}
		}
		s.mu.Unlock()
		return m, true
	case "kill":
		s.killJob(req.Key, time.Duration(req.GraceMS)*time.Millisecond)
		return Message{}, true
	case "locate":
		return Message{Jobs: []Record{s.locate(c, req.Key)}}, true
	case "ack":
		s.ack(req.Keys)
		return Message{}, true
	}
	return Message{Err: fmt.Sprintf("unknown operation %q", req.Op)}, true
}

// admit takes a start request: a key already known gives its record back
// (a job is never started twice); a job that may start now is started (its
// reply follows the fork); else it is held ("wait") until its dependencies
// ended and its pool has room, and dispatch starts or cancels it then.
func (c *sconn) admit(req Request, env []string) {
	s := c.s
	reply := func(m Message) {
		m.ID = req.ID
		if req.ID != 0 {
			c.send(m)
		}
	}
	jb := req.Job
	s.mu.Lock()
	if j := s.jobs[req.Key]; j != nil && j.rec.T != recDropped {
		r := j.rec
		s.mu.Unlock()
		reply(Message{Existed: true, Jobs: []Record{r}})
		return
	}
	for _, a := range jb.After {
		if s.jobs[a] == nil {
			s.mu.Unlock()
			reply(Message{Err: fmt.Sprintf("start %s: dependency %s is unknown to the supervisor", req.Key, a)})
			return
		}
	}
	j := &sjob{pool: jb.Pool, need: max(1, jb.Need)}
	j.held = &hold.Job{Key: req.Key, After: jb.After, Pool: jb.Pool, Limit: jb.Limit, Need: jb.Need,
		Priority: jb.Priority, Seq: jb.Seq, Data: heldStart{j: j, req: req, env: env}}
	s.jobs[req.Key] = j
	s.lastActive = time.Now()
	if s.q.Ready(j.held, s.depLocked) == "" {
		s.q.Take(j.pool, j.need)
		j.held = nil
		j.rec = Record{T: recIntent, Key: req.Key, Started: time.Now().UnixNano()}
		if err := s.jr.append(j.rec); err != nil {
			delete(s.jobs, req.Key)
			s.q.Release(j.pool, j.need)
			s.mu.Unlock()
			reply(Message{Err: err.Error()})
			return
		}
		s.starting++
		s.mu.Unlock()
		c.inflight.Add(1)
		go func() {
			defer c.inflight.Done()
			s.launch(j, req, env, c)
		}()
		return
	}
	j.rec = Record{T: recWait, Key: req.Key}
	if err := s.jr.append(j.rec); err != nil {
		delete(s.jobs, req.Key)
		s.mu.Unlock()
		reply(Message{Err: err.Error()})
		return
	}
	s.q.Add(j.held)
	if req.ID != 0 {
		c.queue(Message{ID: req.ID, Jobs: []Record{j.rec}})
	}
	conns := s.dispatchLocked()
	s.mu.Unlock()
	c.flush()
	for _, o := range conns {
		o.flush()
	}
}

// cannotBlock tells a job whose files open without waiting: no stdin file
// (a FIFO would wait for its writer), and logs that are the engine's own
// (created on the first byte) or none.
func cannotBlock(jb *JobReq) bool {
	outOK := jb.Stdout == "" || jb.LazyStdout
	errOK := jb.Join || jb.Stderr == "" || jb.Stderr == jb.Stdout || jb.LazyStderr
	return jb.Stdin == "" && outOK && errOK
}

// depLocked is what the supervisor knows of a dependency of a held job. A
// dependency it does not know counts as failed: an ended one's held
// dependants are dispatched at its end, before it can be forgotten.
func (s *server) depLocked(key string) hold.Dep {
	d := s.jobs[key]
	switch {
	case d == nil:
		return hold.Failed
	case !d.rec.ended():
		return hold.Running
	case d.rec.succeeded():
		return hold.Succeeded
	}
	return hold.Failed
}

// dispatchLocked starts the held jobs that may start now and cancels those
// with a dependency that did not succeed (hold.Queue.Dispatch). It returns
// the connections with events to flush once s.mu is unlocked.
func (s *server) dispatchLocked() []*sconn {
	if s.q.Len() == 0 {
		return nil
	}
	var conns []*sconn
	s.q.Dispatch(s.depLocked, func(hj *hold.Job) bool {
		h := hj.Data.(heldStart)
		j := h.j
		intent := j.rec
		intent.merge(Record{T: recIntent, Started: time.Now().UnixNano()})
		err := s.roomLocked()
		if err == nil {
			err = s.jr.append(intent)
		}
		if err != nil {
			// Not started when it could not be recorded, nor while the
			// state dir's filesystem is full (the engine cannot record
			// anything either, nor the job its logs): tried again soon.
			s.retryDispatchLocked(err)
			return false
		}
		j.held = nil
		j.rec = intent
		s.starting++
		if s.reaping && s.next == nil && s.starting == 1 && len(s.byPID) == 0 && cannotBlock(h.req.Job) {
			// The reaper starts it itself once s.mu is unlocked (exited):
			// nothing else runs, so nothing waits to be reaped meanwhile,
			// and opening its files cannot block (a chain's next job).
			s.next = &h
			return true
		}
		// Not in the caller's goroutine (the reaper's, often): opening a
		// job's files may block (a FIFO as stdin), and the reaper would
		// reap nothing meanwhile.
		go s.launch(j, h.req, h.env, nil)
		return true
	}, func(hj *hold.Job) {
		conns = append(conns, s.cancelLocked(hj.Data.(heldStart).j, false)...)
	})
	return conns
}

// roomLocked tells whether the state dir's filesystem has room for a held
// job's records and logs (privdir.Full).
func (s *server) roomLocked() error {
	return privdir.Full(s.stateDir)
}

// retryDispatchLocked tries the held jobs again shortly after one could not
// be started (why: err).
func (s *server) retryDispatchLocked(err error) {
	if s.retry != nil {
		return
	}
	s.log.Warn("held jobs wait: cannot start them now", "err", err)
	s.retry = time.AfterFunc(retryDispatch, func() {
		s.mu.Lock()
		s.retry = nil
		conns := s.dispatchLocked()
		s.mu.Unlock()
		for _, c := range conns {
			c.flush()
		}
	})
}

// retryDispatch is how soon held jobs are tried again after a failure.
const retryDispatch = 200 * time.Millisecond

// cancelLocked ends a held job that never started: a dependency did not
// succeed, or it was killed. Its exit event is queued on every connection.
func (s *server) cancelLocked(j *sjob, killed bool) []*sconn {
	j.held = nil
	j.rec.merge(Record{T: recCancel, Ended: time.Now().UnixNano(), Killed: killed})
	if err := s.jr.append(j.rec); err != nil {
		s.log.Error("journal", "err", err)
	}
	s.jr.syncSoon()
	return s.broadcastLocked("exit", j.rec)
}

// broadcastLocked queues an event on every connection and returns them, for
// the caller to flush after unlocking s.mu.
func (s *server) broadcastLocked(ev string, rs ...Record) []*sconn {
	m := Message{Ev: ev, Jobs: rs}
	conns := make([]*sconn, 0, len(s.conns))
	for c := range s.conns {
		c.queue(m)
		conns = append(conns, c)
	}
	return conns
}

// launch forks a job whose intent is recorded. c is the connection whose
// request started it at once (its reply follows the fork, before the job's
// exit event); nil for a held job, whose start (or failure to start) every
// client hears of as an event.
func (s *server) launch(j *sjob, req Request, env []string, c *sconn) {
	reply := func(m Message) {
		m.ID = req.ID
		if c != nil && req.ID != 0 {
			c.send(m)
		}
	}
	jb := req.Job
	env = append(env[:len(env):len(env)], proc.JobEnvVar+"="+req.Key)
	pid, out, err := proc.StartIn(drms.JobSpec{Argv: jb.Argv, Env: env, Dir: jb.Dir, Stdin: jb.Stdin,
		Stdout: jb.Stdout, Stderr: jb.Stderr, Join: jb.Join,
		LazyStdout: jb.LazyStdout, LazyStderr: jb.LazyStderr}, s.stateDir, s.cg, req.Key)
	var tick uint64
	if err == nil {
		tick = proc.StartTick(pid)
	}

	s.mu.Lock()
	s.starting--
	var se *drms.StartError
	if err != nil {
		errors.As(err, &se)
		s.q.Release(j.pool, j.need)
		var conns []*sconn
		if c != nil {
			// Nothing started: forgotten at once, so the key may be tried
			// again (a job that could not start just fails the same way).
			delete(s.jobs, req.Key)
			if jerr := s.jr.append(Record{T: recAck, Key: req.Key}); jerr != nil {
				s.log.Error("journal", "err", jerr)
			}
		} else {
			// A held job's client is told by an event: its end is kept
			// until acknowledged, like any other.
			why := err.Error()
			if se != nil {
				why = se.Reason
			}
			j.rec.merge(Record{T: recNoStart, Ended: time.Now().UnixNano(), Reason: why})
			if jerr := s.jr.append(j.rec); jerr != nil {
				s.log.Error("journal", "err", jerr)
			}
			conns = s.broadcastLocked("exit", j.rec)
		}
		conns = append(conns, s.dispatchLocked()...)
		s.cleanEarlyLocked()
		s.mu.Unlock()
		for _, o := range conns {
			o.flush()
		}
		switch {
		case se != nil:
			reply(Message{StartErr: se.Reason})
		default:
			reply(Message{Err: err.Error()})
		}
		return
	}
	j.out = out
	j.rec.merge(Record{T: recStart, PID: pid, Tick: tick})
	if err := s.jr.append(j.rec); err != nil {
		s.log.Error("journal", "err", err)
	}
	s.byPID[pid] = j
	var conns []*sconn
	if c != nil {
		if req.ID != 0 {
			c.queue(Message{ID: req.ID, Jobs: []Record{j.rec}})
		}
		conns = append(conns, c)
	} else {
		s.startedLocked(j)
	}
	if e, ok := s.early[pid]; ok {
		delete(s.early, pid)
		conns = append(conns, s.endLocked(pid, j, e.ws, &e.ru, e.ended)...)
	} else if j.killGrace > 0 {
		// Killed while it was being started: killed now that it has a pid.
		s.killLocked(j, j.killGrace)
	}
	s.cleanEarlyLocked()
	s.mu.Unlock()
	for _, o := range conns {
		o.flush()
	}
}

// startDelay is how long the start event of a held job waits: one that
// ends meanwhile (most short jobs) is told by its exit event alone, which
// carries its start, so that its client reads, records and commits one
// event instead of two. Its status says running that much later.
const startDelay = 10 * time.Millisecond

// startedLocked tells every client of held job j's start within startDelay,
// unless it has ended by then.
func (s *server) startedLocked(j *sjob) {
	s.started = append(s.started, j)
	if len(s.started) == 1 {
		time.AfterFunc(startDelay, s.startEvents)
	}
}

// startEvents sends the start events of the held jobs started in the last
// startDelay and still running.
func (s *server) startEvents() {
	s.mu.Lock()
	var jobs []Record
	for _, j := range s.started {
		if !j.rec.ended() {
			jobs = append(jobs, j.rec)
		}
	}
	s.started = s.started[:0]
	var conns []*sconn
	if len(jobs) > 0 {
		conns = s.broadcastLocked("start", jobs...)
	}
	s.mu.Unlock()
	for _, c := range conns {
		c.flush()
	}
}

// cleanEarlyLocked drops early exits nobody is starting any more: orphans.
func (s *server) cleanEarlyLocked() {
	if s.starting == 0 && len(s.early) > 0 {
		clear(s.early)
	}
}

func (s *server) killJob(key string, grace time.Duration) {
	if grace <= 0 {
		grace = proc.KillGrace
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	j := s.jobs[key]
	if j != nil && j.held != nil {
		// Held, never started: it ends now, never to start.
		s.q.Remove(key)
		conns := s.cancelLocked(j, true)
		conns = append(conns, s.dispatchLocked()...)
		go func() {
			for _, c := range conns {
				c.flush()
			}
		}()
		return
	}
	if j != nil && j.rec.T == recIntent {
		// Being started (its intent journalled, not forked yet): killed
		// as soon as it has a pid (launch).
		j.killGrace = grace
		return
	}
	if j == nil || j.rec.T != recStart && j.rec.T != recKill {
		return // unknown, or already ended: its outcome is on its way
	}
	s.killLocked(j, grace)
}

// killLocked sends SIGTERM to a started job's process group, and SIGKILL
// after grace if it still runs.
func (s *server) killLocked(j *sjob, grace time.Duration) {
	pid := j.rec.PID
	if pid <= 0 {
		return // kill(-0) would be our own process group
	}
	if !j.rec.Killed {
		j.rec.merge(Record{T: recKill, Killed: true})
		if err := s.jr.append(Record{T: recKill, Key: j.rec.Key, Killed: true}); err != nil {
			s.log.Error("journal", "err", err)
		}
	}
	_ = syscall.Kill(-pid, syscall.SIGTERM)
	if j.kill == nil {
		j.kill = time.AfterFunc(grace, func() {
			s.mu.Lock()
			defer s.mu.Unlock()
			if s.byPID[pid] == j {
				_ = syscall.Kill(-pid, syscall.SIGKILL)
			}
		})
	}
}

// locate answers whether key ever reached this supervisor. "unknown" is a
// proof only once every older connection of the same engine (a dead
// engine's, whose last requests may still be unread) has been read to its
// end; otherwise the answer is "uncertain".
func (s *server) locate(c *sconn, key string) Record {
	s.mu.Lock()
	j := s.jobs[key]
	var older []*sconn
	if j == nil {
		for o := range s.conns {
			// An older connection whose hello is not read yet may be the
			// dead engine's too: it counts until read to its end.
			if o != c && o.seq < c.seq && (o.tag == c.tag || o.tag == "") {
				older = append(older, o)
			}
		}
	}
	s.mu.Unlock()
	if j != nil {
		s.mu.Lock()
		defer s.mu.Unlock()
		return j.rec
	}
	deadline := time.NewTimer(locateWait)
	defer deadline.Stop()
	for _, o := range older {
		select {
		case <-o.closed:
		case <-deadline.C:
			return Record{T: recUncertain, Key: key}
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if j := s.jobs[key]; j != nil {
		return j.rec
	}
	return Record{T: recUnknown, Key: key}
}

// ack forgets ended jobs whose outcome the engine recorded.
func (s *server) ack(keys []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	// One write for all the records (an ack is for the jobs of one commit).
	var acks []Record
	for _, k := range keys {
		j := s.jobs[k]
		if j == nil || !j.rec.ended() && j.rec.T != recDropped {
			continue
		}
		acks = append(acks, Record{T: recAck, Key: k})
	}
	if err := s.jr.appendAll(acks...); err != nil {
		s.log.Error("journal", "err", err)
	}
	for _, r := range acks {
		delete(s.jobs, r.Key)
		s.forgotten++
	}
	if s.forgotten >= compactAfter && s.forgotten > len(s.jobs) {
		if err := s.jr.rewrite(s.snapshot()); err != nil {
			s.log.Error("journal compaction", "err", err)
		} else {
			s.forgotten = 0
		}
	}
}
