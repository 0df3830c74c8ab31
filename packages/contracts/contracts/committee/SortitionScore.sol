// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

/// @title SortitionScore
/// @notice The committee sortition score of a VRF output, bit for bit the committee package's
///         `sortitionScore` (ADR 0024): −log₂(u) · 2⁹⁶ / weight with u = (beta + 1) / 2²⁵⁶ and
///         −log₂(u) in fixed point with 32 fraction bits, by repeated squaring of a 26-bit
///         mantissa. Lower wins; the n lowest of a job form its committee. 2⁹⁶ (not 2⁶⁴: ADR 0024,
///         amended 2026-12-06) keeps the winning scores, about 2¹²⁸ / Σweight, many bits wide for
///         any stake a chain can hold.
library SortitionScore {
    uint256 internal constant FRACTION_BITS = 32;
    uint256 internal constant MANTISSA_BITS = 25;

    /// @notice The weight is 0 (no stake or no reputation): not eligible.
    error ZeroWeight();

    /// @notice −log₂((beta + 1) / 2²⁵⁶) with 32 fraction bits.
    function negLog2Uniform(bytes32 beta) internal pure returns (uint256) {
        if (uint256(beta) == type(uint256).max) return 0;
        uint256 m = uint256(beta) + 1;
        uint256 e = _msb(m);
        uint256 x = e >= MANTISSA_BITS ? m >> (e - MANTISSA_BITS) : m << (MANTISSA_BITS - e);
        uint256 frac = 0;
        for (uint256 bit = FRACTION_BITS; bit > 0; bit--) {
            x = (x * x) >> MANTISSA_BITS;
            if (x >= 1 << (MANTISSA_BITS + 1)) {
                x >>= 1;
                frac |= 1 << (bit - 1);
            }
        }
        return ((256 - e) << FRACTION_BITS) - frac;
    }

    /// @notice The score of `beta` for a node of `weight` (stake × reputation).
    function score(bytes32 beta, uint256 weight) internal pure returns (uint256) {
        if (weight == 0) revert ZeroWeight();
        return (negLog2Uniform(beta) << 96) / weight;
    }

    /// @dev Index of the most significant set bit of m > 0.
    function _msb(uint256 m) private pure returns (uint256 r) {
        for (uint256 step = 128; step > 0; step >>= 1) {
            if (m >> step != 0) {
                m >>= step;
                r += step;
            }
        }
    }
}
