/** PBFT agreement of a verifier committee on one job's verdict (SPEC-PBFT.md). */
export type { AttestChallengeFields, SignedAttestChallenge } from './attest-challenge.ts'
export {
  ATTEST_CHALLENGE_TYPES,
  attestChallengeDigest,
  attestChallengeNonce,
  attestChallengeTypedData,
  recoverAttestChallenger,
  signAttestChallenge,
} from './attest-challenge.ts'
export type { CertificateExpectation, PbftCertificate } from './certificate.ts'
export { buildCertificate, verifyCertificate } from './certificate.ts'
export type { PbftCommittee, PbftMember } from './committee.ts'
export { leaderOf, memberByAddress, pbftCommittee } from './committee.ts'
export type { EquivocationProof } from './equivocation.ts'
export { conflicting, verifyEquivocation } from './equivocation.ts'
export type {
  CertificateReason,
  EquivocationReason,
  SignedVoteReason,
  VoteReason,
} from './errors.ts'
export {
  CertificateError,
  EquivocationError,
  PbftBusyError,
  PbftVoteError,
  SignedVoteError,
} from './errors.ts'
export type { PbftMux, PbftMuxOptions, PbftSessionOptions } from './mux.ts'
export { createPbftMux, PBFT_MAX_SESSIONS } from './mux.ts'
export type { PbftNode, PbftNodeOptions } from './node.ts'
export { createPbftNode } from './node.ts'
export type {
  PbftCertificateMode,
  PbftDecision,
  PbftReplicaOptions,
  PbftSend,
  PbftSignatureCheck,
  PbftValue,
} from './replica.ts'
export { MAX_VIEWS_AHEAD, PbftReplica } from './replica.ts'
export type {
  GuardedSignature,
  PbftSignedVotes,
  PbftVoteSlot,
  SignedVoteBookOptions,
  SignedVoteChange,
  SignedVoteEntry,
  SignedVoteSnapshot,
} from './signed-votes.ts'
export {
  memorySignedVotes,
  SIGNED_VOTES_MAX_CLOSED,
  SIGNED_VOTES_MAX_ENTRIES,
  SignedVoteBook,
  signedVotesOfJob,
  slotKey,
} from './signed-votes.ts'
export type {
  PbftHost,
  PbftTransport,
  PbftTransportOptions,
  PbftTransportStats,
} from './transport.ts'
export { createPbftTransport } from './transport.ts'
export type { PbftDomain, UnsignedVote } from './typed-data.ts'
export {
  PBFT_DOMAIN_NAME,
  PBFT_DOMAIN_VERSION,
  PBFT_TYPES,
  pbftDomain,
  pbftDomainSeparator,
  recoverVoteSigner,
  signVote,
  voteDigest,
  voteTypedData,
} from './typed-data.ts'
export { libsecp256k1Signer } from './vote-signer.ts'
