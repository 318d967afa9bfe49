#include "storage/npy.h"

#include <fmt/format.h>

#include <cstring>
#include <fstream>
#include <iterator>
#include <stdexcept>

namespace moe {

void write_npy_f32(const std::filesystem::path& path, std::span<const float> data, const std::vector<int64_t>& shape) {
  std::string dims;
  for (int64_t d : shape) dims += fmt::format("{}, ", d);
  if (shape.size() > 1) dims.resize(dims.size() - 2);  // "(3, 4)" but "(3,)"
  std::string header = fmt::format("{{'descr': '<f4', 'fortran_order': False, 'shape': ({}), }}", dims);
  // Magic + version + u16 length + header, padded with spaces to a multiple of 64, ending in '\n'.
  const size_t total = 10 + header.size() + 1;
  header.append((64 - total % 64) % 64, ' ');
  header.push_back('\n');
  std::ofstream out(path, std::ios::binary);
  if (!out) throw std::runtime_error(fmt::format("{}: cannot open for writing", path.string()));
  const uint16_t hlen = uint16_t(header.size());
  out.write("\x93NUMPY\x01\x00", 8);
  out.put(char(hlen & 0xff));
  out.put(char(hlen >> 8));
  out.write(header.data(), std::streamsize(header.size()));
  out.write(reinterpret_cast<const char*>(data.data()), std::streamsize(data.size_bytes()));
  if (!out) throw std::runtime_error(fmt::format("{}: write failed (disk full?)", path.string()));
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
  NpyArray a;
  int64_t count = 1;
  const std::string dims = field("shape", '(', ')');
  for (size_t i = 0; i < dims.size();) {
    if (dims[i] < '0' || dims[i] > '9') {
      ++i;
      continue;
    }
    size_t j = i;
    while (j < dims.size() && dims[j] >= '0' && dims[j] <= '9') ++j;
    a.shape.push_back(std::stoll(dims.substr(i, j - i)));
    count *= a.shape.back();
    i = j;
  }
  const char* payload = bytes.data() + hstart + hlen;
  const size_t avail = bytes.size() - hstart - hlen;
  a.data.resize(size_t(count));
  if (descr == "<f4" && avail >= size_t(count) * 4) {
    std::memcpy(a.data.data(), payload, size_t(count) * 4);
  } else if (descr == "<f8" && avail >= size_t(count) * 8) {
    for (int64_t i = 0; i < count; ++i) {
      double d;
      std::memcpy(&d, payload + i * 8, 8);
      a.data[size_t(i)] = float(d);
    }
  } else {
    throw std::runtime_error(fmt::format("{}: unsupported dtype '{}' or truncated data", path.string(), descr));
  }
  return a;
}

}  // namespace moe
