package engine

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/somaflow/somaflow/drms/proc"
)

// EnvBuilderTimeout bounds a workflow's env_builder_code run.
const EnvBuilderTimeout = time.Minute

// maxEnvBuilderOutput bounds what env_builder_code may print.
const maxEnvBuilderOutput = 1 << 20

// FindPython returns the python3 that runs env_builder_code: the first on
// the PATH of env (the submitter's environment), else on the engine's.
func FindPython(env []string) (string, error) {
	if p, err := proc.LookPath("python3", proc.EnvValue(env, "PATH"), "/"); err == nil {
		return p, nil
	}
	if p, err := exec.LookPath("python3"); err == nil {
		return p, nil
	}
	return "", errors.New("env_builder_code is Python: it needs a python3 on PATH, and there is none")
}

// buildEnv runs a workflow's env_builder_code as soma-workflow does (in a
// separate Python process when the workflow starts): the code prints a JSON
// object of environment variables, which every job gets below the
// workflow's env and its own. It runs with the submitter's environment, in
// the submitter's directory.
func buildEnv(ctx context.Context, code string, env []string, dir string) (map[string]string, error) {
	python, err := FindPython(env)
	if err != nil {
		return nil, err
	}
	f, err := os.CreateTemp("", "somaflow-env-*.py")
	if err != nil {
		return nil, err
	}
	defer os.Remove(f.Name())
	_, err = f.WriteString(code + "\n")
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, EnvBuilderTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, python, f.Name())
	cmd.Env = env
	if fi, err := os.Stat(dir); err == nil && fi.IsDir() {
		cmd.Dir = dir
	} else {
		cmd.Dir = filepath.Dir(f.Name())
	}
	var out, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &limited{w: &out, n: maxEnvBuilderOutput}, &limited{w: &stderr, n: 4096}
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("did not finish within %v", EnvBuilderTimeout)
		}
		return nil, fmt.Errorf("%s failed: %v: %s", python, err, strings.TrimSpace(stderr.String()))
	}
	var raw map[string]any
	if err := json.Unmarshal(out.Bytes(), &raw); err != nil {
		return nil, fmt.Errorf("its output is not a JSON object of variables: %v", err)
	}
	m := make(map[string]string, len(raw))
	for k, v := range raw {
		switch v := v.(type) {
		case string:
			m[k] = v
		case nil:
			m[k] = ""
		default:
			b, _ := json.Marshal(v)
			m[k] = string(b)
		}
		if k == "" || strings.ContainsAny(k, "=\x00") || strings.Contains(m[k], "\x00") {
			return nil, fmt.Errorf("variable %q cannot be put in an environment", k)
		}
	}
	return m, nil
}

// limited keeps at most n bytes in w, then fails the writer.
type limited struct {
	w *bytes.Buffer
	n int
}

func (l *limited) Write(p []byte) (int, error) {
	if l.w.Len()+len(p) > l.n {
		return 0, fmt.Errorf("more than %d bytes of output", l.n)
	}
	return l.w.Write(p)
}
