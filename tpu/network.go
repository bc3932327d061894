package tpu

import "fmt"

// Link is one direction of a physical ICI link between neighbouring chips.
type Link struct{ From, To int }

// Network is the link graph of a topology under a profile: the directed
// links, and the route (a list of link ids) between every pair of devices.
// It holds no mutable state.
type Network struct {
	topo   Topology
	prof   Profile
	links  []Link
	out    [][]int // link ids leaving each device
	routes [][][]int
}

// NewNetwork builds the links and routes of a topology under a profile.
// Routing is dimension-ordered (x, then y); along a dimension with a
// wraparound link the shorter way round is taken (ties go up), otherwise the
// only way along the line.
func NewNetwork(topo Topology, prof Profile) (*Network, error) {
	if err := topo.Validate(); err != nil {
		return nil, err
	}
	if err := prof.Validate(); err != nil {
		return nil, err
	}
	n := topo.Size()
	nw := &Network{topo: topo, prof: prof, out: make([][]int, n)}
	index := map[Link]int{}
	add := func(a, b int) {
		if a == b {
			return
		}
		l := Link{a, b}
		if _, ok := index[l]; ok {
			return
		}
		index[l] = len(nw.links)
		nw.out[a] = append(nw.out[a], len(nw.links))
		nw.links = append(nw.links, l)
	}
	wrapX, wrapY := nw.wraps()
	for r := 0; r < n; r++ {
		x, y := topo.Coord(r)
		if x+1 < topo.X {
			add(r, topo.Rank(x+1, y))
			add(topo.Rank(x+1, y), r)
		} else if wrapX {
			add(r, topo.Rank(0, y))
			add(topo.Rank(0, y), r)
		}
		if y+1 < topo.Y {
			add(r, topo.Rank(x, y+1))
			add(topo.Rank(x, y+1), r)
		} else if wrapY {
			add(r, topo.Rank(x, 0))
			add(topo.Rank(x, 0), r)
		}
	}
	nw.routes = make([][][]int, n)
	for s := 0; s < n; s++ {
		nw.routes[s] = make([][]int, n)
		for d := 0; d < n; d++ {
			if s == d {
				continue
			}
			path, err := nw.route(s, d, index, wrapX, wrapY)
			if err != nil {
				return nil, err
			}
			nw.routes[s][d] = path
		}
	}
	return nw, nil
}

// wraps tells which dimensions have wraparound links. A ring topology is a
// cycle by definition.
func (nw *Network) wraps() (x, y bool) {
	if nw.topo.Kind == KindRing {
		return nw.topo.X > 2, false
	}
	return nw.prof.wraps(nw.topo.X), nw.prof.wraps(nw.topo.Y)
}

func (nw *Network) route(s, d int, index map[Link]int, wrapX, wrapY bool) ([]int, error) {
	t := nw.topo
	sx, sy := t.Coord(s)
	dx, dy := t.Coord(d)
	var path []int
	cur := s
	step := func(next int) error {
		id, ok := index[Link{cur, next}]
		if !ok {
			return fmt.Errorf("tpu: no link %d->%d in %s", cur, next, t)
		}
		path = append(path, id)
		cur = next
		return nil
	}
	walk := func(from, to, size int, wrap bool, rank func(int) int) error {
		dir := 1
		if wrap {
			up := (to - from + size) % size
			if up > size-up {
				dir = -1
			}
		} else if to < from {
			dir = -1
		}
		for c := from; c != to; {
			c = (c + dir + size) % size
			if err := step(rank(c)); err != nil {
				return err
			}
		}
		return nil
	}
	if err := walk(sx, dx, t.X, wrapX, func(x int) int { return t.Rank(x, sy) }); err != nil {
		return nil, err
	}
	if err := walk(sy, dy, t.Y, wrapY, func(y int) int { return t.Rank(dx, y) }); err != nil {
		return nil, err
	}
	return path, nil
}

// Topology returns the network's topology.
func (nw *Network) Topology() Topology { return nw.topo }

// Profile returns the network's profile.
func (nw *Network) Profile() Profile { return nw.prof }

// Links returns all directed links; a link's id is its index.
func (nw *Network) Links() []Link { return append([]Link(nil), nw.links...) }

// NumLinks is the number of directed links.
func (nw *Network) NumLinks() int { return len(nw.links) }

// OutLinks returns the ids of the links leaving a device.
func (nw *Network) OutLinks(rank int) []int { return nw.out[rank] }

// Route returns the link ids a message from src to dst traverses, in order.
// The slice must not be modified.
func (nw *Network) Route(src, dst int) []int { return nw.routes[src][dst] }

// TransferSeconds is how long bytes occupy each link of a route (they are
// serialised once and cut through the intermediate chips).
func (nw *Network) TransferSeconds(bytes int64) float64 {
	return float64(bytes) / nw.prof.ICIBytesPerSecPerLinkDir
}

// LatencySeconds is the propagation latency of a route of the given hops.
func (nw *Network) LatencySeconds(hops int) float64 {
	return float64(hops) * nw.prof.HopLatencySeconds
}

// ElementwiseSeconds prices element-wise work moving bytes through HBM.
func (nw *Network) ElementwiseSeconds(bytes float64) float64 {
	return bytes / nw.prof.HBMBytesPerSec
}
