package cli

import (
	"context"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	ucli "github.com/urfave/cli/v3"

	"github.com/somaflow/somaflow/client"
	"github.com/somaflow/somaflow/privdir"
)

// traceColumns are the columns of a trace, one row per attempt, like
// Nextflow's trace file.
var traceColumns = []string{"workflow", "job", "name", "attempt", "backend", "drms_id", "submitted", "started", "ended",
	"status", "exit_status", "exit_value", "signal", "wall_s", "cpu_s", "max_rss_kib", "reason"}

// traceOptions are trace's argument and flags.
type traceOptions struct {
	*Factory
	ID   int64
	JSON bool
}

func traceCommand(f *Factory) *ucli.Command {
	return &ucli.Command{
		Name:      "trace",
		Usage:     "print one row per job attempt (times, outcome, resource usage) as TSV",
		ArgsUsage: "ID",
		Description: "Columns: " + strings.Join(traceColumns, ", ") + ".\n" +
			"Times are RFC3339 (UTC); empty where unknown. Only each job's latest attempt is kept.\n" +
			"`run --trace FILE` writes the same when the run ends.",
		Flags: []ucli.Flag{&ucli.BoolFlag{Name: "json", Usage: "print the rows as a JSON array of objects"}},
		Action: func(ctx context.Context, cmd *ucli.Command) error {
			id, err := workflowArg(cmd, 1, "trace needs exactly one workflow ID")
			if err != nil {
				return err
			}
			return traceRun(ctx, f.IO, &traceOptions{Factory: f, ID: id, JSON: cmd.Bool("json")})
		},
	}
}

func traceRun(ctx context.Context, s *IO, o *traceOptions) error {
	_, doc, err := o.workflowDoc(ctx, o.ID)
	if err != nil {
		return err
	}
	if o.JSON {
		rows := []map[string]string{}
		for _, r := range traceRows(doc) {
			m := map[string]string{}
			for i, col := range traceColumns {
				m[col] = r[i]
			}
			rows = append(rows, m)
		}
		return s.JSON(rows)
	}
	return writeTrace(s.Out, doc)
}

// traceRows are the trace's rows of a status document.
func traceRows(doc *client.WorkflowDoc) [][]string {
	str := func(p *string) string {
		if p == nil {
			return ""
		}
		return *p
	}
	num := func(p *float64) string {
		if p == nil {
			return ""
		}
		return strconv.FormatFloat(*p, 'f', -1, 64)
	}
	rows := make([][]string, 0, len(doc.Jobs))
	for _, j := range doc.Jobs {
		ev, rss := "", ""
		if j.ExitValue != nil {
			ev = strconv.Itoa(*j.ExitValue)
		}
		if j.ResourceUsage.MaxRSSKiB != nil {
			rss = strconv.FormatInt(*j.ResourceUsage.MaxRSSKiB, 10)
		}
		rows = append(rows, []string{doc.ID, j.ID, j.Name, strconv.Itoa(j.Attempt), doc.Backend, str(j.DRMSID),
			str(j.Submitted), str(j.Started), str(j.Ended), j.Status, str(j.ExitStatus), ev, str(j.Signal),
			num(j.ResourceUsage.WallS), num(j.ResourceUsage.CPUS), rss, str(j.Reason)})
	}
	return rows
}

// writeTrace writes a status document as a TSV trace: a header line, then
// one line per attempt; tabs and newlines inside values become spaces.
func writeTrace(w io.Writer, doc *client.WorkflowDoc) error {
	clean := strings.NewReplacer("\t", " ", "\n", " ", "\r", " ")
	var b strings.Builder
	b.WriteString(strings.Join(traceColumns, "\t") + "\n")
	for _, r := range traceRows(doc) {
		for i, v := range r {
			r[i] = clean.Replace(v)
		}
		b.WriteString(strings.Join(r, "\t") + "\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// saveTrace writes the trace of a run to path (0600, replaced atomically).
func saveTrace(path string, doc *client.WorkflowDoc) error {
	var b strings.Builder
	writeTrace(&b, doc)
	if err := privdir.WriteFileAtomic(path, []byte(b.String())); err != nil {
		return fmt.Errorf("%w: trace: %v", client.ErrUnavailable, err)
	}
	if err := os.Chmod(path, 0o644); err != nil {
		return fmt.Errorf("%w: trace: %v", client.ErrUnavailable, err)
	}
	return nil
}
