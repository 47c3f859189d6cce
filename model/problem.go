package model

import (
	"fmt"
	"strings"
)

// Problem is one thing wrong with a workflow (or, in Workflow.Warnings, one
// thing a decoder changed). Job names the job (or group, or special path:
// see Msg) it is about, "" for the workflow itself; Field names the field.
type Problem struct {
	Job   string
	Field string
	Msg   string
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
	*ps = append(*ps, Problem{Job: job, Field: field, Msg: fmt.Sprintf(format, args...)})
}

// err returns nil or a *ValidationError holding the problems.
func (ps problems) err() error {
	if len(ps) == 0 {
		return nil
	}
	return &ValidationError{Problems: ps}
}
