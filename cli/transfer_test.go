package cli_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// transferFixture is a client side: an input file (binary content), an
// input directory (nested), and where the output goes; and a soma-workflow
// file whose job "copy" reads both inputs through FileTransfers, writes
// the output transfer, records its argv, and uses a temporary directory;
// "check" reads the output transfer after it.
type transferFixture struct {
	client, inFile, inDir, outFile, argvFile, wf string
	fileData                                     []byte
}

func newTransferFixture(t *testing.T) *transferFixture {
	t.Helper()
	f := &transferFixture{client: t.TempDir()}
	f.inFile = filepath.Join(f.client, "in.bin")
	f.inDir = filepath.Join(f.client, "indir")
	f.outFile = filepath.Join(f.client, "results", "out.txt")
	f.argvFile = filepath.Join(f.client, "argv.txt")
	f.fileData = make([]byte, 3<<20+17) // several buffers' worth
	for i := range f.fileData {
		f.fileData[i] = byte(i*7 + i/251)
	}
	must(t, os.WriteFile(f.inFile, f.fileData, 0o644))
	must(t, os.MkdirAll(filepath.Join(f.inDir, "sub", "deeper"), 0o755))
	must(t, os.WriteFile(filepath.Join(f.inDir, "a.txt"), []byte("alpha\n"), 0o644))
	must(t, os.WriteFile(filepath.Join(f.inDir, "sub", "b.txt"), []byte("beta\x00\xff\n"), 0o644))
	must(t, os.WriteFile(filepath.Join(f.inDir, "sub", "deeper", "c.txt"), []byte("gamma\n"), 0o644))
	must(t, os.MkdirAll(filepath.Dir(f.outFile), 0o755))
	js := func(v any) string { b, _ := json.Marshal(v); return string(b) }
	script := `printf '%s\n' "$@" > "$5"; test -d "$4" || exit 7; cat "$1" "$2"/a.txt "$2"/sub/b.txt "$2"/sub/deeper/c.txt > "$3"`
	f.wf = write(t, "transfers.json", fmt.Sprintf(`{
  "name": "transfers",
  "dependencies": [["<tuple>", 0, 1]],
  "serialized_jobs": {
    "0": {"name": "copy", "command": ["sh", "-c", %s, "sh",
          ["<tuple>", "<id>", 2], ["<tuple>", "<id>", 3], ["<tuple>", "<id>", 4], ["<tuple>", "<id>", 5], %s],
          "referenced_input_files": [["<tuple>", "<id>", 2], ["<tuple>", "<id>", 3], ["<tuple>", "<id>", 5]],
          "referenced_output_files": [["<tuple>", "<id>", 4], ["<tuple>", "<id>", 5]]},
    "1": {"name": "check", "command": ["cmp", ["<tuple>", "<id>", 4], ["<tuple>", "<id>", 4]],
          "referenced_input_files": [["<tuple>", "<id>", 4]]}
  },
  "serialized_file_transfers": {
    "2": {"client_path": %s, "client_paths": null, "initial_status": "on client side", "disposal_timeout": 168, "name": "input file", "pattern": "%%s"},
    "3": {"client_path": %s, "client_paths": null, "initial_status": "on client side", "disposal_timeout": 168, "name": "input dir", "pattern": "%%s"},
    "4": {"client_path": %s, "client_paths": null, "initial_status": "do not exist", "disposal_timeout": 168, "name": "output file", "pattern": "%%s"}
  },
  "serialized_temporary_paths": {
    "5": {"is_directory": true, "disposal_timeout": 168, "name": "scratch", "suffix": ".d", "pattern": "%%s"}
  }
}`, js(script), js(f.argvFile), js(f.inFile), js(f.inDir), js(f.outFile)))
	return f
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// wantOut is what the copy job writes.
func (f *transferFixture) wantOut() []byte {
	return append(append([]byte{}, f.fileData...), []byte("alpha\nbeta\x00\xff\ngamma\n")...)
}

type statusDoc struct {
	Status string `json:"status"`
	Jobs   []struct {
		Name      string `json:"name"`
		Status    string `json:"status"`
		ExitValue *int   `json:"exit_value"`
	} `json:"jobs"`
	Transfers []struct {
		ID          string  `json:"id"`
		Name        string  `json:"name"`
		Status      string  `json:"status"`
		Progression []any   `json:"progression"`
		EnginePath  string  `json:"engine_path"`
		ClientPath  string  `json:"client_path"`
		Output      bool    `json:"output"`
		Error       *string `json:"error"`
	} `json:"transfers"`
	TemporaryPaths []struct {
		Name, EnginePath, Status string
	} `json:"temporary_paths"`
}

func stagedEnv(t *testing.T, state string) []string {
	cfg := write(t, "config.yaml", "stage_transfers: true\n")
	return []string{"SOMAFLOW_CONFIG=" + cfg, "XDG_CONFIG_HOME=" + t.TempDir(), "SOMAFLOW_SWF_RESOURCE=none",
		"SOMAFLOW_STATE_DIR=" + state, "SOMAFLOW_ENGINE_IDLE=30s"}
}

// TestTransferRunStaged: `run` with staged transfers sends the inputs (a
// file and a directory) to the state dir's transfer dir, the jobs read them
// there (never the client paths), and the output comes back byte for byte;
// the status document lists the transfers and the temporary path.
func TestTransferRunStaged(t *testing.T) {
	f := newTransferFixture(t)
	state := t.TempDir()
	r := run(t, stagedEnv(t, state), "run", "--json", f.wf)
	if r.code != 0 {
		t.Fatalf("run: %+v", r)
	}
	got, err := os.ReadFile(f.outFile)
	if err != nil || !bytes.Equal(got, f.wantOut()) {
		t.Fatalf("output back: %d bytes (%v), want %d", len(got), err, len(f.wantOut()))
	}
	argv, _ := os.ReadFile(f.argvFile)
	lines := strings.Split(strings.TrimSpace(string(argv)), "\n")
	if len(lines) != 5 {
		t.Fatalf("argv %q", argv)
	}
	for i, l := range lines[:3] {
		if !strings.HasPrefix(l, filepath.Join(state, "transfers", "1")+"/") {
			t.Errorf("argument %d is %s, not in the transfer dir", i+1, l)
		}
	}
	if !strings.HasPrefix(lines[3], filepath.Join(state, "tmp", "1")+"/") || !strings.HasSuffix(lines[3], ".d") {
		t.Errorf("temporary path %s", lines[3])
	}
	var doc statusDoc
	must(t, json.Unmarshal([]byte(r.stdout), &doc))
	if len(doc.Transfers) != 3 || len(doc.TemporaryPaths) != 1 {
		t.Fatalf("transfers and temporary paths in the document: %s", r.stdout)
	}
	for i, tr := range doc.Transfers {
		if tr.Status != "on both sides" || tr.Error != nil || tr.Progression != nil || tr.EnginePath != lines[i] || tr.Output != (i == 2) {
			t.Errorf("transfer %d: %+v", i, tr)
		}
	}
	if tp := doc.TemporaryPaths[0]; tp.Name != "scratch" || tp.Status != "do not exist" {
		t.Errorf("temporary path after the workflow: %+v", tp)
	}
	if _, err := os.Stat(lines[3]); err == nil {
		t.Errorf("temporary path %s left behind", lines[3])
	}
	// Files under the state dir are private.
	fi, err := os.Stat(lines[1])
	if err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("transferred directory mode %v (%v)", fi.Mode(), err)
	}
	fi, err = os.Stat(filepath.Join(lines[1], "sub", "b.txt"))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("transferred file mode %v (%v)", fi.Mode(), err)
	}
}

// TestTransferSubmitWaitsForInputs: a submitted workflow's job does not
// start before its input transfers are done; `transfer in` sends them, the
// workflow runs, `transfer out` brings the output back; deleting a
// transfer its workflow references is deferred until the workflow goes.
func TestTransferSubmitWaitsForInputs(t *testing.T) {
	f := newTransferFixture(t)
	state := t.TempDir()
	env := stagedEnv(t, state)
	t.Cleanup(func() { run(t, env, "engine", "stop") })
	if r := run(t, env, "submit", f.wf); r.code != 0 {
		t.Fatalf("submit: %+v", r)
	}
	if r := run(t, env, "wait", "--timeout", "2s", "1"); r.code != 4 {
		t.Fatalf("wait before the inputs are there: %+v", r)
	}
	var doc statusDoc
	must(t, json.Unmarshal([]byte(run(t, env, "status", "--json", "1").stdout), &doc))
	if doc.Jobs[0].Status != "not_submitted" || doc.Transfers[0].Status != "on client side" || doc.Transfers[2].Status != "do not exist" {
		t.Fatalf("before transfer in: %+v", doc)
	}
	// An input that is missing on the client side fails, naming it; its
	// status stays as it was.
	must(t, os.Rename(f.inDir, f.inDir+".away"))
	r := run(t, env, "transfer", "in", "1")
	if r.code != 2 || !strings.Contains(r.stderr, f.inDir) {
		t.Fatalf("transfer in with a missing input: %+v", r)
	}
	must(t, os.Rename(f.inDir+".away", f.inDir))
	if r := run(t, env, "transfer", "in", "1"); r.code != 0 {
		t.Fatalf("transfer in: %+v", r)
	}
	if r := run(t, env, "wait", "--timeout", "60s", "1"); r.code != 0 {
		t.Fatalf("wait: %+v", r)
	}
	if _, err := os.Stat(f.outFile); err == nil {
		t.Fatalf("the output came back before transfer out")
	}
	must(t, json.Unmarshal([]byte(run(t, env, "status", "--json", "1").stdout), &doc))
	if doc.Transfers[2].Status != "on computing resource side" {
		t.Fatalf("output after its job: %+v", doc.Transfers[2])
	}
	if r := run(t, env, "transfer", "out", "--json", "1"); r.code != 0 || !strings.Contains(r.stdout, `"on both sides"`) {
		t.Fatalf("transfer out: %+v", r)
	}
	got, err := os.ReadFile(f.outFile)
	if err != nil || !bytes.Equal(got, f.wantOut()) {
		t.Fatalf("output back: %d bytes (%v)", len(got), err)
	}
	// transfer status, list; unknown and malformed ids.
	if r := run(t, env, "transfer", "status", "--json", "3"); r.code != 0 || !strings.Contains(r.stdout, `"status":"on both sides"`) {
		t.Fatalf("transfer status: %+v", r)
	}
	if r := run(t, env, "transfer", "list"); r.code != 0 || strings.Count(r.stdout, "on both sides") != 3 {
		t.Fatalf("transfer list: %+v", r)
	}
	for _, c := range []struct {
		args []string
		code int
	}{{[]string{"transfer", "status", "99"}, 3}, {[]string{"transfer", "status", "x"}, 2}, {[]string{"transfer", "in", "42"}, 3}, {[]string{"transfer", "delete"}, 2}} {
		if r := run(t, env, c.args...); r.code != c.code || r.stderr == "" {
			t.Errorf("%v: %+v, want exit %d", c.args, r, c.code)
		}
	}
	// Deleting a transfer of an existing workflow is deferred.
	r = run(t, env, "transfer", "delete", "--json", "1")
	if r.code != 0 || !strings.Contains(r.stdout, `"deferred":true`) {
		t.Fatalf("transfer delete: %+v", r)
	}
	engineFile := doc.Transfers[0].EnginePath
	if _, err := os.Stat(engineFile); err != nil {
		t.Fatalf("a deferred delete removed the files: %v", err)
	}
	if r := run(t, env, "delete", "--force", "1"); r.code != 0 {
		t.Fatalf("delete: %+v", r)
	}
	if r := run(t, env, "transfer", "status", "1"); r.code != 3 {
		t.Fatalf("transfer of a deleted workflow: %+v", r)
	}
	// The engine removes the files right after committing the removal.
	gone := false
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if _, err := os.Stat(filepath.Join(state, "transfers", "1")); os.IsNotExist(err) {
			gone = true
			break
		}
	}
	if !gone {
		t.Fatalf("transfer dir of a deleted workflow left behind")
	}
}
