// eval/tasks.cpp — task inventory, row validation, document cutting and prompt templates. Every
// string operation mirrors the reference's Python on code points (eval/pystr.h); the comments give the
// spec section each block reproduces.
#include "eval/tasks.h"

#include <algorithm>
#include <sstream>

#include "core/error.h"
#include "eval/pystr.h"

namespace jrt::eval {
namespace {

using json = nlohmann::json;

const char32_t* const kSummary = U"Summary of information above...";

// The default variant of a dataset's task (build_inventory adds the _twice one).
TaskSpec make(std::string dataset, Family f, std::string ctx_key, std::vector<std::string> answer_key,
              std::string label_field, int64_t default_c = 1000, bool synthetic = false) {
  TaskSpec t;
  t.name = dataset;
  t.dataset = std::move(dataset);
  t.family = f;
  t.synthetic = synthetic;
  t.default_context_length = default_c;
  t.context_key = std::move(ctx_key);
  t.answer_key = std::move(answer_key);
  t.label_field = std::move(label_field);
  return t;
}

std::vector<TaskSpec> build_inventory() {
  // spec §2: context_key / answer_key as __main__.py sets them from the task name. NQ: Table 1 runs
  // based_nq_1024 at C = 1000; Table 2 runs every based_nq_* at C = 2000 (spec §7).
  const std::vector<TaskSpec> bases = {
      make("based_swde", Family::SWDE, "text", {"key", "value"}, "value"),
      make("based_fda", Family::FDA, "text", {"key", "value"}, "value"),
      make("based_squad", Family::SQuAD, "text", {"value"}, "value"),
      make("based_triviaqa", Family::TriviaQA, "context", {}, "answers"),
      make("based_drop", Family::Drop, "context", {}, "answers"),
      make("based_nq_512", Family::NQ, "context", {"answers"}, "answers", 2000),
      make("based_nq_1024", Family::NQ, "context", {"answers"}, "answers", 1000),
      make("based_nq_2048", Family::NQ, "context", {"answers"}, "answers", 2000),
      make("synth_fda", Family::FDA, "text", {"key", "value"}, "value", 1000, true),
      make("synth_swde", Family::SWDE, "text", {"key", "value"}, "value", 1000, true),
  };
  std::vector<TaskSpec> out;
  for (const auto& b : bases) {
    out.push_back(b);
    TaskSpec tw = b;
    tw.twice = true;
    tw.name = b.name + "_twice";
    out.push_back(tw);
  }
  return out;
}

// ---- field access -------------------------------------------------------------------------------

const json& field(const json& row, const std::string& name, const std::string& where) {
  auto it = row.find(name);
  JRT_CHECK(it != row.end(), "{}: missing field '{}'", where, name);
  return *it;
}

std::string str_field(const json& row, const std::string& name, const std::string& where) {
  const json& v = field(row, name, where);
  JRT_CHECK(v.is_string(), "{}: field '{}' must be a string, got {}", where, name, v.type_name());
  return v.get<std::string>();
}

std::vector<std::string> str_list_field(const json& row, const std::string& name, const std::string& where) {
  const json& v = field(row, name, where);
  JRT_CHECK(v.is_array(), "{}: field '{}' must be a list of strings, got {}", where, name, v.type_name());
  std::vector<std::string> out;
  for (size_t i = 0; i < v.size(); ++i) {
    JRT_CHECK(v[i].is_string(), "{}: field '{}'[{}] must be a string, got {}", where, name, i, v[i].type_name());
    out.push_back(v[i].get<std::string>());
  }
  return out;
}

// The fields each task reads (both for the cut and the template), beyond the labels.
std::vector<std::string> string_fields(const TaskSpec& t) {
  switch (t.family) {
    case Family::SWDE:
    case Family::FDA:
      return {"text", "key", "value"};
    case Family::SQuAD:
      return t.twice ? std::vector<std::string>{"text", "value", "context", "question"}
                     : std::vector<std::string>{"text", "value"};
    case Family::TriviaQA:
    case Family::Drop:
    case Family::NQ:
      return t.twice ? std::vector<std::string>{"context", "question", "orig_question"}
                     : std::vector<std::string>{"context", "question"};
  }
  return {};
}

// A question the template strips from the end in a `while` loop: empty would loop forever.
bool loops_on_question(const TaskSpec& t) {
  return t.family == Family::TriviaQA || t.family == Family::Drop || (t.family == Family::NQ && t.twice);
}

// The first string of a field that is a string or a list of strings (spec §4: `if list: a = a[0]`).
std::string first_answer(const json& row, const std::string& key) {
  const json& v = row.at(key);
  return v.is_array() ? v.at(0).get<std::string>() : v.get<std::string>();
}

// ---- template helpers ----------------------------------------------------------------------------

U32 u(const json& row, const std::string& name) { return to_u32(row.at(name).get<std::string>(), name); }

// while lower(c).endswith(lower(q)): c = c[:-len(q)]   (q non-empty)
U32 strip_suffix_loop(U32 c, const U32& q) {
  const U32 lq = py_lower(q);
  while (!c.empty() && py_endswith(py_lower(c), lq)) c = py_drop_last(c, int64_t(q.size()));
  // An empty c: lower("").endswith(lq) is false for a non-empty lq, as in Python.
  return c;
}

// "Key:" from the attribute name: upper(key[0]) + key[1:] + ":".
U32 key_question(const U32& key) { return py_upper(key[0]) + key.substr(1) + U":"; }

// re.sub(r"\[PAR\]|\[DOC\]|\[TLE\]", "", x): one left-to-right pass, no rescan of the output.
U32 trivia_clean(const U32& x) {
  U32 out;
  out.reserve(x.size());
  for (size_t i = 0; i < x.size();) {
    std::u32string_view rest(x.data() + i, x.size() - i);
    if (rest.starts_with(U"[PAR]") || rest.starts_with(U"[DOC]") || rest.starts_with(U"[TLE]")) {
      i += 5;
      continue;
    }
    out += x[i++];
  }
  return out;
}

std::string extraction_prompt(const TaskSpec& t, const json& d) {
  U32 txt = u(d, "text");
  const U32 key = u(d, "key");
  JRT_CHECK(!key.empty(), "field 'key' is empty (such a row is dropped before templating)");
  if (t.family == Family::SWDE)  // spec §5.1: drop the "Summary of information above..." block
    while (py_contains(txt, kSummary)) txt = py_split_first(txt, kSummary);
  txt = strip_suffix_loop(txt, key + U":");
  const U32 Q = key_question(key);
  U32 out;
  if (t.family == Family::SWDE && !t.twice) {
    out = py_strip_char(py_strip(py_strip_char(py_strip(py_strip_char(txt, U'\n')), U'\n')), U'.') + U".";
    return to_utf8(out + U" " + Q);
  }
  if (t.family == Family::SWDE) {
    out = py_strip(py_strip_char(py_strip(py_strip_char(py_strip_char(txt, U'\n'), U'.')), U'\n'));
  } else {  // FDA (spec §5.2): no whitespace strip
    out = py_strip_char(py_strip_char(txt, U'\n'), U'.');
  }
  if (!py_endswith(out, U".")) out += U".";
  if (!t.twice) return to_utf8(out + U" " + Q);
  return to_utf8(U"Information about " + py_strip_char(Q, U':') + U". " + out + U"\n" + out + U" " + Q);
}

std::string squad_prompt(const TaskSpec& t, const json& d) {
  const U32 text = py_strip(u(d, "text"));
  if (!t.twice) return to_utf8(text);
  // spec §5.3: the original question and the uncut paragraph before the first "Question:".
  return to_utf8(u(d, "question") + U" " + py_split_first(u(d, "context"), U"Question:") + U"\n" + text);
}

std::string cloze_prompt(const TaskSpec& t, const json& d) {
  U32 c = py_strip(u(d, "context"));
  if (t.family == Family::TriviaQA) c = trivia_clean(c);
  const U32 q = py_strip(u(d, "question"));
  if (t.family == Family::NQ && !t.twice) {
    // spec §5.6: a single, case-sensitive removal (c[:-0] is "" for an empty question, as in Python).
    if (py_endswith(c, q)) c = py_drop_last(c, int64_t(q.size()));
  } else {
    c = strip_suffix_loop(c, q);
  }
  if (!t.twice) return to_utf8(py_strip_char(py_strip(c), U'.') + U". " + q);
  U32 out = py_strip(py_strip_char(py_strip(c), U'.')) + U".";
  out = out + U"\n" + out + U" " + q;
  if (t.family == Family::TriviaQA) return to_utf8(u(d, "orig_question") + U" " + out);  // not stripped
  return to_utf8(py_strip_char(u(d, "orig_question"), U':') + U" " + out);
}

}  // namespace

const std::vector<TaskSpec>& all_tasks() {
  static const std::vector<TaskSpec> v = build_inventory();
  return v;
}

const TaskSpec& find_task(const std::string& name) {
  for (const auto& t : all_tasks())
    if (t.name == name) return t;
  std::string known;
  for (const auto& t : all_tasks()) known += (known.empty() ? "" : ", ") + t.name;
  fail("unknown task '{}' (known: {}; groups: table1, table2, synth)", name, known);
}

std::vector<std::string> expand_task_list(const std::string& csv) {
  std::vector<std::string> out;
  auto add = [&](const std::string& n) {
    find_task(n);
    if (std::find(out.begin(), out.end(), n) == out.end()) out.push_back(n);
  };
  std::stringstream ss(csv);
  std::string item;
  while (std::getline(ss, item, ',')) {
    item.erase(0, item.find_first_not_of(" \t"));
    item.erase(item.find_last_not_of(" \t") + 1);
    if (item.empty()) continue;
    if (item == "table1") {
      for (std::string b :
           {"based_fda", "based_swde", "based_nq_1024", "based_squad", "based_triviaqa", "based_drop"}) {
        add(b);
        add(b + "_twice");
      }
    } else if (item == "table2") {
      for (std::string b : {"based_fda", "based_swde", "based_nq_512", "based_nq_1024", "based_nq_2048", "based_squad",
                            "based_triviaqa", "based_drop"})
        add(b);
    } else if (item == "synth") {
      for (std::string n : {"synth_fda", "synth_fda_twice", "synth_swde", "synth_swde_twice"}) add(n);
    } else {
      add(item);
    }
  }
  JRT_CHECK(!out.empty(), "no task given (--tasks '{}')", csv);
  return out;
}

void validate_row(const TaskSpec& t, const json& row, const std::string& where) {
  JRT_CHECK(row.is_object(), "{}: a row must be a JSON object, got {}", where, row.type_name());
  for (const auto& f : string_fields(t)) str_field(row, f, where);
  if (t.label_field == "answers") {
    auto a = str_list_field(row, "answers", where);
    JRT_CHECK(!a.empty(), "{}: field 'answers' is an empty list (the metric needs at least one gold answer)", where);
  }
  if (row.contains("alt_answers")) str_list_field(row, "alt_answers", where);
  if (t.family == Family::NQ && row.contains("tok_pos"))
    JRT_CHECK(row["tok_pos"].is_number_integer(), "{}: field 'tok_pos' must be an integer, got {}", where,
              row["tok_pos"].type_name());
  for (const auto& f : string_fields(t)) to_u32(row[f].get<std::string>(), where + ": field '" + f + "'");
  for (const auto& a : row_labels(t, row)) to_u32(a, where + ": field '" + t.label_field + "'");
  if (t.family == Family::SWDE) {
    // SWDE.validation_docs splits on the literal with 2-way unpacking (spec §2.1).
    const std::string text = row["text"].get<std::string>();
    const std::string lit = "Summary of information above...";
    size_t n = 0;
    for (size_t p = text.find(lit); p != std::string::npos; p = text.find(lit, p + lit.size())) ++n;
    JRT_CHECK(n == 1, "{}: field 'text' must contain \"{}\" exactly once (SWDE format), found {}", where, lit, n);
  }
  if (loops_on_question(t))
    JRT_CHECK(!py_strip(u(row, "question")).empty(),
              "{}: field 'question' is empty or whitespace (the reference's template would loop forever on it)", where);
}

std::vector<std::string> row_labels(const TaskSpec& t, const json& row) {
  if (t.label_field == "answers") return row.at("answers").get<std::vector<std::string>>();
  return {row.at(t.label_field).get<std::string>()};
}

std::string drop_reason(const TaskSpec& t, const json& row) {
  for (const auto& key : t.answer_key) {
    const std::string a = first_answer(row, key);
    const size_t n = to_u32(a, key).size();
    if (n <= 1)
      return fmt::format("answer field '{}'{} has {} character{} ({})", key, row.at(key).is_array() ? "[0]" : "", n,
                         n == 1 ? "" : "s", json(a).dump());
  }
  return "";
}

CutResult cut_context(const TaskSpec& t, const json& row, int64_t context_length, const Gpt2Tokenizer& tok) {
  JRT_CHECK(context_length > kAnswerLength, "context length must be > {} (the answer length), got {}", kAnswerLength,
            context_length);
  const int64_t desired = context_length - kAnswerLength;
  CutResult r;
  const U32 context = py_strip(u(row, t.context_key));
  const std::vector<int32_t> doc = tok.encode(to_utf8(context));
  r.doc_tokens = int64_t(doc.size());
  int64_t pos = -1;
  for (const auto& key : t.answer_key) {
    const int64_t m = re_find_ignorecase(context, to_u32(first_answer(row, key)));
    if (m >= 0 && (pos == -1 || pos > m)) pos = m;
  }
  if (pos < 0 && row.contains("alt_answers"))
    for (const auto& a : row["alt_answers"]) {
      const int64_t m = re_find_ignorecase(context, to_u32(a.get<std::string>()));
      if (m >= 0) {
        pos = m;
        break;
      }
    }
  if (t.answer_key.empty()) pos = 0;
  r.answer_pos = pos;
  // context[:answer_pos]; with -1 that is the context minus its last character (spec §10.2).
  const U32 prefix = pos < 0 ? py_drop_last(context, 1) : context.substr(0, size_t(pos));
  const int64_t prefix_tokens = int64_t(tok.encode(to_utf8(prefix)).size());
  int64_t answer_tok = prefix_tokens;
  if (pos == -1 && row.contains("tok_pos") && prefix_tokens > desired) answer_tok = row["tok_pos"].get<int64_t>();
  r.answer_tok = answer_tok;
  const int64_t half = desired / 2;  // desired > 0: floor division
  const int64_t start = std::max<int64_t>(0, answer_tok - half);
  const int64_t rem = desired - (answer_tok - start);
  const int64_t end = std::min<int64_t>(r.doc_tokens, answer_tok + rem);
  // doc_tokens[start:end] with Python slice clamping (end >= 0 here since desired > 0).
  r.start = std::min(start, r.doc_tokens);
  r.end = std::max(r.start, std::min(end, r.doc_tokens));
  std::string bytes;
  for (int64_t i = r.start; i < r.end; ++i) {
    const int32_t id = doc[size_t(i)];
    if (id == tok.eot_id()) continue;  // skip_special_tokens=True
    bytes += tok.decode(std::span<const int32_t>(&id, 1));
  }
  r.text = clean_up_tokenization(utf8_lossy(bytes));
  return r;
}

std::string build_prompt(const TaskSpec& t, const json& d) {
  switch (t.family) {
    case Family::SWDE:
    case Family::FDA:
      return extraction_prompt(t, d);
    case Family::SQuAD:
      return squad_prompt(t, d);
    case Family::TriviaQA:
    case Family::Drop:
    case Family::NQ:
      return cloze_prompt(t, d);
  }
  return "";
}

Prepared prepare_row(const TaskSpec& t, const json& row, int64_t context_length, const Gpt2Tokenizer& tok,
                     const std::string& where) {
  validate_row(t, row, where);
  Prepared p;
  p.labels = row_labels(t, row);
  p.drop_reason = drop_reason(t, row);
  if (!p.drop_reason.empty()) {
    p.dropped = true;
    return p;
  }
  p.cut = cut_context(t, row, context_length, tok);
  json doc_short = row;
  doc_short[t.context_key] = p.cut.text;
  p.prompt = build_prompt(t, doc_short);
  return p;
}

FedTokens feed_tokens(const std::string& prompt, const Gpt2Tokenizer& tok, int64_t jrt_enc_length) {
  FedTokens f;
  const std::vector<int32_t> ids = tok.encode(prompt);
  f.prompt_tokens = int64_t(ids.size());
  f.truncated = std::max<int64_t>(0, f.prompt_tokens - kMaxPromptTokens);
  f.ids.assign(ids.begin() + f.truncated, ids.end());
  if (jrt_enc_length > 0 && int64_t(f.ids.size()) < jrt_enc_length) {
    f.padded = jrt_enc_length - int64_t(f.ids.size());
    f.mask.assign(size_t(f.padded), 0);
    f.mask.insert(f.mask.end(), f.ids.size(), 1);
    f.ids.insert(f.ids.begin(), size_t(f.padded), kPadToken);
  }
  return f;
}

}  // namespace jrt::eval
