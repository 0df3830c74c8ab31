/**
 * RPC credentials never reach an error's message or details (review 120, after review 119).
 *
 * Review 119 (attacker): hosted RPC URLs carry their credentials (`https://…/v3/<api key>`,
 * `http://user:password@host`). The SDK's chain errors put the whole `rpcUrl` in `details`,
 * which `DigicapError` prints into `message`: every log line or crash report of a failed call
 * carries the credential to whoever reads the logs. Real `openReceiver`, an RPC that does not
 * answer (a closed port).
 */
import { expect, it } from 'vitest'
import { generateReceiverKey, openReceiver } from '../src/index.ts'

it('a failed chain read does not print the RPC URL’s credentials', async () => {
  const err = await openReceiver({
    network: 'local',
    rpcUrl: 'http://digicap:pa55word@127.0.0.1:1/v3/API-KEY-0123456789',
    key: generateReceiverKey().privateKey,
  }).catch((e: unknown) => e as Error)
  expect(err).toMatchObject({ code: 'CHAIN_READ' })
  const printed = `${String(err)} ${(err as Error).stack} ${JSON.stringify(err)}`
  expect(printed).not.toContain('pa55word')
  expect(printed).not.toContain('API-KEY-0123456789')
})

it('nor does one of the quorum’s RPCs, or a network whose URL is malformed', async () => {
  const err = await openReceiver({
    network: 'local',
    rpcUrls: ['https://digicap:pa55word@127.0.0.1:1/v3/API-KEY-0123456789'],
    key: generateReceiverKey().privateKey,
  }).catch((e: unknown) => e as Error)
  expect(err).toMatchObject({ code: 'CHAIN_READ' })
  const bad = await openReceiver({
    network: 'local',
    rpcUrl: 'http//digicap:pa55word@host/API-KEY-0123456789',
    key: generateReceiverKey().privateKey,
  }).catch((e: unknown) => e as Error)
  expect(bad).toMatchObject({ code: 'NETWORK_INVALID' })
  for (const e of [err, bad]) {
    const printed = `${String(e)} ${(e as Error).stack} ${JSON.stringify(e)}`
    expect(printed).not.toContain('pa55word')
    expect(printed).not.toContain('API-KEY-0123456789')
  }
})
