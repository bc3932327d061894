package tokenizer

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"unicode/utf8"

	"github.com/nlpodyssey/gotokenizers/models/bpemodel"
	"github.com/nlpodyssey/gotokenizers/vocabulary"
)

// Open loads a tokenizer file, chosen by its content: a JSON object is a
// Hugging Face tokenizer.json (LoadHF), anything else a llama2.c
// tokenizer.bin (LoadLlama2C). A directory is read as holding
// tokenizer.json.
func Open(path string) (Tokenizer, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("open tokenizer: %w", err)
	}
	if st.IsDir() {
		return LoadHF(filepath.Join(path, "tokenizer.json"))
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("open tokenizer: %w", err)
	}
	if trimmed := bytes.TrimLeft(data, " \t\r\n"); len(trimmed) > 0 && trimmed[0] == '{' {
		return loadHFBytes(path, data)
	}
	t, err := LoadLlama2C(data)
	if err != nil {
		return nil, fmt.Errorf("open tokenizer %s: %w", path, err)
	}
	return t, nil
}

// hfFile is the subset of tokenizer.json this package reads.
type hfFile struct {
	AddedTokens   []hfAddedToken  `json:"added_tokens"`
	Normalizer    json.RawMessage `json:"normalizer"`
	PreTokenizer  json.RawMessage `json:"pre_tokenizer"`
	PostProcessor json.RawMessage `json:"post_processor"`
	Decoder       json.RawMessage `json:"decoder"`
	Model         hfModel         `json:"model"`
}

type hfAddedToken struct {
	ID         int    `json:"id"`
	Content    string `json:"content"`
	SingleWord bool   `json:"single_word"`
	LStrip     bool   `json:"lstrip"`
	RStrip     bool   `json:"rstrip"`
	Normalized bool   `json:"normalized"`
	Special    bool   `json:"special"`
}

type hfModel struct {
	Type                    string          `json:"type"`
	Dropout                 *float64        `json:"dropout"`
	UnkToken                *string         `json:"unk_token"`
	ContinuingSubwordPrefix *string         `json:"continuing_subword_prefix"`
	EndOfWordSuffix         *string         `json:"end_of_word_suffix"`
	FuseUnk                 bool            `json:"fuse_unk"`
	ByteFallback            bool            `json:"byte_fallback"`
	IgnoreMerges            bool            `json:"ignore_merges"`
	Vocab                   []vocabEntry    `json:"-"`
	Merges                  json.RawMessage `json:"merges"`
}

type hfComponent struct {
	Type    string `json:"type"`
	Pattern *struct {
		String *string `json:"String"`
		Regex  *string `json:"Regex"`
	} `json:"pattern"`
	Content        string          `json:"content"`
	Behavior       string          `json:"behavior"`
	Invert         bool            `json:"invert"`
	AddPrefixSpace bool            `json:"add_prefix_space"`
	UseRegex       *bool           `json:"use_regex"`
	Decoders       []hfComponent   `json:"decoders"`
	Single         json.RawMessage `json:"single"`
}

// LoadHF reads a Hugging Face tokenizer.json holding a BPE model, in one of
// the two configurations implemented here:
//   - byte-level (GPT-2): no normalizer, a ByteLevel pre-tokenizer with its
//     regular expression, a ByteLevel decoder;
//   - SentencePiece-style with byte fallback (Gemma 3): a Replace normalizer
//     (" " -> "▁"), no pre-tokenizer or a Split on " " merged with the
//     previous piece, byte_fallback with all 256 <0xNN> pieces, a decoder
//     made of Replace, ByteFallback and Fuse steps. There is no dummy prefix
//     (Gemma 3 has no Prepend normalizer; one would be rejected).
//
// Anything else (other models, normalizers, pre-tokenizers or decoders,
// dropout, subword prefixes or suffixes, added tokens with lstrip, rstrip or
// single_word, normalized added tokens behind a normalizer) is rejected
// with ErrUnsupported rather than approximated.
//
// BOS and EOS come from bos_token and eos_token in the tokenizer_config.json
// next to the file when it exists; otherwise BOS is the first special token
// of the TemplateProcessing post-processor's single template, and EOS is -1.
func LoadHF(path string) (Tokenizer, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("load tokenizer.json: %w", err)
	}
	return loadHFBytes(path, data)
}

func loadHFBytes(path string, data []byte) (Tokenizer, error) {
	t, err := parseHF(path, data)
	if err != nil {
		return nil, fmt.Errorf("load tokenizer.json %s: %w", path, err)
	}
	return t, nil
}

func parseHF(path string, data []byte) (*BPE, error) {
	f, err := parseHFFile(data)
	if err != nil {
		return nil, err
	}
	m := f.Model
	if m.Type != "BPE" {
		return nil, fmt.Errorf("model type %q, only BPE is implemented: %w", m.Type, ErrUnsupported)
	}
	if m.Dropout != nil && *m.Dropout != 0 {
		return nil, fmt.Errorf("BPE dropout %v: %w", *m.Dropout, ErrUnsupported)
	}
	if m.ContinuingSubwordPrefix != nil && *m.ContinuingSubwordPrefix != "" {
		return nil, fmt.Errorf("continuing_subword_prefix %q: %w", *m.ContinuingSubwordPrefix, ErrUnsupported)
	}
	if m.EndOfWordSuffix != nil && *m.EndOfWordSuffix != "" {
		return nil, fmt.Errorf("end_of_word_suffix %q: %w", *m.EndOfWordSuffix, ErrUnsupported)
	}
	vocab, err := vocabFromEntries(m.Vocab)
	if err != nil {
		return nil, err
	}
	merges, err := parseHFMerges(m.Merges, vocab)
	if err != nil {
		return nil, err
	}
	t := &BPE{vocab: vocab, merges: merges, size: vocab.Size(), ignoreMerges: m.IgnoreMerges, added: newAddedTokens(), bos: -1, eos: -1}

	norm, err := parseComponent("normalizer", f.Normalizer)
	if err != nil {
		return nil, err
	}
	pre, err := parseComponent("pre_tokenizer", f.PreTokenizer)
	if err != nil {
		return nil, err
	}
	dec, err := parseComponent("decoder", f.Decoder)
	if err != nil {
		return nil, err
	}
	switch {
	case pre != nil && pre.Type == "ByteLevel":
		if norm != nil {
			return nil, fmt.Errorf("normalizer %q with a ByteLevel pre-tokenizer: %w", norm.Type, ErrUnsupported)
		}
		if pre.UseRegex != nil && !*pre.UseRegex {
			return nil, fmt.Errorf("ByteLevel pre-tokenizer without use_regex: %w", ErrUnsupported)
		}
		if dec == nil || dec.Type != "ByteLevel" {
			return nil, fmt.Errorf("byte-level pre-tokenizer needs a ByteLevel decoder, have %v: %w", componentType(dec), ErrUnsupported)
		}
		if m.ByteFallback {
			return nil, fmt.Errorf("byte_fallback with a ByteLevel pre-tokenizer: %w", ErrUnsupported)
		}
		if err := t.initByteLevel(pre.AddPrefixSpace); err != nil {
			return nil, err
		}
	default:
		if !m.ByteFallback {
			return nil, fmt.Errorf("BPE without byte-level pre-tokenization or byte_fallback: %w", ErrUnsupported)
		}
		if err := t.initFallback(norm, pre); err != nil {
			return nil, err
		}
	}

	for _, at := range f.AddedTokens {
		if at.Content == "" {
			return nil, fmt.Errorf("added token %d: empty content: %w", at.ID, ErrCorrupt)
		}
		if at.ID < 0 || at.ID >= 1<<24 {
			return nil, fmt.Errorf("added token %q: id %d out of range: %w", at.Content, at.ID, ErrCorrupt)
		}
		if at.LStrip || at.RStrip || at.SingleWord {
			return nil, fmt.Errorf("added token %q: lstrip/rstrip/single_word: %w", at.Content, ErrUnsupported)
		}
		if at.Normalized && norm != nil {
			return nil, fmt.Errorf("added token %q: matched after normalization: %w", at.Content, ErrUnsupported)
		}
		if vid, ok := vocab.GetID(at.Content); ok && vid != at.ID {
			return nil, fmt.Errorf("added token %q: id %d but vocabulary id %d: %w", at.Content, at.ID, vid, ErrCorrupt)
		}
		t.added.add(at.Content, at.ID)
		t.size = max(t.size, at.ID+1)
	}

	if err := t.initText(dec); err != nil {
		return nil, err
	}
	for _, at := range f.AddedTokens {
		t.text[at.ID] = t.decodePiece(at.Content, dec)
	}
	if err := t.initSpecial(path, f.PostProcessor); err != nil {
		return nil, err
	}
	return t, nil
}

func componentType(c *hfComponent) string {
	if c == nil {
		return "none"
	}
	return c.Type
}

func parseComponent(what string, raw json.RawMessage) (*hfComponent, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	var c hfComponent
	if err := json.Unmarshal(raw, &c); err != nil {
		return nil, fmt.Errorf("%s: %v: %w", what, err, ErrCorrupt)
	}
	return &c, nil
}

// vocabEntry is one token -> id entry of a tokenizer.json vocabulary.
type vocabEntry struct {
	token string
	id    int
}

// vocabFromEntries builds a gotokenizers vocabulary from token -> id
// entries, which must number the tokens 0..n-1 exactly once each.
func vocabFromEntries(entries []vocabEntry) (*vocabulary.Vocabulary, error) {
	if len(entries) == 0 {
		return nil, fmt.Errorf("empty vocabulary: %w", ErrCorrupt)
	}
	byID := make([]string, len(entries))
	seen := make([]bool, len(entries))
	for _, e := range entries {
		if e.id < 0 || e.id >= len(entries) {
			return nil, fmt.Errorf("vocabulary: token %q has id %d outside [0, %d): %w", e.token, e.id, len(entries), ErrCorrupt)
		}
		if seen[e.id] {
			return nil, fmt.Errorf("vocabulary: id %d used by %q and %q: %w", e.id, byID[e.id], e.token, ErrCorrupt)
		}
		seen[e.id], byID[e.id] = true, e.token
	}
	v := vocabulary.NewVocabulary()
	for id, tok := range byID {
		v.AddTerm(tok)
		if got, _ := v.GetID(tok); got != id {
			return nil, fmt.Errorf("vocabulary: token %q appears with ids %d and %d: %w", tok, got, id, ErrCorrupt)
		}
	}
	return v, nil
}

// parseHFMerges reads merges as "a b" strings or [a, b] pairs; the rank is
// the position in the list, and a later duplicate pair wins (as in Hugging
// Face's hash map).
func parseHFMerges(raw json.RawMessage, v *vocabulary.Vocabulary) (*bpemodel.MergeMap, error) {
	var pairs [][2]string
	trimmed := bytes.TrimLeft(raw, " \t\r\n")
	if len(trimmed) == 0 || trimmed[0] != '[' {
		return nil, fmt.Errorf("merges: not a JSON array: %w", ErrCorrupt)
	}
	if rest := bytes.TrimLeft(trimmed[1:], " \t\r\n"); len(rest) > 0 && rest[0] == '"' {
		var asStrings []string
		if err := json.Unmarshal(raw, &asStrings); err != nil {
			return nil, fmt.Errorf("merges: %v: %w", err, ErrCorrupt)
		}
		pairs = make([][2]string, len(asStrings))
		for i, s := range asStrings {
			a, b, ok := strings.Cut(s, " ")
			if !ok || strings.Contains(b, " ") {
				return nil, fmt.Errorf("merge %d %q: want two tokens separated by one space: %w", i, s, ErrCorrupt)
			}
			pairs[i] = [2]string{a, b}
		}
	} else {
		var err error
		if pairs, err = scanStringPairs(trimmed); err != nil {
			return nil, fmt.Errorf("merges: %w", err)
		}
	}
	mm := make(bpemodel.MergeMap, len(pairs))
	var buf []byte
	for i, p := range pairs {
		l, lok := v.GetID(p[0])
		r, rok := v.GetID(p[1])
		buf = append(append(buf[:0], p[0]...), p[1]...)
		n, nok := v.GetID(string(buf))
		if !lok || !rok || !nok {
			return nil, fmt.Errorf("merge %d (%q, %q): token or result not in vocabulary: %w", i, p[0], p[1], ErrCorrupt)
		}
		mm.Set(l, r, bpemodel.MergeValue{Rank: i, ID: n})
	}
	return &mm, nil
}

func (t *BPE) initByteLevel(addPrefixSpace bool) error {
	if err := checkByteLevelVocab(t.vocab); err != nil {
		return err
	}
	withPrefix, without, err := newByteLevelPreTokenizers(addPrefixSpace)
	if err != nil {
		return err
	}
	t.byteLevel = true
	t.pretokPrefix, t.pretokNoPrefix = withPrefix, without
	t.model = bpemodel.New(t.vocab, t.merges, 0, 0, "", "", "", false)
	return nil
}

func (t *BPE) initFallback(norm, pre *hfComponent) error {
	if norm != nil {
		if norm.Type != "Replace" || norm.Pattern == nil || norm.Pattern.String == nil || *norm.Pattern.String == "" {
			return fmt.Errorf("normalizer %q: only Replace of a literal string is implemented: %w", norm.Type, ErrUnsupported)
		}
		t.replaceFrom, t.replaceTo = *norm.Pattern.String, norm.Content
		if r, n := utf8.DecodeRuneInString(t.replaceTo); t.replaceFrom == " " && n == len(t.replaceTo) && r != utf8.RuneError {
			t.initMarker(r)
		}
	}
	if pre != nil {
		if pre.Type != "Split" || pre.Pattern == nil || pre.Pattern.String == nil || *pre.Pattern.String != " " || pre.Behavior != "MergedWithPrevious" || pre.Invert {
			return fmt.Errorf("pre_tokenizer %q: only Split on \" \" merged with previous is implemented: %w", pre.Type, ErrUnsupported)
		}
		t.splitSpace = true
	}
	for b := range 256 {
		id, ok := t.vocab.GetID(fmt.Sprintf("<0x%02X>", b))
		if !ok {
			return fmt.Errorf("byte_fallback: no <0x%02X> token: %w", b, ErrCorrupt)
		}
		t.byteIDs[b] = id
	}
	return nil
}

// initMarker records the space marker and the runes that precede it
// inside some vocabulary piece (for Gemma 3 only '>' in ">▁</").
func (t *BPE) initMarker(marker rune) {
	t.marker = marker
	t.joinsMarker = make(map[rune]bool)
	for id := range t.vocab.Size() {
		piece, _ := t.vocab.GetString(id)
		prev := rune(-1)
		for _, r := range piece {
			if r == marker && prev >= 0 && prev != marker {
				t.joinsMarker[prev] = true
			}
			prev = r
		}
	}
}

// initText precomputes Token(id) for the model vocabulary.
func (t *BPE) initText(dec *hfComponent) error {
	if !t.byteLevel {
		if dec != nil {
			steps := []hfComponent{*dec}
			if dec.Type == "Sequence" {
				steps = dec.Decoders
			}
			for _, s := range steps {
				switch s.Type {
				case "ByteFallback", "Fuse":
				case "Replace":
					if s.Pattern == nil || s.Pattern.String == nil || *s.Pattern.String == "" {
						return fmt.Errorf("decoder Replace: only a literal string pattern is implemented: %w", ErrUnsupported)
					}
				default:
					return fmt.Errorf("decoder step %q: %w", s.Type, ErrUnsupported)
				}
			}
		}
	}
	t.text = make([]string, t.size)
	for id := range t.vocab.Size() {
		piece, _ := t.vocab.GetString(id)
		t.text[id] = t.decodePiece(piece, dec)
	}
	return nil
}

// decodePiece applies the decoder to one token.
func (t *BPE) decodePiece(piece string, dec *hfComponent) string {
	if t.byteLevel {
		return byteLevelDecode(piece)
	}
	if dec == nil {
		return piece
	}
	steps := []hfComponent{*dec}
	if dec.Type == "Sequence" {
		steps = dec.Decoders
	}
	for _, s := range steps {
		switch s.Type {
		case "Replace":
			piece = strings.ReplaceAll(piece, *s.Pattern.String, s.Content)
		case "ByteFallback":
			if b, ok := exactBytePiece(piece); ok {
				piece = string([]byte{b})
			}
		}
	}
	return piece
}

// exactBytePiece parses "<0xNN>" (two upper- or lower-case hex digits).
func exactBytePiece(p string) (byte, bool) {
	if len(p) != 6 || !strings.HasPrefix(p, "<0x") || p[5] != '>' {
		return 0, false
	}
	hi, ok1 := hexDigit(p[3])
	lo, ok2 := hexDigit(p[4])
	if !ok1 || !ok2 {
		return 0, false
	}
	return byte(hi<<4 | lo), true
}

// initSpecial resolves BOS and EOS.
func (t *BPE) initSpecial(path string, post json.RawMessage) error {
	cfgPath := filepath.Join(filepath.Dir(path), "tokenizer_config.json")
	cfg, err := os.ReadFile(cfgPath)
	switch {
	case err == nil:
		var c struct {
			BOS json.RawMessage `json:"bos_token"`
			EOS json.RawMessage `json:"eos_token"`
		}
		if err := json.Unmarshal(cfg, &c); err != nil {
			return fmt.Errorf("%s: %v: %w", cfgPath, err, ErrCorrupt)
		}
		if t.bos, err = t.specialID(cfgPath, "bos_token", c.BOS); err != nil {
			return err
		}
		if t.eos, err = t.specialID(cfgPath, "eos_token", c.EOS); err != nil {
			return err
		}
		return nil
	case errors.Is(err, fs.ErrNotExist):
	default:
		return fmt.Errorf("read %s: %w", cfgPath, err)
	}
	pp, err := parseComponent("post_processor", post)
	if err != nil || pp == nil || pp.Type != "TemplateProcessing" {
		return err
	}
	var single []struct {
		SpecialToken *struct {
			ID string `json:"id"`
		} `json:"SpecialToken"`
	}
	if err := json.Unmarshal(pp.Single, &single); err != nil {
		return fmt.Errorf("post_processor single template: %v: %w", err, ErrCorrupt)
	}
	if len(single) > 0 && single[0].SpecialToken != nil {
		id, ok := t.idOf(single[0].SpecialToken.ID)
		if !ok {
			return fmt.Errorf("post_processor: BOS %q is not a token: %w", single[0].SpecialToken.ID, ErrCorrupt)
		}
		t.bos = id
	}
	return nil
}

func (t *BPE) idOf(content string) (int, bool) {
	if id, ok := t.added.ids[content]; ok {
		return id, true
	}
	return t.vocab.GetID(content)
}

// specialID resolves a tokenizer_config.json token entry: absent or null
// gives -1; a string or {"content": ...} must name a token.
func (t *BPE) specialID(cfgPath, field string, raw json.RawMessage) (int, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return -1, nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		var obj struct {
			Content string `json:"content"`
		}
		if err := json.Unmarshal(raw, &obj); err != nil {
			return 0, fmt.Errorf("%s: %s: %v: %w", cfgPath, field, err, ErrCorrupt)
		}
		s = obj.Content
	}
	id, ok := t.idOf(s)
	if !ok {
		return 0, fmt.Errorf("%s: %s %q is not a token: %w", cfgPath, field, s, ErrCorrupt)
	}
	return id, nil
}

// LoadGPT2 reads OpenAI's GPT-2 tokenizer files, given their paths:
// encoder.json (token -> id) and vocab.bpe (merges in rank order after a
// "#version" line), with gotokenizers' vocabulary.FromJSONFile and
// bpemodel.MergeMapFromFile. Pre-tokenization is byte-level with GPT-2's
// pattern and no prefix space, as in OpenAI's encoder.py. "<|endoftext|>"
// is BOS and EOS, and, as in Hugging Face's GPT-2 tokenizer, is matched as a
// special token in the text (OpenAI's encoder.py would spell it out in
// ordinary pieces).
func LoadGPT2(encoderJSON, vocabBPE string) (Tokenizer, error) {
	v, err := vocabulary.FromJSONFile(encoderJSON)
	if err != nil {
		return nil, fmt.Errorf("load GPT-2 encoder %s: %v: %w", encoderJSON, err, ErrCorrupt)
	}
	for id := range v.Size() {
		if _, ok := v.GetString(id); !ok {
			return nil, fmt.Errorf("load GPT-2 encoder %s: ids are not 0..%d (no id %d): %w", encoderJSON, v.Size()-1, id, ErrCorrupt)
		}
	}
	mm, err := bpemodel.MergeMapFromFile(vocabBPE, v, 0)
	if err != nil {
		return nil, fmt.Errorf("load GPT-2 merges %s: %v: %w", vocabBPE, err, ErrCorrupt)
	}
	t := &BPE{vocab: v, merges: mm, size: v.Size(), added: newAddedTokens(), bos: -1, eos: -1}
	if err := t.initByteLevel(false); err != nil {
		return nil, fmt.Errorf("load GPT-2 %s: %w", encoderJSON, err)
	}
	const eot = "<|endoftext|>"
	id, ok := v.GetID(eot)
	if !ok {
		return nil, fmt.Errorf("load GPT-2 encoder %s: no %s token: %w", encoderJSON, eot, ErrCorrupt)
	}
	t.added.add(eot, id)
	t.bos, t.eos = id, id
	if err := t.initText(&hfComponent{Type: "ByteLevel"}); err != nil {
		return nil, err
	}
	t.text[id] = eot
	return t, nil
}
