/** The keyguard's lines of `pi-node status` and `serve`: a halted fast path (ADR 0084) and a lagging finality are shown. */
import type { KeyguardStatus } from '@digicap/keyguard'
import { describe, expect, it } from 'vitest'
import { keyguardStatusText } from '../../src/node/light.ts'

const base: KeyguardStatus = {
  running: true,
  sealer: { kind: 'software', keyId: 'k', hardwareBacked: false } as KeyguardStatus['sealer'],
  chain: {
    chainId: '1',
    accessController: '0x0000000000000000000000000000000000000001',
    head: 100,
    cursor: null,
    confirmations: 3,
    finality: 'finalized',
  },
  releases: { pending: 0, inFlight: 0 },
  fastPath: { enabled: true, auditPending: 1 },
  counters: {},
}

describe('keyguardLines', () => {
  it('says nothing extra while the fast path serves and the finality keeps up', () => {
    const text = keyguardStatusText(base)
    expect(text).not.toMatch(/HALTED|LAGGING/)
  })

  it('shows a halted fast path with its hint, and a lagging finality', () => {
    const text = keyguardStatusText({
      ...base,
      chain: {
        ...base.chain,
        finalityLag: {
          lagging: true,
          finality: 'finalized',
          confirmations: 3,
          lagSeconds: 768,
          grantWindowSeconds: 600,
          limitSeconds: 300,
          head: 100,
          confirmed: 36,
        },
      },
      fastPath: {
        ...base.fastPath,
        halted: {
          reason: 'operator-not-approved',
          error: 'NotKeyguard',
          since: '2026-12-06T00:00:00.000Z',
          hint: 'approve it (CapsuleRegistry.setOperator)',
        },
      },
    })
    expect(text).toContain('HALTED (NotKeyguard): approve it (CapsuleRegistry.setOperator)')
    expect(text).toContain('LAGGING 768 s of 600 s grant window')
  })
})
