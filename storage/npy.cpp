#include "storage/npy.h"

#include "storage/output_file.h"

#include <fmt/format.h>

#include <cstring>
#include <fstream>
#include <iterator>
#include <stdexcept>

namespace moe {

void write_npy_f32(const std::filesystem::path& path, std::span<const float> data, const std::vector<int64_t>& shape,
                   std::span<const std::filesystem::path> inputs) {
  std::string dims;
  for (int64_t d : shape) dims += fmt::format("{}, ", d);
  if (shape.size() > 1) dims.resize(dims.size() - 2);  // "(3, 4)" but "(3,)"
  std::string header = fmt::format("{{'descr': '<f4', 'fortran_order': False, 'shape': ({}), }}", dims);
  // Magic + version + u16 length + header, padded with spaces to a multiple of 64, ending in '\n'.
  const size_t total = 10 + header.size() + 1;
  header.append((64 - total % 64) % 64, ' ');
  header.push_back('\n');
  if (header.size() > 0xffff) throw std::invalid_argument(fmt::format("{}: .npy shape too long", path.string()));
  OutputFile out(path, inputs);
  const uint16_t hlen = uint16_t(header.size());
  const char head[10] = {'\x93', 'N', 'U', 'M', 'P', 'Y', 1, 0, char(hlen & 0xff), char(hlen >> 8)};
  out.write(head, sizeof head);
  out.write(header.data(), header.size());
  out.write(data.data(), data.size_bytes());
  out.commit();
}

NpyArray read_npy_f32(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error(fmt::format("{}: cannot open", path.string()));
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (bytes.size() < 10 || bytes.compare(0, 6, "\x93NUMPY") != 0)
    throw std::runtime_error(fmt::format("{}: not a .npy file", path.string()));
  const int major = uint8_t(bytes[6]);
  size_t hlen, hstart;
  if (major == 1) {
    hlen = uint8_t(bytes[8]) | (size_t(uint8_t(bytes[9])) << 8);
    hstart = 10;
  } else {
    if (bytes.size() < 12) throw std::runtime_error(fmt::format("{}: truncated .npy header", path.string()));
    hlen = 0;
    for (int i = 3; i >= 0; --i) hlen = (hlen << 8) | uint8_t(bytes[8 + i]);
    hstart = 12;
  }
  if (hstart + hlen > bytes.size()) throw std::runtime_error(fmt::format("{}: truncated .npy header", path.string()));
  const std::string header = bytes.substr(hstart, hlen);
  // The header is a Python dict literal: {'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }
  auto field = [&](const std::string& key, char open, char close) {
    const size_t k = header.find("'" + key + "'");
    const size_t b = k == std::string::npos ? k : header.find(open, header.find(':', k) + 1);
    const size_t e = b == std::string::npos ? b : header.find(close, b + 1);
    if (e == std::string::npos) throw std::runtime_error(fmt::format("{}: .npy header has no {}", path.string(), key));
    return header.substr(b + 1, e - b - 1);
  };
  const std::string descr = field("descr", '\'', '\'');
  if (header.find("'fortran_order': True") != std::string::npos)
    throw std::runtime_error(fmt::format("{}: Fortran-order arrays are not supported", path.string()));
  const size_t elem = descr == "<f4" ? 4 : descr == "<f8" ? 8 : 0;
  if (elem == 0) throw std::runtime_error(fmt::format("{}: unsupported dtype '{}' (expected '<f4' or '<f8')", path.string(), descr));
  const char* payload = bytes.data() + hstart + hlen;
  const size_t avail = bytes.size() - hstart - hlen;
  // Every dimension and the element count are bounded by the payload actually present, so a
  // crafted shape can neither overflow nor make us allocate what the file does not hold.
  NpyArray a;
  size_t count = 1;
  const std::string dims = field("shape", '(', ')');
  for (size_t i = 0; i < dims.size();) {
    if (dims[i] < '0' || dims[i] > '9') {
      if (dims[i] != ' ' && dims[i] != ',' && dims[i] != 'L')
        throw std::runtime_error(fmt::format("{}: .npy shape '({})' is not a tuple of sizes", path.string(), dims));
      ++i;
      continue;
    }
    size_t d = 0;
    for (; i < dims.size() && dims[i] >= '0' && dims[i] <= '9'; ++i) {
      d = d * 10 + size_t(dims[i] - '0');
      if (d > avail) break;  // too big already: reported below, before it can overflow
    }
    a.shape.push_back(int64_t(d));
    if (d > avail || (d != 0 && count > avail / elem / d))
      throw std::runtime_error(fmt::format("{}: .npy shape '({})' needs more data than the file's {} bytes (truncated?)",
                                           path.string(), dims, avail));
    count *= d;
  }
  if (count * elem > avail)
    throw std::runtime_error(fmt::format("{}: .npy data truncated: shape '({})' needs {} bytes, the file has {}", path.string(),
                                         dims, count * elem, avail));
  a.data.resize(count);
  if (count == 0) {  // an empty array: no data pointer to copy into
  } else if (elem == 4) {
    std::memcpy(a.data.data(), payload, count * 4);
  } else {
    for (size_t i = 0; i < count; ++i) {
      double d;
      std::memcpy(&d, payload + i * 8, 8);
      a.data[i] = float(d);
    }
  }
  return a;
}

}  // namespace moe
