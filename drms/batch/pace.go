package batch

import (
	"bytes"
	"strings"
	"sync"
	"time"

	"github.com/somaflow/somaflow/drms"
)

// Pace is the status-file-first pacing of a batch backend's DRMS listing
// (squeue, qstat, a configured status command): exec-job's status file
// (an end) and started file (a start) are the primary signal, and the
// listing, the safety net for jobs that end without a status file, is
// asked at the busy interval while some job is due and at the idle
// interval while none is. It remembers when exec-job started each job
// (read once from its started file) and which jobs the backend killed
// (due at once). It is safe for concurrent use; the zero value is ready.
//
// FromFiles finds exec-job's files with one directory read of each spool
// dir concerned (the workflow's) per call, not an open per job: it opens a
// status file when one is there, and a started file when one is there
// that it has not read yet. exec-job writes both atomically (a rename), so
// a name in the directory is a complete file. A directory read works on
// every filesystem; on NFS it sees a new file when an open would, once the
// client revalidates the directory (its attribute cache, acdirmin).
type Pace struct {
	// Live: a job the listing calls running or suspended runs only once
	// its started file exists (Live); until then it is queued and due.
	Live bool
	// OpenEach: open each job's files at every call instead of reading
	// the directory (the way before the scan; for comparison only).
	OpenEach bool

	mu        sync.Mutex
	startedAt map[string]time.Time // job id -> when exec-job began
	killed    map[string]bool      // job ids this backend killed
}

// PacedJob is one attempt Status is asked about, for FromFiles.
type PacedJob struct {
	ID string
	// Status and Started are exec-job's files of the attempt.
	Status, Started string
	// Limit is the attempt's walltime in seconds (0: none): past it, its
	// status file is overdue and the job is due.
	Limit int64
	// Ask: the DRMS must be asked whatever the files say (a handle that
	// cannot be decoded or carries an outcome of its own, a job this
	// backend killed).
	Ask bool
}

// Listed is how the last listing shows a job that has no status file.
type Listed struct {
	// State is the job's state there (not ended), Queued for a job
	// submitted after the listing was taken.
	State drms.State
	// Word is the DRMS's own word for the state (for Live's reason).
	Word string
	// Ask: the listing cannot answer (the job ended there, left it or was
	// never in it, another job has its id).
	Ask bool
}

// FromFiles answers a Status from exec-job's files and the backend's last
// listing, taken at, when it can: every job is ended by an exit or a
// failure to start in its status file, or still queued, held, running or
// suspended in the listing (listed(i) for jobs[i]; a job submitted since
// is queued there), its started file saying whether it has started since;
// and the listing is younger than busy, or than idle (never less than
// busy) when nothing is due. A job is due unless it runs by its started
// file within its walltime. ok is false when the DRMS must be asked: busy
// is 0 or there is no listing yet (at zero), a job needs it (Ask, a status
// file that says signaled, whose reason the DRMS gives, or that cannot be
// read), or the listing is too old. The caller forgets the jobs it
// returns ended.
func (p *Pace) FromFiles(jobs []PacedJob, at time.Time, busy, idle time.Duration, listed func(i int) Listed) (map[string]drms.State, bool) {
	if busy <= 0 || at.IsZero() {
		return nil, false
	}
	since := time.Since(at)
	if since >= max(busy, idle) {
		return nil, false
	}
	for _, j := range jobs {
		if j.Ask {
			return nil, false
		}
	}
	var sc spoolScan
	if !p.OpenEach {
		sc = scanSpool(jobs, p.unstarted(jobs))
	}
	now := time.Now()
	due := false
	out := make(map[string]drms.State, len(jobs))
	for i, j := range jobs {
		var file *drms.Outcome
		var ferr error
		if sc.has(j.Status) {
			file, ferr = ReadOutcome(j.Status)
		}
		if ferr != nil || file != nil && file.Signal != "" {
			return nil, false
		}
		if file != nil {
			out[j.ID] = drms.State{Phase: drms.Ended, Started: file.Started, Outcome: file}
			continue
		}
		l := listed(i)
		if l.Ask {
			return nil, false
		}
		s := l.State
		started, ok := p.started(j.ID, j.Started, sc)
		switch {
		case s.Phase == drms.Queued || s.Phase == drms.Held:
			if ok { // started since the listing (or a hold released)
				s = drms.State{Phase: drms.Running, Started: started}
			}
		case p.Live && !ok:
			s = drms.State{Phase: drms.Queued, Reason: "starting (" + l.Word + ")"}
		case s.Started.IsZero():
			s.Started = started
		}
		if s.Phase != drms.Running || !ok || j.Limit > 0 && now.Sub(started) >= time.Duration(j.Limit)*time.Second {
			due = true
		}
		out[j.ID] = s
	}
	if due && since >= busy {
		return nil, false
	}
	return out, true
}

// started is when exec-job began job id by its started file at path (ok
// false while there is none), remembered once read; the file is opened
// only when the scan lists it.
func (p *Pace) started(id, path string, sc spoolScan) (time.Time, bool) {
	p.mu.Lock()
	t, ok := p.startedAt[id]
	p.mu.Unlock()
	if ok {
		return t, true
	}
	if !sc.has(path) {
		return time.Time{}, false
	}
	si, _ := ReadStarted(path)
	if si == nil {
		return time.Time{}, false
	}
	p.mu.Lock()
	if p.startedAt == nil {
		p.startedAt = map[string]time.Time{}
	}
	p.startedAt[id] = si.Time
	p.mu.Unlock()
	return si.Time, true
}

// Kill notes that the backend killed job id (or is about to): the DRMS
// is asked about it at once (PacedJob.Ask), and its outcome may depend on it.
func (p *Pace) Kill(id string) {
	p.mu.Lock()
	if p.killed == nil {
		p.killed = map[string]bool{}
	}
	p.killed[id] = true
	p.mu.Unlock()
}

// Killed tells whether the backend killed job id.
func (p *Pace) Killed(id string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.killed[id]
}

// Forget drops what the pacing remembers of an ended job.
func (p *Pace) Forget(id string) {
	p.mu.Lock()
	delete(p.startedAt, id)
	delete(p.killed, id)
	p.mu.Unlock()
}

// unstarted tells whether a job's start is not known yet.
func (p *Pace) unstarted(jobs []PacedJob) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, j := range jobs {
		if _, ok := p.startedAt[j.ID]; !ok {
			return true
		}
	}
	return false
}

// spoolScan is what one read of the spool dirs of some jobs found: for
// each dir, the names of exec-job's status files there, and of its
// started files when they were looked for (a nil set: the dir could not
// be read, its files are opened instead). A nil spoolScan has every file
// (each is opened).
type spoolScan map[string]map[string]struct{}

// scanSpool reads the directory of each job's status file once, keeping
// the names of started files too with started.
func scanSpool(jobs []PacedJob, started bool) spoolScan {
	sc := spoolScan{}
	for _, j := range jobs {
		dir, _ := splitPath(j.Status)
		if _, done := sc[dir]; !done {
			sc[dir] = readNames(dir, started)
		}
	}
	return sc
}

// keep tells whether a spool file name is one readNames keeps.
func keep(name []byte, started bool) bool {
	return bytes.HasSuffix(name, []byte(".status")) || started && bytes.HasSuffix(name, []byte(".status.started"))
}

// has tells whether path may exist: listed by the scan of its dir, or in a
// dir the scan could not read (or no scan).
func (sc spoolScan) has(path string) bool {
	if sc == nil {
		return true
	}
	dir, name := splitPath(path)
	names, ok := sc[dir]
	if !ok || names == nil {
		return true
	}
	_, ok = names[name]
	return ok
}

func splitPath(path string) (dir, name string) {
	i := strings.LastIndexByte(path, '/')
	if i < 0 {
		return ".", path
	}
	return path[:i], path[i+1:]
}
