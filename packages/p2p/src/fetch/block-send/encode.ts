/**
 * Bitswap 1.2.0 messages encoded as a list of parts that points at the blocks' own bytes.
 * `@helia/bitswap` 4 encodes each block twice before sending it (once to measure it, once into
 * the message: two 1 MiB copies per block, 9 % of a fetch's CPU with the garbage they leave);
 * here only the few bytes of protobuf framing around each block are written. The wire bytes are
 * the ones protobuf gives for the same message (`message.proto` of bitswap 1.2.0: wantlist = 1,
 * payload = 3, blockPresences = 4), checked against bitswap's own decoder in
 * `test/block-send.test.ts`.
 */

/** A block as bitswap's serving side queues it: the CID prefix and the bytes. */
export interface EncodableBlock {
  prefix: Uint8Array
  data: Uint8Array
}
export interface EncodablePresence {
  cid: Uint8Array
  type: 'HaveBlock' | 'DoNotHaveBlock'
}
export interface EncodableWant {
  cid: Uint8Array
  priority: number
  wantType: 'WantHave' | 'WantBlock'
  cancel: boolean
  sendDontHave: boolean
}
export interface EncodableMessage {
  full?: boolean
  wantlist: Map<string, EncodableWant>
  blocks: Map<string, EncodableBlock>
  blockPresences: Map<string, EncodablePresence>
}

/** One message on the wire: its parts, in order (framing and block bytes), and their length. */
export interface EncodedMessage {
  parts: Uint8Array[]
  byteLength: number
}

/** An unsigned LEB128 varint's bytes (protobuf's), for the few numbers a message frames. */
export function varint(n: number): number[] {
  const out: number[] = []
  let v = n
  while (v >= 0x80) {
    out.push((v % 0x80) | 0x80)
    v = Math.floor(v / 0x80)
  }
  out.push(v)
  return out
}
const varintLength = (n: number) => varint(n).length

/** A length-delimited field: tag, length, then `body` bytes. */
const delimited = (field: number, length: number) => [(field << 3) | 2, ...varint(length)]

function wantBytes(want: EncodableWant): Uint8Array {
  const body = [
    ...delimited(1, want.cid.byteLength),
    ...want.cid,
    0x10,
    ...varint(want.priority),
    0x18,
    want.cancel ? 1 : 0,
    0x20,
    want.wantType === 'WantHave' ? 1 : 0,
    0x28,
    want.sendDontHave ? 1 : 0,
  ]
  return Uint8Array.from([...delimited(1, body.length), ...body])
}

function presenceBytes(presence: EncodablePresence): Uint8Array {
  const body = [
    ...delimited(1, presence.cid.byteLength),
    ...presence.cid,
    0x10,
    presence.type === 'DoNotHaveBlock' ? 1 : 0,
  ]
  return Uint8Array.from([...delimited(4, body.length), ...body])
}

/** The framing before a block's bytes: payload field, Block{prefix, data length}. */
function blockHead(block: EncodableBlock): Uint8Array {
  const inner =
    1 +
    varintLength(block.prefix.byteLength) +
    block.prefix.byteLength +
    1 +
    varintLength(block.data.byteLength) +
    block.data.byteLength
  return Uint8Array.from([
    ...delimited(3, inner),
    ...delimited(1, block.prefix.byteLength),
    ...block.prefix,
    ...delimited(2, block.data.byteLength),
  ])
}

/** Parts below this size next to each other are joined into one array (a copy of a few bytes). */
const SMALL_PART = 1024

/**
 * `parts` with each run of small parts joined: every part is encrypted by noise with a call of
 * its own and written to the socket as a buffer of its own, so a block's length prefix and
 * framing were two more of each per block (ADR 0061). Block bytes are never copied.
 */
function joinSmall(parts: Uint8Array[]): Uint8Array[] {
  const out: Uint8Array[] = []
  let run: Uint8Array[] = []
  const flush = () => {
    if (run.length === 1) out.push(run[0] as Uint8Array)
    else if (run.length > 1) out.push(Buffer.concat(run))
    run = []
  }
  for (const part of parts) {
    if (part.byteLength < SMALL_PART) {
      run.push(part)
    } else {
      flush()
      out.push(part)
    }
  }
  flush()
  return out
}

/**
 * `message` as one or more bitswap messages of at most `maxSize` bytes each (a block alone
 * larger than that still goes, alone). Each message is length-prefixed for the stream.
 */
export function encodeMessages(message: EncodableMessage, maxSize: number): EncodedMessage[] {
  const messages: EncodedMessage[] = []
  let parts: Uint8Array[] = []
  let size = 0
  const close = () => {
    if (parts.length === 0) return
    const prefix = Uint8Array.from(varint(size))
    messages.push({ parts: joinSmall([prefix, ...parts]), byteLength: prefix.byteLength + size })
    parts = []
    size = 0
  }
  const add = (items: Uint8Array[]) => {
    const length = items.reduce((n, p) => n + p.byteLength, 0)
    if (size > 0 && size + length > maxSize) close()
    parts.push(...items)
    size += length
  }
  // wants first, in one wantlist field per message (small; the blocks follow)
  const wants = [...message.wantlist.values()].map(wantBytes)
  if (wants.length > 0 || message.full === true) {
    const entries = wants.reduce((n, w) => n + w.byteLength, 0)
    const full = message.full === true ? [0x10, 1] : []
    add([Uint8Array.from(delimited(1, entries + full.length)), ...wants, Uint8Array.from(full)])
  }
  for (const block of message.blocks.values()) add([blockHead(block), block.data])
  for (const presence of message.blockPresences.values()) add([presenceBytes(presence)])
  close()
  return messages
}
