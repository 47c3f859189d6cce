package store

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/somaflow/somaflow/model"
)

// CountJobs groups jobs by outcome, counts their reasons, and finds the
// latest end whatever the offset its time was written with;
// EachUnsuccessfulJob finds the jobs that did not succeed.
func TestCountJobs(t *testing.T) {
	s := open(t)
	ctx := context.Background()
	id, err := s.CreateWorkflow(ctx, NewWorkflow{Def: newWorkflow(6), Expiration: time.Now().Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	other, err := s.CreateWorkflow(ctx, NewWorkflow{Def: newWorkflow(3), Expiration: time.Now().Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	jobs, err := s.Jobs(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	zero, three := 0, 3
	regular, aborted := model.ExitFinishedRegular, model.ExitAbortedBefore
	lost := "output lost"
	base := time.Date(2026, 12, 6, 11, 0, 0, 0, time.UTC)
	// The latest end is written an hour behind UTC: its text sorts
	// before the others', its time does not.
	west := time.FixedZone("west", -3600)
	ends := []time.Time{base, base.Add(time.Second), base.Add(2500 * time.Millisecond).In(west)}
	for i, set := range []func(j *Job){
		func(j *Job) { j.Status, j.ExitStatus, j.ExitValue, j.Ended = model.JobDone, &regular, &zero, &ends[0] },
		func(j *Job) {
			j.Status, j.ExitStatus, j.ExitValue, j.Reason, j.Ended = model.JobDone, &regular, &zero, &lost, &ends[1]
		},
		func(j *Job) { j.Status, j.ExitStatus, j.ExitValue, j.Ended = model.JobDone, &regular, &three, &ends[2] },
		func(j *Job) { j.Status, j.ExitStatus = model.JobFailed, &aborted },
		func(j *Job) { j.Status = model.JobRunning },
	} {
		set(&jobs[i])
	}
	b := &Batch{}
	for i := range jobs {
		b.Jobs = append(b.Jobs, &jobs[i])
	}
	if err := s.Commit(ctx, b); err != nil {
		t.Fatal(err)
	}
	counts, last, err := s.CountJobs(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	type key struct {
		status, es string
		ev         int // -1: none
	}
	got := map[key][2]int{}
	total := 0
	for _, c := range counts {
		ev := -1
		if c.ExitValue != nil {
			ev = *c.ExitValue
		}
		got[key{c.Status, c.ExitStatus, ev}] = [2]int{c.N, c.WithReason}
		total += c.N
	}
	want := map[key][2]int{
		{model.JobDone, regular, 0}:     {2, 1},
		{model.JobDone, regular, 3}:     {1, 0},
		{model.JobFailed, aborted, -1}:  {1, 0},
		{model.JobRunning, "", -1}:      {1, 0},
		{model.JobNotSubmitted, "", -1}: {1, 0},
	}
	if total != 6 || len(got) != len(want) {
		t.Fatalf("counts %+v: want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%+v: %v, want %v", k, got[k], v)
		}
	}
	if want := base.Add(2 * time.Second); !last.Equal(want) {
		t.Errorf("latest end %v, want %v (to the second)", last, want)
	}
	// The jobs a summary lists: ended without succeeding, or with a reason.
	var listed []int
	if err := s.EachUnsuccessfulJob(ctx, id, func(j *Job) error { listed = append(listed, j.Index); return nil }); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(listed) != "[1 2 3]" {
		t.Errorf("unsuccessful jobs (or with a reason): indexes %v, want [1 2 3]", listed)
	}
	// A workflow with no job ended has no latest end.
	if counts, last, err := s.CountJobs(ctx, other); err != nil || len(counts) != 1 || counts[0].N != 3 || !last.IsZero() {
		t.Errorf("workflow with nothing run: %+v %v %v", counts, last, err)
	}
}
