#include <gtest/gtest.h>
#include <unistd.h>

#include "storage/npy.h"
#include "unit/st_writer.h"

TEST(Npy, RoundTrip) {
  const auto d = moe::test::temp_dir("npy");
  std::vector<float> v(3 * 5);
  for (size_t i = 0; i < v.size(); ++i) v[i] = float(i) * 0.25f - 1.0f;
  moe::write_npy_f32(d / "a.npy", v, {3, 5});
  const auto a = moe::read_npy_f32(d / "a.npy");
  EXPECT_EQ(a.shape, (std::vector<int64_t>{3, 5}));
  EXPECT_EQ(a.data, v);
  moe::write_npy_f32(d / "b.npy", std::span(v).first(4), {4});
  EXPECT_EQ(moe::read_npy_f32(d / "b.npy").shape, (std::vector<int64_t>{4}));
  // Header is padded so the data starts 64-byte aligned, as NumPy writes it.
  EXPECT_EQ(std::filesystem::file_size(d / "a.npy") % 64, (15 * 4) % 64);
  std::filesystem::remove_all(d);
}
