// Runs r1's other CUDA kernels (src/kernels/cuda_kernels.cu: RMSNorm, RoPE with the head
// split, the attention softmax, SwiGLU, AdamW, forward and backward) under cuda_emu.h
// and compares them with their formulas computed directly in f64, in f32 and bf16.
// Launch shapes mirror kernels/cuda.rs. Exits non-zero if any is out of tolerance.
//
// Usage: kernels_check [seed]
#include "cuda_emu.h"

// clang-format off
#include "../../src/kernels/cuda_common.cuh"
#include "../../src/kernels/cuda_kernels.cu"
// clang-format on
#include "check_util.h"

#include <string>

namespace {

const unsigned BLOCK = 256;            // cuda.rs: BLOCK
const int RMS_ROWS_PER_BLOCK = 16;     // cuda.rs: RMS_ROWS_PER_BLOCK

dim3 grid(size_t blocks) { return dim3{(unsigned)blocks, 1, 1}; }
dim3 threads() { return dim3{BLOCK, 1, 1}; }
size_t blocks_for(size_t n) { return (n + BLOCK - 1) / BLOCK; }

std::mt19937 rng;

std::vector<double> randn(size_t n, double scale = 1.0) {
    std::normal_distribution<double> d(0.0, scale);
    std::vector<double> x(n);
    for (auto& e : x) e = d(rng);
    return x;
}

bool all_ok = true;

// Prints and records one comparison.
void report(const std::string& what, const char* dtype,
            std::vector<std::pair<const char*, double>> diffs, double tol) {
    bool ok = true;
    std::printf("%-28s %-4s", what.c_str(), dtype);
    for (auto& [name, d] : diffs) {
        std::printf("  %s %.2e", name, d);
        ok = ok && d <= tol;
    }
    std::printf("  %s\n", ok ? "ok" : "FAILED");
    all_ok = all_ok && ok;
}

// Each kernel's f32 and bf16 entry points.
template <typename T>
struct K;
#define ENTRIES(T, S)                                   \
    template <>                                         \
    struct K<T> {                                       \
        static constexpr auto rms_fwd = rms_norm_fwd_##S; \
        static constexpr auto rms_bwd = rms_norm_bwd_##S; \
        static constexpr auto rope = rope_##S;          \
        static constexpr auto sm_fwd = softmax_fwd_##S; \
        static constexpr auto sm_bwd = softmax_bwd_##S; \
        static constexpr auto sw_fwd = swiglu_fwd_##S;  \
        static constexpr auto sw_bwd = swiglu_bwd_##S;  \
        static constexpr auto adamw = adamw_##S;        \
    };
ENTRIES(float, f32)
ENTRIES(bf16_t, bf16)

// RMSNorm over rows of h, ∂w from per-block partial sums added on the host (as cuda.rs).
template <typename T>
void rms_norm(const char* dtype, double tol, int rows, int h) {
    auto x = rounded<T>(randn((size_t)rows * h, 3.0));
    auto w = rounded<T>(randn(h));
    auto g = rounded<T>(randn((size_t)rows * h));
    float eps = 1e-5f;
    std::vector<double> y(x.size()), dx(x.size()), dw(h, 0.0);
    for (int r = 0; r < rows; ++r) {
        const double* xr = &x[(size_t)r * h];
        const double* gr = &g[(size_t)r * h];
        double ss = 0, dot = 0;
        for (int i = 0; i < h; ++i) ss += xr[i] * xr[i];
        double rs = 1.0 / std::sqrt(ss / h + eps);
        for (int i = 0; i < h; ++i) dot += gr[i] * w[i] * xr[i] * rs;
        for (int i = 0; i < h; ++i) {
            y[(size_t)r * h + i] = xr[i] * rs * w[i];
            dx[(size_t)r * h + i] = rs * (gr[i] * w[i] - xr[i] * rs * dot / h);
            dw[i] += gr[i] * xr[i] * rs;
        }
    }
    auto xt = to<T>(x), wt = to<T>(w), gt = to<T>(g);
    std::vector<T> yt(x.size()), dxt(x.size());
    int blocks = (rows + RMS_ROWS_PER_BLOCK - 1) / RMS_ROWS_PER_BLOCK;
    std::vector<float> part((size_t)blocks * h);
    emu::launch(grid(rows), threads(), [&] { K<T>::rms_fwd(xt.data(), wt.data(), yt.data(), h, eps); });
    emu::launch(
        grid(blocks), threads(),
        [&] {
            K<T>::rms_bwd(xt.data(), wt.data(), gt.data(), dxt.data(), part.data(), rows, h, eps,
                          RMS_ROWS_PER_BLOCK);
        },
        h * sizeof(float));
    std::vector<double> dwk(h, 0.0);
    for (int b = 0; b < blocks; ++b)
        for (int i = 0; i < h; ++i) dwk[i] += part[(size_t)b * h + i];
    report("rms_norm " + std::to_string(rows) + "x" + std::to_string(h), dtype,
           {{"y", rel_diff(from(yt), y)}, {"dx", rel_diff(from(dxt), dx)}, {"dw", rel_diff(dwk, dw)}},
           tol);
}

// RoPE fused with the head split and its inverse (the backward pass).
template <typename T>
void rope(const char* dtype, double tol, int b, int t, int heads, int d) {
    int half = d / 2;
    auto x = rounded<T>(randn((size_t)b * t * heads * d));
    auto ang = randn((size_t)b * t * half, 6.0);
    std::vector<double> cs(ang.size()), sn(ang.size());
    for (size_t i = 0; i < ang.size(); ++i) cs[i] = std::cos(ang[i]), sn[i] = std::sin(ang[i]);
    cs = rounded<T>(cs);
    sn = rounded<T>(sn);
    // Forward [b, t, heads, d] -> [b, heads, t, d]; the inverse maps `y` back.
    std::vector<double> y(x.size()), back(x.size());
    for (int bi = 0; bi < b; ++bi)
        for (int ti = 0; ti < t; ++ti)
            for (int hi = 0; hi < heads; ++hi)
                for (int i = 0; i < half; ++i) {
                    size_t a = ((size_t)bi * t + ti) * half + i;
                    size_t src = (((size_t)bi * t + ti) * heads + hi) * d;
                    size_t dst = (((size_t)bi * heads + hi) * t + ti) * d;
                    double x1 = x[src + i], x2 = x[src + i + half];
                    y[dst + i] = x1 * cs[a] - x2 * sn[a];
                    y[dst + i + half] = x2 * cs[a] + x1 * sn[a];
                }
    auto yr = rounded<T>(y);  // what the inverse kernel gets
    for (int bi = 0; bi < b; ++bi)
        for (int ti = 0; ti < t; ++ti)
            for (int hi = 0; hi < heads; ++hi)
                for (int i = 0; i < half; ++i) {
                    size_t a = ((size_t)bi * t + ti) * half + i;
                    size_t src = (((size_t)bi * heads + hi) * t + ti) * d;
                    size_t dst = (((size_t)bi * t + ti) * heads + hi) * d;
                    double y1 = yr[src + i], y2 = yr[src + i + half];
                    back[dst + i] = y1 * cs[a] + y2 * sn[a];
                    back[dst + i + half] = y2 * cs[a] - y1 * sn[a];
                }
    auto xt = to<T>(x), ct = to<T>(cs), st_ = to<T>(sn), yrt = to<T>(yr);
    std::vector<T> yt(x.size()), bt(x.size());
    long long pairs = (long long)b * t * heads * half;
    emu::launch(grid(blocks_for(pairs)), threads(), [&] {
        K<T>::rope(xt.data(), ct.data(), st_.data(), yt.data(), t, heads, d, 1.f, 0, pairs);
    });
    emu::launch(grid(blocks_for(pairs)), threads(), [&] {
        K<T>::rope(yrt.data(), ct.data(), st_.data(), bt.data(), t, heads, d, -1.f, 1, pairs);
    });
    report("rope", dtype, {{"fwd", rel_diff(from(yt), y)}, {"inverse", rel_diff(from(bt), back)}},
           tol);
}

// softmax(scale·x + mask) over rows [b, g, m] of length s, mask [mb, 1, t, s] (row i of
// m uses mask row i mod t), and its backward pass.
template <typename T>
void softmax(const char* dtype, double tol, int b, int g, int rep, int t, int past, bool masked) {
    int s = past + t, m = rep * t, mb = masked ? b : 1;
    size_t rows = (size_t)b * g * m;
    float scale = 0.125f;
    auto x = rounded<T>(randn(rows * s, 4.0));
    auto dp = rounded<T>(randn(rows * s));
    std::vector<double> mask(masked ? (size_t)mb * t * s : 1, 0.0);
    if (masked)  // causal over the last t of s keys; batch element 1 has 3 padding keys
        for (int bi = 0; bi < mb; ++bi)
            for (int i = 0; i < t; ++i)
                for (int j = 0; j < s; ++j)
                    mask[((size_t)bi * t + i) * s + j] =
                        j <= past + i && j >= (bi == 1 ? 3 : 0) ? 0.0 : -1e9;
    std::vector<double> p(rows * s), dx(rows * s);
    for (size_t r = 0; r < rows; ++r) {
        size_t bi = r / ((size_t)g * m), qi = (r % m) % t;
        double mx = -1e300, sum = 0, dot = 0;
        std::vector<double> lg(s);
        for (int j = 0; j < s; ++j) {
            lg[j] = x[r * s + j] * scale + (masked ? mask[(bi * t + qi) * s + j] : 0.0);
            mx = std::max(mx, lg[j]);
        }
        for (int j = 0; j < s; ++j) sum += std::exp(lg[j] - mx);
        for (int j = 0; j < s; ++j) p[r * s + j] = std::exp(lg[j] - mx) / sum;
        for (int j = 0; j < s; ++j) dot += p[r * s + j] * dp[r * s + j];
        for (int j = 0; j < s; ++j) dx[r * s + j] = scale * p[r * s + j] * (dp[r * s + j] - dot);
    }
    auto xt = to<T>(x), dpt = to<T>(dp), mt = to<T>(mask);
    auto pr = rounded<T>(p);  // the backward kernel reads the stored probabilities
    auto prt = to<T>(pr);
    std::vector<T> pt(rows * s), dxt(rows * s);
    emu::launch(grid(rows), threads(), [&] {
        K<T>::sm_fwd(xt.data(), mt.data(), masked ? 1 : 0, pt.data(), s, g, m, t, mb, scale);
    });
    emu::launch(grid(rows), threads(),
                [&] { K<T>::sm_bwd(prt.data(), dpt.data(), dxt.data(), s, scale); });
    // The backward's reference from the rounded probabilities, as the kernel gets them.
    for (size_t r = 0; r < rows; ++r) {
        double dot = 0;
        for (int j = 0; j < s; ++j) dot += pr[r * s + j] * dp[r * s + j];
        for (int j = 0; j < s; ++j) dx[r * s + j] = scale * pr[r * s + j] * (dp[r * s + j] - dot);
    }
    report(std::string("softmax s=") + std::to_string(s) + (masked ? " masked" : ""), dtype,
           {{"p", rel_diff(from(pt), p)}, {"dx", rel_diff(from(dxt), dx)}}, tol);
}

template <typename T>
void swiglu(const char* dtype, double tol, size_t n) {
    auto g = rounded<T>(randn(n, 4.0)), u = rounded<T>(randn(n)), dh = rounded<T>(randn(n));
    std::vector<double> h(n), dg(n), du(n);
    for (size_t i = 0; i < n; ++i) {
        double s = 1.0 / (1.0 + std::exp(-g[i]));
        h[i] = g[i] * s * u[i];
        dg[i] = dh[i] * u[i] * s * (1.0 + g[i] * (1.0 - s));
        du[i] = dh[i] * g[i] * s;
    }
    auto gt = to<T>(g), ut = to<T>(u), dht = to<T>(dh);
    std::vector<T> ht(n), dgt(n), dut(n);
    emu::launch(grid(blocks_for(n)), threads(),
                [&] { K<T>::sw_fwd(gt.data(), ut.data(), ht.data(), (long long)n); });
    emu::launch(grid(blocks_for(n)), threads(), [&] {
        K<T>::sw_bwd(gt.data(), ut.data(), dht.data(), dgt.data(), dut.data(), (long long)n);
    });
    report("swiglu", dtype,
           {{"h", rel_diff(from(ht), h)}, {"dg", rel_diff(from(dgt), dg)},
            {"du", rel_diff(from(dut), du)}},
           tol);
}

// Three clipped, weight-decayed AdamW steps in place, f32 moments.
template <typename T>
void adamw(const char* dtype, double tol, size_t n) {
    auto p = rounded<T>(randn(n, 0.05));
    std::vector<double> m(n, 0.0), v(n, 0.0);
    auto pt = to<T>(p);
    std::vector<float> mt(n, 0.f), vt(n, 0.f);
    // A large rate, so bf16's rounding of the parameters stays small beside each step.
    const float lr = 1e-1f, b1 = 0.9f, b2 = 0.999f, eps = 1e-8f, wd = 0.1f, scale = 0.5f;
    double dp = 0;
    for (int step = 1; step <= 3; ++step) {
        auto g = rounded<T>(randn(n));
        auto gt = to<T>(g);
        std::vector<double> before = p;
        double bc1 = 1 - std::pow((double)b1, step), bc2 = 1 - std::pow((double)b2, step);
        for (size_t i = 0; i < n; ++i) {
            double gi = g[i] * scale;
            m[i] = b1 * m[i] + (1 - b1) * gi;
            v[i] = b2 * v[i] + (1 - b2) * gi * gi;
            p[i] -= lr * ((m[i] / bc1) / (std::sqrt(v[i] / bc2) + eps) + wd * p[i]);
        }
        emu::launch(grid(blocks_for(n)), threads(), [&] {
            K<T>::adamw(pt.data(), gt.data(), mt.data(), vt.data(), (long long)n, lr, b1, b2, eps,
                        wd, scale, (float)bc1, (float)bc2);
        });
        // Each step's update, relative to its size (the parameters' own scale would hide
        // a wrong update under the 1 of rel_diff).
        std::vector<double> got = from(pt), want_step(n), got_step(n);
        for (size_t i = 0; i < n; ++i) {
            want_step[i] = (p[i] - before[i]) / lr;
            got_step[i] = (got[i] - before[i]) / lr;
        }
        dp = std::max(dp, rel_diff(got_step, want_step));
        // bf16 parameters are rounded after every step; the next step starts from them.
        if (sizeof(T) == 2) p = got;
    }
    std::vector<double> md(mt.begin(), mt.end()), vd(vt.begin(), vt.end());
    report("adamw x3", dtype, {{"step", dp}, {"m", rel_diff(md, m)}, {"v", rel_diff(vd, v)}},
           tol);
}

template <typename T>
void all(const char* dtype, double tol) {
    // 28 rows: the backward's 16-row blocks, one partial; 576 columns over 256 threads.
    rms_norm<T>(dtype, tol, 28, 576);
    rope<T>(dtype, tol, 2, 5, 3, 64);
    // Two query heads per KV group over 5 new positions after 32 cached ones, a left-
    // padded batch element; and rows longer than a block without a mask.
    softmax<T>(dtype, tol, 2, 3, 2, 5, 32, true);
    softmax<T>(dtype, tol, 1, 2, 3, 1, 1499, false);
    swiglu<T>(dtype, tol, 3000);
    adamw<T>(dtype, tol, 1000);
}

}  // namespace

int main(int argc, char** argv) {
    unsigned seed = argc > 1 ? (unsigned)std::atoi(argv[1]) : 1;
    emu::rng.seed(seed);
    rng.seed(seed);
    all<float>("f32", 2e-5);
    all<bf16_t>("bf16", 4e-2);
    return all_ok ? 0 : 1;
}
