package tokenizer

import (
	"encoding/json"
	"fmt"
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
