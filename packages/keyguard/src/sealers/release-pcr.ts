/**
 * Measured start: the digest of the verified release manifest extended into one PCR, once per
 * boot, so that a PCR-bound wrapping key whose policy covers that PCR unwraps only after THIS
 * release was verified (`pi-node verify-install --measure`, the unit's `ExecStartPre`). A
 * tampered install has another manifest (another digest, another PCR value), and an install
 * whose check was skipped leaves the PCR at its reset value: either way the TPM refuses.
 *
 * PCR 15 by default: static (not resettable at locality 0, so a later process can only extend,
 * never undo), in the OS range, and not used on a Raspberry Pi (systemd measures machine-id
 * and file systems into it only when booted from a unified kernel image). A PCR that already
 * holds another value is refused rather than extended again: a restart of the service in the
 * same boot finds its own value and extends nothing.
 */
import { createHash } from 'node:crypto'
import { InvalidArgumentError } from '@digicap/capsule-core'
import { pcrExtendedValue, pcrRead, TpmPolicyError, transportFor, withChannel } from '@digicap/tpm'
import { runTpm2Tool } from '../tpm2/tools.ts'

/** The PCR the release manifest's digest goes into by default. */
export const DEFAULT_RELEASE_PCR = 15

const ZERO = new Uint8Array(32)
const hex = (b: Uint8Array) => Buffer.from(b).toString('hex')

/** What is extended: SHA-256 of the manifest file's bytes (the signed, verified file). */
export function releaseMeasurement(manifestBytes: Uint8Array): Uint8Array {
  return new Uint8Array(createHash('sha256').update(manifestBytes).digest())
}

/** The value the release PCR holds once this boot measured `digest` (from reset). */
export function expectedReleasePcr(digest: Uint8Array): Uint8Array {
  return pcrExtendedValue(ZERO, digest)
}

export interface MeasureReleaseOptions {
  /** `device:/dev/tpmrm0` or `swtpm:…` (read directly; extended with tpm2_pcrextend). */
  tcti: string
  pcr?: number
  /** {@link releaseMeasurement} of the verified manifest. */
  digest: Uint8Array
  toolsPath?: string
  timeoutMs?: number
}

export interface MeasureReleaseResult {
  pcr: number
  /** `extended`: this call measured it; `already`: an earlier start of this boot did. */
  state: 'extended' | 'already'
  value: string
}

/**
 * Extends `digest` into the release PCR unless this boot already did.
 * @throws {TpmPolicyError} `release-pcr-used`: the PCR holds another value (another release
 *   started this boot, or another program uses the PCR). @throws {InvalidArgumentError} for a
 *   PCR outside 8–15 or a TCTI without a direct transport; the TPM's errors.
 */
export async function measureRelease(o: MeasureReleaseOptions): Promise<MeasureReleaseResult> {
  const pcr = o.pcr ?? DEFAULT_RELEASE_PCR
  // 0–7 belong to the firmware, 16 and 23 are resettable, 17–22 need another locality.
  if (!Number.isInteger(pcr) || pcr < 8 || pcr > 15) {
    throw new InvalidArgumentError('The release PCR must be one of the OS PCRs 8–15', {
      details: { pcr },
    })
  }
  const timeoutMs = o.timeoutMs ?? 10_000
  const transport = transportFor(o.tcti, timeoutMs)
  if (transport === undefined) {
    throw new InvalidArgumentError('Measuring the release needs a swtpm: or device: TCTI', {
      details: { tcti: o.tcti },
    })
  }
  const read = async () =>
    (await withChannel(transport, (send) => pcrRead(send, [pcr]))).get(pcr) as Uint8Array
  const expected = expectedReleasePcr(o.digest)
  const before = await read()
  if (Buffer.from(before).equals(Buffer.from(expected))) {
    return { pcr, state: 'already', value: hex(expected) }
  }
  if (!Buffer.from(before).equals(Buffer.from(ZERO))) throw pcrUsed(pcr, before, expected)
  await runTpm2Tool(
    { tcti: o.tcti, toolsPath: o.toolsPath, timeoutMs },
    'tpm2_pcrextend',
    [`${pcr}:sha256=${hex(o.digest)}`],
    { op: 'probe' },
  )
  const after = await read()
  // Someone else extended between the read and ours: the value is not ours.
  if (!Buffer.from(after).equals(Buffer.from(expected))) throw pcrUsed(pcr, after, expected)
  return { pcr, state: 'extended', value: hex(expected) }
}

function pcrUsed(pcr: number, current: Uint8Array, expected: Uint8Array): TpmPolicyError {
  return new TpmPolicyError(`PCR ${pcr} already holds another measurement`, {
    details: { reason: 'release-pcr-used', pcr, current: hex(current), expected: hex(expected) },
    hint: `Another release started since boot (reboot after an update), or another program uses PCR ${pcr} (pick another with DIGICAP_RELEASE_PCR).`,
  })
}
