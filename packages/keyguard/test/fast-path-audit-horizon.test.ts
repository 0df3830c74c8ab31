/**
 * ADR 0081 amendment: a tracked fast-path audit is forgotten unchecked only once its receipt is
 * `horizonBlocks` below the confirmed block, never counted from the newest receipt (real anvil,
 * `anvil_mine`). With `confirmations` above the horizon (as a chain whose finalized block trails
 * the head by more than 256 blocks), an audit whose receipt is 300 blocks older than the next
 * audit's is still not confirmed: the chain grants of its capsule are held. The previous code
 * pruned it 256 blocks behind the newest receipt, so it counted as confirmed before it was deep
 * enough.
 */

import { hexlify, randomBytes } from 'ethers'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { FastPathAuditItem } from '../src/chain/chain-client.ts'
import { auditConfirmations } from '../src/fast-path/audit-confirmations.ts'
import { type Chain, chainClientFor, setupChain, until } from './helpers/world.ts'

let chain: Chain

beforeAll(async () => {
  chain = await setupChain()
}, 90_000)

afterAll(() => chain?.anvil.stop())

const item = (executor: string): FastPathAuditItem => ({
  req: {
    capsuleId: hexlify(randomBytes(32)),
    executor,
    ephemeralKey: hexlify(randomBytes(32)),
    measurement: hexlify(randomBytes(32)),
    jobParamsHash: hexlify(randomBytes(32)),
    fee: 0n,
    nonce: 1n,
    expiry: 0n,
  },
  jobParams: '0x',
  signature: '0x',
})

describe('fast-path audit confirmations: the pruning horizon (ADR 0081 amendment)', () => {
  it('keeps an audit that is not confirmations deep, however far behind the newest receipt', async () => {
    const provider = chain.anvil.provider
    const resent: FastPathAuditItem[] = []
    const forgotten: string[] = []
    const audits = auditConfirmations({ confirmations: 400, finality: 'latest' })({
      chain: chainClientFor(chain),
      resend: async (a) => {
        resent.push(a.item)
        return 'failed'
      },
      onConfirmed: (a) => forgotten.push(a.grantId),
    })
    const first = item(chain.executor.address)
    audits.landed({ grantId: '0x01', item: first, blockNumber: await provider.getBlockNumber() })
    // 300 blocks later (more than the old 256-block horizon, less than `confirmations`).
    await provider.send('anvil_mine', ['0x12c'])
    const second = item(chain.executor.address)
    audits.landed({ grantId: '0x02', item: second, blockNumber: await provider.getBlockNumber() })
    expect(audits.size()).toBe(2)
    expect(await audits.unconfirmed(first.req.capsuleId)).toBe(true)
    expect(audits.size()).toBe(2)

    // Once the first audit is the horizon below the confirmed block, it is forgotten unchecked.
    await provider.send('anvil_mine', ['0x190'])
    const third = item(chain.executor.address)
    audits.landed({ grantId: '0x03', item: third, blockNumber: await provider.getBlockNumber() })
    await until(() => audits.size() === 2)
    expect(forgotten).toEqual(['0x01'])
    expect(await audits.unconfirmed(first.req.capsuleId)).toBe(false)
    expect(resent).toEqual([])
  }, 60_000)
})
