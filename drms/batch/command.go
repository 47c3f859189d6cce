package batch

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// ErrTimeout is wrapped by the error of a DRMS command that did not end
// within its timeout.
var ErrTimeout = errors.New("timed out")

// MaxCommandOutput bounds what a DRMS command may print on stdout (a
// listing of every job of a busy site fits many times): more is an error,
// not memory spent.
const MaxCommandOutput = 256 << 20

// Commands runs a DRMS's commands (sbatch, qstat, ...) and counts them. It
// is safe for concurrent use; the zero value is ready.
type Commands struct {
	mu    sync.Mutex
	calls map[string]int
}

// Run runs name with args, bounded by timeout, in a process group of its
// own (a Ctrl-C or SIGTERM meant for somaflow must not kill a submission
// half-way, leaving it unknown whether the job was submitted); env nil
// means the engine's environment. It returns stdout and stderr; a timeout
// gives an error wrapping ErrTimeout.
func (c *Commands) Run(ctx context.Context, timeout time.Duration, env []string, name string, args ...string) (string, string, error) {
	c.mu.Lock()
	if c.calls == nil {
		c.calls = map[string]int{}
	}
	c.calls[name]++
	c.mu.Unlock()
	cctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(cctx, name, args...)
	cmd.Env = env
	cmd.WaitDelay = 5 * time.Second
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	so := &limitedBuffer{max: MaxCommandOutput}
	se := &limitedBuffer{max: 1 << 20}
	cmd.Stdout, cmd.Stderr = so, se
	err := cmd.Run()
	switch {
	case err != nil && cctx.Err() != nil && ctx.Err() == nil:
		err = fmt.Errorf("%s %w after %v", name, ErrTimeout, timeout)
	case err != nil && ctx.Err() != nil:
		err = fmt.Errorf("%s: %w", name, ctx.Err())
	case err == nil && so.over:
		err = fmt.Errorf("%s printed more than %d MiB", name, MaxCommandOutput>>20)
	}
	return so.String(), se.String(), err
}

// Calls returns how many times each command was run.
func (c *Commands) Calls() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	m := make(map[string]int, len(c.calls))
	for k, v := range c.calls {
		m[k] = v
	}
	return m
}

// limitedBuffer keeps the first max bytes written to it and notes that
// there was more.
type limitedBuffer struct {
	bytes.Buffer
	max  int
	over bool
}

func (b *limitedBuffer) Write(p []byte) (int, error) {
	if room := b.max - b.Len(); len(p) > room {
		b.over = true
		if room > 0 {
			b.Buffer.Write(p[:room])
		}
		return len(p), nil
	}
	return b.Buffer.Write(p)
}

// Signaled tells whether a command was killed by a signal: like a
// timeout, nothing says whether it did its work.
func Signaled(err error) bool {
	var ee *exec.ExitError
	return errors.As(err, &ee) && !ee.Exited()
}

// Refusal is the reason of a job a DRMS command refused: its own words,
// or its exit status when it said nothing.
func Refusal(what string, ee *exec.ExitError, message string) string {
	if msg := OneLine(message); msg != "" {
		return what + ": " + msg
	}
	return fmt.Sprintf("%s (exit status %d, no message)", what, ee.ExitCode())
}

// OneLine is a command's message on one line, at most 500 bytes.
func OneLine(s string) string {
	s = strings.TrimSpace(s)
	s = strings.ReplaceAll(s, "\n", "; ")
	if len(s) > 500 {
		s = s[:500] + "..."
	}
	return s
}

// SplitWords splits a shell-like option string into words: blanks separate
// words; single quotes, double quotes and backslashes quote as in sh (no
// expansion of any kind).
func SplitWords(s string) ([]string, error) {
	var words []string
	var cur strings.Builder
	inWord := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n':
			if inWord {
				words = append(words, cur.String())
				cur.Reset()
				inWord = false
			}
		case c == '\'':
			j := strings.IndexByte(s[i+1:], '\'')
			if j < 0 {
				return nil, errors.New("unterminated single quote")
			}
			cur.WriteString(s[i+1 : i+1+j])
			i += j + 1
			inWord = true
		case c == '"':
			i++
			for ; i < len(s) && s[i] != '"'; i++ {
				if s[i] == '\\' && i+1 < len(s) && strings.IndexByte(`"\$`+"`", s[i+1]) >= 0 {
					i++
				}
				cur.WriteByte(s[i])
			}
			if i >= len(s) {
				return nil, errors.New("unterminated double quote")
			}
			inWord = true
		case c == '\\':
			if i+1 >= len(s) {
				return nil, errors.New("trailing backslash")
			}
			i++
			cur.WriteByte(s[i])
			inWord = true
		default:
			cur.WriteByte(c)
			inWord = true
		}
	}
	if inWord {
		words = append(words, cur.String())
	}
	return words, nil
}

// Submissions remembers when a backend submitted each job (or array), for
// an hour: a job submitted after a DRMS listing may be missing from it. It
// is safe for concurrent use; the zero value is ready.
type Submissions struct {
	mu sync.Mutex
	at map[string]time.Time
}

// Note records that id was submitted now.
func (s *Submissions) Note(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now()
	if s.at == nil {
		s.at = map[string]time.Time{}
	}
	if len(s.at) > 10000 {
		for k, t := range s.at {
			if now.Sub(t) > time.Hour {
				delete(s.at, k)
			}
		}
	}
	s.at[id] = now
}

// At is when id was submitted; ok is false when this backend did not
// (or more than an hour ago).
func (s *Submissions) At(id string) (time.Time, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.at[id]
	return t, ok
}
