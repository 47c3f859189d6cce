package cli

import (
	"context"
	"fmt"
	"runtime"

	ucli "github.com/urfave/cli/v3"

	"github.com/somaflow/somaflow/client"
	"github.com/somaflow/somaflow/drmaa"
)

// versionOptions are version's flags.
type versionOptions struct {
	*Factory
	JSON bool
}

func versionCommand(f *Factory) *ucli.Command {
	return &ucli.Command{
		Name:  "version",
		Usage: "print the version and what this build supports",
		Flags: []ucli.Flag{&ucli.BoolFlag{Name: "json", Usage: "print as JSON"}},
		Action: func(ctx context.Context, cmd *ucli.Command) error {
			return versionRun(ctx, f.IO, &versionOptions{Factory: f, JSON: cmd.Bool("json")})
		},
	}
}

func versionRun(ctx context.Context, s *IO, o *versionOptions) error {
	v := map[string]any{
		"version": Version, "go": runtime.Version(), "schema_version": client.SchemaVersion,
		"drmaa": drmaa.Compiled, "backends": client.Backends, "config_files": o.Config.Files,
	}
	if o.JSON {
		return s.JSON(v)
	}
	d := "not compiled in (rebuild with -tags drmaa)"
	if drmaa.Compiled {
		d = "compiled in"
	}
	fmt.Fprintf(s.Out, "somaflow %s (%s), database schema %d\nDRMAA support: %s\nconfiguration: %v\n", Version, runtime.Version(), client.SchemaVersion, d, o.Config.Files)
	return nil
}
