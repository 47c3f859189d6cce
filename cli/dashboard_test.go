package cli_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// chromium finds headless Chromium: the test skips without it, unless
// SOMAFLOW_REQUIRE names chromium (CI installs it): then it fails.
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	for _, s := range strings.Split(os.Getenv("SOMAFLOW_REQUIRE"), ",") {
		if strings.TrimSpace(s) == "chromium" {
			t.Fatal("SOMAFLOW_REQUIRE=chromium but no chromium on PATH (apt-get install chromium fonts-dejavu-core)")
		}
	}
	t.Skip("no chromium on PATH: apt-get install -y --no-install-recommends chromium fonts-dejavu-core (SOMAFLOW_REQUIRE=chromium makes this a failure)")
	return ""
}

// artefacts is where screenshots are kept: $SOMAFLOW_ARTIFACTS/<test>, or
// a directory of the test.
func artefacts(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if base := os.Getenv("SOMAFLOW_ARTIFACTS"); base != "" {
		dir = filepath.Join(base, strings.ReplaceAll(t.Name(), "/", "_"))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("screenshots in %s", dir)
	return dir
}

// browse loads url in headless Chromium: the DOM after scripts ran (for
// about budget ms of page time), and a 1200x800 screenshot saved as shot
// when shot is not "".
func browse(t *testing.T, chrome, url, shot string, budgetMS int) string {
	t.Helper()
	base := []string{"--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--user-data-dir=" + t.TempDir()}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	args := append(base, "--dump-dom")
	if budgetMS > 0 {
		args = append(args, "--virtual-time-budget="+strconv.Itoa(budgetMS))
	}
	out, err := exec.CommandContext(ctx, chrome, append(args, url)...).Output()
	if err != nil {
		t.Fatalf("chromium --dump-dom %s: %v", url, err)
	}
	if shot != "" {
		args := append(base, "--screenshot="+shot, "--window-size=1200,800", "--hide-scrollbars")
		if b, err := exec.CommandContext(ctx, chrome, append(args, url)...).CombinedOutput(); err != nil {
			t.Fatalf("chromium --screenshot: %v\n%s", err, b)
		}
		if fi, err := os.Stat(shot); err != nil || fi.Size() < 1000 {
			t.Fatalf("no screenshot %s: %v", shot, err)
		}
	}
	return string(out)
}

const dashboardWF = `name: 'dash <b>board</b>'
env: {WF_VAR: wf-value}
jobs:
  ok: {command: ["true"]}
  slow: {command: [sleep, "600"]}
  bad: {shell: "echo '<script>alert(1)</script>'; echo to-stderr >&2; false"}
  dep: {command: ["true"], after: [bad]}
  later: {command: ["true"], after: [slow]}
  '<img src=x onerror=alert(1)>': {command: [echo, hostile]}
`

// runningWorkflow runs dashboardWF with `somaflow run --state-dir` in the
// background until slow runs, bad failed and dep is aborted; the run is
// stopped (SIGTERM) at the end of the test. It returns the job ids by name.
func runningWorkflow(t *testing.T, state string) map[string]string {
	t.Helper()
	wf := write(t, "dash.yaml", dashboardWF)
	runCmd := exec.Command(binary, "run", "--state-dir", state, wf)
	runCmd.Env = append(os.Environ(), "NO_COLOR=1")
	if err := runCmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		runCmd.Process.Signal(syscall.SIGTERM)
		runCmd.Wait()
	})
	deadline := time.Now().Add(60 * time.Second)
	for {
		r := run(t, nil, "status", "--json", "--state-dir", state, "1")
		var doc struct {
			Jobs []struct {
				ID, Name, Status string
				ExitStatus       *string `json:"exit_status"`
			}
		}
		ids, st := map[string]string{}, map[string]string{}
		if r.code == 0 && json.Unmarshal([]byte(r.stdout), &doc) == nil {
			for _, j := range doc.Jobs {
				ids[j.Name], st[j.Name] = j.ID, j.Status
				if j.ExitStatus != nil {
					st[j.Name] += "/" + *j.ExitStatus
				}
			}
			if st["slow"] == "running" && st["bad"] == "done/finished_regularly" && st["dep"] == "failed/aborted_before_running" &&
				st["ok"] == "done/finished_regularly" {
				return ids
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the workflow did not get running, failed and aborted jobs: %+v %+v", r, st)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// listeners returns the local addresses (hex, as /proc/net/tcp writes
// them) of the listening TCP sockets of process pid.
func listeners(t *testing.T, pid int) []string {
	t.Helper()
	inodes := map[string]bool{}
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, fd := range fds {
		l, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, fd.Name()))
		if err == nil && strings.HasPrefix(l, "socket:[") {
			inodes[strings.TrimSuffix(strings.TrimPrefix(l, "socket:["), "]")] = true
		}
	}
	var out []string
	for _, f := range []string{"tcp", "tcp6"} {
		data, err := os.ReadFile(fmt.Sprintf("/proc/%d/net/%s", pid, f))
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(data), "\n")[1:] {
			fields := strings.Fields(line)
			// local_address is field 1, st field 3 (0A: LISTEN), inode field 9.
			if len(fields) > 9 && fields[3] == "0A" && inodes[fields[9]] {
				out = append(out, f+" "+fields[1])
			}
		}
	}
	return out
}

// TestDashboardCLI drives `somaflow dashboard` as the docs show: it prints
// the URL, listens on 127.0.0.1 only, and its pages load in headless
// Chromium with the workflow's running, failed and aborted jobs; a
// screenshot of each page is kept. SIGINT stops it (exit 0).
func TestDashboardCLI(t *testing.T) {
	chrome := chromium(t)
	shots := artefacts(t)
	state := t.TempDir()
	ids := runningWorkflow(t, state)

	cmd := exec.Command(binary, "dashboard", "--state-dir", state)
	cmd.Env = append(os.Environ(), "NO_COLOR=1")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-exited
	})
	lines := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		if sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
		exited <- cmd.Wait()
	}()
	var url string
	select {
	case url = <-lines:
	case <-time.After(30 * time.Second):
		t.Fatalf("no URL printed; stderr: %s", stderr.String())
	}
	m := regexp.MustCompile(`^http://127\.0\.0\.1:(\d+)/\?token=([0-9a-f]{32})$`).FindStringSubmatch(url)
	if m == nil {
		t.Fatalf("printed %q, want http://127.0.0.1:PORT/?token=HEX", url)
	}
	port, token := m[1], m[2]

	// Nothing listens on a non-loopback address: 127.0.0.1 is 0100007F.
	ls := listeners(t, cmd.Process.Pid)
	if len(ls) == 0 {
		t.Fatalf("no listening socket found for pid %d", cmd.Process.Pid)
	}
	p, _ := strconv.Atoi(port)
	for _, l := range ls {
		if l != fmt.Sprintf("tcp 0100007F:%04X", p) {
			t.Fatalf("listening on %s (want only tcp 127.0.0.1:%d = 0100007F:%04X)", l, p, p)
		}
	}

	base := "http://127.0.0.1:" + port
	pages := []struct {
		name, path string
		budget     int
		want       []string
	}{
		{"workflows", "/", 0, []string{"dash &lt;b&gt;board&lt;/b&gt;", "1 failed", "1 running", "1 aborted", "1 queued"}},
		{"workflow", "/w/1", 4000, []string{"workflow_in_progress", ">bad</a>", ">slow</a>", "aborted_before_running",
			`class="graph"`, `class="timeline"`, "node cat-failed", "node cat-running", "node cat-aborted", "&lt;img src=x onerror=alert(1)&gt;", "data-polled="}},
		{"job-failed", "/w/1/j/" + ids["bad"], 0, []string{"exit value 1", "&lt;script&gt;alert(1)&lt;/script&gt;", "to-stderr", "WF_VAR", "wf-value"}},
		{"job-running", "/w/1/j/" + ids["slow"], 0, []string{"running", "<code>sleep</code>"}},
		{"job-aborted", "/w/1/j/" + ids["dep"], 0, []string{"aborted_before_running"}},
	}
	for _, pg := range pages {
		t.Run(pg.name, func(t *testing.T) {
			dom := browse(t, chrome, base+pg.path+"?token="+token, filepath.Join(shots, pg.name+".png"), pg.budget)
			for _, w := range pg.want {
				if !strings.Contains(dom, w) {
					t.Errorf("%s: no %q in the DOM:\n%s", pg.path, w, dom)
				}
			}
			if strings.Contains(dom, "<img src=") {
				t.Errorf("%s: a hostile name became an element", pg.path)
			}
		})
	}
	// Without the token, nothing.
	if dom := browse(t, chrome, base+"/w/1", "", 0); strings.Contains(dom, ">bad<") || !strings.Contains(dom, "token") {
		t.Fatalf("without the token: %s", dom)
	}

	cmd.Process.Signal(syscall.SIGINT)
	select {
	case err := <-exited:
		exited <- err // for the cleanup
		if err != nil {
			t.Fatalf("dashboard after SIGINT: %v; stderr: %s", err, stderr.String())
		}
	case <-time.After(15 * time.Second):
		t.Fatal("dashboard still runs 15 s after SIGINT")
	}
}

// TestReportCLI checks `somaflow report ID > report.html`: a
// self-contained file (nothing fetched from anywhere, no script) holding
// the jobs, which loads in headless Chromium; and the exit codes.
func TestReportCLI(t *testing.T) {
	state := t.TempDir()
	ids := runningWorkflow(t, state)
	r := run(t, nil, "report", "--state-dir", state, "1")
	if r.code != 0 {
		t.Fatalf("report: %+v", r)
	}
	html := r.stdout
	for _, w := range []string{"<style>", `<svg class="graph"`, `<svg class="timeline"`, ">bad</a>", "slow", "aborted_before_running",
		"to-stderr", `id="job-` + ids["bad"] + `"`, "&lt;img src=x onerror=alert(1)&gt;"} {
		if !strings.Contains(html, w) {
			t.Errorf("no %q in the report", w)
		}
	}
	if m := regexp.MustCompile(`(?i)(src|href|action)\s*=\s*["']?\s*(https?:|//)`).FindString(html); m != "" {
		t.Errorf("the report refers to something outside: %s", m)
	}
	if m := regexp.MustCompile(`(?i)<script|<link|<img|<iframe|@import|url\(\s*['"]?(https?:|//)`).FindString(html); m != "" {
		t.Errorf("the report loads or runs something: %s", m)
	}
	for _, tc := range []struct {
		args []string
		code int
	}{
		{[]string{"report", "--state-dir", state, "999"}, 3},
		{[]string{"report", "--state-dir", state}, 2},
		{[]string{"report", "--state-dir", state, "x"}, 2},
		{[]string{"dashboard", "--state-dir", state, "extra"}, 2},
		{[]string{"dashboard", "--state-dir", state, "--port", "70000"}, 2},
	} {
		if got := run(t, nil, tc.args...); got.code != tc.code {
			t.Errorf("%v: exit %d, want %d: %s", tc.args, got.code, tc.code, got.stderr)
		}
	}
	chrome := chromium(t)
	file := filepath.Join(artefacts(t), "report.html")
	if err := os.WriteFile(file, []byte(html), 0o644); err != nil {
		t.Fatal(err)
	}
	dom := browse(t, chrome, "file://"+file, filepath.Join(filepath.Dir(file), "report.png"), 0)
	for _, w := range []string{"dash &lt;b&gt;board&lt;/b&gt;", ">bad</a>", "to-stderr"} {
		if !strings.Contains(dom, w) {
			t.Errorf("no %q in the report's DOM", w)
		}
	}
}
