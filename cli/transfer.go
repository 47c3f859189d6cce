package cli

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	ucli "github.com/urfave/cli/v3"

	"github.com/somaflow/somaflow/client"
)

func transferCommand(f *Factory) *ucli.Command {
	s := f.IO
	move := func(in bool) ucli.ActionFunc {
		return func(ctx context.Context, cmd *ucli.Command) error {
			verb := map[bool]string{true: "transfer in", false: "transfer out"}[in]
			id, err := workflowArg(cmd, 1, verb+" needs exactly one WORKFLOW_ID")
			if err != nil {
				return err
			}
			return transferMove(ctx, s, f, id, in, cmd.Bool("json"))
		}
	}
	jsonFlag := &ucli.BoolFlag{Name: "json", Usage: "print the result as JSON"}
	return &ucli.Command{
		Name:  "transfer",
		Usage: "move a workflow's files to and from the computing resource; list, show and delete transfers",
		Description: "A workflow's FileTransfers are copied to the resource's transfer dir (STATE_DIR/transfers) when\n" +
			"transfers are staged (stage_transfers: true in the configuration, or a remote --resource); jobs\n" +
			"wait until their input transfers are there. `transfer in ID` sends the inputs of workflow ID,\n" +
			"`transfer out ID` brings back the outputs its jobs made. A transfer cut in the middle leaves\n" +
			"its status as it was, with the error recorded: run the command again. Statuses are\n" +
			"soma-workflow's (on client side, transfering client->cr, on both sides, ...). See docs/transfers.md.",
		Commands: []*ucli.Command{
			{
				Name: "in", Usage: "send the input files of a workflow to the computing resource", ArgsUsage: "WORKFLOW_ID",
				Flags:  []ucli.Flag{jsonFlag},
				Action: move(true),
			},
			{
				Name: "out", Usage: "bring back the output files a workflow's jobs made", ArgsUsage: "WORKFLOW_ID",
				Flags:  []ucli.Flag{jsonFlag},
				Action: move(false),
			},
			{
				Name: "list", Usage: "list transfers (all, or a workflow's with --workflow)",
				Flags: []ucli.Flag{jsonFlag, &ucli.Int64Flag{Name: "workflow", Usage: "only the transfers of workflow `ID`"}},
				Action: func(ctx context.Context, cmd *ucli.Command) error {
					if cmd.Args().Len() != 0 {
						return usagef("transfer list takes no argument (--workflow ID selects a workflow)")
					}
					c, done, err := f.openTransfers(ctx)
					if err != nil {
						return err
					}
					defer done()
					var ts []client.TransferInfo
					if id := cmd.Int64("workflow"); id != 0 {
						if id < 0 {
							return usagef("--workflow %d is not a workflow id", id)
						}
						ts, err = c.WorkflowTransfers(ctx, id)
					} else {
						ts, err = c.Transfers(ctx)
					}
					if err != nil {
						return err
					}
					return printTransfers(s, cmd.Bool("json"), ts)
				},
			},
			{
				Name: "status", Usage: "show a transfer's status and progression", ArgsUsage: "TRANSFER_ID",
				Flags: []ucli.Flag{jsonFlag},
				Action: f.onTransfer("transfer status", func(ctx context.Context, c transferAPI, id int64, asJSON bool) error {
					ts, err := c.Transfers(ctx, id)
					if err != nil {
						return err
					}
					if asJSON {
						return s.JSON(client.TransferDocOf(&ts[0]))
					}
					return printTransfers(s, false, ts)
				}),
			},
			{
				Name: "delete", Usage: "delete a transfer and its files on the computing resource (deferred while jobs reference it)", ArgsUsage: "TRANSFER_ID",
				Flags: []ucli.Flag{jsonFlag},
				Action: f.onTransfer("transfer delete", func(ctx context.Context, c transferAPI, id int64, asJSON bool) error {
					deferred, err := c.DeleteTransfer(ctx, id)
					if err != nil {
						return err
					}
					if asJSON {
						return s.JSON(map[string]any{"id": strconv.FormatInt(id, 10), "deferred": deferred})
					}
					if deferred {
						fmt.Fprintf(s.Out, "transfer %d: jobs of workflow still reference it: it will be deleted with them\n", id)
					} else {
						fmt.Fprintf(s.Out, "transfer %d deleted\n", id)
					}
					return nil
				}),
			},
		},
	}
}

// onTransfer makes the action of a transfer subcommand that takes one
// TRANSFER_ID: it parses it, opens the transfers (here or on the
// resource) and runs do.
func (f *Factory) onTransfer(verb string, do func(ctx context.Context, c transferAPI, id int64, asJSON bool) error) ucli.ActionFunc {
	return func(ctx context.Context, cmd *ucli.Command) error {
		id, err := transferArg(cmd, verb)
		if err != nil {
			return err
		}
		c, done, err := f.openTransfers(ctx)
		if err != nil {
			return err
		}
		defer done()
		return do(ctx, c, id, cmd.Bool("json"))
	}
}

func transferArg(cmd *ucli.Command, verb string) (int64, error) {
	if cmd.Args().Len() != 1 {
		return 0, usagef("%s needs exactly one TRANSFER_ID", verb)
	}
	id, err := strconv.ParseInt(cmd.Args().First(), 10, 64)
	if err != nil || id <= 0 {
		return 0, usagef("%q is not a transfer id (a positive integer)", cmd.Args().First())
	}
	return id, nil
}

func transferMove(ctx context.Context, s *IO, f *Factory, id int64, in, asJSON bool) error {
	c, done, err := f.openTransfers(ctx)
	if err != nil {
		return err
	}
	defer done()
	if err := moveFiles(ctx, s, c, id, in); err != nil {
		return err
	}
	ts, err := c.WorkflowTransfers(ctx, id)
	if err != nil {
		return err
	}
	return printTransfers(s, asJSON, ts)
}

// transferAPI is what the transfer commands use: a local client or a
// remote resource.
type transferAPI interface {
	Transfers(ctx context.Context, ids ...int64) ([]client.TransferInfo, error)
	WorkflowTransfers(ctx context.Context, id int64) ([]client.TransferInfo, error)
	DeleteTransfer(ctx context.Context, id int64) (bool, error)
	TransferInputFiles(ctx context.Context, id int64, opts client.TransferOptions) error
	TransferOutputFiles(ctx context.Context, id int64, opts client.TransferOptions) error
	Close() error
}

// openTransfers opens the resource --resource names, else the local
// state; done closes what it opened (the local client is the factory's).
func (f *Factory) openTransfers(ctx context.Context) (api transferAPI, done func() error, err error) {
	if name := f.global.resource; name != "" {
		r, err := f.dialResource(ctx, name)
		if err != nil {
			return nil, nil, err
		}
		return r, r.Close, nil
	}
	c, err := f.Client(ctx)
	return c, func() error { return nil }, err
}

// moveFiles sends a workflow's inputs (in) or brings back its outputs,
// with progress (bytes done of total) on a terminal.
func moveFiles(ctx context.Context, s *IO, c transferAPI, id int64, in bool) error {
	opts, stop := progressOptions(s)
	defer stop()
	if in {
		return c.TransferInputFiles(ctx, id, opts)
	}
	return c.TransferOutputFiles(ctx, id, opts)
}

// progressOptions show a transfer's progress on a terminal.
func progressOptions(s *IO) (client.TransferOptions, func()) {
	opts := client.TransferOptions{}
	stop := func() {}
	if s.Progress() {
		var mu sync.Mutex
		last := time.Time{}
		opts.Progress = func(tid, done, total int64) {
			mu.Lock()
			defer mu.Unlock()
			if done < total && time.Since(last) < 100*time.Millisecond {
				return
			}
			last = time.Now()
			fmt.Fprintf(s.ErrOut, "\r\x1b[Ktransfer %d: %s of %s", tid, byteSize(done), byteSize(total))
		}
		stop = func() { fmt.Fprint(s.ErrOut, "\r\x1b[K") }
	}
	return opts, stop
}

func byteSize(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

func printTransfers(s *IO, asJSON bool, ts []client.TransferInfo) error {
	if asJSON {
		docs := make([]client.TransferDoc, len(ts))
		for i := range ts {
			docs[i] = client.TransferDocOf(&ts[i])
		}
		return s.JSON(docs)
	}
	t := s.newTable()
	fmt.Fprintln(t, "ID\tWORKFLOW\tSTATUS\tCLIENT PATH\tENGINE PATH\tNOTE")
	for _, x := range ts {
		wf := "-"
		if x.WorkflowID != 0 {
			wf = strconv.FormatInt(x.WorkflowID, 10)
		}
		var note []string
		if x.Output {
			note = append(note, "output")
		}
		if p := x.Progression; p != nil && (x.Status == "transfering client->cr" || x.Status == "transfering cr->client") {
			note = append(note, fmt.Sprintf("%s of %s", byteSize(p.Done), byteSize(p.Total)))
		}
		if x.Error != "" {
			note = append(note, "last transfer failed: "+x.Error)
		}
		if x.DeletePending {
			note = append(note, "delete pending")
		}
		fmt.Fprintf(t, "%d\t%s\t%s\t%s\t%s\t%s\n", x.ID, wf, x.Status, printable(x.ClientPath), printable(x.EnginePath), strings.Join(note, "; "))
	}
	return t.Flush()
}

// runInputs sends the inputs of a workflow run starts (nothing is copied
// unless its transfers are staged); when that fails, the workflow is
// stopped, since its jobs would wait for them forever.
func runInputs(ctx context.Context, s *IO, c *client.Client, id int64) error {
	err := moveFiles(ctx, s, c, id, true)
	if err != nil {
		if _, serr := c.StopWorkflow(context.WithoutCancel(ctx), id); serr != nil {
			fmt.Fprintf(s.ErrOut, "somaflow: stop workflow %d: %v\n", id, serr)
		}
	}
	return err
}

// runOutputs brings back the outputs of a workflow run finished. An output
// that cannot come back because a job did not succeed (it never made it)
// is a warning: the run's exit status already says a job failed.
func runOutputs(ctx context.Context, s *IO, c *client.Client, id int64) error {
	err := moveFiles(ctx, s, c, id, false)
	if err == nil {
		return nil
	}
	if doc, derr := c.WorkflowElementsStatus(ctx, id); derr == nil && failedJobs(doc) > 0 {
		fmt.Fprintf(s.ErrOut, "somaflow: warning: outputs not all brought back: %v\n", err)
		return nil
	}
	return err
}
