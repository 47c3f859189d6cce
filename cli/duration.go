package cli

import (
	"strconv"
	"strings"
	"time"

	"github.com/somaflow/somaflow/model"
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
	d, ok := model.ParseSpan(s)
	if !ok {
		return 0, durationError(what, v)
	}
	return d, nil
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
