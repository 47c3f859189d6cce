package cli_test

// Hostile and broken surroundings (issue 23): each case is an attack or a
// broken environment driven through the binary as a user (or an attacker)
// would; the next adversarial pass extends this file.

import (
	"fmt"
	"strings"
	"testing"
)

// aliasBomb is a ~600-byte native file whose aliases, nine levels of ten,
// expand to a billion values inside command: (the guard once covered
// params and extras only).
func aliasBomb() string {
	var sb strings.Builder
	sb.WriteString("jobs:\n  bomb:\n    command: [echo,\n      &a0 [x, x, x, x, x, x, x, x, x, x]")
	for i := 1; i <= 8; i++ {
		fmt.Fprintf(&sb, ",\n      &a%d [%s]", i, strings.TrimSuffix(strings.Repeat(fmt.Sprintf("*a%d, ", i-1), 10), ", "))
	}
	sb.WriteString("]\n")
	return sb.String()
}

func TestHostileAliasBomb(t *testing.T) {
	bomb := write(t, "bomb.yaml", aliasBomb())
	for _, cmd := range [][]string{{"validate", bomb}, {"run", bomb}, {"convert", "--to", "soma", bomb}} {
		// Before the bound this took minutes and gigabytes (then the OOM killer).
		r := run(t, nil, cmd...)
		if r.code != 2 || !strings.Contains(r.stderr, "aliases expand to more than") {
			t.Fatalf("%v on an alias bomb: want exit 2 naming the aliases, got %+v", cmd, r)
		}
	}
	// Aliases within bounds still work.
	ok := write(t, "ok.yaml", "jobs:\n  a: {command: &c [echo, hi]}\n  b: {command: *c, after: [a]}\n")
	if r := run(t, nil, "validate", ok); r.code != 0 {
		t.Fatalf("validate a file with a small alias: %+v", r)
	}
}
