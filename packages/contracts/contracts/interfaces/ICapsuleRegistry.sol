// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

/// @title ICapsuleRegistry
/// @notice What the access controller reads about capsules.
interface ICapsuleRegistry {
    /// @notice A capsule's on-chain record.
    struct Capsule {
        address policy;
        uint40 registeredAt;
        bool revoked;
        uint48 runs;
        address owner;
        bytes32 plaintextHash;
        bytes32 keyguardKeyId;
        string cid;
        bytes keyguardPeerId;
    }

    /// @notice The policy of `capsuleId`, whether it is revoked, and the grants made so far
    ///         (policy is zero when unknown).
    function accessInfo(bytes32 capsuleId) external view returns (address policy, bool revoked, uint256 runs);

    /// @notice Called by the access controller when it grants: returns `accessInfo` as it was and,
    ///         for a live capsule, counts one more run.
    function recordRun(bytes32 capsuleId) external returns (address policy, bool revoked, uint256 runIndex);

    /// @notice The owner of `capsuleId` (zero when unknown).
    function ownerOf(bytes32 capsuleId) external view returns (address);

    /// @notice True when `operator` may act as `owner`'s keyguard.
    function isOperator(address owner, address operator) external view returns (bool);
}
