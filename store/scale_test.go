package store

import (
	"bytes"
	"compress/flate"
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/somaflow/somaflow/model"
)

// TestDefinitionStreamDecodesAsUnmarshal checks that the stored
// definition, decoded job by job, is exactly what json.Unmarshal of the
// whole text gives, for every workflow file of the model's tests and for
// the edge cases of the jobs list (none, empty, a null job).
func TestDefinitionStreamDecodesAsUnmarshal(t *testing.T) {
	defs := decodedFiles(t, "../testdata/somawf/workflows/*", "../examples/*")
	if len(defs) < 10 {
		t.Fatalf("only %d workflow files decoded", len(defs))
	}
	defs = append(defs, &model.Workflow{}, &model.Workflow{Jobs: []*model.Job{}}, &model.Workflow{Jobs: []*model.Job{nil}}, newWorkflow(50))
	for i, w := range defs {
		enc, err := encodeDefinition(w)
		if err != nil {
			t.Fatal(err)
		}
		zr := flate.NewReader(bytes.NewReader(enc[1:]))
		text, err := io.ReadAll(zr)
		if err != nil {
			t.Fatal(err)
		}
		var want, got model.Workflow
		if err := json.Unmarshal(text, &want); err != nil {
			t.Fatal(err)
		}
		if err := decodeDefinition(enc, &got); err != nil {
			t.Fatalf("workflow %d: %v", i, err)
		}
		if !reflect.DeepEqual(&want, &got) {
			t.Fatalf("workflow %d decoded job by job differs from json.Unmarshal:\n%+v\n%+v", i, want, got)
		}
	}
	for _, bad := range []string{`[1]`, `{"Jobs": 3}`, `{"Jobs": [1]}`, `{"Jobs": [`, `{"Name": "x"`} {
		var buf bytes.Buffer
		buf.WriteByte(definitionDeflate)
		zw, _ := flate.NewWriter(&buf, flate.BestSpeed)
		io.Copy(zw, strings.NewReader(bad))
		zw.Close()
		var w model.Workflow
		if err := decodeDefinition(buf.Bytes(), &w); err == nil {
			t.Fatalf("%s: decoded without error", bad)
		}
	}
}

// TestJobsInIndexOrder checks that Jobs returns a big workflow's jobs (read
// in two parts) in definition order, and refuses rows whose indexes do not
// cover the workflow exactly.
func TestJobsInIndexOrder(t *testing.T) {
	s := open(t)
	ctx := context.Background()
	const n = 20001
	small, err := s.CreateWorkflow(ctx, NewWorkflow{Def: newWorkflow(3), Expiration: time.Now().Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	id, err := s.CreateWorkflow(ctx, NewWorkflow{Def: newWorkflow(n), Expiration: time.Now().Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	// Row ids no longer in index order: indexes of two jobs swapped.
	if err := s.db.Exec(`UPDATE jobs SET "index" = CASE "index" WHEN 5 THEN 19000 ELSE 5 END, name = CASE "index" WHEN 5 THEN 'j19000' ELSE 'j5' END
		WHERE workflow_id = ? AND "index" IN (5, 19000)`, id).Error; err != nil {
		t.Fatal(err)
	}
	jobs, err := s.Jobs(ctx, id)
	if err != nil || len(jobs) != n {
		t.Fatalf("%d jobs, %v", len(jobs), err)
	}
	for i, j := range jobs {
		if j.Index != i || j.Name != "j"+strconv.Itoa(i) || j.WorkflowID != id || j.Status != model.JobNotSubmitted {
			t.Fatalf("job %d: %+v", i, j)
		}
	}
	if jobs, err := s.Jobs(ctx, small); err != nil || len(jobs) != 3 || jobs[2].Name != "j2" {
		t.Fatalf("small workflow: %+v %v", jobs, err)
	}
	if jobs, err := s.Jobs(ctx, 999); err != nil || len(jobs) != 0 {
		t.Fatalf("unknown workflow: %+v %v", jobs, err)
	}
	for _, q := range []string{
		`UPDATE jobs SET "index" = 7 WHERE workflow_id = ? AND "index" = 8`,
		`UPDATE jobs SET "index" = 20001 WHERE workflow_id = ? AND "index" = 7`,
	} {
		if err := s.db.Exec(q, id).Error; err != nil {
			t.Fatal(err)
		}
		if _, err := s.Jobs(ctx, id); err == nil {
			t.Fatalf("after %s: no error", q)
		}
	}
}

// TestCreatedJobRowsAsGORM checks that the jobs CreateWorkflow inserts are
// the rows GORM's Create made of the same jobs, column by column (NULLs,
// types and all), in full statements and the remainder.
func TestCreatedJobRowsAsGORM(t *testing.T) {
	s := open(t)
	ctx := context.Background()
	w := newWorkflow(2*jobInsertRows + 7)
	w.Jobs[3].Class = model.ClassBarrier
	w.Jobs[3].Command = nil
	w.Jobs[4].Priority = -2
	w.Jobs[5].Name = nil
	id, err := s.CreateWorkflow(ctx, NewWorkflow{Def: w, Expiration: time.Now().Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	for i, j := range w.Jobs {
		row := Job{WorkflowID: id + 1000, Index: i, Name: j.DisplayName(), Barrier: j.IsBarrier(), Priority: j.Priority, Status: model.JobNotSubmitted}
		if err := s.db.Create(&row).Error; err != nil {
			t.Fatal(err)
		}
	}
	cols := []string{`"index"`, "name", "barrier", "priority", "status", "exit_status", "exit_value", "signal", "reason", "attempt",
		"drms_id", "handle_version", "handle", "kill_intent", "submitted", "started", "ended", "stdout", "stderr", "wall_s", "cpu_s",
		"max_rss_ki_b", "usage_raw", "output_params"}
	var sel []string
	for _, c := range cols {
		sel = append(sel, "quote("+c+") || ':' || typeof("+c+")")
	}
	read := func(wf int64) []string {
		var out []string
		if err := s.db.Raw(`SELECT `+strings.Join(sel, ` || '|' || `)+` FROM jobs WHERE workflow_id = ? ORDER BY "index"`, wf).Scan(&out).Error; err != nil {
			t.Fatal(err)
		}
		return out
	}
	got, want := read(id), read(id+1000)
	if len(got) != len(w.Jobs) || !reflect.DeepEqual(got, want) {
		for i := range min(len(got), len(want)) {
			if got[i] != want[i] {
				t.Fatalf("job %d:\n got %s\nwant %s", i, got[i], want[i])
			}
		}
		t.Fatalf("%d rows, GORM made %d", len(got), len(want))
	}
}

// TestDefinitionWrittenAsEncoder checks that the definition written job by
// job is byte for byte what json.Encoder writes.
func TestDefinitionWrittenAsEncoder(t *testing.T) {
	name := `a "Jobs":null, <b>`
	defs := []*model.Workflow{{}, {Jobs: []*model.Job{}}, {Jobs: []*model.Job{nil}}, {Name: &name, Jobs: newWorkflow(3).Jobs}, newWorkflow(20)}
	defs = append(defs, decodedFiles(t, "../testdata/somawf/workflows/*")...)
	for i, w := range defs {
		var want, got bytes.Buffer
		if err := json.NewEncoder(&want).Encode(w); err != nil {
			t.Fatal(err)
		}
		if err := writeDefinition(&got, w); err != nil {
			t.Fatal(err)
		}
		if got.String() != want.String() {
			t.Fatalf("workflow %d:\n got %s\nwant %s", i, got.String(), want.String())
		}
	}
}

// TestEachJobStateAsJobs checks that EachJobState reads what Jobs reads, less
// the engine's columns, each job with its own values.
func TestEachJobStateAsJobs(t *testing.T) {
	s := open(t)
	ctx := context.Background()
	id, err := s.CreateWorkflow(ctx, NewWorkflow{Def: newWorkflow(30000), Expiration: time.Now().Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.db.Exec(`UPDATE jobs SET status = 'done', exit_status = 'finished_regularly', exit_value = "index" % 3, signal = 's' || "index",
		reason = 'r' || "index", attempt = 1, drms_id = 'd' || "index", submitted = '2026-01-02 03:04:05.5+00:00', started = '2026-01-02 03:04:06+00:00',
		ended = '2026-01-02 03:04:07+00:00', stdout = 'o' || "index", stderr = 'e' || "index", wall_s = "index" * 0.5, cpu_s = "index" * 0.25,
		max_rss_ki_b = "index" * 2, usage_raw = CAST('{"n":"' || "index" || '"}' AS BLOB), handle = x'0102', handle_version = 3, kill_intent = true,
		output_params = x'7b7d', priority = "index" % 5
		WHERE workflow_id = ? AND "index" % 7 != 0`, id).Error; err != nil {
		t.Fatal(err)
	}
	full, err := s.Jobs(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	var states []Job
	var mu sync.Mutex // put may run in two goroutines (distinct indexes)
	err = s.EachJobState(ctx, id, func(n int) { states = make([]Job, n) }, func(j *Job) {
		mu.Lock()
		defer mu.Unlock()
		states[j.Index] = *j
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(states) != len(full) {
		t.Fatalf("%d states, %d jobs", len(states), len(full))
	}
	for i := range full {
		want := full[i]
		if i%7 != 0 && (want.WallS == nil || *want.WallS != float64(i)*0.5 || *want.MaxRSSKiB != int64(i)*2 || *want.ExitValue != i%3 || *want.Reason != "r"+strconv.Itoa(i)) {
			t.Fatalf("job %d: %+v", i, want)
		}
		want.Barrier, want.Priority, want.HandleVersion, want.Handle, want.KillIntent, want.OutputParams = false, 0, 0, nil, false, nil
		if !reflect.DeepEqual(states[i], want) {
			t.Fatalf("job %d:\n got %+v\nwant %+v", i, states[i], want)
		}
	}
}

// decodedFiles decodes every workflow file matching the patterns (files
// that do not decode are skipped).
func decodedFiles(t *testing.T, patterns ...string) []*model.Workflow {
	t.Helper()
	var defs []*model.Workflow
	for _, pat := range patterns {
		files, _ := filepath.Glob(pat)
		for _, f := range files {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			if w, _, err := model.Decode(data); err == nil {
				defs = append(defs, w)
			}
		}
	}
	return defs
}
