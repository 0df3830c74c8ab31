/** The verifier role: a committee member for AttestationHub jobs (ADR 0032). */
export type { ForwardRefusal, VerifierJobReason } from './errors.ts'
export { ForwardRefusedError, OwnEquivocationError, VerifierJobError } from './errors.ts'
export type { EthersVerifierChainParameters } from './ethers-chain.ts'
export { ethersVerifierChain } from './ethers-chain.ts'
export type { ForwardCheckParameters, ForwardedAnswer, JobForwards } from './forwarding.ts'
export { checkForwardedChallenge, jobForwards } from './forwarding.ts'
export type {
  PbftRound,
  PbftRoundParameters,
  PbftRounds,
  PbftRoundsOptions,
} from './pbft-round.ts'
export { PBFT_INBOX_LIMIT, PBFT_INBOX_PER_MEMBER, PBFT_MAX_JOBS, pbftRounds } from './pbft-round.ts'
export type { ServeRoleOptions } from './serve-role.ts'
export { NODE_SERVE_ROLES, startServeRole, verifierLine } from './serve-role.ts'
export type { FileSignedVotesComponents, FileSignedVotesInit } from './signed-votes-file.ts'
export {
  decodeSignedVotes,
  encodeSignedVotes,
  fileSignedVotes,
  SIGNED_VOTES_COMPACT_BYTES,
  SIGNED_VOTES_VERSION,
} from './signed-votes-file.ts'
export type { EndedJobs } from './signed-votes-jobs.ts'
export { closeEndedJobs } from './signed-votes-jobs.ts'
export type {
  CertificateCall,
  GrantSeen,
  JobGrant,
  JobStatus,
  OpenedJob,
  PhaseVerdict,
  RegisteredNode,
  RunEvidence,
  VerifierChain,
  VerifierEvent,
  VerifierNode,
  VerifierNodeComponents,
  VerifierNodeInit,
} from './types.ts'
export { EVIDENCE_TAG, evidenceHash, verdictBits } from './verdict.ts'
export { verifierNode } from './verifier-node.ts'
export type { WatchedRun, WatchForwarding, WatchRunParameters } from './watch-run.ts'
export { watchRun } from './watch-run.ts'
