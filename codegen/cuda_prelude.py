"""The CUDA C prelude every generated kernel file starts with.

It defines the element types and the helpers generated code calls, with the semantics
of the LLVM target (codegen/llvm_expr.py): float16/bfloat16 live in float registers and
round on stores and casts; integer division by zero gives 0; shifts past the width
saturate; float -> int conversions saturate (NaN -> 0); float min/max propagate NaN.
The same text compiles with NVRTC for a GPU and with g++ for the emulator
(runtime/aic_cuda_emu.h defines the CUDA builtins there), so it uses no inline PTX except
inside `#ifndef AIC_EMULATE` blocks, whose emulated versions live in the emulator.
"""

PRELUDE = r"""
#ifndef AIC_EMULATE
#define AIC_DEVICE __device__ __forceinline__
#define AIC_SMEM_DECL(name) extern __shared__ __align__(16) unsigned char name[] /* all shared memory, dynamic */
typedef signed char int8_t;
typedef short int16_t;
typedef int int32_t;
typedef long long int64_t;
typedef unsigned char uint8_t;
typedef unsigned short uint16_t;
typedef unsigned int uint32_t;
typedef unsigned long long uint64_t;
#endif

/* float16 / bfloat16 storage <-> float registers, round to nearest even (NaN stays NaN). */
AIC_DEVICE float aic_h2f(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16, exp = (h >> 10) & 0x1fu, man = h & 0x3ffu, bits;
    if (exp == 0x1f) bits = sign | 0x7f800000u | (man << 13);
    else if (exp != 0) bits = sign | ((exp + 112u) << 23) | (man << 13);
    else if (man == 0) bits = sign;
    else {
        int e = -1;
        do { man <<= 1; e++; } while (!(man & 0x400u));
        bits = sign | ((uint32_t)(112 - e) << 23) | ((man & 0x3ffu) << 13);
    }
    return __int_as_float((int)bits);
}
AIC_DEVICE uint16_t aic_f2h(float f) {
    uint32_t x = (uint32_t)__float_as_int(f), sign = (x >> 16) & 0x8000u, ax = x & 0x7fffffffu;
    if (ax >= 0x7f800000u) return (uint16_t)(sign | 0x7c00u | (ax > 0x7f800000u ? 0x200u | ((ax >> 13) & 0x3ffu) : 0u));
    if (ax >= 0x477ff000u) return (uint16_t)(sign | 0x7c00u); /* rounds to >= 65520: infinity */
    if (ax < 0x38800000u) { /* subnormal half (or zero) */
        if (ax < 0x33000000u) return (uint16_t)sign;
        uint32_t man = (ax & 0x7fffffu) | 0x800000u, shift = 126u - (ax >> 23);
        uint32_t q = man >> shift, rem = man & ((1u << shift) - 1u), half = 1u << (shift - 1u);
        q += (rem > half || (rem == half && (q & 1u)));
        return (uint16_t)(sign | q);
    }
    uint32_t r = ax + 0xfffu + ((ax >> 13) & 1u) - (112u << 23);
    return (uint16_t)(sign | (r >> 13));
}
AIC_DEVICE float aic_bf2f(uint16_t h) { return __int_as_float((int)((uint32_t)h << 16)); }
AIC_DEVICE uint16_t aic_f2bf(float f) {
    uint32_t x = (uint32_t)__float_as_int(f);
    if ((x & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((x >> 16) | 0x40u);
    return (uint16_t)((x + 0x7fffu + ((x >> 16) & 1u)) >> 16);
}
AIC_DEVICE float aic_round_f16(float f) { return aic_h2f(aic_f2h(f)); }
AIC_DEVICE float aic_round_bf16(float f) { return aic_bf2f(aic_f2bf(f)); }
AIC_DEVICE float aic_f64_to_f16(double d) { /* one rounding: truncate to float, sticky bit, then round */
    float f = (float)d;
    if (d == d && (double)f != d) {
        uint32_t b = (uint32_t)__float_as_int(f);
        if (fabs((double)f) > fabs(d)) b -= 1u;
        f = __int_as_float((int)(b | 1u));
    }
    return aic_round_f16(f);
}

/* Integer division and remainder: truncating, x / 0 == 0, INT_MIN / -1 wraps. */
template <class T> AIC_DEVICE T aic_div(T a, T b) {
    if (b == 0) return 0;
    if ((T)-1 < (T)0 && b == (T)-1) return (T)(0 - (unsigned long long)a);
    return a / b;
}
template <class T> AIC_DEVICE T aic_mod(T a, T b) {
    if (b == 0 || ((T)-1 < (T)0 && b == (T)-1)) return 0;
    return a % b;
}
template <class T> AIC_DEVICE T aic_shl(T a, T b) {
    return (unsigned long long)b < 8 * sizeof(T) ? (T)((unsigned long long)a << b) : (T)0;
}
template <class T> AIC_DEVICE T aic_shr(T a, T b) {
    if ((unsigned long long)b < 8 * sizeof(T)) return (T)(a >> b);
    return (T)-1 < (T)0 && a < 0 ? (T)-1 : (T)0;
}
template <class T> AIC_DEVICE T aic_iabs(T a) { return a < 0 ? (T)(0 - (unsigned long long)a) : a; }
template <class T> AIC_DEVICE T aic_imin(T a, T b) { return a < b ? a : b; }
template <class T> AIC_DEVICE T aic_imax(T a, T b) { return a > b ? a : b; }

/* NaN-propagating float min/max (llvm.minimum/maximum: -0 < +0). */
AIC_DEVICE float aic_fminf(float a, float b) {
    if (a != a || b != b) return __int_as_float(0x7fc00000);
    if (a == b) return __int_as_float(__float_as_int(a) | __float_as_int(b));
    return a < b ? a : b;
}
AIC_DEVICE float aic_fmaxf(float a, float b) {
    if (a != a || b != b) return __int_as_float(0x7fc00000);
    if (a == b) return __int_as_float(__float_as_int(a) & __float_as_int(b));
    return a > b ? a : b;
}
AIC_DEVICE double aic_fmin(double a, double b) {
    if (a != a || b != b) return __longlong_as_double(0x7ff8000000000000LL);
    if (a == b) return __longlong_as_double(__double_as_longlong(a) | __double_as_longlong(b));
    return a < b ? a : b;
}
AIC_DEVICE double aic_fmax(double a, double b) {
    if (a != a || b != b) return __longlong_as_double(0x7ff8000000000000LL);
    if (a == b) return __longlong_as_double(__double_as_longlong(a) & __double_as_longlong(b));
    return a > b ? a : b;
}

/* float -> int: truncate, saturate at the range, NaN -> 0. */
template <class T> AIC_DEVICE T aic_f2i(double x, double lo, double hi, T low, T high) {
    if (x != x) return 0;
    if (x < lo) return low;
    if (x >= hi) return high;
    return (T)x;
}
"""
