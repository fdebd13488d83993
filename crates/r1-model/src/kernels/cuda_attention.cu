// Fused attention on the GPU in the manner of FlashAttention, the twin of
// kernels/attention.rs: `o = softmax(scale · q·kᵀ + mask) · v` without the score matrix
// ever reaching global memory, and its backward pass. Compiled after cuda_common.cuh.
//
// Layout (as on the CPU): q [b, g, m, D] with m = rep · t (the query heads sharing KV
// head g stacked, row r at position r mod t); k, v [b, g, s, D]; an additive mask
// [mb, 1, t, s] (mb 1 or b) and `ends` [mb · t], one past the last key each mask row
// can see (s for a row that sees none, which then gets the composite's uniform
// softmax over all keys). A row skips the keys from its end on: the causal tail.
//
// The forward keeps each row's max logit and reciprocal normaliser in `stats`
// [b·g·m, 2], and the backward pass recomputes the probabilities from them.
// Backward, with P the probabilities and Dᵢ = Σ dOᵢ⊙Oᵢ: dS = scale · P ⊙ (dO·Vᵀ − D),
// dQ = dS·K (one kernel, over query rows, which also writes D), then dK = dSᵀ·Q and
// dV = Pᵀ·dO (a second kernel, over keys, reading D).
//
// Threads: each query row (forward, dQ) or key (dK, dV) is owned by TPR = D / FA_SUB
// adjacent threads of a warp, each holding FA_SUB of its head dims in registers; a dot
// product over the head is their partial sums added with shuffles. Tiles of keys (or
// query rows) pass through shared memory, padded so the TPR threads of a row read
// distinct banks. Arithmetic is f32 for f32 and bf16 data alike.
//
// Every thread of a block runs every loop iteration (threads past the data compute on
// zeros and store nothing): the shuffles need the whole warp, and the tile loads sit
// between barriers.

#define FA_SUB 32        // head dims per thread
#define FA_ROWS 64       // query rows per block, forward and dQ
#define FA_KEYS 32       // keys per shared tile, forward and dQ
#define FA_KEY_ROWS 64   // keys per block, dK and dV
#define FA_ROW_TILE 32   // query rows per shared tile, dK and dV

// Floats per row of a shared [n, D] tile, and the slot of (row, dim) in it.
template <int D>
__device__ __forceinline__ int fa_stride() {
    return (D / FA_SUB) * (FA_SUB + 1);
}
template <int D>
__device__ __forceinline__ int fa_at(int row, int dim) {
    return row * fa_stride<D>() + (dim / FA_SUB) * (FA_SUB + 1) + dim % FA_SUB;
}

// Sum over the TPR adjacent lanes that share a row (all of them get it).
template <int TPR>
__device__ __forceinline__ float fa_group_sum(float v) {
    for (int o = 1; o < TPR; o <<= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

// The two head-wide dot products the backward kernels need per (row, key), a·b (the
// score) and c·e (dO·V), each over this thread's FA_SUB dims and then its row group.
template <int TPR>
__device__ __forceinline__ void fa_dots2(const float* a, const float* b, const float* c,
                                         const float* e, float* ab, float* ce) {
    float x = 0.f, y = 0.f;
#pragma unroll
    for (int i = 0; i < FA_SUB; ++i) {
        x = fmaf(a[i], b[i], x);
        y = fmaf(c[i], e[i], y);
    }
    *ab = fa_group_sum<TPR>(x);
    *ce = fa_group_sum<TPR>(y);
}

// Rows row0..row0+n of `src` [rows, D] into the shared tile `sh`, zeros past `rows`.
template <typename T, int D>
__device__ void fa_load(float* sh, const T* src, int row0, int rows, int n) {
    for (int i = threadIdx.x; i < n * D; i += blockDim.x) {
        int r = i / D, c = i % D;
        sh[fa_at<D>(r, c)] = row0 + r < rows ? ld(src, (long long)(row0 + r) * D + c) : 0.f;
    }
}

// The mask entries of query rows r0..r0+nr and keys j0..j0+nk into `sh` [nr, nk]
// (zeros outside the data, and everywhere without a mask).
template <typename T>
__device__ void fa_load_mask(float* sh, const T* mask, int t, int s, int m, int r0, int nr,
                             int j0, int nk) {
    for (int i = threadIdx.x; i < nr * nk; i += blockDim.x) {
        int r = r0 + i / nk, j = j0 + i % nk;
        sh[i] = mask && r < m && j < s ? ld(mask, (long long)(r % t) * s + j) : 0.f;
    }
}

// The end of query row `r` (0 for a row past the data).
__device__ __forceinline__ int fa_end(const int* ends, int r, int m, int t, int s) {
    return r >= m ? 0 : ends ? ends[r % t] : s;
}

// What the two row kernels (forward, dQ) share: a block's place and its rows' ends.
struct FaRows {
    long long bg;   // the (batch, KV head)
    int r0;         // the block's first query row
    int lr, sub;    // this thread's row in the block, and its part of the head dims
    int row, end;   // that row, and its end (0 past the data)
    bool live;      // whether the row exists
    int kend;       // the block's furthest end: its key tiles stop there
};

// Moves `mask` and `ends` to the block's batch element and finds its rows' ends
// (`es`: FA_ROWS ints of shared memory).
template <typename T, int TPR>
__device__ FaRows fa_rows(const T** mask, const int** ends, int* es, int m, int s, int t, int g,
                          int mb) {
    FaRows b;
    b.bg = blockIdx.y;
    long long mi = mb == 1 ? 0 : b.bg / g;  // the mask's batch element
    if (*mask) {
        *mask += mi * t * s;
        *ends += mi * t;
    }
    b.r0 = blockIdx.x * FA_ROWS;
    b.lr = threadIdx.x / TPR;
    b.sub = threadIdx.x % TPR;
    b.row = b.r0 + b.lr;
    b.live = b.row < m;
    b.end = fa_end(*mask ? *ends : 0, b.row, m, t, s);
    if (b.sub == 0) es[b.lr] = b.end;
    __syncthreads();
    b.kend = 0;
    for (int i = 0; i < FA_ROWS; ++i) b.kend = max(b.kend, es[i]);
    return b;
}

// Keys and values j0..j0+FA_KEYS and the block's mask entries for them into shared
// memory, after the previous tile is read.
template <typename T, int D>
__device__ void fa_key_tile(float* ks, float* vs, float* ms, const T* k, const T* v,
                            const T* mask, int j0, int s, int t, int m, int r0) {
    __syncthreads();
    fa_load<T, D>(ks, k, j0, s, FA_KEYS);
    fa_load<T, D>(vs, v, j0, s, FA_KEYS);
    fa_load_mask(ms, mask, t, s, m, r0, FA_ROWS, j0, FA_KEYS);
    __syncthreads();
}

// One block: FA_ROWS query rows of one (batch, KV head) `bg`, over keys in FA_KEYS tiles
// up to the block's last end, with the online softmax (running max, rescaled sums).
template <typename T, int D>
__device__ void fa_fwd(const T* q, const T* k, const T* v, const T* mask, const int* ends, T* o,
                       float* stats, int m, int s, int t, int g, int mb, float scale) {
    const int TPR = D / FA_SUB;
    __shared__ float ks[FA_KEYS * (D / FA_SUB) * (FA_SUB + 1)];
    __shared__ float vs[FA_KEYS * (D / FA_SUB) * (FA_SUB + 1)];
    __shared__ float ms[FA_ROWS * FA_KEYS];
    __shared__ int es[FA_ROWS];
    FaRows b = fa_rows<T, TPR>(&mask, &ends, es, m, s, t, g, mb);
    const long long bg = b.bg;
    const int lr = b.lr, sub = b.sub, row = b.row, end = b.end;
    const bool live = b.live;
    k += bg * s * D;
    v += bg * s * D;

    long long base = (bg * m + (live ? row : 0)) * D + sub * FA_SUB;
    float qr[FA_SUB], acc[FA_SUB];
#pragma unroll
    for (int c = 0; c < FA_SUB; ++c) {
        qr[c] = live ? ld(q, base + c) : 0.f;
        acc[c] = 0.f;
    }
    float mx = NEG_INF, l = 0.f;
    for (int j0 = 0; j0 < b.kend; j0 += FA_KEYS) {
        fa_key_tile<T, D>(ks, vs, ms, k, v, mask, j0, s, t, m, b.r0);
        float x[FA_KEYS];
        float tmax = NEG_INF;
#pragma unroll
        for (int jj = 0; jj < FA_KEYS; ++jj) {
            const float* kr = ks + fa_at<D>(jj, sub * FA_SUB);
            float part = 0.f;
#pragma unroll
            for (int c = 0; c < FA_SUB; ++c) part = fmaf(qr[c], kr[c], part);
            float sc = fa_group_sum<TPR>(part);
            x[jj] = j0 + jj < end ? fmaf(sc, scale, ms[lr * FA_KEYS + jj]) : NEG_INF;
            tmax = fmaxf(tmax, x[jj]);
        }
        float mnew = fmaxf(mx, tmax);
        // The first tile finds mx = −∞: nothing to rescale (and no ∞ − ∞).
        float alpha = mx == NEG_INF ? 0.f : expf(mx - mnew);
        l *= alpha;
#pragma unroll
        for (int c = 0; c < FA_SUB; ++c) acc[c] *= alpha;
#pragma unroll
        for (int jj = 0; jj < FA_KEYS; ++jj) {
            float p = x[jj] == NEG_INF ? 0.f : expf(x[jj] - mnew);
            l += p;
            const float* vr = vs + fa_at<D>(jj, sub * FA_SUB);
#pragma unroll
            for (int c = 0; c < FA_SUB; ++c) acc[c] = fmaf(p, vr[c], acc[c]);
        }
        mx = mnew;
    }
    if (live) {
        float inv = 1.f / l;
#pragma unroll
        for (int c = 0; c < FA_SUB; ++c) st(o, base + c, acc[c] * inv);
        if (sub == 0) {
            stats[2 * (bg * m + row)] = mx;
            stats[2 * (bg * m + row) + 1] = inv;
        }
    }
}

// dQ over the same blocks as the forward; also writes each row's D = Σ dO⊙O to `dsum`.
template <typename T, int D>
__device__ void fa_bwd_dq(const T* q, const T* k, const T* v, const T* mask, const int* ends,
                          const T* o, const T* go, const float* stats, T* dq, float* dsum, int m,
                          int s, int t, int g, int mb, float scale) {
    const int TPR = D / FA_SUB;
    __shared__ float ks[FA_KEYS * (D / FA_SUB) * (FA_SUB + 1)];
    __shared__ float vs[FA_KEYS * (D / FA_SUB) * (FA_SUB + 1)];
    __shared__ float ms[FA_ROWS * FA_KEYS];
    __shared__ int es[FA_ROWS];
    FaRows b = fa_rows<T, TPR>(&mask, &ends, es, m, s, t, g, mb);
    const long long bg = b.bg;
    const int lr = b.lr, sub = b.sub, row = b.row, end = b.end;
    const bool live = b.live;
    k += bg * s * D;
    v += bg * s * D;

    long long idx = bg * m + (live ? row : 0);
    long long base = idx * D + sub * FA_SUB;
    float qr[FA_SUB], gr[FA_SUB], acc[FA_SUB];
    float dpart = 0.f;
#pragma unroll
    for (int c = 0; c < FA_SUB; ++c) {
        qr[c] = live ? ld(q, base + c) : 0.f;
        gr[c] = live ? ld(go, base + c) : 0.f;
        dpart = fmaf(gr[c], live ? ld(o, base + c) : 0.f, dpart);
        acc[c] = 0.f;
    }
    float dd = fa_group_sum<TPR>(dpart);
    float mx = live ? stats[2 * idx] : 0.f, inv = live ? stats[2 * idx + 1] : 0.f;
    if (live && sub == 0) dsum[idx] = dd;
    for (int j0 = 0; j0 < b.kend; j0 += FA_KEYS) {
        fa_key_tile<T, D>(ks, vs, ms, k, v, mask, j0, s, t, m, b.r0);
#pragma unroll 4
        for (int jj = 0; jj < FA_KEYS; ++jj) {
            const float* kr = ks + fa_at<D>(jj, sub * FA_SUB);
            const float* vr = vs + fa_at<D>(jj, sub * FA_SUB);
            float sp, dp;
            fa_dots2<TPR>(qr, kr, gr, vr, &sp, &dp);
            float p = j0 + jj < end ? expf(fmaf(sp, scale, ms[lr * FA_KEYS + jj]) - mx) * inv : 0.f;
            float ds = scale * p * (dp - dd);
#pragma unroll
            for (int c = 0; c < FA_SUB; ++c) acc[c] = fmaf(ds, kr[c], acc[c]);
        }
    }
    if (live) {
#pragma unroll
        for (int c = 0; c < FA_SUB; ++c) st(dq, base + c, acc[c]);
    }
}

// dK and dV: one block per FA_KEY_ROWS keys of one (batch, KV head), over the query
// rows in FA_ROW_TILE tiles, skipping tiles none of whose rows sees these keys.
template <typename T, int D>
__device__ void fa_bwd_dkv(const T* q, const T* k, const T* v, const T* mask, const int* ends,
                           const T* go, const float* stats, const float* dsum, T* dk, T* dv,
                           int m, int s, int t, int g, int mb, float scale) {
    const int TPR = D / FA_SUB;
    __shared__ float qs[FA_ROW_TILE * (D / FA_SUB) * (FA_SUB + 1)];
    __shared__ float gs[FA_ROW_TILE * (D / FA_SUB) * (FA_SUB + 1)];
    __shared__ float ms[FA_ROW_TILE * FA_KEY_ROWS];
    __shared__ float rmax[FA_ROW_TILE], rinv[FA_ROW_TILE], rdd[FA_ROW_TILE];
    __shared__ int rend[FA_ROW_TILE];
    long long bg = blockIdx.y;
    long long mi = mb == 1 ? 0 : bg / g;
    if (mask) {
        mask += mi * t * s;
        ends += mi * t;
    }
    q += bg * m * D;
    go += bg * m * D;
    stats += 2 * bg * m;
    dsum += bg * m;
    int j0 = blockIdx.x * FA_KEY_ROWS, lk = threadIdx.x / TPR, sub = threadIdx.x % TPR;
    int key = j0 + lk;
    bool live = key < s;
    long long base = (bg * s + (live ? key : 0)) * D + sub * FA_SUB;
    float kr[FA_SUB], vr[FA_SUB], dka[FA_SUB], dva[FA_SUB];
#pragma unroll
    for (int c = 0; c < FA_SUB; ++c) {
        kr[c] = live ? ld(k, base + c) : 0.f;
        vr[c] = live ? ld(v, base + c) : 0.f;
        dka[c] = 0.f;
        dva[c] = 0.f;
    }
    for (int r0 = 0; r0 < m; r0 += FA_ROW_TILE) {
        __syncthreads();  // the previous tile is read
        for (int i = threadIdx.x; i < FA_ROW_TILE; i += blockDim.x) {
            int r = r0 + i;
            rend[i] = fa_end(mask ? ends : 0, r, m, t, s);
            rmax[i] = r < m ? stats[2 * r] : 0.f;
            rinv[i] = r < m ? stats[2 * r + 1] : 0.f;
            rdd[i] = r < m ? dsum[r] : 0.f;
        }
        __syncthreads();
        bool seen = false;
        for (int i = 0; i < FA_ROW_TILE; ++i) seen = seen || rend[i] > j0;
        if (!seen) continue;  // the same for every thread of the block
        fa_load<T, D>(qs, q, r0, m, FA_ROW_TILE);
        fa_load<T, D>(gs, go, r0, m, FA_ROW_TILE);
        fa_load_mask(ms, mask, t, s, m, r0, FA_ROW_TILE, j0, FA_KEY_ROWS);
        __syncthreads();
#pragma unroll 2
        for (int i = 0; i < FA_ROW_TILE; ++i) {
            const float* qq = qs + fa_at<D>(i, sub * FA_SUB);
            const float* gg = gs + fa_at<D>(i, sub * FA_SUB);
            float sp, dp;
            fa_dots2<TPR>(qq, kr, gg, vr, &sp, &dp);
            float p = key < rend[i]
                          ? expf(fmaf(sp, scale, ms[i * FA_KEY_ROWS + lk]) - rmax[i]) * rinv[i]
                          : 0.f;
            float ds = scale * p * (dp - rdd[i]);
#pragma unroll
            for (int c = 0; c < FA_SUB; ++c) {
                dva[c] = fmaf(p, gg[c], dva[c]);
                dka[c] = fmaf(ds, qq[c], dka[c]);
            }
        }
    }
    if (live) {
#pragma unroll
        for (int c = 0; c < FA_SUB; ++c) {
            st(dk, base + c, dka[c]);
            st(dv, base + c, dva[c]);
        }
    }
}

// Entry points `attention_{fwd,bwd_dq,bwd_dkv}_d{64,128}_{f32,bf16}`. Without a mask the
// host passes has_mask 0 and stand-in pointers the kernels never read.
#define R1_ATTENTION(T, S, D)                                                                     \
    extern "C" __global__ void attention_fwd_d##D##_##S(                                          \
        const T* q, const T* k, const T* v, const T* mask, const int* ends, int has_mask, T* o,   \
        float* stats, int m, int s, int t, int g, int mb, float scale) {                          \
        fa_fwd<T, D>(q, k, v, has_mask ? mask : (const T*)0, has_mask ? ends : (const int*)0, o,  \
                     stats, m, s, t, g, mb, scale);                                               \
    }                                                                                             \
    extern "C" __global__ void attention_bwd_dq_d##D##_##S(                                       \
        const T* q, const T* k, const T* v, const T* mask, const int* ends, int has_mask,         \
        const T* o, const T* go, const float* stats, T* dq, float* dsum, int m, int s, int t,     \
        int g, int mb, float scale) {                                                             \
        fa_bwd_dq<T, D>(q, k, v, has_mask ? mask : (const T*)0, has_mask ? ends : (const int*)0,  \
                        o, go, stats, dq, dsum, m, s, t, g, mb, scale);                           \
    }                                                                                             \
    extern "C" __global__ void attention_bwd_dkv_d##D##_##S(                                      \
        const T* q, const T* k, const T* v, const T* mask, const int* ends, int has_mask,         \
        const T* go, const float* stats, const float* dsum, T* dk, T* dv, int m, int s, int t,    \
        int g, int mb, float scale) {                                                             \
        fa_bwd_dkv<T, D>(q, k, v, has_mask ? mask : (const T*)0,                                  \
                         has_mask ? ends : (const int*)0, go, stats, dsum, dk, dv, m, s, t, g,    \
                         mb, scale);                                                              \
    }

R1_ATTENTION(float, f32, 64)
R1_ATTENTION(float, f32, 128)
R1_ATTENTION(bf16_t, bf16, 64)
R1_ATTENTION(bf16_t, bf16, 128)
