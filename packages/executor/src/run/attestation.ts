/**
 * The run's TPM measurement as the executor sees it (ADR 0021). The attestation agent is an
 * optional component: `@digicap/attestation/agent`'s agent fits {@link RunAttestationAgent}
 * structurally (the two packages do not import each other). Without one nothing here runs.
 */

/** The four values a run extends PCR 23 with, in this order (attestation SPEC §6). */
export interface RunMeasurementValues {
  /** capsule-core `runtimeDigest` of the sandbox and resolved limits (32 bytes). */
  readonly runtimeDigest: Uint8Array
  /** The capsule header hash (32 bytes). */
  readonly capsuleHeaderHash: Uint8Array
  /** The grant id (32 bytes). */
  readonly grantId: Uint8Array
  /** The grant's ephemeral X25519 public key; the agent extends its SHA-256. */
  readonly ephemeralPublicKey: Uint8Array
}

/** What the executor states after a run's clean-up (attestation SPEC §8). */
export interface RunCleanupStatement {
  readonly grantId: Uint8Array
  /** Every temp root of the run is gone and clean-up reported no failure. */
  readonly workspaceRemoved: boolean
  /** Every buffer that held the data key or the ephemeral private key reads all zeros. */
  readonly keyBuffersWiped: boolean
}

/** The part of the attestation agent a measured run uses. */
export interface RunAttestationAgent {
  /** PCR 23 (sha256 bank) now. */
  readRunPcr(): Promise<Uint8Array>
  /**
   * Extends PCR 23 with the four values, logging each; refuses (throws) unless PCR 23 is at its
   * reset value when it starts.
   */
  measureRun(run: RunMeasurementValues): Promise<void>
  /** After clean-up: resets PCR 23, logs it, keeps the statement for the after-quote. */
  endRun(report: RunCleanupStatement): Promise<void>
}

/** A measured run's plan for `runInSandbox`: the agent, the values, the buffers to check. */
export interface RunMeasurementPlan {
  readonly agent: RunAttestationAgent
  readonly values: RunMeasurementValues
  /** Buffers that held key material: each must read all zeros after clean-up. */
  readonly keyBuffers: readonly Uint8Array[]
}

/** True when PCR 23 holds its reset value (32 zero bytes). */
export function isResetValue(pcr: Uint8Array): boolean {
  return pcr.length === 32 && pcr.every((b) => b === 0)
}
