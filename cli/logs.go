package cli

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	ucli "github.com/urfave/cli/v3"

	"github.com/somaflow/somaflow/client"
	"github.com/somaflow/somaflow/model"
)

// logsOptions are logs's arguments and flags.
type logsOptions struct {
	*Factory
	ID                  int64
	Job                 string
	JSON, Paths         bool
	StdoutOnly, ErrOnly bool
	Tail, Attempt       int
	Follow              bool
}

func logsCommand(f *Factory) *ucli.Command {
	return &ucli.Command{
		Name:      "logs",
		Usage:     "show a job's stdout and stderr (JOB is a job id or name)",
		ArgsUsage: "ID JOB",
		Flags: []ucli.Flag{
			&ucli.BoolFlag{Name: "json", Usage: "print paths and contents as JSON"},
			&ucli.BoolFlag{Name: "paths", Usage: "print the files' paths only"},
			&ucli.BoolFlag{Name: "stdout", Usage: "stdout only"},
			&ucli.BoolFlag{Name: "stderr", Usage: "stderr only"},
			&ucli.IntFlag{Name: "tail", Usage: "only the last N lines of each file (0: all)"},
			&ucli.BoolFlag{Name: "follow", Aliases: []string{"f"}, Usage: "then print what is appended until the job ended (as tail -f)"},
			&ucli.IntFlag{Name: "attempt", Usage: "an earlier attempt's logs (a job with retries; default: the latest)"},
		},
		Action: func(ctx context.Context, cmd *ucli.Command) error {
			id, err := workflowArg(cmd, 2, "logs needs a workflow ID and a JOB (id or name)")
			if err != nil {
				return err
			}
			o := &logsOptions{Factory: f, ID: id, Job: cmd.Args().Get(1), JSON: cmd.Bool("json"), Paths: cmd.Bool("paths"),
				StdoutOnly: cmd.Bool("stdout"), ErrOnly: cmd.Bool("stderr"), Tail: int(cmd.Int("tail")), Attempt: int(cmd.Int("attempt")),
				Follow: cmd.Bool("follow")}
			if o.Tail < 0 {
				return usagef("--tail must be 0 or more, got %d", o.Tail)
			}
			if o.Follow && (o.JSON || o.Paths) {
				return usagef("--follow prints the logs as they grow: not with --json or --paths")
			}
			return logsRun(ctx, f.IO, o)
		},
	}
}

func logsRun(ctx context.Context, s *IO, o *logsOptions) error {
	c, doc, err := o.workflowDoc(ctx, o.ID)
	if err != nil {
		return err
	}
	tail := o.Tail
	job, err := findJob(doc, o.Job)
	if err != nil {
		return err
	}
	if k := o.Attempt; k != 0 {
		if job, err = attemptLogs(job, k); err != nil {
			return err
		}
	}
	follow := o.Follow
	type stream struct {
		name string
		path *string
	}
	var streams []stream
	if !o.ErrOnly {
		streams = append(streams, stream{"stdout", job.Stdout})
	}
	if !o.StdoutOnly && (job.Stderr == nil || job.Stdout == nil || *job.Stderr != *job.Stdout) {
		streams = append(streams, stream{"stderr", job.Stderr})
	}
	if o.JSON {
		out := map[string]any{"job": job.ID, "name": job.Name}
		for _, st := range streams {
			out[st.name+"_path"] = st.path
			if st.path != nil && !o.Paths {
				var b strings.Builder
				cut, err := copyLog(&b, *st.path, tail, maxJSONLog)
				if err == nil {
					out[st.name] = b.String()
				} else {
					out[st.name] = nil
				}
				if cut {
					out[st.name+"_truncated"] = true
				}
			}
		}
		return s.JSON(out)
	}
	var names, paths []string
	var offsets []int64
	for _, st := range streams {
		if o.Paths {
			fmt.Fprintf(s.Out, "%s\t%s\n", st.name, deref(st.path))
			continue
		}
		if len(streams) > 1 {
			fmt.Fprintf(s.Out, "==> %s (%s) <==\n", st.name, deref(st.path))
		}
		if st.path == nil {
			continue
		}
		end, _, err := copyLogFrom(s.Out, *st.path, -1, tail, -1)
		if err != nil {
			fmt.Fprintf(s.ErrOut, "somaflow: %s: %v\n", st.name, err)
			continue
		}
		names, paths, offsets = append(names, st.name), append(paths, *st.path), append(offsets, end)
	}
	if !follow {
		return nil
	}
	jobID, _ := strconv.ParseInt(job.ID, 10, 64)
	for len(paths) == 0 && !model.JobEnded(job.Status) {
		// Not submitted yet: its files are known once it is.
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(followInterval):
		}
		if job, err = c.JobTerminationStatus(ctx, jobID); err != nil {
			return err
		}
		for _, p := range []struct {
			name string
			path *string
			skip bool
		}{{"stdout", job.Stdout, o.ErrOnly}, {"stderr", job.Stderr, o.StdoutOnly || (job.Stdout != nil && job.Stderr != nil && *job.Stdout == *job.Stderr)}} {
			if p.path != nil && !p.skip {
				names, paths, offsets = append(names, p.name), append(paths, *p.path), append(offsets, 0)
			}
		}
	}
	return followLogs(ctx, s, c, jobID, names, paths, offsets)
}

// attemptLogs is the job with the log paths of its attempt k: the engine
// names its own log files by job and attempt (JOB.ATTEMPT.out); a job that
// writes to its own stdout_file or stderr_file has one file for all.
func attemptLogs(job *client.JobDoc, k int) (*client.JobDoc, error) {
	if k < 1 || k > job.Attempt {
		return nil, usagef("job %s has had %d attempt(s): --attempt %d does not exist", job.ID, job.Attempt, k)
	}
	j := *job
	for _, p := range []**string{&j.Stdout, &j.Stderr} {
		if *p == nil {
			continue
		}
		dir, base := filepath.Split(**p)
		for _, ext := range []string{".out", ".err"} {
			if base == fmt.Sprintf("%s.%d%s", job.ID, job.Attempt, ext) {
				path := filepath.Join(dir, fmt.Sprintf("%s.%d%s", job.ID, k, ext))
				*p = &path
				break
			}
			if ext == ".err" && k != job.Attempt {
				return nil, usagef("job %s writes to its own file %s: every attempt's output is there", job.ID, **p)
			}
		}
	}
	return &j, nil
}

// findJob finds a job of a status document by id or name.
func findJob(doc *client.WorkflowDoc, want string) (*client.JobDoc, error) {
	var job *client.JobDoc
	for i, j := range doc.Jobs {
		if j.ID == want || j.Name == want {
			if job != nil && j.Name == want && job.Name == want {
				return nil, usagef("several jobs of workflow %s are named %q: use the job id", doc.ID, want)
			}
			job = &doc.Jobs[i]
		}
	}
	if job == nil {
		return nil, fmt.Errorf("workflow %s has no job %q: %w", doc.ID, want, client.ErrUnknownObject)
	}
	return job, nil
}

// readLog reads a job's log file. The engine creates its own log files
// when a job first writes to them, so a missing file is an empty log.
// maxJSONLog bounds what `logs --json` puts of one file in the document
// (its end; "<stream>_truncated" says so).
const maxJSONLog = 8 << 20

// copyLog streams a job's log file to w in bounded memory: the whole file,
// or its last tail lines (tail > 0), and at most its last limit bytes
// (limit >= 0), telling whether it cut. A missing file is empty (a job that
// printed nothing leaves none); a file that is not a regular one (a device
// such as /dev/zero, a FIFO) is an error, not an endless read.
func copyLog(w io.Writer, path string, tail int, limit int64) (cut bool, err error) {
	_, cut, err = copyLogFrom(w, path, -1, tail, limit)
	return cut, err
}

// copyLogFrom is copyLog from offset from (from < 0: the start, or the
// last tail lines), and returns the offset where it stopped: the file's
// size when it looked (what is appended meanwhile waits for the next look).
// A file shorter than from was truncated: it is shown from its start.
func copyLogFrom(w io.Writer, path string, from int64, tail int, limit int64) (end int64, cut bool, err error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return max(from, 0), false, nil
	}
	if err != nil {
		return from, false, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return from, false, err
	}
	if !fi.Mode().IsRegular() {
		return from, false, fmt.Errorf("%s is not a regular file (%v): not shown", path, fi.Mode().Type())
	}
	size := fi.Size()
	start := from
	switch {
	case from > size:
		start = 0
	case from < 0 && tail > 0:
		if start, err = tailStart(f, size, tail); err != nil {
			return from, false, err
		}
	case from < 0:
		start = 0
	}
	if limit >= 0 && size-start > limit {
		start, cut = size-limit, true
	}
	if _, err := f.Seek(start, io.SeekStart); err != nil {
		return from, false, err
	}
	_, err = io.Copy(w, io.LimitReader(f, size-start))
	return size, cut, err
}

// followLogs prints what the job's log files get appended, as `tail -f`
// does (a header when the stream changes), until the job ended and its
// files were read once more, or ctx ends.
func followLogs(ctx context.Context, s *IO, c *client.Client, jobID int64, names, paths []string, offsets []int64) error {
	shown := len(names) - 1
	for {
		st, err := c.JobStatus(ctx, jobID)
		if err != nil {
			return err
		}
		ended := model.JobEnded(st)
		for i, p := range paths {
			var b bytes.Buffer
			end, _, err := copyLogFrom(&b, p, offsets[i], 0, -1)
			if err != nil {
				return err
			}
			offsets[i] = end
			if b.Len() == 0 {
				continue
			}
			if len(names) > 1 && shown != i {
				fmt.Fprintf(s.Out, "\n==> %s (%s) <==\n", names[i], p)
				shown = i
			}
			s.Out.Write(b.Bytes())
		}
		if ended {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(followInterval):
		}
	}
}

// followInterval is how often `logs --follow` looks at the files.
const followInterval = 200 * time.Millisecond

// tailStart is the offset where the last n lines of a file of size bytes
// begin, found reading backwards 64 KiB at a time.
func tailStart(f *os.File, size int64, n int) (int64, error) {
	buf := make([]byte, 64<<10)
	end := size
	lines := 0
	if size > 0 {
		// A final newline ends the last line; it does not start another.
		if _, err := f.ReadAt(buf[:1], size-1); err != nil {
			return 0, err
		}
		if buf[0] == '\n' {
			end = size - 1
		}
	}
	for pos := end; pos > 0; {
		k := min(int64(len(buf)), pos)
		pos -= k
		if _, err := f.ReadAt(buf[:k], pos); err != nil {
			return 0, err
		}
		for i := k - 1; i >= 0; i-- {
			if buf[i] == '\n' {
				lines++
				if lines == n {
					return pos + i + 1, nil
				}
			}
		}
	}
	return 0, nil
}
