import { createHash } from 'node:crypto'
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Readable, Writable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import { afterAll, describe, expect, it } from 'vitest'
import { generateVectors, parseVector, renderVector } from '../scripts/generate-vectors.ts'
import { DigicapError, openCapsule, openFile, openNodeStream, openStream } from '../src/index.ts'

const dir = new URL('./vectors/', import.meta.url).pathname
const files = readdirSync(dir).sort()
const tmp = mkdtempSync(join(tmpdir(), 'digicap-vectors-'))
afterAll(() => rmSync(tmp, { recursive: true, force: true }))

type Outcome = { ok: true; plaintext: Uint8Array } | { ok: false; code: string }

function codeOf(err: unknown): string {
  if (!(err instanceof DigicapError)) throw err
  return err.code
}

async function viaBuffer(capsule: Uint8Array, dataKey: Uint8Array): Promise<Outcome> {
  try {
    return { ok: true, plaintext: openCapsule(capsule, { dataKey }).plaintext }
  } catch (err) {
    return { ok: false, code: codeOf(err) }
  }
}

/** Feeds the capsule in 7-byte pieces so every parser boundary is crossed mid-piece. */
async function viaWebStream(capsule: Uint8Array, dataKey: Uint8Array): Promise<Outcome> {
  const pieces: Uint8Array[] = []
  for (let i = 0; i < capsule.length; i += 7) pieces.push(capsule.slice(i, i + 7))
  const out: Uint8Array[] = []
  try {
    await ReadableStream.from(pieces)
      .pipeThrough(openStream({ dataKey }))
      .pipeTo(new WritableStream({ write: (c) => void out.push(c) }))
    return { ok: true, plaintext: Buffer.concat(out) }
  } catch (err) {
    return { ok: false, code: codeOf(err) }
  }
}

async function viaNodeStream(capsule: Uint8Array, dataKey: Uint8Array): Promise<Outcome> {
  const out: Uint8Array[] = []
  try {
    await pipeline(
      Readable.from([capsule.subarray(0, 100), capsule.subarray(100)]),
      openNodeStream({ dataKey }),
      new Writable({
        write(c, _e, cb) {
          out.push(c)
          cb()
        },
      }),
    )
    return { ok: true, plaintext: Buffer.concat(out) }
  } catch (err) {
    return { ok: false, code: codeOf(err) }
  }
}

async function viaFile(name: string, capsule: Uint8Array, dataKey: Uint8Array): Promise<Outcome> {
  const input = join(tmp, `${name}.capsule`)
  const output = join(tmp, `${name}.out`)
  writeFileSync(input, capsule)
  try {
    await openFile({ input, output, dataKey })
    return { ok: true, plaintext: readFileSync(output) }
  } catch (err) {
    expect(readdirSync(tmp).filter((f) => f.includes(`${name}.out`))).toEqual([])
    return { ok: false, code: codeOf(err) }
  }
}

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
        await viaFile(file, capsule, dataKey),
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
          expect(o).toEqual({ ok: false, code: fields.error })
        }
      }
    })
  }
})

// SPEC §8 maps every rule to its vectors: each name (or `prefix-*`) there must match a file,
// and every file must be listed under some rule.
describe('SPEC §8 rule table', () => {
  const spec = readFileSync(new URL('../SPEC.md', import.meta.url), 'utf8')
  const section = spec.slice(spec.indexOf('## 8. Test vectors'), spec.indexOf('## 9.'))
  const rows = section.split('\n').filter((l) => l.startsWith('| ') && !l.startsWith('| rule'))
  const names = rows.flatMap((row) =>
    [...(row.split('|')[2] ?? '').matchAll(/`([a-z0-9*-]+)`/g)].map((m) => m[1] as string),
  )
  const matches = (name: string, file: string) =>
    name.endsWith('*') ? file.startsWith(name.slice(0, -1)) : file === name

  it('lists rules, each with vectors', () => {
    expect(rows.length).toBeGreaterThanOrEqual(8)
    expect(names.length).toBeGreaterThanOrEqual(30)
  })

  it('names only vectors that exist', () => {
    for (const name of names) {
      expect(
        files.some((f) => matches(name, f)),
        name,
      ).toBe(true)
    }
  })

  it('leaves no vector out', () => {
    for (const file of files) {
      expect(
        names.some((n) => matches(n, file)),
        file,
      ).toBe(true)
    }
  })
})
