package evalharness

import (
	"bufio"
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// testdata/hellaswag_examples.jsonl holds real items of
// data/hellaswag/hellaswag_val_1000.jsonl with the query and
// choices that lm-eval's hellaswag utils.py produces for them (computed with
// that Python code).
func TestProcessHellaSwagRealItems(t *testing.T) {
	f, err := os.Open("testdata/hellaswag_examples.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	n := 0
	for sc.Scan() {
		var ex struct {
			Line    int      `json:"line"`
			Item    Item     `json:"item"`
			Query   string   `json:"query"`
			Choices []string `json:"choices"`
			Gold    int      `json:"gold"`
		}
		if err := json.Unmarshal(sc.Bytes(), &ex); err != nil {
			t.Fatal(err)
		}
		got, err := ProcessHellaSwag(ex.Item)
		if err != nil {
			t.Fatalf("line %d: %v", ex.Line, err)
		}
		want := Doc{ID: got.ID, Query: ex.Query, Choices: ex.Choices, Gold: ex.Gold}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("line %d (-want +got):\n%s", ex.Line, diff)
		}
		n++
	}
	if n < 4 {
		t.Fatalf("only %d examples", n)
	}
}

func TestPreprocess(t *testing.T) {
	tests := []struct{ in, want string }{
		{"  plain text \n", "plain text"},
		{"[header] How to x [title] Do y. [step] Then z.", " How to x. Do y. Then z."}, // strip runs before the deletions
		{"a [b] c [d]", "a c "},                                                        // "a  c " -> "a c ", trailing space kept after strip
		{"keep [open", "keep [open"},                                                   // unclosed bracket stays
		{"x [a\nb] y", "x [a\nb] y"},                                                   // '.' does not cross newlines
		{"a    b", "a  b"},                                                             // "  " replaced once, left to right
		{"[title] lead", " lead"},                                                      // " [title]" needs the leading space
		{"\x1cstrip python spaces\x1f", "strip python spaces"},
	}
	for _, tt := range tests {
		if got := Preprocess(tt.in); got != tt.want {
			t.Errorf("Preprocess(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestPyCapitalize(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", ""},
		{"a few women", "A few women"},
		{"THE Man", "The man"},
		{"éCOLE", "École"},
		{"1st Place", "1st place"},
	}
	for _, tt := range tests {
		if got := PyCapitalize(tt.in); got != tt.want {
			t.Errorf("PyCapitalize(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestReadTask(t *testing.T) {
	in := `{"ind": 7, "activity_label": "", "ctx_a": "Tom ran.", "ctx_b": "", "ctx": "Tom ran.", "endings": ["He fell.", "She sang."], "label": 1, "split": "val"}
{"ind": 8, "activity_label": "", "ctx_a": "x", "ctx_b": "", "ctx": "Ann sat.", "endings": ["A.", "B.", "C."], "label": "2", "split": "val"}
`
	task, err := ReadTask(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	want := &Task{Version: PlainVersion, Split: "val", Docs: []Doc{
		{ID: "7", Query: "Tom ran.", Choices: []string{"He fell.", "She sang."}, Gold: 1},
		{ID: "8", Query: "Ann sat.", Choices: []string{"A.", "B.", "C."}, Gold: 2},
	}}
	if diff := cmp.Diff(want, task); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	bad := []string{
		`{"ind": 1, "activity_label": "", "ctx": "a", "endings": ["x", "y"], "label": 2}`,
		`{"ind": 1, "activity_label": "", "ctx": "a", "endings": ["x"], "label": 0}`,
		`{"ind": 1, "activity_label": "", "ctx": "", "endings": ["x", "y"], "label": 0}`,
		`{"ind": 1, "activity_label": "", "ctx": "a", "endings": ["x", "y"], "label": "one"}`,
		`not json`,
		``,
	}
	for _, b := range bad {
		if _, err := ReadTask(strings.NewReader(b)); err == nil {
			t.Errorf("ReadTask(%q) succeeded, want error", b)
		}
	}
}

func TestLoadHellaSwagFile(t *testing.T) {
	const path = "../data/hellaswag/hellaswag_val_1000.jsonl" // committed: data/README.md
	task, err := LoadTask(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(task.Docs) != 1000 || task.Version != HellaSwagVersion || task.Split != "val" {
		t.Errorf("got %d docs, version %q, split %q; want 1000, %q, val", len(task.Docs), task.Version, task.Split, HellaSwagVersion)
	}
}

// FuzzReadTask: any input either fails cleanly or yields docs whose gold
// index is in range.
func FuzzReadTask(f *testing.F) {
	f.Add(`{"ind": 1, "activity_label": "A b", "ctx_a": "x [title] y", "ctx_b": "zED", "endings": ["a", "[b]"], "label": "1"}`)
	f.Add(`{"ind": 2, "activity_label": "", "ctx": "c", "endings": ["", "d"], "label": 0}`)
	f.Fuzz(func(t *testing.T, in string) {
		task, err := ReadTask(strings.NewReader(in))
		if err != nil {
			return
		}
		for _, d := range task.Docs {
			if d.Gold < 0 || d.Gold >= len(d.Choices) {
				t.Fatalf("gold %d of %d choices", d.Gold, len(d.Choices))
			}
		}
	})
}
