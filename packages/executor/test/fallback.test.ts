import { mkdtemp, readdir, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { StageEvent } from '../src/index.ts'
import { makeCapsule, setupWorld, type World } from './helpers/world.ts'

let w: World
let tmpRoot: string

beforeAll(async () => {
  tmpRoot = await mkdtemp(join(tmpdir(), 'exec-fallback-'))
  // The keyguard runs without its fast-path server: the fast path is unreachable.
  w = await setupWorld({ tmpRoot, fastPath: false, executor: { fastTimeoutMs: 2000 } })
}, 60_000)

afterAll(async () => {
  await w?.stop()
  await rm(tmpRoot, { recursive: true, force: true })
})

describe('fast → chain fallback', () => {
  it('falls back to the chain path when the keyguard has no fast path', async () => {
    const capsule = await makeCapsule(w, {
      plaintext: new TextEncoder().encode('fallback'),
      runtime: { kind: 'data' },
    })
    const stages: StageEvent[] = []
    const res = await w.executor.runCapsule(capsule.cid, {
      fast: true,
      onStage: (e) => stages.push(e),
    })
    expect(res.path).toBe('chain')
    expect(new TextDecoder().decode(res.result)).toBe('data:8')
    const fallback = stages.find((s) => s.stage === 'grant' && s.detail?.fallback !== undefined)
    expect(fallback?.detail?.fallback).toBe('ACCESS_UNAVAILABLE')
    expect(await readdir(tmpRoot)).toEqual([])
  })

  it('without fallback the unreachable fast path is a typed error', async () => {
    const capsule = await makeCapsule(w, {
      plaintext: new TextEncoder().encode('no fallback'),
      runtime: { kind: 'data' },
    })
    const err = await w.executor
      .runCapsule(capsule.cid, { fast: true, fallbackToChain: false })
      .catch((e) => e)
    expect(err.code).toBe('ACCESS_UNAVAILABLE')
    expect(await readdir(tmpRoot)).toEqual([])
  })
})
