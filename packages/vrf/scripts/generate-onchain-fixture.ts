/**
 * Writes packages/contracts/test/fixtures/committee-vrf-proofs.json: secp256k1 ECVRF proofs in
 * the on-chain form (`onchainProof`), from fixed keys: known bytes the contracts package's
 * `Secp256k1Vrf.sol` test checks (checked in, so a change to either side shows as a diff).
 * Run: `pnpm --filter @digicap/vrf fixture`.
 */
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { sha256 } from '@noble/hashes/sha2.js'
import { onchainProof, prove, publicKeyOf, SECP256K1_SHA256_TAI } from '../src/index.ts'

const hex = (b: Uint8Array): string => `0x${Buffer.from(b).toString('hex')}`
const pair = (p: readonly [bigint, bigint]): [string, string] => [p[0].toString(), p[1].toString()]
const text = new TextEncoder()

const proofs = [0, 1, 2, 3].map((i) => {
  const sk = sha256(text.encode(`digicap committee fixture key ${i}`))
  const alpha = sha256(text.encode(`digicap committee fixture job ${i}`)).subarray(0, 8 + i * 16)
  const pk = publicKeyOf(SECP256K1_SHA256_TAI, sk)
  const pi = prove(SECP256K1_SHA256_TAI, sk, alpha)
  const o = onchainProof(pk, alpha, pi)
  return {
    publicKey: pair(o.publicKey),
    alpha: hex(alpha),
    pi: hex(pi),
    proof: {
      gamma: pair(o.proof.gamma),
      c: o.proof.c.toString(),
      s: o.proof.s.toString(),
      u: pair(o.proof.u),
      sH: pair(o.proof.sH),
      cGamma: pair(o.proof.cGamma),
    },
    beta: hex(o.beta),
  }
})
const out = join(import.meta.dirname, '../../contracts/test/fixtures/committee-vrf-proofs.json')
writeFileSync(
  out,
  `${JSON.stringify({ source: 'packages/vrf/scripts/generate-onchain-fixture.ts', suite: SECP256K1_SHA256_TAI.name, proofs }, null, 2)}\n`,
)
console.log(`wrote ${proofs.length} proofs to ${out}`)
