package transport

import (
	"fmt"
	"os"
	"strconv"
)

// Launch is where this process sits in a multi-process group: its node
// rank, the number of nodes, and the master (node 0's) address, as a
// launcher told it.
type Launch struct {
	NodeRank   int
	Nodes      int
	MasterAddr string // "" when the launcher does not say
	MasterPort int    // 0 when the launcher does not say
	Source     string // which launcher's variables were read
}

// DefaultMasterPort is the master port when neither a flag nor the
// launcher gives one (the port torchrun uses too).
const DefaultMasterPort = 29500

// launchers lists the environments read, first match wins: torchrun,
// Open MPI's mpirun, Slurm's srun, Kubernetes LeaderWorkerSet.
var launchers = []struct {
	name, rank, size, addr, port string
}{
	{"torchrun", "RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"},
	{"mpirun (Open MPI)", "OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"},
	{"srun (Slurm)", "SLURM_PROCID", "SLURM_NTASKS", "MASTER_ADDR", "MASTER_PORT"},
	{"LeaderWorkerSet", "LWS_WORKER_INDEX", "LWS_GROUP_SIZE", "LWS_LEADER_ADDRESS", "MASTER_PORT"},
}

// LaunchFromEnv reads the launcher variables of the environment getenv
// gives (os.Getenv when nil). It returns ok = false when no launcher's
// rank and size variables are both set, and an error when they are set but
// malformed.
func LaunchFromEnv(getenv func(string) string) (l Launch, ok bool, err error) {
	if getenv == nil {
		getenv = os.Getenv
	}
	for _, ln := range launchers {
		rs, ss := getenv(ln.rank), getenv(ln.size)
		if rs == "" || ss == "" {
			continue
		}
		l.Source = ln.name
		if l.NodeRank, err = strconv.Atoi(rs); err != nil {
			return l, true, fmt.Errorf("%s: %s=%q is not a number", ln.name, ln.rank, rs)
		}
		if l.Nodes, err = strconv.Atoi(ss); err != nil {
			return l, true, fmt.Errorf("%s: %s=%q is not a number", ln.name, ln.size, ss)
		}
		if l.Nodes < 1 || l.NodeRank < 0 || l.NodeRank >= l.Nodes {
			return l, true, fmt.Errorf("%s: rank %d of %d", ln.name, l.NodeRank, l.Nodes)
		}
		l.MasterAddr = getenv(ln.addr)
		if ln.addr != "MASTER_ADDR" && l.MasterAddr == "" {
			l.MasterAddr = getenv("MASTER_ADDR")
		}
		if p := getenv(ln.port); p != "" {
			if l.MasterPort, err = strconv.Atoi(p); err != nil || l.MasterPort < 1 || l.MasterPort > 65535 {
				return l, true, fmt.Errorf("%s: %s=%q is not a port", ln.name, ln.port, p)
			}
		}
		return l, true, nil
	}
	return l, false, nil
}
