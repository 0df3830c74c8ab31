/** Run workspaces under the OS temp dir for a test file, all disposed after its tests. */
import { tmpdir } from 'node:os'
import { afterAll } from 'vitest'
import { createRunWorkspace, type RunWorkspace } from '../../src/run/workspace.ts'

/**
 * Registers the clean-up (call at the top of the file) and returns the maker: each call gives a
 * new workspace and a temp dir `prefix`… in it.
 */
export function tempWorkspaces(prefix: string): () => Promise<{ ws: RunWorkspace; dir: string }> {
  const workspaces: RunWorkspace[] = []
  afterAll(async () => {
    for (const ws of workspaces) await ws.dispose()
  })
  return async () => {
    const ws = createRunWorkspace({ tmpRoot: tmpdir() })
    workspaces.push(ws)
    return { ws, dir: await ws.tempDir(prefix) }
  }
}
