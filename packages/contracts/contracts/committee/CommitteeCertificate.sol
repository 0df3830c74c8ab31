// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

/// @title CommitteeCertificate
/// @notice Checks a PBFT commit certificate: at least `quorum` (2f + 1) EIP-712 `Commit`
///         signatures of distinct committee members over one (job id, view, verdict, evidence
///         hash), under the domain {name "DigicapPbft", version "1", chainId, verifyingContract}.
/// @dev The typed data is @digicap/committee's `voteTypedData(domain, { phase: 'commit', … })`:
///      `Commit(bytes32 jobId,uint64 view,uint8 verdict,bytes32 evidenceHash)`. Signatures are
///      65 bytes r ‖ s ‖ v (v 27 or 28, low s), concatenated in committee order. The signers are
///      recovered, not listed: a bitmap says which members signed, the members that did not
///      sign come in calldata, and together they must rebuild the seated committee's hash.
library CommitteeCertificate {
    bytes32 internal constant DOMAIN_TYPEHASH =
        keccak256("EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)");
    bytes32 internal constant NAME_HASH = keccak256("DigicapPbft");
    bytes32 internal constant VERSION_HASH = keccak256("1");
    bytes32 internal constant COMMIT_TYPEHASH =
        keccak256("Commit(bytes32 jobId,uint64 view,uint8 verdict,bytes32 evidenceHash)");
    bytes32 internal constant PREPARE_TYPEHASH =
        keccak256("Prepare(bytes32 jobId,uint64 view,uint8 verdict,bytes32 evidenceHash)");
    bytes32 internal constant PREPREPARE_TYPEHASH =
        keccak256("PrePrepare(bytes32 jobId,uint64 view,uint8 verdict,bytes32 evidenceHash)");
    /// @dev A member's own observation of the run (ADR 0087), one per member and round.
    bytes32 internal constant OBSERVATION_TYPEHASH =
        keccak256("Observation(bytes32 jobId,uint64 view,uint8 verdict,bytes32 evidenceHash)");
    /// @dev Vote phase numbers as the hub takes them: 0 PrePrepare, 1 Prepare, 2 Commit, 3 Observation.
    uint8 internal constant OBSERVATION = 3;
    /// @dev secp256k1 n / 2: a higher s is the malleable twin of a valid signature.
    uint256 internal constant HALF_ORDER = 0x7fffffffffffffffffffffffffffffff5d576e7357a4501ddfe92f46681b20a0;
    /// @dev PBFT verdicts are 0 … 7 (pass / fail per phase, @digicap/protocol PBFT_MAX_VERDICT).
    uint8 internal constant MAX_VERDICT = 7;

    /// @notice What the committee signed.
    struct Value {
        bytes32 jobId;
        uint64 viewNumber; // the struct field `view` (a Solidity keyword)
        uint8 verdict;
        bytes32 evidenceHash;
    }

    error InvalidVerdict(uint8 verdict);
    error SignaturesLength(uint256 signatureBytes);
    error TooFewSignatures(uint256 signatures, uint256 quorum);
    error SignersMismatch();
    error NotTheCommittee();
    error NotCommitteeMember(address signer);
    error BadSignature(uint256 index);

    /// @notice The EIP-712 domain separator of `verifyingContract` on this chain.
    function domainSeparator(address verifyingContract) internal view returns (bytes32) {
        return keccak256(abi.encode(DOMAIN_TYPEHASH, NAME_HASH, VERSION_HASH, block.chainid, verifyingContract));
    }

    /// @notice The digest each member signs for `value` (EIP-712 `\x19\x01 ‖ domain ‖ struct`).
    function digest(bytes32 domain, Value calldata value) internal pure returns (bytes32) {
        bytes32 structHash =
            keccak256(abi.encode(COMMIT_TYPEHASH, value.jobId, value.viewNumber, value.verdict, value.evidenceHash));
        return keccak256(abi.encodePacked("\x19\x01", domain, structHash));
    }

    /// @notice The digest of a PBFT vote of `phase` (0 PrePrepare, 1 Prepare, 2 Commit,
    ///         3 Observation): the same fields under the phase's own primary type, so that no
    ///         phase's signature is valid for another (SPEC-PBFT §2).
    function voteDigest(bytes32 domain, uint8 phase, bytes32 jobId, uint64 viewNumber, uint8 verdict, bytes32 evidenceHash)
        internal
        pure
        returns (bytes32)
    {
        bytes32 typehash = phase == 0
            ? PREPREPARE_TYPEHASH
            : (phase == 1 ? PREPARE_TYPEHASH : (phase == 2 ? COMMIT_TYPEHASH : OBSERVATION_TYPEHASH));
        bytes32 structHash = keccak256(abi.encode(typehash, jobId, viewNumber, verdict, evidenceHash));
        return keccak256(abi.encodePacked("\x19\x01", domain, structHash));
    }

    /// @notice Reverts unless `signatures` hold ≥ `quorum` valid signatures of `digest` by the
    ///         members at the set bits of `signerBits`, and those signers with `others` (the
    ///         members that did not sign, ascending) rebuild the committee whose hash is
    ///         `committeeHash` (first 20 bytes of keccak256 of the sorted members, 32 bytes each).
    /// @dev Signers are recovered, not listed, and the members who signed are not sent at all:
    ///      calldata is the largest cost of a certificate. Each position holds one member, so a
    ///      signer counts once; a forged, foreign or repeated signature rebuilds another committee.
    /// @return signers `signerBits` as stored (bit i: member i signed).
    function check(
        bytes32 digest_,
        bytes20 committeeHash,
        uint256 quorum,
        uint256 signerBits,
        address[] calldata others,
        bytes calldata signatures
    ) internal view returns (uint32 signers) {
        uint256 count = signatures.length / 65;
        if (signatures.length != count * 65) revert SignaturesLength(signatures.length);
        if (count < quorum) revert TooFewSignatures(count, quorum);
        // The committee is rebuilt in memory, one 32-byte word per member, in seat order.
        uint256 seats = count + others.length;
        if (seats > 32 || signerBits >> seats != 0) revert SignersMismatch();
        uint256 members;
        assembly ("memory-safe") {
            members := mload(0x40)
            mstore(0x40, add(members, shl(5, seats)))
        }
        uint256 s = 0;
        for (uint256 i = 0; i < seats;) {
            uint256 member;
            if ((signerBits >> i) & 1 == 1) {
                if (s == count) revert SignersMismatch();
                member = uint256(uint160(recover(digest_, signatures, s)));
                if (member == 0) revert BadSignature(s);
                unchecked {
                    s++;
                }
            } else {
                // i - s < others.length: i < seats = count + others.length and s ≤ count.
                if (i - s >= others.length) revert SignersMismatch();
                assembly ("memory-safe") {
                    member := calldataload(add(others.offset, shl(5, sub(i, s))))
                }
            }
            assembly ("memory-safe") {
                mstore(add(members, shl(5, i)), member)
            }
            unchecked {
                i++;
            }
        }
        if (s != count) revert SignersMismatch();
        bytes32 rebuilt;
        assembly ("memory-safe") {
            rebuilt := keccak256(members, shl(5, seats))
        }
        if (bytes20(rebuilt) != committeeHash) revert NotTheCommittee();
        signers = uint32(signerBits);
    }

    /// @notice The signer of one 65-byte signature, or address(0) when it is malformed.
    function recoverOne(bytes32 digest_, bytes calldata signature) internal view returns (address) {
        if (signature.length != 65) return address(0);
        return recover(digest_, signature, 0);
    }

    /// @notice The signer of the `i`-th 65-byte signature, or address(0) when it is malformed
    ///         (v not 27/28, high s) or does not recover.
    function recover(bytes32 digest_, bytes calldata signatures, uint256 i) internal view returns (address) {
        bytes32 r;
        bytes32 s;
        uint8 v;
        assembly ("memory-safe") {
            let p := add(signatures.offset, mul(i, 65))
            r := calldataload(p)
            s := calldataload(add(p, 32))
            v := byte(0, calldataload(add(p, 64)))
        }
        if (uint256(s) > HALF_ORDER || (v != 27 && v != 28)) return address(0);
        // The precompile through the scratch space: Solidity's ecrecover allocates memory per call.
        address signer;
        assembly ("memory-safe") {
            let m := mload(0x40)
            mstore(m, digest_)
            mstore(add(m, 32), v)
            mstore(add(m, 64), r)
            mstore(add(m, 96), s)
            mstore(0, 0)
            if staticcall(gas(), 1, m, 128, 0, 32) { signer := mload(0) }
        }
        return signer;
    }
}
