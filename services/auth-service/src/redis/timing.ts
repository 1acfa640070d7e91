import { performance } from 'node:perf_hooks'
import type { RedisClient } from './client.js'
import { scriptName } from './scripts.js'

interface SentCommand { name: string, args: unknown[], promise: Promise<unknown> }
const timed = Symbol('baton.redis.timed')

/**
 * Observes every command's round trip, success or failure, into `observe`,
 * labelled by command or script name. It wraps the client's `sendCommand`,
 * through which every command, script and retry passes; a client already
 * wrapped (shared by two apps) reports to the first only.
 */
export function timeCommands (client: RedisClient, observe: (label: string, seconds: number) => void): void {
  // Every argument passes through: a cluster's sendCommand takes the node to use as a third.
  const target = client as unknown as { sendCommand: (command: SentCommand, ...rest: unknown[]) => unknown, [timed]?: true }
  if (target[timed] === true) return
  target[timed] = true
  const send = target.sendCommand.bind(client)
  target.sendCommand = (command, ...rest) => {
    // Before sending: a script's first use on a connection turns EVALSHA into EVAL as it is written.
    const label = command.name === 'evalsha' ? scriptName(command.args[0] as string) ?? 'evalsha' : command.name
    const start = performance.now()
    const result = send(command, ...rest)
    const done = (): void => { observe(label, (performance.now() - start) / 1000) }
    command.promise.then(done, done)
    return result
  }
}
