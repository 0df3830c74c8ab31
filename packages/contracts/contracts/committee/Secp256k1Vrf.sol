// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

/// @title Secp256k1Vrf
/// @notice Verifies ECVRF-SECP256K1-SHA256-TAI proofs (RFC 9381 structure, suite_string 0xFE,
///         the suite of the committee package (packages/committee)) without doing a scalar multiplication on chain.
///         The prover adds three witness points: U = s·G − c·Y, s·H and c·Gamma. Each is checked
///         with one `ecrecover`: for a point R with x-coordinate r < n, ecrecover(h, v, r, σ)
///         recovers the address of r⁻¹·(σ·R − h·G), so the right (h, σ) make it the address of
///         a·R + b·G for any scalars a, b (the trick of Chainlink's VRF.sol and witnet's
///         vrf-solidity). V = s·H − c·Gamma is then one affine addition.
/// @dev Soundness: a witness is accepted when its Ethereum address (160 bits of keccak) equals
///      the recovered one; the challenge c binds every witness, so forging one costs ~2¹⁶⁰
///      hashes. Keys, H and Gamma with x ≥ n (probability ~2⁻¹²⁸) are refused, not mis-verified.
library Secp256k1Vrf {
    /// @dev Field prime p and group order n of secp256k1.
    uint256 internal constant P = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEFFFFFC2F;
    uint256 internal constant N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141;
    /// @dev (p + 1) / 4: y = rhs^((p+1)/4) is a square root when one exists (p ≡ 3 mod 4).
    uint256 internal constant SQRT_EXP = 0x3FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFBFFFFF0C;
    uint8 internal constant SUITE = 0xFE;

    /// @notice A proof in the form the contract checks: pi's Gamma, c and s plus the witnesses.
    struct Proof {
        uint256[2] gamma;
        uint256 c;
        uint256 s;
        /// @dev U = s·G − c·Y.
        uint256[2] u;
        /// @dev s·H, H = encode_to_curve(PK, alpha).
        uint256[2] sH;
        /// @dev c·Gamma.
        uint256[2] cGamma;
    }

    /// @notice A point is not an affine point of secp256k1 (0 key, 1 Gamma, 2 U, 3 s·H, 4 c·Gamma).
    error VrfInvalidPoint(uint8 which);
    /// @notice c is 0 or not 16 bytes, or s is 0 or not below n.
    error VrfInvalidScalar();
    /// @notice The key (0), Gamma (1) or H (5) has x ≥ n: ecrecover cannot check it (probability ~2⁻¹²⁸).
    error VrfUnsupportedPoint(uint8 which);
    /// @notice A witness is not the product it claims to be (2 U, 3 s·H, 4 c·Gamma), or s·H = ±c·Gamma.
    error VrfWitnessMismatch(uint8 which);
    /// @notice The recomputed challenge differs: not a proof for this key and input.
    error VrfChallengeMismatch();
    /// @notice encode_to_curve found no point in 256 counters (never for a real input).
    error VrfEncodeFailed();

    /// @notice Verifies `proof` for `alpha` under the public key `pk` (affine x, y).
    /// @return beta The VRF output, sha256(0xFE ‖ 0x03 ‖ compressed Gamma ‖ 0x00).
    function verify(uint256[2] memory pk, bytes memory alpha, Proof memory proof)
        internal
        view
        returns (bytes32 beta)
    {
        _requireOnCurve(pk, 0);
        _requireOnCurve(proof.gamma, 1);
        _requireOnCurve(proof.u, 2);
        _requireOnCurve(proof.sH, 3);
        _requireOnCurve(proof.cGamma, 4);
        if (proof.c == 0 || proof.c >> 128 != 0 || proof.s == 0 || proof.s >= N) {
            revert VrfInvalidScalar();
        }
        bytes memory pkString = _compress(pk);
        uint256[2] memory h = encodeToCurve(pkString, alpha);

        // U = s·G − c·Y: R = Y, σ = −c·Y.x, h = −s·Y.x.
        if (pk[0] >= N) revert VrfUnsupportedPoint(0);
        address u = ecrecover(
            bytes32(N - mulmod(proof.s, pk[0], N)),
            _v(pk),
            bytes32(pk[0]),
            bytes32(mulmod(N - proof.c, pk[0], N))
        );
        if (u != _address(proof.u)) revert VrfWitnessMismatch(2);
        if (!_isProduct(proof.sH, h, proof.s, 5)) revert VrfWitnessMismatch(3);
        if (!_isProduct(proof.cGamma, proof.gamma, proof.c, 1)) revert VrfWitnessMismatch(4);

        uint256[2] memory v = _subtract(proof.sH, proof.cGamma);
        bytes32 digest = sha256(
            abi.encodePacked(
                SUITE,
                uint8(0x02),
                pkString,
                _compress(h),
                _compress(proof.gamma),
                _compress(proof.u),
                _compress(v),
                uint8(0x00)
            )
        );
        if (uint256(digest) >> 128 != proof.c) revert VrfChallengeMismatch();
        return sha256(abi.encodePacked(SUITE, uint8(0x03), _compress(proof.gamma), uint8(0x00)));
    }

    /// @notice encode_to_curve by try-and-increment with salt = compressed PK (RFC 9381 §5.4.1.1).
    function encodeToCurve(bytes memory pkString, bytes memory alpha)
        internal
        view
        returns (uint256[2] memory point)
    {
        for (uint256 ctr = 0; ctr < 256; ctr++) {
            uint256 x = uint256(
                sha256(abi.encodePacked(SUITE, uint8(0x01), pkString, alpha, uint8(ctr), uint8(0x00)))
            );
            if (x >= P) continue;
            uint256 rhs = addmod(mulmod(mulmod(x, x, P), x, P), 7, P);
            uint256 y = _modexp(rhs, SQRT_EXP);
            if (mulmod(y, y, P) != rhs) continue;
            // The 0x02 prefix: the even root.
            point[0] = x;
            point[1] = y & 1 == 0 ? y : P - y;
            return point;
        }
        revert VrfEncodeFailed();
    }

    /// @dev Whether `product` = k·point, by ecrecover(0, v, point.x, k·point.x).
    function _isProduct(uint256[2] memory product, uint256[2] memory point, uint256 k, uint8 which)
        private
        pure
        returns (bool)
    {
        if (point[0] >= N) revert VrfUnsupportedPoint(which);
        address a = ecrecover(bytes32(0), _v(point), bytes32(point[0]), bytes32(mulmod(k, point[0], N)));
        return a != address(0) && a == _address(product);
    }

    /// @dev a − b in affine coordinates; a.x = b.x (a = ±b) is refused.
    function _subtract(uint256[2] memory a, uint256[2] memory b)
        private
        view
        returns (uint256[2] memory r)
    {
        if (a[0] == b[0]) revert VrfWitnessMismatch(3);
        uint256 negBy = P - b[1];
        uint256 lambda = mulmod(addmod(negBy, P - a[1], P), _modexp(addmod(b[0], P - a[0], P), P - 2), P);
        r[0] = addmod(mulmod(lambda, lambda, P), P - addmod(a[0], b[0], P), P);
        r[1] = addmod(mulmod(lambda, addmod(a[0], P - r[0], P), P), P - a[1], P);
    }

    function _requireOnCurve(uint256[2] memory pt, uint8 which) private pure {
        if (
            pt[0] >= P || pt[1] >= P
                || mulmod(pt[1], pt[1], P) != addmod(mulmod(mulmod(pt[0], pt[0], P), pt[0], P), 7, P)
        ) revert VrfInvalidPoint(which);
    }

    function _compress(uint256[2] memory pt) private pure returns (bytes memory) {
        return abi.encodePacked(uint8(2 + (pt[1] & 1)), pt[0]);
    }

    function _v(uint256[2] memory pt) private pure returns (uint8) {
        return uint8(27 + (pt[1] & 1));
    }

    function _address(uint256[2] memory pt) private pure returns (address) {
        return address(uint160(uint256(keccak256(abi.encodePacked(pt[0], pt[1])))));
    }

    /// @dev base^exponent mod p with the modexp precompile (0x05).
    function _modexp(uint256 base, uint256 exponent) private view returns (uint256 result) {
        (bool ok, bytes memory out) =
            address(0x05).staticcall(abi.encodePacked(uint256(32), uint256(32), uint256(32), base, exponent, P));
        if (!ok || out.length != 32) revert VrfEncodeFailed();
        result = uint256(bytes32(out));
    }
}
