package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/equarx/equarx/evalharness"
)

const testCorpus = `Tom had a red ball. He liked to kick it in the yard. One day the ball went over the fence. Tom was very sad about it. His mom helped him get it back.
<|endoftext|>
Lily saw a big dog in the park. The dog wanted to play with her. Lily threw a small stick for the dog. The dog ran fast and brought it back. They played until the sun went down.
<|endoftext|>
There was a little bird in a tree. The bird could not fly very well. A kind girl gave the bird some seeds. The bird ate the seeds and felt strong. Soon it flew high in the blue sky.
<|endoftext|>
Sam wanted to bake a cake for his mom. He put flour and eggs in a bowl. The kitchen got very messy and white. Mom came home and laughed at the mess. They cleaned up and ate the cake together.
<|endoftext|>
`

func TestBuildMCCommand(t *testing.T) {
	dir := t.TempDir()
	corpus := filepath.Join(dir, "stories.txt")
	if err := os.WriteFile(corpus, []byte(testCorpus), 0o644); err != nil {
		t.Fatal(err)
	}
	build := func(out string, seed string) []byte {
		var so, se bytes.Buffer
		if err := run(context.Background(), []string{"build-mc", "--corpus", corpus, "--out", out, "--seed", seed}, &so, &se); err != nil {
			t.Fatalf("build-mc: %v (stderr %s)", err, se.String())
		}
		b, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	a := build(filepath.Join(dir, "a.jsonl"), "7")
	b := build(filepath.Join(dir, "b.jsonl"), "7")
	if !bytes.Equal(a, b) {
		t.Error("same seed, different files")
	}
	task, err := evalharness.LoadTask(filepath.Join(dir, "a.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	if len(task.Docs) == 0 || !strings.Contains(string(a), `"source_id":"stories.txt#story=`) {
		t.Errorf("unexpected set: %s", a)
	}
	var so, se bytes.Buffer
	if err := run(context.Background(), []string{"build-mc", "--corpus", corpus, "--out", filepath.Join(dir, "c.jsonl")}, &so, &se); err == nil {
		t.Error("build-mc without --seed succeeded")
	}
}

func TestBadFlags(t *testing.T) {
	dir := t.TempDir()
	corpus := filepath.Join(dir, "stories.txt")
	tasks := filepath.Join(dir, "tasks.jsonl")
	if err := os.WriteFile(corpus, []byte(testCorpus), 0o644); err != nil {
		t.Fatal(err)
	}
	var so, se bytes.Buffer
	if err := run(context.Background(), []string{"build-mc", "--corpus", corpus, "--out", tasks, "--seed", "1"}, &so, &se); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"--tasks", tasks, "--allreduce", "fp16"},
		{"--tasks", tasks, "--block-size", "x"},
		{"--tasks", tasks, "--topk", "21"},
		{"--tasks", tasks, "--pairs", "int4_vs_bf16", "--allreduce", "bf16,int8"},
		{"--tasks", tasks, "--limit", "-1"},
		{"--tasks", filepath.Join(dir, "missing.jsonl")},
		{"perplexity", "--allreduce", "f32"},
		{"perplexity", "--corpus", corpus, "--allreduce", "f32,f32"},
	} {
		var so, se bytes.Buffer
		err := run(context.Background(), args, &so, &se)
		if err == nil {
			t.Errorf("run(%q) succeeded", args)
		}
	}
}
