package tp

import (
	"errors"
	"strings"
	"testing"

	"github.com/equarx/equarx/collective"
)

func TestPolicySites(t *testing.T) {
	p := &Policy{Name: "p", Default: Setting{Codec: collective.CodecInt8},
		Rules: []Rule{
			{Layers: "1-2", Setting: Setting{Codec: collective.CodecInt4}},
			{Layers: "2", Site: SiteMLP, Setting: Setting{Codec: collective.CodecBF16}},
			{Layers: "-1", Site: SiteAttn, Setting: Setting{Codec: collective.CodecF32}},
			{Layers: "-2--1", Site: SiteMLP, Setting: Setting{Codec: collective.CodecInt8, BlockSize: 64}},
		}}
	if err := p.Validate(5); err != nil {
		t.Fatal(err)
	}
	got := p.Sites(5)
	want := []string{"int8", "int8", "int4", "int4", "int4", "bf16", "int8", "int8/b64", "f32", "int8/b64"}
	for i, s := range got {
		if s.String() != want[i] {
			t.Fatalf("site %d: %s, want %s (all: %v)", i, s, want[i], got)
		}
	}
	if s := Summary(got); s != "int4 x 3, int8 x 3, int8/b64 x 2, bf16 x 1, f32 x 1" {
		t.Fatalf("summary %q", s)
	}
	if s := Summary(Uniform(Setting{Codec: collective.CodecBF16}).Sites(3)); s != "bf16" {
		t.Fatalf("uniform summary %q", s)
	}
}

func TestPolicyErrors(t *testing.T) {
	for _, tc := range []struct {
		p    Policy
		want string
	}{
		{Policy{Name: "a", Default: Setting{Codec: "int3"}}, "unknown allreduce codec"},
		{Policy{Name: "b", Default: Setting{Codec: "int8", BlockSize: 7}}, "block size"},
		{Policy{Name: "c", Default: Setting{Codec: "int8"}, Rules: []Rule{{Layers: "9", Setting: Setting{Codec: "int4"}}}}, "out of range"},
		{Policy{Name: "d", Default: Setting{Codec: "int8"}, Rules: []Rule{{Layers: "3-1", Setting: Setting{Codec: "int4"}}}}, "empty"},
		{Policy{Name: "e", Default: Setting{Codec: "int8"}, Rules: []Rule{{Site: "ffn", Setting: Setting{Codec: "int4"}}}}, "site"},
		{Policy{Name: "f", Default: Setting{Codec: "int8"}, Rules: []Rule{{Layers: "x", Setting: Setting{Codec: "int4"}}}}, "not an integer"},
	} {
		err := tc.p.Validate(5)
		if !errors.Is(err, ErrPolicy) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("policy %s: %v, want %q", tc.p.Name, err, tc.want)
		}
	}
}

func TestParsePolicies(t *testing.T) {
	ps, err := ParsePolicies([]byte(`[{"name":"x","default":{"codec":"int8"}},{"name":"y","default":{"codec":"int4","block_size":32},"rules":[{"layers":"0","site":"attn","codec":"bf16"}]}]`))
	if err != nil {
		t.Fatal(err)
	}
	if len(ps) != 2 || ps[1].Rules[0].Codec != collective.CodecBF16 || ps[1].Default.BlockSize != 32 {
		t.Fatalf("%+v", ps)
	}
	for _, bad := range []string{
		`{"default":{"codec":"int8"}}`,
		`[{"name":"x","default":{"codec":"int8"}},{"name":"x","default":{"codec":"int8"}}]`,
		`{"name":"x","default":{"codec":"int8"},"extra":1}`,
		`{"name":"x"} {}`,
	} {
		if _, err := ParsePolicies([]byte(bad)); !errors.Is(err, ErrPolicy) {
			t.Errorf("%s: %v", bad, err)
		}
	}
}

func TestCarryAndFromSites(t *testing.T) {
	p := &Policy{Name: "p", Default: Setting{Codec: collective.CodecInt8},
		Rules: []Rule{{Layers: "0", Site: SiteMLP, Setting: Setting{Codec: collective.CodecBF16}}, {Layers: "-1", Setting: Setting{Codec: collective.CodecInt4}}}}
	got := p.CarrySites(5, 10) // each source layer covers two destination layers
	for t2 := 0; t2 < 10; t2++ {
		want := p.Sites(5)[2*(t2/2) : 2*(t2/2)+2]
		if got[2*t2] != want[0] || got[2*t2+1] != want[1] {
			t.Fatalf("destination layer %d: %v, want %v", t2, got[2*t2:2*t2+2], want)
		}
	}
	if n := len(p.CarrySites(5, 62)); n != 124 {
		t.Fatalf("%d sites for 62 layers", n)
	}
	q := FromSites("q", p.Sites(5))
	if err := q.Validate(5); err != nil {
		t.Fatal(err)
	}
	if q.Default.Codec != collective.CodecInt8 || len(q.Rules) != 3 {
		t.Fatalf("%+v", q)
	}
	for i, s := range q.Sites(5) {
		if s != p.Sites(5)[i] {
			t.Fatalf("site %d: %v, want %v", i, s, p.Sites(5)[i])
		}
	}
}

// The policies shipped for stories260K at tp 4 load and fit the model, and
// the engine runs each of them (docs/SERVING.md serves them).
func TestShippedPolicies(t *testing.T) {
	ps, err := LoadPolicies("../configs/policies/stories260k_tp4.json")
	if err != nil {
		t.Fatal(err)
	}
	if len(ps) != 3 {
		t.Fatalf("%d policies, want the 3 budgets", len(ps))
	}
	e, err := NewEngine(stories(t), EngineConfig{TP: 4, TPU: "v5e"})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range ps {
		if err := p.Validate(e.Config().Layers); err != nil || !(p.BudgetKL > 0) {
			t.Fatalf("policy %s: %v, budget %g", p.Name, err, p.BudgetKL)
		}
		res := prefill(t, e, [][]int{greedyIDs(t)[:16]}, PrefillOptions{Policy: p, TopK: 1})
		if res.Reductions == "" || len(res.SiteCodecs) != 2*e.Config().Layers {
			t.Fatalf("policy %s: reductions %q, %d sites", p.Name, res.Reductions, len(res.SiteCodecs))
		}
	}
}
