package cli_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/somaflow/somaflow/internal/sshtest"
)

// remoteEnv starts sshd and returns an environment whose configuration
// names resource "cluster": this machine over ssh, with its own state dir
// (the "cluster"), running this build's somaflow.
func remoteEnv(t *testing.T) (env []string, cluster string) {
	t.Helper()
	srv := sshtest.Start(t)
	cluster = t.TempDir()
	opts, _ := json.Marshal(srv.Options)
	cfg := write(t, "config.yaml", fmt.Sprintf(`resources:
  cluster:
    host: 127.0.0.1
    port: %d
    user: %s
    identity_file: %s
    somaflow: %s
    state_dir: %s
    ssh_options: %s
`, srv.Port, srv.User, srv.Identity, binary, cluster, opts))
	env = []string{"SOMAFLOW_CONFIG=" + cfg, "XDG_CONFIG_HOME=" + t.TempDir(), "SOMAFLOW_SWF_RESOURCE=none",
		"SOMAFLOW_STATE_DIR=" + t.TempDir()}
	t.Cleanup(func() { run(t, []string{"SOMAFLOW_STATE_DIR=" + cluster}, "engine", "stop") })
	return env, cluster
}

// TestRemoteRunRoundTrip: `run --resource` over a real sshd sends the
// inputs (a file and a directory) to the cluster's state dir, the jobs run
// there and read them, the output comes back byte for byte; status
// --resource gives the same document.
func TestRemoteRunRoundTrip(t *testing.T) {
	env, cluster := remoteEnv(t)
	f := newTransferFixture(t)
	// The binary, as docs/transfers.md shows it.
	r := runBin(t, env, "--resource", "cluster", "run", "--json", f.wf)
	if r.code != 0 {
		t.Fatalf("run --resource: %+v", r)
	}
	got, err := os.ReadFile(f.outFile)
	if err != nil || !bytes.Equal(got, f.wantOut()) {
		t.Fatalf("output back: %d bytes (%v), want %d", len(got), err, len(f.wantOut()))
	}
	argv, _ := os.ReadFile(f.argvFile)
	lines := strings.Split(strings.TrimSpace(string(argv)), "\n")
	for i, l := range lines[:3] {
		if !strings.HasPrefix(l, filepath.Join(cluster, "transfers")+"/") {
			t.Errorf("argument %d is %s, not in the cluster's transfer dir", i+1, l)
		}
	}
	var doc statusDoc
	must(t, json.Unmarshal([]byte(r.stdout), &doc))
	if len(doc.Transfers) != 3 {
		t.Fatalf("transfers: %s", r.stdout)
	}
	for i, tr := range doc.Transfers {
		if tr.Status != "on both sides" || tr.Error != nil {
			t.Errorf("transfer %d: %+v", i, tr)
		}
	}
	s := run(t, env, "--resource", "cluster", "status", "--json", "1")
	if s.code != 0 || string(normalise(t, []byte(s.stdout))) != string(normalise(t, []byte(r.stdout))) {
		t.Fatalf("status --resource: %+v", s)
	}
	// The transfer commands work across the connection too.
	if r := run(t, env, "--resource", "cluster", "transfer", "list"); r.code != 0 || strings.Count(r.stdout, "on both sides") != 3 {
		t.Fatalf("transfer list --resource: %+v", r)
	}
	if r := run(t, env, "--resource", "cluster", "transfer", "delete", "--json", "1"); r.code != 0 || !strings.Contains(r.stdout, `"deferred":true`) {
		t.Fatalf("transfer delete --resource: %+v", r)
	}
	// The commands without a remote call run on the resource as they are,
	// over one ssh connection each: their output, their exit code.
	for _, tc := range []struct {
		args []string
		code int
		out  string // in stdout, or "" for stderr's want
		err  string
	}{
		{[]string{"stop", "1"}, 0, "nothing to stop (it is done)", ""},
		{[]string{"status", "1", "check"}, 0, "check", ""},
		{[]string{"status", "--json", "1", "copy"}, 0, `"name":"copy"`, ""},
		{[]string{"failed", "--json", "1"}, 0, "[]", ""},
		{[]string{"logs", "--paths", "1", "copy"}, 0, filepath.Join(cluster, "logs"), ""},
		{[]string{"export", "--to", "native", "1"}, 0, "copy:", ""},
		{[]string{"trace", "--json", "1"}, 0, `"name":"check"`, ""},
		{[]string{"wait", "--job", "check", "1"}, 0, "done", ""},
		{[]string{"export", "7"}, 3, "", "7"},
		{[]string{"engine", "status", "--json"}, 0, cluster, ""},
		{[]string{"dashboard"}, 2, "", "this machine's state dir only"},
	} {
		r := runBin(t, env, append([]string{"--resource", "cluster", "--state-dir", t.TempDir()}, tc.args...)...)
		if r.code != tc.code || !strings.Contains(r.stdout, tc.out) || !strings.Contains(r.stderr, tc.err) {
			t.Errorf("--resource cluster %v: %+v; want exit %d, %q in stdout, %q in stderr", tc.args, r, tc.code, tc.out, tc.err)
		}
	}
	if r := run(t, env, "--resource", "nowhere", "status", "1"); r.code != 2 || !strings.Contains(r.stderr, `unknown resource "nowhere"`) || !strings.Contains(r.stderr, "cluster") {
		t.Fatalf("unknown resource: %+v", r)
	}
}

// TestRemoteStatusDocumentGolden: the status document of a remote run is
// the local one (the golden file of TestStatusDocumentGolden).
func TestRemoteStatusDocumentGolden(t *testing.T) {
	env, _ := remoteEnv(t)
	trace := filepath.Join(t.TempDir(), "trace.tsv")
	r := run(t, env, "--resource", "cluster", "run", "--json", "--max-jobs", "1", "--trace", trace, write(t, "fail.yaml", failWF))
	if r.code != 1 {
		t.Fatalf("run --resource: %+v", r)
	}
	// --trace is kept here as for a local run.
	if tsv, err := os.ReadFile(trace); err != nil || !strings.HasPrefix(string(tsv), "workflow\tjob\tname") {
		t.Fatalf("run --resource --trace: %q, %v", tsv, err)
	}
	want, err := os.ReadFile(filepath.Join("testdata", "status.golden.json"))
	if err != nil {
		t.Fatal(err)
	}
	if got := normalise(t, []byte(r.stdout)); string(got) != string(want) {
		t.Fatalf("remote status document differs from the local one:\n%s", got)
	}
}

// TestRemoteSubmitWaitOut: submit --resource stores the workflow on the
// cluster and sends its inputs; wait, list and transfer out work across
// the connection; the output comes back byte for byte.
func TestRemoteSubmitWaitOut(t *testing.T) {
	env, _ := remoteEnv(t)
	env = append(env, "SOMAFLOW_RESOURCE=cluster")
	f := newTransferFixture(t)
	if r := run(t, env, "submit", "--json", f.wf); r.code != 0 || !strings.Contains(r.stdout, `"id":"1"`) {
		t.Fatalf("submit --resource: %+v", r)
	}
	if r := run(t, env, "wait", "--json", "--timeout", "60s", "1"); r.code != 0 || !strings.Contains(r.stdout, `"workflow_done"`) {
		t.Fatalf("wait --resource: %+v", r)
	}
	if r := run(t, env, "list", "--json"); r.code != 0 || !strings.Contains(r.stdout, `"name":"transfers"`) {
		t.Fatalf("list --resource: %+v", r)
	}
	if _, err := os.Stat(f.outFile); err == nil {
		t.Fatalf("the output came back before transfer out")
	}
	if r := run(t, env, "transfer", "out", "1"); r.code != 0 {
		t.Fatalf("transfer out --resource: %+v", r)
	}
	got, err := os.ReadFile(f.outFile)
	if err != nil || !bytes.Equal(got, f.wantOut()) {
		t.Fatalf("output back: %d bytes (%v)", len(got), err)
	}
	if r := run(t, env, "wait", "7"); r.code != 3 {
		t.Fatalf("wait --resource on an unknown id: %+v", r)
	}
}
