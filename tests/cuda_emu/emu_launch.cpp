// Kernel execution: each block's threads are fibers run on the calling thread in thread order
// until each reaches a barrier or returns; barriers release when every live thread (block) or
// every lane of the mask (warp) has arrived. Launch limits are checked first.
#include <sys/mman.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "emu_state.h"

// Switches stacks: saves the callee-saved registers on the current stack and its pointer in
// *from, then resumes the stack `to` the same way. (ucontext's swapcontext makes a system call
// per switch to save the signal mask: ten times slower for kernels that sync often.)
#if !defined(__x86_64__)
#error "tests/cuda_emu: the fiber switch below is x86-64 assembly; port moe_emu_switch first"
#endif
extern "C" void moe_emu_switch(void** from, void* to);
asm(R"(
  .text
  .globl moe_emu_switch
  .type moe_emu_switch,@function
moe_emu_switch:
  pushq %rbp
  pushq %rbx
  pushq %r12
  pushq %r13
  pushq %r14
  pushq %r15
  movq %rsp, (%rdi)
  movq %rsi, %rsp
  popq %r15
  popq %r14
  popq %r13
  popq %r12
  popq %rbx
  popq %rbp
  ret
  .size moe_emu_switch,.-moe_emu_switch
)");

namespace emu {
namespace {

constexpr size_t kStackBytes = 256 * 1024;  // per fiber, with a guard page below
constexpr int kMaxThreads = 1024;
constexpr size_t kDefaultSmem = 48 * 1024, kMaxSmem = 227 * 1024;

enum class St { Ready, AtBlock, AtWarp, Done };

struct Fiber {
  void* sp = nullptr;  // saved stack pointer while not running
  St st = St::Ready;
  ThreadCoords c{};
  int linear = 0;
  unsigned mask = 0;   // the warp barrier's lanes
  uint64_t value = 0;  // shuffle: what this lane offers, which lane it reads, what it got
  int src = 0;
  uint64_t result = 0;
};

struct Block {
  std::vector<Fiber> f;
  void* sched = nullptr;  // the scheduler's saved stack pointer
  const std::function<void()>* body = nullptr;
  void* smem = nullptr;
  Fiber* cur = nullptr;
};

thread_local Block* g_block = nullptr;

// Fiber stacks, made once and reused (each mmap'd with a PROT_NONE guard page at the bottom, so
// a kernel that overflows its stack faults instead of corrupting the next one).
std::vector<char*>& stacks() {
  static std::vector<char*> s;
  return s;
}
char* stack(int i) {
  auto& s = stacks();
  while (int(s.size()) <= i) {
    void* p = mmap(nullptr, kStackBytes + 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
      std::fprintf(stderr, "cuda-emu: cannot map a fiber stack\n");
      std::abort();
    }
    mprotect(p, 4096, PROT_NONE);
    s.push_back(static_cast<char*>(p) + 4096);
  }
  return s[size_t(i)];
}

[[noreturn]] void fiber_entry() {
  Block* b = g_block;
  (*b->body)();
  Fiber* me = b->cur;
  me->st = St::Done;
  moe_emu_switch(&me->sp, b->sched);
  __builtin_unreachable();
}

// A fresh fiber's stack: the six registers moe_emu_switch pops, then fiber_entry as the return
// address, aligned as a call would leave it.
void* fresh_stack(char* base) {
  auto top = reinterpret_cast<uintptr_t>(base + kStackBytes) & ~uintptr_t(15);
  auto* w = reinterpret_cast<void**>(top);
  w[-1] = nullptr;  // fiber_entry's own (never used) return address
  w[-2] = reinterpret_cast<void*>(&fiber_entry);
  for (int i = 3; i <= 8; ++i) w[-i] = nullptr;
  return &w[-8];
}

std::map<const void*, int>& smem_limits() {  // cudaFuncSetAttribute(MaxDynamicSharedMemorySize)
  static std::map<const void*, int> m;
  return m;
}

// Releases the warp barriers that every lane of their mask has reached; false if none.
bool release_warps(Block& b, std::string& why) {
  bool released = false;
  const int n = int(b.f.size());
  for (int w0 = 0; w0 < n; w0 += 32) {
    const int w1 = std::min(n, w0 + 32);
    for (int i = w0; i < w1; ++i) {
      Fiber& a = b.f[size_t(i)];
      if (a.st != St::AtWarp) continue;
      const unsigned m = a.mask;
      bool all = true;
      for (int l = 0; l < 32 && all; ++l) {
        if (!(m >> l & 1u)) continue;
        const int j = w0 + l;
        if (j >= w1) {  // a mask naming lanes the block does not have
          why = "a warp mask names lanes past the end of the block";
          all = false;
        } else if (b.f[size_t(j)].st == St::Done) {
          why = "a shuffle or __syncwarp waits for a lane that has returned";
          all = false;
        } else if (b.f[size_t(j)].st != St::AtWarp || b.f[size_t(j)].mask != m) {
          all = false;
        }
      }
      if (!all) continue;
      for (int l = 0; l < 32; ++l) {
        if (!(m >> l & 1u)) continue;
        Fiber& x = b.f[size_t(w0 + l)];
        const int s = x.src;
        x.result = (s >= 0 && s < 32 && (m >> s & 1u)) ? b.f[size_t(w0 + s)].value : x.value;
      }
      for (int l = 0; l < 32; ++l)
        if (m >> l & 1u) b.f[size_t(w0 + l)].st = St::Ready;
      released = true;
    }
  }
  return released;
}

// MOE_CUDA_EMU_ORDER=reverse runs a block's threads last to first: a read of shared memory that
// another thread writes without a barrier between then reads stale data the other way round, so
// a pass in each order finds such a race whichever thread reads.
bool reverse_order() {
  static const bool r = [] {
    const char* e = std::getenv("MOE_CUDA_EMU_ORDER");
    return e && std::string(e) == "reverse";
  }();
  return r;
}

// Runs one block; false (with why) on a deadlock.
bool run_block(Block& b, std::string& why) {
  for (;;) {
    bool ran = false;
    const size_t n = b.f.size();
    for (size_t i = 0; i < n; ++i) {
      Fiber& f = b.f[reverse_order() ? n - 1 - i : i];
      if (f.st != St::Ready) continue;
      b.cur = &f;
      moe_emu_switch(&b.sched, f.sp);
      ran = true;
    }
    int live = 0, at_block = 0, at_warp = 0;
    for (const Fiber& f : b.f) {
      live += f.st != St::Done;
      at_block += f.st == St::AtBlock;
      at_warp += f.st == St::AtWarp;
    }
    if (live == 0) return true;
    if (at_block == live) {
      for (Fiber& f : b.f)
        if (f.st == St::AtBlock) f.st = St::Ready;
      continue;
    }
    if (at_warp > 0 && release_warps(b, why)) continue;
    if (!ran) {
      if (why.empty())
        why = std::to_string(at_block) + " threads wait at __syncthreads while " + std::to_string(at_warp) +
              " wait at a warp barrier (of " + std::to_string(live) + " live)";
      return false;
    }
  }
}

void wait_here(St st) {
  Block* b = g_block;
  Fiber* me = b->cur;
  me->st = st;
  moe_emu_switch(&me->sp, b->sched);
}

std::string dims(dim3 d) {
  return "(" + std::to_string(d.x) + ", " + std::to_string(d.y) + ", " + std::to_string(d.z) + ")";
}

void run_grid(const void* kernel, dim3 grid, dim3 block, size_t smem_bytes, const std::function<void()>& body) {
  const int nt = int(block.x * block.y * block.z);
  std::vector<unsigned char> smem(smem_bytes + 16);
  Block b;
  b.body = &body;
  b.smem = smem.data();
  b.f.resize(size_t(nt));
  Block* outer = g_block;
  g_block = &b;
  for (unsigned bz = 0; bz < grid.z; ++bz)
    for (unsigned by = 0; by < grid.y; ++by)
      for (unsigned bx = 0; bx < grid.x; ++bx) {
        // Dynamic shared memory starts as NaN in every block, as device memory does.
        std::memset(smem.data(), 0xFF, smem.size());
        for (int t = 0; t < nt; ++t) {
          Fiber& f = b.f[size_t(t)];
          f.st = St::Ready;
          f.linear = t;
          f.c.thread = {unsigned(t) % block.x, unsigned(t) / block.x % block.y, unsigned(t) / (block.x * block.y)};
          f.c.block = {bx, by, bz};
          f.c.block_dim = block;
          f.c.grid_dim = grid;
          f.sp = fresh_stack(stack(t));
        }
        std::string why;
        if (!run_block(b, why)) {
          g_block = outer;
          char name[32];
          std::snprintf(name, sizeof name, "%p", kernel);
          set_sticky(cudaErrorLaunchFailure, std::string("kernel ") + name + " deadlocked in block " +
                                                  dims(dim3(bx, by, bz)) + " of " + dims(grid) + ", block " +
                                                  dims(block) + ": " + why);
          return;
        }
      }
  g_block = outer;
}

}  // namespace

const ThreadCoords& coords() { return g_block->cur->c; }
int lane() { return g_block->cur->linear % 32; }
void* dynamic_smem() {
  // 16-byte aligned, as extern __shared__ float4 expects.
  const auto p = reinterpret_cast<uintptr_t>(g_block->smem);
  return reinterpret_cast<void*>((p + 15) & ~uintptr_t(15));
}
void syncthreads() { wait_here(St::AtBlock); }
uint64_t shuffle(unsigned mask, uint64_t value, int src) {
  Fiber* me = g_block->cur;
  if (!(mask >> (me->linear % 32) & 1u)) {
    std::fprintf(stderr, "cuda-emu: a lane calls a warp operation whose mask (0x%08x) leaves it out\n", mask);
    std::abort();
  }
  me->mask = mask;
  me->value = value;
  me->src = src;
  wait_here(St::AtWarp);
  return me->result;
}
void syncwarp(unsigned mask) { shuffle(mask, 0, emu::lane()); }

void launch_body(const void* kernel, dim3 grid, dim3 block, size_t smem, cudaStream_t s, std::function<void()> body) {
  std::lock_guard lock(big_lock());
  if (sticky_error() != cudaSuccess) return set_error(sticky_error());
  const uint64_t nt = uint64_t(block.x) * block.y * block.z;
  if (nt == 0 || nt > kMaxThreads || block.z > 64 || grid.x == 0 || grid.y == 0 || grid.z == 0 ||
      grid.x > 2147483647u || grid.y > 65535 || grid.z > 65535) {
    std::fprintf(stderr, "cuda-emu: invalid launch: grid %s, block %s\n", dims(grid).c_str(), dims(block).c_str());
    return set_error(cudaErrorInvalidConfiguration);
  }
  const auto lim = smem_limits().find(kernel);
  const size_t allowed = lim == smem_limits().end() ? kDefaultSmem : size_t(lim->second);
  if (smem > allowed) {
    std::fprintf(stderr, "cuda-emu: %zu bytes of dynamic shared memory, %zu allowed for this kernel%s\n", smem,
                 allowed, lim == smem_limits().end() ? " (no cudaFuncSetAttribute)" : "");
    return set_error(cudaErrorInvalidValue);
  }
  enqueue(s, [kernel, grid, block, smem, body = std::move(body)] { run_grid(kernel, grid, block, smem, body); });
}

}  // namespace emu

cudaError_t cudaFuncSetAttribute(const void* kernel, cudaFuncAttribute attr, int value) {
  std::lock_guard lock(emu::big_lock());
  if (attr != cudaFuncAttributeMaxDynamicSharedMemorySize || value < 0 || size_t(value) > emu::kMaxSmem)
    return cudaErrorInvalidValue;
  emu::smem_limits()[kernel] = value;
  return cudaSuccess;
}
