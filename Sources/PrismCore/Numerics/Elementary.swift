// exp and log in pure Swift. PrismCore imports nothing but the standard
// library, which has no transcendental functions on Linux, so the few it needs
// are here. Both are accurate to a few ulp (tests compare them with libm).

/// Elementary functions in pure Swift, named to stay clear of libm's.
public enum Elementary {
    /// e^x.
    ///
    /// Cody–Waite reduction x = k·ln2 + r with |r| <= ln2/2, a degree-13 Taylor
    /// polynomial for e^r (truncation error < 2e-16), then scaling by 2^k.
    @inlinable
    public static func exp(_ x: Double) -> Double {
        if x.isNaN { return x }
        if x > 709.782712893384 { return .infinity }
        if x < -745.1332191019412 { return 0 }
        let ln2Hi = 6.93147180369123816490e-01
        let ln2Lo = 1.90821492927058770002e-10
        let k = (x * 1.4426950408889634).rounded()
        let r = (x - k * ln2Hi) - k * ln2Lo
        // sum_{n=0}^{13} r^n / n! by Horner's rule, coefficients 1/n!.
        var p = 1.6059043836821613e-10
        p = p * r + 2.08767569878681e-09
        p = p * r + 2.505210838544172e-08
        p = p * r + 2.755731922398589e-07
        p = p * r + 2.7557319223985893e-06
        p = p * r + 2.48015873015873e-05
        p = p * r + 0.0001984126984126984
        p = p * r + 0.001388888888888889
        p = p * r + 0.008333333333333333
        p = p * r + 0.041666666666666664
        p = p * r + 0.16666666666666666
        p = p * r + 0.5
        p = p * r + 1.0
        p = p * r + 1.0
        return scaleByPowerOfTwo(p, Int(k))
    }

    /// ln x (NaN for x < 0, -inf for 0).
    ///
    /// x = m·2^e with m in [1/√2, √2); ln m = 2·atanh(s), s = (m-1)/(m+1),
    /// |s| < 0.172, summed to s^23 (error < 1e-17).
    @inlinable
    public static func log(_ x: Double) -> Double {
        if x.isNaN || x < 0 { return .nan }
        if x == 0 { return -.infinity }
        if x.isInfinite { return x }
        var m = x.significand
        var e = Double(x.exponent)
        if m > 1.4142135623730951 {
            m /= 2
            e += 1
        }
        let s = (m - 1) / (m + 1)
        let s2 = s * s
        // sum_{n=1}^{11} s^(2n) / (2n+1) by Horner's rule.
        var sum = 1.0 / 23
        sum = sum * s2 + 1.0 / 21
        sum = sum * s2 + 1.0 / 19
        sum = sum * s2 + 1.0 / 17
        sum = sum * s2 + 1.0 / 15
        sum = sum * s2 + 1.0 / 13
        sum = sum * s2 + 1.0 / 11
        sum = sum * s2 + 1.0 / 9
        sum = sum * s2 + 1.0 / 7
        sum = sum * s2 + 1.0 / 5
        sum = sum * s2 + 1.0 / 3
        sum *= s2
        let lnm = 2 * s * (1 + sum)
        return e * 6.93147180369123816490e-01 + (e * 1.90821492927058770002e-10 + lnm)
    }

    /// The logistic function 1 / (1 + e^-x), without overflow for large |x|.
    @inlinable
    public static func sigmoid(_ x: Double) -> Double {
        if x >= 0 { return 1 / (1 + exp(-x)) }
        let e = exp(x)
        return e / (1 + e)
    }
}

/// x · 2^k, exact unless the result under- or overflows.
@usableFromInline
func scaleByPowerOfTwo(_ x: Double, _ k: Int) -> Double {
    // Two steps keep 2^k representable when k is near the exponent limits.
    let half = k / 2
    return x * Double(sign: .plus, exponent: half, significand: 1)
        * Double(sign: .plus, exponent: k - half, significand: 1)
}
