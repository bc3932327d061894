package tokenizer

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/dlclark/regexp2"
	"github.com/nlpodyssey/gotokenizers/models/bpemodel"
	"github.com/nlpodyssey/gotokenizers/normalizedstring"
	"github.com/nlpodyssey/gotokenizers/pretokenizedstring"
	"github.com/nlpodyssey/gotokenizers/pretokenizers/bytelevelpretokenizer"
	"github.com/nlpodyssey/gotokenizers/splitpattern"
	"github.com/nlpodyssey/gotokenizers/vocabulary"
)

// gpt2Pattern is the GPT-2 pre-tokenization pattern as OpenAI's encoder.py
// and Hugging Face's ByteLevel pre-tokenizer use it: case-sensitive.
// gotokenizers' DefaultSplittingRegexp compiles it with IgnoreCase, which
// would split "'S" or "'LL" differently from the reference, so the pattern
// is compiled here and handed to the library's ByteLevel pre-tokenizer.
const gpt2Pattern = `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`

// gpt2ChunkBytes is the length after which byte-level input is cut at the
// next safe boundary (see byteLevelChunks).
const gpt2ChunkBytes = 256

// BPE is a Hugging Face-style BPE tokenizer: added tokens split out of the
// raw text first, then normalization, pre-tokenization and rank-ordered BPE
// merges per pre-token. Two flavours are implemented: byte-level (GPT-2),
// and SentencePiece-style with byte fallback (Gemma 3).
//
// The vocabulary (vocabulary.Vocabulary), merge table (bpemodel.MergeMap),
// merge loop (bpemodel.Word.MergeAll), byte-level pre-tokenizer
// (bytelevelpretokenizer) and the BPE model for byte-level words
// (bpemodel.BPEModel) are gotokenizers'. Byte fallback is not: the
// library's BPE model drops, or maps to unk, a character missing from the
// vocabulary, while Gemma encodes each of its UTF-8 bytes as a <0xNN> piece;
// words are therefore built here and merged with the library's MergeAll.
type BPE struct {
	vocab  *vocabulary.Vocabulary
	merges *bpemodel.MergeMap
	size   int

	// byte-level flavour
	byteLevel      bool
	model          *bpemodel.BPEModel
	pretokPrefix   *bytelevelpretokenizer.ByteLevelPreTokenizer // adds the prefix space when configured
	pretokNoPrefix *bytelevelpretokenizer.ByteLevelPreTokenizer

	// SentencePiece-style flavour
	replaceFrom, replaceTo string        // normalizer: Replace (empty replaceFrom: none)
	splitSpace             bool          // pre-tokenizer: Split on " ", merged with previous
	byteIDs                [256]int      // byte fallback: id of <0xNN>
	marker                 rune          // the one-rune replacement of " " (▁), or 0
	joinsMarker            map[rune]bool // runes other than marker followed by marker in some piece

	ignoreMerges bool
	words        wordCache // byte-level word -> ids
	added        addedTokens
	text         []string // Token(id)
	bos, eos     int
}

var _ Tokenizer = (*BPE)(nil)

// VocabSize is one more than the largest id of the model or added tokens.
func (t *BPE) VocabSize() int { return t.size }

// BOS is the beginning-of-sequence id, or -1.
func (t *BPE) BOS() int { return t.bos }

// EOS is the end-of-sequence id, or -1.
func (t *BPE) EOS() int { return t.eos }

// Token returns the decoded text of one id: for byte-level vocabularies the
// bytes its characters stand for; otherwise the piece with the decoder's
// replacement applied (▁ -> space for Gemma) and a <0xNN> piece as that one
// byte. Added tokens, special ones included, yield their content, as
// Hugging Face's decode with skip_special_tokens=False does.
func (t *BPE) Token(id int) string {
	if id < 0 || id >= len(t.text) {
		return ""
	}
	return t.text[id]
}

// Decode concatenates Token of each id, like Hugging Face's decode with
// skip_special_tokens=False: a BOS id renders as its text ("<bos>"), so
// Decode(Encode(s, false)) == s and Decode(Encode(s, true)[1:]) == s (for
// valid UTF-8 s; Gemma also maps a typed "▁" to a space). Bytes are
// concatenated raw: where Hugging Face decodes an invalid UTF-8 byte run to
// U+FFFD, Decode keeps the bytes.
func (t *BPE) Decode(ids []int) string {
	var sb strings.Builder
	for _, id := range ids {
		sb.WriteString(t.Token(id))
	}
	return sb.String()
}

// Encode tokenizes text: optional BOS, then the added tokens matched in the
// raw text (leftmost, longest first), and every other segment normalized,
// pre-tokenized and BPE-merged. Byte-level tokenizers require valid UTF-8
// (the pre-tokenizer's regular expression works on code points); byte
// fallback tokenizers encode an invalid byte as its <0xNN> piece.
func (t *BPE) Encode(text string, addBOS bool) ([]int, error) {
	ids := make([]int, 0, len(text)/3+1)
	if addBOS {
		if t.bos < 0 {
			return nil, fmt.Errorf("encode: addBOS requested but the tokenizer has no BOS token")
		}
		ids = append(ids, t.bos)
	}
	if t.byteLevel && !utf8.ValidString(text) {
		return nil, fmt.Errorf("encode: text is not valid UTF-8 (byte-level pre-tokenization needs code points)")
	}
	var err error
	t.added.split(text, func(seg string, addedID int) bool {
		if addedID >= 0 {
			ids = append(ids, addedID)
			return true
		}
		ids, err = t.encodeSegment(ids, seg)
		return err == nil
	})
	if err != nil {
		return nil, err
	}
	return ids, nil
}

func (t *BPE) encodeSegment(ids []int, seg string) ([]int, error) {
	if t.byteLevel {
		return t.encodeByteLevel(ids, seg)
	}
	if t.replaceFrom != "" {
		// Equivalent to gotokenizers' NormalizedString.Replace, which
		// rewrites the whole alignment table per match (quadratic in the
		// segment length); offsets are not needed here.
		seg = strings.ReplaceAll(seg, t.replaceFrom, t.replaceTo)
	}
	words := []string{seg}
	if t.splitSpace && strings.Contains(seg, " ") {
		nss, err := normalizedstring.FromString(seg).Split(splitpattern.FromString(" "), normalizedstring.SplitDelimiterMergedWithPrevious)
		if err != nil {
			return nil, fmt.Errorf("encode: split on spaces: %w", err)
		}
		words = words[:0]
		for _, ns := range nss {
			words = append(words, ns.Get())
		}
	}
	for _, w := range words {
		if w == "" {
			continue
		}
		if t.ignoreMerges {
			if id, ok := t.vocab.GetID(w); ok {
				ids = append(ids, id)
				continue
			}
		}
		if t.marker == 0 {
			ids = t.appendFallbackWord(ids, w)
			continue
		}
		for _, part := range t.markerParts(w) {
			if cached, ok := t.words.get(part); ok {
				ids = append(ids, cached...)
				continue
			}
			start := len(ids)
			ids = t.appendFallbackWord(ids, part)
			t.words.put(part, ids[start:])
		}
	}
	return ids, nil
}

// markerParts cuts a word before each space marker (▁) that follows a
// character after which no merge can cross into a marker: one that is not
// itself the marker, has its own piece (so it is not spelled in byte
// pieces), and is not followed by the marker inside any vocabulary piece
// (t.joinsMarker). Every symbol of the BPE is a vocabulary piece covering
// its text, so no symbol can span such a cut and no pair across it can
// ever merge: merging the parts separately gives the same ids as merging
// the word, while keeping words short (the library's merge loop removes
// merged symbols one by one, quadratic in the word length) and cacheable.
func (t *BPE) markerParts(w string) []string {
	var parts []string
	start := 0
	prev, prevOwn := rune(-1), false // prevOwn: prev has its own piece
	for i := 0; i < len(w); {
		r, n := utf8.DecodeRuneInString(w[i:])
		if r == t.marker && i > start && prevOwn && prev != t.marker && !t.joinsMarker[prev] {
			parts = append(parts, w[start:i])
			start = i
		}
		prev = r
		prevOwn = false
		if !(r == utf8.RuneError && n == 1) {
			_, prevOwn = t.vocab.GetID(w[i : i+n])
		}
		i += n
	}
	return append(parts, w[start:])
}

// appendFallbackWord runs BPE over one word whose characters missing from
// the vocabulary become their <0xNN> byte pieces.
func (t *BPE) appendFallbackWord(ids []int, w string) []int {
	word := bpemodel.NewWordWithCapacity(len(w))
	for i := 0; i < len(w); {
		r, n := utf8.DecodeRuneInString(w[i:])
		if !(r == utf8.RuneError && n == 1) {
			if id, ok := t.vocab.GetID(w[i : i+n]); ok {
				word.Add(id, n)
				i += n
				continue
			}
		}
		for _, b := range []byte(w[i : i+n]) {
			word.Add(t.byteIDs[b], 1)
		}
		i += n
	}
	word.MergeAll(t.merges, 0)
	for _, s := range *word {
		ids = append(ids, s.ID)
	}
	return ids
}

// encodeByteLevel pre-tokenizes with gotokenizers' ByteLevel pre-tokenizer
// and merges each pre-token with its BPE model. The library's regexp2 split
// converts each match's code-point index to a byte offset by re-encoding
// the whole prefix, which is quadratic in the input length; the segment is
// therefore fed in chunks cut where the pattern always has a match boundary
// (see byteLevelChunks), which leaves the result unchanged.
func (t *BPE) encodeByteLevel(ids []int, seg string) ([]int, error) {
	return t.encodeByteLevelChunks(ids, seg, gpt2ChunkBytes)
}

func (t *BPE) encodeByteLevelChunks(ids []int, seg string, chunkBytes int) ([]int, error) {
	for i, chunk := range byteLevelChunks(seg, chunkBytes) {
		pt := t.pretokNoPrefix
		if i == 0 {
			pt = t.pretokPrefix
		}
		pts := pretokenizedstring.FromString(chunk)
		if err := pt.PreTokenize(pts); err != nil {
			return nil, fmt.Errorf("encode: byte-level pre-tokenize: %w", err)
		}
		for _, sp := range pts.Splits() {
			w := sp.NormalizedString.Get()
			if t.ignoreMerges {
				if id, ok := t.vocab.GetID(w); ok {
					ids = append(ids, id)
					continue
				}
			}
			if cached, ok := t.words.get(w); ok {
				ids = append(ids, cached...)
				continue
			}
			toks, err := t.model.Tokenize(w)
			if err != nil {
				return nil, fmt.Errorf("encode: BPE on %q: %w", w, err)
			}
			start := len(ids)
			for _, tk := range toks {
				ids = append(ids, tk.ID)
			}
			t.words.put(w, ids[start:])
		}
	}
	return ids, nil
}

// wordCache remembers the ids of short byte-level words, as Hugging Face's
// BPE does (gotokenizers' own word cache is a stub). It stops growing at a
// fixed number of entries.
type wordCache struct {
	mu sync.RWMutex
	m  map[string][]int
}

const (
	wordCacheEntries = 1 << 16
	wordCacheMaxLen  = 64
)

func (c *wordCache) get(w string) ([]int, bool) {
	c.mu.RLock()
	ids, ok := c.m[w]
	c.mu.RUnlock()
	return ids, ok
}

func (c *wordCache) put(w string, ids []int) {
	if len(w) > wordCacheMaxLen {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = make(map[string][]int)
	}
	if len(c.m) < wordCacheEntries {
		c.m[w] = slices.Clone(ids)
	}
}

// byteLevelChunks cuts s into pieces of at least min bytes (the last may be
// shorter) at positions p where s[p] is an ASCII space or newline and
// s[p-1] is a visible ASCII character. No alternative of the GPT-2 pattern
// can match across such a p (only its whitespace alternatives consume
// whitespace, and they cannot start with a visible character; the optional
// leading space of the others only starts a match), the pattern has no
// look-behind, and its only look-ahead, in \s+(?!\S), belongs to matches of
// whitespace alone, so matching the pieces separately yields the same
// pre-tokens.
func byteLevelChunks(s string, min int) []string {
	if len(s) <= min {
		return []string{s}
	}
	var out []string
	start := 0
	for p := start + min; p < len(s); p++ {
		if (s[p] == ' ' || s[p] == '\n') && s[p-1] >= 0x21 && s[p-1] <= 0x7E {
			out = append(out, s[start:p])
			start = p
			p = start + min - 1
		}
	}
	return append(out, s[start:])
}

// addedTokens matches added tokens in raw text, leftmost first and longest
// at a position, as Hugging Face's added-vocabulary split does.
type addedTokens struct {
	ids     map[string]int
	lengths [256][]int // per first byte: candidate lengths, longest first
}

func newAddedTokens() addedTokens {
	return addedTokens{ids: make(map[string]int)}
}

func (a *addedTokens) add(content string, id int) {
	if _, ok := a.ids[content]; ok {
		return
	}
	a.ids[content] = id
	b := content[0]
	if !slices.Contains(a.lengths[b], len(content)) {
		a.lengths[b] = append(a.lengths[b], len(content))
		slices.SortFunc(a.lengths[b], func(x, y int) int { return y - x })
	}
}

// split calls f for each plain segment (addedID -1) and each added token in
// order, stopping when f returns false.
func (a *addedTokens) split(text string, f func(seg string, addedID int) bool) {
	start := 0
	for i := 0; i < len(text); i++ {
		for _, n := range a.lengths[text[i]] {
			if i+n > len(text) {
				continue
			}
			id, ok := a.ids[text[i:i+n]]
			if !ok {
				continue
			}
			if start < i && !f(text[start:i], -1) {
				return
			}
			if !f(text[i:i+n], id) {
				return
			}
			start = i + n
			i = start - 1
			break
		}
	}
	if start < len(text) {
		f(text[start:], -1)
	}
}

// gpt2ByteToRune is GPT-2's bytes_to_unicode table: printable Latin-1
// bytes map to themselves, the others to U+0100 onwards in byte order.
var gpt2ByteToRune, gpt2RuneToByte = func() ([256]rune, map[rune]byte) {
	var b2r [256]rune
	r2b := make(map[rune]byte, 256)
	n := 0
	for i := range 256 {
		if (i >= '!' && i <= '~') || (i >= 0xA1 && i <= 0xAC) || (i >= 0xAE && i <= 0xFF) {
			b2r[i] = rune(i)
		} else {
			b2r[i] = rune(0x100 + n)
			n++
		}
		r2b[b2r[i]] = byte(i)
	}
	return b2r, r2b
}()

// byteLevelDecode maps each character of a byte-level piece back to its
// byte; a character outside the table is kept as its UTF-8 encoding.
func byteLevelDecode(piece string) string {
	var sb strings.Builder
	for _, r := range piece {
		if b, ok := gpt2RuneToByte[r]; ok {
			sb.WriteByte(b)
		} else {
			sb.WriteRune(r)
		}
	}
	return sb.String()
}

// newByteLevelPreTokenizers returns the library pre-tokenizer with the
// case-sensitive GPT-2 pattern, with and without the prefix space.
func newByteLevelPreTokenizers(addPrefixSpace bool) (withPrefix, without *bytelevelpretokenizer.ByteLevelPreTokenizer, err error) {
	re, err := regexp2.Compile(gpt2Pattern, regexp2.None)
	if err != nil {
		return nil, nil, fmt.Errorf("compile GPT-2 pattern: %w", err)
	}
	return bytelevelpretokenizer.New(re, addPrefixSpace, false), bytelevelpretokenizer.New(re, false, false), nil
}

// checkByteLevelVocab verifies that every byte's character is a token, so
// that the library's BPE model (which silently drops unknown characters)
// never meets one.
func checkByteLevelVocab(v *vocabulary.Vocabulary) error {
	for b, r := range gpt2ByteToRune {
		if _, ok := v.GetID(string(r)); !ok {
			return fmt.Errorf("byte-level vocabulary lacks the character %q for byte 0x%02X: %w", r, b, ErrCorrupt)
		}
	}
	return nil
}
