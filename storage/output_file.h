// Every file the project writes goes through OutputFile: the bytes go to a unique temporary in
// OUT's directory (an unnamed O_TMPFILE inode where the file system supports it, else a random
// name created with O_CREAT|O_EXCL, which never follows a symlink), and commit() fsyncs it,
// renames it over OUT and fsyncs the directory. So OUT is always either the old file or the
// whole new one, concurrent writers each produce a complete file (the last rename wins), and a
// failed or interrupted run leaves nothing behind: the destructor removes the temporary, and a
// SIGINT/SIGTERM handler unlinks registered temporaries before re-raising the signal.
// OUT is refused up front when it exists and is not a regular file (a device, a directory, a
// FIFO) or when it is one of the run's inputs (same inode).
#pragma once
#include <cstddef>
#include <filesystem>
#include <span>
#include <string>
#include <vector>

namespace moe {

// Throws std::runtime_error naming `out` unless it may be replaced: absent (or a dangling
// symlink), or a regular file that is none of `inputs` (compared by device and inode, so
// symlinks and hard links to an input are caught too).
void check_output_target(const std::filesystem::path& out, std::span<const std::filesystem::path> inputs = {});

// The files a model path stands for: the path itself when it is a file, else the entries of
// the directory (what `moe convert` or a session reads).
std::vector<std::filesystem::path> input_files(const std::filesystem::path& model);

class OutputFile {
 public:
  // Checks the target (check_output_target) and creates the temporary. Throws
  // std::runtime_error naming `out`.
  explicit OutputFile(const std::filesystem::path& out, std::span<const std::filesystem::path> inputs = {});
  ~OutputFile();  // discards the temporary unless committed
  OutputFile(const OutputFile&) = delete;
  OutputFile& operator=(const OutputFile&) = delete;

  int fd() const { return fd_; }
  const std::filesystem::path& path() const { return out_; }
  // The temporary's name; empty for an unnamed O_TMPFILE one (until commit links it).
  const std::string& temp_name() const { return temp_; }
  // Appends n bytes at the current offset; throws naming OUT on failure (disk full).
  void write(const void* p, size_t n);
  // fsync, rename over OUT, fsync the directory; the fd stays open (a trace keeps appending).
  void commit();
  bool committed() const { return committed_; }
  // Tests: skip O_TMPFILE so the named fallback (and its signal cleanup) runs on any file system.
  static void use_named_temporaries(bool on);

 private:
  void remove_temp() noexcept;

  std::filesystem::path out_, dir_;
  std::vector<std::filesystem::path> inputs_;
  std::string temp_;
  int fd_ = -1;
  int slot_ = -1;  // signal-cleanup registration of temp_, -1 when none
  bool committed_ = false;
};

}  // namespace moe
