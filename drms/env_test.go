package drms

import (
	"slices"
	"testing"
)

func TestMergeEnv(t *testing.T) {
	for _, tc := range []struct {
		name  string
		lists [][]string
		want  []string
	}{
		{"empty", nil, []string{}},
		{"one list with a repeat", [][]string{{"A=1", "B=2", "A=3"}}, []string{"A=3", "B=2"}},
		{"later list wins in place", [][]string{{"A=1", "B=2"}, {"B=3", "C=4"}}, []string{"A=1", "B=3", "C=4"}},
		{"value with =", [][]string{{"A=x=y"}, {"A=z=w"}}, []string{"A=z=w"}},
		{"empty value", [][]string{{"A=1"}, {"A="}}, []string{"A="}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := MergeEnv(tc.lists...); !slices.Equal(got, tc.want) {
				t.Fatalf("MergeEnv(%q) = %q, want %q", tc.lists, got, tc.want)
			}
		})
	}
}
