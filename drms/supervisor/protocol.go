package supervisor

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/somaflow/somaflow/privdir"
)

// ProtocolVersion is the version of the wire protocol: newline-delimited
// JSON over the Unix socket named in the bootstrap file, one long-lived
// connection per backend.
//
// A client sends Requests; every Request with a non-zero ID gets exactly one
// Message with the same ID (ID 0: no reply wanted, used for "ack"). The
// supervisor also pushes Messages with ID 0 and Ev "exit" to every connected
// client when a job ends (its Record, written to the journal first). Starts
// are handled concurrently, so replies may come out of request order; a
// job's start reply always comes before its exit event.
//
// Operations: "hello" (Protocol, Tag) -> PID; "start" (Key, Job) -> Jobs[0]
// (Existed when the key was already known: it is never started twice) or
// StartErr (could not start) or Err; "status" (Keys) -> Jobs (T "unknown"
// for keys it has no trace of); "kill" (Key, GraceMS): SIGTERM to the
// process group, SIGKILL after the grace; "locate" (Key) -> Jobs[0], T
// "unknown" only when the supervisor can prove the key never reached it,
// "uncertain" otherwise; "ack" (Keys): forget these ended jobs.
//
// Version 2: a start may be held. Job.After names keys that must end with
// exit 0 first (one that did not cancels the job: record "cancel"), and
// Job.Pool / Limit / Need a pool of slots the job waits for (started while
// the pool's running jobs take at most Limit, in the order of Job.Priority
// and Job.Seq, then of the requests; an older engine sends neither). A held
// job's reply has T "wait"; when it starts, every client gets an event with
// Ev "start" (and "exit" when it ends, or is cancelled, or cannot start).
// A start event comes up to 10 ms after the start, several jobs at once,
// and not at all for a job that ended meanwhile: its exit record says when
// it started.
const ProtocolVersion = 2

// BootstrapVersion is the version of supervisor.json.
const BootstrapVersion = 1

// Request is a client's message.
type Request struct {
	ID       uint64   `json:"id,omitempty"`
	Op       string   `json:"op"`
	Protocol int      `json:"protocol,omitempty"`
	Tag      string   `json:"tag,omitempty"`
	Key      string   `json:"key,omitempty"`
	Keys     []string `json:"keys,omitempty"`
	Job      *JobReq  `json:"job,omitempty"`
	GraceMS  int64    `json:"grace_ms,omitempty"`
}

// JobReq is what the supervisor needs to start a job (see drms.JobSpec).
type JobReq struct {
	Argv []string `json:"argv"`
	Env  []string `json:"env,omitempty"`
	// SameEnv: the environment is that of the previous start request on
	// this connection (Env is then omitted; jobs of a workflow share one).
	SameEnv bool   `json:"same_env,omitempty"`
	Dir     string `json:"dir"`
	Stdin   string `json:"stdin,omitempty"`
	Stdout  string `json:"stdout,omitempty"`
	Stderr  string `json:"stderr,omitempty"`
	Join    bool   `json:"join,omitempty"`
	// LazyStdout/LazyStderr: see drms.JobSpec.
	LazyStdout bool `json:"lazy_stdout,omitempty"`
	LazyStderr bool `json:"lazy_stderr,omitempty"`
	// After: keys of jobs that must exit 0 before this one starts.
	After []string `json:"after,omitempty"`
	// Pool, Limit, Need: see drms.JobSpec.Pool.
	Pool  string `json:"pool,omitempty"`
	Limit int    `json:"limit,omitempty"`
	Need  int    `json:"need,omitempty"`
	// Priority and Seq rank a held job: higher Priority first, then lower
	// Seq (see hold.Job).
	Priority int   `json:"priority,omitempty"`
	Seq      int64 `json:"seq,omitempty"`
}

// Message is a reply (ID set) or an event (Ev set).
type Message struct {
	ID       uint64   `json:"id,omitempty"`
	Ev       string   `json:"ev,omitempty"`
	Err      string   `json:"err,omitempty"`
	StartErr string   `json:"start_err,omitempty"`
	PID      int      `json:"pid,omitempty"`
	Protocol int      `json:"protocol,omitempty"`
	Existed  bool     `json:"existed,omitempty"`
	Jobs     []Record `json:"jobs,omitempty"`
}

// Bootstrap is the content of `<state>/supervisor.json`, written atomically
// (temp file + rename) once the supervisor listens.
type Bootstrap struct {
	Version  int       `json:"version"`
	Protocol int       `json:"protocol"`
	Socket   string    `json:"socket"`
	PID      int       `json:"pid"`
	Tick     uint64    `json:"start_tick"`
	Started  time.Time `json:"started"`
}

// File names in the state dir.
const (
	bootstrapName = "supervisor.json"
	journalName   = "supervisor.journal"
	lockName      = "supervisor.lock"       // held by the running supervisor
	startLockName = "supervisor.start.lock" // held by a backend while it starts one
	logName       = "supervisor.log"
	socketName    = "supervisor.sock"
)

// maxSocketPath keeps below the 108-byte sun_path limit.
const maxSocketPath = 100

// SocketPath is where the supervisor of stateDir listens: in the state dir
// when the path is short enough, else a hash of the state dir under
// $XDG_RUNTIME_DIR or /tmp/somaflow-UID (a 0700 directory of this user).
func SocketPath(stateDir string) (string, error) {
	abs, err := filepath.Abs(stateDir)
	if err != nil {
		return "", fmt.Errorf("supervisor: state dir: %w", err)
	}
	if p := filepath.Join(abs, socketName); len(p) <= maxSocketPath {
		return p, nil
	}
	sum := sha256.Sum256([]byte(abs))
	name := "sf-" + hex.EncodeToString(sum[:])[:20] + ".sock"
	if rd := os.Getenv("XDG_RUNTIME_DIR"); rd != "" && filepath.IsAbs(rd) {
		if p := filepath.Join(rd, "somaflow", name); len(p) <= maxSocketPath {
			if err := privateDir(filepath.Join(rd, "somaflow")); err == nil {
				return p, nil
			}
		}
	}
	dir := filepath.Join(os.TempDir(), "somaflow-"+strconv.Itoa(os.Getuid()))
	if p := filepath.Join(dir, name); len(p) > maxSocketPath {
		dir = filepath.Join("/tmp", "somaflow-"+strconv.Itoa(os.Getuid()))
	}
	if err := privateDir(dir); err != nil {
		return "", err
	}
	return filepath.Join(dir, name), nil
}

// privateDir makes dir (0700) or checks that an existing one is a real
// directory owned by this user and private.
func privateDir(dir string) error {
	if err := os.Mkdir(dir, 0o700); err != nil && !os.IsExist(err) {
		return fmt.Errorf("supervisor: socket directory: %w", err)
	}
	fi, err := os.Lstat(dir)
	if err != nil {
		return fmt.Errorf("supervisor: socket directory: %w", err)
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !fi.IsDir() || !ok || int(st.Uid) != os.Getuid() {
		return fmt.Errorf("supervisor: socket directory %s is not a directory owned by this user", dir)
	}
	if fi.Mode().Perm() != 0o700 {
		if err := os.Chmod(dir, 0o700); err != nil {
			return fmt.Errorf("supervisor: socket directory: %w", err)
		}
	}
	return nil
}

// ReadBootstrap reads `<state>/supervisor.json`.
func ReadBootstrap(stateDir string) (Bootstrap, error) {
	var b Bootstrap
	data, err := os.ReadFile(filepath.Join(stateDir, bootstrapName))
	if err != nil {
		return b, err
	}
	if err := json.Unmarshal(data, &b); err != nil {
		return b, fmt.Errorf("supervisor: bad %s: %w", bootstrapName, err)
	}
	if b.Version != BootstrapVersion {
		return b, fmt.Errorf("supervisor: %s has version %d, want %d", bootstrapName, b.Version, BootstrapVersion)
	}
	return b, nil
}

func writeBootstrap(stateDir string, b Bootstrap) error {
	data, _ := json.MarshalIndent(b, "", "  ")
	if err := privdir.WriteFileAtomic(filepath.Join(stateDir, bootstrapName), append(data, '\n')); err != nil {
		return fmt.Errorf("supervisor: bootstrap file: %w", err)
	}
	return nil
}
