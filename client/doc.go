package client

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strconv"
	"time"

	"github.com/somaflow/somaflow/engine"
	"github.com/somaflow/somaflow/model"
	"github.com/somaflow/somaflow/service"
	"github.com/somaflow/somaflow/store"
)

// WorkflowDoc is the status document of a workflow: what `--json` prints for
// run, status and wait, and what WorkflowElementsStatus returns. Its fields
// are documented in the README; a golden-file test keeps it stable.
type WorkflowDoc struct {
	WorkflowHeader
	// BackendUnreachable is set while the engine cannot reach the
	// workflow's backend (jobs then wait, their reason says so).
	BackendUnreachable *ProblemDoc `json:"backend_unreachable"`
	// EngineProblem is set while the running engine cannot record its
	// progress (its database cannot be written: a full disk); it retries.
	EngineProblem *ProblemDoc `json:"engine_problem"`
	Jobs          []JobDoc    `json:"jobs"`
	// Transfers and TemporaryPaths are the file transfers and temporary
	// paths of workflow_elements_status ([] when it has none).
	Transfers      []TransferDoc `json:"transfers"`
	TemporaryPaths []TempPathDoc `json:"temporary_paths"`
}

// TransferDoc is one file transfer of the status document: soma-workflow's
// (transfer id, (status, progression, engine path, client path, client
// paths)), with whether a job makes it, why its last transfer failed, and
// whether its deletion waits for its workflow.
type TransferDoc struct {
	ID          string   `json:"id"`
	Name        string   `json:"name"`
	Status      string   `json:"status"`
	Progression []any    `json:"progression"`
	EnginePath  string   `json:"engine_path"`
	ClientPath  string   `json:"client_path"`
	ClientPaths []string `json:"client_paths"`
	Output      bool     `json:"output"`
	// Error says why the last transfer failed (it can be started again).
	Error         *string `json:"error"`
	DeletePending bool    `json:"delete_pending"`
}

// TempPathDoc is one temporary path of the status document: soma-workflow's
// (temp path id, engine path, status); the status is "on computing
// resource side" while the path exists, "do not exist" otherwise.
type TempPathDoc struct {
	ID          string `json:"id"`
	Name        string `json:"name"`
	EnginePath  string `json:"engine_path"`
	Status      string `json:"status"`
	IsDirectory bool   `json:"is_directory"`
}

// TransferDocOf is the status document's entry of a transfer.
func TransferDocOf(t *TransferInfo) TransferDoc {
	d := TransferDoc{ID: strconv.FormatInt(t.ID, 10), Name: t.Name, Status: t.Status, EnginePath: t.EnginePath,
		ClientPath: t.ClientPath, ClientPaths: t.ClientPaths, Output: t.Output, Error: nonEmpty(t.Error), DeletePending: t.DeletePending}
	if transfering(t.Status) {
		d.Progression = t.Progression.Tuple()
	}
	return d
}

// WorkflowHeader is what the status document says of the workflow itself,
// and what `list --json` prints for each workflow: times in UTC (RFC3339),
// null where unset.
type WorkflowHeader struct {
	ID         string  `json:"id"`
	Name       *string `json:"name"`
	Status     string  `json:"status"`
	Backend    string  `json:"backend"`
	Queue      *string `json:"queue"`
	Submitted  *string `json:"submitted"`
	Expiration *string `json:"expiration"`
}

// Header is the workflow's part of the status document.
func (w WorkflowInfo) Header() WorkflowHeader {
	return WorkflowHeader{ID: strconv.FormatInt(w.ID, 10), Name: w.Name, Status: w.Status, Backend: w.Backend,
		Queue: nonEmpty(w.Queue), Submitted: timeText(&w.Submitted), Expiration: timeText(&w.Expiration)}
}

// ProblemDoc says since when something keeps the engine from progressing:
// a backend it cannot reach (in the DRMS's own words), or its own store.
type ProblemDoc struct {
	Since   string `json:"since"`
	Message string `json:"message"`
}

// JobDoc is one job of the status document (also JobTerminationStatus).
type JobDoc struct {
	ID            string   `json:"id"`
	Name          string   `json:"name"`
	Status        string   `json:"status"`
	ExitStatus    *string  `json:"exit_status"`
	ExitValue     *int     `json:"exit_value"`
	Signal        *string  `json:"signal"`
	Reason        *string  `json:"reason"`
	Attempt       int      `json:"attempt"`
	DRMSID        *string  `json:"drms_id"`
	Submitted     *string  `json:"submitted"`
	Started       *string  `json:"started"`
	Ended         *string  `json:"ended"`
	Stdout        *string  `json:"stdout"`
	Stderr        *string  `json:"stderr"`
	ResourceUsage UsageDoc `json:"resource_usage"`
}

// UsageDoc is a job's resource usage; null where unknown.
type UsageDoc struct {
	WallS     *float64          `json:"wall_s"`
	CPUS      *float64          `json:"cpu_s"`
	MaxRSSKiB *int64            `json:"max_rss_kib"`
	Raw       map[string]string `json:"raw"`
}

// WorkflowElementsStatus returns the status document of a workflow: its
// status and every job's status, outcome, DRMS id, times, files and usage.
func (c *Client) WorkflowElementsStatus(ctx context.Context, id int64) (*WorkflowDoc, error) {
	d, err := c.docWithoutJobs(ctx, id)
	if err != nil {
		return nil, err
	}
	// Each job goes straight into the document (no slice of rows first).
	err = c.st.EachJobState(ctx, id, func(n int) { d.Jobs = make([]JobDoc, n) }, func(j *store.Job) { d.Jobs[j.Index] = jobDoc(j) })
	if err != nil {
		return nil, err
	}
	return d, nil
}

// WorkflowHeader is the status document of workflow id without its jobs
// (Jobs is empty): with JobCounts, what a summary of a workflow of any
// size needs; EachJobDoc reads the jobs it wants.
func (c *Client) WorkflowHeader(ctx context.Context, id int64) (*WorkflowDoc, error) {
	return c.docWithoutJobs(ctx, id)
}

// EachJobDoc gives put the jobs of workflow id one at a time, in
// definition order, as its status document has them, in memory that does
// not grow with the workflow. An error from put stops the reading and is
// returned.
func (c *Client) EachJobDoc(ctx context.Context, id int64, put func(JobDoc) error) error {
	return c.st.EachJobStateInOrder(ctx, id, func(j *store.Job) error { return put(jobDoc(j)) })
}

// EachUnsuccessfulJobDoc gives put, as EachJobDoc does, only the jobs of
// workflow id that ended without succeeding and those that succeeded with
// a reason (a log that could not be kept), found by the database.
func (c *Client) EachUnsuccessfulJobDoc(ctx context.Context, id int64, put func(JobDoc) error) error {
	return c.st.EachUnsuccessfulJob(ctx, id, func(j *store.Job) error { return put(jobDoc(j)) })
}

// JobCount is how many jobs of a workflow share one outcome: a status, an
// exit status ("" for none) and an exit value (nil for none); WithReason
// of them have a reason.
type JobCount = store.JobCount

// JobCounts counts the jobs of workflow id by outcome in the database,
// without reading them one by one, and gives the latest end of any of
// them, to the second (the zero time when none ended).
func (c *Client) JobCounts(ctx context.Context, id int64) ([]JobCount, time.Time, error) {
	counts, last, err := c.st.CountJobs(ctx, id)
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	return counts, last, nil
}

// docWithoutJobs is the status document of workflow id but its jobs.
func (c *Client) docWithoutJobs(ctx context.Context, id int64) (*WorkflowDoc, error) {
	row, err := c.st.GetWorkflow(ctx, id, false)
	if err != nil {
		return nil, err
	}
	d := &WorkflowDoc{WorkflowHeader: WorkflowInfo{ID: row.ID, Name: row.Name, Status: row.Status, Backend: row.Backend,
		Queue: row.Queue, Submitted: row.Submitted, Expiration: row.Expiration}.Header(), Jobs: []JobDoc{}}
	if d.BackendUnreachable, err = c.BackendUnreachable(ctx, row.Backend); err != nil {
		return nil, err
	}
	d.EngineProblem = c.EngineProblem()
	ts, err := c.st.Transfers(ctx, id)
	if err != nil {
		return nil, err
	}
	d.Transfers = make([]TransferDoc, len(ts))
	for i := range ts {
		ti := transferInfo(&ts[i])
		d.Transfers[i] = TransferDocOf(&ti)
	}
	tps, err := c.st.TempPaths(ctx, id)
	if err != nil {
		return nil, err
	}
	d.TemporaryPaths = make([]TempPathDoc, len(tps))
	for i, tp := range tps {
		p := engine.TempPathFor(c.st.Dir, id, i, tp.Suffix)
		st := model.TransferDoNotExist
		if _, err := os.Stat(p); err == nil {
			st = model.TransferOnCRSide
		}
		d.TemporaryPaths[i] = TempPathDoc{ID: strconv.Itoa(i), Name: tp.Name, EnginePath: p, Status: st, IsDirectory: tp.IsDirectory}
	}
	return d, nil
}

// WriteWorkflowElementsStatus writes the status document of workflow id
// to w as JSON, job by job as the store reads them: the same bytes as
// encoding WorkflowElementsStatus's document (without HTML escaping; with
// indent, two spaces as json.MarshalIndent), in memory that does not grow
// with the number of jobs. A trailing newline ends it.
func (c *Client) WriteWorkflowElementsStatus(ctx context.Context, id int64, w io.Writer, indent bool) error {
	bw := bufio.NewWriterSize(w, 1<<16)
	if err := c.writeDoc(ctx, id, bw, "", indent); err != nil {
		return err
	}
	bw.WriteByte('\n')
	return bw.Flush()
}

// DocArray writes status documents to w as one JSON array, one at a time
// as they are added, each streamed job by job: the same bytes as encoding
// the slice of the documents at the moments they were added (`wait --json`
// adds each workflow's when its wait is over).
type DocArray struct {
	c      *Client
	bw     *bufio.Writer
	indent bool
	n      int
}

// NewDocArray returns a DocArray writing to w, indented as
// json.MarshalIndent with two spaces when indent is set.
func (c *Client) NewDocArray(w io.Writer, indent bool) *DocArray {
	return &DocArray{c: c, bw: bufio.NewWriterSize(w, 1<<16), indent: indent}
}

// Add writes the status document of workflow id as the array's next
// element, and flushes it.
func (a *DocArray) Add(ctx context.Context, id int64) error {
	if a.n == 0 {
		a.bw.WriteByte('[')
	} else {
		a.bw.WriteByte(',')
	}
	if a.indent {
		a.bw.WriteString("\n  ")
	}
	a.n++
	if err := a.c.writeDoc(ctx, id, a.bw, "  ", a.indent); err != nil {
		return err
	}
	return a.bw.Flush()
}

// Close ends the array and its line: null when nothing was added, as a
// nil slice encodes.
func (a *DocArray) Close() error {
	switch {
	case a.n == 0:
		a.bw.WriteString("null\n")
	case a.indent:
		a.bw.WriteString("\n]\n")
	default:
		a.bw.WriteString("]\n")
	}
	return a.bw.Flush()
}

// writeDoc writes the status document of workflow id to bw, without a
// trailing newline; with indent, each line after the first begins with
// prefix (the document is an element of an array: "  ").
func (c *Client) writeDoc(ctx context.Context, id int64, bw *bufio.Writer, prefix string, indent bool) error {
	d, err := c.docWithoutJobs(ctx, id)
	if err != nil {
		return err
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if indent {
		enc.SetIndent(prefix, "  ")
	}
	if err := enc.Encode(d); err != nil {
		return err
	}
	// The document with no jobs, cut where they go: the key "jobs" can
	// only appear as the key (quotes in values are escaped).
	empty := `"jobs":[]`
	if indent {
		empty = `"jobs": []`
	}
	head, tail, ok := bytes.Cut(bytes.TrimSuffix(buf.Bytes(), []byte("\n")), []byte(empty))
	if !ok {
		return fmt.Errorf("status document of workflow %d: no jobs key", id)
	}
	bw.Write(head)
	bw.WriteString(empty[:len(empty)-1]) // up to and including '['
	tail = bytes.Clone(tail)
	buf.Reset()
	if indent {
		enc.SetIndent(prefix+"    ", "  ")
	}
	n := 0
	err = c.EachJobDoc(ctx, id, func(j JobDoc) error {
		switch {
		case n > 0 && indent:
			bw.WriteString(",\n" + prefix + "    ")
		case n > 0:
			bw.WriteByte(',')
		case indent:
			bw.WriteString("\n" + prefix + "    ")
		}
		n++
		buf.Reset()
		if err := enc.Encode(j); err != nil {
			return err
		}
		_, err := bw.Write(bytes.TrimSuffix(buf.Bytes(), []byte("\n")))
		return err
	})
	if err != nil {
		return err
	}
	if n > 0 && indent {
		bw.WriteString("\n" + prefix + "  ")
	}
	bw.WriteByte(']')
	_, err = bw.Write(tail)
	return err
}

// BackendUnreachable tells whether the engine cannot reach a backend now:
// since when and why, or nil.
func (c *Client) BackendUnreachable(ctx context.Context, backend string) (*ProblemDoc, error) {
	ps, err := c.st.BackendProblems(ctx)
	if err != nil {
		return nil, err
	}
	p, ok := ps[backend]
	if !ok {
		return nil, nil
	}
	return &ProblemDoc{Since: p.Since.UTC().Format(time.RFC3339), Message: p.Message}, nil
}

// EngineProblem tells why the running engine cannot record its progress
// now (a full disk under the state dir), or nil: no problem, or no engine.
// It reads the engine's lock file, which needs no new space.
func (c *Client) EngineProblem() *ProblemDoc {
	p := service.ReadProblem(c.st.Dir)
	if p == nil {
		return nil
	}
	return &ProblemDoc{Since: p.Since.UTC().Format(time.RFC3339), Message: p.Message}
}

func jobDoc(j *store.Job) JobDoc {
	d := JobDoc{
		ID: strconv.FormatInt(j.ID, 10), Name: j.Name, Status: j.Status, ExitStatus: j.ExitStatus,
		ExitValue: j.ExitValue, Signal: j.Signal, Reason: j.Reason, Attempt: j.Attempt,
		DRMSID: nonEmpty(j.DRMSID), Submitted: timeText(j.Submitted), Started: timeText(j.Started),
		Ended: timeText(j.Ended), Stdout: nonEmpty(j.Stdout), Stderr: nonEmpty(j.Stderr),
		ResourceUsage: UsageDoc{WallS: j.WallS, CPUS: j.CPUS, MaxRSSKiB: j.MaxRSSKiB, Raw: map[string]string{}},
	}
	if len(j.UsageRaw) > 0 {
		_ = json.Unmarshal(j.UsageRaw, &d.ResourceUsage.Raw)
	}
	return d
}

func nonEmpty(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func timeText(t *time.Time) *string {
	if t == nil || t.IsZero() {
		return nil
	}
	s := t.UTC().Format(time.RFC3339)
	return &s
}
