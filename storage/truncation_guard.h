// A mapped file truncated by someone else while it is mapped makes the next touch of a page past
// its new end raise SIGBUS. MappedFile registers each live mapping here; once the reporter is
// installed (the CLI does it at start), a SIGBUS inside a registered mapping prints one line
// naming the file and exits with status 1, like every other error. A SIGBUS elsewhere keeps its
// default action. Readers that can check (pread, io_uring, the mmap reader) throw a clear error
// before touching missing bytes; this catches the rest (dense weights viewed in the mapping).
#pragma once
#include <cstddef>
#include <filesystem>

namespace moe {

void install_truncation_reporter();  // idempotent
void register_mapping(const void* data, size_t size, const std::filesystem::path& path);
void unregister_mapping(const void* data);

}  // namespace moe
