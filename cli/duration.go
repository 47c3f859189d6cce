package cli

import (
	"strconv"
	"strings"
	"time"

	ucli "github.com/urfave/cli/v3"
)

// parseDuration reads a duration as people and soma-workflow write them:
// bare seconds (`30`, `1.5`: soma-workflow's timeouts and timeout(1) count
// seconds), Go's units (`90m`, `2h30m`, `500ms`), days (`7d`, `1d12h`), and
// `none` (or empty) for none, returned as -1. Errors say in words what is
// accepted.
func parseDuration(what, v string) (time.Duration, error) {
	s := strings.TrimSpace(v)
	switch strings.ToLower(s) {
	case "", "none", "never":
		return -1, nil
	}
	if f, err := strconv.ParseFloat(s, 64); err == nil {
		if f < 0 || f > float64(maxDuration/time.Second) {
			return 0, usagef("%s %q: a number of seconds must be between 0 and %d", what, v, maxDuration/time.Second)
		}
		return time.Duration(f * float64(time.Second)), nil
	}
	var days time.Duration
	if i := strings.IndexByte(s, 'd'); i > 0 {
		n, err := strconv.ParseFloat(s[:i], 64)
		if err != nil || n < 0 {
			return 0, durationError(what, v)
		}
		days = time.Duration(n * 24 * float64(time.Hour))
		s = s[i+1:]
		if s == "" {
			return days, nil
		}
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return 0, durationError(what, v)
	}
	return days + d, nil
}

// maxDuration bounds durations (about 290 years fit in a time.Duration;
// nobody waits longer than 100).
const maxDuration = 100 * 365 * 24 * time.Hour

func durationError(what, v string) error {
	return usagef("%s %q is not a duration: write seconds (30), or a number with units d, h, m, s or ms (7d, 2h30m, 90s), or none", what, v)
}

// durationFlag reads a duration flag given as text (see parseDuration).
func durationFlag(cmd *ucli.Command, name string) (time.Duration, error) {
	return parseDuration("--"+name, cmd.String(name))
}
