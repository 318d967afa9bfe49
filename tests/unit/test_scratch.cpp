// runtime/scratch.h: buffers handed out in order, kept and only grown between frames.
#include <gtest/gtest.h>

#include "runtime/scratch.h"

using moe::Scratch;

TEST(Scratch, FramesHandOutTheSameBuffersInOrder) {
  Scratch s;
  float *a0 = nullptr, *b0 = nullptr;
  {
    Scratch::Frame f(s);
    const auto a = f.take(100), b = f.take(10);
    EXPECT_EQ(a.size(), 100u);
    EXPECT_EQ(b.size(), 10u);
    EXPECT_NE(a.data(), b.data());
    a0 = a.data(), b0 = b.data();
  }
  const size_t held = s.bytes();
  EXPECT_GE(held, 110 * sizeof(float));
  {
    Scratch::Frame f(s);  // smaller takes reuse the same memory and hold no more
    EXPECT_EQ(f.take(50).data(), a0);
    EXPECT_EQ(f.take(10).data(), b0);
    EXPECT_EQ(f.take(0).size(), 0u);  // a third buffer, empty
  }
  EXPECT_EQ(s.bytes(), held);
  {
    Scratch::Frame f(s);  // a larger take grows its buffer
    EXPECT_EQ(f.take(1000).size(), 1000u);
  }
  EXPECT_GE(s.bytes(), (1000 + 10) * sizeof(float));
}

TEST(Scratch, ASecondOpenFrameIsRefused) {
  Scratch s;
  Scratch::Frame f(s);
  EXPECT_THROW(Scratch::Frame g(s), std::logic_error);
  EXPECT_EQ(f.take(4).size(), 4u);  // the open frame still works
}

TEST(Scratch, AClosedFrameCanBeFollowedByAnother) {
  Scratch s;
  { Scratch::Frame f(s); }
  EXPECT_NO_THROW(Scratch::Frame g(s));
}
