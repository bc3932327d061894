package tokenizer

import (
	"encoding/binary"
	"fmt"
	"math"
	"strings"
)

// Fixed ids of the llama2.c tokenizer format.
const (
	llama2CUnk       = 0
	llama2CBOS       = 1
	llama2CEOS       = 2
	llama2CByteBase  = 3   // <0x00> .. <0xFF> are ids 3 .. 258
	llama2CMinVocab  = 259 // unk, BOS, EOS and the 256 byte pieces
	llama2CMaxVocab  = 1 << 22
	llama2CMaxPieceL = 1 << 16
)

// llama2CMinScore is run.c's initial best score: a merge whose score is not
// strictly greater never happens.
const llama2CMinScore = float32(-1e10)

// Llama2C is the tokenizer of llama2.c (Karpathy's tokenizer.bin format): a
// SentencePiece BPE exported as pieces with float32 scores, where encoding
// greedily applies the best-scored merge anywhere in the sequence.
//
// gotokenizers' BPE model cannot express this scheme: it ranks merges by
// their position in a merges list and applies them within pre-tokenized
// words, while llama2.c ranks a merge by the score of the merged piece,
// merges across the whole text (including across spaces and the BOS piece),
// and falls back to byte pieces per UTF-8 character. It is therefore
// implemented here, following run.c's encode and decode.
type Llama2C struct {
	maxTokenLen int
	pieces      []string
	scores      []float32
	lookup      map[string]int // piece -> lowest id with that piece
	space       int            // id of " ", the dummy prefix
	text        []string       // Token(id)
}

var _ Tokenizer = (*Llama2C)(nil)

// LoadLlama2C parses llama2.c tokenizer.bin bytes: int32 max_token_length,
// then for each token a float32 score, an int32 length and that many raw
// bytes, until the end of the data (the vocabulary size is the number of
// records). Every length is bounded by max_token_length and by the data
// left; the vocabulary must hold unk, BOS, EOS, the 256 byte pieces
// <0x00>..<0xFF> at ids 3..258, and the " " piece used as dummy prefix.
// Pieces containing a NUL byte are rejected, since llama2.c handles pieces
// as C strings. When two ids share a piece, lookups resolve to the lower id.
func LoadLlama2C(data []byte) (*Llama2C, error) {
	if len(data) < 4 {
		return nil, fmt.Errorf("llama2.c tokenizer: %d bytes, need at least the 4-byte header: %w", len(data), ErrCorrupt)
	}
	maxLen := int32(binary.LittleEndian.Uint32(data))
	if maxLen < 1 || maxLen > llama2CMaxPieceL {
		return nil, fmt.Errorf("llama2.c tokenizer: max_token_length %d outside [1, %d]: %w", maxLen, llama2CMaxPieceL, ErrCorrupt)
	}
	t := &Llama2C{maxTokenLen: int(maxLen), lookup: make(map[string]int)}
	off := 4
	for off < len(data) {
		id := len(t.pieces)
		if id >= llama2CMaxVocab {
			return nil, fmt.Errorf("llama2.c tokenizer: more than %d tokens: %w", llama2CMaxVocab, ErrCorrupt)
		}
		if len(data)-off < 8 {
			return nil, fmt.Errorf("llama2.c tokenizer: token %d: truncated record header at offset %d (%d bytes left, need 8): %w", id, off, len(data)-off, ErrCorrupt)
		}
		score := math.Float32frombits(binary.LittleEndian.Uint32(data[off:]))
		n := int32(binary.LittleEndian.Uint32(data[off+4:]))
		off += 8
		if n < 0 || n > maxLen {
			return nil, fmt.Errorf("llama2.c tokenizer: token %d: length %d outside [0, max_token_length %d]: %w", id, n, maxLen, ErrCorrupt)
		}
		if int(n) > len(data)-off {
			return nil, fmt.Errorf("llama2.c tokenizer: token %d: length %d but only %d bytes left: %w", id, n, len(data)-off, ErrCorrupt)
		}
		piece := string(data[off : off+int(n)])
		off += int(n)
		if strings.IndexByte(piece, 0) >= 0 {
			return nil, fmt.Errorf("llama2.c tokenizer: token %d: piece %q contains a NUL byte: %w", id, piece, ErrCorrupt)
		}
		t.pieces = append(t.pieces, piece)
		t.scores = append(t.scores, score)
		if _, dup := t.lookup[piece]; !dup {
			t.lookup[piece] = id
		}
	}
	if len(t.pieces) < llama2CMinVocab {
		return nil, fmt.Errorf("llama2.c tokenizer: %d tokens, need at least %d (unk, BOS, EOS, 256 byte pieces): %w", len(t.pieces), llama2CMinVocab, ErrCorrupt)
	}
	for b := 0; b < 256; b++ {
		want := fmt.Sprintf("<0x%02X>", b)
		if got := t.pieces[llama2CByteBase+b]; got != want {
			return nil, fmt.Errorf("llama2.c tokenizer: token %d: byte piece is %q, want %q: %w", llama2CByteBase+b, got, want, ErrCorrupt)
		}
	}
	sp, ok := t.lookup[" "]
	if !ok {
		return nil, fmt.Errorf("llama2.c tokenizer: no \" \" piece for the dummy prefix: %w", ErrCorrupt)
	}
	t.space = sp
	t.text = make([]string, len(t.pieces))
	for id, p := range t.pieces {
		switch {
		case id == llama2CBOS || id == llama2CEOS:
			t.text[id] = ""
		default:
			if b, ok := parseBytePiece(p); ok {
				t.text[id] = string([]byte{b})
			} else {
				t.text[id] = p
			}
		}
	}
	return t, nil
}

// parseBytePiece mirrors run.c's sscanf(piece, "<0x%02hhX>", &b) == 1: the
// prefix "<0x" followed by one or two hex digits (either case).
func parseBytePiece(p string) (byte, bool) {
	if !strings.HasPrefix(p, "<0x") {
		return 0, false
	}
	v, n := 0, 0
	for _, c := range []byte(p[3:]) {
		if n == 2 {
			break
		}
		d, ok := hexDigit(c)
		if !ok {
			break
		}
		v = v*16 + d
		n++
	}
	if n == 0 {
		return 0, false
	}
	return byte(v), true
}

func hexDigit(c byte) (int, bool) {
	switch {
	case c >= '0' && c <= '9':
		return int(c - '0'), true
	case c >= 'a' && c <= 'f':
		return int(c-'a') + 10, true
	case c >= 'A' && c <= 'F':
		return int(c-'A') + 10, true
	}
	return 0, false
}

// VocabSize is the number of token records in the file.
func (t *Llama2C) VocabSize() int { return len(t.pieces) }

// BOS is id 1.
func (t *Llama2C) BOS() int { return llama2CBOS }

// EOS is id 2.
func (t *Llama2C) EOS() int { return llama2CEOS }

// Piece returns the raw piece of id as stored in the file ("" when out of
// range). Spaces are plain ' ' (llama2.c's export replaced SentencePiece's ▁).
func (t *Llama2C) Piece(id int) string {
	if id < 0 || id >= len(t.pieces) {
		return ""
	}
	return t.pieces[id]
}

// Score returns the merge score of id (0 when out of range).
func (t *Llama2C) Score(id int) float32 {
	if id < 0 || id >= len(t.scores) {
		return 0
	}
	return t.scores[id]
}

// Token returns the text id contributes to a decoded sequence: BOS and EOS
// contribute nothing (run.c never prints the BOS it starts from and stops at
// the next one), a byte piece <0xNN> is that single byte, any other id its
// piece. Decode additionally drops the leading space of a piece that follows
// BOS.
func (t *Llama2C) Token(id int) string {
	if id < 0 || id >= len(t.text) {
		return ""
	}
	return t.text[id]
}

// Decode concatenates Token of each id, except that, as in run.c's decode,
// a piece following BOS loses its leading space (SentencePiece strips the
// dummy prefix). The text is not filtered the way run.c's safe_printf
// filters unprintable single bytes, so Decode(Encode(s, true)) == s for
// every byte string s, while Decode(Encode(s, false)) == " "+s for
// non-empty s (the dummy prefix stays without BOS).
func (t *Llama2C) Decode(ids []int) string {
	var sb strings.Builder
	prev := -1
	for _, id := range ids {
		if id >= 0 && id < len(t.pieces) {
			s := t.text[id]
			if prev == llama2CBOS && strings.HasPrefix(t.pieces[id], " ") {
				s = s[1:]
			}
			sb.WriteString(s)
		}
		prev = id
	}
	return sb.String()
}

// Encode tokenizes text exactly as llama2.c run.c's encode (with eos=0):
// optional BOS; the id of " " as a dummy prefix when text is non-empty; each
// UTF-8 character (a lead byte plus at most three continuation bytes,
// scanned bytewise as run.c does, so invalid UTF-8 is split the same way)
// looked up as a piece, or else its bytes as byte pieces (byte + 3); then,
// repeatedly, the adjacent pair whose concatenated pieces form a piece with
// the highest score (greater than -1e10; leftmost on ties) is replaced by
// that piece. BOS takes part in the pair search like any other id, as in
// run.c. A NUL byte, which ends a C string, is encoded as the byte piece
// <0x00>.
//
// The merge loop keeps candidate pairs in a heap ordered by (score
// descending, position ascending), which selects the same pair as run.c's
// quadratic scan at every step.
func (t *Llama2C) Encode(text string, addBOS bool) ([]int, error) {
	ids := make([]int, 0, len(text)+2)
	if addBOS {
		ids = append(ids, llama2CBOS)
	}
	if text != "" {
		ids = append(ids, t.space)
	}
	ids = t.appendChars(ids, text)
	return t.merge(ids), nil
}

// appendChars appends the ids of text's characters, following run.c's
// bytewise scan.
func (t *Llama2C) appendChars(ids []int, text string) []int {
	start := 0
	n := 0
	for i := 0; i < len(text); i++ {
		c := text[i]
		if c&0xC0 != 0x80 {
			start, n = i, 0
		}
		n++
		if i+1 < len(text) && text[i+1]&0xC0 == 0x80 && n < 4 {
			continue
		}
		chunk := text[start : start+n]
		if id, ok := t.lookup[chunk]; ok {
			ids = append(ids, id)
		} else {
			for j := 0; j < len(chunk); j++ {
				ids = append(ids, int(chunk[j])+llama2CByteBase)
			}
		}
		start, n = i+1, 0
	}
	return ids
}

// mergeCand is a candidate merge of the pair starting at node left.
type mergeCand struct {
	score       float32
	left, right int32 // node indices
	lid, rid    int32 // ids of the pair when the candidate was made
	merged      int32
}

// before orders candidates: higher score first, then leftmost.
func (c mergeCand) before(o mergeCand) bool {
	if c.score != o.score {
		return c.score > o.score
	}
	return c.left < o.left
}

// mergeHeap is a binary heap of candidates (typed, to avoid boxing each
// entry as container/heap would).
type mergeHeap []mergeCand

func (h *mergeHeap) push(c mergeCand) {
	*h = append(*h, c)
	q := *h
	i := len(q) - 1
	for i > 0 {
		p := (i - 1) / 2
		if !q[i].before(q[p]) {
			break
		}
		q[i], q[p] = q[p], q[i]
		i = p
	}
}

func (h *mergeHeap) pop() mergeCand {
	q := *h
	top := q[0]
	n := len(q) - 1
	q[0] = q[n]
	q = q[:n]
	for i := 0; ; {
		l := 2*i + 1
		if l >= n {
			break
		}
		m := l
		if r := l + 1; r < n && q[r].before(q[l]) {
			m = r
		}
		if !q[m].before(q[i]) {
			break
		}
		q[i], q[m] = q[m], q[i]
		i = m
	}
	*h = q
	return top
}

func (t *Llama2C) merge(ids []int) []int {
	if len(ids) < 2 {
		return ids
	}
	next := make([]int32, len(ids))
	prev := make([]int32, len(ids))
	for i := range ids {
		next[i], prev[i] = int32(i+1), int32(i-1)
	}
	next[len(ids)-1] = -1
	var buf []byte
	h := make(mergeHeap, 0, len(ids))
	candidate := func(l, r int32) {
		buf = append(append(buf[:0], t.pieces[ids[l]]...), t.pieces[ids[r]]...)
		m, ok := t.lookup[string(buf)]
		if !ok || !(t.scores[m] > llama2CMinScore) {
			return
		}
		h.push(mergeCand{score: t.scores[m], left: l, right: r, lid: int32(ids[l]), rid: int32(ids[r]), merged: int32(m)})
	}
	for i := int32(0); int(i)+1 < len(ids); i++ {
		candidate(i, i+1)
	}
	for len(h) > 0 {
		c := h.pop()
		// Stale when either node was merged away or changed since.
		if next[c.left] != c.right || ids[c.left] != int(c.lid) || ids[c.right] != int(c.rid) {
			continue
		}
		ids[c.left] = int(c.merged)
		nr := next[c.right]
		next[c.left] = nr
		next[c.right] = -2 // dead
		if nr >= 0 {
			prev[nr] = c.left
		}
		if p := prev[c.left]; p >= 0 {
			candidate(p, c.left)
		}
		if nr >= 0 {
			candidate(c.left, nr)
		}
	}
	out := ids[:0]
	for i := int32(0); i >= 0; i = next[i] {
		out = append(out, ids[i])
	}
	return out
}
