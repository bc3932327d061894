package tp

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"

	"github.com/equarx/equarx/collective"
)

// SiteKind names one of the two reduced outputs of a transformer block.
type SiteKind string

const (
	SiteAttn SiteKind = "attn" // the attention output projection (wo)
	SiteMLP  SiteKind = "mlp"  // the MLP down projection (w_down)
)

// Setting is the codec and block size of one reduction.
type Setting struct {
	Codec     collective.CodecKind `json:"codec"`
	BlockSize int                  `json:"block_size,omitempty"` // 0 = the codec's default
}

func (s Setting) String() string {
	if s.BlockSize == 0 || !s.Codec.Quantized() {
		return string(s.Codec)
	}
	return fmt.Sprintf("%s/b%d", s.Codec, s.BlockSize)
}

// Rule overrides a policy's default for some layers and sites.
type Rule struct {
	// Layers is "all" (or ""), one index "5", or an inclusive range "0-3";
	// negative indices count from the last layer ("-1" is the last,
	// "-4--1" the last four).
	Layers string   `json:"layers,omitempty"`
	Site   SiteKind `json:"site,omitempty"` // "" = both sites
	Setting
}

// Policy chooses the codec of every reduction of a prefill: a default and
// rules, later rules winning. It is fixed per engine configuration: nothing
// in it depends on the batch.
type Policy struct {
	Name    string  `json:"name"`
	Default Setting `json:"default"`
	Rules   []Rule  `json:"rules,omitempty"`
	// BudgetKL, for a policy chosen automatically, is the error budget
	// (predicted mean KL from f32 per token) it was chosen for.
	BudgetKL float64 `json:"budget_kl,omitempty"`
}

// ErrPolicy is wrapped by every policy validation error.
var ErrPolicy = errors.New("invalid reduction policy")

// Uniform is the policy that uses one setting everywhere.
func Uniform(s Setting) *Policy {
	return &Policy{Name: s.String(), Default: s}
}

// layerRange resolves a rule's Layers for a model of n layers.
func layerRange(spec string, n int) (lo, hi int, err error) {
	spec = strings.TrimSpace(spec)
	if spec == "" || spec == "all" {
		return 0, n - 1, nil
	}
	idx := func(s string) (int, error) {
		v, err := strconv.Atoi(s)
		if err != nil {
			return 0, fmt.Errorf("layer %q is not an integer", s)
		}
		if v < 0 {
			v += n
		}
		if v < 0 || v >= n {
			return 0, fmt.Errorf("layer %s out of range for %d layers", s, n)
		}
		return v, nil
	}
	// "a-b" where a and b may be negative: split at a '-' that follows a digit.
	cut := -1
	for i := 1; i < len(spec); i++ {
		if spec[i] == '-' && spec[i-1] >= '0' && spec[i-1] <= '9' {
			cut = i
			break
		}
	}
	if cut < 0 {
		v, err := idx(spec)
		return v, v, err
	}
	if lo, err = idx(spec[:cut]); err != nil {
		return 0, 0, err
	}
	if hi, err = idx(spec[cut+1:]); err != nil {
		return 0, 0, err
	}
	if lo > hi {
		return 0, 0, fmt.Errorf("layer range %q is empty", spec)
	}
	return lo, hi, nil
}

func checkSetting(s Setting) error {
	if _, err := collective.ParseCodec(string(s.Codec)); err != nil {
		return err
	}
	if s.BlockSize < 0 {
		return fmt.Errorf("block size %d is negative", s.BlockSize)
	}
	return collective.CheckCodec(s.Codec, s.BlockSize)
}

// Validate checks the policy against a model of the given depth.
func (p *Policy) Validate(layers int) error {
	if p == nil {
		return fmt.Errorf("%w: nil", ErrPolicy)
	}
	if err := checkSetting(p.Default); err != nil {
		return fmt.Errorf("%w %q: default: %v", ErrPolicy, p.Name, err)
	}
	for i, r := range p.Rules {
		if _, _, err := layerRange(r.Layers, layers); err != nil {
			return fmt.Errorf("%w %q: rule %d: %v", ErrPolicy, p.Name, i, err)
		}
		switch r.Site {
		case "", SiteAttn, SiteMLP:
		default:
			return fmt.Errorf("%w %q: rule %d: site %q (want %q, %q or empty for both)", ErrPolicy, p.Name, i, r.Site, SiteAttn, SiteMLP)
		}
		if err := checkSetting(r.Setting); err != nil {
			return fmt.Errorf("%w %q: rule %d: %v", ErrPolicy, p.Name, i, err)
		}
	}
	return nil
}

// Sites returns the setting of every reduction of a model of the given
// depth, indexed 2*layer (attention) and 2*layer+1 (MLP). The policy must
// be valid for that depth.
func (p *Policy) Sites(layers int) []Setting {
	out := make([]Setting, 2*layers)
	for i := range out {
		out[i] = p.Default
	}
	for _, r := range p.Rules {
		lo, hi, err := layerRange(r.Layers, layers)
		if err != nil {
			continue
		}
		for l := lo; l <= hi; l++ {
			if r.Site == "" || r.Site == SiteAttn {
				out[2*l] = r.Setting
			}
			if r.Site == "" || r.Site == SiteMLP {
				out[2*l+1] = r.Setting
			}
		}
	}
	return out
}

// CarrySites maps a policy written for a model of srcLayers layers onto
// one of dstLayers layers by relative depth: layer t of the destination
// takes the settings of source layer floor(t * srcLayers / dstLayers),
// site by site. The policy must be valid for srcLayers.
func (p *Policy) CarrySites(srcLayers, dstLayers int) []Setting {
	src := p.Sites(srcLayers)
	out := make([]Setting, 2*dstLayers)
	for t := 0; t < dstLayers; t++ {
		l := t * srcLayers / dstLayers
		out[2*t], out[2*t+1] = src[2*l], src[2*l+1]
	}
	return out
}

// FromSites is the policy that gives each site of sets (index 2*layer,
// 2*layer+1) its setting: the most frequent setting as the default and one
// rule per site that differs.
func FromSites(name string, sets []Setting) *Policy {
	count := map[Setting]int{}
	var def Setting
	for _, s := range sets {
		count[s]++
		if count[s] > count[def] || count[s] == count[def] && s.String() < def.String() {
			def = s
		}
	}
	p := &Policy{Name: name, Default: def}
	for i, s := range sets {
		if s != def {
			site := SiteAttn
			if i%2 == 1 {
				site = SiteMLP
			}
			p.Rules = append(p.Rules, Rule{Layers: fmt.Sprint(i / 2), Site: site, Setting: s})
		}
	}
	return p
}

// Summary is a compact description of the settings of a model's
// reductions: "int8" when uniform, else "int8 x 10, int4 x 6" by count.
func Summary(sites []Setting) string {
	count := map[string]int{}
	for _, s := range sites {
		count[s.String()]++
	}
	if len(count) == 1 {
		for k := range count {
			return k
		}
	}
	keys := make([]string, 0, len(count))
	for k := range count {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if count[keys[i]] != count[keys[j]] {
			return count[keys[i]] > count[keys[j]]
		}
		return keys[i] < keys[j]
	})
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s x %d", k, count[k])
	}
	return strings.Join(parts, ", ")
}

// LoadPolicies reads a JSON file holding one policy object or an array of
// them; every policy needs a distinct non-empty name.
func LoadPolicies(path string) ([]*Policy, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrPolicy, err)
	}
	return ParsePolicies(b)
}

// ParsePolicies is LoadPolicies on the file's bytes.
func ParsePolicies(b []byte) ([]*Policy, error) {
	var ps []*Policy
	trim := strings.TrimSpace(string(b))
	if strings.HasPrefix(trim, "[") {
		err := strictUnmarshal(b, &ps)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrPolicy, err)
		}
	} else {
		var p Policy
		if err := strictUnmarshal(b, &p); err != nil {
			return nil, fmt.Errorf("%w: %v", ErrPolicy, err)
		}
		ps = []*Policy{&p}
	}
	seen := map[string]bool{}
	for i, p := range ps {
		if p == nil || p.Name == "" {
			return nil, fmt.Errorf("%w: policy %d has no name", ErrPolicy, i)
		}
		if seen[p.Name] {
			return nil, fmt.Errorf("%w: policy %q defined twice", ErrPolicy, p.Name)
		}
		seen[p.Name] = true
	}
	return ps, nil
}

func strictUnmarshal(b []byte, v any) error {
	d := json.NewDecoder(strings.NewReader(string(b)))
	d.DisallowUnknownFields()
	if err := d.Decode(v); err != nil {
		return err
	}
	if d.More() {
		return errors.New("trailing data after the JSON value")
	}
	return nil
}
