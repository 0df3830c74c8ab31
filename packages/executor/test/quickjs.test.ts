import { afterAll, describe, expect, it } from 'vitest'
import { quickjsSandbox, type SandboxJob } from '../src/index.ts'
import { dec, enc, runtime } from './helpers.ts'

// Every test runs against a sandbox that starts a fresh worker per run, and against one
// that keeps a prewarmed spare: the two must behave the same.
describe.each([
  ['fresh workers', false],
  ['prewarmed spare', true],
])('quickjs sandbox (%s)', (_label, prewarm) => {
  const sandbox = quickjsSandbox({
    outputLimitBytes: 1024 * 1024,
    maxLogLines: 5,
    maxLogLineLength: 50,
    prewarm,
  })
  afterAll(() => sandbox.close())
  const job = (src: string, over: Partial<SandboxJob> = {}): SandboxJob => ({
    runtime: runtime('quickjs'),
    code: enc(src),
    input: enc('a,b\n1,2\n'),
    ...over,
  })

  /** After every stopped program, a normal job in the same host must still work. */
  async function stillWorks(): Promise<void> {
    const r = await sandbox.run(job('digicap.output(digicap.inputText().toUpperCase())'))
    expect(dec(r.output)).toBe('A,B\n1,2\n')
  }

  async function expectCode(src: string, code: string, over: Partial<SandboxJob> = {}) {
    const err = await sandbox.run(job(src, over)).then(
      () => undefined,
      (e: unknown) => e,
    )
    expect(err).toMatchObject({ code })
    await stillWorks()
    return err as { details: Record<string, unknown> }
  }

  describe('quickjs sandbox: host API', () => {
    it('gives the program its input, output, log and args', async () => {
      const r = await sandbox.run(
        job(
          `const b = new Uint8Array(digicap.input());
         digicap.log('n', b.length, { ok: true });
         digicap.output(new Uint8Array([b[0], b[1]]));
         digicap.output(':' + digicap.args.join('+'))`,
          { args: ['x', 'y'] },
        ),
      )
      expect(dec(r.output)).toBe('a,:x+y')
      expect(r.logs).toEqual(['n 8 {"ok":true}'])
      expect(r.stats.wallMs).toBeGreaterThan(0)
    })

    it('waits for a promise completion value and settles async code', async () => {
      const r = await sandbox.run(job('(async () => { await null; digicap.output("later") })()'))
      expect(dec(r.output)).toBe('later')
    })

    it('many tiny outputs are fine (one growing buffer, not a chunk per call)', async () => {
      const r = await sandbox.run(
        job('for (let i = 0; i < 20000; i++) digicap.output("x")', {
          runtime: runtime('quickjs', { timeLimitMs: 10_000 }),
        }),
      )
      expect(r.output.byteLength).toBe(20_000)
    })

    it('strips control and bidi characters from log lines', async () => {
      const r = await sandbox.run(job('digicap.log("a\\u001b[2Jb\\nc\\u202ed")'))
      expect(r.logs).toEqual(['a [2Jb c d'])
    })

    it('bounds logs: line count and line length', async () => {
      const r = await sandbox.run(job('for (let i = 0; i < 9; i++) digicap.log("x".repeat(80))'))
      expect(r.logs).toHaveLength(5)
      expect(r.logs[0]).toBe(`${'x'.repeat(50)}…`)
      expect(r.stats.droppedLogLines).toBe(4)
    })

    it('a host object the program changes is not visible to the next run', async () => {
      await sandbox.run(
        job(`Object.prototype.polluted = 1; Array.prototype.push = null; globalThis.leak = 'x'`),
      )
      const r = await sandbox.run(
        job(
          `digicap.output([typeof ({}).polluted, typeof [].push, typeof globalThis.leak].join())`,
        ),
      )
      expect(dec(r.output)).toBe('undefined,function,undefined')
    })

    it('the digicap object cannot be replaced or extended', async () => {
      const r = await sandbox.run(
        job(`let msg = ''
           try { digicap = 1 } catch (e) { msg += e.name }
           try { digicap.output = null } catch (e) { msg += ',' + e.name }
           digicap.output(msg)`),
      )
      expect(dec(r.output)).toBe('TypeError,TypeError')
    })

    it('rejects an entry that is not UTF-8', async () => {
      await expect(
        sandbox.run(job('', { code: new Uint8Array([0xff, 0xfe]) })),
      ).rejects.toMatchObject({ code: 'SANDBOX_RUNTIME_UNSUPPORTED' })
    })

    it('rejects a job for another kind or with bad limits', async () => {
      await expect(sandbox.run({ ...job(''), runtime: runtime('wasi') })).rejects.toMatchObject({
        code: 'INVALID_ARGUMENT',
      })
      await expect(
        sandbox.run({ ...job(''), runtime: runtime('quickjs', { timeLimitMs: 0 }) }),
      ).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' })
    })

    it('runs with a memory limit up to what its wasm memory can hold, and refuses a larger one before starting (INVALID_ARGUMENT)', async () => {
      // the QuickJS build declares at most 32768 pages (2 GiB), 256 of them its base
      const max = (32768 - 256) * 65536
      const ok = await sandbox.run(
        job("digicap.output('ok')", { runtime: runtime('quickjs', { memoryLimitBytes: max }) }),
      )
      expect(dec(ok.output)).toBe('ok')
      for (const memoryLimitBytes of [max + 1, 3 * 1024 ** 3, 4 * 1024 ** 3]) {
        await expect(
          sandbox.run(
            job("digicap.output('ok')", { runtime: runtime('quickjs', { memoryLimitBytes }) }),
          ),
        ).rejects.toMatchObject({
          code: 'INVALID_ARGUMENT',
          details: { memoryLimitBytes, max, runtime: 'quickjs' },
        })
      }
      await stillWorks()
    })
  })

  describe('quickjs sandbox: isolation (each stop is typed; the host keeps working)', () => {
    it.each([
      ['require', `require('fs')`],
      ['process', `process.env.HOME`],
      ['fetch', `fetch('http://127.0.0.1/')`],
      ['setTimeout', `setTimeout(() => {}, 1)`],
      ['console', `console.log('x')`],
      ['Function-constructor escape', `Function('return process')().exit(1)`],
      ['constructor-chain escape', `digicap.output.constructor('return require')()('fs')`],
      ['dynamic import', `import('fs')`],
    ])('%s is absent: SANDBOX_CRASH with ReferenceError', async (_name, src) => {
      const err = await expectCode(src, 'SANDBOX_CRASH')
      expect(String(err.details.programMessage)).toMatch(/ReferenceError|could not load module/)
    })

    it('static import does not parse: SANDBOX_CRASH', async () => {
      const err = await expectCode(`import fs from 'fs'`, 'SANDBOX_CRASH')
      expect(String(err.details.programMessage)).toMatch(/SyntaxError/)
    })

    it('the program cannot reach the file system or env through std/os modules', async () => {
      const r = await sandbox.run(
        job(
          `digicap.output([typeof std, typeof os, typeof scriptArgs, typeof globalThis.Deno].join())`,
        ),
      )
      expect(dec(r.output)).toBe('undefined,undefined,undefined,undefined')
    })

    it('while(true) is stopped by the interrupt deadline: SANDBOX_TIMEOUT', async () => {
      // A host backstop far behind the interrupt deadline: on a loaded box the 250 ms default
      // grace could fire first, and this test is about the interrupt.
      const patient = quickjsSandbox({ prewarm, graceMs: 20_000 })
      try {
        const err = await patient
          .run(job('while (true) {}', { runtime: runtime('quickjs', { timeLimitMs: 300 }) }))
          .then(
            () => undefined,
            (e: unknown) => e as { code: string; details: Record<string, unknown> },
          )
        expect(err).toMatchObject({ code: 'SANDBOX_TIMEOUT' })
        expect(err?.details.enforcedBy).toBe('interrupt')
      } finally {
        await patient.close()
      }
    })

    it('catching the interrupt does not help: SANDBOX_TIMEOUT', async () => {
      await expectCode('for (;;) { try { while (true) {} } catch (e) {} }', 'SANDBOX_TIMEOUT', {
        runtime: runtime('quickjs', { timeLimitMs: 300 }),
      })
    })

    // The interrupt fires inside a promise job nothing awaits: QuickJS turns it into a
    // rejection nobody observes, and the script's own completion is fine. Still a timeout,
    // and the output written before it ('a', 'b') is never handed out as a result.
    it.each([
      ['an unawaited .then job', `Promise.resolve().then(() => { while (true) {} })`],
      ['an async function nobody awaits', `(async () => { await null; for (;;) {} })()`],
      // f returns nothing, so no promise adopts the next one: the queue never empties and memory
      // stays flat (a chain whose promises adopt each other grows until SANDBOX_MEMORY instead).
      ['a microtask chain that never ends', `const f = () => { Promise.resolve().then(f) }; f()`],
      [
        'a caught interrupt inside an unawaited job',
        `Promise.resolve().then(() => { for (;;) { try { while (true) {} } catch (e) {} } })`,
      ],
    ])('%s past the deadline: SANDBOX_TIMEOUT, not ok', async (_n, src) => {
      const err = await expectCode(
        `digicap.output('a'); ${src}; digicap.output('b')`,
        'SANDBOX_TIMEOUT',
        { runtime: runtime('quickjs', { timeLimitMs: 300 }) },
      )
      expect(err.details.enforcedBy).toBeDefined()
    })

    // QuickJS's heap limit does not count ArrayBuffer storage: typed arrays must still stop
    // at the memory limit (the linear memory is capped), quickly and as SANDBOX_MEMORY.
    it.each([
      ['1 MiB typed arrays kept', 'const a = []; for (;;) a.push(new Uint8Array(1 << 20))'],
      ['64 MiB typed arrays kept', 'const a = []; for (;;) a.push(new Float64Array(8 << 20))'],
      ['one huge ArrayBuffer', 'new ArrayBuffer(1024 * 1024 * 1024)'],
    ])('%s: SANDBOX_MEMORY', async (_n, src) => {
      const t0 = Date.now()
      await expectCode(src, 'SANDBOX_MEMORY', {
        runtime: runtime('quickjs', { timeLimitMs: 10_000 }),
      })
      expect(Date.now() - t0).toBeLessThan(8_000) // stopped by memory, not the deadline
    })

    it.each([
      ['doubling by concatenation', `let s = 'x'; for (;;) s = s + s`],
      ['doubling kept', `const k = []; let s = 'x'; for (;;) { s = s + s; k.push(s) }`],
      ['doubling with repeat', `for (let i = 1; ; i *= 2) 'x'.repeat(i)`],
      [
        'repeat then flatten',
        `let s = 'x'.repeat(1 << 20); for (;;) s = (s + s).split('').join('')`,
      ],
    ])('huge strings (%s): SANDBOX_MEMORY', async (_n, src) => {
      await expectCode(src, 'SANDBOX_MEMORY', {
        runtime: runtime('quickjs', { timeLimitMs: 10_000 }),
      })
    })

    it('a memory bomb is stopped: SANDBOX_MEMORY', async () => {
      const err = await expectCode(
        'let a = []; for (;;) a.push(new Array(1e6))',
        'SANDBOX_MEMORY',
        {
          runtime: runtime('quickjs', { timeLimitMs: 10_000 }),
        },
      )
      expect(err.details.limit).toBe('heap')
    })

    it('deep recursion is stopped: SANDBOX_MEMORY (stack)', async () => {
      const err = await expectCode('function f(n) { return f(n + 1) + 1 } f(0)', 'SANDBOX_MEMORY')
      expect(err.details.limit).toBe('stack')
    })

    it('huge output is stopped: SANDBOX_OUTPUT_LIMIT', async () => {
      await expectCode('for (;;) digicap.output("x".repeat(65536))', 'SANDBOX_OUTPUT_LIMIT')
    })

    it('swallowing the output-limit error does not help: SANDBOX_OUTPUT_LIMIT', async () => {
      await expectCode(
        'for (;;) { try { digicap.output("x".repeat(65536)) } catch (e) {} }',
        'SANDBOX_OUTPUT_LIMIT',
      )
    })

    it('a thrown error is SANDBOX_CRASH with the message sanitized and truncated', async () => {
      const err = await expectCode(
        `throw new Error('bad\\n\\u001b[31mred' + 'y'.repeat(1000))`,
        'SANDBOX_CRASH',
      )
      const msg = String(err.details.programMessage)
      expect(msg.startsWith('Error: bad  [31mred')).toBe(true)
      expect(msg.length).toBeLessThanOrEqual(301)
      // biome-ignore lint/suspicious/noControlCharactersInRegex: checking they are gone
      expect(msg).not.toMatch(/[\u0000-\u001f]/)
    })

    it('an aborted run is SANDBOX_ABORTED and the worker is gone', async () => {
      const ac = new AbortController()
      const p = sandbox.run(
        job('while (true) {}', { runtime: runtime('quickjs', { timeLimitMs: 5000 }) }),
        {
          signal: ac.signal,
        },
      )
      setTimeout(() => ac.abort(), 300)
      await expect(p).rejects.toMatchObject({ code: 'SANDBOX_ABORTED' })
      await stillWorks()
    })
  })
})
