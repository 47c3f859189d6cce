package drms

import "strings"

// MergeEnv merges environment lists ("K=V") in order: a later value of a
// variable replaces an earlier one in the earlier one's place, so the first
// order of the variables is kept and each appears once.
func MergeEnv(lists ...[]string) []string {
	n := 0
	for _, l := range lists {
		n += len(l)
	}
	idx := make(map[string]int, n)
	out := make([]string, 0, n)
	for _, list := range lists {
		for _, kv := range list {
			k, _, _ := strings.Cut(kv, "=")
			if i, ok := idx[k]; ok {
				out[i] = kv
				continue
			}
			idx[k] = len(out)
			out = append(out, kv)
		}
	}
	return out
}
