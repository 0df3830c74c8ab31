/**
 * `pi-node seal --code <folder>`: every entry of the folder is a file of the bundle, or the
 * seal is refused. A symbolic link was silently left out (the capsule's code then cannot run);
 * followed, it could seal a file from outside the folder. Now it is `INPUT_FILE` naming it.
 * Real folders, links and FIFOs.
 */
import { execFileSync } from 'node:child_process'
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { readCodeFiles } from '../src/index.ts'

const tmp = mkdtempSync(join(tmpdir(), 'digicap-code-folder-'))
afterAll(() => rmSync(tmp, { recursive: true, force: true }))

function folder(name: string): string {
  const app = join(tmp, name)
  mkdirSync(join(app, 'lib'), { recursive: true })
  writeFileSync(join(app, 'main.js'), 'import { x } from "./lib/x.js"')
  writeFileSync(join(app, 'lib', 'x.js'), 'export const x = 1')
  return app
}

describe.skipIf(process.platform === 'win32')('readCodeFiles on a folder', () => {
  it('reads every file under its relative path', async () => {
    const files = await readCodeFiles(folder('plain'), 'main.js')
    expect(Object.keys(files).sort()).toEqual(['lib/x.js', 'main.js'])
  })

  it('refuses a symbolic link to a file outside the folder with INPUT_FILE naming it', async () => {
    const app = folder('link-out')
    writeFileSync(join(tmp, 'secret.js'), 'outside')
    symlinkSync(join(tmp, 'secret.js'), join(app, 'lib', 'secret.js'))
    await expect(readCodeFiles(app, 'main.js')).rejects.toMatchObject({
      code: 'INPUT_FILE',
      details: { file: 'lib/secret.js', kind: 'symlink' },
    })
  })

  it('refuses a symbolic link to a folder, and a FIFO', async () => {
    const linked = folder('link-dir')
    symlinkSync(join(linked, 'lib'), join(linked, 'lib2'))
    await expect(readCodeFiles(linked, 'main.js')).rejects.toMatchObject({
      code: 'INPUT_FILE',
      details: { file: 'lib2', kind: 'symlink' },
    })
    const withFifo = folder('fifo')
    execFileSync('mkfifo', [join(withFifo, 'pipe')])
    await expect(readCodeFiles(withFifo, 'main.js')).rejects.toMatchObject({
      code: 'INPUT_FILE',
      details: { file: 'pipe', kind: 'special' },
    })
  })
})
