// Reads by copying out of a read-only mmap of the file.
//
// Why copy rather than hand out zero-copy views: the cache owns every resident expert's
// bytes, so its budget accounting, eviction and pinning work the same for every reader, and
// the copy (~40 GB/s DRAM) is cheap next to the disk (~1.2 GB/s). After copying, the pages of
// the mapping are dropped from this process (MADV_DONTNEED) so its RSS does not hold each
// expert twice.
//
// Known problem, by design of mmap: the page cache is not under the budget. Faults read ahead
// beyond the record and the kernel keeps those pages cached (charged to a memory cgroup, though
// reclaimable), so with a model larger than RAM mmap reads many times the bytes it needs
// (~10x measured on this project's machines). Use it for small models and debugging;
// use uring (or pread) with a budget.
#pragma once
#include "storage/io/expert_reader.h"
#include "storage/mapped_file.h"

namespace moe {

class MmapReader final : public ExpertReader {
 public:
  // `drop_after_copy` false keeps the mapped pages in this process (faster re-reads of
  // the same bytes, RSS grows with everything touched).
  explicit MmapReader(const FileSource& src, bool drop_after_copy = true);
  std::string_view kind() const override { return "mmap"; }
  bool direct() const override { return false; }
  const std::filesystem::path& path() const override { return map_.path(); }
  uint64_t file_size() const override { return map_.size(); }
  using ExpertReader::read;
  void read(std::span<const ReadRequest> requests, const ReadDone& done) override;

 private:
  MappedFile map_;
  bool drop_after_copy_;
};

}  // namespace moe
