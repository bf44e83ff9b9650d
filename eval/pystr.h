// eval/pystr.h — the Python `str` / `re` / tokenizer-decode semantics the reference harness's
// templates, cutter and metric rely on (jrt-prompt-eval-spec §3, §12), reproduced on UTF-32 strings
// (Python indexes code points). Case data come from eval/unicode_tables.cpp, generated from Python's
// own runtime by eval/gen_unicode_tables.py.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>

namespace jrt::eval {

using U32 = std::u32string;

// UTF-8 <-> UTF-32. to_u32 requires valid UTF-8 (throws jrt::Error naming `what` and the byte offset).
U32 to_u32(std::string_view utf8, std::string_view what = "text");
std::string to_utf8(std::u32string_view s);

// bytes.decode("utf-8", errors="replace"): every maximal ill-formed subpart becomes one U+FFFD (the
// policy of both Python's codec and Rust's from_utf8_lossy used by HF fast tokenizers).
std::string utf8_lossy(std::string_view bytes);

bool py_isspace(char32_t c);                           // str.isspace() of one character
U32 py_strip(std::u32string_view s);                   // s.strip()
U32 py_strip_char(std::u32string_view s, char32_t c);  // s.strip(c), c a single character
U32 py_drop_last(std::u32string_view s, int64_t n);    // s[:-n]; note s[:-0] == "" (Python slicing)
bool py_endswith(std::u32string_view s, std::u32string_view suffix);
U32 py_split_first(std::u32string_view s, std::u32string_view sep);  // s.split(sep)[0] (sep non-empty)
bool py_contains(std::u32string_view s, std::u32string_view sub);
U32 py_lower(std::u32string_view s);  // str.lower(): full mapping incl. U+0130 -> "i\u0307" and Final_Sigma
U32 py_upper(char32_t c);             // str.upper() of one character (full mapping: "ß" -> "SS")

// Python `re` IGNORECASE on str: the simple lower-case mapping and cased test `re` uses per character.
char32_t re_lower(char32_t c);
bool re_iscased(char32_t c);
// re.search(re.escape(needle), hay, re.IGNORECASE): start index (code points) of the first match, or
// -1. Per character: an uncased needle character matches only itself; a cased one matches any hay
// character whose simple lower-case equals its own (or one of `re`'s extra equivalents, e.g. i/ı).
// An empty needle matches at 0.
int64_t re_find_ignorecase(std::u32string_view hay, std::u32string_view needle);

// transformers' clean_up_tokenization (GPT-2 decode with clean_up_tokenization_spaces=True): the
// replacements " ." "." / " ?" / " !" / " ," / " ' " -> "'" / " n't" / " 'm" / " 's" / " 've" / " 're",
// applied one after another, each left to right without overlap (str.replace).
std::string clean_up_tokenization(std::string s);

}  // namespace jrt::eval
