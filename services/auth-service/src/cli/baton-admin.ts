#!/usr/bin/env node
/**
 * `baton-admin`: the operator's commands, configured by the same environment
 * as the auth-service (REDIS_URL, REDIS_KEY_PREFIX, the durations, ...).
 * Each prints one JSON line on stdout and exits 0; or one line on stderr and
 * exits 1 (failed), 2 (refused) or 64 (wrong usage). Audit lines, as JSON,
 * go to stderr. `--help` reads nothing and changes nothing.
 */
import { userInfo } from 'node:os'
import { parseArgs } from 'node:util'
import type { CommandArgs, CommandContext, CommandOutput } from './admin-commands.js'

const PROGRAM = 'baton-admin'
const EXIT_USAGE = 64

type OptionName = 'user' | 'reason' | 'feed-only'

interface Command {
  usage: string
  summary: string
  details: string
  positionals: string[]
  options: OptionName[]
  required?: OptionName[]
  /** The function of admin-commands.ts that does it (loaded only then: help stays instant). */
  run: 'listKeys' | 'rotateKeys' | 'revokeKey' | 'revokeUserSessions' | 'lockUser' | 'unlockUser'
}

const REASON = '  --reason <text>   why, for the audit log'

const COMMANDS: Record<string, Command> = {
  'keys list': {
    usage: 'keys list',
    summary: 'the signing keys: kid, algorithm, state and times',
    details: 'States: pending (published, signs from activate_at), active (signs), retiring (published until\n' +
      'retire_at), retired (deleted at the next reload). Operator-supplied keys show as active / published.',
    positionals: [],
    options: [],
    run: 'listKeys'
  },
  'keys rotate': {
    usage: 'keys rotate [--reason <text>]',
    summary: 'add a pending signing key; it signs KEY_PUBLISH_AHEAD from now',
    details: 'Result: added, pending (a key is pending already: nothing changes) or created (no keyring yet:\n' +
      'the key signs at once). Refused (exit 2) when the keys come from SIGNING_KEY / SIGNING_KEY_FILE.\n\n' + REASON,
    positionals: [],
    options: ['reason'],
    run: 'rotateKeys'
  },
  'keys revoke': {
    usage: 'keys revoke <kid> [--reason <text>] [--feed-only]',
    summary: 'a leaked signing key: unpublished now, a new key signs at once, its tokens refused',
    details: 'The key leaves the keyring and so the JWKS; running instances are told at once and stop\n' +
      'signing with it. If it was signing, a new key signs from now (verifiers fetch the key set\n' +
      'again for its unknown kid). A "key" event on the revocation feed makes verifiers that follow\n' +
      'it refuse every token the key signed within a second; other verifiers refuse them once\n' +
      'they fetch the key set again. Sessions stay: their next refresh gets a token from the new key.\n\n' +
      REASON + '\n' +
      '  --feed-only       only publish the feed event: for a key that is no longer published\n' +
      '                    (an operator-supplied key already replaced), or to repeat a failed publication',
    positionals: ['kid'],
    options: ['reason', 'feed-only'],
    run: 'revokeKey'
  },
  'sessions revoke': {
    usage: 'sessions revoke --user <name> [--reason <text>]',
    summary: 'end every session of one user (log out everywhere)',
    details: 'Their refresh tokens stop working; their access tokens are refused by the auth-service and\n' +
      'by verifiers that follow the revocation feed.\n\n' +
      '  --user <name>     the username\n' + REASON,
    positionals: [],
    options: ['user', 'reason'],
    required: ['user'],
    run: 'revokeUserSessions'
  },
  'users lock': {
    usage: 'users lock <name> [--reason <text>]',
    summary: 'refuse the user\'s logins and end every session of theirs',
    details: 'The password grant answers 400 invalid_grant ("the account is locked") until `users unlock`.\n\n' + REASON,
    positionals: ['name'],
    options: ['reason'],
    run: 'lockUser'
  },
  'users unlock': {
    usage: 'users unlock <name> [--reason <text>]',
    summary: 'let a locked user log in again',
    details: REASON,
    positionals: ['name'],
    options: ['reason'],
    run: 'unlockUser'
  }
}

function mainHelp (): string {
  const width = Math.max(...Object.values(COMMANDS).map((command) => command.usage.length))
  return [
    `Usage: ${PROGRAM} <command> [options]`,
    '',
    'Operator commands for Baton\'s auth-service, configured by the service\'s own environment',
    '(REDIS_URL or REDIS_CLUSTER_NODES / REDIS_SENTINELS, REDIS_KEY_PREFIX, the durations).',
    '',
    'Commands:',
    ...Object.values(COMMANDS).map((command) => `  ${command.usage.padEnd(width)}  ${command.summary}`),
    '',
    `Each prints one JSON line and exits 0; errors: one line on stderr, exit 1 (failed), 2 (refused),`,
    `${EXIT_USAGE} (usage). Audit lines (JSON) go to stderr; BATON_OPERATOR names who runs the command.`,
    `\`${PROGRAM} <command> --help\` describes a command.`
  ].join('\n')
}

function commandHelp (command: Command): string {
  return [`Usage: ${PROGRAM} ${command.usage}`, '', `${command.summary[0]!.toUpperCase()}${command.summary.slice(1)}.`, '', command.details].join('\n')
}

function usageError (message: string): never {
  process.stderr.write(`${PROGRAM}: ${message}; see ${PROGRAM} --help\n`)
  process.exit(EXIT_USAGE)
}

function fail (code: number, message: string): never {
  process.stderr.write(`${PROGRAM}: ${message}\n`)
  process.exit(code)
}

const OPTIONS = {
  help: { type: 'boolean', short: 'h' },
  user: { type: 'string' },
  reason: { type: 'string' },
  'feed-only': { type: 'boolean' }
} as const

/**
 * Our options first, then everything else after `--`: a kid is base64url and
 * may well start with '-', which parseArgs would take for an option.
 */
function optionsFirst (argv: readonly string[]): string[] {
  const options: string[] = []
  const positionals: string[] = []
  for (let index = 0; index < argv.length; index++) {
    const arg = argv[index]!
    if (arg === '--') {
      positionals.push(...argv.slice(index + 1))
      break
    }
    const name = arg.startsWith('--') ? arg.slice(2).split('=')[0]! : arg === '-h' ? 'help' : undefined
    const option = name === undefined ? undefined : (OPTIONS as Record<string, { type: string }>)[name]
    if (option === undefined) {
      positionals.push(arg)
      continue
    }
    options.push(arg)
    if (option.type === 'string' && !arg.includes('=')) {
      if (index + 1 === argv.length) usageError(`--${name!} needs a value`)
      options.push(argv[++index]!)
    }
  }
  return [...options, '--', ...positionals]
}

function parseCommandLine (): ReturnType<typeof parseArgs<{ options: typeof OPTIONS, allowPositionals: true }>> {
  try {
    return parseArgs({ args: optionsFirst(process.argv.slice(2)), options: OPTIONS, allowPositionals: true, strict: true })
  } catch (error) {
    return usageError((error as Error).message.split('\n')[0]!)
  }
}

const { values, positionals } = parseCommandLine()
const name = positionals.slice(0, 2).join(' ')
const command = COMMANDS[name]
// Help is answered before the configuration is even read: it touches nothing.
if (values.help === true || positionals.length === 0) {
  if (command === undefined && positionals.length > 0 && COMMANDS[positionals[0]!] === undefined &&
      !Object.keys(COMMANDS).some((known) => known.startsWith(`${positionals[0]!} `))) {
    usageError(`unknown command ${JSON.stringify(positionals.join(' '))}`)
  }
  process.stdout.write(`${command === undefined ? mainHelp() : commandHelp(command)}\n`)
  process.exit(0)
}
if (command === undefined) usageError(`unknown command ${JSON.stringify(positionals.join(' '))}`)

if (positionals.length - 2 !== command.positionals.length) {
  usageError(`${name} takes ${command.positionals.length === 0 ? 'no arguments' : command.positionals.map((positional) => `<${positional}>`).join(' ')}`)
}
for (const option of ['user', 'reason', 'feed-only'] as const) {
  if (values[option] !== undefined && !command.options.includes(option)) usageError(`${name} takes no --${option}`)
}
for (const option of command.required ?? []) {
  if (values[option] === undefined || values[option] === '') usageError(`${name} needs --${option}`)
}
if (values.reason !== undefined && values.reason.length > 256) usageError('--reason is longer than 256 characters')

const { ConfigError, createLogger, createRedisClient, describeRedisTarget, logSourceOf } = await import('@baton/service-kit')
const { loadConfig } = await import('../config.js')
const { redisKeys } = await import('../redis/keys.js')
const commands = await import('./admin-commands.js')

let config: ReturnType<typeof loadConfig>
try {
  config = loadConfig(process.env)
} catch (error) {
  if (error instanceof ConfigError) fail(1, `invalid configuration: ${error.message}`)
  throw error
}

function operatorName (): string {
  const named = process.env.BATON_OPERATOR?.trim()
  if (named !== undefined && named !== '') return named.slice(0, 128)
  try {
    return userInfo().username
  } catch {
    return 'unknown'
  }
}

// The service's own client, so a cluster or Sentinel works here too; a deadline, not a retry count, bounds the wait.
// A command is no request a client waits on: it may wait longer for a busy Redis than the service does.
const redis = createRedisClient(config.REDIS, { commandTimeoutMs: Math.max(config.REDIS_COMMAND_TIMEOUT, 5000) })
redis.on('error', () => {})
const deadline = setTimeout(() => { fail(1, `could not reach Redis at ${describeRedisTarget(config.REDIS)} within 10 s`) }, 10_000)
deadline.unref()

try {
  await redis.connect()
  commands.prepareClient(redis)
  const context: CommandContext = {
    config,
    redis,
    keys: redisKeys(config.REDIS_KEY_PREFIX),
    log: createLogger(config.LOG_LEVEL, { ...logSourceOf(new URL('../../package.json', import.meta.url)), service: PROGRAM }),
    operator: operatorName(),
    now: Date.now
  }
  const args: CommandArgs = { positionals: positionals.slice(2), user: values.user, reason: values.reason, feedOnly: values['feed-only'] }
  const output: CommandOutput = await commands[command.run](context, args)
  process.stdout.write(`${JSON.stringify(output)}\n`)
} catch (error) {
  if (error instanceof commands.CommandError) fail(error.exitCode, error.message)
  fail(1, `${name} failed against Redis at ${describeRedisTarget(config.REDIS)}: ${(error as Error).message}`)
} finally {
  redis.disconnect()
}
