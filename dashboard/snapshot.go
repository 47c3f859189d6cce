package dashboard

import (
	"context"
	"sort"
	"strconv"
	"time"

	"github.com/somaflow/somaflow/client"
	"github.com/somaflow/somaflow/model"
)

// category is what a job's colour says: the few kinds of state a person
// looks for, in the order the job table lists them (failed first).
type category uint8

const (
	catFailed category = iota
	catRunning
	catQueued
	catAborted
	catWaiting
	catOK
	numCats
)

// catNames are the categories' names: CSS classes (cat-NAME), filters and
// legend.
var catNames = [numCats]string{"failed", "running", "queued", "aborted", "waiting", "succeeded"}

// catHelp says what each category holds, for the legend.
var catHelp = [numCats]string{
	"ended without success: exit value not 0, a signal, could not start, outcome lost",
	"running (or being killed)",
	"handed to the backend, not running yet",
	"never ran or stopped by the user: a dependency failed, or the workflow was stopped",
	"not submitted yet (waiting for dependencies or a free slot)",
	"done, exit value 0",
}

func categoryOf(j *client.JobDoc) category {
	switch {
	case model.JobEnded(j.Status):
		es := deref(j.ExitStatus)
		switch {
		case model.Succeeded(j.Status, es, j.ExitValue):
			return catOK
		case es == model.ExitAbortedBefore || es == model.ExitKilledByUser:
			return catAborted
		}
		return catFailed
	case j.Status == model.JobRunning || j.Status == model.JobKillPending:
		return catRunning
	case j.Status == model.JobNotSubmitted:
		return catWaiting
	}
	return catQueued
}

func parseCategory(s string) (category, bool) {
	for i, n := range catNames {
		if n == s {
			return category(i), true
		}
	}
	return 0, false
}

// snapshot is one reading of a workflow's status document, with what every
// view of it needs computed once: each job's category, the failed-first
// order, counts and the time span.
type snapshot struct {
	doc    *client.WorkflowDoc
	cats   []category
	order  []int32 // job indexes, failed first, then by index
	counts [numCats]int
	// first is the earliest submission, last the latest end (RFC3339 UTC
	// strings compare as times); running tells whether a job runs now.
	first, last string
	running     bool
	read        time.Time     // when it was read
	took        time.Duration // how long reading it took
	changed     <-chan struct{}
}

// summary is what the workflows list shows of a workflow.
type summary struct {
	status      string
	counts      [numCats]int
	total       int
	first, last string
	running     bool
}

func (s *snapshot) summary() *summary {
	return &summary{status: s.doc.Status, counts: s.counts, total: len(s.doc.Jobs), first: s.first, last: s.last, running: s.running}
}

// readSnapshot reads a workflow's status document through the client and
// prepares it.
func readSnapshot(ctx context.Context, c *client.Client, id int64, changed <-chan struct{}) (*snapshot, error) {
	start := time.Now()
	doc, err := c.WorkflowElementsStatus(ctx, id)
	if err != nil {
		return nil, err
	}
	s := &snapshot{doc: doc, cats: make([]category, len(doc.Jobs)), order: make([]int32, len(doc.Jobs)), changed: changed}
	for i := range doc.Jobs {
		j := &doc.Jobs[i]
		k := categoryOf(j)
		s.cats[i] = k
		s.counts[k]++
		s.order[i] = int32(i)
		if j.Submitted != nil && (s.first == "" || *j.Submitted < s.first) {
			s.first = *j.Submitted
		}
		if j.Started != nil && (s.first == "" || *j.Started < s.first) {
			s.first = *j.Started
		}
		if j.Ended != nil && *j.Ended > s.last {
			s.last = *j.Ended
		}
		if k == catRunning {
			s.running = true
		}
	}
	sort.SliceStable(s.order, func(a, b int) bool { return s.cats[s.order[a]] < s.cats[s.order[b]] })
	s.read = time.Now()
	s.took = s.read.Sub(start)
	return s, nil
}

// fresh tells whether a snapshot may still be shown: nothing changed in
// the state dir since it was read, or it was read so recently that reading
// again would cost more than it is worth (at most a fifth of the time is
// spent reading a workflow, however big, and never more often than twice
// a second).
func (s *snapshot) fresh(now time.Time) bool {
	select {
	case <-s.changed:
	default:
		return true
	}
	return now.Sub(s.read) < max(minRefresh, 5*s.took)
}

// minRefresh is the shortest time between two readings of a workflow.
const minRefresh = 500 * time.Millisecond

func deref(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

// parseTime reads an RFC3339 time of the status document (zero if none).
func parseTime(p *string) time.Time {
	if p == nil {
		return time.Time{}
	}
	t, _ := time.Parse(time.RFC3339, *p)
	return t
}

// human is a short duration: 850ms, 12s, 3m05s, 2h07m, 3d04h.
func human(d time.Duration) string {
	if d < 0 {
		d = 0
	}
	switch {
	case d < time.Second:
		return strconv.FormatInt(d.Milliseconds(), 10) + "ms"
	case d < time.Minute:
		return strconv.FormatFloat(d.Seconds(), 'f', 0, 64) + "s"
	case d < time.Hour:
		return pad(int(d/time.Minute), "m", int(d%time.Minute/time.Second), "s")
	case d < 48*time.Hour:
		return pad(int(d/time.Hour), "h", int(d%time.Hour/time.Minute), "m")
	}
	return pad(int(d/(24*time.Hour)), "d", int(d%(24*time.Hour)/time.Hour), "h")
}

func pad(a int, ua string, b int, ub string) string {
	s := strconv.Itoa(b)
	if b < 10 {
		s = "0" + s
	}
	return strconv.Itoa(a) + ua + s + ub
}
