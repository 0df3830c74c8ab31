/**
 * Compiles a policy in a child process. solc is ~10 MB of emscripten whose heap stays in the
 * process that loaded it (about 100 MiB of RSS, for the rest of a `pi-node seal` that then
 * streams a capsule): in a child, that memory is returned the moment the compile ends.
 */
import { spawn } from 'node:child_process'
import { type CompiledPolicy, PolicyCompileError } from '@digicap/contracts/light'
import type { PolicyCompiler } from './types.ts'

/** The child: reads `{ source }` on stdin, writes `{ compiled }` or `{ error }` on stdout. */
const CHILD = `
const { compilePolicy } = await import(process.argv[1])
let input = ''
for await (const piece of process.stdin) input += piece
try {
  process.stdout.write(JSON.stringify({ compiled: compilePolicy(JSON.parse(input).source) }))
} catch (err) {
  const { shortMessage, message, details, hint } = err
  process.stdout.write(JSON.stringify({ error: { message: shortMessage ?? message, details, hint } }))
}
`

/**
 * A {@link PolicyCompiler} running `compilePolicy` of `@digicap/contracts/compiler` in a child
 * Node process.
 * @throws {PolicyCompileError} as `compilePolicy` does (solc missing, a bad source), or if the
 *   child cannot run.
 */
export function childProcessPolicyCompiler(): PolicyCompiler {
  const module = import.meta.resolve('@digicap/contracts/compiler')
  return (source) =>
    new Promise<CompiledPolicy>((resolve, reject) => {
      const child = spawn(
        process.execPath,
        ['--input-type=module', '--no-warnings', '-e', CHILD, module],
        { stdio: ['pipe', 'pipe', 'pipe'] },
      )
      let out = ''
      let err = ''
      child.stdout.setEncoding('utf8').on('data', (d) => {
        out += d
      })
      child.stderr.setEncoding('utf8').on('data', (d) => {
        err += d
      })
      const fail = (cause: unknown) =>
        reject(
          new PolicyCompileError('The policy compiler process failed', {
            cause,
            details: { stderr: err.slice(-500) },
          }),
        )
      child.on('error', fail)
      child.on('close', (code) => {
        let doc: {
          compiled?: CompiledPolicy
          error?: { message: string; details?: Record<string, unknown>; hint?: string }
        }
        try {
          doc = JSON.parse(out)
        } catch (cause) {
          return fail(cause ?? new Error(`exit ${code}`))
        }
        if (doc.compiled) return resolve(doc.compiled)
        const e = doc.error ?? { message: 'No output' }
        reject(
          new PolicyCompileError(e.message, {
            ...(e.details ? { details: e.details } : {}),
            ...(e.hint ? { hint: e.hint } : {}),
          }),
        )
      })
      child.stdin.end(JSON.stringify({ source }))
    })
}
