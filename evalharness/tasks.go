package evalharness

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// HellaSwagVersion is the lm-evaluation-harness task version whose
// preprocessing this package reproduces (lm_eval/tasks/hellaswag/hellaswag.yaml,
// metadata version 1.0, process_docs in lm_eval/tasks/hellaswag/utils.py).
const HellaSwagVersion = "1.0"

// TargetDelimiter separates the query from each choice, as in lm-eval.
const TargetDelimiter = " "

// Item is one line of a task file in the HellaSwag JSONL schema.
type Item struct {
	Ind           int      `json:"ind"`
	ActivityLabel string   `json:"activity_label"`
	CtxA          string   `json:"ctx_a"`
	CtxB          string   `json:"ctx_b"`
	Ctx           string   `json:"ctx"`
	Endings       []string `json:"endings"`
	Label         Label    `json:"label"`
	SourceID      string   `json:"source_id,omitempty"`
	Split         string   `json:"split,omitempty"`
	SplitType     string   `json:"split_type,omitempty"`
}

// Label is the gold index; HellaSwag files carry it as a number, the Hugging
// Face copy as a string, and both are accepted.
type Label int

// UnmarshalJSON accepts 2 and "2".
func (l *Label) UnmarshalJSON(b []byte) error {
	s := string(bytes.TrimSpace(b))
	if unq, err := strconv.Unquote(s); err == nil {
		s = unq
	}
	v, err := strconv.Atoi(s)
	if err != nil {
		return fmt.Errorf("label %s is not an integer", string(b))
	}
	*l = Label(v)
	return nil
}

// Doc is one preprocessed multiple-choice item, ready for scoring.
type Doc struct {
	ID      string   // "ind" of the item
	Query   string   // the context every choice is appended to
	Choices []string // endings, without the target delimiter
	Gold    int      // index of the correct choice
}

// Task is a loaded task file.
type Task struct {
	Name    string // file name without extension
	Path    string
	Version string // HellaSwagVersion when any item is a real HellaSwag item, else "plain-1"
	Split   string // the items' "split" field when they all agree, else "mixed"
	Shots   int    // always 0: the harness is zero-shot
	Docs    []Doc
}

// PlainVersion labels task files whose items all have an empty activity_label
// (generated sets): query = ctx and choices = endings, verbatim.
const PlainVersion = "plain-1"

// LoadTask reads a JSONL task file. Items with a non-empty activity_label are
// real HellaSwag items and get lm-eval's preprocessing (ProcessHellaSwag);
// items with an empty activity_label are plain items (ProcessPlain).
func LoadTask(path string) (*Task, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open task file: %w", err)
	}
	defer f.Close()
	t, err := ReadTask(f)
	if err != nil {
		return nil, fmt.Errorf("task file %s: %w", path, err)
	}
	t.Path = path
	t.Name = strings.TrimSuffix(filepath.Base(path), filepath.Ext(path))
	return t, nil
}

// ReadTask parses JSONL items from r; see LoadTask.
func ReadTask(r io.Reader) (*Task, error) {
	t := &Task{Version: PlainVersion}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	line := 0
	splits := map[string]bool{}
	for sc.Scan() {
		line++
		raw := bytes.TrimSpace(sc.Bytes())
		if len(raw) == 0 {
			continue
		}
		var it Item
		dec := json.NewDecoder(bytes.NewReader(raw))
		if err := dec.Decode(&it); err != nil {
			return nil, fmt.Errorf("line %d: %w", line, err)
		}
		var d Doc
		var err error
		if it.ActivityLabel != "" {
			d, err = ProcessHellaSwag(it)
			t.Version = HellaSwagVersion
		} else {
			d, err = ProcessPlain(it)
		}
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", line, err)
		}
		splits[it.Split] = true
		t.Docs = append(t.Docs, d)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read line %d: %w", line+1, err)
	}
	if len(t.Docs) == 0 {
		return nil, errors.New("no items")
	}
	t.Split = "mixed"
	if len(splits) == 1 {
		for s := range splits {
			t.Split = s
		}
	}
	return t, nil
}

func checkItem(it Item) error {
	if len(it.Endings) < 2 {
		return fmt.Errorf("item %d: %d endings, need at least 2", it.Ind, len(it.Endings))
	}
	if int(it.Label) < 0 || int(it.Label) >= len(it.Endings) {
		return fmt.Errorf("item %d: label %d out of range for %d endings", it.Ind, it.Label, len(it.Endings))
	}
	return nil
}

// ProcessHellaSwag applies lm-eval's hellaswag process_docs to one item:
// query = preprocess(activity_label + ": " + ctx_a + " " + capitalize(ctx_b)),
// choices = preprocess(ending) for each ending.
func ProcessHellaSwag(it Item) (Doc, error) {
	if err := checkItem(it); err != nil {
		return Doc{}, err
	}
	ctx := it.CtxA + " " + PyCapitalize(it.CtxB)
	d := Doc{
		ID:    strconv.Itoa(it.Ind),
		Query: Preprocess(it.ActivityLabel + ": " + ctx),
		Gold:  int(it.Label),
	}
	for _, e := range it.Endings {
		d.Choices = append(d.Choices, Preprocess(e))
	}
	return d, nil
}

// ProcessPlain turns a generated item into a Doc without rewriting text:
// query = ctx, choices = endings.
func ProcessPlain(it Item) (Doc, error) {
	if err := checkItem(it); err != nil {
		return Doc{}, err
	}
	if it.Ctx == "" {
		return Doc{}, fmt.Errorf("item %d: empty ctx", it.Ind)
	}
	return Doc{
		ID:      strconv.Itoa(it.Ind),
		Query:   it.Ctx,
		Choices: append([]string(nil), it.Endings...),
		Gold:    int(it.Label),
	}, nil
}

var bracketRE = regexp.MustCompile(`\[.*?\]`)

// Preprocess is lm-eval's hellaswag preprocess(text): strip, replace
// " [title]" with ". ", delete bracketed spans (non-greedy, not across
// newlines, like Python's re), then replace each "  " with " " once, left to
// right.
func Preprocess(text string) string {
	text = PyStrip(text)
	text = strings.ReplaceAll(text, " [title]", ". ")
	text = bracketRE.ReplaceAllLiteralString(text, "")
	text = strings.ReplaceAll(text, "  ", " ")
	return text
}

// isPySpace reports whether Python's str.isspace is true for r.
func isPySpace(r rune) bool {
	return unicode.IsSpace(r) || (r >= 0x1c && r <= 0x1f)
}

// PyStrip is Python's str.strip() with no arguments.
func PyStrip(s string) string { return strings.TrimFunc(s, isPySpace) }

// PyRstrip is Python's str.rstrip() with no arguments.
func PyRstrip(s string) string { return strings.TrimRightFunc(s, isPySpace) }

// PyCapitalize is Python's str.capitalize(): the first character in title
// case, every other character in lower case (simple case mappings).
func PyCapitalize(s string) string {
	if s == "" {
		return s
	}
	r, n := utf8.DecodeRuneInString(s)
	return string(unicode.ToTitle(r)) + strings.ToLower(s[n:])
}
