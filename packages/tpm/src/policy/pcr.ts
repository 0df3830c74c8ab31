/**
 * PCR selections (TPML_PCR_SELECTION with one SHA-256 bank), `TPM2_PCR_Read` sent directly, and
 * the PCR digest a PolicyPCR binds: SHA-256 of the selected values in ascending PCR order.
 */
import { createHash } from 'node:crypto'
import { InvalidArgumentError } from '@digicap/capsule-core/light'
import { malformedResponse } from '../frame.ts'
import { TpmResponseReader, TpmWriter } from '../marshal.ts'
import { plainCommand, plainResponse, type Send } from '../object/read-public.ts'
import { runSessionCommand } from '../session/command.ts'
import { TPM_ALG, TPM_CC } from '../session/constants.ts'
import {
  flushContext,
  forgetSession,
  type SaltKey,
  startSaltedSession,
} from '../session/session.ts'

/** PCRs 0–23, the SHA-256 bank. */
export const PCR_COUNT = 24

/** Checks and sorts a PCR list. @throws {InvalidArgumentError} */
export function normalizePcrs(pcrs: readonly number[]): number[] {
  const sorted = [...new Set(pcrs)].sort((a, b) => a - b)
  if (sorted.length === 0 || sorted.some((p) => !Number.isInteger(p) || p < 0 || p >= PCR_COUNT)) {
    throw new InvalidArgumentError('PCRs must be a non-empty list of integers 0–23', {
      details: { pcrs },
    })
  }
  return sorted
}

/** TPML_PCR_SELECTION: count 1, SHA-256, sizeofSelect 3, the bitmap. */
export function pcrSelection(pcrs: readonly number[]): Uint8Array {
  const bitmap = new Uint8Array(3)
  for (const p of normalizePcrs(pcrs)) bitmap[p >> 3]! |= 1 << (p & 7)
  return new TpmWriter().u32(1).u16(TPM_ALG.SHA256).u8(3).raw(bitmap).bytes()
}

/** SHA-256 of the values in ascending PCR order. */
export function pcrDigest(
  values: ReadonlyMap<number, Uint8Array>,
  pcrs: readonly number[],
): Uint8Array {
  const h = createHash('sha256')
  for (const p of normalizePcrs(pcrs)) {
    const v = values.get(p)
    if (v === undefined)
      throw new InvalidArgumentError('A selected PCR has no value', { details: { pcr: p } })
    h.update(v)
  }
  return new Uint8Array(h.digest())
}

/**
 * The value a SHA-256 PCR holds after `TPM2_PCR_Extend` of `digest` onto `previous`:
 * SHA-256(previous ‖ digest) (Part 1 §17.2). What a policy must approve before the extend runs.
 */
export function pcrExtendedValue(previous: Uint8Array, digest: Uint8Array): Uint8Array {
  if (previous.length !== 32 || digest.length !== 32) {
    throw new InvalidArgumentError('A SHA-256 PCR value and digest are 32 bytes each', {
      details: { previous: previous.length, digest: digest.length },
    })
  }
  return new Uint8Array(createHash('sha256').update(previous).update(digest).digest())
}

/** Reads the SHA-256 values of `pcrs` (several `TPM2_PCR_Read` if the TPM returns fewer). */
export function pcrRead(send: Send, pcrs: readonly number[]): Promise<Map<number, Uint8Array>> {
  return readRounds(pcrs, async (selection) =>
    plainResponse('TPM2_PCR_Read', await send(plainCommand(TPM_CC.PCR_Read, [], selection))),
  )
}

/**
 * `TPM2_PCR_Read` in an audit session salted to `saltKey` (the pinned wrapping key): every
 * answer's HMAC is checked before a value is used, so a man in the middle on the bus cannot
 * swap in PCR values of his choosing (ADR 0089). Values an owner SIGNS are read this way.
 *
 * @throws {TpmSessionError} `response-hmac` for an altered answer, `salt-refused` when the key
 *   at the handle is not the pinned one; the TPM's errors.
 */
export async function pcrReadInSession(
  send: Send,
  saltKey: SaltKey,
  pcrs: readonly number[],
): Promise<Map<number, Uint8Array>> {
  const session = await startSaltedSession(send, saltKey, 'hmac')
  try {
    return await readRounds(pcrs, async (selection) => {
      const response = await runSessionCommand(send, session, {
        name: 'TPM2_PCR_Read',
        code: TPM_CC.PCR_Read,
        handles: [],
        parameters: selection,
        audit: true,
        continueSession: true,
      })
      return new TpmResponseReader(response.parameters, 'TPM2_PCR_Read')
    })
  } finally {
    forgetSession(session)
    await flushContext(send, session.handle)
  }
}

/** The PCR_Read rounds: asks for what is still missing until every PCR has its value. */
async function readRounds(
  pcrs: readonly number[],
  read: (selection: Uint8Array) => Promise<TpmResponseReader>,
): Promise<Map<number, Uint8Array>> {
  const out = new Map<number, Uint8Array>()
  let left = normalizePcrs(pcrs)
  for (let round = 0; left.length > 0 && round < PCR_COUNT; round++) {
    const r = await read(pcrSelection(left))
    r.u32('pcrUpdateCounter')
    const count = r.u32('pcrSelectionOut.count')
    const returned: number[] = []
    for (let i = 0; i < count; i++) {
      const hash = r.u16('pcrSelectionOut.hash')
      const size = r.u8('pcrSelectionOut.sizeofSelect')
      const bitmap = r.raw('pcrSelectionOut.pcrSelect', size)
      if (hash !== TPM_ALG.SHA256) continue
      for (let p = 0; p < size * 8; p++) if (bitmap[p >> 3]! & (1 << (p & 7))) returned.push(p)
    }
    const digests = r.u32('pcrValues.count')
    if (digests !== returned.length || returned.length === 0) {
      throw malformedResponse('TPM2_PCR_Read', 'pcr-values', { selected: returned.length, digests })
    }
    for (const p of returned) out.set(p, r.sized('pcrValues.digest', 64))
    r.end()
    left = left.filter((p) => !out.has(p))
  }
  return out
}
