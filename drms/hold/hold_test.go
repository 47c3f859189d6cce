package hold

import (
	"strings"
	"testing"
)

// TestDispatch: order, pools, dependencies, a start that fails, and a
// cancelled dependant, one dispatch at a time.
func TestDispatch(t *testing.T) {
	deps := map[string]Dep{}
	dep := func(k string) Dep { return deps[k] }
	var q Queue
	add := func(key, pool string, limit int, after ...string) *Job {
		j := &Job{Key: key, Pool: pool, Limit: limit, After: after}
		if q.Ready(j, dep) == "" {
			q.Take(pool, 1)
			return nil // started at once
		}
		q.Add(j)
		return j
	}
	var started, cancelled []string
	refuse := map[string]bool{}
	dispatch := func() {
		started, cancelled = nil, nil
		q.Dispatch(dep, func(j *Job) bool {
			if refuse[j.Key] {
				return false
			}
			started = append(started, j.Key)
			return true
		}, func(j *Job) { cancelled = append(cancelled, j.Key) })
	}
	if add("a1", "a", 2) != nil || add("a2", "a", 2) != nil {
		t.Fatal("the first two of a pool of 2 are held")
	}
	add("a3", "a", 2)
	add("a4", "a", 2)
	deps["x"] = Running
	add("d1", "b", 0, "x")
	add("d2", "b", 0, "d1")
	if n := q.Len(); n != 4 {
		t.Fatalf("held: %d, want 4", n)
	}
	dispatch()
	if len(started)+len(cancelled) != 0 {
		t.Fatalf("nothing may start: started %v, cancelled %v", started, cancelled)
	}
	// a1 ends: a3 starts, a4 still waits (first in, first out).
	q.Release("a", 1)
	deps["a1"] = Succeeded
	dispatch()
	if strings.Join(started, " ") != "a3" {
		t.Fatalf("after a1 ended: started %v, want a3", started)
	}
	// A start that fails keeps the job held and blocks its pool's later
	// jobs for the round.
	q.Release("a", 1)
	refuse["a4"] = true
	add("a5", "a", 2)
	dispatch()
	if len(started) != 0 || q.Len() != 4 {
		t.Fatalf("refused start: started %v, held %d", started, q.Len())
	}
	refuse["a4"] = false
	dispatch()
	if strings.Join(started, " ") != "a4" {
		t.Fatalf("started %v, want a4 (then a5 waits for a slot)", started)
	}
	// x fails: d1 is cancelled; d2 waits for d1, which then counts as
	// failed too.
	deps["x"] = Failed
	dispatch()
	if strings.Join(cancelled, " ") != "d1" {
		t.Fatalf("cancelled %v, want d1", cancelled)
	}
	deps["d1"] = Failed
	dispatch()
	if strings.Join(cancelled, " ") != "d2" {
		t.Fatalf("cancelled %v, want d2", cancelled)
	}
	// A job needing more than the limit starts alone.
	big := &Job{Key: "big", Pool: "c", Limit: 2, Need: 4}
	if q.Ready(big, dep) != "" {
		t.Fatal("a job alone in its pool fits whatever it needs")
	}
	q.Take("c", 4)
	small := &Job{Key: "small", Pool: "c", Limit: 2}
	if r := q.Ready(small, dep); r != "slot" {
		t.Fatalf("small job next to the big one: %q, want slot", r)
	}
	if _, ok := q.Remove("a5"); !ok || q.Len() != 0 {
		t.Fatalf("remove a5: %v, held %d", ok, q.Len())
	}
}

// TestRankOrder: held jobs start by Priority, then Seq, then the order they
// were added, whenever they were added; a job added later that outranks the
// held ones may start at once when there is room.
func TestRankOrder(t *testing.T) {
	deps := map[string]Dep{"run": Running}
	dep := func(k string) Dep { return deps[k] }
	var q Queue
	q.Take("p", 1) // the pool's one slot is taken
	for _, j := range []*Job{
		{Key: "s5", Seq: 5},
		{Key: "s2-after", Seq: 2, After: []string{"run"}},
		{Key: "s9", Seq: 9},
		{Key: "p1-s7", Seq: 7, Priority: 1},
		{Key: "s5-again", Seq: 5},
	} {
		j.Pool, j.Limit = "p", 1
		if q.Ready(j, dep) != "" {
			q.Add(j)
		} else {
			t.Fatalf("%s may start with the pool full", j.Key)
		}
	}
	deps["run"] = Succeeded
	var order []string
	for q.Len() > 0 {
		q.Release("p", 1)
		n := len(order)
		q.Dispatch(dep, func(j *Job) bool { order = append(order, j.Key); return true }, func(j *Job) { t.Errorf("%s cancelled", j.Key) })
		if len(order) != n+1 {
			t.Fatalf("one slot freed: started %v", order[n:])
		}
	}
	if got, want := strings.Join(order, " "), "p1-s7 s2-after s5 s5-again s9"; got != want {
		t.Errorf("started %s, want %s", got, want)
	}
	// A held job that waits for room (it takes two slots, one is taken)
	// blocks the jobs ranked after it, not those ranked before it.
	q.Take("q", 1)
	big := &Job{Key: "big-s3", Seq: 3, Pool: "q", Limit: 2, Need: 2}
	if r := q.Ready(big, dep); r != "slot" {
		t.Fatalf("a job of two slots with one free: Ready %q", r)
	}
	q.Add(big)
	if r := q.Ready(&Job{Key: "s1", Seq: 1, Pool: "q", Limit: 2}, dep); r != "" {
		t.Errorf("a job ranked before the held one, room for it: Ready %q, want it to start", r)
	}
	if r := q.Ready(&Job{Key: "s9", Seq: 9, Pool: "q", Limit: 2}, dep); r != "slot" {
		t.Errorf("a job ranked after the held one: Ready %q, want slot", r)
	}
}
