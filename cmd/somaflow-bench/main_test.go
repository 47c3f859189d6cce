package main

import (
	"bytes"
	"context"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/somaflow/somaflow/client"
	"github.com/somaflow/somaflow/model"
)

func TestShapes(t *testing.T) {
	cases := []struct {
		name              string
		g                 *graph
		jobs, edges, bars int
	}{
		{"independent", independent(1000, "true"), 1000, 0, 0},
		{"chain", chain(200, "true"), 200, 199, 0},
		{"layers group", layers(10, 100, true, "true"), 1000, 900 + 900, 9},
		{"layers edges", layers(10, 100, false, "true"), 1000, 90000, 0},
		{"fan-out", fanOut(100, "true"), 100, 99, 0},
	}
	for _, c := range cases {
		bars := 0
		for _, nd := range c.g.nodes {
			if nd.barrier {
				bars++
			}
		}
		// In the group form each barrier waits for its 100 members and each
		// job of the next layer for the barrier: 900 + 900 references.
		if c.g.jobs() != c.jobs || c.g.edges() != c.edges || bars != c.bars {
			t.Errorf("%s: %d jobs, %d edges, %d barriers; want %d, %d, %d", c.name, c.g.jobs(), c.g.edges(), bars, c.jobs, c.edges, c.bars)
		}
	}
}

// The native file decodes and validates, with one dependency per edge (a
// group counts once per dependant job).
func TestNativeDecodes(t *testing.T) {
	for _, c := range []struct {
		g    *graph
		deps int
	}{
		{chain(5, "true"), 4},
		{layers(3, 4, true, "true"), 8},
		{layers(3, 4, false, "true"), 32},
		{independent(3, "sleep", "1"), 0},
	} {
		var b bytes.Buffer
		if err := c.g.writeNative(&b, "t"); err != nil {
			t.Fatal(err)
		}
		w, format, err := client.Unserialize(b.Bytes())
		if err != nil {
			t.Fatalf("%v\n%s", err, b.String())
		}
		if format != model.FormatNative {
			t.Errorf("format %q", format)
		}
		if err := client.Check(w); err != nil {
			t.Fatal(err)
		}
		if len(w.Jobs) != c.g.jobs() || len(w.Dependencies) != c.deps {
			t.Errorf("%d jobs, %d dependencies; want %d, %d\n%s", len(w.Jobs), len(w.Dependencies), c.g.jobs(), c.deps, b.String())
		}
	}
}

func TestWordsRefused(t *testing.T) {
	g := independent(1, "sh", "-c", "echo $HOME")
	if err := g.writeMakefile(io.Discard); err == nil || !strings.Contains(err.Error(), "not a plain word") {
		t.Fatalf("got %v", err)
	}
}

// nested is a chain whose job k makes directory j0/j1/.../jk without -p:
// it fails unless job k-1 ran before it.
func nested(base string, n int) *graph {
	g := chain(n, "true")
	p := base
	for i := range g.nodes {
		p = filepath.Join(p, g.nodes[i].name)
		g.nodes[i].argv = []string{"mkdir", p}
	}
	return g
}

func TestFloorKeepsOrder(t *testing.T) {
	base := t.TempDir()
	g := nested(base, 20)
	if err := g.floor(context.Background(), 4, os.Environ(), ""); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(g.nodes[19].argv[1]); err != nil {
		t.Fatal(err)
	}
	logs := t.TempDir()
	if err := layers(3, 5, true, "true").floor(context.Background(), 2, os.Environ(), logs); err != nil {
		t.Fatal(err)
	}
	ents, _ := os.ReadDir(logs)
	if len(ents) != 30 {
		t.Errorf("%d log files, want 30", len(ents))
	}
	bad := independent(2, "false")
	if err := bad.floor(context.Background(), 2, os.Environ(), ""); err == nil {
		t.Error("failing jobs: no error")
	}
}

func TestMakefileKeepsOrder(t *testing.T) {
	mk, err := exec.LookPath("make")
	if err != nil {
		t.Skip("GNU make is not installed")
	}
	dir := t.TempDir()
	g := nested(filepath.Join(dir, "n"), 20)
	g.nodes = append(g.nodes, node{name: "group", barrier: true, preds: []int{19}})
	if err := os.Mkdir(filepath.Join(dir, "n"), 0o700); err != nil {
		t.Fatal(err)
	}
	f := filepath.Join(dir, "Makefile")
	if err := writeFile(f, func(w *os.File) error { return g.writeMakefile(w) }); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(mk, "-s", "-r", "-R", "-f", f, "-j", "4", "all")
	cmd.Env = append(os.Environ(), "MAKEFLAGS=")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if _, err := os.Stat(g.nodes[19].argv[1]); err != nil {
		t.Fatal(err)
	}
}

func TestStats(t *testing.T) {
	if m := median([]float64{3, 1, 2}); m != 2 {
		t.Errorf("median %v", m)
	}
	if m := median([]float64{4, 1, 2, 3}); m != 2.5 {
		t.Errorf("median %v", m)
	}
	if !math.IsNaN(median(nil)) {
		t.Error("median of nothing")
	}
	w := &workload{g: independent(100, "true"), targets: map[string]float64{rRun: 1.25}}
	r := &result{Runner: rRun, Jobs: 100, TimesS: []float64{1.2, 1.0, 3}, FloorS: []float64{1, 1, 1}}
	r.summarize(w)
	if r.MinS != 1 || r.MedianS != 1.2 || math.Abs(r.RatioMedian-1.2) > 1e-9 || math.Abs(r.OverheadMsPerJob-2) > 1e-9 || !*r.Met {
		t.Errorf("%+v", r)
	}
	var b bytes.Buffer
	writeBenchText(&b, []*result{r}, nil)
	if !strings.Contains(b.String(), "/runner=run-") || !strings.Contains(b.String(), "1.2000 ratio") {
		t.Errorf("bench text:\n%s", b.String())
	}
}

func TestFlags(t *testing.T) {
	for _, args := range [][]string{{"-mode", "slow"}, {"-rounds", "0"}, {"-only", "("}, {"-scale", "maybe"}, {"extra"}} {
		if _, err := parseFlags(args, io.Discard); err == nil {
			t.Errorf("%q: no error", args)
		}
	}
	c, err := parseFlags([]string{"-mode", "full"}, io.Discard)
	if err != nil || !c.scale || c.rounds != 5 {
		t.Errorf("full: %+v, %v", c, err)
	}
	if code := run(context.Background(), []string{"-bin", filepath.Join(t.TempDir(), "none")}, io.Discard, io.Discard); code != 1 {
		t.Errorf("missing binary: exit %d", code)
	}
}

// sdiag's output (Slurm 22.05, abridged): the job counters and the RPC
// statistics by message type are read; daemon and bench RPCs are not
// counted as the client's; differences make rates.
func TestSdiag(t *testing.T) {
	reading := func(submitted, jobInfo, sbatch, stats, complete int) string {
		return strings.Join([]string{
			"*******************************************************",
			"sdiag output at Sat Dec 05 20:05:23 2026 (1796501123)",
			"Jobs submitted: " + itoa(submitted),
			"Jobs started:   0",
			"Remote Procedure Call statistics by message type",
			"	REQUEST_SUBMIT_BATCH_JOB                ( 4003) count:" + itoa(sbatch) + "    ave_time:1813   total_time:362672",
			"	REQUEST_COMPLETE_BATCH_SCRIPT           ( 5018) count:" + itoa(complete) + "    ave_time:2013   total_time:402780",
			"	REQUEST_JOB_INFO                        ( 2003) count:" + itoa(jobInfo) + "      ave_time:2643   total_time:23793",
			"	REQUEST_PARTITION_INFO                  ( 2009) count:" + itoa(jobInfo) + "      ave_time:291    total_time:2624",
			"	REQUEST_STATS_INFO                      ( 2035) count:" + itoa(stats) + "      ave_time:773    total_time:5417",
			"	MESSAGE_EPILOG_COMPLETE                 ( 6012) count:2      ave_time:732    total_time:1465",
			"",
			"Remote Procedure Call statistics by user",
			"	root            (       0) count:429    ave_time:1863   total_time:799651",
			"",
			"Pending RPC statistics",
			"	No pending RPCs",
		}, "\n")
	}
	sub, rpc, err := parseSdiag(reading(10, 3, 10, 1, 4))
	if err != nil || sub != 10 || rpc["REQUEST_JOB_INFO"] != 3 || rpc["REQUEST_SUBMIT_BATCH_JOB"] != 10 || rpc["MESSAGE_EPILOG_COMPLETE"] != 2 || len(rpc) != 6 {
		t.Fatalf("parseSdiag: %d %v %v", sub, rpc, err)
	}
	if _, _, err := parseSdiag("sdiag: error: something\n"); err == nil {
		t.Error("parseSdiag of no statistics: no error")
	}
	read := func(at time.Time, s string) sdiagReading {
		sub, rpc, err := parseSdiag(s)
		if err != nil {
			t.Fatal(err)
		}
		return sdiagReading{at: at, submitted: sub, rpc: rpc}
	}
	t0 := time.Now()
	d := delta(read(t0, reading(10, 3, 10, 1, 4)), read(t0.Add(2*time.Minute), reading(110, 7, 110, 9, 90)))
	// 4 squeue (JOB_INFO + PARTITION_INFO each) and 100 sbatch; the bench's
	// sdiag calls and slurmd's completions are not the client's.
	if d.Submitted != 100 || d.Queries != 4 || d.Calls != 108 || d.QueriesPerMin != 2 || d.CallsPerMin != 54 || d.Reset {
		t.Errorf("delta: %+v", d)
	}
	if d := delta(read(t0, reading(110, 7, 110, 9, 90)), read(t0.Add(time.Minute), reading(0, 1, 0, 1, 0))); !d.Reset {
		t.Errorf("counters reset in between: %+v", d)
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

// slurm-load runs only when asked for: -only naming it, or full mode.
func TestSlurmLoadAsked(t *testing.T) {
	for _, c := range []struct {
		args []string
		want bool
	}{
		{nil, false},
		{[]string{"-only", "W1-1k"}, false},
		{[]string{"-only", "slurm-load"}, true},
		{[]string{"-mode", "full"}, true},
		{[]string{"-mode", "full", "-only", "W1"}, false},
	} {
		cfg, err := parseFlags(c.args, io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		if cfg.slurmLoad != c.want {
			t.Errorf("%q: slurm-load %v, want %v", c.args, cfg.slurmLoad, c.want)
		}
	}
}
