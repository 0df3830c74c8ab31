import { Writable } from 'node:stream'
import { DigicapError } from '@digicap/capsule-core'
import { describe, expect, it } from 'vitest'
import {
  ChainUnreachableError,
  ConfigError,
  EXIT,
  jsonReplacer,
  NotInitialisedError,
  printError,
  progressReporter,
  UsageError,
} from '../src/index.ts'

function capture(tty = false) {
  const out: string[] = []
  const err: string[] = []
  const sink = (into: string[]) =>
    new Writable({
      write(chunk, _enc, cb) {
        into.push(String(chunk))
        cb()
      },
    })
  const stderr = Object.assign(sink(err), { isTTY: tty })
  return { io: { stdout: sink(out), stderr }, out, err }
}

describe('printError', () => {
  it('prints error[CODE], details and hint, and exits 2 for a usage error', () => {
    const { io, err, out } = capture()
    const code = printError(
      io,
      new UsageError('unknown flag --colour', {
        details: { flag: '--colour' },
        hint: 'see --help',
      }),
      false,
    )
    expect(code).toBe(EXIT.usage)
    expect(err.join('')).toBe(
      'error[USAGE]: unknown flag --colour\n  details: flag=--colour\n  hint: see --help\n',
    )
    expect(out).toEqual([])
  })

  it('writes one JSON document on stdout under --json, and exits 1 for other typed errors', () => {
    const { io, out } = capture()
    const code = printError(
      io,
      new ChainUnreachableError('no answer', { details: { port: 1 } }),
      true,
    )
    expect(code).toBe(EXIT.failure)
    expect(JSON.parse(out.join(''))).toEqual({
      ok: false,
      error: { code: 'CHAIN_UNREACHABLE', message: 'no answer', details: { port: 1 } },
    })
  })

  it('marks an untyped error INTERNAL and says it is a bug', () => {
    const { io, err } = capture()
    expect(printError(io, new Error('boom'), false)).toBe(EXIT.failure)
    expect(err.join('')).toMatch(/^error\[INTERNAL\]: boom\n {2}hint: this is a bug/)
  })

  it('gives every shared error its stable code and name', () => {
    const cases: Array<[DigicapError, string, string]> = [
      [new UsageError('x'), 'USAGE', 'UsageError'],
      [new NotInitialisedError('x'), 'NOT_INITIALISED', 'NotInitialisedError'],
      [new ConfigError('x'), 'CONFIG', 'ConfigError'],
      [new ChainUnreachableError('x'), 'CHAIN_UNREACHABLE', 'ChainUnreachableError'],
    ]
    for (const [e, code, name] of cases) {
      expect(e).toBeInstanceOf(DigicapError)
      expect([e.code, e.name]).toEqual([code, name])
    }
  })
})

describe('jsonReplacer', () => {
  it('writes bigints as decimal strings and bytes as 0x-hex', () => {
    expect(JSON.stringify({ a: 10n ** 20n, b: new Uint8Array([0, 255]) }, jsonReplacer)).toBe(
      '{"a":"100000000000000000000","b":"0x00ff"}',
    )
  })
})

describe('progressReporter', () => {
  it('stays quiet for small totals and draws a line per phase for large ones (no TTY)', () => {
    const { io, err } = capture(false)
    const p = progressReporter(io)
    p.update('seal', 10, 100)
    expect(err).toEqual([])
    p.update('seal', 2 * 1024 * 1024, 2 * 1024 * 1024)
    p.finish()
    expect(err).toHaveLength(1)
    expect(err[0]).toMatch(/^seal {2}\[#{30}\] 100% 2\.0 MiB\/2\.0 MiB /)
  })
})
