package tpu

import (
	"fmt"
	"sync/atomic"

	"github.com/equarx/equarx/transport"
)

// Mesh is a set of emulated devices connected by a Network.
type Mesh struct {
	nw      *Network
	devices []*Device
	// linkFree[id] is the simulated time at which link id is next free. Only
	// the device the link leaves writes it.
	linkFree []float64
	epoch    atomic.Uint64
	hook     atomic.Pointer[FaultHook]
}

// Device is one emulated chip. A device is driven by one goroutine at a
// time: its clock and its outgoing links' state are not locked.
type Device struct {
	rank  int
	mesh  *Mesh
	clock float64
	inbox *transport.Inbox
}

// NewMesh creates the devices of a topology, all clocks at zero.
func NewMesh(topo Topology, prof Profile) (*Mesh, error) {
	nw, err := NewNetwork(topo, prof)
	if err != nil {
		return nil, fmt.Errorf("tpu: new mesh: %w", err)
	}
	m := &Mesh{nw: nw, linkFree: make([]float64, nw.NumLinks())}
	for r := 0; r < topo.Size(); r++ {
		m.devices = append(m.devices, &Device{rank: r, mesh: m, inbox: transport.NewInbox(r)})
	}
	return m, nil
}

// Size is the number of devices.
func (m *Mesh) Size() int { return len(m.devices) }

// Device returns the device of a rank; it panics on an out-of-range rank.
func (m *Mesh) Device(rank int) *Device { return m.devices[rank] }

// Topology returns the mesh's topology.
func (m *Mesh) Topology() Topology { return m.nw.topo }

// Profile returns the mesh's TPU profile.
func (m *Mesh) Profile() Profile { return m.nw.prof }

// Network returns the mesh's link graph and cost model.
func (m *Mesh) Network() *Network { return m.nw }

// NewEpoch returns a fresh epoch number. A communicator group tags all its
// messages with its epoch, so a new group never sees an old one's messages.
func (m *Mesh) NewEpoch() uint64 { return m.epoch.Add(1) }

// SyncClocks sets every device clock (and no link) to the latest one and
// returns it. Call it between batches, never concurrently with device work.
func (m *Mesh) SyncClocks() float64 {
	t := 0.0
	for _, d := range m.devices {
		t = max(t, d.clock)
	}
	for _, d := range m.devices {
		d.clock = t
	}
	return t
}

// ResetClocks sets every clock and link to time zero. Call it only while no
// device works.
func (m *Mesh) ResetClocks() {
	for _, d := range m.devices {
		d.clock = 0
	}
	for i := range m.linkFree {
		m.linkFree[i] = 0
	}
}

// Rank is the device's index in the mesh.
func (d *Device) Rank() int { return d.rank }

// Mesh returns the mesh the device belongs to.
func (d *Device) Mesh() *Mesh { return d.mesh }

// Advance moves the clock forward by seconds of work (package cost prices
// the work).
func (d *Device) Advance(seconds float64) {
	d.clock += seconds
}

// Now is the device's simulated time in seconds.
func (d *Device) Now() float64 { return d.clock }

// AdvanceTo moves the clock forward to t (never back).
func (d *Device) AdvanceTo(t float64) {
	if t > d.clock {
		d.clock = t
	}
}

// LinkFree returns the simulated time at which each of the device's
// outgoing links (Network.OutLinks order) is next free.
func (d *Device) LinkFree() []float64 {
	out := d.mesh.nw.OutLinks(d.rank)
	ts := make([]float64, len(out))
	for i, id := range out {
		ts[i] = d.mesh.linkFree[id]
	}
	return ts
}

// SetLinkFree records when the device's outgoing links (Network.OutLinks
// order) are next free; it ignores values earlier than the current ones.
func (d *Device) SetLinkFree(ts []float64) error {
	out := d.mesh.nw.OutLinks(d.rank)
	if len(ts) != len(out) {
		return fmt.Errorf("tpu: device %d: %d link times for %d links", d.rank, len(ts), len(out))
	}
	for i, id := range out {
		d.mesh.linkFree[id] = max(d.mesh.linkFree[id], ts[i])
	}
	return nil
}
