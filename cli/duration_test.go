package cli

import (
	"strings"
	"testing"
	"time"
)

func TestParseDuration(t *testing.T) {
	for _, c := range []struct {
		in   string
		want time.Duration
	}{
		{"30", 30 * time.Second}, {"1.5", 1500 * time.Millisecond}, {"0", 0}, {"90m", 90 * time.Minute},
		{"2h30m", 150 * time.Minute}, {"7d", 7 * 24 * time.Hour}, {"1d12h", 36 * time.Hour}, {"500ms", 500 * time.Millisecond},
		{"none", -1}, {"", -1}, {" 10 ", 10 * time.Second},
	} {
		got, err := parseDuration("--x", c.in)
		if err != nil || got != c.want {
			t.Errorf("parseDuration(%q) = %v, %v; want %v", c.in, got, err, c.want)
		}
	}
	for _, bad := range []string{"abc", "-5", "5x", "d", "1d-2h", "1e30"} {
		_, err := parseDuration("--timeout", bad)
		if err == nil || ExitCode(err) != ExitBadInput || strings.Contains(err.Error(), "strconv") || strings.Contains(err.Error(), "time:") {
			t.Errorf("parseDuration(%q): want a plain usage error, got %v", bad, err)
		}
	}
}
