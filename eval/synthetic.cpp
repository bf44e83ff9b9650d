// eval/synthetic.cpp — the synthetic FDA / SWDE-style generator (see synthetic.h, docs/eval.md).
// All word lists are invented for this generator.
#include "eval/synthetic.h"

#include <filesystem>
#include <fstream>
#include <initializer_list>

#include "core/error.h"
#include "eval/pystr.h"

namespace jrt::eval {
namespace {

using json = nlohmann::json;
using Words = std::vector<std::string>;

// splitmix64: fixed output on every platform (std distributions are implementation-defined).
struct Rng {
  uint64_t s;
  uint64_t next() {
    uint64_t z = (s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  int64_t below(int64_t n) { return int64_t(next() % uint64_t(n)); }
  int64_t range(int64_t lo, int64_t hi) { return lo + below(hi - lo + 1); }  // inclusive
  const std::string& pick(const Words& w) { return w[size_t(below(int64_t(w.size())))]; }
  template <typename T>
  void shuffle(std::vector<T>& v) {
    for (size_t i = v.size(); i > 1; --i) std::swap(v[i - 1], v[size_t(below(int64_t(i)))]);
  }
};

const Words kFirst = {"Alana",   "Bertram",  "Celeste", "Dorian",  "Elena",   "Farid",    "Greta",   "Hollis",
                      "Ingrid",  "Jasper",   "Kiran",   "Lucia",   "Mateo",   "Nadia",    "Orrin",   "Priya",
                      "Quentin", "Rosalind", "Soren",   "Tamsin",  "Ulrich",  "Vera",     "Wendell", "Xiomara",
                      "Yusuf",   "Zelda",    "Anselm",  "Beatrix", "Cosimo",  "Delphine", "Emeric",  "Fiona",
                      "Gideon",  "Hester",   "Ivo",     "Juniper", "Leopold", "Marisol",  "Nikolai", "Odette"};
const Words kLast = {"Whitcombe", "Aldridge",  "Brannigan", "Castellano", "Drummond",  "Everly",    "Fairbanks",
                     "Galloway",  "Hargrove",  "Iverson",   "Jablonski",  "Kowalczyk", "Lindqvist", "Marchetti",
                     "Nakamura",  "Okonkwo",   "Pemberton", "Quigley",    "Rasmussen", "Sandoval",  "Thackeray",
                     "Underhill", "Valdivia",  "Wexford",   "Yardley",    "Zimmerman", "Abernathy", "Blackwood",
                     "Corcoran",  "Delacroix", "Ellsworth", "Fennimore",  "Grimaldi",  "Holloway",  "Ingersoll",
                     "Kittredge", "Lockhart",  "Montrose",  "Northcott",  "Ostrander"};
const Words kStem = {"Orvanta", "Medixa", "Caldera", "Novaline", "Brightwell", "Sterimed", "Vantis",
                     "Helion",  "Quorra", "Lumina",  "Pellucid", "Arcturus",   "Meridian", "Solace",
                     "Tessara", "Vireo",  "Kestrel", "Halcyon",  "Corvida",    "Zenithal"};
const Words kCoSuffix = {"Medical Systems Inc.", "Surgical LLC",    "Diagnostics Corp.",
                         "Healthcare Ltd.",      "Biomedical Inc.", "Devices Co."};
const Words kDevice = {"Infusion Catheter", "Bone Screw System",         "Pulse Oximeter",
                       "Wound Dressing",    "Surgical Stapler",          "Hearing Aid",
                       "Glucose Monitor",   "Flexible Endoscope",        "Spinal Fixation System",
                       "Dental Implant",    "Blood Pressure Cuff",       "Nebulizer",
                       "Suture Anchor",     "Electrosurgical Generator", "Intraocular Lens",
                       "Compression Sleeve"};
const Words kBrandA = {"Zel", "Vor", "Quin", "Mar", "Tel", "Bry", "Cal",
                       "Dex", "Ori", "Pax",  "Syn", "Ulm", "Nex", "Fal"};
const Words kBrandB = {"cor", "tix", "ora", "vane", "lith", "mera", "dyn", "sync", "ova", "trel", "quin", "zar"};
const Words kMaterial = {"titanium alloy",
                         "medical grade silicone",
                         "polyether ether ketone",
                         "stainless steel 316L",
                         "thermoplastic polyurethane",
                         "nitinol wire",
                         "polypropylene mesh",
                         "cobalt chromium",
                         "hydrocolloid foam",
                         "borosilicate glass"};
const Words kSterile = {"ethylene oxide", "gamma irradiation",        "steam autoclave",
                        "electron beam",  "hydrogen peroxide plasma", "supplied non-sterile"};
const Words kPanel = {"General Hospital", "Orthopedic", "Cardiovascular", "Dental",    "Ear, Nose, and Throat",
                      "Gastroenterology", "Neurology",  "Ophthalmic",     "Radiology", "General and Plastic Surgery"};
const Words kPurpose = {"New device",
                        "Modification of a cleared device",
                        "Addition of a new size range",
                        "Change in sterilization method",
                        "Labeling update",
                        "Line extension"};
const Words kCity = {"Springfield", "Fairview", "Riverton", "Lakewood",   "Ashford",  "Brookhaven", "Cedar Falls",
                     "Dunmore",     "Eastport", "Glenwood", "Harborview", "Ironwood", "Kingsbury",  "Maplewood"};
const Words kState = {"OH", "MN", "CA", "TX", "MA", "NC", "WA", "CO", "PA", "GA", "WI", "AZ"};
const Words kMonth = {"January", "February", "March",     "April",   "May",      "June",
                      "July",    "August",   "September", "October", "November", "December"};
const Words kStandard = {"ISO 10993-5", "ISO 10993-10", "IEC 60601-1", "IEC 62366-1",
                         "ASTM F1717",  "ISO 11135",    "ISO 14971",   "ASTM D4169"};
const Words kProperty = {"biocompatibility",    "electrical safety", "mechanical strength", "shelf-life stability",
                         "sterility assurance", "usability",         "fatigue resistance",  "package integrity"};
const Words kAdj = {"quiet",  "bright",  "distant",  "hollow", "silver",  "restless", "gentle", "crooked",
                    "frozen", "golden",  "hidden",   "broken", "patient", "careful",  "narrow", "ancient",
                    "steady", "crimson", "familiar", "tender", "uneasy",  "brittle",  "open",   "lasting"};
const Words kNoun = {"river",    "window",  "harbor",  "letter", "garden",  "engine",  "valley",  "promise",
                     "lantern",  "station", "orchard", "bridge", "signal",  "cabinet", "meadow",  "archive",
                     "corridor", "village", "canvas",  "record", "journey", "thread",  "compass", "tower"};
const Words kVerbPast = {"followed", "carried",  "watched", "measured", "repaired", "described",
                         "crossed",  "gathered", "tested",  "recorded", "explored", "returned"};
const Words kGenre = {"Drama",   "Comedy",    "Thriller", "Science Fiction", "Documentary", "Horror",
                      "Romance", "Animation", "Western",  "Musical",         "Crime",       "Adventure"};
const Words kMpaa = {"PG", "PG-13", "NC-17", "TV-MA", "TV-14", "TV-PG"};
const Words kCountry = {"Canada", "France",  "Japan", "Brazil", "Norway",    "Italy",
                        "Mexico", "Ireland", "Spain", "India",  "Australia", "South Korea"};
const Words kLanguage = {"English", "French",  "Japanese", "Portuguese", "Norwegian",
                         "Italian", "Spanish", "Hindi",    "Korean",     "German"};
const Words kSite = {"FilmVault", "ReelIndex", "CineLedger", "ScreenAtlas", "MovieHarbor"};

std::string cap(std::string s) {
  if (!s.empty() && s[0] >= 'a' && s[0] <= 'z') s[0] = char(s[0] - 'a' + 'A');
  return s;
}
// Joins pieces. A braced list evaluates its elements left to right, so the RNG draws inside happen in a
// fixed order (the operands of a chain of operator+ are unsequenced: compilers differ).
std::string cat(std::initializer_list<std::string> parts) {
  std::string s;
  for (const auto& p : parts) s += p;
  return s;
}
std::string person(Rng& r) { return cat({r.pick(kFirst), " ", r.pick(kLast)}); }
std::string digits(Rng& r, int n) {
  std::string s;
  for (int i = 0; i < n; ++i) s += char('0' + r.below(10));
  return s;
}
std::string letters(Rng& r, int n) {
  std::string s;
  for (int i = 0; i < n; ++i) s += char('A' + r.below(26));
  return s;
}
std::string date(Rng& r, int64_t y0, int64_t y1) {
  return cat({r.pick(kMonth), " ", std::to_string(r.range(1, 28)), ", ", std::to_string(r.range(y0, y1))});
}

// A sentence of technical (FDA) or narrative (SWDE review) filler.
std::string fda_sentence(Rng& r, const std::string& device) {
  switch (r.below(5)) {
    case 0:
      return cat({"The device was evaluated for ", r.pick(kProperty), " in accordance with ", r.pick(kStandard), "."});
    case 1:
      return cat({"Testing demonstrated that the ", device, " performs as intended after ",
                  std::to_string(r.range(2, 60)), " cycles of simulated use."});
    case 2:
      return cat({"The ", r.pick(kAdj), " housing and the ", r.pick(kNoun), " interface were ", r.pick(kVerbPast),
                  " by an independent laboratory."});
    case 3:
      return cat({"Results for ", r.pick(kProperty), " were within the acceptance criteria established in ",
                  r.pick(kStandard), "."});
    default:
      return cat({"No new questions of safety or effectiveness were raised by the ", r.pick(kAdj), " design changes."});
  }
}
std::string review_sentence(Rng& r) {
  switch (r.below(4)) {
    case 0:
      return cat({person(r), " gives the ", r.pick(kAdj), " performance of the year as the keeper of the ",
                  r.pick(kNoun), "."});
    case 1:
      return cat({"The story ", r.pick(kVerbPast), " the ", r.pick(kAdj), " ", r.pick(kNoun), " across the ",
                  r.pick(kAdj), " ", r.pick(kNoun), "."});
    case 2:
      return cat({"Critics ", r.pick(kVerbPast), " the ", r.pick(kAdj), " ", r.pick(kNoun), " scene near the end."});
    default:
      return cat({"One viewer wrote that the ", r.pick(kNoun), " felt ", r.pick(kAdj), " and ", r.pick(kAdj), "."});
  }
}

// Number of case-insensitive occurrences of needle in hay (the cutter's matching rule).
int count_ci(const std::string& hay, const std::string& needle) {
  const U32 h = to_u32(hay), n = to_u32(needle);
  int c = 0;
  for (size_t from = 0; from <= h.size();) {
    int64_t at = re_find_ignorecase(std::u32string_view(h).substr(from), n);
    if (at < 0) break;
    ++c;
    from += size_t(at) + 1;
  }
  return c;
}

struct Attr {
  std::string key, value;
};

json fda_row(Rng& r, int64_t i) {
  const std::string company = cat({r.pick(kStem), " ", r.pick(kCoSuffix)});
  const std::string device_kind = r.pick(kDevice);
  const std::string device = cat({r.pick(kBrandA), r.pick(kBrandB), " ", device_kind});
  std::vector<Attr> attrs = {
      {"applicant", company},
      {"contact person", person(r)},
      {"date prepared", date(r, 2003, 2023)},
      {"trade name", device},
      {"common name", device_kind},
      {"classification panel", r.pick(kPanel)},
      {"regulation number", cat({"21 CFR ", std::to_string(r.range(862, 892)), ".", digits(r, 4)})},
      {"product code", letters(r, 3)},
      {"predicate device", cat({"K", digits(r, 6)})},
      {"sterilization method", r.pick(kSterile)},
      {"shelf life", std::to_string(r.range(6, 60)) + " months"},
      {"material", r.pick(kMaterial)},
      {"purpose for submission", r.pick(kPurpose)},
      {"establishment registration", digits(r, 7)},
  };
  r.shuffle(attrs);
  const int64_t keep = r.range(8, int64_t(attrs.size()));
  attrs.resize(size_t(keep));
  const int64_t sentences = r.range(12, 90);
  std::string text = cat({"510(k) SUMMARY\n", company, "\n", std::to_string(r.range(10, 9999)), " ", r.pick(kNoun),
                          " Road, ", r.pick(kCity), ", ", r.pick(kState), " ", digits(r, 5), "\n\n"});
  // Attribute lines interleaved with paragraphs of filler.
  int64_t left = sentences;
  for (size_t a = 0; a < attrs.size(); ++a) {
    text += cat({cap(attrs[a].key), ": ", attrs[a].value, "\n"});
    if (r.below(3) == 0 || a + 1 == attrs.size()) {
      const int64_t n = a + 1 == attrs.size() ? left : std::min(left, r.range(1, 8));
      for (int64_t s = 0; s < n; ++s) {
        if (s) text += ' ';
        text += fda_sentence(r, device);
      }
      if (n > 0) text += "\n\n";
      left -= n;
    }
  }
  // Ask about an attribute whose value occurs exactly once, so the answer is unambiguous.
  std::vector<size_t> ok;
  for (size_t a = 0; a < attrs.size(); ++a)
    if (count_ci(text, attrs[a].value) == 1) ok.push_back(a);
  JRT_CHECK(!ok.empty(), "synthetic generator: no unique attribute in row {}", i);
  const Attr& q = attrs[ok[size_t(r.below(int64_t(ok.size())))]];
  // Like some FDA rows, end with the question key (the template strips it again).
  if (r.below(2) == 0) text += cat({q.key, ":"});
  char id[32];
  std::snprintf(id, sizeof(id), "%04lld", (long long)i);
  return json{{"doc_id", cat({"synth-fda-", id})},
              {"file_name", cat({"synth_fda/", id, ".txt"})},
              {"key", q.key},
              {"value", q.value},
              {"text", text}};
}

json swde_row(Rng& r, int64_t i) {
  std::string title;
  switch (r.below(3)) {
    case 0:
      title = cat({"The ", cap(r.pick(kAdj)), " ", cap(r.pick(kNoun))});
      break;
    case 1:
      title = cat({cap(r.pick(kNoun)), " of ", r.pick(kCity)});
      break;
    default:
      title = cat({cap(r.pick(kAdj)), " ", cap(r.pick(kNoun)), "s"});
      break;
  }
  std::string director = person(r), writer = person(r), composer = person(r);
  while (writer == director) writer = person(r);
  while (composer == director || composer == writer) composer = person(r);
  const std::string year = std::to_string(r.range(1950, 2023));
  const std::string site = r.pick(kSite);
  std::vector<Attr> attrs = {{"title", title},
                             {"director", director},
                             {"writer", writer},
                             {"composer", composer},
                             {"genre", r.pick(kGenre)},
                             {"mpaa rating", r.pick(kMpaa)},
                             {"runtime", std::to_string(r.range(78, 181)) + " minutes"},
                             {"studio", cat({r.pick(kStem), r.below(2) ? " Pictures" : " Films"})},
                             {"year", year},
                             {"country", r.pick(kCountry)},
                             {"language", r.pick(kLanguage)}};
  auto val = [&](const std::string& k) {
    for (auto& a : attrs)
      if (a.key == k) return a.value;
    return std::string();
  };
  std::string text = cat({title, " (", year, ") - ", site, "\n"});
  text += "Home | Movies | Showtimes | Reviews | Trailers | Sign in\n";
  text += cat({title, "\n"});
  text += cat({"MPAA rating: ", val("mpaa rating"), " | ", val("runtime"), " | ", val("genre"), "\n"});
  std::vector<std::string> credits = {cat({"Directed by ", director}),
                                      cat({"Written by ", writer}),
                                      cat({"Music by ", composer}),
                                      cat({"Production company: ", val("studio")}),
                                      cat({"Country of origin: ", val("country")}),
                                      cat({"Original language: ", val("language")})};
  r.shuffle(credits);
  const int64_t reviews = r.range(10, 70);
  int64_t left = reviews;
  for (size_t c = 0; c < credits.size(); ++c) {
    text += cat({credits[c], "\n"});
    if (r.below(2) == 0) {
      const int64_t n = std::min(left, r.range(1, 6));
      for (int64_t s = 0; s < n; ++s) {
        if (s) text += ' ';
        text += review_sentence(r);
      }
      if (n > 0) text += "\n";
      left -= n;
    }
  }
  text += "User reviews\n";
  for (int64_t s = 0; s < left; ++s) {
    if (s) text += ' ';
    text += review_sentence(r);
  }
  text += cat({"\nSimilar titles: The ", cap(r.pick(kAdj)), " ", cap(r.pick(kNoun)), ", ", cap(r.pick(kNoun)), " of ",
               r.pick(kCity), "\n"});
  text += cat({"Copyright ", site, ". All rights reserved.\n"});
  // Ask about an attribute that the page text states exactly once.
  std::vector<size_t> ok;
  for (size_t a = 0; a < attrs.size(); ++a)
    if (count_ci(text, attrs[a].value) == 1) ok.push_back(a);
  JRT_CHECK(!ok.empty(), "synthetic generator: no unique attribute in row {}", i);
  const Attr q = attrs[ok[size_t(r.below(int64_t(ok.size())))]];
  // The SWDE v1 tail: the summary literal, a few other attributes, then the asked key.
  text += "Summary of information above...\n";
  std::vector<Attr> others;
  for (const auto& a : attrs)
    if (a.key != q.key) others.push_back(a);
  r.shuffle(others);
  const int64_t shown = r.range(2, 4);
  for (int64_t k = 0; k < shown; ++k) text += cat({others[size_t(k)].key, ": ", others[size_t(k)].value, "\n"});
  text += cat({q.key, ":"});
  char id[32];
  std::snprintf(id, sizeof(id), "%04lld", (long long)i);
  return json{{"doc_id", cat({"synth-swde-", id})},
              {"file_name", cat({"synth_swde/", id, ".htm"})},
              {"key", q.key},
              {"value", q.value},
              {"text", text}};
}

}  // namespace

std::vector<json> synth_rows(const std::string& dataset, uint64_t seed, int64_t rows) {
  JRT_CHECK(dataset == "synth_fda" || dataset == "synth_swde", "unknown synthetic dataset '{}' (synth_fda, synth_swde)",
            dataset);
  JRT_CHECK(rows >= 0, "synthetic rows must be >= 0, got {}", rows);
  const uint64_t salt = dataset == "synth_fda" ? 0xF0DAull : 0x5DDEull;
  std::vector<json> out;
  out.reserve(size_t(rows));
  for (int64_t i = 0; i < rows; ++i) {
    // Each row has its own stream: row i is the same whatever `rows` is.
    Rng mix{seed * 0x100000001B3ull ^ salt};
    Rng r{mix.next() ^ (uint64_t(i) * 0xD1B54A32D192ED03ull)};
    out.push_back(dataset == "synth_fda" ? fda_row(r, i) : swde_row(r, i));
  }
  return out;
}

std::vector<std::string> write_synth(const std::string& dir, uint64_t seed, int64_t rows) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  JRT_CHECK(!ec, "cannot create directory '{}': {}", dir, ec.message());
  std::vector<std::string> paths;
  for (std::string ds : {"synth_fda", "synth_swde"}) {
    const std::string path = (std::filesystem::path(dir) / (ds + ".jsonl")).string();
    std::ofstream f(path, std::ios::binary);
    JRT_CHECK(f.good(), "cannot write '{}'", path);
    for (const auto& row : synth_rows(ds, seed, rows)) f << row.dump() << "\n";
    f.close();
    JRT_CHECK(f.good(), "cannot write '{}'", path);
    paths.push_back(path);
  }
  return paths;
}

}  // namespace jrt::eval
