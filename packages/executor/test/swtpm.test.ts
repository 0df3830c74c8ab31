/** One end-to-end run where the keyguard's data key is sealed to a (software) TPM: swtpm. */
import { tpm2Sealer } from '@digicap/keyguard'
import { type Swtpm, startSwtpm } from '@digicap/keyguard/testing'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { jsBundle, makeCapsule, setupWorld, type World } from './helpers/world.ts'

let tpm: Swtpm
let w: World

beforeAll(async () => {
  tpm = await startSwtpm()
  w = await setupWorld({
    sealer: tpm2Sealer({ tcti: tpm.tcti, handle: 0x81000030, createIfMissing: true }),
  })
}, 90_000)

afterAll(async () => {
  await w?.stop()
  await tpm?.stop()
})

describe('executor with a TPM-backed keyguard (swtpm)', () => {
  it('chain path and fast path both open a capsule whose key the TPM unwraps', async () => {
    const capsule = await makeCapsule(w, {
      plaintext: jsBundle('digicap.output(String(digicap.inputText().length))', 'abcdef'),
      runtime: { kind: 'quickjs', entry: 'main.js' },
    })
    const chain = await w.executor.runCapsule(capsule.cid)
    expect(chain.path).toBe('chain')
    expect(new TextDecoder().decode(chain.result)).toBe('6')
    const fast = await w.executor.runCapsule(capsule.cid, { fast: true })
    expect(fast.path).toBe('fast')
    expect(new TextDecoder().decode(fast.result)).toBe('6')
    expect(fast.grantId).not.toBe(chain.grantId)
  }, 60_000)
})
