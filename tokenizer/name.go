package tokenizer

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// Name is the one string by which every API of equarx shows a single token
// (the tokens and top_logprobs of /v1/completions, /v1/prefill's token
// fields, /tokenize's token_strs, the eval harness's top-K keys). The rule
// follows vLLM's OpenAI server, which decodes each id on its own:
//
//   - a token is its own decoded text, with its leading space kept (the
//     piece "▁Once" is " Once", although Decode drops that space right after
//     BOS);
//   - a special token that decodes to no text (llama2.c's BOS, EOS, unk) is
//     its vocabulary piece ("<s>", "</s>", "<unk>");
//   - a byte-fallback token whose byte is not valid UTF-8 on its own is
//     "bytes:\xNN" (lower-case hex), the convention of OpenAI's logprobs,
//     so distinct bytes stay distinct JSON keys instead of all becoming
//     U+FFFD; a byte that is valid alone (<0x0A>) is that character;
//   - an id with neither text nor piece is "<id N>".
func Name(t interface{ Token(id int) string }, id int) string {
	if s := t.Token(id); s != "" {
		return TextName(s)
	}
	if p, ok := t.(interface{ Piece(int) string }); ok {
		if s := strings.TrimSpace(p.Piece(id)); s != "" {
			return s
		}
	}
	return fmt.Sprintf("<id %d>", id)
}

// TextName is how Name shows a token's text: the text itself when it is
// valid UTF-8, otherwise its bytes as "bytes:\xNN..." (lower-case hex).
func TextName(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	var b strings.Builder
	b.WriteString("bytes:")
	for i := 0; i < len(s); i++ {
		fmt.Fprintf(&b, "\\x%02x", s[i])
	}
	return b.String()
}
