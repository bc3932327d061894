//go:build !amd64 || purego

package collective

// purego reports a build without vector kernels (the purego tag or an
// architecture other than amd64).
const purego = true

// wantAVX2Kernels reports whether this build has an AVX2 set for CPUs
// without AVX-512.
const wantAVX2Kernels = false
