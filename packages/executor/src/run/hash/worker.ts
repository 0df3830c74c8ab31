/**
 * The open's hash worker (ADR 0049): SHA-256 of the payload's data range on a second core,
 * while the open's thread decrypts and writes. Each chunk arrives transferred, is hashed, then
 * zeroed and freed here; messages are handled in order, so once `end` is answered every chunk
 * sent before it is zero.
 */
import { parentPort, workerData } from 'node:worker_threads'
import { DataRangeHasher, release } from './data-range-hasher.ts'
import type { HashWorkerAnswer, HashWorkerRequest, HashWorkerStart } from './protocol.ts'

const start = workerData as HashWorkerStart
const hasher = new DataRangeHasher(start.bundle, start.total)
const port = parentPort as NonNullable<typeof parentPort>
const answer = (a: HashWorkerAnswer) => port.postMessage(a)

port.on('message', (m: HashWorkerRequest) => {
  if (m.type === 'chunks') {
    for (const c of m.chunks) hasher.push(c)
    release(m.chunks)
    answer({ type: 'hashed' })
    return
  }
  answer({ type: 'digest', ...hasher.digest() })
})
