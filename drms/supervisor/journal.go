package supervisor

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/somaflow/somaflow/drms"
	"github.com/somaflow/somaflow/drms/proc"
	"github.com/somaflow/somaflow/model"
	"github.com/somaflow/somaflow/privdir"
)

// JournalVersion is the version of the journal format this package writes;
// it reads version 1 too (version 2 added "wait", "cancel" and "dropped"). The journal is `<state>/supervisor.journal`: a header line
//
//	{"journal":"somaflow-supervisor","version":1}
//
// then one JSON record per line (see Record), appended with one write(2)
// each, in this order for a job: "intent" before the fork, "start" after
// it (pid, start tick), then "exit" (wait status, rusage, times) written
// before the exit is reported to any engine. "nostart" records a job that
// could not start, "lost" a job whose supervisor died (its outcome is
// exit_status_undetermined), "kill" a kill request, "ack" an outcome the
// engine recorded (the job is then forgotten). A partial last line (a crash
// in the middle of a write) is cut off on replay; a bad line anywhere else
// is an error. A job held queued (its dependencies or its pool's slots
// not free yet) has a "wait" record before its "intent"; "cancel" ends a
// held job that never started (a dependency did not succeed, or it was
// killed); a held job of a dead supervisor is "dropped" by the next one:
// it provably never started, and the engine submits it again. The journal is rewritten (temp file + rename) with one
// snapshot record per remembered job when the supervisor starts and when
// many jobs were forgotten.
const JournalVersion = 2

const journalMagic = "somaflow-supervisor"

// syncRate bounds the journal's fsyncs per second. Records reach the kernel
// (and so survive the supervisor's death) before they are acted upon; only a
// power loss can lose the last 1/syncRate seconds of them.
const syncRate = 10

// Record types.
const (
	recIntent  = "intent"
	recStart   = "start"
	recNoStart = "nostart"
	recExit    = "exit"
	recLost    = "lost"
	recKill    = "kill"
	recAck     = "ack"
	recWait    = "wait"
	recCancel  = "cancel"
	recDropped = "dropped"
	// Protocol-only states, never written to the journal.
	recUnknown   = "unknown"
	recUncertain = "uncertain"
)

// Record is one journal line, and also what the protocol says about a job
// (its latest state: T is the type of the last record that changed it).
type Record struct {
	T       string `json:"t"`
	Key     string `json:"key"`
	PID     int    `json:"pid,omitempty"`
	Tick    uint64 `json:"tick,omitempty"`    // /proc/PID/stat start time
	Started int64  `json:"started,omitempty"` // unix ns
	Ended   int64  `json:"ended,omitempty"`   // unix ns
	WS      *int   `json:"ws,omitempty"`      // raw wait status
	UtimeUS int64  `json:"utime_us,omitempty"`
	StimeUS int64  `json:"stime_us,omitempty"`
	MaxRSS  int64  `json:"maxrss_kib,omitempty"`
	Reason  string `json:"reason,omitempty"`
	Killed  bool   `json:"killed,omitempty"`
}

// merge applies a later record of the same job.
func (r *Record) merge(n Record) {
	r.T = n.T
	if n.PID != 0 {
		r.PID = n.PID
	}
	if n.Tick != 0 {
		r.Tick = n.Tick
	}
	if n.Started != 0 {
		r.Started = n.Started
	}
	if n.Ended != 0 {
		r.Ended = n.Ended
	}
	if n.WS != nil {
		r.WS, r.UtimeUS, r.StimeUS, r.MaxRSS = n.WS, n.UtimeUS, n.StimeUS, n.MaxRSS
	}
	if n.Reason != "" {
		r.Reason = n.Reason
	}
	r.Killed = r.Killed || n.Killed
}

// ended reports whether the record holds a final outcome.
func (r *Record) ended() bool {
	return r.T == recExit || r.T == recLost || r.T == recNoStart || r.T == recCancel
}

// succeeded reports whether the record is an exit the engine counts as a
// success (exit 0), what a dependant held for it needs.
func (r *Record) succeeded() bool {
	if r.T != recExit {
		return false
	}
	o := r.Outcome()
	return model.Succeeded(o.Status, o.ExitStatus, o.ExitValue)
}

// Outcome turns an ended record into the drms outcome (nil if not ended).
func (r *Record) Outcome() *drms.Outcome {
	started, ended := unixTime(r.Started), unixTime(r.Ended)
	switch r.T {
	case recExit:
		ru := &syscall.Rusage{
			Utime:  syscall.NsecToTimeval(r.UtimeUS * 1000),
			Stime:  syscall.NsecToTimeval(r.StimeUS * 1000),
			Maxrss: r.MaxRSS,
		}
		o := proc.WaitOutcome(syscall.WaitStatus(*r.WS), ru, started, ended)
		o.Reason = r.Reason // a log that could not be kept
		return o
	case recLost:
		o := drms.Undetermined(r.Reason)
		o.Started, o.Ended = started, ended
		return o
	case recNoStart:
		o := drms.NotStarted(r.Reason)
		o.Ended = ended
		return o
	case recCancel:
		return &drms.Outcome{Status: model.JobFailed, ExitStatus: model.ExitAbortedBefore, Ended: ended}
	}
	return nil
}

func unixTime(ns int64) time.Time {
	if ns == 0 {
		return time.Time{}
	}
	return time.Unix(0, ns)
}

type journalHeader struct {
	Journal string `json:"journal"`
	Version int    `json:"version"`
}

// journal is the append-only file. Appends are serialized by mu.
type journal struct {
	path string

	mu     sync.Mutex
	f      *os.File
	size   int64 // the journal's length after the last whole record
	buf    []byte
	syncCh chan struct{}
}

// ReplayJournal reads a journal and returns the jobs it remembers, by key,
// in their latest state. A partial last record is ignored (and reported by
// truncAt >= 0: the offset where the good part ends); a missing file is an
// empty journal.
func ReplayJournal(path string) (jobs map[string]*Record, truncAt int64, err error) {
	jobs = map[string]*Record{}
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return jobs, -1, nil
	}
	if err != nil {
		return nil, -1, fmt.Errorf("supervisor journal: %w", err)
	}
	defer f.Close()
	r := bufio.NewReaderSize(f, 1<<16)
	var off int64
	truncAt = -1
	first := true
	for {
		line, rerr := r.ReadBytes('\n')
		if rerr != nil && rerr != io.EOF {
			return nil, -1, fmt.Errorf("supervisor journal %s: %w", path, rerr)
		}
		complete := len(line) > 0 && line[len(line)-1] == '\n'
		if len(line) == 0 {
			break
		}
		if !complete {
			// A write cut short by a crash: the good part ends here.
			truncAt = off
			break
		}
		body := bytes.TrimSpace(line)
		if first {
			first = false
			var h journalHeader
			if err := json.Unmarshal(body, &h); err != nil || h.Journal != journalMagic {
				return nil, -1, fmt.Errorf("supervisor journal %s: not a somaflow supervisor journal (bad header %q)", path, trim(body))
			}
			if h.Version != JournalVersion && h.Version != 1 {
				return nil, -1, fmt.Errorf("supervisor journal %s: version %d, this somaflow reads version %d", path, h.Version, JournalVersion)
			}
		} else {
			var rec Record
			if err := json.Unmarshal(body, &rec); err != nil || rec.Key == "" || rec.T == "" {
				if _, perr := r.Peek(1); perr == io.EOF {
					truncAt = off // a garbled last record
					break
				}
				return nil, -1, fmt.Errorf("supervisor journal %s: bad record at byte %d: %q", path, off, trim(body))
			}
			if rec.T == recAck {
				delete(jobs, rec.Key)
			} else if cur := jobs[rec.Key]; cur != nil {
				cur.merge(rec)
			} else {
				c := Record{Key: rec.Key}
				c.merge(rec)
				jobs[rec.Key] = &c
			}
		}
		off += int64(len(line))
		if rerr == io.EOF {
			break
		}
	}
	if first && truncAt == 0 {
		truncAt = -1 // only a partial header: rewritten anyway
	}
	return jobs, truncAt, nil
}

func trim(b []byte) string {
	if len(b) > 80 {
		return string(b[:80]) + "..."
	}
	return string(b)
}

// writeJournal writes a fresh journal holding one snapshot record per job
// (temp file, fsync, rename) and opens it for appending.
func writeJournal(path string, jobs map[string]*Record) (*journal, error) {
	var buf bytes.Buffer
	hb, _ := json.Marshal(journalHeader{Journal: journalMagic, Version: JournalVersion})
	buf.Write(hb)
	buf.WriteByte('\n')
	for _, r := range jobs {
		b, _ := json.Marshal(r)
		buf.Write(b)
		buf.WriteByte('\n')
	}
	if err := privdir.WriteFileAtomic(path, buf.Bytes()); err != nil {
		return nil, fmt.Errorf("supervisor journal: rewrite: %w", err)
	}
	af, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("supervisor journal: %w", err)
	}
	fi, err := af.Stat()
	if err != nil {
		af.Close()
		return nil, fmt.Errorf("supervisor journal: %w", err)
	}
	j := &journal{path: path, f: af, size: fi.Size(), syncCh: make(chan struct{}, 1)}
	go j.syncer()
	return j, nil
}

// append writes one record with a single write(2): once it returns, the
// record survives the death of this process.
func (j *journal) append(r Record) error {
	return j.appendAll(r)
}

// appendAll writes records in one write: all of them or, when the write
// fails, none.
func (j *journal) appendAll(rs ...Record) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.f == nil {
		return errors.New("supervisor journal: closed")
	}
	j.buf = j.buf[:0]
	for _, r := range rs {
		b, err := json.Marshal(r)
		if err != nil {
			return err
		}
		j.buf = append(append(j.buf, b...), '\n')
	}
	if len(j.buf) == 0 {
		return nil
	}
	if n, err := j.f.Write(j.buf); err != nil {
		if n > 0 {
			// A record cut short (a full disk): cut it off, or the records
			// after it would follow a garbled line.
			if terr := j.f.Truncate(j.size); terr != nil {
				err = errors.Join(err, terr)
			}
		}
		return fmt.Errorf("supervisor journal: append: %w", err)
	}
	j.size += int64(len(j.buf))
	return nil
}

// syncSoon asks for an fsync in the background (coalesced): exit records
// reach the disk shortly after they reach the kernel.
func (j *journal) syncSoon() {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.f == nil {
		return
	}
	select {
	case j.syncCh <- struct{}{}:
	default:
	}
}

func (j *journal) syncer() {
	for range j.syncCh {
		j.mu.Lock()
		f := j.f
		j.mu.Unlock()
		if f == nil {
			return
		}
		_ = f.Sync()
		// At most syncRate fsyncs a second: a burst of exits shares one
		// (an fsync per exit would cost more than the jobs themselves).
		time.Sleep(time.Second / syncRate)
	}
}

// rewrite compacts the journal to one record per job.
func (j *journal) rewrite(jobs map[string]*Record) error {
	nj, err := writeJournal(j.path, jobs)
	if err != nil {
		return err
	}
	j.mu.Lock()
	old := j.f
	j.f = nj.f
	j.mu.Unlock()
	close(nj.syncCh)
	return old.Close()
}

func (j *journal) close() error {
	j.mu.Lock()
	f := j.f
	j.f = nil
	if f != nil {
		close(j.syncCh)
	}
	j.mu.Unlock()
	if f == nil {
		return nil
	}
	f.Sync()
	return f.Close()
}
