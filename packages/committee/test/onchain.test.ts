import { readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { compileSolidity } from '@digicap/contracts/compiler'
import { type Anvil, startAnvil } from '@digicap/contracts/testing'
import {
  encodeToCurve,
  onchainProof,
  prove,
  publicKeyOf,
  SECP256K1_SHA256_TAI as suite,
} from '@digicap/vrf'
import { secp256k1 } from '@noble/curves/secp256k1.js'
import { type BaseContract, ContractFactory, getBytes, hexlify, type Interface } from 'ethers'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  parseSortitionVector,
  SORTITION_VECTOR_DIR,
} from '../scripts/generate-sortition-vectors.ts'
import { jobSeed, sortitionScore } from '../src/index.ts'
import { committeeSources } from './contracts.ts'

type Pair = readonly [bigint, bigint]
interface ProofArg {
  gamma: Pair
  c: bigint
  s: bigint
  u: Pair
  sH: Pair
  cGamma: Pair
}

let anvil: Anvil
let verifier: BaseContract & {
  verify: { staticCall(pk: Pair, alpha: Uint8Array, p: ProofArg): Promise<string> }
  ticketScore: {
    staticCall(pk: Pair, alpha: Uint8Array, p: ProofArg, weight: bigint): Promise<[string, bigint]>
  }
  sortitionScore: { staticCall(beta: Uint8Array, weight: bigint): Promise<bigint> }
  submit: {
    (
      pk: Pair,
      alpha: Uint8Array,
      p: ProofArg,
      overrides?: { gasLimit: bigint },
    ): Promise<{ hash: string; wait(): Promise<{ gasUsed: bigint; logs: unknown[] }> }>
    staticCall(pk: Pair, alpha: Uint8Array, p: ProofArg): Promise<string>
  }
}
let iface: Interface

beforeAll(async () => {
  const out = compileSolidity(committeeSources())
  const c = out['@digicap/contracts/committee/VrfVerifier.sol']!.VrfVerifier!
  anvil = await startAnvil()
  const factory = new ContractFactory(c.abi as never, c.bytecode, anvil.signers[0]!)
  const deployed = await factory.deploy()
  await deployed.waitForDeployment()
  verifier = deployed as unknown as typeof verifier
  iface = deployed.interface
})
afterAll(() => anvil?.stop())

function proofFor(alpha: Uint8Array, sk = secp256k1.utils.randomSecretKey()) {
  const pk = publicKeyOf(suite, sk)
  return { sk, pk, alpha, onchain: onchainProof(pk, alpha, prove(suite, sk, alpha)) }
}

/** The custom error a reverted call carries, as `Name(args)`. */
async function revertOf(call: Promise<unknown>): Promise<string> {
  try {
    await call
  } catch (err) {
    const data =
      (err as { data?: string }).data ??
      (err as { info?: { error?: { data?: string } } }).info?.error?.data
    const parsed = data ? iface.parseError(data) : null
    if (parsed) return `${parsed.name}(${parsed.args.join(',')})`
    throw err
  }
  throw new Error('call did not revert')
}

const G = secp256k1.Point.BASE
const pairOf = (p: typeof G): Pair => [p.x, p.y]

describe('SortitionScore.sol ranks exactly as sortitionScore in TypeScript', () => {
  it('gives the same score for edge outputs and 300 random outputs and weights', async () => {
    const edges = [
      '0',
      '1',
      'ff',
      `7${'f'.repeat(63)}`,
      `8${'0'.repeat(63)}`,
      'f'.repeat(64),
      `${'f'.repeat(63)}e`,
    ]
    const betas = [
      ...edges.map((h) => Uint8Array.from(Buffer.from(h.padStart(64, '0'), 'hex'))),
      ...Array.from({ length: 300 }, (_, i) => {
        const b = crypto.getRandomValues(new Uint8Array(32))
        b.fill(0, 0, i % 31) // outputs of every magnitude
        return b
      }),
    ]
    for (const [i, beta] of betas.entries()) {
      // weight 1, ordinary stakes, and up to the registry's largest (uint128 stake × reputation 1,000)
      const weight = [
        1n,
        BigInt(1 + i) * 10n ** 16n * BigInt(1 + (i % 1000)),
        ((1n << 128n) - 1n) * BigInt(1 + (i % 1000)),
      ][i % 3] as bigint
      expect(await verifier.sortitionScore.staticCall(beta, weight)).toBe(
        sortitionScore(beta, weight),
      )
    }
    expect(await revertOf(verifier.sortitionScore.staticCall(betas[0]!, 0n))).toBe('ZeroWeight()')
  })

  it('gives every sortition vector’s score (SPEC-SORTITION.md §7), and the ticket vector’s output and score in one call', async () => {
    let checked = 0
    for (const name of readdirSync(SORTITION_VECTOR_DIR)) {
      const v = parseSortitionVector(readFileSync(join(SORTITION_VECTOR_DIR, name), 'utf8'))
      const one = (key: string) => v.get(key)?.[0] as string
      if (one('case') === 'score') {
        expect(
          await verifier.sortitionScore.staticCall(getBytes(one('beta')), BigInt(one('weight'))),
          name,
        ).toBe(BigInt(one('score')))
        checked++
      } else if (one('case') === 'ticket') {
        const weight = BigInt(one('stake')) * BigInt(one('reputation'))
        const seed = getBytes(one('seed'))
        const p = onchainProof(getBytes(one('public-key')), seed, getBytes(one('proof')))
        const [beta, score] = await verifier.ticketScore.staticCall(
          p.publicKey,
          seed,
          p.proof,
          weight,
        )
        expect([beta, score]).toEqual([one('beta'), BigInt(one('score'))])
        checked++
      } else {
        for (const line of v.get('ticket') ?? []) {
          const [, beta, stake, reputation, score] = line.split(' ') as string[]
          expect(
            await verifier.sortitionScore.staticCall(
              getBytes(beta!),
              BigInt(stake!) * BigInt(reputation!),
            ),
          ).toBe(BigInt(score!))
          checked++
        }
      }
    }
    expect(checked).toBeGreaterThanOrEqual(24)
  })

  it('verifies a ticket and scores it in one call (ticketScore)', async () => {
    const alpha = jobSeed(
      crypto.getRandomValues(new Uint8Array(32)),
      crypto.getRandomValues(new Uint8Array(32)),
    )
    const { onchain } = proofFor(alpha)
    const weight = 5n * 10n ** 16n * 700n
    const [beta, score] = await verifier.ticketScore.staticCall(
      onchain.publicKey,
      alpha,
      onchain.proof,
      weight,
    )
    expect(beta).toBe(hexlify(onchain.beta))
    expect(score).toBe(sortitionScore(onchain.beta, weight))
  })
})

describe('VrfVerifier on a real anvil', () => {
  it('accepts proofs made in TypeScript and returns the same beta (10 random keys and inputs)', async () => {
    for (let i = 0; i < 10; i++) {
      const alpha = crypto.getRandomValues(new Uint8Array(i * 7))
      const { onchain } = proofFor(alpha)
      const beta = await verifier.verify.staticCall(onchain.publicKey, alpha, onchain.proof)
      expect(beta).toBe(hexlify(onchain.beta))
    }
  })

  it('refuses tampered proofs with the error of the check that fails', async () => {
    const alpha = new TextEncoder().encode('job 7')
    const { pk, onchain } = proofFor(alpha)
    const p = onchain.proof
    const call = (over: Partial<ProofArg>, a = alpha, key: Pair = onchain.publicKey) =>
      revertOf(verifier.verify.staticCall(key, a, { ...p, ...over }))
    const n = suite.Point.Fn.ORDER
    // Out-of-range scalars.
    expect(await call({ s: n })).toBe('VrfInvalidScalar()')
    expect(await call({ s: 0n })).toBe('VrfInvalidScalar()')
    expect(await call({ c: 0n })).toBe('VrfInvalidScalar()')
    expect(await call({ c: 1n << 128n })).toBe('VrfInvalidScalar()')
    // Points off the curve.
    expect(await call({}, alpha, [onchain.publicKey[0], onchain.publicKey[1] + 1n])).toBe(
      'VrfInvalidPoint(0)',
    )
    expect(await call({ gamma: [p.gamma[0], p.gamma[1] + 1n] })).toBe('VrfInvalidPoint(1)')
    expect(await call({ u: [p.u[0] + 1n, p.u[1]] })).toBe('VrfInvalidPoint(2)')
    expect(await call({ sH: [0n, 0n] })).toBe('VrfInvalidPoint(3)')
    expect(await call({ cGamma: [p.cGamma[0], suite.Point.Fp.ORDER] })).toBe('VrfInvalidPoint(4)')
    // Witnesses that are points, but not the claimed products.
    expect(await call({ c: p.c + 1n })).toBe('VrfWitnessMismatch(2)')
    expect(await call({ s: p.s + 1n })).toBe('VrfWitnessMismatch(2)')
    expect(await call({ u: pairOf(G) })).toBe('VrfWitnessMismatch(2)')
    expect(await call({ sH: pairOf(G) })).toBe('VrfWitnessMismatch(3)')
    expect(await call({ cGamma: pairOf(G) })).toBe('VrfWitnessMismatch(4)')
    expect(await call({}, Uint8Array.of(...alpha, 0))).toBe('VrfWitnessMismatch(3)')
    // An attacker who recomputes every witness honestly for a changed proof: the challenge fails.
    const Y = suite.Point.fromBytes(pk)
    const gamma2 = suite.Point.fromAffine({ x: p.gamma[0], y: p.gamma[1] }).add(G)
    expect(await call({ gamma: pairOf(gamma2), cGamma: pairOf(gamma2.multiply(p.c)) })).toBe(
      'VrfChallengeMismatch()',
    )
    const other = new TextEncoder().encode('job 8')
    const H2 = encodeToCurve(suite, pk, other)
    expect(await call({ sH: pairOf(H2.multiply(p.s)) }, other)).toBe('VrfChallengeMismatch()')
    // Another key: U and everything recomputed for it, same Gamma, c, s.
    const Y2 = Y.add(G)
    const pk2 = Y2.toBytes(true)
    const H3 = encodeToCurve(suite, pk2, alpha)
    expect(
      await call(
        {
          u: pairOf(G.multiply(p.s).subtract(Y2.multiply(p.c))),
          sH: pairOf(H3.multiply(p.s)),
        },
        alpha,
        pairOf(Y2),
      ),
    ).toBe('VrfChallengeMismatch()')
  })

  it('costs at most 200k gas per proof in a real transaction (submit emits VrfOutput)', async () => {
    // Gas depends on alpha's length and on how many try-and-increment hashes H takes. One
    // transaction per (length, tries) bucket: proofs that fall in a filled bucket are skipped
    // before sending, so the test sends 9 transactions.
    const byTries = new Map<string, bigint[]>()
    for (let i = 0; i < 300 && byTries.size < 9; i++) {
      const len = [32, 64, 256][i % 3]!
      const alpha = crypto.getRandomValues(new Uint8Array(len))
      const { onchain } = proofFor(alpha)
      const tries = Math.min(onchain.tries, 3)
      const key = `${len} B, ${tries === 3 ? '3+' : tries} ${tries === 1 ? 'try' : 'tries'}`
      if (byTries.has(key)) continue
      const receipt = await (await verifier.submit(onchain.publicKey, alpha, onchain.proof)).wait()
      expect(receipt.logs.length).toBe(1)
      byTries.set(key, [receipt.gasUsed])
    }
    console.log('VrfVerifier.submit gas, real transactions (alpha length, encode_to_curve tries)')
    for (const [key, gas] of [...byTries].sort()) {
      const max = gas.reduce((a, b) => (a > b ? a : b))
      console.log(`  ${key}: ${max}`)
      expect(max).toBeLessThanOrEqual(200_000n)
    }
    expect(byTries.size).toBe(9)
  }, 180_000)

  it('mines a tampered proof sent in a real transaction as reverted, with no VrfOutput', async () => {
    const alpha = new TextEncoder().encode('job 9')
    const { onchain } = proofFor(alpha)
    const tx = await verifier.submit(
      onchain.publicKey,
      alpha,
      { ...onchain.proof, c: onchain.proof.c ^ 1n },
      { gasLimit: 300_000n },
    )
    let status: number | undefined
    try {
      await tx.wait()
    } catch (err) {
      status = (err as { receipt?: { status?: number } }).receipt?.status
    }
    expect(status).toBe(0)
    const receipt = await anvil.provider.getTransactionReceipt(tx.hash)
    expect(receipt?.status).toBe(0)
    expect(receipt?.logs.length).toBe(0)
  })
})
