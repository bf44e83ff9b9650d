// Tests of io/safetensors: write/read round trips of every dtype (scalars, empty tensors, metadata),
// the on-disk layout and atomic replacement, each header validation path, misaligned data, and the
// golden model.safetensors fixtures against their manifests.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <functional>
#include <nlohmann/json.hpp>
#include <set>

#include "common/test_util.h"
#include "io/safetensors.h"

using namespace jrt;
namespace fs = std::filesystem;

namespace {

std::string tmp(const std::string& name) { return test::temp_dir() + "/" + name; }

// A safetensors file from literal header text; header_len overrides the length field.
std::string craft(const std::string& header, const std::string& data = "", int64_t header_len = -1) {
  std::string out(8, '\0');
  uint64_t n = header_len < 0 ? header.size() : uint64_t(header_len);
  for (int i = 0; i < 8; ++i) out[size_t(i)] = char(uint8_t(n >> (8 * i)));
  return out + header + data;
}

std::string error_of(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const Error& e) {
    return e.what();
  }
  return "<no error>";
}

// Writes `bytes` to a temp file and returns the error SafeTensorsFile raises on it.
std::string read_error(const std::string& name, const std::string& bytes) {
  const std::string path = tmp(name);
  test::write_file(path, bytes);
  std::string msg = error_of([&] { SafeTensorsFile f(path); });
  EXPECT_NE(msg.find(path), std::string::npos) << "message must name the file: " << msg;
  return msg;
}

// A tensor of the given dtype/shape whose bytes are a deterministic pattern (valid for bool).
HostTensor patterned(DType t, Shape s, uint8_t seed) {
  HostTensor h(t, std::move(s));
  auto* b = static_cast<uint8_t*>(h.view().data);
  for (size_t i = 0; i < h.view().nbytes(); ++i)
    b[i] = t == DType::Bool ? uint8_t((i + seed) % 2) : uint8_t(i * 37 + seed);
  return h;
}

bool same_bytes(const Tensor& a, const Tensor& b) {
  return a.dtype == b.dtype && a.shape == b.shape && a.nbytes() == b.nbytes() &&
         (a.nbytes() == 0 || std::memcmp(a.data, b.data, a.nbytes()) == 0);
}

const DType kAllDTypes[] = {DType::F32, DType::F64, DType::BF16, DType::F16, DType::I8,
                            DType::U8,  DType::I16, DType::I32,  DType::I64, DType::Bool};

TEST(SafeTensors, RoundTripEveryDTypeScalarsAndEmpties) {
  std::vector<HostTensor> keep;
  std::vector<NamedTensor> ts;
  uint8_t seed = 1;
  for (DType t : kAllDTypes) {
    const std::string n(dtype_name(t));
    for (auto [suffix, shape] : std::vector<std::pair<std::string, Shape>>{
             {"matrix", {3, 5}}, {"scalar", {}}, {"empty", {0, 4}}, {"empty_tail", {2, 0}}, {"cube", {2, 3, 1}}}) {
      keep.push_back(patterned(t, shape, seed++));
      ts.push_back({n + "." + suffix, keep.back().view()});
    }
  }
  const std::map<std::string, std::string> meta = {{"format", "pt"}, {"note", "round trip ✓"}};
  const std::string path = tmp("roundtrip.safetensors");
  write_safetensors(path, ts, meta);

  SafeTensorsFile f(path);
  EXPECT_EQ(f.metadata(), meta);
  ASSERT_EQ(f.names().size(), ts.size());
  // Names come back in data order; empty tensors share offsets with their neighbours, so compare as sets.
  std::set<std::string> want, got(f.names().begin(), f.names().end());
  for (const auto& t : ts) want.insert(t.name);
  EXPECT_EQ(got, want);
  for (const auto& t : ts) {
    ASSERT_TRUE(f.has(t.name));
    const Tensor& r = f.get(t.name);
    EXPECT_TRUE(same_bytes(r, t.tensor)) << t.name;
    EXPECT_TRUE(r.is_contiguous());
    EXPECT_EQ(reinterpret_cast<uintptr_t>(r.data) % dtype_size(r.dtype), 0u) << t.name;
  }
  EXPECT_EQ(f.get("f32.scalar").shape, Shape{});
  EXPECT_EQ(f.get("f32.scalar").numel(), 1);
  EXPECT_EQ(f.get("i64.empty").numel(), 0);
}

TEST(SafeTensors, LayoutHeaderPaddedDataContiguous) {
  HostTensor a = patterned(DType::BF16, {3}, 7);  // 6 bytes: the next tensor starts unaligned to 8
  HostTensor b = patterned(DType::F32, {2, 2}, 9);
  const std::string path = tmp("layout.safetensors");
  write_safetensors(path, {{"a", a.view()}, {"bb", b.view()}});
  const std::string bytes = test::read_file(path);
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | uint8_t(bytes[size_t(i)]);
  EXPECT_EQ(n % 8, 0u);
  ASSERT_EQ(bytes.size(), 8 + n + 6 + 16);
  const std::string header = bytes.substr(8, n);
  const size_t close = header.find_last_of('}');
  EXPECT_EQ(header.find_first_not_of(' ', close + 1), std::string::npos) << "padding must be spaces";
  auto j = nlohmann::json::parse(header);
  EXPECT_EQ(j["a"]["dtype"], "BF16");
  EXPECT_EQ(j["a"]["data_offsets"], nlohmann::json({0, 6}));
  EXPECT_EQ(j["bb"]["shape"], nlohmann::json({2, 2}));
  EXPECT_EQ(j["bb"]["data_offsets"], nlohmann::json({6, 22}));
  EXPECT_FALSE(j.contains("__metadata__"));
  EXPECT_EQ(std::memcmp(bytes.data() + 8 + n, a.view().data, 6), 0);
  EXPECT_EQ(std::memcmp(bytes.data() + 8 + n + 6, b.view().data, 16), 0);
  // "bb" sits at file offset 8+n+6: 2 mod 4, so the reader must hand out an aligned copy.
  SafeTensorsFile f(path);
  EXPECT_EQ(f.names(), (std::vector<std::string>{"a", "bb"}));
  EXPECT_EQ(reinterpret_cast<uintptr_t>(f.get("bb").data) % 4, 0u);
  EXPECT_TRUE(same_bytes(f.get("bb"), b.view()));
}

TEST(SafeTensors, WritesStridedViewsContiguously) {
  HostTensor h(DType::F32, {2, 3});
  for (int i = 0; i < 6; ++i) h.ptr<float>()[i] = float(i);
  Tensor tr = h.view();
  tr.shape = {3, 2};
  tr.strides = {1, 3};
  const std::string path = tmp("strided.safetensors");
  write_safetensors(path, {{"t", tr}});
  SafeTensorsFile f(path);
  const float want[] = {0, 3, 1, 4, 2, 5};
  ASSERT_EQ(f.get("t").numel(), 6);
  for (int i = 0; i < 6; ++i) EXPECT_EQ(f.get("t").ptr<float>()[i], want[i]);
}

TEST(SafeTensors, AtomicReplaceAndNoTempLeftovers) {
  const std::string dir = tmp("atomic");
  fs::create_directories(dir);
  const std::string path = dir + "/w.safetensors";
  HostTensor a = patterned(DType::F32, {4}, 1), b = patterned(DType::F32, {8}, 2);
  write_safetensors(path, {{"x", a.view()}});
  write_safetensors(path, {{"x", b.view()}});  // replaces
  SafeTensorsFile f(path);
  EXPECT_TRUE(same_bytes(f.get("x"), b.view()));
  std::vector<std::string> files;
  for (const auto& e : fs::directory_iterator(dir)) files.push_back(e.path().filename().string());
  EXPECT_EQ(files, std::vector<std::string>{"w.safetensors"});
}

TEST(SafeTensors, WriteFailuresLeaveNoTempFile) {
  const std::string dir = tmp("failing");
  fs::create_directories(dir + "/occupied.safetensors/inside");  // a non-empty directory: rename must fail
  HostTensor a = patterned(DType::F32, {4}, 1);
  std::string msg = error_of([&] { write_safetensors(dir + "/occupied.safetensors", {{"x", a.view()}}); });
  EXPECT_NE(msg.find("cannot rename"), std::string::npos) << msg;
  for (const auto& e : fs::directory_iterator(dir))
    EXPECT_EQ(e.path().filename().string().find(".tmp."), std::string::npos) << "left behind: " << e.path();

  msg = error_of([&] { write_safetensors(dir + "/no/such/dir/w.safetensors", {{"x", a.view()}}); });
  EXPECT_NE(msg.find("cannot create"), std::string::npos) << msg;
  EXPECT_NE(msg.find("No such file or directory"), std::string::npos) << msg;

  const std::string p = dir + "/bad.safetensors";
  EXPECT_NE(error_of([&] {
              write_safetensors(p, {{"x", a.view()}, {"x", a.view()}});
            }).find("listed twice"),
            std::string::npos);
  EXPECT_NE(error_of([&] { write_safetensors(p, {{"__metadata__", a.view()}}); }).find("reserved"), std::string::npos);
  EXPECT_NE(error_of([&] { write_safetensors(p, {{"", a.view()}}); }).find("empty name"), std::string::npos);
  EXPECT_FALSE(fs::exists(p));
}

TEST(SafeTensors, MappedFileErrorsNameThePath) {
  std::string msg = error_of([] { MappedFile m(tmp("absent.bin")); });
  EXPECT_NE(msg.find(tmp("absent.bin")), std::string::npos) << msg;
  EXPECT_NE(msg.find("No such file or directory"), std::string::npos) << msg;
  msg = error_of([] { MappedFile m(test::temp_dir()); });
  EXPECT_NE(msg.find("not a regular file"), std::string::npos) << msg;
  test::write_file(tmp("zero.bin"), "");
  msg = error_of([] { MappedFile m(tmp("zero.bin")); });
  EXPECT_NE(msg.find("file is empty"), std::string::npos) << msg;
  test::write_file(tmp("five.bin"), "hello");
  MappedFile m(tmp("five.bin"));
  ASSERT_EQ(m.size(), 5u);
  EXPECT_EQ(std::memcmp(m.data(), "hello", 5), 0);
}

TEST(SafeTensors, GetMissingTensorNamesFileAndTensor) {
  HostTensor a = patterned(DType::F32, {4}, 1);
  const std::string path = tmp("get.safetensors");
  write_safetensors(path, {{"x", a.view()}});
  SafeTensorsFile f(path);
  const std::string msg = error_of([&] { f.get("nope"); });
  EXPECT_NE(msg.find(path + ": tensor 'nope' not found"), std::string::npos) << msg;
}

const std::string kF32x6(24, '\x01');

TEST(SafeTensors, HeaderValidation) {
  struct Case {
    std::string header, fragment;
  };
  const std::vector<Case> cases = {
      {R"({"w": {"dtype": "F32", "shape": [2.5], "data_offsets": [0, 24]}})", "non-integer dimension 2.5"},
      {R"({"w": {"dtype": "F32", "shape": ["6"], "data_offsets": [0, 24]}})", "non-integer dimension \"6\""},
      {R"({"w": {"dtype": "F32", "shape": 6, "data_offsets": [0, 24]}})", "field 'shape' must be a list"},
      {R"({"w": {"dtype": "F32", "shape": [18446744073709551615], "data_offsets": [0, 24]}})", "is too large"},
      {R"({"w": {"dtype": 3, "shape": [6], "data_offsets": [0, 24]}})", "field 'dtype' must be a string"},
      {R"({"w": {"shape": [6], "data_offsets": [0, 24]}})", "has no 'dtype' field"},
      {R"({"w": {"dtype": "F32", "data_offsets": [0, 24]}})", "has no 'shape' field"},
      {R"({"w": {"dtype": "F32", "shape": [6], "data_offsets": [0, 24, 48]}})", "must be two integers"},
      {R"({"w": {"dtype": "F32", "shape": [6], "data_offsets": [0, 24.0]}})", "must be two integers"},
      {R"({"w": {"dtype": "F32", "shape": [6], "data_offsets": "0-24"}})", "must be two integers"},
      {R"({"w": {"dtype": "F32", "shape": [6], "data_offsets": [-4, 20]}})", "must be non-negative"},
      {R"({"w": {"dtype": "F32", "shape": [6], "data_offsets": [24, 48]}})", "reach beyond the data block"},
      {R"({"w": {"dtype": "I64", "shape": [1152921504606846976, 2], "data_offsets": [0, 24]}})", "overflows int64"},
      {R"({"w": {"dtype": "I64", "shape": [1152921504606846976], "data_offsets": [0, 24]}})",
       "x 8 bytes overflows int64"},
      {R"({"w": {"dtype": "F32", "dtype": "F64", "shape": [6], "data_offsets": [0, 24]}})", "duplicate key 'dtype'"},
      {R"({"__metadata__": ["a"], "w": {"dtype": "F32", "shape": [6], "data_offsets": [0, 24]}})",
       "'__metadata__' must be an object"},
      {R"({"a": {"dtype": "U8", "shape": [24], "data_offsets": [0, 24]},
           "b": {"dtype": "U8", "shape": [4], "data_offsets": [10, 14]}})",
       "tensors 'a' [0, 24] and 'b' [10, 14] overlap"},
      {R"("just a string")", "must be a JSON object"},
      {R"({"w": {"dtype": "F32", "shape": [6], "data_offsets": [0, 24]}} trailing)", "not valid JSON"},
      {"", "not valid JSON"},
  };
  int i = 0;
  std::vector<Case> all = cases;
  all.push_back({std::string(100000, '[') + std::string(100000, ']'), "nests deeper than 32 levels"});
  all.push_back(
      {R"({"w": {"dtype": "F32", "shape": [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[6]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}})",
       "nests deeper than 32 levels"});
  for (const Case& c : all) {
    const std::string msg = read_error("validation" + std::to_string(i++) + ".safetensors", craft(c.header, kF32x6));
    EXPECT_NE(msg.find(c.fragment), std::string::npos)
        << "header " << c.header.substr(0, 200) << "\nexpected '" << c.fragment << "' in: " << msg;
  }
}

TEST(SafeTensors, AcceptsOddButValidFiles) {
  // No tensors at all; gaps between tensors; empty tensors anywhere; metadata only.
  test::write_file(tmp("none.safetensors"), craft("{}"));
  EXPECT_TRUE(SafeTensorsFile(tmp("none.safetensors")).names().empty());
  test::write_file(tmp("gaps.safetensors"),
                   craft(R"({"__metadata__": {"k": "v"}, "b": {"dtype": "U8", "shape": [4], "data_offsets": [20, 24]},
                             "a": {"dtype": "U8", "shape": [2, 2], "data_offsets": [0, 4]},
                             "e": {"dtype": "F64", "shape": [0], "data_offsets": [2, 2]}})",
                         kF32x6));
  SafeTensorsFile f(tmp("gaps.safetensors"));
  EXPECT_EQ(f.names(), (std::vector<std::string>{"a", "e", "b"}));  // data order
  EXPECT_EQ(f.metadata().at("k"), "v");
  EXPECT_EQ(f.get("e").numel(), 0);
  EXPECT_EQ(f.get("b").ptr<uint8_t>()[3], 1);
}

TEST(SafeTensors, MisalignedDataIsCopiedAligned) {
  // Spaces after the JSON move the data block to a file offset that is odd (or 4 mod 8), so the
  // F64 tensor's bytes are misaligned for its type in the page-aligned mapping.
  const std::string entries[] = {
      R"({"w": {"dtype": "F64", "shape": [2], "data_offsets": [0, 16]}})",
      R"({"w": {"dtype": "F64", "shape": [2], "data_offsets": [0, 16]}, "u": {"dtype": "U8", "shape": [3],
          "data_offsets": [16, 19]}})",
  };
  std::string data(16, '\0');
  const double vals[2] = {3.5, -1.25};
  std::memcpy(data.data(), vals, 16);
  int file = 0;
  for (const std::string& json : entries) {
    for (size_t residue : {1u, 3u, 4u, 5u}) {
      std::string header = json;
      while ((8 + header.size()) % 8 != residue) header += ' ';
      const std::string path = tmp("misaligned" + std::to_string(file++) + ".safetensors");
      test::write_file(path, craft(header, data + "abc"));
      SafeTensorsFile f(path);
      const Tensor& w = f.get("w");
      EXPECT_EQ(reinterpret_cast<uintptr_t>(w.data) % 8, 0u) << residue;
      EXPECT_EQ(w.ptr<double>()[0], 3.5);
      EXPECT_EQ(w.ptr<double>()[1], -1.25);
      if (f.has("u")) {
        EXPECT_EQ(std::string(f.get("u").ptr<char>(), 3), "abc");
      }
    }
  }
}

TEST(SafeTensors, GoldenModelsMatchTheirManifests) {
  for (const char* m : {"attn", "based", "jrt", "mamba"}) {
    const std::string dir = test::data_path(std::string("models/") + m);
    auto manifest = nlohmann::json::parse(test::read_file(dir + "/manifest.json"));
    const auto& want = manifest["files"]["model.safetensors"]["tensors"];
    SafeTensorsFile f(dir + "/model.safetensors");
    EXPECT_EQ(f.names().size(), want.size()) << m;
    for (const auto& [name, info] : want.items()) {
      ASSERT_TRUE(f.has(name)) << m << " " << name;
      EXPECT_EQ(f.get(name).shape, info["shape"].get<Shape>()) << name;
      EXPECT_EQ(f.get(name).dtype, DType::F32) << name;
    }
    EXPECT_EQ(f.metadata().at("format"), "pt");
  }
}

}  // namespace
