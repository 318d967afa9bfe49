// A model file truncated while in use (issue: hostile files, item 1): readers that can check
// throw a clear error instead of returning zeros (pread) or raising SIGBUS (mmap), and a SIGBUS
// inside a mapping (dense weights are viewed in place) becomes one error line and exit status 1.
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "storage/io/aligned_buffer.h"
#include "storage/io/make_reader.h"
#include "storage/mapped_file.h"
#include "storage/truncation_guard.h"

namespace fs = std::filesystem;

namespace {

// A file of `blocks` 4 KiB blocks of non-zero bytes.
fs::path make_file(const std::string& name, int blocks) {
  const fs::path p = fs::temp_directory_path() / ("moe-trunc-" + name + "-" + std::to_string(::getpid()));
  std::ofstream out(p, std::ios::binary);
  const std::vector<char> block(4096, 'x');
  for (int i = 0; i < blocks; ++i) out.write(block.data(), std::streamsize(block.size()));
  return p;
}

}  // namespace

class TruncatedReader : public ::testing::TestWithParam<const char*> {};

TEST_P(TruncatedReader, ThrowsInsteadOfZerosOrSignal) {
  const fs::path p = make_file(GetParam(), 4);
  auto reader = moe::make_reader(GetParam(), p);
  fs::resize_file(p, 4096);  // someone truncates the file after it was opened
  moe::AlignedBuffer buf(4096);
  const moe::ReadRequest r{8192, 4096, buf.data()};
  try {
    reader->read({&r, 1});
    FAIL() << GetParam() << ": a read past the new end returned without error";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("truncated while in use"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find(p.string()), std::string::npos) << e.what();
  }
  fs::remove(p);
}

INSTANTIATE_TEST_SUITE_P(Readers, TruncatedReader, ::testing::Values("pread", "uring", "mmap"));

TEST(TruncationGuard, SigbusInAMappingIsOneErrorLine) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  const fs::path p = make_file("map", 16);
  EXPECT_EXIT(
      {
        moe::install_truncation_reporter();
        const moe::MappedFile m(p);
        fs::resize_file(p, 0);
        const volatile uint8_t* d = m.data();
        const uint8_t v = d[8 * 4096];  // a page the truncation removed: SIGBUS
        std::fprintf(stderr, "read %d\n", int(v));
        std::exit(0);
      },
      ::testing::ExitedWithCode(1), "moe: error: .*moe-trunc-map.*truncated while in use");
  fs::remove(p);
}

TEST(TruncationGuard, SigbusElsewhereKeepsItsDefault) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(
      {
        moe::install_truncation_reporter();
        ::raise(SIGBUS);
        std::exit(0);
      },
      ::testing::KilledBySignal(SIGBUS), "");
}
