package tp

import (
	"context"
	"github.com/equarx/equarx/tpu"
	"sync"

	"github.com/equarx/equarx/collective"
)

// exactCluster is a test cluster whose AllReduce sums in float64 in rank
// order, so every rank gets the same, correctly rounded float32 sum.
type exactCluster struct {
	devs []*countingDevice
}

type countingDevice struct {
	mu  sync.Mutex
	now float64
}

func (d *countingDevice) Advance(s float64) {
	d.mu.Lock()
	d.now += s
	d.mu.Unlock()
}

func (d *countingDevice) Now() float64 { d.mu.Lock(); defer d.mu.Unlock(); return d.now }

func newExactCluster(n int) *exactCluster {
	c := &exactCluster{}
	for range n {
		c.devs = append(c.devs, &countingDevice{})
	}
	return c
}

func (c *exactCluster) Size() int { return len(c.devs) }
func (c *exactCluster) Local() []int {
	rs := make([]int, len(c.devs))
	for i := range rs {
		rs[i] = i
	}
	return rs
}
func (c *exactCluster) Device(r int) device { return c.devs[r] }

// Mesh is nil: the exact cluster has no network to plan on (its engines
// are never batch invariant).
func (c *exactCluster) Mesh() *tpu.Mesh { return nil }
func (c *exactCluster) SyncClocks() float64 {
	var m float64
	for _, d := range c.devs {
		m = max(m, d.Now())
	}
	for _, d := range c.devs {
		d.mu.Lock()
		d.now = m
		d.mu.Unlock()
	}
	return m
}

func (c *exactCluster) NewGroup() ([]communicator, error) {
	g := &exactGroup{size: len(c.devs), bufs: make([][]float32, len(c.devs))}
	g.cond = sync.NewCond(&g.mu)
	out := make([]communicator, len(c.devs))
	for r := range out {
		out[r] = &exactComm{g: g, rank: r}
	}
	return out, nil
}

type exactGroup struct {
	size    int
	mu      sync.Mutex
	cond    *sync.Cond
	bufs    [][]float32
	arrived int
	gen     int
	aborted bool
}

type exactComm struct {
	g    *exactGroup
	rank int
}

func (c *exactComm) AllReduce(ctx context.Context, buf []float32, o collective.Options) (collective.Stats, error) {
	g := c.g
	stop := context.AfterFunc(ctx, func() {
		g.mu.Lock()
		g.aborted = true
		g.cond.Broadcast()
		g.mu.Unlock()
	})
	defer stop()
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.aborted {
		return collective.Stats{}, context.Canceled
	}
	gen := g.gen
	g.bufs[c.rank] = buf
	g.arrived++
	if g.arrived == g.size {
		for i := range buf {
			var s float64
			for _, b := range g.bufs {
				s += float64(b[i])
			}
			for _, b := range g.bufs {
				b[i] = float32(s)
			}
		}
		g.arrived = 0
		g.gen++
		g.cond.Broadcast()
	} else {
		for g.gen == gen && !g.aborted {
			g.cond.Wait()
		}
		if g.gen == gen {
			return collective.Stats{}, context.Canceled
		}
	}
	return collective.Stats{Codec: collective.CodecF32, Elements: len(buf), WireBytes: int64(4 * len(buf))}, nil
}
