package model

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Resources is what a job asks of the machine (somaflow's extension:
// native fields `cpus`, `memory`, `walltime`, `gpus`; in soma-workflow
// JSON a `resources` object on the job). Zero means not asked.
type Resources struct {
	CPUs     int
	MemoryMB int64
	// Walltime in seconds.
	Walltime int64
	GPUs     int
}

// IsZero reports whether nothing is asked.
func (r Resources) IsZero() bool { return r == Resources{} }

// ParseMemory reads a memory size as batch systems write it: a number of
// megabytes (`512`), or a number with a unit K, M, G or T (`512M`, `4G`,
// `1.5G`; a trailing B or iB is allowed). It returns megabytes, rounded up.
func ParseMemory(s string) (int64, error) {
	t := strings.TrimSpace(strings.ToUpper(s))
	t = strings.TrimSuffix(strings.TrimSuffix(t, "IB"), "B")
	mult := 1.0 // megabytes
	if n := len(t); n > 0 {
		switch t[n-1] {
		case 'K':
			mult, t = 1.0/1024, t[:n-1]
		case 'M':
			t = t[:n-1]
		case 'G':
			mult, t = 1024, t[:n-1]
		case 'T':
			mult, t = 1024*1024, t[:n-1]
		}
	}
	v, err := strconv.ParseFloat(strings.TrimSpace(t), 64)
	if err != nil || v <= 0 || v*mult > 1<<40 {
		return 0, fmt.Errorf("memory %q: write megabytes (512) or a size with a unit (512M, 4G)", s)
	}
	mb := int64(v * mult)
	if float64(mb) < v*mult {
		mb++
	}
	return mb, nil
}

// FormatMemory writes megabytes as ParseMemory reads them (4G, 512M).
func FormatMemory(mb int64) string {
	if mb%1024 == 0 {
		return strconv.FormatInt(mb/1024, 10) + "G"
	}
	return strconv.FormatInt(mb, 10) + "M"
}

// ParseWalltime reads a time limit as people and batch systems write it:
// seconds (`3600`), Go-style units with days (`90m`, `2h30m`, `1d12h`),
// or Slurm's forms `MM:SS`, `HH:MM:SS`, `D-HH`, `D-HH:MM`, `D-HH:MM:SS`.
// It returns seconds.
func ParseWalltime(s string) (int64, error) {
	t := strings.TrimSpace(s)
	bad := fmt.Errorf("walltime %q: write seconds (3600), units (90m, 2h30m, 1d12h) or [D-]HH:MM:SS", s)
	if n, err := strconv.ParseInt(t, 10, 64); err == nil {
		if n <= 0 {
			return 0, bad
		}
		return n, nil
	}
	if strings.ContainsAny(t, ":-") {
		var days int64
		if d, rest, ok := strings.Cut(t, "-"); ok {
			n, err := strconv.ParseInt(d, 10, 64)
			if err != nil || n < 0 {
				return 0, bad
			}
			days, t = n, rest
		}
		parts := strings.Split(t, ":")
		var v []int64
		for _, p := range parts {
			n, err := strconv.ParseInt(p, 10, 64)
			if err != nil || n < 0 {
				return 0, bad
			}
			v = append(v, n)
		}
		var secs int64
		switch {
		case days > 0 && len(v) == 1: // D-HH
			secs = v[0] * 3600
		case days > 0 && len(v) == 2: // D-HH:MM
			secs = v[0]*3600 + v[1]*60
		case len(v) == 2: // MM:SS
			secs = v[0]*60 + v[1]
		case len(v) == 3: // HH:MM:SS
			secs = v[0]*3600 + v[1]*60 + v[2]
		default:
			return 0, bad
		}
		secs += days * 86400
		if secs <= 0 {
			return 0, bad
		}
		return secs, nil
	}
	d, ok := ParseSpan(t)
	secs := int64((d + time.Second - 1) / time.Second)
	if !ok || secs <= 0 {
		return 0, bad
	}
	return secs, nil
}

// ParseSpan reads a duration written with Go's units and, first, days:
// `90m`, `2h30m`, `7d`, `1d12h`, `1.5d`. It is false for anything else or
// a negative span.
func ParseSpan(s string) (time.Duration, bool) {
	var days time.Duration
	if i := strings.IndexByte(s, 'd'); i > 0 {
		n, err := strconv.ParseFloat(s[:i], 64)
		if err != nil || n < 0 {
			return 0, false
		}
		days, s = time.Duration(n*24*float64(time.Hour)), s[i+1:]
		if s == "" {
			return days, true
		}
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return 0, false
	}
	return days + d, true
}

// FormatWalltime writes seconds as Slurm's [D-]HH:MM:SS.
func FormatWalltime(secs int64) string {
	d, h, m, s := secs/86400, secs%86400/3600, secs%3600/60, secs%60
	if d > 0 {
		return fmt.Sprintf("%d-%02d:%02d:%02d", d, h, m, s)
	}
	return fmt.Sprintf("%02d:%02d:%02d", h, m, s)
}
