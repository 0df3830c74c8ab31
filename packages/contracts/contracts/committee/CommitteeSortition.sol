// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {INodeRegistry} from "../interfaces/INodeRegistry.sol";
import {Secp256k1Vrf} from "./Secp256k1Vrf.sol";
import {SortitionScore} from "./SortitionScore.sol";

/// @title CommitteeSortition
/// @notice Top-k sortition within a submission window (ADR 0024). The opener (the settlement
///         contract) opens a job at its grant; during the next `window` blocks every active
///         verifier may submit its VRF ticket for seed = keccak256(jobId ‖ blockhash(grant
///         block)); the contract verifies it, scores it by stake × reputation from the
///         NodeRegistry, and keeps the `seats` lowest scores, sorted: the committee, leader first.
/// @dev The VRF key is the node's Ethereum key: a ticket counts only from the address of its
///      public key, so no separate key registration exists to forge. An exact score tie keeps
///      the earlier ticket; the TypeScript ranking breaks it by beta (the two differ only on a
///      tie, rare at the 2⁹⁶ scale: ADR 0024, amended).
contract CommitteeSortition {
    uint8 internal constant ROLE_VERIFIER = 2;
    uint8 internal constant MAX_SEATS = 31;

    /// @notice The smallest stake × reputation (wei × reputation) a ticket may carry: 2⁴¹, about
    ///         0.0000022 ether at reputation 1. A score is at most 2¹³⁶ / weight, so from this
    ///         weight on it fits a seat's 96 bits.
    uint256 public constant MIN_WEIGHT = 1 << 41;

    /// @dev One storage slot per seat: a score fits 96 bits for any weight ≥ MIN_WEIGHT, and
    ///      smaller weights are refused as not eligible.
    struct Seat {
        address node;
        uint96 score;
    }

    INodeRegistry public immutable registry;
    address public immutable opener;
    /// @notice Blocks after the grant block during which tickets are accepted (1 … 256).
    uint64 public immutable window;
    /// @notice Committee size n = 3f + 1.
    uint8 public immutable seats;

    /// @dev One slot per job: where the seed comes from and whose run the committee judges.
    struct Opened {
        uint64 grantBlock;
        address executor;
    }

    mapping(bytes32 jobId => Opened) internal _opened;
    mapping(bytes32 jobId => Seat[]) internal _committees;

    event JobOpened(bytes32 indexed jobId, uint64 grantBlock);
    event TicketAccepted(bytes32 indexed jobId, address indexed node, bytes32 beta, uint256 score, bool seated);

    error NotOpener(address caller);
    error InvalidParameters();
    error JobExists(bytes32 jobId);
    error JobNotOpen(bytes32 jobId);
    error OutsideWindow(uint256 blockNumber, uint64 firstBlock, uint64 lastBlock);
    error NotKeyOwner(address caller, address keyAddress);
    error NotEligible(address node);
    error AlreadySeated(address node);
    error SeedExpired(bytes32 jobId);
    error IsExecutor(bytes32 jobId, address node);

    constructor(INodeRegistry registry_, address opener_, uint64 window_, uint8 seats_) {
        if (
            address(registry_) == address(0) || window_ == 0 || window_ > 256 || seats_ == 0
                || seats_ > MAX_SEATS || seats_ % 3 != 1
        ) revert InvalidParameters();
        registry = registry_;
        opener = opener_;
        window = window_;
        seats = seats_;
    }

    /// @notice Opens `jobId`'s sortition at this block (its blockhash seeds the VRF), for a run
    ///         of `executor`, which may not sit on its committee.
    function openJob(bytes32 jobId, address executor) external {
        if (msg.sender != opener) revert NotOpener(msg.sender);
        if (_opened[jobId].grantBlock != 0) revert JobExists(jobId);
        _opened[jobId] = Opened(uint64(block.number), executor);
        emit JobOpened(jobId, uint64(block.number));
    }

    /// @notice The block `jobId` was opened at (0 when not opened).
    function grantBlockOf(bytes32 jobId) public view returns (uint64) {
        return _opened[jobId].grantBlock;
    }

    /// @notice The executor whose run `jobId`'s committee judges (refused a seat).
    function executorOf(bytes32 jobId) external view returns (address) {
        return _opened[jobId].executor;
    }

    /// @notice The VRF input of `jobId`: known from the block after the grant, readable for 256
    ///         blocks (blockhash), which covers the window.
    function seedOf(bytes32 jobId) public view returns (bytes32) {
        uint64 grant = _opened[jobId].grantBlock;
        if (grant == 0 || block.number <= grant) revert JobNotOpen(jobId);
        bytes32 hash = blockhash(grant);
        if (hash == 0) revert SeedExpired(jobId);
        return keccak256(abi.encodePacked(jobId, hash));
    }

    /// @notice Submits the sender's ticket: `pk` must be the sender's own public key.
    /// @return seated Whether the ticket is among the `seats` lowest scores so far.
    function submitTicket(bytes32 jobId, uint256[2] calldata pk, Secp256k1Vrf.Proof calldata proof)
        external
        returns (bool seated)
    {
        Opened memory opened = _opened[jobId];
        uint64 grant = opened.grantBlock;
        if (grant == 0) revert JobNotOpen(jobId);
        if (block.number <= grant || block.number > grant + window) {
            revert OutsideWindow(block.number, grant + 1, grant + window);
        }
        address node = address(uint160(uint256(keccak256(abi.encodePacked(pk[0], pk[1])))));
        if (node != msg.sender) revert NotKeyOwner(msg.sender, node);
        // The executor would judge its own run, and be paid as a signer besides its share.
        if (node == opened.executor) revert IsExecutor(jobId, node);
        if (!registry.isActive(node, ROLE_VERIFIER)) revert NotEligible(node);
        INodeRegistry.Node memory record = registry.getNode(node);
        uint256 weight = uint256(record.stake) * uint256(record.reputation);
        if (weight < MIN_WEIGHT) revert NotEligible(node);

        // The window is at most 256 blocks, so blockhash(grant) is still readable here.
        bytes32 seed = keccak256(abi.encodePacked(jobId, blockhash(grant)));
        bytes32 beta = Secp256k1Vrf.verify(pk, abi.encodePacked(seed), proof);
        uint256 score = SortitionScore.score(beta, weight);
        seated = _insert(_committees[jobId], node, uint96(score));
        emit TicketAccepted(jobId, node, beta, score, seated);
    }

    /// @notice The committee so far, leader first, and whether the window has closed.
    function committeeOf(bytes32 jobId) external view returns (address[] memory members, bool closed) {
        Seat[] storage c = _committees[jobId];
        members = new address[](c.length);
        for (uint256 i = 0; i < c.length; i++) {
            members[i] = c[i].node;
        }
        uint64 grant = _opened[jobId].grantBlock;
        closed = grant != 0 && block.number > grant + window;
    }

    /// @notice The score a ticket must beat to be seated now: `full` once every seat is taken,
    ///         and then the last seat's score (a ticket scoring it or more is not seated), and
    ///         whether the window has closed. A verifier reads it before submitting and keeps its
    ///         gas when it is beaten, and learns from closed jobs when to submit (ADR 0065).
    function cutoffOf(bytes32 jobId) external view returns (bool full, uint256 score, bool closed) {
        Seat[] storage c = _committees[jobId];
        full = c.length == seats;
        if (full) score = c[c.length - 1].score;
        uint64 grant = _opened[jobId].grantBlock;
        closed = grant != 0 && block.number > grant + window;
    }

    /// @dev Inserts into the sorted seats when it beats the last one (or a seat is free).
    function _insert(Seat[] storage c, address node, uint96 score) private returns (bool) {
        uint256 len = c.length;
        for (uint256 i = 0; i < len; i++) {
            if (c[i].node == node) revert AlreadySeated(node);
        }
        if (len == seats) {
            if (score >= c[len - 1].score) return false;
            c.pop();
            len--;
        }
        c.push(Seat(node, score));
        uint256 j = len;
        while (j > 0 && c[j - 1].score > score) {
            c[j] = c[j - 1];
            j--;
        }
        c[j] = Seat(node, score);
        return true;
    }
}
