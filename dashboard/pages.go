package dashboard

import (
	"context"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/somaflow/somaflow/model"
)

// pageData is what every page template gets.
type pageData struct {
	Title  string
	Report bool
	CSS    template.CSS // inline in a report
	Live   string       // the URL the page polls ("" for none)
	Crumbs []crumb
	Now    string

	List     []summaryView
	Summary  summaryView
	Rows     []jobRow
	Pager    pager
	Graph    *graphView
	Timeline *timelineView
	Job      *jobView
	Details  []*jobView // a report's job sections
	Legend   []countView
}

type crumb struct{ Name, Href string }

func legend() []countView {
	var out []countView
	for k := category(0); k < numCats; k++ {
		out = append(out, countView{Name: catNames[k], Class: "cat-" + catNames[k], Help: catHelp[k]})
	}
	return out
}

// listData reads the workflows list.
func (s *Server) listData(ctx context.Context) (*pageData, error) {
	ws, err := s.c.Workflows(ctx)
	if err != nil {
		return nil, err
	}
	now := s.opts.Now()
	d := &pageData{Title: "somaflow: workflows", Live: "/api/workflows", Now: now.UTC().Format(time.RFC3339), Legend: legend()}
	s.forgetOthers(ws)
	for _, w := range ws {
		sum, err := s.summaryOf(ctx, w)
		if err != nil {
			continue // removed meanwhile
		}
		d.List = append(d.List, summarize(w.Header(), sum, now, "/w/"+strconv.FormatInt(w.ID, 10)))
	}
	return d, nil
}

func (s *Server) listPage(w http.ResponseWriter, r *http.Request) {
	d, err := s.listData(r.Context())
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.render(w, r, "list.html", d)
}

func (s *Server) listAPI(w http.ResponseWriter, r *http.Request) {
	d, err := s.listData(r.Context())
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.fragments(w, r, d, map[string]string{"workflows": "workflows-table"}, false)
}

// A workflow page of asyncGraphJobs jobs or more waits graphWait at most
// for its graph's layout once its status document is read; a smaller one
// waits for it.
const (
	graphWait      = 200 * time.Millisecond
	asyncGraphJobs = 10_000
)

// workflowQuery is what a workflow page's URL asks: page and filter.
type workflowQuery struct {
	page   int
	filter string
}

func readWorkflowQuery(r *http.Request) workflowQuery {
	q := workflowQuery{page: 1}
	if p, err := strconv.Atoi(r.URL.Query().Get("page")); err == nil && p > 0 {
		q.page = p
	}
	if _, ok := parseCategory(r.URL.Query().Get("status")); ok {
		q.filter = r.URL.Query().Get("status")
	}
	return q
}

func workflowURL(prefix string, id string, page int, filter string) string {
	v := url.Values{}
	if page > 1 {
		v.Set("page", strconv.Itoa(page))
	}
	if filter != "" {
		v.Set("status", filter)
	}
	u := prefix + "/w/" + id
	if len(v) > 0 {
		u += "?" + v.Encode()
	}
	return u
}

// workflowData builds one workflow's page: summary, a page of the job
// table, the graph and the page's timeline.
func (s *Server) workflowData(ctx context.Context, id int64, q workflowQuery) (*pageData, error) {
	// The definition (decoded and laid out once) is read while the
	// status document is; if it takes longer (a big workflow's first
	// page), the page comes without its graph, which the next poll brings.
	infos, err := s.c.Workflows(ctx, id)
	if err != nil {
		return nil, err
	}
	de := s.loadDefinition(id, deref(infos[0].Header().Submitted))
	sn, err := s.snapshot(ctx, id)
	if err != nil {
		return nil, err
	}
	var timeout <-chan time.Time
	if len(sn.doc.Jobs) >= asyncGraphJobs {
		wait := time.NewTimer(graphWait)
		defer wait.Stop()
		timeout = wait.C
	}
	select {
	case <-de.ready:
		if de.err != nil {
			return nil, de.err
		}
	case <-timeout:
		de = nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	now := s.opts.Now()
	h := sn.doc.WorkflowHeader
	d := &pageData{Title: "somaflow: " + workflowName(h), Now: now.UTC().Format(time.RFC3339), Legend: legend()}
	d.Summary = summarize(h, sn.summary(), now, "")
	d.Summary.Problems = problems(sn)
	d.Crumbs = []crumb{{"workflows", "/"}, {workflowName(h), ""}}
	d.Rows, d.Pager = pageRows(sn, q.filter, q.page, pageSize, now)
	for i := range d.Rows {
		d.Rows[i].Href = "/w/" + h.ID + "/j/" + d.Rows[i].ID
	}
	if d.Pager.Page > 1 {
		d.Pager.Prev = workflowURL("", h.ID, d.Pager.Page-1, d.Pager.Filter)
	}
	if d.Pager.Page < d.Pager.Pages {
		d.Pager.Next = workflowURL("", h.ID, d.Pager.Page+1, d.Pager.Filter)
	}
	d.Pager.AllHref = workflowURL("", h.ID, 1, "")
	d.Pager.Counts = countViews(sn.counts, len(sn.doc.Jobs), d.Pager.Filter, func(f string) string { return workflowURL("", h.ID, 1, f) })
	if de != nil {
		d.Graph = de.layout.view(sn, func(j int) string {
			if j < len(sn.doc.Jobs) {
				return "/w/" + h.ID + "/j/" + sn.doc.Jobs[j].ID
			}
			return ""
		})
	}
	d.Timeline = timeline(sn, d.Rows, now)
	d.Live = workflowURL("/api", h.ID, d.Pager.Page, d.Pager.Filter)
	return d, nil
}

func problems(sn *snapshot) []string {
	var out []string
	if p := sn.doc.BackendUnreachable; p != nil {
		out = append(out, fmt.Sprintf("backend unreachable since %s: %s", p.Since, p.Message))
	}
	if p := sn.doc.EngineProblem; p != nil {
		out = append(out, fmt.Sprintf("the engine cannot record its progress since %s: %s", p.Since, p.Message))
	}
	return out
}

func (s *Server) workflowPage(w http.ResponseWriter, r *http.Request) {
	id, err := pathID(r, "id")
	if err != nil {
		s.fail(w, r, err)
		return
	}
	d, err := s.workflowData(r.Context(), id, readWorkflowQuery(r))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.render(w, r, "workflow.html", d)
}

func (s *Server) workflowAPI(w http.ResponseWriter, r *http.Request) {
	id, err := pathID(r, "id")
	if err != nil {
		s.fail(w, r, err)
		return
	}
	d, err := s.workflowData(r.Context(), id, readWorkflowQuery(r))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.fragments(w, r, d, map[string]string{"summary": "summary", "jobs": "jobs", "graph": "graph", "timeline": "timeline"},
		d.Summary.Status == model.WorkflowDone)
}

func (s *Server) jobPage(w http.ResponseWriter, r *http.Request) {
	d, err := s.jobData(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.render(w, r, "job.html", d)
}

func (s *Server) jobAPI(w http.ResponseWriter, r *http.Request) {
	d, err := s.jobData(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.fragments(w, r, d.Job, map[string]string{"job": "job-detail"}, model.JobEnded(d.Job.Row.Status))
}

func (s *Server) jobData(r *http.Request) (*pageData, error) {
	ctx := r.Context()
	wid, err := pathID(r, "id")
	if err != nil {
		return nil, err
	}
	jid, err := pathID(r, "job")
	if err != nil {
		return nil, err
	}
	attempt, _ := strconv.Atoi(r.URL.Query().Get("attempt"))
	jv, h, err := s.job(ctx, wid, jid, attempt, logTail)
	if err != nil {
		return nil, err
	}
	now := s.opts.Now()
	d := &pageData{Title: "somaflow: " + jv.Row.Name, Job: jv, Now: now.UTC().Format(time.RFC3339)}
	d.Crumbs = []crumb{{"workflows", "/"}, {workflowName(h), "/w/" + h.ID}, {jv.Row.Name, ""}}
	d.Live = "/api/w/" + h.ID + "/j/" + jv.Row.ID
	if attempt > 0 {
		d.Live += "?attempt=" + strconv.Itoa(attempt)
	}
	for i := range jv.Attempts {
		jv.Attempts[i].Href = "/w/" + h.ID + "/j/" + jv.Row.ID + "?attempt=" + strconv.Itoa(jv.Attempts[i].N)
	}
	return d, nil
}
