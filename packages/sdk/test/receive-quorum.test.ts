/**
 * What the receiver trusts the chain's RPCs for (review 120, after review 119).
 *
 * Review 119 (attacker): the SDK receiver decides "signed by the executor its grant names on
 * the network's AccessController" from one JSON-RPC endpoint, at `latest`, with no quorum and no
 * confirmations (the keyguard and the executor read through `@digicap/contracts`' RPC quorum,
 * ADR 0009). Whoever runs that endpoint (a hosted RPC, a LAN proxy on plain http) answers a
 * well-formed `getGrant` and `getCapsule` for a run and a capsule the chain never had, and the
 * receiver takes the attacker's output as a verified result. The README says "A lying or broken
 * RPC gives `CHAIN_READ`, never a grant".
 * A real anvil with the `local` deployment (which holds no such grant or capsule), the
 * receiver's real libp2p + helia, a real delivery over the result protocol; the lying RPC
 * forwards every other call to anvil.
 *
 * One RPC is trusted: what it claims, the receiver takes (documented, tested below). With
 * `rpcUrls` a quorum of distinct RPCs must agree on the grant and the capsule: the liar is
 * outvoted (two of two: no agreement; two of three: the honest answer, "no such grant").
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
import { connectDigicap, deployDigicap } from '@digicap/contracts'
import { type Anvil, startAnvil } from '@digicap/contracts/testing'
import { createDigicapNode, type DigicapNode, heliaCapsuleStore } from '@digicap/p2p'
import {
  type GrantRecord,
  grantIdOf,
  request,
  resultAad,
  resultHashOf,
  resultProtocol,
  signResult,
} from '@digicap/protocol'
import { AbiCoder, type Wallet } from 'ethers'
import { afterAll, beforeAll, expect, it } from 'vitest'
import { generateReceiverKey, getNetwork, openReceiver, type Receiver } from '../src/index.ts'

const abi = AbiCoder.defaultAbiCoder()
const rnd = () => crypto.getRandomValues(new Uint8Array(32))
const attackerKey = new Uint8Array(32).fill(0x66)
const attacker = Buffer.from(addressFromPrivateKey(attackerKey).slice(2), 'hex')

let anvil: Anvil
let server: Server
let rpcUrl: string
let sender: DigicapNode
const receivers: Receiver[] = []
/** What the lying RPC claims the chain holds (call data after the selector, hex). */
const fakeGrants = new Map<string, GrantRecord>()
const fakeCapsules = new Map<string, string>()

beforeAll(async () => {
  anvil = await startAnvil()
  await deployDigicap(anvil.signers[0] as Wallet) // the `local` addresses
  const local = getNetwork('local')
  server = createServer((req, res) => {
    let body = ''
    req.on('data', (d) => {
      body += d
    })
    req.on('end', async () => {
      const msg = JSON.parse(body) as { method: string; id: number; params: [{ data?: string }] }
      const reply = (x: object) => res.end(JSON.stringify({ jsonrpc: '2.0', id: msg.id, ...x }))
      res.setHeader('content-type', 'application/json')
      const arg = msg.method === 'eth_call' ? (msg.params[0].data ?? '').slice(10) : ''
      const g = fakeGrants.get(arg)
      if (g) {
        return reply({
          result: abi.encode(
            ['address', 'uint40', 'uint40', 'bool', 'bytes32', 'bytes32'],
            [toHex(g.executor), g.runIndex, 0, false, toHex(g.capsuleId), toHex(g.ephemeralKey)],
          ),
        })
      }
      const cid = fakeCapsules.get(arg)
      if (cid) {
        const word = toHex(new Uint8Array(32))
        return reply({
          result: abi.encode(
            [
              'tuple(address policy,uint40 registeredAt,bool revoked,uint48 runs,address owner,bytes32 plaintextHash,bytes32 keyguardKeyId,string cid,bytes keyguardPeerId)',
            ],
            [[local.addresses.nodeRegistry, 1, false, 0, toHex(attacker), word, word, cid, '0x01']],
          ),
        })
      }
      const answer = await fetch(anvil.rpcUrl, {
        method: 'POST',
        body,
        headers: { 'content-type': 'application/json' },
      })
      res.end(await answer.text())
    })
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  rpcUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  sender = await createDigicapNode({ listen: ['/ip4/127.0.0.1/tcp/0'] })
}, 120_000)

afterAll(async () => {
  for (const r of receivers) await r.stop()
  await sender?.stop()
  server?.closeAllConnections()
  await new Promise<void>((r) => (server ? server.close(() => r()) : r()))
  await anvil?.stop()
})

/**
 * Opens a receiver with `reads` (its RPCs), then delivers it the attacker's result for a
 * capsule and a grant that only the lying RPC claims; the receiver's answer.
 */
async function deliverForged(reads: {
  rpcUrls?: string[]
  quorum?: number
}): Promise<{ receiver: Receiver; status: string }> {
  const local = getNetwork('local')
  const key = generateReceiverKey()
  const receiver = await openReceiver({
    network: 'local',
    rpcUrl,
    ...reads,
    key: key.privateKey,
    bootstrap: sender.multiaddrs(),
  })
  receivers.push(receiver)
  let peer: Parameters<typeof request>[1] | undefined
  for (let i = 0; i < 200 && peer === undefined; i++) {
    peer = sender.libp2p
      .getConnections()
      .find((c) => c.remotePeer.toString() === receiver.peerId)?.remotePeer
    if (peer === undefined) await new Promise((r) => setTimeout(r, 100))
  }
  expect(peer).toBeDefined()

  // The attacker's own capsule, naming the victim's (public) receiver key; never registered.
  const dataKey = generateDataKey()
  const plaintext = new TextEncoder().encode('x')
  const header = createCapsuleHeader({
    owner: addressFromPrivateKey(attackerKey),
    policy: {
      chainId: 31337,
      registry: local.addresses.capsuleRegistry,
      policy: local.addresses.nodeRegistry,
    },
    keyguard: {
      peerId: '12D3KooWGzxzKZYveHXtpG6AsrUJBcWxHBFS2HsEoGTxrMLvKXtf',
      keyId: 'k',
      wrapScheme: 'tpm2-rsa-oaep-sha256',
    },
    runtime: { kind: 'data' },
    receivers: [{ publicKey: key.publicKey }],
    dataKey,
    plaintext,
  })
  const bytes = sealCapsule({
    header,
    signature: signCapsuleHeader(header, attackerKey),
    dataKey,
    plaintext,
  })
  const cid = await heliaCapsuleStore(sender.helia).put(
    (async function* () {
      yield bytes
    })(),
  )
  const capsuleId = header.capsuleId
  fakeCapsules.set(toHex(capsuleId).slice(2), cid)
  const domain = {
    chainId: 31337n,
    verifyingContract: local.addresses.accessController as `0x${string}`,
  }
  const grant: GrantRecord = { executor: attacker, capsuleId, ephemeralKey: rnd(), runIndex: 0n }
  const measurement = rnd()
  const grantId = grantIdOf(domain, grant, measurement)
  fakeGrants.set(toHex(grantId).slice(2), grant)
  // The real chain holds neither.
  await expect(
    connectDigicap(local.addresses, anvil.provider).capsuleRegistry.getCapsule(toHex(capsuleId)),
  ).rejects.toThrow()

  const runId = rnd()
  const sealed = encodeHpkeSealed(
    await hpkeSeal(
      key.publicKey,
      new TextEncoder().encode('forged output'),
      resultAad({ runId, capsuleId, grantId }),
    ),
  )
  const fields = {
    runId,
    grantId,
    capsuleId,
    executor: attacker,
    receiverKey: key.publicKey,
    measurement,
    runMeasurement: rnd(),
    resultHash: resultHashOf(sealed),
    resultSize: sealed.length,
  }
  const ack = await request(
    sender.libp2p,
    peer as Parameters<typeof request>[1],
    resultProtocol,
    { ...fields, signature: signResult(fields, domain, attackerKey), hpke: sealed },
    { timeout: 20_000 },
  )
  return { receiver, status: ack.status }
}

it('with one RPC, that RPC is trusted: a grant and capsule only it claims are taken', async () => {
  const { receiver, status } = await deliverForged({})
  expect(status).toBe('ok')
  const r = await receiver.waitForResult({ timeoutMs: 20_000 })
  expect(new TextDecoder().decode(r.output)).toBe('forged output')
}, 120_000)

it('a quorum of two RPCs, one lying: a result whose grant and capsule only the liar claims is not taken', async () => {
  const { receiver, status } = await deliverForged({ rpcUrls: [anvil.rpcUrl] })
  expect(status).not.toBe('ok')
  await expect(receiver.waitForResult({ timeoutMs: 1000 })).rejects.toMatchObject({
    code: 'RESULT_TIMEOUT',
  })
}, 120_000)

it('two of three RPCs, one lying: the honest majority outvotes it, the result is not taken', async () => {
  const { receiver, status } = await deliverForged({ rpcUrls: [anvil.rpcUrl, anvil.rpcUrl] })
  expect(status).not.toBe('ok')
  await expect(receiver.waitForResult({ timeoutMs: 1000 })).rejects.toMatchObject({
    code: 'RESULT_TIMEOUT',
  })
}, 120_000)
