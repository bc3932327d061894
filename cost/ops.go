// Package cost is the single description of the work a tensor-parallel
// prefill does on one device and of how a TPU executes it.
//
// The work side (this file) lists, for one decoder block on one rank and for
// the parts outside the blocks (embedding, final norm, LM head), every
// operation with its shape: matmul dimensions, attention pairs, element-wise
// values moved. Both the engine's simulated clocks (model/block.go Forward,
// tp/engine.go) and the shape-only pricer (package perfmodel) charge these
// lists; no other code writes a charge formula.
//
// The execution side (exec.go) turns an operation into simulated seconds
// under an Exec: the baseline (float32 activations, every element-wise op a
// separate HBM pass, matmuls at peak FLOP/s) or an XLA-like model whose parts
// can be switched on one by one.
package cost

// Kind is what executes an operation.
type Kind uint8

const (
	// Matmul is [M, K] x [K, N] on the matrix units, weights [K, N] in bf16.
	Matmul Kind = iota
	// Attention is causal softmax attention of one layer on the rank's heads.
	Attention
	// Elementwise is vector work bounded by HBM traffic.
	Elementwise
	// Dispatch is the fixed host-side cost of launching one prefill program.
	Dispatch
)

func (k Kind) String() string {
	return [...]string{"matmul", "attention", "elementwise", "dispatch"}[k]
}

// Op is one operation of a device's program.
type Op struct {
	Name string
	Kind Kind
	// Matmul dimensions: [M, K] x [K, N].
	M, N, K int
	// Attention: Pairs is the number of (query, key, head) triples that enter
	// the softmax; HeadDim the head width.
	Pairs   float64
	HeadDim int
	// Elems is the number of activation values read plus written when the
	// op runs as its own pass(es) over HBM: for element-wise ops their
	// passes, for unfused attention the score passes of the softmax.
	Elems float64
	// FusedElems is the HBM traffic (values) left when the op is fused with
	// its neighbours: 0 for an op that runs entirely in a neighbouring
	// matmul's prologue or epilogue; for fused attention the q, k, v reads
	// and the output write.
	FusedElems float64
}

// FLOPs of the op: 2·M·N·K for a matmul (0 when any dimension is 0), and
// 4·head_dim per pair for attention (q·k and p·v).
func (o Op) FLOPs() float64 {
	switch o.Kind {
	case Matmul:
		if o.M == 0 || o.N == 0 || o.K == 0 {
			return 0
		}
		return 2 * float64(o.M) * float64(o.N) * float64(o.K)
	case Attention:
		return 4 * float64(o.HeadDim) * o.Pairs
	}
	return 0
}

func matmul(name string, m, n, k int) Op { return Op{Name: name, Kind: Matmul, M: m, N: n, K: k} }

func elementwise(name string, elems, fused float64) Op {
	return Op{Name: name, Kind: Elementwise, Elems: elems, FusedElems: fused}
}

// Pairs is the number of (query, key) pairs of one head that enter the
// softmax when queries sit at the given positions of their sequences: a
// query at position p sees min(p+1, window) keys (window 0 = all).
func Pairs(pos []int, window int) int {
	s := 0
	for _, p := range pos {
		if window > 0 {
			s += min(p+1, window)
		} else {
			s += p + 1
		}
	}
	return s
}

// Block is the shape of one decoder block on one rank.
type Block struct {
	Pos             []int // position of each row within its sequence
	Dim, HeadDim    int
	QHeads, KVHeads int // this rank's query and key/value heads
	Hidden          int // this rank's MLP width
	Window          int // attention window of the layer; 0 = full
	QKNorm          bool
	Sandwich        bool // post-attention and post-MLP norms
}

// Phases lists the block's operations in program order, cut where the
// engine runs its two AllReduces: attn runs from the attention norm through
// the O projection (its output is reduced), mlp from the residual add through
// the down projection (reduced), close is what follows the second
// AllReduce.
//
// Element-wise traffic (Elems) is what the engine does: every norm reads and
// writes the residual-sized tensor, a residual add reads two and writes one,
// RoPE and q/k norms read and write q and k, the gate reads gate and up and
// writes their product. Under fusion (FusedElems) the norms' scaling runs in
// the next matmul's prologue, RoPE, q/k norms and the gate in the producing
// matmul's epilogue, and each residual add with the norms around it is one
// pass reading the reduced output and the residual and writing the residual
// (the norms' row statistics come out of that pass).
func (b Block) Phases() (attn, mlp, close []Op) {
	n := len(b.Pos)
	nd := float64(n * b.Dim)
	qk := float64(n * (b.QHeads + b.KVHeads) * b.HeadDim)
	hd := b.HeadDim
	attn = append(attn, elementwise("attn_norm", 2*nd, 0))
	attn = append(attn,
		matmul("wq", n, b.QHeads*hd, b.Dim),
		matmul("wk", n, b.KVHeads*hd, b.Dim),
		matmul("wv", n, b.KVHeads*hd, b.Dim))
	if b.QKNorm {
		attn = append(attn, elementwise("qk_norm", 2*qk, 0))
	}
	attn = append(attn, elementwise("rope", 2*qk, 0))
	pairs := float64(b.QHeads) * float64(Pairs(b.Pos, b.Window))
	io := float64(n*hd) * float64(2*b.QHeads+2*b.KVHeads)
	attn = append(attn, Op{Name: "attention", Kind: Attention, Pairs: pairs, HeadDim: hd,
		Elems: 3 * pairs, FusedElems: io})
	attn = append(attn, matmul("wo", n, b.Dim, b.QHeads*hd))

	if b.Sandwich {
		mlp = append(mlp, elementwise("post_attn_norm", 2*nd, 0))
	}
	mlp = append(mlp, elementwise("attn_residual", 3*nd, 3*nd))
	mlp = append(mlp, elementwise("ffn_norm", 2*nd, 0))
	mlp = append(mlp,
		matmul("w_gate", n, b.Hidden, b.Dim),
		matmul("w_up", n, b.Hidden, b.Dim))
	mlp = append(mlp, elementwise("gate", 3*float64(n*b.Hidden), 0))
	mlp = append(mlp, matmul("w_down", n, b.Dim, b.Hidden))

	if b.Sandwich {
		close = append(close, elementwise("post_ffn_norm", 2*nd, 0))
	}
	close = append(close, elementwise("mlp_residual", 3*nd, 3*nd))
	return attn, mlp, close
}

// Program is the fixed cost of launching one prefill program, charged once
// per prefill before anything else.
func Program() []Op { return []Op{{Name: "dispatch", Kind: Dispatch}} }

// Embed is the embedding lookup of n rows of width dim (a gather: read and
// write each value).
func Embed(n, dim int) []Op {
	return []Op{elementwise("embed", 2*float64(n*dim), 2*float64(n*dim))}
}

// FinalNorm is the norm before the LM head; fused, it scales in the LM
// head's prologue.
func FinalNorm(n, dim int) []Op {
	return []Op{elementwise("final_norm", 2*float64(n*dim), 0)}
}

// HeadChunk is one chunk of rows of the vocab-parallel LM head: the matmul
// against the rank's vocab rows and the pass over the logits for the
// log-softmax statistics (fused: one read of the logits the matmul wrote).
func HeadChunk(rows, vocabRows, dim int) []Op {
	lv := float64(rows * vocabRows)
	return []Op{matmul("lm_head", rows, vocabRows, dim), elementwise("logits", 2*lv, lv)}
}
