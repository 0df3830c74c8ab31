/**
 * The PBFT vectors in packages/protocol/test/pbft-vectors match their generator, and each ok
 * vector's EIP-712 digest is the one ethers computes independently, signed by the named member.
 */
import { readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { toHex } from '@digicap/capsule-core'
import { decodeFrame, decodePbftMessage } from '@digicap/protocol'
import { TypedDataEncoder } from 'ethers'
import { describe, expect, it } from 'vitest'
import {
  generatePbftVectors,
  PBFT_VECTOR_DIR,
  VECTOR_DOMAIN,
} from '../scripts/generate-pbft-vectors.ts'
import { recoverVoteSigner, voteDigest, voteTypedData } from '../src/index.ts'

function parse(content: string) {
  const [head, hex = ''] = content.split('\n\n')
  const header: Record<string, string> = {}
  for (const line of (head ?? '').split('\n')) {
    const i = line.indexOf(': ')
    header[line.slice(0, i)] = line.slice(i + 2)
  }
  return { header, frame: Uint8Array.from(Buffer.from(hex.replace(/\s+/g, ''), 'hex')) }
}

const files = readdirSync(PBFT_VECTOR_DIR).sort()

describe('pbft vectors', () => {
  it('the files are what the generator writes (run `pnpm vectors:pbft` after a change)', async () => {
    const generated = await generatePbftVectors()
    expect([...generated.keys()].sort()).toEqual(files)
    for (const [name, content] of generated) {
      expect(readFileSync(join(PBFT_VECTOR_DIR, name), 'utf8')).toBe(content)
    }
  })

  const ok = files.filter(
    (f) => parse(readFileSync(join(PBFT_VECTOR_DIR, f), 'utf8')).header.expect === 'ok',
  )
  it.each(ok)('%s: digest matches ethers, and the signature recovers the signer', (file) => {
    const { header, frame } = parse(readFileSync(join(PBFT_VECTOR_DIR, file), 'utf8'))
    const { vote, proof } = decodePbftMessage(decodeFrame(frame))
    const td = voteTypedData(VECTOR_DOMAIN, vote)
    const ethersDigest = TypedDataEncoder.hash(
      { ...td.domain, chainId: td.domain.chainId as bigint },
      td.types as Record<string, { name: string; type: string }[]>,
      td.message,
    )
    expect(toHex(voteDigest(VECTOR_DOMAIN, vote))).toBe(ethersDigest)
    expect(header.digest).toBe(ethersDigest)
    expect(recoverVoteSigner(VECTOR_DOMAIN, vote)).toBe(header.signer)
    for (const p of proof) expect(() => recoverVoteSigner(VECTOR_DOMAIN, p)).not.toThrow()
  })
})
