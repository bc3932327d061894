package tp

import (
	"fmt"
	"math"
	"testing"

	"github.com/equarx/equarx/model"
	"github.com/equarx/equarx/weights"
)

// refModel is an independent float64 forward pass of llama and gemma3, one
// token at a time with a kv cache (the way llama2.c's run.c computes), used
// as the reference for the engine's float32 batched prefill.
type refModel struct {
	cfg model.Config
	w   map[string][]float64
}

func newRefModel(t testing.TB, src weights.Source) *refModel {
	t.Helper()
	m := &refModel{cfg: src.Config(), w: map[string][]float64{}}
	for _, name := range src.Names() {
		ten, err := src.Tensor(name)
		if err != nil {
			t.Fatal(err)
		}
		v := make([]float64, len(ten.Data))
		for i, x := range ten.Data {
			v[i] = float64(x)
		}
		m.w[name] = v
	}
	if m.cfg.TiedEmbeddings {
		m.w["lm_head"] = m.w["embed"]
	}
	return m
}

func (m *refModel) get(layer int, short string) []float64 {
	return m.w[fmt.Sprintf("layers.%d.%s", layer, short)]
}

func (m *refModel) norm(x, w []float64) []float64 {
	var ss float64
	for _, v := range x {
		ss += v * v
	}
	inv := 1 / math.Sqrt(ss/float64(len(x))+m.cfg.NormEps)
	out := make([]float64, len(x))
	for i, v := range x {
		if m.cfg.Arch == "gemma3" {
			out[i] = v * inv * (1 + w[i])
		} else {
			out[i] = v * inv * w[i]
		}
	}
	return out
}

// matvec computes W·x for W [out, in].
func matvec(w, x []float64, out int) []float64 {
	in := len(x)
	y := make([]float64, out)
	for o := range y {
		var s float64
		for i := 0; i < in; i++ {
			s += w[o*in+i] * x[i]
		}
		y[o] = s
	}
	return y
}

// rope rotates v by the angles pos/factor·θ^(-2i/hd) (linear RoPE scaling
// divides positions by factor).
func (m *refModel) rope(v []float64, pos int, theta, factor float64) {
	hd := len(v)
	for i := 0; i < hd/2; i++ {
		ang := float64(pos) / factor / math.Pow(theta, float64(2*i)/float64(hd))
		c, s := math.Cos(ang), math.Sin(ang)
		a, b := 2*i, 2*i+1
		if m.cfg.RopeStyle == model.RopeHalf {
			a, b = i, i+hd/2
		}
		x0, x1 := v[a], v[b]
		v[a] = x0*c - x1*s
		v[b] = x0*s + x1*c
	}
}

// logprobs returns the log-softmax rows after each token of ids.
func (m *refModel) logprobs(ids []int) [][]float64 {
	c := m.cfg
	d, hd := c.Dim, c.HeadDim
	group := c.Heads / c.KVHeads
	keys := make([][][]float64, c.Layers) // [layer][pos] -> kv_heads*hd
	vals := make([][][]float64, c.Layers)
	var out [][]float64
	for pos, id := range ids {
		x := append([]float64(nil), m.w["embed"][id*d:(id+1)*d]...)
		if c.Arch == "gemma3" {
			s := float64(float32(math.Sqrt(float64(d))))
			for i := range x {
				x[i] *= s
			}
		}
		for l := 0; l < c.Layers; l++ {
			window := 0
			scale := 1 / math.Sqrt(float64(hd))
			if c.Arch == "gemma3" {
				scale = 1 / math.Sqrt(c.QueryPreAttnScalar)
				if !c.IsGlobalLayer(l) {
					window = c.SlidingWindow
				}
			}
			theta, factor := c.RopeTheta, c.RopeScalingFactor
			if !c.IsGlobalLayer(l) {
				theta, factor = c.RopeLocalTheta, 1
			}
			if factor == 0 {
				factor = 1
			}
			h := m.norm(x, m.get(l, "attn_norm"))
			q := matvec(m.get(l, "wq"), h, c.Heads*hd)
			k := matvec(m.get(l, "wk"), h, c.KVHeads*hd)
			v := matvec(m.get(l, "wv"), h, c.KVHeads*hd)
			for hh := 0; hh < c.Heads; hh++ {
				qh := q[hh*hd : (hh+1)*hd]
				if c.Arch == "gemma3" {
					copy(qh, m.norm(qh, m.get(l, "q_norm")))
				}
				m.rope(qh, pos, theta, factor)
			}
			for hh := 0; hh < c.KVHeads; hh++ {
				kh := k[hh*hd : (hh+1)*hd]
				if c.Arch == "gemma3" {
					copy(kh, m.norm(kh, m.get(l, "k_norm")))
				}
				m.rope(kh, pos, theta, factor)
			}
			keys[l] = append(keys[l], k)
			vals[l] = append(vals[l], v)
			att := make([]float64, c.Heads*hd)
			for hh := 0; hh < c.Heads; hh++ {
				kv := hh / group
				lo := 0
				if window > 0 {
					lo = max(0, pos-window+1)
				}
				sc := make([]float64, pos+1-lo)
				mx := math.Inf(-1)
				for s := lo; s <= pos; s++ {
					var dot float64
					for i := 0; i < hd; i++ {
						dot += q[hh*hd+i] * keys[l][s][kv*hd+i]
					}
					sc[s-lo] = dot * scale
					mx = max(mx, sc[s-lo])
				}
				var sum float64
				for i := range sc {
					sc[i] = math.Exp(sc[i] - mx)
					sum += sc[i]
				}
				for s := lo; s <= pos; s++ {
					p := sc[s-lo] / sum
					for i := 0; i < hd; i++ {
						att[hh*hd+i] += p * vals[l][s][kv*hd+i]
					}
				}
			}
			o := matvec(m.get(l, "wo"), att, d)
			if c.Arch == "gemma3" {
				o = m.norm(o, m.get(l, "post_attn_norm"))
			}
			for i := range x {
				x[i] += o[i]
			}
			h = m.norm(x, m.get(l, "ffn_norm"))
			g := matvec(m.get(l, "w_gate"), h, c.HiddenDim)
			u := matvec(m.get(l, "w_up"), h, c.HiddenDim)
			for i := range g {
				if c.Activation == model.ActGELUTanh {
					gx := g[i]
					g[i] = 0.5 * gx * (1 + math.Tanh(math.Sqrt(2/math.Pi)*(gx+0.044715*gx*gx*gx))) * u[i]
				} else {
					g[i] = g[i] / (1 + math.Exp(-g[i])) * u[i]
				}
			}
			dn := matvec(m.get(l, "w_down"), g, d)
			if c.Arch == "gemma3" {
				dn = m.norm(dn, m.get(l, "post_ffn_norm"))
			}
			for i := range x {
				x[i] += dn[i]
			}
		}
		x = m.norm(x, m.w["final_norm"])
		logits := matvec(m.w["lm_head"], x, c.Vocab)
		mx := math.Inf(-1)
		for _, v := range logits {
			mx = max(mx, v)
		}
		var s float64
		for _, v := range logits {
			s += math.Exp(v - mx)
		}
		lse := mx + math.Log(s)
		for i := range logits {
			logits[i] -= lse
		}
		out = append(out, logits)
	}
	return out
}
