package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"

	ucli "github.com/urfave/cli/v3"

	"github.com/somaflow/somaflow/client"
)

func logsCommand(s *IO) *ucli.Command {
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
		},
		Action: func(ctx context.Context, cmd *ucli.Command) error {
			id, err := workflowArg(cmd, 2, "logs needs a workflow ID and a JOB (id or name)")
			if err != nil {
				return err
			}
			c, _, err := openState(ctx, cmd)
			if err != nil {
				return err
			}
			defer c.Close()
			doc, err := c.WorkflowElementsStatus(ctx, id)
			if err != nil {
				return err
			}
			tail := int(cmd.Int("tail"))
			if tail < 0 {
				return usagef("--tail must be 0 or more, got %d", tail)
			}
			want := cmd.Args().Get(1)
			var job *client.JobDoc
			for i, j := range doc.Jobs {
				if j.ID == want || j.Name == want {
					if job != nil && j.Name == want && job.Name == want {
						return usagef("several jobs of workflow %d are named %q: use the job id", id, want)
					}
					job = &doc.Jobs[i]
				}
			}
			if job == nil {
				return fmt.Errorf("workflow %d has no job %q: %w", id, want, client.ErrUnknownObject)
			}
			type stream struct {
				name string
				path *string
			}
			var streams []stream
			if !cmd.Bool("stderr") {
				streams = append(streams, stream{"stdout", job.Stdout})
			}
			if !cmd.Bool("stdout") && (job.Stderr == nil || job.Stdout == nil || *job.Stderr != *job.Stdout) {
				streams = append(streams, stream{"stderr", job.Stderr})
			}
			if cmd.Bool("json") {
				out := map[string]any{"job": job.ID, "name": job.Name}
				for _, st := range streams {
					out[st.name+"_path"] = st.path
					if st.path != nil && !cmd.Bool("paths") {
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
			for _, st := range streams {
				if cmd.Bool("paths") {
					fmt.Fprintf(s.Out, "%s\t%s\n", st.name, deref(st.path))
					continue
				}
				if len(streams) > 1 {
					fmt.Fprintf(s.Out, "==> %s (%s) <==\n", st.name, deref(st.path))
				}
				if st.path == nil {
					continue
				}
				if _, err := copyLog(s.Out, *st.path, tail, -1); err != nil {
					fmt.Fprintf(s.ErrOut, "somaflow: %s: %v\n", st.name, err)
				}
			}
			return nil
		},
	}
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
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return false, err
	}
	if !fi.Mode().IsRegular() {
		return false, fmt.Errorf("%s is not a regular file (%v): not shown", path, fi.Mode().Type())
	}
	size := fi.Size()
	start := int64(0)
	if tail > 0 {
		if start, err = tailStart(f, size, tail); err != nil {
			return false, err
		}
	}
	if limit >= 0 && size-start > limit {
		start, cut = size-limit, true
	}
	if _, err := f.Seek(start, io.SeekStart); err != nil {
		return false, err
	}
	_, err = io.Copy(w, io.LimitReader(f, size-start)) // what is appended meanwhile waits for the next look
	return cut, err
}

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
