package cli

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"

	ucli "github.com/urfave/cli/v3"

	"github.com/somaflow/somaflow/model"
)

// dotOptions are dot's argument: a stored workflow's ID or a FILE.
type dotOptions struct {
	*Factory
	Arg string
}

func dotCommand(f *Factory) *ucli.Command {
	return &ucli.Command{
		Name:      "dot",
		Usage:     "print a workflow as a Graphviz graph (a stored workflow, coloured by status, or a FILE)",
		ArgsUsage: "ID|FILE",
		Action: func(ctx context.Context, cmd *ucli.Command) error {
			if cmd.Args().Len() != 1 {
				return usagef("dot needs a workflow ID or FILE")
			}
			return dotRun(ctx, f.IO, &dotOptions{Factory: f, Arg: cmd.Args().First()})
		},
	}
}

func dotRun(ctx context.Context, s *IO, o *dotOptions) error {
	var w *model.Workflow
	var status []string
	if id, err := strconv.ParseInt(o.Arg, 10, 64); err == nil && id > 0 {
		c, doc, err := o.workflowDoc(ctx, id)
		if err != nil {
			return err
		}
		if w, err = c.Workflow(ctx, id); err != nil {
			return err
		}
		for _, j := range doc.Jobs {
			st := j.Status
			if model.JobEnded(j.Status) && !model.Succeeded(j.Status, deref(j.ExitStatus), j.ExitValue) {
				st = "failed"
			}
			status = append(status, st)
		}
	} else {
		var err error
		if w, _, err = readWorkflow(s, o.Arg); err != nil {
			return err
		}
	}
	writeDot(s.Out, w, status)
	return nil
}

var dotColors = map[string]string{
	model.JobDone: "palegreen", "failed": "salmon", model.JobRunning: "lightskyblue",
	model.JobQueuedActive: "khaki", model.JobSubmissionPending: "khaki",
}

// writeDot writes jobs as nodes, groups as clusters and dependencies as
// edges (a group end is drawn to or from the cluster's first job).
func writeDot(out io.Writer, w *model.Workflow, status []string) {
	q := strconv.Quote
	fmt.Fprintln(out, "digraph workflow {")
	fmt.Fprintln(out, "  node [shape=box, style=filled, fillcolor=white];")
	inGroup := map[int]bool{}
	var cluster func(gi int, indent string)
	cluster = func(gi int, indent string) {
		g := w.Groups[gi]
		fmt.Fprintf(out, "%ssubgraph cluster_%d {\n%s  label=%s;\n", indent, gi, indent, q(g.Name))
		for _, e := range g.Elements {
			if e.Kind == model.GroupElement {
				cluster(e.Index, indent+"  ")
			} else {
				inGroup[e.Index] = true
				fmt.Fprintf(out, "%s  j%d;\n", indent, e.Index)
			}
		}
		fmt.Fprintf(out, "%s}\n", indent)
	}
	for _, e := range w.Root {
		if e.Kind == model.GroupElement {
			cluster(e.Index, "  ")
		}
	}
	for i, j := range w.Jobs {
		attrs := []string{"label=" + q(w.JobLabel(i))}
		if j.IsBarrier() {
			attrs = append(attrs, "shape=point")
		}
		if i < len(status) {
			if c, ok := dotColors[status[i]]; ok {
				attrs = append(attrs, "fillcolor="+c)
			}
		}
		fmt.Fprintf(out, "  j%d [%s];\n", i, strings.Join(attrs, ", "))
	}
	node := func(e model.Element, first bool) (string, string) {
		if e.Kind == model.JobElement {
			return fmt.Sprintf("j%d", e.Index), ""
		}
		j := firstJob(w, e.Index)
		if j < 0 {
			return "", ""
		}
		side := "lhead"
		if !first {
			side = "ltail"
		}
		return fmt.Sprintf("j%d", j), fmt.Sprintf(" [%s=cluster_%d]", side, e.Index)
	}
	for _, d := range w.AllDependencies() {
		from, fa := node(d.From, false)
		to, ta := node(d.To, true)
		if from == "" || to == "" {
			continue
		}
		attr := fa
		if attr == "" {
			attr = ta
		}
		fmt.Fprintf(out, "  %s -> %s%s;\n", from, to, attr)
	}
	fmt.Fprintln(out, "  compound=true;")
	fmt.Fprintln(out, "}")
}

func firstJob(w *model.Workflow, gi int) int {
	for _, e := range w.Groups[gi].Elements {
		if e.Kind == model.JobElement {
			return e.Index
		}
		if j := firstJob(w, e.Index); j >= 0 {
			return j
		}
	}
	return -1
}
