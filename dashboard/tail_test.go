package dashboard

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// TestReadTail checks the log tails a job page shows: bounded, starting at
// a line when cut, valid UTF-8, and never read from what is not a regular
// file (a FIFO would block, a device never end).
func TestDashboardReadTail(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	file := func(name, text string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	tests := []struct {
		name    string
		path    string
		n       int64
		want    string
		cut     bool
		wantErr string
	}{
		{"small", file("small", "a\nb\n"), 100, "a\nb\n", false, ""},
		{"cut at a line", file("big", "first line\nsecond\nthird\n"), 10, "third\n", true, ""},
		{"invalid UTF-8", file("bin", "ok \xff\xfe end"), 100, "ok \uFFFD end", false, ""},
		{"missing", filepath.Join(dir, "none"), 100, "", false, "no such file"},
		{"fifo", fifo, 100, "", false, "not a regular file"},
		{"device", "/dev/zero", 100, "", false, "not a regular file"},
		{"directory", dir, 100, "", false, "not a regular file"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, cut, err := readTail(tc.path, tc.n)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err %v, want %q", err, tc.wantErr)
				}
				if tc.name == "missing" && !errors.Is(err, fs.ErrNotExist) {
					t.Fatalf("a missing file is not ErrNotExist: %v", err)
				}
				return
			}
			if err != nil || got != tc.want || cut != tc.cut {
				t.Fatalf("got %q cut %v err %v, want %q cut %v", got, cut, err, tc.want, tc.cut)
			}
		})
	}
}
