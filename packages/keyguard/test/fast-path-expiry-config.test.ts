/**
 * The fast path's expiry options leave every released key an auditable window (ADR 0072,
 * amended), on anvil + libp2p. A request is served only when it expires between
 * `minAuditMarginSeconds` (60) and `maxExpirySeconds` ahead (and within the contract's
 * `auditWindow`). On the previous code a keyguard built with `maxExpirySeconds` below the margin
 * started, and refused every fast-path request `too-soon` or `too-far` with nothing telling the
 * operator why; now it is not built (`FAST_PATH_CONFIG`, with the least value that works). The
 * margin is never lowered to fit: the least accepted `maxExpirySeconds` (2 × the margin) serves a
 * request whose audit lands, on anvil mining a block every 2 s. A chain deployed with an
 * `auditWindow` no longer than the margin refuses every request `no-audit-window` (previously
 * `too-soon` / `too-far`) and warns the operator once.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  createKeyguard,
  FastPathConfigError,
  fastPathServer,
  type KeyguardInit,
} from '../src/index.ts'
import { type KeyguardWorld, keyguardWorld } from './helpers/keyguard-world.ts'
import { chainClientFor, until } from './helpers/world.ts'

let w: KeyguardWorld
let short: KeyguardWorld
const warnings: { message: string; fields: unknown }[] = []

beforeAll(async () => {
  ;[w, short] = await Promise.all([
    keyguardWorld({
      keyguard: { pollIntervalMs: 200, fastPath: { enabled: true, maxExpirySeconds: 120 } },
      events: ['fast-path-granted', 'audit-recorded', 'audit-alert'],
    }),
    keyguardWorld({
      auditWindow: 45,
      keyguard: { pollIntervalMs: 200, fastPath: { enabled: true } },
      logger: { info: () => {}, warn: (message, fields) => warnings.push({ message, fields }) },
      events: ['fast-path-granted'],
    }),
  ])
  await w.chain.anvil.provider.send('evm_setAutomine', [false])
  await w.chain.anvil.provider.send('evm_setIntervalMining', [2])
}, 90_000)

afterAll(() => Promise.all([w?.stop(), short?.stop()]))

const answer = (res: Awaited<ReturnType<KeyguardWorld['ask']>>) =>
  res.status === 'refused' ? `${res.reasonCode}:${res.reason ?? ''}` : res.status

/** What building a keyguard with `fastPath` options throws, if anything. */
function build(fastPath: NonNullable<KeyguardInit['fastPath']>): unknown {
  try {
    createKeyguard({ dataDir: w.parts.dir, confirmations: 0, fastPath })({
      sealer: w.parts.sealer,
      keyStore: w.parts.keyStore,
      journal: w.parts.journal,
      chain: chainClientFor(w.chain),
      libp2p: w.kgNode,
    })
    return undefined
  } catch (err) {
    return err
  }
}

describe('fast path: expiry options that leave no audit window are refused when built', () => {
  it('refuses maxExpirySeconds below twice the margin, typed, with the least value that works', () => {
    for (const maxExpirySeconds of [30, 60, 119]) {
      const err = build({ enabled: true, maxExpirySeconds })
      expect(err, String(maxExpirySeconds)).toBeInstanceOf(FastPathConfigError)
      expect(err).toMatchObject({
        code: 'FAST_PATH_CONFIG',
        details: { maxExpirySeconds, minAuditMarginSeconds: 60, least: 120 },
      })
      expect((err as FastPathConfigError).hint).toMatch(/maxExpirySeconds to 120 or more/)
    }
    // A larger margin needs a larger window: 300 s of margin, 500 s of expiry.
    expect(
      build({ enabled: true, maxExpirySeconds: 500, minAuditMarginSeconds: 300 }),
    ).toMatchObject({ code: 'FAST_PATH_CONFIG', details: { least: 600 } })
    // Not whole seconds.
    for (const bad of [{ maxExpirySeconds: 120.5 }, { minAuditMarginSeconds: -1 }]) {
      expect(build({ enabled: true, ...bad }), JSON.stringify(bad)).toMatchObject({
        code: 'FAST_PATH_CONFIG',
      })
    }
    expect(() => fastPathServer({ dataDir: w.parts.dir, maxExpirySeconds: 30 })).toThrow(
      FastPathConfigError,
    )
    // The least accepted, the default, and the fast path off whatever its options.
    expect(build({ enabled: true, maxExpirySeconds: 120 })).toBeUndefined()
    expect(build({ enabled: true })).toBeUndefined()
    expect(build({ enabled: false, maxExpirySeconds: 30 })).toBeUndefined()
  })

  it('the least accepted maxExpirySeconds serves with room for the audit, which lands', async () => {
    expect(answer(await w.ask(w.signed({ expiresIn: 50 })))).toBe('expired:too-soon')
    expect(answer(await w.ask(w.signed({ expiresIn: 150 })))).toBe('expired:too-far')
    expect(answer(await w.ask(w.signed({ expiresIn: 110 })))).toBe('granted')
    await until(() => w.events.some((e) => e.type === 'audit-recorded'), 20_000)
    expect(w.events.filter((e) => e.type === 'audit-alert')).toEqual([])
  }, 60_000)

  it('a chain whose auditWindow is within the margin: every request refused no-audit-window, one warning', async () => {
    expect(await short.chain.c.accessController.auditWindow()).toBe(45n)
    for (const expiresIn of [20, 40, 100]) {
      expect(answer(await short.ask(short.signed({ expiresIn }))), String(expiresIn)).toBe(
        'expired:no-audit-window',
      )
    }
    expect(short.events).toEqual([])
    const warned = warnings.filter((x) => x.message.includes('audit window'))
    expect(warned).toHaveLength(1)
    expect(warned[0]?.fields).toMatchObject({ auditWindowSeconds: 45, minAuditMarginSeconds: 60 })
  }, 60_000)
})
