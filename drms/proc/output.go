package proc

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Output copies the streams of a job whose log files are created on demand
// (drms.JobSpec.LazyStdout/LazyStderr): the job writes into a pipe, and the
// file is created when the first byte arrives. A job that writes nothing
// leaves no file, which spares two file creations per job — on some
// filesystems the largest cost of a short job.
//
// The copy runs while the job runs (a full pipe never blocks it). Finish,
// called once the job is reaped and its process group killed, copies what
// is left in the pipes before the job's end is reported, so that the logs
// are complete when its status says it ended.
type Output struct {
	streams []*lazyStream
}

type lazyStream struct {
	r       *os.File
	path    string
	private string
	f       *os.File
	err     error // the file could not be created or written: output dropped
	eof     bool
	done    chan struct{}
}

var copyBufs = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

// newLazyStream returns a stream and the write end to give to the job. The
// write end stays blocking and outside the runtime's poller (only the child
// uses it); the read end is non-blocking and polled.
func newLazyStream(path, private string) (*lazyStream, *os.File, error) {
	var p [2]int
	if err := syscall.Pipe2(p[:], syscall.O_CLOEXEC); err != nil {
		return nil, nil, os.NewSyscallError("pipe2", err)
	}
	if err := syscall.SetNonblock(p[0], true); err != nil {
		syscall.Close(p[0])
		syscall.Close(p[1])
		return nil, nil, os.NewSyscallError("fcntl", err)
	}
	r := os.NewFile(uintptr(p[0]), "|0")
	w := os.NewFile(uintptr(p[1]), "|1")
	return &lazyStream{r: r, path: path, private: private, done: make(chan struct{})}, w, nil
}

func (s *lazyStream) write(p []byte, mkdir bool) {
	if s.err != nil {
		return
	}
	if s.f == nil {
		var err error
		if mkdir {
			s.f, err = CreateOutput(s.path, s.private)
		} else {
			s.f, err = os.OpenFile(s.path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
		}
		if err != nil {
			s.err = fmt.Errorf("log file %q cannot be created: %v", s.path, UnwrapPath(err))
			return
		}
	}
	if _, err := s.f.Write(p); err != nil {
		s.err = fmt.Errorf("log file %q cannot be written: %v", s.path, UnwrapPath(err))
	}
}

// copy runs while the job runs, until EOF or until Finish interrupts it.
func (s *lazyStream) copy() {
	defer close(s.done)
	s.eof = s.pump(true, true)
}

// drain reads what the pipe holds now without waiting; it tells whether
// the pipe reached EOF (no writer left).
func (s *lazyStream) drain() bool { return s.pump(true, false) }

// pump copies the pipe into the file; with wait it waits for more until
// EOF, an error or the read deadline, else it stops when the pipe is empty.
// It tells whether the pipe reached EOF (no writer left). A copy buffer is
// taken only while there is something to read, so that thousands of quiet
// running jobs hold none.
func (s *lazyStream) pump(mkdir, wait bool) bool {
	rc, err := s.r.SyscallConn()
	if err != nil {
		return true
	}
	eof := false
	_ = rc.Read(func(fd uintptr) bool {
		bp := copyBufs.Get().(*[]byte)
		defer copyBufs.Put(bp)
		for {
			n, err := syscall.Read(int(fd), *bp)
			switch {
			case n > 0:
				s.write((*bp)[:n], mkdir)
				continue
			case err == syscall.EINTR:
				continue
			case err == syscall.EAGAIN:
				return !wait // empty: wait for more, or stop here
			case err == nil:
				eof = true
			}
			return true // EOF or a read error
		}
	})
	return eof
}

func (s *lazyStream) close() {
	s.r.Close()
	if s.f != nil {
		s.f.Close()
	}
}

// Finish completes the copy once the job has ended: it stops the running
// copy, takes what is left in the pipe and closes the files. A stream still
// held open by a process that left the job's group keeps being copied in
// the background (appending to the file, never creating directories). The
// error says which log could not be kept (the job's output to it is lost).
func (o *Output) Finish() error {
	if o == nil {
		return nil
	}
	var errs []error
	for _, s := range o.streams {
		if err := s.r.SetReadDeadline(time.Now()); err != nil {
			// Not pollable (never seen on Linux): the copy cannot be
			// interrupted, so it goes on alone until EOF.
			go func() { <-s.done; s.close() }()
			continue
		}
		<-s.done
		if !s.eof {
			_ = s.r.SetReadDeadline(time.Time{})
			s.eof = s.drain()
		}
		if s.err != nil {
			errs = append(errs, s.err)
		}
		if s.eof {
			s.close()
			continue
		}
		go s.linger()
	}
	return errors.Join(errs...)
}

// LostOutputReason is the outcome reason of a job whose log could not be
// kept (err from Finish), "" if none.
func LostOutputReason(err error) string {
	if err == nil {
		return ""
	}
	return "output lost: " + strings.ReplaceAll(err.Error(), "\n", "; ")
}

// start begins copying (once the job is started).
func (o *Output) start() {
	if o == nil {
		return
	}
	for _, s := range o.streams {
		go s.copy()
	}
}

// abandon closes the pipes of a job that did not start.
func (o *Output) abandon() {
	if o == nil {
		return
	}
	for _, s := range o.streams {
		s.r.Close()
	}
}

// linger copies a stream until its last writer goes.
func (s *lazyStream) linger() {
	defer s.close()
	s.pump(false, true)
}
