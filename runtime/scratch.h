// Reusable temporaries for the engine's per-layer blocks (attention, MLA, gated DeltaNet).
//
// Fresh vectors of a prefill chunk's size were page-faulted and zeroed at every layer: attention
// of 2,048 tokens of Qwen3-30B-A3B allocated about 100 MB a layer, above malloc's mmap threshold,
// so each one came back from the kernel as new zero pages. Here each buffer keeps its memory
// between layers and steps and is only ever grown. The cost: the largest step's temporaries stay
// held: about the peak one layer had before, now kept between steps.
//
// A block opens one Frame and takes its buffers in order; the Frame hands the same buffers out
// again to the next block. Contents are stale: whoever takes a buffer writes every element before
// reading it. One Frame at a time (a second one while the first is open throws).
#pragma once
#include <cstddef>
#include <span>
#include <stdexcept>
#include <vector>

namespace moe {

class Scratch {
 public:
  class Frame {
   public:
    explicit Frame(Scratch& s) : s_(s) {
      if (s_.open_) throw std::logic_error("Scratch: a second frame while one is open would alias its buffers");
      s_.open_ = true;
    }
    ~Frame() { s_.open_ = false; }
    Frame(const Frame&) = delete;
    Frame& operator=(const Frame&) = delete;

    // The frame's next buffer, of n floats with stale contents.
    std::span<float> take(size_t n) {
      if (next_ == s_.bufs_.size()) s_.bufs_.emplace_back();
      std::vector<float>& b = s_.bufs_[next_++];
      if (b.size() < n) {
        b = std::vector<float>();  // freed first: nothing to copy, and no moment holding both
        b.resize(n);
      }
      return {b.data(), n};
    }

   private:
    Scratch& s_;
    size_t next_ = 0;
  };

  // Bytes held by the buffers (the tests check reuse and growth with it).
  size_t bytes() const {
    size_t n = 0;
    for (const auto& b : bufs_) n += b.capacity() * sizeof(float);
    return n;
  }

 private:
  std::vector<std::vector<float>> bufs_;
  bool open_ = false;
};

}  // namespace moe
