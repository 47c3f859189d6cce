package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/somaflow/somaflow/model"
	"github.com/somaflow/somaflow/store"
)

// ErrTransferFailed: a transfer did not complete (its source is missing,
// the connection was cut...). Its status is back to what it was before and
// its error recorded: it can be started again.
var ErrTransferFailed = errors.New("transfer failed")

// TransferInfo is what is known of a file transfer (soma-workflow's
// transfers() and transfer_information()).
type TransferInfo struct {
	ID         int64
	WorkflowID int64 // 0 for a transfer registered alone
	Index      int   // its index in the workflow's transfers (-1 alone)
	Name       string
	ClientPath string
	// ClientPaths are the files moved together, nil when only ClientPath.
	ClientPaths []string
	// EnginePath is where the files are on the computing resource.
	EnginePath string
	// Status is one of soma-workflow's transfer statuses (model.Transfer*).
	Status string
	// Output: a job makes the files; they come back to the client.
	Output bool
	// Light: the computing resource uses the client path itself.
	Light bool
	// Progression is set while a transfer is under way (and kept, with
	// Error, where the last one was cut).
	Progression *Progression
	// Error says why the last transfer failed ("" when it did not).
	Error string
	// DeletePending: deleted while jobs reference it; it goes with them.
	DeletePending bool
	Expiration    time.Time
}

// Progression is how far a transfer went: bytes done of total and, for a
// directory, per file.
type Progression struct {
	Total int64
	Done  int64
	Files []store.FileProgress
}

// Tuple is soma-workflow's progression tuple: (file size, bytes done) for
// a file, (cumulated size, [(relative path, size, bytes done), ...]) for a
// directory.
func (p *Progression) Tuple() []any {
	if p == nil {
		return nil
	}
	if p.Files == nil {
		return []any{p.Total, p.Done}
	}
	files := make([]any, 0, len(p.Files))
	for _, f := range p.Files {
		files = append(files, []any{f.Path, f.Size, f.Done})
	}
	return []any{p.Total, files}
}

func transferInfo(t *store.Transfer) TransferInfo {
	ti := TransferInfo{ID: t.ID, WorkflowID: t.WorkflowID, Index: t.Index, Name: t.Name, ClientPath: t.ClientPath,
		EnginePath: t.EnginePath, Status: t.Status, Output: t.Output, Light: t.Light, Error: t.Error,
		DeletePending: t.DeletePending, Expiration: t.Expiration}
	if len(t.ClientPaths) > 0 {
		_ = json.Unmarshal(t.ClientPaths, &ti.ClientPaths)
	}
	if len(t.Progress) > 0 && string(t.Progress) != "null" {
		var p store.TransferProgress
		if json.Unmarshal(t.Progress, &p) == nil {
			ti.Progression = &Progression{Total: p.Total, Done: p.Done, Files: p.Files}
		}
	}
	return ti
}

// RegisterTransfer registers a transfer that belongs to no workflow, as
// soma-workflow's register_transfer; its files go to the resource's
// transfer dir when transferred. A zero expiration means 7 days from now.
func (c *Client) RegisterTransfer(ctx context.Context, ft *model.FileTransfer, expiration time.Time) (*TransferInfo, error) {
	if ft == nil || ft.ClientPath == "" {
		return nil, fmt.Errorf("%w: a file transfer needs a client path", ErrInvalid)
	}
	if !filepath.IsAbs(ft.ClientPath) {
		return nil, fmt.Errorf("%w: client path %q must be absolute", ErrInvalid, ft.ClientPath)
	}
	if expiration.IsZero() {
		expiration = time.Now().Add(DefaultExpiration)
	}
	if ft.InitialStatus == "" {
		ft.InitialStatus = model.TransferOnClientSide
	}
	t, err := c.st.RegisterTransfer(ctx, ft, expiration)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	ti := transferInfo(t)
	return &ti, nil
}

// Transfers returns the transfers named, or every transfer (of workflows
// and registered alone) without ids; an unknown id is ErrUnknownObject.
func (c *Client) Transfers(ctx context.Context, ids ...int64) ([]TransferInfo, error) {
	if len(ids) == 0 {
		ts, err := c.st.Transfers(ctx, 0)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrUnavailable, err)
		}
		out := make([]TransferInfo, len(ts))
		for i := range ts {
			out[i] = transferInfo(&ts[i])
		}
		return out, nil
	}
	out := make([]TransferInfo, 0, len(ids))
	for _, id := range ids {
		t, err := c.st.GetTransfer(ctx, id)
		if err != nil {
			return nil, err
		}
		out = append(out, transferInfo(t))
	}
	return out, nil
}

// WorkflowTransfers returns the transfers of a workflow, in its order.
func (c *Client) WorkflowTransfers(ctx context.Context, wfID int64) ([]TransferInfo, error) {
	if _, err := c.st.GetWorkflow(ctx, wfID, false); err != nil {
		return nil, err
	}
	ts, err := c.st.Transfers(ctx, wfID)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	out := make([]TransferInfo, len(ts))
	for i := range ts {
		out[i] = transferInfo(&ts[i])
	}
	return out, nil
}

// TransferStatus returns a transfer's status and, while it is under way,
// its progression (soma-workflow's transfer_status).
func (c *Client) TransferStatus(ctx context.Context, id int64) (string, *Progression, error) {
	t, err := c.st.GetTransfer(ctx, id)
	if err != nil {
		return "", nil, err
	}
	ti := transferInfo(t)
	if !transfering(ti.Status) {
		return ti.Status, nil, nil
	}
	return ti.Status, ti.Progression, nil
}

func transfering(s string) bool {
	return s == model.TransferTransferingToCR || s == model.TransferTransferingFromCR
}

// TransferOptions tune TransferFiles.
type TransferOptions struct {
	// BufferSize is the size of the pieces copied (DefaultBufferSize).
	BufferSize int
	// Progress, when set, is called as bytes are copied.
	Progress func(id int64, done, total int64)
}

// direction says which way a transfer in status st goes: in (client to
// computing resource), out, or nowhere.
func direction(t *TransferInfo) (in, out bool) {
	switch t.Status {
	case model.TransferOnClientSide, model.TransferTransferingToCR:
		return true, false
	case model.TransferOnCRSide, model.TransferTransferingFromCR:
		return false, true
	case model.TransferOnBothSides:
		return false, t.Output
	}
	return false, false
}

// TransferFiles moves the files of each transfer, as soma-workflow's
// transfer_files: those only on the client side go to the computing
// resource, those made there come back. A transfer cut before its end
// (ErrTransferFailed) leaves its status as it was and can be started again;
// the files are never half-written under their final name. A transfer with
// nothing to move (its job has not made its files yet) is ErrInvalid.
func (c *Client) TransferFiles(ctx context.Context, ids []int64, opts TransferOptions) error {
	for _, id := range ids {
		if err := c.transferOne(ctx, id, opts); err != nil {
			return err
		}
	}
	return nil
}

func (c *Client) transferOne(ctx context.Context, id int64, opts TransferOptions) error {
	t, err := c.st.GetTransfer(ctx, id)
	if err != nil {
		return err
	}
	ti := transferInfo(t)
	in, out := direction(&ti)
	if !in && !out {
		return fmt.Errorf("%w: transfer %d (%s) has nothing to move: its status is %q", ErrInvalid, id, ti.ClientPath, ti.Status)
	}
	from, during, after := model.TransferOnClientSide, model.TransferTransferingToCR, model.TransferOnBothSides
	if out {
		from, during = model.TransferOnCRSide, model.TransferTransferingFromCR
		if ti.Status == model.TransferOnBothSides {
			from = model.TransferOnBothSides
		}
	}
	if ti.Light {
		// The engine uses the client path: nothing to copy.
		if err := c.st.EndTransfer(ctx, id, after, ""); err != nil {
			return fmt.Errorf("%w: %v", ErrUnavailable, err)
		}
		c.wake()
		return nil
	}
	pairs := transferPairs(&ti, in)
	buf := opts.BufferSize
	if buf <= 0 {
		buf = DefaultBufferSize
	}
	start := func(p store.TransferProgress) error {
		if err := c.st.BeginTransfer(ctx, id, []string{ti.Status}, during, p); err != nil {
			if errors.Is(err, store.ErrBusy) {
				return fmt.Errorf("%w: transfer %d changed status meanwhile (another process moves it?)", ErrInvalid, id)
			}
			return fmt.Errorf("%w: %v", ErrUnavailable, err)
		}
		if opts.Progress != nil {
			opts.Progress(id, 0, p.Total)
		}
		return nil
	}
	report := func(p store.TransferProgress, save bool) {
		if opts.Progress != nil {
			opts.Progress(id, p.Done, p.Total)
		}
		if save {
			_ = c.st.SetTransferProgress(context.WithoutCancel(ctx), id, p)
		}
	}
	began := false
	startOnce := func(p store.TransferProgress) error {
		err := start(p)
		began = err == nil
		return err
	}
	err = copyLocal(ctx, pairs, in, buf, startOnce, report)
	if err != nil {
		if began {
			// Back to where it was: the transfer can be started again.
			_ = c.st.EndTransfer(context.WithoutCancel(ctx), id, from, err.Error())
		}
		kind := ErrUnavailable
		if errors.Is(err, errSource) {
			kind = ErrInvalid
		}
		if errors.Is(err, ErrInvalid) || errors.Is(err, ErrUnavailable) {
			return err
		}
		return fmt.Errorf("%w: %w: transfer %d (%s): %v", ErrTransferFailed, kind, id, ti.ClientPath, err)
	}
	if err := c.st.EndTransfer(ctx, id, after, ""); err != nil {
		return fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	c.wake() // jobs waiting for this input may start
	return nil
}

// transferPairs are the sources and destinations of a transfer's files.
func transferPairs(t *TransferInfo, in bool) []copyPair {
	var pairs []copyPair
	if len(t.ClientPaths) == 0 {
		pairs = []copyPair{{t.ClientPath, t.EnginePath}}
	} else {
		dir := filepath.Dir(t.EnginePath)
		for _, p := range t.ClientPaths {
			pairs = append(pairs, copyPair{p, filepath.Join(dir, filepath.Base(p))})
		}
	}
	if !in {
		for i := range pairs {
			pairs[i].src, pairs[i].dst = pairs[i].dst, pairs[i].src
		}
	}
	return pairs
}

// DeleteTransfer deletes a transfer and its files on the computing
// resource, as soma-workflow's delete_transfer. When jobs still reference
// it (its workflow exists), the deletion is deferred: it is marked
// delete-pending and goes with its workflow; deferred is then true.
func (c *Client) DeleteTransfer(ctx context.Context, id int64) (deferred bool, err error) {
	t, err := c.st.GetTransfer(ctx, id)
	if err != nil {
		return false, err
	}
	deferred, err = c.st.DeleteTransfer(ctx, id)
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return false, err
		}
		return false, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	if !deferred && !t.Light && t.EnginePath != "" {
		// Its own dir in the transfer dir (see store's transferEnginePath).
		dir := filepath.Dir(t.EnginePath)
		if t.WorkflowID == 0 && filepath.Base(dir) == "r"+strconv.FormatInt(t.ID, 10) {
			os.RemoveAll(dir)
		} else {
			os.RemoveAll(t.EnginePath)
		}
	}
	return deferred, nil
}

// TransferInputFiles transfers every input file of a workflow that is not
// on the computing resource yet (soma-workflow's
// Helper.transfer_input_files); a transfer cut earlier starts again.
func (c *Client) TransferInputFiles(ctx context.Context, wfID int64, opts TransferOptions) error {
	return c.transferWhere(ctx, wfID, opts, func(t *TransferInfo) bool {
		in, _ := direction(t)
		return in && !t.Output
	})
}

// TransferOutputFiles brings back every output file of a workflow that its
// job made (soma-workflow's Helper.transfer_output_files).
func (c *Client) TransferOutputFiles(ctx context.Context, wfID int64, opts TransferOptions) error {
	return c.transferWhere(ctx, wfID, opts, func(t *TransferInfo) bool {
		return t.Output && (t.Status == model.TransferOnCRSide || t.Status == model.TransferTransferingFromCR)
	})
}

func (c *Client) transferWhere(ctx context.Context, wfID int64, opts TransferOptions, want func(*TransferInfo) bool) error {
	ts, err := c.WorkflowTransfers(ctx, wfID)
	if err != nil {
		return err
	}
	// Every transfer is tried: one that fails does not keep the others.
	var errs []error
	for i := range ts {
		if want(&ts[i]) {
			if err := c.transferOne(ctx, ts[i].ID, opts); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}
