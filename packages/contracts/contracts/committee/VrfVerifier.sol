// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {Secp256k1Vrf} from "./Secp256k1Vrf.sol";
import {SortitionScore} from "./SortitionScore.sol";

/// @title VrfVerifier
/// @notice Checks ECVRF-SECP256K1-SHA256-TAI proofs made by the committee package (packages/committee) (`onchainProof`
///         gives the arguments). `verify` is a view for callers; `submit` records the output in
///         an event, the shape a sortition contract takes (a verifier proves its ticket for a job).
contract VrfVerifier {
    /// @notice A proof verified: `keyHash` = keccak256(pk x ‖ y), `alphaHash` = keccak256(alpha).
    event VrfOutput(bytes32 indexed keyHash, bytes32 indexed alphaHash, bytes32 beta);

    /// @notice The VRF output of `alpha` under `pk`; reverts with a `Secp256k1Vrf` error otherwise.
    function verify(uint256[2] calldata pk, bytes calldata alpha, Secp256k1Vrf.Proof calldata proof)
        external
        view
        returns (bytes32 beta)
    {
        return Secp256k1Vrf.verify(pk, alpha, proof);
    }

    /// @notice Verifies a ticket and returns its output and its sortition score for `weight`
    ///         (stake × reputation); reverts `SortitionScore.ZeroWeight` for weight 0.
    function ticketScore(
        uint256[2] calldata pk,
        bytes calldata alpha,
        Secp256k1Vrf.Proof calldata proof,
        uint256 weight
    ) external view returns (bytes32 beta, uint256 score) {
        beta = Secp256k1Vrf.verify(pk, alpha, proof);
        score = SortitionScore.score(beta, weight);
    }

    /// @notice The sortition score of an output already verified (see `SortitionScore`).
    function sortitionScore(bytes32 beta, uint256 weight) external pure returns (uint256) {
        return SortitionScore.score(beta, weight);
    }

    /// @notice Verifies like `verify` and emits `VrfOutput`.
    function submit(uint256[2] calldata pk, bytes calldata alpha, Secp256k1Vrf.Proof calldata proof)
        external
        returns (bytes32 beta)
    {
        beta = Secp256k1Vrf.verify(pk, alpha, proof);
        emit VrfOutput(keccak256(abi.encodePacked(pk[0], pk[1])), keccak256(alpha), beta);
    }
}
