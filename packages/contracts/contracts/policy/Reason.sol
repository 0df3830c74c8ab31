// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

/// @title Reason
/// @notice Stable reason codes returned by policies and carried by `AccessDenied`.
///         A code never changes meaning once published. 128-255 are free for custom policies.
library Reason {
    uint8 internal constant OK = 0;
    uint8 internal constant CAPSULE_NOT_FOUND = 1;
    uint8 internal constant CAPSULE_REVOKED = 2;
    uint8 internal constant EXECUTOR_NOT_REGISTERED = 3;
    uint8 internal constant POLICY_ERROR = 4;
    uint8 internal constant INSUFFICIENT_DEPOSIT = 5;
    uint8 internal constant EXECUTOR_LEAVING = 6;
    uint8 internal constant REPUTATION_TOO_LOW = 10;
    uint8 internal constant NOT_ALLOWLISTED = 11;
    uint8 internal constant DENYLISTED = 12;
    uint8 internal constant WRONG_ENVIRONMENT = 13;
    uint8 internal constant TOO_EARLY = 14;
    uint8 internal constant TOO_LATE = 15;
    uint8 internal constant MAX_RUNS_REACHED = 16;
    uint8 internal constant FEE_TOO_LOW = 17;
    uint8 internal constant NEGATED_CONDITION_MET = 18;
    uint8 internal constant DENIED = 19;
    uint8 internal constant NOT_ATTESTED = 20;
}
