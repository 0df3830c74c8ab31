// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {INodeRegistry} from "./interfaces/INodeRegistry.sol";
import {Guarded} from "./utils/Guarded.sol";

/// @dev The AccessController's door for a slash that reaches stake an audit drew and settlement
///      has not released yet (docs/adr/0006). Not in INodeRegistry: policies compile against it.
interface IStakeCreditSeizure {
    function seizeStakeCredits(address executor, uint256 amount) external returns (uint256);
}

/// @title NodeRegistry
/// @notice Executors and verifiers register here with an ETH stake, their libp2p peer id and
///         the hash of their attestation key. Reputation lives here too. Stake leaves through
///         an unbonding delay and stays slashable while unbonding. Managers (the settlement
///         contract, AttestationHub) apply evidence it has checked: a settled pass raises
///         reputation along the curve, a fault (fail verdict, equivocation) cuts it and slashes.
///         Reputation moves only that way: every node starts at `INITIAL_REPUTATION` (1).
///         Naming a manager is timelocked for longer than the unbonding delay, so that a node
///         can leave before a new manager can touch its stake (ADR 0027).
///         A node that unbonds or drops a role is "leaving": a fast-path audit (`isBound`) still
///         counts it as registered for `unbondingDelay`, so that nothing the node does after a
///         keyguard released a key can make that release's audit fail (docs/adr/0006).
/// @dev Funds are conserved: `address(this).balance == totalHeld` (stake + unbonding + payouts).
contract NodeRegistry is INodeRegistry, Guarded {
    uint8 public constant ROLE_EXECUTOR = 1;
    uint8 public constant ROLE_VERIFIER = 2;
    uint8 public constant ALL_ROLES = ROLE_EXECUTOR | ROLE_VERIFIER;
    uint64 public constant MAX_REPUTATION = 1000;
    uint256 public constant MAX_PEER_ID_LENGTH = 128;
    /// @notice Reputation every new node starts with: below any useful `minReputation` and with
    ///         almost no sortition weight. It grows only on settled evidence (the committee
    ///         README's curve: 41 settled passes to reach 50), so a fresh address buys nothing.
    uint64 public constant INITIAL_REPUTATION = 1;
    /// @notice Larger is slower growth on a pass (the committee README's curve).
    uint64 public constant REPUTATION_GROWTH_DIVISOR = 16;
    /// @notice Where the burned part of a slash goes (docs/adr/0092): no key is known for it, so
    ///         no party to a job (owner, executor, verifier) can get it back.
    address public constant BURN_ADDRESS = 0x000000000000000000000000000000000000dEaD;
    uint256 internal constant BPS = 10_000;

    /// @notice Smallest stake (wei) for a node to count as active.
    uint256 public immutable minStake;
    /// @notice Seconds between `requestUnbond` and `withdraw`.
    uint256 public immutable unbondingDelay;

    /// @notice Sum of all stake, unbonding and unclaimed payouts (wei).
    uint256 public totalHeld;

    /// @notice Roles a node dropped with `update`, and when (they still count for `isBound`).
    struct DroppedRoles {
        uint8 roles;
        uint64 droppedAt;
    }

    mapping(address => Node) private _nodes;
    mapping(address => DroppedRoles) private _dropped;
    /// @notice Accounts allowed to apply evidence (reputation and slashing), named through the
    ///         admin timelock.
    mapping(address => bool) public isManager;
    /// @notice Slashed wei waiting for its recipient to claim it.
    mapping(address => uint256) public payouts;
    /// @notice The AccessController allowed to draw a fast-path audit's fee shortfall from stake
    ///         (`drawForAudit`); set once by the deployer or the admin at deployment.
    address public accessController;
    /// @dev The account that deployed the registry (may name the AccessController once).
    address private immutable _deployer;
    /// @notice Wei drawn from each node's stake by fast-path audits (still counts for `isBound`).
    mapping(address => uint256) public drawnForAudits;
    /// @notice The one node that may use each non-zero attestation record hash, claimed for good by
    ///         the first node to register or update with it: another node registering the same
    ///         record could relay a verifier's challenges to the TPM that owns it (docs/adr/0031).
    mapping(bytes32 => address) public attestationKeyOwner;
    /// @notice The node holding each libp2p peer id (by the keccak-256 of its bytes). Two live
    ///         nodes never share one: PBFT maps a stream's peer to one committee member, and a
    ///         committee seating both would not build (docs/adr/0054). A claim lapses when its
    ///         node holds no stake and nothing unbonding (it left), or moves to another peer id.
    mapping(bytes32 => address) public peerIdOwner;

    event NodeRegistered(address indexed node, uint8 roles, bytes peerId, bytes32 attestationKeyHash, uint256 stake);
    event NodeUpdated(address indexed node, uint8 roles, bytes peerId, bytes32 attestationKeyHash);
    event StakeAdded(address indexed node, uint256 amount, uint256 stake);
    event UnbondRequested(address indexed node, uint256 amount, uint64 releaseAt);
    event Withdrawn(address indexed node, uint256 amount);
    event ReputationChanged(address indexed node, uint64 previous, uint64 current, address indexed manager);
    /// @notice `reason` is the job (grant id) whose evidence convicted the node.
    event Slashed(address indexed node, uint256 amount, address indexed recipient, bytes32 reason, address manager);
    /// @notice The part of a slash no one is paid (docs/adr/0092): sent to `BURN_ADDRESS`.
    event SlashBurned(address indexed node, uint256 amount, bytes32 reason);
    event PayoutClaimed(address indexed recipient, uint256 amount);
    event ManagerSet(address indexed account, bool allowed);
    event AccessControllerSet(address indexed accessController);
    event DrawnForAudit(address indexed node, uint256 amount);
    /// @notice Stake an audit drew came back (a refunded escrow): into `node`'s unbonding funds,
    ///         withdrawable at `releaseAt`, slashable until then.
    event ReturnedFromAudit(address indexed node, uint256 amount, uint64 releaseAt);

    error AlreadyRegistered(address node);
    error NotRegistered(address node);
    error InvalidRoles(uint8 roles);
    error InvalidPeerId(uint256 length);
    error StakeTooLow(uint256 amount, uint256 minimum);
    error ZeroAmount();
    error InsufficientStake(uint256 requested, uint256 available);
    error NothingToWithdraw();
    error StillUnbonding(uint64 releaseAt);
    error NotManager(address caller);
    error AmountTooLarge(uint256 amount);
    error AccessControllerAlreadySet(address accessController);
    error NotAccessController(address caller);
    error AttestationKeyTaken(bytes32 attestationKeyHash, address owner);
    error PeerIdTaken(bytes peerId, address owner);
    error DelayTooShort(uint256 adminDelay, uint256 unbondingDelay);
    error InvalidShare(uint256 recipientBps);

    /// @dev `adminDelay_` must exceed `unbondingDelay_`: a node that sees a manager queued can
    ///      unbond and withdraw all its stake before that manager can slash it.
    ///      `managers_` are named here, without the timelock: before the registry exists nobody
    ///      has stake in it to protect, and every later manager goes through the timelock
    ///      (ADR 0033). The deployer names the settlement contract here (its address is known
    ///      before it is created); a node reads `isManager` / `ManagerSet` before staking.
    constructor(
        address admin_,
        uint256 minStake_,
        uint256 unbondingDelay_,
        uint256 adminDelay_,
        address[] memory managers_
    ) Guarded(admin_, adminDelay_) {
        if (adminDelay_ <= unbondingDelay_) revert DelayTooShort(adminDelay_, unbondingDelay_);
        _deployer = msg.sender;
        minStake = minStake_;
        unbondingDelay = unbondingDelay_;
        for (uint256 i = 0; i < managers_.length; ++i) {
            if (managers_[i] == address(0)) revert ZeroAddress();
            isManager[managers_[i]] = true;
            emit ManagerSet(managers_[i], true);
        }
    }

    modifier onlyManager() {
        if (!isManager[msg.sender]) revert NotManager(msg.sender);
        _;
    }

    // ---------------------------------------------------------------- node operators

    /// @notice Registers the caller with `msg.value` as stake (at least `minStake`).
    function register(bytes calldata peerId, bytes32 attestationKeyHash, uint8 roles) external payable {
        Node storage n = _nodes[msg.sender];
        if (n.registered) revert AlreadyRegistered(msg.sender);
        _checkProfile(peerId, roles);
        if (msg.value < minStake || msg.value == 0) revert StakeTooLow(msg.value, minStake);
        if (msg.value > type(uint128).max) revert AmountTooLarge(msg.value);
        _claimAttestationKey(attestationKeyHash);
        _claimPeerId(peerId);
        n.stake = uint128(msg.value);
        n.reputation = INITIAL_REPUTATION;
        n.roles = roles;
        n.registered = true;
        n.attestationKeyHash = attestationKeyHash;
        n.peerId = peerId;
        totalHeld += msg.value;
        emit NodeRegistered(msg.sender, roles, peerId, attestationKeyHash, msg.value);
    }

    /// @notice Changes the caller's peer id, attestation key hash and roles.
    function update(bytes calldata peerId, bytes32 attestationKeyHash, uint8 roles) external {
        Node storage n = _registered(msg.sender);
        _checkProfile(peerId, roles);
        _claimAttestationKey(attestationKeyHash);
        bytes32 previous = keccak256(n.peerId);
        bytes32 next = _claimPeerId(peerId);
        if (previous != next && peerIdOwner[previous] == msg.sender) delete peerIdOwner[previous];
        uint8 dropped = n.roles & ~roles;
        if (dropped != 0) {
            // Roles dropped earlier and still in their grace period keep it; the clock restarts.
            DroppedRoles storage d = _dropped[msg.sender];
            uint8 still = block.timestamp < d.droppedAt + unbondingDelay ? d.roles : 0;
            _dropped[msg.sender] = DroppedRoles(still | dropped, uint64(block.timestamp));
        }
        n.roles = roles;
        n.attestationKeyHash = attestationKeyHash;
        n.peerId = peerId;
        emit NodeUpdated(msg.sender, roles, peerId, attestationKeyHash);
    }

    /// @notice Adds `msg.value` to the caller's stake.
    function addStake() external payable {
        Node storage n = _registered(msg.sender);
        if (msg.value == 0) revert ZeroAmount();
        // A node that left comes back: its peer id may have gone to another node meanwhile. Not
        // only when nothing is unbonding: a refunded audit (`returnFromAudit`) puts funds back
        // into unbonding of a node that may have left, and its peer id may be another's by then.
        if (n.stake == 0) _claimPeerId(n.peerId);
        uint256 stake = n.stake + msg.value;
        if (stake > type(uint128).max) revert AmountTooLarge(msg.value);
        n.stake = uint128(stake);
        totalHeld += msg.value;
        emit StakeAdded(msg.sender, msg.value, stake);
    }

    /// @notice Moves `amount` of stake into unbonding; the timer restarts for everything unbonding.
    function requestUnbond(uint256 amount) external {
        Node storage n = _registered(msg.sender);
        if (amount == 0) revert ZeroAmount();
        if (amount > n.stake) revert InsufficientStake(amount, n.stake);
        n.stake -= uint128(amount);
        n.unbonding += uint128(amount);
        uint64 releaseAt = uint64(block.timestamp + unbondingDelay);
        n.unbondingReleaseAt = releaseAt;
        emit UnbondRequested(msg.sender, amount, releaseAt);
    }

    /// @notice Sends the caller everything that finished unbonding.
    function withdraw() external nonReentrant {
        Node storage n = _registered(msg.sender);
        uint256 amount = n.unbonding;
        if (amount == 0) revert NothingToWithdraw();
        if (block.timestamp < n.unbondingReleaseAt) revert StillUnbonding(n.unbondingReleaseAt);
        n.unbonding = 0;
        totalHeld -= amount;
        emit Withdrawn(msg.sender, amount);
        _send(msg.sender, amount);
    }

    /// @notice Sends the caller the slashed funds credited to it.
    function claimPayout() external nonReentrant {
        uint256 amount = payouts[msg.sender];
        if (amount == 0) revert NothingToWithdraw();
        payouts[msg.sender] = 0;
        totalHeld -= amount;
        emit PayoutClaimed(msg.sender, amount);
        _send(msg.sender, amount);
    }

    // ---------------------------------------------------------------- managers

    /// @notice Grants or revokes the manager role (evidence: reputation and slashing). Timelocked:
    ///         queue it with `queueAdminCall` first.
    function setManager(address account, bool allowed) external timelocked {
        if (account == address(0)) revert ZeroAddress();
        isManager[account] = allowed;
        emit ManagerSet(account, allowed);
    }

    /// @notice Names the AccessController whose fast-path audits may draw a fee shortfall from
    ///         stake. Once, by the deployer or the admin: nobody can later point it at a contract
    ///         that would drain stakes.
    function setAccessController(address controller) external {
        if (msg.sender != admin && msg.sender != _deployer) revert NotAdmin(msg.sender);
        if (controller == address(0)) revert ZeroAddress();
        if (accessController != address(0)) revert AccessControllerAlreadySet(accessController);
        accessController = controller;
        emit AccessControllerSet(controller);
    }

    /// @notice Sends the AccessController up to `amount` of `node`'s stake, then unbonding funds:
    ///         the part of a fast-path audit's fee the node's deposit no longer covers (several
    ///         keyguards released keys against one deposit). The controller names the executor of
    ///         the audit and the shortfall only; the funds go into that grant's escrow
    ///         (docs/adr/0006). What is drawn still counts for `isBound`, so that the audits of the
    ///         other keys already released still land.
    /// @return drawn What was actually sent (less than `amount` when the node has less).
    function drawForAudit(address node, uint256 amount) external nonReentrant returns (uint256 drawn) {
        if (msg.sender != accessController || msg.sender == address(0)) revert NotAccessController(msg.sender);
        Node storage n = _registered(node);
        uint256 fromStake = amount < n.stake ? amount : n.stake;
        n.stake -= uint128(fromStake);
        uint256 rest = amount - fromStake;
        uint256 fromUnbonding = rest < n.unbonding ? rest : n.unbonding;
        n.unbonding -= uint128(fromUnbonding);
        drawn = fromStake + fromUnbonding;
        if (drawn == 0) return 0;
        drawnForAudits[node] += drawn;
        totalHeld -= drawn;
        emit DrawnForAudit(node, drawn);
        _send(msg.sender, drawn);
    }

    /// @notice Takes back (`msg.value`) stake that `drawForAudit` sent for an escrow that was
    ///         then refunded (a job that timed out). It goes into `node`'s unbonding funds, not
    ///         back to the node: drawn stake must not become liquid before `unbondingDelay`, or a
    ///         node could pull its bond through an escrow and escape a pending slash. The clock
    ///         restarts for everything unbonding (as `requestUnbond` does), and the funds stay
    ///         slashable until `withdraw`. It no longer counts as drawn (`isBound` counts it once,
    ///         as unbonding).
    function returnFromAudit(address node) external payable {
        if (msg.sender != accessController || msg.sender == address(0)) revert NotAccessController(msg.sender);
        if (msg.value == 0) revert ZeroAmount();
        Node storage n = _registered(node);
        uint256 unbonding = n.unbonding + msg.value;
        if (unbonding > type(uint128).max) revert AmountTooLarge(msg.value);
        uint256 drawn = drawnForAudits[node];
        drawnForAudits[node] = drawn > msg.value ? drawn - msg.value : 0;
        n.unbonding = uint128(unbonding);
        uint64 releaseAt = uint64(block.timestamp + unbondingDelay);
        n.unbondingReleaseAt = releaseAt;
        totalHeld += msg.value;
        emit ReturnedFromAudit(node, msg.value, releaseAt);
    }

    /// @notice A settled, attested pass of `node` (as executor, or as a verifier that certified
    ///         a job): reputation r grows by max(1, ⌊r·(1000 − r) / 16,000⌋), capped at 1000
    ///         (`nextReputation(r, 'pass')` of the committee package). Reputation 0 is final: a
    ///         pass from 0 gives nothing.
    function recordPass(address node) external onlyManager returns (uint64 current) {
        Node storage n = _registered(node);
        uint64 previous = n.reputation;
        // 0 means caught: a fail at 1 or an equivocation. Were a pass to lift it back to 1, one
        // run (a fee-0 job, say) would re-admit the node to every `minReputation(1)` policy, the
        // rule "never caught failing" rests on (ADR 0027, amended).
        if (previous == 0) return 0;
        uint256 r = previous;
        uint256 step = (r * (MAX_REPUTATION - r)) / (REPUTATION_GROWTH_DIVISOR * MAX_REPUTATION);
        uint256 next = r + (step == 0 ? 1 : step);
        current = next > MAX_REPUTATION ? MAX_REPUTATION : uint64(next);
        n.reputation = current;
        emit ReputationChanged(node, previous, current, msg.sender);
    }

    /// @notice Evidence of a fault by `node` in job `jobId`: a fail verdict halves its reputation,
    ///         an equivocation proof sets it to 0; then up to `amount` is taken from its stake,
    ///         then from its unbonding funds: `recipientBps` of that is credited to `recipient`
    ///         (claimed with `claimPayout`; `recipient` may be 0 only with no share) and the rest
    ///         is burned (`BURN_ADDRESS`). What stake and unbonding funds lack is taken from the
    ///         stake its audits drew that settlement has not released yet
    ///         (`AccessController.seizeStakeCredits`) and burned whole: those funds were already
    ///         promised to a payee of the node's jobs, so a share of them to a reporter would be
    ///         paid by that payee, not by the node (docs/adr/0092).
    /// @return slashed What was actually taken (all parts).
    /// @return rewarded What of it was credited to `recipient`.
    function recordFault(
        address node,
        bool equivocation,
        uint256 amount,
        address recipient,
        uint256 recipientBps,
        bytes32 jobId
    ) external onlyManager returns (uint256 slashed, uint256 rewarded) {
        if (recipientBps > BPS) revert InvalidShare(recipientBps);
        if (recipient == address(0) && recipientBps != 0) revert ZeroAddress();
        Node storage n = _registered(node);
        uint64 previous = n.reputation;
        uint64 current = equivocation ? 0 : previous / 2;
        n.reputation = current;
        emit ReputationChanged(node, previous, current, msg.sender);
        uint256 fromStake = amount < n.stake ? amount : n.stake;
        n.stake -= uint128(fromStake);
        uint256 rest = amount - fromStake;
        uint256 fromUnbonding = rest < n.unbonding ? rest : n.unbonding;
        n.unbonding -= uint128(fromUnbonding);
        slashed = fromStake + fromUnbonding;
        if (slashed > 0) {
            rewarded = (slashed * recipientBps) / BPS;
            if (rewarded > 0) payouts[recipient] += rewarded;
            emit Slashed(node, slashed, recipient, jobId, msg.sender);
            _burn(node, slashed - rewarded, jobId);
        }
        // Drawn stake paid out by settlement stays at risk until its credit is released: else an
        // executor could move its bond to a colluding owner's credit and out of a slash's reach.
        if (slashed < amount && drawnForAudits[node] != 0) {
            slashed += IStakeCreditSeizure(accessController).seizeStakeCredits(node, amount - slashed);
        }
    }

    // ---------------------------------------------------------------- views

    function reputationOf(address node) external view returns (uint256) {
        return _nodes[node].reputation;
    }

    function isActive(address node, uint8 role) external view returns (bool) {
        Node storage n = _nodes[node];
        return n.registered && role != 0 && (n.roles & role) == role && n.stake >= minStake;
    }

    /// @notice True when `node` holds `role` now or dropped it less than `unbondingDelay` ago,
    ///         and its stake plus unbonding funds (both slashable, neither withdrawable before
    ///         the delay) plus what audits drew from them (`drawForAudit`) reach `minStake`. What a fast-path audit relies on: the node cannot
    ///         make it false within `unbondingDelay` of a moment `isActive` was true and the node
    ///         was not leaving.
    function isBound(address node, uint8 role) external view returns (bool) {
        Node storage n = _nodes[node];
        if (!n.registered || role == 0) return false;
        uint8 roles = n.roles;
        DroppedRoles storage d = _dropped[node];
        if (block.timestamp < d.droppedAt + unbondingDelay) roles |= d.roles;
        return (roles & role) == role && uint256(n.stake) + n.unbonding + drawnForAudits[node] >= minStake;
    }

    /// @notice True when `node` has funds unbonding. A keyguard does not release a key to a
    ///         leaving node (a dropped role already makes `isActive` false).
    function isLeaving(address node) external view returns (bool) {
        return _nodes[node].unbonding != 0;
    }

    function getNode(address node) external view returns (Node memory) {
        return _nodes[node];
    }

    // ---------------------------------------------------------------- internals

    /// @dev Sends `amount` of the held funds to `BURN_ADDRESS` (a slash's unpaid part).
    function _burn(address node, uint256 amount, bytes32 jobId) private {
        if (amount == 0) return;
        totalHeld -= amount;
        emit SlashBurned(node, amount, jobId);
        _send(BURN_ADDRESS, amount);
    }

    function _registered(address node) private view returns (Node storage n) {
        n = _nodes[node];
        if (!n.registered) revert NotRegistered(node);
    }

    /// @dev Zero means "no attestation key" and is never claimed. A claim is never released (not
    ///      on update nor on withdrawal), so a record a node gave up cannot be taken over either.
    function _claimAttestationKey(bytes32 attestationKeyHash) private {
        if (attestationKeyHash == bytes32(0)) return;
        address owner = attestationKeyOwner[attestationKeyHash];
        if (owner == address(0)) attestationKeyOwner[attestationKeyHash] = msg.sender;
        else if (owner != msg.sender) revert AttestationKeyTaken(attestationKeyHash, owner);
    }

    /// @dev Claims `peerId` for the caller; refused while another node that has not left holds it.
    function _claimPeerId(bytes memory peerId) private returns (bytes32 id) {
        id = keccak256(peerId);
        address owner = peerIdOwner[id];
        if (owner == msg.sender) return id;
        if (owner != address(0) && _live(owner)) revert PeerIdTaken(peerId, owner);
        peerIdOwner[id] = msg.sender;
    }

    /// @dev Registered and not gone: stake or funds unbonding (any registered node when
    ///      `minStake` is 0, as such a node stays active with no stake).
    function _live(address node) private view returns (bool) {
        Node storage n = _nodes[node];
        return n.registered && (n.stake != 0 || n.unbonding != 0 || minStake == 0);
    }

    function _checkProfile(bytes calldata peerId, uint8 roles) private pure {
        if (roles == 0 || roles & ~ALL_ROLES != 0) revert InvalidRoles(roles);
        if (peerId.length == 0 || peerId.length > MAX_PEER_ID_LENGTH) revert InvalidPeerId(peerId.length);
    }
}
