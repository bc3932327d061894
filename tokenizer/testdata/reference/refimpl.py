"""Reference encoders written from the published algorithms, independent of
the Go package and of gotokenizers, used to cross-check the regression
entries of ../golden_*.json.

  python3 refimpl.py llama2c TOK.bin   < texts.json   # run.c encode (BOS on)
  python3 refimpl.py gpt2 ENCODER.json VOCAB.bpe < texts.json  # encoder.py
  python3 refimpl.py hf TOKENIZER.json < texts.json   # HF BPE, byte fallback

texts.json is a JSON list of strings; the output is a JSON list of id lists.
"""
import json
import struct
import sys

import regex


def llama2c(path, texts):
    data = open(path, "rb").read()
    off = 4
    pieces, scores = [], []
    while off < len(data):
        score, n = struct.unpack_from("<fi", data, off)
        off += 8
        pieces.append(data[off:off + n])
        scores.append(score)
        off += n
    lookup = {}
    for i, p in enumerate(pieces):
        lookup.setdefault(p, i)
    out = []
    for text in texts:
        raw = text.encode("utf-8")
        ids = [1]
        if raw:
            ids.append(lookup[b" "])
        buf = b""
        for i, c in enumerate(raw):
            if c & 0xC0 != 0x80:
                buf = b""
            buf += bytes([c])
            nxt = raw[i + 1] if i + 1 < len(raw) else 0
            if nxt & 0xC0 == 0x80 and len(buf) < 4:
                continue
            if buf in lookup:
                ids.append(lookup[buf])
            else:
                ids.extend(b + 3 for b in buf)
            buf = b""
        while True:
            best, best_id, best_idx = struct.unpack("<f", struct.pack("<f", -1e10))[0], -1, -1
            for i in range(len(ids) - 1):
                m = lookup.get(pieces[ids[i]] + pieces[ids[i + 1]])
                if m is not None and scores[m] > best:
                    best, best_id, best_idx = scores[m], m, i
            if best_idx < 0:
                break
            ids[best_idx:best_idx + 2] = [best_id]
        out.append(ids)
    return out


def bytes_to_unicode():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs)))


def gpt2(enc_path, bpe_path, texts):
    encoder = json.load(open(enc_path, encoding="utf-8"))
    lines = open(bpe_path, encoding="utf-8").read().split("\n")[1:-1]
    ranks = {tuple(l.split()): i for i, l in enumerate(lines)}
    b2u = bytes_to_unicode()
    pat = regex.compile(r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+""")

    def bpe(token):
        word = tuple(token)
        while len(word) > 1:
            pairs = {(word[i], word[i + 1]) for i in range(len(word) - 1)}
            bigram = min(pairs, key=lambda p: ranks.get(p, float("inf")))
            if bigram not in ranks:
                break
            first, second = bigram
            new, i = [], 0
            while i < len(word):
                try:
                    j = word.index(first, i)
                except ValueError:
                    new.extend(word[i:])
                    break
                new.extend(word[i:j])
                i = j
                if i < len(word) - 1 and word[i] == first and word[i + 1] == second:
                    new.append(first + second)
                    i += 2
                else:
                    new.append(word[i])
                    i += 1
            word = tuple(new)
        return word

    out = []
    eot = "<|endoftext|>"
    for text in texts:
        ids = []
        parts = text.split(eot)
        for k, part in enumerate(parts):
            if k > 0:
                ids.append(encoder[eot])
            for tok in regex.findall(pat, part):
                tok = "".join(b2u[b] for b in tok.encode("utf-8"))
                ids.extend(encoder[t] for t in bpe(tok))
        out.append(ids)
    return out


def hf(path, texts):
    d = json.load(open(path, encoding="utf-8"))
    m = d["model"]
    assert m["type"] == "BPE" and m["byte_fallback"]
    assert d["normalizer"]["type"] == "Replace"
    vocab = m["vocab"]
    ranks = {}
    for i, mg in enumerate(m["merges"]):
        a, b = mg if isinstance(mg, list) else mg.split(" ")
        ranks[(a, b)] = i
    added = {t["content"]: t["id"] for t in d["added_tokens"]}
    lengths = sorted({len(c) for c in added}, reverse=True)
    src = d["normalizer"]["pattern"]["String"]
    dst = d["normalizer"]["content"]

    def bpe(seg):
        word = []
        for ch in seg:
            if ch in vocab:
                word.append(ch)
            else:
                word.extend("<0x%02X>" % b for b in ch.encode("utf-8"))
        while len(word) > 1:
            best, bi = None, -1
            for i in range(len(word) - 1):
                r = ranks.get((word[i], word[i + 1]))
                if r is not None and (best is None or r < best):
                    best, bi = r, i
            if bi < 0:
                break
            word[bi:bi + 2] = [word[bi] + word[bi + 1]]
        return [vocab[w] for w in word]

    out = []
    for text in texts:
        ids = [added.get("<bos>", vocab.get("<bos>"))]
        i, start = 0, 0
        while i < len(text):
            hit = None
            for n in lengths:
                if text[i:i + n] in added and len(text[i:i + n]) == n:
                    hit = text[i:i + n]
                    break
            if hit is None:
                i += 1
                continue
            if start < i:
                ids.extend(bpe(text[start:i].replace(src, dst)))
            ids.append(added[hit])
            i += len(hit)
            start = i
        if start < len(text):
            ids.extend(bpe(text[start:].replace(src, dst)))
        out.append(ids)
    return out


def main():
    texts = json.load(sys.stdin)
    kind = sys.argv[1]
    if kind == "llama2c":
        res = llama2c(sys.argv[2], texts)
    elif kind == "gpt2":
        res = gpt2(sys.argv[2], sys.argv[3], texts)
    elif kind == "hf":
        res = hf(sys.argv[2], texts)
    else:
        raise SystemExit("unknown kind " + kind)
    json.dump(res, sys.stdout)


if __name__ == "__main__":
    main()
