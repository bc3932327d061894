package evalharness

import (
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"sort"
	"strings"
	"unicode"
	"unicode/utf8"
)

// BuildOptions control BuildMC.
type BuildOptions struct {
	Seed   uint64
	N      int    // maximum number of items; 0 = one per usable story
	Source string // corpus name recorded in source_id
	Split  string // recorded in every item's "split"
}

// Builder rules (all lengths in characters):
const (
	minContextSentences = 2   // a context holds at least this many sentences
	maxContextSentences = 4   // and at most this many
	minSentenceChars    = 15  // gold and distractor sentences are 15..160 characters
	maxSentenceChars    = 160 //
	lengthTolerance     = 0.2 // distractors within ±20% of the gold's length (±3 chars at least)
	numChoices          = 4
)

// SplitSentences cuts a story into sentences. Whitespace runs (newlines
// included) become single spaces; a sentence ends after '.', '!' or '?'
// (with any closing quotes that follow) when the end of the text or a space
// and a word not starting with a lower-case letter follow, and an even
// number of double quotes has been seen, so quoted speech with inner
// sentences stays whole.
func SplitSentences(story string) []string {
	text := strings.Join(strings.Fields(story), " ")
	var out []string
	start, quotes := 0, 0
	for i := 0; i < len(text); i++ {
		c := text[i]
		if c == '"' {
			quotes++
		}
		if c != '.' && c != '!' && c != '?' {
			continue
		}
		j := i + 1
		for j < len(text) && (text[j] == '"' || text[j] == '\'') {
			if text[j] == '"' {
				quotes++
			}
			j++
		}
		if quotes%2 == 0 && (j == len(text) || text[j] == ' ' && !startsLower(text[j+1:])) {
			if s := strings.TrimSpace(text[start:j]); s != "" {
				out = append(out, s)
			}
			start = j
		}
		i = j - 1
	}
	if s := strings.TrimSpace(text[start:]); s != "" {
		out = append(out, s)
	}
	return out
}

func startsLower(s string) bool {
	r, _ := utf8.DecodeRuneInString(s)
	return unicode.IsLower(r)
}

func usable(s string) bool {
	n := utf8.RuneCountInString(s)
	return n >= minSentenceChars && n <= maxSentenceChars
}

type poolSentence struct {
	text  string
	story int
	chars int
}

// BuildMC makes HellaSwag-schema items from stories, deterministically for
// a seed. Rules:
//
//   - Stories are split with SplitSentences. A story gives at most one item,
//     stories are taken in corpus order, and generation stops after N items.
//   - Context = the story's first k sentences joined by spaces, k drawn
//     uniformly from 2..4 among the values whose next sentence (the gold
//     ending) is 15..160 characters long; a story with no such k is skipped.
//   - Distractor pool: every sentence 15..160 characters long that is not a
//     story's first sentence, from all stories. For an item, candidates are
//     pool sentences of other stories whose length is within ±20% (at least
//     ±3 characters) of the gold's and whose text differs from the gold and
//     from every sentence of the item's own story; three are drawn uniformly
//     without replacement among distinct texts. If fewer than three
//     candidates exist, the story is skipped.
//   - The gold goes to a uniformly drawn position 0..3 (label).
//   - Items have an empty activity_label, so loaders score them verbatim:
//     query = ctx, choices = endings, target delimiter " ".
func BuildMC(stories []string, opt BuildOptions) ([]Item, error) {
	if opt.N < 0 {
		return nil, fmt.Errorf("build: n %d must not be negative", opt.N)
	}
	rng := rand.New(rand.NewPCG(opt.Seed, 0x65717561727865)) // second word fixed
	sents := make([][]string, len(stories))
	var pool []poolSentence
	for i, s := range stories {
		sents[i] = SplitSentences(s)
		for j, t := range sents[i] {
			if j > 0 && usable(t) {
				pool = append(pool, poolSentence{text: t, story: i, chars: utf8.RuneCountInString(t)})
			}
		}
	}
	sort.SliceStable(pool, func(a, b int) bool { return pool[a].chars < pool[b].chars })
	var items []Item
	for si, ss := range sents {
		if opt.N > 0 && len(items) >= opt.N {
			break
		}
		var ks []int
		for k := minContextSentences; k <= maxContextSentences && k < len(ss); k++ {
			if usable(ss[k]) {
				ks = append(ks, k)
			}
		}
		if len(ks) == 0 {
			continue
		}
		k := ks[rng.IntN(len(ks))]
		gold := ss[k]
		own := map[string]bool{}
		for _, t := range ss {
			own[t] = true
		}
		gl := utf8.RuneCountInString(gold)
		tol := int(float64(gl) * lengthTolerance)
		if tol < 3 {
			tol = 3
		}
		lo := sort.Search(len(pool), func(i int) bool { return pool[i].chars >= gl-tol })
		seen := map[string]bool{}
		var cands []string
		for i := lo; i < len(pool) && pool[i].chars <= gl+tol; i++ {
			p := pool[i]
			if p.story == si || own[p.text] || seen[p.text] {
				continue
			}
			seen[p.text] = true
			cands = append(cands, p.text)
		}
		if len(cands) < numChoices-1 {
			continue
		}
		label := rng.IntN(numChoices)
		endings := make([]string, 0, numChoices)
		for len(endings) < numChoices-1 {
			j := rng.IntN(len(cands))
			endings = append(endings, cands[j])
			cands[j] = cands[len(cands)-1]
			cands = cands[:len(cands)-1]
		}
		endings = append(endings, "")
		copy(endings[label+1:], endings[label:])
		endings[label] = gold
		ctx := strings.Join(ss[:k], " ")
		items = append(items, Item{
			Ind:       len(items),
			CtxA:      ctx,
			Ctx:       ctx,
			Endings:   endings,
			Label:     Label(label),
			SourceID:  fmt.Sprintf("%s#story=%d", opt.Source, si),
			Split:     opt.Split,
			SplitType: "generated",
		})
	}
	if len(items) == 0 {
		return nil, fmt.Errorf("build: no usable stories among %d", len(stories))
	}
	return items, nil
}

// WriteItems writes items as JSONL.
func WriteItems(w io.Writer, items []Item) error {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	for i, it := range items {
		if err := enc.Encode(it); err != nil {
			return fmt.Errorf("write item %d: %w", i, err)
		}
	}
	return nil
}
