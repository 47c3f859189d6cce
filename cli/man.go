package cli

import (
	"context"
	"fmt"
	"io"
	"strings"

	ucli "github.com/urfave/cli/v3"
)

// manCommand prints the manual page, made from the command tree (so that
// it cannot drift from --help): `make man` writes it to docs/somaflow.1.
func manCommand(f *Factory) *ucli.Command {
	return &ucli.Command{
		Name:   "man",
		Usage:  "print the manual page (roff) made from the commands and flags",
		Hidden: true,
		Action: func(ctx context.Context, cmd *ucli.Command) error {
			return writeMan(f.IO.Out, cmd.Root())
		},
	}
}

// roff escapes text for roff: backslashes, and a leading dot or quote.
func roff(s string) string {
	s = strings.ReplaceAll(s, `\`, `\e`)
	s = strings.ReplaceAll(s, "-", `\-`)
	var b strings.Builder
	for _, line := range strings.Split(s, "\n") {
		if strings.HasPrefix(line, ".") || strings.HasPrefix(line, "'") {
			line = `\&` + line
		}
		b.WriteString(line + "\n")
	}
	return strings.TrimSuffix(b.String(), "\n")
}

func writeMan(w io.Writer, root *ucli.Command) error {
	var b strings.Builder
	fmt.Fprintf(&b, ".TH SOMAFLOW 1 \"\" \"somaflow %s\" \"User Commands\"\n", roff(Version))
	fmt.Fprintf(&b, ".SH NAME\nsomaflow \\- %s\n", roff(root.Usage))
	b.WriteString(".SH SYNOPSIS\n.B somaflow\n[\\fIglobal options\\fR] \\fIcommand\\fR [\\fIoptions\\fR] [\\fIarguments\\fR]\n")
	fmt.Fprintf(&b, ".SH DESCRIPTION\n.nf\n%s\n.fi\n", roff(root.Description))
	b.WriteString(".SH GLOBAL OPTIONS\n")
	manFlags(&b, root.Flags)
	b.WriteString(".SH COMMANDS\n")
	var walk func(prefix string, cmds []*ucli.Command)
	walk = func(prefix string, cmds []*ucli.Command) {
		for _, c := range cmds {
			if c.Hidden || c.Name == "help" {
				continue
			}
			name := strings.TrimSpace(prefix + " " + c.Name)
			fmt.Fprintf(&b, ".SS %s\n", roff(strings.TrimSpace(name+" "+c.ArgsUsage)))
			fmt.Fprintf(&b, "%s\n", roff(c.Usage))
			if c.Description != "" {
				fmt.Fprintf(&b, ".PP\n.nf\n%s\n.fi\n", roff(c.Description))
			}
			manFlags(&b, c.Flags)
			walk(name, c.Commands)
		}
	}
	walk("", root.Commands)
	b.WriteString(".SH FILES\n.TP\n/etc/somaflow/config.yaml, $SOMAFLOW_CONFIG, ~/.config/somaflow/config.yaml\n" +
		"Configuration (later files win; flags and SOMAFLOW_* variables win over all).\n" +
		".TP\n~/.local/state/somaflow\nThe state dir: the database, logs, the engine's lock and log, the supervisor's journal.\n")
	b.WriteString(".SH SEE ALSO\nThe README and docs/ of the somaflow sources.\n")
	_, err := io.WriteString(w, b.String())
	return err
}

// manFlags lists flags as tagged paragraphs.
func manFlags(b *strings.Builder, flags []ucli.Flag) {
	for _, f := range flags {
		names := f.Names()
		var parts []string
		for _, n := range names {
			if len(n) == 1 {
				parts = append(parts, "-"+n)
			} else {
				parts = append(parts, "--"+n)
			}
		}
		usage := ""
		if df, ok := f.(ucli.DocGenerationFlag); ok {
			usage = df.GetUsage()
			if df.TakesValue() {
				parts[len(parts)-1] += " " + strings.ToUpper(strings.ReplaceAll(names[0], "-", "_"))
			}
		}
		fmt.Fprintf(b, ".TP\n.B %s\n%s\n", roff(strings.Join(parts, ", ")), roff(usage))
	}
}
