package cli_test

import (
	"context"
	"os"
	"strings"
	"testing"

	"github.com/somaflow/somaflow/cli"
)

// run runs the command line in this process (cli.Test's buffers as its
// streams), as the binary would run it with env added to the environment:
// the environment is restored afterwards. Engines it starts in the
// background, and the supervisor, are the test binary's built somaflow.
func run(t *testing.T, env []string, args ...string) result {
	t.Helper()
	saved := os.Environ()
	defer func() {
		os.Clearenv()
		for _, kv := range saved {
			k, v, _ := strings.Cut(kv, "=")
			os.Setenv(k, v)
		}
	}()
	for _, kv := range append([]string{"NO_COLOR=1"}, env...) {
		k, v, _ := strings.Cut(kv, "=")
		os.Setenv(k, v)
	}
	s, _, out, errOut := cli.Test()
	f := cli.NewFactory(s)
	f.Executable, f.OwnProcess = binary, false
	code := f.Run(context.Background(), append([]string{"somaflow"}, args...))
	return result{out.String(), errOut.String(), code}
}
