/** `@digicap/cli-kit/job-socket`: its own entry, so a CLI that hands its job over loads only it. */
export * from './job-socket/index.ts'
