package evalharness

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"strings"
)

// StorySeparator is the line that ends each story in a corpus file.
const StorySeparator = "<|endoftext|>"

// ReadStories splits a corpus into stories at lines equal to
// StorySeparator (surrounding whitespace ignored). Each story is its lines
// joined by "\n" with outer whitespace stripped; empty stories are dropped.
func ReadStories(r io.Reader) ([]string, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	var out []string
	var cur []string
	flush := func() {
		s := strings.TrimSpace(strings.Join(cur, "\n"))
		if s != "" {
			out = append(out, s)
		}
		cur = cur[:0]
	}
	for sc.Scan() {
		line := sc.Text()
		if strings.TrimSpace(line) == StorySeparator {
			flush()
			continue
		}
		cur = append(cur, line)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read corpus: %w", err)
	}
	flush()
	return out, nil
}

// LoadStories reads a corpus file; see ReadStories.
func LoadStories(path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open corpus: %w", err)
	}
	defer f.Close()
	s, err := ReadStories(f)
	if err != nil {
		return nil, fmt.Errorf("corpus %s: %w", path, err)
	}
	if len(s) == 0 {
		return nil, fmt.Errorf("corpus %s: no stories", path)
	}
	return s, nil
}
