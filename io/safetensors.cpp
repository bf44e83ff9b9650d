// io/safetensors.cpp — owns the safetensors format: the mmap wrapper, the header validator (every
// field a hostile file can corrupt is checked before a pointer into the mapping is handed out) and
// the atomic writer.
#include "io/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <limits>
#include <nlohmann/json.hpp>
#include <set>
#include <unordered_set>

namespace jrt {

namespace {

using json = nlohmann::json;

// Headers larger than this are not produced by any real writer; refusing them early bounds the
// memory a hostile file can make the JSON parser allocate.
constexpr uint64_t kMaxHeaderBytes = 100'000'000;
constexpr int kMaxDepth = 32;

std::string errno_text(int e) { return std::strerror(e); }

// Owns a file descriptor; closes it on every exit path.
class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }
  int release() {
    int f = fd_;
    fd_ = -1;
    return f;
  }

 private:
  int fd_;
};

// A JSON value rendered for an error message, cut short so a hostile header cannot flood the terminal.
std::string brief(const json& v) {
  std::string s = v.dump(-1, ' ', true, json::error_handler_t::replace);
  if (s.size() > 80) s = s.substr(0, 77) + "...";
  return s;
}

uint64_t read_u64_le(const uint8_t* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

// Parses the header JSON, rejecting duplicate keys at any depth (nlohmann would silently keep the
// last one, which lets two tensors claim one name).
json parse_header(const std::string& path, const char* begin, const char* end) {
  std::vector<std::unordered_set<std::string>> open_objects;
  std::string duplicate;
  auto callback = [&](int depth, json::parse_event_t ev, json& parsed) {
    switch (ev) {
      case json::parse_event_t::object_start:
      case json::parse_event_t::array_start:
        // A real header nests 3 levels; deep nesting would only make later recursive walks
        // (dump, destruction) expensive.
        JRT_CHECK(depth < kMaxDepth, "{}: safetensors header nests deeper than {} levels", path, kMaxDepth);
        if (ev == json::parse_event_t::object_start) open_objects.emplace_back();
        break;
      case json::parse_event_t::object_end:
        if (!open_objects.empty()) open_objects.pop_back();
        break;
      case json::parse_event_t::key:
        if (!open_objects.empty() && parsed.is_string()) {
          const auto& k = parsed.get_ref<const std::string&>();
          if (!open_objects.back().insert(k).second && duplicate.empty()) duplicate = k;
        }
        break;
      default:
        break;
    }
    return true;
  };
  json header;
  try {
    header = json::parse(begin, end, callback, /*allow_exceptions=*/true, /*ignore_comments=*/false);
  } catch (const json::exception& e) {
    fail("{}: safetensors header is not valid JSON: {}", path, e.what());
  }
  JRT_CHECK(duplicate.empty(), "{}: safetensors header has duplicate key '{}'", path, duplicate);
  return header;
}

struct Entry {
  std::string name;
  DType dtype;
  Shape shape;
  uint64_t begin, end;
};

// Validates one header entry and returns it; every message names the file, the tensor and the field.
Entry parse_entry(const std::string& path, const std::string& name, const json& v, uint64_t data_size) {
  JRT_CHECK(v.is_object(), "{}: tensor '{}': header entry must be an object, got {}", path, name, brief(v));
  for (const char* field : {"dtype", "shape", "data_offsets"})
    JRT_CHECK(v.contains(field), "{}: tensor '{}': header entry has no '{}' field", path, name, field);

  Entry e;
  e.name = name;
  const json& dt = v["dtype"];
  JRT_CHECK(dt.is_string(), "{}: tensor '{}': field 'dtype' must be a string, got {}", path, name, brief(dt));
  JRT_CHECK(parse_safetensors_dtype(dt.get_ref<const std::string&>(), &e.dtype),
            "{}: tensor '{}': unknown dtype '{}' (supported: F64 F32 BF16 F16 I64 I32 I16 I8 U8 BOOL)", path, name,
            dt.get_ref<const std::string&>());

  const json& sh = v["shape"];
  JRT_CHECK(sh.is_array(), "{}: tensor '{}': field 'shape' must be a list of integers, got {}", path, name, brief(sh));
  int64_t numel = 1;
  for (const json& d : sh) {
    JRT_CHECK(d.is_number_integer(), "{}: tensor '{}': field 'shape' has a non-integer dimension {}", path, name,
              brief(d));
    JRT_CHECK(d.is_number_unsigned(), "{}: tensor '{}': field 'shape' has a negative dimension {}", path, name,
              brief(d));
    const uint64_t u = d.get<uint64_t>();
    JRT_CHECK(u <= uint64_t(std::numeric_limits<int64_t>::max()),
              "{}: tensor '{}': field 'shape' dimension {} is too large", path, name, u);
    e.shape.push_back(int64_t(u));
    JRT_CHECK(!__builtin_mul_overflow(numel, int64_t(u), &numel),
              "{}: tensor '{}': shape {} has too many elements (overflows int64)", path, name, brief(sh));
  }
  int64_t nbytes = 0;
  JRT_CHECK(!__builtin_mul_overflow(numel, int64_t(dtype_size(e.dtype)), &nbytes),
            "{}: tensor '{}': shape {} x {} bytes overflows int64", path, name, brief(sh), dtype_size(e.dtype));

  const json& off = v["data_offsets"];
  JRT_CHECK(off.is_array() && off.size() == 2 && off[0].is_number_integer() && off[1].is_number_integer(),
            "{}: tensor '{}': field 'data_offsets' must be two integers [begin, end], got {}", path, name, brief(off));
  JRT_CHECK(off[0].is_number_unsigned() && off[1].is_number_unsigned(),
            "{}: tensor '{}': field 'data_offsets' must be non-negative, got {}", path, name, brief(off));
  e.begin = off[0].get<uint64_t>();
  e.end = off[1].get<uint64_t>();
  JRT_CHECK(e.begin <= e.end, "{}: tensor '{}': data_offsets begin {} > end {}", path, name, e.begin, e.end);
  JRT_CHECK(e.end - e.begin == uint64_t(nbytes),
            "{}: tensor '{}': data_offsets [{}, {}] span {} bytes but shape {} x {} ({} bytes each) needs {}", path,
            name, e.begin, e.end, e.end - e.begin, brief(sh), dtype_safetensors_name(e.dtype), dtype_size(e.dtype),
            nbytes);
  JRT_CHECK(e.end <= data_size,
            "{}: tensor '{}': data_offsets [{}, {}] reach beyond the data block ({} bytes; file truncated?)", path,
            name, e.begin, e.end, data_size);
  return e;
}

void write_all(int fd, const void* data, size_t n, const std::string& what) {
  const char* p = static_cast<const char*>(data);
  while (n > 0) {
    const size_t chunk = std::min<size_t>(n, size_t(1) << 30);
    ssize_t w = ::write(fd, p, chunk);
    if (w < 0 && errno == EINTR) continue;
    JRT_CHECK(w > 0, "{}: write failed: {}", what, errno_text(w < 0 ? errno : EIO));
    p += w;
    n -= size_t(w);
  }
}

}  // namespace

// ---- MappedFile -------------------------------------------------------------------------------

MappedFile::MappedFile(const std::string& path) : path_(path) {
  Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  JRT_CHECK(fd.get() >= 0, "{}: cannot open: {}", path, errno_text(errno));
  struct stat st {};
  JRT_CHECK(::fstat(fd.get(), &st) == 0, "{}: cannot stat: {}", path, errno_text(errno));
  JRT_CHECK(S_ISREG(st.st_mode), "{}: not a regular file", path);
  JRT_CHECK(st.st_size > 0, "{}: file is empty (0 bytes)", path);
  size_ = size_t(st.st_size);
  void* p = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd.get(), 0);
  JRT_CHECK(p != MAP_FAILED, "{}: cannot mmap {} bytes: {}", path, size_, errno_text(errno));
  data_ = static_cast<const uint8_t*>(p);
}

MappedFile::~MappedFile() {
  if (data_) ::munmap(const_cast<uint8_t*>(data_), size_);
}

// ---- SafeTensorsFile --------------------------------------------------------------------------

SafeTensorsFile::SafeTensorsFile(const std::string& path) : map_(std::make_shared<MappedFile>(path)) {
  const uint8_t* base = map_->data();
  const uint64_t size = map_->size();
  JRT_CHECK(size >= 8, "{}: too short to be a safetensors file ({} bytes; the header length alone takes 8)", path,
            size);
  const uint64_t header_len = read_u64_le(base);
  JRT_CHECK(header_len <= kMaxHeaderBytes,
            "{}: header length {} is absurd (more than {} bytes); not a safetensors file", path, header_len,
            kMaxHeaderBytes);
  JRT_CHECK(header_len <= size - 8, "{}: header length {} runs past the end of the file ({} bytes)", path, header_len,
            size);
  const char* hbegin = reinterpret_cast<const char*>(base + 8);
  const json header = parse_header(path, hbegin, hbegin + header_len);
  JRT_CHECK(header.is_object(), "{}: safetensors header must be a JSON object, got {}", path, brief(header));

  const uint64_t data_size = size - 8 - header_len;
  const uint8_t* data = base + 8 + header_len;
  std::vector<Entry> entries;
  for (const auto& [key, value] : header.items()) {
    if (key == "__metadata__") {
      JRT_CHECK(value.is_object(), "{}: '__metadata__' must be an object of strings, got {}", path, brief(value));
      for (const auto& [mk, mv] : value.items()) {
        JRT_CHECK(mv.is_string(), "{}: '__metadata__' value of '{}' must be a string, got {}", path, mk, brief(mv));
        metadata_[mk] = mv.get<std::string>();
      }
      continue;
    }
    entries.push_back(parse_entry(path, key, value, data_size));
  }

  std::sort(entries.begin(), entries.end(), [](const Entry& a, const Entry& b) {
    return std::tie(a.begin, a.end, a.name) < std::tie(b.begin, b.end, b.name);
  });
  // Ranges sorted by begin overlap iff one starts before the furthest end seen so far. Empty
  // tensors occupy no bytes and cannot overlap anything.
  const Entry* furthest = nullptr;
  for (const Entry& e : entries) {
    if (e.begin == e.end) continue;
    if (furthest)
      JRT_CHECK(e.begin >= furthest->end, "{}: tensors '{}' [{}, {}] and '{}' [{}, {}] overlap in the data block", path,
                furthest->name, furthest->begin, furthest->end, e.name, e.begin, e.end);
    if (!furthest || e.end > furthest->end) furthest = &e;
  }

  for (Entry& e : entries) {
    void* p = const_cast<uint8_t*>(data + e.begin);
    Tensor t(p, e.dtype, e.shape);
    // Offsets are only guaranteed to be byte-aligned; a misaligned typed pointer is undefined
    // behaviour to dereference, so such tensors get an aligned copy.
    if (reinterpret_cast<uintptr_t>(p) % dtype_size(e.dtype) != 0) {
      HostTensor copy(e.dtype, e.shape);
      if (e.end > e.begin) std::memcpy(copy.view().data, p, e.end - e.begin);
      t = copy.view();
      owned_.push_back(std::move(copy));
    }
    names_.push_back(e.name);
    tensors_.emplace(e.name, std::move(t));
  }
}

const Tensor& SafeTensorsFile::get(const std::string& name) const {
  auto it = tensors_.find(name);
  JRT_CHECK(it != tensors_.end(), "{}: tensor '{}' not found", path(), name);
  return it->second;
}

// ---- writer -----------------------------------------------------------------------------------

void write_safetensors(const std::string& path, const std::vector<NamedTensor>& tensors,
                       const std::map<std::string, std::string>& metadata) {
  // Validate and lay out everything before touching the file system.
  std::set<std::string> seen;
  std::vector<HostTensor> gathered(tensors.size());  // contiguous copies of strided inputs
  std::vector<const Tensor*> src(tensors.size());
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) {
    auto& m = header["__metadata__"] = nlohmann::ordered_json::object();
    for (const auto& [k, v] : metadata) m[k] = v;
  }
  uint64_t offset = 0;
  for (size_t i = 0; i < tensors.size(); ++i) {
    const auto& [name, t] = tensors[i];
    JRT_CHECK(!name.empty(), "{}: cannot write a tensor with an empty name", path);
    JRT_CHECK(name != "__metadata__", "{}: '__metadata__' is reserved and cannot name a tensor", path);
    JRT_CHECK(seen.insert(name).second, "{}: tensor '{}' is listed twice", path, name);
    JRT_CHECK(t.device == Device::CPU, "{}: tensor '{}' is not on the CPU", path, name);
    JRT_CHECK(t.shape.size() == t.strides.size(), "{}: tensor '{}' has {} dims but {} strides", path, name,
              t.shape.size(), t.strides.size());
    for (int64_t d : t.shape)
      JRT_CHECK(d >= 0, "{}: tensor '{}' has negative shape {}", path, name, shape_str(t.shape));
    JRT_CHECK(t.numel() == 0 || t.data != nullptr, "{}: tensor '{}' has no data", path, name);
    src[i] = &t;
    if (!t.is_contiguous()) {
      gathered[i] = HostTensor::copy_of(t);
      src[i] = &gathered[i].view();
    }
    const uint64_t nbytes = src[i]->nbytes();
    header[name] = {{"dtype", std::string(dtype_safetensors_name(t.dtype))},
                    {"shape", t.shape},
                    {"data_offsets", {offset, offset + nbytes}}};
    offset += nbytes;
  }
  std::string text;
  try {
    text = header.dump();
  } catch (const nlohmann::json::exception& e) {  // e.g. a name that is not valid UTF-8
    fail("{}: cannot encode the safetensors header: {}", path, e.what());
  }
  // Padding the header to a multiple of 8 keeps the data block (and so every 8-byte-or-smaller
  // tensor laid out contiguously from it) aligned for readers that mmap the file.
  text.append((8 - text.size() % 8) % 8, ' ');
  uint8_t len_le[8];
  for (int i = 0; i < 8; ++i) len_le[i] = uint8_t(uint64_t(text.size()) >> (8 * i));

  const std::string tmp = path + ".tmp." + std::to_string(::getpid());
  Fd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
  JRT_CHECK(fd.get() >= 0, "{}: cannot create: {}", tmp, errno_text(errno));
  try {
    write_all(fd.get(), len_le, 8, tmp);
    write_all(fd.get(), text.data(), text.size(), tmp);
    for (const Tensor* t : src)
      if (t->nbytes() > 0) write_all(fd.get(), t->data, t->nbytes(), tmp);
    JRT_CHECK(::fsync(fd.get()) == 0, "{}: fsync failed: {}", tmp, errno_text(errno));
    JRT_CHECK(::close(fd.release()) == 0, "{}: close failed: {}", tmp, errno_text(errno));
    std::error_code ec;
    std::filesystem::rename(tmp, path, ec);
    JRT_CHECK(!ec, "{}: cannot rename {} over it: {}", path, tmp, ec.message());
  } catch (...) {
    std::error_code ignored;
    std::filesystem::remove(tmp, ignored);
    throw;
  }
}

}  // namespace jrt
