/**
 * @packageDocumentation
 *
 * `@digicap/attestation/agent` — the executor side: EK and AK on the node's TPM, credential
 * activation, the run measured into PCR 23 with its event log, and quotes bound to a run.
 * Needs a TPM (`device:/dev/tpmrm0`, or swtpm in tests) and tpm2-tools for provisioning.
 *
 * @example
 * ```ts
 * import { createAttestationAgent } from '@digicap/attestation/agent'
 *
 * const agent = createAttestationAgent({ tcti: 'device:/dev/tpmrm0' })
 * const { ekPublic, akPublic } = await agent.provision()    // register these
 * await agent.resetRunPcr()
 * const before = await agent.quote({ nonce, grantId, ephemeralPublicKey })
 * await agent.beginRun({ runtimeDigest, capsuleHeaderHash, grantId, ephemeralPublicKey })
 * // … run, clean up …
 * await agent.endRun({ grantId, workspaceRemoved: true, keyBuffersWiped: true })
 * ```
 */
export {
  createAttestationAgent,
  DEFAULT_AK_HANDLE,
  DEFAULT_EK_HANDLES,
  RUN_PCR,
} from './agent.ts'
export { recordFromAgent } from './record.ts'
export type { ServeAttestationOptions } from './serve.ts'
export {
  DEFAULT_ATTEST_CHALLENGES,
  DEFAULT_ATTEST_STRANGER_RATE,
  serveAttestation,
} from './serve.ts'
export type {
  AgentKeys,
  AgentQuote,
  AttestationAgent,
  AttestationAgentInit,
  CleanupReport,
  QuoteRequester,
} from './types.ts'
