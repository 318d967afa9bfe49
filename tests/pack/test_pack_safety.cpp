// Hostile inputs and outputs of convert, synth, logits and verify, end to end through the moe
// binary: every bad case is one "moe: error: ..." line and exit 1, and nothing the user did not
// name as the output is ever written (devices, inputs, symlinked temporaries, leftovers).
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "pack/pack_test_util.h"
#include "storage/pack_file.h"

using namespace moe;
using namespace moe::test;
namespace fs = std::filesystem;

namespace {

const std::string kMixtral = (fs::path(MOE_SOURCE_DIR) / "tests/fixtures/mixtral").string();

void expect_error(const CmdResult& r, const std::string& what) {
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_NE(r.out.find("moe: error: "), std::string::npos) << r.out;
  EXPECT_NE(r.out.find(what), std::string::npos) << r.out;
}

std::vector<std::string> entries(const fs::path& d) {
  std::vector<std::string> v;
  for (const auto& e : fs::directory_iterator(d)) v.push_back(e.path().filename().string());
  std::sort(v.begin(), v.end());
  return v;
}

// The mixtral fixture with hidden size 48 (head_dim kept at 16): every width of the hidden
// state shrinks to 48, so K = 48 for most matrices, not a multiple of 32.
fs::path hidden48_checkpoint() {
  const fs::path d = pack_tmp("h48") / "mixtral48";
  fs::create_directories(d);
  for (const char* f : {"tokenizer.json", "tokenizer_config.json", "generation_config.json"})
    fs::copy_file(fs::path(kMixtral) / f, d / f, fs::copy_options::overwrite_existing);
  nlohmann::json cfg = nlohmann::json::parse(std::ifstream(fs::path(kMixtral) / "config.json"));
  cfg["hidden_size"] = 48;
  cfg["head_dim"] = 16;
  std::ofstream(d / "config.json") << cfg.dump(2);
  const auto src = read_bytes(fs::path(kMixtral) / "model.safetensors");
  uint64_t n = 0;
  std::memcpy(&n, src.data(), 8);
  const auto hdr = nlohmann::json::parse(src.begin() + 8, src.begin() + 8 + long(n));
  nlohmann::json out = nlohmann::json::object();
  uint64_t off = 0;
  for (const auto& [name, t] : hdr.items()) {
    if (name == "__metadata__") continue;
    auto shape = t["shape"].get<std::vector<int64_t>>();
    if (shape.size() == 1) shape[0] = 48;
    else if (name.find("o_proj") != std::string::npos || name.find(".w2.") != std::string::npos) shape[0] = 48;
    else shape[1] = 48;
    const uint64_t bytes = uint64_t(shape[0] * (shape.size() > 1 ? shape[1] : 1) * 2);
    out[name] = {{"dtype", "BF16"}, {"shape", shape}, {"data_offsets", {off, off + bytes}}};
    off += bytes;
  }
  const std::string h = out.dump();
  std::vector<uint8_t> b(8);
  const uint64_t hn = h.size();
  std::memcpy(b.data(), &hn, 8);
  b.insert(b.end(), h.begin(), h.end());
  for (uint64_t i = 0; i < off; i += 2) {  // small bf16 values
    b.push_back(uint8_t(i * 37 % 251));
    b.push_back(0x3c);
  }
  write_bytes(d / "model.safetensors", b);
  return d;
}

}  // namespace

// A FIFO stands for every special file (a device node like /dev/null alike): the old writer
// renamed its temporary over it, which on /dev/null as root replaces the device itself.
TEST(SafeOutput, ConvertRefusesASpecialFileOrDirectory) {
  const fs::path d = pack_tmp("safe-dir");
  ASSERT_EQ(::mkfifo((d / "fifo").c_str(), 0600), 0);
  expect_error(moe_cli("convert " + kMixtral + " " + (d / "fifo").string() + " --experts bf16"), "fifo: is a FIFO");
  struct stat st {};
  ASSERT_EQ(::stat((d / "fifo").c_str(), &st), 0);
  EXPECT_TRUE(S_ISFIFO(st.st_mode)) << "the FIFO was replaced";
  expect_error(moe_cli("convert " + kMixtral + " " + d.string() + " --experts bf16"), "is a directory");
  expect_error(moe_cli("synth --shape tiny -o " + d.string()), "is a directory");
}

TEST(SafeOutput, ConvertNeverWritesThroughASymlinkedTemporary) {
  const fs::path d = pack_tmp("safe-link");
  write_bytes(d / "victim", {'v'});
  fs::create_symlink(d / "victim", d / "o.moepack.tmp");
  const auto r = moe_cli("convert " + kMixtral + " " + (d / "o.moepack").string() + " --experts bf16");
  EXPECT_EQ(r.code, 0) << r.out;
  EXPECT_EQ(read_bytes(d / "victim"), std::vector<uint8_t>{'v'});
  EXPECT_EQ(moe_cli("verify " + (d / "o.moepack").string()).code, 0);
  EXPECT_EQ(entries(d), (std::vector<std::string>{"o.moepack", "o.moepack.tmp", "victim"}));
}

TEST(SafeOutput, ConvertRefusesToOverwriteItsInput) {
  const fs::path d = pack_tmp("safe-input") / "m";
  fs::copy(kMixtral, d, fs::copy_options::recursive);
  const auto before = read_bytes(d / "model.safetensors");
  expect_error(moe_cli("convert " + d.string() + " " + (d / "model.safetensors").string() + " --experts bf16"),
               "is an input of this run");
  EXPECT_EQ(read_bytes(d / "model.safetensors"), before);
  // A pack read by logits is an input too.
  const fs::path p = pack_tmp("safe-input") / "p.moepack";
  ASSERT_EQ(moe_cli("convert " + kMixtral + " " + p.string() + " --experts bf16").code, 0);
  const auto pack = read_bytes(p);
  expect_error(moe_cli("logits -m " + p.string() + " --tokens 1,2 --out " + p.string()), "is an input of this run");
  expect_error(moe_cli("logits -m " + p.string() + " --tokens 1,2 --out " + p.parent_path().string()), "is a directory");
  EXPECT_EQ(read_bytes(p), pack);
}

TEST(SafeOutput, ConcurrentConvertsEachWriteAWholePack) {
  const fs::path d = pack_tmp("safe-race");
  const std::string out = (d / "o.moepack").string();
  const std::string cmd = moe_binary() + " convert " + kMixtral + " " + out + " --experts bf16 --compress zstd -t 1";
  for (int round = 0; round < 4; ++round) {
    const std::string sh = "sh -c '" + cmd + " >/dev/null 2>&1 & " + cmd + " >/dev/null 2>&1; a=$?; wait $!; b=$?; "
                           "echo $a$b'";
    FILE* p = popen(sh.c_str(), "r");
    char buf[16] = {};
    ASSERT_NE(fgets(buf, sizeof buf, p), nullptr);
    pclose(p);
    EXPECT_EQ(std::string(buf), "00\n") << "round " << round;
    const auto v = moe_cli("verify " + out);
    EXPECT_EQ(v.code, 0) << "round " << round << ": " << v.out;
  }
  EXPECT_EQ(entries(d), std::vector<std::string>{"o.moepack"});
}

TEST(SafeOutput, SigtermLeavesNoTemporaryBehind) {
  const fs::path d = pack_tmp("safe-kill");
  // A pack of several GB, killed a moment into writing it.
  const std::string sh = "sh -c '" + moe_binary() + " synth --shape olmoe-1b-7b -t 1 -o " + (d / "big.moepack").string() +
                         " >/dev/null 2>&1 & p=$!; sleep 1; kill -TERM $p; wait $p; echo $?'";
  FILE* p = popen(sh.c_str(), "r");
  char buf[16] = {};
  ASSERT_NE(fgets(buf, sizeof buf, p), nullptr);
  pclose(p);
  EXPECT_EQ(std::string(buf), "143\n") << "synth finished before the signal: the test needs a bigger shape";
  EXPECT_TRUE(entries(d).empty()) << entries(d).front();
}

TEST(DenseChecksum, CorruptFinalNormFailsAtLoad) {
  const fs::path p = pack_tmp("dense") / "m.moepack";
  ASSERT_EQ(moe_cli("convert " + kMixtral + " " + p.string() + " --experts bf16").code, 0);
  uint64_t at;
  {
    const PackFile f(p);
    const pack::DenseEntry* e = f.find_dense("final_norm");
    ASSERT_NE(e, nullptr);
    at = f.metadata().header.dense_offset + e->m.data_offset + 1;  // a high byte of norm[0]
  }
  auto b = read_bytes(p);
  b[at] ^= 0x7f;
  write_bytes(p, b);
  for (const std::string& cmd : {"logits -m " + p.string() + " --tokens 1,2 --out " + (p.parent_path() / "l.npy").string(),
                                "run -m " + p.string() + " --prompt hi -n 1 --temp 0"}) {
    SCOPED_TRACE(cmd);
    expect_error(moe_cli(cmd), "dense region (embeddings, attention, norms, routers) is corrupt");
  }
  EXPECT_FALSE(fs::exists(p.parent_path() / "l.npy"));
}

TEST(ConvertChecks, KNotAMultipleOf32IsRefusedForFp8AndInt8) {
  const fs::path src = hidden48_checkpoint();
  const fs::path out = src.parent_path() / "o.moepack";
  expect_error(moe_cli("convert " + src.string() + " " + out.string() + " --experts fp8"),
               "--experts fp8: expert gate/up [32, 48]: K (48) is not a multiple of 32, which F8E4M3 needs; use --experts bf16");
  expect_error(moe_cli("convert " + src.string() + " " + out.string() + " --experts bf16 --dense int8"),
               "K (48) is not a multiple of 32, which I8 needs; use --dense bf16");
  expect_error(moe_cli("convert " + src.string() + " " + out.string() + " --experts bf16 --dense int8"),
               "--dense int8: tensor 'lm_head' [1500, 48]");
  EXPECT_FALSE(fs::exists(out));
  // bf16 fits any K: it converts and runs.
  ASSERT_EQ(moe_cli("convert " + src.string() + " " + out.string() + " --experts bf16").code, 0);
  EXPECT_EQ(moe_cli("logits -m " + out.string() + " --tokens 1,2 --out " + (src.parent_path() / "l.npy").string()).code, 0);
}

TEST(ConvertChecks, ZstdLevelIsRangeChecked) {
  const fs::path out = pack_tmp("zlevel") / "o.moepack";
  for (const char* level : {"0", "99", "-5"})
    expect_error(moe_cli("convert " + kMixtral + " " + out.string() + " --experts bf16 --compress zstd --zstd-level " + level),
                 std::string("--zstd-level ") + level + " is out of range: zstd levels are 1 to ");
  EXPECT_FALSE(fs::exists(out));
}
