package model

import (
	"fmt"
	"strconv"
	"strings"
)

// Problem is one thing wrong with a workflow (or, in Workflow.Warnings, one
// thing a decoder changed). Job names the job (or group, or special path:
// see Msg) it is about, "" for the workflow itself; Field names the field.
type Problem struct {
	Job   string
	Field string
	Msg   string
	// Line is the line of the file the problem is on (0: unknown).
	Line int
}

// String formats the problem on one line:
//
//	job "align_3": after: dependency on unknown job "sort_9"
func (p Problem) String() string {
	var b strings.Builder
	if p.Job != "" {
		fmt.Fprintf(&b, "job %q: ", p.Job)
	}
	if p.Field != "" {
		b.WriteString(p.Field)
		b.WriteString(": ")
	}
	b.WriteString(p.Msg)
	if p.Line > 0 {
		fmt.Fprintf(&b, " (line %d)", p.Line)
	}
	return b.String()
}

// ValidationError lists every problem found in a workflow file or model.
// Decoders return it for problems of content (bad types, unknown or
// duplicated ids and names); Validate returns it for everything else.
type ValidationError struct {
	Problems []Problem
}

// Error formats one problem per line.
func (e *ValidationError) Error() string {
	lines := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		lines[i] = p.String()
	}
	return strings.Join(lines, "\n")
}

// problems collects Problems.
type problems []Problem

func (ps *problems) add(job, field, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	p := Problem{Job: job, Field: field, Msg: msg}
	// A decoder ends the message with "(line N)": that is the problem's line.
	if i := strings.LastIndex(msg, " (line "); i >= 0 && strings.HasSuffix(msg, ")") {
		if n, err := strconv.Atoi(msg[i+len(" (line ") : len(msg)-1]); err == nil {
			p.Msg, p.Line = msg[:i], n
		}
	}
	*ps = append(*ps, p)
}

// Nearest returns the candidate closest to s in edit distance when it is
// close enough to be a typo of it (at most a third of its letters), else "".
func Nearest(s string, candidates []string) string {
	best, bestD := "", len(s)/3+1
	for _, c := range candidates {
		if d := editDistance(strings.ToLower(s), c); d < bestD {
			best, bestD = c, d
		}
	}
	return best
}

// editDistance is the Levenshtein distance between a and b.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// err returns nil or a *ValidationError holding the problems.
func (ps problems) err() error {
	if len(ps) == 0 {
		return nil
	}
	return &ValidationError{Problems: ps}
}
