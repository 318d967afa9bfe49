// The three readers return the same bytes as the file for random batches, aligned or not,
// including the zero padding of the last block; the uring reader with many reads in flight;
// errors and the io_uring fallback notice.
#include <gtest/gtest.h>

#include <cerrno>
#include <fstream>
#include <random>
#include <sstream>

#include "storage/io/aligned_buffer.h"
#include "storage/io/disk_bandwidth.h"
#include "storage/io/make_reader.h"
#include "tiers/fake_catalog.h"

namespace moe {
namespace {

class Readers : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = tmp_.path;
    path_ = dir_ / "data.bin";
    // Not a multiple of 4 KiB: the last block is partly past the end of the file.
    bytes_.resize((3u << 20) + 1234);
    std::mt19937_64 rng(7);
    for (auto& b : bytes_) b = uint8_t(rng());
    std::ofstream(path_, std::ios::binary).write(reinterpret_cast<const char*>(bytes_.data()), std::streamsize(bytes_.size()));
  }
  // Random requests into one aligned arena; `aligned` picks O_DIRECT-able ones.
  std::vector<ReadRequest> batch(std::mt19937_64& rng, AlignedBuffer& arena, int n, bool aligned) const {
    std::vector<ReadRequest> reqs;
    const uint64_t end = align_up(bytes_.size());
    uint64_t at = 0;
    for (int i = 0; i < n; ++i) {
      ReadRequest r;
      if (aligned) {
        r.offset = rng() % (end / kDirectAlign) * kDirectAlign;
        r.length = (1 + rng() % 16) * kDirectAlign;
        if (r.offset + r.length > end) r.length = end - r.offset;
      } else {
        r.offset = rng() % bytes_.size();
        r.length = 1 + rng() % 20000;
        if (r.offset + r.length > end) r.length = end - r.offset;
        at += 1 + rng() % 63;  // an odd destination address
      }
      r.dst = arena.data() + at;
      at = align_up(at + r.length);
      reqs.push_back(r);
    }
    EXPECT_LE(at, arena.size());
    return reqs;
  }

  void expect_same(const std::vector<ReadRequest>& reqs, const std::string& kind) const {
    for (const ReadRequest& r : reqs)
      for (uint64_t i = 0; i < r.length; ++i) {
        const uint8_t want = r.offset + i < bytes_.size() ? bytes_[r.offset + i] : 0;  // padding reads as zero
        if (r.dst[i] != want) {
          ADD_FAILURE() << kind << ": byte " << r.offset + i << " (request at " << r.offset << ", " << r.length << " bytes)";
          return;
        }
      }
  }

  test::TempDir tmp_{"readers"};
  std::filesystem::path dir_, path_;
  std::vector<uint8_t> bytes_;
};

TEST_F(Readers, AllKindsReturnTheFileBytes) {
  for (const char* kind : {"uring", "pread", "mmap"}) {
    auto reader = make_reader(kind, path_);
    EXPECT_EQ(reader->kind(), kind);
    EXPECT_EQ(reader->file_size(), bytes_.size());
    std::mt19937_64 rng(42);
    for (int round = 0; round < 6; ++round) {
      AlignedBuffer arena(8u << 20);
      const bool aligned = round % 2 == 0;
      auto reqs = batch(rng, arena, 40, aligned);
      std::memset(arena.data(), 0xEE, arena.size());
      reader->read(reqs);
      expect_same(reqs, std::string(kind) + (aligned ? " aligned" : " unaligned"));
    }
  }
}

// done(i) comes once per request, and only when its bytes are all there: the tier publishes
// an expert from inside it. A uring chunk of 4 KiB splits every request into several reads.
TEST_F(Readers, DoneComesOncePerRequestWithItsBytesInPlace) {
  for (const char* kind : {"uring", "pread", "mmap"}) {
    ReaderOptions mo;
    mo.uring.chunk_bytes = kDirectAlign;
    auto reader = make_reader(kind, path_, mo);
    std::mt19937_64 rng(9);
    for (const bool aligned : {true, false}) {
      AlignedBuffer arena(8u << 20);
      std::memset(arena.data(), 0xEE, arena.size());
      const auto reqs = batch(rng, arena, 40, aligned);
      std::vector<int> calls(reqs.size(), 0);
      reader->read(reqs, [&](size_t i) {
        ASSERT_LT(i, reqs.size());
        ++calls[i];
        expect_same({reqs[i]}, std::string(kind) + " in done");
      });
      for (size_t i = 0; i < reqs.size(); ++i) EXPECT_EQ(calls[i], 1) << kind << " request " << i;
    }
  }
}

TEST_F(Readers, TheLastBlockIsZeroPadded) {
  const uint64_t last = bytes_.size() / kDirectAlign * kDirectAlign;
  for (const char* kind : {"uring", "pread", "mmap"}) {
    auto reader = make_reader(kind, path_);
    AlignedBuffer buf(2 * kDirectAlign);
    std::memset(buf.data(), 0xEE, buf.size());
    const ReadRequest r{last - kDirectAlign, 2 * kDirectAlign, buf.data()};
    reader->read({&r, 1});
    expect_same({r}, kind);
  }
}

TEST_F(Readers, UringKeepsManyReadsInFlight) {
  UringOptions o;
  o.queue_depth = 16;
  o.chunk_bytes = 64 << 10;  // the 1 MiB requests become 16 pieces each
  UringReader reader(path_, o);
  AlignedBuffer arena(48u << 20);
  std::vector<ReadRequest> reqs;
  std::mt19937_64 rng(3);
  uint64_t at = 0;
  for (int i = 0; i < 3000; ++i) {
    const uint64_t len = i % 100 == 0 ? (1u << 20) : kDirectAlign;
    const uint64_t off = rng() % ((bytes_.size() - len) / kDirectAlign) * kDirectAlign;
    reqs.push_back({off, len, arena.data() + at});
    at += len;
  }
  ASSERT_LE(at, arena.size());
  reader.read(reqs);
  expect_same(reqs, "uring");
  // Fixed buffers give the same bytes.
  const iovec iov{arena.data(), arena.size()};
  if (reader.register_buffers({&iov, 1})) {
    std::memset(arena.data(), 0, arena.size());
    reader.read(reqs);
    expect_same(reqs, "uring fixed");
    EXPECT_TRUE(reader.register_buffers({}));
  }
}

TEST_F(Readers, ReadingPastTheEndNamesTheFile) {
  for (const char* kind : {"uring", "pread", "mmap"}) {
    auto reader = make_reader(kind, path_);
    AlignedBuffer buf(3 * kDirectAlign);
    const ReadRequest r{align_up(bytes_.size()) - kDirectAlign, 2 * kDirectAlign, buf.data()};
    try {
      reader->read({&r, 1});
      ADD_FAILURE() << kind << ": no error";
    } catch (const std::runtime_error& e) {
      EXPECT_NE(std::string(e.what()).find(path_.string()), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find("past the end"), std::string::npos) << e.what();
    }
  }
}

TEST_F(Readers, MissingFileAndUnknownKind) {
  EXPECT_THROW(make_reader("uring", dir_ / "nope.bin"), std::runtime_error);
  EXPECT_THROW(make_reader("pread", dir_ / "nope.bin"), std::runtime_error);
  EXPECT_THROW(make_reader("mmap", dir_ / "nope.bin"), std::runtime_error);
  try {
    make_reader("aio", path_);
    ADD_FAILURE();
  } catch (const std::invalid_argument& e) {
    EXPECT_STREQ(e.what(), "--io 'aio': unknown reader; use uring, pread or mmap");
  }
}

TEST_F(Readers, UringInitFailureFallsBackToPreadWithOneLine) {
  for (int err : {ENOSYS, EPERM}) {
    std::ostringstream notice;
    ReaderOptions o;
    o.uring.simulate_init_errno = err;
    o.notice = &notice;
    auto reader = make_reader("uring", path_, o);
    EXPECT_EQ(reader->kind(), "pread");
    const std::string n = notice.str();
    EXPECT_NE(n.find("io_uring unavailable"), std::string::npos) << n;
    EXPECT_NE(n.find("falling back to --io pread"), std::string::npos) << n;
    EXPECT_EQ(std::count(n.begin(), n.end(), '\n'), 1) << n;
    AlignedBuffer buf(kDirectAlign);
    const ReadRequest r{0, kDirectAlign, buf.data()};
    reader->read({&r, 1});
    expect_same({r}, "fallback");
  }
  // No notice when io_uring works.
  std::ostringstream quiet;
  ReaderOptions o;
  o.notice = &quiet;
  EXPECT_EQ(make_reader("uring", path_, o)->kind(), "uring");
  EXPECT_EQ(quiet.str(), "");
}

TEST_F(Readers, DiskBandwidthMeasures) {
  const DiskBandwidth bw = measure_disk_bandwidth(path_, 0.2);
  EXPECT_GT(bw.seq_bytes, 0u);
  EXPECT_GT(bw.rand_reads, 0u);
  EXPECT_GT(bw.seq_bytes_per_s, 0.0);
  EXPECT_GT(bw.rand_iops, 0.0);
  EXPECT_EQ(bw.extent_bytes, 0u);  // no expert-sized pass unless asked
  // Sequential and expert-sized passes only (moe bench --disk-probe): whole extents, no 4 KiB reads.
  DiskBandwidthOptions o;
  o.random_pass = false;
  o.extent_bytes = 20000;  // rounded up to 5 blocks
  o.extents_per_batch = 3;
  const DiskBandwidth ex = measure_disk_bandwidth(path_, 0.2, o);
  EXPECT_GT(ex.seq_bytes, 0u);
  EXPECT_EQ(ex.rand_reads, 0u);
  EXPECT_GT(ex.extent_bytes, 0u);
  EXPECT_EQ(ex.extent_bytes % (3 * 5 * 4096), 0u);
  EXPECT_GT(ex.extent_bytes_per_s, 0.0);
  std::ofstream(dir_ / "tiny.bin") << "x";
  EXPECT_THROW(measure_disk_bandwidth(dir_ / "tiny.bin", 0.1), std::runtime_error);
}

}  // namespace
}  // namespace moe
