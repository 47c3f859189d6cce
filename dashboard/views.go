package dashboard

import (
	"fmt"
	"strconv"
	"time"

	"github.com/somaflow/somaflow/client"
)

// pageSize is how many jobs one page of the job table (and timeline) shows.
const pageSize = 100

// countView is one category's count, for the summary bar and filters.
type countView struct {
	Name  string
	Class string
	Help  string
	N     int
	Href  string
	// Width is the category's share of the progress bar, in percent.
	Width    float64
	X        float64 // where its part of the bar starts, in percent
	Selected bool
}

// summaryView is a workflow's header: status, counts, progress and times.
type summaryView struct {
	ID, Name, Status, Backend, Queue string
	Submitted, Expiration            string
	First, Last, Elapsed             string
	Total, Ended                     int
	Percent                          int
	Counts                           []countView
	Href                             string
	Problems                         []string
	Running                          bool
}

// jobRow is one line of the job table.
type jobRow struct {
	ID, Name, Href                      string
	Class, Status, ExitStatus           string
	ExitValue, Signal, Reason           string
	Attempt                             int
	Submitted, Started, Ended           string
	Queued, Ran                         string
	Wall, CPU, RSS                      string
	DRMSID                              string
	job                                 *client.JobDoc
	cat                                 category
	submittedT, startedT, endedT, nowAt time.Time
}

// pager says which jobs a page holds and links to its neighbours.
type pager struct {
	Page, Pages     int
	First, Last     int // 1-based numbers of the first and last row shown
	Matching        int
	Prev, Next      string
	Filter          string
	FilterName      string
	Truncated       int // rows left out of a report
	Counts          []countView
	AllHref         string
	PageSize        int
	ReportCapNotice bool
}

func workflowName(h client.WorkflowHeader) string {
	if h.Name != nil && *h.Name != "" {
		return *h.Name
	}
	return "workflow " + h.ID
}

func summarize(h client.WorkflowHeader, s *summary, now time.Time, href string) summaryView {
	v := summaryView{ID: h.ID, Name: workflowName(h), Status: h.Status, Backend: h.Backend, Queue: deref(h.Queue),
		Submitted: deref(h.Submitted), Expiration: deref(h.Expiration), Total: s.total, Href: href, Running: s.running}
	v.First, v.Last = s.first, s.last
	if s.first != "" {
		t0 := parseTime(&s.first)
		t1 := now
		if !s.running && s.last != "" && s.counts[catQueued] == 0 {
			t1 = parseTime(&s.last)
		}
		v.Elapsed = human(t1.Sub(t0))
	}
	for k := category(0); k < numCats; k++ {
		if k != catRunning && k != catQueued && k != catWaiting {
			v.Ended += s.counts[k]
		}
	}
	if s.total > 0 {
		v.Percent = v.Ended * 100 / s.total
	}
	v.Counts = countViews(s.counts, s.total, "", nil)
	return v
}

// countViews lists the categories with jobs (all of them with link).
func countViews(counts [numCats]int, total int, selected string, link func(string) string) []countView {
	var out []countView
	x := 0.0
	for k := category(0); k < numCats; k++ {
		c := countView{X: x, Name: catNames[k], Class: "cat-" + catNames[k], Help: catHelp[k], N: counts[k], Selected: selected == catNames[k]}
		if total > 0 {
			c.Width = float64(counts[k]) * 100 / float64(total)
			x += c.Width
		}
		if link != nil {
			c.Href = link(catNames[k])
		}
		if counts[k] > 0 || link != nil {
			out = append(out, c)
		}
	}
	return out
}

// rowOf makes the table line of job i of a snapshot.
func rowOf(s *snapshot, i int, now time.Time) jobRow {
	j := &s.doc.Jobs[i]
	k := s.cats[i]
	r := jobRow{ID: j.ID, Name: j.Name, Class: "cat-" + catNames[k], Status: j.Status, ExitStatus: deref(j.ExitStatus),
		Signal: deref(j.Signal), Reason: deref(j.Reason), Attempt: j.Attempt, DRMSID: deref(j.DRMSID),
		Submitted: deref(j.Submitted), Started: deref(j.Started), Ended: deref(j.Ended), job: j, cat: k, nowAt: now}
	if j.ExitValue != nil {
		r.ExitValue = strconv.Itoa(*j.ExitValue)
	}
	r.submittedT, r.startedT, r.endedT = parseTime(j.Submitted), parseTime(j.Started), parseTime(j.Ended)
	if !r.submittedT.IsZero() && !r.startedT.IsZero() {
		r.Queued = human(r.startedT.Sub(r.submittedT))
	}
	switch {
	case !r.startedT.IsZero() && !r.endedT.IsZero():
		r.Ran = human(r.endedT.Sub(r.startedT))
	case !r.startedT.IsZero() && k == catRunning:
		r.Ran = human(now.Sub(r.startedT)) + "…"
	}
	u := j.ResourceUsage
	if u.WallS != nil {
		r.Wall = strconv.FormatFloat(*u.WallS, 'f', 2, 64)
	}
	if u.CPUS != nil {
		r.CPU = strconv.FormatFloat(*u.CPUS, 'f', 2, 64)
	}
	if u.MaxRSSKiB != nil {
		r.RSS = kib(*u.MaxRSSKiB)
	}
	return r
}

// kib is a memory size given in KiB, made short.
func kib(n int64) string {
	switch {
	case n >= 10<<20:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<20))
	case n >= 10<<10:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<10))
	}
	return strconv.FormatInt(n, 10) + " KiB"
}

// pageRows returns the rows of one page of the failed-first order,
// optionally only one category's jobs.
func pageRows(s *snapshot, filter string, page, size int, now time.Time) ([]jobRow, pager) {
	p := pager{Filter: filter, PageSize: size}
	idx := s.order
	if k, ok := parseCategory(filter); ok {
		// The order is by category: its jobs are one run of it.
		lo := 0
		for c := category(0); c < k; c++ {
			lo += s.counts[c]
		}
		idx = idx[lo : lo+s.counts[k]]
		p.FilterName = filter
	} else {
		p.Filter = ""
	}
	p.Matching = len(idx)
	p.Pages = max(1, (len(idx)+size-1)/size)
	p.Page = min(max(1, page), p.Pages)
	lo := (p.Page - 1) * size
	hi := min(len(idx), lo+size)
	rows := make([]jobRow, 0, hi-lo)
	for _, i := range idx[lo:hi] {
		rows = append(rows, rowOf(s, int(i), now))
	}
	if hi > lo {
		p.First, p.Last = lo+1, hi
	}
	return rows, p
}

// timelineView is the attempts of a page's jobs drawn on one time axis,
// like Nextflow's timeline: a light bar while queued, a coloured one while
// running (up to now for a running job).
type timelineView struct {
	Width, Height int
	Rows          []timelineRow
	Ticks         []tick
	AxisY         int
	Empty         bool
}

type timelineRow struct {
	Y, TextY          int
	Label, Title      string
	Href              string
	QX, QW            int
	RX, RW            int
	Class             string
	Note              string
	NoteX             int
	HasQueue, HasRun  bool
	BackgroundClass   string
	BackgroundY, RowH int
}

type tick struct {
	X     int
	Label string
}

// Timeline geometry, in pixels.
const (
	tlLabelW = 200
	tlBarsW  = 760
	tlRowH   = 18
	tlTop    = 22
)

func timeline(s *snapshot, rows []jobRow, now time.Time) *timelineView {
	tv := &timelineView{Width: tlLabelW + tlBarsW + 90, AxisY: 14}
	t0 := parseTime(&s.first)
	t1 := parseTime(&s.last)
	if s.running || t1.IsZero() {
		t1 = now
	}
	if t0.IsZero() {
		tv.Empty = true
		tv.Height = tlTop
		return tv
	}
	span := t1.Sub(t0)
	if span <= 0 {
		span = time.Second
	}
	x := func(t time.Time) int {
		if t.IsZero() {
			return -1
		}
		return tlLabelW + int(float64(t.Sub(t0))/float64(span)*tlBarsW)
	}
	for i := 0; i <= 4; i++ {
		tv.Ticks = append(tv.Ticks, tick{X: tlLabelW + i*tlBarsW/4, Label: "+" + human(span*time.Duration(i)/4)})
	}
	y := tlTop
	for _, r := range rows {
		tr := timelineRow{Y: y + 3, TextY: y + 13, Label: shorten(r.Name, 28), Title: r.Name, Href: r.Href, Class: r.Class, BackgroundY: y, RowH: tlRowH}
		if r.Attempt > 1 {
			tr.Label = shorten(r.Name, 22) + " #" + strconv.Itoa(r.Attempt)
		}
		sub, st, en := r.submittedT, r.startedT, r.endedT
		if en.IsZero() && r.cat == catRunning {
			en = now
		}
		if !sub.IsZero() {
			end := st
			if end.IsZero() {
				end = en
			}
			if end.IsZero() {
				end = now
			}
			tr.QX, tr.QW, tr.HasQueue = x(sub), max(1, x(end)-x(sub)), true
		}
		if !st.IsZero() && !en.IsZero() {
			tr.RX, tr.RW, tr.HasRun = x(st), max(2, x(en)-x(st)), true
			tr.Note = human(en.Sub(st))
			tr.NoteX = tr.RX + tr.RW + 4
		} else if !en.IsZero() { // never started (aborted): a mark at its end
			tr.RX, tr.RW, tr.HasRun = x(en), 2, true
			tr.Note = r.ExitStatus
			tr.NoteX = tr.RX + 6
		}
		tv.Rows = append(tv.Rows, tr)
		y += tlRowH
	}
	tv.Height = y + 4
	return tv
}
