// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {ICapsuleRegistry} from "./interfaces/ICapsuleRegistry.sol";

/// @title CapsuleRegistry
/// @notice Where an owner registers a capsule: its id, policy contract, content CID,
///         plaintext hash and keyguard (peer id + key id). Only the owner updates or revokes it.
///         An owner may name operators: accounts that act as its keyguard (record fast-path grants).
///         The run count of each capsule lives in the same storage slot as its policy, so a grant
///         reads and counts it with one warm write; only the access controller that created this
///         registry may count runs.
/// @dev Capsule ids are first come, first served; a capsule's id commits to its owner-signed
///      header off-chain, so a squatter cannot produce a capsule that opens under that id.
///      Deployed by the AccessController's constructor.
contract CapsuleRegistry is ICapsuleRegistry {
    uint256 public constant MAX_CID_LENGTH = 128;
    uint256 public constant MAX_PEER_ID_LENGTH = 128;

    /// @notice The only account that may count runs (the AccessController that deployed this registry).
    address public immutable accessController;

    mapping(bytes32 => Capsule) private _capsules;
    mapping(address => mapping(address => bool)) private _operators;

    event CapsuleRegistered(
        bytes32 indexed capsuleId,
        address indexed owner,
        address indexed policy,
        string cid,
        bytes32 plaintextHash,
        bytes keyguardPeerId,
        bytes32 keyguardKeyId
    );
    event PolicyUpdated(bytes32 indexed capsuleId, address indexed previousPolicy, address indexed policy);
    event ContentUpdated(bytes32 indexed capsuleId, string cid, bytes32 plaintextHash);
    event KeyguardUpdated(bytes32 indexed capsuleId, bytes keyguardPeerId, bytes32 keyguardKeyId);
    event CapsuleRevoked(bytes32 indexed capsuleId);
    event OperatorSet(address indexed owner, address indexed operator, bool approved);

    error ZeroCapsuleId();
    error CapsuleExists(bytes32 capsuleId);
    error CapsuleNotFound(bytes32 capsuleId);
    error NotCapsuleOwner(bytes32 capsuleId, address caller);
    error CapsuleIsRevoked(bytes32 capsuleId);
    error InvalidPolicy(address policy);
    error InvalidCid(uint256 length);
    error InvalidKeyguardPeerId(uint256 length);
    error InvalidOperator(address operator);
    error NotAccessController(address caller);

    constructor() {
        accessController = msg.sender;
    }

    /// @notice Registers `capsuleId` with the caller as owner.
    function register(
        bytes32 capsuleId,
        address policy,
        string calldata cid,
        bytes32 plaintextHash,
        bytes calldata keyguardPeerId,
        bytes32 keyguardKeyId
    ) external {
        if (capsuleId == bytes32(0)) revert ZeroCapsuleId();
        Capsule storage c = _capsules[capsuleId];
        if (c.owner != address(0)) revert CapsuleExists(capsuleId);
        _checkPolicy(policy);
        _checkCid(cid);
        _checkPeerId(keyguardPeerId);
        c.policy = policy;
        c.registeredAt = uint40(block.timestamp);
        c.owner = msg.sender;
        c.plaintextHash = plaintextHash;
        c.keyguardKeyId = keyguardKeyId;
        c.cid = cid;
        c.keyguardPeerId = keyguardPeerId;
        emit CapsuleRegistered(capsuleId, msg.sender, policy, cid, plaintextHash, keyguardPeerId, keyguardKeyId);
    }

    /// @notice Replaces the capsule's policy contract.
    function updatePolicy(bytes32 capsuleId, address policy) external {
        Capsule storage c = _ownedLive(capsuleId);
        _checkPolicy(policy);
        emit PolicyUpdated(capsuleId, c.policy, policy);
        c.policy = policy;
    }

    /// @notice Points the capsule at new content (a re-upload or re-seal).
    function updateContent(bytes32 capsuleId, string calldata cid, bytes32 plaintextHash) external {
        Capsule storage c = _ownedLive(capsuleId);
        _checkCid(cid);
        c.cid = cid;
        c.plaintextHash = plaintextHash;
        emit ContentUpdated(capsuleId, cid, plaintextHash);
    }

    /// @notice Moves the capsule to another keyguard or key (key rotation).
    function updateKeyguard(bytes32 capsuleId, bytes calldata keyguardPeerId, bytes32 keyguardKeyId) external {
        Capsule storage c = _ownedLive(capsuleId);
        _checkPeerId(keyguardPeerId);
        c.keyguardPeerId = keyguardPeerId;
        c.keyguardKeyId = keyguardKeyId;
        emit KeyguardUpdated(capsuleId, keyguardPeerId, keyguardKeyId);
    }

    /// @notice Revokes the capsule for good: no grant is made for it again.
    function revoke(bytes32 capsuleId) external {
        Capsule storage c = _ownedLive(capsuleId);
        c.revoked = true;
        emit CapsuleRevoked(capsuleId);
    }

    /// @notice Lets `operator` act as the caller's keyguard (record fast-path grants), or stops it.
    function setOperator(address operator, bool approved) external {
        if (operator == address(0) || operator == msg.sender) revert InvalidOperator(operator);
        _operators[msg.sender][operator] = approved;
        emit OperatorSet(msg.sender, operator, approved);
    }

    function accessInfo(bytes32 capsuleId) external view returns (address policy, bool revoked, uint256 runs) {
        Capsule storage c = _capsules[capsuleId];
        return (c.policy, c.revoked, c.runs);
    }

    function recordRun(bytes32 capsuleId) external returns (address policy, bool revoked, uint256 runIndex) {
        if (msg.sender != accessController) revert NotAccessController(msg.sender);
        Capsule storage c = _capsules[capsuleId];
        (policy, revoked, runIndex) = (c.policy, c.revoked, c.runs);
        if (policy != address(0) && !revoked) c.runs = uint48(runIndex + 1);
    }

    function ownerOf(bytes32 capsuleId) external view returns (address) {
        return _capsules[capsuleId].owner;
    }

    function isOperator(address owner, address operator) external view returns (bool) {
        return _operators[owner][operator];
    }

    /// @notice The full record; reverts when unknown.
    function getCapsule(bytes32 capsuleId) external view returns (Capsule memory) {
        Capsule storage c = _capsules[capsuleId];
        if (c.owner == address(0)) revert CapsuleNotFound(capsuleId);
        return c;
    }

    function _ownedLive(bytes32 capsuleId) private view returns (Capsule storage c) {
        c = _capsules[capsuleId];
        if (c.owner == address(0)) revert CapsuleNotFound(capsuleId);
        if (c.owner != msg.sender) revert NotCapsuleOwner(capsuleId, msg.sender);
        if (c.revoked) revert CapsuleIsRevoked(capsuleId);
    }

    function _checkPolicy(address policy) private view {
        if (policy.code.length == 0) revert InvalidPolicy(policy);
    }

    function _checkCid(string calldata cid) private pure {
        if (bytes(cid).length == 0 || bytes(cid).length > MAX_CID_LENGTH) revert InvalidCid(bytes(cid).length);
    }

    function _checkPeerId(bytes calldata peerId) private pure {
        if (peerId.length == 0 || peerId.length > MAX_PEER_ID_LENGTH) revert InvalidKeyguardPeerId(peerId.length);
    }
}
