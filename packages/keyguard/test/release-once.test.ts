/**
 * "Every grant is delivered exactly once", on both paths and across restarts, counted on real
 * parts (anvil, swtpm, libp2p on loopback): key-release messages the executor receives per grant
 * and TPM unwraps. A fast-path grant goes out inline once; the `AccessGranted` log of its audit
 * transaction must not make the chain path unwrap and push it again, even after the executor has
 * moved on and the keyguard restarts.
 */
import { rm } from 'node:fs/promises'
import { join } from 'node:path'
import { decodeHpkeSealed, hpkeOpen } from '@digicap/capsule-core'
import { getBytes, hexlify, randomBytes } from 'ethers'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  createKeyguard,
  type Keyguard,
  type KeyguardEvent,
  type Sealer,
  tpm2Sealer,
} from '../src/index.ts'
import { type KeyguardWorld, keyguardWorld } from './helpers/keyguard-world.ts'
import { chainClientFor, instrumented, quietLogger, requestAccess, until } from './helpers/world.ts'

let w: KeyguardWorld
let sealer: Sealer & { calls: () => number }
let capsuleId: string
const dataKey = randomBytes(32)
const events: KeyguardEvent[] = []
let running: Keyguard | undefined

beforeAll(async () => {
  // Each test starts (and restarts) its keyguards on the world's data dir.
  w = await keyguardWorld({
    swtpm: true,
    sealer: (swtpm) =>
      (sealer = instrumented(
        tpm2Sealer({ tcti: swtpm?.tcti as string, createIfMissing: true, logger: quietLogger }),
      )),
    dataKey,
    keyguard: false,
  })
  capsuleId = w.capsuleId
  w.defer('keyguard', () => running?.stop())
}, 60_000)

afterAll(() => w?.stop())

/** Starts a keyguard on the shared data dir; the watcher polls only when the test says so. */
async function startKeyguard(): Promise<Keyguard> {
  const keyguard = createKeyguard({
    dataDir: w.parts.dir,
    confirmations: 0,
    startBlock: w.chain.addresses.deployBlock,
    pollIntervalMs: 600_000,
    fastPath: { enabled: true },
  })({ ...w.parts, chain: chainClientFor(w.chain), libp2p: w.kgNode, logger: quietLogger })
  for (const type of ['served-inline', 'grant-refused', 'released', 'audit-recorded']) {
    keyguard.events.addEventListener(type, (e) => events.push((e as CustomEvent).detail))
  }
  await keyguard.start()
  running = keyguard
  return keyguard
}

async function restart(): Promise<Keyguard> {
  await running?.stop()
  running = undefined
  return startKeyguard()
}

/** Key-release messages the executor received for `grantId`. */
const pushes = (grantId: string): number =>
  w.exec.releases.filter((r) => hexlify(r.grantId) === grantId).length

/** A fast-path grant; the executor opens the inline key, then forgets its ephemeral key. */
async function fastPathGrant(): Promise<string> {
  const ephemeral = w.exec.newEphemeral()
  const res = await w.ask(w.signed({ fields: { ephemeralKey: getBytes(ephemeral) } }))
  if (res.status !== 'granted' || res.keyRelease === undefined) {
    throw new Error(`no inline key: ${JSON.stringify(res)}`)
  }
  const priv = w.exec.keys.get(ephemeral) as Uint8Array
  const key = await hpkeOpen(priv, decodeHpkeSealed(res.keyRelease.hpke), res.grantId)
  expect(hexlify(key)).toBe(hexlify(dataKey))
  // The executor has moved on: a second delivery could not even be opened.
  w.exec.keys.delete(ephemeral)
  const grantId = hexlify(res.grantId)
  await until(() => events.some((e) => e.type === 'audit-recorded' && e.grantId === grantId))
  return grantId
}

describe('every grant is released exactly once', () => {
  it('fast path: one inline key and one unwrap; its audit log is not released again, on both paths and across restarts', async () => {
    let keyguard = await startKeyguard()
    const fast = await fastPathGrant()
    expect(sealer.calls()).toBe(1)
    const onChain = await requestAccess(w.chain, capsuleId, w.exec.newEphemeral())

    // The watcher takes both AccessGranted logs: the fast path's audit and the chain grant.
    await keyguard.poll()
    await until(() => events.some((e) => e.type === 'released' && e.grantId === onChain))
    await keyguard.idle()
    expect(pushes(fast)).toBe(0)
    expect(pushes(onChain)).toBe(1)
    expect(sealer.calls()).toBe(2)
    expect(events).toContainEqual({ type: 'served-inline', grantId: fast })
    expect(await w.parts.journal.get(fast)).toMatchObject({ state: 'completed', via: 'fast-path' })
    expect((await w.parts.journal.get(onChain))?.state).toBe('completed')

    // Restart with the cursor gone: every log is scanned again; nothing is sent or unwrapped.
    await keyguard.stop()
    await rm(join(w.parts.dir, 'grant-cursor.json'))
    const seen = events.length
    keyguard = await startKeyguard()
    await keyguard.poll()
    await keyguard.idle()
    expect(events.slice(seen)).toEqual([
      { type: 'served-inline', grantId: fast },
      { type: 'grant-refused', grantId: onChain, reason: 'replayed' },
    ])
    expect(pushes(fast)).toBe(0)
    expect(pushes(onChain)).toBe(1)
    expect(sealer.calls()).toBe(2)
    expect(await w.parts.journal.pending()).toEqual([])
  }, 60_000)

  it('closes a fast-path grant an older version left begun in the journal, without sending it', async () => {
    if (running === undefined) await startKeyguard()
    const fast = await fastPathGrant()
    const unwraps = sealer.calls()
    // What the old code left: the audit log taken for a chain grant, begun, never acknowledged.
    const entry = await w.parts.journal.get(fast)
    await rm(join(w.parts.journal.dir, `${fast}.json`))
    await w.parts.journal.begin(fast, entry?.executorKey as Uint8Array, { capsuleId })
    expect((await w.parts.journal.pending()).map((e) => e.grantId)).toEqual([fast])
    const next = await restart()
    await next.idle()
    expect(await w.parts.journal.pending()).toEqual([])
    expect(pushes(fast)).toBe(0)
    expect(sealer.calls()).toBe(unwraps)
    expect(events).toContainEqual({ type: 'served-inline', grantId: fast })
    // A later restart has nothing left to re-send.
    await (await restart()).idle()
    expect(pushes(fast)).toBe(0)
    expect(sealer.calls()).toBe(unwraps)
  }, 60_000)
})
