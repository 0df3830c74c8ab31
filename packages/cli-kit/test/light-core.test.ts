/**
 * cli-kit names its errors through `@digicap/capsule-core/light` (ADR 0046: `--help` without
 * capsule-core's codecs and curves). Both entries as built (package exports → dist): every
 * name of the light entry is the very object the main entry exports, so an error made from
 * one is `instanceof` the other's class — what every command's error printer relies on.
 */
import * as core from '@digicap/capsule-core'
import * as light from '@digicap/capsule-core/light'
import { expect, it } from 'vitest'
import { UsageError } from '../src/index.ts'

it('the light entry exports the main entry’s own objects', () => {
  const names = Object.keys(light)
  expect(names).toEqual(expect.arrayContaining(['DigicapError', 'rpcChainId', 'toHex']))
  for (const name of names)
    expect((core as Record<string, unknown>)[name]).toBe((light as Record<string, unknown>)[name])
  const usage = new UsageError('bad flag')
  expect(usage).toBeInstanceOf(core.DigicapError)
  expect(new core.InvalidArgumentError('x')).toBeInstanceOf(light.DigicapError)
})
