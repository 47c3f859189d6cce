//go:build !linux

package batch

import "os"

// readNames is the set of the names in dir of exec-job's status files,
// and of its started files with started (nil when dir cannot be read).
func readNames(dir string, started bool) map[string]struct{} {
	f, err := os.Open(dir)
	if err != nil {
		return nil
	}
	defer f.Close()
	names, err := f.Readdirnames(-1)
	if err != nil {
		return nil
	}
	m := map[string]struct{}{}
	for _, n := range names {
		if keep([]byte(n), started) {
			m[n] = struct{}{}
		}
	}
	return m
}
