package tokenizer

import (
	"encoding/json"
	"fmt"
	"strconv"
)

// scanStringPairs parses a JSON array of two-string arrays, such as
// [["a","b"],["c","d"]], much faster than encoding/json does for the half
// million merges of a large vocabulary. Strings without escapes are sliced
// directly; strings with escapes go through encoding/json.
func scanStringPairs(data []byte) ([][2]string, error) {
	s := jsonScanner{data: data}
	if err := s.expect('['); err != nil {
		return nil, err
	}
	var out [][2]string
	if s.peek() == ']' {
		s.pos++
		return out, s.end()
	}
	for {
		if err := s.expect('['); err != nil {
			return nil, err
		}
		var p [2]string
		var err error
		if p[0], err = s.str(); err != nil {
			return nil, err
		}
		if err := s.expect(','); err != nil {
			return nil, err
		}
		if p[1], err = s.str(); err != nil {
			return nil, err
		}
		if err := s.expect(']'); err != nil {
			return nil, err
		}
		out = append(out, p)
		switch s.peek() {
		case ',':
			s.pos++
		case ']':
			s.pos++
			return out, s.end()
		default:
			return nil, s.errorf("want ',' or ']'")
		}
	}
}

type jsonScanner struct {
	data []byte
	pos  int
}

func (s *jsonScanner) skipSpace() {
	for s.pos < len(s.data) {
		switch s.data[s.pos] {
		case ' ', '\t', '\r', '\n':
			s.pos++
		default:
			return
		}
	}
}

func (s *jsonScanner) peek() byte {
	s.skipSpace()
	if s.pos >= len(s.data) {
		return 0
	}
	return s.data[s.pos]
}

func (s *jsonScanner) errorf(format string, args ...any) error {
	return fmt.Errorf("JSON offset %d: %s: %w", s.pos, fmt.Sprintf(format, args...), ErrCorrupt)
}

func (s *jsonScanner) expect(c byte) error {
	if s.peek() != c {
		return s.errorf("want %q", c)
	}
	s.pos++
	return nil
}

func (s *jsonScanner) end() error {
	if s.peek() != 0 {
		return s.errorf("trailing data")
	}
	return nil
}

func (s *jsonScanner) str() (string, error) {
	if s.peek() != '"' {
		return "", s.errorf("want a string")
	}
	start := s.pos
	escaped := false
	for i := start + 1; i < len(s.data); i++ {
		switch c := s.data[i]; {
		case c == '\\':
			escaped = true
			i++
		case c == '"':
			s.pos = i + 1
			if !escaped {
				return string(s.data[start+1 : i]), nil
			}
			var v string
			if err := json.Unmarshal(s.data[start:i+1], &v); err != nil {
				return "", fmt.Errorf("JSON offset %d: %v: %w", start, err, ErrCorrupt)
			}
			return v, nil
		case c < 0x20:
			return "", fmt.Errorf("JSON offset %d: control character in string: %w", i, ErrCorrupt)
		}
	}
	return "", fmt.Errorf("JSON offset %d: unterminated string: %w", start, ErrCorrupt)
}

// skipValue skips one JSON value and returns its bytes.
func (s *jsonScanner) skipValue() ([]byte, error) {
	s.skipSpace()
	start := s.pos
	if s.pos >= len(s.data) {
		return nil, s.errorf("want a value")
	}
	switch c := s.data[s.pos]; {
	case c == '"':
		if _, err := s.str(); err != nil {
			return nil, err
		}
	case c == '{' || c == '[':
		depth := 0
		for s.pos < len(s.data) {
			switch s.data[s.pos] {
			case '"':
				if _, err := s.str(); err != nil {
					return nil, err
				}
				continue
			case '{', '[':
				depth++
			case '}', ']':
				depth--
			}
			s.pos++
			if depth == 0 {
				return s.data[start:s.pos], nil
			}
		}
		return nil, fmt.Errorf("JSON offset %d: unterminated %q: %w", start, c, ErrCorrupt)
	default:
		for s.pos < len(s.data) {
			c := s.data[s.pos]
			if c == ',' || c == '}' || c == ']' || c == ' ' || c == '\t' || c == '\r' || c == '\n' {
				break
			}
			s.pos++
		}
		if s.pos == start {
			return nil, s.errorf("want a value")
		}
	}
	return s.data[start:s.pos], nil
}

// object calls f for each key of a JSON object, with the scanner
// positioned at the key's value; f must consume the value.
func (s *jsonScanner) object(f func(key string) error) error {
	if err := s.expect('{'); err != nil {
		return err
	}
	if s.peek() == '}' {
		s.pos++
		return nil
	}
	for {
		key, err := s.str()
		if err != nil {
			return err
		}
		if err := s.expect(':'); err != nil {
			return err
		}
		if err := f(key); err != nil {
			return err
		}
		switch s.peek() {
		case ',':
			s.pos++
		case '}':
			s.pos++
			return nil
		default:
			return s.errorf("want ',' or '}'")
		}
	}
}

// stringIntObject parses a JSON object of string keys and integer values,
// keeping the file's order.
func (s *jsonScanner) stringIntObject() ([]vocabEntry, error) {
	var out []vocabEntry
	err := s.object(func(key string) error {
		raw, err := s.skipValue()
		if err != nil {
			return err
		}
		v, err := strconv.Atoi(string(raw))
		if err != nil {
			return fmt.Errorf("key %q: value %s is not an integer: %w", key, raw, ErrCorrupt)
		}
		out = append(out, vocabEntry{key, v})
		return nil
	})
	return out, err
}

// parseHFFile reads the parts of tokenizer.json this package uses. The
// model's vocabulary and merges (hundreds of thousands of entries for
// Gemma 3) are scanned directly; the small components are decoded with
// encoding/json.
func parseHFFile(data []byte) (hfFile, error) {
	var f hfFile
	s := jsonScanner{data: data}
	raw := func(dst *json.RawMessage) error {
		v, err := s.skipValue()
		*dst = v
		return err
	}
	err := s.object(func(key string) error {
		switch key {
		case "added_tokens":
			v, err := s.skipValue()
			if err != nil {
				return err
			}
			if err := json.Unmarshal(v, &f.AddedTokens); err != nil {
				return fmt.Errorf("added_tokens: %v: %w", err, ErrCorrupt)
			}
			return nil
		case "normalizer":
			return raw(&f.Normalizer)
		case "pre_tokenizer":
			return raw(&f.PreTokenizer)
		case "post_processor":
			return raw(&f.PostProcessor)
		case "decoder":
			return raw(&f.Decoder)
		case "model":
			return s.object(func(key string) error {
				switch key {
				case "vocab":
					v, err := s.stringIntObject()
					f.Model.Vocab = v
					if err != nil {
						return fmt.Errorf("model.vocab: %w", err)
					}
					return nil
				case "merges":
					return raw(&f.Model.Merges)
				}
				v, err := s.skipValue()
				if err != nil {
					return err
				}
				var dst any
				switch key {
				case "type":
					dst = &f.Model.Type
				case "dropout":
					dst = &f.Model.Dropout
				case "unk_token":
					dst = &f.Model.UnkToken
				case "continuing_subword_prefix":
					dst = &f.Model.ContinuingSubwordPrefix
				case "end_of_word_suffix":
					dst = &f.Model.EndOfWordSuffix
				case "fuse_unk":
					dst = &f.Model.FuseUnk
				case "byte_fallback":
					dst = &f.Model.ByteFallback
				case "ignore_merges":
					dst = &f.Model.IgnoreMerges
				default:
					return nil
				}
				if err := json.Unmarshal(v, dst); err != nil {
					return fmt.Errorf("model.%s: %v: %w", key, err, ErrCorrupt)
				}
				return nil
			})
		}
		_, err := s.skipValue()
		return err
	})
	if err != nil {
		return hfFile{}, fmt.Errorf("parse JSON: %w", err)
	}
	if err := s.end(); err != nil {
		return hfFile{}, fmt.Errorf("parse JSON: %w", err)
	}
	return f, nil
}
