// r1's fused GPU kernels, the CUDA twins of the CPU kernels beside this file (same
// formulas, same layouts; see each CPU module's header). Compiled once per process with
// NVRTC (kernels/cuda.rs), after cuda_common.cuh, so a CUDA build needs no extra build
// step.

// ---- RMSNorm: y = x · rsqrt(mean(x²) + eps) · w, one block per row.
template <typename T>
__device__ void rms_norm_fwd(const T* x, const T* w, T* y, int h, float eps) {
    __shared__ float sh[32];
    long long base = (long long)blockIdx.x * h;
    float ss = 0.f;
    for (int i = threadIdx.x; i < h; i += blockDim.x) {
        float v = ld(x, base + i);
        ss += v * v;
    }
    float r = rsqrtf(block_sum(ss, sh) / h + eps);
    for (int i = threadIdx.x; i < h; i += blockDim.x) st(y, base + i, ld(x, base + i) * r * ld(w, i));
}

// Backward over `rows_per_block` rows per block: ∂x per row, and this block's partial
// ∂w (summed over its rows) in `dw_part[blockIdx.x]`; the host adds the partials, so
// the result does not depend on scheduling. Each thread owns the same columns in every
// loop, so the shared accumulator needs no atomics.
template <typename T>
__device__ void rms_norm_bwd(const T* x, const T* w, const T* g, T* dx, float* dw_part, int rows,
                             int h, float eps, int rows_per_block) {
    R1_DYNAMIC_SHARED(float, dw);
    __shared__ float sh[32];
    for (int i = threadIdx.x; i < h; i += blockDim.x) dw[i] = 0.f;
    int r0 = blockIdx.x * rows_per_block;
    int r1 = min(rows, r0 + rows_per_block);
    for (int row = r0; row < r1; ++row) {
        long long base = (long long)row * h;
        float ss = 0.f, dot = 0.f;
        for (int i = threadIdx.x; i < h; i += blockDim.x) {
            float xv = ld(x, base + i);
            ss += xv * xv;
            dot += ld(g, base + i) * ld(w, i) * xv;
        }
        ss = block_sum(ss, sh);
        dot = block_sum(dot, sh);
        float r = rsqrtf(ss / h + eps);
        float mean = dot * r / h;
        for (int i = threadIdx.x; i < h; i += blockDim.x) {
            float gv = ld(g, base + i), xh = ld(x, base + i) * r;
            st(dx, base + i, r * (gv * ld(w, i) - xh * mean));
            dw[i] += gv * xh;
        }
    }
    for (int i = threadIdx.x; i < h; i += blockDim.x) dw_part[(long long)blockIdx.x * h + i] = dw[i];
}

// ---- RoPE fused with the head split, one thread per rotated pair. Forward reads
// [b, t, heads, d] and writes [b, heads, t, d]; `inverse` (the backward pass, sign -1)
// reads [b, heads, t, d] and writes [b, t, heads, d].
template <typename T>
__device__ void rope(const T* x, const T* cos, const T* sin, T* out, int t, int heads, int d,
                     float sign, int inverse, long long pairs) {
    long long idx = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (idx >= pairs) return;
    int half = d / 2;
    long long row = idx / half;
    int i = (int)(idx % half);
    long long bi, hi, ti, src;
    if (inverse) {
        bi = row / ((long long)t * heads);
        hi = row % heads;
        ti = (row / heads) % t;
        src = ((bi * heads + hi) * t + ti) * d;
    } else {
        bi = row / ((long long)heads * t);
        hi = (row / t) % heads;
        ti = row % t;
        src = ((bi * t + ti) * heads + hi) * d;
    }
    long long a = (bi * t + ti) * half + i;
    float c = ld(cos, a), s = sign * ld(sin, a);
    float x1 = ld(x, src + i), x2 = ld(x, src + i + half);
    st(out, row * d + i, x1 * c - x2 * s);
    st(out, row * d + i + half, x2 * c + x1 * s);
}

// ---- Attention softmax p = softmax(scale·x + mask), one block per row of length s.
// Rows are [b, g, m]; the mask is [mb, 1, t, s] and row i of m uses mask row i mod t.
template <typename T>
__device__ float scaled_masked(const T* x, const T* mask, long long row, int j, int s, int g, int m,
                               int t, int mb, float scale) {
    float v = ld(x, row * s + j) * scale;
    if (mask) {
        long long bi = mb == 1 ? 0 : row / ((long long)g * m);
        long long qi = (row % m) % t;
        v += ld(mask, (bi * t + qi) * s + j);
    }
    return v;
}

template <typename T>
__device__ void softmax_fwd(const T* x, const T* mask, T* p, int s, int g, int m, int t, int mb,
                            float scale) {
    __shared__ float sh[32];
    long long row = blockIdx.x;
    float mx = NEG_INF;
    for (int j = threadIdx.x; j < s; j += blockDim.x)
        mx = fmaxf(mx, scaled_masked(x, mask, row, j, s, g, m, t, mb, scale));
    mx = block_max(mx, sh);
    float sum = 0.f;
    for (int j = threadIdx.x; j < s; j += blockDim.x)
        sum += expf(scaled_masked(x, mask, row, j, s, g, m, t, mb, scale) - mx);
    float inv = 1.f / block_sum(sum, sh);
    for (int j = threadIdx.x; j < s; j += blockDim.x)
        st(p, row * s + j, expf(scaled_masked(x, mask, row, j, s, g, m, t, mb, scale) - mx) * inv);
}

// ∂x = scale · p ⊙ (∂p − Σ ∂p⊙p), one block per row.
template <typename T>
__device__ void softmax_bwd(const T* p, const T* dp, T* dx, int s, float scale) {
    __shared__ float sh[32];
    long long base = (long long)blockIdx.x * s;
    float dot = 0.f;
    for (int j = threadIdx.x; j < s; j += blockDim.x) dot += ld(p, base + j) * ld(dp, base + j);
    dot = block_sum(dot, sh);
    for (int j = threadIdx.x; j < s; j += blockDim.x)
        st(dx, base + j, scale * ld(p, base + j) * (ld(dp, base + j) - dot));
}

// ---- SwiGLU h = silu(g) ⊙ u, element-wise.
template <typename T>
__device__ void swiglu_fwd(const T* g, const T* u, T* h, long long n) {
    long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    float gv = ld(g, i);
    st(h, i, gv / (1.f + expf(-gv)) * ld(u, i));
}

template <typename T>
__device__ void swiglu_bwd(const T* g, const T* u, const T* dh, T* dg, T* du, long long n) {
    long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    float gv = ld(g, i), uv = ld(u, i), d = ld(dh, i);
    float s = 1.f / (1.f + expf(-gv));
    st(dg, i, d * uv * s * (1.f + gv * (1.f - s)));
    st(du, i, d * gv * s);
}

// ---- AdamW, in place on the parameter, with f32 moments.
template <typename T>
__device__ void adamw(T* p, const T* g, float* m, float* v, long long n, float lr, float b1, float b2,
                      float eps, float wd, float scale, float bc1, float bc2) {
    long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    float gi = ld(g, i) * scale;
    float mi = b1 * m[i] + (1.f - b1) * gi;
    float vi = b2 * v[i] + (1.f - b2) * gi * gi;
    m[i] = mi;
    v[i] = vi;
    float pi = ld(p, i);
    float upd = (mi / bc1) / (sqrtf(vi / bc2) + eps);
    st(p, i, pi - lr * (upd + wd * pi));
}

#define R1_KERNELS(T, S)                                                                          \
    extern "C" __global__ void rms_norm_fwd_##S(const T* x, const T* w, T* y, int h, float eps) {  \
        rms_norm_fwd(x, w, y, h, eps);                                                            \
    }                                                                                             \
    extern "C" __global__ void rms_norm_bwd_##S(const T* x, const T* w, const T* g, T* dx,        \
                                                float* dw_part, int rows, int h, float eps,       \
                                                int rows_per_block) {                             \
        rms_norm_bwd(x, w, g, dx, dw_part, rows, h, eps, rows_per_block);                         \
    }                                                                                             \
    extern "C" __global__ void rope_##S(const T* x, const T* cos, const T* sin, T* out, int t,    \
                                        int heads, int d, float sign, int inverse,                \
                                        long long pairs) {                                        \
        rope(x, cos, sin, out, t, heads, d, sign, inverse, pairs);                                \
    }                                                                                             \
    extern "C" __global__ void softmax_fwd_##S(const T* x, const T* mask, int has_mask, T* p,     \
                                               int s, int g, int m, int t, int mb, float scale) { \
        softmax_fwd(x, has_mask ? mask : (const T*)0, p, s, g, m, t, mb, scale);                  \
    }                                                                                             \
    extern "C" __global__ void softmax_bwd_##S(const T* p, const T* dp, T* dx, int s,             \
                                               float scale) {                                     \
        softmax_bwd(p, dp, dx, s, scale);                                                         \
    }                                                                                             \
    extern "C" __global__ void swiglu_fwd_##S(const T* g, const T* u, T* h, long long n) {        \
        swiglu_fwd(g, u, h, n);                                                                   \
    }                                                                                             \
    extern "C" __global__ void swiglu_bwd_##S(const T* g, const T* u, const T* dh, T* dg, T* du,  \
                                              long long n) {                                      \
        swiglu_bwd(g, u, dh, dg, du, n);                                                          \
    }                                                                                             \
    extern "C" __global__ void adamw_##S(T* p, const T* g, float* m, float* v, long long n,       \
                                         float lr, float b1, float b2, float eps, float wd,       \
                                         float scale, float bc1, float bc2) {                     \
        adamw(p, g, m, v, n, lr, b1, b2, eps, wd, scale, bc1, bc2);                               \
    }

R1_KERNELS(float, f32)
R1_KERNELS(bf16_t, bf16)
