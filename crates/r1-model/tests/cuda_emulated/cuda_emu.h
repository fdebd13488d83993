// Just enough of CUDA to run r1's attention kernels on the CPU, for tests on machines
// without a GPU. Each block runs alone; its threads are fibers (ucontext) that switch
// only at barriers: __syncthreads waits for the whole block, a warp shuffle for the
// thread's 32-lane warp. Between barriers the fibers run in a random order (seeded), so
// a kernel that reads what another thread writes without a barrier between them gets
// different results under different seeds. A barrier some threads never reach (a
// divergent __syncthreads, a shuffle with lanes missing) is reported as a deadlock.
// `__shared__` variables become function statics: one copy, shared by the block's
// threads, reused by the next block (CUDA leaves shared memory undefined at a block's
// start, so a kernel may not rely on it either way).
#pragma once
#include <ucontext.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <random>
#include <vector>

struct dim3 {
    unsigned x = 1, y = 1, z = 1;
};

namespace emu {

enum State { RUNNABLE, WAITING, DONE };
constexpr int BLOCK_BARRIER = -1;  // `waiting_on` for __syncthreads; a warp's index otherwise

struct Fiber {
    ucontext_t ctx;
    std::vector<char> stack;
    State state = RUNNABLE;
    int waiting_on = 0;
};

struct Launch {
    std::vector<Fiber> fibers;
    ucontext_t scheduler;
    int current = 0;
    std::vector<float> exchange;  // two slots per thread, for shuffles
    std::vector<int> shuffles;    // per thread, shuffles so far (which slot is next)
    const std::function<void()>* body = nullptr;
};

inline Launch* launch_state = nullptr;
inline dim3 block_idx, block_dim, grid_dim;
inline std::mt19937 rng(1);

inline dim3 thread_idx() {
    dim3 d;
    d.x = (unsigned)launch_state->current;
    return d;
}

[[noreturn]] inline void fail(const char* what) {
    std::fprintf(stderr, "cuda_emu: %s (block %u,%u thread %d)\n", what, block_idx.x, block_idx.y,
                 launch_state->current);
    std::exit(3);
}

// Parks the current fiber at barrier `group` until the scheduler releases it.
inline void wait(int group) {
    Fiber& f = launch_state->fibers[launch_state->current];
    f.state = WAITING;
    f.waiting_on = group;
    swapcontext(&f.ctx, &launch_state->scheduler);
}

inline void fiber_entry() {
    (*launch_state->body)();
    launch_state->fibers[launch_state->current].state = DONE;
    // uc_link returns to the scheduler.
}

// Releases every barrier all of whose threads have arrived; false if none could be.
inline bool release(Launch& L) {
    int n = (int)L.fibers.size();
    bool any = false;
    bool all_at_block = true;
    for (auto& f : L.fibers)
        if (f.state != WAITING || f.waiting_on != BLOCK_BARRIER) all_at_block = false;
    if (all_at_block) {
        for (auto& f : L.fibers) f.state = RUNNABLE;
        return true;
    }
    for (int w = 0; w < n / 32; ++w) {
        bool all = true;
        for (int i = w * 32; i < w * 32 + 32; ++i)
            if (L.fibers[i].state != WAITING || L.fibers[i].waiting_on != w) all = false;
        if (all) {
            for (int i = w * 32; i < w * 32 + 32; ++i) L.fibers[i].state = RUNNABLE;
            any = true;
        }
    }
    return any;
}

// Runs `body` as every thread of every block of `grid` × `block`.
inline void launch(dim3 grid, dim3 block, const std::function<void()>& body) {
    if (block.x % 32 != 0 || block.y != 1 || block.z != 1) {
        std::fprintf(stderr, "cuda_emu: blocks must be 1-D and a multiple of 32 threads\n");
        std::exit(3);
    }
    Launch L;
    L.fibers.resize(block.x);
    L.exchange.assign(2 * block.x, 0.f);
    L.shuffles.assign(block.x, 0);
    L.body = &body;
    for (auto& f : L.fibers) f.stack.resize(256 * 1024);
    launch_state = &L;
    grid_dim = grid;
    block_dim = block;
    std::vector<int> order(block.x);
    for (unsigned bz = 0; bz < grid.z; ++bz)
        for (unsigned by = 0; by < grid.y; ++by)
            for (unsigned bx = 0; bx < grid.x; ++bx) {
                block_idx = dim3{bx, by, bz};
                for (int i = 0; i < (int)block.x; ++i) {
                    Fiber& f = L.fibers[i];
                    f.state = RUNNABLE;
                    getcontext(&f.ctx);
                    f.ctx.uc_stack.ss_sp = f.stack.data();
                    f.ctx.uc_stack.ss_size = f.stack.size();
                    f.ctx.uc_link = &L.scheduler;
                    makecontext(&f.ctx, fiber_entry, 0);
                }
                for (;;) {
                    for (int i = 0; i < (int)block.x; ++i) order[i] = i;
                    std::shuffle(order.begin(), order.end(), rng);
                    for (int i : order) {
                        if (L.fibers[i].state != RUNNABLE) continue;
                        L.current = i;
                        swapcontext(&L.scheduler, &L.fibers[i].ctx);
                    }
                    bool done = std::all_of(L.fibers.begin(), L.fibers.end(),
                                            [](const Fiber& f) { return f.state == DONE; });
                    if (done) break;
                    // Every fiber that could run now waits at a barrier or is done.
                    if (!release(L)) fail("deadlock: threads wait at different barriers");
                }
            }
    launch_state = nullptr;
}

}  // namespace emu

// The CUDA vocabulary the kernels use.
#define __global__
#define __device__
#define __forceinline__ inline
#define __shared__ static
#define threadIdx (emu::thread_idx())
#define blockIdx (emu::block_idx)
#define blockDim (emu::block_dim)
#define gridDim (emu::grid_dim)

inline void __syncthreads() { emu::wait(emu::BLOCK_BARRIER); }

inline float __shfl_xor_sync(unsigned mask, float v, int lane_mask) {
    if (mask != 0xffffffffu) emu::fail("only full-warp shuffles are emulated");
    // Two exchange buffers, used by alternate shuffles of a thread: a lane writes a
    // buffer again only after the next shuffle's barrier, which every lane reaches after
    // reading it, so one barrier per shuffle suffices.
    emu::Launch& L = *emu::launch_state;
    int tid = L.current, warp = tid / 32, n = (int)L.fibers.size();
    int& parity = L.shuffles[tid];
    float* buf = &L.exchange[(size_t)(parity & 1) * n];
    ++parity;
    buf[tid] = v;
    emu::wait(warp);
    return buf[warp * 32 + ((tid % 32) ^ lane_mask)];
}

inline float __int_as_float(int i) {
    float f;
    std::memcpy(&f, &i, 4);
    return f;
}
inline float __int_as_float(unsigned i) { return __int_as_float((int)i); }
inline float __uint_as_float(unsigned i) { return __int_as_float((int)i); }
inline unsigned __float_as_uint(float f) {
    unsigned u;
    std::memcpy(&u, &f, 4);
    return u;
}
inline float rsqrtf(float x) { return 1.f / std::sqrt(x); }
using std::max;
using std::min;
