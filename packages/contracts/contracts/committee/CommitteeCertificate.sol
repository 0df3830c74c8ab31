// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.28;

/// @title CommitteeCertificate
/// @notice Checks a PBFT commit certificate: at least `quorum` (2f + 1) EIP-712 `Commit`
///         signatures of distinct committee members over one (job id, view, verdict, evidence
///         hash), under the domain {name "DigicapPbft", version "1", chainId, verifyingContract}.
/// @dev The typed data is @digicap/committee's `voteTypedData(domain, { phase: 'commit', … })`:
///      `Commit(bytes32 jobId,uint64 view,uint8 verdict,bytes32 evidenceHash)`. Signatures are
///      65 bytes r ‖ s ‖ v (v 27 or 28, low s), concatenated in signer order. Signers must be
///      strictly ascending, so a signer counts once; the committee is given sorted ascending too,
///      so membership is one merge pass (no storage read per signer).
library CommitteeCertificate {
    bytes32 internal constant DOMAIN_TYPEHASH =
        keccak256("EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)");
    bytes32 internal constant NAME_HASH = keccak256("DigicapPbft");
    bytes32 internal constant VERSION_HASH = keccak256("1");
    bytes32 internal constant COMMIT_TYPEHASH =
        keccak256("Commit(bytes32 jobId,uint64 view,uint8 verdict,bytes32 evidenceHash)");
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
    error SignaturesLength(uint256 signers, uint256 signatureBytes);
    error TooFewSignatures(uint256 signatures, uint256 quorum);
    error SignersNotAscending(uint256 index);
    error NotCommitteeMember(address signer);
    error BadSignature(uint256 index, address signer);

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

    /// @notice Reverts unless `signatures` hold ≥ `quorum` valid signatures of `digest` by
    ///         strictly ascending `signers`, each in `committee` (sorted ascending).
    function check(
        bytes32 digest_,
        address[] calldata committee,
        uint256 quorum,
        address[] calldata signers,
        bytes calldata signatures
    ) internal view {
        uint256 count = signers.length;
        if (signatures.length != count * 65) revert SignaturesLength(count, signatures.length);
        if (count < quorum) revert TooFewSignatures(count, quorum);
        // Calldata read directly (the arrays' bounds are the loop bounds), unchecked counters
        // (bounded by calldata length): the Solidity checks cost ~1.5k gas per signer.
        uint256 j = 0;
        uint256 previous = 0;
        for (uint256 i = 0; i < count;) {
            uint256 signer;
            assembly ("memory-safe") {
                signer := and(calldataload(add(signers.offset, shl(5, i))), 0xffffffffffffffffffffffffffffffffffffffff)
            }
            if (signer <= previous) revert SignersNotAscending(i);
            previous = signer;
            j = seek(committee, j, signer);
            if (uint256(uint160(recover(digest_, signatures, i))) != signer) {
                revert BadSignature(i, address(uint160(signer)));
            }
            unchecked {
                i++;
            }
        }
    }

    /// @notice The position of `signer` in the sorted `committee`, searching from `j` on.
    function seek(address[] calldata committee, uint256 j, uint256 signer) internal pure returns (uint256) {
        uint256 members = committee.length;
        uint256 member = 0;
        while (j < members) {
            assembly ("memory-safe") {
                member := and(calldataload(add(committee.offset, shl(5, j))), 0xffffffffffffffffffffffffffffffffffffffff)
            }
            if (member >= signer) break;
            unchecked {
                j++;
            }
        }
        if (member != signer) revert NotCommitteeMember(address(uint160(signer)));
        return j;
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
