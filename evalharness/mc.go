package evalharness

import (
	"context"
	"errors"
	"fmt"
)

// MCRequests tokenizes every (query, " " + choice) pair of the docs with
// EncodePair and NewRequest. index[d][c] is the request of doc d's choice c;
// truncated counts requests shortened to the window.
func MCRequests(enc Encoder, docs []Doc, maxLen int) (reqs []Request, index [][]int, truncated int, err error) {
	index = make([][]int, len(docs))
	for d, doc := range docs {
		for c, choice := range doc.Choices {
			ctxIDs, contIDs, err := EncodePair(enc, doc.Query, TargetDelimiter+choice)
			if err != nil {
				return nil, nil, 0, fmt.Errorf("doc %s choice %d: %w", doc.ID, c, err)
			}
			r, tr, err := NewRequest(ctxIDs, contIDs, maxLen)
			if err != nil {
				return nil, nil, 0, fmt.Errorf("doc %s choice %d: %w", doc.ID, c, err)
			}
			if tr {
				truncated++
			}
			index[d] = append(index[d], len(reqs))
			reqs = append(reqs, r)
		}
	}
	return reqs, index, truncated, nil
}

// MCEval is the outcome of a multiple-choice evaluation over several codecs.
type MCEval struct {
	Docs      []Doc
	Scores    [][]DocScore // Scores[codec][doc]
	Metrics   []MCMetrics  // per codec
	Compare   []MCComparison
	Run       *ScoreRun
	Requests  int
	Tokens    int64 // tokens read per codec
	Truncated int
}

// EvaluateMC scores the docs with every codec and compares the pairs.
func EvaluateMC(ctx context.Context, be Backend, enc Encoder, docs []Doc, opt RunOptions) (*MCEval, error) {
	if len(docs) == 0 {
		return nil, errors.New("evaluate: no docs")
	}
	reqs, index, truncated, err := MCRequests(enc, docs, be.MaxSeqLen())
	if err != nil {
		return nil, fmt.Errorf("evaluate: %w", err)
	}
	run, err := Score(ctx, be, reqs, opt)
	if err != nil {
		return nil, fmt.Errorf("evaluate: %w", err)
	}
	ev := &MCEval{Docs: docs, Run: run, Requests: len(reqs), Truncated: truncated}
	for _, r := range reqs {
		ev.Tokens += int64(len(r.Tokens))
	}
	ev.Scores = make([][]DocScore, len(opt.Codecs))
	for c := range opt.Codecs {
		ev.Scores[c] = make([]DocScore, len(docs))
		for d, doc := range docs {
			lls := make([]float64, len(index[d]))
			for j, r := range index[d] {
				lls[j] = run.LL[c][r]
			}
			s, err := ScoreDoc(doc, lls)
			if err != nil {
				return nil, fmt.Errorf("evaluate: %w", err)
			}
			ev.Scores[c][d] = s
		}
		ev.Metrics = append(ev.Metrics, Aggregate(ev.Scores[c]))
	}
	idx := map[string]int{}
	for i, c := range opt.Codecs {
		idx[c.Label()] = i
	}
	for _, p := range opt.Pairs {
		cmp, err := CompareMC(ev.Scores[idx[p.A]], ev.Scores[idx[p.B]])
		if err != nil {
			return nil, fmt.Errorf("evaluate %s: %w", p.Name(), err)
		}
		ev.Compare = append(ev.Compare, cmp)
	}
	return ev, nil
}
