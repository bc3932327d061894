package main

import (
	"strings"
	"testing"
)

// --model synthetic:NAME is checked like a checkpoint before anything
// listens: a known shape passes, an unknown one is a usage error naming
// the shapes there are.
func TestCheckSyntheticModel(t *testing.T) {
	c := defaultConfig()
	c.Model, c.TP = "synthetic:stories260k", 4
	if mc, err := c.checkModel(); err != nil || mc.Dim != 64 {
		t.Fatalf("synthetic:stories260k: %+v %v", mc, err)
	}
	c.Model = "synthetic:no-such-shape"
	if _, err := c.checkModel(); err == nil || !strings.Contains(err.Error(), "known:") {
		t.Fatalf("unknown shape: %v", err)
	}
}

// The launcher's environment places the process when flags do not; flags
// win; a group needs a token and a tp that splits.
func TestDistResolve(t *testing.T) {
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	d := defaultDist()
	if err := d.resolve(env(map[string]string{"OMPI_COMM_WORLD_RANK": "2", "OMPI_COMM_WORLD_SIZE": "4", "EQUARX_CLUSTER_TOKEN": "t"}), 4); err != nil {
		t.Fatal(err)
	}
	if d.NNodes != 4 || d.NodeRank != 2 || d.MasterAddr != "127.0.0.1" || d.MasterPort != 29500 || d.Source != "mpirun (Open MPI)" {
		t.Fatalf("%+v", d)
	}
	d = defaultDist()
	d.NodeRank = 1
	if err := d.resolve(env(map[string]string{"RANK": "3", "WORLD_SIZE": "4", "EQUARX_CLUSTER_TOKEN": "t"}), 8); err != nil || d.NodeRank != 1 {
		t.Fatalf("flag over env: %+v %v", d, err)
	}
	d = defaultDist()
	if err := d.resolve(env(map[string]string{"RANK": "0", "WORLD_SIZE": "2"}), 2); err == nil || !strings.Contains(err.Error(), "EQUARX_CLUSTER_TOKEN") {
		t.Fatalf("no token: %v", err)
	}
	d = defaultDist()
	if err := d.resolve(env(map[string]string{"RANK": "0", "WORLD_SIZE": "3", "EQUARX_CLUSTER_TOKEN": "t"}), 4); err == nil || !strings.Contains(err.Error(), "does not split") {
		t.Fatalf("tp 4 over 3 nodes: %v", err)
	}
	d = defaultDist()
	if err := d.resolve(env(nil), 4); err != nil || d.NNodes != 1 || d.NodeRank != 0 {
		t.Fatalf("one process: %+v %v", d, err)
	}
}
