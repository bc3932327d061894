"""Writes ../golden_{llama2c,gpt2,gemma3}.json.

Every entry's ids come from refimpl.py (written from the published
algorithms, independently of the Go code). Entries whose ids are also
published elsewhere are marked "independent" with the source, and the script
fails if refimpl.py disagrees with the published ids; the others are marked
"regression".

  python3 make_golden.py /path/to/shared
"""
import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
SHARED = sys.argv[1]

COMMON = [
    "",
    "Once upon a time",
    "Hello world",
    "Hello, world! How are you?",
    "  leading spaces, double  spaces and trailing   ",
    " a",
    "line one\nline two\n\nline four\n",
    "\n\n\n",
    "tabs\tand\t\ttabs",
    "Numbers: 0 12 345 6789 3.14159 1,000,000 2024-11-26",
    "It's we're they'll I'd you've I'm SHE'S don't",
    "Punctuation!?... (brackets) [square] {curly} <angle> @#$%^&*_+=~`|\\/ \"quotes\" 'single'",
    "Café naïve résumé façade Ångström",
    "日本語のテキスト、中文和한국어",
    "Emoji: 🤗🚀 👍🏽 ❤️",
    "Ελληνικά Русский עברית العربية हिन्दी",
    "Lily and Ben went to the park. They saw a big, red ball.\n\"Can we play?\" asked Ben.",
    "The man in the center is demonstrating a hairstyle on the person wearing the blue shirt.",
    "\u00a0non-breaking\u2009thin space",
    "mixed\r\nline endings\r",
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
    "x",
]

TIKTOKEN = "openai/tiktoken tests/test_encoding.py"
R50K = "published r50k_base (the GPT-2 vocabulary) test vectors of a tiktoken-compatible encoder"

INDEPENDENT = {
    "llama2c": [
        ("Once upon a time", [1, 403, 407, 261, 378], "llama2.c run.c encode of the prompt, as stated in ../shared/README.md and issue 3"),
        ("Once upon a time, there was a little girl named Lily.",
         [1, 403, 407, 261, 378, 432, 383, 286, 261, 376, 298, 315, 421, 395, 317, 426],
         "first 16 ids of llama2.c run.c's greedy sample (greedy_from_bos.json), whose decode is this text"),
    ],
    "gpt2": [
        ("Hello world", [15496, 995], "Hugging Face GPT2Tokenizer example in the Modular MAX GPT-2 tutorial (llm.modular.com step 9)"),
        ("hello world", [31373, 995], TIKTOKEN + " test_simple"),
        ("hello <|endoftext|>", [31373, 220, 50256], TIKTOKEN + " test_simple, with <|endoftext|> allowed as special"),
        ("0", [15], TIKTOKEN + " test_simple_repeated"),
        ("0000", [2388], TIKTOKEN + " test_simple_repeated"),
        ("000000000", [10535, 830], TIKTOKEN + " test_simple_repeated"),
        ("0000000000000000", [25645], TIKTOKEN + " test_simple_repeated"),
        ("00000000000000000", [8269, 10535, 830], TIKTOKEN + " test_simple_repeated"),
        (" 日本語とEnglish 12345!\n", [10545, 245, 98, 17312, 105, 45739, 252, 30201, 15823, 17031, 2231, 0, 198], R50K),
        ("\u001ca", [216, 64], R50K),
        ("a\n\n", [64, 628], R50K),
    ],
    "gemma3": [
        ("Hello world", [2, 9259, 1902], "public Gemma 3 reference prompts (llama.cpp-checked) with prompt tokens [2, 9259, 1902]"),
        ("<start_of_turn>user\n", [2, 105, 2364, 107], "the <bos><start_of_turn>user\\n prefix [2, 105, 2364, 107] checked by public Gemma 3 -it tooling"),
        ("<start_of_turn>user\nwhy is the sky blue<end_of_turn>\n<start_of_turn>model",
         [2, 105, 2364, 107, 36425, 563, 506, 7217, 3730, 106, 107, 105, 4368],
         "public gemma-3-4b-it model test input (lower-case 'why is the sky blue' in the chat template; ids 36425 = why)"),
    ],
}

EXTRA = {
    "llama2c": ["Tom's dog\x00nul", "\u00e9\u0301 combining", "\xff"],
    "gpt2": ["a<|endoftext|>b<|endoftext|>", "<|endoftext|>"],
    "gemma3": ["<bos>text with a bos marker", "tab\there\n\nand <unused0> there", "▁literal metaspace"],
}

REF = {
    "llama2c": ["llama2c", os.path.join(SHARED, "models/stories260K/tok512.bin")],
    "gpt2": ["gpt2", os.path.join(SHARED, "tokenizers/gpt2/encoder.json"), os.path.join(SHARED, "tokenizers/gpt2/vocab.bpe")],
    "gemma3": ["hf", os.path.join(SHARED, "tokenizers/gemma3/tokenizer.json")],
}

DESC = {
    "llama2c": "stories260K tok512.bin (llama2.c format), Encode(text, addBOS=true)",
    "gpt2": "GPT-2 encoder.json + vocab.bpe (also as a Hugging Face tokenizer.json), Encode(text, addBOS=false)",
    "gemma3": "Gemma 3 tokenizer.json, Encode(text, addBOS=true)",
}

BOS = {"llama2c": True, "gpt2": False, "gemma3": True}


def main():
    for name in ("llama2c", "gpt2", "gemma3"):
        texts = COMMON + EXTRA[name]
        indep = INDEPENDENT[name]
        all_texts = [t for t, _, _ in indep] + [t for t in texts if t not in {x[0] for x in indep}]
        out = subprocess.run([sys.executable, os.path.join(HERE, "refimpl.py")] + REF[name],
                             input=json.dumps(all_texts), capture_output=True, text=True, check=True).stdout
        ids = json.loads(out)
        cases = []
        for i, text in enumerate(all_texts):
            case = {"text": text, "bos": BOS[name], "ids": ids[i]}
            if i < len(indep):
                want = indep[i][1]
                if ids[i] != want:
                    raise SystemExit(f"{name}: refimpl {ids[i]} != published {want} for {text!r}")
                case["source"] = "independent: " + indep[i][2]
            else:
                case["source"] = "regression: ids of refimpl.py"
            cases.append(case)
        doc = {"tokenizer": DESC[name],
               "about": "independent entries carry published ids (refimpl.py agrees with each); regression entries carry the ids of refimpl.py, an implementation of the reference algorithm written separately from the Go package",
               "cases": cases}
        with open(os.path.join(HERE, "..", f"golden_{name}.json"), "w", encoding="utf-8") as f:
            json.dump(doc, f, ensure_ascii=False, indent=1)
            f.write("\n")


if __name__ == "__main__":
    main()
