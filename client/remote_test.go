package client_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/somaflow/somaflow/client"
	"github.com/somaflow/somaflow/internal/sshtest"
	"github.com/somaflow/somaflow/model"
)

var (
	buildOnce sync.Once
	binDir    string
	binErr    error
)

// TestMain removes the somaflow binary the remote tests built.
func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// buildSomaflow builds the somaflow binary for the far side, once.
func buildSomaflow(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		if binDir, binErr = os.MkdirTemp("", "somaflow-remote-test-"); binErr != nil {
			return
		}
		if out, err := exec.Command("go", "build", "-o", filepath.Join(binDir, "somaflow"), "../cmd/somaflow").CombinedOutput(); err != nil {
			binErr = fmt.Errorf("build: %v: %s", err, out)
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return filepath.Join(binDir, "somaflow")
}

// TestRemoteCutTransfer: a transfer whose ssh connection is killed in the
// middle is reported failed (ErrTransferFailed); the far side puts it back
// to "on client side" with the error, leaves nothing under the final name,
// and the transfer succeeds when retried on a new connection; the jobs
// then run and the output comes back byte for byte.
func TestRemoteCutTransfer(t *testing.T) {
	srv := sshtest.Start(t)
	bin := buildSomaflow(t)
	cluster := t.TempDir()
	t.Cleanup(func() { exec.Command(bin, "--state-dir", cluster, "engine", "stop").Run() })
	res := client.Resource{Host: "127.0.0.1", Port: srv.Port, User: srv.User, IdentityFile: srv.Identity,
		Somaflow: bin, StateDir: cluster, SSHOptions: srv.Options}
	ctx := context.Background()
	r, err := client.Dial(ctx, "cluster", res)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { r.Close() }()

	dir := t.TempDir()
	in := filepath.Join(dir, "in.bin")
	data := bytes.Repeat([]byte("somaflow remote transfer\n"), 200000) // ~5 MB
	os.WriteFile(in, data, 0o644)
	out := filepath.Join(dir, "out.bin")
	w := &model.Workflow{
		Jobs: []*model.Job{{Name: ptr("copy"), Command: []model.Arg{{Value: "cp"},
			{Kind: model.ArgPath, Path: model.PathRef{Kind: model.TransferPath, Index: 0, Pattern: "%s"}},
			{Kind: model.ArgPath, Path: model.PathRef{Kind: model.TransferPath, Index: 1, Pattern: "%s"}}},
			ReferencedInputFiles:  []model.Arg{{Kind: model.ArgPath, Path: model.PathRef{Kind: model.TransferPath, Index: 0, Pattern: "%s"}}},
			ReferencedOutputFiles: []model.Arg{{Kind: model.ArgPath, Path: model.PathRef{Kind: model.TransferPath, Index: 1, Pattern: "%s"}}}}},
		Transfers: []*model.FileTransfer{
			{ClientPath: in, InitialStatus: model.TransferOnClientSide, Name: "in", Pattern: "%s"},
			{ClientPath: out, InitialStatus: model.TransferDoNotExist, Name: "out", Pattern: "%s"},
		},
	}
	id, err := r.SubmitWorkflow(ctx, w, client.SubmitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	err = r.TransferInputFiles(ctx, id, client.TransferOptions{BufferSize: 64 << 10, Progress: func(_, done, total int64) {
		if done > total/3 {
			r.KillConnection()
		}
	}})
	if !errors.Is(err, client.ErrTransferFailed) {
		t.Fatalf("cut transfer: %v", err)
	}
	r.Close()
	// A new connection: the far side noticed the cut.
	if r, err = client.Dial(ctx, "cluster", res); err != nil {
		t.Fatal(err)
	}
	var ti client.TransferInfo
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		ts, err := r.WorkflowTransfers(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		ti = ts[0]
		if ti.Status == model.TransferOnClientSide || time.Now().After(deadline) {
			break
		}
	}
	if ti.Status != model.TransferOnClientSide || ti.Error == "" {
		t.Fatalf("after the cut: %+v", ti)
	}
	if _, err := os.Stat(ti.EnginePath); err == nil {
		t.Fatalf("a cut transfer left %s on the far side", ti.EnginePath)
	}
	if doc, err := r.WorkflowElementsStatus(ctx, id); err != nil || doc.Jobs[0].Status != model.JobNotSubmitted || doc.Transfers[0].Error == nil {
		t.Fatalf("the job started without its input: %+v %v", doc, err)
	}
	if err := r.TransferInputFiles(ctx, id, client.TransferOptions{}); err != nil {
		t.Fatalf("retry: %v", err)
	}
	if err := r.WaitWorkflow(ctx, id, time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := r.TransferOutputFiles(ctx, id, client.TransferOptions{BufferSize: 100000}); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(out)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("output back: %d bytes (%v), want %d", len(got), err, len(data))
	}
	if st, p, err := r.TransferStatus(ctx, ti.ID+1); err != nil || st != model.TransferOnBothSides || p != nil {
		t.Fatalf("output transfer status: %s %v %v", st, p, err)
	}
	if _, _, err := r.TransferStatus(ctx, 999); !errors.Is(err, client.ErrUnknownObject) {
		t.Fatalf("unknown transfer: %v", err)
	}
}

// TestSSHArgvQuoting: the remote command is one shell line on the far
// side: every word is quoted there.
func TestSSHArgvQuoting(t *testing.T) {
	res := client.Resource{Host: "h", Port: 2222, User: "u", Somaflow: "/opt/my somaflow/bin/somaflow", StateDir: "/scratch/it's $HOME"}
	argv := res.SSHArgv()
	last := argv[len(argv)-1]
	want := `'/opt/my somaflow/bin/somaflow' --state-dir '/scratch/it'\''s $HOME' serve-stdio`
	if last != want || argv[len(argv)-2] != "h" || argv[len(argv)-3] != "--" {
		t.Fatalf("argv %q", argv)
	}
	out, err := exec.Command("sh", "-c", "printf '%s\\n' "+last).Output()
	if err != nil || string(out) != "/opt/my somaflow/bin/somaflow\n--state-dir\n/scratch/it's $HOME\nserve-stdio\n" {
		t.Fatalf("the far shell splits it as %q (%v)", out, err)
	}
	home := client.Resource{Host: "h", Somaflow: "~/bin/some flow", StateDir: "~/state"}
	argv = home.SSHArgv()
	out, err = exec.Command("sh", "-c", "HOME=/home/x; printf '%s\\n' "+argv[len(argv)-1]).Output()
	if err != nil || string(out) != "/home/x/bin/some flow\n--state-dir\n/home/x/state\nserve-stdio\n" {
		t.Fatalf("~/ is not expanded on the far side: %q (%v)", out, err)
	}
	for _, bad := range []client.Resource{{}, {Host: "-oProxyCommand=x"}, {Host: "h", Port: 70000}, {Host: "h", User: "-x"}} {
		if _, err := client.Dial(context.Background(), "bad", bad); !errors.Is(err, client.ErrInvalid) {
			t.Errorf("%+v: %v", bad, err)
		}
	}
}

func ptr(s string) *string { return &s }

// TestRemoteKeyPassphrase: the Go API takes a key's passphrase, as the
// seed's rsa_key_pass; without it (batch mode) the key cannot be used.
func TestRemoteKeyPassphrase(t *testing.T) {
	srv := sshtest.Start(t)
	bin := buildSomaflow(t)
	t.Setenv("SSH_AUTH_SOCK", "")
	res := client.Resource{Host: "127.0.0.1", Port: srv.Port, User: srv.User, IdentityFile: srv.LockedIdentity,
		Somaflow: bin, StateDir: t.TempDir(), SSHOptions: append([]string{"-o", "IdentitiesOnly=yes"}, srv.Options...)}
	ctx := context.Background()
	if r, err := client.Dial(ctx, "locked", res); !errors.Is(err, client.ErrUnavailable) {
		if r != nil {
			r.Close()
		}
		t.Fatalf("a locked key without its passphrase: %v", err)
	}
	res.Passphrase = srv.Passphrase
	r, err := client.Dial(ctx, "locked", res)
	if err != nil {
		t.Fatalf("with the passphrase: %v", err)
	}
	r.Close()
}
