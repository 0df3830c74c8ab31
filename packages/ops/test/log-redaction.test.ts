/**
 * The daemons' logger against what slipped through: secret field names outside the first
 * pattern, URLs with credentials or API keys, byte views that are not Uint8Array, a key in a
 * message or an error message, and terminal escape sequences in readable lines. Real logger,
 * lines captured as written.
 */
import { describe, expect, it } from 'vitest'
import { createLogger, isSecretField, REDACTED } from '../src/index.ts'

const PK = '4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318'

function capture(format: 'json' | 'pretty' = 'json') {
  const lines: string[] = []
  const log = createLogger({ format, stream: { write: (l: string) => lines.push(l) } })
  return { log, text: () => lines.join('') }
}

describe('log redaction', () => {
  it('redacts secret-bearing field names: privKey, sk, signingKey, keys, apiKey, auth, credentials, pin', () => {
    const { log, text } = capture()
    log.info('x', {
      privKey: `0x${PK}`,
      sk: 'plain-sk',
      ownerSk: 'plain-owner-sk',
      signingKey: 'plain-signing',
      sessionKey: 'plain-session',
      keys: ['plain-k1'],
      apiKey: 'sk-live-123',
      api_key: 'sk-live-456',
      auth: 'tpm-owner-hierarchy-password',
      ownerAuth: 'tpm-owner-auth',
      credentials: 'u:p',
      pin: '1234',
    })
    const o = JSON.parse(text())
    for (const k of Object.keys(o).filter((k) => !['time', 'level', 'message'].includes(k)))
      expect(o[k], k).toBe(REDACTED)
    for (const s of ['plain-', 'sk-live', 'tpm-owner', 'u:p', '1234', PK])
      expect(text()).not.toContain(s)
  })

  it('keeps public names readable', () => {
    for (const name of [
      'publicKey',
      'recoveryPublicKey',
      'keyId',
      'grantId',
      'capsuleId',
      'disk',
      'task',
      'author',
      'peers',
      'monkeys'.slice(0, 3),
      // public keys by what they name: the run's and the receiver's X25519 keys, the release
      // journal's executor key, the TPM's attestation key
      'ephemeralKey',
      'receiverKey',
      'executorKey',
      'attestationKey',
    ])
      expect(isSecretField(name), name).toBe(false)
  })

  it('a 64-hex value is an id only under an id-like name: grantId, grant_id, id — not paid, valid or void', () => {
    const { log, text } = capture()
    const hex = `0x${'ab'.repeat(32)}`
    log.info('x', { id: hex, grant_id: hex, blockHash: hex, paid: hex, valid: hex, void: hex })
    const o = JSON.parse(text())
    expect(o).toMatchObject({ id: hex, grant_id: hex, blockHash: hex })
    for (const k of ['paid', 'valid', 'void']) expect(o[k], k).not.toBe(hex)
  })

  it('URLs lose user, password, query and (off loopback) path; loopback paths stay', () => {
    const { log, text } = capture()
    log.info('rpc', {
      rpcUrl: 'https://user:hunter2@mainnet.infura.io/v3/0123456789abcdef0123456789abcdef',
      alchemy: 'https://eth-mainnet.g.alchemy.com/v2/AbCdEf123?x=1',
      metrics: 'http://127.0.0.1:9464/metrics',
      local: 'http://127.0.0.1:9464/status?code=abc',
      note: 'cannot reach https://u:pw@rpc.example.org/key/KEY123 (timeout)',
    })
    const o = JSON.parse(text())
    for (const s of [
      'hunter2',
      'user:',
      '0123456789abcdef0123456789abcdef',
      'AbCdEf123',
      'x=1',
      'code=abc',
      'pw@',
      'KEY123',
    ])
      expect(text()).not.toContain(s)
    expect(o.rpcUrl).toBe(`https://mainnet.infura.io/… ${REDACTED}`)
    expect(o.alchemy).toBe(`https://eth-mainnet.g.alchemy.com/… ${REDACTED}`)
    expect(o.metrics).toBe('http://127.0.0.1:9464/metrics')
    expect(o.local).toBe(`http://127.0.0.1:9464/status ${REDACTED}`)
    expect(o.note).toBe(`cannot reach https://rpc.example.org/… ${REDACTED} (timeout)`)
  })

  it('every byte view prints as its length', () => {
    const { log, text } = capture()
    const key = new Uint8Array(32).fill(0xab)
    log.info('x', {
      view: new DataView(key.buffer),
      u16: new Uint16Array(key.buffer),
      clamped: new Uint8ClampedArray(key.buffer),
      buf: Buffer.from(key),
      shared: new SharedArrayBuffer(8),
    })
    expect(JSON.parse(text())).toMatchObject({
      view: '[32 bytes]',
      u16: '[32 bytes]',
      clamped: '[32 bytes]',
      buf: '[32 bytes]',
      shared: '[8 bytes]',
    })
  })

  it('masks 64-hex runs in messages, error messages and strings; public ids stay', () => {
    const { log, text } = capture()
    const grant = `0x${'cd'.repeat(32)}`
    log.error(`cannot import 0x${PK}`, {
      err: new Error(`invalid private key ${PK}`),
      cause: { message: `seed ${PK}${PK}` },
      grantId: grant,
      grantIds: [grant],
      transactionHash: grant,
    })
    expect(text()).not.toContain(PK.slice(4))
    const o = JSON.parse(text())
    expect(o.message).toBe(`cannot import 0x4c08…${REDACTED}`)
    expect(o.err.message).toBe(`invalid private key 4c08…${REDACTED}`)
    expect(o).toMatchObject({ grantId: grant, grantIds: [grant], transactionHash: grant })
  })

  it('readable lines escape control characters in messages, keys and values', () => {
    const { log, text } = capture('pretty')
    log.info('capsule\u001b[2J announced', { capsuleId: '\u001b[1A\u001b[2KINFO' })
    log.info('x', { cid: '\u001b]0;owned\u0007', 'k\u001bey': 'v', spaced: 'a \u009b1m b' })
    const out = text()
    expect(out.replaceAll('\n', '')).not.toMatch(/\p{Cc}/u) // only the newline ending each line
    expect(out.split('\n').filter(Boolean)).toHaveLength(2)
    expect(out).toContain('capsuleId=\\u001b[1A\\u001b[2KINFO')
    expect(out).toContain('capsule\\u001b[2J announced')
    expect(out).toContain('cid=\\u001b]0;owned\\u0007')
    expect(out).toContain('k\\u001bey=v')
    expect(out).toContain('spaced="a \\u009b1m b"')
  })
})
