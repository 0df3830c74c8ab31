import { describe, expect, it } from 'vitest'
import { createLogger, processLogger, processLogTarget, REDACTED } from '../src/logger.ts'

function sink(isTTY = false) {
  const lines: string[] = []
  return { lines, stream: { isTTY, write: (l: string) => lines.push(l) } }
}
const at = () => new Date('2026-12-04T10:11:12.345Z')

describe('createLogger', () => {
  it('writes one JSON line per event at or above its level', () => {
    const { lines, stream } = sink()
    const log = createLogger({ level: 'warn', stream, now: at })
    log.debug('d')
    log.info('i')
    log.warn('w', { grantId: '0x01' })
    log.error('e')
    expect(lines.map((l) => JSON.parse(l))).toEqual([
      { time: '2026-12-04T10:11:12.345Z', level: 'warn', message: 'w', grantId: '0x01' },
      { time: '2026-12-04T10:11:12.345Z', level: 'error', message: 'e' },
    ])
  })

  it('silent writes nothing; debug writes everything', () => {
    const quiet = sink()
    const all = sink()
    for (const [level, s] of [
      ['silent', quiet],
      ['debug', all],
    ] as const) {
      const log = createLogger({ level, stream: s.stream })
      log.debug('a')
      log.info('b')
      log.warn('c')
      log.error('d')
    }
    expect(quiet.lines).toEqual([])
    expect(all.lines).toHaveLength(4)
  })

  it('never writes secret fields, bytes or error internals (an attacker reading the journal)', () => {
    const { lines, stream } = sink()
    const words = 'legal winner thank year wave sausage worth useful legal winner thank yellow'
    const key = new Uint8Array(32).fill(7)
    const err = Object.assign(new Error('boom'), { code: 'X', privateKey: '0xabc', stack: 's' })
    createLogger({ stream })
      .child({ component: 'keyguard', mnemonic: words })
      .info('released', {
        dataKey: key,
        nested: { privateKey: '0xdeadbeef', seed: 'aa', ok: 1, raw: key },
        owner_words: words,
        token: 't0k',
        err,
        n: 3n,
      })
    const line = lines[0] ?? ''
    expect(line).not.toContain('legal winner')
    expect(line).not.toContain('deadbeef')
    expect(line).not.toContain('t0k')
    expect(line).not.toContain('0xabc')
    expect(line).not.toContain('070707')
    expect(JSON.parse(line)).toMatchObject({
      component: 'keyguard',
      mnemonic: REDACTED,
      dataKey: REDACTED,
      nested: { privateKey: REDACTED, seed: REDACTED, ok: 1, raw: '[32 bytes]' },
      owner_words: REDACTED,
      token: REDACTED,
      err: { name: 'Error', code: 'X', message: 'boom' },
      n: '3',
    })
  })

  it('pretty lines for a person: time, level, message, key=value, one line per event', () => {
    const { lines, stream } = sink(true)
    createLogger({ format: 'pretty', stream, now: at }).warn('two\nlines', {
      peer: '12D3',
      reason: 'not attested',
    })
    expect(lines).toEqual(['10:11:12.345 WARN  two\\nlines peer=12D3 reason="not attested"\n'])
  })

  it('a throwing stream does not throw into the daemon', () => {
    const log = createLogger({
      stream: {
        write: () => {
          throw new Error('EPIPE')
        },
      },
    })
    expect(() => log.error('x')).not.toThrow()
  })
})

describe('processLogTarget', () => {
  const out = sink(true)
  const err = sink(true)
  const io = (env: NodeJS.ProcessEnv, tty = true) => ({
    env,
    stdout: { ...out.stream, isTTY: tty },
    stderr: { ...err.stream, isTTY: tty },
  })

  it('under systemd (JOURNAL_STREAM or INVOCATION_ID): JSON lines on stdout', () => {
    for (const env of [{ JOURNAL_STREAM: '8:1234' }, { INVOCATION_ID: 'abc' }]) {
      const t = processLogTarget(io(env))
      expect(t).toMatchObject({ format: 'json', systemd: true })
      expect(t.stream.write).toBe(out.stream.write)
    }
  })

  it('at a terminal: readable lines on stderr; into a pipe: JSON lines on stderr', () => {
    expect(processLogTarget(io({}, true))).toMatchObject({ format: 'pretty', systemd: false })
    const piped = processLogTarget(io({}, false))
    expect(piped.format).toBe('json')
    expect(piped.stream.write).toBe(err.stream.write)
  })

  it('processLogger honours the level', () => {
    const s = sink(false)
    const log = processLogger({ env: {}, stdout: s.stream, stderr: s.stream }, 'error')
    log.warn('no')
    log.error('yes')
    expect(s.lines.map((l) => JSON.parse(l).message)).toEqual(['yes'])
  })
})
