package mask

import "sort"

// automaton is an Aho-Corasick matcher over byte strings. Transitions are
// sparse (sorted edge lists) except at the root, which is dense: most bytes
// of ordinary output leave the root at once, and a dense root keeps that
// path to one array load. Memory is O(total pattern bytes).
type automaton struct {
	root  [256]int32 // child of the root for each byte; 0 = stay at root
	edges [][]edge   // edges[n] sorted by byte (unused for the root)
	fail  []int32
	// longest[n] is the length of the longest pattern that is a suffix of
	// node n's string (0 if none): the only match at a position that
	// matters, because shorter matches ending there lie inside it.
	longest []int32
}

type edge struct {
	b     byte
	child int32
}

func (a *automaton) child(n int32, b byte) int32 {
	if n == 0 {
		return a.root[b]
	}
	es := a.edges[n]
	if len(es) <= 8 { // typical: patterns share few prefixes
		for _, e := range es {
			if e.b == b {
				return e.child
			}
		}
		return -1
	}
	i := sort.Search(len(es), func(i int) bool { return es[i].b >= b })
	if i < len(es) && es[i].b == b {
		return es[i].child
	}
	return -1
}

// build makes the automaton of the given (non-empty, distinct) patterns.
func build(patterns []string) *automaton {
	a := &automaton{edges: [][]edge{nil}, fail: []int32{0}, longest: []int32{0}}
	depth := []int32{0}
	for _, p := range patterns {
		n := int32(0)
		for i := 0; i < len(p); i++ {
			c := a.child(n, p[i])
			if c <= 0 {
				c = int32(len(a.edges))
				a.edges = append(a.edges, nil)
				a.fail = append(a.fail, 0)
				a.longest = append(a.longest, 0)
				depth = append(depth, depth[n]+1)
				a.addEdge(n, p[i], c)
			}
			n = c
		}
		a.longest[n] = int32(len(p))
	}
	a.link()
	return a
}

func (a *automaton) addEdge(n int32, b byte, c int32) {
	if n == 0 {
		a.root[b] = c
		return
	}
	es := append(a.edges[n], edge{b, c})
	sort.Slice(es, func(i, j int) bool { return es[i].b < es[j].b })
	a.edges[n] = es
}

// link computes failure links and longest-suffix-pattern lengths in
// breadth-first order, so a node's failure target is done before it.
func (a *automaton) link() {
	var queue []int32
	for b := 0; b < 256; b++ {
		if c := a.root[b]; c > 0 {
			queue = append(queue, c)
		}
	}
	for len(queue) > 0 {
		n := queue[0]
		queue = queue[1:]
		for _, e := range a.edges[n] {
			f := a.step(a.fail[n], e.b)
			a.fail[e.child] = f
			if a.longest[e.child] == 0 {
				a.longest[e.child] = a.longest[f]
			}
			queue = append(queue, e.child)
		}
	}
}

// step follows the goto function from n on b, falling back along failure
// links.
func (a *automaton) step(n int32, b byte) int32 {
	for {
		if c := a.child(n, b); c > 0 {
			return c
		}
		if n == 0 {
			return 0
		}
		n = a.fail[n]
	}
}

// scan returns the merged ranges of s covered by pattern matches.
func scan[T ~string | ~[]byte](a *automaton, s T) []Range {
	if a == nil {
		return nil
	}
	var out []Range
	n := int32(0)
	for i := 0; i < len(s); i++ {
		n = a.step(n, s[i])
		l := a.longest[n]
		if l == 0 {
			continue
		}
		out = merge(out, Range{i + 1 - int(l), i + 1})
	}
	return out
}

// merge adds r, whose end is not before any earlier range's end, merging
// it with the ranges it overlaps or touches.
func merge(out []Range, r Range) []Range {
	for len(out) > 0 && r.Start <= out[len(out)-1].End {
		last := out[len(out)-1]
		r.Start = min(r.Start, last.Start)
		out = out[:len(out)-1]
	}
	return append(out, r)
}
