package evalharness

import (
	"bytes"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"
)

func TestSplitSentences(t *testing.T) {
	tests := []struct {
		in   string
		want []string
	}{
		{"One. Two!  Three?\nFour", []string{"One.", "Two!", "Three?", "Four"}},
		{`Kitty replied, "Thank you, Spot. I polish it every day." Then she left.`,
			[]string{`Kitty replied, "Thank you, Spot. I polish it every day."`, "Then she left."}},
		{`"Wow!" said Tom. He ran.`, []string{`"Wow!" said Tom.`, "He ran."}},
		{"Mr.Smith came. Yes...", []string{"Mr.Smith came.", "Yes..."}},
		{"He said hi. then left. Ok.", []string{"He said hi. then left.", "Ok."}},
		{"", nil},
	}
	for _, tt := range tests {
		if diff := cmp.Diff(tt.want, SplitSentences(tt.in)); diff != "" {
			t.Errorf("SplitSentences(%q) (-want +got):\n%s", tt.in, diff)
		}
	}
}

func TestReadStories(t *testing.T) {
	in := "First story.\n\nSecond paragraph.\n<|endoftext|>\n  \n<|endoftext|>\nSecond story.\n <|endoftext|> \nTail without separator."
	got, err := ReadStories(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"First story.\n\nSecond paragraph.", "Second story.", "Tail without separator."}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

var testStories = []string{
	"Tom had a red ball. He liked to kick it in the yard. One day the ball went over the fence. Tom was very sad about it. His mom helped him get it back.",
	"Lily saw a big dog in the park. The dog wanted to play with her. Lily threw a small stick for the dog. The dog ran fast and brought it back. They played until the sun went down.",
	"There was a little bird in a tree. The bird could not fly very well. A kind girl gave the bird some seeds. The bird ate the seeds and felt strong. Soon it flew high in the blue sky.",
	"Sam wanted to bake a cake for his mom. He put flour and eggs in a bowl. The kitchen got very messy and white. Mom came home and laughed at the mess. They cleaned up and ate the cake together.",
	"Too short.",
}

func TestBuildMCRules(t *testing.T) {
	items, err := BuildMC(testStories, BuildOptions{Seed: 3, Source: "test", Split: "val"})
	if err != nil {
		t.Fatal(err)
	}
	if len(items) != 4 {
		t.Fatalf("%d items, want 4 (the last story is too short)", len(items))
	}
	storyOf := map[string]int{}
	for i, s := range testStories {
		for _, sent := range SplitSentences(s) {
			storyOf[sent] = i
		}
	}
	for n, it := range items {
		if it.ActivityLabel != "" || it.Ctx != it.CtxA || it.Ind != n || it.Split != "val" {
			t.Errorf("item %d: bad fields %+v", n, it)
		}
		ss := SplitSentences(testStories[n])
		k := len(SplitSentences(it.Ctx))
		if k < minContextSentences || k > maxContextSentences || it.Ctx != strings.Join(ss[:k], " ") {
			t.Errorf("item %d: context %q is not the story's first 2..4 sentences", n, it.Ctx)
		}
		if len(it.Endings) != 4 || it.Endings[it.Label] != ss[k] {
			t.Errorf("item %d: gold %q is not sentence %d of the story", n, it.Endings[it.Label], k)
		}
		gl := utf8.RuneCountInString(ss[k])
		seen := map[string]bool{}
		for j, e := range it.Endings {
			if seen[e] {
				t.Errorf("item %d: repeated ending %q", n, e)
			}
			seen[e] = true
			if j == int(it.Label) {
				continue
			}
			if storyOf[e] == n {
				t.Errorf("item %d: distractor %q comes from the same story", n, e)
			}
			if d := utf8.RuneCountInString(e) - gl; d > max(3, gl/5) || -d > max(3, gl/5) {
				t.Errorf("item %d: distractor %q length differs from gold's %d by %d", n, e, gl, d)
			}
		}
	}
}

func TestBuildMCDeterministic(t *testing.T) {
	build := func(seed uint64, n int) []byte {
		items, err := BuildMC(testStories, BuildOptions{Seed: seed, N: n, Source: "test"})
		if err != nil {
			t.Fatal(err)
		}
		var b bytes.Buffer
		if err := WriteItems(&b, items); err != nil {
			t.Fatal(err)
		}
		return b.Bytes()
	}
	a, b := build(1, 0), build(1, 0)
	if !bytes.Equal(a, b) {
		t.Error("same seed gave different sets")
	}
	differs := false
	for seed := uint64(2); seed < 6; seed++ {
		if !bytes.Equal(a, build(seed, 0)) {
			differs = true
		}
	}
	if !differs {
		t.Error("seeds 1..5 all gave the same set")
	}
	if got := bytes.Count(build(1, 2), []byte("\n")); got != 2 {
		t.Errorf("n=2 gave %d items", got)
	}
	// The written set loads back as plain items.
	task, err := ReadTask(bytes.NewReader(a))
	if err != nil {
		t.Fatal(err)
	}
	if task.Version != PlainVersion || len(task.Docs) != bytes.Count(a, []byte("\n")) {
		t.Errorf("loaded %d docs, version %q", len(task.Docs), task.Version)
	}
}
