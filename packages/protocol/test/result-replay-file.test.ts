/**
 * "Once" across a restart: a receiver with a `fileResultReplays` store refuses `replayed` a
 * delivery it took before it restarted; without a store (the SDK's `openReceiver` default
 * before `replayFile`), the restarted receiver takes it again. Real libp2p on loopback, a real
 * file.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import {
  addressFromPrivateKey,
  encodeHpkeSealed,
  generateX25519KeyPair,
  hpkeSeal,
} from '@digicap/capsule-core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  createResultReceiver,
  fileResultReplays,
  type GrantRecord,
  grantIdOf,
  type ResultAck,
  type ResultDelivery,
  type ResultReplayStore,
  request,
  resultAad,
  resultHashOf,
  resultProtocol,
  signResult,
} from '../src/index.ts'
import { createPair } from './helpers/nodes.ts'

const domain = { chainId: 31337n, verifyingContract: `0x${'11'.repeat(20)}` as const }
const executorKey = new Uint8Array(32).fill(7)
const executor = Buffer.from(addressFromPrivateKey(executorKey).slice(2), 'hex')
const rnd = () => crypto.getRandomValues(new Uint8Array(32))
// A plain writer stands in for cli-kit's writeJsonAtomic (protocol does not depend on it).
const writeJsonAtomic = async (path: string, value: unknown) => {
  await writeFile(`${path}.tmp`, JSON.stringify(value))
  await import('node:fs/promises').then((fs) => fs.rename(`${path}.tmp`, path))
}

let pair: Awaited<ReturnType<typeof createPair>>
let dir: string
beforeAll(async () => {
  pair = await createPair()
  dir = await mkdtemp(join(tmpdir(), 'digicap-replays-'))
})
afterAll(async () => {
  await pair?.stop()
  await rm(dir, { recursive: true, force: true })
})

async function signedDelivery(receiverKey: Uint8Array, output: string) {
  const grant: GrantRecord = { executor, capsuleId: rnd(), ephemeralKey: rnd(), runIndex: 0n }
  const measurement = rnd()
  const grantId = grantIdOf(domain, grant, measurement)
  const runId = rnd()
  const sealed = encodeHpkeSealed(
    await hpkeSeal(
      receiverKey,
      new TextEncoder().encode(output),
      resultAad({ runId, capsuleId: grant.capsuleId, grantId }),
    ),
  )
  const fields = {
    runId,
    grantId,
    capsuleId: grant.capsuleId,
    executor,
    receiverKey,
    measurement,
    runMeasurement: rnd(),
    resultHash: resultHashOf(sealed),
    resultSize: sealed.length,
  }
  const delivery: ResultDelivery = {
    ...fields,
    signature: signResult(fields, domain, executorKey),
    hpke: sealed,
  }
  return { grant, delivery }
}

describe('a delivery replayed after the receiver restarts', () => {
  const me = generateX25519KeyPair()

  async function across(replays: () => ResultReplayStore | undefined) {
    const { grant, delivery } = await signedDelivery(me.publicKey, 'pay 10')
    const acks: string[] = []
    for (let start = 0; start < 2; start++) {
      const store = replays()
      const receiver = createResultReceiver({ privateKey: me.privateKey })({
        libp2p: pair.b,
        grants: { domain, getGrant: async () => grant },
        capsules: { receiversOf: async () => [me.publicKey] },
        ...(store === undefined ? {} : { replays: store }),
      })
      await receiver.start()
      try {
        const ack: ResultAck = await request(pair.a, pair.b.peerId, resultProtocol, delivery)
        acks.push(ack.status === 'ok' ? 'ok' : ack.reasonCode)
      } finally {
        await receiver.stop()
      }
    }
    return acks
  }

  it('is refused `replayed` by a new receiver on the same replay file', async () => {
    const path = join(dir, 'replays.json')
    expect(await across(() => fileResultReplays({ path })({ writeJsonAtomic }))).toEqual([
      'ok',
      'replayed',
    ])
  })

  it('is taken again without a store: "once" is once per process', async () => {
    expect(await across(() => undefined)).toEqual(['ok', 'ok'])
  })

  it('a replay file that is not one it wrote stops start() with REPLAY_STORE', async () => {
    const path = join(dir, 'bad.json')
    await writeFile(path, '{"version":1,"ids":["nope"]}')
    const receiver = createResultReceiver({ privateKey: me.privateKey })({
      libp2p: pair.b,
      grants: { domain, getGrant: async () => undefined },
      capsules: { receiversOf: async () => undefined },
      replays: fileResultReplays({ path })({ writeJsonAtomic }),
    })
    await expect(receiver.start()).rejects.toMatchObject({
      code: 'REPLAY_STORE',
      details: { why: 'malformed id' },
    })
  })
})
