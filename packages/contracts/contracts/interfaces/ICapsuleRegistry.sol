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
        address owner;
        bytes32 plaintextHash;
        bytes32 keyguardKeyId;
        string cid;
        bytes keyguardPeerId;
    }

    /// @notice The policy of `capsuleId` and whether it is revoked (policy is zero when unknown).
    function policyOf(bytes32 capsuleId) external view returns (address policy, bool revoked);

    /// @notice The owner of `capsuleId` (zero when unknown).
    function ownerOf(bytes32 capsuleId) external view returns (address);

    /// @notice True when `operator` may act as `owner`'s keyguard.
    function isOperator(address owner, address operator) external view returns (bool);
}
