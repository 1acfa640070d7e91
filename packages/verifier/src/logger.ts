/** The part of a pino (or Fastify) logger the verifier writes to: an object of details, then a message. */
export interface Logger {
  info: (details: object, message: string) => void
  warn: (details: object, message: string) => void
  error: (details: object, message: string) => void
}
