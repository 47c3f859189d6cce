package client_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/somaflow/somaflow/client"
)

// encodeDoc is the document as one json.Encoder writes it (the CLI's way
// before streaming): the reference the streamed bytes must equal.
func encodeDoc(t *testing.T, doc any, indent bool) string {
	t.Helper()
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if indent {
		enc.SetIndent("", "  ")
	}
	if err := enc.Encode(doc); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// The streamed status document is byte for byte the encoded one: ended,
// failed and aborted jobs, names and paths JSON must escape, no jobs,
// compact and indented.
func TestWriteWorkflowElementsStatus(t *testing.T) {
	ctx := context.Background()
	c := open(t)
	wfs := map[string]string{
		"mixed":  mixed,
		"quotes": "name: 'q\"<&>\\u2028'\njobs:\n  'a\"jobs\":[]': {command: [\"true\"], stdout_file: '/tmp/x\"y'}\n  b: {shell: 'echo ok', after: ['a\"jobs\":[]']}\n",
		"one":    "jobs:\n  only: {command: [\"false\"]}\n",
	}
	var ids []int64
	var docs []*client.WorkflowDoc
	for name, text := range wfs {
		id, err := c.SubmitWorkflow(ctx, decode(t, text), client.SubmitOptions{})
		if err != nil {
			t.Fatal(name, err)
		}
		if err := c.WaitWorkflow(ctx, id, time.Minute); err != nil {
			t.Fatal(name, err)
		}
		doc, err := c.WorkflowElementsStatus(ctx, id)
		if err != nil {
			t.Fatal(name, err)
		}
		ids, docs = append(ids, id), append(docs, doc)
		for _, indent := range []bool{false, true} {
			var got bytes.Buffer
			if err := c.WriteWorkflowElementsStatus(ctx, id, &got, indent); err != nil {
				t.Fatal(name, err)
			}
			if want := encodeDoc(t, doc, indent); got.String() != want {
				t.Errorf("%s (indent %v): streamed\n%s\nwant\n%s", name, indent, got.String(), want)
			}
		}
	}
	if err := c.WriteWorkflowElementsStatus(ctx, 999, &bytes.Buffer{}, false); !strings.Contains(fmt.Sprint(err), "999") {
		t.Errorf("unknown workflow: %v", err)
	}
	// Several documents as one array, added one at a time (wait --json):
	// none (null, as a nil slice), one, all.
	for _, n := range []int{0, 1, len(ids)} {
		var want []*client.WorkflowDoc
		if n > 0 {
			want = docs[:n]
		}
		for _, indent := range []bool{false, true} {
			var got bytes.Buffer
			a := c.NewDocArray(&got, indent)
			for _, id := range ids[:n] {
				if err := a.Add(ctx, id); err != nil {
					t.Fatal(n, err)
				}
			}
			if err := a.Close(); err != nil {
				t.Fatal(n, err)
			}
			if want := encodeDoc(t, want, indent); got.String() != want {
				t.Errorf("%d documents (indent %v): streamed\n%s\nwant\n%s", n, indent, got.String(), want)
			}
		}
	}
}
