/**
 * The one-shot bundle (ADR 0052) inlines the executor's dependencies, and a dependency that finds
 * a file beside its own module (QuickJS's wasm, libsecp256k1's `secp256k1.wasm`: ADR 0098) breaks
 * when inlined: the file is not beside the bundle. Such a chunk fails only when it is first
 * imported, which a plain run may never do (the committee's chunk loads on attested paths). So
 * every chunk is imported here, in a child process, from the built `dist/`.
 */
import { execFile } from 'node:child_process'
import { readdirSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { describe, expect, it } from 'vitest'

const dist = fileURLToPath(new URL('../dist/', import.meta.url))

describe('the one-shot bundle', () => {
  it('every chunk imports from dist/ (nothing bundled away from the files it reads)', async () => {
    const chunks = readdirSync(dist).filter((f) => /^one-shot.*\.js$/.test(f))
    expect(chunks.length).toBeGreaterThan(10)
    const script = `
      const failed = []
      for (const f of ${JSON.stringify(chunks)}) {
        try { await import(${JSON.stringify(dist)} + f) } catch (err) { failed.push(f + ': ' + err.message) }
      }
      console.log(JSON.stringify(failed))
      process.exit(0)`
    const out = await new Promise<string>((resolve, reject) =>
      execFile(process.execPath, ['--input-type=module', '-e', script], (err, stdout) =>
        err ? reject(err) : resolve(stdout),
      ),
    )
    expect(JSON.parse(out)).toEqual([])
  })
})
