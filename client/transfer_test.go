package client_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/somaflow/somaflow/client"
	"github.com/somaflow/somaflow/model"
)

// TestRegisteredTransfer: a transfer registered alone goes to the transfer
// dir; its progression is soma-workflow's tuple while it runs; a transfer
// cut in the middle is back to "on client side" with its error, nothing is
// left under the final name, and it succeeds when started again; deleting
// it removes its files at once.
func TestRegisteredTransfer(t *testing.T) {
	ctx := context.Background()
	c := open(t)
	src := filepath.Join(t.TempDir(), "dir")
	os.MkdirAll(filepath.Join(src, "s"), 0o755)
	big := bytes.Repeat([]byte("0123456789abcdef"), 1<<16) // 1 MiB
	os.WriteFile(filepath.Join(src, "s", "big"), big, 0o644)
	os.WriteFile(filepath.Join(src, "small"), []byte("x"), 0o644)
	ti, err := c.RegisterTransfer(ctx, &model.FileTransfer{ClientPath: src, Name: "d"}, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if ti.Status != model.TransferOnClientSide || ti.WorkflowID != 0 || filepath.Base(ti.EnginePath) != "dir" {
		t.Fatalf("registered: %+v", ti)
	}
	// Cut after the first pieces: the context ends while copying.
	cctx, cancel := context.WithCancel(ctx)
	var sawTuple []any
	err = c.TransferFiles(cctx, []int64{ti.ID}, client.TransferOptions{BufferSize: 4096, Progress: func(id, done, total int64) {
		if done > 100000 && sawTuple == nil {
			st, p, _ := c.TransferStatus(ctx, id)
			if st == model.TransferTransferingToCR && p != nil {
				sawTuple = p.Tuple()
			}
			cancel()
		}
	}})
	if !errors.Is(err, client.ErrTransferFailed) {
		t.Fatalf("cut transfer: %v", err)
	}
	if len(sawTuple) != 2 || sawTuple[0] != int64(len(big)+1) {
		t.Fatalf("progression tuple %v", sawTuple)
	}
	st, _, _ := c.TransferStatus(ctx, ti.ID)
	infos, _ := c.Transfers(ctx, ti.ID)
	if st != model.TransferOnClientSide || infos[0].Error == "" {
		t.Fatalf("after the cut: %s %+v", st, infos[0])
	}
	if _, err := os.Stat(ti.EnginePath); err == nil {
		t.Fatalf("a cut transfer left %s", ti.EnginePath)
	}
	if err := c.TransferFiles(ctx, []int64{ti.ID}, client.TransferOptions{}); err != nil {
		t.Fatalf("retry: %v", err)
	}
	got, err := os.ReadFile(filepath.Join(ti.EnginePath, "s", "big"))
	if err != nil || !bytes.Equal(got, big) {
		t.Fatalf("copied %d bytes: %v", len(got), err)
	}
	if st, p, _ := c.TransferStatus(ctx, ti.ID); st != model.TransferOnBothSides || p != nil {
		t.Fatalf("done: %s %v", st, p)
	}
	deferred, err := c.DeleteTransfer(ctx, ti.ID)
	if err != nil || deferred {
		t.Fatalf("delete: %v %v", deferred, err)
	}
	if _, err := os.Stat(filepath.Dir(ti.EnginePath)); !os.IsNotExist(err) {
		t.Fatalf("files of a deleted transfer left: %v", err)
	}
	if _, _, err := c.TransferStatus(ctx, ti.ID); !errors.Is(err, client.ErrUnknownObject) {
		t.Fatalf("deleted transfer: %v", err)
	}
	if _, err := c.RegisterTransfer(ctx, &model.FileTransfer{ClientPath: "relative"}, time.Time{}); !errors.Is(err, client.ErrInvalid) {
		t.Fatalf("relative client path: %v", err)
	}
}
