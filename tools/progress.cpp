#include "tools/progress.h"

#include <unistd.h>

#include <fmt/format.h>

#include <cstdio>

namespace moe::cli {

std::string human_bytes(double b) {
  if (b >= 1e9) return fmt::format("{:.2f} GB", b / 1e9);
  if (b >= 1e6) return fmt::format("{:.1f} MB", b / 1e6);
  if (b >= 1e3) return fmt::format("{:.1f} kB", b / 1e3);
  return fmt::format("{:.0f} B", b);
}

Progress::Progress(std::string label, uint64_t total_bytes)
    : label_(std::move(label)), total_(total_bytes), tty_(::isatty(2) != 0),
      start_(std::chrono::steady_clock::now()), last_(start_) {}

// Left unfinished only by an exception: end the bar's line so the error stands on its own
// line, and print no final statistics.
Progress::~Progress() {
  if (!finished_ && tty_ && last_ != start_) std::fputs("\n", stderr);
}

double Progress::seconds() const {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
}

void Progress::set(uint64_t done) {
  done_ = done;
  const auto now = std::chrono::steady_clock::now();
  // A terminal gets a smooth bar; a log gets a line every 5 s, not thousands.
  const auto every = tty_ ? std::chrono::milliseconds(100) : std::chrono::milliseconds(5000);
  if (now - last_ < every) return;
  last_ = now;
  draw(false);
}

void Progress::finish() {
  if (finished_) return;
  finished_ = true;
  draw(true);
}

void Progress::draw(bool final) {
  const double secs = seconds();
  const double rate = secs > 0 ? double(done_) / secs : 0;
  const double frac = total_ ? std::min(1.0, double(done_) / double(total_)) : 1.0;
  const double eta = rate > 0 ? double(total_ - std::min(done_, total_)) / rate : 0;
  const std::string stats = fmt::format("{:5.1f}% {} / {}  {}/s  {}", frac * 100, human_bytes(double(done_)),
                                        human_bytes(double(total_)), human_bytes(rate),
                                        final ? fmt::format("in {:.1f} s", secs)
                                              : fmt::format("ETA {}:{:02d}", int(eta) / 60, int(eta) % 60));
  if (tty_) {
    constexpr int width = 30;
    const int fill = int(frac * width);
    std::fprintf(stderr, "\r%s [%s%s] %s\033[K%s", label_.c_str(), std::string(size_t(fill), '#').c_str(),
                 std::string(size_t(width - fill), ' ').c_str(), stats.c_str(), final ? "\n" : "");
  } else {
    std::fprintf(stderr, "%s: %s\n", label_.c_str(), stats.c_str());
  }
  std::fflush(stderr);
}

}  // namespace moe::cli
