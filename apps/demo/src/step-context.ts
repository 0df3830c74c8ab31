/**
 * What the demo hands each of its steps (image-step.ts, committee-step.ts): its timeline, its
 * CLI runners and the binaries they run. Each step adds its own inputs beside it.
 */
import type { ChildProcess } from 'node:child_process'

// biome-ignore lint/suspicious/noExplicitAny: documents parsed from the CLIs' JSON output
export type Doc = Record<string, any>
export type Actor = 'chain' | 'pi-node' | 'executor' | 'receiver' | 'committee'

export interface StepContext {
  /** Runs `fn` as a stage of the timeline (progress lines before and after). */
  stage<T>(
    actor: Actor,
    name: string,
    fn: () => Promise<T>,
    describe?: (value: T) => string | undefined,
  ): Promise<T>
  /** Records a finished stage (start offset and duration in demo ms). */
  record(s: {
    actor: Actor
    name: string
    startMs: number
    durationMs: number
    detail?: string
  }): void
  /** Runs a CLI command with `--json` to its end; the last stdout line is its document. */
  cli(
    bin: string,
    args: string[],
    env: Record<string, string>,
    what: string,
  ): Promise<{ code: number | null; doc: Doc; stderr: string }>
  /** As `cli`, throwing unless it exited 0 with a document that is not `ok: false`. */
  cliOk(bin: string, args: string[], env: Record<string, string>, what: string): Promise<Doc>
  /** Starts a CLI daemon (`--json`); resolves once it printed its ready line. */
  daemon(
    bin: string,
    args: string[],
    env: Record<string, string>,
    what: string,
  ): Promise<{ child: ChildProcess; lines(): Doc[]; stderr(): string }>
  /** Stops a daemon's process group (SIGTERM, then SIGKILL). */
  stopChild(child: ChildProcess): Promise<void>
  /** Reports a process the step started (the demo's report lists them all). */
  started(pid: number, what: string): void
  /** Milliseconds since the demo started. */
  now(): number
  /** A progress line on stderr. */
  progress(line: string): void
  until(cond: () => Promise<boolean>, ms: number, what: string): Promise<void>
  /** A warning in the demo's report. */
  warn(text: string): void
  /** The CLIs' entry files and the demo's dataset. */
  piNode: string
  executorNode: string
  csv: string
}
