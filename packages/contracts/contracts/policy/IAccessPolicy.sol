// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

/// @notice Everything the access controller knows about one request, handed to the policy.
/// @param ephemeralKey The executor's X25519 public key for this run.
/// @param measurement  The environment measurement the executor declares (attestation proves it later).
/// @param feePaid      Wei paid into escrow for this run (msg.value, or the deposit taken on the fast path).
/// @param runCount     Grants already made for this capsule (chain and fast path together).
/// @param fastPath     True when a keyguard records a grant it served off-chain.
/// @param jobParams    Opaque job parameters supplied by the executor.
struct AccessRequest {
    bytes32 ephemeralKey;
    bytes32 measurement;
    uint256 feePaid;
    uint256 runCount;
    bool fastPath;
    bytes jobParams;
}

/// @title IAccessPolicy
/// @notice An unlock rule. Implementations MUST be views with no other inputs than the
///         arguments, chain state and `block.timestamp`, so that a keyguard evaluating them
///         with `eth_call` gets the answer the chain would give.
interface IAccessPolicy {
    /// @return allowed True when the request may be granted.
    /// @return reason  `Reason.OK` when allowed, otherwise a code from `Reason` (or 128-255 for custom codes).
    function evaluate(bytes32 capsuleId, address executor, AccessRequest calldata request)
        external
        view
        returns (bool allowed, uint8 reason);
}
