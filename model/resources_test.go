package model

import "testing"

func TestParseMemoryAndWalltime(t *testing.T) {
	for in, want := range map[string]int64{"512": 512, "512M": 512, "4G": 4096, "1.5G": 1536, "4GB": 4096, "2GiB": 2048, "1T": 1 << 20, "100K": 1} {
		if got, err := ParseMemory(in); err != nil || got != want {
			t.Errorf("ParseMemory(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "x", "-1G", "0", "4Q"} {
		if _, err := ParseMemory(bad); err == nil {
			t.Errorf("ParseMemory(%q) accepted", bad)
		}
	}
	for in, want := range map[string]int64{"3600": 3600, "90m": 5400, "2h30m": 9000, "1d12h": 129600, "7d": 604800,
		"01:30:00": 5400, "10:00": 600, "1-00:00:00": 86400, "2-12": 216000, "1-01:30": 91800, "1.5s": 2} {
		if got, err := ParseWalltime(in); err != nil || got != want {
			t.Errorf("ParseWalltime(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "soon", "-5", "0", "1:2:3:4", "0:00"} {
		if _, err := ParseWalltime(bad); err == nil {
			t.Errorf("ParseWalltime(%q) accepted", bad)
		}
	}
	if FormatWalltime(129600) != "1-12:00:00" || FormatWalltime(5400) != "01:30:00" || FormatMemory(4096) != "4G" || FormatMemory(1536) != "1536M" {
		t.Error("Format")
	}
}
