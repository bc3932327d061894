package tpu

import (
	"fmt"
	"strconv"
	"strings"
)

// TopologyKind is "ring" or "torus".
type TopologyKind string

const (
	KindRing  TopologyKind = "ring"
	KindTorus TopologyKind = "torus"
)

// MaxDevices bounds the size of a mesh.
const MaxDevices = 1024

// Topology is the shape of a mesh.
//
// ring:N is N chips on a cycle of direct ICI links: consecutive ranks and
// rank N-1 with rank 0 are neighbours. On hardware it is a Hamiltonian cycle
// of a slice (a 2xK slice has one using only nearest-neighbour links, with or
// without wraparound), so every hop is one physical link.
//
// torus:XxY is X*Y chips on a 2D grid; rank = y*X + x. Neighbours along each
// dimension are linked; whether the last and first chip of a dimension are
// linked is the profile's wraparound rule.
type Topology struct {
	Kind TopologyKind
	X, Y int // ring:N has X = N, Y = 1
}

// ParseTopology parses "ring:N" or "torus:XxY".
func ParseTopology(s string) (Topology, error) {
	kind, dims, ok := strings.Cut(s, ":")
	if !ok {
		return Topology{}, fmt.Errorf("tpu: topology %q: want ring:N or torus:XxY", s)
	}
	atoi := func(v string) (int, error) {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			return 0, fmt.Errorf("tpu: topology %q: dimension %q is not a positive integer", s, v)
		}
		return n, nil
	}
	var t Topology
	switch TopologyKind(kind) {
	case KindRing:
		n, err := atoi(dims)
		if err != nil {
			return Topology{}, err
		}
		t = Topology{Kind: KindRing, X: n, Y: 1}
	case KindTorus:
		xs, ys, ok := strings.Cut(dims, "x")
		if !ok {
			return Topology{}, fmt.Errorf("tpu: topology %q: want torus:XxY", s)
		}
		x, err := atoi(xs)
		if err != nil {
			return Topology{}, err
		}
		y, err := atoi(ys)
		if err != nil {
			return Topology{}, err
		}
		t = Topology{Kind: KindTorus, X: x, Y: y}
	default:
		return Topology{}, fmt.Errorf("tpu: topology %q: unknown kind %q (want ring or torus)", s, kind)
	}
	if err := t.Validate(); err != nil {
		return Topology{}, err
	}
	return t, nil
}

// Validate checks the kind and the size bounds.
func (t Topology) Validate() error {
	switch t.Kind {
	case KindRing:
		if t.Y != 1 {
			return fmt.Errorf("tpu: ring topology with Y = %d, want 1", t.Y)
		}
	case KindTorus:
	default:
		return fmt.Errorf("tpu: unknown topology kind %q", t.Kind)
	}
	if t.X < 1 || t.Y < 1 || t.X*t.Y > MaxDevices {
		return fmt.Errorf("tpu: topology %dx%d: want 1..%d devices", t.X, t.Y, MaxDevices)
	}
	return nil
}

// Size is the number of devices.
func (t Topology) Size() int { return t.X * t.Y }

// String is the form ParseTopology accepts.
func (t Topology) String() string {
	if t.Kind == KindRing {
		return fmt.Sprintf("ring:%d", t.X)
	}
	return fmt.Sprintf("torus:%dx%d", t.X, t.Y)
}

// Coord returns the (x, y) coordinates of a rank.
func (t Topology) Coord(rank int) (x, y int) { return rank % t.X, rank / t.X }

// Rank returns the rank at (x, y).
func (t Topology) Rank(x, y int) int { return y*t.X + x }

// Rows returns, for each y, the ranks of that row in x order: the rings the
// first phase of a 2D torus AllReduce runs on.
func (t Topology) Rows() [][]int {
	rows := make([][]int, t.Y)
	for y := range rows {
		for x := 0; x < t.X; x++ {
			rows[y] = append(rows[y], t.Rank(x, y))
		}
	}
	return rows
}

// Cols returns, for each x, the ranks of that column in y order.
func (t Topology) Cols() [][]int {
	cols := make([][]int, t.X)
	for x := range cols {
		for y := 0; y < t.Y; y++ {
			cols[x] = append(cols[x], t.Rank(x, y))
		}
	}
	return cols
}

// RingOrder is the order of all ranks around the mesh's main ring: 0..N-1 on
// a ring topology; on a torus a snake (boustrophedon) over the rows, whose
// hops are all nearest-neighbour links except the closing one.
func (t Topology) RingOrder() []int {
	order := make([]int, 0, t.Size())
	if t.Kind == KindRing || t.Y == 1 {
		for r := 0; r < t.Size(); r++ {
			order = append(order, r)
		}
		return order
	}
	for y := 0; y < t.Y; y++ {
		for i := 0; i < t.X; i++ {
			x := i
			if y%2 == 1 {
				x = t.X - 1 - i
			}
			order = append(order, t.Rank(x, y))
		}
	}
	return order
}
