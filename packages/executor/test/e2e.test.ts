import { subscribe, unsubscribe } from 'node:diagnostics_channel'
import { watch } from 'node:fs'
import { mkdtemp, readdir, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { basename, join } from 'node:path'
import {
  type DigicapError,
  encodeHpkeSealed,
  generateX25519KeyPair,
  HEADER_SIGNATURE_CHANNEL,
  hpkeSeal,
} from '@digicap/capsule-core'
import { attested, environment } from '@digicap/contracts'
import { createDigicapNode, heliaCapsuleStore, privateKeyFromSeed } from '@digicap/p2p'
import {
  decodeErrorReply,
  decodeFrame,
  encodeFrame,
  encodeKeyRelease,
  keyReleaseProtocol,
  request,
} from '@digicap/protocol'
import { getBytes, hexlify, randomBytes } from 'ethers'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  AccessDeniedError,
  type AutoRunEvent,
  autoRunner,
  createResultReceiver,
  type StageEvent,
} from '../src/index.ts'
import {
  deployPolicyFor,
  jsBundle,
  makeCapsule,
  resultCapsules,
  resultGrants,
  setupWorld,
  until,
  type World,
} from './helpers/world.ts'

let w: World
let tmpRoot: string

beforeAll(async () => {
  tmpRoot = await mkdtemp(join(tmpdir(), 'exec-runs-'))
  w = await setupWorld({ tmpRoot, executor: { delivery: { directDeadlineMs: 800 } } })
}, 60_000)

afterAll(async () => {
  await w?.stop()
  await rm(tmpRoot, { recursive: true, force: true })
})

const enc = new TextEncoder()
const dec = new TextDecoder()

async function failure(p: Promise<unknown>): Promise<DigicapError> {
  try {
    await p
  } catch (err) {
    return err as DigicapError
  }
  throw new Error('expected a failure')
}

describe('executor end to end (anvil + helia + libp2p + keyguard)', () => {
  it('chain path: fetches, verifies, gets the key pushed, runs QuickJS, delivers to the receiver, cleans up', async () => {
    const recvNode = await createDigicapNode()
    const keys = generateX25519KeyPair()
    const capsules = resultCapsules(w)
    const receiver = createResultReceiver({ privateKey: keys.privateKey })({
      libp2p: recvNode.libp2p,
      store: heliaCapsuleStore(recvNode.helia),
      grants: resultGrants(w),
      capsules,
    })
    await receiver.start()
    await recvNode.libp2p.dial(w.exec.libp2p.getMultiaddrs()[0]!)
    const capsule = await makeCapsule(w, {
      plaintext: jsBundle('digicap.output(digicap.inputText().toUpperCase())', 'hello capsule'),
      runtime: { kind: 'quickjs', entry: 'main.js' },
      receivers: [{ publicKey: keys.publicKey, peerId: recvNode.peerId }],
    })
    // The receiver checks the header's signature too (check 11, its own reading of the
    // header); read it now, so that the count below is the executor's alone.
    expect(await capsules.receiversOf(getBytes(capsule.capsuleId))).toHaveLength(1)
    const stages: StageEvent[] = []
    // Every name created under the workspace root during the run.
    const created = new Set<string>()
    const watcher = watch(tmpRoot, { recursive: true }, (_event, name) => {
      if (name) created.add(name)
    })
    // the owner signature on the header, checked once on the whole run (the loader's proof
    // spares the open its own check)
    const signatureChecks: unknown[] = []
    const onCheck = (m: unknown) => signatureChecks.push(m)
    subscribe(HEADER_SIGNATURE_CHANNEL, onCheck)
    const res = await w.executor.runCapsule(capsule.cid, { onStage: (e) => stages.push(e) })
    unsubscribe(HEADER_SIGNATURE_CHANNEL, onCheck)
    watcher.close()
    expect(signatureChecks).toHaveLength(1)
    // the plaintext never touched the disk: the capsule (ciphertext) file is the only file
    expect([...created].map((n) => basename(n)).filter((n) => !n.startsWith('digicap-'))).toEqual(
      expect.arrayContaining(['capsule.bin']),
    )
    for (const n of created) expect(basename(n)).toMatch(/^(digicap-capsule-\w+|capsule\.bin)$/)
    expect(res.path).toBe('chain')
    expect(dec.decode(res.result)).toBe('HELLO CAPSULE')
    expect(res.capsuleId).toBe(capsule.capsuleId)
    expect(res.deliveries).toEqual([
      { receiver: 0, peerId: recvNode.peerId, status: 'delivered', attempts: 1 },
    ])
    const got = await receiver.next(5000)
    expect(dec.decode(got.output)).toBe('HELLO CAPSULE')
    expect(got.runId).toBe(res.runId)
    expect(got.grantId).toBe(res.grantId)
    expect(got.via).toBe('inline')
    // signed by the grant's executor, checked against the grant on chain
    expect(got.executor).toBe(w.executorWallet.address)
    expect(got.measurement).toBe(hexlify(w.measurement))
    const done = stages.filter((s) => s.status === 'done').map((s) => s.stage)
    for (const s of ['fetch', 'verify', 'grant', 'release', 'open', 'run', 'cleanup', 'deliver']) {
      expect(done).toContain(s)
    }
    // nothing left behind: the capsule file, the key buffers
    expect(await readdir(tmpRoot)).toEqual([])
    expect(res.cleanup.failures).toEqual([])
    // ADR 0035: the plaintext went to a file on the tmpfs (never under the disk root watched
    // above), wiped and removed with the ciphertext file
    const open = stages.find((s) => s.stage === 'open' && s.status === 'done')
    expect(open?.detail).toMatchObject({ to: 'tmpfs-file' })
    expect(res.cleanup.filesRemoved).toBe(2)
    expect(res.cleanup.tempRoots.some((r) => r.startsWith('/dev/shm/digicap-plaintext-'))).toBe(
      true,
    )
    expect(res.cleanup.buffersZeroed).toBeGreaterThanOrEqual(3)
    const grant = await w.c.accessController.getGrant(res.grantId)
    expect(grant.fastPath).toBe(false)
    await receiver.stop()
    await recvNode.stop()
  })

  it('a spoofed key release from a chain watcher is refused; the run waits for the real keyguard and succeeds', async () => {
    const attacker = await createDigicapNode()
    await attacker.libp2p.dial(w.exec.libp2p.getMultiaddrs()[0]!)
    const capsule = await makeCapsule(w, {
      plaintext: jsBundle('digicap.output(digicap.inputText() + "!")', 'real'),
      runtime: { kind: 'quickjs', entry: 'main.js' },
    })
    const inboxEvents: string[] = []
    const onInbox = (e: Event): void => {
      const d = (e as CustomEvent<{ type: string; reason?: string }>).detail
      inboxEvents.push(d.reason === undefined ? d.type : `${d.type}:${d.reason}`)
    }
    for (const t of ['release-accepted', 'release-unknown', 'release-rejected']) {
      w.executor.events.addEventListener(t, onInbox)
    }
    let spoof: Promise<string> | undefined
    const res = await w.executor.runCapsule(capsule.cid, {
      onStage: (e) => {
        if (e.stage !== 'grant' || e.status !== 'done') return
        const grantId = String(e.detail?.grantId)
        // Everything needed is public: the grant id and ephemeral key are in AccessGranted.
        spoof = (async () => {
          const [log] = await w.c.accessController.queryFilter(
            w.c.accessController.filters.AccessGranted!(grantId),
          )
          const args = (log as unknown as { args: { ephemeralKey: string } }).args
          const ack = await request(attacker.libp2p, w.exec.libp2p.peerId, keyReleaseProtocol, {
            grantId: getBytes(grantId),
            capsuleId: getBytes(capsule.capsuleId),
            hpke: encodeHpkeSealed(
              await hpkeSeal(getBytes(args.ephemeralKey), randomBytes(32), getBytes(grantId)),
            ),
            fastPath: false,
          })
          return ack.status
        })()
      },
    })
    const spoofStatus = await spoof
    for (const t of ['release-accepted', 'release-unknown', 'release-rejected']) {
      w.executor.events.removeEventListener(t, onInbox)
    }
    expect(res.path).toBe('chain')
    expect(dec.decode(res.result)).toBe('real!')
    expect(spoofStatus).toBe('unknown-grant')
    // Exactly one release was accepted (the keyguard's). The junk is refused whichever wins the
    // race: for its sender while the run waits (the usual order here), or as unknown after it.
    // inbox.test.ts pins the wrong-peer refusal deterministically.
    expect(inboxEvents.filter((e) => e === 'release-accepted')).toHaveLength(1)
    for (const e of inboxEvents.filter((x) => x !== 'release-accepted')) {
      expect(['release-rejected:wrong-peer', 'release-unknown']).toContain(e)
    }
    expect(inboxEvents).toHaveLength(2)
    await attacker.stop()
  })

  it('auto-runner: 1000 spam announcements stay bounded and a valid announcement still runs for real', async () => {
    const capsule = await makeCapsule(w, {
      plaintext: jsBundle('digicap.output("auto " + digicap.inputText())', 'ran'),
      runtime: { kind: 'quickjs', entry: 'main.js' },
    })
    const events: AutoRunEvent[] = []
    const auto = autoRunner({
      chainId: Number(w.addresses.chainId),
      registry: w.addresses.capsuleRegistry,
      maxQueued: 4,
      perAnnouncerLimit: 3,
      onEvent: (e) => events.push(e),
    })({ node: w.exec, executor: w.executor })
    const base = {
      capsuleId: capsule.capsuleId,
      owner: w.owner.address,
      registry: w.addresses.capsuleRegistry,
      chainId: Number(w.addresses.chainId),
      keyguardPeer: w.kg.peerId,
    }
    let maxQueued = 0
    for (let i = 0; i < 1000; i++) {
      auto.offer({ ...base, cid: `not-a-cid-${i}` }, 'spammer')
      maxQueued = Math.max(maxQueued, auto.stats().queued)
    }
    expect(auto.offer({ ...base, cid: capsule.cid }, 'owner')).toBe(true)
    expect(maxQueued).toBeLessThanOrEqual(4)
    await until(() => events.some((e) => e.type === 'ran'), 30_000)
    const ran = events.find((e) => e.type === 'ran')
    expect(ran?.type === 'ran' && dec.decode(ran.result.result)).toBe('auto ran')
    expect(events.filter((e) => e.type === 'failed').length).toBe(3)
    expect(events.filter((e) => e.type === 'ignored' && e.reason === 'rate-limited').length).toBe(
      997,
    )
    await auto.stop()
  }, 60_000)

  it('fast path: signed request, key inline, data runtime', async () => {
    const capsule = await makeCapsule(w, {
      plaintext: enc.encode('x'.repeat(5000)),
      runtime: { kind: 'data' },
    })
    const res = await w.executor.runCapsule(capsule.cid, { fast: true })
    expect(res.path).toBe('fast')
    expect(dec.decode(res.result)).toBe('data:5000')
    expect(await readdir(tmpRoot)).toEqual([])
  })

  it('a policy refusal on the fast path is final and names the reason (no chain fallback)', async () => {
    const policy = await deployPolicyFor(w, environment(hexlify(randomBytes(32))))
    const capsule = await makeCapsule(w, {
      plaintext: enc.encode('secret'),
      runtime: { kind: 'data' },
      policy,
    })
    const before = await w.anvil.provider.getBlockNumber()
    const err = await failure(
      w.executor.runCapsule(capsule.cid, { fast: true, fallbackToChain: true }),
    )
    expect(err).toBeInstanceOf(AccessDeniedError)
    expect(err.code).toBe('ACCESS_DENIED')
    expect((err as AccessDeniedError).reason).toBe('WRONG_ENVIRONMENT')
    expect((err as AccessDeniedError).path).toBe('fast')
    expect(err.message).toContain('WRONG_ENVIRONMENT')
    expect(await w.anvil.provider.getBlockNumber()).toBe(before)
    // the chain path says the same, decoded from the revert
    const viaChain = await failure(w.executor.runCapsule(capsule.cid))
    expect(viaChain.code).toBe('ACCESS_DENIED')
    expect((viaChain as AccessDeniedError).reason).toBe('WRONG_ENVIRONMENT')
    expect((viaChain as AccessDeniedError).path).toBe('chain')
    expect(await readdir(tmpRoot)).toEqual([])
  })

  it('a not-attested refusal on the fast path is final too (no chain transaction to be refused again)', async () => {
    // this executor registered no attestation key: attested() can pass on neither path
    const policy = await deployPolicyFor(w, attested())
    const capsule = await makeCapsule(w, {
      plaintext: enc.encode('secret'),
      runtime: { kind: 'data' },
      policy,
    })
    const before = await w.anvil.provider.getBlockNumber()
    const err = await failure(
      w.executor.runCapsule(capsule.cid, { fast: true, fallbackToChain: true }),
    )
    expect(err).toBeInstanceOf(AccessDeniedError)
    expect((err as AccessDeniedError).path).toBe('fast')
    expect((err as AccessDeniedError).reason).toContain('not-attested')
    expect(await w.anvil.provider.getBlockNumber()).toBe(before)
    expect(await readdir(tmpRoot)).toEqual([])
  })

  it('refuses a header signed by someone else before any access request', async () => {
    const capsule = await makeCapsule(w, {
      plaintext: enc.encode('x'),
      runtime: { kind: 'data' },
      signer: w.other,
    })
    const before = await w.anvil.provider.getBlockNumber()
    const err = await failure(w.executor.runCapsule(capsule.cid, { fast: true }))
    expect(err.code).toBe('CAPSULE_UNVERIFIED')
    expect(err.details.owner).toBe(w.owner.address)
    expect(await w.anvil.provider.getBlockNumber()).toBe(before)
  })

  it('refuses a capsule whose registered CID is another one, or that is not registered', async () => {
    const other = await makeCapsule(w, { plaintext: enc.encode('a'), runtime: { kind: 'data' } })
    const capsule = await makeCapsule(w, {
      plaintext: enc.encode('b'),
      runtime: { kind: 'data' },
      registerCid: other.cid,
    })
    const err = await failure(w.executor.runCapsule(capsule.cid))
    expect(err.code).toBe('REGISTRY_MISMATCH')
    expect(err.details.field).toBe('cid')
    const unregistered = await makeCapsule(w, {
      plaintext: enc.encode('c'),
      runtime: { kind: 'data' },
      register: false,
    })
    const err2 = await failure(w.executor.runCapsule(unregistered.cid))
    expect(err2.code).toBe('REGISTRY_MISMATCH')
    expect(err2.details.field).toBe('capsuleId')
    const bad = await failure(w.executor.runCapsule('not-a-cid'))
    expect(bad.code).toBe('CAPSULE_FETCH')
    expect(await readdir(tmpRoot)).toEqual([])
  })

  it('a keyguard that releases a different key → KEY_RELEASE_INVALID; a tampered payload → PAYLOAD_INTEGRITY', async () => {
    const lying = await makeCapsule(w, {
      plaintext: enc.encode('truth'),
      runtime: { kind: 'data' },
      keyguardKey: randomBytes(32),
    })
    const err = await failure(w.executor.runCapsule(lying.cid, { fast: true }))
    expect(err.code).toBe('KEY_RELEASE_INVALID')
    const tampered = await makeCapsule(w, {
      plaintext: enc.encode('y'.repeat(100)),
      runtime: { kind: 'data' },
      tamper: (b) => {
        const c = b.slice()
        c[c.length - 20] = (c[c.length - 20] ?? 0) ^ 1
        return c
      },
    })
    const err2 = await failure(w.executor.runCapsule(tampered.cid, { fast: true }))
    expect(err2.code).toBe('PAYLOAD_INTEGRITY')
    expect(await readdir(tmpRoot)).toEqual([])
  })

  it('an offline receiver gets the sealed result by CID when it connects', async () => {
    const seed = randomBytes(32)
    const keys = generateX25519KeyPair()
    const probe = await createDigicapNode({ privateKey: await privateKeyFromSeed(seed) })
    const peerId = probe.peerId
    await probe.stop()
    const capsule = await makeCapsule(w, {
      plaintext: jsBundle('digicap.output("for later")', ''),
      runtime: { kind: 'quickjs', entry: 'main.js' },
      receivers: [{ publicKey: keys.publicKey, peerId }],
    })
    const res = await w.executor.runCapsule(capsule.cid, { fast: true })
    expect(res.deliveries).toHaveLength(1)
    expect(res.deliveries[0]?.status).toBe('stored')
    expect(res.deliveries[0]?.resultCid).toMatch(/^b/)
    expect(w.executor.pendingDeliveries()).toBe(1)
    const node = await createDigicapNode({ privateKey: await privateKeyFromSeed(seed) })
    const receiver = createResultReceiver({ privateKey: keys.privateKey })({
      libp2p: node.libp2p,
      store: heliaCapsuleStore(node.helia),
      grants: resultGrants(w),
      capsules: resultCapsules(w),
    })
    await receiver.start()
    await node.libp2p.dial(w.exec.libp2p.getMultiaddrs()[0]!)
    const got = await receiver.next(15_000)
    expect(got.executor).toBe(w.executorWallet.address)
    expect(dec.decode(got.output)).toBe('for later')
    expect(got.via).toBe(res.deliveries[0]?.resultCid)
    await until(() => w.executor.pendingDeliveries() === 0)
    await receiver.stop()
    await node.stop()
  })

  it('the key-release handler answers unknown, replayed, malformed and oversized frames with typed errors and keeps serving', async () => {
    const stranger = await createDigicapNode()
    await stranger.libp2p.dial(w.exec.libp2p.getMultiaddrs()[0]!)
    const release = {
      grantId: randomBytes(32),
      capsuleId: randomBytes(32),
      hpke: randomBytes(80),
      fastPath: false,
    }
    const ask = () => request(stranger.libp2p, w.exec.libp2p.peerId, keyReleaseProtocol, release)
    expect((await ask()).status).toBe('unknown-grant')
    // replayed: still nothing pending for it
    expect((await ask()).status).toBe('unknown-grant')
    const raw = async (bytes: Uint8Array): Promise<string> => {
      const stream = await stranger.libp2p.dialProtocol(w.exec.libp2p.peerId, keyReleaseProtocol.id)
      stream.send(bytes)
      await stream.close()
      const chunks: Uint8Array[] = []
      try {
        for await (const c of stream) chunks.push(c instanceof Uint8Array ? c : c.subarray())
      } catch (err) {
        return (err as Error).name
      }
      const reply = decodeFrame(new Uint8Array(Buffer.concat(chunks)))
      return decodeErrorReply(reply).code
    }
    const valid = encodeKeyRelease(release)
    expect(await raw(encodeFrame(valid.slice(0, 10)))).toBe('format')
    expect(await raw(encodeFrame(randomBytes(50)))).toBe('format')
    // oversized: answered `too-large`, or the stream is reset once the prefix says too much
    expect(['too-large', 'StreamResetError']).toContain(
      await raw(encodeFrame(new Uint8Array(70_000), 100_000)),
    )
    // still serving
    expect((await ask()).status).toBe('unknown-grant')
    await stranger.stop()
  })

  it('refuses content that is not a capsule, a truncated capsule, and a runtime this host lacks — before any access request', async () => {
    const before = await w.anvil.provider.getBlockNumber()
    const junk = await failure(w.executor.runCapsule(await w.kgStore.put(randomBytes(5000))))
    expect(junk.code).toBe('CAPSULE_FETCH')
    const truncated = await makeCapsule(w, {
      plaintext: enc.encode('z'.repeat(3000)),
      runtime: { kind: 'data' },
      tamper: (b) => b.slice(0, b.length - 100),
    })
    const t = await failure(w.executor.runCapsule(truncated.cid, { fast: true }))
    expect(t.code).toBe('CAPSULE_FETCH')
    expect(t.shortMessage).toContain('shorter')
    const headerOnly = await makeCapsule(w, {
      plaintext: enc.encode('z'),
      runtime: { kind: 'data' },
      tamper: (b) => b.slice(0, 40),
    })
    expect((await failure(w.executor.runCapsule(headerOnly.cid))).code).toBe('CAPSULE_FETCH')
    const wasi = await makeCapsule(w, {
      plaintext: enc.encode('w'),
      runtime: { kind: 'wasi', entry: 'main.wasm' },
    })
    expect((await failure(w.executor.runCapsule(wasi.cid, { fast: true }))).code).toBe(
      'SANDBOX_RUNTIME_UNSUPPORTED',
    )
    const greedy = await makeCapsule(w, {
      plaintext: enc.encode('g'),
      runtime: { kind: 'data', memoryLimit: 8 * 1024 * 1024 * 1024 },
    })
    expect((await failure(w.executor.runCapsule(greedy.cid))).code).toBe(
      'SANDBOX_RUNTIME_UNSUPPORTED',
    )
    // only the capsule registrations were mined: no access request was made
    const after = await w.anvil.provider.getBlockNumber()
    expect(after - before).toBe(4)
    expect(await readdir(tmpRoot)).toEqual([])
  })
})
