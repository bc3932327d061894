// Package tpu emulates a mesh of TPU chips on a CPU: devices with coordinates,
// ring and 2D torus topologies with each generation's wraparound rule, links
// with a latency/bandwidth cost model, an in-process tagged transport, and a
// simulated clock per device driven by public TPU figures.
package tpu

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"strings"
)

// Wraparound rules of a profile.
const (
	// WrapAlways: every torus dimension of size > 2 has a wraparound link.
	WrapAlways = "always"
	// WrapFullPodDim: a dimension has a wraparound link only when it spans
	// the full pod dimension (PodDim chips), as on v5e/v6e slices.
	WrapFullPodDim = "full_pod_dim"
	// WrapNever: no wraparound links (a mesh).
	WrapNever = "never"
)

// Profile holds the public figures of one TPU generation that the cost model
// uses. Sources maps each JSON field name to where its value comes from, or to
// the assumption it rests on.
type Profile struct {
	Name string `json:"name"`
	// PeakBF16FLOPS is the peak dense bf16 matmul rate of one chip.
	PeakBF16FLOPS float64 `json:"peak_bf16_flops"`
	// HBMBytesPerSec is the HBM bandwidth of one chip; element-wise work is
	// priced as bytes read plus bytes written over this figure.
	HBMBytesPerSec float64 `json:"hbm_bytes_per_sec"`
	// ICIBytesPerSecPerLinkDir is the bandwidth of one ICI link in one
	// direction.
	ICIBytesPerSecPerLinkDir float64 `json:"ici_bytes_per_sec_per_link_dir"`
	// HopLatencySeconds is added once per link a message traverses.
	HopLatencySeconds float64 `json:"hop_latency_seconds"`
	LinksPerChip      int     `json:"links_per_chip"`
	// Wraparound is WrapAlways, WrapFullPodDim or WrapNever.
	Wraparound string `json:"wraparound"`
	// PodDim is the size of a full pod dimension (for WrapFullPodDim).
	PodDim  int               `json:"pod_dim"`
	Sources map[string]string `json:"sources"`
}

//go:embed profiles.json
var profilesJSON []byte

var profiles = mustParseProfiles(profilesJSON)

func mustParseProfiles(b []byte) map[string]Profile {
	m, err := parseProfiles(b)
	if err != nil {
		panic(err)
	}
	return m
}

func parseProfiles(b []byte) (map[string]Profile, error) {
	var m map[string]Profile
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("tpu: parse profiles: %w", err)
	}
	for k, p := range m {
		if p.Name != k {
			return nil, fmt.Errorf("tpu: profile key %q has name %q", k, p.Name)
		}
		if err := p.Validate(); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// Validate reports a profile with a missing or non-positive figure, an
// unknown wraparound rule, or a figure without a source.
func (p Profile) Validate() error {
	pos := map[string]float64{
		"peak_bf16_flops":                p.PeakBF16FLOPS,
		"hbm_bytes_per_sec":              p.HBMBytesPerSec,
		"ici_bytes_per_sec_per_link_dir": p.ICIBytesPerSecPerLinkDir,
		"links_per_chip":                 float64(p.LinksPerChip),
	}
	for _, k := range sortedKeys(pos) {
		if !(pos[k] > 0) {
			return fmt.Errorf("tpu: profile %q: %s = %g, want > 0", p.Name, k, pos[k])
		}
	}
	if !(p.HopLatencySeconds >= 0) {
		return fmt.Errorf("tpu: profile %q: hop_latency_seconds = %g, want >= 0", p.Name, p.HopLatencySeconds)
	}
	switch p.Wraparound {
	case WrapAlways, WrapNever:
	case WrapFullPodDim:
		if p.PodDim < 1 {
			return fmt.Errorf("tpu: profile %q: wraparound %q needs pod_dim >= 1", p.Name, p.Wraparound)
		}
	default:
		return fmt.Errorf("tpu: profile %q: wraparound %q (want %q, %q or %q)",
			p.Name, p.Wraparound, WrapAlways, WrapFullPodDim, WrapNever)
	}
	for _, k := range []string{"peak_bf16_flops", "hbm_bytes_per_sec", "ici_bytes_per_sec_per_link_dir",
		"hop_latency_seconds", "links_per_chip", "wraparound"} {
		if p.Sources[k] == "" {
			return fmt.Errorf("tpu: profile %q: no source for %s", p.Name, k)
		}
	}
	return nil
}

func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// ProfileNames lists the embedded profiles, sorted.
func ProfileNames() []string { return sortedKeys(profiles) }

// LoadProfile returns the embedded profile of a TPU generation ("v4", "v5e",
// "v5p", "v6e").
//
// A name ending in .json is a file holding one profile object (for example
// a CPU host and its Ethernet link, measured), validated like the built-in
// ones: every figure needs a source.
func LoadProfile(name string) (Profile, error) {
	if strings.HasSuffix(name, ".json") {
		b, err := os.ReadFile(name)
		if err != nil {
			return Profile{}, fmt.Errorf("tpu: profile file: %w", err)
		}
		var p Profile
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&p); err != nil {
			return Profile{}, fmt.Errorf("tpu: profile file %s: %w", name, err)
		}
		if err := p.Validate(); err != nil {
			return Profile{}, fmt.Errorf("tpu: profile file %s: %w", name, err)
		}
		return p, nil
	}
	p, ok := profiles[name]
	if !ok {
		return Profile{}, fmt.Errorf("tpu: unknown profile %q (known: %s)", name, strings.Join(ProfileNames(), ", "))
	}
	src := make(map[string]string, len(p.Sources))
	for k, v := range p.Sources {
		src[k] = v
	}
	p.Sources = src
	return p, nil
}

// wraps reports whether a torus dimension of the given size has a
// wraparound link under this profile.
func (p Profile) wraps(size int) bool {
	if size <= 2 {
		return false // a wraparound link would duplicate the direct one
	}
	switch p.Wraparound {
	case WrapAlways:
		return true
	case WrapFullPodDim:
		return size >= p.PodDim
	default:
		return false
	}
}
