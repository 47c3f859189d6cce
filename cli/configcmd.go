package cli

import (
	"context"
	"fmt"
	"os"
	"sort"
	"strconv"

	ucli "github.com/urfave/cli/v3"

	"github.com/somaflow/somaflow/client"
	"github.com/somaflow/somaflow/service"
)

// configValue is one effective setting and where it comes from.
type configValue struct {
	Key    string `json:"key"`
	Value  string `json:"value"`
	Source string `json:"source"`
}

// configOptions are config show's flags, and the global flags' values as
// the command saw them (with whether each was given on the command line).
type configOptions struct {
	*Factory
	JSON bool
	// flagSet says whether a global flag was given on the command line.
	flagSet func(name string) bool
}

func configCommand(f *Factory) *ucli.Command {
	return &ucli.Command{
		Name:  "config",
		Usage: "show the effective configuration and where each value comes from (config show)",
		Commands: []*ucli.Command{{
			Name:  "show",
			Usage: "print each setting, its value and its source: a flag, a SOMAFLOW_* variable, a file, or the default",
			Flags: []ucli.Flag{&ucli.BoolFlag{Name: "json", Usage: "print as JSON"}},
			Action: func(ctx context.Context, cmd *ucli.Command) error {
				return configShowRun(ctx, f.IO, &configOptions{Factory: f, JSON: cmd.Bool("json"), flagSet: cmd.IsSet})
			},
		}},
	}
}

func configShowRun(ctx context.Context, s *IO, o *configOptions) error {
	vals := effectiveConfig(o)
	if o.JSON {
		return s.JSON(map[string]any{"files": o.Config.Files, "values": vals, "soma_workflow": o.Config.SW})
	}
	tw := s.newTable()
	fmt.Fprintln(tw, "KEY\tVALUE\tSOURCE")
	for _, v := range vals {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", v.Key, printable(v.Value), v.Source)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	return printSWLayer(s, o.Config.SW)
}

// effectiveConfig lists the settings a command would use.
func effectiveConfig(o *configOptions) []configValue {
	cfg := o.Config
	from := func(key, flag, env, value, dflt string) configValue {
		switch {
		case env != "" && os.Getenv(env) != "" && os.Getenv(env) == value:
			return configValue{key, value, "environment " + env}
		case flag != "" && o.flagSet(flag):
			return configValue{key, value, "flag --" + flag}
		case cfg.Sources[key] != "":
			return configValue{key, value, cfg.Sources[key]}
		}
		if value == "" {
			value = dflt
		}
		return configValue{key, value, "default"}
	}
	stateDir := o.global.stateDir
	dflt, _ := service.DefaultDir()
	vals := []configValue{
		from("backend", "backend", "SOMAFLOW_BACKEND", o.global.backend, "local"),
		from("state_dir", "state-dir", "SOMAFLOW_STATE_DIR", stateDir, dflt),
		from("spool_dir", "spool-dir", "SOMAFLOW_SPOOL_DIR", o.global.spoolDir, "STATE_DIR/spool"),
		from("queue", "", "", cfg.Queue, "(none)"),
		from("max_jobs", "", "", strconv.Itoa(cfg.MaxJobs), "0"),
	}
	if cfg.MaxJobs == 0 {
		vals[len(vals)-1].Value = "0 (workflows share the backend's slots)"
	}
	keys := make([]string, 0, len(cfg.Settings))
	for k := range cfg.Settings {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		vals = append(vals, configValue{"settings." + k, cfg.Settings[k], cfg.Sources["settings."+k]})
	}
	return vals
}

// printSWLayer says which soma-workflow configuration was read, and which
// of its keys have no meaning here and why.
func printSWLayer(s *IO, sw *client.SWLayer) error {
	if sw == nil {
		return nil
	}
	if sw.Resource == "" {
		fmt.Fprintf(s.Out, "\nsoma-workflow configuration %s: %s\n", sw.Path, sw.Note)
		return nil
	}
	fmt.Fprintf(s.Out, "\nsoma-workflow configuration %s, resource [%s]", sw.Path, sw.Resource)
	if len(sw.Ignored) == 0 {
		fmt.Fprintln(s.Out, ": every key used")
		return nil
	}
	fmt.Fprintln(s.Out, "; keys with no meaning here:")
	tw := s.newTable()
	fmt.Fprintln(tw, "KEY\tVALUE\tWHY")
	for _, k := range sw.Ignored {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", k.Key, printable(k.Value), k.Why)
	}
	return tw.Flush()
}
