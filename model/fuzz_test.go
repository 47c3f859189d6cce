package model

import (
	"os"
	"path/filepath"
	"testing"
)

// fuzzSeeds returns the soma-workflow reference files and the native files
// of testdata/ and ../examples.
func fuzzSeeds(f testing.TB) (soma, native [][]byte) {
	f.Helper()
	for _, p := range somaRefFiles(f) {
		if b, err := os.ReadFile(p); err == nil {
			soma = append(soma, b)
		}
	}
	for _, pat := range []string{"testdata/*.yaml", "testdata/*.json", "../examples/*.yaml", "../examples/*.json"} {
		files, _ := filepath.Glob(pat)
		for _, p := range files {
			if b, err := os.ReadFile(p); err == nil {
				native = append(native, b)
			}
		}
	}
	return soma, native
}

// roundTripNative checks decode -> encode -> decode for the native format.
func roundTripNative(t *testing.T, w *Workflow) {
	t.Helper()
	out, err := EncodeNative(w)
	if err != nil {
		t.Fatalf("EncodeNative of a decoded workflow: %v", err)
	}
	w2, err := DecodeNative(out)
	if err != nil {
		t.Fatalf("DecodeNative(EncodeNative): %v\n%s", err, out)
	}
	if err := Equivalent(w, w2); err != nil {
		t.Fatalf("native round trip: %v\n%s", err, out)
	}
}

func FuzzDecodeSoma(f *testing.F) {
	soma, _ := fuzzSeeds(f)
	for _, s := range soma {
		f.Add(s)
	}
	f.Add([]byte(`{"serialized_jobs": {"0": {"name": "a", "command": ["true"]}, "1": {"name": "b", "command": ["true"]}}, "dependencies": [[0, 1]]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		w, err := DecodeSoma(data)
		if err != nil {
			return
		}
		_ = w.Validate()
		out, err := EncodeSoma(w)
		if err != nil {
			t.Fatalf("EncodeSoma of a decoded workflow: %v", err)
		}
		w2, err := DecodeSoma(out)
		if err != nil {
			t.Fatalf("DecodeSoma(EncodeSoma): %v\n%s", err, out)
		}
		if err := Equivalent(w, w2); err != nil {
			t.Fatalf("soma round trip: %v\n%s", err, out)
		}
		roundTripNative(t, w)
	})
}

func FuzzDecodeNative(f *testing.F) {
	soma, native := fuzzSeeds(f)
	for _, s := range native {
		f.Add(s)
	}
	for _, s := range soma {
		if w, err := DecodeSoma(s); err == nil {
			if n, err := EncodeNative(w); err == nil {
				f.Add(n)
			}
		}
	}
	f.Add([]byte("jobs:\n  a: {command: [echo, 1, 2.5, true, [x, y]]}\n  b: {shell: 'echo b', after: [a, G]}\ngroups:\n  G: [a]\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		w, err := DecodeNative(data)
		if err != nil {
			return
		}
		_ = w.Validate()
		roundTripNative(t, w)
		if _, err := EncodeSoma(w); err != nil {
			t.Fatalf("EncodeSoma of a decoded native workflow: %v", err)
		}
	})
}
