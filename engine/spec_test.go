package engine

import "testing"

// pyJSON writes what Python's json.dumps writes (keys sorted, as
// json.dumps(sort_keys=True)); the expected text is Python 3's output.
func TestPyJSONAsPython(t *testing.T) {
	v := map[string]any{"b": "\b\f\x7f\u00e9\U0001F600\"\\", "a": []any{float64(1), 2.5, nil, true}}
	want := `{"a": [1, 2.5, null, true], "b": "\b\f\u007f\u00e9\ud83d\ude00\"\\"}`
	if got := pyJSON(v); got != want {
		t.Fatalf("pyJSON:\n got %s\nwant %s", got, want)
	}
}
