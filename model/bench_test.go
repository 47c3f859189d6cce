package model

import (
	"encoding/json"
	"fmt"
	"testing"

	"go.yaml.in/yaml/v3"
)

// bigWorkflow builds n jobs in layers of 100, each depending on one job of
// the previous layer, with a few fields set.
func bigWorkflow(n int) *Workflow {
	w := &Workflow{}
	name := "big"
	w.Name = &name
	for i := range n {
		s := fmt.Sprintf("job_%d", i)
		j := &Job{Name: &s, Command: []Arg{{Value: "sh"}, {Value: "-c"}, {Value: fmt.Sprintf("echo %d > out/%d.txt", i, i)}}}
		if i%10 == 0 {
			j.Env = map[string]string{"I": fmt.Sprint(i)}
			j.Priority = i % 7
		}
		w.Jobs = append(w.Jobs, j)
		if i >= 100 {
			w.Dependencies = append(w.Dependencies, Dependency{From: Element{Index: i - 100}, To: Element{Index: i}})
		}
	}
	return w
}

func BenchmarkDecodeSoma100k(b *testing.B) {
	data, err := EncodeSoma(bigWorkflow(100000))
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if _, err := DecodeSoma(data); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkEncodeSoma100k(b *testing.B) {
	w := bigWorkflow(100000)
	for b.Loop() {
		if _, err := EncodeSoma(w); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodeNative100k(b *testing.B) {
	data, err := EncodeNative(bigWorkflow(100000))
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if _, err := DecodeNative(data); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkValidate100k(b *testing.B) {
	w := bigWorkflow(100000)
	for b.Loop() {
		if err := w.Validate(); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodeNativeJSON100k(b *testing.B) {
	y, err := EncodeNative(bigWorkflow(100000))
	if err != nil {
		b.Fatal(err)
	}
	var v any
	if err := yamlToAny(y, &v); err != nil {
		b.Fatal(err)
	}
	data, err := json.Marshal(v)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if _, err := DecodeNative(data); err != nil {
			b.Fatal(err)
		}
	}
}

func yamlToAny(y []byte, v *any) error { return yaml.Unmarshal(y, v) }
