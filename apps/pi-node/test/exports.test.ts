import { expect, it } from 'vitest'
import * as piNode from '../src/index.ts'

it('exports exactly this public surface (the node itself is @digicap/owner/node)', () => {
  expect(Object.keys(piNode).sort()).toMatchInlineSnapshot(`
    [
      "PI_NODE_CLI",
      "resolveDataDir",
      "runCli",
    ]
  `)
})

it('resolves the data folder from the flag, then the env, then the home folder', () => {
  expect(piNode.resolveDataDir('/a', { DIGICAP_DATA_DIR: '/b' })).toBe('/a')
  expect(piNode.resolveDataDir(undefined, { DIGICAP_DATA_DIR: '/b' })).toBe('/b')
  expect(piNode.resolveDataDir(undefined, {})).toMatch(/\.digicap\/pi-node$/)
})
