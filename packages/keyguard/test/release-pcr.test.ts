/**
 * The release PCR's arithmetic and its refusals before any TPM is touched (the extend itself,
 * "already measured this boot" and "PCR used by something else" run on swtpm in pi-node's
 * `measured-start.test.ts`).
 */
import { createHash, randomBytes } from 'node:crypto'
import { describe, expect, it } from 'vitest'
import { expectedReleasePcr, measureRelease, releaseMeasurement } from '../src/index.ts'

describe('release PCR', () => {
  it('is SHA-256(zeros ‖ SHA-256(manifest bytes)) after one extend from reset', () => {
    const bytes = randomBytes(300)
    const digest = releaseMeasurement(bytes)
    expect(Buffer.from(digest)).toEqual(createHash('sha256').update(bytes).digest())
    const want = createHash('sha256').update(Buffer.alloc(32)).update(digest).digest()
    expect(Buffer.from(expectedReleasePcr(digest))).toEqual(want)
  })

  it('refuses a resettable, locality-gated or firmware PCR, and a TCTI it cannot read', async () => {
    const digest = releaseMeasurement(Buffer.from('m'))
    for (const pcr of [7, 16, 17, 23, 1.5]) {
      await expect(
        measureRelease({ tcti: 'swtpm:host=127.0.0.1,port=9', pcr, digest }),
      ).rejects.toMatchObject({ code: 'INVALID_ARGUMENT', details: { pcr } })
    }
    await expect(measureRelease({ tcti: 'mssim:host=127.0.0.1', digest })).rejects.toMatchObject({
      code: 'INVALID_ARGUMENT',
    })
  })
})
