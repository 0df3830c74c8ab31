/**
 * PBFT over libp2p (`/digicap/pbft/1.0.0`, SPEC-PBFT.md §4), one way, frames on one long-lived
 * stream per peer (mux.ts). Inbound streams from peers that are not committee members are
 * aborted before a byte is read; outbound messages wait in a bounded queue per member (the
 * oldest is dropped when it is full), so a slow or dead member costs the others a fixed amount
 * of memory.
 */

import { createPbftMux } from './mux.ts'
import type { PbftTransport, PbftTransportOptions } from './transport-types.ts'

export type {
  PbftHost,
  PbftTransport,
  PbftTransportOptions,
  PbftTransportStats,
} from './transport-types.ts'

/**
 * Registers the protocol on `node` for one committee alone and returns its transport (a
 * {@link createPbftMux} endpoint with one session, stopped with it). A node that runs several
 * jobs' rounds at once opens sessions on one endpoint instead.
 */
export async function createPbftTransport(options: PbftTransportOptions): Promise<PbftTransport> {
  const {
    onRejected: _session,
    committee: _committee,
    onMessage: _onMessage,
    ...endpoint
  } = options
  const mux = await createPbftMux({ ...endpoint, maxSessions: 1 })
  const session = mux.open({
    committee: options.committee,
    onMessage: options.onMessage,
    ...(options.onRejected === undefined ? {} : { onRejected: options.onRejected }),
  })
  return {
    stats: session.stats,
    send: (to, message) => session.send(to, message),
    async stop() {
      await session.stop()
      await mux.stop()
    },
  }
}
