package tp

import (
	"fmt"

	"github.com/equarx/equarx/tpu"
)

// SetFaultHook installs h on every link of the engine's device mesh (nil
// removes it), for fault-injection drills: the hook sees every message of
// every AllReduce and may drop, alter, delay it or panic. A prefill that
// hits a fault fails with an error and the next one runs on a fresh
// communicator group.
func (e *Engine) SetFaultHook(h tpu.FaultHook) error {
	mc, ok := e.cl.(*meshCluster)
	if !ok {
		return fmt.Errorf("tp: set fault hook: the engine does not run on a tpu mesh")
	}
	mc.mesh.SetFaultHook(h)
	return nil
}
