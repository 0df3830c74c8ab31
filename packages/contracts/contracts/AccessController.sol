// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {CapsuleRegistry} from "./CapsuleRegistry.sol";
import {ICapsuleRegistry} from "./interfaces/ICapsuleRegistry.sol";
import {INodeRegistry} from "./interfaces/INodeRegistry.sol";
import {AccessRequest, IAccessPolicy} from "./policy/IAccessPolicy.sol";
import {Reason} from "./policy/Reason.sol";
import {Guarded} from "./utils/Guarded.sol";

/// @dev The NodeRegistry's door for stake an audit drew and a refund gives back. Not in
///      INodeRegistry: policies compile against that file, and their bytecode must not change.
interface IAuditStakeReturn {
    function returnFromAudit(address node) external payable;
}

/// @title AccessController
/// @notice Turns an executor's request into a grant the keyguard can trust.
///
/// Chain path: a registered executor calls `requestAccess`; the capsule's policy decides; the
/// grant is stored and `AccessGranted` emitted, or the call reverts with `AccessDenied(reason)`.
///
/// Fast path: the executor signs an EIP-712 `AccessRequest` and sends it to the keyguard, which
/// evaluates `checkAccess` with `eth_call`, serves the key, then logs the grant here with
/// `recordFastPathGrant` (caller: the capsule owner or an operator it named). The policy is
/// evaluated again and the grant counts toward the capsule's runs; a policy that refuses it by
/// then (the key is out) records it as an overrun (`FastPathOverrun`) instead of reverting. The fee comes from the
/// executor's deposit, and what the deposit no longer covers from its bonded stake.
///
/// Audit window: a keyguard lands `recordFastPathGrant` within `auditWindow` seconds of releasing
/// a key. Nothing the executor does after the release can make that audit fail: deposits leave
/// only through `requestWithdrawal` → `withdrawDeposit` after `withdrawalDelay` (> `auditWindow`),
/// and the audit asks `NodeRegistry.isBound`, which unbonding or dropping the role cannot turn
/// false within the registry's `unbondingDelay` (> `auditWindow`). `checkAccess` (what the keyguard
/// evaluates before the release) refuses an executor whose unlocked deposit (deposit minus the
/// pending withdrawal) is below the fee, or that is leaving (docs/adr/0006).
///
/// Fees sit in escrow per grant. After `disputeWindow` the capsule owner claims undisputed
/// fees. A settler (the settlement contract, AttestationHub, which checks the evidence: a
/// committee certificate or a timeout) may lock an escrow first and then split it, or refund it
/// to the executor that paid it. Naming a settler is timelocked for longer than the dispute
/// window and the withdrawal delay (ADR 0027). Funds are conserved:
/// `address(this).balance == totalHeld`.
contract AccessController is Guarded {
    /// @notice A grant as stored (three slots, to keep `requestAccess` under 120k gas).
    ///         The measurement is not stored: it is in `AccessGranted` and bound into the grant id
    ///         (check it with `grantMeasurementMatches`). Granted at `expiresAt - grantWindow`.
    struct Grant {
        address executor;
        uint40 runIndex;
        uint40 expiresAt;
        bool fastPath;
        bytes32 capsuleId;
        bytes32 ephemeralKey;
    }

    /// @notice What an executor signs for the fast path (EIP-712 struct `AccessRequest`).
    struct SignedAccessRequest {
        bytes32 capsuleId;
        address executor;
        bytes32 ephemeralKey;
        bytes32 measurement;
        bytes32 jobParamsHash;
        uint256 fee;
        uint256 nonce;
        uint64 expiry;
    }

    enum EscrowState {
        None,
        Held,
        Disputed,
        Claimed,
        Resolved
    }

    /// @notice A deposit withdrawal requested and not yet executed.
    struct Withdrawal {
        uint128 amount;
        uint64 releaseAt;
    }

    struct Escrow {
        uint128 amount;
        uint40 claimableAt;
        EscrowState state;
    }

    /// @notice Settled drawn stake owed to a payee, withdrawable from `releaseAt`.
    struct LockedCredit {
        uint128 amount;
        uint64 releaseAt;
    }

    /// @dev Drawn stake a slash of its executor may still take until it is released: in the
    ///      grant's escrow (`payee` 0; the escrow's `claimableAt`) or in `payee`'s locked credit
    ///      of that grant (its `releaseAt`). Two slots: a wei amount never nears 2^96.
    struct AtRisk {
        bytes32 grantId;
        address payee;
        uint96 amount;
    }

    bytes32 public constant SIGNED_REQUEST_TYPEHASH = keccak256(
        "AccessRequest(bytes32 capsuleId,address executor,bytes32 ephemeralKey,bytes32 measurement,bytes32 jobParamsHash,uint256 fee,uint256 nonce,uint64 expiry)"
    );
    bytes32 private constant DOMAIN_TYPEHASH =
        keccak256("EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)");
    bytes32 private constant NAME_HASH = keccak256("DigicapAccessController");
    bytes32 private constant VERSION_HASH = keccak256("1");
    uint8 private constant ROLE_EXECUTOR = 1;
    /// @notice `checkAccess` reason: the executor is the capsule's owner or operator (the audit
    ///         would revert with `ExecutorIsKeyguard`). Declared here, not in Reason.sol: policies
    ///         compile against that file, and their metadata (and bytecode) must not change.
    uint8 public constant REASON_EXECUTOR_IS_KEYGUARD = 7;
    /// @dev NodeRegistry.BURN_ADDRESS: where a slash's seized drawn stake goes (docs/adr/0092).
    address private constant BURN_ADDRESS = 0x000000000000000000000000000000000000dEaD;
    uint256 private constant HALF_N = 0x7fffffffffffffffffffffffffffffff5d576e7357a4501ddfe92f46681b20a0;

    ICapsuleRegistry public immutable capsuleRegistry;
    INodeRegistry public immutable nodeRegistry;
    /// @notice Seconds a grant stays valid for the keyguard to serve it.
    uint256 public immutable grantWindow;
    /// @notice Seconds after a grant before its owner may claim the fee.
    uint256 public immutable disputeWindow;
    /// @notice Seconds within which a keyguard lands the audit (`recordFastPathGrant`) of a key it
    ///         released; a keyguard accepts no request that expires later than this after now.
    uint256 public immutable auditWindow;
    /// @notice Seconds between `requestWithdrawal` and `withdrawDeposit` (> `auditWindow`).
    uint256 public immutable withdrawalDelay;
    /// @notice Seconds after a grant before its owner may claim an escrow holding stake an audit
    ///         drew (`escrowFromStake`): the larger of `disputeWindow` and the registry's
    ///         `unbondingDelay`, so that bonded stake never reaches anyone sooner than unbonding
    ///         would have let it out.
    uint256 public immutable stakeClaimDelay;

    /// @notice Fast-path deposits per executor (wei).
    mapping(address => uint256) public deposits;
    /// @notice Wei credited by settlement, waiting for `withdrawCredit`.
    mapping(address => uint256) public credits;
    /// @notice Deposit withdrawals waiting for their delay, per executor.
    mapping(address => Withdrawal) public pendingWithdrawals;
    /// @notice Accounts allowed to lock, split and refund escrows, named through the admin timelock.
    mapping(address => bool) public isSettler;
    /// @notice Sum of escrows not yet paid out, deposits and credits (wei).
    uint256 public totalHeld;

    mapping(bytes32 => Grant) private _grants;
    mapping(bytes32 => Escrow) private _escrows;
    /// @dev executor => capsuleId => nonce => used. Per capsule: one keyguard serves a capsule and
    ///      serialises its requests, so a nonce cannot be spent twice between two keyguards' audits.
    mapping(address => mapping(bytes32 => mapping(uint256 => bool))) private _usedNonces;
    /// @notice The part of each escrow drawn from the executor's bonded stake (`drawForAudit`).
    ///         A refund sends it back into the executor's unbonding funds, not to its credits.
    mapping(bytes32 grantId => uint256) public escrowFromStake;
    /// @notice The one settler that took each grant (`disputeEscrow`), with or without a fee in
    ///         escrow. Only it may resolve or refund the escrow, and no other settler may take the
    ///         grant: with several settlement hubs, one run is settled (paid, rewarded) once.
    mapping(bytes32 grantId => address) public settlerOf;
    /// @notice Per capsule, 1 + the run index of the latest fast-path grant recorded as an overrun
    ///         (`FastPathOverrun`: its policy refused it when its audit landed), 0 if none. A
    ///         keyguard refuses a chain grant whose `runIndex` is below `overrunRunCount - 1`: a
    ///         fast-path key released before that chain grant is served took its run
    ///         (docs/adr/0073).
    mapping(bytes32 capsuleId => uint256) public overrunRunCount;
    /// @notice Per payee and grant, the settled share of drawn stake (`escrowFromStake`) paid to
    ///         anyone but the executor: withdrawable with `withdrawLockedCredits` from `releaseAt`
    ///         (`stakeClaimDelay` after settlement), and until then still taken by a slash of the
    ///         executor (docs/adr/0006, amendment of helper 121).
    mapping(address payee => mapping(bytes32 grantId => LockedCredit)) public lockedCredits;
    /// @dev Per executor, its drawn stake still at risk, oldest first (release times ascend).
    mapping(address executor => AtRisk[]) private _atRisk;

    event AccessGranted(
        bytes32 indexed grantId,
        bytes32 indexed capsuleId,
        address indexed executor,
        bytes32 ephemeralKey,
        bytes32 measurement,
        uint64 expiresAt,
        bool fastPath
    );
    event FeeEscrowed(bytes32 indexed grantId, uint256 amount, uint64 claimableAt);
    event FeeClaimed(bytes32 indexed grantId, address indexed owner, uint256 amount);
    event EscrowDisputed(bytes32 indexed grantId, address indexed settler);
    event EscrowResolved(bytes32 indexed grantId, address indexed settler);
    event EscrowRefunded(bytes32 indexed grantId, address indexed payer, uint256 amount);
    event Credited(address indexed payee, bytes32 indexed grantId, uint256 amount);
    event CreditWithdrawn(address indexed payee, uint256 amount);
    /// @notice `amount` of drawn stake credited to `payee` for `grantId`, withdrawable from `releaseAt`.
    event CreditTimeLocked(address indexed payee, bytes32 indexed grantId, uint256 amount, uint64 releaseAt);
    event LockedCreditWithdrawn(address indexed payee, uint256 amount);
    /// @notice A slash of `executor` took `amount` of its drawn stake, still locked, from `from`'s
    ///         share of `grantId` (`from` 0: from the grant's escrow) and sent it to `to`, the burn
    ///         address (docs/adr/0092; before it, a locked credit of the slash's recipient).
    event StakeCreditSeized(
        address indexed executor, bytes32 indexed grantId, address from, address indexed to, uint256 amount
    );
    event Deposited(address indexed account, uint256 amount, uint256 balance);
    event DepositWithdrawn(address indexed account, uint256 amount, uint256 balance);
    event WithdrawalRequested(address indexed account, uint256 amount, uint64 releaseAt);
    event WithdrawalCancelled(address indexed account, uint256 amount);
    event SettlerSet(address indexed account, bool allowed);
    /// @notice A refunded fast-path escrow: `toDeposit` went back into the executor's deposit,
    ///         `toUnbonding` (the stake its audit drew) into its NodeRegistry unbonding funds.
    event RefundedToBond(bytes32 indexed grantId, address indexed executor, uint256 toDeposit, uint256 toUnbonding);
    /// @notice A fast-path audit whose fee the deposit did not cover: `fromStake` was drawn from
    ///         the executor's bonded stake, `uncovered` is missing from the escrow.
    event AuditShortfall(bytes32 indexed grantId, address indexed executor, uint256 fromStake, uint256 uncovered);
    /// @notice A fast-path audit recorded although the capsule's policy refuses it now
    ///         (`reason`, a policy reason code): the keyguard released the key on an earlier
    ///         `checkAccess`. The grant is recorded, the run counted and the fee escrowed as for
    ///         any audit; `overrunRunCount` tells keyguards not to serve chain grants before it.
    event FastPathOverrun(bytes32 indexed capsuleId, bytes32 indexed grantId, uint8 reason);
    /// @notice Item `index` of a `recordFastPathGrants` batch was not recorded; `reason` is its
    ///         revert data (the error `recordFastPathGrant` would have reverted with).
    event FastPathAuditFailed(
        uint256 indexed index, bytes32 indexed capsuleId, address indexed executor, uint256 nonce, bytes reason
    );

    error AccessDenied(bytes32 capsuleId, address executor, uint8 reason);
    error InvalidEphemeralKey();
    error NotKeyguard(bytes32 capsuleId, address caller);
    error ExecutorIsKeyguard(bytes32 capsuleId, address executor);
    error SignedRequestExpired(uint64 expiry);
    error NonceUsed(address executor, uint256 nonce);
    error InvalidSignature();
    error JobParamsMismatch();
    error InsufficientDeposit(uint256 requested, uint256 available);
    error FeeTooLarge(uint256 amount);
    error GrantNotFound(bytes32 grantId);
    error WrongEscrowState(bytes32 grantId, EscrowState state);
    error EscrowLocked(bytes32 grantId, uint64 claimableAt);
    error NotFeeRecipient(bytes32 grantId, address caller);
    error NotSettler(address caller);
    error GrantTaken(bytes32 grantId, address settler);
    error PayoutMismatch(uint256 total, uint256 escrowed);
    error LengthMismatch();
    error ZeroAmount();
    error NothingToWithdraw();
    error WithdrawalLocked(uint64 releaseAt);
    error CreditLocked(bytes32 grantId, uint64 releaseAt);
    error DelayTooShort(uint256 delay, uint256 minimum);
    error NotNodeRegistry(address caller);
    error NotSelf(address caller);
    error BatchOutOfGas(uint256 index);

    /// @dev Deploys its own CapsuleRegistry, so that only this controller can count runs.
    /// @dev Both delays an executor could use to pull what a fast-path audit relies on must
    ///      outlast the audit window: this contract's `withdrawalDelay_` and the registry's
    ///      `unbondingDelay`. The admin delay must outlast the dispute window and the withdrawal
    ///      delay: escrows and deposits that exist when a settler is queued can leave first.
    ///      `settlers_` are named here, without the timelock: before the controller exists no
    ///      escrow or deposit is in it to protect; every later settler goes through the timelock
    ///      (ADR 0033).
    constructor(
        INodeRegistry nodeRegistry_,
        address admin_,
        uint256 grantWindow_,
        uint256 disputeWindow_,
        uint256 auditWindow_,
        uint256 withdrawalDelay_,
        uint256 adminDelay_,
        address[] memory settlers_
    ) Guarded(admin_, adminDelay_) {
        if (address(nodeRegistry_) == address(0)) revert ZeroAddress();
        if (withdrawalDelay_ <= auditWindow_) revert DelayTooShort(withdrawalDelay_, auditWindow_);
        if (adminDelay_ <= disputeWindow_) revert DelayTooShort(adminDelay_, disputeWindow_);
        if (adminDelay_ <= withdrawalDelay_) revert DelayTooShort(adminDelay_, withdrawalDelay_);
        uint256 unbondingDelay = nodeRegistry_.unbondingDelay();
        if (unbondingDelay <= auditWindow_) revert DelayTooShort(unbondingDelay, auditWindow_);
        capsuleRegistry = new CapsuleRegistry();
        nodeRegistry = nodeRegistry_;
        grantWindow = grantWindow_;
        disputeWindow = disputeWindow_;
        auditWindow = auditWindow_;
        withdrawalDelay = withdrawalDelay_;
        stakeClaimDelay = unbondingDelay > disputeWindow_ ? unbondingDelay : disputeWindow_;
        for (uint256 i = 0; i < settlers_.length; ++i) {
            if (settlers_[i] == address(0)) revert ZeroAddress();
            isSettler[settlers_[i]] = true;
            emit SettlerSet(settlers_[i], true);
        }
    }

    modifier onlySettler() {
        if (!isSettler[msg.sender]) revert NotSettler(msg.sender);
        _;
    }

    // ---------------------------------------------------------------- chain path

    /// @notice Asks for a grant on `capsuleId`; `msg.value` is the fee, held in escrow.
    /// @return grantId The new grant's id.
    function requestAccess(bytes32 capsuleId, bytes32 ephemeralKey, bytes32 measurement, bytes calldata jobParams)
        external
        payable
        returns (bytes32 grantId)
    {
        if (!nodeRegistry.isActive(msg.sender, ROLE_EXECUTOR)) {
            revert AccessDenied(capsuleId, msg.sender, Reason.EXECUTOR_NOT_REGISTERED);
        }
        grantId = _grant(
            capsuleId, msg.sender, AccessRequest(ephemeralKey, measurement, msg.value, 0, false, jobParams)
        );
        _escrow(grantId, msg.value, disputeWindow);
    }

    // ---------------------------------------------------------------- fast path

    /// @notice Logs a grant the keyguard served off-chain. Callable by the capsule owner or an
    ///         operator it named; the executor's EIP-712 signature authorises it and its fee
    ///         (taken from the executor's deposit).
    function recordFastPathGrant(
        SignedAccessRequest calldata req,
        bytes calldata jobParams,
        bytes calldata signature
    ) external returns (bytes32 grantId) {
        return _recordFastPathGrant(msg.sender, req, jobParams, signature);
    }

    /// @notice Records several fast-path grants in one transaction, each exactly as
    ///         `recordFastPathGrant` would (same checks, same events, same caller rights). An item
    ///         that would revert is skipped alone: it emits `FastPathAuditFailed` with its revert
    ///         data and changes nothing, and the other items are recorded.
    /// @dev An item that ran out of gas reverts the whole batch (`BatchOutOfGas`) instead of being
    ///      skipped, so that too little gas (an estimate, a low limit) cannot drop audits: the
    ///      sender retries with more gas, or item by item.
    /// @return grantIds Each item's grant id, zero for a skipped one.
    function recordFastPathGrants(
        SignedAccessRequest[] calldata reqs,
        bytes[] calldata jobParams,
        bytes[] calldata signatures
    ) external returns (bytes32[] memory grantIds) {
        if (reqs.length != jobParams.length || reqs.length != signatures.length) revert LengthMismatch();
        grantIds = new bytes32[](reqs.length);
        for (uint256 i = 0; i < reqs.length; i++) {
            uint256 before = gasleft();
            try this.recordFastPathGrantFor(msg.sender, reqs[i], jobParams[i], signatures[i]) returns (bytes32 id) {
                grantIds[i] = id;
            } catch (bytes memory reason) {
                // The call got 63/64 of `before`: with no more than 1/64 left, it used it all.
                if (gasleft() <= before / 63) revert BatchOutOfGas(i);
                emit FastPathAuditFailed(i, reqs[i].capsuleId, reqs[i].executor, reqs[i].nonce, reason);
            }
        }
    }

    /// @notice One item of `recordFastPathGrants`, callable only by this contract (an external
    ///         call, so that the batch can catch its revert); `caller` is the batch's sender.
    function recordFastPathGrantFor(
        address caller,
        SignedAccessRequest calldata req,
        bytes calldata jobParams,
        bytes calldata signature
    ) external returns (bytes32 grantId) {
        if (msg.sender != address(this)) revert NotSelf(msg.sender);
        return _recordFastPathGrant(caller, req, jobParams, signature);
    }

    /// @notice Takes the stake `NodeRegistry.drawForAudit` sends; nobody else may send ETH here.
    receive() external payable {
        if (msg.sender != address(nodeRegistry)) revert NotNodeRegistry(msg.sender);
    }

    /// @dev `recordFastPathGrant` on behalf of `caller` (the capsule owner or its operator).
    function _recordFastPathGrant(
        address caller,
        SignedAccessRequest calldata req,
        bytes calldata jobParams,
        bytes calldata signature
    ) private returns (bytes32 grantId) {
        address owner = capsuleRegistry.ownerOf(req.capsuleId);
        if (owner == address(0) || (caller != owner && !capsuleRegistry.isOperator(owner, caller))) {
            revert NotKeyguard(req.capsuleId, caller);
        }
        // An executor recording its own audit would choose a fee it pays to itself: with the
        // deposit short, the fee is drawn from its bonded stake, and the escrow it then claims
        // as owner (or gets refunded) would take the stake out past the unbonding delay.
        if (req.executor == owner || capsuleRegistry.isOperator(owner, req.executor)) {
            revert ExecutorIsKeyguard(req.capsuleId, req.executor);
        }
        if (block.timestamp > req.expiry) revert SignedRequestExpired(req.expiry);
        if (keccak256(jobParams) != req.jobParamsHash) revert JobParamsMismatch();
        if (_usedNonces[req.executor][req.capsuleId][req.nonce]) revert NonceUsed(req.executor, req.nonce);
        if (_recover(hashSignedRequest(req), signature) != req.executor) revert InvalidSignature();
        _usedNonces[req.executor][req.capsuleId][req.nonce] = true;
        // Bound, not active: unbonding or dropping the role after the release does not void the audit.
        if (!nodeRegistry.isBound(req.executor, ROLE_EXECUTOR)) {
            revert AccessDenied(req.capsuleId, req.executor, Reason.EXECUTOR_NOT_REGISTERED);
        }
        // The whole deposit pays, pending withdrawal included: that part cannot leave before the
        // audit window closes. Keys released by several keyguards against one deposit can leave
        // it short: the rest comes from the executor's bonded stake (locked for longer than the
        // audit window), and whatever even that cannot cover is missing from the escrow, never a
        // reason to revert: the run is counted either way (docs/adr/0006).
        uint256 available = deposits[req.executor];
        uint256 fromDeposit = req.fee < available ? req.fee : available;
        if (fromDeposit > 0) {
            deposits[req.executor] = available - fromDeposit;
            totalHeld -= fromDeposit; // moved back in by _escrow
        }
        uint256 shortfall = req.fee - fromDeposit;
        uint256 fromStake = shortfall > 0 ? nodeRegistry.drawForAudit(req.executor, shortfall) : 0;
        grantId = _grant(
            req.capsuleId,
            req.executor,
            AccessRequest(req.ephemeralKey, req.measurement, req.fee, 0, true, jobParams)
        );
        _escrow(grantId, fromDeposit + fromStake, fromStake > 0 ? stakeClaimDelay : disputeWindow);
        if (fromStake > 0) {
            escrowFromStake[grantId] = fromStake;
            _atRisk[req.executor].push(AtRisk(grantId, address(0), uint96(fromStake)));
        }
        if (shortfall > 0) emit AuditShortfall(grantId, req.executor, fromStake, shortfall - fromStake);
    }

    /// @notice EIP-712 digest of a signed request, as the executor signs it.
    function hashSignedRequest(SignedAccessRequest calldata req) public view returns (bytes32) {
        bytes32 structHash = keccak256(
            abi.encode(
                SIGNED_REQUEST_TYPEHASH,
                req.capsuleId,
                req.executor,
                req.ephemeralKey,
                req.measurement,
                req.jobParamsHash,
                req.fee,
                req.nonce,
                req.expiry
            )
        );
        return keccak256(abi.encodePacked("\x19\x01", domainSeparator(), structHash));
    }

    /// @notice EIP-712 domain separator (name "DigicapAccessController", version "1").
    function domainSeparator() public view returns (bytes32) {
        return keccak256(abi.encode(DOMAIN_TYPEHASH, NAME_HASH, VERSION_HASH, block.chainid, address(this)));
    }

    /// @notice True when `nonce` of `executor` has been used by a recorded fast-path grant on
    ///         `capsuleId` (nonces are scoped per capsule).
    function nonceUsed(address executor, bytes32 capsuleId, uint256 nonce) external view returns (bool) {
        return _usedNonces[executor][capsuleId][nonce];
    }

    /// @notice Tops up the caller's fast-path deposit.
    function deposit() external payable {
        if (msg.value == 0) revert ZeroAmount();
        uint256 balance = deposits[msg.sender] + msg.value;
        deposits[msg.sender] = balance;
        totalHeld += msg.value;
        emit Deposited(msg.sender, msg.value, balance);
    }

    /// @notice Asks to take `amount` more of the caller's deposit back, after `withdrawalDelay`
    ///         (the clock restarts for the whole pending amount). The deposit stays whole (and
    ///         pays audits of keys already released) until `withdrawDeposit`; meanwhile
    ///         `checkAccess` counts only the unlocked part.
    function requestWithdrawal(uint256 amount) external {
        if (amount == 0) revert ZeroAmount();
        Withdrawal storage w = pendingWithdrawals[msg.sender];
        uint256 total = w.amount + amount;
        uint256 available = deposits[msg.sender];
        if (total > available) revert InsufficientDeposit(total, available);
        uint64 releaseAt = uint64(block.timestamp + withdrawalDelay);
        w.amount = uint128(total);
        w.releaseAt = releaseAt;
        emit WithdrawalRequested(msg.sender, total, releaseAt);
    }

    /// @notice Drops the caller's pending withdrawal (the whole deposit is unlocked again).
    function cancelWithdrawal() external {
        uint256 amount = pendingWithdrawals[msg.sender].amount;
        if (amount == 0) revert NothingToWithdraw();
        delete pendingWithdrawals[msg.sender];
        emit WithdrawalCancelled(msg.sender, amount);
    }

    /// @notice Sends the caller its pending withdrawal once `withdrawalDelay` has passed (less
    ///         whatever fast-path fees took from the deposit meanwhile).
    function withdrawDeposit() external nonReentrant {
        Withdrawal memory w = pendingWithdrawals[msg.sender];
        if (w.amount == 0) revert NothingToWithdraw();
        if (block.timestamp < w.releaseAt) revert WithdrawalLocked(w.releaseAt);
        uint256 available = deposits[msg.sender];
        uint256 amount = w.amount < available ? w.amount : available;
        delete pendingWithdrawals[msg.sender];
        if (amount == 0) revert NothingToWithdraw();
        deposits[msg.sender] = available - amount;
        totalHeld -= amount;
        emit DepositWithdrawn(msg.sender, amount, available - amount);
        _send(msg.sender, amount);
    }

    /// @notice The part of `account`'s deposit not asked back (what `checkAccess` counts).
    function unlockedDeposit(address account) public view returns (uint256) {
        uint256 d = deposits[account];
        uint256 pending = pendingWithdrawals[account].amount;
        return pending < d ? d - pending : 0;
    }

    // ---------------------------------------------------------------- views

    /// @notice What `requestAccess` (or, with `fastPath`, `recordFastPathGrant`) would decide
    ///         right now. The keyguard's fast path calls this with `eth_call`. With `fastPath` it
    ///         is stricter than the audit: the unlocked deposit must cover the fee
    ///         (`INSUFFICIENT_DEPOSIT`) and the executor must not be unbonding
    ///         (`EXECUTOR_LEAVING`), so that the audit still holds after either changes, and must
    ///         not be the capsule's owner or operator (`REASON_EXECUTOR_IS_KEYGUARD`, 7), which
    ///         the audit refuses.
    function checkAccess(
        bytes32 capsuleId,
        address executor,
        bytes32 ephemeralKey,
        bytes32 measurement,
        uint256 feePaid,
        bool fastPath,
        bytes calldata jobParams
    ) external view returns (bool allowed, uint8 reason) {
        if (fastPath && unlockedDeposit(executor) < feePaid) return (false, Reason.INSUFFICIENT_DEPOSIT);
        if (!nodeRegistry.isActive(executor, ROLE_EXECUTOR)) return (false, Reason.EXECUTOR_NOT_REGISTERED);
        if (fastPath && nodeRegistry.isLeaving(executor)) return (false, Reason.EXECUTOR_LEAVING);
        if (fastPath && _executorIsKeyguard(capsuleId, executor)) return (false, REASON_EXECUTOR_IS_KEYGUARD);
        return _check(capsuleId, executor, AccessRequest(ephemeralKey, measurement, feePaid, 0, fastPath, jobParams));
    }

    /// @notice Grants made so far for `capsuleId` (chain and fast path).
    function runCount(bytes32 capsuleId) external view returns (uint256 runs) {
        (,, runs) = capsuleRegistry.accessInfo(capsuleId);
    }

    /// @notice The stored grant; reverts with `GrantNotFound` when unknown.
    function getGrant(bytes32 grantId) external view returns (Grant memory grant) {
        grant = _grants[grantId];
        if (grant.executor == address(0)) revert GrantNotFound(grantId);
    }

    /// @notice True when `grantId` was granted for `measurement`.
    function grantMeasurementMatches(bytes32 grantId, bytes32 measurement) external view returns (bool) {
        Grant storage g = _grants[grantId];
        if (g.executor == address(0)) revert GrantNotFound(grantId);
        return _grantId(g.capsuleId, g.executor, g.ephemeralKey, measurement, g.runIndex) == grantId;
    }

    /// @notice The escrow of a grant (state `None` when it paid no fee).
    function getEscrow(bytes32 grantId) external view returns (Escrow memory) {
        return _escrows[grantId];
    }

    // ---------------------------------------------------------------- fees

    /// @notice Pays the caller the undisputed fees of `grantIds` (capsules it owns) whose
    ///         dispute window has passed. All or nothing.
    function claimFees(bytes32[] calldata grantIds) external nonReentrant returns (uint256 total) {
        for (uint256 i = 0; i < grantIds.length; ++i) {
            bytes32 grantId = grantIds[i];
            Escrow storage e = _escrows[grantId];
            if (e.state != EscrowState.Held) revert WrongEscrowState(grantId, e.state);
            if (block.timestamp < e.claimableAt) revert EscrowLocked(grantId, e.claimableAt);
            if (capsuleRegistry.ownerOf(_grants[grantId].capsuleId) != msg.sender) {
                revert NotFeeRecipient(grantId, msg.sender);
            }
            e.state = EscrowState.Claimed;
            total += e.amount;
            emit FeeClaimed(grantId, msg.sender, e.amount);
        }
        if (total == 0) revert NothingToWithdraw();
        totalHeld -= total;
        _send(msg.sender, total);
    }

    /// @notice Grants or revokes the settler role. Timelocked: queue it with `queueAdminCall` first.
    function setSettler(address account, bool allowed) external timelocked {
        if (account == address(0)) revert ZeroAddress();
        isSettler[account] = allowed;
        emit SettlerSet(account, allowed);
    }

    /// @notice Takes `grantId` for the calling settler (`settlerOf`), once: locks its escrow so
    ///         the owner cannot claim it until this settler resolves or refunds it. A grant that
    ///         paid no fee (state None) is taken too, so that no second settler can settle the same
    ///         run again (another hub would reward it a second time). `GrantTaken` once another
    ///         settler (or this one) has it.
    function disputeEscrow(bytes32 grantId) external onlySettler {
        Escrow storage e = _escrows[grantId];
        if (e.state == EscrowState.None) {
            if (_grants[grantId].executor == address(0)) revert GrantNotFound(grantId);
        } else if (e.state != EscrowState.Held) {
            revert WrongEscrowState(grantId, e.state);
        }
        address taken = settlerOf[grantId];
        if (taken != address(0)) revert GrantTaken(grantId, taken);
        settlerOf[grantId] = msg.sender;
        if (e.state == EscrowState.Held) e.state = EscrowState.Disputed;
        emit EscrowDisputed(grantId, msg.sender);
    }

    /// @notice Splits a disputed escrow between `payees`; the amounts must add up to the escrow.
    ///         Each share is credited at once, except its part of the stake the audit drew
    ///         (`escrowFromStake`, pro rata): the executor's goes back into its unbonding funds
    ///         (`NodeRegistry.returnFromAudit`), anyone else's becomes a locked credit
    ///         (`lockedCredits`, `stakeClaimDelay` from now, still taken by a slash of the executor
    ///         until then). Drawn stake never leaves sooner than unbonding would have let it.
    function resolveEscrow(bytes32 grantId, address[] calldata payees, uint256[] calldata amounts)
        external
        onlySettler
        nonReentrant
    {
        if (payees.length != amounts.length || payees.length == 0) revert LengthMismatch();
        Escrow storage e = _escrows[grantId];
        if (e.state != EscrowState.Disputed) revert WrongEscrowState(grantId, e.state);
        _onlyItsSettler(grantId);
        uint256 left = 0;
        for (uint256 i = 0; i < payees.length; ++i) {
            left += amounts[i];
        }
        if (left != e.amount) revert PayoutMismatch(left, e.amount);
        e.state = EscrowState.Resolved;
        address executor = _grants[grantId].executor;
        uint256 stakeLeft = escrowFromStake[grantId];
        uint256 toBond = 0;
        for (uint256 i = 0; i < payees.length; ++i) {
            uint256 amount = amounts[i];
            // Pro rata; the last payee with a share takes what rounding left.
            uint256 fromStake = amount == 0 ? 0 : (amount * stakeLeft) / left;
            stakeLeft -= fromStake;
            left -= amount;
            toBond += _credit(grantId, executor, payees[i], amount, fromStake);
        }
        if (toBond > 0) {
            totalHeld -= toBond;
            IAuditStakeReturn(address(nodeRegistry)).returnFromAudit{value: toBond}(executor);
        }
        emit EscrowResolved(grantId, msg.sender);
    }

    /// @notice The registry's door for a slash of `executor` that its stake and unbonding funds
    ///         did not cover: takes up to `amount` of its drawn stake not yet released (newest
    ///         first: in escrows, then in other payees' locked credits) and burns it
    ///         (`NodeRegistry.BURN_ADDRESS`): paid to anyone, a slash would let that party take a
    ///         payee's pending share, or let an executor launder its bond (docs/adr/0092).
    /// @return seized What was taken.
    function seizeStakeCredits(address executor, uint256 amount) external returns (uint256 seized) {
        if (msg.sender != address(nodeRegistry)) revert NotNodeRegistry(msg.sender);
        AtRisk[] storage list = _atRisk[executor];
        uint256 i = list.length;
        while (i > 0 && seized < amount) {
            AtRisk storage r = list[--i];
            uint64 releaseAt = r.payee == address(0)
                ? _escrows[r.grantId].claimableAt
                : lockedCredits[r.payee][r.grantId].releaseAt;
            if (releaseAt <= block.timestamp) break; // older ones are released too
            uint256 take = _takeAtRisk(r, amount - seized);
            if (take > 0) {
                seized += take;
                emit StakeCreditSeized(executor, r.grantId, r.payee, BURN_ADDRESS, take);
            }
            if (r.amount == 0 && i == list.length - 1) list.pop();
        }
        if (seized > 0) {
            totalHeld -= seized;
            _send(BURN_ADDRESS, seized);
        }
    }

    /// @notice Sends the caller its locked credits of `grantIds` (`lockedCredits`) whose release
    ///         time has passed; `CreditLocked(grantId, releaseAt)` for one that has not. All or
    ///         nothing.
    function withdrawLockedCredits(bytes32[] calldata grantIds) external nonReentrant returns (uint256 total) {
        for (uint256 i = 0; i < grantIds.length; ++i) {
            LockedCredit memory c = lockedCredits[msg.sender][grantIds[i]];
            if (c.amount == 0) continue;
            if (block.timestamp < c.releaseAt) revert CreditLocked(grantIds[i], c.releaseAt);
            delete lockedCredits[msg.sender][grantIds[i]];
            total += c.amount;
        }
        if (total == 0) revert NothingToWithdraw();
        totalHeld -= total;
        emit LockedCreditWithdrawn(msg.sender, total);
        _send(msg.sender, total);
    }

    /// @notice Gives a locked escrow back to the executor that paid it (a job that timed out:
    ///         no evidence either way), where it came from: a chain-path fee (paid with the call)
    ///         as a credit, a fast-path fee back into the executor's deposit (which leaves only
    ///         after `withdrawalDelay`), and the part drawn from its stake back into its NodeRegistry
    ///         unbonding funds (slashable, withdrawable after `unbondingDelay`). Never sooner
    ///         than the fee's source would have let it leave.
    function refundEscrow(bytes32 grantId) external onlySettler nonReentrant returns (uint256 amount) {
        Escrow storage e = _escrows[grantId];
        if (e.state != EscrowState.Disputed) revert WrongEscrowState(grantId, e.state);
        _onlyItsSettler(grantId);
        e.state = EscrowState.Resolved;
        amount = e.amount;
        Grant storage g = _grants[grantId];
        address payer = g.executor;
        if (!g.fastPath) {
            credits[payer] += amount;
            emit Credited(payer, grantId, amount);
        } else {
            uint256 fromStake = escrowFromStake[grantId];
            uint256 toDeposit = amount - fromStake;
            if (toDeposit > 0) deposits[payer] += toDeposit;
            if (fromStake > 0) {
                totalHeld -= fromStake;
                IAuditStakeReturn(address(nodeRegistry)).returnFromAudit{value: fromStake}(payer);
            }
            emit RefundedToBond(grantId, payer, toDeposit, fromStake);
        }
        emit EscrowRefunded(grantId, payer, amount);
    }

    /// @notice Sends the caller what settlement credited to it.
    function withdrawCredit() external nonReentrant {
        uint256 amount = credits[msg.sender];
        if (amount == 0) revert NothingToWithdraw();
        credits[msg.sender] = 0;
        totalHeld -= amount;
        emit CreditWithdrawn(msg.sender, amount);
        _send(msg.sender, amount);
    }

    // ---------------------------------------------------------------- internals

    /// @dev Credits `payee`'s share `amount` of a resolved escrow, of which `fromStake` is drawn
    ///      stake: locked for anyone but the executor; the executor's returned (what it returns).
    function _credit(bytes32 grantId, address executor, address payee, uint256 amount, uint256 fromStake)
        private
        returns (uint256 toBond)
    {
        if (payee == address(0)) revert ZeroAddress();
        if (payee == executor) {
            toBond = fromStake;
        } else if (fromStake > 0) {
            uint64 releaseAt = uint64(block.timestamp + stakeClaimDelay);
            _lockCredit(grantId, payee, fromStake, releaseAt);
            _atRisk[executor].push(AtRisk(grantId, payee, uint96(fromStake)));
        }
        credits[payee] += amount - fromStake;
        emit Credited(payee, grantId, amount - fromStake);
    }

    /// @dev Adds `amount` to `payee`'s locked credit of `grantId`, released no sooner than `releaseAt`.
    function _lockCredit(bytes32 grantId, address payee, uint256 amount, uint64 releaseAt) private {
        LockedCredit storage c = lockedCredits[payee][grantId];
        c.amount += uint128(amount);
        if (releaseAt > c.releaseAt) c.releaseAt = releaseAt;
        emit CreditTimeLocked(payee, grantId, amount, c.releaseAt);
    }

    /// @dev Takes up to `want` of what `r` still holds at risk: from the escrow while it is held
    ///      or disputed, from the payee's locked credit otherwise.
    function _takeAtRisk(AtRisk storage r, uint256 want) private returns (uint256 take) {
        uint256 available;
        if (r.payee == address(0)) {
            Escrow storage e = _escrows[r.grantId];
            bool open = e.state == EscrowState.Held || e.state == EscrowState.Disputed;
            available = open ? escrowFromStake[r.grantId] : 0;
            take = want < available ? want : available;
            if (take > 0) {
                e.amount -= uint128(take);
                escrowFromStake[r.grantId] = available - take;
            }
        } else {
            LockedCredit storage c = lockedCredits[r.payee][r.grantId];
            available = r.amount < c.amount ? r.amount : c.amount;
            take = want < available ? want : available;
            if (take > 0) c.amount -= uint128(take);
        }
        r.amount = uint96(available - take);
    }

    /// @dev Records the grant; the caller escrows what it holds (`_escrow`).
    function _grant(bytes32 capsuleId, address executor, AccessRequest memory req)
        private
        returns (bytes32 grantId)
    {
        if (req.ephemeralKey == bytes32(0)) revert InvalidEphemeralKey();
        if (req.feePaid > type(uint128).max) revert FeeTooLarge(req.feePaid);
        // Counts the run up front; a denial below reverts the count with everything else.
        (address policy, bool revoked, uint256 runs) = capsuleRegistry.recordRun(capsuleId);
        req.runCount = runs;
        (bool allowed, uint8 reason) = _evaluate(policy, revoked, capsuleId, executor, req);
        // A fast-path audit logs a key its keyguard already released: a policy that refuses it
        // now (a chain grant mined first took the last run, a date or a reputation crossed its
        // limit since the keyguard's check) records an overrun instead of reverting, so that
        // the run is counted and the fee paid either way (docs/adr/0073). A missing or revoked
        // capsule still reverts: the run is not counted there (recordRun), nor can a chain
        // grant be made.
        if (!allowed && (!req.fastPath || policy == address(0) || revoked)) {
            revert AccessDenied(capsuleId, executor, reason);
        }
        grantId = _grantId(capsuleId, executor, req.ephemeralKey, req.measurement, runs);
        uint40 expiresAt = uint40(block.timestamp + grantWindow);
        _grants[grantId] = Grant({
            executor: executor,
            runIndex: uint40(runs),
            expiresAt: expiresAt,
            fastPath: req.fastPath,
            capsuleId: capsuleId,
            ephemeralKey: req.ephemeralKey
        });
        emit AccessGranted(grantId, capsuleId, executor, req.ephemeralKey, req.measurement, expiresAt, req.fastPath);
        if (!allowed) {
            overrunRunCount[capsuleId] = runs + 1;
            emit FastPathOverrun(capsuleId, grantId, reason);
        }
    }

    /// @dev Escrows `escrowed` for `grantId`: the fee, or less for a fast-path audit whose
    ///      executor could not cover it (the policy still saw the fee signed for). The owner may
    ///      claim it `claimDelay` seconds from now (`stakeClaimDelay` when it holds drawn stake).
    ///      Not part of `_grant`: one more argument there is a stack too deep.
    function _escrow(bytes32 grantId, uint256 escrowed, uint256 claimDelay) private {
        if (escrowed == 0) return;
        uint40 claimableAt = uint40(block.timestamp + claimDelay);
        _escrows[grantId] = Escrow(uint128(escrowed), claimableAt, EscrowState.Held);
        totalHeld += escrowed;
        emit FeeEscrowed(grantId, escrowed, claimableAt);
    }

    /// @dev keccak256(abi.encode(chainid, this, capsuleId, executor, ephemeralKey, measurement, runIndex)).
    function _grantId(bytes32 capsuleId, address executor, bytes32 ephemeralKey, bytes32 measurement, uint256 runIndex)
        private
        view
        returns (bytes32)
    {
        return keccak256(abi.encode(block.chainid, address(this), capsuleId, executor, ephemeralKey, measurement, runIndex));
    }

    function _check(bytes32 capsuleId, address executor, AccessRequest memory req) private view returns (bool, uint8) {
        (address policy, bool revoked, uint256 runs) = capsuleRegistry.accessInfo(capsuleId);
        req.runCount = runs;
        return _evaluate(policy, revoked, capsuleId, executor, req);
    }

    function _evaluate(address policy, bool revoked, bytes32 capsuleId, address executor, AccessRequest memory req)
        private
        view
        returns (bool, uint8)
    {
        if (policy == address(0)) return (false, Reason.CAPSULE_NOT_FOUND);
        if (revoked) return (false, Reason.CAPSULE_REVOKED);
        try IAccessPolicy(policy).evaluate(capsuleId, executor, req) returns (bool allowed, uint8 reason) {
            if (allowed) return (true, Reason.OK);
            return (false, reason == Reason.OK ? Reason.DENIED : reason);
        } catch {
            return (false, Reason.POLICY_ERROR);
        }
    }

    /// @dev A disputed escrow is settled by the settler that took it, no other.
    function _onlyItsSettler(bytes32 grantId) private view {
        address taken = settlerOf[grantId];
        if (taken != msg.sender) revert GrantTaken(grantId, taken);
    }

    /// @dev True when `executor` owns `capsuleId` or is an operator of its owner.
    function _executorIsKeyguard(bytes32 capsuleId, address executor) private view returns (bool) {
        address owner = capsuleRegistry.ownerOf(capsuleId);
        return owner != address(0) && (executor == owner || capsuleRegistry.isOperator(owner, executor));
    }

    function _recover(bytes32 digest, bytes calldata signature) private pure returns (address signer) {
        if (signature.length != 65) revert InvalidSignature();
        bytes32 r = bytes32(signature[0:32]);
        bytes32 s = bytes32(signature[32:64]);
        uint8 v = uint8(signature[64]);
        if (uint256(s) > HALF_N || (v != 27 && v != 28)) revert InvalidSignature();
        signer = ecrecover(digest, v, r, s);
        if (signer == address(0)) revert InvalidSignature();
    }
}
