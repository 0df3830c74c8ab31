import { DigicapError, generateX25519KeyPair } from '@digicap/capsule-core'
import type { Libp2p } from '@libp2p/interface'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createResultReceiver } from '../src/index.ts'
import { createNode } from './helpers/nodes.ts'

let libp2p: Libp2p
// These tests never get a delivery: the grant source is a component that is never asked.
const grants = {
  domain: { chainId: 31337n, verifyingContract: `0x${'11'.repeat(20)}` as const },
  getGrant: async () => undefined,
}
const capsules = { receiversOf: async () => undefined }

beforeAll(async () => {
  libp2p = await createNode()
})

afterAll(async () => {
  await libp2p?.stop()
})

describe('result receiver lifecycle', () => {
  it('stop() settles pending next() calls with RECEIVER_STOPPED (their timers would hold the process)', async () => {
    const receiver = createResultReceiver({ privateKey: generateX25519KeyPair().privateKey })({
      libp2p,
      grants,
      capsules,
    })
    await receiver.start()
    // A long timeout: without stop() settling it, this would hold the process for an hour.
    const pending = [receiver.next(3_600_000), receiver.next(3_600_000)]
    await receiver.stop()
    for (const p of pending) {
      const err = await p.then(
        () => undefined,
        (e: unknown) => e,
      )
      expect(err).toBeInstanceOf(DigicapError)
      expect((err as DigicapError).code).toBe('RECEIVER_STOPPED')
    }
  })

  it('next() still times out with RESULT_INVALID when nothing arrives', async () => {
    const receiver = createResultReceiver({ privateKey: generateX25519KeyPair().privateKey })({
      libp2p,
      grants,
      capsules,
    })
    await receiver.start()
    const err = await receiver.next(50).then(
      () => undefined,
      (e: unknown) => e,
    )
    expect((err as DigicapError).code).toBe('RESULT_INVALID')
    await receiver.stop()
  })
})
