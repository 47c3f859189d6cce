package store

import (
	"context"
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/somaflow/somaflow/model"
)

// TestLoadDefinitionShared: the engine's definition is LoadDefinition's
// without the names, and jobs that differ only by their names share one
// *model.Job; jobs that differ otherwise do not, whatever their names
// hold.
func TestLoadDefinitionShared(t *testing.T) {
	s := open(t)
	ctx := context.Background()
	str := func(v string) *string { return &v }
	cmd := func(a string) []model.Arg { return []model.Arg{{Value: a}} }
	w := &model.Workflow{Jobs: []*model.Job{
		{Name: str("a"), Command: cmd("true")},
		{Name: str("b"), Command: cmd("true")},
		{Name: str(`x\","Name":"y`), Command: cmd("true")},
		{Command: cmd("true")},
		{Name: str("c"), Command: cmd("false")},
		{Name: str("d"), Command: cmd("true"), Env: map[string]string{"A": "1"}},
		{Name: str("e"), Command: cmd("false")},
		{Name: str("f"), Command: cmd("true"), Configuration: json.RawMessage(`{"k":1}`)},
		{Name: str("g"), Command: cmd("true"), Priority: 3},
		{Name: str("h"), Class: model.ClassBarrier},
		{Name: str("i"), Class: model.ClassBarrier},
	}}
	id, err := s.CreateWorkflow(ctx, NewWorkflow{Def: w, Expiration: time.Now().Add(time.Hour), Cwd: "/"})
	if err != nil {
		t.Fatal(err)
	}
	row, err := s.GetWorkflow(ctx, id, true)
	if err != nil {
		t.Fatal(err)
	}
	// The stored form (deflated) and the plain JSON of older databases.
	plain, err := json.Marshal(w)
	if err != nil {
		t.Fatal(err)
	}
	for _, body := range [][]byte{row.Definition, plain} {
		row.Definition = body
		full, err := LoadDefinition(row)
		if err != nil {
			t.Fatal(err)
		}
		shared, err := LoadDefinitionShared(row)
		if err != nil {
			t.Fatal(err)
		}
		if len(shared.Jobs) != len(w.Jobs) {
			t.Fatalf("%d jobs for %d", len(shared.Jobs), len(w.Jobs))
		}
		for i, j := range shared.Jobs {
			if j.Name != nil {
				t.Fatalf("job %d keeps its name %q", i, *j.Name)
			}
			named := *j
			named.Name = full.Jobs[i].Name
			if !reflect.DeepEqual(&named, full.Jobs[i]) {
				t.Fatalf("job %d: shared %+v, full %+v", i, named, *full.Jobs[i])
			}
		}
		same := [][]int{{0, 1, 2, 3}, {4, 6}, {5}, {7}, {8}, {9, 10}}
		for a, group := range same {
			for _, i := range group {
				if shared.Jobs[i] != shared.Jobs[group[0]] {
					t.Fatalf("jobs %d and %d are not shared", group[0], i)
				}
				for b, other := range same {
					if b != a && shared.Jobs[i] == shared.Jobs[other[0]] {
						t.Fatalf("jobs %d and %d share a definition", i, other[0])
					}
				}
			}
		}
		if err := model.Equivalent(w, full); err != nil {
			t.Fatalf("LoadDefinition: %v", err)
		}
	}
}

func TestNameValue(t *testing.T) {
	for _, c := range []struct{ text, name string }{
		{`{"Class":"","Name":"a","Command":null}`, `"a"`},
		{`{"Class":"","Name":null,"Command":null}`, `null`},
		{`{"Class":"x\"","Name":"a\\","Command":null}`, `"a\\"`},
		{`{"Class":"","Name":"a\",\"b","Command":null}`, `"a\",\"b"`},
		{`{"Name":"a","Class":""}`, ""},
		{`{"Class":"","Command":null,"Name":"a"}`, ""},
		{`{"Class":"","Name":"a`, ""},
	} {
		s, e, ok := nameValue([]byte(c.text))
		got := ""
		if ok {
			got = c.text[s:e]
		}
		if got != c.name {
			t.Errorf("%s: name %q, want %q", c.text, got, c.name)
		}
	}
}

// TestEngineJobs: the engine's read of the jobs is Jobs' but for the jobs
// that succeeded, which come without their details (DropDetails).
func TestEngineJobs(t *testing.T) {
	s := open(t)
	ctx := context.Background()
	id, err := s.CreateWorkflow(ctx, NewWorkflow{Def: newWorkflow(4), Expiration: time.Now().Add(time.Hour), Cwd: "/"})
	if err != nil {
		t.Fatal(err)
	}
	jobs, err := s.Jobs(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	f, n, zero, three := 1.5, int64(7), 0, 3
	outcome := func(j *Job, status, exit string, value *int) {
		j.Status, j.ExitStatus, j.ExitValue = status, &exit, value
		j.Submitted, j.Started, j.Ended = &now, &now, &now
		j.Stdout, j.Stderr, j.DRMSID, j.HandleVersion, j.Handle = "/o", "/e", "42", 1, []byte(`{"pid":42}`)
		j.WallS, j.CPUS, j.MaxRSSKiB, j.UsageRaw, j.OutputParams = &f, &f, &n, []byte(`{"a":"1"}`), []byte(`{"x":1}`)
		j.Attempt = 1
	}
	outcome(&jobs[0], model.JobDone, model.ExitFinishedRegular, &zero) // succeeded
	outcome(&jobs[1], model.JobDone, model.ExitFinishedRegular, &three)
	outcome(&jobs[2], model.JobFailed, model.ExitKilledByUser, nil)
	b := &Batch{}
	for i := range jobs[:3] {
		b.Jobs = append(b.Jobs, &jobs[i])
	}
	if err := s.Commit(ctx, b); err != nil {
		t.Fatal(err)
	}
	full, err := s.Jobs(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	eng, err := s.EngineJobs(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if full[0].Started == nil || full[0].Stdout != "/o" || len(full[0].Handle) == 0 {
		t.Fatalf("stored succeeded job: %+v", full[0])
	}
	slim := full[0]
	slim.DropDetails()
	if slim.Started != nil || slim.Submitted != nil || slim.Ended != nil || slim.Stdout != "" || slim.Stderr != "" ||
		slim.Handle != nil || slim.UsageRaw != nil || slim.WallS != nil || slim.CPUS != nil || slim.MaxRSSKiB != nil {
		t.Fatalf("DropDetails left %+v", slim)
	}
	if slim.DRMSID != "42" || string(slim.OutputParams) != `{"x":1}` || slim.Attempt != 1 || !model.Succeeded(slim.Status, *slim.ExitStatus, slim.ExitValue) {
		t.Fatalf("DropDetails dropped too much: %+v", slim)
	}
	// (Times are read all the same: see selectEngine.)
	slim.Submitted, slim.Started, slim.Ended = full[0].Submitted, full[0].Started, full[0].Ended
	want := append([]Job{slim}, full[1:]...)
	for i := range want {
		if !reflect.DeepEqual(eng[i], want[i]) {
			t.Fatalf("job %d: engine read %+v, want %+v", i, eng[i], want[i])
		}
	}
}
