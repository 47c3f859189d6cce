package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
)

// node is one job of a benchmark graph, or a barrier (a group of jobs that
// others may wait for as a whole: a somaflow group, a phony make target).
type node struct {
	name    string
	argv    []string // nil for a barrier
	preds   []int    // nodes that must end before this one starts
	barrier bool
}

// graph is a benchmark workload's DAG, written out for every runner.
type graph struct {
	nodes []node
	// stages, when not nil, are sets of jobs that xargs can run one after
	// the other (each stage's jobs share one argv); nil: xargs cannot
	// express this graph.
	stages [][]int
}

// jobs counts the nodes that run a process.
func (g *graph) jobs() int {
	n := 0
	for _, nd := range g.nodes {
		if !nd.barrier {
			n++
		}
	}
	return n
}

// edges counts explicit dependency edges.
func (g *graph) edges() int {
	n := 0
	for _, nd := range g.nodes {
		n += len(nd.preds)
	}
	return n
}

// independent is n jobs running argv with no dependency.
func independent(n int, argv ...string) *graph {
	g := &graph{}
	stage := make([]int, n)
	for i := 0; i < n; i++ {
		g.nodes = append(g.nodes, node{name: "j" + strconv.Itoa(i), argv: argv})
		stage[i] = i
	}
	g.stages = [][]int{stage}
	return g
}

// chain is n jobs running argv, each after the previous one. xargs -P1 runs
// them in file order, which is the chain.
func chain(n int, argv ...string) *graph {
	g := independent(n, argv...)
	for i := 1; i < n; i++ {
		g.nodes[i].preds = []int{i - 1}
	}
	return g
}

// layers is nl layers of per jobs running argv, each layer after the whole
// previous one: through a group (one barrier per layer) when group is true,
// else through per*per explicit edges between consecutive layers.
func layers(nl, per int, group bool, argv ...string) *graph {
	g := &graph{}
	var prev []int // jobs of the previous layer
	barrier := -1  // the previous layer's barrier
	for l := 0; l < nl; l++ {
		var cur []int
		for k := 0; k < per; k++ {
			nd := node{name: fmt.Sprintf("l%dj%d", l, k), argv: argv}
			switch {
			case l == 0:
			case group:
				nd.preds = []int{barrier}
			default:
				nd.preds = prev
			}
			g.nodes = append(g.nodes, nd)
			cur = append(cur, len(g.nodes)-1)
		}
		if group && l < nl-1 {
			g.nodes = append(g.nodes, node{name: fmt.Sprintf("layer%d", l), barrier: true, preds: cur})
			barrier = len(g.nodes) - 1
		}
		g.stages = append(g.stages, cur)
		prev = cur
	}
	return g
}

// fanOut is one root job and n-1 jobs after it.
func fanOut(n int, argv ...string) *graph {
	g := independent(n, argv...)
	g.nodes[0].name = "root"
	root := []int{0} // shared: a million jobs need no million slices
	for i := 1; i < n; i++ {
		g.nodes[i].preds = root
	}
	g.stages = [][]int{{0}, g.stages[0][1:]}
	return g
}

var plainWord = regexp.MustCompile(`^[A-Za-z0-9._/+=-]+$`)

// checkWords refuses argv words that a Makefile recipe or xargs could
// reinterpret: the graphs hold plain words only.
func (g *graph) checkWords() error {
	for _, nd := range g.nodes {
		for _, w := range append([]string{nd.name}, nd.argv...) {
			if !plainWord.MatchString(w) {
				return fmt.Errorf("node %q: word %q is not a plain word", nd.name, w)
			}
		}
	}
	return nil
}

// writeNative writes g as a native somaflow workflow (JSON): barriers become
// groups, and a dependency on a barrier an `after` on the group.
func (g *graph) writeNative(w io.Writer, name string) error {
	if err := g.checkWords(); err != nil {
		return err
	}
	bw := bufio.NewWriterSize(w, 1<<20)
	fmt.Fprintf(bw, "{\"name\": %q,\n\"jobs\": {", name)
	first := true
	for _, nd := range g.nodes {
		if nd.barrier {
			continue
		}
		if !first {
			bw.WriteString(",")
		}
		first = false
		fmt.Fprintf(bw, "\n%q: {\"command\": [", nd.name)
		for i, a := range nd.argv {
			if i > 0 {
				bw.WriteString(", ")
			}
			fmt.Fprintf(bw, "%q", a)
		}
		bw.WriteString("]")
		if len(nd.preds) > 0 {
			bw.WriteString(", \"after\": [")
			for i, p := range nd.preds {
				if i > 0 {
					bw.WriteString(", ")
				}
				fmt.Fprintf(bw, "%q", g.nodes[p].name)
			}
			bw.WriteString("]")
		}
		bw.WriteString("}")
	}
	bw.WriteString("}")
	first = true
	for _, nd := range g.nodes {
		if !nd.barrier {
			continue
		}
		if first {
			bw.WriteString(",\n\"groups\": {")
		} else {
			bw.WriteString(",")
		}
		first = false
		fmt.Fprintf(bw, "\n%q: [", nd.name)
		for i, p := range nd.preds {
			if i > 0 {
				bw.WriteString(", ")
			}
			fmt.Fprintf(bw, "%q", g.nodes[p].name)
		}
		bw.WriteString("]")
	}
	if !first {
		bw.WriteString("}")
	}
	bw.WriteString("}\n")
	return bw.Flush()
}

// writeMakefile writes g as a Makefile whose target `all` runs every job:
// one phony target per node, barriers without a recipe. Recipes are plain
// words, which GNU make runs without a shell.
func (g *graph) writeMakefile(w io.Writer) error {
	if err := g.checkWords(); err != nil {
		return err
	}
	bw := bufio.NewWriterSize(w, 1<<20)
	bw.WriteString(".PHONY: all")
	for _, nd := range g.nodes {
		bw.WriteString(" " + nd.name)
	}
	bw.WriteString("\nall:")
	for _, nd := range g.nodes {
		if !nd.barrier {
			bw.WriteString(" " + nd.name)
		}
	}
	bw.WriteString("\n")
	for _, nd := range g.nodes {
		bw.WriteString(nd.name + ":")
		for _, p := range nd.preds {
			bw.WriteString(" " + g.nodes[p].name)
		}
		bw.WriteString("\n")
		if !nd.barrier {
			bw.WriteString("\t" + strings.Join(nd.argv, " ") + "\n")
		}
	}
	return bw.Flush()
}

// floor runs g with plain Go fork/exec, conc jobs at a time, in dependency
// order: the least any runner can take on this machine. With logs != "",
// each job's stdout and stderr go to new files in that directory (what
// somaflow does for every job), else to /dev/null.
func (g *graph) floor(ctx context.Context, conc int, env []string, logs string) error {
	n := len(g.nodes)
	succ := make([][]int, n)
	missing := make([]int, n)
	for i, nd := range g.nodes {
		missing[i] = len(nd.preds)
		for _, p := range nd.preds {
			succ[p] = append(succ[p], i)
		}
	}
	paths := map[string]string{}
	for _, nd := range g.nodes {
		if nd.barrier {
			continue
		}
		if _, ok := paths[nd.argv[0]]; !ok {
			p, err := exec.LookPath(nd.argv[0])
			if err != nil {
				return err
			}
			paths[nd.argv[0]] = p
		}
	}
	ready := make(chan int, n)
	type result struct {
		i   int
		err error
	}
	done := make(chan result, n)
	for k := 0; k < conc; k++ {
		go func() {
			for i := range ready {
				nd := g.nodes[i]
				cmd := exec.CommandContext(ctx, paths[nd.argv[0]], nd.argv[1:]...)
				cmd.Env = env
				err := runLogged(cmd, logs, nd.name)
				if err != nil {
					err = fmt.Errorf("job %s: %w", nd.name, err)
				}
				done <- result{i, err}
			}
		}()
	}
	defer close(ready)
	pending := 0
	var finish func(i int)
	// release marks node i ended and hands out what became ready; barriers
	// end at once.
	finish = func(i int) {
		for _, s := range succ[i] {
			missing[s]--
			if missing[s] == 0 {
				start(g, s, ready, &pending, finish)
			}
		}
	}
	for i := range g.nodes {
		if missing[i] == 0 {
			start(g, i, ready, &pending, finish)
		}
	}
	var errs []error
	for pending > 0 {
		r := <-done
		pending--
		if r.err != nil {
			errs = append(errs, r.err)
		}
		finish(r.i)
	}
	return errors.Join(errs...)
}

func start(g *graph, i int, ready chan<- int, pending *int, finish func(int)) {
	if g.nodes[i].barrier {
		finish(i)
		return
	}
	*pending++
	ready <- i
}

// xargsStageFiles writes one input file per stage for xargs (one line per
// job) and returns their paths.
func (g *graph) xargsStageFiles(dir string) ([]string, error) {
	if g.stages == nil {
		return nil, nil
	}
	var files []string
	for k, st := range g.stages {
		var b strings.Builder
		for _, i := range st {
			b.WriteString(g.nodes[i].name + "\n")
		}
		p := fmt.Sprintf("%s/xargs-stage%d.txt", dir, k)
		if err := os.WriteFile(p, []byte(b.String()), 0o600); err != nil {
			return nil, err
		}
		files = append(files, p)
	}
	return files, nil
}

// runLogged runs cmd with its stdout and stderr in new files dir/name.out
// and dir/name.err, created here as somaflow creates them (dir "": none).
func runLogged(cmd *exec.Cmd, dir, name string) error {
	if dir == "" {
		return cmd.Run()
	}
	var files []*os.File
	defer func() {
		for _, f := range files {
			f.Close()
		}
	}()
	for _, ext := range []string{".out", ".err"} {
		f, err := os.OpenFile(dir+"/"+name+ext, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
		if err != nil {
			return err
		}
		files = append(files, f)
	}
	cmd.Stdout, cmd.Stderr = files[0], files[1]
	return cmd.Run()
}
