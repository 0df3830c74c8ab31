/**
 * Runs `tpm2_checkquote` (tpm2-tools, offline: no TPM) on a quote vector, as the baseline this
 * verifier must be at least as strict as. tpm2_checkquote reads PCR values in tpm2-tools'
 * "serialized" file: the C structs TPML_PCR_SELECTION and TPML_DIGEST as laid out in memory
 * (little-endian, TPMS_PCR_SELECTION padded to 8 bytes, 8 digests of 66 bytes per TPML_DIGEST).
 */
import { execFile } from 'node:child_process'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { parseQuoteAttest, TPM_ALG } from '../../src/index.ts'
import type { QuoteVector } from './vector-file.ts'

const run = promisify(execFile)

export function serializedPcrFile(
  hashAlg: number,
  values: ReadonlyMap<number, Uint8Array>,
): Uint8Array {
  const pcrs = [...values.keys()].sort((a, b) => a - b)
  const selection = Buffer.alloc(4 + 16 * 8)
  selection.writeUInt32LE(1, 0)
  selection.writeUInt16LE(hashAlg, 4)
  selection.writeUInt8(3, 6)
  for (const p of pcrs) selection[7 + (p >> 3)] = (selection[7 + (p >> 3)] ?? 0) | (1 << (p & 7))
  const groups: Uint8Array[][] = []
  for (let i = 0; i < pcrs.length; i += 8)
    groups.push(pcrs.slice(i, i + 8).map((p) => values.get(p) ?? new Uint8Array()))
  const count = Buffer.alloc(4)
  count.writeUInt32LE(groups.length, 0)
  const digests = groups.map((g) => {
    const list = Buffer.alloc(4 + 8 * 66)
    list.writeUInt32LE(g.length, 0)
    g.forEach((d, i) => {
      list.writeUInt16LE(d.length, 4 + i * 66)
      list.set(d, 4 + i * 66 + 2)
    })
    return list
  })
  return Buffer.concat([selection, count, ...digests])
}

/** True if tpm2_checkquote accepts the vector's quote (exit status 0). */
export async function checkquoteAccepts(v: QuoteVector): Promise<boolean> {
  let hashAlg: number = TPM_ALG.SHA256
  try {
    hashAlg = parseQuoteAttest(v.attest).pcrSelect[0]?.hashAlg ?? hashAlg
  } catch {
    // unparseable by us: give tpm2_checkquote the sha256 bank
  }
  const dir = await mkdtemp(join(tmpdir(), 'digicap-checkquote-'))
  try {
    await writeFile(join(dir, 'ak.pub'), v.akPublic)
    await writeFile(join(dir, 'q.msg'), v.attest)
    await writeFile(join(dir, 'q.sig'), v.signature)
    await writeFile(join(dir, 'q.pcrs'), serializedPcrFile(hashAlg, v.pcrValues))
    const args = ['-u', join(dir, 'ak.pub'), '-m', join(dir, 'q.msg'), '-s', join(dir, 'q.sig')]
    args.push(
      '-f',
      join(dir, 'q.pcrs'),
      '-g',
      'sha256',
      '-q',
      Buffer.from(v.qualifyingData).toString('hex'),
    )
    await run('tpm2_checkquote', args)
    return true
  } catch {
    return false
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
}
