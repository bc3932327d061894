package server

import (
	"runtime"
	"runtime/debug"

	"golang.org/x/sys/cpu"

	"github.com/equarx/equarx/model"
)

// VersionInfo is the answer of GET /version and what cmd/serve --version
// prints: the build, the BLAS behind the matrix products, the CPU features
// the host offers, and, once a model is loaded, what is served on which
// mesh.
type VersionInfo struct {
	Version   string `json:"version"`  // module version, "(devel)" for a source build
	Commit    string `json:"commit"`   // vcs.revision of the build, "" when unknown (go run, no VCS)
	Modified  bool   `json:"modified"` // the build had uncommitted changes
	GoVersion string `json:"go_version"`
	BLAS      string `json:"blas"` // model.BLAS: gonum (pure Go) or openblas
	// CPU is what golang.org/x/sys/cpu detects. The collective's codec
	// kernels are Go loops; the Go compiler uses FMA where the target
	// allows, and OpenBLAS (if built in) picks its own kernels from these.
	CPU      CPUFeatures `json:"cpu"`
	Model    string      `json:"model,omitempty"`
	TP       int         `json:"tp,omitempty"`
	Topology string      `json:"topology,omitempty"`
	TPU      string      `json:"tpu,omitempty"`
}

// CPUFeatures are the x86 features that matter for the matrix and codec
// kernels (all false on other architectures).
type CPUFeatures struct {
	AVX2    bool `json:"avx2"`
	AVX512F bool `json:"avx512f"`
	FMA     bool `json:"fma"`
}

// Version describes this build and host.
func Version() VersionInfo {
	v := VersionInfo{
		Version:   "(unknown)",
		GoVersion: runtime.Version(),
		BLAS:      model.BLAS,
		CPU:       CPUFeatures{AVX2: cpu.X86.HasAVX2, AVX512F: cpu.X86.HasAVX512F, FMA: cpu.X86.HasFMA},
	}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return v
	}
	v.Version = bi.Main.Version
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			v.Commit = s.Value
		case "vcs.modified":
			v.Modified = s.Value == "true"
		}
	}
	return v
}
