#include "storage/output_file.h"

#include <fcntl.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fmt/format.h>

#include <atomic>
#include <cerrno>
#include <climits>
#include <csignal>
#include <cstring>
#include <mutex>
#include <stdexcept>

namespace moe {
namespace {

// ---- temporaries removed on SIGINT/SIGTERM/SIGHUP ----
// A fixed table the handler can read with async-signal-safe calls only: a slot is published
// (state 2) after its path is copied and withdrawn (state 1) before it is reused.
constexpr int kSlots = 64;
struct Slot {
  std::atomic<int> state{0};  // 0 free, 1 claimed (not yet/no longer visible), 2 live
  char path[PATH_MAX];
};
Slot g_slots[kSlots];
constexpr int kSignals[] = {SIGINT, SIGTERM, SIGHUP};
struct sigaction g_old[3];
std::once_flag g_install;
std::atomic<bool> g_named_only{false};

extern "C" void unlink_temps_and_reraise(int sig) {
  for (auto& s : g_slots)
    if (s.state.load(std::memory_order_acquire) == 2) ::unlink(s.path);
  for (int i = 0; i < 3; ++i)
    if (kSignals[i] == sig) ::sigaction(sig, &g_old[i], nullptr);
  ::raise(sig);  // blocked until we return, then delivered with the previous disposition
}

void install_handlers() {
  for (int i = 0; i < 3; ++i) {
    struct sigaction old {};
    ::sigaction(kSignals[i], nullptr, &old);
    if (old.sa_handler != SIG_DFL) continue;  // ignored (nohup) or handled by someone else: leave it
    struct sigaction sa {};
    sa.sa_handler = unlink_temps_and_reraise;
    sigemptyset(&sa.sa_mask);
    g_old[i] = old;
    ::sigaction(kSignals[i], &sa, nullptr);
  }
}

int register_temp(const std::string& path) {
  if (path.size() >= PATH_MAX) return -1;
  std::call_once(g_install, install_handlers);
  for (int i = 0; i < kSlots; ++i) {
    int free = 0;
    if (!g_slots[i].state.compare_exchange_strong(free, 1)) continue;
    std::memcpy(g_slots[i].path, path.c_str(), path.size() + 1);
    g_slots[i].state.store(2, std::memory_order_release);
    return i;
  }
  return -1;  // table full: this temporary is still removed on errors, only not on a signal
}

void unregister_temp(int slot) {
  if (slot < 0) return;
  g_slots[slot].state.store(1, std::memory_order_release);
  g_slots[slot].state.store(0, std::memory_order_release);
}

std::string random_suffix() {
  static std::atomic<uint64_t> counter{0};
  uint64_t r = 0;
  if (::getrandom(&r, sizeof r, GRND_NONBLOCK) != ssize_t(sizeof r))  // no entropy yet: pid and a counter
    r = (uint64_t(::getpid()) << 32) ^ (counter.fetch_add(1) * 0x9E3779B97F4A7C15ull);
  return fmt::format("{:016x}", r);
}

const char* kind_of(mode_t m) {
  if (S_ISDIR(m)) return "a directory";
  if (S_ISCHR(m)) return "a character device";
  if (S_ISBLK(m)) return "a block device";
  if (S_ISFIFO(m)) return "a FIFO";
  if (S_ISSOCK(m)) return "a socket";
  return "not a regular file";
}

[[noreturn]] void fail(const std::filesystem::path& out, const std::string& what) {
  throw std::runtime_error(fmt::format("{}: {}", out.string(), what));
}

}  // namespace

void check_output_target(const std::filesystem::path& out, std::span<const std::filesystem::path> inputs) {
  if (out.empty()) throw std::runtime_error("the output path is empty");
  struct stat st {};
  if (::stat(out.c_str(), &st) != 0) {
    if (errno == ENOENT) return;  // absent (or a dangling symlink, which the rename replaces)
    fail(out, fmt::format("cannot check the output path: {}", std::strerror(errno)));
  }
  if (!S_ISREG(st.st_mode))
    fail(out, fmt::format("is {}; refusing to replace it: give the path of a regular file to write", kind_of(st.st_mode)));
  for (const auto& in : inputs) {
    struct stat si {};
    if (::stat(in.c_str(), &si) == 0 && si.st_dev == st.st_dev && si.st_ino == st.st_ino)
      fail(out, fmt::format("is an input of this run ({}); writing it would destroy it: choose another output path",
                            in.string()));
  }
}

std::vector<std::filesystem::path> input_files(const std::filesystem::path& model) {
  std::error_code ec;
  if (!std::filesystem::is_directory(model, ec)) return {model};
  std::vector<std::filesystem::path> files;
  for (const auto& e : std::filesystem::directory_iterator(model, ec)) files.push_back(e.path());
  return files;
}

OutputFile::OutputFile(const std::filesystem::path& out, std::span<const std::filesystem::path> inputs)
    : out_(out), dir_(out.parent_path().empty() ? std::filesystem::path(".") : out.parent_path()),
      inputs_(inputs.begin(), inputs.end()) {
  check_output_target(out_, inputs);
  // Unnamed: nothing to clean up whatever kills the process.
  if (!g_named_only) fd_ = ::open(dir_.c_str(), O_TMPFILE | O_WRONLY | O_CLOEXEC, 0644);
  for (int tries = 0; fd_ < 0 && tries < 100; ++tries) {
    const std::string name = (dir_ / fmt::format(".{}.{}.tmp", out_.filename().string(), random_suffix())).string();
    // O_EXCL: fails on any existing name, a symlink included (never follows it).
    fd_ = ::open(name.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
    if (fd_ >= 0) {
      temp_ = name;
      slot_ = register_temp(temp_);
    } else if (errno != EEXIST) {
      break;
    }
  }
  if (fd_ < 0)
    fail(out_, fmt::format("cannot create: {}; check the directory exists and is writable", std::strerror(errno)));
}

void OutputFile::use_named_temporaries(bool on) { g_named_only = on; }

OutputFile::~OutputFile() {
  if (!committed_) remove_temp();
  if (fd_ >= 0) ::close(fd_);
}

void OutputFile::remove_temp() noexcept {
  if (!temp_.empty()) ::unlink(temp_.c_str());
  unregister_temp(slot_);
  slot_ = -1;
  temp_.clear();
}

void OutputFile::write(const void* p, size_t n) {
  const auto* b = static_cast<const uint8_t*>(p);
  while (n > 0) {
    const ssize_t k = ::write(fd_, b, n);
    if (k < 0 && errno == EINTR) continue;
    if (k <= 0) fail(out_, fmt::format("write failed: {} (disk full?)", k < 0 ? std::strerror(errno) : "no progress"));
    b += k;
    n -= size_t(k);
  }
}

void OutputFile::commit() {
  if (committed_) return;
  if (::fsync(fd_) != 0) fail(out_, fmt::format("fsync failed: {}", std::strerror(errno)));
  check_output_target(out_, inputs_);  // it may have changed while we wrote
  if (temp_.empty()) {
    // linkat cannot replace a name: link under a fresh random one, then rename that over OUT.
    const std::string proc = fmt::format("/proc/self/fd/{}", fd_);
    for (int tries = 0; temp_.empty() && tries < 100; ++tries) {
      const std::string name = (dir_ / fmt::format(".{}.{}.tmp", out_.filename().string(), random_suffix())).string();
      slot_ = register_temp(name);  // before the link: a signal between link and rename removes it
      int rc = ::linkat(AT_FDCWD, proc.c_str(), AT_FDCWD, name.c_str(), AT_SYMLINK_FOLLOW);
      if (rc != 0 && errno == ENOENT) rc = ::linkat(fd_, "", AT_FDCWD, name.c_str(), AT_EMPTY_PATH);  // no /proc
      if (rc == 0) {
        temp_ = name;
        break;
      }
      const int err = errno;
      unregister_temp(slot_);
      slot_ = -1;
      if (err != EEXIST) fail(out_, fmt::format("cannot link the finished file into {}: {}", dir_.string(), std::strerror(err)));
    }
  }
  if (::rename(temp_.c_str(), out_.c_str()) != 0)
    fail(out_, fmt::format("cannot rename {} into place: {}", temp_, std::strerror(errno)));
  unregister_temp(slot_);
  slot_ = -1;
  temp_.clear();
  committed_ = true;
  // The rename is durable once the directory is.
  const int dfd = ::open(dir_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
}

}  // namespace moe
