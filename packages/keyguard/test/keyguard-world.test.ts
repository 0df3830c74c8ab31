/**
 * The tests' keyguard world tears down what it started whatever failed: a set-up that throws
 * half-way, and a stop() where one part's stop throws, leave no anvil or swtpm process and no
 * temp dir behind (the other parts are still stopped; the failure is reported, not swallowed).
 */
import { existsSync } from 'node:fs'
import { describe, expect, it } from 'vitest'
import { type KeyguardWorld, keyguardWorld } from './helpers/keyguard-world.ts'

const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}

/** Every process and folder of `w` that must be gone after its tear-down. */
const leftovers = (w: KeyguardWorld) => ({
  anvil: alive(w.chain.anvil.pid),
  swtpm: w.swtpm !== undefined && alive(w.swtpm.pid),
  swtpmState: w.swtpm !== undefined && existsSync(w.swtpm.stateDir),
  dataDir: existsSync(w.parts.dir),
  keyguardNode: w.kgNode.status,
  executorNode: w.exec.node.status,
})

const gone = {
  anvil: false,
  swtpm: false,
  swtpmState: false,
  dataDir: false,
  keyguardNode: 'stopped',
  executorNode: 'stopped',
}

describe('keyguard world tear-down', () => {
  it('a set-up that fails half-way stops anvil, swtpm and the nodes and removes the dirs', async () => {
    let half: KeyguardWorld | undefined
    const err = await keyguardWorld({
      swtpm: true,
      prepare: async (w) => {
        half = w
        throw new Error('prepare failed')
      },
    }).catch((e: unknown) => e)
    expect((err as Error).message).toBe('prepare failed')
    const w = half as KeyguardWorld
    expect(w.swtpm).toBeDefined()
    expect(leftovers(w)).toEqual(gone)
  })

  it('stop() stops every part even when one stop throws, and raises that failure', async () => {
    const w = await keyguardWorld({ swtpm: true })
    expect(leftovers(w)).toMatchObject({ anvil: true, swtpm: true, dataDir: true })
    expect((await w.keyguard.status())?.running).toBe(true)
    // Registered last, stopped first: the parts after it must still be stopped.
    w.defer('a stuck part', () => {
      throw new Error('stuck')
    })
    const err = await w.stop().catch((e: unknown) => e)
    expect(err).toBeInstanceOf(AggregateError)
    expect((err as AggregateError).errors.map((e: Error) => (e.cause as Error).message)).toEqual([
      'stuck',
    ])
    expect(leftovers(w)).toEqual(gone)
  })
})
