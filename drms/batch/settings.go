package batch

import (
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"time"

	"github.com/somaflow/somaflow/drms"
)

// Settings reads a batch backend's settings (drms.Config.Settings); its
// errors name the backend and the setting.
type Settings struct {
	// Backend is the backend's name, for errors ("slurm").
	Backend string
	M       map[string]string
}

// Get is the setting key, blanks trimmed ("" when not set).
func (s Settings) Get(key string) string { return strings.TrimSpace(s.M[key]) }

// Duration reads a duration setting (def when not set).
func (s Settings) Duration(key string, def time.Duration) (time.Duration, error) {
	v := s.Get(key)
	if v == "" {
		return def, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("%s: setting %s=%q is not a duration (e.g. 30s)", s.Backend, key, v)
	}
	return d, nil
}

// Durations reads several duration settings into their destinations.
func (s Settings) Durations(dsts map[string]*time.Duration, defs map[string]time.Duration) error {
	for key, dst := range dsts {
		d, err := s.Duration(key, defs[key])
		if err != nil {
			return err
		}
		*dst = d
	}
	return nil
}

// Bool reads a true/false setting (false when not set).
func (s Settings) Bool(key string) (bool, error) {
	switch v := s.Get(key); v {
	case "", "false", "no":
		return false, nil
	case "true", "yes":
		return true, nil
	default:
		return false, fmt.Errorf("%s: setting %s=%q: want true or false", s.Backend, key, v)
	}
}

// CheckConfig checks what every batch backend needs in cfg (the somaflow
// binary for exec-job, an engine tag fit for DRMS job names) and returns
// cfg with ExecPath made absolute.
func CheckConfig(backend string, cfg drms.Config) (drms.Config, error) {
	if cfg.ExecPath == "" {
		return cfg, fmt.Errorf("%s: no somaflow executable configured for exec-job (Config.ExecPath)", backend)
	}
	if cfg.EngineTag == "" {
		return cfg, fmt.Errorf("%s: no engine tag configured (Config.EngineTag)", backend)
	}
	if strings.ContainsAny(cfg.EngineTag, "-| \t\n") {
		return cfg, fmt.Errorf("%s: engine tag %q must not contain '-', '|' or spaces", backend, cfg.EngineTag)
	}
	exe, err := ExecPath(cfg.ExecPath)
	if err != nil {
		return cfg, fmt.Errorf("%s: %w", backend, err)
	}
	cfg.ExecPath = exe
	return cfg, nil
}

// CommandError wraps a DRMS command that failed: a timeout, or a message
// that unavailable recognizes, wraps drms.ErrUnavailable (the engine backs
// off); a command missing from PATH says so, with hint.
func CommandError(backend, name, msg string, err error, unavailable func(string) bool, hint string) error {
	if errors.Is(err, ErrTimeout) || unavailable(msg) {
		return fmt.Errorf("%s: %s: %s: %w", backend, name, strings.TrimSpace(err.Error()+" "+OneLine(msg)), drms.ErrUnavailable)
	}
	if errors.Is(err, exec.ErrNotFound) {
		return fmt.Errorf("%s: %s not found on PATH (%s): %w", backend, name, hint, err)
	}
	return fmt.Errorf("%s: %s: %v: %s", backend, name, err, OneLine(msg))
}
