package client_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"github.com/somaflow/somaflow/client"
	"github.com/somaflow/somaflow/model"
)

func open(t *testing.T) *client.Client {
	t.Helper()
	c, err := client.Open(context.Background(), client.Options{StateDir: t.TempDir(), PollInterval: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func decode(t *testing.T, text string) *model.Workflow {
	t.Helper()
	w, _, err := client.Unserialize([]byte(text))
	if err != nil {
		t.Fatal(err)
	}
	return w
}

const mixed = `
name: mixed
jobs:
  ok:   {command: ["true"]}
  bad:  {shell: "exit 3"}
  sig:  {shell: "kill -KILL $$"}
  dep:  {command: ["true"], after: [bad]}
  gone: {command: [no-such-command-somaflow]}
`

func jobIDs(t *testing.T, c *client.Client, wf int64) map[string]int64 {
	t.Helper()
	doc, err := c.WorkflowElementsStatus(context.Background(), wf)
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]int64{}
	for _, j := range doc.Jobs {
		var id int64
		for _, ch := range j.ID {
			id = id*10 + int64(ch-'0')
		}
		m[j.Name] = id
	}
	return m
}

func TestSubmitWaitStatuses(t *testing.T) {
	ctx := context.Background()
	c := open(t)
	id, err := c.SubmitWorkflow(ctx, decode(t, mixed), client.SubmitOptions{Queue: "q1"})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.WaitWorkflow(ctx, id, time.Minute); err != nil {
		t.Fatal(err)
	}
	st, err := c.WorkflowStatus(ctx, id)
	if err != nil || st != model.WorkflowDone {
		t.Fatalf("status %q, %v", st, err)
	}
	ids := jobIDs(t, c, id)
	want := map[string][3]string{
		"ok":   {"done", "finished_regularly", "0"},
		"bad":  {"done", "finished_regularly", "3"},
		"sig":  {"done", "finished_signal", ""},
		"dep":  {"failed", "aborted_before_running", ""},
		"gone": {"failed", "aborted", ""},
	}
	for name, w := range want {
		js, err := c.JobStatus(ctx, ids[name])
		if err != nil || js != w[0] {
			t.Errorf("JobStatus(%s) = %q, %v; want %q", name, js, err, w[0])
		}
		ts, err := c.JobTerminationStatus(ctx, ids[name])
		if err != nil {
			t.Fatal(err)
		}
		ev := ""
		if ts.ExitValue != nil {
			ev = string(rune('0' + *ts.ExitValue))
		}
		if *ts.ExitStatus != w[1] || ev != w[2] {
			t.Errorf("JobTerminationStatus(%s) = %s/%s, want %s/%s", name, *ts.ExitStatus, ev, w[1], w[2])
		}
	}
	ts, _ := c.JobTerminationStatus(ctx, ids["sig"])
	if ts.Signal == nil || *ts.Signal != "SIGKILL" {
		t.Errorf("sig: signal %v", ts.Signal)
	}
	doc, err := c.WorkflowElementsStatus(ctx, id)
	if err != nil || doc.Queue == nil || *doc.Queue != "q1" || doc.Name == nil || *doc.Name != "mixed" {
		t.Fatalf("document: %+v, %v", doc, err)
	}
	for _, j := range doc.Jobs {
		if j.Name == "ok" && (j.DRMSID == nil || j.Stdout == nil || j.ResourceUsage.WallS == nil) {
			t.Errorf("ok job lacks drms id, stdout or wall time: %+v", j)
		}
	}

	// ListFailedJobs and its options.
	cases := []struct {
		opts client.ListFailedOptions
		want []string
	}{
		{client.ListFailedOptions{}, []string{"bad", "sig"}},
		{client.ListFailedOptions{IncludeAborted: true}, []string{"bad", "dep", "gone", "sig"}},
		// soma-workflow's Helper.list_failed_jobs keeps a done job with an
		// exit value other than 0 (or none: sig) whatever include_statuses
		// says: `status == DONE and exit_info[1] != 0`.
		{client.ListFailedOptions{ExitStatuses: []string{model.ExitAborted}}, []string{"bad", "gone", "sig"}},
		{client.ListFailedOptions{ExitStatuses: []string{model.ExitAbortedBefore}}, []string{"bad", "dep", "sig"}},
	}
	names := map[int64]string{}
	for n, i := range ids {
		names[i] = n
	}
	for _, tc := range cases {
		got, err := c.ListFailedJobs(ctx, id, tc.opts)
		if err != nil {
			t.Fatal(err)
		}
		var gotNames []string
		for _, g := range got {
			gotNames = append(gotNames, names[g])
		}
		sort.Strings(gotNames)
		if len(gotNames) != len(tc.want) || (len(gotNames) > 0 && join(gotNames) != join(tc.want)) {
			t.Errorf("ListFailedJobs(%+v) = %v, want %v", tc.opts, gotNames, tc.want)
		}
	}

	// Workflows, Jobs, Workflow.
	ws, err := c.Workflows(ctx)
	if err != nil || len(ws) != 1 || ws[0].ID != id {
		t.Fatalf("Workflows: %+v, %v", ws, err)
	}
	ji, err := c.Jobs(ctx, ids["bad"])
	if err != nil || len(ji) != 1 || ji[0].Name != "bad" || join(ji[0].Command) != "/bin/sh,-c,exit 3" {
		t.Fatalf("Jobs: %+v, %v", ji, err)
	}
	def, err := c.Workflow(ctx, id)
	if err != nil || len(def.Jobs) != 5 || len(def.Dependencies) != 1 {
		t.Fatalf("Workflow: %v", err)
	}
}

func join(s []string) string {
	out := ""
	for i, x := range s {
		if i > 0 {
			out += ","
		}
		out += x
	}
	return out
}

func TestUnknownIDs(t *testing.T) {
	ctx := context.Background()
	c := open(t)
	checks := map[string]error{}
	_, checks["WorkflowStatus"] = c.WorkflowStatus(ctx, 999)
	_, checks["WorkflowElementsStatus"] = c.WorkflowElementsStatus(ctx, 999)
	_, checks["Workflow"] = c.Workflow(ctx, 999)
	_, checks["Workflows"] = c.Workflows(ctx, 999)
	_, checks["Jobs"] = c.Jobs(ctx, 999)
	_, checks["JobStatus"] = c.JobStatus(ctx, 999)
	_, checks["JobTerminationStatus"] = c.JobTerminationStatus(ctx, 999)
	_, checks["ListFailedJobs"] = c.ListFailedJobs(ctx, 999, client.ListFailedOptions{})
	_, checks["StopWorkflow"] = c.StopWorkflow(ctx, 999)
	_, checks["RestartWorkflow"] = c.RestartWorkflow(ctx, 999, "")
	_, checks["DeleteWorkflow"] = c.DeleteWorkflow(ctx, 999, false)
	checks["ChangeWorkflowExpirationDate"] = c.ChangeWorkflowExpirationDate(ctx, 999, time.Now().Add(time.Hour))
	checks["WaitWorkflow"] = c.WaitWorkflow(ctx, 999, time.Second)
	checks["WaitJob"] = c.WaitJob(ctx, []int64{999}, time.Second)
	for name, err := range checks {
		if !errors.Is(err, client.ErrUnknownObject) {
			t.Errorf("%s: got %v, want ErrUnknownObject", name, err)
		}
	}
}

func TestWaitTimeoutAndCancel(t *testing.T) {
	ctx := context.Background()
	c := open(t)
	id, err := c.SubmitWorkflow(ctx, decode(t, `jobs: {long: {command: [sleep, "30"]}}`), client.SubmitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.WaitWorkflow(ctx, id, 200*time.Millisecond); !errors.Is(err, client.ErrTimeout) {
		t.Fatalf("WaitWorkflow timeout: %v", err)
	}
	ids := jobIDs(t, c, id)
	if err := c.WaitJob(ctx, []int64{ids["long"]}, 100*time.Millisecond); !errors.Is(err, client.ErrTimeout) {
		t.Fatalf("WaitJob timeout: %v", err)
	}
	cctx, cancel := context.WithCancel(ctx)
	go func() { time.Sleep(100 * time.Millisecond); cancel() }()
	if err := c.WaitWorkflow(cctx, id, -1); !errors.Is(err, context.Canceled) {
		t.Fatalf("WaitWorkflow cancelled: %v", err)
	}
	// A workflow in progress cannot be restarted (soma-workflow's rule).
	if _, err := c.RestartWorkflow(ctx, id, ""); !errors.Is(err, client.ErrInvalid) {
		t.Fatalf("RestartWorkflow of a running workflow: %v, want ErrInvalid", err)
	}
	// Stop returns once the running job is killed by the user.
	if ok, err := c.StopWorkflow(ctx, id); err != nil || !ok {
		t.Fatalf("StopWorkflow: %v %v, want true", ok, err)
	}
	ts, _ := c.JobTerminationStatus(ctx, ids["long"])
	if ts.ExitStatus == nil || *ts.ExitStatus != model.ExitKilledByUser {
		t.Fatalf("stopped job when StopWorkflow returned: %s %v", ts.Status, ts.ExitStatus)
	}
	if st, _ := c.WorkflowStatus(ctx, id); st != model.WorkflowDone {
		t.Fatalf("workflow %s when StopWorkflow returned", st)
	}
	failed, _ := c.ListFailedJobs(ctx, id, client.ListFailedOptions{})
	withKilled, _ := c.ListFailedJobs(ctx, id, client.ListFailedOptions{IncludeUserKilled: true})
	if len(failed) != 0 || len(withKilled) != 1 {
		t.Fatalf("ListFailedJobs: %v without killed, %v with", failed, withKilled)
	}
}

func TestRestartDeleteExpiration(t *testing.T) {
	ctx := context.Background()
	c := open(t)
	flag := filepath.Join(t.TempDir(), "flag")
	w := decode(t, `jobs:
  first: {command: ["true"]}
  flaky: {command: [test, -e, `+flag+`], after: [first]}
  last: {command: ["true"], after: [flaky]}
`)
	id, err := c.SubmitWorkflow(ctx, w, client.SubmitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.WaitWorkflow(ctx, id, time.Minute); err != nil {
		t.Fatal(err)
	}
	if f, _ := c.ListFailedJobs(ctx, id, client.ListFailedOptions{IncludeAborted: true}); len(f) != 2 {
		t.Fatalf("before restart: %d failed, want 2", len(f))
	}
	os.WriteFile(flag, nil, 0o644)
	if ok, err := c.RestartWorkflow(ctx, id, "other"); err != nil || !ok {
		t.Fatalf("RestartWorkflow: %v %v, want true", ok, err)
	}
	// Wait until the restart was applied and every job succeeded.
	deadline := time.Now().Add(time.Minute)
	for {
		if err := c.WaitWorkflow(ctx, id, time.Minute); err != nil {
			t.Fatal(err)
		}
		doc, _ := c.WorkflowElementsStatus(ctx, id)
		okCount := 0
		for _, j := range doc.Jobs {
			if model.Succeeded(j.Status, deref(j.ExitStatus), j.ExitValue) {
				okCount++
			}
		}
		if doc.Status == model.WorkflowDone && okCount == len(doc.Jobs) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("restart did not re-run the failed jobs")
		}
		time.Sleep(20 * time.Millisecond)
	}
	doc, _ := c.WorkflowElementsStatus(ctx, id)
	if doc.Queue == nil || *doc.Queue != "other" {
		t.Errorf("queue after a restart with queue other: %v", doc.Queue)
	}
	if ok, err := c.RestartWorkflow(ctx, id, ""); err != nil || ok {
		t.Fatalf("RestartWorkflow with every job succeeded: %v %v, want false (nothing to restart)", ok, err)
	}
	for _, j := range doc.Jobs {
		want := map[string]int{"first": 1, "flaky": 2, "last": 1}[j.Name]
		if j.Attempt != want {
			t.Errorf("%s: attempt %d, want %d", j.Name, j.Attempt, want)
		}
	}

	if err := c.ChangeWorkflowExpirationDate(ctx, id, time.Now().Add(-time.Hour)); !errors.Is(err, client.ErrInvalid) {
		t.Fatalf("past expiration: %v", err)
	}
	exp := time.Now().Add(48 * time.Hour).Truncate(time.Second)
	if err := c.ChangeWorkflowExpirationDate(ctx, id, exp); err != nil {
		t.Fatal(err)
	}
	ws, _ := c.Workflows(ctx, id)
	if !ws[0].Expiration.Equal(exp) {
		t.Fatalf("expiration %v, want %v", ws[0].Expiration, exp)
	}
	if ok, err := c.DeleteWorkflow(ctx, id, true); err != nil || !ok {
		t.Fatalf("DeleteWorkflow(force): %v %v, want true", ok, err)
	}
	if _, err := c.WorkflowStatus(ctx, id); !errors.Is(err, client.ErrUnknownObject) {
		t.Fatalf("after delete: %v", err)
	}
}

func TestDeleteAllAndInvalid(t *testing.T) {
	ctx := context.Background()
	c := open(t)
	for i := 0; i < 3; i++ {
		if _, err := c.SubmitWorkflow(ctx, decode(t, `jobs: {a: {command: [sleep, "30"]}}`), client.SubmitOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	if ok, err := c.DeleteAllWorkflows(ctx, true); err != nil || !ok {
		t.Fatalf("DeleteAllWorkflows(force): %v %v", ok, err)
	}
	if ws, _ := c.Workflows(ctx); len(ws) != 0 {
		t.Fatalf("%d workflows left", len(ws))
	}
	// A workflow with a cycle is refused and stores nothing.
	cyc := decode(t, `jobs: {a: {command: ["true"], after: [b]}, b: {command: ["true"], after: [a]}}`)
	if _, err := c.SubmitWorkflow(ctx, cyc, client.SubmitOptions{}); !errors.Is(err, client.ErrInvalid) {
		t.Fatalf("cycle: %v", err)
	}
	if _, err := c.SubmitWorkflow(ctx, decode(t, `jobs: {a: {command: ["true"]}}`), client.SubmitOptions{Expiration: time.Now().Add(-time.Minute)}); !errors.Is(err, client.ErrInvalid) {
		t.Fatalf("past expiration: %v", err)
	}
	if ws, _ := c.Workflows(ctx); len(ws) != 0 {
		t.Fatalf("refused workflows were stored: %d", len(ws))
	}
}

func TestSerializeRoundTrip(t *testing.T) {
	w := decode(t, mixed)
	for _, f := range []model.Format{model.FormatSoma, model.FormatNative} {
		data, err := client.Serialize(w, f)
		if err != nil {
			t.Fatal(err)
		}
		back, got, err := client.Unserialize(data)
		if err != nil || got != f {
			t.Fatalf("%s: format %q, %v", f, got, err)
		}
		if f == model.FormatSoma {
			// soma-workflow has no shell jobs: they become /bin/sh -c argv,
			// and from then on the round trip is exact.
			again, _ := client.Serialize(back, f)
			if string(again) != string(data) {
				t.Fatalf("soma round trip differs:\n%s\n%s", data, again)
			}
			continue
		}
		if err := model.Equivalent(w, back); err != nil {
			t.Fatalf("%s round trip: %v", f, err)
		}
	}
	if _, _, err := client.Unserialize([]byte("{not json")); !errors.Is(err, client.ErrInvalid) {
		t.Fatalf("garbage: %v", err)
	}
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
