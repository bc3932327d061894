package collective

// A schedule is the single description of one AllReduce: for every rank, the
// ordered list of steps it performs. Two interpreters read it: the executor
// (exec.go) runs the steps on data over the in-process transport, and the
// simulator (sim.go) prices them on the TPU cost model. Algorithms only emit
// steps; they never move data or time themselves.

type opKind uint8

const (
	opEncode    opKind = iota // slot = Encode(buf[lo:hi])
	opSend                    // send slot to peer as message msg
	opRecv                    // slot = message msg from peer
	opDecodeAdd               // buf[lo:hi] += Decode(slot)
	opDecode                  // buf[lo:hi] = Decode(slot)
)

func (k opKind) String() string {
	return [...]string{"encode", "send", "recv", "decode-add", "decode"}[k]
}

type op struct {
	kind   opKind
	lo, hi int   // element range of the rank's buffer (local ops)
	slot   int   // message buffer the op reads or writes
	peer   int   // send: destination; recv: source
	msg    int   // message id (send, recv)
	dep    int   // index of the op (same rank) that produced slot; -1 none
	bytes  int64 // wire bytes (send, recv)
	hbm    int64 // bytes moved through HBM (local ops)
	last   bool  // last use of slot on this rank
	encLen int   // encoded length expected in slot (decode ops, recv)
}

type message struct {
	src, dst     int
	srcOp, dstOp int
	bytes        int64
}

// schedule is immutable once built and shared by all ranks and calls.
type schedule struct {
	n         int
	size      int
	codec     Codec
	algorithm Algorithm
	segElems  int
	ops       [][]op
	msgs      []message
	slots     []int   // slots per rank
	wire      []int64 // bytes sent per rank
	encoded   []int   // bytes encoded per rank (the executor's arena size)
}

// span is a half-open element range.
type span struct{ lo, hi int }

// builder appends steps to a schedule. Local ops carry their HBM traffic
// from the cost rules in hbmBytes.
type builder struct {
	s *schedule
}

func newBuilder(size, n int, c Codec, algo Algorithm, seg int) *builder {
	return &builder{s: &schedule{
		n: n, size: size, codec: c, algorithm: algo, segElems: seg,
		ops: make([][]op, size), slots: make([]int, size), wire: make([]int64, size), encoded: make([]int, size),
	}}
}

func (b *builder) add(r int, o op) int {
	b.s.ops[r] = append(b.s.ops[r], o)
	return len(b.s.ops[r]) - 1
}

func (b *builder) newSlot(r int) int {
	b.s.slots[r]++
	return b.s.slots[r] - 1
}

// encode emits slot = Encode(buf[sp]) on rank r; it returns the slot and the
// op index that produced it.
func (b *builder) encode(r int, sp span) (slot, idx int) {
	slot = b.newSlot(r)
	n := sp.hi - sp.lo
	e := b.s.codec.EncodedLen(n)
	idx = b.add(r, op{kind: opEncode, lo: sp.lo, hi: sp.hi, slot: slot, dep: -1, encLen: e,
		hbm: hbmBytes(b.s.codec.Kind(), opEncode, n, e)})
	b.s.encoded[r] += e
	return slot, idx
}

// send emits the send of rank r's slot (produced by op dep) to peer and
// returns the message id.
func (b *builder) send(r, peer, slot, dep int, sp span) int {
	e := int64(b.s.codec.EncodedLen(sp.hi - sp.lo))
	id := len(b.s.msgs)
	i := b.add(r, op{kind: opSend, lo: sp.lo, hi: sp.hi, slot: slot, peer: peer, msg: id, dep: dep, bytes: e})
	b.s.msgs = append(b.s.msgs, message{src: r, dst: peer, srcOp: i, dstOp: -1, bytes: e})
	b.s.wire[r] += e
	return id
}

// recv emits the receive of message id on its destination.
func (b *builder) recv(id int) (slot, idx int) {
	m := &b.s.msgs[id]
	r := m.dst
	slot = b.newSlot(r)
	idx = b.add(r, op{kind: opRecv, slot: slot, peer: m.src, msg: id, dep: -1, bytes: m.bytes, encLen: int(m.bytes)})
	m.dstOp = idx
	return slot, idx
}

func (b *builder) decodeAdd(r int, sp span, slot, dep int) int {
	n := sp.hi - sp.lo
	e := b.s.codec.EncodedLen(n)
	return b.add(r, op{kind: opDecodeAdd, lo: sp.lo, hi: sp.hi, slot: slot, dep: dep, encLen: e,
		hbm: hbmBytes(b.s.codec.Kind(), opDecodeAdd, n, e)})
}

func (b *builder) decode(r int, sp span, slot, dep int) int {
	n := sp.hi - sp.lo
	e := b.s.codec.EncodedLen(n)
	return b.add(r, op{kind: opDecode, lo: sp.lo, hi: sp.hi, slot: slot, dep: dep, encLen: e,
		hbm: hbmBytes(b.s.codec.Kind(), opDecode, n, e)})
}

// finish marks the last use of every slot so the executor can drop it.
func (b *builder) finish() *schedule {
	for r := range b.s.ops {
		seen := make([]bool, b.s.slots[r])
		ops := b.s.ops[r]
		for i := len(ops) - 1; i >= 0; i-- {
			if !seen[ops[i].slot] {
				seen[ops[i].slot] = true
				ops[i].last = true
			}
		}
	}
	return b.s
}

// Cost rules for local work (bytes through HBM, priced at the profile's HBM
// bandwidth on the device's compute timeline):
//
//   - The partial sums live in HBM as activations: float32 (4 bytes) with the
//     f32 codec, bf16 (2 bytes) otherwise, as a TPU holds bf16 activations.
//   - f32 and bf16 wires are the activations' own format: sending needs no
//     conversion pass (the DMA reads HBM directly), and a received all-gather
//     piece lands in place, so Encode and Decode cost nothing.
//   - quantized codecs (int8, fp8, int6, int4): Encode reads the
//     activations and writes the encoding (EncodedLen bytes: 1 + 4/B per
//     value for int8 and fp8, 0.75 + 4/B for int6, 0.5 + 4/B for int4);
//     Decode reads the encoding and writes activations.
//   - DecodeAdd reads the encoding and the local partial and writes the sum.
func hbmBytes(k CodecKind, o opKind, n, enc int) int64 {
	act := int64(2)
	if k == CodecF32 {
		act = 4
	}
	quant := k.Quantized()
	nn, e := int64(n), int64(enc)
	switch o {
	case opEncode:
		if !quant {
			return 0
		}
		return act*nn + e
	case opDecode:
		if !quant {
			return 0
		}
		return e + act*nn
	case opDecodeAdd:
		return e + 2*act*nn
	}
	return 0
}

// splitBlocks cuts [lo, hi) into k parts of whole blocks of `block` values,
// as even as possible in blocks (earlier parts get fewer when uneven). Only
// the part that reaches the end of the buffer (n) may end in a short block.
func splitBlocks(lo, hi, k, block int) []span {
	nb := (hi - lo + block - 1) / block
	parts := make([]span, k)
	for i := range parts {
		a := lo + (i*nb/k)*block
		z := lo + ((i+1)*nb/k)*block
		parts[i] = span{min(a, hi), min(z, hi)}
	}
	return parts
}

// segments cuts a span into segments of seg values (a multiple of the block
// size; seg <= 0 means one segment). Empty spans have no segments.
func segments(sp span, seg int) []span {
	if sp.hi <= sp.lo {
		return nil
	}
	if seg <= 0 {
		return []span{sp}
	}
	var out []span
	for a := sp.lo; a < sp.hi; a += seg {
		out = append(out, span{a, min(a+seg, sp.hi)})
	}
	return out
}

// piece is an encoded segment held by a rank during an all-gather: its
// range, the slot with its bytes, and the op that produced the slot.
type piece struct {
	sp        span
	slot, dep int
	encoded   bool // false: the range still has to be encoded by its owner
}

// ring is one ring of ranks running reduce-scatter and all-gather over a
// span of the buffer: chunk i of the span ends up owned by position
// (i-1) mod k, i.e. position p owns chunk (p+1) mod k after reduce-scatter.
type ring struct {
	b       *builder
	members []int
	chunks  [][]span // segments of each chunk
	pend    [][]int  // per position: message ids to receive in the next step
	agPend  [][]piece
	agMsgs  [][]int
	have    [][]piece // per position: pieces held after the all-gather
}

func newRing(b *builder, members []int, sp span, block, seg int) *ring {
	k := len(members)
	g := &ring{b: b, members: members, pend: make([][]int, k), agPend: make([][]piece, k),
		agMsgs: make([][]int, k), have: make([][]piece, k)}
	for _, c := range splitBlocks(sp.lo, sp.hi, k, block) {
		g.chunks = append(g.chunks, segments(c, seg))
	}
	return g
}

func mod(a, k int) int { return ((a % k) + k) % k }

// ownedChunk is the chunk position p holds reduced after reduce-scatter.
func (g *ring) ownedChunk(p int) int { return mod(p+1, len(g.members)) }

// rsStep emits reduce-scatter step s (0..k-1) for every position: receive
// and add the partial sent in step s-1, then encode and send it on. In step
// 0 ranks only send their own chunk; in step k-1 they only receive.
//
// int8 semantics: each hop dequantizes the incoming partial, adds its own
// float32 values, and re-quantizes the sum for the next hop.
func (g *ring) rsStep(s int) {
	k := len(g.members)
	next := make([][]int, k)
	for p, r := range g.members {
		c := mod(p-s, k)
		succ := mod(p+1, k)
		for j, sp := range g.chunks[c] {
			if s > 0 {
				slot, ri := g.b.recv(g.pend[p][j])
				g.b.decodeAdd(r, sp, slot, ri)
			}
			if s < k-1 {
				slot, ei := g.b.encode(r, sp)
				next[succ] = append(next[succ], g.b.send(r, g.members[succ], slot, ei, sp))
			}
		}
	}
	g.pend = next
}

// agStep emits all-gather step t (0..k-1). In step 0 each position sends the
// pieces of the chunk it owns (own[p]); pieces not yet encoded are encoded
// once by the owner, which then keeps the decoded value itself. In later
// steps every position decodes the pieces it received and forwards the same
// bytes, so all ranks decode identical bytes.
func (g *ring) agStep(t int, own [][]piece) {
	k := len(g.members)
	next := make([][]piece, k)
	nextMsgs := make([][]int, k)
	for p, r := range g.members {
		succ := mod(p+1, k)
		var pieces []piece
		if t == 0 {
			pieces = own[p]
		} else {
			pieces = g.agPend[p]
		}
		for j, pc := range pieces {
			selfDecode := false
			if t == 0 && !pc.encoded {
				pc.slot, pc.dep = g.b.encode(r, pc.sp)
				pc.encoded = true
				selfDecode = true
			}
			if t > 0 {
				pc.slot, pc.dep = g.b.recv(g.agMsgs[p][j])
			}
			if t < k-1 {
				next[succ] = append(next[succ], pc)
				nextMsgs[succ] = append(nextMsgs[succ], g.b.send(r, g.members[succ], pc.slot, pc.dep, pc.sp))
			}
			if t > 0 || selfDecode {
				g.b.decode(r, pc.sp, pc.slot, pc.dep)
			}
			g.have[p] = append(g.have[p], pc)
		}
	}
	g.agPend, g.agMsgs = next, nextMsgs
}

// ownPieces are the unencoded segments of each position's reduced chunk.
func (g *ring) ownPieces() [][]piece {
	own := make([][]piece, len(g.members))
	for p := range g.members {
		for _, sp := range g.chunks[g.ownedChunk(p)] {
			own[p] = append(own[p], piece{sp: sp, slot: -1, dep: -1})
		}
	}
	return own
}

// buildRing emits a unidirectional ring reduce-scatter + all-gather.
func buildRing(b *builder, order []int, n, block, seg int) {
	rings := []*ring{newRing(b, order, span{0, n}, block, seg)}
	runRings(rings)
}

// buildBiRing splits the buffer into two halves (on a block boundary) that
// travel the ring in opposite directions, interleaved step by step.
func buildBiRing(b *builder, order []int, n, block, seg int) {
	halves := splitBlocks(0, n, 2, block)
	rev := make([]int, len(order))
	for i, r := range order {
		rev[len(order)-1-i] = r
	}
	runRings([]*ring{newRing(b, order, halves[0], block, seg), newRing(b, rev, halves[1], block, seg)})
}

// runRings interleaves the steps of independent rings.
func runRings(rings []*ring) {
	k := len(rings[0].members)
	for s := 0; s < k; s++ {
		for _, g := range rings {
			g.rsStep(s)
		}
	}
	owns := make([][][]piece, len(rings))
	for i, g := range rings {
		owns[i] = g.ownPieces()
	}
	for t := 0; t < k; t++ {
		for i, g := range rings {
			g.agStep(t, owns[i])
		}
	}
}

// buildTorus2D: reduce-scatter along x (every row a ring over the whole
// buffer), then along y over the x-shard each column shares, then
// all-gather along y and along x. The x all-gather forwards the pieces the
// y all-gather delivered, so every value is quantized once by its final
// owner and all ranks decode the same bytes.
func buildTorus2D(b *builder, rows, cols [][]int, n, block, seg int) {
	var xr []*ring
	for _, row := range rows {
		xr = append(xr, newRing(b, row, span{0, n}, block, seg))
	}
	X := len(rows[0])
	for s := 0; s < X; s++ {
		for _, g := range xr {
			g.rsStep(s)
		}
	}
	// Column x holds, on every rank, the reduced row chunk of position x.
	var yr []*ring
	for x, col := range cols {
		c := xr[0].chunks[xr[0].ownedChunk(x)]
		sp := span{0, 0}
		if len(c) > 0 {
			sp = span{c[0].lo, c[len(c)-1].hi}
		}
		yr = append(yr, newRing(b, col, sp, block, seg))
	}
	Y := len(cols[0])
	for s := 0; s < Y; s++ {
		for _, g := range yr {
			g.rsStep(s)
		}
	}
	yOwn := make([][][]piece, len(yr))
	for i, g := range yr {
		yOwn[i] = g.ownPieces()
	}
	for t := 0; t < Y; t++ {
		for i, g := range yr {
			g.agStep(t, yOwn[i])
		}
	}
	// Row y's position x forwards what column x's position y now holds.
	xOwn := make([][][]piece, len(xr))
	for y := range xr {
		xOwn[y] = make([][]piece, X)
		for x := range xOwn[y] {
			xOwn[y][x] = sortPieces(yr[x].have[y])
		}
	}
	for t := 0; t < X; t++ {
		for y, g := range xr {
			g.agStep(t, xOwn[y])
		}
	}
}

func sortPieces(ps []piece) []piece {
	out := append([]piece(nil), ps...)
	for i := 1; i < len(out); i++ {
		for j := i; j > 0 && out[j].sp.lo < out[j-1].sp.lo; j-- {
			out[j], out[j-1] = out[j-1], out[j]
		}
	}
	return out
}

// buildTwoShot: every rank sends each other rank the segments of that rank's
// chunk directly (routed over the network), the owner adds them in a fixed
// order (own, then rank r-1, r-2, ...), quantizes its reduced chunk once and
// sends it directly to every other rank.
func buildTwoShot(b *builder, size, n, block, seg int) {
	chunks := splitBlocks(0, n, size, block)
	segs := make([][]span, size)
	for i, c := range chunks {
		segs[i] = segments(c, seg)
	}
	rs := make([][][]int, size) // rs[dst][src] = message ids
	for i := range rs {
		rs[i] = make([][]int, size)
	}
	for r := 0; r < size; r++ {
		for d := 1; d < size; d++ {
			j := mod(r+d, size)
			for _, sp := range segs[j] {
				slot, ei := b.encode(r, sp)
				rs[j][r] = append(rs[j][r], b.send(r, j, slot, ei, sp))
			}
		}
	}
	for r := 0; r < size; r++ {
		for d := 1; d < size; d++ {
			i := mod(r-d, size)
			for k, sp := range segs[r] {
				slot, ri := b.recv(rs[r][i][k])
				b.decodeAdd(r, sp, slot, ri)
			}
		}
	}
	ag := make([][][]int, size) // ag[dst][src]
	for i := range ag {
		ag[i] = make([][]int, size)
	}
	for r := 0; r < size; r++ {
		for _, sp := range segs[r] {
			slot, ei := b.encode(r, sp)
			for d := 1; d < size; d++ {
				j := mod(r+d, size)
				ag[j][r] = append(ag[j][r], b.send(r, j, slot, ei, sp))
			}
			b.decode(r, sp, slot, ei)
		}
	}
	for r := 0; r < size; r++ {
		for d := 1; d < size; d++ {
			i := mod(r-d, size)
			for k, sp := range segs[i] {
				slot, ri := b.recv(ag[r][i][k])
				b.decode(r, sp, slot, ri)
			}
		}
	}
}

// buildOneShot: every rank encodes its whole partial once (segment by
// segment) and sends every segment to every peer; every rank rebuilds each
// segment as Decode(partial of rank 0) + Decode(rank 1) + ... in rank
// order, its own partial included in decoded form. All ranks thus add the
// same decoded values in the same order and end bitwise identical. A rank
// sends (N-1) x the encoded buffer, against 2(N-1)/N for a ring, in one
// round instead of 2(N-1): the trade distributed-llama makes. Segments are
// pipelined: a rank sums segment k-1 after sending segment k, so its
// decoding overlaps the transfers still in flight.
func buildOneShot(b *builder, size, n, seg int) {
	segs := segments(span{0, n}, seg)
	own := make([][]int, size) // own[r][k]: slot of rank r's segment k
	enc := make([][]int, size) // the op that encoded it
	msgs := make([][][]int, size)
	for r := 0; r < size; r++ {
		own[r] = make([]int, len(segs))
		enc[r] = make([]int, len(segs))
		msgs[r] = make([][]int, size) // msgs[dst][src][k]
		for src := range msgs[r] {
			msgs[r][src] = make([]int, len(segs))
		}
	}
	// Message ids must exist before their receives are emitted: emit all
	// sends of segment k for every rank before anyone's receives of it.
	sendSeg := func(k int) {
		for r := 0; r < size; r++ {
			slot, ei := b.encode(r, segs[k])
			own[r][k], enc[r][k] = slot, ei
			for d := 1; d < size; d++ {
				j := mod(r+d, size)
				msgs[j][r][k] = b.send(r, j, slot, ei, segs[k])
			}
		}
	}
	sumSeg := func(k int) {
		for r := 0; r < size; r++ {
			for src := 0; src < size; src++ {
				slot, dep := own[r][k], enc[r][k]
				if src != r {
					slot, dep = b.recv(msgs[r][src][k])
				}
				if src == 0 {
					b.decode(r, segs[k], slot, dep)
				} else {
					b.decodeAdd(r, segs[k], slot, dep)
				}
			}
		}
	}
	for k := range segs {
		sendSeg(k)
		if k > 0 {
			sumSeg(k - 1)
		}
	}
	if len(segs) > 0 {
		sumSeg(len(segs) - 1)
	}
}
