// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

/// @title Guarded
/// @notice Single-admin ownership behind a timelock, plus a transient-storage reentrancy lock,
///         shared by the Digicap contracts that hold ETH.
/// @dev Every admin call that changes who holds power (`setAdmin`, naming managers or settlers)
///      is `timelocked`: the admin first queues the exact calldata (`queueAdminCall`, public in
///      the `AdminCallQueued` event), and may send it only `adminDelay` seconds later. Anyone who
///      dislikes a queued change can leave before it takes effect (the deriving contract makes
///      the delay longer than its own exit delays). `renounceAdmin` ends all admin power at once
///      (ADR 0027).
abstract contract Guarded {
    /// @notice The account allowed to queue and send admin calls (zero once renounced).
    address public admin;
    /// @notice Seconds between queueing an admin call and sending it.
    uint256 public immutable adminDelay;
    /// @notice When each queued admin call (keccak256 of its calldata) may be sent; 0 = not queued.
    mapping(bytes32 callHash => uint256) public adminCallReadyAt;

    bool private transient _locked;

    event AdminChanged(address indexed previousAdmin, address indexed newAdmin);
    event AdminCallQueued(bytes32 indexed callHash, bytes data, uint256 readyAt);
    event AdminCallCancelled(bytes32 indexed callHash);

    error NotAdmin(address caller);
    error ZeroAddress();
    error Reentrancy();
    error TransferFailed(address to, uint256 amount);
    error AdminCallNotQueued(bytes32 callHash);
    error AdminCallNotReady(bytes32 callHash, uint256 readyAt);

    constructor(address admin_, uint256 adminDelay_) {
        if (admin_ == address(0)) revert ZeroAddress();
        admin = admin_;
        adminDelay = adminDelay_;
        emit AdminChanged(address(0), admin_);
    }

    modifier onlyAdmin() {
        if (msg.sender != admin) revert NotAdmin(msg.sender);
        _;
    }

    /// @dev The admin, sending calldata it queued at least `adminDelay` ago (used once).
    modifier timelocked() {
        if (msg.sender != admin) revert NotAdmin(msg.sender);
        bytes32 callHash = keccak256(msg.data);
        uint256 readyAt = adminCallReadyAt[callHash];
        if (readyAt == 0) revert AdminCallNotQueued(callHash);
        if (block.timestamp < readyAt) revert AdminCallNotReady(callHash, readyAt);
        delete adminCallReadyAt[callHash];
        _;
    }

    modifier nonReentrant() {
        if (_locked) revert Reentrancy();
        _locked = true;
        _;
        _locked = false;
    }

    /// @notice Queues `data` (the full calldata of a timelocked call on this contract) to be
    ///         sent after `adminDelay`. Queueing the same calldata again restarts its clock.
    function queueAdminCall(bytes calldata data) external onlyAdmin returns (uint256 readyAt) {
        bytes32 callHash = keccak256(data);
        readyAt = block.timestamp + adminDelay;
        // A zero delay must still mark the call as queued.
        if (readyAt == 0) readyAt = 1;
        adminCallReadyAt[callHash] = readyAt;
        emit AdminCallQueued(callHash, data, readyAt);
    }

    /// @notice Drops a queued admin call.
    function cancelAdminCall(bytes32 callHash) external onlyAdmin {
        if (adminCallReadyAt[callHash] == 0) revert AdminCallNotQueued(callHash);
        delete adminCallReadyAt[callHash];
        emit AdminCallCancelled(callHash);
    }

    /// @notice Hands the admin role to `newAdmin` (timelocked).
    function setAdmin(address newAdmin) external timelocked {
        if (newAdmin == address(0)) revert ZeroAddress();
        emit AdminChanged(admin, newAdmin);
        admin = newAdmin;
    }

    /// @notice Gives up the admin role for good (immediate: giving up power needs no delay).
    ///         Calls still queued can then never be sent.
    function renounceAdmin() external onlyAdmin {
        emit AdminChanged(admin, address(0));
        admin = address(0);
    }

    function _send(address to, uint256 amount) internal {
        (bool ok,) = to.call{value: amount}("");
        if (!ok) revert TransferFailed(to, amount);
    }
}
