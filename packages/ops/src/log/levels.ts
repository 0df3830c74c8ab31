/** Log levels, lowest first; `silent` writes nothing. */
export const LOG_LEVELS = ['debug', 'info', 'warn', 'error', 'silent'] as const
export type LogLevel = (typeof LOG_LEVELS)[number]

/** A level's rank: a line is written when its rank is at least the logger's. */
export const levelRank = (level: LogLevel): number => LOG_LEVELS.indexOf(level)

export const isLogLevel = (text: string): text is LogLevel =>
  (LOG_LEVELS as readonly string[]).includes(text)
