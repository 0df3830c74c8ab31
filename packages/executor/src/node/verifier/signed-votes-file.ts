/**
 * A verifier's signed-vote record in its data folder (slashing protection, ADR 0093):
 * `<dataDir>/signed-votes.json`, beside the key's `secrets.json`. `@digicap/committee`'s
 * {@link SignedVoteBook} decides; this file only keeps it.
 *
 * An append-only log of JSON lines (version 2, ADR 0093 amendment by helper 136): the first line
 * is the record as it stood when the file was last written whole (its body and the body's
 * SHA-256), each later line one change (a slot's digest, the slot's signature, rounds closed)
 * with a SHA-256 chained over the line before it. A vote costs two appends and one `fdatasync`
 * (the digest's, before the key is asked; the signature's line rides on the next one), where the
 * whole record rewritten with two fsyncs per change cost ten times a raw fdatasync on an empty
 * record and some 300 times with 2000 open slots (bench/signed-votes.ts). The file is written whole (temp, fsync, rename, fsync of the folder)
 * at each start and whenever the log outgrows the record.
 *
 * Fail closed: a crash mid-append can only leave the last line without its newline (cut, or its
 * bytes not yet on disk); that change was never acknowledged (its vote never left), so it is
 * dropped. Anything else that does not read as a record this code wrote (a whole line garbled,
 * missing or its checksum off, another version or key) is damage, not a crash: the verifier
 * refuses to sign (`SignedVoteError` `corrupt`) instead of starting empty. (A whole last line
 * garbled is refused too: a changed newline could merge an acknowledged line into it.) A version-1 file (one JSON document, slots without
 * their job) is read and carried over.
 */
import { createHash } from 'node:crypto'
import { open, readFile } from 'node:fs/promises'
import { type Address, hexToBytes, toHex } from '@digicap/capsule-core'
import {
  beforeRoundId,
  SIGNED_VOTES_MAX_CLOSED,
  SignedVoteBook,
  type SignedVoteBookOptions,
  type SignedVoteChange,
  type SignedVoteEntry,
  SignedVoteError,
  type SignedVoteSnapshot,
} from '@digicap/committee'

/** The file's format version (a change to the format bumps it). */
export const SIGNED_VOTES_VERSION = 2

/** Log bytes past the last whole write that make the next change write the record whole. */
export const SIGNED_VOTES_COMPACT_BYTES = 1 << 20

/** Options of {@link fileSignedVotes}. */
export interface FileSignedVotesInit extends Omit<SignedVoteBookOptions, 'persist' | 'append'> {
  /** The record's file (`<dataDir>/signed-votes.json`). */
  readonly path: string
  /** The verifier's address: the record is this key's. */
  readonly signer: Address
  /**
   * Create an empty record when there is none. Only where no vote was ever signed with this key
   * from this folder (`executor-node init`, or an operator who knows it); otherwise a missing
   * record is `SignedVoteError` `missing`. Default false.
   */
  readonly create?: boolean
  /**
   * Log bytes past the last whole write after which the record is written whole again (at least
   * twice the record's own size). Default {@link SIGNED_VOTES_COMPACT_BYTES}.
   */
  readonly compactBytes?: number
}

/** Components of {@link fileSignedVotes}. */
export interface FileSignedVotesComponents {
  /** Writes `text` to `path` atomically (temp file, fsync, rename, fsync the folder). */
  writeFileAtomic(path: string, text: string): Promise<void>
  /**
   * Appends `line` to the existing file `path`; with `flush`, flushes it (`fdatasync`) before it
   * resolves. Default: open for append, write, `fdatasync` when asked, close.
   */
  appendLine?(path: string, line: string, flush: boolean): Promise<void>
}

interface Body {
  version: number
  signer: string
  entries: SignedVoteEntry[]
  closed: string[]
}

const HEX = /^0x[0-9a-f]*$/
const sha256 = (text: string): string => createHash('sha256').update(text).digest('hex')
const checksum = (body: Body): string => sha256(JSON.stringify(body))
/** A change line's SHA-256: over the line before it and its own body, so no line can go missing. */
const chained = (previous: string, change: SignedVoteChange): string =>
  sha256(`${previous}${JSON.stringify(change)}`)

const entryOf = (e: SignedVoteEntry): SignedVoteEntry => ({
  slot: e.slot,
  round: e.round,
  digest: e.digest,
  ...(e.job === undefined ? {} : { job: e.job }),
  ...(e.signature === undefined ? {} : { signature: e.signature }),
})

/** The first line of a file written whole: the snapshot's body and its SHA-256. */
function headLine(s: SignedVoteSnapshot): { line: string; sha256: string } {
  const body: Body = {
    version: SIGNED_VOTES_VERSION,
    signer: s.signer.toLowerCase(),
    entries: s.entries.map(entryOf),
    closed: [...s.closed],
  }
  const sum = checksum(body)
  return { line: `${JSON.stringify({ ...body, sha256: sum })}\n`, sha256: sum }
}

/** The record written whole: the file the next changes are appended to. */
export function encodeSignedVotes(s: SignedVoteSnapshot): string {
  return headLine(s).line
}

const corruptError = (path: string, why: string) =>
  new SignedVoteError('corrupt', 'The signed-vote record is damaged', {
    details: { path, why },
    hint: 'A crash only ever cuts its last line: the file was cut or altered. Restore it from a backup; if none, wait until every job this key served has settled or timed out on chain, then move the file aside and start the verifier with a new record.',
  })

const entryHolds = (e: unknown, withJob: boolean): e is SignedVoteEntry => {
  const x = e as Record<string, unknown>
  return (
    typeof x === 'object' &&
    x !== null &&
    typeof x.slot === 'string' &&
    typeof x.round === 'string' &&
    HEX.test(x.round) &&
    typeof x.digest === 'string' &&
    HEX.test(x.digest) &&
    x.digest.length === 66 &&
    // A slot carried over from version 1 may have no job.
    (x.job === undefined ||
      (withJob && typeof x.job === 'string' && HEX.test(x.job) && x.job.length === 66)) &&
    (x.signature === undefined ||
      (typeof x.signature === 'string' && HEX.test(x.signature) && x.signature.length === 132))
  )
}

/** The first line's record. @throws {SignedVoteError} `corrupt`. */
function readHead(line: string, path: string): { body: Body; sha256: string } {
  const corrupt = (why: string) => corruptError(path, why)
  let doc: unknown
  try {
    doc = JSON.parse(line)
  } catch {
    throw corrupt('not JSON (cut or garbled)')
  }
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) throw corrupt('not a record')
  const { sha256: sum, ...rest } = doc as Body & { sha256?: unknown }
  if (rest.version !== 1 && rest.version !== SIGNED_VOTES_VERSION) {
    throw corrupt(`version ${String(rest.version)}`)
  }
  const withJob = rest.version !== 1
  if (
    typeof rest.signer !== 'string' ||
    !/^0x[0-9a-f]{40}$/.test(rest.signer) ||
    !Array.isArray(rest.entries) ||
    !rest.entries.every((e) => entryHolds(e, withJob)) ||
    !Array.isArray(rest.closed) ||
    !rest.closed.every((r) => typeof r === 'string' && HEX.test(r))
  ) {
    throw corrupt('a field of the wrong shape')
  }
  const body: Body = {
    version: rest.version,
    signer: rest.signer,
    entries: rest.entries,
    closed: rest.closed,
  }
  if (sum !== checksum(body)) throw corrupt('checksum mismatch')
  return { body, sha256: sum }
}

/**
 * A version-1 record's slots carry no job. A before round's id is `beforeRoundId(job)`: a slot
 * whose round is that of another slot's round gets it as its job (the job's final round is its
 * own id). A slot whose job cannot be told keeps none: it is kept until its round is closed.
 */
function jobsOfVersion1(entries: SignedVoteEntry[]): SignedVoteEntry[] {
  const rounds = new Set(entries.map((e) => e.round))
  const jobOfBefore = new Map<string, string>()
  for (const r of rounds) {
    if (r.length === 66) jobOfBefore.set(toHex(beforeRoundId(hexToBytes(r as `0x${string}`))), r)
  }
  // Jobs with a before slot here: their final round's slots are of the job itself.
  const jobs = new Set([...jobOfBefore].filter(([b]) => rounds.has(b)).map(([, j]) => j))
  return entries.map((e) => {
    const job = jobOfBefore.get(e.round) ?? (jobs.has(e.round) ? e.round : undefined)
    return job === undefined ? e : { ...e, job }
  })
}

/** What a file holds, and how many bytes of it are the log after its first line. */
function readLog(
  text: string,
  path: string,
  maxClosed: number,
): { snapshot: SignedVoteSnapshot; logBytes: number } {
  const corrupt = (why: string) => corruptError(path, why)
  const lines = text.split('\n')
  // Past the last newline: an append a crash cut (never acknowledged), or nothing.
  const cut = lines.pop() as string
  const first = lines.shift()
  if (first === undefined) throw corrupt('no whole first line (cut or empty)')
  const head = readHead(first, path)
  if (head.body.version === 1) {
    if (lines.length > 0 || cut !== '') throw corrupt('a version-1 record has one line')
    return {
      snapshot: {
        signer: head.body.signer as Address,
        entries: jobsOfVersion1(head.body.entries),
        closed: head.body.closed,
      },
      logBytes: 0,
    }
  }
  const entries = new Map<string, SignedVoteEntry>()
  for (const e of head.body.entries) entries.set(e.slot, e)
  const closed = [...head.body.closed]
  let previous = head.sha256
  let logBytes = 0
  for (const [i, line] of lines.entries()) {
    let doc: { sha256?: unknown } & Record<string, unknown>
    try {
      doc = JSON.parse(line)
    } catch {
      throw corrupt(`line ${i + 2} is not JSON`)
    }
    const { sha256: sum, ...change } = doc ?? {}
    const c = change as SignedVoteChange
    const shaped =
      (c.op === 'slot' && Object.keys(c).length === 2 && entryHolds(c.entry, true)) ||
      (c.op === 'close' &&
        Object.keys(c).length === 2 &&
        Array.isArray(c.rounds) &&
        c.rounds.every((r) => typeof r === 'string' && HEX.test(r)))
    if (!shaped) throw corrupt(`line ${i + 2} is not a change`)
    if (sum !== chained(previous, c)) throw corrupt(`line ${i + 2}: checksum mismatch`)
    previous = sum
    logBytes += Buffer.byteLength(line) + 1
    if (c.op === 'slot') {
      const held = entries.get(c.entry.slot)
      if (held !== undefined && held.digest !== c.entry.digest) {
        throw corrupt(`line ${i + 2} changes a slot's digest`)
      }
      entries.set(c.entry.slot, entryOf(c.entry))
    } else {
      const rounds = new Set(c.rounds)
      for (const r of c.rounds) if (!closed.includes(r)) closed.push(r)
      for (const [key, e] of entries) if (rounds.has(e.round)) entries.delete(key)
    }
  }
  return {
    snapshot: {
      signer: head.body.signer as Address,
      entries: [...entries.values()],
      closed: closed.slice(-maxClosed),
    },
    logBytes,
  }
}

/**
 * Reads a file {@link fileSignedVotes} wrote (or a version-1 one); a last line a crash cut is
 * dropped.
 * @throws {SignedVoteError} `corrupt` for anything else.
 */
export function decodeSignedVotes(text: string, path: string): SignedVoteSnapshot {
  return readLog(text, path, Number.MAX_SAFE_INTEGER).snapshot
}

async function appendToFile(path: string, line: string, flush: boolean): Promise<void> {
  const fh = await open(path, 'a')
  try {
    const bytes = Buffer.from(line)
    for (let at = 0; at < bytes.length; ) {
      at += (await fh.write(bytes, at, bytes.length - at)).bytesWritten
    }
    if (flush) await fh.datasync()
  } finally {
    await fh.close()
  }
}

/**
 * Opens (or, with `create`, creates) the record of `signer` at `path`, and writes it whole (a
 * version-1 file becomes version 2; a cut last line is gone).
 *
 * @example
 * ```ts
 * import { writeFileAtomic } from '@digicap/cli-kit'
 * const signedVotes = await fileSignedVotes({ path: join(dataDir, 'signed-votes.json'), signer: address })({ writeFileAtomic })
 * verifierNode(init)({ ...components, signedVotes })
 * ```
 * @throws {SignedVoteError} `missing` (no record and not `create`), `corrupt` (unreadable),
 * `identity` (another key's record), `io` (it could not be read or written).
 */
export function fileSignedVotes(
  init: FileSignedVotesInit,
): (components: FileSignedVotesComponents) => Promise<SignedVoteBook> {
  return async ({ writeFileAtomic, appendLine = appendToFile }) => {
    const { path, signer } = init
    const compactBytes = init.compactBytes ?? SIGNED_VOTES_COMPACT_BYTES
    /** The first line's checksum (what the next change chains on) and the log's size. */
    let tail = ''
    let logBytes = 0
    let bound = compactBytes
    let book: SignedVoteBook | undefined
    const writeWhole = async (s: SignedVoteSnapshot) => {
      const head = headLine(s)
      await writeFileAtomic(path, head.line)
      tail = head.sha256
      logBytes = 0
      bound = Math.max(compactBytes, 2 * head.line.length)
    }
    const append = async (change: SignedVoteChange) => {
      // The book holds the change already: past the bound, writing it whole records it too.
      if (logBytes > bound && book !== undefined) return writeWhole(book.snapshot())
      const sum = chained(tail, change)
      const line = `${JSON.stringify({ ...change, sha256: sum })}\n`
      // A slot's signature is not flushed on its own: the next change's fdatasync flushes it (one
      // per vote). Lost in a power cut, the slot keeps its digest and the same vote is signed
      // again on restart: a second signature of one vote is no equivocation (ADR 0092 slashes
      // two values for one slot).
      await appendLine(path, line, !(change.op === 'slot' && change.entry.signature !== undefined))
      tail = sum
      logBytes += Buffer.byteLength(line)
    }
    const options = {
      persist: writeWhole,
      append,
      ...(init.maxEntries === undefined ? {} : { maxEntries: init.maxEntries }),
      ...(init.maxClosed === undefined ? {} : { maxClosed: init.maxClosed }),
    }
    let text: string | undefined
    try {
      text = await readFile(path, 'utf8')
    } catch (cause) {
      if ((cause as NodeJS.ErrnoException).code !== 'ENOENT') {
        throw new SignedVoteError('io', 'The signed-vote record could not be read', {
          details: { path },
          cause,
          hint: 'Fix the permissions of the data folder.',
        })
      }
    }
    let snapshot: SignedVoteSnapshot
    if (text === undefined) {
      if (init.create !== true) {
        throw new SignedVoteError('missing', 'This verifier has no signed-vote record', {
          details: { path },
          hint: 'It lives beside the key and `executor-node init` creates it. If this key never signed votes from another folder (a folder made before the record existed, or every job it served has closed on chain), start once with --new-vote-record; otherwise restore the file.',
        })
      }
      snapshot = { signer, entries: [], closed: [] }
    } else {
      snapshot = readLog(text, path, init.maxClosed ?? SIGNED_VOTES_MAX_CLOSED).snapshot
      if (snapshot.signer !== signer.toLowerCase()) {
        throw new SignedVoteError('identity', "The signed-vote record is another key's", {
          details: { path, record: snapshot.signer, signer },
          hint: "Each verifier key keeps its own record: use this key's data folder.",
        })
      }
    }
    try {
      // Whole at each start: a cut last line is gone before anything is appended after it.
      await writeWhole(snapshot)
    } catch (cause) {
      throw new SignedVoteError('io', 'The signed-vote record could not be written', {
        details: { path },
        cause,
        hint: 'Free space or fix the permissions of the data folder.',
      })
    }
    book = new SignedVoteBook(snapshot, options)
    return book
  }
}
