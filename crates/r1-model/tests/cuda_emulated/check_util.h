// What the emulated kernel checks share: conversion between f64 test data and the
// kernels' f32 / bf16 buffers (with the kernels' own ld/st), and the error measure.
// Include after the kernel sources.
#pragma once
#include <vector>

template <typename T>
std::vector<T> to(const std::vector<double>& x) {
    std::vector<T> out(x.size());
    for (size_t i = 0; i < x.size(); ++i) st(out.data(), (long long)i, (float)x[i]);
    return out;
}

template <typename T>
std::vector<double> from(const std::vector<T>& x) {
    std::vector<double> out(x.size());
    for (size_t i = 0; i < x.size(); ++i) out[i] = ld(x.data(), (long long)i);
    return out;
}

// Largest difference relative to the reference's scale (at least 1).
inline double rel_diff(const std::vector<double>& a, const std::vector<double>& b) {
    double scale = 1, diff = 0;
    for (size_t i = 0; i < a.size(); ++i) {
        scale = std::max(scale, std::abs(b[i]));
        double e = std::abs(a[i] - b[i]);
        if (!(e <= diff)) diff = e;  // a NaN counts as a failure
    }
    return diff / scale;
}


// `x` as the kernels see it in T (bf16 inputs are themselves rounded, and a check
// judges the kernel's arithmetic, not that rounding).
template <typename T>
std::vector<double> rounded(const std::vector<double>& x) {
    return from(to<T>(x));
}
