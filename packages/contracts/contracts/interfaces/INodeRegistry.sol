// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

/// @title INodeRegistry
/// @notice What policies and the access controller read about executors and verifiers.
interface INodeRegistry {
    /// @notice A node's record. `stake` and `unbonding` are in wei.
    struct Node {
        uint128 stake;
        uint64 reputation;
        uint8 roles;
        bool registered;
        uint128 unbonding;
        uint64 unbondingReleaseAt;
        bytes32 attestationKeyHash;
        bytes peerId;
    }

    /// @notice Reputation of `node` (0 when unknown).
    function reputationOf(address node) external view returns (uint256);

    /// @notice True when `node` is registered with every bit of `role` and at least the minimum stake.
    function isActive(address node, uint8 role) external view returns (bool);

    /// @notice True when `node` holds `role` now or dropped it less than `unbondingDelay` ago, and
    ///         its stake plus unbonding funds reach the minimum (what a fast-path audit relies on).
    function isBound(address node, uint8 role) external view returns (bool);

    /// @notice True when `node` has funds unbonding.
    function isLeaving(address node) external view returns (bool);

    /// @notice Sends the AccessController (the only allowed caller) up to `amount` of `node`'s
    ///         stake then unbonding funds, for a fast-path audit's fee shortfall.
    function drawForAudit(address node, uint256 amount) external returns (uint256 drawn);

    /// @notice Seconds between a node's `requestUnbond` and its `withdraw`.
    function unbondingDelay() external view returns (uint256);

    /// @notice The full record of `node`.
    function getNode(address node) external view returns (Node memory);
}
