/**
 * `TPM2_RSA_Decrypt` in a salted session with response encryption: the data key the TPM
 * returns crosses the bus (SPI on a Pi TPM HAT, the socket for swtpm) only AES-128-CFB
 * encrypted under a key derived from a salt that only the TPM holding the pinned wrapping key
 * can decrypt. The session is salted to the wrapping key itself, so a different key at the
 * handle cannot open the salt (`TpmSessionError`, `salt-refused`) and a forged or altered
 * response fails its HMAC (`response-hmac`) before anything is decrypted.
 *
 * One channel per unwrap (StartAuthSession, RSA_Decrypt; the TPM flushes the session on
 * success), the same sequence on swtpm and `/dev/tpmrm0`. A rollback-protected key's policy
 * adds one `TPM2_PolicyNV` on the epoch counter (ADR 0094).
 */
import {
  approvalHash,
  flushContext,
  forgetSession,
  type PolicyApproval,
  pcrReadInSession,
  runSessionCommand,
  type SaltKey,
  satisfyAuthorizedPcrPolicy,
  startSaltedSession,
  TPM_CC,
  TPM_RC,
  TpmPolicyError,
  type TpmSession,
  type TpmTransport,
  verifyApproval,
  withChannel,
} from '@digicap/tpm'
import { rsaDecryptError } from './rc.ts'
import { decodeRsaDecryptMessage, rsaDecryptParameters } from './rsa-decrypt.ts'

/**
 * Decrypts `ciphertext` with the key at `key.handle`, whose public area the caller pinned.
 * Resolves with the plaintext (the caller owns and zeroes it).
 *
 * @throws {TpmSessionError} the key at the handle is not the pinned key, or a response was altered.
 * @throws {UnwrapError} the ciphertext does not decrypt under the key.
 * @throws {TpmHandleError} | {TpmBusyError} | {TpmUnavailableError} | {TpmCommandError} as the direct path.
 */
export function rsaDecryptInSession(
  transport: TpmTransport,
  key: SaltKey,
  ciphertext: Uint8Array,
  /**
   * For a PCR-bound key: the owner's approval. The session is then a salted POLICY session
   * that satisfies PolicyPCR + PolicyAuthorize before the decryption.
   */
  policy?: { approval: PolicyApproval & { pcrValues?: ReadonlyMap<number, Uint8Array> } },
): Promise<Uint8Array> {
  const parameters = rsaDecryptParameters(ciphertext)
  return withChannel(transport, async (send) => {
    const verified =
      policy === undefined
        ? undefined
        : await verifyApproval(
            send,
            policy.approval,
            approvalHash(policy.approval.approvedPolicy, policy.approval.policyRef),
          )
    const session: TpmSession = await startSaltedSession(
      send,
      key,
      policy === undefined ? 'hmac' : 'policy',
    )
    let done = false
    try {
      if (policy !== undefined && verified !== undefined) {
        try {
          await satisfyAuthorizedPcrPolicy(send, session, policy.approval, verified)
        } catch (err) {
          throw await withDifferingPcrs(err, send, key, policy.approval)
        }
      }
      const response = await runSessionCommand(send, session, {
        name: 'TPM2_RSA_Decrypt',
        code: TPM_CC.RSA_Decrypt,
        handles: [{ handle: key.handle, name: key.public.name }],
        parameters,
        encryptResponse: true,
        refine: (d, details) =>
          d.base === TPM_RC.POLICY_FAIL
            ? new TpmPolicyError(
                'The TPM refuses the key’s policy: the approval is not the owner’s',
                {
                  details: { ...details, reason: 'policy-fail' },
                  hint: 'Authorize the PCR set again with the paper words (pi-node key-policy authorize).',
                },
              )
            : rsaDecryptError(d.rc),
      })
      done = true
      try {
        return decodeRsaDecryptMessage(response.parameters)
      } finally {
        response.parameters.fill(0)
      }
    } finally {
      forgetSession(session)
      // A failed command leaves the session loaded (continueSession applies on success only).
      if (!done) await flushContext(send, session.handle)
    }
  })
}

/** Adds which PCRs differ from the approved values to a `pcr-mismatch` error. */
async function withDifferingPcrs(
  err: unknown,
  send: (c: Uint8Array) => Promise<Uint8Array>,
  key: SaltKey,
  approval: PolicyApproval & { pcrValues?: ReadonlyMap<number, Uint8Array> },
): Promise<unknown> {
  if (!(err instanceof TpmPolicyError) || err.details.reason !== 'pcr-mismatch') return err
  const expected = approval.pcrValues
  if (expected === undefined) return err
  try {
    const current = await pcrReadInSession(send, key, approval.pcrs)
    const differing = approval.pcrs.filter(
      (p) => !Buffer.from(current.get(p) ?? []).equals(Buffer.from(expected.get(p) ?? [])),
    )
    return new TpmPolicyError(
      `The TPM refuses: PCR ${differing.join(', ')} ${differing.length === 1 ? 'is' : 'are'} not the value the owner authorized`,
      {
        details: { ...err.details, differing },
        hint: err.hint ?? '',
        cause: err,
      },
    )
  } catch {
    return err
  }
}
