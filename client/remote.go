package client

// This file holds the near side of a remote resource: one SSH connection
// (the system ssh client) running `somaflow serve-stdio` on the far side,
// reused for every call and transfer.

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/somaflow/somaflow/model"
	"github.com/somaflow/somaflow/store"
)

// Resource is a named computing resource of the configuration, reached
// over SSH (resources: NAME: {...}).
type Resource struct {
	// Host is the SSH host (a name of ~/.ssh/config works too).
	Host string `yaml:"host"`
	// Port, User and IdentityFile are passed to ssh when set (else ssh's
	// own configuration decides).
	Port         int    `yaml:"port"`
	User         string `yaml:"user"`
	IdentityFile string `yaml:"identity_file"`
	// Somaflow is the somaflow binary on the far side (default "somaflow",
	// found on the remote PATH).
	Somaflow string `yaml:"somaflow"`
	// StateDir is the state dir on the far side (default: the remote
	// somaflow's default state dir).
	StateDir string `yaml:"state_dir"`
	// Backend and Queue are the far side's backend and default queue.
	Backend string `yaml:"backend"`
	Queue   string `yaml:"queue"`
	// TranslationFiles translate shared resource paths on the far side
	// (namespace{file} entries, the files being on the far side).
	TranslationFiles TranslationFiles `yaml:"translation_files"`
	// SSH is the ssh client (default "ssh"); SSHOptions are extra
	// arguments put before the host (e.g. ["-o", "ProxyJump=gateway"]).
	SSH        string   `yaml:"ssh"`
	SSHOptions []string `yaml:"ssh_options"`
	// Password and Passphrase (the seed's password and rsa_key_pass) are
	// for Go programs only, never read from a file: ssh gets them through
	// an SSH_ASKPASS helper while it connects. Without them ssh runs in
	// batch mode (keys, agent).
	Password   string `yaml:"-"`
	Passphrase string `yaml:"-"`
}

// Check says what is wrong with a resource's configuration.
func (r *Resource) Check(name string) error {
	if r.Host == "" {
		return fmt.Errorf("resource %q has no host", name)
	}
	if strings.HasPrefix(r.Host, "-") || strings.ContainsAny(r.Host, " \t\n") {
		return fmt.Errorf("resource %q: bad host %q", name, r.Host)
	}
	if r.Port < 0 || r.Port > 65535 {
		return fmt.Errorf("resource %q: port %d out of range", name, r.Port)
	}
	if strings.HasPrefix(r.User, "-") {
		return fmt.Errorf("resource %q: bad user %q", name, r.User)
	}
	for _, e := range r.TranslationFiles {
		if _, _, err := ParseTranslationEntry(e); err != nil {
			return fmt.Errorf("resource %q: %v", name, err)
		}
	}
	return nil
}

// shellQuote quotes a word for the far side's shell: ssh joins its
// remote command's words into one line that a shell runs there. A leading
// ~/ stays unquoted, so that the far shell expands it to the home there.
func shellQuote(s string) string {
	if rest, ok := strings.CutPrefix(s, "~/"); ok && rest != "" {
		return "~/" + shellQuote(rest)
	}
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./=:,+@%") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// SSHArgv is the command line that reaches the resource: ssh, its options,
// the host, then the remote command, each word quoted for the far shell.
func (r *Resource) SSHArgv() []string { return r.CommandArgv("serve-stdio") }

// CommandArgv is the command line that runs `somaflow ARGS...` on the
// resource (with its state dir and backend), as SSHArgv.
func (r *Resource) CommandArgv(args ...string) []string {
	ssh := r.SSH
	if ssh == "" {
		ssh = "ssh"
	}
	batch := "yes"
	if r.Password != "" || r.Passphrase != "" {
		batch = "no" // the askpass helper answers
	}
	argv := []string{ssh, "-T", "-o", "BatchMode=" + batch, "-o", "ServerAliveInterval=15"}
	if r.Port != 0 {
		argv = append(argv, "-p", strconv.Itoa(r.Port))
	}
	if r.User != "" {
		argv = append(argv, "-l", r.User)
	}
	if r.IdentityFile != "" {
		argv = append(argv, "-i", r.IdentityFile)
	}
	argv = append(argv, r.SSHOptions...)
	argv = append(argv, "--", r.Host)
	bin := r.Somaflow
	if bin == "" {
		bin = "somaflow"
	}
	remote := []string{bin}
	if r.StateDir != "" {
		remote = append(remote, "--state-dir", r.StateDir)
	}
	if r.Backend != "" {
		remote = append(remote, "--backend", r.Backend)
	}
	remote = append(remote, args...)
	words := make([]string, len(remote))
	for i, w := range remote {
		words[i] = shellQuote(w)
	}
	return append(argv, strings.Join(words, " "))
}

// Remote is a connection to a remote resource: the far side's somaflow
// over one SSH connection, speaking JSON lines. Its methods are those of
// Client that make sense across the connection. Calls are serialised.
type Remote struct {
	res    Resource
	name   string
	cmd    *exec.Cmd
	in     io.WriteCloser
	out    *bufio.Reader
	stderr *tailBuffer
	mu     sync.Mutex
	seq    int64
	dead   error
	done   chan struct{}
}

// tailBuffer keeps the last bytes written (ssh's own messages).
type tailBuffer struct {
	mu  sync.Mutex
	buf []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if len(t.buf) > 8192 {
		t.buf = t.buf[len(t.buf)-8192:]
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return strings.TrimSpace(string(t.buf))
}

// Dial connects to a resource: it starts ssh with `somaflow serve-stdio`
// on the far side and checks that it answers. The connection lives until
// Close (ctx only bounds the dial).
func Dial(ctx context.Context, name string, r Resource) (*Remote, error) {
	if err := r.Check(name); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	argv := r.SSHArgv()
	cmd := exec.Command(argv[0], argv[1:]...)
	if r.Password != "" || r.Passphrase != "" {
		dir, err := askpass(cmd, r.Password, r.Passphrase)
		if err != nil {
			return nil, fmt.Errorf("%w: resource %q: %v", ErrUnavailable, name, err)
		}
		defer os.RemoveAll(dir) // ssh needs it only while it connects
	}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	rm := &Remote{res: r, name: name, cmd: cmd, in: stdin, out: bufio.NewReaderSize(stdout, 1<<20), stderr: &tailBuffer{}, done: make(chan struct{})}
	cmd.Stderr = rm.stderr
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("%w: resource %q: start %s: %v", ErrUnavailable, name, argv[0], err)
	}
	go func() { cmd.Wait(); close(rm.done) }()
	var hello struct {
		Protocol int    `json:"protocol"`
		StateDir string `json:"state_dir"`
	}
	if err := rm.call(ctx, "hello", nil, &hello); err != nil {
		rm.Close()
		return nil, err
	}
	if hello.Protocol != ProtocolVersion {
		rm.Close()
		return nil, fmt.Errorf("%w: resource %q speaks protocol %d, this somaflow %d: install the same somaflow on both sides", ErrUnavailable, name, hello.Protocol, ProtocolVersion)
	}
	return rm, nil
}

// askpassScript answers ssh's prompts: the passphrase for a key's, the
// password otherwise. The secrets are in its environment (ssh's child's),
// never in a file or an argument.
const askpassScript = `#!/bin/sh
case "$1" in
*assphrase*) printf '%s\n' "$SOMAFLOW_SSH_PASSPHRASE" ;;
*) printf '%s\n' "$SOMAFLOW_SSH_PASSWORD" ;;
esac
`

// askpass makes ssh ask a private helper script for its secrets
// (SSH_ASKPASS_REQUIRE=force, OpenSSH 8.4 and later); it returns the
// helper's directory, to remove once connected.
func askpass(cmd *exec.Cmd, password, passphrase string) (string, error) {
	dir, err := os.MkdirTemp("", "somaflow-askpass-")
	if err != nil {
		return "", err
	}
	script := filepath.Join(dir, "askpass")
	if err := os.WriteFile(script, []byte(askpassScript), 0o700); err != nil {
		os.RemoveAll(dir)
		return "", err
	}
	cmd.Env = append(os.Environ(), "SSH_ASKPASS="+script, "SSH_ASKPASS_REQUIRE=force",
		"SOMAFLOW_SSH_PASSWORD="+password, "SOMAFLOW_SSH_PASSPHRASE="+passphrase)
	if os.Getenv("DISPLAY") == "" {
		cmd.Env = append(cmd.Env, "DISPLAY=none") // older ssh wants one to use askpass
	}
	return dir, nil
}

// Name is the resource's name.
func (r *Remote) Name() string { return r.name }

// Close ends the connection (the far side's engine and jobs go on).
func (r *Remote) Close() error {
	r.in.Close()
	select {
	case <-r.done:
	case <-time.After(5 * time.Second):
		r.cmd.Process.Kill()
		<-r.done
	}
	return nil
}

// killConnection kills the ssh process (tests: a cut connection).
func (r *Remote) killConnection() { r.cmd.Process.Kill() }

// call sends one request and reads its response into result.
func (r *Remote) call(ctx context.Context, method string, params, result any) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.dead != nil {
		return r.dead
	}
	r.seq++
	data, err := json.Marshal(map[string]any{"id": r.seq, "method": method, "params": params})
	if err != nil {
		return fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	type reply struct {
		line []byte
		err  error
	}
	ch := make(chan reply, 1)
	go func() {
		if _, err := r.in.Write(append(data, '\n')); err != nil {
			ch <- reply{nil, err}
			return
		}
		line, err := readLine(r.out)
		ch <- reply{line, err}
	}()
	var rep reply
	select {
	case rep = <-ch:
	case <-ctx.Done():
		// The connection is in an unknown state: it is not used again.
		r.cmd.Process.Kill()
		r.dead = fmt.Errorf("%w: resource %q: connection closed after an interrupted call", ErrUnavailable, r.name)
		return ctx.Err()
	}
	if rep.err != nil {
		select {
		case <-r.done:
		case <-time.After(2 * time.Second):
		}
		msg := r.stderr.String()
		if msg == "" {
			msg = rep.err.Error()
		}
		r.dead = fmt.Errorf("%w: resource %q: connection lost: %s", ErrUnavailable, r.name, msg)
		return r.dead
	}
	var resp struct {
		ID     int64           `json:"id"`
		Result json.RawMessage `json:"result"`
		Error  *remoteErr      `json:"error"`
	}
	if err := json.Unmarshal(rep.line, &resp); err != nil || resp.ID != r.seq {
		r.dead = fmt.Errorf("%w: resource %q: garbled answer %.200q", ErrUnavailable, r.name, rep.line)
		return r.dead
	}
	if resp.Error != nil {
		return kindErr(resp.Error)
	}
	if result != nil && len(resp.Result) > 0 {
		if err := json.Unmarshal(resp.Result, result); err != nil {
			return fmt.Errorf("%w: resource %q: answer to %s: %v", ErrUnavailable, r.name, method, err)
		}
	}
	return nil
}

// SubmitWorkflow sends a workflow to the resource, where it runs with its
// transfers staged in the resource's transfer dir (see TransferInputFiles).
// The resource's translation files translate its shared resource paths
// there.
func (r *Remote) SubmitWorkflow(ctx context.Context, w *model.Workflow, opts SubmitOptions) (int64, error) {
	if w == nil {
		return 0, fmt.Errorf("%w: no workflow", ErrInvalid)
	}
	if err := w.Validate(); err != nil {
		return 0, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	var text []byte
	var err error
	if opts.Format == string(model.FormatNative) {
		text, err = model.EncodeNative(w)
	} else {
		text, err = model.EncodeSoma(w)
	}
	if err != nil {
		return 0, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	queue := opts.Queue
	if queue == "" {
		queue = r.res.Queue
	}
	tf := opts.TranslationFiles
	if tf == nil {
		tf = r.res.TranslationFiles
	}
	var res struct {
		ID int64 `json:"id"`
	}
	sp := submitParams{Workflow: string(text), Format: opts.Format, Name: opts.Name, Queue: queue, MaxJobs: opts.MaxJobs, TranslationFiles: tf}
	if !opts.Expiration.IsZero() {
		sp.Expiration = opts.Expiration.UTC().Format(time.RFC3339Nano)
	}
	err = r.call(ctx, "submit", sp, &res)
	return res.ID, err
}

// WorkflowElementsStatus returns the status document of a workflow.
func (r *Remote) WorkflowElementsStatus(ctx context.Context, id int64) (*WorkflowDoc, error) {
	var d WorkflowDoc
	if err := r.call(ctx, "status", idParams{ID: id}, &d); err != nil {
		return nil, err
	}
	return &d, nil
}

// WaitWorkflow waits until the workflow is done (timeout < 0: forever);
// ErrTimeout when it runs out. The far side is asked in rounds of at most
// a minute, so that a dead connection is noticed.
func (r *Remote) WaitWorkflow(ctx context.Context, id int64, timeout time.Duration) error {
	var deadline time.Time
	if timeout >= 0 {
		deadline = time.Now().Add(timeout)
	}
	for {
		round := time.Minute
		if !deadline.IsZero() {
			round = min(round, time.Until(deadline))
		}
		if round < 0 {
			round = 0
		}
		var res struct {
			Done bool `json:"done"`
		}
		if err := r.call(ctx, "wait", idParams{ID: id, Timeout: round.Milliseconds()}, &res); err != nil {
			return err
		}
		if res.Done {
			return nil
		}
		if !deadline.IsZero() && !time.Now().Before(deadline) {
			return ErrTimeout
		}
	}
}

// Workflows lists the workflows of the resource (`list --json` rows).
func (r *Remote) Workflows(ctx context.Context) ([]WorkflowHeader, error) {
	var hs []WorkflowHeader
	err := r.call(ctx, "workflows", nil, &hs)
	return hs, err
}

// StopWorkflow stops a workflow on the resource.
func (r *Remote) StopWorkflow(ctx context.Context, id int64) (bool, error) {
	var ok bool
	err := r.call(ctx, "stop", idParams{ID: id}, &ok)
	return ok, err
}

// DeleteWorkflow deletes a workflow on the resource.
func (r *Remote) DeleteWorkflow(ctx context.Context, id int64, force bool) (bool, error) {
	var ok bool
	err := r.call(ctx, "delete", idParams{ID: id, Force: force}, &ok)
	return ok, err
}

// Transfers returns every transfer of the resource, or those named.
func (r *Remote) Transfers(ctx context.Context, ids ...int64) ([]TransferInfo, error) {
	if len(ids) == 0 {
		var ts []TransferInfo
		err := r.call(ctx, "transfers", nil, &ts)
		return ts, err
	}
	out := make([]TransferInfo, 0, len(ids))
	for _, id := range ids {
		var t TransferInfo
		if err := r.call(ctx, "transfer", idParams{ID: id}, &t); err != nil {
			return nil, err
		}
		out = append(out, t)
	}
	return out, nil
}

// WorkflowTransfers returns the transfers of a workflow.
func (r *Remote) WorkflowTransfers(ctx context.Context, id int64) ([]TransferInfo, error) {
	var ts []TransferInfo
	err := r.call(ctx, "workflow_transfers", idParams{ID: id}, &ts)
	return ts, err
}

// TransferStatus returns a transfer's status and, while it is under way,
// its progression.
func (r *Remote) TransferStatus(ctx context.Context, id int64) (string, *Progression, error) {
	ts, err := r.Transfers(ctx, id)
	if err != nil {
		return "", nil, err
	}
	if !transfering(ts[0].Status) {
		return ts[0].Status, nil, nil
	}
	return ts[0].Status, ts[0].Progression, nil
}

// DeleteTransfer deletes a transfer on the resource (deferred while jobs
// reference it).
func (r *Remote) DeleteTransfer(ctx context.Context, id int64) (bool, error) {
	var deferred bool
	err := r.call(ctx, "delete_transfer", idParams{ID: id}, &deferred)
	return deferred, err
}

// TransferFiles moves the files of each transfer across the connection, in
// pieces of opts.BufferSize: inputs to the resource, outputs back. A
// transfer cut in the middle (the connection lost) is failed
// (ErrTransferFailed), its status as it was: dial again and retry.
func (r *Remote) TransferFiles(ctx context.Context, ids []int64, opts TransferOptions) error {
	for _, id := range ids {
		ts, err := r.Transfers(ctx, id)
		if err != nil {
			return err
		}
		if err := r.transferOne(ctx, &ts[0], opts); err != nil {
			return err
		}
	}
	return nil
}

// TransferInputFiles sends every input of a workflow not on the resource yet.
func (r *Remote) TransferInputFiles(ctx context.Context, wfID int64, opts TransferOptions) error {
	return r.transferWhere(ctx, wfID, opts, func(t *TransferInfo) bool {
		in, _ := direction(t)
		return in && !t.Output
	})
}

// TransferOutputFiles brings back every output its job made.
func (r *Remote) TransferOutputFiles(ctx context.Context, wfID int64, opts TransferOptions) error {
	return r.transferWhere(ctx, wfID, opts, func(t *TransferInfo) bool {
		return t.Output && (t.Status == model.TransferOnCRSide || t.Status == model.TransferTransferingFromCR)
	})
}

func (r *Remote) transferWhere(ctx context.Context, wfID int64, opts TransferOptions, want func(*TransferInfo) bool) error {
	ts, err := r.WorkflowTransfers(ctx, wfID)
	if err != nil {
		return err
	}
	var errs []error
	for i := range ts {
		if want(&ts[i]) {
			if err := r.transferOne(ctx, &ts[i], opts); err != nil {
				errs = append(errs, err)
				if errors.Is(err, ErrUnavailable) && r.dead != nil {
					break // the connection is gone: the rest cannot go either
				}
			}
		}
	}
	return errors.Join(errs...)
}

func (r *Remote) transferOne(ctx context.Context, t *TransferInfo, opts TransferOptions) error {
	in, out := direction(t)
	if !in && !out {
		return fmt.Errorf("%w: transfer %d (%s) has nothing to move: its status is %q", ErrInvalid, t.ID, t.ClientPath, t.Status)
	}
	buf := opts.BufferSize
	if buf <= 0 {
		buf = DefaultBufferSize
	}
	fail := func(err error) error {
		if errors.Is(err, ErrTransferFailed) {
			return err
		}
		kind := ErrUnavailable
		if errors.Is(err, errSource) || errors.Is(err, ErrInvalid) {
			kind = ErrInvalid
		}
		return fmt.Errorf("%w: %w: transfer %d (%s): %v", ErrTransferFailed, kind, t.ID, t.ClientPath, strings.TrimPrefix(err.Error(), "source: "))
	}
	pairs := transferPairs(t, true) // src: client, dst: resource
	if in {
		return r.sendIn(ctx, t, pairs, buf, opts, fail)
	}
	return r.bringOut(ctx, t, pairs, buf, opts, fail)
}

func (r *Remote) sendIn(ctx context.Context, t *TransferInfo, pairs []copyPair, buf int, opts TransferOptions, fail func(error) error) error {
	var all [][]fileEntry
	var total int64
	for _, pr := range pairs {
		ents, n, err := scanTree(pr.src)
		if err != nil {
			return fail(err)
		}
		all = append(all, ents)
		total += n
	}
	if err := r.call(ctx, "begin_in", beginParams{ID: t.ID, Entries: all}, nil); err != nil {
		return fail(err)
	}
	var done int64
	if opts.Progress != nil {
		opts.Progress(t.ID, 0, total)
	}
	b := make([]byte, buf)
	for pi, ents := range all {
		for ei, e := range ents {
			if e.Dir {
				continue
			}
			f, err := os.Open(filepath.Join(pairs[pi].src, e.Rel))
			if err != nil {
				r.call(ctx, "abort", idParams{ID: t.ID}, nil)
				return fail(fmt.Errorf("%w: %w", errSource, err))
			}
			var off int64
			for off < e.Size {
				n, rerr := io.ReadFull(f, b[:min(int64(buf), e.Size-off)])
				if n > 0 {
					if err := r.call(ctx, "write", chunkParams{ID: t.ID, Pair: pi, Entry: ei, Offset: off, Data: b[:n]}, nil); err != nil {
						f.Close()
						return fail(err)
					}
					off += int64(n)
					done += int64(n)
					if opts.Progress != nil {
						opts.Progress(t.ID, done, total)
					}
				}
				if rerr != nil && off < e.Size {
					f.Close()
					r.call(ctx, "abort", idParams{ID: t.ID}, nil)
					return fail(fmt.Errorf("%w: %s changed while being sent: %v", errSource, filepath.Join(pairs[pi].src, e.Rel), rerr))
				}
			}
			f.Close()
		}
	}
	if err := r.call(ctx, "end_in", idParams{ID: t.ID}, nil); err != nil {
		return fail(err)
	}
	return nil
}

func (r *Remote) bringOut(ctx context.Context, t *TransferInfo, pairs []copyPair, buf int, opts TransferOptions, fail func(error) error) error {
	var all [][]fileEntry
	if err := r.call(ctx, "begin_out", idParams{ID: t.ID}, &all); err != nil {
		return fail(err)
	}
	if len(all) != len(pairs) {
		r.call(ctx, "abort", idParams{ID: t.ID}, nil)
		return fail(fmt.Errorf("the resource lists %d paths for %d", len(all), len(pairs)))
	}
	var total int64
	for _, ents := range all {
		for _, e := range ents {
			total += e.Size
		}
	}
	p := store.TransferProgress{Total: total}
	m := newMeter(p, func(tp store.TransferProgress, _ bool) {
		if opts.Progress != nil {
			opts.Progress(t.ID, tp.Done, tp.Total)
		}
	})
	for pi, ents := range all {
		index := make(map[string]int, len(ents))
		for i := range ents {
			index[ents[i].Rel] = i
		}
		open := func(e fileEntry) (io.ReadCloser, error) {
			return &remoteReader{ctx: ctx, r: r, id: t.ID, pair: pi, entry: index[e.Rel], size: e.Size, buf: buf}, nil
		}
		if err := writeTree(ctx, pairs[pi].src, ents, false, buf, open, func(string) string { return "" }, m); err != nil {
			if r.dead == nil {
				r.call(ctx, "abort", idParams{ID: t.ID}, nil)
			}
			return fail(err)
		}
	}
	if err := r.call(ctx, "end_out", idParams{ID: t.ID}, nil); err != nil {
		return fail(err)
	}
	return nil
}

// remoteReader reads one file of an output transfer piece by piece.
type remoteReader struct {
	ctx         context.Context
	r           *Remote
	id          int64
	pair, entry int
	off, size   int64
	buf         int
	pending     []byte
}

func (rr *remoteReader) Read(p []byte) (int, error) {
	if len(rr.pending) == 0 {
		if rr.off >= rr.size {
			return 0, io.EOF
		}
		var res struct {
			Data []byte `json:"data"`
		}
		if err := rr.r.call(rr.ctx, "read", chunkParams{ID: rr.id, Pair: rr.pair, Entry: rr.entry, Offset: rr.off, Size: rr.buf}, &res); err != nil {
			return 0, err
		}
		if len(res.Data) == 0 {
			return 0, io.ErrUnexpectedEOF
		}
		rr.pending = res.Data
		rr.off += int64(len(res.Data))
	}
	n := copy(p, rr.pending)
	rr.pending = rr.pending[n:]
	return n, nil
}

func (rr *remoteReader) Close() error { return nil }
