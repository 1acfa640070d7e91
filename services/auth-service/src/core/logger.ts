interface LogFn {
  (fields: object, message?: string): void
  (message: string): void
}

/** The part of the service's logger (pino) that the domain writes its operational lines to. */
export interface Logger {
  info: LogFn
  warn: LogFn
  error: LogFn
}
