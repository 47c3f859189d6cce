package dashboard_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/somaflow/somaflow/client"
	"github.com/somaflow/somaflow/dashboard"
	"github.com/somaflow/somaflow/model"
	"github.com/somaflow/somaflow/store"
)

// grouped is a workflow of groups jobs each in groups of per, every group
// after the one before it (group-to-group dependencies), plus loose jobs
// outside any group.
func grouped(groups, per, loose int) *model.Workflow {
	w := &model.Workflow{}
	for g := range groups {
		grp := &model.Group{Name: fmt.Sprintf("step %d", g)}
		for range per {
			name := fmt.Sprintf("g%d-j%d", g, len(grp.Elements))
			grp.Elements = append(grp.Elements, model.Element{Kind: model.JobElement, Index: len(w.Jobs)})
			w.Jobs = append(w.Jobs, &model.Job{Name: &name, Command: []model.Arg{{Value: "true"}}})
		}
		w.Groups = append(w.Groups, grp)
		w.Root = append(w.Root, model.Element{Kind: model.GroupElement, Index: g})
		if g > 0 {
			w.Dependencies = append(w.Dependencies, model.Dependency{From: model.Element{Kind: model.GroupElement, Index: g - 1}, To: model.Element{Kind: model.GroupElement, Index: g}})
		}
	}
	for i := range loose {
		name := fmt.Sprintf("loose%d", i)
		w.Root = append(w.Root, model.Element{Kind: model.JobElement, Index: len(w.Jobs)})
		w.Jobs = append(w.Jobs, &model.Job{Name: &name, Command: []model.Arg{{Value: "true"}}})
	}
	return w
}

// bigState stores w in a fresh state dir without an engine and gives its
// jobs a mix of outcomes straight in the store (every tenth failed, every
// hundredth running, the rest of the first half succeeded, the second
// half waiting), as a big workflow halfway through looks.
func bigState(tb testing.TB, w *model.Workflow) (*client.Client, int64) {
	tb.Helper()
	ctx := context.Background()
	dir := tb.TempDir()
	c, err := client.Open(ctx, client.Options{StateDir: dir, NoEngine: true})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { c.Close() })
	id, err := c.SubmitWorkflow(ctx, w, client.SubmitOptions{Cwd: dir, Environ: []string{}})
	if err != nil {
		tb.Fatal(err)
	}
	st, err := store.Open(ctx, dir)
	if err != nil {
		tb.Fatal(err)
	}
	defer st.Close()
	jobs, err := st.Jobs(ctx, id)
	if err != nil {
		tb.Fatal(err)
	}
	t0 := time.Now().Add(-time.Hour).UTC()
	var batch store.Batch
	for i := range jobs {
		j := &jobs[i]
		if i >= len(jobs)/2 {
			continue
		}
		sub, start, end := t0.Add(time.Duration(i)*time.Millisecond), t0.Add(time.Duration(i)*time.Millisecond+time.Second), t0.Add(time.Duration(i)*time.Millisecond+3*time.Second)
		j.Submitted, j.Started, j.Attempt = &sub, &start, 1
		zero, three, fin := 0, 3, model.ExitFinishedRegular
		switch {
		case i%100 == 0:
			j.Status = model.JobRunning
		case i%10 == 0:
			j.Status, j.ExitStatus, j.ExitValue, j.Ended = model.JobDone, &fin, &three, &end
		default:
			j.Status, j.ExitStatus, j.ExitValue, j.Ended = model.JobDone, &fin, &zero, &end
		}
		batch.Jobs = append(batch.Jobs, j)
	}
	if err := st.Commit(ctx, &batch); err != nil {
		tb.Fatal(err)
	}
	return c, id
}

// TestDashboardLargeWorkflow checks the views of a workflow too big to
// show whole: the table is paged (failed first), the graph has one box per
// group and the loose jobs gathered by level, and a report stays bounded.
func TestDashboardLargeWorkflow(t *testing.T) {
	c, id := bigState(t, grouped(20, 250, 400))
	s := server(t, c, "")
	w := fmt.Sprintf("/w/%d", id)
	tests := []struct {
		name, path string
		want       []string
		absent     []string
	}{
		{"first page", w, []string{"page 1 of 54", "jobs 1–100 of 5400", `<tr class="cat-failed">`, "groups are drawn as one box each",
			`class="node box-group"`, ">step 0<", ">step 19<", ">250<", "loose, level 0", ">400<", `rel="next"`}, []string{`<tr class="cat-waiting">`}},
		{"last page", w + "?page=54", []string{"page 54 of 54", "jobs 5301–5400 of 5400", `<tr class="cat-succeeded">`, `rel="prev"`}, []string{`rel="next"`}},
		{"page past the end", w + "?page=999", []string{"page 54 of 54"}, nil},
		{"failed only", w + "?status=failed", []string{"of 243 failed", "page 1 of 3"}, []string{`<tr class="cat-succeeded">`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, body, _ := get(t, s, "GET", tc.path, nil)
			if code != http.StatusOK {
				t.Fatalf("%d: %s", code, body)
			}
			for _, x := range tc.want {
				if !strings.Contains(body, x) {
					t.Errorf("no %q", x)
				}
			}
			for _, x := range tc.absent {
				if strings.Contains(body, x) {
					t.Errorf("%q is there", x)
				}
			}
			if rows := strings.Count(body, "<tr class="); rows > 100 {
				t.Errorf("%d rows on a page", rows)
			}
			if nodes := strings.Count(body, "<g class="); nodes > 150+100 {
				t.Errorf("%d boxes and timeline rows", nodes)
			}
		})
	}
	var b strings.Builder
	if err := dashboard.WriteReport(context.Background(), c, id, &b); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(b.String(), "<details"); n != 50 {
		t.Errorf("%d jobs in detail in the report, want 50", n)
	}
	if !strings.Contains(b.String(), "400 more not shown") && !strings.Contains(b.String(), "jobs 1–5000 of 5400") {
		t.Errorf("the report does not say it cut the table")
	}
}

// BenchmarkWorkflowPage100k serves the page of a 100,000-job workflow (100
// groups of 1,000 jobs, half of them ended): "cold" with a new server each
// time (status document read; the definition decoded and laid out
// meanwhile, the page not waiting more than graphWait for it),
// "cold-with-graph" until the page's graph is there too, "changed" with the
// layout kept and the document read again (a page or poll after the engine
// changed something; it also reports the time of reading the status
// document alone in the same run, and the ratio of the two), "unchanged" a
// poll between changes.
func BenchmarkWorkflowPage100k(b *testing.B) {
	c, id := bigState(b, grouped(100, 1000, 0))
	path := fmt.Sprintf("/w/%d?page=2", id)
	b.Run("cold", func(b *testing.B) {
		for b.Loop() {
			s, err := dashboard.New(c, dashboard.Options{})
			if err != nil {
				b.Fatal(err)
			}
			if code, body, _ := get(b, s, "GET", path, nil); code != 200 || !strings.Contains(body, "page 2 of 1000") {
				b.Fatalf("%d: %.300s", code, body)
			}
			b.StopTimer()
			s.WaitDefinitions()
			s.Close()
			b.StartTimer()
		}
	})
	b.Run("cold-with-graph", func(b *testing.B) {
		for b.Loop() {
			s, err := dashboard.New(c, dashboard.Options{})
			if err != nil {
				b.Fatal(err)
			}
			deadline := time.Now().Add(time.Minute)
			for body := ""; !strings.Contains(body, `svg class=\"graph\"`); time.Sleep(10 * time.Millisecond) {
				if time.Now().After(deadline) {
					b.Fatalf("no graph after a minute: %.300s", body)
				}
				_, body, _ = get(b, s, "GET", "/api"+path, nil)
			}
			s.Close()
		}
	})
	b.Run("changed", func(b *testing.B) {
		s := server(b, c, "")
		get(b, s, "GET", path, nil)
		var page, doc time.Duration
		for b.Loop() {
			// The baseline, in the same run: reading the status document
			// alone (what `somaflow status --json` costs).
			t0 := time.Now()
			if _, err := c.WorkflowElementsStatus(context.Background(), id); err != nil {
				b.Fatal(err)
			}
			t1 := time.Now()
			s.Forget(id)
			if code, _, _ := get(b, s, "GET", path, nil); code != 200 {
				b.Fatal(code)
			}
			page, doc = page+time.Since(t1), doc+t1.Sub(t0)
		}
		b.ReportMetric(float64(page.Nanoseconds())/float64(b.N), "page-ns/op")
		b.ReportMetric(float64(doc.Nanoseconds())/float64(b.N), "statusdoc-ns/op")
		b.ReportMetric(float64(page)/float64(doc), "page/statusdoc")
	})
	b.Run("unchanged", func(b *testing.B) {
		s := server(b, c, "")
		get(b, s, "GET", "/api"+path, nil)
		for b.Loop() {
			if code, _, _ := get(b, s, "GET", "/api"+path, nil); code != 200 {
				b.Fatal(code)
			}
		}
	})
}
