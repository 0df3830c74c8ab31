/**
 * `readRunConfig`: what an image may ask of its run. Anything beyond an unprivileged offline
 * process (root or a named user, a zero gid, ports, volumes) is `OCI_PRIVILEGE`; a malformed
 * command, working dir or result label (a path out of /digicap/output) is `OCI_FORMAT`; all
 * before a container exists.
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createLayout, type ImageLayout, readRunConfig } from '../src/index.ts'

let dir: string
let layout: ImageLayout

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'oci-run-config-'))
  layout = await createLayout(dir)
})
afterAll(async () => {
  await rm(dir, { recursive: true, force: true })
})

async function configOf(config: Record<string, unknown>) {
  const blob = await layout.writeBytes(
    new TextEncoder().encode(JSON.stringify({ architecture: 'amd64', os: 'linux', config })),
  )
  return readRunConfig(layout, {
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.manifest.v1+json',
    config: { mediaType: 'application/vnd.oci.image.config.v1+json', ...blob },
    layers: [],
  } as never)
}

describe('readRunConfig', () => {
  it('an unprivileged command: uid 65534 by default, a numeric uid:gid, the result label', async () => {
    expect(await configOf({ Cmd: ['/bin/sh', '-c', 'true'] })).toMatchObject({
      args: ['/bin/sh', '-c', 'true'],
      uid: 65534,
      gid: 65534,
      cwd: '/',
      result: { kind: 'stdout' },
    })
    expect(
      await configOf({
        Entrypoint: ['/app/run'],
        Cmd: ['x'],
        User: '1000:1001',
        WorkingDir: '/app',
        Labels: { 'org.digicap.result': 'file:/digicap/output/out.json' },
      }),
    ).toMatchObject({
      args: ['/app/run', 'x'],
      uid: 1000,
      gid: 1001,
      cwd: '/app',
      result: { kind: 'file', name: 'out.json' },
    })
  })

  it.each([
    [{ User: '0' }, 'User'],
    [{ User: 'root' }, 'User'],
    [{ User: '0:0' }, 'User'],
    [{ User: '1000:0' }, 'User'],
    [{ User: 'nobody' }, 'User'],
    [{ ExposedPorts: { '80/tcp': {} } }, 'ExposedPorts'],
    [{ Volumes: { '/data': {} } }, 'Volumes'],
  ])('%j asks for a privilege: OCI_PRIVILEGE', async (ask, field) => {
    await expect(configOf({ Cmd: ['/bin/true'], ...ask })).rejects.toMatchObject({
      code: 'OCI_PRIVILEGE',
      details: { field },
    })
  })

  it.each([
    { Cmd: [] },
    { Cmd: '/bin/true' },
    { Cmd: ['/bin/true\0x'] },
    { Cmd: ['/bin/true'], WorkingDir: 'relative' },
    { Cmd: ['/bin/true'], Labels: { 'org.digicap.result': 'file:/digicap/output/../../etc/x' } },
    { Cmd: ['/bin/true'], Labels: { 'org.digicap.result': 'file:/etc/passwd' } },
    { Cmd: ['/bin/true'], Labels: { 'org.digicap.result': 'file:/digicap/output/..' } },
    { Cmd: ['/bin/true'], Labels: { 'org.digicap.result': 42 } },
  ])('%j is malformed: OCI_FORMAT', async (config) => {
    await expect(configOf(config)).rejects.toMatchObject({ code: 'OCI_FORMAT' })
  })
})
