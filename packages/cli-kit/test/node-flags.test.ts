/** The node apps' shared init pieces: the contract flags as parsed, and the words banner. */
import { describe, expect, it } from 'vitest'
import {
  commandsWith,
  contractFlags,
  contractsOf,
  mnemonicBanner,
  parseCommand,
} from '../src/index.ts'

const A = '0x1111111111111111111111111111111111111111'
const B = '0x2222222222222222222222222222222222222222'
const C = '0x3333333333333333333333333333333333333333'

describe('contractFlags + contractsOf', () => {
  const init = commandsWith({})({
    name: 'init',
    summary: 'test',
    flags: contractFlags('the contracts'),
    run: async () => {},
  })
  const cli = { name: 't', title: 't', packageJson: new URL(import.meta.url), commands: [init] }
  const flagsOf = (argv: string[]) =>
    parseCommand(cli, init, argv, {}).flags as Record<string, string | undefined>

  it('all three: the contracts; none: undefined', () => {
    const all = ['--capsule-registry', A, '--node-registry', B, '--access-controller', C]
    expect(contractsOf(flagsOf(all))).toEqual({
      capsuleRegistry: A,
      nodeRegistry: B,
      accessController: C,
    })
    expect(contractsOf(flagsOf([]))).toBeUndefined()
  })

  it('some only: USAGE naming the missing flags; a malformed address: USAGE from the parser', () => {
    expect(() => contractsOf(flagsOf(['--node-registry', B]))).toThrow(
      expect.objectContaining({
        code: 'USAGE',
        details: { missing: ['--capsule-registry', '--access-controller'] },
      }),
    )
    expect(() => flagsOf(['--capsule-registry', '0x12'])).toThrow(
      expect.objectContaining({ code: 'USAGE' }),
    )
  })
})

describe('mnemonicBanner', () => {
  it('numbers every word on its own line between the two warnings', () => {
    const words = Array.from({ length: 24 }, (_, i) => `word${String.fromCharCode(97 + i)}`)
    const text = mnemonicBanner(words.join(' '), 'Keep them safe.')
    expect([...text.matchAll(/^\s*(\d+)\. ([a-z]+)$/gm)].map((m) => m[2])).toEqual(words)
    expect(text).toMatch(/^\n=== RECOVERY MNEMONIC: .* ===\n/)
    expect(text.endsWith('\n=== Keep them safe. ===\n\n')).toBe(true)
  })
})
