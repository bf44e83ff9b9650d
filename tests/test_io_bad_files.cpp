// Tests that every crafted bad file in tests/data/bad/ (made by make_bad_files.py) is refused with a
// jrt::Error that names the file and says precisely what is wrong — never a crash, never a load.
#include <gtest/gtest.h>

#include <cctype>
#include <filesystem>
#include <functional>
#include <set>

#include "common/test_util.h"
#include "io/safetensors.h"
#include "io/weights.h"

using namespace jrt;

namespace {

struct BadCase {
  const char* file;
  const char* fragment;  // must appear in the error message
};

const BadCase kCases[] = {
    // safetensors
    {"empty.safetensors", "file is empty (0 bytes)"},
    {"too_short.safetensors", "too short to be a safetensors file (3 bytes"},
    {"header_past_end.safetensors", "header length 1000 runs past the end of the file (16 bytes)"},
    {"header_absurd.safetensors", "header length 4611686018427387904 is absurd"},
    {"bad_json.safetensors", "safetensors header is not valid JSON"},
    {"header_not_object.safetensors", "header must be a JSON object, got [1,2,3]"},
    {"entry_not_object.safetensors", "tensor 'w': header entry must be an object"},
    {"missing_offsets.safetensors", "tensor 'w': header entry has no 'data_offsets' field"},
    {"unknown_dtype.safetensors", "tensor 'w': unknown dtype 'F7'"},
    {"negative_dim.safetensors", "tensor 'w': field 'shape' has a negative dimension -2"},
    {"size_mismatch.safetensors", "span 20 bytes but shape [2,3] x F32 (4 bytes each) needs 24"},
    {"begin_after_end.safetensors", "tensor 'w': data_offsets begin 8 > end 4"},
    {"offsets_out_of_bounds.safetensors", "data_offsets [0, 4096] reach beyond the data block (24 bytes"},
    {"overlapping.safetensors", "tensors 'a' [0, 16] and 'b' [8, 16] overlap"},
    {"duplicate_names.safetensors", "duplicate key 'w'"},
    {"metadata_not_str.safetensors", "'__metadata__' value of 'step' must be a string"},
    {"numel_overflow.safetensors", "has too many elements (overflows int64)"},
    {"truncated_data.safetensors", "reach beyond the data block (14 bytes"},
    // torch.save zips: code-execution attempts
    {"pickle_os_system.pt", "pickle refers to global 'os.system', which a state dict never uses; refusing to load"},
    {"pickle_builtins_eval.pt", "pickle refers to global 'builtins.eval'"},
    {"pickle_posix_system.pt", "pickle refers to global 'posix.system'"},
    {"pickle_subprocess.pt", "pickle refers to global 'subprocess.check_output'"},
    {"pickle_getattr.pt", "pickle refers to global '__builtin__.getattr'"},
    // malformed pickles
    {"pickle_unknown_opcode.pt", "unknown or unsupported pickle opcode 0xff at offset 12"},
    {"pickle_truncated.pt", "truncated pickle"},
    {"pickle_memo_missing.pt", "memo index 7 was never stored"},
    {"pickle_stack_underflow.pt", "pickle stack underflow"},
    {"pickle_top_not_dict.pt", "the pickled object is a list, not a dict"},
    {"pickle_value_not_tensor.pt", "state dict entry 'name' is a str, not a tensor"},
    // storages and views
    {"missing_storage.pt", "storage entry 'archive/data/1' is missing from the archive"},
    {"short_storage.pt", "storage entry 'archive/data/0' is too short: 32 bytes, but 16 f32 elements need 64"},
    {"view_beyond_storage.pt", "reaches element 13, beyond its storage '0' of 12 elements"},
    {"storage_numel_overflow.pt", "size 4611686018427387904 x 8 overflows"},
    {"view_expand_too_large.pt",
     "tensor view of 1099511627776 elements (size [1048576, 1048576], stride [0, 0]) over a storage of 12 elements is "
     "too large to materialise"},
    // archives
    {"big_endian.pt", "byteorder is 'big'"},
    {"no_data_pkl.pt", "no '<folder>/data.pkl' in the zip archive"},
    {"truncated_zip.pt", "cannot open as a zip archive"},
    // neither format
    {"not_a_checkpoint.bin", "neither a safetensors file nor a PyTorch zip checkpoint"},
    {"legacy_torch.bin", "legacy (pre-1.6, non-zip) torch.save"},
};

std::string message_of(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const Error& e) {
    return e.what();
  }
  return "<no error>";
}

class BadFile : public ::testing::TestWithParam<BadCase> {};

TEST_P(BadFile, RefusedWithAPreciseError) {
  const BadCase& c = GetParam();
  const std::string path = test::data_path(std::string("bad/") + c.file);
  ASSERT_TRUE(std::filesystem::exists(path)) << path << " missing: run tests/data/bad/make_bad_files.py";
  const std::string msg = message_of([&] { load_weights(path); });
  EXPECT_NE(msg.find(c.fragment), std::string::npos) << "expected '" << c.fragment << "' in: " << msg;
  EXPECT_NE(msg.find(c.file), std::string::npos) << "the message must name the file: " << msg;
  if (std::string(c.file).ends_with(".safetensors")) {  // the reader itself, without the dispatcher
    const std::string direct = message_of([&] { SafeTensorsFile f(path); });
    EXPECT_NE(direct.find(c.fragment), std::string::npos) << direct;
  }
}

INSTANTIATE_TEST_SUITE_P(Crafted, BadFile, ::testing::ValuesIn(kCases), [](const auto& info) {
  std::string n = info.param.file;
  for (char& ch : n)
    if (!std::isalnum(static_cast<unsigned char>(ch))) ch = '_';
  return n;
});

TEST(BadFiles, EveryCraftedFileHasAnExpectation) {
  std::set<std::string> expected;
  for (const BadCase& c : kCases) expected.insert(c.file);
  size_t bad = 0;
  for (const auto& e : std::filesystem::directory_iterator(test::data_path("bad"))) {
    const std::string name = e.path().filename().string();
    if (name.ends_with(".py") || name.starts_with("good_")) continue;
    ++bad;
    EXPECT_TRUE(expected.count(name)) << name << " has no expected error in kCases";
  }
  EXPECT_GE(bad, 15u);
  EXPECT_EQ(bad, expected.size());
}

TEST(BadFiles, MissingAndDirectoryPathsAreNamed) {
  const std::string missing = test::data_path("bad/does_not_exist.safetensors");
  std::string msg = message_of([&] { load_weights(missing); });
  EXPECT_NE(msg.find(missing), std::string::npos) << msg;
  EXPECT_NE(msg.find("No such file or directory"), std::string::npos) << msg;
  msg = message_of([&] { load_weights(test::data_path("bad")); });
  EXPECT_NE(msg.find("is a directory"), std::string::npos) << msg;
}

}  // namespace
