import { Writable } from 'node:stream'
import { DigicapError } from '@digicap/capsule-core'
import { describe, expect, expectTypeOf, it } from 'vitest'
import {
  address,
  type CliSpec,
  ConfigError,
  commandsWith,
  EXIT,
  listFlag,
  positiveInteger,
  runCommandLine,
  switchFlag,
  UsageError,
  valueFlag,
  wholeNumber,
} from '../src/index.ts'

const globals = {
  'data-dir': { type: 'string', value: '<dir>', help: 'data folder', env: 'TOY_DATA_DIR' },
} as const
const command = commandsWith(globals)

/** What the last handler saw, for the assertions. */
let seen: Record<string, unknown> = {}

const seal = command({
  name: 'seal',
  summary: 'seal a file',
  description: 'Seals <file> under a policy.',
  args: [{ name: 'file', help: 'the file to seal' }],
  flags: {
    policy: { type: 'string', value: "'<expr>'", help: 'unlock rule' },
    runtime: { type: 'string', help: 'sandbox', default: 'data', choices: ['data', 'wasi'] },
    receiver: { type: 'string', multiple: true, value: '<hex>', help: 'receiver key' },
    'memory-mb': { type: 'string', help: 'memory limit', parse: positiveInteger },
    confirmations: {
      type: 'string',
      help: 'blocks to wait\nfor a grant',
      env: 'TOY_CONFIRMATIONS',
      parse: wholeNumber,
    },
    owner: { type: 'string', help: 'owner', parse: address, group: 'Chain' },
    force: { type: 'boolean', help: 'overwrite' },
  },
  epilog: 'Examples:\n  toy seal a.txt --policy maxRuns(1)',
  async run({ flags, args, result }) {
    // The declarations type the handler's values (checked by tsc over the tests).
    expectTypeOf(flags.runtime).toEqualTypeOf<'data' | 'wasi'>()
    expectTypeOf(flags['memory-mb']).toEqualTypeOf<number | undefined>()
    expectTypeOf(flags.receiver).toEqualTypeOf<string[] | undefined>()
    expectTypeOf(flags.force).toEqualTypeOf<boolean>()
    expectTypeOf(flags['data-dir']).toEqualTypeOf<string | undefined>()
    expectTypeOf(args.file).toEqualTypeOf<string>()
    seen = { ...flags, ...args }
    result({ file: args.file, bytes: 3n }, `sealed ${args.file}\n`)
  },
})

const serve = command({
  name: 'serve',
  summary: 'run the daemon',
  async run({ event, waitForStop }) {
    event({ event: 'started' }, 'started\n')
    event({ event: 'stopped', reason: await waitForStop() }, 'stopped\n')
  },
})

const fail = command({
  name: 'fail',
  summary: 'fails as asked',
  flags: { how: { type: 'string', help: 'code, usage, typed or bug', default: 'code' } },
  async run({ flags }) {
    if (flags.how === 'code') return EXIT.failure
    if (flags.how === 'usage') throw new UsageError('bad input', { hint: 'try again' })
    if (flags.how === 'typed') throw new ConfigError('bad file', { details: { file: 'x' } })
    throw new TypeError('oops')
  },
})

/** The same kinds of flags through the one-line declarers: the handler's types are the same. */
const short = command({
  name: 'short',
  summary: 'flags declared on one line each',
  flags: {
    runtime: valueFlag('<kind>', 'sandbox', { default: 'data', choices: ['data', 'wasi'] }),
    'memory-mb': valueFlag('<n>', 'memory limit', { parse: positiveInteger }),
    receiver: listFlag('<hex>', 'receiver key'),
    confirmations: valueFlag('<n>', 'blocks', { env: 'TOY_CONFIRMATIONS', parse: wholeNumber }),
    force: switchFlag('overwrite', { short: 'f' }),
  },
  async run({ flags }) {
    expectTypeOf(flags.runtime).toEqualTypeOf<'data' | 'wasi'>()
    expectTypeOf(flags['memory-mb']).toEqualTypeOf<number | undefined>()
    expectTypeOf(flags.receiver).toEqualTypeOf<string[] | undefined>()
    expectTypeOf(flags.confirmations).toEqualTypeOf<number | undefined>()
    expectTypeOf(flags.force).toEqualTypeOf<boolean>()
    seen = { ...flags }
  },
})

const cli: CliSpec = {
  name: 'toy',
  title: 'a program to test the shell',
  packageJson: new URL('../package.json', import.meta.url),
  globalFlags: globals,
  commands: [seal, serve, fail, short],
}

async function run(argv: string[], env: NodeJS.ProcessEnv = {}) {
  let stdout = ''
  let stderr = ''
  const sink = (write: (s: string) => void) =>
    new Writable({
      write(chunk, _enc, cb) {
        write(String(chunk))
        cb()
      },
    })
  seen = {}
  const code = await runCommandLine(cli, argv, {
    stdout: sink((s) => {
      stdout += s
    }),
    stderr: sink((s) => {
      stderr += s
    }),
    env,
    waitForStop: async () => 'SIGTERM',
  })
  return { code, stdout, stderr }
}

describe('help', () => {
  it('the program help lists every command with its summary and the global options; none is exit 2', async () => {
    const help = await run(['--help'])
    expect(help.code).toBe(EXIT.ok)
    expect(help.stdout).toMatch(/^toy — a program to test the shell\n\nUsage: toy <command>/)
    expect(help.stdout).toMatch(/^ {2}seal +seal a file$/m)
    expect(help.stdout).toMatch(/^ {2}serve +run the daemon$/m)
    expect(help.stdout).toMatch(/--data-dir <dir> +data folder \(env TOY_DATA_DIR\)/)
    expect(help.stdout).toContain('--json')
    expect(help.stdout).toContain('-V, --version')
    expect((await run(['-h'])).stdout).toBe(help.stdout)
    expect((await run(['help'])).stdout).toBe(help.stdout)
    const none = await run([])
    expect(none.code).toBe(EXIT.usage)
    expect(none.stdout).toBe(help.stdout)
  })

  it("a command's help is derived from its declaration", async () => {
    const h = await run(['seal', '--help'])
    expect(h.code).toBe(EXIT.ok)
    expect(h.stderr).toBe('')
    const text = h.stdout
    expect(text).toMatch(/^Usage: toy seal <file> \[options\]\n\nSeals <file> under a policy\.\n/)
    expect(text).toMatch(/^ {2}<file> +the file to seal$/m)
    expect(text).toMatch(/^ {2}--policy '<expr>' +unlock rule$/m)
    expect(text).toMatch(/--runtime data\|wasi +sandbox \(default data\)/)
    expect(text).toMatch(/--receiver <hex> +receiver key \(repeatable\)/)
    // A two-line help keeps its second line under the first.
    expect(text).toMatch(/blocks to wait\n {2,}for a grant \(env TOY_CONFIRMATIONS\)\n/)
    expect(text).toMatch(/\n\nChain:\n {2}--owner <value> +owner\n/)
    expect(text).toContain('Examples:\n  toy seal a.txt --policy maxRuns(1)')
    expect(text).toMatch(/Global options:\n {2}--data-dir <dir>/)
    expect((await run(['help', 'seal'])).stdout).toBe(text)
    // Help wins over a bad line, so the user sees what to type.
    expect((await run(['seal', '--polcy', 'x', '-h'])).stdout).toBe(text)
  })
})

describe('strict parsing: every bad command line is error[USAGE], exit 2, with a hint', () => {
  it.each([
    [['frobnicate'], 'Unknown command', 'Commands: seal, serve, fail, short (toy --help).'],
    [
      ['seal', 'a', '--polcy', 'x'],
      'Unknown flag --polcy',
      'Did you mean --policy? See toy seal --help.',
    ],
    [['seal', 'a', '--colour'], 'Unknown flag --colour', 'See toy seal --help.'],
    [
      ['seal', 'a', '--force=yes'],
      "Option '--force' does not take an argument",
      'See toy seal --help.',
    ],
    [
      ['seal', 'a', '--policy'],
      "Option '--policy <value>' argument missing",
      'See toy seal --help.',
    ],
    [['seal', 'a', '--policy', 'x', '--policy', 'y'], '--policy given twice', 'Give it once.'],
    [['serve', '--data-dir', 'a', '--data-dir', 'b'], '--data-dir given twice', 'Give it once.'],
    [['seal'], 'seal needs <file>', 'Usage: toy seal <file> [options]'],
    [['seal', 'a', 'b'], 'Unexpected argument', 'Usage: toy seal <file> [options]'],
    [['seal', 'a', '--runtime', 'oci'], '--runtime must be data or wasi', undefined],
    [['seal', 'a', '--memory-mb', '0'], '--memory-mb must be a positive integer', undefined],
    [['seal', 'a', '--memory-mb', '1e3'], '--memory-mb must be a positive integer', undefined],
    [['seal', 'a', '--confirmations', '-1'], 'argument is ambiguous', undefined],
    [['seal', 'a', '--confirmations', '1.5'], '--confirmations must be a whole number', undefined],
    [
      ['seal', 'a', '--owner', '0x12'],
      '--owner must be a 0x-prefixed 20-byte hex address',
      undefined,
    ],
    [['fail', '--how', 'usage'], 'bad input', 'try again'],
  ])('%j', async (argv, message, hint) => {
    const r = await run(argv)
    expect(r.code).toBe(EXIT.usage)
    expect(r.stdout).toBe('')
    expect(r.stderr).toContain(`error[USAGE]: `)
    expect(r.stderr.split('\n')[0]).toContain(message)
    if (hint) expect(r.stderr).toContain(`hint: ${hint}`)
    expect(seen).toEqual({})
  })

  it('a bad value from the environment names the variable', async () => {
    const r = await run(['seal', 'a'], { TOY_CONFIRMATIONS: 'soon' })
    expect(r.code).toBe(EXIT.usage)
    expect(r.stderr).toContain('error[USAGE]: --confirmations must be a whole number')
    expect(r.stderr).toContain('env=TOY_CONFIRMATIONS')
    expect(r.stderr).toContain('hint: Fix or unset TOY_CONFIRMATIONS.')
  })
})

describe('values reach the handler typed', () => {
  it('flags, defaults, env, repeatable flags, positionals, and `--` for a file named like a flag', async () => {
    const r = await run(
      ['seal', '--receiver', 'aa', '--memory-mb', '64', '--receiver=bb', '--', '--weird-name'],
      { TOY_CONFIRMATIONS: '3', TOY_DATA_DIR: '/tmp/toy' },
    )
    expect(r.code).toBe(EXIT.ok)
    expect(r.stdout).toBe('sealed --weird-name\n')
    expect(seen).toMatchObject({
      file: '--weird-name',
      receiver: ['aa', 'bb'],
      'memory-mb': 64,
      runtime: 'data',
      confirmations: 3,
      'data-dir': '/tmp/toy',
      force: false,
      json: false,
    })
    expect(seen.policy).toBeUndefined()
    // The flag beats the environment.
    await run(['seal', 'f', '--data-dir', '/x', '--confirmations', '0'], { TOY_CONFIRMATIONS: '3' })
    expect(seen).toMatchObject({ 'data-dir': '/x', confirmations: 0 })
  })

  it('one-line declarers parse as the long form', async () => {
    await run(['short', '-f', '--receiver', 'a', '--receiver', 'b', '--memory-mb', '8'], {
      TOY_CONFIRMATIONS: '2',
    })
    expect(seen).toMatchObject({
      force: true,
      receiver: ['a', 'b'],
      'memory-mb': 8,
      runtime: 'data',
      confirmations: 2,
    })
    const help = (await run(['short', '--help'])).stdout
    expect(help).toMatch(/-f, --force +overwrite/)
    expect(help).toMatch(/--runtime <kind> +sandbox \(default data\)/)
    expect((await run(['short', '--runtime', 'oci'])).stderr).toContain(
      '--runtime must be data or wasi',
    )
  })
})

describe('--json', () => {
  it('a result is one document with ok and the command; bigints as strings', async () => {
    const r = await run(['seal', 'a.txt', '--json'])
    expect(r.code).toBe(EXIT.ok)
    expect(JSON.parse(r.stdout)).toEqual({ ok: true, command: 'seal', file: 'a.txt', bytes: '3' })
  })

  it('a daemon prints one JSON line per event, and stops when told', async () => {
    const r = await run(['serve', '--json'])
    expect(
      r.stdout
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l)),
    ).toEqual([{ event: 'started' }, { event: 'stopped', reason: 'SIGTERM' }])
    expect((await run(['serve'])).stdout).toBe('started\nstopped\n')
  })

  it('an error is a document on stdout too, also for a bad command line', async () => {
    const bad = await run(['seal', '--json', '--bogus'])
    expect(bad.code).toBe(EXIT.usage)
    expect(JSON.parse(bad.stdout)).toMatchObject({ ok: false, error: { code: 'USAGE' } })
    const typed = await run(['fail', '--how', 'typed', '--json'])
    expect(typed.code).toBe(EXIT.failure)
    expect(JSON.parse(typed.stdout)).toEqual({
      ok: false,
      error: { code: 'CONFIG', message: 'bad file', details: { file: 'x' } },
    })
  })
})

describe('exit codes and errors', () => {
  it('a handler exit code, a typed error and a bug each exit 1, printed as error[CODE]', async () => {
    const code = await run(['fail'])
    expect(code).toEqual({ code: EXIT.failure, stdout: '', stderr: '' })
    const typed = await run(['fail', '--how', 'typed'])
    expect(typed.code).toBe(EXIT.failure)
    expect(typed.stderr).toBe('error[CONFIG]: bad file\n  details: file=x\n')
    const bug = await run(['fail', '--how', 'bug'])
    expect(bug.code).toBe(EXIT.failure)
    expect(bug.stderr).toMatch(/^error\[INTERNAL\]: oops\n {2}hint: this is a bug/)
    expect(new ConfigError('x')).toBeInstanceOf(DigicapError)
  })

  it('--version and -V print the name and version, or a document under --json', async () => {
    const v = await run(['--version'])
    expect(v).toEqual({
      code: 0,
      stdout: `toy 0.0.0 (node ${process.versions.node})\n`,
      stderr: '',
    })
    expect(JSON.parse((await run(['-V', '--json'])).stdout)).toEqual({
      name: 'toy',
      version: '0.0.0',
      node: process.versions.node,
    })
    // Only as the program's flag: after a command it is an unknown flag.
    expect((await run(['serve', '--version'])).code).toBe(EXIT.usage)
  })
})
