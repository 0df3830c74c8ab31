import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { type BaseContract, ContractFactory, type Interface } from 'ethers'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { readSources, SOURCE_PREFIX } from '../scripts/generate.ts'
import { type Anvil, startAnvil } from '../src/anvil.ts'
import { compileSolidity } from '../src/compiler/solc.ts'

/** Proofs made by packages/committee (scripts/generate-onchain-fixture.ts) from fixed keys. */
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

describe('Secp256k1Vrf (VrfVerifier) with proofs from @digicap/committee', () => {
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
