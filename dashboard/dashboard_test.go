package dashboard_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/somaflow/somaflow/client"
	"github.com/somaflow/somaflow/dashboard"
	"github.com/somaflow/somaflow/model"
)

// hostileName is a job name that would run script if a page did not
// escape it.
const hostileName = `<img src=x onerror=alert(1)>`

// mixedWF has a job running (slow), one failed (bad) with its dependant
// aborted (dep), one waiting for the running one (later), one succeeded,
// and hostile text in names, commands and output.
const mixedWF = `name: 'mixed <script>alert("wf")</script>'
env: {WF_VAR: 'wf&value'}
jobs:
  ok: {command: ["true"]}
  slow: {command: [sleep, "600"]}
  bad: {shell: "echo '<script>alert(1)</script>'; echo to-stderr >&2; false", env: {JOB_VAR: job-value}}
  dep: {command: ["true"], after: [bad]}
  later: {command: ["true"], after: [slow]}
  '<img src=x onerror=alert(1)>': {command: [echo, '"><script>alert(2)</script>']}
`

// state runs mixedWF in an engine of the test until slow runs, bad failed
// and dep is aborted; it returns a client without an engine on the same
// state dir (as the CLI opens it), the workflow id and the job ids by name.
// The workflow is stopped at the end of the test.
func state(t *testing.T) (*client.Client, int64, map[string]string) {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	// Without the hold, later waits in the engine (the "waiting" category);
	// held, it would be queued (cli's TestDashboardCLI shows that one).
	eng, err := client.Open(ctx, client.Options{StateDir: dir, PollInterval: 50 * time.Millisecond,
		Settings: map[string]string{"hold": "false"}})
	if err != nil {
		t.Fatal(err)
	}
	w, _, err := client.Unserialize([]byte(mixedWF))
	if err != nil {
		t.Fatal(err)
	}
	id, err := eng.SubmitWorkflow(ctx, w, client.SubmitOptions{Cwd: dir})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		eng.StopWorkflow(sctx, id)
		eng.Close()
	})
	ids := map[string]string{}
	deadline := time.Now().Add(60 * time.Second)
	for {
		doc, err := eng.WorkflowElementsStatus(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		st := map[string]client.JobDoc{}
		for _, j := range doc.Jobs {
			st[j.Name] = j
			ids[j.Name] = j.ID
		}
		if st["slow"].Status == model.JobRunning && st["bad"].Status == model.JobDone && st["ok"].Status == model.JobDone &&
			deref(st["dep"].ExitStatus) == model.ExitAbortedBefore && st[hostileName].Status == model.JobDone {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the workflow did not reach running/failed/aborted: %+v", st)
		}
		time.Sleep(20 * time.Millisecond)
	}
	c, err := client.Open(ctx, client.Options{StateDir: dir, NoEngine: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c, id, ids
}

func deref(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

func server(t testing.TB, c *client.Client, token string) *dashboard.Server {
	t.Helper()
	s, err := dashboard.New(c, dashboard.Options{Token: token})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

func get(t testing.TB, h http.Handler, method, target string, header map[string]string) (int, string, http.Header) {
	t.Helper()
	r := httptest.NewRequest(method, target, nil)
	r.Host = "127.0.0.1:8080" // httptest's default, example.com, is refused
	for k, v := range header {
		if k == "Host" {
			r.Host = v
		} else {
			r.Header.Set(k, v)
		}
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w.Code, w.Body.String(), w.Result().Header
}

// TestDashboardPages loads every page of a workflow with running, failed
// and aborted jobs and checks what they say, that hostile text is escaped,
// and that errors have the right codes.
func TestDashboardPages(t *testing.T) {
	c, id, ids := state(t)
	s := server(t, c, "")
	w := "/w/" + strconv.FormatInt(id, 10)
	tests := []struct {
		name   string
		method string
		path   string
		code   int
		want   []string
		absent []string
	}{
		{"list", "GET", "/", 200,
			[]string{`href="` + w + `"`, "mixed &lt;script&gt;", "1 running", "1 failed", "1 aborted", "1 waiting", `data-live="/api/workflows"`},
			[]string{"<script>alert"}},
		{"workflow", "GET", w, 200,
			[]string{"workflow_in_progress", ">bad</a>", ">slow</a>", "aborted_before_running", "finished_regularly", `<svg class="graph"`,
				`<svg class="timeline"`, "&lt;img src=x onerror=alert(1)&gt;", "page 1 of 1", `class="node cat-failed"`, `class="node cat-running"`,
				`class="node cat-aborted"`, `class="node cat-waiting"`},
			[]string{hostileName, "<script>alert"}},
		{"failed first", "GET", w, 200, []string{`<tr class="cat-failed">`}, nil},
		{"filter running", "GET", w + "?status=running", 200, []string{">slow</a>", "jobs 1–1 of 1 running"}, []string{">bad</a>"}},
		{"job bad", "GET", w + "/j/" + ids["bad"], 200,
			[]string{"/bin/sh -c", "echo &#39;&lt;script&gt;alert(1)&lt;/script&gt;&#39;", "&lt;script&gt;alert(1)&lt;/script&gt;\n</pre>", "to-stderr",
				"WF_VAR", "wf&amp;value", "JOB_VAR", "job-value", "exit value 1", "attempts:", ".1.out"},
			[]string{"<script>alert"}},
		{"job hostile", "GET", w + "/j/" + ids[hostileName], 200,
			[]string{"&lt;img src=x onerror=alert(1)&gt;", "&#34;&gt;&lt;script&gt;alert(2)&lt;/script&gt;"}, []string{hostileName, "<script>alert"}},
		{"job running", "GET", w + "/j/" + ids["slow"], 200, []string{"running", "<li><code>sleep</code></li>"}, nil},
		{"api", "GET", "/api" + w, 200, []string{"jobs:", "graph:", "timeline:", "summary:", "<svg class=\"graph\""}, nil},
		{"api job", "GET", "/api" + w + "/j/" + ids["bad"], 200, []string{"job:", "to-stderr"}, nil},
		{"asset", "GET", "/assets/live.js", 200, []string{"data-live"}, nil},
		{"unknown workflow", "GET", "/w/999", 404, nil, nil},
		{"bad id", "GET", "/w/x", 400, nil, nil},
		{"job of another workflow", "GET", "/w/999/j/" + ids["bad"], 404, nil, nil},
		{"unknown job", "GET", w + "/j/99999", 404, nil, nil},
		{"unknown page", "GET", "/nothing", 404, nil, nil},
		{"post refused", "POST", w, 405, nil, nil},
		{"delete refused", "DELETE", "/", 405, nil, nil},
		{"head", "HEAD", w, 200, nil, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, body, hdr := get(t, s, tc.method, tc.path, nil)
			if code != tc.code {
				t.Fatalf("%s %s: %d, want %d: %s", tc.method, tc.path, code, tc.code, body)
			}
			if code == 200 && !strings.Contains(hdr.Get("Content-Security-Policy"), "default-src 'none'") {
				t.Fatalf("no CSP: %v", hdr)
			}
			if strings.HasPrefix(tc.path, "/api") {
				var doc struct{ Fragments map[string]string }
				if err := json.Unmarshal([]byte(body), &doc); err != nil {
					t.Fatal(err)
				}
				body = fmt.Sprint(doc.Fragments)
			}
			for _, s := range tc.want {
				if !strings.Contains(body, s) {
					t.Errorf("%s: no %q in:\n%s", tc.path, s, body)
				}
			}
			for _, s := range tc.absent {
				if strings.Contains(body, s) {
					t.Errorf("%s: %q is there (not escaped?)", tc.path, s)
				}
			}
			if strings.Contains(body, "http://") || strings.Contains(body, "https://") {
				t.Errorf("%s: a page refers to something outside", tc.path)
			}
		})
	}
}

// TestDashboardAccess checks the token, the cookie it sets, and that only
// loopback host names are answered (no DNS rebinding).
func TestDashboardAccess(t *testing.T) {
	c, _, _ := state(t)
	s := server(t, c, "s3cret")
	tests := []struct {
		name   string
		target string
		header map[string]string
		code   int
	}{
		{"no token", "/", nil, 401},
		{"wrong token", "/?token=nope", nil, 401},
		{"token", "/?token=s3cret", nil, 200},
		{"cookie", "/", map[string]string{"Cookie": "somaflow_dashboard_8080=s3cret"}, 200},
		{"wrong cookie", "/", map[string]string{"Cookie": "somaflow_dashboard_8080=x"}, 401},
		{"another dashboard's cookie", "/", map[string]string{"Cookie": "somaflow_dashboard_9090=s3cret"}, 401},
		{"host without port", "/?token=s3cret", map[string]string{"Host": "127.0.0.1"}, 200},
		{"other host", "/?token=s3cret", map[string]string{"Host": "evil.example:8080"}, 403},
		{"localhost", "/?token=s3cret", map[string]string{"Host": "localhost:8080"}, 200},
		{"ipv6 loopback", "/?token=s3cret", map[string]string{"Host": "[::1]:8080"}, 200},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, body, hdr := get(t, s, "GET", tc.target, tc.header)
			if code != tc.code {
				t.Fatalf("%d, want %d: %s", code, tc.code, body)
			}
			if tc.name == "token" && !strings.Contains(hdr.Get("Set-Cookie"), "HttpOnly") {
				t.Fatalf("no HttpOnly cookie: %q", hdr.Get("Set-Cookie"))
			}
		})
	}
}

// TestDashboardServeLoopbackOnly starts the real listener: its URL is on
// 127.0.0.1, the pages answer there with the token, and the port is not
// reachable on any other address of the machine.
func TestDashboardServeLoopbackOnly(t *testing.T) {
	c, _, _ := state(t)
	ctx, cancel := context.WithCancel(context.Background())
	urls := make(chan string, 1)
	done := make(chan error, 1)
	go func() { done <- dashboard.Serve(ctx, c, 0, nil, func(u string) { urls <- u }) }()
	var raw string
	select {
	case raw = <-urls:
	case err := <-done:
		t.Fatal(err)
	}
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	if u.Hostname() != "127.0.0.1" || u.Query().Get("token") == "" {
		t.Fatalf("URL %s: want 127.0.0.1 and a token", raw)
	}
	resp, err := http.Get(raw)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), "Workflows") {
		t.Fatalf("%d: %s", resp.StatusCode, body)
	}
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range addrs {
		ipn, ok := a.(*net.IPNet)
		if !ok || ipn.IP.IsLoopback() || ipn.IP.IsLinkLocalUnicast() {
			continue
		}
		conn, err := net.DialTimeout("tcp", net.JoinHostPort(ipn.IP.String(), u.Port()), time.Second)
		if err == nil {
			conn.Close()
			t.Errorf("the dashboard answers on %s", ipn.IP)
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if _, err := net.DialTimeout("tcp", u.Host, time.Second); err == nil {
		t.Fatal("still listening after ctx ended")
	}
}

// TestReport checks that a report is one self-contained file: the jobs,
// the drawings, the failed job's details, no script and nothing it would
// load from anywhere.
func TestReport(t *testing.T) {
	c, id, _ := state(t)
	var b strings.Builder
	if err := dashboard.WriteReport(context.Background(), c, id, &b); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{"<style>", `<svg class="graph"`, `<svg class="timeline"`, ">bad</a>", "slow", "aborted_before_running",
		"to-stderr", `id="job-`, "&lt;img src=x onerror=alert(1)&gt;", "Content-Security-Policy"} {
		if !strings.Contains(out, want) {
			t.Errorf("no %q in the report", want)
		}
	}
	for _, bad := range []string{"<script", "http://", "https://", `src="/`, `href="/`, hostileName} {
		if strings.Contains(out, bad) {
			t.Errorf("%q in the report", bad)
		}
	}
	if err := dashboard.WriteReport(context.Background(), c, 999, io.Discard); !errors.Is(err, client.ErrUnknownObject) {
		t.Fatalf("unknown id: %v", err)
	}
}
