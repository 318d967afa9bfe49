// moe verify: every checksum of a pack (header, manifest, table, dense region, each expert
// record, and each zstd frame decodes). A corrupt part fails with one line naming it.
#include <cstdio>

#include <fmt/format.h>

#include "storage/pack_file.h"
#include "tools/commands.h"
#include "tools/progress.h"

namespace moe::cli {

Runner add_verify(CLI::App& app) {
  auto path = std::make_shared<std::string>();
  CLI::App* c = app.add_subcommand("verify", "Check every checksum of a .moepack (exit 1 naming the first corrupt part)");
  c->add_option("FILE", *path, ".moepack file")->required();
  return [path] {
    const PackFile pack(*path);  // header, manifest and table checksums, every offset
    Progress prog("verify", pack.file_bytes());
    pack.verify_dense();
    uint64_t done = pack.metadata().header.dense_bytes, records = 0, compressed = 0;
    for (int l = 0; l < pack.n_layers(); ++l)
      for (int e = 0; e < pack.n_experts(l); ++e) {
        const ExpertRecordRef& r = pack.record(l, e);
        pack.verify_decode(l, e);  // checksum; a zstd frame must decode to its stated size
        compressed += r.compressed ? 1 : 0;
        ++records;
        prog.set(done += r.stored_bytes);
      }
    prog.set(pack.file_bytes());  // header page, padding, manifest and table were checked at open
    prog.finish();
    std::printf("%s\n", fmt::format("ok: {}: format v{}, {}, {} dense tensors, {} expert records ({} zstd) in {} layers, "
                                    "all checksums match",
                                    *path, pack.metadata().header.version, human_bytes(double(pack.file_bytes())),
                                    pack.metadata().dense.size(), records, compressed, pack.metadata().layers.size())
                            .c_str());
    return 0;
  };
}

}  // namespace moe::cli
