// What r1's CUDA kernels share: bf16 as raw bits (so no CUDA header is needed), loads
// and stores that widen to and round from f32, and block-wide reductions. kernels/cuda.rs
// compiles this file, cuda_kernels.cu and cuda_attention.cu as one NVRTC source, in
// that order. Every kernel exists for f32 and bf16; bf16 values are widened to f32 for
// the arithmetic and rounded once on the way out.

typedef unsigned short bf16_t;

// Dynamic shared memory (the launch's shared_mem_bytes) as `T name[]`; a macro so the
// tests' CPU emulation (tests/cuda_emulated/cuda_emu.h) can supply its own.
#ifndef R1_DYNAMIC_SHARED
#define R1_DYNAMIC_SHARED(T, name) extern __shared__ T name[]
#endif
#define NEG_INF __int_as_float(0xff800000u)

__device__ __forceinline__ float ld(const float* p, long long i) { return p[i]; }
__device__ __forceinline__ float ld(const bf16_t* p, long long i) {
    return __uint_as_float(((unsigned int)p[i]) << 16);
}
__device__ __forceinline__ void st(float* p, long long i, float v) { p[i] = v; }
__device__ __forceinline__ void st(bf16_t* p, long long i, float v) {
    unsigned int u = __float_as_uint(v);
    if ((u & 0x7fffffffu) > 0x7f800000u) {  // NaN stays a (quiet) NaN
        p[i] = (bf16_t)((u >> 16) | 0x40u);
        return;
    }
    u += 0x7fffu + ((u >> 16) & 1u);  // round to nearest, ties to even
    p[i] = (bf16_t)(u >> 16);
}

// Sum of `v` over the block (blockDim.x a multiple of 32), returned to every thread.
// The leading barrier lets consecutive calls reuse `sh`.
__device__ float block_sum(float v, float* sh) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    __syncthreads();
    if (lane == 0) sh[warp] = v;
    __syncthreads();
    if (warp == 0) {
        v = lane < (int)(blockDim.x >> 5) ? sh[lane] : 0.f;
        for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
        if (lane == 0) sh[0] = v;
    }
    __syncthreads();
    return sh[0];
}

__device__ float block_max(float v, float* sh) {
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    __syncthreads();
    if (lane == 0) sh[warp] = v;
    __syncthreads();
    if (warp == 0) {
        v = lane < (int)(blockDim.x >> 5) ? sh[lane] : NEG_INF;
        for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
        if (lane == 0) sh[0] = v;
    }
    __syncthreads();
    return sh[0];
}

