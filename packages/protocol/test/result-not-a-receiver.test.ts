/**
 * SPEC §3.4.3 check 11: a receiver takes a result only for a capsule whose owner-signed header
 * lists it. An executor with a real grant for its own capsule (any policy it likes) cannot push
 * a signed result to a receiver that capsule never named. Real libp2p on loopback, real sealed
 * capsules (their header bytes read by CID from a store), real signatures.
 */
import {
  addressFromPrivateKey,
  createCapsuleHeader,
  encodeHpkeSealed,
  generateDataKey,
  generateX25519KeyPair,
  hpkeSeal,
  sealCapsule,
  signCapsuleHeader,
} from '@digicap/capsule-core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  createResultReceiver,
  type GrantRecord,
  grantIdOf,
  headerResultCapsules,
  type ResultAck,
  type ResultCapsuleRecord,
  type ResultDelivery,
  ResultHeaderInvalidError,
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
const ownerKey = new Uint8Array(32).fill(9)
const rnd = (b: number) => crypto.getRandomValues(new Uint8Array(32)).fill(b, 0, 1)

/** The registry (capsule id → owner, CID) and the capsule bytes by CID. */
const registry = new Map<string, ResultCapsuleRecord>()
const blobs = new Map<string, Uint8Array>()
const hex = (b: Uint8Array) => Buffer.from(b).toString('hex')
const chain = { getCapsule: async (id: Uint8Array) => registry.get(hex(id)) }
const store = {
  async *get(cid: string) {
    const b = blobs.get(cid)
    if (b === undefined) throw new Error(`no ${cid}`)
    // In small pieces, as a block store gives them.
    for (let i = 0; i < b.length; i += 1000) yield b.subarray(i, i + 1000)
  },
}

/**
 * A registered capsule whose header names `receivers`, signed by `signer` (registered: the
 * owner); with `capsuleId`, new content of that capsule (`updateContent`: a new CID).
 */
function publishCapsule(
  receivers: Uint8Array[],
  signer = ownerKey,
  capsuleId?: Uint8Array,
): Uint8Array {
  const dataKey = generateDataKey()
  const plaintext = new TextEncoder().encode('data')
  const header = createCapsuleHeader({
    owner: addressFromPrivateKey(signer),
    policy: {
      chainId: 31337,
      registry: '0x5FbDB2315678afecb367f032d93F642f64180aa3',
      policy: '0xe7f1725E7734CE288F8367e1Bb143E90bb3F0512',
    },
    keyguard: {
      peerId: '12D3KooWGzxzKZYveHXtpG6AsrUJBcWxHBFS2HsEoGTxrMLvKXtf',
      keyId: 'k',
      wrapScheme: 'tpm2-rsa-oaep-sha256',
    },
    runtime: { kind: 'data' },
    receivers: receivers.map((publicKey) => ({ publicKey })),
    dataKey,
    plaintext,
    ...(capsuleId === undefined ? {} : { capsuleId }),
  })
  const capsule = sealCapsule({
    header,
    signature: signCapsuleHeader(header, signer),
    dataKey,
    plaintext,
  })
  const cid = `bafy${hex(header.capsuleId).slice(0, 20)}${capsuleId === undefined ? '' : '-v2'}`
  blobs.set(cid, capsule)
  registry.set(hex(header.capsuleId), { owner: addressFromPrivateKey(ownerKey), cid })
  return header.capsuleId
}

async function delivery(receiverKey: Uint8Array, capsuleId: Uint8Array, output: Uint8Array) {
  const grant: GrantRecord = { executor, capsuleId, ephemeralKey: rnd(0xbb), runIndex: 0n }
  const measurement = rnd(0xcc)
  const grantId = grantIdOf(domain, grant, measurement)
  const runId = rnd(0xdd)
  const sealed = encodeHpkeSealed(
    await hpkeSeal(receiverKey, output, resultAad({ runId, capsuleId, grantId })),
  )
  const fields = {
    runId,
    grantId,
    capsuleId,
    executor,
    receiverKey,
    measurement,
    runMeasurement: rnd(0xee),
    resultHash: resultHashOf(sealed),
    resultSize: sealed.length,
  }
  const d: ResultDelivery = {
    ...fields,
    signature: signResult(fields, domain, executorKey),
    hpke: sealed,
  }
  return { grant, delivery: d }
}

let pair: Awaited<ReturnType<typeof createPair>>
beforeAll(async () => {
  pair = await createPair()
})
afterAll(async () => {
  await pair?.stop()
})

describe('a result for a capsule that does not name this receiver', () => {
  const me = generateX25519KeyPair()
  const someoneElse = generateX25519KeyPair()

  async function deliverTo(
    capsuleId: Uint8Array,
    output: string,
    capsules = headerResultCapsules({ registry: chain, store }),
  ) {
    const { grant, delivery: d } = await delivery(
      me.publicKey,
      capsuleId,
      new TextEncoder().encode(output),
    )
    const receiver = createResultReceiver({ privateKey: me.privateKey })({
      libp2p: pair.b,
      grants: { domain, getGrant: async () => grant },
      capsules,
    })
    const refused: string[] = []
    const causes: unknown[] = []
    receiver.events.addEventListener('error', (e) => {
      const err = (e as CustomEvent).detail as { reasonCode: string; cause?: unknown }
      refused.push(err.reasonCode)
      causes.push(err.cause)
    })
    await receiver.start()
    try {
      const ack: ResultAck = await request(pair.a, pair.b.peerId, resultProtocol, d)
      return { ack, refused, causes, stats: receiver.stats() }
    } finally {
      await receiver.stop()
    }
  }

  it('is refused not-a-receiver (final) although grant, signature and key all check', async () => {
    const theirs = publishCapsule([someoneElse.publicKey])
    const { ack, refused, stats } = await deliverTo(theirs, '{"verdict":"approved"}')
    expect(ack).toMatchObject({ status: 'refused', reasonCode: 'not-a-receiver' })
    expect(ack.status === 'refused' && ack.retryAfterMs).toBeFalsy()
    expect(refused).toEqual(['not-a-receiver'])
    expect(stats.accepted).toBe(0)
  })

  it('is refused not-a-receiver when the registry does not know the capsule', async () => {
    const { ack } = await deliverTo(rnd(0x42), 'x')
    expect(ack).toMatchObject({ status: 'refused', reasonCode: 'not-a-receiver' })
  })

  it('is refused not-a-receiver (final) when the registered CID holds a header another key signed: the header was read and is bad, so retrying cannot help', async () => {
    const forged = publishCapsule([me.publicKey], new Uint8Array(32).fill(3))
    const { ack, refused, causes } = await deliverTo(forged, 'x')
    expect(ack).toMatchObject({ status: 'refused', reasonCode: 'not-a-receiver' })
    expect(ack.status === 'refused' && ack.retryAfterMs).toBeFalsy()
    expect(refused).toEqual(['not-a-receiver'])
    expect(causes[0]).toBeInstanceOf(ResultHeaderInvalidError)
    expect(causes[0]).toMatchObject({ code: 'RESULT_HEADER_INVALID', details: { why: 'signer' } })
  })

  it('is refused not-a-receiver (final) when the registered CID holds no capsule header, or a truncated one, or another capsule’s header', async () => {
    const mine = publishCapsule([me.publicKey])
    const other = publishCapsule([me.publicKey])
    const record = registry.get(hex(mine)) as ResultCapsuleRecord
    const cases: Array<[string, Uint8Array]> = [
      ['format', new TextEncoder().encode('not a capsule at all, just some bytes '.repeat(40))],
      ['truncated', (blobs.get(record.cid) as Uint8Array).subarray(0, 200)],
      [
        'capsule-id',
        blobs.get((registry.get(hex(other)) as ResultCapsuleRecord).cid) as Uint8Array,
      ],
    ]
    for (const [why, bytes] of cases) {
      const cid = `bafy${why.replace('-', '')}${hex(mine).slice(0, 12)}`
      blobs.set(cid, bytes)
      registry.set(hex(mine), { ...record, cid })
      const { ack, causes } = await deliverTo(mine, why)
      expect(ack, why).toMatchObject({ status: 'refused', reasonCode: 'not-a-receiver' })
      expect(causes[0], why).toMatchObject({ code: 'RESULT_HEADER_INVALID', details: { why } })
    }
  })

  it('reads a bad header once: the bytes under a CID never change, so the refusal is kept', async () => {
    let reads = 0
    const counting = {
      get: (cid: string) => {
        reads++
        return store.get(cid)
      },
    }
    const capsules = headerResultCapsules({ registry: chain, store: counting })
    const forged = publishCapsule([me.publicKey], new Uint8Array(32).fill(4))
    for (let i = 0; i < 3; i++) {
      await expect(capsules.receiversOf(forged)).rejects.toBeInstanceOf(ResultHeaderInvalidError)
    }
    expect(reads).toBe(1)
  })

  it('is refused busy (retry) when the store fails to read the header (no peer serves it), and not kept: a later read that works is taken', async () => {
    const mine = publishCapsule([me.publicKey])
    let failing = true
    const flaky = {
      get: (cid: string) => {
        if (failing) {
          return (async function* () {
            yield* []
            throw new Error('no peer serves this block')
          })()
        }
        return store.get(cid)
      },
    }
    const capsules = headerResultCapsules({ registry: chain, store: flaky })
    const first = await deliverTo(mine, 'x', capsules)
    expect(first.ack).toMatchObject({ status: 'refused', reasonCode: 'busy' })
    expect(first.ack.status === 'refused' && first.ack.retryAfterMs).toBeGreaterThan(0)
    expect(first.causes[0]).not.toBeInstanceOf(ResultHeaderInvalidError)
    failing = false
    const second = await deliverTo(mine, 'x', capsules)
    expect(second.ack.status).toBe('ok')
  })

  it('is refused busy (retry) when the header cannot be fetched in time (no peer holds it)', async () => {
    const mine = publishCapsule([me.publicKey])
    const nobody = {
      // as a block store that cannot find the blocks: waits until its signal aborts
      get: (_cid: string, options?: { signal?: AbortSignal }) =>
        (async function* () {
          await new Promise((_, reject) =>
            options?.signal?.addEventListener('abort', () => reject(options.signal?.reason)),
          )
          yield new Uint8Array(0)
        })(),
    }
    const t0 = Date.now()
    const { ack } = await deliverTo(
      mine,
      'x',
      headerResultCapsules({ registry: chain, store: nobody, readTimeoutMs: 300 }),
    )
    expect(ack).toMatchObject({ status: 'refused', reasonCode: 'busy' })
    expect(Date.now() - t0).toBeLessThan(5000)
  })

  it('is taken when the header names this receiver (among others)', async () => {
    const mine = publishCapsule([someoneElse.publicKey, me.publicKey])
    const { ack, stats } = await deliverTo(mine, 'ok')
    expect(ack.status).toBe('ok')
    expect(stats.accepted).toBe(1)
  })

  it('after the owner moves the capsule to new content whose header drops this receiver, the next delivery is refused not-a-receiver: no answer is kept past the registry', async () => {
    const capsules = headerResultCapsules({ registry: chain, store })
    const mine = publishCapsule([me.publicKey])
    expect((await deliverTo(mine, 'before', capsules)).ack.status).toBe('ok')
    // updateContent: the same capsule id, a new CID whose header names someone else only.
    publishCapsule([someoneElse.publicKey], ownerKey, mine)
    const { ack } = await deliverTo(mine, 'after', capsules)
    expect(ack).toMatchObject({ status: 'refused', reasonCode: 'not-a-receiver' })
  })

  it('keeps one answer per capsule: after updateContent the old content’s answer is dropped, not left to age out', async () => {
    const capsules = headerResultCapsules({ registry: chain, store })
    const mine = publishCapsule([me.publicKey])
    expect((await deliverTo(mine, 'v1', capsules)).ack.status).toBe('ok')
    expect(capsules.cached()).toBe(1)
    publishCapsule([someoneElse.publicKey], ownerKey, mine) // updateContent: a new CID
    expect((await deliverTo(mine, 'v2', capsules)).ack).toMatchObject({
      reasonCode: 'not-a-receiver',
    })
    expect(capsules.cached()).toBe(1)
  })

  it('keeps at most cacheSize capsules, least recently used forgotten first', async () => {
    const reads: string[] = []
    const counting = {
      get: (cid: string) => {
        reads.push(cid)
        return store.get(cid)
      },
    }
    const capsules = headerResultCapsules({ registry: chain, store: counting, cacheSize: 2 })
    const [a, b, c] = [1, 2, 3].map(() => publishCapsule([me.publicKey])) as [
      Uint8Array,
      Uint8Array,
      Uint8Array,
    ]
    const cid = (id: Uint8Array) => (registry.get(hex(id)) as ResultCapsuleRecord).cid
    for (const id of [a, b, a, c]) await capsules.receiversOf(id) // a used again before c comes
    expect(capsules.cached()).toBe(2)
    expect(reads).toEqual([cid(a), cid(b), cid(c)])
    await capsules.receiversOf(a) // kept: b, the least recently used, went for c
    await capsules.receiversOf(b)
    expect(reads).toEqual([cid(a), cid(b), cid(c), cid(b)])
    for (let i = 0; i < 10; i++) await capsules.receiversOf(publishCapsule([me.publicKey]))
    expect(capsules.cached()).toBe(2)
  })

  it('forgets a capsule the registry no longer knows', async () => {
    const capsules = headerResultCapsules({ registry: chain, store })
    const mine = publishCapsule([me.publicKey])
    await capsules.receiversOf(mine)
    const record = registry.get(hex(mine)) as ResultCapsuleRecord
    registry.delete(hex(mine))
    expect(await capsules.receiversOf(mine)).toBeUndefined()
    expect(capsules.cached()).toBe(0)
    registry.set(hex(mine), record)
  })

  it('deliveries of one capsule at once read its header once', async () => {
    let reads = 0
    const counting = {
      get: (cid: string) => {
        reads++
        return store.get(cid)
      },
    }
    const capsules = headerResultCapsules({ registry: chain, store: counting })
    const mine = publishCapsule([me.publicKey])
    const answers = await Promise.all([1, 2, 3].map(() => capsules.receiversOf(mine)))
    expect(answers.every((a) => a?.length === 1)).toBe(true)
    expect(reads).toBe(1)
  })
})
