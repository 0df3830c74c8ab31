import { describe, expect, it } from 'vitest'
import { progressLines, type StageEvent, stageLine } from '../src/index.ts'

describe('a run as progress lines', () => {
  it('one line when a stage starts and one with its time and facts when it ends', () => {
    expect(stageLine({ stage: 'cleanup', status: 'start' } as StageEvent)).toBe('  … clean-up\n')
    expect(
      stageLine({
        stage: 'grant',
        status: 'start',
        detail: { fallback: 'KEY_RELEASE_TIMEOUT' },
      } as StageEvent),
    ).toBe('  … grant (fast path failed: KEY_RELEASE_TIMEOUT; chain path)\n')
    expect(
      stageLine({
        stage: 'deliver',
        status: 'done',
        ms: 12.4,
        detail: { bytes: 18, path: 'fast', deliveries: [{}, {}] },
      } as StageEvent),
    ).toBe('  ✓ deliver      12 ms  18 bytes, fast path, 2 receiver(s)\n')
  })

  it('while the capsule is fetched, a line every period with what the fetch did; none after', async () => {
    const lines: string[] = []
    const p = progressLines((l) => lines.push(l), 20)
    p.onStage({ stage: 'fetch', status: 'start' } as StageEvent)
    p.onFetchProgress({ bytes: 512, peersAsked: 3, blocksReceived: 2 })
    await new Promise((r) => setTimeout(r, 120))
    p.onStage({ stage: 'fetch', status: 'done', ms: 120, detail: { bytes: 512 } } as StageEvent)
    const during = lines.length
    await new Promise((r) => setTimeout(r, 80))
    expect(lines.length).toBe(during)
    expect(lines[0]).toBe('  … fetch\n')
    expect(lines.slice(1, -1).length).toBeGreaterThan(0)
    for (const l of lines.slice(1, -1)) {
      expect(l).toMatch(/^ {4}fetch: \d+ s, asked 3 peer\(s\), 512 bytes received\n$/)
    }
    expect(lines.at(-1)).toMatch(/^ {2}✓ fetch +120 ms {2}512 bytes\n$/)
    p.stop()
  })
})
