package client

// This file holds the far side of a remote resource: `somaflow
// serve-stdio` reads one JSON request per line on stdin and answers one
// JSON response per line on stdout, for the Remote client at the other end
// of an SSH connection. Nothing listens on a network port.

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/somaflow/somaflow/model"
	"github.com/somaflow/somaflow/store"
)

// ProtocolVersion is the version of the serve-stdio protocol.
const ProtocolVersion = 1

// maxRequest bounds one request line (a workflow file, or a piece of a
// file in base64).
const maxRequest = 256 << 20

// request is one call of the protocol.
type request struct {
	ID     int64           `json:"id"`
	Method string          `json:"method"`
	Params json.RawMessage `json:"params"`
}

// response answers a request: Result, or Error.
type response struct {
	ID     int64      `json:"id"`
	Result any        `json:"result,omitempty"`
	Error  *remoteErr `json:"error,omitempty"`
}

// remoteErr is an error sent over the protocol; Kind keeps its class
// (errors.Is on the client side).
type remoteErr struct {
	Kind    string `json:"kind"`
	Message string `json:"message"`
}

func errKind(err error) string {
	switch {
	case errors.Is(err, ErrTransferFailed):
		if errors.Is(err, ErrInvalid) {
			return "transfer_invalid"
		}
		return "transfer_failed"
	case errors.Is(err, ErrInvalid):
		return "invalid"
	case errors.Is(err, ErrUnknownObject):
		return "not_found"
	case errors.Is(err, ErrTimeout):
		return "timeout"
	}
	return "unavailable"
}

// kindErr turns a remote error back into an error with its class.
func kindErr(e *remoteErr) error {
	switch e.Kind {
	case "invalid":
		return fmt.Errorf("%w: %s", ErrInvalid, e.Message)
	case "not_found":
		return fmt.Errorf("%w: %s", ErrUnknownObject, e.Message)
	case "timeout":
		return fmt.Errorf("%w: %s", ErrTimeout, e.Message)
	case "transfer_failed":
		return fmt.Errorf("%w: %w: %s", ErrTransferFailed, ErrUnavailable, e.Message)
	case "transfer_invalid":
		return fmt.Errorf("%w: %w: %s", ErrTransferFailed, ErrInvalid, e.Message)
	}
	return fmt.Errorf("%w: %s", ErrUnavailable, e.Message)
}

// ServeOptions configure Serve.
type ServeOptions struct {
	// EnsureEngine starts the state dir's engine when none runs (after a
	// submission).
	EnsureEngine func() error
	// Backend is the backend workflows submitted here run on.
	Backend string
}

// server is one serve-stdio session.
type server struct {
	c    *Client
	opts ServeOptions
	// open transfers of this session, by transfer id: aborted when the
	// connection ends.
	open map[int64]*session
}

// session is a transfer under way over the connection.
type session struct {
	t     TransferInfo
	in    bool
	from  string // status to go back to when it fails
	pairs []copyPair
	ents  [][]fileEntry
	// in: the staging dirs and the file being written.
	stages []string
	cur    *os.File
	curAt  [2]int // pair, entry of cur
	meter  *progressMeter
}

// Serve answers requests from in on out until in ends; transfers left
// open (the connection was cut) are put back to their status before, with
// the error recorded, and their partial files removed.
func Serve(ctx context.Context, c *Client, in io.Reader, out io.Writer, opts ServeOptions) error {
	s := &server{c: c, opts: opts, open: map[int64]*session{}}
	defer s.abortAll(errors.New("connection to the client lost"))
	r := bufio.NewReaderSize(in, 1<<20)
	w := bufio.NewWriter(out)
	for {
		line, err := readLine(r)
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		var req request
		resp := response{}
		if err := json.Unmarshal(line, &req); err != nil {
			resp.Error = &remoteErr{Kind: "invalid", Message: "malformed request: " + err.Error()}
		} else {
			resp.ID = req.ID
			res, err := s.handle(ctx, req.Method, req.Params)
			if err != nil {
				resp.Error = &remoteErr{Kind: errKind(err), Message: err.Error()}
			} else {
				resp.Result = res
			}
		}
		data, err := json.Marshal(resp)
		if err != nil {
			data, _ = json.Marshal(response{ID: resp.ID, Error: &remoteErr{Kind: "unavailable", Message: err.Error()}})
		}
		w.Write(data)
		w.WriteByte('\n')
		if err := w.Flush(); err != nil {
			return err
		}
	}
}

func readLine(r *bufio.Reader) ([]byte, error) {
	var buf []byte
	for {
		part, isPrefix, err := r.ReadLine()
		if err != nil {
			if err == io.EOF && len(buf) > 0 {
				return buf, nil
			}
			return nil, err
		}
		buf = append(buf, part...)
		if len(buf) > maxRequest {
			return nil, fmt.Errorf("request longer than %d MiB", maxRequest>>20)
		}
		if !isPrefix {
			return buf, nil
		}
	}
}

func (s *server) abortAll(cause error) {
	for id, ss := range s.open {
		s.abort(id, ss, cause)
	}
}

func (s *server) abort(id int64, ss *session, cause error) {
	if ss.cur != nil {
		ss.cur.Close()
	}
	for _, st := range ss.stages {
		os.RemoveAll(st)
	}
	_ = s.c.st.EndTransfer(context.Background(), id, ss.from, cause.Error())
	delete(s.open, id)
}

// Parameters of the calls.
type (
	submitParams struct {
		Workflow         string   `json:"workflow"`
		Format           string   `json:"format"`
		Name             string   `json:"name"`
		Queue            string   `json:"queue"`
		MaxJobs          int      `json:"max_jobs"`
		TranslationFiles []string `json:"translation_files"`
		Expiration       string   `json:"expiration,omitempty"`
	}
	idParams struct {
		ID      int64 `json:"id"`
		Force   bool  `json:"force"`
		Timeout int64 `json:"timeout_ms"`
	}
	beginParams struct {
		ID      int64         `json:"id"`
		Entries [][]fileEntry `json:"entries"`
	}
	chunkParams struct {
		ID     int64  `json:"id"`
		Pair   int    `json:"pair"`
		Entry  int    `json:"entry"`
		Offset int64  `json:"offset"`
		Size   int    `json:"size"`
		Data   []byte `json:"data"`
	}
)

func (s *server) handle(ctx context.Context, method string, raw json.RawMessage) (any, error) {
	var p idParams
	decode := func(v any) error {
		if len(raw) == 0 {
			return nil
		}
		if err := json.Unmarshal(raw, v); err != nil {
			return fmt.Errorf("%w: %s: bad parameters: %v", ErrInvalid, method, err)
		}
		return nil
	}
	switch method {
	case "hello":
		return map[string]any{"protocol": ProtocolVersion, "state_dir": s.c.StateDir()}, nil
	case "submit":
		var sp submitParams
		if err := decode(&sp); err != nil {
			return nil, err
		}
		return s.submit(ctx, sp)
	case "status", "wait", "stop", "delete", "workflow_transfers", "transfer", "delete_transfer", "begin_out", "end_in", "end_out", "abort":
		if err := decode(&p); err != nil {
			return nil, err
		}
	case "begin_in":
		var bp beginParams
		if err := decode(&bp); err != nil {
			return nil, err
		}
		return nil, s.beginIn(ctx, bp)
	case "write":
		var cp chunkParams
		if err := decode(&cp); err != nil {
			return nil, err
		}
		return nil, s.write(cp)
	case "read":
		var cp chunkParams
		if err := decode(&cp); err != nil {
			return nil, err
		}
		return s.read(cp)
	case "transfers":
		return s.c.Transfers(ctx)
	case "workflows":
		ws, err := s.c.Workflows(ctx)
		if err != nil {
			return nil, err
		}
		hs := make([]WorkflowHeader, len(ws))
		for i, w := range ws {
			hs[i] = w.Header()
		}
		return hs, nil
	default:
		return nil, fmt.Errorf("%w: unknown method %q", ErrInvalid, method)
	}
	switch method {
	case "status":
		return s.c.WorkflowElementsStatus(ctx, p.ID)
	case "wait":
		err := s.c.WaitWorkflow(ctx, p.ID, time.Duration(p.Timeout)*time.Millisecond)
		if errors.Is(err, ErrTimeout) {
			return map[string]bool{"done": false}, nil
		}
		return map[string]bool{"done": err == nil}, err
	case "stop":
		return s.c.StopWorkflow(ctx, p.ID)
	case "delete":
		return s.c.DeleteWorkflow(ctx, p.ID, p.Force)
	case "workflow_transfers":
		return s.c.WorkflowTransfers(ctx, p.ID)
	case "transfer":
		ts, err := s.c.Transfers(ctx, p.ID)
		if err != nil {
			return nil, err
		}
		return ts[0], nil
	case "delete_transfer":
		return s.c.DeleteTransfer(ctx, p.ID)
	case "begin_out":
		return s.beginOut(ctx, p.ID)
	case "end_in":
		return nil, s.endIn(ctx, p.ID)
	case "end_out":
		return nil, s.endOut(ctx, p.ID)
	case "abort":
		if ss := s.open[p.ID]; ss != nil {
			s.abort(p.ID, ss, errors.New("aborted by the client"))
		}
		return nil, nil
	}
	return nil, nil
}

func (s *server) submit(ctx context.Context, p submitParams) (any, error) {
	w, format, err := Unserialize([]byte(p.Workflow))
	if err != nil {
		return nil, err
	}
	home, err := os.UserHomeDir()
	if err != nil {
		home = s.c.StateDir()
	}
	var exp time.Time
	if p.Expiration != "" {
		if exp, err = time.Parse(time.RFC3339Nano, p.Expiration); err != nil {
			return nil, fmt.Errorf("%w: expiration %q: %v", ErrInvalid, p.Expiration, err)
		}
	}
	id, err := s.c.SubmitWorkflow(ctx, w, SubmitOptions{Name: p.Name, Queue: p.Queue, MaxJobs: p.MaxJobs, Format: string(format),
		Cwd: home, TranslationFiles: p.TranslationFiles, StageTransfers: true, Expiration: exp})
	if err != nil {
		return nil, err
	}
	if s.opts.EnsureEngine != nil {
		if err := s.opts.EnsureEngine(); err != nil {
			return nil, err
		}
	}
	return map[string]int64{"id": id}, nil
}

// begin starts a transfer of the session: the transfer must be in one of
// the statuses of its direction.
func (s *server) begin(ctx context.Context, id int64, in bool) (*session, error) {
	if s.open[id] != nil {
		return nil, fmt.Errorf("%w: transfer %d is already under way on this connection", ErrInvalid, id)
	}
	ts, err := s.c.Transfers(ctx, id)
	if err != nil {
		return nil, err
	}
	t := ts[0]
	dirIn, dirOut := direction(&t)
	if (in && !dirIn) || (!in && !dirOut) || t.Light {
		return nil, fmt.Errorf("%w: transfer %d (%s) cannot be moved %s: its status is %q", ErrInvalid, id, t.ClientPath, map[bool]string{true: "in", false: "out"}[in], t.Status)
	}
	ss := &session{t: t, in: in, from: t.Status, pairs: transferPairs(&t, true)}
	if in && t.Status == model.TransferTransferingToCR {
		ss.from = model.TransferOnClientSide
	}
	if !in {
		ss.from = model.TransferOnCRSide
		if t.Status == model.TransferOnBothSides {
			ss.from = t.Status
		}
	}
	return ss, nil
}

func (s *server) beginIn(ctx context.Context, p beginParams) error {
	ss, err := s.begin(ctx, p.ID, true)
	if err != nil {
		return err
	}
	if len(p.Entries) != len(ss.pairs) {
		return fmt.Errorf("%w: transfer %d moves %d paths, got %d", ErrInvalid, p.ID, len(ss.pairs), len(p.Entries))
	}
	var prog store.TransferProgress
	for i, ents := range p.Entries {
		if len(ents) == 0 {
			return fmt.Errorf("%w: transfer %d: empty entry list", ErrInvalid, p.ID)
		}
		var total int64
		for _, e := range ents {
			if e.Rel != "" && !filepath.IsLocal(e.Rel) {
				return fmt.Errorf("%w: transfer %d: entry %q outside the transfer", ErrInvalid, p.ID, e.Rel)
			}
			if e.Size < 0 {
				return fmt.Errorf("%w: transfer %d: negative size", ErrInvalid, p.ID)
			}
			total += e.Size
		}
		sub := progressOf(ents, total)
		prog.Total += total
		if len(p.Entries) == 1 {
			prog.Files = sub.Files
		} else {
			prog.Files = append(prog.Files, store.FileProgress{Path: filepath.Base(ss.pairs[i].dst), Size: total, IsDir: ents[0].Dir})
		}
	}
	ss.ents = p.Entries
	if err := s.c.st.BeginTransfer(ctx, p.ID, []string{ss.t.Status}, model.TransferTransferingToCR, prog); err != nil {
		return fmt.Errorf("%w: transfer %d: %v", ErrInvalid, p.ID, err)
	}
	s.open[p.ID] = ss
	ss.meter = newMeter(prog, func(tp store.TransferProgress, save bool) {
		if save {
			_ = s.c.st.SetTransferProgress(context.Background(), p.ID, tp)
		}
	})
	// Staging dirs beside each destination; directories made now, files
	// as their pieces come.
	for i, pr := range ss.pairs {
		if err := os.MkdirAll(filepath.Dir(pr.dst), 0o700); err != nil {
			s.abort(p.ID, ss, err)
			return fmt.Errorf("%w: %v", ErrUnavailable, err)
		}
		tmp, err := os.MkdirTemp(filepath.Dir(pr.dst), ".somaflow-part-")
		if err != nil {
			s.abort(p.ID, ss, err)
			return fmt.Errorf("%w: %v", ErrUnavailable, err)
		}
		ss.stages = append(ss.stages, tmp)
		stage := filepath.Join(tmp, "data")
		for _, e := range ss.ents[i] {
			path := filepath.Join(stage, e.Rel)
			var err error
			if e.Dir {
				err = os.Mkdir(path, 0o700)
			} else {
				var f *os.File
				f, err = os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, privateMode(e.Mode))
				if err == nil {
					err = f.Close()
				}
			}
			if err != nil {
				s.abort(p.ID, ss, err)
				return fmt.Errorf("%w: %v", ErrUnavailable, err)
			}
		}
	}
	return nil
}

func privateMode(m os.FileMode) os.FileMode {
	if m&0o100 != 0 {
		return 0o700
	}
	return 0o600
}

func (s *server) entry(id int64, pair, entry int) (*session, *fileEntry, error) {
	ss := s.open[id]
	if ss == nil {
		return nil, nil, fmt.Errorf("%w: transfer %d is not under way on this connection", ErrInvalid, id)
	}
	if pair < 0 || pair >= len(ss.ents) || entry < 0 || entry >= len(ss.ents[pair]) || ss.ents[pair][entry].Dir {
		return nil, nil, fmt.Errorf("%w: transfer %d has no file %d/%d", ErrInvalid, id, pair, entry)
	}
	return ss, &ss.ents[pair][entry], nil
}

func (s *server) write(p chunkParams) error {
	ss, e, err := s.entry(p.ID, p.Pair, p.Entry)
	if err != nil {
		return err
	}
	if p.Offset < 0 || p.Offset+int64(len(p.Data)) > e.Size {
		return fmt.Errorf("%w: transfer %d: piece past the end of %q", ErrInvalid, p.ID, e.Rel)
	}
	if ss.cur == nil || ss.curAt != [2]int{p.Pair, p.Entry} {
		if ss.cur != nil {
			ss.cur.Close()
		}
		f, err := os.OpenFile(filepath.Join(ss.stages[p.Pair], "data", e.Rel), os.O_WRONLY, 0)
		if err != nil {
			return fmt.Errorf("%w: %v", ErrUnavailable, err)
		}
		ss.cur, ss.curAt = f, [2]int{p.Pair, p.Entry}
	}
	if _, err := ss.cur.WriteAt(p.Data, p.Offset); err != nil {
		return fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	key := e.Rel
	if len(ss.pairs) > 1 {
		key = filepath.Base(ss.pairs[p.Pair].dst)
	}
	ss.meter.add(key, int64(len(p.Data)))
	return nil
}

func (s *server) endIn(ctx context.Context, id int64) error {
	ss := s.open[id]
	if ss == nil || !ss.in {
		return fmt.Errorf("%w: transfer %d is not coming in on this connection", ErrInvalid, id)
	}
	if ss.cur != nil {
		ss.cur.Close()
		ss.cur = nil
	}
	if ss.meter.p.Done != ss.meter.p.Total {
		err := fmt.Errorf("incomplete: %d of %d bytes", ss.meter.p.Done, ss.meter.p.Total)
		s.abort(id, ss, err)
		return fmt.Errorf("%w: %w: transfer %d: %v", ErrTransferFailed, ErrUnavailable, id, err)
	}
	for i, pr := range ss.pairs {
		if err := os.RemoveAll(pr.dst); err != nil {
			s.abort(id, ss, err)
			return fmt.Errorf("%w: %v", ErrUnavailable, err)
		}
		if err := os.Rename(filepath.Join(ss.stages[i], "data"), pr.dst); err != nil {
			s.abort(id, ss, err)
			return fmt.Errorf("%w: %v", ErrUnavailable, err)
		}
		os.RemoveAll(ss.stages[i])
	}
	delete(s.open, id)
	if err := s.c.st.EndTransfer(ctx, id, model.TransferOnBothSides, ""); err != nil {
		return fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	s.c.wake()
	return nil
}

// beginOut lists what an output transfer brings back.
func (s *server) beginOut(ctx context.Context, id int64) (any, error) {
	ss, err := s.begin(ctx, id, false)
	if err != nil {
		return nil, err
	}
	var prog store.TransferProgress
	for _, pr := range ss.pairs {
		ents, total, err := scanTree(pr.dst)
		if err != nil {
			return nil, fmt.Errorf("%w: %w: transfer %d: %s: %v", ErrTransferFailed, ErrInvalid, id, pr.dst, strings.TrimPrefix(err.Error(), "source: "))
		}
		ss.ents = append(ss.ents, ents)
		prog.Total += total
	}
	if err := s.c.st.BeginTransfer(ctx, id, []string{ss.t.Status}, model.TransferTransferingFromCR, prog); err != nil {
		return nil, fmt.Errorf("%w: transfer %d: %v", ErrInvalid, id, err)
	}
	ss.meter = newMeter(prog, func(tp store.TransferProgress, save bool) {
		if save {
			_ = s.c.st.SetTransferProgress(context.Background(), id, tp)
		}
	})
	s.open[id] = ss
	return ss.ents, nil
}

func (s *server) read(p chunkParams) (any, error) {
	ss, e, err := s.entry(p.ID, p.Pair, p.Entry)
	if err != nil {
		return nil, err
	}
	if p.Size <= 0 || p.Size > 16<<20 || p.Offset < 0 || p.Offset >= e.Size {
		return nil, fmt.Errorf("%w: transfer %d: bad piece of %q", ErrInvalid, p.ID, e.Rel)
	}
	if ss.cur == nil || ss.curAt != [2]int{p.Pair, p.Entry} {
		if ss.cur != nil {
			ss.cur.Close()
		}
		f, err := os.Open(filepath.Join(ss.pairs[p.Pair].dst, e.Rel))
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrUnavailable, err)
		}
		ss.cur, ss.curAt = f, [2]int{p.Pair, p.Entry}
	}
	n := min(int64(p.Size), e.Size-p.Offset)
	buf := make([]byte, n)
	k, err := ss.cur.ReadAt(buf, p.Offset)
	if int64(k) < n {
		return nil, fmt.Errorf("%w: %s: short read: %v", ErrUnavailable, e.Rel, err)
	}
	ss.meter.add(e.Rel, n)
	return map[string][]byte{"data": buf}, nil
}

func (s *server) endOut(ctx context.Context, id int64) error {
	ss := s.open[id]
	if ss == nil || ss.in {
		return fmt.Errorf("%w: transfer %d is not going out on this connection", ErrInvalid, id)
	}
	if ss.cur != nil {
		ss.cur.Close()
	}
	delete(s.open, id)
	return s.c.st.EndTransfer(ctx, id, model.TransferOnBothSides, "")
}
