// The bounded, checking result receiver (SPEC §3.4.3), from the wire-protocol package.
export { createResultReceiver, type ReceivedResult } from '@digicap/protocol'
