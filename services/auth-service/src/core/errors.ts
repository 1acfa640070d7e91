/**
 * A setting the domain refuses, named by its path (`CLIENTS[2].scope`) and
 * what it must be; the configuration reports it as its ConfigError.
 */
export class SettingError extends Error {
  readonly path: string
  readonly expectation: string
  constructor (path: string, expectation: string) {
    super(`${path} ${expectation}`)
    this.name = 'SettingError'
    this.path = path
    this.expectation = expectation
  }
}
