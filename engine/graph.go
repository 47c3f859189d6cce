package engine

import "github.com/somaflow/somaflow/model"

// graph is a workflow's dependency graph at job level. Nodes 0..jobs-1 are
// the jobs; a group that ends a dependency gets two hidden barrier nodes
// (input and output), so that a dependency on a group of n jobs costs n+1
// edges, not n*m.
type graph struct {
	jobs  int
	succ  [][]int32
	preds []int32 // number of predecessors of each node
}

func buildGraph(def *model.Workflow) *graph {
	g := &graph{jobs: len(def.Jobs)}
	g.succ = make([][]int32, len(def.Jobs))
	groupNode := map[int]int{} // group index -> its input node; output = input+1
	add := func(from, to int) { g.succ[from] = append(g.succ[from], int32(to)) }
	var wire func(gi int) int
	wire = func(gi int) int {
		if n, ok := groupNode[gi]; ok {
			return n
		}
		in := len(g.succ)
		g.succ = append(g.succ, nil, nil)
		groupNode[gi] = in
		out := in + 1
		if gi < 0 || gi >= len(def.Groups) {
			return in
		}
		els := def.Groups[gi].Elements
		if len(els) == 0 {
			add(in, out)
		}
		for _, e := range els {
			switch {
			case e.Kind == model.GroupElement && e.Index >= 0 && e.Index < len(def.Groups):
				sub := wire(e.Index)
				add(in, sub)
				add(sub+1, out)
			case e.Kind == model.JobElement && e.Index >= 0 && e.Index < len(def.Jobs):
				add(in, e.Index)
				add(e.Index, out)
			}
		}
		return in
	}
	for _, d := range def.AllDependencies() {
		from, to := d.From.Index, d.To.Index
		if d.From.Kind == model.GroupElement {
			from = wire(d.From.Index) + 1
		}
		if d.To.Kind == model.GroupElement {
			to = wire(d.To.Index)
		}
		add(from, to)
	}
	g.preds = make([]int32, len(g.succ))
	for _, ss := range g.succ {
		for _, s := range ss {
			g.preds[s]++
		}
	}
	return g
}

func (g *graph) nodes() int { return len(g.succ) }

// hidden reports whether node v is a group barrier rather than a job.
func (g *graph) hidden(v int) bool { return v >= g.jobs }
