/**
 * `openReceiver` takes a result only for a capsule whose owner-signed header names its key
 * (protocol SPEC §3.4.3 check 11), reading the registry over JSON-RPC and the header from
 * IPFS through its own helia node; `waitForResult({ capsuleId })` takes one capsule's result.
 * Real libp2p + helia on loopback (the delivering peer holds the capsules, as an executor
 * does), real sealed capsules and signatures; the chain is a tiny JSON-RPC server answering
 * `getGrant` and `getCapsule` as the contracts encode them (fault-injection style, as in
 * `chain-grants.test.ts`).
 */
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import {
  addressFromPrivateKey,
  createCapsuleHeader,
  encodeHpkeSealed,
  generateDataKey,
  hpkeSeal,
  sealCapsule,
  signCapsuleHeader,
  toHex,
} from '@digicap/capsule-core'
import { createDigicapNode, type DigicapNode, heliaCapsuleStore } from '@digicap/p2p'
import {
  type GrantRecord,
  grantIdOf,
  type ResultAck,
  type ResultDelivery,
  request,
  resultAad,
  resultHashOf,
  resultProtocol,
  signResult,
} from '@digicap/protocol'
import { AbiCoder } from 'ethers'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { defineNetwork, generateReceiverKey, openReceiver, type Receiver } from '../src/index.ts'

const registryAddress = '0x1111111111111111111111111111111111111111'
const controllerAddress = '0x3333333333333333333333333333333333333333'
const domain = { chainId: 31337n, verifyingContract: controllerAddress as `0x${string}` }
const ownerKey = new Uint8Array(32).fill(9)
const executorKey = new Uint8Array(32).fill(7)
const executor = Buffer.from(addressFromPrivateKey(executorKey).slice(2), 'hex')
const rnd = () => crypto.getRandomValues(new Uint8Array(32))
const hex = (b: Uint8Array) => toHex(b).slice(2)
const abi = AbiCoder.defaultAbiCoder()

/** What the chain holds: capsules by id, grants by id (hex without 0x). */
const capsules = new Map<string, { cid: string }>()
const grants = new Map<string, GrantRecord>()

let server: Server
let rpcUrl: string
let sender: DigicapNode
let receiver: Receiver
let receiverPeer: Parameters<typeof request>[1] | undefined
const key = generateReceiverKey()

beforeAll(async () => {
  server = createServer((req, res) => {
    let body = ''
    req.on('data', (d) => {
      body += d
    })
    req.on('end', () => {
      const { method, id, params } = JSON.parse(body) as {
        method: string
        id: number
        params: [{ to: string; data: string }]
      }
      const reply = (x: object) =>
        res.end(JSON.stringify({ jsonrpc: '2.0', id, ...x }), () => undefined)
      res.setHeader('content-type', 'application/json')
      if (method === 'eth_chainId') return reply({ result: '0x7a69' })
      const data = params[0].data.slice(10)
      const revert = () => reply({ error: { code: 3, message: 'execution reverted', data: '0x' } })
      if (params[0].to === controllerAddress) {
        const g = grants.get(data)
        if (!g) return revert()
        return reply({
          result: abi.encode(
            ['address', 'uint40', 'uint40', 'bool', 'bytes32', 'bytes32'],
            [toHex(g.executor), g.runIndex, 0, false, toHex(g.capsuleId), toHex(g.ephemeralKey)],
          ),
        })
      }
      const c = capsules.get(data)
      if (!c) return revert()
      return reply({
        result: abi.encode(
          [
            'tuple(address policy,uint40 registeredAt,bool revoked,uint48 runs,address owner,bytes32 plaintextHash,bytes32 keyguardKeyId,string cid,bytes keyguardPeerId)',
          ],
          [
            [
              registryAddress,
              1,
              false,
              0,
              addressFromPrivateKey(ownerKey),
              toHex(new Uint8Array(32)),
              toHex(new Uint8Array(32)),
              c.cid,
              '0x01',
            ],
          ],
        ),
      })
    })
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  rpcUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  sender = await createDigicapNode({ listen: ['/ip4/127.0.0.1/tcp/0'] })
  receiver = await open()
  receiverPeer = await connected(receiver)
}, 60_000)

const network = () =>
  defineNetwork({
    chainId: 31337,
    rpcUrl,
    addresses: {
      capsuleRegistry: registryAddress,
      nodeRegistry: '0x2222222222222222222222222222222222222222',
      accessController: controllerAddress,
    },
  })

/** A receiver for `key`, dialing the sender at start (its bootstrap). */
function open(extra: { replayFile?: string; identity?: Uint8Array } = {}): Promise<Receiver> {
  return openReceiver({
    network: network(),
    key: key.privateKey,
    bootstrap: sender.multiaddrs(),
    ...extra,
  })
}

/** The sender's connection to `r` (the receiver dialed it): the peer to send deliveries to. */
async function connected(r: Receiver): Promise<Parameters<typeof request>[1]> {
  for (let i = 0; i < 100; i++) {
    const peer = sender.libp2p.getConnections().find((c) => c.remotePeer.toString() === r.peerId)
    if (peer !== undefined) return peer.remotePeer
    await new Promise((res) => setTimeout(res, 100))
  }
  throw new Error('the receiver did not connect')
}

afterAll(async () => {
  await receiver?.stop()
  await sender?.stop()
  await new Promise<void>((r) => server.close(() => r()))
})

/** A capsule naming `receivers`, registered and held by the sender's helia. */
async function publish(receivers: Uint8Array[]): Promise<Uint8Array> {
  const dataKey = generateDataKey()
  const plaintext = new TextEncoder().encode('data')
  const header = createCapsuleHeader({
    owner: addressFromPrivateKey(ownerKey),
    policy: { chainId: 31337, registry: registryAddress, policy: registryAddress },
    keyguard: {
      peerId: '12D3KooWGzxzKZYveHXtpG6AsrUJBcWxHBFS2HsEoGTxrMLvKXtf',
      keyId: 'k',
      wrapScheme: 'tpm2-rsa-oaep-sha256',
    },
    runtime: { kind: 'data' },
    receivers: receivers.map((publicKey) => ({ publicKey })),
    dataKey,
    plaintext,
  })
  const bytes = sealCapsule({
    header,
    signature: signCapsuleHeader(header, ownerKey),
    dataKey,
    plaintext,
  })
  const cid = await heliaCapsuleStore(sender.helia).put(
    (async function* () {
      yield bytes
    })(),
  )
  capsules.set(hex(header.capsuleId), { cid })
  return header.capsuleId
}

/** A run of `capsuleId` with a grant on "chain", its result signed and sent to the receiver. */
async function deliver(capsuleId: Uint8Array, output: string): Promise<ResultAck> {
  const d = await delivery(capsuleId, output)
  return send(d)
}

const send = (d: ResultDelivery, to = receiverPeer): Promise<ResultAck> =>
  request(sender.libp2p, to as Parameters<typeof request>[1], resultProtocol, d, {
    timeout: 20_000,
  })

/** A signed delivery of a run of `capsuleId`, its grant on "chain". */
async function delivery(capsuleId: Uint8Array, output: string): Promise<ResultDelivery> {
  const grant: GrantRecord = { executor, capsuleId, ephemeralKey: rnd(), runIndex: 0n }
  const measurement = rnd()
  const grantId = grantIdOf(domain, grant, measurement)
  grants.set(hex(grantId), grant)
  const runId = rnd()
  const sealed = encodeHpkeSealed(
    await hpkeSeal(
      key.publicKey,
      new TextEncoder().encode(output),
      resultAad({ runId, capsuleId, grantId }),
    ),
  )
  const fields = {
    runId,
    grantId,
    capsuleId,
    executor,
    receiverKey: key.publicKey,
    measurement,
    runMeasurement: rnd(),
    resultHash: resultHashOf(sealed),
    resultSize: sealed.length,
  }
  const d: ResultDelivery = {
    ...fields,
    signature: signResult(fields, domain, executorKey),
    hpke: sealed,
  }
  return d
}

describe('openReceiver and the capsule header', () => {
  it('refuses not-a-receiver a real grant’s result for a capsule that names another key', async () => {
    const theirs = await publish([generateReceiverKey().publicKey])
    expect(await deliver(theirs, 'approved')).toMatchObject({
      status: 'refused',
      reasonCode: 'not-a-receiver',
    })
    await expect(receiver.waitForResult({ timeoutMs: 300 })).rejects.toMatchObject({
      code: 'RESULT_TIMEOUT',
    })
  }, 30_000)

  it('takes results of capsules naming it; waitForResult({ capsuleId }) takes that capsule’s only', async () => {
    const a = await publish([key.publicKey])
    const b = await publish([generateReceiverKey().publicKey, key.publicKey])
    expect((await deliver(a, 'from a')).status).toBe('ok')
    expect((await deliver(b, 'from b')).status).toBe('ok')
    const gotB = await receiver.waitForResult({ capsuleId: toHex(b), timeoutMs: 5000 })
    expect(new TextDecoder().decode(gotB.output)).toBe('from b')
    expect(gotB.capsuleId).toBe(toHex(b))
    // a's result was kept for a later call
    const gotA = await receiver.waitForResult({
      capsuleId: toHex(a).toUpperCase().replace('0X', '0x'),
      timeoutMs: 5000,
    })
    expect(new TextDecoder().decode(gotA.output)).toBe('from a')
  }, 30_000)

  it('with replayFile, a receiver restarted on the same file refuses `replayed` the result it took', async () => {
    const { mkdtemp, rm } = await import('node:fs/promises')
    const { join } = await import('node:path')
    const { tmpdir } = await import('node:os')
    const dir = await mkdtemp(join(tmpdir(), 'digicap-sdk-restart-'))
    const replayFile = join(dir, 'replays.json')
    const identity = crypto.getRandomValues(new Uint8Array(32))
    const capsule = await publish([key.publicKey])
    const d = await delivery(capsule, 'pay 10')
    try {
      const first = await open({ replayFile, identity })
      expect((await send(d, await connected(first))).status).toBe('ok')
      expect(
        new TextDecoder().decode((await first.waitForResult({ timeoutMs: 5000 })).output),
      ).toBe('pay 10')
      await first.stop()
      // a new process: the same key, identity and replay file
      const second = await open({ replayFile, identity })
      try {
        expect(await send(d, await connected(second))).toMatchObject({
          status: 'refused',
          reasonCode: 'replayed',
        })
      } finally {
        await second.stop()
      }
      // without replayFile, "once" is once per process: the same delivery is taken again
      const forgetful = await open({ identity })
      try {
        expect((await send(d, await connected(forgetful))).status).toBe('ok')
      } finally {
        await forgetful.stop()
      }
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  }, 60_000)
})
