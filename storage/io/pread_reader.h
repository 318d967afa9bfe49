// The simplest reader: one pread(2) after another, O_DIRECT when the filesystem allows it
// (falling back to buffered reads), so it keeps the budget like the uring reader but has
// only one read in flight. The fallback when io_uring is unavailable.
#pragma once
#include "storage/io/expert_reader.h"
#include "storage/io/file_handle.h"

namespace moe {

class PreadReader final : public ExpertReader {
 public:
  PreadReader(const FileSource& src, bool direct);
  std::string_view kind() const override { return "pread"; }
  bool direct() const override { return file_.direct(); }
  const std::filesystem::path& path() const override { return file_.path(); }
  uint64_t file_size() const override { return file_.size(); }
  using ExpertReader::read;
  void read(std::span<const ReadRequest> requests, const ReadDone& done) override;

 private:
  FileHandle file_;
};

}  // namespace moe
