// Progress of a long byte-moving job on stderr: a redrawn bar with rate and ETA when stderr
// is a terminal, otherwise one plain line every few seconds (logs, CI).
#pragma once
#include <chrono>
#include <cstdint>
#include <string>

namespace moe::cli {

class Progress {
 public:
  Progress(std::string label, uint64_t total_bytes);
  void set(uint64_t done_bytes);  // cheap to call often: redraws at most ~10 times a second
  void add(uint64_t bytes) { set(done_ + bytes); }
  void finish();                  // the final line
  ~Progress();
  double seconds() const;

 private:
  void draw(bool final);

  std::string label_;
  uint64_t total_, done_ = 0;
  bool tty_, finished_ = false;
  std::chrono::steady_clock::time_point start_, last_;
};

// "1.23 GB", "456 MB": decimal units, as disk speeds are quoted.
std::string human_bytes(double bytes);

}  // namespace moe::cli
