// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

/// @title Guarded
/// @notice Single-admin ownership plus a transient-storage reentrancy lock, shared by the
///         Digicap contracts that hold ETH.
abstract contract Guarded {
    /// @notice The account allowed to change roles and parameters.
    address public admin;

    bool private transient _locked;

    event AdminChanged(address indexed previousAdmin, address indexed newAdmin);

    error NotAdmin(address caller);
    error ZeroAddress();
    error Reentrancy();
    error TransferFailed(address to, uint256 amount);

    constructor(address admin_) {
        if (admin_ == address(0)) revert ZeroAddress();
        admin = admin_;
        emit AdminChanged(address(0), admin_);
    }

    modifier onlyAdmin() {
        if (msg.sender != admin) revert NotAdmin(msg.sender);
        _;
    }

    modifier nonReentrant() {
        if (_locked) revert Reentrancy();
        _locked = true;
        _;
        _locked = false;
    }

    /// @notice Hands the admin role to `newAdmin`.
    function setAdmin(address newAdmin) external onlyAdmin {
        if (newAdmin == address(0)) revert ZeroAddress();
        emit AdminChanged(admin, newAdmin);
        admin = newAdmin;
    }

    function _send(address to, uint256 amount) internal {
        (bool ok,) = to.call{value: amount}("");
        if (!ok) revert TransferFailed(to, amount);
    }
}
