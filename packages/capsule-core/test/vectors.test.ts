import { createHash } from 'node:crypto'
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { generateVectors, parseVector, renderVector } from '../scripts/generate-vectors.ts'
import { viaBuffer, viaFile, viaNodeStream, viaWebStream } from './readers.ts'
import { describeSpecTable } from './spec-table.ts'

const dir = new URL('./vectors/', import.meta.url).pathname
const files = readdirSync(dir).sort()
const tmp = mkdtempSync(join(tmpdir(), 'digicap-vectors-'))
afterAll(() => rmSync(tmp, { recursive: true, force: true }))

describe('test vectors', () => {
  it('has at least 30 cases, covering success and failure', () => {
    expect(files.length).toBeGreaterThanOrEqual(30)
    const kinds = files.map((f) => parseVector(readFileSync(join(dir, f))).fields.expect)
    expect(kinds).toContain('success')
    expect(kinds).toContain('failure')
  })

  it('re-running the generator reproduces the committed files byte for byte', () => {
    const generated = generateVectors()
    expect(generated.map((v) => v.name).sort()).toEqual(files)
    for (const v of generated) {
      expect(Buffer.from(renderVector(v)).equals(readFileSync(join(dir, v.name))), v.name).toBe(
        true,
      )
    }
  })

  for (const file of files) {
    it(file, async () => {
      const { fields, capsule } = parseVector(readFileSync(join(dir, file)))
      const dataKey = Buffer.from(fields['data key'] as string, 'hex')
      const outcomes = [
        await viaBuffer(capsule, dataKey),
        await viaWebStream(capsule, dataKey),
        await viaNodeStream(capsule, dataKey),
        await viaFile(tmp, file, capsule, dataKey),
      ]
      for (const o of outcomes) {
        if (fields.expect === 'success') {
          expect(o.ok).toBe(true)
          if (!o.ok) continue
          expect(o.plaintext.length).toBe(Number(fields['plaintext size']))
          expect(createHash('sha256').update(o.plaintext).digest('hex')).toBe(
            fields['plaintext sha256'],
          )
        } else {
          expect(o).toMatchObject({ ok: false, code: fields.error })
        }
      }
    })
  }
})

describeSpecTable({ heading: '## 8. Test vectors', files, minRows: 8, minNames: 30 })
