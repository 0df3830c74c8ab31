/**
 * `withOwnerKey` (what `pi-node seal` signs and sends with) unwraps the owner's Ethereum key
 * alone, through a real swtpm behind the sealer: one TPM command, not three.
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { initOwner, type Sealer, tpm2Sealer } from '@digicap/keyguard/local'
import { type Swtpm, startSwtpm } from '@digicap/keyguard/testing'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { withOwnerKey } from '../../src/node/components.ts'
import { ownerNodePaths } from '../../src/node/config.ts'

describe('withOwnerKey', () => {
  let tpm: Swtpm
  let dir: string
  beforeAll(async () => {
    tpm = await startSwtpm()
    dir = await mkdtemp(join(tmpdir(), 'owner-key-'))
  })
  afterAll(async () => {
    await tpm?.stop()
    if (dir) await rm(dir, { recursive: true, force: true })
  })

  it('unwraps only the Ethereum key: one TPM unwrap', async () => {
    const tpmSealer = tpm2Sealer({ tcti: tpm.tcti, createIfMissing: true })
    const paths = ownerNodePaths(dir)
    const { owner } = await initOwner({ path: paths.owner, sealer: tpmSealer })
    const unwraps: number[] = []
    const sealer: Sealer = {
      publicKey: () => tpmSealer.publicKey(),
      wrap: (k) => tpmSealer.wrap(k),
      describe: () => tpmSealer.describe(),
      unwrap: async (w) => {
        const t = performance.now()
        try {
          return await tpmSealer.unwrap(w)
        } finally {
          unwraps.push(performance.now() - t)
        }
      },
    }
    const address = await withOwnerKey(
      paths,
      sealer,
      { rpcUrl: 'http://127.0.0.1:1', chainId: 31337 },
      async ({ signer }) => signer.address,
    )
    expect(address).toBe(owner.address)
    // the libp2p seed and the operator key stayed wrapped
    expect(
      unwraps,
      `TPM unwraps (ms): ${unwraps.map((ms) => ms.toFixed(1)).join(', ')}`,
    ).toHaveLength(1)
  })
})
