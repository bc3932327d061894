//go:build !amd64 || purego

package collective

func selectKernels() *codecKernels { return goKernels }

// availableKernels lists every kernel set this machine can run, the active
// one first.
func availableKernels() []*codecKernels { return []*codecKernels{goKernels} }

// purego reports a build with the purego tag (or a non-amd64 one), where
// no vector kernels exist.
const purego = true

const wantAVX2Kernels = false
