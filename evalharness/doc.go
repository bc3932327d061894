// Package evalharness measures how the AllReduce codec affects model quality.
//
// It reads multiple-choice tasks in the HellaSwag JSONL schema, applies
// lm-evaluation-harness's HellaSwag preprocessing to real HellaSwag items,
// builds TinyStories multiple-choice sets from a story corpus, scores every
// (context, ending) pair by its summed log-likelihood through a Backend (the
// in-process tensor-parallel engine or a running server over HTTP), and
// reports acc, acc_norm and acc_bytes with standard errors per codec, plus
// paired comparisons between codecs on the same items: prediction agreement,
// flips, accuracy deltas with paired standard errors, and KL divergences
// between next-token distributions at every scored position. It also measures
// mean negative log-likelihood per token (perplexity) on a text corpus.
//
// Conventions that make the numbers comparable with lm-evaluation-harness
// (task hellaswag, metadata version 1.0, zero-shot):
//
//   - query = preprocess(activity_label + ": " + ctx_a + " " + capitalize(ctx_b)),
//     choices = preprocess(ending) for every ending, target delimiter " ".
//   - A request is (query, " " + choice), tokenized as lm-eval's _encode_pair
//     does: trailing whitespace of the context moves to the continuation, the
//     whole string and the context are encoded separately, and the
//     continuation is the whole encoding beyond the length of the context
//     encoding. Both encodings start with BOS, as lm-eval does for Llama
//     models with add_bos_token=True (the Llama tokenizer's own default and
//     how llama2.c checkpoints were trained).
//   - acc: argmax of summed log-likelihoods; acc_norm: divided by the choice's
//     length in characters (Unicode code points, Python's len); acc_bytes:
//     divided by its UTF-8 length. Ties go to the lowest index, and a NaN
//     score (0/0 for an empty choice whose continuation has no tokens) wins,
//     as numpy.argmax does.
//   - Standard errors are the sample standard deviation (n-1) over sqrt(n).
package evalharness
