// Just enough of CUDA to run r1's attention kernels on the CPU, for tests on machines
// without a GPU. Each block runs alone; its threads are fibers (ucontext) that switch
// only at barriers: __syncthreads waits for the whole block, a warp shuffle for the
// thread's 32-lane warp. One fiber runs at a time, up to its next barrier; a barrier lets
// its threads go as soon as the last arrives, and the warps take turns in a random order
// (seeded, drawn again at every __syncthreads), so one warp can run ahead of another. A
// kernel that reads what another thread writes without a barrier between them then
// gets different results under different seeds. A barrier some threads never reach (a
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
    std::vector<double> dynamic_shared;  // the launch's shared_mem_bytes (double-aligned)
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

inline void* dynamic_shared() { return launch_state->dynamic_shared.data(); }

// Runs `body` as every thread of every block of `grid` × `block`, with `shared_bytes`
// of dynamic shared memory.
inline void launch(dim3 grid, dim3 block, const std::function<void()>& body,
                   size_t shared_bytes = 0) {
    if (block.x % 32 != 0 || block.y != 1 || block.z != 1) {
        std::fprintf(stderr, "cuda_emu: blocks must be 1-D and a multiple of 32 threads\n");
        std::exit(3);
    }
    Launch L;
    L.fibers.resize(block.x);
    L.exchange.assign(2 * block.x, 0.f);
    L.shuffles.assign(block.x, 0);
    L.dynamic_shared.assign(shared_bytes / sizeof(double) + 1, 0.0);
    L.body = &body;
    for (auto& f : L.fibers) f.stack.resize(256 * 1024);
    launch_state = &L;
    grid_dim = grid;
    block_dim = block;
    int n = (int)block.x, warps = n / 32;
    std::vector<std::vector<int>> ready(warps);  // per warp, its threads that may run
    std::vector<int> warp_arrived(warps), order(warps);
    for (unsigned bz = 0; bz < grid.z; ++bz)
        for (unsigned by = 0; by < grid.y; ++by)
            for (unsigned bx = 0; bx < grid.x; ++bx) {
                block_idx = dim3{bx, by, bz};
                for (int i = 0; i < n; ++i) {
                    Fiber& f = L.fibers[i];
                    f.state = RUNNABLE;
                    getcontext(&f.ctx);
                    f.ctx.uc_stack.ss_sp = f.stack.data();
                    f.ctx.uc_stack.ss_size = f.stack.size();
                    f.ctx.uc_link = &L.scheduler;
                    makecontext(&f.ctx, fiber_entry, 0);
                    ready[i / 32].push_back(i);
                }
                for (int w = 0; w < warps; ++w) order[w] = w;
                std::shuffle(order.begin(), order.end(), rng);
                std::fill(warp_arrived.begin(), warp_arrived.end(), 0);
                int block_arrived = 0, done = 0;
                // The warps run in an order drawn at random at each block-wide barrier:
                // a thread of the first warp (in that order) with a thread ready runs
                // next, up to its next barrier, so one warp runs ahead of the others
                // through its shuffles as it may on a GPU. Within a warp the thread is
                // picked at random.
                while (done < n) {
                    int w = -1;
                    for (int c : order)
                        if (!ready[c].empty()) {
                            w = c;
                            break;
                        }
                    if (w < 0) fail("deadlock: threads wait at different barriers");
                    auto& rw = ready[w];
                    size_t k = rng() % rw.size();
                    int i = rw[k];
                    rw[k] = rw.back();
                    rw.pop_back();
                    L.current = i;
                    swapcontext(&L.scheduler, &L.fibers[i].ctx);
                    Fiber& f = L.fibers[i];
                    if (f.state == DONE) {
                        ++done;
                    } else if (f.waiting_on == BLOCK_BARRIER) {
                        if (++block_arrived == n) {
                            block_arrived = 0;
                            for (int j = 0; j < n; ++j)
                                L.fibers[j].state = RUNNABLE, ready[j / 32].push_back(j);
                            std::shuffle(order.begin(), order.end(), rng);
                        }
                    } else if (++warp_arrived[f.waiting_on] == 32) {
                        int v = f.waiting_on;
                        warp_arrived[v] = 0;
                        for (int j = v * 32; j < v * 32 + 32; ++j)
                            L.fibers[j].state = RUNNABLE, ready[v].push_back(j);
                    }
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
#define R1_DYNAMIC_SHARED(T, name) T* name = (T*)emu::dynamic_shared()

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
