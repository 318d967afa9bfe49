// Safe writes (storage/output_file.h) and the writers built on it: .npy files and routing
// traces. OUT is the old file or the whole new one; devices, directories and inputs are
// refused; temporaries never follow symlinks and vanish on errors and on SIGTERM. Also the npy
// reader against crafted headers.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <fstream>

#include "pack/pack_test_util.h"
#include "prefetch/trace.h"
#include "storage/npy.h"
#include "storage/output_file.h"

using namespace moe;
using namespace moe::test;
namespace fs = std::filesystem;

namespace {

std::vector<std::string> entries(const fs::path& d) {
  std::vector<std::string> v;
  for (const auto& e : fs::directory_iterator(d)) v.push_back(e.path().filename().string());
  std::sort(v.begin(), v.end());
  return v;
}

std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), {}};
}

TraceHeader one_layer_header() {
  TraceHeader h;
  h.n_layers = 1;
  h.n_experts = {4};
  h.top_k = 2;
  return h;
}

}  // namespace

TEST(OutputFile, CommitReplacesAtomicallyAndLeavesNoTemporary) {
  for (bool named : {false, true}) {
    OutputFile::use_named_temporaries(named);
    const fs::path d = pack_tmp(named ? "out-named" : "out-tmpfile");
    write_bytes(d / "f", {1, 2, 3});
    {
      OutputFile o(d / "f");
      o.write("abcd", 4);
      EXPECT_EQ(slurp(d / "f"), std::string("\x01\x02\x03")) << "OUT untouched until commit";
      o.commit();
    }
    EXPECT_EQ(slurp(d / "f"), "abcd");
    EXPECT_EQ(entries(d), std::vector<std::string>{"f"});
    {
      OutputFile o(d / "g");
      o.write("x", 1);
    }  // never committed: as if the run failed
    EXPECT_EQ(entries(d), std::vector<std::string>{"f"});
  }
  OutputFile::use_named_temporaries(false);
}

TEST(OutputFile, RefusesDevicesDirectoriesFifosAndInputs) {
  const fs::path d = pack_tmp("out-refuse");
  EXPECT_NE(error_of([] { OutputFile o("/dev/null"); }).find("/dev/null: is a character device; refusing"),
            std::string::npos);
  EXPECT_NE(error_of([&] { OutputFile o(d); }).find("is a directory"), std::string::npos);
  ASSERT_EQ(::mkfifo((d / "fifo").c_str(), 0600), 0);
  EXPECT_NE(error_of([&] { OutputFile o(d / "fifo"); }).find("is a FIFO"), std::string::npos);
  write_bytes(d / "model", {9});
  fs::create_symlink(d / "model", d / "link");
  const std::vector<fs::path> inputs = {d / "model"};
  for (const char* out : {"model", "link"})
    EXPECT_NE(error_of([&] { OutputFile o(d / out, inputs); }).find("is an input of this run"), std::string::npos) << out;
  EXPECT_EQ(slurp(d / "model"), "\x09");
}

TEST(OutputFile, NamedTemporaryNeverFollowsASymlink) {
  OutputFile::use_named_temporaries(true);
  const fs::path d = pack_tmp("out-symlink");
  write_bytes(d / "victim", {'v'});
  // Every name the old writer used, pointing at the victim.
  fs::create_symlink(d / "victim", d / "o.moepack.tmp");
  {
    OutputFile o(d / "o.moepack");
    EXPECT_FALSE(o.temp_name().empty());
    o.write("new", 3);
    o.commit();
  }
  OutputFile::use_named_temporaries(false);
  EXPECT_EQ(slurp(d / "victim"), "v");
  EXPECT_EQ(slurp(d / "o.moepack"), "new");
}

TEST(OutputFile, SigtermRemovesTheNamedTemporary) {
  const fs::path d = pack_tmp("out-signal");
  const pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    OutputFile::use_named_temporaries(true);
    OutputFile o(d / "big.moepack");
    o.write("partial", 7);
    ::raise(SIGTERM);
    ::_exit(3);  // not reached: the handler re-raises with the default action
  }
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFSIGNALED(status)) << "exit status " << status;
  EXPECT_EQ(WTERMSIG(status), SIGTERM);
  EXPECT_TRUE(entries(d).empty()) << entries(d).front();
}

TEST(Npy, WriteIsSafeAndRefusesNonRegularTargets) {
  const fs::path d = pack_tmp("npy");
  const std::vector<float> v = {1, 2, 3};
  write_npy_f32(d / "a.npy", v, {3});
  EXPECT_EQ(read_npy_f32(d / "a.npy").data, v);
  EXPECT_NE(error_of([&] { write_npy_f32(d, v, {3}); }).find("is a directory"), std::string::npos);
  EXPECT_NE(error_of([&] { write_npy_f32("/dev/null", v, {3}); }).find("character device"), std::string::npos);
  const std::vector<fs::path> inputs = {d / "a.npy"};
  EXPECT_NE(error_of([&] { write_npy_f32(d / "a.npy", v, {3}, inputs); }).find("is an input"), std::string::npos);
  EXPECT_EQ(entries(d), std::vector<std::string>{"a.npy"});
}

TEST(Npy, CraftedShapesGiveClearErrors) {
  const fs::path d = pack_tmp("npy-bad");
  auto npy = [&](const std::string& dict, size_t payload) {
    std::string h = dict;
    h.append((64 - (10 + h.size() + 1) % 64) % 64, ' ');
    h.push_back('\n');
    std::string b = std::string("\x93NUMPY\x01\x00", 8) + char(h.size() & 0xff) + char(h.size() >> 8) + h;
    b.append(payload, '\0');
    std::ofstream(d / "x.npy", std::ios::binary) << b;
    return error_of([&] { read_npy_f32(d / "x.npy"); });
  };
  // Element counts that overflow, or exceed the payload, must not be allocated.
  EXPECT_NE(npy("{'descr': '<f4', 'fortran_order': False, 'shape': (4294967296, 4294967296, 16), }", 16)
                .find("needs more data"),
            std::string::npos);
  EXPECT_NE(npy("{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999999999999999, ), }", 16)
                .find("needs more data"),
            std::string::npos);
  EXPECT_NE(npy("{'descr': '<f8', 'fortran_order': False, 'shape': (1000000000, ), }", 64).find("needs more data"),
            std::string::npos);
  EXPECT_NE(npy("{'descr': '<f4', 'fortran_order': False, 'shape': (-3, ), }", 16).find("not a tuple of sizes"),
            std::string::npos);
  EXPECT_NE(npy("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }", 20).find("truncated"), std::string::npos);
  EXPECT_EQ(npy("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }", 24), "");
  EXPECT_EQ(npy("{'descr': '<f4', 'fortran_order': False, 'shape': (0, ), }", 0), "");  // fuzz_npy: memcpy to null
}

TEST(TraceWriter, RefusesNonRegularTargetsAndPublishesOnFlush) {
  const fs::path d = pack_tmp("trace");
  EXPECT_NE(error_of([] { TraceWriter w("/dev/null", one_layer_header()); }).find("character device"), std::string::npos);
  EXPECT_NE(error_of([&] { TraceWriter w(d, one_layer_header()); }).find("is a directory"), std::string::npos);
  // The model the trace is about is an input: a trace over it is refused.
  write_bytes(d / "m.moepack", {1});
  TraceHeader h = one_layer_header();
  h.model = (d / "m.moepack").string();
  EXPECT_NE(error_of([&] { TraceWriter w(d / "m.moepack", h); }).find("is an input"), std::string::npos);
  {
    TraceWriter w(d / "t.jsonl", one_layer_header());
    TraceRecord r;
    r.seq = {0};
    r.pos = {0};
    r.experts = {1, 2};
    r.weights = {0.5f, 0.5f};
    w.write(r);
    EXPECT_FALSE(fs::exists(d / "t.jsonl")) << "published before its first flush";
    w.flush();
    EXPECT_EQ(read_trace(d / "t.jsonl").records.size(), 1u);
    r.step = 1;
    w.write(r);
  }  // later records append to the published file
  EXPECT_EQ(read_trace(d / "t.jsonl").records.size(), 2u);
  EXPECT_EQ(entries(d), (std::vector<std::string>{"m.moepack", "t.jsonl"}));
}
