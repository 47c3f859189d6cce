// Command democheck checks the status document of examples/demo.yaml (read
// on stdin) against the outcome the example documents; `make demo` runs it.
package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
)

type job struct {
	Name       string  `json:"name"`
	Status     string  `json:"status"`
	ExitStatus *string `json:"exit_status"`
	ExitValue  *int    `json:"exit_value"`
}

func main() {
	var doc struct {
		Status string `json:"status"`
		Jobs   []job  `json:"jobs"`
	}
	if err := json.NewDecoder(os.Stdin).Decode(&doc); err != nil {
		fail("status document: %v", err)
	}
	if doc.Status != "workflow_done" {
		fail("workflow status %q, want workflow_done", doc.Status)
	}
	want := map[string]string{
		"fails": "done/finished_regularly/3", "report": "failed/aborted_before_running/null",
		"archive": "failed/aborted_before_running/null",
	}
	for _, n := range []string{"prepare", "count_a", "count_b", "count_c", "merge", "produce", "consume"} {
		want[n] = "done/finished_regularly/0"
	}
	seen := 0
	for _, j := range doc.Jobs {
		w, ok := want[j.Name]
		if !ok {
			continue
		}
		seen++
		es, ev := "null", "null"
		if j.ExitStatus != nil {
			es = *j.ExitStatus
		}
		if j.ExitValue != nil {
			ev = fmt.Sprint(*j.ExitValue)
		}
		if got := j.Status + "/" + es + "/" + ev; got != w {
			fail("job %s: %s, want %s", j.Name, got, w)
		}
	}
	if seen != len(want) {
		fail("%d of the %d expected jobs found", seen, len(want))
	}
	if len(os.Args) != 2 {
		fail("usage: democheck DEMO-OUT-DIR < status.json")
	}
	data, err := os.ReadFile(filepath.Join(os.Args[1], "greeting.txt"))
	if err != nil || string(data) != "hello through a parameter link\n" {
		fail("parameter link: demo-out/greeting.txt = %q (%v)", data, err)
	}
	fmt.Println("demo: every job ended as documented (1 failure, 2 aborted dependants, parameter link passed)")
}

func fail(format string, a ...any) {
	fmt.Fprintf(os.Stderr, "demo check FAILED: "+format+"\n", a...)
	os.Exit(1)
}
