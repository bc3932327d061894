//go:build !openblas

package model

// BLAS names the BLAS behind every matrix product of this build: gonum's
// pure-Go implementation, gorgonia's default.
const BLAS = "gonum"
