import { spawn } from 'node:child_process'
import { describe, expect, it } from 'vitest'
import { collectOutput } from '../src/index.ts'

const node = (script: string) =>
  spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'pipe'] })

describe('collectOutput', () => {
  it('keeps both streams whole, multi-byte characters split across chunks included', async () => {
    // 200,000 three-byte characters: the pipe hands them over in chunks that split some
    const out = collectOutput(
      node(
        "process.stdout.write('€'.repeat(200000)); process.stderr.write('ä'.repeat(70000)); process.exitCode = 3",
      ),
    )
    expect(await out.exited).toBe(3)
    expect(out.stdout()).toBe('€'.repeat(200_000))
    expect(out.stderr()).toBe('ä'.repeat(70_000))
  })

  it('resolves null for a child a signal ended, with what it wrote before', async () => {
    const child = node("process.stdout.write('ready\\n'); setInterval(() => {}, 1000)")
    const out = collectOutput(child)
    while (!out.stdout().includes('\n')) await new Promise((r) => setTimeout(r, 20))
    child.kill('SIGKILL')
    expect(await out.exited).toBeNull()
    expect(out.stdout()).toBe('ready\n')
  })

  it('rejects when the child cannot start', async () => {
    const out = collectOutput(spawn('/nonexistent/digicap-no-such-binary', []))
    await expect(out.exited).rejects.toMatchObject({ code: 'ENOENT' })
  })
})
