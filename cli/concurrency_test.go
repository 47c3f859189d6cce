package cli_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
)

// TestConcurrentClients: 8 clients submit, query, list and stop at once
// while the engine runs; no command fails ("database is locked" or any
// other error) and no workflow is lost.
func TestConcurrentClients(t *testing.T) {
	env, _ := service(t)
	wf := write(t, "wf.yaml", "jobs:\n  a: {command: [\"true\"]}\n  b: {command: [sleep, \"0.2\"], after: [a]}\n  c: {command: [\"true\"], after: [b]}\n")
	const clients, rounds = 8, 4
	var mu sync.Mutex
	var ids []string
	var failures []string
	fail := func(format string, a ...any) {
		mu.Lock()
		failures = append(failures, fmt.Sprintf(format, a...))
		mu.Unlock()
	}
	var wg sync.WaitGroup
	for c := 0; c < clients; c++ {
		wg.Add(1)
		go func(c int) {
			defer wg.Done()
			for r := 0; r < rounds; r++ {
				s := runBin(t, env, "submit", wf)
				if s.code != 0 {
					fail("client %d submit: %+v", c, s)
					continue
				}
				id := strings.TrimSpace(s.stdout)
				mu.Lock()
				ids = append(ids, id)
				mu.Unlock()
				if st := runBin(t, env, "status", "--json", id); st.code != 0 {
					fail("client %d status %s: %+v", c, id, st)
				}
				if l := runBin(t, env, "list", "--json"); l.code != 0 {
					fail("client %d list: %+v", c, l)
				}
				if r%2 == 1 {
					if st := runBin(t, env, "stop", id); st.code != 0 {
						fail("client %d stop %s: %+v", c, id, st)
					}
				}
			}
		}(c)
	}
	wg.Wait()
	for _, f := range failures {
		t.Error(f)
	}
	if len(ids) != clients*rounds {
		t.Fatalf("%d workflows submitted, want %d", len(ids), clients*rounds)
	}
	w := runBin(t, env, append([]string{"wait", "--json", "--timeout", "2m"}, ids...)...)
	if w.code != 0 && w.code != 1 {
		t.Fatalf("wait: %+v", w)
	}
	l := runBin(t, env, "list", "--json")
	var rows []struct {
		ID     string `json:"id"`
		Status string `json:"status"`
	}
	if err := json.Unmarshal([]byte(l.stdout), &rows); err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, r := range rows {
		seen[r.ID] = true
		if r.Status != "workflow_done" {
			t.Errorf("workflow %s: %s", r.ID, r.Status)
		}
	}
	for _, id := range ids {
		if !seen[id] {
			t.Errorf("workflow %s lost", id)
		}
	}
	if strings.Contains(w.stderr+l.stderr, "locked") {
		t.Fatalf("database is locked: %s", w.stderr)
	}
}
