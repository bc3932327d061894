//go:build openblas

package model

import "gonum.org/v1/netlib/blas/netlib"

func init() {
	sgemmImpls = append(sgemmImpls, sgemmImpl{name: "openblas", sgemm: netlib.Implementation{}.Sgemm, threads: func(n int) func() {
		setOpenBLASThreads(n)
		return func() { setOpenBLASThreads(1) }
	}})
}
