package client

import (
	"bytes"
	"os"
	"path/filepath"
	"sync"
	"time"
	"unsafe"

	"github.com/somaflow/somaflow/engine"
	"golang.org/x/sys/unix"
)

// Watch returns a function giving a channel closed at the next change of
// the state dir (see changes), and a function to stop watching.
func (c *Client) Watch() (next func() <-chan struct{}, stop func()) { return c.changes(false) }

// changes returns a function giving a channel that is closed at the next
// change of the state, and a stop function. In-process, that is the
// engine's next commit; otherwise the next write to the database files in
// the state dir (inotify), with a slow safety tick in case the state dir is
// on a filesystem that does not report remote writes. With workflows, and
// once the engine's engine.WorkflowsChangedFile is there, only the writes
// to that file count: the engine's commits that change a workflow itself,
// not each job's end.
func (c *Client) changes(workflows bool) (next func() <-chan struct{}, stop func()) {
	if c.eng != nil {
		if workflows {
			return c.eng.WorkflowsChanged, func() {}
		}
		return c.eng.Changed, func() {}
	}
	w := &dbWatch{ch: make(chan struct{}), quit: make(chan struct{})}
	// The inotify descriptor is an *os.File in non-blocking mode, so the
	// runtime's poller waits on it: closing it wakes the reader with an
	// error, and its number is not given to another file while a read may
	// still use it. (A raw descriptor closed under a blocked read was read
	// again after its number went to a file this process opened next: the
	// reader took pieces of that file, and a `transfer out` after a wait
	// read its output short.)
	var f *os.File
	if fd, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK); err == nil {
		if workflows {
			w.hint = filepath.Join(c.st.Dir, engine.WorkflowsChangedFile)
			w.hinted = w.watchHint(fd) == nil
		}
		if !w.hinted {
			w.dirWD, err = unix.InotifyAddWatch(fd, c.st.Dir, dirEvents)
		}
		if err != nil {
			unix.Close(fd)
		} else {
			f = os.NewFile(uintptr(fd), "inotify")
		}
	}
	go w.loop(f)
	var once sync.Once
	return w.next, func() {
		once.Do(func() {
			close(w.quit)
			if f != nil {
				f.Close()
			}
		})
	}
}

// MinWatchInterval is the shortest time between two looks of a client that
// watches another process's engine through the database.
const MinWatchInterval = 10 * time.Millisecond

type dbWatch struct {
	mu   sync.Mutex
	ch   chan struct{}
	quit chan struct{}
	// hint is the path of the file whose writes alone count once hinted
	// (it exists: the engine writes it, and it is watched instead of the
	// state dir); "" counts every write in the state dir. Read and written
	// by the reader alone once it runs.
	hint          string
	hinted        bool
	dirWD, hintWD int
}

// dirEvents are the changes of the state dir's files that count.
const dirEvents = unix.IN_MODIFY | unix.IN_CREATE | unix.IN_MOVED_TO | unix.IN_CLOSE_WRITE

// watchHint watches the hint file on the inotify descriptor fd.
func (w *dbWatch) watchHint(fd int) error {
	wd, err := unix.InotifyAddWatch(fd, w.hint, unix.IN_MODIFY|unix.IN_CLOSE_WRITE|unix.IN_ATTRIB|unix.IN_DELETE_SELF|unix.IN_MOVE_SELF)
	if err == nil {
		w.hintWD = wd
	}
	return err
}

func (w *dbWatch) next() <-chan struct{} {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.ch
}

func (w *dbWatch) fire() {
	w.mu.Lock()
	close(w.ch)
	w.ch = make(chan struct{})
	w.mu.Unlock()
}

func (w *dbWatch) loop(f *os.File) {
	events := make(chan struct{}, 1)
	if f != nil {
		go func() {
			buf := make([]byte, 4096)
			for {
				n, err := f.Read(buf)
				if err != nil || n <= 0 {
					return
				}
				if !w.counts(f, buf[:n]) {
					continue
				}
				select {
				case events <- struct{}{}:
				default:
				}
			}
		}()
	}
	tick := time.NewTicker(2 * time.Second)
	defer tick.Stop()
	for {
		select {
		case <-w.quit:
			return
		case <-events:
			w.fire()
			// A busy engine commits hundreds of times a second: watchers
			// look again at most every MinWatchInterval.
			select {
			case <-w.quit:
				return
			case <-time.After(MinWatchInterval):
			}
		case <-tick.C:
			w.fire()
		}
	}
}

// counts tells whether a read of inotify events holds one that counts (see
// hint). When the hint file appears in the state dir, it is watched instead
// of the dir from then on (f is the inotify descriptor).
func (w *dbWatch) counts(f *os.File, b []byte) bool {
	if w.hint == "" {
		return true
	}
	count := false
	for len(b) >= unix.SizeofInotifyEvent {
		ev := (*unix.InotifyEvent)(unsafe.Pointer(&b[0]))
		end := unix.SizeofInotifyEvent + int(ev.Len)
		if end > len(b) {
			break
		}
		name := bytes.TrimRight(b[unix.SizeofInotifyEvent:end], "\x00")
		b = b[end:]
		switch {
		case ev.Mask&unix.IN_Q_OVERFLOW != 0:
			return true // events were lost: the hint's among them, maybe
		case w.hinted && int(ev.Wd) == w.hintWD:
			count = true
		case !w.hinted && string(name) == engine.WorkflowsChangedFile:
			count = true
			if rc, err := f.SyscallConn(); err == nil {
				rc.Control(func(fd uintptr) {
					if w.watchHint(int(fd)) == nil {
						w.hinted = true
						unix.InotifyRmWatch(int(fd), uint32(w.dirWD))
					}
				})
			}
		case !w.hinted:
			count = true
		}
	}
	return count
}
