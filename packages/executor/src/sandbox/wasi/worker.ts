/**
 * Worker-thread side of the WASI sandbox: run the module with {@link runWasiModule} (our own
 * in-memory preview-1 host), report. Internal: loaded by `sandbox.ts` only.
 */
import { parentPort } from 'node:worker_threads'
import { runWasiModule } from './host.ts'
import type { WasiWorkerData } from './protocol.ts'

// Nothing this thread prints may reach the host's stdio.
for (const m of ['log', 'info', 'warn', 'error', 'debug', 'trace'] as const) console[m] = () => {}
process.stdout.write = () => true
process.stderr.write = () => true

parentPort!.once('message', (msg: { type: 'job'; job: WasiWorkerData }) => {
  const port = parentPort!
  const result = runWasiModule(msg.job, () => port.postMessage({ type: 'started' }))
  port.postMessage({ type: 'done', payload: result }, [
    result.output.buffer,
    result.stderr.buffer,
  ] as ArrayBuffer[])
})
