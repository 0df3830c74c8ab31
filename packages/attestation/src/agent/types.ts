/** The attestation agent's interface (executor side); `createAttestationAgent` implements it. */
export type { CleanupReport } from '../phases/phase.ts'

import type { Credential } from '../credential/make-credential.ts'
import type { RunEvent } from '../event-log/format.ts'
import type { CleanupReport, RunMeasurementParameters } from '../phases/phase.ts'
import type { QuoteBindingParameters } from '../verifier/binding.ts'

export interface AttestationAgentInit {
  /** `device:/dev/tpmrm0` on hardware, `swtpm:host=127.0.0.1,port=P` for swtpm. */
  tcti: string
  /** EK template of the TCG EK profile. Default `'rsa'` (RSA-2048); `'ecc'` is P-256. */
  ek?: 'rsa' | 'ecc'
  /** AK type. Default: the EK's. */
  ak?: 'rsa' | 'ecc'
  /** Persistent EK handle. Default 0x81010001 (RSA) / 0x81010002 (ECC), the TCG handles. */
  ekHandle?: number
  /** Persistent AK handle. Default 0x81010010. */
  akHandle?: number
  /** Timeout of one TPM command. Default 10 000 ms. */
  timeoutMs?: number
  /** Directory of the tpm2-tools binaries; default: `PATH`. */
  toolsPath?: string
}

/** The public parts a verifier registers for this node (SPEC.md §1). */
export interface AgentKeys {
  /** TPM2B_PUBLIC of the EK. */
  ekPublic: Uint8Array
  /** TPM2B_PUBLIC of the AK. */
  akPublic: Uint8Array
  /**
   * The EK certificate (X.509 DER) the TPM's maker wrote into its NV, for this EK's kind
   * (`0x01c00002` RSA 2048, `0x01c0000a` ECC P-256); undefined when the TPM has none.
   */
  ekCertificate?: Uint8Array | undefined
}

/** A quote with what a verifier needs next to it. */
export interface AgentQuote {
  /** TPMS_ATTEST as signed. */
  attest: Uint8Array
  /** TPMT_SIGNATURE. */
  signature: Uint8Array
  /** sha256 values of the quoted PCRs. */
  pcrValues: Map<number, Uint8Array>
  /** The PCR 23 event log since the last reset before the current or last run. */
  eventLog: RunEvent[]
  /** The last finished run's clean-up report, if a run has finished. */
  cleanup?: CleanupReport
}

/** Who asked for a quote: the challenger's libp2p peer id. */
export interface QuoteRequester {
  readonly peer: string
}

export interface AttestationAgent {
  /** Creates the EK and AK if their handles are empty (idempotent); returns their public parts. */
  provision(): Promise<AgentKeys>
  /** Answers the verifier's MakeCredential with TPM2_ActivateCredential (EK + AK). */
  activateCredential(credential: Credential): Promise<Uint8Array>
  /** Resets PCR 23 and logs it: the "before" state. Call once at start. */
  resetRunPcr(): Promise<void>
  /** Resets PCR 23, extends the run's four values (SPEC.md §6) and logs each step. */
  beginRun(run: RunMeasurementParameters): Promise<void>
  /** PCR 23 (sha256) now. */
  readRunPcr(): Promise<Uint8Array>
  /**
   * Extends the run's four values (SPEC.md §6) without resetting first, logging each step:
   * refuses with `RunPcrNotResetError` unless PCR 23 is at its reset value, so a run that did
   * not clean up (or a foreign extend) is never hidden. What the executor's measured run calls.
   */
  measureRun(run: RunMeasurementParameters): Promise<void>
  /** After clean-up: resets PCR 23, logs it, and keeps the report for the next quotes. */
  endRun(report: CleanupReport): Promise<void>
  /**
   * A quote over PCRs 0–7 and 23 with qualifying data H(nonce ‖ grant id ‖ ephemeral key).
   * `from` names the challenger when the quote answers `/digicap/attest/1.0.0` (the agent
   * ignores it; a phase hold counts distinct challengers with it).
   */
  quote(binding: QuoteBindingParameters, from?: QuoteRequester): Promise<AgentQuote>
  /** The current PCR 23 event log (a copy). */
  eventLog(): RunEvent[]
}
