package dashboard

import (
	"fmt"
	"sort"
	"strconv"

	"github.com/somaflow/somaflow/model"
)

// Graph drawing limits: a workflow of any size is drawn with at most
// maxNodes boxes (groups collapsed, then jobs outside groups gathered by
// level) and maxEdges arrows.
const (
	maxNodes = 150
	maxEdges = 3000
)

// Box sizes of the drawing, in pixels.
const (
	nodeW, nodeH   = 150, 34
	gapX, gapY     = 20, 46
	margin         = 10
	labelMaxRunes  = 20
	nodeKindJob    = "job"
	nodeKindGroup  = "group"
	nodeKindLevel  = "level"
	barH           = 6
	barY           = nodeH - barH - 6
	edgeCurve      = 22
	graphMinHeight = 60
)

// gnode is a box of the drawing: one job, a collapsed group, or the jobs
// outside groups of one level when there are too many to draw one by one.
type gnode struct {
	kind  string
	label string
	job   int   // the job of a job box
	jobs  []int // the jobs of a group or level box
	layer int
	x, y  int
}

// layout is a workflow's drawing without colours: computed once per
// workflow definition, coloured at each request from the job categories.
type layout struct {
	nodes        []gnode
	nodeOf       []int32 // job index -> box
	edges        [][2]int32
	hiddenEdges  int
	width        int
	height       int
	collapsed    bool // some groups are drawn as one box
	jobCount     int
	groupsOfJobs int
}

// groupJobs returns the jobs of group gi, transitively (memoised; a group
// met again inside itself adds nothing).
func groupJobs(w *model.Workflow, gi int, memo map[int][]int, seen map[int]bool) []int {
	if js, ok := memo[gi]; ok {
		return js
	}
	if gi < 0 || gi >= len(w.Groups) || w.Groups[gi] == nil || seen[gi] {
		return nil
	}
	seen[gi] = true
	var js []int
	for _, e := range w.Groups[gi].Elements {
		if e.Kind == model.JobElement {
			if e.Index >= 0 && e.Index < len(w.Jobs) {
				js = append(js, e.Index)
			}
		} else {
			js = append(js, groupJobs(w, e.Index, memo, seen)...)
		}
	}
	memo[gi] = js
	return js
}

// jobDepths is each job's level: the length of the longest chain of jobs
// it waits for. A dependency on a group goes through one extra vertex per
// group (its jobs -> vertex -> dependants), so that group-to-group
// dependencies cost the groups' sizes, not their product.
func jobDepths(w *model.Workflow, memo map[int][]int) []int {
	n := len(w.Jobs)
	nv := n + 2*len(w.Groups) // jobs, then "group done" and "group may start" vertices
	succ := make([][]int32, nv)
	indeg := make([]int32, nv)
	add := func(a, b int) {
		succ[a] = append(succ[a], int32(b))
		indeg[b]++
	}
	out := map[int]bool{}
	in := map[int]bool{}
	end := func(e model.Element, from bool) int {
		if e.Kind == model.JobElement {
			if e.Index < 0 || e.Index >= n {
				return -1
			}
			return e.Index
		}
		if e.Index < 0 || e.Index >= len(w.Groups) {
			return -1
		}
		js := groupJobs(w, e.Index, memo, map[int]bool{})
		if from {
			v := n + 2*e.Index
			if !out[e.Index] {
				out[e.Index] = true
				for _, j := range js {
					add(j, v)
				}
			}
			return v
		}
		v := n + 2*e.Index + 1
		if !in[e.Index] {
			in[e.Index] = true
			for _, j := range js {
				add(v, j)
			}
		}
		return v
	}
	for _, d := range w.AllDependencies() {
		a, b := end(d.From, true), end(d.To, false)
		if a >= 0 && b >= 0 && a != b {
			add(a, b)
		}
	}
	depth := make([]int, nv)
	queue := make([]int32, 0, nv)
	for v := range nv {
		if indeg[v] == 0 {
			queue = append(queue, int32(v))
		}
	}
	for len(queue) > 0 {
		v := queue[0]
		queue = queue[1:]
		d := depth[v]
		if int(v) < n {
			d++
		}
		for _, s := range succ[v] {
			depth[s] = max(depth[s], d)
			if indeg[s]--; indeg[s] == 0 {
				queue = append(queue, s)
			}
		}
	}
	return depth[:n]
}

// newLayout lays a workflow out: groups from the top of its display tree
// are opened while the drawing stays under maxNodes boxes; if the jobs
// outside groups are too many, they are gathered in one box per level.
func newLayout(w *model.Workflow) *layout {
	n := len(w.Jobs)
	memo := map[int][]int{}
	depth := jobDepths(w, memo)
	// The top of the display tree: the root, then any job no group holds.
	var top []model.Element
	held := make([]bool, n)
	for _, e := range w.Root {
		if e.Kind == model.GroupElement && e.Index >= 0 && e.Index < len(w.Groups) {
			top = append(top, e)
			for _, j := range groupJobs(w, e.Index, memo, map[int]bool{}) {
				held[j] = true
			}
		} else if e.Kind == model.JobElement && e.Index >= 0 && e.Index < n && !held[e.Index] {
			top = append(top, e)
			held[e.Index] = true
		}
	}
	for i := range n {
		if !held[i] {
			top = append(top, model.Element{Kind: model.JobElement, Index: i})
		}
	}
	l := &layout{nodeOf: make([]int32, n), jobCount: n}
	// Open groups, breadth first, while the drawing stays small enough.
	visible := top
	for changed := true; changed; {
		changed = false
		var next []model.Element
		for i, e := range visible {
			if e.Kind == model.GroupElement {
				members := w.Groups[e.Index].Elements
				if len(next)+len(visible)-i-1+len(members) <= maxNodes {
					next = append(next, members...)
					changed = true
					continue
				}
			}
			next = append(next, e)
		}
		visible = next
	}
	var looseJobs []int
	var groups []model.Element
	for _, e := range visible {
		if e.Kind == model.JobElement {
			if e.Index >= 0 && e.Index < n {
				looseJobs = append(looseJobs, e.Index)
			}
		} else if e.Index >= 0 && e.Index < len(w.Groups) {
			groups = append(groups, e)
		}
	}
	l.collapsed = len(groups) > 0
	for i := range l.nodeOf {
		l.nodeOf[i] = -1
	}
	addBox := func(g gnode) {
		id := int32(len(l.nodes))
		if g.kind == nodeKindJob {
			l.nodeOf[g.job] = id
			g.layer = depth[g.job]
		} else {
			g.layer = -1
			for _, j := range g.jobs {
				l.nodeOf[j] = id
				if g.layer < 0 || depth[j] < g.layer {
					g.layer = depth[j]
				}
			}
			if g.layer < 0 {
				g.layer = 0
			}
		}
		l.nodes = append(l.nodes, g)
	}
	byLevel := func(jobs []int, what string) {
		levels := map[int][]int{}
		for _, j := range jobs {
			levels[depth[j]] = append(levels[depth[j]], j)
		}
		keys := make([]int, 0, len(levels))
		for k := range levels {
			keys = append(keys, k)
		}
		sort.Ints(keys)
		for _, k := range keys {
			addBox(gnode{kind: nodeKindLevel, label: fmt.Sprintf("%s, level %d", what, k), jobs: levels[k]})
		}
	}
	switch {
	case len(groups) > maxNodes:
		// Too many groups even closed: every job by level.
		all := make([]int, n)
		for i := range all {
			all[i] = i
		}
		byLevel(all, "jobs")
		l.collapsed = true
	default:
		for _, g := range groups {
			js := groupJobs(w, g.Index, memo, map[int]bool{})
			addBox(gnode{kind: nodeKindGroup, label: w.Groups[g.Index].Name, jobs: js})
		}
		if len(looseJobs)+len(groups) > maxNodes {
			byLevel(looseJobs, "loose")
			l.collapsed = true
		} else {
			for _, j := range looseJobs {
				addBox(gnode{kind: nodeKindJob, label: w.JobLabel(j), job: j})
			}
		}
	}
	l.edges, l.hiddenEdges = boxEdges(w, l.nodeOf, memo)
	l.place()
	return l
}

// boxEdges maps the dependencies onto boxes, once each, at most maxEdges.
func boxEdges(w *model.Workflow, nodeOf []int32, memo map[int][]int) ([][2]int32, int) {
	boxes := map[int][]int32{}
	boxesOf := func(e model.Element) []int32 {
		if e.Kind == model.JobElement {
			if e.Index < 0 || e.Index >= len(nodeOf) || nodeOf[e.Index] < 0 {
				return nil
			}
			return []int32{nodeOf[e.Index]}
		}
		if bs, ok := boxes[e.Index]; ok {
			return bs
		}
		seen := map[int32]bool{}
		var bs []int32
		for _, j := range groupJobs(w, e.Index, memo, map[int]bool{}) {
			if b := nodeOf[j]; b >= 0 && !seen[b] {
				seen[b] = true
				bs = append(bs, b)
			}
		}
		boxes[e.Index] = bs
		return bs
	}
	seen := map[[2]int32]bool{}
	var edges [][2]int32
	hidden := 0
	for _, d := range w.AllDependencies() {
		for _, a := range boxesOf(d.From) {
			for _, b := range boxesOf(d.To) {
				k := [2]int32{a, b}
				if a == b || seen[k] {
					continue
				}
				seen[k] = true
				if len(edges) >= maxEdges {
					hidden++
					continue
				}
				edges = append(edges, k)
			}
		}
	}
	return edges, hidden
}

// place gives boxes their rows (levels, made dense) and positions in them
// (one pass of the barycentre heuristic: a box goes near its parents).
func (l *layout) place() {
	levels := map[int]bool{}
	for _, g := range l.nodes {
		levels[g.layer] = true
	}
	keys := make([]int, 0, len(levels))
	for k := range levels {
		keys = append(keys, k)
	}
	sort.Ints(keys)
	rank := map[int]int{}
	for i, k := range keys {
		rank[k] = i
	}
	rows := make([][]int, len(keys))
	for i := range l.nodes {
		r := rank[l.nodes[i].layer]
		l.nodes[i].layer = r
		rows[r] = append(rows[r], i)
	}
	parents := make([][]int32, len(l.nodes))
	for _, e := range l.edges {
		parents[e[1]] = append(parents[e[1]], e[0])
	}
	pos := make([]float64, len(l.nodes))
	widest := 0
	for _, row := range rows {
		widest = max(widest, len(row))
	}
	for r, row := range rows {
		if r > 0 {
			key := make(map[int]float64, len(row))
			for _, v := range row {
				sum, k := 0.0, 0
				for _, p := range parents[v] {
					if l.nodes[p].layer < r {
						sum += pos[p]
						k++
					}
				}
				if k > 0 {
					key[v] = sum / float64(k)
				} else {
					key[v] = float64(v)
				}
			}
			sort.SliceStable(row, func(a, b int) bool { return key[row[a]] < key[row[b]] })
		}
		offset := float64(widest-len(row)) / 2
		for i, v := range row {
			pos[v] = offset + float64(i)
			l.nodes[v].x = margin + int(pos[v]*float64(nodeW+gapX))
			l.nodes[v].y = margin + r*(nodeH+gapY)
		}
	}
	l.width = 2*margin + widest*(nodeW+gapX) - gapX
	l.height = max(graphMinHeight, 2*margin+len(rows)*(nodeH+gapY)-gapY)
}

// graphView is the drawing coloured by the jobs' categories, as the
// templates show it.
type graphView struct {
	Width, Height int
	Nodes         []nodeView
	Edges         []string // SVG path data
	HiddenEdges   int
	Collapsed     bool
	Jobs          int
}

type nodeView struct {
	X, Y      int
	Class     string
	Label     string
	Title     string
	Href      string
	Kind      string
	Segments  []segment
	LabelX    int
	LabelY    int
	BarY      int
	W, H      int
	CountText string
	CountX    int
}

type segment struct {
	X, Y, W int
	Class   string
}

// view colours the layout with a snapshot's categories; href links a job
// box to its page ("" for no link).
func (l *layout) view(s *snapshot, href func(job int) string) *graphView {
	g := &graphView{Width: l.width, Height: l.height, HiddenEdges: l.hiddenEdges, Collapsed: l.collapsed, Jobs: l.jobCount}
	for _, nd := range l.nodes {
		v := nodeView{X: nd.x, Y: nd.y, W: nodeW, H: nodeH, LabelX: nd.x + 6, LabelY: nd.y + 15, BarY: nd.y + barY, Kind: nd.kind}
		v.Label = shorten(nd.label, labelMaxRunes)
		if nd.kind == nodeKindJob {
			cat := catWaiting
			if nd.job < len(s.cats) {
				cat = s.cats[nd.job]
			}
			v.Class = "node cat-" + catNames[cat]
			v.Title = nd.label + ": " + catNames[cat]
			v.LabelY = nd.y + 21
			if href != nil {
				v.Href = href(nd.job)
			}
		} else {
			var counts [numCats]int
			for _, j := range nd.jobs {
				if j < len(s.cats) {
					counts[s.cats[j]]++
				}
			}
			v.Class = "node box-" + nd.kind
			v.CountText = strconv.Itoa(len(nd.jobs))
			v.Label = shorten(nd.label, labelMaxRunes-5)
			v.CountX, v.LabelY = nd.x+nodeW-6, nd.y+14
			v.Title = nd.label + ":"
			inner := nodeW - 8
			acc := 0
			for k := category(0); k < numCats; k++ {
				if counts[k] == 0 {
					continue
				}
				x0 := nd.x + 4 + acc*inner/max(1, len(nd.jobs))
				acc += counts[k]
				x1 := nd.x + 4 + acc*inner/max(1, len(nd.jobs))
				v.Segments = append(v.Segments, segment{X: x0, Y: nd.y + barY, W: max(1, x1-x0), Class: "cat-" + catNames[k]})
				v.Title += fmt.Sprintf(" %d %s", counts[k], catNames[k])
			}
		}
		g.Nodes = append(g.Nodes, v)
	}
	for _, e := range l.edges {
		a, b := l.nodes[e[0]], l.nodes[e[1]]
		x1, y1 := a.x+nodeW/2, a.y+nodeH
		x2, y2 := b.x+nodeW/2, b.y
		if b.y <= a.y { // same row or upwards: leave by the side
			y1 = a.y + nodeH/2
			y2 = b.y + nodeH/2
		}
		g.Edges = append(g.Edges, fmt.Sprintf("M%d %d C%d %d %d %d %d %d", x1, y1, x1, y1+edgeCurve, x2, y2-edgeCurve, x2, y2))
	}
	return g
}

// shorten cuts a label to n runes, with an ellipsis.
func shorten(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}
