package client

import (
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// Watch returns a function giving a channel closed at the next change of
// the state dir (see changes), and a function to stop watching.
func (c *Client) Watch() (next func() <-chan struct{}, stop func()) { return c.changes(false) }

// changes returns a function giving a channel that is closed at the next
// change of the state, and a stop function. In-process, that is the
// engine's next commit; otherwise the next write to the database files in
// the state dir (inotify), with a slow safety tick in case the state dir is
// on a filesystem that does not report remote writes.
func (c *Client) changes(workflows bool) (next func() <-chan struct{}, stop func()) {
	if c.eng != nil {
		if workflows {
			return c.eng.WorkflowsChanged, func() {}
		}
		return c.eng.Changed, func() {}
	}
	w := &dbWatch{ch: make(chan struct{}), quit: make(chan struct{})}
	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC)
	if err == nil {
		if _, err = unix.InotifyAddWatch(fd, c.st.Dir, unix.IN_MODIFY|unix.IN_CREATE|unix.IN_MOVED_TO|unix.IN_CLOSE_WRITE); err != nil {
			unix.Close(fd)
			fd = -1
		}
	} else {
		fd = -1
	}
	go w.loop(fd)
	return w.next, func() {
		close(w.quit)
		if fd >= 0 {
			unix.Close(fd)
		}
	}
}

// MinWatchInterval is the shortest time between two looks of a client that
// watches another process's engine through the database.
const MinWatchInterval = 10 * time.Millisecond

type dbWatch struct {
	mu   sync.Mutex
	ch   chan struct{}
	quit chan struct{}
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

func (w *dbWatch) loop(fd int) {
	events := make(chan struct{}, 1)
	if fd >= 0 {
		go func() {
			buf := make([]byte, 4096)
			for {
				n, err := unix.Read(fd, buf)
				if err != nil || n <= 0 {
					return
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
