#!/usr/bin/env python3
"""make_tokenizer_fixtures.py - reference token ids for tests/unit/test_tokenizer.c.

Writes tests/fixtures/tokenizers/:
  hard_strings.json        the list of hard strings every fixture is checked on
  llama2c_expected.json    ids from a line-by-line Python port of llama2.c run.c `encode` for
                           ../shared/data/models/tok512.bin and
                           ../shared/data/tokenizers/llama2c-tokenizer.bin; the 32000 vocabulary
                           is cross-checked against sentencepiece on llama2-tokenizer.model and
                           the (documented) differences are listed in the file
  gpt2_expected.json       HF `tokenizers` ids and decodes for ../shared/data/tokenizers/
                           gpt2-hf-tokenizer.json (needs ../shared/data when the test runs)
  <name>.tokenizer.json    small real tokenizers trained here with the `tokenizers` trainers
  <name>.expected.json     their ids (without / with special tokens) and decodes
Run from the repository root:  python3 tools/make_tokenizer_fixtures.py
Needs: tokenizers (0.2x), sentencepiece + protobuf (the cross-check and the Precompiled fixture). Never used by `make test`.
"""
import json
import os
import struct
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "tests", "fixtures", "tokenizers")
SHARED = os.environ.get("LT_SHARED_DATA", os.path.join(ROOT, "..", "shared", "data"))

HARD = [
    "",
    " ",
    "  ",
    "   \t  \n",
    "\n\n\n",
    "\t",
    "\r\n",
    "Hello world",
    " Hello world",
    "Hello World!",
    "Hello, y'all! How are you 😁 ?",
    "I'M DONE, don't worry, we'll see, they've",
    "The quick brown fox jumps over the lazy dog.",
    "    indented line\n        more indent\n",
    "def f(x):\n    return x**2  # square\n",
    "for (int i = 0; i < n; i++) { a[i] += b[i]; }",
    "3 33 333 3333 33333 1234567890 3.14159 -0.5e-3",
    "日本語のテキストです。東京は晴れ。",
    "こんにちは、世界！ ｶﾀｶﾅ ＡＢＣ ①②③",
    "ユーザ：こんにちは\nアシスタント：はい、どうぞ。",
    "🚀 (normal) 😶‍🌫️ (multiple emojis concatenated) ✅ 👍🏽",
    "café naïve résumé Ångström",
    "cafe\u0301 e\u0301",  # NFD forms
    "Привет мир, как дела?",
    "ស្វាគមន៍",
    "مرحبا بالعالم",
    "x\u00a0y\u3000z\u2028w",
    "a\u200bb\u200dc",
    "<|endoftext|>",
    "Hello<|endoftext|>world",
    " <|endoftext|> next",
    "<s>hello</s>",
    "text <unk> more",
    "<|im_start|>user\nHi there<|im_end|>\n<|im_start|>assistant\n",
    "<mask> masked <mask>",
    "!!!!!! ???? ...",
    "ℌ𝔢𝔩𝔩𝔬 ﬁ ﬀ ㍻ ½",
    "\u00e9\u0065\u0301\u1e9b\u0323",
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
    "          ",
    "\t\t\ttabs\t\t",
    "Line1\nLine2\r\nLine3\rLine4",
    "emoji🙂between letters",
    "𝕏 surrogate-range 🀄 and 𠜎 (CJK ext B)",
]


def write_json(name, obj):
    path = os.path.join(OUT, name)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f, ensure_ascii=False, indent=1)
        f.write("\n")
    print("wrote", path, os.path.getsize(path), "bytes")


# ----------------------------------------------------------------------------------------------
# llama2.c

def read_llama2c(path, vocab_size):
    data = open(path, "rb").read()
    off = 4
    vocab, scores = [], []
    for _ in range(vocab_size):
        s, n = struct.unpack_from("<fi", data, off)
        off += 8
        vocab.append(data[off:off + n])
        off += n
        scores.append(s)
    return vocab, scores


def runc_encode(vocab, scores, text, bos, eos):
    """karpathy/llama2.c run.c encode(), statement by statement, except that a NUL byte does not
    end the text (run.c reads a C string): it is encoded as the byte token <0x00>, which is what
    sentencepiece does too."""
    lookup = {}
    for i, v in enumerate(vocab):
        lookup.setdefault(v, i)
    tokens = []
    if bos:
        tokens.append(1)
    if len(text):
        tokens.append(lookup.get(b" ", -1))
    buf = b""
    n = len(text)
    for i, c in enumerate(text):
        if (c & 0xC0) != 0x80:
            buf = b""
        buf += bytes([c])
        nxt = text[i + 1] if i + 1 < n else 0
        if (nxt & 0xC0) == 0x80 and len(buf) < 4:
            continue
        tid = lookup.get(buf, -1)
        if tid != -1:
            tokens.append(tid)
        else:
            tokens.extend(b + 3 for b in buf)
        buf = b""
    while True:
        best_score, best_id, best_idx = -1e10, -1, -1
        for i in range(len(tokens) - 1):
            tid = lookup.get(vocab[tokens[i]] + vocab[tokens[i + 1]], -1)
            if tid != -1 and scores[tid] > best_score:
                best_score, best_id, best_idx = scores[tid], tid, i
        if best_idx == -1:
            break
        tokens[best_idx] = best_id
        del tokens[best_idx + 1]
    if eos:
        tokens.append(2)
    return tokens


def runc_decode(vocab, ids):
    out = b""
    prev = -1
    for t in ids:
        piece = vocab[t]
        if prev == 1 and piece.startswith(b" "):
            piece = piece[1:]
        if len(piece) == 6 and piece.startswith(b"<0x") and piece.endswith(b">"):
            try:
                piece = bytes([int(piece[3:5], 16)])
            except ValueError:
                pass
        out += piece
        prev = t
    return out


def make_llama2c():
    res = {"note": "ids from a Python port of llama2.c run.c encode (bos=1, eos=0)", "vocabs": []}
    extra = ["Once upon a time, there was a little girl named Lily.", "<0x41> literal", "a\u0000b"]
    for name, path, vs in [("tok512", os.path.join(SHARED, "models", "tok512.bin"), 512),
                           ("llama2c-32000", os.path.join(SHARED, "tokenizers", "llama2c-tokenizer.bin"), 32000)]:
        if not os.path.exists(path):
            print("SKIP", path, "missing")
            continue
        vocab, scores = read_llama2c(path, vs)
        dups = len(vocab) - len(set(vocab))
        print(name, "duplicate pieces:", dups)
        cases = []
        for s in HARD + extra:
            b = s.encode("utf-8")
            ids = runc_encode(vocab, scores, b, True, False)
            if "\0" in s:  # JSON readers in C stop at NUL: give the bytes
                cases.append({"bytes": list(b), "ids": ids})
                continue
            cases.append({"text": s, "ids": ids, "decoded": runc_decode(vocab, ids).decode("utf-8", "replace")})
        # invalid UTF-8 bytes, given as a list of byte values
        for raw in [b"\xff\xfeab", b"a\x80\x80\x80\x80\x80b", b"\xe6\x97"]:
            ids = runc_encode(vocab, scores, raw, True, False)
            cases.append({"bytes": list(raw), "ids": ids})
        res["vocabs"].append({"name": name, "file": os.path.relpath(path, SHARED), "vocab_size": vs, "cases": cases})
        if vs == 32000:
            res["sentencepiece_differences"] = spm_crosscheck(vocab, scores, HARD + extra)
    write_json("llama2c_expected.json", res)


def spm_crosscheck(vocab, scores, strings):
    try:
        import sentencepiece as spm
    except ImportError:
        print("sentencepiece not installed: no cross-check")
        return "not checked"
    model = os.path.join(SHARED, "tokenizers", "llama2-tokenizer.model")
    sp = spm.SentencePieceProcessor(model_file=model)
    diffs = []
    for s in strings:
        a = runc_encode(vocab, scores, s.encode("utf-8"), False, False)
        b = sp.encode(s)
        if a != b:
            diffs.append({"text": s, "run.c": a, "sentencepiece": b})
    print("llama2.c vs sentencepiece: %d/%d strings differ" % (len(diffs), len(strings)))
    for d in diffs:
        print("  ", repr(d["text"]), d["run.c"][:12], d["sentencepiece"][:12])
    return diffs


# ----------------------------------------------------------------------------------------------
# GPT-2 (HF tokenizer.json from shared data)

def expected_for(tok, strings):
    cases = []
    for s in strings:
        e = tok.encode(s, add_special_tokens=False)
        e2 = tok.encode(s, add_special_tokens=True)
        cases.append({
            "text": s,
            "ids": e.ids,
            "ids_special": e2.ids,
            "decoded": tok.decode(e2.ids, skip_special_tokens=False),
            "decoded_skip": tok.decode(e2.ids, skip_special_tokens=True),
        })
    return cases


def make_gpt2():
    from tokenizers import Tokenizer
    path = os.path.join(SHARED, "tokenizers", "gpt2-hf-tokenizer.json")
    if not os.path.exists(path):
        print("SKIP gpt2: missing", path)
        return
    tok = Tokenizer.from_file(path)
    tok.no_truncation()
    write_json("gpt2_expected.json", {"file": "tokenizers/gpt2-hf-tokenizer.json", "cases": expected_for(tok, HARD)})

# ----------------------------------------------------------------------------------------------
# small real tokenizers trained with the `tokenizers` trainers

JA = """吾輩は猫である。名前はまだ無い。どこで生れたかとんと見当がつかぬ。
何でも薄暗いじめじめした所でニャーニャー泣いていた事だけは記憶している。
東京は今日も晴れています。明日は雨が降るでしょう。
ユーザ：こんにちは、今日の天気を教えてください。
アシスタント：はい、東京は晴れです。気温は二十度くらいです。
### 指示
次の文章を要約してください。
### 応答
猫が自分の生まれについて語る話です。
カタカナとひらがなと漢字を混ぜた日本語のテキストを用意しました。
ｶﾀｶﾅ（半角）とＡＢＣ（全角）と①②③も入れておきます。
"""

CODE = """def fibonacci(n):
    if n < 2:
        return n
    return fibonacci(n - 1) + fibonacci(n - 2)

for (int i = 0; i < n; i++) {
\tsum += a[i] * b[i];
}
# comment with    multiple     spaces
x = {"key": [1, 2, 3], 'other': None}  # dict
"""

EMOJI = "I love it 😀😀 🚀 launch ✅ done 👍🏽 great 😶‍🌫️ hmm 🎉🎉🎉\n"


def corpus():
    parts = []
    for rel in ["datasets/the-verdict.txt", "datasets/tinystories_sample.txt"]:
        p = os.path.join(SHARED, rel)
        if os.path.exists(p):
            parts.append(open(p, encoding="utf-8").read())
        else:
            # the fixtures are committed; regenerating them needs the shared data
            sys.exit("make_trained: %s is needed to regenerate the trained fixtures" % p)
    parts += [JA * 20, CODE * 10, EMOJI * 10, "spaces:      and\ttabs\t\tand\n\n\nnewlines   \n" * 10,
              "numbers 1234567890 3.14159 2024-01-01 42\n" * 10, "Привет мир, как дела?\n" * 5]
    text = "\n".join(parts)
    return [line for line in text.split("\n")]


LLAMA3_RE = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
             r"|\s*[\r\n]+|\s+(?!\S)|\s+")


def with_byte_pieces(tj, model_kind):
    """Puts <unk>, <s>, </s> and <0x00>..<0xFF> first in the model vocabulary (as Llama-2 has
    them) and renumbers the trained pieces after them."""
    m = tj["model"]
    specials = ["<unk>", "<s>", "</s>"]
    bytes_ = ["<0x%02X>" % b for b in range(256)]
    if model_kind == "BPE":
        old = sorted(m["vocab"].items(), key=lambda kv: kv[1])
        new = {}
        for p in specials + bytes_:
            new[p] = len(new)
        for p, _ in old:
            if p not in new:
                new[p] = len(new)
        m["vocab"] = new
        remap = {old_id: new[p] for p, old_id in old}
    else:
        old = m["vocab"]
        new = [[p, 0.0] for p in specials + bytes_]
        names = {p for p, _ in new}
        new += [[p, s] for p, s in old if p not in names]
        ids = {p: i for i, (p, _) in enumerate(new)}
        remap = {i: ids[p] for i, (p, _) in enumerate(old)}
        m["vocab"] = new
        m["unk_id"] = 0
    for a in tj["added_tokens"]:
        a["id"] = remap.get(a["id"], a["id"])
    return tj


def finish(name, tok_json, strings, config=None):
    from tokenizers import Tokenizer
    text = json.dumps(tok_json, ensure_ascii=False)
    tok = Tokenizer.from_str(text)  # HF itself must accept what we commit
    path = os.path.join(OUT, name + ".tokenizer.json")
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    print("wrote", path, os.path.getsize(path), "bytes")
    res = {"tokenizer": name + ".tokenizer.json", "cases": expected_for(tok, strings)}
    if config:
        write_json(name + ".tokenizer_config.json", config)
        def tid(k):
            v = config.get(k)
            return tok.token_to_id(v) if v else -1
        res["special"] = {"bos": tid("bos_token"), "eos": tid("eos_token"), "pad": tid("pad_token")}
    write_json(name + ".expected.json", res)


def make_trained():
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers
    from tokenizers import pre_tokenizers, processors, trainers

    lines = corpus()
    strings = HARD

    # 1. GPT-2 style byte-level BPE, RoBERTa-style <mask> (lstrip), a single_word added token
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    tr = trainers.BpeTrainer(vocab_size=1200, special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
                             initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(lines, tr)
    tok.add_special_tokens([AddedToken("<mask>", lstrip=True, special=True)])
    tok.add_tokens([AddedToken("don't", single_word=True), AddedToken(" worry", rstrip=True)])
    finish("bpe_bytelevel", json.loads(tok.to_str()), strings)

    # 2. Llama-3 style: regex Split then ByteLevel without its regex, ignore_merges, BOS template
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(LLAMA3_RE), behavior="isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    tok.decoder = decoders.ByteLevel()
    tr = trainers.BpeTrainer(vocab_size=1500, special_tokens=["<|begin_of_text|>", "<|end_of_text|>", "<|eot_id|>"],
                             initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(lines, tr)
    tok.post_processor = processors.TemplateProcessing(
        single="<|begin_of_text|> $A", special_tokens=[("<|begin_of_text|>", tok.token_to_id("<|begin_of_text|>"))])
    tj = json.loads(tok.to_str())
    tj["model"]["ignore_merges"] = True
    cfg = {"bos_token": "<|begin_of_text|>", "eos_token": "<|eot_id|>", "pad_token": "<|end_of_text|>",
           "chat_template": "{% for m in messages %}{{ m['content'] }}{% endfor %}"}
    finish("bpe_llama3", tj, strings, cfg)

    # 3./4. SentencePiece-style BPE with byte fallback: trained with Metaspace, then given the
    # Llama-2 legacy pipeline (Prepend + Replace normalizers) or the Metaspace "first" one.
    tok = Tokenizer(models.BPE(unk_token="<unk>", fuse_unk=True, byte_fallback=True))
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="always", split=True)
    tr = trainers.BpeTrainer(vocab_size=1000, special_tokens=["<unk>", "<s>", "</s>"], show_progress=False,
                             limit_alphabet=300)
    tok.train_from_iterator(lines, tr)
    base = with_byte_pieces(json.loads(tok.to_str()), "BPE")
    bos = base["model"]["vocab"]["<s>"]
    legacy = json.loads(json.dumps(base))
    legacy["normalizer"] = {"type": "Sequence", "normalizers": [
        {"type": "Prepend", "prepend": "\u2581"},
        {"type": "Replace", "pattern": {"String": " "}, "content": "\u2581"}]}
    legacy["pre_tokenizer"] = None
    legacy["decoder"] = {"type": "Sequence", "decoders": [
        {"type": "Replace", "pattern": {"String": "\u2581"}, "content": " "},
        {"type": "ByteFallback"}, {"type": "Fuse"},
        {"type": "Strip", "content": " ", "start": 1, "stop": 0}]}
    legacy["post_processor"] = {"type": "TemplateProcessing",
        "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
        "pair": [{"Sequence": {"id": "A", "type_id": 0}}, {"Sequence": {"id": "B", "type_id": 1}}],
        "special_tokens": {"<s>": {"id": "<s>", "ids": [bos], "tokens": ["<s>"]}}}
    finish("bpe_spm_legacy", legacy, strings,
           {"bos_token": "<s>", "eos_token": "</s>", "pad_token": None})
    ms = json.loads(json.dumps(base))
    ms["normalizer"] = None
    ms["pre_tokenizer"] = {"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "first", "split": False}
    ms["decoder"] = {"type": "Sequence", "decoders": [
        {"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "first", "split": False},
        {"type": "ByteFallback"}, {"type": "Fuse"}]}
    ms["post_processor"] = legacy["post_processor"]
    finish("bpe_metaspace", ms, strings)

    # 5. Unigram with NFKC (rinna-style Japanese), T5-style EOS suffix
    tok = Tokenizer(models.Unigram())
    tok.normalizer = normalizers.NFKC()
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="always", split=True)
    tok.decoder = decoders.Metaspace(replacement="\u2581", prepend_scheme="always", split=True)
    tr = trainers.UnigramTrainer(vocab_size=1200, special_tokens=["<unk>", "<s>", "</s>", "<pad>"],
                                 unk_token="<unk>", show_progress=False)
    tok.train_from_iterator(lines, tr)
    tok.post_processor = processors.TemplateProcessing(single="$A </s>",
                                                       special_tokens=[("</s>", tok.token_to_id("</s>"))])
    uni = json.loads(tok.to_str())
    finish("unigram_nfkc", uni, strings,
           {"bos_token": "<s>", "eos_token": "</s>", "pad_token": "<pad>", "unk_token": "<unk>"})
    # 6. the same with byte fallback instead of <unk> for unseen characters
    ub = with_byte_pieces(json.loads(json.dumps(uni)), "Unigram")
    ub["model"]["byte_fallback"] = True
    ub["decoder"] = {"type": "Sequence", "decoders": [
        {"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "always", "split": True},
        {"type": "ByteFallback"}, {"type": "Fuse"}]}
    ub["post_processor"] = None
    finish("unigram_bytefallback", ub, strings)

    # 7. a lossy pipeline: NFD + lowercase + strip accents, whitespace/digit/punctuation
    # pre-tokenizers, BERT-style [CLS] ... [SEP], no decoder (HF joins with spaces)
    tok = Tokenizer(models.BPE(unk_token="[UNK]"))
    tok.normalizer = normalizers.Sequence([normalizers.NFD(), normalizers.Lowercase(), normalizers.StripAccents(),
                                           normalizers.Replace(Regex(r"\s+"), " "), normalizers.Strip()])
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split("-", behavior="merged_with_previous"),
        pre_tokenizers.Whitespace(), pre_tokenizers.Digits(individual_digits=True),
        pre_tokenizers.Punctuation(behavior="isolated")])
    tr = trainers.BpeTrainer(vocab_size=800, special_tokens=["[UNK]", "[CLS]", "[SEP]", "[PAD]", "[MASK]"],
                             show_progress=False, limit_alphabet=200)
    tok.train_from_iterator(lines, tr)
    tok.post_processor = processors.BertProcessing(("[SEP]", tok.token_to_id("[SEP]")), ("[CLS]", tok.token_to_id("[CLS]")))
    finish("bpe_lossy", json.loads(tok.to_str()), strings + ["Some-hyphen-ated words", "ÀÉÎÕÜ ÇA  VA?"])

    # 8. Split/Sequence variety: WhitespaceSplit, MergedWithNext, Contiguous, CharDelimiterSplit,
    # BertPreTokenizer, NFKC + NFC
    tok = Tokenizer(models.BPE(unk_token="<unk>", fuse_unk=True))
    tok.normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.NFC()])
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.CharDelimiterSplit("|"),
        pre_tokenizers.Split(Regex(r"[0-9]+"), behavior="merged_with_next"),
        pre_tokenizers.Split(Regex(r"[.!?]"), behavior="contiguous"),
        pre_tokenizers.BertPreTokenizer()])
    tr = trainers.BpeTrainer(vocab_size=700, special_tokens=["<unk>", "<pad>"], show_progress=False, limit_alphabet=150)
    tok.train_from_iterator(lines, tr)
    tok.decoder = decoders.Fuse()
    finish("bpe_splits", json.loads(tok.to_str()), strings + ["a|b||c 12ab 3...4!!5", "x1y22z333"])


def make_spm_precompiled():
    """9. A real SentencePiece Unigram model (trained here with sentencepiece, nmt_nfkc rules) as
    tokenizers' SentencePieceUnigramTokenizer.from_spm writes it: the Precompiled normalizer
    carries sentencepiece's charsmap (a double-array trie + replacement strings), as in rinna's
    and T5's tokenizer.json files. Needs sentencepiece and protobuf."""
    import base64
    import tempfile
    import sentencepiece as spm
    from sentencepiece import sentencepiece_model_pb2 as pb
    lines = [line for line in corpus() if line.strip()]
    with tempfile.TemporaryDirectory() as d:
        with open(os.path.join(d, "corpus.txt"), "w", encoding="utf-8") as f:
            f.write("\n".join(lines))
        spm.SentencePieceTrainer.train(input=os.path.join(d, "corpus.txt"), model_prefix=os.path.join(d, "sp"),
                                       vocab_size=1000, model_type="unigram", character_coverage=0.9995,
                                       normalization_rule_name="nmt_nfkc", minloglevel=2)
        m = pb.ModelProto()
        m.ParseFromString(open(os.path.join(d, "sp.model"), "rb").read())
    charsmap = base64.b64encode(m.normalizer_spec.precompiled_charsmap).decode()
    tj = {"version": "1.0", "truncation": None, "padding": None, "added_tokens": [],
          "normalizer": {"type": "Sequence", "normalizers": [
              {"type": "Precompiled", "precompiled_charsmap": charsmap},
              {"type": "Replace", "pattern": {"Regex": " {2,}"}, "content": " "}]},
          "pre_tokenizer": {"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "always", "split": True},
          "post_processor": None,
          "decoder": {"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "always", "split": True},
          "model": {"type": "Unigram", "unk_id": m.trainer_spec.unk_id, "byte_fallback": False,
                    "vocab": [[p.piece, p.score] for p in m.pieces]}}
    extra = ["ｶﾞｷﾞｸﾞ ﾊﾟﾋﾟ ｳﾞ", "㈱㌔㍉ ™ № ℡ ㏍", "ｱｲｳｴｵ　全角スペース", "Ⅻ ⅷ ¼ ² ₃", "\u0041\u030a\u212b",
             "ﬃ ﬄ ﬅ ᴬ", "\ufeffBOM and \u00ad soft hyphen", "e\u0301\u0302\u0303\u0304\u0305\u0306 long cluster",
             "ｺﾝﾆﾁﾊ、ﾃｽﾄ。", "🇯🇵🇺🇸 flags 👨‍👩‍👧 family"]
    finish("unigram_precompiled", tj, HARD + extra)


if __name__ == "__main__":
    os.makedirs(OUT, exist_ok=True)
    write_json("hard_strings.json", HARD)
    what = sys.argv[1:] or ["llama2c", "gpt2", "trained"]
    if "llama2c" in what:
        make_llama2c()
    if "gpt2" in what:
        make_gpt2()
    if "trained" in what:
        make_trained()
    if "trained" in what or "precompiled" in what:
        make_spm_precompiled()
