import { randomBytes } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import {
  type AffinePair,
  onchainProof,
  proofToHash,
  prove,
  publicKeyOf,
  SECP256K1_SHA256_TAI,
} from '@digicap/vrf'
import { type BaseContract, ContractFactory, hexlify, type Interface } from 'ethers'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { readSources, SOURCE_PREFIX } from '../scripts/generate.ts'
import { type Anvil, startAnvil } from '../src/anvil.ts'
import { compileSolidity } from '../src/compiler/solc.ts'

/** Proofs made by packages/vrf (scripts/generate-onchain-fixture.ts) from fixed keys: known bytes. */
interface Fixture {
  proofs: {
    publicKey: [string, string]
    alpha: string
    proof: Record<string, string | [string, string]>
    beta: string
  }[]
}
const fixture = JSON.parse(
  readFileSync(join(import.meta.dirname, 'fixtures/committee-vrf-proofs.json'), 'utf8'),
) as Fixture

type Call = (pk: unknown, alpha: string, proof: unknown) => Promise<string>
let anvil: Anvil
let verifier: BaseContract & { verify: { staticCall: Call } }
let iface: Interface

beforeAll(async () => {
  const sources = Object.fromEntries(
    Object.entries(readSources(join(import.meta.dirname, '../contracts'))).filter(
      // VrfVerifier and what it imports (the hub, which imports the core contracts, is not needed).
      ([name]) =>
        ['VrfVerifier', 'Secp256k1Vrf', 'SortitionScore'].some(
          (c) => name === `${SOURCE_PREFIX}committee/${c}.sol`,
        ),
    ),
  )
  const c = compileSolidity(sources)[`${SOURCE_PREFIX}committee/VrfVerifier.sol`]!.VrfVerifier!
  anvil = await startAnvil()
  const deployed = await new ContractFactory(c.abi as never, c.bytecode, anvil.signers[0]!).deploy()
  await deployed.waitForDeployment()
  verifier = deployed as unknown as typeof verifier
  iface = deployed.interface
})
afterAll(() => anvil?.stop())

async function revertName(call: Promise<unknown>): Promise<string> {
  try {
    await call
  } catch (err) {
    const data = (err as { data?: string }).data
    const parsed = data ? iface.parseError(data) : null
    if (parsed) return `${parsed.name}(${parsed.args.join(',')})`
    throw err
  }
  throw new Error('call did not revert')
}

describe('Secp256k1Vrf (VrfVerifier) with the checked-in fixture proofs (known bytes)', () => {
  it('returns the committee package’s beta for each fixture proof', async () => {
    expect(fixture.proofs.length).toBe(4)
    for (const p of fixture.proofs)
      expect(await verifier.verify.staticCall(p.publicKey, p.alpha, p.proof)).toBe(p.beta)
  })

  it('refuses a proof for another input, a changed challenge and a swapped witness', async () => {
    const [a, b] = fixture.proofs
    expect(await revertName(verifier.verify.staticCall(a!.publicKey, b!.alpha, a!.proof))).toBe(
      'VrfWitnessMismatch(3)',
    )
    const c = (BigInt(a!.proof.c as string) ^ 1n).toString()
    expect(
      await revertName(verifier.verify.staticCall(a!.publicKey, a!.alpha, { ...a!.proof, c })),
    ).toBe('VrfWitnessMismatch(2)')
    expect(
      await revertName(
        verifier.verify.staticCall(a!.publicKey, a!.alpha, { ...a!.proof, u: b!.proof.u }),
      ),
    ).toBe('VrfWitnessMismatch(2)')
    expect(await revertName(verifier.verify.staticCall(b!.publicKey, a!.alpha, a!.proof))).toBe(
      'VrfWitnessMismatch(2)',
    )
  })
})

/** A proof as the contract's ABI takes it (ethers encodes bigints). */
interface AbiProof {
  gamma: AffinePair
  c: bigint
  s: bigint
  u: AffinePair
  sH: AffinePair
  cGamma: AffinePair
}

const suite = SECP256K1_SHA256_TAI
const { Point } = suite
const n = Point.Fn.ORDER
const toPair = (p: InstanceType<typeof Point>): AffinePair => [p.x, p.y]
const fromPair = ([x, y]: AffinePair) => Point.fromAffine({ x, y })
/** One bit of `v` flipped (bit `i`). */
const flip = (v: bigint, i: number) => v ^ (1n << BigInt(i))

/** A fresh key and input, proven by @digicap/vrf now: the key and alpha name a failure. */
function fresh() {
  let sk: Uint8Array
  do sk = randomBytes(32)
  while (BigInt(hexlify(sk)) === 0n || BigInt(hexlify(sk)) >= n)
  const alpha = randomBytes(1 + ((randomBytes(1)[0] as number) % 96))
  const pk = publicKeyOf(suite, sk)
  const pi = prove(suite, sk, alpha)
  const o = onchainProof(pk, alpha, pi)
  const label = `sk ${hexlify(sk)} alpha ${hexlify(alpha)}`
  return { alpha: hexlify(alpha), o, pi, label, proof: { ...o.proof } as AbiProof }
}

describe('Secp256k1Vrf (VrfVerifier) with proofs made at test time by @digicap/vrf', () => {
  it('returns beta for proofs of fresh random keys and inputs', async () => {
    for (let i = 0; i < 8; i++) {
      const { alpha, o, pi, label, proof } = fresh()
      const beta = await verifier.verify.staticCall(o.publicKey, alpha, proof)
      expect(beta, label).toBe(hexlify(o.beta))
      expect(beta, label).toBe(hexlify(proofToHash(suite, pi)))
    }
  })

  it('refuses a proof with a flipped bit in gamma, c, s or a witness', async () => {
    const { alpha, o, label, proof } = fresh()
    const call = (p: AbiProof) => revertName(verifier.verify.staticCall(o.publicKey, alpha, p))
    const bit = (randomBytes(1)[0] as number) % 120
    const [gx, gy] = proof.gamma
    // A flipped coordinate is off the curve (a point whose flip lands on it would need ~2^256 tries).
    expect(await call({ ...proof, gamma: [flip(gx, bit), gy] }), label).toBe('VrfInvalidPoint(1)')
    expect(await call({ ...proof, gamma: [gx, flip(gy, bit)] }), label).toBe('VrfInvalidPoint(1)')
    expect(await call({ ...proof, c: flip(proof.c, bit) }), label).toBe('VrfWitnessMismatch(2)')
    expect(await call({ ...proof, s: flip(proof.s, bit) }), label).toBe('VrfWitnessMismatch(2)')
    for (const [which, key] of [
      [2, 'u'],
      [3, 'sH'],
      [4, 'cGamma'],
    ] as const) {
      const [x, y] = proof[key]
      expect(await call({ ...proof, [key]: [flip(x, bit), y] }), label).toBe(
        `VrfInvalidPoint(${which})`,
      )
      // The same witness negated: on the curve, and not the product it claims to be.
      expect(await call({ ...proof, [key]: toPair(fromPair([x, y]).negate()) }), label).toBe(
        `VrfWitnessMismatch(${which})`,
      )
    }
  })

  it('refuses a changed gamma or s whose witnesses are recomputed to match (only the challenge catches it)', async () => {
    const { alpha, o, label, proof } = fresh()
    const call = (p: AbiProof) => revertName(verifier.verify.staticCall(o.publicKey, alpha, p))
    const gamma = fromPair(proof.gamma).add(Point.BASE)
    expect(
      await call({ ...proof, gamma: toPair(gamma), cGamma: toPair(gamma.multiply(proof.c)) }),
      label,
    ).toBe('VrfChallengeMismatch()')
    const s = (proof.s + 1n) % n
    const Y = fromPair(o.publicKey)
    const H = fromPair(proof.sH).multiply(Point.Fn.inv(proof.s))
    expect(
      await call({
        ...proof,
        s,
        u: toPair(Point.BASE.multiply(s).subtract(Y.multiply(proof.c))),
        sH: toPair(H.multiply(s)),
      }),
      label,
    ).toBe('VrfChallengeMismatch()')
  })
})
