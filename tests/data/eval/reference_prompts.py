#!/usr/bin/env python3
"""Independent Python transcription of the reference harness's document cutting and prompt
templates (jrt-prompt-eval-spec §4, §5, §12: lm-eval-harness/lm_eval/api/task.py truncate_context and
the doc_to_text of each task), with a plain GPT-2 byte-level BPE (assets/gpt2) and the
clean_up_tokenization_spaces=True decode. It writes prompts.jsonl: randomised rows of every task
family (Unicode, clean-up patterns, markers, missing answers, tok_pos fallbacks, multi-byte window
edges) with the prompt Python produces for each task variant and context length, or the drop.
tests/test_eval_reference.cpp checks the C++ harness against every line.

Run from the repository root:  python3 tests/data/eval/reference_prompts.py > tests/data/eval/prompts.jsonl
Needs the `regex` module (for the GPT-2 pre-tokenisation pattern with \\p{L} / \\p{N})."""
import json
import random
import re
import sys

import regex

ASSETS = "assets/gpt2"

# ---- GPT-2 byte-level BPE ------------------------------------------------------------------------

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


class GPT2:
    PAT = regex.compile(r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+""")
    EOT = "<|endoftext|>"

    def __init__(self):
        self.encoder = json.load(open(f"{ASSETS}/encoder.json", encoding="utf-8"))
        self.decoder = {v: k for k, v in self.encoder.items()}
        merges = open(f"{ASSETS}/vocab.bpe", encoding="utf-8").read().split("\n")[1:]
        merges = [tuple(m.split()) for m in merges if m.strip()]
        self.ranks = dict(zip(merges, range(len(merges))))
        self.b2u = bytes_to_unicode()
        self.u2b = {v: k for k, v in self.b2u.items()}
        self.cache = {}

    def bpe(self, token):
        if token in self.cache:
            return self.cache[token]
        word = list(token)
        while len(word) > 1:
            pairs = [(word[i], word[i + 1]) for i in range(len(word) - 1)]
            best = min(pairs, key=lambda p: self.ranks.get(p, float("inf")))
            if best not in self.ranks:
                break
            out, i = [], 0
            while i < len(word):
                if i < len(word) - 1 and (word[i], word[i + 1]) == best:
                    out.append(word[i] + word[i + 1])
                    i += 2
                else:
                    out.append(word[i])
                    i += 1
            word = out
        self.cache[token] = word
        return word

    def encode(self, text):
        ids = []
        parts = text.split(self.EOT)
        for k, part in enumerate(parts):
            if k:
                ids.append(50256)
            for tok in self.PAT.findall(part):
                u = "".join(self.b2u[b] for b in tok.encode("utf-8"))
                ids.extend(self.encoder[w] for w in self.bpe(u))
        return ids

    def decode(self, ids, skip_special=False):
        if skip_special:
            ids = [i for i in ids if i != 50256]
        text = "".join(self.decoder[i] for i in ids)
        s = bytearray(self.u2b[c] for c in text).decode("utf-8", errors="replace")
        return clean_up(s)


def clean_up(s):
    return (s.replace(" .", ".").replace(" ?", "?").replace(" !", "!").replace(" ,", ",").replace(" ' ", "'")
            .replace(" n't", "n't").replace(" 'm", "'m").replace(" 's", "'s").replace(" 've", "'ve")
            .replace(" 're", "'re"))


# ---- tasks ---------------------------------------------------------------------------------------

FAMILY = {"based_swde": "swde", "based_fda": "fda", "based_squad": "squad", "based_triviaqa": "triviaqa",
          "based_drop": "drop", "based_nq_512": "nq", "based_nq_1024": "nq", "based_nq_2048": "nq"}
CONTEXT_KEY = {"swde": "text", "fda": "text", "squad": "text", "triviaqa": "context", "drop": "context", "nq": "context"}
ANSWER_KEY = {"swde": ["key", "value"], "fda": ["key", "value"], "squad": ["value"], "triviaqa": [], "drop": [],
              "nq": ["answers"]}
SUMMARY = "Summary of information above..."


def truncate_context(doc, fam, C, tok):
    """Returns the cut doc, or None when the reference drops it (task.py:352-429)."""
    desired = C - 50
    ckey = CONTEXT_KEY[fam]
    context = doc[ckey].strip()
    doc_tokens = tok.encode(context)
    answer_pos = -1
    for key in ANSWER_KEY[fam]:
        a = doc[key]
        if isinstance(a, list):
            a = a[0]
        if a == "" or len(a) <= 1:
            return None
        m = re.search(re.escape(a), context, re.IGNORECASE)
        if m and (answer_pos == -1 or answer_pos > m.start()):
            answer_pos = m.start()
    if answer_pos < 0 and "alt_answers" in doc:
        for a in doc["alt_answers"]:
            m = re.search(re.escape(a), context, re.IGNORECASE)
            if m:
                answer_pos = m.start()
                break
    if not ANSWER_KEY[fam]:
        answer_pos = 0
    prefix = context[:answer_pos]
    answer_tok = len(tok.encode(prefix))
    if answer_pos == -1 and "tok_pos" in doc and len(tok.encode(prefix)) > desired:
        answer_tok = doc["tok_pos"]
    half = desired // 2
    start = max(0, answer_tok - half)
    rem = desired - (answer_tok - start)
    end = min(len(doc_tokens), answer_tok + rem)
    short = tok.decode(doc_tokens[start:end], skip_special=True)
    out = dict(doc)
    out[ckey] = short
    return out


def swde_prompt(doc, twice):
    t = doc["text"]
    while SUMMARY in t:
        t = t.split(SUMMARY)[0]
    q = doc["key"] + ":"
    while t.lower().endswith(q.lower()):
        t = t[:-len(q)]
    Q = doc["key"][0].upper() + doc["key"][1:] + ":"
    if not twice:
        return t.strip("\n").strip().strip("\n").strip().strip(".") + "." + " " + Q
    out = t.strip("\n").strip(".").strip().strip("\n").strip()
    if not out.endswith("."):
        out += "."
    return "Information about " + Q.strip(":") + ". " + out + "\n" + out + " " + Q


def fda_prompt(doc, twice):
    D = doc["text"]
    q = doc["key"] + ":"
    while D.lower().endswith(q.lower()):
        D = D[:-len(q)]
    Q = doc["key"][0].upper() + doc["key"][1:] + ":"
    out = D.strip("\n").strip(".")
    if not out.endswith("."):
        out += "."
    if not twice:
        return out + " " + Q
    return "Information about " + Q.strip(":") + ". " + out + "\n" + out + " " + Q


def squad_prompt(doc, twice):
    if not twice:
        return doc["text"].strip()
    return doc["question"] + " " + doc["context"].split("Question:")[0] + "\n" + doc["text"].strip()


def cloze_prompt(doc, fam, twice):
    c = doc["context"].strip()
    if fam == "triviaqa":
        c = re.sub(r"\[PAR\]|\[DOC\]|\[TLE\]", "", c)
    q = doc["question"].strip()
    if fam == "nq" and not twice:
        if c.endswith(q):
            c = c[:-len(q)]
        return c.strip().strip(".") + ". " + doc["question"].strip()
    while c.lower().endswith(q.lower()):
        c = c[:-len(q)]
    if not twice:
        return c.strip().strip(".") + ". " + (doc["question"].strip() if fam == "triviaqa" else q)
    out = c.strip().strip(".").strip() + "."
    out = out + "\n" + out + " " + doc["question"].strip()
    if fam == "triviaqa":
        return doc["orig_question"] + " " + out
    return doc["orig_question"].strip(":") + " " + out


def prompt(doc, fam, twice):
    if fam == "swde":
        return swde_prompt(doc, twice)
    if fam == "fda":
        return fda_prompt(doc, twice)
    if fam == "squad":
        return squad_prompt(doc, twice)
    return cloze_prompt(doc, fam, twice)


# ---- randomised rows -----------------------------------------------------------------------------

WORDS = ("the report of device year value river signal engine careful golden tower record compass museum author "
         "director studio company harbor letter station garden archive testing results safety cycles").split()
ODD = ["é", "İ", "\u212a", "ß", "SS", "😀", "漢字", "\xa0", "\u3000", "ſ", "ı", "Σ", "ς", "Ω", "naïve", "café"]
PUNCT = [" .", " ,", " 's", " n't", " ' ", " ?", " !", " 're", " 've", " 'm", ".", ",", "\n", "\n\n", " :"]


def words(r, n):
    out = []
    for _ in range(n):
        x = r.random()
        if x < 0.06:
            out.append(r.choice(ODD))
        elif x < 0.16:
            out.append(r.choice(PUNCT))
            continue
        else:
            w = r.choice(WORDS)
            out.append(w.capitalize() if r.random() < 0.15 else w)
        out.append(" ")
    return "".join(out)


def pad_ws(r, s):
    ws = ["", "", " ", "\n", "\xa0", "\u3000 ", "\t\n"]
    return r.choice(ws) + s + r.choice(ws)


def make_rows(r, fam, n):
    rows = []
    for i in range(n):
        answer = r.choice(["Golden Tower", "1983", "K183311", "İstanbul", "\u212aelvin scale", "Straße", "naïve café",
                           "Smith, John", "x", "7", "ab"])
        before, after = words(r, r.choice([5, 40, 200, 700])), words(r, r.choice([5, 30, 200]))
        mode = r.random()
        if mode < 0.2:
            body = before + after  # answer absent
        elif mode < 0.35:
            body = before + answer.upper() + " " + after
        else:
            body = before + answer + " " + after
        if fam in ("swde", "fda"):
            key = r.choice(["year", "Year", "purpose for submission", "director", "y", "İd number", "ßize", "name"])
            text = body
            if fam == "swde":
                text = body + SUMMARY + "\n" + "genre: drama\n" + key + ":"
            elif r.random() < 0.5:
                text = body + (key + ":") * r.choice([1, 2]) + r.choice(["", ".", "..\n"])
            rows.append({"doc_id": str(i), "file_name": f"{fam}{i}.txt", "key": key, "value": answer,
                         "text": pad_ws(r, text)})
        elif fam == "squad":
            cloze = "The thing described above is called"
            ctx = body + (" Question: what is it? Answer:" if r.random() < 0.5 else "")
            rows.append({"doc_id": str(i), "text": pad_ws(r, body + cloze), "value": answer, "title": "T",
                         "context": ctx, "question": "What is the thing?"})
        else:
            q = r.choice(["The answer is", "the ANSWER is", "Its name was"])
            ctx = body
            if r.random() < 0.5:
                ctx = body + " " + (q.lower() if r.random() < 0.5 else q) * r.choice([1, 2])
            if fam == "triviaqa" and r.random() < 0.7:
                ctx = "[DOC] [TLE] Title [PAR] " + ctx.replace(". ", ". [PAR] ", 2)
            answers = [answer] + r.sample(["Golden", "alias two", "z"], r.choice([0, 1, 2]))
            row = {"context": pad_ws(r, ctx), "question": pad_ws(r, q), "answers": answers,
                   "orig_question": r.choice(["What is it?", "Name it:", " what is it? "])}
            if fam == "nq":
                row["id"] = str(i)
                row["tok_pos"] = r.choice([0, 7, 120, 5000])
            rows.append(row)
    return rows


def main():
    tok = GPT2()
    r = random.Random(20240709)
    for task, fam in FAMILY.items():
        if task in ("based_nq_1024", "based_nq_2048"):
            continue  # same code as based_nq_512; only the default C differs
        for row in make_rows(r, fam, 12):
            rec = {"task": task, "row": row, "by_context_length": {}}
            for C in (60, 120, 1000):
                cut = truncate_context(row, fam, C, tok)
                if cut is None:
                    rec["dropped"] = True
                    break
                rec["by_context_length"][str(C)] = {"default": prompt(cut, fam, False), "twice": prompt(cut, fam, True)}
            sys.stdout.write(json.dumps(rec, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
