package model

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const somaRefDir = "../testdata/somawf/workflows"

func somaRefFiles(t testing.TB) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(somaRefDir, "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// TestSomaReferenceFiles: every file soma-workflow wrote loads, re-exports
// byte for byte (or at least to an equivalent file), and converts to the
// native format and back without loss.
func TestSomaReferenceFiles(t *testing.T) {
	files := somaRefFiles(t)
	if len(files) < 20 {
		t.Fatalf("%s holds %d reference files, want at least 20", somaRefDir, len(files))
	}
	for _, f := range files {
		t.Run(strings.TrimSuffix(filepath.Base(f), ".json"), func(t *testing.T) {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			w, err := DecodeSoma(data)
			if err != nil {
				t.Fatalf("DecodeSoma: %v", err)
			}
			out, err := EncodeSoma(w)
			if err != nil {
				t.Fatalf("EncodeSoma: %v", err)
			}
			w2, err := DecodeSoma(out)
			if err != nil {
				t.Fatalf("DecodeSoma(EncodeSoma): %v\n%s", err, out)
			}
			if err := Equivalent(w, w2); err != nil {
				t.Fatalf("soma -> soma: %v", err)
			}
			nat, err := EncodeNative(w)
			if err != nil {
				t.Fatalf("EncodeNative: %v", err)
			}
			wn, err := DecodeNative(nat)
			if err != nil {
				t.Fatalf("DecodeNative(EncodeNative): %v\n%s", err, nat)
			}
			if err := Equivalent(w, wn); err != nil {
				t.Fatalf("soma -> native: %v\n%s", err, nat)
			}
			back, err := EncodeSoma(wn)
			if err != nil {
				t.Fatalf("EncodeSoma(native): %v", err)
			}
			if err := equivalentFiles(data, back); err != nil {
				t.Errorf("soma -> native -> soma: %v", err)
			}
			if err := equivalentFiles(data, out); err != nil {
				t.Errorf("re-exported file differs from soma-workflow's: %v", err)
			}
		})
	}
}
