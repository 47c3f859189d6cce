package dashboard

import (
	"context"
	"html/template"
	"io"
	"strconv"
	"time"

	"github.com/somaflow/somaflow/client"
)

// Report limits: a report of a huge workflow stays a file one can mail.
const (
	reportRows     = 5000 // job table rows, failed first
	reportTimeline = 1000 // timeline rows
	reportDetails  = 50   // jobs shown in detail (command, environment, logs)
	reportLogTail  = 16 << 10
)

// WriteReport writes one workflow's views (summary, graph, job table
// failed first, timeline, and the jobs that did not succeed in detail
// with the tails of their logs) as one self-contained HTML file: CSS
// inline, drawings as inline SVG, no script, nothing loaded from anywhere
// (its Content-Security-Policy forbids it). An unknown id is
// client.ErrUnknownObject.
func WriteReport(ctx context.Context, c *client.Client, id int64, w io.Writer) error {
	s, err := New(c, Options{})
	if err != nil {
		return err
	}
	defer s.Close()
	sn, err := s.snapshot(ctx, id)
	if err != nil {
		return err
	}
	de, err := s.definition(ctx, id, deref(sn.doc.Submitted))
	if err != nil {
		return err
	}
	now := s.opts.Now()
	h := sn.doc.WorkflowHeader
	d := &pageData{Title: "somaflow report: " + workflowName(h), Report: true, CSS: template.CSS(s.css),
		Now: now.UTC().Format(time.RFC3339), Legend: legend()}
	d.Summary = summarize(h, sn.summary(), now, "")
	d.Summary.Problems = problems(sn)
	d.Crumbs = []crumb{{workflowName(h), ""}}
	if h.Name != nil && *h.Name != "" {
		d.Crumbs[0].Name += " (workflow " + h.ID + ")"
	}
	d.Rows, d.Pager = pageRows(sn, "", 1, reportRows, now)
	d.Pager.Truncated = d.Pager.Matching - len(d.Rows)
	detailed := map[string]bool{}
	for _, i := range sn.order {
		if len(d.Details) >= reportDetails || (sn.cats[i] == catOK && len(sn.doc.Jobs) > reportDetails) {
			break
		}
		jid, _ := strconv.ParseInt(sn.doc.Jobs[i].ID, 10, 64)
		jv, _, err := s.job(ctx, id, jid, 0, reportLogTail)
		if err != nil {
			return err
		}
		d.Details = append(d.Details, jv)
		detailed[jv.Row.ID] = true
	}
	for i := range d.Rows {
		if detailed[d.Rows[i].ID] {
			d.Rows[i].Href = "#job-" + d.Rows[i].ID
		}
	}
	d.Graph = de.layout.view(sn, func(j int) string {
		if j < len(sn.doc.Jobs) && detailed[sn.doc.Jobs[j].ID] {
			return "#job-" + sn.doc.Jobs[j].ID
		}
		return ""
	})
	d.Timeline = timeline(sn, d.Rows[:min(len(d.Rows), reportTimeline)], now)
	return s.tmpl.ExecuteTemplate(w, "report.html", d)
}
