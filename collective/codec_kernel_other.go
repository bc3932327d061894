//go:build !amd64 || purego

package collective

func selectKernels() *codecKernels { return goKernels }

// availableKernels lists every kernel set this machine can run, the active
// one first.
func availableKernels() []*codecKernels { return []*codecKernels{goKernels} }
