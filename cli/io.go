package cli

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"

	"golang.org/x/sys/unix"
)

// IO owns the standard streams and the TTY and colour policy: colour and
// progress only on a terminal, never with NO_COLOR.
type IO struct {
	In          io.Reader
	Out, ErrOut io.Writer
	inTTY       bool
	outTTY      bool
	errTTY      bool
}

// System returns the process's streams.
func System() *IO {
	return &IO{In: os.Stdin, Out: os.Stdout, ErrOut: os.Stderr, inTTY: isTTY(os.Stdin), outTTY: isTTY(os.Stdout), errTTY: isTTY(os.Stderr)}
}

// Test returns streams for tests: buffers for In, Out and ErrOut, no
// terminal (SetTTY changes that), as gh's iostreams.Test.
func Test() (s *IO, in, out, errOut *bytes.Buffer) {
	in, out, errOut = &bytes.Buffer{}, &bytes.Buffer{}, &bytes.Buffer{}
	return &IO{In: in, Out: out, ErrOut: errOut}, in, out, errOut
}

// SetTTY makes the streams behave as a terminal (true) or not: indented
// JSON, colour, progress and questions follow.
func (s *IO) SetTTY(tty bool) { s.inTTY, s.outTTY, s.errTTY = tty, tty, tty }

func isTTY(f *os.File) bool {
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}

// Color reports whether output may be coloured.
func (s *IO) Color() bool {
	return s.outTTY && os.Getenv("NO_COLOR") == "" && os.Getenv("TERM") != "dumb"
}

// Progress reports whether a live progress line may be drawn on ErrOut.
func (s *IO) Progress() bool { return s.errTTY && s.outTTY }

// Confirm asks a yes/no question on a terminal (default no); false
// without a terminal to ask on.
func (s *IO) Confirm(question string) bool {
	if !s.inTTY || !s.errTTY {
		return false
	}
	fmt.Fprintf(s.ErrOut, "%s [y/N] ", question)
	line, _ := bufio.NewReader(s.In).ReadString('\n')
	a := strings.ToLower(strings.TrimSpace(line))
	return a == "y" || a == "yes"
}

// table is an aligned table on Out, written in large chunks when flushed
// (a tabwriter alone writes every cell on its own: 800,000 writes for the
// jobs of a 100,000-job workflow).
type table struct {
	*tabwriter.Writer
	buf *bufio.Writer
}

// newTable starts an aligned table on Out; its Flush writes it.
func (s *IO) newTable() *table {
	buf := bufio.NewWriterSize(s.Out, 1<<16)
	return &table{Writer: tabwriter.NewWriter(buf, 2, 4, 2, ' ', 0), buf: buf}
}

// Flush aligns and writes the table.
func (t *table) Flush() error {
	if err := t.Writer.Flush(); err != nil {
		return err
	}
	return t.buf.Flush()
}

// JSON prints v on Out: indented for a person on a terminal, compact (one
// line, as fast as it gets) for programs.
func (s *IO) JSON(v any) error {
	w := bufio.NewWriterSize(s.Out, 1<<16)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	if s.outTTY {
		enc.SetIndent("", "  ")
	}
	if err := enc.Encode(v); err != nil {
		return err
	}
	return w.Flush()
}

// paint wraps text in an ANSI colour when colour is allowed.
func (s *IO) paint(code, text string) string {
	if !s.Color() {
		return text
	}
	return "\x1b[" + code + "m" + text + "\x1b[0m"
}
