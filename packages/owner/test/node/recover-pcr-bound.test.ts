/**
 * `recoverOwnerNode` on a node whose wrapping key is PCR-bound (the default on a hardware TPM,
 * ADR 0036), real anvil and swtpm (ADR 0089). Before, recover made its sealer without the
 * words' authorizing key, so once the node's key was bound (its own, or the one the local
 * re-wrap made on a new TPM) that sealer refused it (`TPM_POLICY` `unfit-key`): a PCR-bound
 * node could not be recovered at all. Now both keep the binding and finish.
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { type Anvil, startAnvil } from '@digicap/contracts/testing'
import { readKeyRecord } from '@digicap/keyguard'
import { type Swtpm, startSwtpm } from '@digicap/keyguard/testing'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  createSealer,
  type InitOwnerNodeResult,
  initOwnerNode,
  loadOwnerNodeConfig,
  ownerNodePaths,
  recoverOwnerNode,
} from '../../src/node/index.ts'

const PCRS = [16]

describe('recover a PCR-bound node', () => {
  let anvil: Anvil
  let tpm: Swtpm
  let dir: string
  let dataDir: string
  let init: InitOwnerNodeResult
  const recordFile = () => join(dataDir, 'tpm2-key.json')

  beforeAll(async () => {
    ;[anvil, tpm] = await Promise.all([startAnvil(), startSwtpm()])
    dir = await mkdtemp(join(tmpdir(), 'owner-recover-pcr-'))
    dataDir = join(dir, 'node')
    init = await initOwnerNode({
      dataDir,
      rpcUrl: anvil.rpcUrl,
      sealer: { kind: 'tpm2', tcti: tpm.tcti, pcrs: PCRS },
      deploy: true,
      listen: ['/ip4/127.0.0.1/tcp/0'],
    })
  }, 120_000)
  afterAll(async () => {
    await Promise.allSettled([anvil?.stop(), tpm?.stop()])
    if (dir) await rm(dir, { recursive: true, force: true })
  })

  it('on its own TPM: the bound key is used again, not refused as unfit', async () => {
    const before = await readKeyRecord(recordFile())
    const r = await recoverOwnerNode({ dataDir, mnemonic: init.mnemonic, fetchTimeoutMs: 2_000 })
    expect(r.owner).toBe(init.owner.address)
    const after = await readKeyRecord(recordFile())
    expect(after?.keyId).toBe(before?.keyId)
    expect(after?.policy?.pcrs).toEqual(PCRS)
  }, 120_000)

  it('on a new TPM: the new key is bound to the same words, this boot approved, the owner file opens', async () => {
    await tpm.stop()
    tpm = await startSwtpm()
    const old = await readKeyRecord(recordFile())
    const sealer = { kind: 'tpm2' as const, tcti: tpm.tcti, pcrs: PCRS }
    const r = await recoverOwnerNode({
      dataDir,
      mnemonic: init.mnemonic,
      sealer,
      fetchTimeoutMs: 2_000,
    })
    const record = await readKeyRecord(recordFile())
    expect(record?.keyId).not.toBe(old?.keyId)
    expect(r.sealer.keyId).toBe(record?.keyId)
    // Rollback-protected (ADR 0094): the new TPM's epoch counter defined, this boot's approval bound to it.
    expect(record?.version).toBe(3)
    expect(record?.policy?.pcrs).toEqual(PCRS)
    expect(record?.policy?.authKey).toEqual(old?.policy?.authKey)
    expect(record?.policy?.approval?.epoch?.index).toBe(record?.policy?.epochIndex?.handle)
    // The node as serve builds it opens its owner file with the recovered key.
    const config = await loadOwnerNodeConfig(dataDir)
    expect(config.sealer).toMatchObject(sealer)
    const running = createSealer(config.sealer, { dataDir })
    const { unwrapOwnerSecrets } = await import('@digicap/keyguard/local')
    const secrets = await unwrapOwnerSecrets(ownerNodePaths(dataDir).owner, running)
    expect(secrets.ethereumPrivateKey).toHaveLength(32)
  }, 120_000)
})
