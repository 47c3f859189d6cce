package store

import (
	"context"
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/somaflow/somaflow/model"
)

// TestLoadDefinitionShared: the engine's definition is LoadDefinition's
// without the names, and jobs that differ only by their names share one
// *model.Job; jobs that differ otherwise do not, whatever their names
// hold.
func TestLoadDefinitionShared(t *testing.T) {
	s := open(t)
	ctx := context.Background()
	str := func(v string) *string { return &v }
	cmd := func(a string) []model.Arg { return []model.Arg{{Value: a}} }
	w := &model.Workflow{Jobs: []*model.Job{
		{Name: str("a"), Command: cmd("true")},
		{Name: str("b"), Command: cmd("true")},
		{Name: str(`x\","Name":"y`), Command: cmd("true")},
		{Command: cmd("true")},
		{Name: str("c"), Command: cmd("false")},
		{Name: str("d"), Command: cmd("true"), Env: map[string]string{"A": "1"}},
		{Name: str("e"), Command: cmd("false")},
		{Name: str("f"), Command: cmd("true"), Configuration: json.RawMessage(`{"k":1}`)},
		{Name: str("g"), Command: cmd("true"), Priority: 3},
		{Name: str("h"), Class: model.ClassBarrier},
		{Name: str("i"), Class: model.ClassBarrier},
	}}
	id, err := s.CreateWorkflow(ctx, NewWorkflow{Def: w, Expiration: time.Now().Add(time.Hour), Cwd: "/"})
	if err != nil {
		t.Fatal(err)
	}
	row, err := s.GetWorkflow(ctx, id, true)
	if err != nil {
		t.Fatal(err)
	}
	// The stored form (deflated) and the plain JSON of older databases.
	plain, err := json.Marshal(w)
	if err != nil {
		t.Fatal(err)
	}
	for _, body := range [][]byte{row.Definition, plain} {
		row.Definition = body
		full, err := LoadDefinition(row)
		if err != nil {
			t.Fatal(err)
		}
		shared, err := LoadDefinitionShared(row)
		if err != nil {
			t.Fatal(err)
		}
		if len(shared.Jobs) != len(w.Jobs) {
			t.Fatalf("%d jobs for %d", len(shared.Jobs), len(w.Jobs))
		}
		for i, j := range shared.Jobs {
			if j.Name != nil {
				t.Fatalf("job %d keeps its name %q", i, *j.Name)
			}
			named := *j
			named.Name = full.Jobs[i].Name
			if !reflect.DeepEqual(&named, full.Jobs[i]) {
				t.Fatalf("job %d: shared %+v, full %+v", i, named, *full.Jobs[i])
			}
		}
		same := [][]int{{0, 1, 2, 3}, {4, 6}, {5}, {7}, {8}, {9, 10}}
		for a, group := range same {
			for _, i := range group {
				if shared.Jobs[i] != shared.Jobs[group[0]] {
					t.Fatalf("jobs %d and %d are not shared", group[0], i)
				}
				for b, other := range same {
					if b != a && shared.Jobs[i] == shared.Jobs[other[0]] {
						t.Fatalf("jobs %d and %d share a definition", i, other[0])
					}
				}
			}
		}
		if err := model.Equivalent(w, full); err != nil {
			t.Fatalf("LoadDefinition: %v", err)
		}
	}
}

func TestNameValue(t *testing.T) {
	for _, c := range []struct{ text, name string }{
		{`{"Class":"","Name":"a","Command":null}`, `"a"`},
		{`{"Class":"","Name":null,"Command":null}`, `null`},
		{`{"Class":"x\"","Name":"a\\","Command":null}`, `"a\\"`},
		{`{"Class":"","Name":"a\",\"b","Command":null}`, `"a\",\"b"`},
		{`{"Name":"a","Class":""}`, ""},
		{`{"Class":"","Command":null,"Name":"a"}`, ""},
		{`{"Class":"","Name":"a`, ""},
	} {
		s, e, ok := nameValue([]byte(c.text))
		got := ""
		if ok {
			got = c.text[s:e]
		}
		if got != c.name {
			t.Errorf("%s: name %q, want %q", c.text, got, c.name)
		}
	}
}
