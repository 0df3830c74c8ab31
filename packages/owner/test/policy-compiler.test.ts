/**
 * The policy compiled in a child process is the in-process compile, its errors stay typed, and
 * the cache answers only for the source it was filled with.
 */
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { generatePolicySource, PolicyCompileError, parsePolicyExpression } from '@digicap/contracts'
import { compilePolicy } from '@digicap/contracts/compiler'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { childProcessPolicyCompiler } from '../src/policy/child-compiler.ts'
import { cachedPolicyCompiler } from '../src/policy/policy-cache.ts'

describe('policy compilers', () => {
  let dir: string
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'owner-policy-'))
  })
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true })
  })

  it('the child compiles what solc compiles in process; a broken source is a PolicyCompileError', async () => {
    const source = generatePolicySource(parsePolicyExpression('maxRuns(3)'))
    const child = childProcessPolicyCompiler()
    const [fromChild, broken] = await Promise.all([
      child(source),
      child('contract {').catch((e) => e),
    ])
    expect(fromChild).toEqual(JSON.parse(JSON.stringify(compilePolicy(source))))
    expect(broken).toBeInstanceOf(PolicyCompileError)
  }, 120_000)

  it('the cache compiles a source once and never answers for another source', async () => {
    const calls: string[] = []
    const fake = async (source: string) => {
      calls.push(source)
      return { sources: { 'DigicapPolicy.sol': source }, solcVersion: compiledVersion } as never
    }
    const compiledVersion = (await import('@digicap/contracts/compiler')).SOLC_VERSION
    const cached = cachedPolicyCompiler(join(dir, 'cache'), fake)
    await cached('A')
    await cached('A')
    expect(calls).toEqual(['A'])
    // an entry edited to name another source is not trusted: compiled again
    const [file] = await readdir(join(dir, 'cache'))
    const path = join(dir, 'cache', file as string)
    const entry = JSON.parse(await readFile(path, 'utf8'))
    await writeFile(path, JSON.stringify({ ...entry, sources: { 'DigicapPolicy.sol': 'B' } }))
    await cached('A')
    expect(calls).toEqual(['A', 'A'])
    await writeFile(path, '{not json')
    await cached('A')
    expect(calls).toEqual(['A', 'A', 'A'])
  })
})
