//go:build !amd64 || purego

package kernels

func available() []*microKernel { return []*microKernel{kernGo} }

func fmaPeakLoop(variant string, n int) float64 { return 0 }
