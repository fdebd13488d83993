// Runs r1's CUDA attention kernels (src/kernels/cuda_attention.cu, the file NVRTC
// compiles) under cuda_emu.h and compares their outputs and gradients with a direct
// double-precision computation of the same formulas. Launch shapes mirror
// kernels/cuda.rs. Exits non-zero on the first case out of tolerance.
//
// Usage: attention_check [seed]
#include "cuda_emu.h"

// clang-format off
#include "../../src/kernels/cuda_common.cuh"
#include "../../src/kernels/cuda_attention.cu"
// clang-format on
#include "check_util.h"

#include <string>

namespace {

// The problem: b batch, g KV heads, rep query heads per KV head, t query positions,
// s keys, d head dims; the mask is causal over the last t of s positions with `pad[bi]`
// hidden leading keys, shared by the batch when `shared`; `masked` false means none.
struct Case {
    std::string name;
    int b, g, rep, t, s, d;
    bool masked, shared;
    std::vector<int> pad;
};

struct Problem {
    Case c;
    int m, mb;
    std::vector<double> q, k, v, go, mask;
    std::vector<int> ends;
};

Problem make(const Case& c, std::mt19937& rng) {
    Problem p{c, c.rep * c.t, c.shared ? 1 : c.b, {}, {}, {}, {}, {}, {}};
    std::normal_distribution<double> n(0.0, 1.0);
    auto fill = [&](std::vector<double>& x, size_t len) {
        x.resize(len);
        for (auto& e : x) e = n(rng);
    };
    fill(p.q, (size_t)c.b * c.g * p.m * c.d);
    fill(p.k, (size_t)c.b * c.g * c.s * c.d);
    fill(p.v, (size_t)c.b * c.g * c.s * c.d);
    fill(p.go, (size_t)c.b * c.g * p.m * c.d);
    if (c.masked) {
        int past = c.s - c.t;
        p.mask.assign((size_t)p.mb * c.t * c.s, 0.0);
        p.ends.assign((size_t)p.mb * c.t, c.s);
        for (int bi = 0; bi < p.mb; ++bi)
            for (int i = 0; i < c.t; ++i) {
                int last = -1;
                for (int j = 0; j < c.s; ++j) {
                    bool seen = j <= past + i && j >= c.pad[bi];
                    p.mask[((size_t)bi * c.t + i) * c.s + j] = seen ? 0.0 : -1e9;
                    if (seen) last = j;
                }
                p.ends[bi * c.t + i] = last < 0 ? c.s : last + 1;
            }
    }
    return p;
}

struct Result {
    std::vector<double> o, dq, dk, dv;
};

// The formulas, directly, in double.
Result reference(const Problem& p) {
    const Case& c = p.c;
    double scale = 1.0 / std::sqrt((double)c.d);
    Result r;
    r.o.assign(p.q.size(), 0.0);
    r.dq.assign(p.q.size(), 0.0);
    r.dk.assign(p.k.size(), 0.0);
    r.dv.assign(p.v.size(), 0.0);
    std::vector<double> x(c.s), pr(c.s), dp(c.s);
    for (int bg = 0; bg < c.b * c.g; ++bg) {
        int bi = bg / c.g;
        for (int row = 0; row < p.m; ++row) {
            int mr = row % c.t;
            const double* qr = &p.q[((size_t)bg * p.m + row) * c.d];
            const double* gr = &p.go[((size_t)bg * p.m + row) * c.d];
            const double* mk = c.masked ? &p.mask[((size_t)(c.shared ? 0 : bi) * c.t + mr) * c.s] : 0;
            // A row the mask hides entirely: in f32 every logit rounds to the mask's
            // −1e9, so the composite (and the kernel) give it a uniform softmax.
            bool blind = mk && std::all_of(mk, mk + c.s, [](double e) { return e < 0; });
            double mx = -1e300;
            for (int j = 0; j < c.s; ++j) {
                const double* kj = &p.k[((size_t)bg * c.s + j) * c.d];
                double dot = 0;
                for (int e = 0; e < c.d; ++e) dot += qr[e] * kj[e];
                x[j] = blind ? 0.0 : dot * scale + (mk ? mk[j] : 0.0);
                mx = std::max(mx, x[j]);
            }
            double sum = 0;
            for (int j = 0; j < c.s; ++j) sum += pr[j] = std::exp(x[j] - mx);
            double* orow = &r.o[((size_t)bg * p.m + row) * c.d];
            for (int j = 0; j < c.s; ++j) {
                pr[j] /= sum;
                const double* vj = &p.v[((size_t)bg * c.s + j) * c.d];
                for (int e = 0; e < c.d; ++e) orow[e] += pr[j] * vj[e];
            }
            double dd = 0;
            for (int e = 0; e < c.d; ++e) dd += gr[e] * orow[e];
            double* dqr = &r.dq[((size_t)bg * p.m + row) * c.d];
            for (int j = 0; j < c.s; ++j) {
                const double* kj = &p.k[((size_t)bg * c.s + j) * c.d];
                const double* vj = &p.v[((size_t)bg * c.s + j) * c.d];
                double dpj = 0;
                for (int e = 0; e < c.d; ++e) dpj += gr[e] * vj[e];
                double ds = scale * pr[j] * (dpj - dd);
                double* dkj = &r.dk[((size_t)bg * c.s + j) * c.d];
                double* dvj = &r.dv[((size_t)bg * c.s + j) * c.d];
                for (int e = 0; e < c.d; ++e) {
                    dqr[e] += ds * kj[e];
                    dkj[e] += ds * qr[e];
                    dvj[e] += pr[j] * gr[e];
                }
            }
        }
    }
    return r;
}

// The kernels of one dtype and head dim, by their exported names.
#define KERNELS(S, D) \
    {attention_fwd_d##D##_##S, attention_bwd_dq_d##D##_##S, attention_bwd_dkv_d##D##_##S}

template <typename T>
struct Entry {
    void (*fwd)(const T*, const T*, const T*, const T*, const int*, int, T*, float*, int, int, int,
                int, int, float);
    void (*dq)(const T*, const T*, const T*, const T*, const int*, int, const T*, const T*,
               const float*, T*, float*, int, int, int, int, int, float);
    void (*dkv)(const T*, const T*, const T*, const T*, const int*, int, const T*, const float*,
                const float*, T*, T*, int, int, int, int, int, float);
};

template <typename T>
Entry<T> entry(int d);
template <>
Entry<float> entry(int d) {
    if (d == 64) return KERNELS(f32, 64);
    return KERNELS(f32, 128);
}
template <>
Entry<bf16_t> entry(int d) {
    if (d == 64) return KERNELS(bf16, 64);
    return KERNELS(bf16, 128);
}

// The kernels' results, launched as kernels/cuda.rs launches them.
template <typename T>
Result run(const Problem& p) {
    const Case& c = p.c;
    Entry<T> k = entry<T>(c.d);
    int tpr = c.d / FA_SUB, bg = c.b * c.g;
    float scale = 1.f / std::sqrt((float)c.d);
    auto q = to<T>(p.q), kk = to<T>(p.k), v = to<T>(p.v), go = to<T>(p.go);
    auto mask = c.masked ? to<T>(p.mask) : std::vector<T>(1);
    std::vector<int> ends = c.masked ? p.ends : std::vector<int>(1);
    int has = c.masked ? 1 : 0;
    std::vector<T> o(q.size()), dq(q.size()), dk(kk.size()), dv(v.size());
    std::vector<float> stats(2 * (size_t)bg * p.m), dsum((size_t)bg * p.m);
    dim3 rows{(unsigned)((p.m + FA_ROWS - 1) / FA_ROWS), (unsigned)bg, 1};
    dim3 row_threads{(unsigned)(FA_ROWS * tpr), 1, 1};
    dim3 keys{(unsigned)((c.s + FA_KEY_ROWS - 1) / FA_KEY_ROWS), (unsigned)bg, 1};
    dim3 key_threads{(unsigned)(FA_KEY_ROWS * tpr), 1, 1};
    emu::launch(rows, row_threads, [&] {
        k.fwd(q.data(), kk.data(), v.data(), mask.data(), ends.data(), has, o.data(), stats.data(),
              p.m, c.s, c.t, c.g, p.mb, scale);
    });
    emu::launch(rows, row_threads, [&] {
        k.dq(q.data(), kk.data(), v.data(), mask.data(), ends.data(), has, o.data(), go.data(),
             stats.data(), dq.data(), dsum.data(), p.m, c.s, c.t, c.g, p.mb, scale);
    });
    emu::launch(keys, key_threads, [&] {
        k.dkv(q.data(), kk.data(), v.data(), mask.data(), ends.data(), has, go.data(), stats.data(),
              dsum.data(), dk.data(), dv.data(), p.m, c.s, c.t, c.g, p.mb, scale);
    });
    return {from(o), from(dq), from(dk), from(dv)};
}

// The reference computed from the inputs as rounded to T (so bf16 is judged on its
// arithmetic, not on the rounding of its inputs).
template <typename T>
Problem rounded_problem(Problem p) {
    for (auto* x : {&p.q, &p.k, &p.v, &p.go}) *x = rounded<T>(*x);
    return p;
}

template <typename T>
bool check(const Case& c, const char* dtype, double tol, std::mt19937& rng) {
    Problem p = rounded_problem<T>(make(c, rng));
    Result want = reference(p), got = run<T>(p);
    const char* names[] = {"o", "dq", "dk", "dv"};
    const std::vector<double>* w[] = {&want.o, &want.dq, &want.dk, &want.dv};
    const std::vector<double>* g[] = {&got.o, &got.dq, &got.dk, &got.dv};
    bool ok = true;
    std::printf("%-34s %-4s", c.name.c_str(), dtype);
    for (int i = 0; i < 4; ++i) {
        double e = rel_diff(*g[i], *w[i]);
        std::printf("  %s %.2e", names[i], e);
        ok = ok && e <= tol;
    }
    std::printf("  %s\n", ok ? "ok" : "FAILED");
    return ok;
}

}  // namespace

int main(int argc, char** argv) {
    unsigned seed = argc > 1 ? (unsigned)std::atoi(argv[1]) : 1;
    emu::rng.seed(seed);
    std::mt19937 rng(seed);
    std::vector<Case> cases = {
        // Partial row blocks and key tiles; batch 1 left-padded, so its first rows see
        // no key at all (uniform softmax over every key).
        {"causal, left-padded, GQA 3", 2, 2, 3, 37, 37, 64, true, false, {0, 5}},
        // Several row blocks and key blocks; the dK/dV kernel skips row tiles.
        {"causal, 130 positions", 1, 1, 3, 130, 130, 64, true, false, {0}},
        // Head dim 128: four threads per row.
        {"causal, head dim 128, padded 40", 1, 2, 2, 70, 70, 128, true, false, {40}},
        // Keys beyond the queries (a cached prefix) and one mask for the batch.
        {"20 queries over 50 keys, shared mask", 2, 1, 3, 20, 50, 64, true, true, {3}},
        {"no mask", 1, 3, 1, 45, 45, 64, false, false, {}},
    };
    bool ok = true;
    for (const Case& c : cases) ok = check<float>(c, "f32", 2e-5, rng) && ok;
    for (const Case& c : cases) ok = check<bf16_t>(c, "bf16", 4e-2, rng) && ok;
    return ok ? 0 : 1;
}
