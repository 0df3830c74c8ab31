// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

import {CommitteeCertificate} from "./CommitteeCertificate.sol";
import {CommitteeSortition} from "./CommitteeSortition.sol";

/// @title AttestationHub
/// @notice Settlement of an attested job, first step (issue #16): opens the job and its
///         sortition, seats the committee CommitteeSortition drew, accepts one commit
///         certificate of 2f + 1 members before a deadline (records the verdict), or closes the
///         job as timed out after it.
/// @dev No funds, stake or reputation move here yet: paying from the grant's escrow, slashing and
///      `nextReputation` are left for the wiring with AccessController and NodeRegistry.
///      The hub must be `sortition.opener()`.
contract AttestationHub {
    enum Status {
        None,
        Open,
        Seated,
        Settled,
        TimedOut
    }

    /// @dev One storage slot per job, so accepting a certificate reads and writes one slot.
    ///      The committee is kept as the first 20 bytes of keccak256(sorted members): a
    ///      certificate brings the members in calldata and must hash to it.
    struct Job {
        bytes20 committeeHash;
        uint64 deadline;
        Status status;
        uint8 verdict;
    }

    CommitteeSortition public immutable sortition;
    address public immutable opener;
    /// @notice Blocks after the sortition window during which a certificate is accepted.
    uint64 public immutable certificateBlocks;
    /// @notice 2f + 1 for the sortition's n = 3f + 1 seats.
    uint256 public immutable quorum;

    mapping(bytes32 jobId => Job) public jobs;

    event JobOpened(bytes32 indexed jobId, uint64 deadline);
    event CommitteeSeated(bytes32 indexed jobId, address[] members);
    /// @dev The signers are in the transaction's calldata; not repeated here (gas).
    event CertificateAccepted(bytes32 indexed jobId, uint8 verdict, uint64 viewNumber, bytes32 evidenceHash);
    event JobTimedOut(bytes32 indexed jobId);

    error NotOpener(address caller);
    error InvalidParameters();
    error JobExists(bytes32 jobId);
    error UnknownJob(bytes32 jobId);
    error JobClosed(bytes32 jobId, Status status);
    error SortitionOpen(bytes32 jobId);
    error CommitteeIncomplete(bytes32 jobId, uint256 seated, uint256 seats);
    error CommitteeNotSeated(bytes32 jobId);
    error CommitteeMismatch(bytes32 jobId);
    error DeadlinePassed(bytes32 jobId, uint64 deadline);
    error DeadlineNotReached(bytes32 jobId, uint64 deadline);

    constructor(CommitteeSortition sortition_, address opener_, uint64 certificateBlocks_) {
        if (address(sortition_) == address(0) || certificateBlocks_ == 0) revert InvalidParameters();
        sortition = sortition_;
        opener = opener_;
        certificateBlocks = certificateBlocks_;
        quorum = 2 * ((uint256(sortition_.seats()) - 1) / 3) + 1;
    }

    /// @notice The EIP-712 domain separator certificates are signed under (this hub, this chain).
    function domainSeparator() external view returns (bytes32) {
        return CommitteeCertificate.domainSeparator(address(this));
    }

    /// @notice The digest each member's `Commit` signature signs for `value`.
    function certificateDigest(CommitteeCertificate.Value calldata value) external view returns (bytes32) {
        return CommitteeCertificate.digest(CommitteeCertificate.domainSeparator(address(this)), value);
    }

    /// @notice Opens `jobId` and its sortition at this block; the certificate is due by the
    ///         end of the sortition window + `certificateBlocks`.
    function openJob(bytes32 jobId) external {
        if (msg.sender != opener) revert NotOpener(msg.sender);
        if (jobs[jobId].status != Status.None) revert JobExists(jobId);
        sortition.openJob(jobId);
        uint64 deadline = uint64(block.number) + sortition.window() + certificateBlocks;
        jobs[jobId] = Job(bytes20(0), deadline, Status.Open, 0);
        emit JobOpened(jobId, deadline);
    }

    /// @notice Anyone: once the sortition window has closed with all seats taken, records the
    ///         committee (sorted by address, as certificates list it).
    function seatCommittee(bytes32 jobId) external returns (address[] memory members) {
        Job storage job = jobs[jobId];
        if (job.status == Status.None) revert UnknownJob(jobId);
        if (job.status != Status.Open) revert JobClosed(jobId, job.status);
        bool closed;
        (members, closed) = sortition.committeeOf(jobId);
        if (!closed) revert SortitionOpen(jobId);
        uint256 seats = sortition.seats();
        if (members.length != seats) revert CommitteeIncomplete(jobId, members.length, seats);
        _sort(members);
        job.committeeHash = bytes20(keccak256(abi.encodePacked(members)));
        job.status = Status.Seated;
        emit CommitteeSeated(jobId, members);
    }

    /// @notice Accepts the job's certificate: `committee` is the seated committee sorted
    ///         ascending (CommitteeSeated), `signers` strictly ascending members, `signatures`
    ///         their 65-byte `Commit` signatures concatenated in the same order.
    function submitCertificate(
        CommitteeCertificate.Value calldata value,
        address[] calldata committee,
        address[] calldata signers,
        bytes calldata signatures
    ) external {
        Job memory job = jobs[value.jobId];
        if (job.status == Status.None) revert UnknownJob(value.jobId);
        if (job.status == Status.Open) revert CommitteeNotSeated(value.jobId);
        if (job.status != Status.Seated) revert JobClosed(value.jobId, job.status);
        if (block.number > job.deadline) revert DeadlinePassed(value.jobId, job.deadline);
        if (value.verdict > CommitteeCertificate.MAX_VERDICT) {
            revert CommitteeCertificate.InvalidVerdict(value.verdict);
        }
        if (bytes20(keccak256(abi.encodePacked(committee))) != job.committeeHash) {
            revert CommitteeMismatch(value.jobId);
        }
        bytes32 digest = CommitteeCertificate.digest(CommitteeCertificate.domainSeparator(address(this)), value);
        CommitteeCertificate.check(digest, committee, quorum, signers, signatures);
        jobs[value.jobId] = Job(job.committeeHash, job.deadline, Status.Settled, value.verdict);
        emit CertificateAccepted(value.jobId, value.verdict, value.viewNumber, value.evidenceHash);
    }

    /// @notice Anyone: after the deadline, closes a job that has no certificate as timed out.
    function closeTimedOut(bytes32 jobId) external {
        Job storage job = jobs[jobId];
        if (job.status == Status.None) revert UnknownJob(jobId);
        if (job.status != Status.Open && job.status != Status.Seated) revert JobClosed(jobId, job.status);
        if (block.number <= job.deadline) revert DeadlineNotReached(jobId, job.deadline);
        job.status = Status.TimedOut;
        emit JobTimedOut(jobId);
    }

    /// @dev Insertion sort: at most 31 members.
    function _sort(address[] memory a) private pure {
        for (uint256 i = 1; i < a.length; i++) {
            address x = a[i];
            uint256 j = i;
            while (j > 0 && a[j - 1] > x) {
                a[j] = a[j - 1];
                j--;
            }
            a[j] = x;
        }
    }
}
