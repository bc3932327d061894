package transport

import "testing"

func TestLaunchFromEnv(t *testing.T) {
	cases := []struct {
		name string
		env  map[string]string
		want Launch
		ok   bool
		bad  bool
	}{
		{"none", map[string]string{"MASTER_ADDR": "h"}, Launch{}, false, false},
		{"torchrun", map[string]string{"RANK": "2", "WORLD_SIZE": "4", "MASTER_ADDR": "10.0.0.1", "MASTER_PORT": "1234"},
			Launch{NodeRank: 2, Nodes: 4, MasterAddr: "10.0.0.1", MasterPort: 1234, Source: "torchrun"}, true, false},
		{"mpirun", map[string]string{"OMPI_COMM_WORLD_RANK": "0", "OMPI_COMM_WORLD_SIZE": "4"},
			Launch{NodeRank: 0, Nodes: 4, Source: "mpirun (Open MPI)"}, true, false},
		{"slurm", map[string]string{"SLURM_PROCID": "3", "SLURM_NTASKS": "4", "MASTER_ADDR": "n1"},
			Launch{NodeRank: 3, Nodes: 4, MasterAddr: "n1", Source: "srun (Slurm)"}, true, false},
		{"lws", map[string]string{"LWS_WORKER_INDEX": "1", "LWS_GROUP_SIZE": "2", "LWS_LEADER_ADDRESS": "leader.svc"},
			Launch{NodeRank: 1, Nodes: 2, MasterAddr: "leader.svc", Source: "LeaderWorkerSet"}, true, false},
		{"torchrun wins", map[string]string{"RANK": "1", "WORLD_SIZE": "2", "OMPI_COMM_WORLD_RANK": "0", "OMPI_COMM_WORLD_SIZE": "2"},
			Launch{NodeRank: 1, Nodes: 2, Source: "torchrun"}, true, false},
		{"rank out of range", map[string]string{"RANK": "4", "WORLD_SIZE": "4"}, Launch{}, true, true},
		{"not a number", map[string]string{"SLURM_PROCID": "x", "SLURM_NTASKS": "4"}, Launch{}, true, true},
		{"bad port", map[string]string{"RANK": "0", "WORLD_SIZE": "1", "MASTER_PORT": "99999"}, Launch{}, true, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			l, ok, err := LaunchFromEnv(func(k string) string { return c.env[k] })
			if ok != c.ok || (err != nil) != c.bad {
				t.Fatalf("ok %v err %v, want ok %v bad %v", ok, err, c.ok, c.bad)
			}
			if !c.bad && l != c.want {
				t.Fatalf("got %+v, want %+v", l, c.want)
			}
		})
	}
}
