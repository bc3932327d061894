package tp

import (
	"fmt"

	"github.com/equarx/equarx/collective"
	"github.com/equarx/equarx/cost"
	"github.com/equarx/equarx/tpu"
	"github.com/equarx/equarx/weights"
)

// NewEngine shards the model of src over a mesh of cfg.TP emulated devices
// of TPU profile cfg.TPU. Each rank reads only its slices of the weights.
// The engine does not take ownership of src.
func NewEngine(src weights.Source, cfg EngineConfig) (*Engine, error) {
	if src == nil {
		return nil, fmt.Errorf("tp: new engine: nil weight source")
	}
	mesh, cm, err := newMesh(cfg)
	if err != nil {
		return nil, err
	}
	return newEngine(src, cfg, &meshCluster{mesh: mesh}, cm)
}

// newMesh builds the emulated mesh of an engine configuration and the
// execution model that prices its work.
func newMesh(cfg EngineConfig) (*tpu.Mesh, *cost.Model, error) {
	if cfg.TP < 1 {
		return nil, nil, fmt.Errorf("tp: new engine: tp must be >= 1, got %d", cfg.TP)
	}
	if cfg.TPU == "" {
		return nil, nil, fmt.Errorf("tp: new engine: TPU profile is not set (one of %v)", tpu.ProfileNames())
	}
	if cfg.Topology == "" {
		cfg.Topology = fmt.Sprintf("ring:%d", cfg.TP)
	}
	topo, err := tpu.ParseTopology(cfg.Topology)
	if err != nil {
		return nil, nil, fmt.Errorf("tp: new engine: %w", err)
	}
	if topo.Size() != cfg.TP {
		return nil, nil, fmt.Errorf("tp: new engine: topology %s has %d devices, tp is %d", cfg.Topology, topo.Size(), cfg.TP)
	}
	prof, err := tpu.LoadProfile(cfg.TPU)
	if err != nil {
		return nil, nil, fmt.Errorf("tp: new engine: %w", err)
	}
	cm, err := cost.NewModel(cfg.Exec, prof)
	if err != nil {
		return nil, nil, fmt.Errorf("tp: new engine: %w", err)
	}
	// Collectives run on the execution model's network (ICI derating).
	mesh, err := tpu.NewMesh(topo, cm.NetworkProfile())
	if err != nil {
		return nil, nil, fmt.Errorf("tp: new engine: %w", err)
	}
	return mesh, cm, nil
}

// meshCluster runs the engine on a tpu.Mesh with collective communicators.
type meshCluster struct{ mesh *tpu.Mesh }

func (c *meshCluster) Size() int { return c.mesh.Size() }
func (c *meshCluster) Local() []int {
	rs := make([]int, c.mesh.Size())
	for i := range rs {
		rs[i] = i
	}
	return rs
}
func (c *meshCluster) Device(r int) device { return c.mesh.Device(r) }
func (c *meshCluster) SyncClocks() float64 { return c.mesh.SyncClocks() }
func (c *meshCluster) Mesh() *tpu.Mesh     { return c.mesh }

func (c *meshCluster) NewGroup() ([]communicator, error) {
	cs, err := collective.NewGroup(c.mesh)
	if err != nil {
		return nil, err
	}
	out := make([]communicator, len(cs))
	for i, cm := range cs {
		out[i] = cm
	}
	return out, nil
}
